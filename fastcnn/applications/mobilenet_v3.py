"""keras.applications.mobilenet_v3: MobileNetV3Small and MobileNetV3Large (Howard et al., arXiv
1905.02244): inverted residual blocks with squeeze-and-excitation gated by a hard sigmoid, and
hard-swish activations (ReLU only when `minimalistic`). The model rescales its own input (values
in [0, 255] to [-1, 1]) unless include_preprocessing=False, so preprocess_input returns its input
unchanged, as Keras's does. The hard sigmoid is Keras's arithmetic on symbolic tensors,
``ReLU(6.0)(x + 3.0) * (1.0 / 6.0)``: two operations of the graph that are not layers
(fastcnn/layers/_operations.py), so the layers and their weights are in Keras's order."""

import warnings

from fastcnn import layers, models
from fastcnn.applications import _builder, _weights, imagenet_utils

BASE_WEIGHT_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"
BATCH_NORM = {"epsilon": 1e-3, "momentum": 0.999}
# Per block: (expansion, filters before alpha, kernel size, stride, squeeze-excite, activation);
# "kernel" is 5 (3 when minimalistic), "se" the model's se_ratio (none when minimalistic),
# "activation" hard-swish (ReLU when minimalistic).
SMALL_BLOCKS = ((1, 16, 3, 2, "se", "relu"), (72.0 / 16, 24, 3, 2, None, "relu"),
                (88.0 / 24, 24, 3, 1, None, "relu"), (4, 40, "kernel", 2, "se", "activation"),
                (6, 40, "kernel", 1, "se", "activation"), (6, 40, "kernel", 1, "se", "activation"),
                (3, 48, "kernel", 1, "se", "activation"), (3, 48, "kernel", 1, "se", "activation"),
                (6, 96, "kernel", 2, "se", "activation"), (6, 96, "kernel", 1, "se", "activation"),
                (6, 96, "kernel", 1, "se", "activation"))
LARGE_BLOCKS = ((1, 16, 3, 1, None, "relu"), (4, 24, 3, 2, None, "relu"), (3, 24, 3, 1, None, "relu"),
                (3, 40, "kernel", 2, "se", "relu"), (3, 40, "kernel", 1, "se", "relu"),
                (3, 40, "kernel", 1, "se", "relu"), (6, 80, 3, 2, None, "activation"),
                (2.5, 80, 3, 1, None, "activation"), (2.3, 80, 3, 1, None, "activation"),
                (2.3, 80, 3, 1, None, "activation"), (6, 112, 3, 1, "se", "activation"),
                (6, 112, 3, 1, "se", "activation"), (6, 160, "kernel", 2, "se", "activation"),
                (6, 160, "kernel", 1, "se", "activation"), (6, 160, "kernel", 1, "se", "activation"))


