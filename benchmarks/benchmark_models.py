"""The benchmark networks, built through the Keras API (fastcnn, tf.keras or Keras 3 on JAX take the
same code), and their FLOP counts: shared by compare_training.py (whose worker processes import
this file) and step_profile.py."""

MODELS = {
    # name: (architecture, batch size, input shape)
    "ex1_b32": ("example1", 32, (28, 28, 1)),
    "ex1_b128": ("example1", 128, (28, 28, 1)),
    "ex2_b32": ("example2", 32, (28, 28, 1)),
    "ex3_b32": ("example3", 32, (64, 64, 3)),
    "ex2_b256": ("example2", 256, (28, 28, 1)),  # the larger-batch case
    "resnet20_b64": ("resnet20", 64, (32, 32, 3)),
    "cifar5x5_b64": ("cifar5x5", 64, (32, 32, 3)),
    "mobilenetv2_b64": ("mobilenetv2", 64, (32, 32, 3)),
}

# The MobileNetV2-style network's inverted residual blocks (Sandler et al. 2018, Table 2, cut to
# 32x32 inputs): (expansion, output channels, repeats, first stride).
MOBILENETV2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 2), (6, 96, 1, 1))


def conv(shape, filters, kernel, strides=1, padding="same"):
    """A convolution on an input of `shape` (height, width, channels): its output shape and its cost
    as (output values, multiply-adds per output value)."""
    height, width, channels = shape
    if padding == "same":
        height, width = -(-height // strides), -(-width // strides)
    else:
        height, width = (height - kernel) // strides + 1, (width - kernel) // strides + 1
    return (height, width, filters), (height * width * filters, kernel * kernel * channels)


def layer_costs(architecture, shape):
    """The convolution and dense layers of `architecture` on inputs of `shape`, in order, each as
    (output values, multiply-adds per output value); the first entry is the layer that reads the input."""
    costs = []

    def add_conv(shape, filters, kernel, strides=1, padding="same"):
        shape, cost = conv(shape, filters, kernel, strides, padding)
        costs.append(cost)
        return shape

    if architecture == "example3":
        for filters, pool in ((32, False), (32, True), (64, False), (64, True)):
            shape = add_conv(shape, filters, 3)
            if pool:
                shape = (shape[0] // 2, shape[1] // 2, shape[2])
    elif architecture in ("example1", "example2"):
        for filters in (32, 64):
            shape = add_conv(shape, filters, 3, padding="valid")
            shape = (shape[0] // 2, shape[1] // 2, shape[2])
    elif architecture == "resnet20":
        shape = add_conv(shape, 16, 3)  # the stem
        for stage, filters in enumerate((16, 32, 64)):
            for block in range(3):
                strides = 2 if stage > 0 and block == 0 else 1
                if strides == 2:
                    add_conv(shape, filters, 1, strides)  # the projection shortcut, on the block's input
                branch = add_conv(shape, filters, 3, strides)
                shape = add_conv(branch, filters, 3)
        shape = (1, 1, shape[2])  # GlobalAveragePooling2D
    elif architecture == "cifar5x5":
        for filters, kernel, strides in ((32, 5, 2), (64, 5, 2), (128, 3, 1)):
            shape = add_conv(shape, filters, kernel, strides)
        shape = (1, 1, shape[2])  # GlobalAveragePooling2D
    elif architecture == "mobilenetv2":
        shape = add_conv(shape, 32, 3)  # the stem
        for expansion, filters, repeats, first_stride in MOBILENETV2_BLOCKS:
            for repeat in range(repeats):
                if expansion != 1:
                    shape = add_conv(shape, shape[2] * expansion, 1)
                shape = (-(-shape[0] // (first_stride if repeat == 0 else 1)),) * 2 + (shape[2],)
                costs.append((shape[0] * shape[1] * shape[2], 9))  # depthwise 3x3: 9 multiply-adds per output
                shape = add_conv(shape, filters, 1)
        shape = add_conv(shape, 256, 1)
        shape = (1, 1, shape[2])  # GlobalAveragePooling2D
    else:
        raise ValueError(f"unknown architecture {architecture!r}")
    costs.append((10, shape[0] * shape[1] * shape[2]))  # the Dense layer
    return costs


def model_flops(architecture, shape):
    """(training, inference) FLOPs per sample of a model, counted as direct convolution and dense
    products (2 per multiply-add); training = forward + both backward passes, less the first
    layer's input gradient, which no step computes. Batch normalization, pooling, activations and
    additions are not counted. Winograd does fewer real FLOPs for the 3x3 stride-1 layers, so its
    `% of peak` can pass 100%: it is the speed of an ideal direct kernel."""
    costs = layer_costs(architecture, shape)
    forward = sum(2.0 * outputs * macs for outputs, macs in costs)
    first = 2.0 * costs[0][0] * costs[0][1]
    return 3 * forward - first, forward


def build_resnet20(keras, input_shape):
    """ResNet-20 v1 (He et al. 2016) as in the Keras CIFAR-10 ResNet example, functional API."""
    layers = keras.layers

    def conv_bn(x, filters, kernel_size=3, strides=1, relu=True):
        x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same")(x)
        x = layers.BatchNormalization()(x)
        return layers.Activation("relu")(x) if relu else x

    inputs = keras.Input(shape=input_shape)
    x = conv_bn(inputs, 16)
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            y = conv_bn(x, filters, strides=strides)
            y = conv_bn(y, filters, relu=False)
            shortcut = conv_bn(x, filters, kernel_size=1, strides=strides, relu=False) if strides > 1 else x
            x = layers.add([y, shortcut])
            x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)

def build_mobilenetv2(keras, input_shape):
    """A MobileNetV2-style network for 32x32 images: inverted residual blocks (1x1 expand, ReLU6,
    depthwise 3x3, ReLU6, 1x1 project, residual add where the shapes allow), functional API."""
    layers = keras.layers

    def conv_bn(x, filters, kernel_size=1, strides=1, relu6=True, depthwise=False):
        if depthwise:
            x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
        else:
            x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU(6.0)(x) if relu6 else x

    inputs = keras.Input(shape=input_shape)
    x = conv_bn(inputs, 32, 3)
    for expansion, filters, repeats, first_stride in MOBILENETV2_BLOCKS:
        for repeat in range(repeats):
            strides = first_stride if repeat == 0 else 1
            y = conv_bn(x, x.shape[-1] * expansion) if expansion != 1 else x
            y = conv_bn(y, None, strides=strides, depthwise=True)
            y = conv_bn(y, filters, relu6=False)
            x = layers.add([x, y]) if strides == 1 and x.shape[-1] == filters else y
    x = conv_bn(x, 256)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))

def build(keras, architecture, input_shape):
    """The model for a Keras-API framework: `keras` is fastcnn, tf.keras or Keras 3 on JAX."""
    layers, models = keras.layers, keras.models
    if architecture == "resnet20":
        return build_resnet20(keras, input_shape)
    if architecture == "mobilenetv2":
        return build_mobilenetv2(keras, input_shape)
    if architecture == "cifar5x5":
        return models.Sequential([
            layers.Conv2D(32, (5, 5), strides=2, padding="same", activation="relu", input_shape=input_shape),
            layers.Conv2D(64, (5, 5), strides=2, padding="same", activation="relu"),
            layers.Conv2D(128, (3, 3), padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(), layers.Dense(10, activation="softmax")])
    if architecture == "example3":
        return models.Sequential([
            layers.Conv2D(32, (3, 3), padding="same", activation="relu", input_shape=input_shape),
            layers.BatchNormalization(), layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
            layers.BatchNormalization(), layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
            layers.Conv2D(64, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
            layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax")])
    stack = [layers.Conv2D(32, (3, 3), activation="relu", input_shape=input_shape), layers.MaxPooling2D((2, 2)),
             layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)), layers.Flatten()]
    if architecture == "example2":
        stack.append(layers.Dropout(0.5))
    stack.append(layers.Dense(10, activation="softmax"))
    return models.Sequential(stack)
