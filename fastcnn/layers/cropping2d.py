"""Cropping2D: removes rows and columns at the image's edges: ``cropping`` is an int, (rows,
columns) (each cropped from both sides), or ((top, bottom), (left, right))."""

from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer


class Cropping2D(Layer):
    _built_at_construction = True

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = arguments.channels_last(data_format)
        if arguments.is_integer(cropping):
            if cropping < 0:
                raise ValueError(f"`cropping` cannot be negative. Received: cropping={cropping!r}.")
            self.cropping = ((int(cropping),) * 2, (int(cropping),) * 2)
        elif hasattr(cropping, "__len__") and not isinstance(cropping, (str, bytes, dict)):
            if len(cropping) != 2:
                raise ValueError(f"`cropping` should have two elements. Received: cropping={cropping!r}.")
            self.cropping = (arguments.integer_tuple(cropping[0], 2, "1st entry of cropping", allow_zero=True),
                             arguments.integer_tuple(cropping[1], 2, "2nd entry of cropping", allow_zero=True))
        else:
            raise ValueError("`cropping` should be either an int, a tuple of 2 ints (symmetric_height_crop, "
                             "symmetric_width_crop), or a tuple of 2 tuples of 2 ints ((top_crop, bottom_crop), "
                             f"(left_crop, right_crop)). Received: cropping={cropping!r}.")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected ndim=4, '
                f"found ndim={len(input_shape)}. Full shape received: {tuple(input_shape)}"
            )
        (top, bottom), (left, right) = self.cropping
        if ((input_shape[1] is not None and top + bottom >= input_shape[1])
                or (input_shape[2] is not None and left + right >= input_shape[2])):
            raise ValueError("Values in `cropping` argument should be smaller than the corresponding spatial "
                             f"dimension of the input. Received: input_shape={tuple(input_shape)}, "
                             f"cropping={self.cropping}")
        return (input_shape[0], input_shape[1] - top - bottom, input_shape[2] - left - right, input_shape[3])

    def _add_to_network(self, network):
        (top, bottom), (left, right) = self.cropping
        network.add_cropping2d(top, bottom, left, right)

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping, "data_format": self.data_format}
