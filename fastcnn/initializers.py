"""Weight initializers with Keras's names, defaults and fan computation.

For a kernel of shape (kh, kw, in, out): fan_in = kh*kw*in, fan_out = kh*kw*out; for (in, out):
fan_in = in, fan_out = out. Draws come from fastcnn's random state (``utils.set_random_seed``)
unless the initializer has its own ``seed``.
"""

import math
import numbers

import numpy as np

from fastcnn import _random
from fastcnn._config_checks import check_dict, check_number, check_object, check_string, construct, fail, show_value


def _compute_fans(shape):
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _no_axes(input_axes, output_axes):
    """Keras 3.15's VarianceScaling family takes ``input_axes``/``output_axes`` (which kernel axes
    count as fan-in / fan-out); fastcnn uses the standard fans only, so they must stay None."""
    for name, value in (("input_axes", input_axes), ("output_axes", output_axes)):
        if value is not None:
            raise ValueError(f"fastcnn computes fans from the standard kernel layout only; `{name}` must be "
                             f"None. Received: {name}={value!r}")


class Initializer:
    def __init__(self, seed=None):
        if seed is not None and (not isinstance(seed, numbers.Integral) or isinstance(seed, bool)):
            raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        self.seed = seed

    def _rng(self):
        # A seeded initializer draws the same values on every call, as in Keras; an unseeded one
        # draws from fastcnn's random state (utils.set_random_seed).
        # (Keras takes any integer seed; numpy's generator wants a non-negative one: fold it into
        # [0, 2^64), which leaves the non-negative seeds below 2^64 unchanged.)
        return np.random.default_rng(self.seed % 2**64) if self.seed is not None else _random.generator()

    def __call__(self, shape, dtype=None):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    def get_config(self):
        return {"seed": self.seed}


class Zeros(Initializer):
    def __init__(self):
        super().__init__()

    def __call__(self, shape, dtype=None):
        return np.zeros(shape, np.float32)

    def get_config(self):
        return {}


class Ones(Initializer):
    def __init__(self):
        super().__init__()

    def __call__(self, shape, dtype=None):
        return np.ones(shape, np.float32)

    def get_config(self):
        return {}


class Constant(Initializer):
    def __init__(self, value=0.0):
        super().__init__()
        if not isinstance(value, numbers.Real):
            raise ValueError(f"`value` must be a number. Received: value={value!r}")
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, np.float32)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        if not minval < maxval:
            raise ValueError(f"`minval` must be less than `maxval`. Received: minval={minval}, maxval={maxval}")
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=None):
        return self._rng().uniform(self.minval, self.maxval, size=shape).astype(np.float32)

    def get_config(self):
        return {"seed": self.seed, "minval": self.minval, "maxval": self.maxval}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        if not stddev > 0:
            raise ValueError(f"`stddev` must be positive. Received: stddev={stddev}")
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=None):
        return self._rng().normal(self.mean, self.stddev, size=shape).astype(np.float32)

    def get_config(self):
        return {"seed": self.seed, "mean": self.mean, "stddev": self.stddev}


def _truncated_normal(rng, shape, mean, stddev):
    """Normal samples redrawn until within two standard deviations of the mean (Keras's rule)."""
    count = math.prod(shape)
    values = rng.normal(0.0, 1.0, size=count)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.normal(0.0, 1.0, size=int(outside.sum()))
        outside = np.abs(values) > 2.0
    return (mean + stddev * values).reshape(shape).astype(np.float32)


class TruncatedNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        if not stddev > 0:
            raise ValueError(f"`stddev` must be positive. Received: stddev={stddev}")
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=None):
        return _truncated_normal(self._rng(), tuple(shape), self.mean, self.stddev)

    def get_config(self):
        return {"seed": self.seed, "mean": self.mean, "stddev": self.stddev}


