"""Fashion-MNIST as ``keras.datasets.fashion_mnist.load_data()`` returns it: uint8 images (60000
and 10000, 28, 28) and uint8 labels. Read from Keras's cache folder (``datasets/fashion-mnist``,
four gzipped IDX files), downloaded there when absent and reachable."""

import gzip
import os

import numpy as np

from fastcnn._get_file import get_file

BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz")


def _read(path, offset):
    try:
        with gzip.open(path, "rb") as file:
            return np.frombuffer(file.read(), np.uint8, offset=offset)
    except (OSError, EOFError, ValueError) as error:
        raise ValueError(f"{path!r} is not a gzipped IDX file ({error}).") from error


def load_data():
    paths = [get_file(name, origin=BASE + name, cache_subdir=os.path.join("datasets", "fashion-mnist"))
             for name in FILES]
    y_train, y_test = _read(paths[0], 8), _read(paths[2], 8)
    x_train, x_test = _read(paths[1], 16), _read(paths[3], 16)
    for images, labels, name in ((x_train, y_train, FILES[1]), (x_test, y_test, FILES[3])):
        if images.size != len(labels) * 28 * 28:
            raise ValueError(f"{name} holds {images.size} bytes of images for {len(labels)} labels (28x28 each).")
    return (x_train.reshape(len(y_train), 28, 28), y_train), (x_test.reshape(len(y_test), 28, 28), y_test)
