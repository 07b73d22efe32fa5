"""Reshape: changes the per-sample shape (row-major, as Keras); one dimension may be -1."""

import math

from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer, runtime_shape


class Reshape(Layer):
    _built_at_construction = True
    _keras_build_config = False

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target = tuple(target_shape)
        except TypeError:
            raise ValueError(f"`target_shape` must be a tuple of integers. Received: target_shape={target_shape!r}") from None
        if not target or not all(arguments.is_integer(d) and (d > 0 or d == -1) for d in target) or target.count(-1) > 1:
            raise ValueError("`target_shape` must be a tuple of positive integers with at most one -1. "
                             f"Received: target_shape={target_shape!r}")
        if len(target) > 3:
            raise ValueError(f"fastcnn supports up to 3 dimensions per sample. Received: target_shape={target}")
        self.target_shape = tuple(int(d) for d in target)

    def _resolved(self, input_shape):
        size = math.prod(input_shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"Layer {self.name!r}: cannot reshape input of shape {tuple(input_shape)} into "
                                 f"{self.target_shape}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(f"Layer {self.name!r}: total size of the new array must be unchanged; input shape "
                             f"{tuple(input_shape)}, target shape {self.target_shape}")
        return self.target_shape

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolved(input_shape)

    def _add_to_network(self, network):
        network.add_reshape(runtime_shape(self._resolved((None,) + self._input_sample_shape)))

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}
