"""VGG16 and VGG19 (Simonyan & Zisserman, arXiv 1409.1556) as keras.applications builds them:
five blocks of 3×3 'same' ReLU convolutions each ending in a 2×2 max pooling, then Flatten and
two 4096-unit Dense layers before the classifier."""

from fastcnn import layers, models
from fastcnn.applications import _builder, _weights, imagenet_utils

WEIGHTS_FOLDER = "https://storage.googleapis.com/tensorflow/keras-applications/"


def build_vgg(convolutions_per_block, weights_prefix, include_top, weights, input_tensor, input_shape, pooling,
              classes, classifier_activation, name):
    _weights.check_weights_argument(weights)
    _weights.check_classes(weights, include_top, classes)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)
    file_name = f"{weights_prefix}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    path = _weights.weights_path(weights, file_name, f"{WEIGHTS_FOLDER}{weights_prefix}/{file_name}")
    image = _builder.image_input(input_shape, input_tensor)
    x = image
    for block, (filters, count) in enumerate(zip((64, 128, 256, 512, 512), convolutions_per_block), start=1):
        for index in range(1, count + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same",
                              name=f"block{block}_conv{index}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.pooling_head(x, pooling)
    model = models.Model(_builder.model_inputs(input_tensor, image), x, name=name)
    return _weights.load(model, path)
