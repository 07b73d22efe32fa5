"""Rescaling: ``y = x * scale + offset`` (e.g. ``Rescaling(1 / 255)`` inside the model)."""

import numbers

from fastcnn.layers.base import Layer


class Rescaling(Layer):
    _built_at_construction = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("scale", scale), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
                raise ValueError(f"`{name}` must be a number (per-channel arrays are not supported). "
                                 f"Received: {name}={value!r}")
        self.scale = float(scale)
        self.offset = float(offset)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _add_to_network(self, network):
        network.add_rescaling(self.scale, self.offset)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
