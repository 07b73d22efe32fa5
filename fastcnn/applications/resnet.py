"""keras.applications.resnet: ResNet50, ResNet101, ResNet152 (He et al., arXiv 1512.03385) and the
shared ResNet / ResNetV2 body; preprocess_input (mode "caffe") and decode_predictions."""

from fastcnn import layers, models
from fastcnn.applications import _builder, _weights, imagenet_utils

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
BATCH_NORM_EPSILON = 1.001e-5


def ResNet(stack_fn, preact, use_bias, include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
           pooling=None, classes=1000, classifier_activation="softmax", name="resnet", weights_name=None):
    """The ResNet (preact=False) and ResNetV2 (preact=True) body around `stack_fn`'s residual stacks."""
    _weights.check_weights_argument(weights)
    _weights.check_classes(weights, include_top, classes)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)
    file_name = f"{weights_name}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    # Keras loads nothing for a body without a published weights file (weights_name None)
    path = None if weights == "imagenet" and weights_name is None else \
        _weights.weights_path(weights, file_name, f"{BASE_WEIGHTS_PATH}{file_name}")
    image = _builder.image_input(input_shape, input_tensor)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(image)
    x = layers.Conv2D(64, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
    if not preact:
        x = layers.BatchNormalization(axis=3, epsilon=BATCH_NORM_EPSILON, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = stack_fn(x)
    if preact:
        x = layers.BatchNormalization(axis=3, epsilon=BATCH_NORM_EPSILON, name="post_bn")(x)
        x = layers.Activation("relu", name="post_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.pooling_head(x, pooling, "avg_pool", "max_pool")
    model = models.Model(_builder.model_inputs(input_tensor, image), x, name=name)
    return _weights.load(model, path)


def _batch_norm(name):
    return layers.BatchNormalization(axis=3, epsilon=BATCH_NORM_EPSILON, name=name)


def residual_block_v1(x, filters, kernel_size=3, stride=1, conv_shortcut=True, name=None):
    """The bottleneck block: 1×1 (stride), kernel_size × kernel_size, 1×1 to 4·filters, post-activation."""
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = _batch_norm(f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = _batch_norm(f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_2_conv")(x)
    x = _batch_norm(f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = _batch_norm(f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def stack_residual_blocks_v1(x, filters, blocks, stride1=2, name=None):
    x = residual_block_v1(x, filters, stride=stride1, name=f"{name}_block1")
    for index in range(2, blocks + 1):
        x = residual_block_v1(x, filters, conv_shortcut=False, name=f"{name}_block{index}")
    return x


def residual_block_v2(x, filters, kernel_size=3, stride=1, conv_shortcut=False, name=None):
    """The pre-activation bottleneck block of ResNetV2 (He et al., arXiv 1603.05027)."""
    preact = _batch_norm(f"{name}_preact_bn")(x)
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
    else:
        shortcut = layers.MaxPooling2D(1, strides=stride)(x) if stride > 1 else x
    x = layers.Conv2D(filters, 1, strides=1, use_bias=False, name=f"{name}_1_conv")(preact)
    x = _batch_norm(f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{name}_2_pad")(x)
    x = layers.Conv2D(filters, kernel_size, strides=stride, use_bias=False, name=f"{name}_2_conv")(x)
    x = _batch_norm(f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    return layers.Add(name=f"{name}_out")([shortcut, x])


def stack_residual_blocks_v2(x, filters, blocks, stride1=2, name=None):
    x = residual_block_v2(x, filters, conv_shortcut=True, name=f"{name}_block1")
    for index in range(2, blocks):
        x = residual_block_v2(x, filters, name=f"{name}_block{index}")
    return residual_block_v2(x, filters, stride=stride1, name=f"{name}_block{blocks}")


def _stacks_v1(blocks_per_stack):
    def stack_fn(x):
        for index, (filters, blocks) in enumerate(zip((64, 128, 256, 512), blocks_per_stack)):
            x = stack_residual_blocks_v1(x, filters, blocks, stride1=1 if index == 0 else 2, name=f"conv{index + 2}")
        return x

    return stack_fn


def ResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="resnet50"):
    """Keras's ResNet50: same layers, names and weight order."""
    return ResNet(_stacks_v1((3, 4, 6, 3)), False, True, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name, weights_name="resnet50")


def ResNet101(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name="resnet101"):
    """Keras's ResNet101: same layers, names and weight order."""
    return ResNet(_stacks_v1((3, 4, 23, 3)), False, True, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name, weights_name="resnet101")


def ResNet152(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name="resnet152"):
    """Keras's ResNet152: same layers, names and weight order."""
    return ResNet(_stacks_v1((3, 8, 36, 3)), False, True, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name, weights_name="resnet152")


def preprocess_input(x, data_format=None):
    """RGB to BGR, then ImageNet's channel means subtracted (imagenet_utils mode "caffe")."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


def decode_predictions(preds, top=5):
    return imagenet_utils.decode_predictions(preds, top=top)


decode_predictions.__doc__ = imagenet_utils.decode_predictions.__doc__
