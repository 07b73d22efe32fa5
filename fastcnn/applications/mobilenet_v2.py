"""keras.applications.mobilenet_v2: MobileNetV2 (Sandler et al., arXiv 1801.04381), inverted
residual blocks with linear bottlenecks; preprocess_input (mode "tf") and decode_predictions."""

import warnings

from fastcnn import layers, models
from fastcnn.applications import _builder, _weights, imagenet_utils

BASE_WEIGHT_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_SIZES = (96, 128, 160, 192, 224)
# (filters before alpha, stride, expansion) of the 17 inverted residual blocks, block_id 0 to 16.
BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6),
          (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6),
          (320, 1, 6))
BATCH_NORM = {"epsilon": 1e-3, "momentum": 0.999}


def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights="imagenet", input_tensor=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None):
    """Keras's MobileNetV2: same layers, names and weight order. `alpha` scales the filters;
    ImageNet weights exist for alpha 0.35, 0.5, 0.75, 1.0, 1.3, 1.4 and square inputs of 96, 128,
    160, 192 or 224 pixels (others load the 224 file, with Keras's warning)."""
    _weights.check_weights_argument(weights, quote="`")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError('If using `weights="imagenet"` with `include_top` as true, `classes` should be 1000. '
                         f"Received `classes={classes}`")
    if input_shape is None and input_tensor is not None and hasattr(input_tensor, "shape"):
        size = tuple(input_tensor.shape[1:3])
    else:
        size = tuple(input_shape[:2]) if input_shape is not None else (None, None)
    default_size = size[0] if size[0] == size[1] and size[0] in IMAGENET_SIZES else 224
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=default_size, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    rows, cols = input_shape[0], input_shape[1]
    if weights == "imagenet":
        if alpha not in IMAGENET_ALPHAS:
            raise ValueError("If imagenet weights are being loaded, alpha must be one of `0.35`, `0.50`, `0.75`, "
                             f"`1.0`, `1.3` or `1.4` only; Received `alpha={alpha}`")
        if rows != cols or rows not in IMAGENET_SIZES:
            rows = 224
            warnings.warn("`input_shape` is undefined or non-square, or `rows` is not in [96, 128, 160, 192, 224]. "
                          "Weights for input shape (224, 224) will be loaded as the default.", stacklevel=2)
    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)
    file_name = (f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}"
                 f"{'' if include_top else '_no_top'}.h5")
    path = _weights.weights_path(weights, file_name, BASE_WEIGHT_PATH + file_name)
    image = _builder.image_input(input_shape, input_tensor)
    x = layers.Conv2D(_make_divisible(32 * alpha, 8), kernel_size=3, strides=(2, 2), padding="same", use_bias=False,
                      name="Conv1")(image)
    x = layers.BatchNormalization(axis=-1, **BATCH_NORM, name="bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    for block_id, (filters, stride, expansion) in enumerate(BLOCKS):
        x = _inverted_res_block(x, filters=filters, alpha=alpha, stride=stride, expansion=expansion,
                                block_id=block_id)
    last_block_filters = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last_block_filters, kernel_size=1, use_bias=False, name="Conv_1")(x)
    x = layers.BatchNormalization(axis=-1, **BATCH_NORM, name="Conv_1_bn")(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.pooling_head(x, pooling)
    if name is None:
        name = f"mobilenetv2_{alpha:0.2f}_{rows}"
    model = models.Model(_builder.model_inputs(input_tensor, image), x, name=name)
    return _weights.load(model, path)


def _inverted_res_block(inputs, expansion, stride, alpha, filters, block_id):
    """1×1 expansion (not in block 0), 3×3 depthwise (stride 2: padded by correct_pad, 'valid'),
    linear 1×1 projection, and a residual Add where the shapes allow."""
    in_channels = inputs.shape[-1]
    pointwise_filters = _make_divisible(int(filters * alpha), 8)
    x = inputs
    prefix = f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(expansion * in_channels, kernel_size=1, padding="same", use_bias=False, activation=None,
                          name=f"{prefix}expand")(x)
        x = layers.BatchNormalization(axis=-1, **BATCH_NORM, name=f"{prefix}expand_BN")(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3), name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(kernel_size=3, strides=stride, activation=None, use_bias=False,
                               padding="same" if stride == 1 else "valid", name=f"{prefix}depthwise")(x)
    x = layers.BatchNormalization(axis=-1, **BATCH_NORM, name=f"{prefix}depthwise_BN")(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(pointwise_filters, kernel_size=1, padding="same", use_bias=False, activation=None,
                      name=f"{prefix}project")(x)
    x = layers.BatchNormalization(axis=-1, **BATCH_NORM, name=f"{prefix}project_BN")(x)
    if in_channels == pointwise_filters and stride == 1:
        return layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def _make_divisible(v, divisor, min_value=None):
    """v rounded to the nearest multiple of divisor, at least min_value and not below 90% of v."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def preprocess_input(x, data_format=None):
    """Scaled to [-1, 1] (imagenet_utils mode "tf")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
