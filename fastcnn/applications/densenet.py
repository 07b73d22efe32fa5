"""keras.applications.densenet: DenseNet121, DenseNet169, DenseNet201 (Huang et al., arXiv
1608.06993), dense blocks whose layers each concatenate 32 new channels to their input, joined by
transition blocks that halve the channels and the spatial size; preprocess_input (mode "torch")
and decode_predictions."""

from fastcnn import layers, models
from fastcnn.applications import _builder, _weights, imagenet_utils

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/densenet/"
BATCH_NORM_EPSILON = 1.001e-5
GROWTH_RATE = 32
# The number of layers of each of the four dense blocks, by the name of Keras's weights file.
BLOCKS = {"densenet121": (6, 12, 24, 16), "densenet169": (6, 12, 32, 32), "densenet201": (6, 12, 48, 32)}


def _batch_norm(name):
    return layers.BatchNormalization(axis=3, epsilon=BATCH_NORM_EPSILON, name=name)


def dense_block(x, blocks, name):
    for index in range(1, blocks + 1):
        x = conv_block(x, GROWTH_RATE, name=f"{name}_block{index}")
    return x


def transition_block(x, reduction, name):
    """BatchNormalization, ReLU, a 1×1 convolution to reduction × the channels, 2×2 average pooling."""
    x = _batch_norm(f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(int(x.shape[3] * reduction), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def conv_block(x, growth_rate, name):
    """The dense layer: BN, ReLU, 1×1 to 4·growth_rate, BN, ReLU, 3×3 to growth_rate, and the
    result concatenated after its input's channels."""
    x1 = _batch_norm(f"{name}_0_bn")(x)
    x1 = layers.Activation("relu", name=f"{name}_0_relu")(x1)
    x1 = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(x1)
    x1 = _batch_norm(f"{name}_1_bn")(x1)
    x1 = layers.Activation("relu", name=f"{name}_1_relu")(x1)
    x1 = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x1)
    return layers.Concatenate(axis=3, name=f"{name}_concat")([x, x1])


def DenseNet(blocks, include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="densenet"):
    """The DenseNet body for `blocks`, the layer counts of its four dense blocks."""
    _weights.check_weights_argument(weights, quote="`")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError('If using `weights` as `"imagenet"` with `include_top` as true, `classes` should be 1000  '
                         f"Received: classes={classes}")
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    blocks = tuple(blocks)
    weights_name = next((key for key, value in BLOCKS.items() if value == blocks), None)
    if weights == "imagenet" and weights_name is None:
        raise ValueError(f"weights_path undefined: Keras has ImageNet weights for the blocks {list(BLOCKS.values())} "
                         f"only. Received: blocks={list(blocks)}")
    file_name = f"{weights_name}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    path = _weights.weights_path(weights, file_name, BASE_WEIGHTS_PATH + file_name)
    image = _builder.image_input(input_shape, input_tensor)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)))(image)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = _batch_norm("conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for index, count in enumerate(blocks, start=2):
        x = dense_block(x, count, name=f"conv{index}")
        if index < 5:
            x = transition_block(x, 0.5, name=f"pool{index}")
    x = _batch_norm("bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.pooling_head(x, pooling, "avg_pool", "max_pool")
    model = models.Model(_builder.model_inputs(input_tensor, image), x, name=name)
    return _weights.load(model, path)


def DenseNet121(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="densenet121"):
    """Keras's DenseNet121: same layers, names and weight order."""
    return DenseNet(BLOCKS["densenet121"], include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name)


def DenseNet169(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="densenet169"):
    """Keras's DenseNet169: same layers, names and weight order."""
    return DenseNet(BLOCKS["densenet169"], include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name)


def DenseNet201(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="densenet201"):
    """Keras's DenseNet201: same layers, names and weight order."""
    return DenseNet(BLOCKS["densenet201"], include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name)


def preprocess_input(x, data_format=None):
    """Scaled to [0, 1], then each channel normalised by ImageNet's mean and standard deviation
    (imagenet_utils mode "torch")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="torch")


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
