"""Identity: returns its input (a placeholder layer); no data moves."""

from fastcnn.layers.base import Layer


class Identity(Layer):
    _built_at_construction = True
    _keras_build_config = False

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _add_to_network(self, network):
        network.add_identity()
