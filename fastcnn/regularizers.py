"""Regularizers with Keras's names and defaults: ``L1``, ``L2``, ``L1L2`` (``l1``, ``l2``, ``l1_l2``).

A regularizer adds a penalty to the loss:

    L1:   l1 * sum(|x|)                  (``regularizers.l1()`` -> l1=0.01)
    L2:   l2 * sum(x ** 2)               (``regularizers.l2()`` -> l2=0.01)
    L1L2: l1 * sum(|x|) + l2 * sum(x**2) (``regularizers.l1_l2()`` and ``L1L2()`` -> l1=0, l2=0)

Pass one as ``kernel_regularizer``, ``bias_regularizer`` or ``activity_regularizer`` of ``Conv2D``
and ``Dense``. As in Keras, the kernel and bias penalties of trainable layers join the loss of
every step (training and evaluation) and the activity penalty, taken on the layer's output, is
divided by the batch size. The penalties and their gradients are computed inside the compiled
training step; calling a regularizer on an array returns its penalty (numpy, for inspection).
"""

import math
import numbers

import numpy as np

from fastcnn._config_checks import check_dict, check_object, construct, fail, show_value


def _validate_factor(value, name):
    """Keras's check: a finite, non-negative number."""
    if (isinstance(value, bool) or not isinstance(value, (numbers.Real,))
            or math.isinf(value) or math.isnan(value) or value < 0):
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float."
                         f"Received: {name}={value!r}")
    return float(value)


class Regularizer:
    """Base class. fastcnn's compiled step computes the L1/L2 family; ``_factors`` gives (l1, l2)."""

    def __call__(self, x):
        return 0.0

    def _factors(self):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError(f"{self} does not implement get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        arguments = ", ".join(f"{key}={value}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


def _penalty(x, l1, l2):
    values = np.asarray(x, dtype=np.float32)
    total = np.float32(0.0)
    if l1:
        total += np.float32(l1) * np.sum(np.abs(values), dtype=np.float32)
    if l2:
        total += np.float32(l2) * np.sum(np.square(values), dtype=np.float32)
    return float(total)


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x ** 2)``; both default to 0 (Keras's backward-compatible defaults)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _validate_factor(0.0 if l1 is None else l1, "l1")
        self.l2 = _validate_factor(0.0 if l2 is None else l2, "l2")

    def __call__(self, x):
        return _penalty(x, self.l1, self.l2)

    def _factors(self):
        return self.l1, self.l2

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """``l1 * sum(|x|)``, l1=0.01 by default."""

    def __init__(self, l1=0.01):
        self.l1 = _validate_factor(0.01 if l1 is None else l1, "l1")

    def __call__(self, x):
        return _penalty(x, self.l1, 0.0)

    def _factors(self):
        return self.l1, 0.0

    def get_config(self):
        # Keras's L1 keeps l1 as a float32 tensor, so its config reads back float32(l1)
        # (0.01 -> 0.009999999776482582); L2 and L1L2 keep Python floats.
        return {"l1": float(np.float32(self.l1))}


class L2(Regularizer):
    """``l2 * sum(x ** 2)``, l2=0.01 by default."""

    def __init__(self, l2=0.01):
        self.l2 = _validate_factor(0.01 if l2 is None else l2, "l2")

    def __call__(self, x):
        return _penalty(x, 0.0, self.l2)

    def _factors(self):
        return 0.0, self.l2

    def get_config(self):
        return {"l2": self.l2}


# Keras's lowercase names are the classes themselves (``regularizers.l2(0.001)``).
l1 = L1
l2 = L2
l1_l2 = L1L2

# The identifiers Keras 3's regularizers.get accepts for these classes.
_BY_NAME = {"l1": L1, "l2": L2, "l1l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2}


def serialize(regularizer):
    if regularizer is None:
        return None
    return {"module": "keras.regularizers", "class_name": type(regularizer).__name__,
            "config": regularizer.get_config(), "registered_name": None}


_KEYS = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}


def deserialize(config, where="regularizer"):
    """A regularizer from None, a name or a serialized config (``serialize``'s dict), the class
    through fastcnn's allow-list and every key checked (fastcnn/_config_checks.py); anything else
    raises a ValueError naming `where`."""
    if config is None:
        return None
    if isinstance(config, str):
        if config in _BY_NAME:
            return get(config)
        fail(where, f"unknown regularizer {show_value(config)}; fastcnn accepts 'l1', 'l2', 'l1l2'")
    classes = {"L1": L1, "L2": L2, "L1L2": L1L2}
    cls, arguments = check_object(check_dict(config, where), where, "regularizer", "keras.regularizers", classes, _KEYS)
    return construct(cls, arguments, f"{where} ({cls.__name__})")


def get(identifier):
    """A regularizer from None, a name ('l1', 'l2', 'l1l2'), a config dict, or an instance.

    fastcnn computes penalties in its compiled training step, so it takes the L1/L2 family only:
    other callables raise a ValueError naming what was received.
    """
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        factory = _BY_NAME.get(identifier)
        if factory is None:
            raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}. "
                             "fastcnn supports 'l1', 'l2' and 'l1l2'.")
        return factory()
    # Exact types only: a subclass could change __call__, which the compiled step would not see.
    if identifier in (L1, L2, L1L2):
        return identifier()
    if type(identifier) in (L1, L2, L1L2):
        return identifier
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}. fastcnn computes "
                     "penalties in its compiled training step and supports regularizers.L1, L2 and L1L2; "
                     "custom regularizer functions and subclasses are not supported.")
