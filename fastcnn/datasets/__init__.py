"""Data sets: ``mnist`` (an embedded 5,000-digit subset, or Keras's mnist.npz)."""

from fastcnn.datasets import mnist

__all__ = ["mnist"]
