"""Utilities with Keras's names: ``set_random_seed`` and ``to_categorical``."""

import numbers

import numpy as np

from fastcnn import _random


def set_random_seed(seed):
    """Seeds weight initialisation, shuffling and dropout, as ``keras.utils.set_random_seed``."""
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise ValueError(f"Expected `seed` argument to be an integer. Received: seed={seed!r}")
    if seed < 0:
        raise ValueError(f"`seed` must be non-negative. Received: seed={seed}")
    _random.set_seed(int(seed))
    np.random.seed(int(seed) % 2**32)


def to_categorical(x, num_classes=None):
    """One-hot encodes integer class labels: shape (n,) -> (n, num_classes) float32."""
    labels = np.asarray(x)
    if labels.dtype.kind not in "iub" and not (
        labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
    ):
        raise ValueError(f"`x` must hold integer class labels. Received: dtype={labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if labels.size and labels.min() < 0:
        raise ValueError(f"class labels must be >= 0. Received a label of {labels.min()}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"class label {labels.max()} is outside [0, {num_classes}). Received: num_classes={num_classes}"
        )
    result = np.zeros(labels.shape + (num_classes,), dtype=np.float32)
    np.put_along_axis(result, labels[..., None], 1.0, axis=-1)
    return result
