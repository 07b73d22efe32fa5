"""keras.applications.xception: Xception (Chollet, arXiv 1610.02357), depthwise separable
convolutions in residual blocks; preprocess_input (mode "tf") and decode_predictions. Its input
is at least 71×71 (default 299×299)."""

from fastcnn import layers, models
from fastcnn.applications import _builder, _weights, imagenet_utils

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/xception/"


def _separable(filters, name):
    return layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=name)


def _strided_shortcut(x, filters):
    """The residual branch of a downsampling block: a strided 1×1 convolution and
    BatchNormalization, both named by Keras's counters."""
    residual = layers.Conv2D(filters, (1, 1), strides=(2, 2), padding="same", use_bias=False)(x)
    return layers.BatchNormalization(axis=-1)(residual)


def _downsampling_block(x, block, filters, activate_first=True):
    """[ReLU] separable conv, BN, ReLU, separable conv, BN, 3×3/2 max pooling, plus the strided
    1×1 shortcut; filters is (first, second) separable convolution's."""
    residual = _strided_shortcut(x, filters[1])
    if activate_first:
        x = layers.Activation("relu", name=f"block{block}_sepconv1_act")(x)
    x = _separable(filters[0], f"block{block}_sepconv1")(x)
    x = layers.BatchNormalization(axis=-1, name=f"block{block}_sepconv1_bn")(x)
    x = layers.Activation("relu", name=f"block{block}_sepconv2_act")(x)
    x = _separable(filters[1], f"block{block}_sepconv2")(x)
    x = layers.BatchNormalization(axis=-1, name=f"block{block}_sepconv2_bn")(x)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"block{block}_pool")(x)
    return layers.add([x, residual])


def Xception(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="xception"):
    """Keras's Xception: same layers, names and weight order."""
    _weights.check_weights_argument(weights)
    _weights.check_classes(weights, include_top, classes)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=299, min_size=71,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    file_name = f"xception_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    path = _weights.weights_path(weights, file_name, BASE_WEIGHTS_PATH + file_name)
    image = _builder.image_input(input_shape, input_tensor)
    # Entry flow.
    x = layers.Conv2D(32, (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(image)
    x = layers.BatchNormalization(axis=-1, name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(64, (3, 3), use_bias=False, name="block1_conv2")(x)
    x = layers.BatchNormalization(axis=-1, name="block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)
    x = _downsampling_block(x, 2, (128, 128), activate_first=False)
    x = _downsampling_block(x, 3, (256, 256))
    x = _downsampling_block(x, 4, (728, 728))
    # Middle flow: eight residual blocks of three ReLU, separable conv, BN.
    for block in range(5, 13):
        residual = x
        for index in range(1, 4):
            x = layers.Activation("relu", name=f"block{block}_sepconv{index}_act")(x)
            x = _separable(728, f"block{block}_sepconv{index}")(x)
            x = layers.BatchNormalization(axis=-1, name=f"block{block}_sepconv{index}_bn")(x)
        x = layers.add([x, residual])
    # Exit flow.
    x = _downsampling_block(x, 13, (728, 1024))
    for index, filters in enumerate((1536, 2048), start=1):
        x = _separable(filters, f"block14_sepconv{index}")(x)
        x = layers.BatchNormalization(axis=-1, name=f"block14_sepconv{index}_bn")(x)
        x = layers.Activation("relu", name=f"block14_sepconv{index}_act")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.pooling_head(x, pooling)
    model = models.Model(_builder.model_inputs(input_tensor, image), x, name=name)
    return _weights.load(model, path)


def preprocess_input(x, data_format=None):
    """Scaled to [-1, 1] (imagenet_utils mode "tf")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
