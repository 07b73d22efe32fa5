"""A model's layer graph compiled into one C++ network (csrc/runtime/network.h).

Sequential models are chains; functional models are directed acyclic graphs of nodes; models called
as layers inside other models are inlined, so the runtime sees a flat graph of layers. A layer
called several times becomes several runtime nodes that share the first one's weights (their
gradients are summed). Each layer's Variables become views of the network's parameter buffer.
"""

from fastcnn import _core
from fastcnn.layers.base import runtime_shape

# Counts the times any compiled graph has taken Variables to its network: a graph that bound its
# own since the last such event knows, without looking, that its Variables still view its buffer.
_bindings_made = 0


class CompiledGraph:
    """The network of a model and how its nodes map back to layers.

    node_layers[i] is the layer of runtime node i; layer_nodes[id(layer)] lists a layer's nodes
    (the first owns its weights); node_scopes[i] are the models enclosing node i (for their
    trainable flags)."""

    def __init__(self):
        self.network = _core.Network()
        self.node_layers = []
        self.node_scopes = []
        self.layer_nodes = {}
        self.layers = []  # every layer once, in the order of its first node

    def add_layer(self, layer, input_ids, scopes):
        """Adds one call of `layer` reading the tensors `input_ids`; returns its node (its output)."""
        node = len(self.node_layers)
        layer._add_to_network(self.network)
        owner = self.layer_nodes.get(id(layer))
        self.network.connect(node, list(input_ids), -1 if owner is None else owner[0])
        if owner is None:
            self.layer_nodes[id(layer)] = [node]
            self.layers.append(layer)
        else:
            owner.append(node)
        self.node_layers.append(layer)
        self.node_scopes.append(tuple(scopes))
        factors = layer._regularization_factors()
        if factors is not None:
            self.network.set_regularization(node, *factors)
        return node

    def emit(self, model, input_ids, scopes=()):
        """Adds `model`'s layers reading the tensors `input_ids`; returns its output tensor ids."""
        return model._emit_graph(self, list(input_ids), tuple(scopes) + (model,))

    def effective_trainable(self, node):
        return self.node_layers[node].trainable and all(model.trainable for model in self.node_scopes[node])

    def apply_trainable(self):
        self.network.set_trainable_flags([self.effective_trainable(node) for node in range(len(self.node_layers))])

    def bind_weights(self):
        """Points every layer's Variables at its weights in this network (copying their values in)."""
        global _bindings_made
        views = self.network.parameter_views()
        self.bindings = []
        for layer in self.layers:
            for variable, view in zip(layer._weights, views[self.layer_nodes[id(layer)][0]]):
                variable._bind(view, self.network)
                self.bindings.append((variable, view))
        _bindings_made += 1
        self.checked_at = _bindings_made

    def weights_bound(self):
        """Whether every Variable still views this network (another model sharing a layer may have
        compiled or run since and taken the Variables to its own network). Free per step unless
        some graph bound Variables since this one last checked."""
        if self.checked_at == _bindings_made:
            return True
        if all(variable._value is view for variable, view in self.bindings):
            self.checked_at = _bindings_made
            return True
        return False


def compile_model(model, input_sample_shapes):
    """A CompiledGraph of `model` for inputs of these per-sample shapes (layers already built)."""
    graph = CompiledGraph()
    input_ids = [graph.network.add_input(runtime_shape(shape)) for shape in input_sample_shapes]
    output_ids = graph.emit(model, input_ids)
    for index, tensor in enumerate(output_ids):
        if tensor < 0:
            raise ValueError(f"Output {index} of model {model.name!r} is one of its inputs: every output must be "
                             "computed by a layer.")
    graph.network.set_outputs(output_ids)
    graph.network.build()
    graph.bind_weights()
    graph.apply_trainable()
    return graph
