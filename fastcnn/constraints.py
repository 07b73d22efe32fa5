"""Weight constraints with Keras's names, defaults and formulas, applied after every optimizer step.

    MaxNorm(max_value=2, axis=0):   w * clip(n, 0, max_value) / (eps + n)
    NonNeg():                       max(w, 0)
    UnitNorm(axis=0):               w / (eps + n)
    MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0):
                                    w * (rate * clip(n, min, max) + (1 - rate) * n) / (eps + n)

where n = sqrt(sum(w ** 2, axis, keepdims=True)) and eps = 1e-7 (Keras's backend epsilon). For a
Conv2D kernel (kh, kw, in, out), ``axis=[0, 1, 2]`` constrains each filter. Pass one as
``kernel_constraint`` or ``bias_constraint`` of ``Conv2D`` and ``Dense``; as in Keras the
optimizer applies it to each trainable weight right after updating it (``fit``,
``train_on_batch``). Any callable ``w -> w`` works too: it receives and returns a float32 numpy
array of the weight's shape.
"""

import numbers

import numpy as np

from fastcnn._config_checks import check_dict, check_object, construct, fail, show_value

_EPSILON = np.float32(1e-7)


def _check_axis(axis):
    values = axis if isinstance(axis, (list, tuple)) else [axis]
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"`axis` must be an integer or a list of integers. Received: axis={axis!r}")
    return list(axis) if isinstance(axis, (list, tuple)) else int(axis)


def _check_number(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    return value


def _norms(w, axis):
    axes = tuple(axis) if isinstance(axis, list) else axis
    try:
        return np.sqrt(np.sum(np.square(w), axis=axes, keepdims=True))
    except ValueError:  # numpy's AxisError
        raise ValueError(f"Constraint axis={axis} is out of range for a weight of shape {w.shape}") from None


class Constraint:
    """Base class: ``__call__(w)`` returns the projected weight."""

    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class MaxNorm(Constraint):
    def __init__(self, max_value=2, axis=0):
        self.max_value = _check_number(max_value, "max_value")
        self.axis = _check_axis(axis)

    def __call__(self, w):
        w = np.asarray(w, dtype=np.float32)
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, np.float32(self.max_value))
        return w * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def __call__(self, w):
        return np.maximum(np.asarray(w, dtype=np.float32), np.float32(0.0))


class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = _check_axis(axis)

    def __call__(self, w):
        w = np.asarray(w, dtype=np.float32)
        return w / (_EPSILON + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _check_number(min_value, "min_value")
        self.max_value = _check_number(max_value, "max_value")
        if self.min_value > self.max_value:
            raise ValueError(f"`min_value` must not exceed `max_value`. Received: min_value={min_value}, "
                             f"max_value={max_value}")
        self.rate = _check_number(rate, "rate")
        self.axis = _check_axis(axis)

    def __call__(self, w):
        w = np.asarray(w, dtype=np.float32)
        norms = _norms(w, self.axis)
        rate = np.float32(self.rate)
        desired = (rate * np.clip(norms, np.float32(self.min_value), np.float32(self.max_value))
                   + (np.float32(1) - rate) * norms)
        return w * (desired / (_EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


# Keras's lowercase aliases.
max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_BY_NAME = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm,
            "MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm, "MinMaxNorm": MinMaxNorm}


def serialize(constraint):
    if constraint is None:
        return None
    if not isinstance(constraint, Constraint):
        # A custom function: Keras records it by name.
        return getattr(constraint, "__name__", repr(constraint))
    return {"module": "keras.constraints", "class_name": type(constraint).__name__,
            "config": constraint.get_config(), "registered_name": None}


_KEYS = {"MaxNorm": ("max_value", "axis"), "NonNeg": (), "UnitNorm": ("axis",),
         "MinMaxNorm": ("min_value", "max_value", "rate", "axis")}


def deserialize(config, where="constraint"):
    """A constraint from None, a name or a serialized config (``serialize``'s dict), the class
    through fastcnn's allow-list and every key checked (fastcnn/_config_checks.py); anything else
    raises a ValueError naming `where`."""
    if config is None:
        return None
    if isinstance(config, str):
        if config in _BY_NAME:
            return get(config)
        fail(where, f"unknown constraint {show_value(config)}; fastcnn accepts {', '.join(_BY_NAME)}")
    classes = {"MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm, "MinMaxNorm": MinMaxNorm}
    cls, arguments = check_object(check_dict(config, where), where, "constraint", "keras.constraints", classes, _KEYS)
    axis = arguments.get("axis", 0)
    if isinstance(axis, (list, tuple)) and len(axis) > 8:
        fail(where, f"`axis` lists at most 8 axes. Received: axis={show_value(axis)}")
    return construct(cls, arguments, f"{where} ({cls.__name__})")


def get(identifier):
    """A constraint from None, a name ('max_norm', 'non_neg', 'unit_norm', 'min_max_norm'), a config
    dict, a Constraint, or any callable ``w -> w``."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")
        return _BY_NAME[identifier]()
    if isinstance(identifier, type) and issubclass(identifier, Constraint):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")
