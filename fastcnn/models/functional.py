"""Functional models: ``Model(inputs, outputs)`` over the graph that layer calls on ``keras.Input``
tensors recorded (fastcnn/layers/node.py). Structure only: training is Model's.

The graph is gathered as Keras's ``map_graph`` gathers it (a depth-first walk from the outputs back
to the inputs, operations ordered by depth and then by first visit), so ``model.layers``, the weight
order and saved configs match Keras's, and compiled into one C++ network (fastcnn/models/_graph.py).
"""

import collections

from fastcnn.layers import node as node_module
from fastcnn.layers.input_layer import InputLayer
from fastcnn.models.model import Model


def _flatten_structure(value, what):
    """(flat list of KerasTensors, structure) for a tensor, a list/tuple or a dict of tensors."""
    if isinstance(value, node_module.KerasTensor):
        return [value], ("single", None)
    if isinstance(value, dict):
        if not value or not all(isinstance(v, node_module.KerasTensor) for v in value.values()):
            raise ValueError(f"`{what}` as a dict must map names to symbolic tensors. Received: {value!r}")
        return list(value.values()), ("dict", list(value.keys()))
    if isinstance(value, (list, tuple)):
        if not value or not all(isinstance(v, node_module.KerasTensor) for v in value):
            raise ValueError(f"`{what}` must be symbolic tensors (from keras.Input and layer calls). "
                             f"Received: {value!r}")
        return list(value), ("list", None)
    raise ValueError(f"`{what}` must be a symbolic tensor (from keras.Input and layer calls), or a list or dict of "
                     f"them. Received: {value!r} (of type {type(value).__name__})")


def _restructure(values, structure):
    kind, keys = structure
    if kind == "single":
        return values[0]
    if kind == "dict":
        return dict(zip(keys, values))
    return list(values)


def map_graph(inputs, outputs):
    """(nodes in topological order without the input nodes, operations ordered as Keras orders
    them). Raises naming what is wrong: a cycle, or an output that needs a tensor the inputs do
    not give ("Graph disconnected")."""
    input_ids = {id(t) for t in inputs}
    finished, in_progress = set(), set()
    ordered = []  # nodes from inputs to outputs
    visit_index = {}  # operation -> first visit

    def visit(tensor):
        if tensor._keras_history is None:
            raise ValueError(f"{tensor!r} was not produced by keras.Input or a layer call.")
        operation, node_index, _ = tensor._keras_history
        node = operation._inbound_nodes[node_index]
        if id(node) in finished:
            return
        if not node.is_input and id(tensor) in input_ids:
            raise ValueError(f"fastcnn's functional models start from keras.Input tensors. {tensor!r} (an output of "
                             f"{operation.name!r}) was passed among the inputs.")
        if id(node) in in_progress:
            raise ValueError(f"Tensor {tensor} from operation '{operation.name}' is part of a cycle.")
        visit_index.setdefault(id(operation), (len(visit_index), operation))
        in_progress.add(id(node))
        for parent in node.input_tensors:
            visit(parent)
        finished.add(id(node))
        in_progress.discard(id(node))
        ordered.append(node)

    for tensor in outputs:
        visit(tensor)
    # Depth: the number of operations between a node and an output (Keras's map_graph).
    node_depth, operation_depth = {}, {}
    in_graph = {id(node) for node in ordered}
    for node in reversed(ordered):
        depth = node_depth.setdefault(id(node), 0)
        depth = max(depth, operation_depth.get(id(node.operation), 0))
        operation_depth[id(node.operation)] = depth
        node_depth[id(node)] = depth
        for parent in node.input_tensors:
            parent_node = parent.node
            if id(parent_node) in in_graph:
                node_depth[id(parent_node)] = max(depth + 1, node_depth.get(id(parent_node), 0))
    for tensor in inputs:  # unused inputs still belong to the model
        operation = tensor._keras_history[0]
        if id(operation) not in operation_depth:
            operation_depth[id(operation)] = 0
            visit_index[id(operation)] = (-1, operation)
    by_depth = collections.defaultdict(list)
    for key, depth in operation_depth.items():
        by_depth[depth].append(visit_index[key])
    operations = []
    for depth in sorted(by_depth, reverse=True):
        operations.extend(operation for _, operation in sorted(by_depth[depth], key=lambda item: item[0]))
    # Every tensor a node reads must come from the inputs or an earlier node.
    computable = set(input_ids)
    reached = []
    for node in ordered:
        if node.is_input:
            if id(node.output_tensors[0]) not in input_ids:
                raise ValueError(f"Graph disconnected: cannot find parent for tensor {node.output_tensors[0]} at "
                                 f"operation '{node.operation.name}': it is an Input that is not among the model's "
                                 f"inputs. The following previous operations were accessed without issue: {reached}")
            continue
        for tensor in node.input_tensors:
            if id(tensor) not in computable:
                raise ValueError(f"Graph disconnected: cannot find parent for tensor {tensor} at operation "
                                 f"'{node.operation.name}'. The following previous operations were accessed without "
                                 f"issue: {reached}")
        reached.append(node.operation.name)
        computable.update(id(t) for t in node.output_tensors)
    names = [operation.name for operation in operations]
    for name in names:
        if names.count(name) != 1:
            raise ValueError(f'The name "{name}" is used {names.count(name)} times in the model. All operation names '
                             "should be unique.")
    return [node for node in ordered if not node.is_input], operations