class VarianceScaling(Initializer):
    """Samples with variance scale / n, n = fan_in, fan_out or their mean (mode)."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None, input_axes=None,
                 output_axes=None):
        super().__init__(seed)
        _no_axes(input_axes, output_axes)
        if not scale > 0:
            raise ValueError(f"`scale` must be positive. Received: scale={scale}")
        mode = mode.lower() if isinstance(mode, str) else mode
        distribution = distribution.lower() if isinstance(distribution, str) else distribution
        if distribution == "normal":  # Keras's alias
            distribution = "truncated_normal"
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Invalid `mode` argument: expected one of fan_in, fan_out, fan_avg. Received: mode={mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(
                "Invalid `distribution` argument: expected one of truncated_normal, untruncated_normal, "
                f"uniform. Received: distribution={distribution!r}"
            )
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        fan_in, fan_out = _compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "truncated_normal":
            # 0.8796... is the standard deviation of a unit normal truncated to [-2, 2].
            return _truncated_normal(self._rng(), shape, 0.0, math.sqrt(variance) / 0.87962566103423978)
        if self.distribution == "untruncated_normal":
            return self._rng().normal(0.0, math.sqrt(variance), size=shape).astype(np.float32)
        limit = math.sqrt(3.0 * variance)
        return self._rng().uniform(-limit, limit, size=shape).astype(np.float32)

    def get_config(self):
        return {"seed": self.seed, "scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "input_axes": None, "output_axes": None}


class GlorotUniform(VarianceScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(1.0, "fan_avg", "uniform", seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": None, "output_axes": None}


class GlorotNormal(VarianceScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": None, "output_axes": None}


class HeUniform(VarianceScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(2.0, "fan_in", "uniform", seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": None, "output_axes": None}


class HeNormal(VarianceScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": None, "output_axes": None}


class LecunUniform(VarianceScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(1.0, "fan_in", "uniform", seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": None, "output_axes": None}


class LecunNormal(VarianceScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(1.0, "fan_in", "truncated_normal", seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": None, "output_axes": None}


_BY_NAME = {
    "zeros": Zeros,
    "ones": Ones,
    "constant": Constant,
    "random_uniform": RandomUniform,
    "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
}


# The keys Keras 3.15's get_config writes for each initializer class (the tests compare them).
_SEED_ONLY = ("seed", "input_axes", "output_axes")
_KEYS = {
    "Zeros": (), "Ones": (), "Constant": ("value",),
    "RandomUniform": ("seed", "minval", "maxval"), "RandomNormal": ("seed", "mean", "stddev"),
    "TruncatedNormal": ("seed", "mean", "stddev"),
    "VarianceScaling": ("seed", "scale", "mode", "distribution", "input_axes", "output_axes"),
    "GlorotUniform": _SEED_ONLY, "GlorotNormal": _SEED_ONLY, "HeUniform": _SEED_ONLY, "HeNormal": _SEED_ONLY,
    "LecunUniform": _SEED_ONLY, "LecunNormal": _SEED_ONLY,
}


def deserialize(config, where="initializer"):
    """An initializer from a name or a serialized config (``serialize``'s dict, as Keras writes it),
    the class through fastcnn's allow-list and every key and value checked
    (fastcnn/_config_checks.py); anything else raises a ValueError naming `where`."""
    classes = {cls.__name__: cls for cls in _BY_NAME.values()}
    if isinstance(config, str):
        if config in _BY_NAME or config in classes:
            return get(config)
        fail(where, f"unknown initializer {show_value(config)}; fastcnn accepts {', '.join(_BY_NAME)}")
    cls, arguments = check_object(check_dict(config, where), where, "initializer", "keras.initializers", classes, _KEYS)
    for key in ("value", "minval", "maxval", "mean", "stddev", "scale"):
        if key in arguments:
            check_number(arguments[key], where, key)
    for key in ("mode", "distribution"):
        if key in arguments:
            check_string(arguments[key], where, key)
    return construct(cls, arguments, f"{where} ({cls.__name__})")


def get(identifier):
    """An initializer from a Keras name ('glorot_uniform'), a class name, a serialized config
    (``initializers.serialize``'s dict), or an instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):  # a serialized initializer, checked against the allow-list
        return deserialize(identifier)
    if isinstance(identifier, str):
        key = identifier if identifier in _BY_NAME else None
        if key is None:
            for name, cls in _BY_NAME.items():
                if cls.__name__ == identifier:
                    key = name
        if key is not None:
            return _BY_NAME[key]()
    raise ValueError(
        f"Could not interpret initializer identifier: {identifier!r}. Supported: {', '.join(_BY_NAME)}."
    )


def serialize(initializer):
    """Keras's serialized form: ``{"module": "keras.initializers", "class_name": ..., "config": ...,
    "registered_name": None}``."""
    if initializer is None:
        return None
    initializer = get(initializer)
    return {"module": "keras.initializers", "class_name": type(initializer).__name__,
            "config": initializer.get_config(), "registered_name": None}
