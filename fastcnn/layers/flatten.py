"""Flatten: (h, w, c) -> (h*w*c,) in Keras's row-major order (a reinterpretation in NHWC memory)."""

import math

from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer


class Flatten(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = arguments.channels_last(data_format)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], math.prod(input_shape[1:]))

    def _add_to_network(self, network):
        network.add_flatten()

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}
