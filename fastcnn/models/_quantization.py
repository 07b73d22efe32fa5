"""Post-training int8 quantization for CPU inference (`Model.quantize("int8", calibration_data=x)`).

What it does (details and figures: docs/deployment.md):

- Conv2D (groups=1, any kernel size, stride, dilation and padding), DepthwiseConv2D (any
  depth_multiplier, stride, dilation and padding) and Dense layers get int8 weights, symmetric per
  output channel: scale[c] = max|kernel[..., c]| / 127, w_q = round(w / scale[c]). Where a
  BatchNormalization follows such a layer without activation between (the ResNet and MobileNet
  pattern), the kernel and bias quantized are the ones with that BatchNormalization folded in, as
  float32 inference computes them (the BatchNormalization then costs nothing).
- Their inputs are quantized per tensor with a static scale calibrated on `calibration_data`:
  scale = max|x| / 127 over every value that layer's input took on those samples, x_q = clamp(
  round(x / scale), -127, 127). Zero maps to zero, so zero padding stays exact.
- Products are summed exactly in int32; the epilogue computes act(sum * input_scale * scale[c] +
  bias[c]) in float32. Every other layer (pooling, a BatchNormalization not folded, SeparableConv2D,
  ...) keeps running in float32.

Keras 3's own `Model.quantize("int8")` quantizes Dense weights (and EinsumDense, Embedding) and
quantizes activations dynamically (per row, at run time); Keras 3.15 leaves Conv2D and
DepthwiseConv2D in float, and fastcnn quantizes both as an extension. fastcnn keeps Keras's method name and mode string but
calibrates activation scales statically, so it needs `calibration_data`: a batch of typical inputs
(a few hundred samples is plenty). A quantized model runs inference only (predict, evaluate,
calling it); fit, saving, exporting and set_weights / load_weights raise, since the int8 weights
are taken from the float weights once, when quantize() runs.
"""

import re

import numpy as np

from fastcnn import _core

# Keras 3.15's quantization modes (keras.dtype_policies.QUANTIZATION_MODES); fastcnn implements "int8".
KERAS_MODES = ("int8", "float8", "int4", "gptq", "awq")


class QuantizationState:
    """A model's int8 quantization: the network it applies to, and per quantized node its input
    scale and per-channel weight scales."""

    def __init__(self, network, input_scales, weight_scales):
        self.network = network
        self.input_scales = input_scales  # {node: float}
        self.weight_scales = weight_scales  # {node: np.ndarray}


def quantizable(layer):
    """Whether `layer` runs in int8 after quantization: Dense, Conv2D with groups=1, and
    DepthwiseConv2D (not SeparableConv2D, which stays float32)."""
    from fastcnn.layers.conv2d import Conv2D, DepthwiseConv2D  # noqa: PLC0415 (layers import this package lazily)
    from fastcnn.layers.dense import Dense  # noqa: PLC0415

    return (type(layer) is Conv2D and layer.groups == 1) or type(layer) in (Dense, DepthwiseConv2D)


def state(model):
    """The model's QuantizationState, or None when it is not quantized (or was rebuilt since)."""
    current = getattr(model, "_quantization", None)
    if current is not None and current.network is not model._network:
        model._quantization = current = None  # rebuilt (a layer added or removed): float32 again
    return current


def refuse_if_quantized(model, what):
    """Raises for operations an int8-quantized model does not support."""
    if state(model) is not None:
        raise NotImplementedError(
            f"Model {model.name!r} is quantized to int8 (model.quantize), which fastcnn runs for inference only: "
            f"{what} is not supported on it. Do it on the float32 model (before quantize, or on a copy rebuilt "
            "from its saved file), then quantize again.")


def _node_arguments(layer):
    if type(layer).__name__ == "Dense":
        return ("dense", layer.units, (1, 1), (1, 1), (1, 1), "valid", layer.use_bias, layer.activation)
    if type(layer).__name__ == "DepthwiseConv2D":
        return ("depthwise", layer.depth_multiplier, layer.kernel_size, layer.strides, layer.dilation_rate,
                layer.padding, layer.use_bias, layer.activation)
    return ("conv2d", layer.filters, layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding,
            layer.use_bias, layer.activation)


