"""``keras.ops`` for the array functions scripts call outside models, on numpy: the results (values,
shapes and dtypes) Keras's ops give on the same inputs, as numpy arrays. Models never call these:
their compute is the C++ runtime's. ``fastcnn.ops.image`` has resize, crop_images and pad_images.

A name Keras has and this module does not raises an AttributeError naming it."""

import numpy as np

from fastcnn.ops import image  # noqa: F401

_FLOAT = np.float32


def convert_to_numpy(x):
    """x as a numpy array."""
    return np.asarray(x)


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """x as an array: numpy arrays keep their dtype; Python numbers and lists become float32 or
    int32, as Keras infers them; `dtype` casts."""
    if sparse or ragged:
        raise ValueError(f"fastcnn's arrays are dense numpy arrays. Received: sparse={sparse!r}, ragged={ragged!r}")
    if dtype is not None:
        return np.asarray(x, dtype=dtype)
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        return np.asarray(x)
    array = np.asarray(x)
    if array.dtype == np.float64:
        return array.astype(_FLOAT)
    if array.dtype == np.int64:
        return array.astype(np.int32)
    return array


def _float(x):
    array = np.asarray(x)
    return array if array.dtype.kind == "f" else array.astype(_FLOAT)


def cast(x, dtype):
    return np.asarray(x).astype(dtype)


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """One-hot rows of the integer labels x (negative or too large labels give all-zero rows, as Keras)."""
    if sparse:
        raise ValueError("fastcnn's one_hot returns dense arrays. Received: sparse=True")
    labels = np.asarray(x)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot needs integer labels. Received dtype {labels.dtype}")
    result = (labels[..., None] == np.arange(num_classes)).astype(dtype or _FLOAT)
    return np.moveaxis(result, -1, axis) if axis != -1 else result


def sigmoid(x):
    x = _float(x)
    return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype)


def softmax(x, axis=-1):
    x = _float(x)
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return (shifted / np.sum(shifted, axis=axis, keepdims=True)).astype(x.dtype)


def argmax(x, axis=None, keepdims=False):
    return np.asarray(np.argmax(np.asarray(x), axis=axis, keepdims=keepdims), dtype=np.int32)


def expand_dims(x, axis):
    return np.expand_dims(np.asarray(x), axis)


def squeeze(x, axis=None):
    return np.squeeze(np.asarray(x), axis=axis)


def stack(x, axis=0):
    return np.stack([np.asarray(item) for item in x], axis=axis)


def concatenate(xs, axis=0):
    return np.concatenate([np.asarray(item) for item in xs], axis=axis)


def clip(x, x_min, x_max):
    return np.clip(np.asarray(x), x_min, x_max)


def mean(x, axis=None, keepdims=False):
    """The mean; integer and boolean inputs give float32, as in Keras."""
    array = np.asarray(x)
    return np.asarray(np.mean(_float(array), axis=axis, keepdims=keepdims), dtype=_float(array).dtype)


def sum(x, axis=None, keepdims=False):  # noqa: A001 (Keras's name)
    array = np.asarray(x)
    return np.asarray(np.sum(array, axis=axis, keepdims=keepdims, dtype=np.int32 if array.dtype == np.bool_ else None))


def max(x, axis=None, keepdims=False, initial=None):  # noqa: A001 (Keras's name)
    array = np.asarray(x)
    if initial is None:
        return np.asarray(np.max(array, axis=axis, keepdims=keepdims))
    return np.asarray(np.max(array, axis=axis, keepdims=keepdims, initial=initial))


def __getattr__(name):
    raise AttributeError(f"fastcnn.ops has no {name!r}: it provides Keras's convert_to_numpy, convert_to_tensor, "
                         "cast, one_hot, sigmoid, softmax, argmax, expand_dims, squeeze, stack, concatenate, clip, "
                         "mean, sum, max and image.resize/crop_images/pad_images (models compute in fastcnn's C++ "
                         "runtime, not through ops)")
