"""UpSampling2D: repeats rows and columns by ``size`` (nearest) or interpolates bilinearly as
TensorFlow's resize with half-pixel centres does (what Keras's layer calls on its TensorFlow
backend)."""

from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer

INTERPOLATIONS = ("nearest", "bilinear")


class UpSampling2D(Layer):
    _built_at_construction = True

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.data_format = arguments.channels_last(data_format)
        self.size = arguments.integer_tuple(size, 2, "size")
        if not isinstance(interpolation, str) or interpolation.lower() not in INTERPOLATIONS:
            raise ValueError("fastcnn's UpSampling2D supports `interpolation` 'nearest' or 'bilinear'. "
                             f"Received: interpolation={interpolation!r}")
        self.interpolation = interpolation.lower()

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected ndim=4, '
                f"found ndim={len(input_shape)}. Full shape received: {tuple(input_shape)}"
            )
        height = None if input_shape[1] is None else input_shape[1] * self.size[0]
        width = None if input_shape[2] is None else input_shape[2] * self.size[1]
        return (input_shape[0], height, width, input_shape[3])

    def _add_to_network(self, network):
        network.add_upsampling2d(self.size, self.interpolation)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}
