"""Activations by Keras name. The compute runs fused inside the C++ kernels; these functions on
numpy arrays exist so that ``activation=fastcnn.activations.relu`` works as it does in Keras, and
for checks (the newer ones call the C++ kernels themselves, so they are the layers' exact values)."""

import math

import numpy as np

from fastcnn import _core

SUPPORTED = ("linear", "relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid", "tanh",
             "softplus", "swish", "silu", "gelu", "softmax", "hard_silu", "hard_swish", "mish", "log_softmax",
             "exponential", "softsign")
# Keras 3's aliases: the name its configs write for each.
_CANONICAL = {"swish": "silu", "hard_swish": "hard_silu"}


def linear(x):
    return np.asarray(x)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's relu: clip(x > threshold ? x : 0, 0, max_value) - negative_slope * relu(threshold - x)."""
    x = np.asarray(x)
    if negative_slope != 0.0 and max_value is None and threshold == 0:
        return leaky_relu(x, negative_slope)
    positive = np.where(x > threshold, x, 0) if threshold != 0 else np.maximum(x, 0)
    if max_value is not None:
        positive = np.clip(positive, 0, max_value)
    if negative_slope != 0.0:
        positive = positive - negative_slope * np.maximum(threshold - x, 0)
    return positive


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x)))


def tanh(x):
    return np.tanh(x)


def softmax(x, axis=-1):
    x = np.asarray(x)
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


def relu6(x):
    return np.clip(x, 0, 6)


def leaky_relu(x, negative_slope=0.2):
    x = np.asarray(x)
    return np.where(x > 0, x, negative_slope * x)


def elu(x, alpha=1.0):
    x = np.asarray(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def selu(x):
    x = np.asarray(x)
    return 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0)))


def hard_sigmoid(x):
    return np.clip(np.asarray(x) / 6.0 + 0.5, 0.0, 1.0)


def softplus(x):
    x = np.asarray(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def swish(x):
    x = np.asarray(x)
    return x * sigmoid(x)


silu = swish


def gelu(x, approximate=False):
    if approximate:
        raise ValueError("fastcnn implements the exact gelu (approximate=False) only.")
    x = np.asarray(x, dtype=np.float64)
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _kernel(name, x):
    """The C++ activation kernel over the last axis of a float32 copy of x."""
    return _core.ops.activation_forward(name, np.asarray(x, dtype=np.float32))


def hard_silu(x):
    """x * relu6(x + 3) / 6."""
    return _kernel("hard_silu", x)


hard_swish = hard_silu


def mish(x):
    """x * tanh(softplus(x))."""
    return _kernel("mish", x)


def log_softmax(x, axis=-1):
    """x - log(sum(exp(x))) along `axis` (shifted by the maximum, as TensorFlow)."""
    moved = np.moveaxis(np.asarray(x, dtype=np.float32), axis, -1)
    return np.moveaxis(_kernel("log_softmax", np.ascontiguousarray(moved)), -1, axis)


def exponential(x):
    return _kernel("exponential", x)


def softsign(x):
    """x / (1 + |x|)."""
    return _kernel("softsign", x)


_FUNCTIONS = {"linear": linear, "relu": relu, "relu6": relu6, "leaky_relu": leaky_relu, "elu": elu,
              "selu": selu, "sigmoid": sigmoid, "hard_sigmoid": hard_sigmoid, "tanh": tanh,
              "softplus": softplus, "swish": swish, "silu": silu, "gelu": gelu, "softmax": softmax,
              "hard_silu": hard_silu, "hard_swish": hard_swish, "mish": mish, "log_softmax": log_softmax,
              "exponential": exponential, "softsign": softsign}


def get(identifier):
    """Returns the canonical name of an activation given as a name, one of these functions, or None.
    Keras 3's swish is silu and its hard_swish hard_silu, and its configs name them "silu" and
    "hard_silu"; so does this."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        if identifier in _FUNCTIONS:
            return _CANONICAL.get(identifier, identifier)
        raise ValueError(
            f"Could not interpret activation function identifier: {identifier!r}. "
            f"Supported: {', '.join(SUPPORTED)}."
        )
    for name, function in _FUNCTIONS.items():
        if identifier is function:
            return _CANONICAL.get(name, name)
    name = getattr(identifier, "__name__", None)
    if callable(identifier) and name in _FUNCTIONS:
        # keras.activations.relu, tf.nn.relu and friends: same math, matched by name.
        return _CANONICAL.get(name, name)
    raise ValueError(
        f"Could not interpret activation function identifier: {identifier!r}. fastcnn runs "
        f"activations inside its C++ kernels; use one of: {', '.join(SUPPORTED)}."
    )


def serialize(name):
    return name


def deserialize(name):
    return _FUNCTIONS[get(name)]
