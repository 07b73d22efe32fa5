"""Data sets: ``mnist`` (an embedded 5,000-digit subset, or Keras's mnist.npz) and ``shapes`` (a
generated 10-class colour image set for 64x64x3 models), and Keras's ``cifar10``, ``cifar100`` and
``fashion_mnist`` read from Keras's cache folder (downloaded there where a network is reachable)."""

from fastcnn.datasets import cifar10, cifar100, fashion_mnist, mnist, shapes

__all__ = ["cifar10", "cifar100", "fashion_mnist", "mnist", "shapes"]
