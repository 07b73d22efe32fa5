"""Data sets: ``mnist`` (an embedded 5,000-digit subset, or Keras's mnist.npz) and ``shapes`` (a
generated 10-class colour image set for 64x64x3 models)."""

from fastcnn.datasets import mnist, shapes

__all__ = ["mnist", "shapes"]
