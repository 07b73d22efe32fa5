"""GlobalAveragePooling2D / GlobalMaxPooling2D: one value per channel over the whole image;
output (channels,) or, with ``keepdims=True``, (1, 1, channels)."""

from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer


class GlobalAveragePooling2D(Layer):
    _built_at_construction = True
    _keras_build_config = False
    _kind = "average"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = arguments.channels_last(data_format)
        self.keepdims = arguments.boolean(keepdims, "keepdims")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected ndim=4, '
                f"found ndim={len(input_shape)}. Full shape received: {tuple(input_shape)}"
            )
        return (input_shape[0], 1, 1, input_shape[3]) if self.keepdims else (input_shape[0], input_shape[3])

    def _add_to_network(self, network):
        network.add_pool2d(self._kind, True)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    _kind = "max"
