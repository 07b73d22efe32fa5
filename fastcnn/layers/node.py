"""Symbolic tensors and the nodes that connect them: Keras's ``KerasTensor`` and ``Node``.

Calling a layer (or a model) on symbolic tensors computes nothing: it records a ``Node`` (the
operation, the tensors it read, the tensor it produced) and returns a new ``KerasTensor`` whose
``_keras_history`` points back at that node. ``fastcnn.models.Functional`` walks these records
from its outputs back to its inputs and compiles the graph into one C++ network.
"""

from fastcnn import _naming


class KerasTensor:
    """A symbolic tensor: ``shape`` (batch first, None when free), ``dtype``, ``name``."""

    def __init__(self, shape, name=None, history=None):
        self.shape = tuple(shape)
        self.dtype = "float32"
        self.name = name or _naming.unique_name("keras_tensor")
        # (operation, node index in operation._inbound_nodes, output index): who produced it.
        self._keras_history = history

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def sparse(self):
        return False

    @property
    def ragged(self):
        return False

    @property
    def node(self):
        operation, node_index, _ = self._keras_history
        return operation._inbound_nodes[node_index]

    def __repr__(self):
        return (f"<KerasTensor shape={self.shape}, dtype={self.dtype}, sparse=False, ragged=False, "
                f"name={self.name}>")

    def __array__(self, dtype=None, copy=None):
        raise TypeError(f"{self!r} is a symbolic placeholder with no value: it cannot become a numpy array. Call "
                        "the model on arrays, or build a Model from symbolic tensors and call model.predict(x).")

    def __len__(self):
        raise TypeError(f"{self!r} is symbolic: len() needs a value. Use `.shape` instead.")

    def __iter__(self):
        raise TypeError(f"{self!r} is symbolic and cannot be iterated over.")

    def __bool__(self):
        raise TypeError(f"{self!r} is symbolic: it has no truth value.")

    # Arithmetic records Keras's operations (fastcnn/layers/_operations.py): +, -, *, / with a number
    # or another tensor, and unary -. The other operators point at what fastcnn has.
    def __add__(self, other):
        return _operation("Add", self, other)

    def __radd__(self, other):
        return _operation("Add", other, self)

    def __sub__(self, other):
        return _operation("Subtract", self, other)

    def __rsub__(self, other):
        return _operation("Subtract", other, self)

    def __mul__(self, other):
        return _operation("Multiply", self, other)

    def __rmul__(self, other):
        return _operation("Multiply", other, self)

    def __truediv__(self, other):
        return _operation("TrueDivide", self, other)

    def __rtruediv__(self, other):
        return _operation("TrueDivide", other, self)

    def __neg__(self):
        return _operation("Negative", self)

    def _unsupported_operator(self, *args):
        raise TypeError("fastcnn's symbolic tensors support +, -, *, / (with a number or another tensor) and unary -; "
                        "use layers (e.g. layers.Activation, layers.Maximum) for anything else. Received another "
                        f"operator on {self!r}")

    __matmul__ = __rmatmul__ = __pow__ = __rpow__ = __floordiv__ = __rfloordiv__ = _unsupported_operator
    __mod__ = __rmod__ = __abs__ = __pos__ = _unsupported_operator


def _operation(class_name, *args):
    from fastcnn.layers import _operations  # noqa: PLC0415 (it imports this module)

    return _operations.CLASSES[class_name]()(*args)


class Node:
    """One call of an operation (a layer or a model) on symbolic tensors."""

    def __init__(self, operation, input_tensors, output_tensors, call_structure, training=None):
        self.operation = operation
        self.input_tensors = list(input_tensors)
        self.output_tensors = list(output_tensors)
        # How the inputs were passed: "single" (one tensor) or "list" (a list, as merge layers take).
        self.call_structure = call_structure
        self.training = training

    @property
    def parent_nodes(self):
        """The nodes that produced this node's inputs (Keras's Node.parent_nodes)."""
        return [tensor.node for tensor in self.input_tensors if tensor._keras_history is not None]

    @property
    def is_input(self):
        return not self.input_tensors


def is_symbolic(value):
    """Whether `value` is a KerasTensor, or a non-empty list/tuple/dict made only of them."""
    if isinstance(value, KerasTensor):
        return True
    if isinstance(value, dict):
        return bool(value) and all(isinstance(v, KerasTensor) for v in value.values())
    if isinstance(value, (list, tuple)):
        return bool(value) and all(isinstance(v, KerasTensor) for v in value)
    return False


def contains_symbolic(value):
    """Whether a KerasTensor is anywhere among `value`'s items (one level of list/tuple/dict)."""
    if isinstance(value, KerasTensor):
        return True
    if isinstance(value, dict):
        value = list(value.values())
    return isinstance(value, (list, tuple)) and any(isinstance(v, KerasTensor) for v in value)


def record(operation, inputs, output_shapes, training=None):
    """Records a call of `operation` on the KerasTensors `inputs` (one, or a list) and returns the
    new output tensor(s): one per shape in `output_shapes` (a list of batch shapes); a single
    output is returned as a tensor."""
    structure = "list" if isinstance(inputs, (list, tuple)) else "single"
    input_tensors = list(inputs) if structure == "list" else [inputs]
    if not hasattr(operation, "_inbound_nodes"):
        operation._inbound_nodes = []
    node_index = len(operation._inbound_nodes)
    outputs = [KerasTensor(shape, history=(operation, node_index, i)) for i, shape in enumerate(output_shapes)]
    operation._inbound_nodes.append(Node(operation, input_tensors, outputs, structure, training))
    return outputs[0] if len(outputs) == 1 else outputs
