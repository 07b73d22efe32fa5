"""CIFAR-100 as ``keras.datasets.cifar100.load_data(label_mode)`` returns it: uint8 images (50000
and 10000, 32, 32, 3) and labels (n, 1), fine (100 classes) or coarse (20). Read from Keras's cache
folder (``datasets/cifar-100-python-target``), downloaded there when absent and reachable."""

import os

import numpy as np

from fastcnn._get_file import get_file
from fastcnn.datasets._cifar import load_batch

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
FILE_HASH = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"


def load_data(label_mode="fine"):
    if label_mode not in ["fine", "coarse"]:
        raise ValueError(f'`label_mode` must be one of `"fine"`, `"coarse"`. Received: label_mode={label_mode}.')
    path = os.path.join(get_file(fname="cifar-100-python-target", origin=ORIGIN, extract=True,
                                 file_hash=FILE_HASH), "cifar-100-python")
    parts = []
    for name in ("train", "test"):
        images, labels = load_batch(os.path.join(path, name), label_key=f"{label_mode}_labels")
        parts.append((images.transpose(0, 2, 3, 1), np.asarray(labels).reshape(-1, 1)))
    return tuple(parts)