def _selected(layer, filters):
    """Keras's layer filter (keras.quantizers.utils.should_quantize_layer): a regex searched in the
    layer's name, a list of them (any), or a callable on the layer."""
    if filters is None:
        return True
    if isinstance(filters, str):
        return bool(re.search(filters, layer.name))
    if isinstance(filters, (list, tuple)):
        return any(re.search(pattern, layer.name) for pattern in filters)
    return bool(filters(layer))


def quantize_model(model, mode, config, filters, calibration_data, kwargs):
    kwargs.pop("type_check", None)  # Keras's: fastcnn checks the layer types itself
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments passed to {type(model).__name__}: {kwargs}")
    if mode not in KERAS_MODES:
        raise ValueError(f"Invalid quantization mode. Expected one of {KERAS_MODES}. Received: mode={mode}")
    if mode != "int8":
        raise NotImplementedError(f"fastcnn implements quantization mode 'int8' only. Received: mode={mode}")
    if config is not None:
        raise NotImplementedError("fastcnn's int8 quantization has one configuration (per-channel weights, "
                                  "activation scales calibrated on `calibration_data`) and takes no `config`. "
                                  f"Received: config={config!r}")
    if filters is not None and not isinstance(filters, (str, list, tuple)) and not callable(filters):
        raise ValueError("The `filters` argument must be a regex string, a list of regex strings, or a callable. "
                         f"Received: {type(filters)}")
    if not model.built or model._network is None:
        raise ValueError(f"Cannot quantize a model that isn't yet built. Model '{model.name}' (of type "
                         f"'{type(model).__name__}') is not built yet: give it an Input, call it on data or fit it.")
    if state(model) is not None:
        raise ValueError(f"Model '{model.name}' is already quantized with mode 'int8'. Received: mode={mode}")
    if calibration_data is None:
        raise ValueError("fastcnn calibrates int8 activation scales statically: pass `calibration_data`, a batch "
                         "of typical inputs (e.g. a few hundred training samples), as in "
                         "model.quantize('int8', calibration_data=x_train[:500]). Received: calibration_data=None")
    x = model._prepare_x(calibration_data, name="calibration_data")
    samples = (x[0] if isinstance(x, list) else x).shape[0]
    if samples == 0:
        raise ValueError("`calibration_data` must hold at least one sample. Received: 0 samples")
    nodes = [node for node, layer in enumerate(model._node_layers)
             if quantizable(layer) and _selected(layer, filters)]
    if not nodes:
        raise ValueError(f"Model '{model.name}' has no layer fastcnn quantizes (Conv2D with groups=1, "
                         "DepthwiseConv2D, Dense)"
                         + ("" if filters is None else f" that matches filters={filters!r}") + ".")
    with model._lock:
        model._use_own_weights()
        network = model._network
        for layer in (model._node_layers[node] for node in nodes):
            finite = all(np.isfinite(np.asarray(weight)).all() for weight in layer.get_weights())
            if not finite:
                raise ValueError(f"Cannot quantize layer {layer.name!r}: its weights hold a non-finite value.")
        replaced = []
        try:
            # Until it has an input scale each int8 node computes in float32, as the layer it replaces,
            # recording its largest |input|: one inference pass over the calibration data measures them all.
            for node in nodes:
                _core.quantize_int8_node(network, node, *_node_arguments(model._node_layers[node]))
                replaced.append(node)
            network.predict(x)
            maxima = {node: _core.int8_node_state(network, node)[0] for node in nodes}
            for node, maximum in maxima.items():
                if not np.isfinite(maximum):
                    raise ValueError(f"Layer {model._node_layers[node].name!r} received a non-finite value from "
                                     "`calibration_data`: calibration needs finite activations.")
        except BaseException:
            for node in replaced:  # the model stays the float32 one it was
                _core.restore_float_node(network, node, *_node_arguments(model._node_layers[node]))
            raise
        input_scales, weight_scales = {}, {}
        for node in nodes:
            # A layer whose input was zero throughout: any scale represents it; 1 keeps it finite.
            scale = float(maxima[node]) / 127.0 if maxima[node] > 0 else 1.0
            _core.set_int8_input_scale(network, node, scale)
            input_scales[node] = scale
            weight_scales[node] = np.asarray(_core.int8_node_state(network, node)[2], dtype=np.float32)
        model._quantization = QuantizationState(network, input_scales, weight_scales)
