"""Arithmetic on symbolic tensors: ``x + 3.0``, ``0.5 * x``, ``x - y``, ``x / y``, ``-x``.

As in Keras 3, each operator records one operation of ``keras.ops.numpy`` (Add, Subtract, Multiply,
TrueDivide, Negative) in the functional graph. An operation is not a layer: ``model.layers`` leaves
it out, ``model.operations`` and ``model.summary()`` list it, it has no weights (so the weight order
is the layers' alone), and configs save it as Keras saves it (module ``keras.src.ops.numpy``, the
call's arguments with numbers in place). The runtime computes it with existing kernels:

* one symbolic operand and a number c: Rescaling, y = x * scale + offset — x + c is (1, c),
  x - c is (1, -c), c - x is (-1, c), x * c is (c, 0), x / c is (1 / c, 0) (one rounding more than
  x / c: within one unit in the last place), -x is (-1, 0);
* two symbolic operands of the same rank, each sample dimension equal or 1: the merge kernels
  (add, subtract, multiply, divide; csrc/ops/merge.h), broadcasting the 1s.

A number divided by a tensor (c / x) and other operands (arrays, lists) raise a TypeError naming
what was received.
"""

import numbers

import numpy as np

from fastcnn.layers import node as node_module
from fastcnn.layers.base import Layer

# Keras's module for these operations in a serialized config.
MODULE = "keras.src.ops.numpy"


def _is_number(value):
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))


class Operation(Layer):
    """One arithmetic operator applied to symbolic tensors and numbers. ``_arguments`` is the call's
    argument list with None where a tensor goes and the numbers in place (Keras's serialized
    ``args``)."""

    _built_at_construction = True
    _keras_build_config = False
    _is_operation = True
    _arity = 2
    _merge_kind = None  # the runtime merge of two tensors

    def __init__(self, name=None):
        super().__init__(name=name)
        self._arguments = None

    def get_config(self):
        return {"name": self.name}

    def __call__(self, *args):
        """Records the operation on `args` (tensors and numbers, in the operator's order)."""
        if len(args) != self._arity:
            raise TypeError(f"{type(self).__name__} takes {self._arity} argument(s). Received: {len(args)}")
        arguments, tensors = [], []
        for value in args:
            if isinstance(value, node_module.KerasTensor):
                arguments.append(None)
                tensors.append(value)
            elif _is_number(value):
                arguments.append(float(value))
            else:
                raise TypeError(f"fastcnn's symbolic arithmetic ({self._symbol}) takes symbolic tensors and Python or "
                                f"numpy numbers. Received: {value!r} (of type {type(value).__name__})")
        if not tensors:
            raise TypeError(f"{type(self).__name__} needs at least one symbolic tensor. Received: {list(args)!r}")
        self._check_arguments(arguments)
        if len(tensors) == 1:
            # The runtime computes x * scale + offset in float32: both must be finite there.
            factors = np.array(self.scale_and_offset(arguments), np.float64)
            if not np.all(np.isfinite(factors)) or np.any(np.abs(factors) > np.finfo(np.float32).max):
                raise ValueError(f"fastcnn's symbolic arithmetic ({self._symbol}) needs a finite number whose "
                                 f"float32 result is finite. Received: {[v for v in arguments if v is not None]}")
        if self._arguments is not None and self._arguments != arguments:
            raise ValueError(f"Operation {self.name!r} was called with the arguments {self._arguments} (None: a "
                             f"tensor) and cannot be called with {arguments}")
        self._arguments = arguments
        output = self._build_for([tuple(t.shape[1:]) for t in tensors])
        batches = {t.shape[0] for t in tensors}
        batch = batches.pop() if len(batches) == 1 else None
        return node_module.record(self, tensors if len(tensors) > 1 else tensors[0], [(batch,) + output])

    def _check_arguments(self, arguments):
        """Refuses what the runtime cannot compute (subclasses)."""

    def _build_for(self, samples):
        output = self._output_sample_shape_for(samples)
        self._input_sample_shape = samples[0] if len(samples) == 1 else tuple(samples)
        self._output_sample_shape = output
        return output

    def _output_sample_shape_for(self, samples):
        """The broadcast of the tensors' sample shapes: same rank, each dimension equal or 1."""
        samples = [tuple(shape) for shape in samples]
        output = samples[0]
        for shape in samples[1:]:
            if len(shape) != len(output) or any(a != b and 1 not in (a, b) for a, b in zip(output, shape)):
                raise ValueError(f"{type(self).__name__} ({self._symbol}) needs tensors of the same rank whose "
                                 "dimensions are equal or 1 (fastcnn broadcasts those). Received shapes "
                                 f"{(None,) + output} and {(None,) + shape}")
            output = tuple(b if a == 1 else a for a, b in zip(output, shape))
        return output

    def compute_output_shape(self, input_shape):
        """Batch shapes of the tensor operands (one shape, or a list) -> the output's."""
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        return (None,) + self._output_sample_shape_for([tuple(s)[1:] for s in shapes])

    @property
    def output_shape(self):
        return (None,) + self._output_sample_shape

    def _rescaling(self, constant, tensor_first):
        """(scale, offset) of y = x * scale + offset for the tensor x and the number `constant`."""
        raise NotImplementedError

    @property
    def of_two_tensors(self):
        return self._arguments == [None, None]

    def scale_and_offset(self, arguments=None):
        """(scale, offset) of y = x * scale + offset for an operation on one tensor (with its
        recorded arguments, or `arguments`)."""
        arguments = self._arguments if arguments is None else arguments
        constants = [value for value in arguments if value is not None]
        return self._rescaling(constants[0] if constants else None, arguments[0] is None)

    def _add_to_network(self, network):
        if self.of_two_tensors:
            network.add_merge(self._merge_kind)
            return
        scale, offset = self.scale_and_offset()
        network.add_rescaling(float(scale), float(offset))

    def serialize_call(self, node, tensor_config):
        """A call's {"args", "kwargs"} as Keras writes it: tensors through `tensor_config`, numbers as they are."""
        tensors = iter(node.input_tensors)
        return {"args": [tensor_config(next(tensors)) if value is None else value for value in self._arguments],
                "kwargs": {}}


