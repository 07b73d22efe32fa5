"""ReLU(max_value=None, negative_slope=0.0, threshold=0.0) and LeakyReLU(negative_slope=0.3):

    y = clip(x > threshold ? x : 0, 0, max_value) - negative_slope * max(threshold - x, 0)
"""

import numbers
import warnings

from fastcnn.layers.base import Layer


def _number(value, name, allow_none=False, minimum=None):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise ValueError(f"`{name}` must be a number. Received: {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` of a ReLU layer must be a non-negative float value. Received: {name}={value}")
    return float(value)


class ReLU(Layer):
    _built_at_construction = True
    _keras_build_config = False

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _number(max_value, "max_value", allow_none=True, minimum=0.0)
        self.negative_slope = _number(negative_slope, "negative_slope", minimum=0.0)
        self.threshold = _number(threshold, "threshold", minimum=0.0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _add_to_network(self, network):
        network.add_relu(type(self).__name__, self.max_value, self.negative_slope, self.threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


class LeakyReLU(ReLU):
    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:  # Keras 2's name, which Keras 3 still maps (with this warning)
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.")
        super().__init__(negative_slope=negative_slope, **kwargs)

    def get_config(self):
        config = super().get_config()
        return {key: config[key] for key in ("name", "trainable", "dtype", "negative_slope")}
