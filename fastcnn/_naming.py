"""Keras's automatic names: the first Conv2D is ``conv2d``, the next ``conv2d_1``, and so on."""

import re
from collections import defaultdict

_counts = defaultdict(int)


def to_snake_case(name):
    """``MaxPooling2D`` -> ``max_pooling2d``, ``Conv2D`` -> ``conv2d`` (Keras's rule)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name


def unique_name(prefix):
    count = _counts[prefix]
    _counts[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


def reset():
    _counts.clear()