def _depth(v, divisor=8, min_value=None):
    """v rounded to a multiple of `divisor` (at least min_value), never more than 10% below v."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def relu(x):
    return layers.ReLU()(x)


def hard_sigmoid(x):
    """relu6(x + 3) / 6, as Keras writes it (two arithmetic operations around a ReLU layer)."""
    return layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)


def hard_swish(x):
    return layers.Activation("hard_swish")(x)


def _se_block(inputs, filters, se_ratio, prefix):
    x = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(inputs)
    x = layers.Conv2D(_depth(filters * se_ratio), kernel_size=1, padding="same", name=f"{prefix}squeeze_excite_conv")(x)
    x = layers.ReLU(name=f"{prefix}squeeze_excite_relu")(x)
    x = layers.Conv2D(filters, kernel_size=1, padding="same", name=f"{prefix}squeeze_excite_conv_1")(x)
    x = hard_sigmoid(x)
    return layers.Multiply(name=f"{prefix}squeeze_excite_mul")([inputs, x])


def _inverted_res_block(x, expansion, filters, kernel_size, stride, se_ratio, activation, block_id):
    """1×1 expansion (not in block 0), depthwise convolution (stride 2: padded by correct_pad,
    'valid'), optional squeeze-and-excitation, linear 1×1 projection, residual Add where the
    shapes allow."""
    shortcut = x
    prefix = "expanded_conv_"
    infilters = x.shape[-1]
    if block_id:
        prefix = f"expanded_conv_{block_id}_"
        x = layers.Conv2D(_depth(infilters * expansion), kernel_size=1, padding="same", use_bias=False,
                          name=f"{prefix}expand")(x)
        x = layers.BatchNormalization(axis=-1, **BATCH_NORM, name=f"{prefix}expand_bn")(x)
        x = activation(x)
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size), name=f"{prefix}depthwise_pad")(x)
    x = layers.DepthwiseConv2D(kernel_size, strides=stride, padding="same" if stride == 1 else "valid", use_bias=False,
                               name=f"{prefix}depthwise")(x)
    x = layers.BatchNormalization(axis=-1, **BATCH_NORM, name=f"{prefix}depthwise_bn")(x)
    x = activation(x)
    if se_ratio:
        x = _se_block(x, _depth(infilters * expansion), se_ratio, prefix)
    x = layers.Conv2D(filters, kernel_size=1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = layers.BatchNormalization(axis=-1, **BATCH_NORM, name=f"{prefix}project_bn")(x)
    if stride == 1 and infilters == filters:
        x = layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def MobileNetV3(blocks, last_point_ch, input_shape=None, alpha=1.0, model_type="large", minimalistic=False,
                include_top=True, weights="imagenet", input_tensor=None, classes=1000, pooling=None,
                dropout_rate=0.2, classifier_activation="softmax", include_preprocessing=True, name=None):
    """The MobileNetV3 body over `blocks` (SMALL_BLOCKS or LARGE_BLOCKS), Keras's checks and
    weights file names (weights_mobilenet_v3_{type}[_minimalistic]_224_{alpha}_float[_no_top_v2].h5)."""
    _weights.check_weights_argument(weights, quote="`", received="Received ")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError('If using `weights="imagenet"` with `include_top` as true, `classes` should be 1000.  '
                         f"Received classes={classes}")
    if input_shape is not None and input_tensor is not None and input_tensor.shape[2] != input_shape[1]:
        raise ValueError("input_shape[1] must equal input_tensor.shape[2].  Received "
                         f"input_shape={input_shape}, input_tensor.shape={input_tensor.shape}")
    if input_shape is None and input_tensor is not None:
        input_shape = (input_tensor.shape[2], input_tensor.shape[1], 3)
    if input_shape is None:
        # Keras builds (None, None, 3); fastcnn needs every dimension known: the ImageNet size for
        # a classifier, and a headless model must be given its size (image_input says so).
        input_shape = (224, 224, 3) if include_top else (None, None, 3)
    rows, cols = input_shape[0], input_shape[1]
    if rows and cols and (rows < 32 or cols < 32):
        raise ValueError(f"Input size must be at least 32x32; Received `input_shape={input_shape}`")
    if weights == "imagenet":
        if (not minimalistic and alpha not in (0.75, 1.0)) or (minimalistic and alpha != 1.0):
            raise ValueError("If imagenet weights are being loaded, alpha can be one of `0.75`, `1.0` for non "
                             "minimalistic or `1.0` for minimalistic only.")
        if rows != cols or rows != 224:
            warnings.warn("`input_shape` is undefined or non-square, or `rows` is not 224. Weights for input shape "
                          "(224, 224) will be loaded as the default.", stacklevel=3)
    model_name = f"{model_type}{'_minimalistic' if minimalistic else ''}_224_{alpha}_float"
    file_name = f"weights_mobilenet_v3_{model_name}{'.h5' if include_top else '_no_top_v2.h5'}"
    path = _weights.weights_path(weights, file_name, BASE_WEIGHT_PATH + file_name)
    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)
    image = _builder.image_input(input_shape, input_tensor)
    if minimalistic:
        kernel, activation, se_ratio = 3, relu, None
    else:
        kernel, activation, se_ratio = 5, hard_swish, 0.25
    x = image
    if include_preprocessing:
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0)(x)
    x = layers.Conv2D(16, kernel_size=3, strides=(2, 2), padding="same", use_bias=False, name="conv")(x)
    x = layers.BatchNormalization(axis=-1, **BATCH_NORM, name="conv_bn")(x)
    x = activation(x)
    for block_id, (expansion, filters, kernel_size, stride, se, block_activation) in enumerate(blocks):
        x = _inverted_res_block(x, expansion, _depth(filters * alpha), kernel if kernel_size == "kernel" else kernel_size,
                                stride, se_ratio if se else None,
                                relu if block_activation == "relu" else activation, block_id)
    last_conv_ch = _depth(x.shape[-1] * 6)
    if alpha > 1.0:  # a width multiplier above 1 widens the last layers too
        last_point_ch = _depth(last_point_ch * alpha)
    x = layers.Conv2D(last_conv_ch, kernel_size=1, padding="same", use_bias=False, name="conv_1")(x)
    x = layers.BatchNormalization(axis=-1, **BATCH_NORM, name="conv_1_bn")(x)
    x = activation(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = layers.Conv2D(last_point_ch, kernel_size=1, padding="same", use_bias=True, name="conv_2")(x)
        x = activation(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate)(x)
        x = layers.Conv2D(classes, kernel_size=1, padding="same", name="logits")(x)
        x = layers.Flatten()(x)
        x = layers.Activation(activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.pooling_head(x, pooling, "avg_pool", "max_pool")
    model = models.Model(_builder.model_inputs(input_tensor, image), x, name=name)
    return _weights.load(model, path)


def MobileNetV3Small(input_shape=None, alpha=1.0, minimalistic=False, include_top=True, weights="imagenet",
                     input_tensor=None, classes=1000, pooling=None, dropout_rate=0.2, classifier_activation="softmax",
                     include_preprocessing=True, name="MobileNetV3Small"):
    """Keras's MobileNetV3Small: same layers, operations, names and weight order. ImageNet weights
    exist for alpha 0.75 and 1.0 (1.0 only when minimalistic), at 224×224."""
    return MobileNetV3(SMALL_BLOCKS, 1024, input_shape, alpha, "small", minimalistic, include_top, weights,
                       input_tensor, classes, pooling, dropout_rate, classifier_activation, include_preprocessing,
                       name=name)


def MobileNetV3Large(input_shape=None, alpha=1.0, minimalistic=False, include_top=True, weights="imagenet",
                     input_tensor=None, classes=1000, pooling=None, dropout_rate=0.2, classifier_activation="softmax",
                     include_preprocessing=True, name="MobileNetV3Large"):
    """Keras's MobileNetV3Large: same layers, operations, names and weight order. ImageNet weights
    exist for alpha 0.75 and 1.0 (1.0 only when minimalistic), at 224×224."""
    return MobileNetV3(LARGE_BLOCKS, 1280, input_shape, alpha, "large", minimalistic, include_top, weights,
                       input_tensor, classes, pooling, dropout_rate, classifier_activation, include_preprocessing,
                       name=name)


def preprocess_input(x, data_format=None):
    """Returns `x` unchanged: the models rescale their input themselves."""
    return x


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
