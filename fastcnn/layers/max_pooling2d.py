"""MaxPooling2D (window maximum) and AveragePooling2D (window mean, padding not counted) over NHWC
inputs; strides default to the pool size."""

from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer
from fastcnn.layers.conv2d import _window_output


class MaxPooling2D(Layer):
    _built_at_construction = True
    _keras_build_config = False
    _kind = "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = arguments.integer_tuple(pool_size, 2, "pool_size")
        self.strides = self.pool_size if strides is None else arguments.integer_tuple(strides, 2, "strides")
        self.padding = arguments.padding_mode(padding)
        self.data_format = arguments.channels_last(data_format)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected ndim=4, '
                f"found ndim={len(input_shape)}. Full shape received: {tuple(input_shape)}"
            )
        if self.padding == "valid" and (input_shape[1] < self.pool_size[0] or input_shape[2] < self.pool_size[1]):
            raise ValueError(
                f"Layer {self.name!r}: pool_size={self.pool_size} is larger than the input "
                f"{tuple(input_shape)} with padding='valid'; use padding='same' or a smaller pool_size."
            )
        height = _window_output(input_shape[1], self.pool_size[0], self.strides[0], 1, self.padding)
        width = _window_output(input_shape[2], self.pool_size[1], self.strides[1], 1, self.padding)
        return (input_shape[0], height, width, input_shape[3])

    def _add_to_network(self, network):
        network.add_pool2d(self._kind, False, self.pool_size, self.strides, self.padding)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding,
                "strides": self.strides, "data_format": self.data_format}


class AveragePooling2D(MaxPooling2D):
    _kind = "average"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)
