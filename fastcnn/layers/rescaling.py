"""Rescaling: ``y = x * scale + offset`` (e.g. ``Rescaling(1 / 255)`` inside the model). ``scale`` and
``offset`` are numbers or, as in Keras, lists / arrays of one value per channel (broadcast over the
last axis)."""

import numbers

import numpy as np

from fastcnn.layers.base import Layer


def _is_number(value):
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))


def _values(value, name):
    """The float32 values of a scalar or a 1-D (or (1, ..., 1, n)) list / array."""
    if _is_number(value):
        values = np.array([value], np.float32)
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):
            array = None
        if (array is None or array.size == 0 or array.dtype.kind not in "iuf"
                or any(dimension != 1 for dimension in array.shape[:-1]) or array.ndim > 3):
            raise ValueError(f"`{name}` must be a number or a list / array of one number per channel "
                             f"(broadcast over the last axis). Received: {name}={value!r}")
        values = array.astype(np.float32).reshape(-1)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`{name}` must be finite. Received: {name}={value!r}")
    return values


class Rescaling(Layer):
    _built_at_construction = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self._scale_values = _values(scale, "scale")
        self._offset_values = _values(offset, "offset")
        # Kept as given (numbers as floats), as Keras's config shows them.
        self.scale = float(scale) if _is_number(scale) else scale
        self.offset = float(offset) if _is_number(offset) else offset

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        for name, values in (("scale", self._scale_values), ("offset", self._offset_values)):
            if len(values) > 1 and channels is not None and len(values) != channels:
                raise ValueError(f"Layer {self.name!r}: `{name}` has {len(values)} values, which do not broadcast "
                                 f"over inputs of shape {tuple(input_shape)} ({channels} channels). Received: "
                                 f"{name}={getattr(self, name)!r}")
        return tuple(input_shape)

    def _add_to_network(self, network):
        if len(self._scale_values) == 1 and len(self._offset_values) == 1:
            network.add_rescaling(float(self._scale_values[0]), float(self._offset_values[0]))
        else:
            network.add_channel_rescaling(self._scale_values.tolist(), self._offset_values.tolist())

    def get_config(self):
        return {**super().get_config(), "scale": _serialize(self.scale), "offset": _serialize(self.offset)}


def _serialize(value):
    """Keras's serialize_keras_object for these values: numbers and lists as they are, a numpy
    array as its "__numpy__" record."""
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": str(value.dtype)}}
    return value


def deserialize_value(value):
    """A "__numpy__" record back to its array (Keras's deserialize_keras_object); other values as they are."""
    if isinstance(value, dict) and value.get("class_name") == "__numpy__":
        config = value.get("config")
        if not isinstance(config, dict) or set(config) != {"value", "dtype"} or config["dtype"] not in (
                "float16", "float32", "float64", "int32", "int64"):
            raise ValueError(f"a numpy value must be {{'value': [...], 'dtype': a numeric dtype}}. Received: {value!r}")
        return np.asarray(config["value"], dtype=config["dtype"])
    return value
