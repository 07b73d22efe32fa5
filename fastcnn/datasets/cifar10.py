"""CIFAR-10 as ``keras.datasets.cifar10.load_data()`` returns it: ``(x_train, y_train), (x_test,
y_test)``, uint8 images (50000 and 10000, 32, 32, 3), uint8 labels (n, 1). Read from Keras's cache
folder (``$KERAS_HOME`` or ``~/.keras``, ``datasets/cifar-10-batches-py-target``), where Keras
leaves it; downloaded there when absent and a network is reachable (``fastcnn.utils.get_file``)."""

import os

import numpy as np

from fastcnn._get_file import get_file
from fastcnn.datasets._cifar import load_batch

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FILE_HASH = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


def load_data():
    path = os.path.join(get_file(fname="cifar-10-batches-py-target", origin=ORIGIN, extract=True,
                                 file_hash=FILE_HASH), "cifar-10-batches-py")
    batches = [load_batch(os.path.join(path, f"data_batch_{index}")) for index in range(1, 6)]
    x_train = np.concatenate([images for images, _ in batches])
    y_train = np.concatenate([np.asarray(labels, dtype=np.uint8) for _, labels in batches])
    x_test, y_test = load_batch(os.path.join(path, "test_batch"))
    return ((x_train.transpose(0, 2, 3, 1), y_train.reshape(-1, 1)),
            (x_test.transpose(0, 2, 3, 1).astype(np.uint8), np.asarray(y_test, dtype=np.uint8).reshape(-1, 1)))
