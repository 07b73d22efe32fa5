"""``model.export(path, format="onnx")``: the model's inference graph as an ONNX file, for ONNX
Runtime, OpenVINO and the other ONNX consumers.

The graph is built from the same walk that compiles a model (layers in call order, nested models
inlined) and each layer's Keras config and weights. Images enter as NHWC (as the model takes them)
and are transposed once to NCHW, ONNX's convolution layout; a layer that needs the NHWC order (Flatten,
Reshape, Dense on images, the output) transposes back. The batch axis is dynamic. BatchNormalization
after a convolution without activation is folded into that convolution's weights; the other
inference-time layers (Dropout, noise, the random augmentations) are left out. A layer with no
ONNX equivalent here raises a ValueError naming it. The `onnx` package (pip install
"fastcnn[onnx]") is imported only here.
"""

import math

import numpy as np

_CONVOLUTIONS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")
# Layers that compute nothing in inference.
_IDENTITY_IN_INFERENCE = ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "Identity",
                          "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast",
                          "RandomBrightness", "ActivityRegularization", "StochasticDepth")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError('Exporting to ONNX needs the onnx package: pip install "fastcnn[onnx]" (or pip install '
                          "onnx)") from None
    return onnx


class _Recorder:
    """Stands in for the compiled graph during the model walk: records (layer, input tensor ids)."""

    def __init__(self):
        self.calls = []

    def add_layer(self, layer, input_ids, scopes):
        self.calls.append((layer, list(input_ids)))
        return len(self.calls) - 1

    def emit(self, model, input_ids, scopes=()):
        return model._emit_graph(self, list(input_ids), tuple(scopes) + (model,))


def _same_pads(size, kernel, stride, dilation):
    """(begin, end) padding of TensorFlow's 'same' along one axis (the extra pixel at the end)."""
    output = -(-size // stride)
    total = max((output - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Builder:
    def __init__(self, onnx, opset):
        self.onnx, self.helper, self.opset = onnx, onnx.helper, opset
        self.nodes, self.initializers, self.count = [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, array, hint="const"):
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type, inputs, hint=None, **attributes):
        output = self.name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [output], **attributes))
        return output


class _Tensor:
    """An ONNX value: its name, layout ("nchw" for images, "flat" for (batch, features)), and the
    per-sample shape in Keras's order (height, width, channels) or (features,)."""

    def __init__(self, name, layout, shape):
        self.name, self.layout, self.shape = name, layout, tuple(shape)


def _nhwc(builder, tensor):
    """The tensor's name in NHWC order (a Transpose for an image)."""
    return builder.op("Transpose", [tensor.name], "nhwc", perm=[0, 2, 3, 1]) if tensor.layout == "nchw" else tensor.name


def _from_nhwc(builder, name, shape):
    """A tensor from an NHWC-ordered value of per-sample `shape` (images go back to NCHW)."""
    if len(shape) == 3:
        return _Tensor(builder.op("Transpose", [name], "nchw", perm=[0, 3, 1, 2]), "nchw", shape)
    if len(shape) == 1:
        return _Tensor(name, "flat", shape)
    raise ValueError(f"ONNX export handles per-sample shapes of rank 1 or 3. Received: {shape}")


