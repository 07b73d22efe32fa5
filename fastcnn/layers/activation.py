"""Activation: applies an activation function by name."""

from fastcnn import activations
from fastcnn.layers.base import Layer


class Activation(Layer):
    _built_at_construction = True
    _keras_build_config = False

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _add_to_network(self, network):
        network.add_activation(self.activation)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}
