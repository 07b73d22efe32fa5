"""``keras.utils.split_dataset``: two Datasets from arrays, a tuple of arrays or a Dataset, with
Keras's size rules and messages; with shuffle, the same permutation as Keras's for the same seed
(Python's random.shuffle of the elements' list, seeded)."""

import random

from fastcnn.data._dataset import AUTOTUNE, Dataset, _Batch, stack_elements


def _check_type(value, name):
    if value is not None and type(value) not in (int, float):
        raise TypeError(f"Invalid `{name}` Type. Expected: int or float or None, Received: type({name})="
                        f"{type(value)}.")


def split_sizes(left_size, right_size, total_length):
    """(left, right) element counts, as Keras's _rescale_dataset_split_sizes computes them."""
    _check_type(left_size, "left_size")
    _check_type(right_size, "right_size")
    if left_size == 0 and right_size == 0:
        raise ValueError("Both `left_size` and `right_size` are zero. At least one of the split sizes must be "
                         "non-zero.")
    for value, name in ((left_size, "left_size"), (right_size, "right_size")):
        if (type(value) is int and (value <= 0 or value >= total_length)) or \
                (type(value) is float and (value <= 0 or value >= 1)):
            raise ValueError(f"`{name}` should be either a positive integer smaller than {total_length}, or a float "
                             f"within the range `[0, 1]`. Received: {name}={value}")
    if type(left_size) is float and type(right_size) is float and left_size + right_size > 1:
        raise ValueError("The sum of `left_size` and `right_size` is greater than 1. It must be less than or equal "
                         "to 1.")
    left = round(left_size * total_length) if type(left_size) is float else left_size
    right = round(right_size * total_length) if type(right_size) is float else right_size
    if left is None:
        left = total_length - right
    elif right is None:
        right = total_length - left
    if left + right > total_length:
        raise ValueError(f"The sum of `left_size` and `right_size` should be smaller than the {total_length}. "
                         f"Received: left_size + right_size = {left + right}and total_length = {total_length}")
    for split, side in ((left, "left"), (right, "right")):
        if split == 0:
            raise ValueError(f"With `dataset` of length={total_length}, `left_size`={left_size} and "
                             f"`right_size`={right_size}.Resulting {side} side dataset split will be empty. Adjust "
                             "any of the aforementioned parameters")
    return int(left), int(right)


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Splits a dataset into a left and a right Dataset: `dataset` a numpy array, a list/tuple of
    arrays of one length, or a fastcnn Dataset (read in full; a batched one is split by element and
    both halves batched alike). Sizes are counts (int) or fractions (float); one may be None (the
    rest). The right split is the last `right_size` elements."""
    if right_size is None and left_size is None:
        raise ValueError("At least one of the `left_size` or `right_size` must be specified. Received: "
                         "left_size=None and right_size=None")
    batch_size = None
    if isinstance(dataset, Dataset):
        if isinstance(dataset, _Batch):
            batch_size = dataset._batch_size
            dataset = dataset.unbatch()
        elements = list(dataset)
    elif isinstance(dataset, (list, tuple)) or hasattr(dataset, "__array__"):
        source = Dataset.from_tensor_slices(tuple(dataset) if isinstance(dataset, list) else dataset)
        elements = list(source)
    else:
        raise TypeError("The `dataset` argument must be either a `fastcnn.data.Dataset` object, or a list/tuple of "
                        f"arrays. Received: dataset={dataset!r} of type {type(dataset)}")
    if shuffle:
        random.Random(random.randint(0, int(1e6)) if seed is None else seed).shuffle(elements)
    left, right = split_sizes(left_size, right_size, len(elements))
    halves = []
    for part in (elements[:left], elements[-right:]):
        half = Dataset.from_tensor_slices(stack_elements(part)) if part else Dataset.from_tensor_slices([])
        if batch_size is not None:
            half = half.batch(batch_size)
        halves.append(half.prefetch(AUTOTUNE))
    return tuple(halves)