def _activation(builder, name, activation, layout, config=None):
    """The ONNX ops of a Keras activation applied to `name`."""
    config = config or {}
    if activation in (None, "linear"):
        return name
    if activation == "relu":
        return builder.op("Relu", [name])
    if activation == "relu6":
        return builder.op("Clip", [name, builder.constant(np.float32(0)), builder.constant(np.float32(6))])
    if activation == "sigmoid":
        return builder.op("Sigmoid", [name])
    if activation == "tanh":
        return builder.op("Tanh", [name])
    if activation in ("softmax", "log_softmax"):
        return builder.op("Softmax" if activation == "softmax" else "LogSoftmax", [name],
                          axis=1 if layout == "nchw" else -1)
    if activation == "leaky_relu":
        return builder.op("LeakyRelu", [name], alpha=float(config.get("negative_slope", 0.2)))
    if activation == "elu":
        return builder.op("Elu", [name], alpha=float(config.get("alpha", 1.0)))
    if activation == "selu":
        return builder.op("Selu", [name], alpha=1.6732632423543772, gamma=1.0507009873554805)
    if activation == "hard_sigmoid":
        return builder.op("HardSigmoid", [name], alpha=1.0 / 6.0, beta=0.5)
    if activation in ("hard_silu", "hard_swish"):
        return builder.op("HardSwish", [name])
    if activation == "softplus":
        return builder.op("Softplus", [name])
    if activation == "softsign":
        return builder.op("Softsign", [name])
    if activation == "exponential":
        return builder.op("Exp", [name])
    if activation == "mish":
        return builder.op("Mul", [name, builder.op("Tanh", [builder.op("Softplus", [name])])])
    if activation in ("swish", "silu"):
        return builder.op("Mul", [name, builder.op("Sigmoid", [name])])
    if activation == "gelu":  # Keras's default: the exact form, x/2 (1 + erf(x / sqrt(2)))
        scaled = builder.op("Erf", [builder.op("Mul", [name, builder.constant(np.float32(1 / math.sqrt(2)))])])
        one_plus = builder.op("Add", [scaled, builder.constant(np.float32(1))])
        return builder.op("Mul", [builder.op("Mul", [name, one_plus]), builder.constant(np.float32(0.5))])
    raise ValueError(f"ONNX export does not support the activation {activation!r}")


def _kind(layer):
    """The fastcnn layer class a layer is, by name: a user's subclass of Conv2D exports as Conv2D."""
    for cls in type(layer).__mro__:
        if cls.__module__.startswith("fastcnn."):
            return cls.__name__
    return type(layer).__name__


def _activation_name(value):
    return value if isinstance(value, str) or value is None else getattr(value, "__name__", str(value))


def _depthwise_kernel(kernel):
    """Keras's depthwise kernel (kh, kw, in, multiplier) as ONNX's (in * multiplier, 1, kh, kw)."""
    kh, kw, channels, multiplier = kernel.shape
    return kernel.reshape(kh, kw, channels * multiplier).transpose(2, 0, 1)[:, None]


def _conv_pads(tensor, config, kh, kw):
    """ONNX's pads [top, left, bottom, right] for a convolution's padding, 'same' as TensorFlow splits it."""
    if config["padding"] != "same":
        return [0, 0, 0, 0]
    strides, dilation = tuple(config["strides"]), tuple(config.get("dilation_rate", (1, 1)))
    height, width, _ = tensor.shape
    (top, bottom), (left, right) = (_same_pads(height, kh, strides[0], dilation[0]),
                                    _same_pads(width, kw, strides[1], dilation[1]))
    return [top, left, bottom, right]


def _conv_op(builder, name, kernel, bias, config, pads, groups):
    kh, kw = kernel.shape[2:]
    return builder.op("Conv", [name, builder.constant(kernel, "kernel"), builder.constant(bias, "bias")],
                      kernel_shape=[kh, kw], strides=list(config["strides"]),
                      dilations=list(config.get("dilation_rate", (1, 1))), group=groups, pads=pads)


def _conv(builder, tensor, layer, config, folded=None):
    """Conv2D / DepthwiseConv2D / SeparableConv2D: weights to (out, in/groups, kh, kw), TF's 'same'
    padding made explicit; a folded BatchNormalization scales the last convolution's output."""
    weights = [np.asarray(w, np.float32) for w in layer.get_weights()]
    kind = _kind(layer)
    kernel = weights[0]
    kh, kw = kernel.shape[:2]
    pads = _conv_pads(tensor, config, kh, kw)
    name = tensor.name
    if kind == "SeparableConv2D":
        depthwise = _depthwise_kernel(kernel)
        name = _conv_op(builder, name, depthwise, np.zeros(len(depthwise), np.float32), config, pads,
                        kernel.shape[2])
        onnx_kernel, groups, pads = weights[1].transpose(3, 2, 0, 1), 1, [0, 0, 0, 0]
        config = {**config, "strides": (1, 1), "dilation_rate": (1, 1)}
        bias_index = 2
    elif kind == "DepthwiseConv2D":
        onnx_kernel, groups, bias_index = _depthwise_kernel(kernel), kernel.shape[2], 1
    else:
        onnx_kernel, groups, bias_index = kernel.transpose(3, 2, 0, 1), int(config.get("groups", 1)), 1
    filters = onnx_kernel.shape[0]
    bias = weights[bias_index] if config.get("use_bias", True) else np.zeros(filters, np.float32)
    if folded is not None:  # BatchNormalization after it: y = (conv - mean) * scale + beta
        scale, shift = folded
        onnx_kernel = onnx_kernel * scale[:, None, None, None]
        bias = bias * scale + shift
    return _conv_op(builder, name, onnx_kernel, bias, config, pads, groups), layer.output_shape[1:]