class Functional(Model):
    """A model over a directed acyclic graph of layer calls: several inputs and outputs (lists or
    dicts), shared layers (one set of weights), models used as layers."""

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to Model: {kwargs}")
        self._init_model(name, trainable, "functional")
        self._inputs, self._inputs_structure = _flatten_structure(inputs, "inputs")
        self._outputs, self._outputs_structure = _flatten_structure(outputs, "outputs")
        for index, tensor in enumerate(self._inputs):
            if any(tensor is other for other in self._inputs[:index]):
                raise ValueError(f"The list of inputs passed to the model contains the same input {tensor!r} twice. "
                                 "Each input must appear once.")
            operation = tensor._keras_history[0] if tensor._keras_history else None
            if not isinstance(operation, InputLayer):
                raise ValueError(f"fastcnn's functional models start from keras.Input tensors. Received input "
                                 f"{index}: {tensor!r}, the output of {operation!r}")
        for index, tensor in enumerate(self._outputs):
            if any(tensor is other for other in self._outputs[:index]):
                raise ValueError(f"The model's outputs list the tensor {tensor!r} twice.")
        self._nodes, operations = map_graph(self._inputs, self._outputs)
        for tensor in self._outputs:
            if any(tensor is t for t in self._inputs):
                raise ValueError(f"Output {tensor!r} is one of the model's inputs: every output must be computed by "
                                 "a layer.")
        for tensor in self._outputs:
            if len(tensor.shape) - 1 > 3:
                raise ValueError(f"fastcnn supports up to 3 dimensions per sample. Received output {tensor!r}")
        self._operations = operations
        self._input_layers = [t._keras_history[0] for t in self._inputs]
        self._layers = [op for op in operations if not isinstance(op, InputLayer)]
        with self._lock:
            self._compile_graph([tuple(t.shape[1:]) for t in self._inputs])

    # ---- structure ----

    @property
    def layers(self):
        """Every layer of the graph, InputLayers included, in Keras's order; the arithmetic
        operations (``x + 3.0``: fastcnn/layers/_operations.py) are not layers, as in Keras."""
        return [op for op in self._operations if not getattr(op, "_is_operation", False)]

    @property
    def operations(self):
        """Every operation of the graph, layers and arithmetic, in Keras's order."""
        return list(self._operations)

    def _emit_graph(self, graph, input_ids, scopes):
        # A call's `training=` argument is kept for configs but not compiled: fit, evaluate and
        # predict run every layer in their own mode, as Keras 3's functional models do (they pass
        # the step's training flag to every call, overriding the recorded one).
        tensor_ids = {id(t): tensor_id for t, tensor_id in zip(self._inputs, input_ids)}
        for node in self._nodes:
            ids = [tensor_ids[id(t)] for t in node.input_tensors]
            if isinstance(node.operation, Model):
                outputs = graph.emit(node.operation, ids, scopes)
            else:
                outputs = [graph.add_layer(node.operation, ids, scopes)]
            for tensor, tensor_id in zip(node.output_tensors, outputs):
                tensor_ids[id(tensor)] = tensor_id
        return [tensor_ids[id(t)] for t in self._outputs]

    @property
    def _input_sample_shapes(self):
        return [tuple(t.shape[1:]) for t in self._inputs]

    @property
    def _output_sample_shapes(self):
        return [tuple(t.shape[1:]) for t in self._outputs]

    def _build_for(self, sample):
        """Used as a layer of a Sequential model: checks the input shape; returns the output's."""
        if len(self._inputs) != 1 or len(self._outputs) != 1:
            raise ValueError(f"Model {self.name!r} has {len(self._inputs)} inputs and {len(self._outputs)} outputs: "
                             "only a model with one of each can be a layer of a Sequential model.")
        self._check_input_sample(0, sample)
        return self._output_sample_shapes[0]

    def _input_names(self):
        kind, keys = self._inputs_structure
        return list(keys) if kind == "dict" else [layer.name for layer in self._input_layers]

    @property
    def inputs(self):
        return list(self._inputs)

    @property
    def outputs(self):
        return list(self._outputs)

    @property
    def input(self):
        return _restructure(self._inputs, self._inputs_structure)

    @property
    def output(self):
        return _restructure(self._outputs, self._outputs_structure)

    @property
    def output_names(self):
        return [t._keras_history[0].name for t in self._outputs]

    @property
    def input_names(self):
        return self._input_names()
