"""Nested elements (an array, or tuples, lists and dicts of them), as tf.data's elements are: the
walks every Dataset transformation shares."""

import numpy as np


def map_structure(function, *structures):
    """function applied leaf by leaf to structures of the same shape (tuples, lists, dicts)."""
    first = structures[0]
    if isinstance(first, dict):
        return {key: map_structure(function, *(s[key] for s in structures)) for key in first}
    if isinstance(first, (tuple, list)):
        mapped = [map_structure(function, *items) for items in zip(*structures)]
        return tuple(mapped) if isinstance(first, tuple) else mapped
    return function(*structures)


def leaves(structure):
    """The arrays of a structure, in a fixed order (dict keys in insertion order)."""
    if isinstance(structure, dict):
        return [leaf for key in structure for leaf in leaves(structure[key])]
    if isinstance(structure, (tuple, list)):
        return [leaf for item in structure for leaf in leaves(item)]
    return [structure]


def rebuild(template, values):
    """A structure shaped as `template` holding `values` (leaves() order)."""
    iterator = iter(values)
    return map_structure(lambda _: next(iterator), template)


def as_arrays(structure):
    """Every leaf as a numpy array (Python numbers and lists of numbers included)."""
    return map_structure(np.asarray, structure)


def describe(structure):
    """A JSON-able description of a structure's shape (for the file cache): the leaves replaced by None."""
    if isinstance(structure, dict):
        return {"dict": [[key, describe(value)] for key, value in structure.items()]}
    if isinstance(structure, (tuple, list)):
        return {"tuple" if isinstance(structure, tuple) else "list": [describe(item) for item in structure]}
    return None


def from_description(description):
    """A template structure (leaves None) from describe()'s output."""
    if description is None:
        return None
    if "dict" in description:
        return {key: from_description(value) for key, value in description["dict"]}
    if "tuple" in description:
        return tuple(from_description(item) for item in description["tuple"])
    return [from_description(item) for item in description["list"]]