def _batch_norm_affine(layer, config):
    """(scale, shift) of a BatchNormalization in inference: y = x * scale + shift."""
    weights = [np.asarray(w, np.float64) for w in layer.get_weights()]
    index = 0
    gamma = weights[index] if config.get("scale", True) else None
    index += gamma is not None
    beta = weights[index] if config.get("center", True) else None
    index += beta is not None
    mean, variance = weights[index], weights[index + 1]
    scale = (gamma if gamma is not None else 1.0) / np.sqrt(variance + float(config["epsilon"]))
    shift = (beta if beta is not None else 0.0) - mean * scale
    return scale.astype(np.float32), np.asarray(shift, np.float32)


def _channel_constant(builder, values, tensor):
    """A per-channel constant broadcast against the tensor's layout."""
    values = np.asarray(values, np.float32).reshape(-1)
    return builder.constant(values.reshape(1, -1, 1, 1) if tensor.layout == "nchw" else values.reshape(1, -1))


def _onnx_axes(tensor, keras_axes):
    """ONNX axes of Keras sample axes (1 .. rank) of a tensor in its layout (NCHW: H 2, W 3, C 1)."""
    if tensor.layout == "nchw":
        return sorted({1: 2, 2: 3, 3: 1}[axis] for axis in keras_axes)
    return sorted(keras_axes)


def _sample_constant(builder, values, tensor, hint="const"):
    """A constant of shape (1, *sample shape with 1 on broadcast axes) in Keras's order, laid out
    as the tensor is."""
    values = np.asarray(values, np.float32)
    return builder.constant(values.transpose(0, 3, 1, 2) if tensor.layout == "nchw" else values, hint)


def _broadcast_shape(tensor, keras_axes):
    """(1, *sample shape) with 1 on every axis not in `keras_axes`."""
    return (1,) + tuple(size if axis + 1 in keras_axes else 1 for axis, size in enumerate(tensor.shape))


def _reduce_mean(builder, name, axes):
    """ReduceMean keeping dimensions (its axes an input from opset 18, an attribute before)."""
    if builder.opset >= 18:
        return builder.op("ReduceMean", [name, builder.constant(np.array(axes, np.int64), "axes")], keepdims=1)
    return builder.op("ReduceMean", [name], axes=list(axes), keepdims=1)


def _standardize(builder, name, axes, epsilon, centre=True):
    """(x - mean) / sqrt(variance + epsilon) over `axes` (with centre=False: x / sqrt(variance +
    epsilon), LayerNormalization's rms_scaling)."""
    deviation = builder.op("Sub", [name, _reduce_mean(builder, name, axes)])
    variance = _reduce_mean(builder, builder.op("Mul", [deviation, deviation]), axes)
    standard_deviation = builder.op("Sqrt", [builder.op("Add", [variance, builder.constant(np.float32(epsilon))])])
    return builder.op("Div", [deviation if centre else name, standard_deviation])


def _affine(builder, name, gamma, beta):
    """name * gamma + beta (either may be None), constants already shaped for the layout."""
    if gamma is not None:
        name = builder.op("Mul", [name, gamma])
    if beta is not None:
        name = builder.op("Add", [name, beta])
    return name


def _layer_normalization(builder, layer, tensor):
    """Keras's LayerNormalization over its axes; gamma and beta shaped as the normalized axes."""
    config = layer.get_config()
    keras_axes = layer._normalized_axes((None,) + tensor.shape)
    shape = _broadcast_shape(tensor, keras_axes)
    name = _standardize(builder, tensor.name, _onnx_axes(tensor, keras_axes), config["epsilon"],
                        centre=not config["rms_scaling"])
    gamma = None if layer.gamma is None else _sample_constant(builder, np.reshape(layer.gamma.numpy(), shape), tensor,
                                                              "gamma")
    beta = None if layer.beta is None else _sample_constant(builder, np.reshape(layer.beta.numpy(), shape), tensor,
                                                            "beta")
    return _affine(builder, name, gamma, beta)


