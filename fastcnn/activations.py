"""Activations by Keras name. The compute runs fused inside the C++ kernels; these numpy functions
exist so that ``activation=fastcnn.activations.relu`` works as it does in Keras, and for checks."""

import numpy as np

SUPPORTED = ("linear", "relu", "sigmoid", "tanh", "softmax")


def linear(x):
    return np.asarray(x)


def relu(x):
    return np.maximum(x, 0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x)))


def tanh(x):
    return np.tanh(x)


def softmax(x, axis=-1):
    x = np.asarray(x)
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


_FUNCTIONS = {"linear": linear, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax}


def get(identifier):
    """Returns the canonical name of an activation given as a name, one of these functions, or None."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        if identifier in _FUNCTIONS:
            return identifier
        raise ValueError(
            f"Could not interpret activation function identifier: {identifier!r}. "
            f"Supported: {', '.join(SUPPORTED)}."
        )
    for name, function in _FUNCTIONS.items():
        if identifier is function:
            return name
    name = getattr(identifier, "__name__", None)
    if callable(identifier) and name in _FUNCTIONS:
        # keras.activations.relu, tf.nn.relu and friends: same math, matched by name.
        return name
    raise ValueError(
        f"Could not interpret activation function identifier: {identifier!r}. fastcnn runs "
        f"activations inside its C++ kernels; use one of: {', '.join(SUPPORTED)}."
    )


def serialize(name):
    return name


def deserialize(name):
    return _FUNCTIONS[get(name)]
