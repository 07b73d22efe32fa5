"""Checks of layer hyperparameters, each error naming the argument and the value received."""

import numbers


def is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_integer(value, name):
    if not is_integer(value) or value <= 0:
        raise ValueError(f"Invalid value for argument `{name}`. Expected a strictly positive integer. "
                         f"Received: {name}={value!r}")
    return int(value)


def integer_tuple(value, length, name, allow_zero=False):
    """An int or a tuple/list of `length` positive ints (non-negative with allow_zero) -> tuple
    (Keras's standardize_tuple)."""
    if is_integer(value):
        values = (int(value),) * length
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ValueError(f"The `{name}` argument must be a tuple of {length} integers. "
                             f"Received {name}={value!r}") from None
        if len(values) != length or not all(is_integer(v) for v in values):
            raise ValueError(f"The `{name}` argument must be a tuple of {length} integers. "
                             f"Received {name}={value!r}")
        values = tuple(int(v) for v in values)
    bad = {v for v in values if v < 0 or (v == 0 and not allow_zero)}
    if bad:
        requirement = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"The `{name}` argument must be a tuple of {length} integers. Received "
                         f"{name}={value!r}, including values {bad} that do not satisfy `value {requirement}`")
    return values


def padding_mode(value):
    mode = value.lower() if isinstance(value, str) else value
    if mode not in ("valid", "same"):
        raise ValueError(f"Invalid value for argument `padding`. Expected one of {{'valid', 'same'}}. "
                         f"Received: padding={value!r}")
    return mode


def channels_last(data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError("fastcnn works in channels_last (NHWC) layout only. "
                         f"Received: data_format={data_format!r}")
    return "channels_last"


def boolean(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def unsupported(name, value):
    """Arguments fastcnn does not implement yet must be left at their default (None)."""
    if value is not None:
        raise ValueError(f"fastcnn does not support the argument `{name}` yet. Received: {name}={value!r}")


def all_unsupported(**arguments):
    for name, value in arguments.items():
        unsupported(name, value)