def _group_normalization(builder, layer, tensor):
    """Keras's GroupNormalization: the channels in `groups` contiguous groups, each normalized over
    its channels and the whole image: (N, C, ...) reshaped to (N, groups, rest) and back."""
    config = layer.get_config()
    channels = tensor.shape[-1]
    grouped = builder.op("Reshape", [tensor.name, builder.constant(np.array([0, config["groups"], -1], np.int64),
                                                                   "groups")])
    name = _standardize(builder, grouped, [2], config["epsilon"])
    layout_shape = (0, channels, *tensor.shape[:-1]) if tensor.layout == "nchw" else (0, channels)
    name = builder.op("Reshape", [name, builder.constant(np.array(layout_shape, np.int64), "shape")])
    gamma = None if layer.gamma is None else _channel_constant(builder, layer.gamma.numpy(), tensor)
    beta = None if layer.beta is None else _channel_constant(builder, layer.beta.numpy(), tensor)
    return _affine(builder, name, gamma, beta)


def _normalization(builder, layer, tensor):
    """Keras's Normalization: (x - mean) / max(sqrt(variance), 1e-7), or with invert=True
    mean + x * max(sqrt(variance), 1e-7), the statistics per position of the kept axes."""
    keep = layer._keep_axes((None,) + tensor.shape)
    if layer._constants is not None:
        mean, variance = layer._constants
    else:
        mean, variance = layer.mean.numpy(), layer.variance.numpy()
    shape = _broadcast_shape(tensor, keep)
    mean = np.reshape(np.asarray(mean, np.float32), shape)
    deviation = np.maximum(np.sqrt(np.reshape(np.asarray(variance, np.float32), shape)), np.float32(1e-7))
    mean, deviation = _sample_constant(builder, mean, tensor, "mean"), _sample_constant(builder, deviation, tensor,
                                                                                        "deviation")
    if layer.invert:
        return builder.op("Add", [builder.op("Mul", [tensor.name, deviation]), mean])
    return builder.op("Div", [builder.op("Sub", [tensor.name, mean]), deviation])


def _nearest_indices(size, target):
    """The source index of each of `target` positions when fastcnn resizes `size` positions by
    nearest neighbour: its own kernel run on the positions' indices (exact in float32)."""
    from fastcnn import _core

    positions = np.arange(size, dtype=np.float32).reshape(1, size, 1, 1)
    return _core.ops.resize(positions, (target, 1), "nearest").reshape(target).astype(np.int64)


def _window_resize(builder, tensor, layer, kind, config):
    """Resizing, CenterCrop and RandomCrop in inference: the runtime's window of the input (cropped
    with Slice, or padded with the fill value where Resizing pads to the aspect ratio), resized to
    the target as tf.image.resize (Resize with half-pixel centres for bilinear; Gather of the
    runtime's own source indices for nearest)."""
    from fastcnn import _core

    height, width, _ = tensor.shape
    target = (int(config["height"]), int(config["width"]))
    aspect = layer._aspect_mode() if kind == "Resizing" else "stretch"
    top, left, window_height, window_width = _core.resize_inference_window(kind, height, width, *target, aspect)
    bottom, right = top + window_height, left + window_width
    name = tensor.name
    if top < 0 or left < 0 or bottom > height or right > width:
        pads = [0, 0, max(-top, 0), max(-left, 0), 0, 0, max(bottom - height, 0), max(right - width, 0)]
        name = builder.op("Pad", [name, builder.constant(np.array(pads, np.int64), "pads"),
                                  builder.constant(np.float32(config.get("fill_value", 0.0)), "fill")],
                          mode="constant")
    elif (top, left, bottom, right) != (0, 0, height, width):
        name = builder.op("Slice", [name, builder.constant(np.array([top, left], np.int64), "starts"),
                                    builder.constant(np.array([bottom, right], np.int64), "ends"),
                                    builder.constant(np.array([2, 3], np.int64), "axes")])
    if (window_height, window_width) == target:
        return name
    if config.get("interpolation", "bilinear") == "nearest":
        name = builder.op("Gather", [name, builder.constant(_nearest_indices(window_height, target[0]), "rows")],
                          axis=2)
        return builder.op("Gather", [name, builder.constant(_nearest_indices(window_width, target[1]), "columns")],
                          axis=3)
    batch_and_channels = builder.op("Slice", [builder.op("Shape", [name]),
                                              builder.constant(np.array([0], np.int64), "starts"),
                                              builder.constant(np.array([2], np.int64), "ends")])
    sizes = builder.op("Concat", [batch_and_channels, builder.constant(np.array(target, np.int64), "size")], axis=0)
    return builder.op("Resize", [name, "", "", sizes], mode="linear", coordinate_transformation_mode="half_pixel")


