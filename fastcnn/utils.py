"""Utilities with Keras's names: ``set_random_seed``, ``to_categorical``, ``normalize``,
``image_dataset_from_directory``, ``split_dataset``, ``load_img``, ``img_to_array``,
``array_to_img``, ``save_img``, ``get_file``, ``PyDataset`` (alias ``Sequence``), and ``plot_history``.

Pillow (for images) and matplotlib (for plots) are optional and imported only when those
functions run: ``pip install fastcnn[images]`` / ``pip install fastcnn[plot]``.
"""

import numbers

import numpy as np

from fastcnn import _naming, _random
from fastcnn._image_dataset import ImageDataset, image_dataset_from_directory  # noqa: F401
from fastcnn._get_file import get_file  # noqa: F401
from fastcnn._image_utils import array_to_img, img_to_array, load_img, save_img  # noqa: F401
from fastcnn._plot import plot_history  # noqa: F401
from fastcnn._py_dataset import PyDataset, Sequence  # noqa: F401
from fastcnn.data._split import split_dataset  # noqa: F401


def set_random_seed(seed):
    """Seeds weight initialisation, shuffling and dropout, as ``keras.utils.set_random_seed``."""
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise ValueError(f"Expected `seed` argument to be an integer. Received: seed={seed!r}")
    if seed < 0:
        raise ValueError(f"`seed` must be non-negative. Received: seed={seed}")
    _random.set_seed(int(seed))
    np.random.seed(int(seed) % 2**32)


def clear_session(free_memory=True):
    """Keras's clear_session: automatic names start afresh (the next Conv2D is `conv2d`, the next
    Precision `precision`). fastcnn keeps no global graph or session state besides the names."""
    _naming.reset()


def to_categorical(x, num_classes=None):
    """One-hot encodes integer class labels, as ``keras.utils.to_categorical``: shape (n,) or
    (n, 1) -> (n, num_classes); a scalar -> (num_classes,). The values are Keras's; the dtype is
    float32, the one fit computes in (Keras's numpy result is float64, twice the memory).
    `num_classes` None (or 0, as in Keras) means ``max(x) + 1``. Unlike Keras, which truncates
    fractional labels and wraps negative ones, such labels raise a ValueError."""
    labels = np.asarray(x)
    if labels.dtype.kind not in "iub" and not (
        labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
    ):
        raise ValueError(f"`x` must hold integer class labels. Received: dtype={labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    scalar = labels.ndim == 0  # Keras one-hot encodes a scalar label as a (num_classes,) vector
    if labels.size and labels.min() < 0:
        raise ValueError(f"class labels must be >= 0. Received a label of {labels.min()}")
    if not num_classes:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"class label {labels.max()} is outside [0, {num_classes}). Received: num_classes={num_classes}"
        )
    result = np.zeros(labels.shape + (num_classes,), dtype=np.float32)
    if scalar:
        result[labels] = 1.0
        return result
    np.put_along_axis(result, labels[..., None], 1.0, axis=-1)
    return result


def normalize(x, axis=-1, order=2):
    """``x`` divided by its `order`-norm along `axis` (``np.linalg.norm``; a zero norm divides by 1),
    as ``keras.utils.normalize`` does for numpy input. Integer input gives float64.

    Keras computes the norm along `axis` but re-inserts it with ``axis or -1``, which for
    ``axis=0`` divides by the wrong values (or fails) unless x is 1-D; here the norm is divided
    along the `axis` it was taken over, so both agree for every axis but 0.
    """
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"`x` must be a numeric array. Received an array of dtype {array.dtype}")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or not -array.ndim <= axis < max(array.ndim, 1):
        raise ValueError(f"`axis` must be an integer axis of x (ndim {array.ndim}). Received: axis={axis!r}")
    norm = np.atleast_1d(np.linalg.norm(array, order, axis))
    norm[norm == 0] = 1
    return array / np.expand_dims(norm, axis) if array.ndim > 1 else array / norm
