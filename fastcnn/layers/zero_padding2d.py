"""ZeroPadding2D: adds rows and columns of zeros: ``padding`` is an int, (rows, columns), or
((top, bottom), (left, right))."""

from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer


def _pair(value, name):
    if arguments.is_integer(value):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(value)
        except TypeError:
            pair = ()
        if len(pair) != 2 or not all(arguments.is_integer(v) for v in pair):
            raise ValueError(f"`padding` should have two elements. Received: padding={name!r}")
    if min(pair) < 0:
        raise ValueError(f"`padding` values must be >= 0. Received: padding={name!r}")
    return pair


class ZeroPadding2D(Layer):
    _built_at_construction = True

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = arguments.channels_last(data_format)
        if arguments.is_integer(padding):
            rows = columns = (int(padding), int(padding))
            if padding < 0:
                raise ValueError(f"`padding` values must be >= 0. Received: padding={padding!r}")
        else:
            try:
                parts = tuple(padding)
            except TypeError:
                raise ValueError(f"`padding` should be an int, a tuple of 2 ints or a tuple of 2 tuples of "
                                 f"2 ints. Received: padding={padding!r}") from None
            if len(parts) != 2:
                raise ValueError(f"`padding` should have two elements. Received: padding={padding!r}")
            if all(arguments.is_integer(p) for p in parts):
                rows, columns = _pair(parts[0], padding), _pair(parts[1], padding)
            else:
                rows, columns = _pair(parts[0], padding), _pair(parts[1], padding)
        self.padding = (rows, columns)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected ndim=4, '
                f"found ndim={len(input_shape)}. Full shape received: {tuple(input_shape)}"
            )
        (top, bottom), (left, right) = self.padding
        return (input_shape[0], input_shape[1] + top + bottom, input_shape[2] + left + right, input_shape[3])

    def _add_to_network(self, network):
        (top, bottom), (left, right) = self.padding
        network.add_zero_padding2d(top, bottom, left, right)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}