def _pool(builder, tensor, config, op_type):
    pool, strides = tuple(config["pool_size"]), tuple(config["strides"] or config["pool_size"])
    height, width, _ = tensor.shape
    if config["padding"] == "same":
        (top, bottom), (left, right) = _same_pads(height, pool[0], strides[0], 1), _same_pads(width, pool[1],
                                                                                               strides[1], 1)
    else:
        top = bottom = left = right = 0
    extra = {"count_include_pad": 0} if op_type == "AveragePool" else {}
    return builder.op(op_type, [tensor.name], kernel_shape=list(pool), strides=list(strides),
                      pads=[top, left, bottom, right], **extra)


def _convert_layer(builder, layer, inputs, folded, consumed_by_fold):
    """The ONNX tensor of one layer call."""
    kind = _kind(layer)
    config = layer.get_config()
    tensor = inputs[0]
    output_shape = tuple(layer.output_shape[1:]) if not isinstance(layer.output_shape, list) else None
    if kind in _IDENTITY_IN_INFERENCE:
        return tensor
    if getattr(layer, "_is_operation", False):  # x + 3.0, x * y, -x, ...: not merge layers
        if layer.of_two_tensors:
            if inputs[0].layout != inputs[1].layout:
                raise ValueError(f"ONNX export: operation {layer.name!r} combines images with flat tensors")
            op_type = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "TrueDivide": "Div"}[kind]
            return _Tensor(builder.op(op_type, [t.name for t in inputs]), tensor.layout, output_shape)
        scale, offset = layer.scale_and_offset()
        scaled = builder.op("Mul", [tensor.name, builder.constant(np.float32(scale))])
        return _Tensor(builder.op("Add", [scaled, builder.constant(np.float32(offset))]), tensor.layout, output_shape)
    if kind in _CONVOLUTIONS:
        name, shape = _conv(builder, tensor, layer, config, folded.get(id(layer)))
        return _Tensor(_activation(builder, name, _activation_name(config.get("activation")), "nchw"), "nchw", shape)
    if kind == "PReLU":
        alpha = np.asarray(layer.get_weights()[0], np.float32)
        slope = alpha.transpose(2, 0, 1)[None] if tensor.layout == "nchw" else alpha[None]
        return _Tensor(builder.op("PRelu", [tensor.name, builder.constant(slope, "alpha")]), tensor.layout, output_shape)
    if kind == "Cropping2D":
        (top, bottom), (left, right) = config["cropping"]
        height, width, _ = tensor.shape
        starts = builder.constant(np.array([top, left], np.int64), "starts")
        ends = builder.constant(np.array([height - bottom, width - right], np.int64), "ends")
        axes = builder.constant(np.array([2, 3], np.int64), "axes")
        return _Tensor(builder.op("Slice", [tensor.name, starts, ends, axes]), "nchw", output_shape)
    if kind == "UpSampling2D":
        scales = builder.constant(np.array([1, 1, *config["size"]], np.float32), "scales")
        if config["interpolation"] == "nearest":
            name = builder.op("Resize", [tensor.name, "", scales], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        else:
            name = builder.op("Resize", [tensor.name, "", scales], mode="linear",
                              coordinate_transformation_mode="half_pixel")
        return _Tensor(name, "nchw", output_shape)
    if kind == "BatchNormalization":
        if consumed_by_fold:
            return tensor  # folded into the convolution before it
        scale, shift = _batch_norm_affine(layer, config)
        scaled = builder.op("Mul", [tensor.name, _channel_constant(builder, scale, tensor)])
        return _Tensor(builder.op("Add", [scaled, _channel_constant(builder, shift, tensor)]), tensor.layout,
                       output_shape)
    if kind in ("Resizing", "CenterCrop", "RandomCrop"):
        return _Tensor(_window_resize(builder, tensor, layer, kind, config), "nchw", output_shape)
    if kind == "LayerNormalization":
        return _Tensor(_layer_normalization(builder, layer, tensor), tensor.layout, output_shape)
    if kind == "GroupNormalization":
        return _Tensor(_group_normalization(builder, layer, tensor), tensor.layout, output_shape)
    if kind == "Normalization":
        return _Tensor(_normalization(builder, layer, tensor), tensor.layout, output_shape)
    if kind == "LayerScale":  # ConvNeXt's per-channel scale
        return _Tensor(builder.op("Mul", [tensor.name, _channel_constant(builder, layer.gamma.numpy(), tensor)]),
                       tensor.layout, output_shape)
    if kind == "Dense":
        kernel, *bias = [np.asarray(w, np.float32) for w in layer.get_weights()]
        source = _nhwc(builder, tensor)
        name = builder.op("MatMul", [source, builder.constant(kernel, "kernel")])
        if bias:
            name = builder.op("Add", [name, builder.constant(bias[0], "bias")])
        layout = "flat" if len(output_shape) == 1 else "nhwc"
        name = _activation(builder, name, _activation_name(config.get("activation")), "flat")
        return _from_nhwc(builder, name, output_shape) if layout == "nhwc" else _Tensor(name, "flat", output_shape)
    if kind == "Activation":
        activation = _activation_name(config["activation"])
        return _Tensor(_activation(builder, tensor.name, activation, tensor.layout), tensor.layout, output_shape)
    if kind in ("ReLU", "LeakyReLU", "ELU", "Softmax"):
        if kind == "ELU":
            return _Tensor(builder.op("Elu", [tensor.name], alpha=float(config["alpha"])), tensor.layout, output_shape)
        if kind == "Softmax":
            if config.get("axis", -1) != -1:
                raise ValueError(f"ONNX export supports Softmax over the last axis. Layer {layer.name!r} has "
                                 f"axis={config['axis']}")
            return _Tensor(_activation(builder, tensor.name, "softmax", tensor.layout), tensor.layout, output_shape)
        slope = float(config.get("negative_slope", 0.0) or 0.0)
        if float(config.get("threshold", 0.0) or 0.0) != 0.0:
            raise ValueError(f"ONNX export does not support ReLU with a threshold (layer {layer.name!r})")
        name = builder.op("LeakyRelu", [tensor.name], alpha=slope) if slope else builder.op("Relu", [tensor.name])
        if config.get("max_value") is not None:
            name = builder.op("Min", [name, builder.constant(np.float32(config["max_value"]))])
        return _Tensor(name, tensor.layout, output_shape)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        name = _pool(builder, tensor, config, "MaxPool" if kind == "MaxPooling2D" else "AveragePool")
        return _Tensor(name, "nchw", output_shape)
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        name = builder.op("GlobalAveragePool" if kind == "GlobalAveragePooling2D" else "GlobalMaxPool", [tensor.name])
        if config.get("keepdims"):
            return _Tensor(name, "nchw", output_shape)
        return _Tensor(builder.op("Flatten", [name], axis=1), "flat", output_shape)
    if kind == "Flatten":
        return _Tensor(builder.op("Flatten", [_nhwc(builder, tensor)], axis=1), "flat", output_shape)
    if kind == "Reshape":
        shape = builder.constant(np.array((-1,) + output_shape, np.int64), "shape")
        return _from_nhwc(builder, builder.op("Reshape", [_nhwc(builder, tensor), shape]), output_shape)
    if kind == "Rescaling":
        scaled = builder.op("Mul", [tensor.name, _channel_constant(builder, np.broadcast_to(
            np.asarray(config["scale"], np.float32), (output_shape[-1],)), tensor)])
        return _Tensor(builder.op("Add", [scaled, _channel_constant(builder, np.broadcast_to(
            np.asarray(config["offset"], np.float32), (output_shape[-1],)), tensor)]), tensor.layout, output_shape)
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = config["padding"]
        pads = builder.constant(np.array([0, 0, top, left, 0, 0, bottom, right], np.int64), "pads")
        return _Tensor(builder.op("Pad", [tensor.name, pads]), "nchw", output_shape)
    if kind in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        if len({t.layout for t in inputs}) > 1:
            raise ValueError(f"ONNX export: layer {layer.name!r} merges images with flat tensors")
        op_type = {"Add": "Sum", "Subtract": "Sub", "Multiply": "Mul", "Average": "Mean", "Maximum": "Max",
                   "Minimum": "Min"}[kind]
        names = [t.name for t in inputs]
        if op_type in ("Sub", "Mul") and len(names) > 2:
            name = names[0]
            for other in names[1:]:
                name = builder.op(op_type, [name, other])
        else:
            name = builder.op(op_type, names)
        return _Tensor(name, tensor.layout, output_shape)
    if kind == "Concatenate":
        axis = config["axis"] % (len(tensor.shape) + 1)
        onnx_axis = {1: 2, 2: 3, 3: 1}[axis] if tensor.layout == "nchw" else 1
        return _Tensor(builder.op("Concat", [t.name for t in inputs], axis=onnx_axis), tensor.layout, output_shape)
    raise ValueError(f"ONNX export does not support layer {layer.name!r} ({type(layer).__name__}): it knows "
                     "fastcnn's built-in layers and their subclasses.")


def export_onnx(model, filepath, opset_version=None, verbose=None):
    """Writes `model` to `filepath` as an ONNX model (inputs and outputs named as the model's)."""
    onnx = _onnx()
    opset = 18 if opset_version is None else int(opset_version)
    if opset < 14:
        raise ValueError(f"ONNX export needs opset 14 or later. Received: opset_version={opset_version}")
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built: call it on data (or give it an Input) before export.")
    recorder = _Recorder()
    shapes = [tuple(shape) for shape in model._input_sample_shapes]
    outputs = recorder.emit(model, [-1 - index for index in range(len(shapes))])
    builder = _Builder(onnx, opset)
    graph_inputs, tensors = [], {}
    for index, shape in enumerate(shapes):
        name = f"input_{index}" if len(shapes) > 1 else "input"
        graph_inputs.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", *shape]))
        tensors[-1 - index] = _from_nhwc(builder, name, shape)
    consumers = {}
    for call, (_, input_ids) in enumerate(recorder.calls):
        for tensor_id in input_ids:
            consumers.setdefault(tensor_id, []).append(call)
    # BatchNormalization folded into the convolution it follows (no activation between, no other reader).
    folded, folding_norms = {}, set()
    for call, (layer, input_ids) in enumerate(recorder.calls):
        if _kind(layer) != "BatchNormalization" or input_ids[0] < 0:
            continue
        source_layer = recorder.calls[input_ids[0]][0]
        source_config = source_layer.get_config()
        if _kind(source_layer) in _CONVOLUTIONS \
                and _activation_name(source_config.get("activation")) in (None, "linear") \
                and consumers.get(input_ids[0]) == [call] and id(source_layer) not in folded \
                and len([c for c in recorder.calls if c[0] is source_layer]) == 1:
            folded[id(source_layer)] = _batch_norm_affine(layer, layer.get_config())
            folding_norms.add(call)
    for call, (layer, input_ids) in enumerate(recorder.calls):
        tensors[call] = _convert_layer(builder, layer, [tensors[i] for i in input_ids], folded, call in folding_norms)
    graph_outputs = []
    names = getattr(model, "output_names", None) or ["output"]
    for index, tensor_id in enumerate(outputs):
        tensor = tensors[tensor_id]
        name = names[index] if index < len(names) else f"output_{index}"
        builder.nodes.append(onnx.helper.make_node("Identity", [_nhwc(builder, tensor)], [name]))
        graph_outputs.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                                ["batch", *tensor.shape]))
    graph = onnx.helper.make_graph(builder.nodes, model.name, graph_inputs, graph_outputs, builder.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="fastcnn")
    proto.ir_version = min(proto.ir_version, 10)  # readable by ONNX Runtime releases of the last two years
    onnx.checker.check_model(proto)
    onnx.save(proto, filepath)
    if verbose:
        print(f"Saved the model to {filepath} (ONNX opset {opset}, {len(builder.nodes)} nodes)")
    return filepath
