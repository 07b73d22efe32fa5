"""Softmax: the softmax activation over the last (channel) axis as a layer."""

from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer


class Softmax(Layer):
    _built_at_construction = True
    _keras_build_config = False

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
        if len(axes) != 1 or not arguments.is_integer(axes[0]):
            raise ValueError(f"fastcnn's Softmax normalises over one axis, the last. Received: axis={axis!r}")
        self.axis = axis

    def _check_axis(self, input_shape):
        axis = self.axis[0] if isinstance(self.axis, (list, tuple)) else self.axis
        rank = len(input_shape)
        if axis not in (-1, rank - 1):
            raise ValueError(f"fastcnn's Softmax normalises over the last axis only (axis=-1 or {rank - 1} for "
                             f"inputs of shape {tuple(input_shape)}). Received: axis={self.axis!r}")

    def compute_output_shape(self, input_shape):
        self._check_axis(input_shape)
        return tuple(input_shape)

    def _add_to_network(self, network):
        network.add_activation("softmax")

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