class Add(Operation):
    _symbol = "+"
    _merge_kind = "add"

    def _rescaling(self, constant, tensor_first):
        return 1.0, constant


class Subtract(Operation):
    _symbol = "-"
    _merge_kind = "subtract"

    def _rescaling(self, constant, tensor_first):
        return (1.0, -constant) if tensor_first else (-1.0, constant)


class Multiply(Operation):
    _symbol = "*"
    _merge_kind = "multiply"

    def _rescaling(self, constant, tensor_first):
        return constant, 0.0


class TrueDivide(Operation):
    _symbol = "/"
    _merge_kind = "divide"

    def _check_arguments(self, arguments):
        if arguments[0] is not None:
            raise TypeError(f"fastcnn's symbolic arithmetic cannot divide a number by a tensor (it has no reciprocal "
                            f"kernel). Received: {arguments[0]!r} / a symbolic tensor")
        if arguments[1] == 0.0:
            raise ValueError("fastcnn's symbolic arithmetic refuses a division by the number 0 (every value would be "
                             "infinite or NaN). Received: x / 0.0")

    def _rescaling(self, constant, tensor_first):
        return 1.0 / constant, 0.0


class Negative(Operation):
    _symbol = "unary -"
    _arity = 1

    def _rescaling(self, constant, tensor_first):
        return -1.0, 0.0


CLASSES = {cls.__name__: cls for cls in (Add, Subtract, Multiply, TrueDivide, Negative)}


def binary(cls, left, right):
    """``left <op> right`` for the operator methods of KerasTensor."""
    return cls()(left, right)
