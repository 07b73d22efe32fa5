"""Sequential: a linear stack of layers (structure only; training is Model's, fastcnn/models/model.py).

It compiles to the same runtime graph as a functional model: a chain. Once its input shape is
known it also records the symbolic calls of its layers, so ``model.input``, ``model.output`` and
``layer.output`` work as in Keras (e.g. ``Model(seq.input, seq.layers[1].output)``).
"""

import numpy as np

from fastcnn.layers import node as node_module
from fastcnn.layers.base import Layer, sample_shape
from fastcnn.layers.input_layer import InputLayer
from fastcnn.models.model import Model


class Sequential(Model):
    def __init__(self, layers=None, name=None, trainable=True):
        self._init_model(name, trainable, "sequential")
        self._input_sample_shape = None
        # The model's InputLayer as Keras's Sequential keeps one: the `Input` passed, or one made
        # (named input_layer, input_layer_1, ...) when the model is first built.
        self._input_layer = None
        self._recorded_nodes = []  # (layer, node) of the last build's symbolic calls
        if layers is not None:
            if isinstance(layers, (Layer, InputLayer, Model, node_module.KerasTensor)):
                layers = [layers]
            for layer in layers:
                self.add(layer, rebuild=False)
            self._maybe_build()

    # ---- structure ----

    def add(self, layer, rebuild=True):
        if isinstance(layer, node_module.KerasTensor):
            operation = layer._keras_history[0] if layer._keras_history else None
            if not isinstance(operation, InputLayer):
                raise ValueError("A Sequential model takes a tensor from keras.Input as its first entry only. "
                                 f"Received: {layer!r}, the output of {operation!r}")
            layer = operation
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("An Input can only be the first entry of a Sequential model. "
                                 f"Received {layer!r} after {len(self._layers)} layers.")
            self._input_sample_shape = layer.sample_shape
            self._input_layer = layer
        elif isinstance(layer, (Layer, Model)):
            if layer is self:
                raise ValueError(f"Model {self.name!r} cannot contain itself.")
            if any(existing is layer for existing in self._layers):
                raise ValueError(f"Layer {layer.name!r} is already in this model.")
            if any(existing.name == layer.name for existing in self._layers):
                raise ValueError(f"All layers added to a Sequential model should have unique names. Name "
                                 f"{layer.name!r} is already the name of a layer in this model.")
            if not self._layers and self._input_sample_shape is None:
                declared = layer._declared_input_shape if isinstance(layer, Layer) else (
                    layer._input_sample_shapes[0] if layer.built and len(layer._input_sample_shapes) == 1 else None)
                if declared is not None:
                    self._input_sample_shape = tuple(declared)
            self._layers.append(layer)
        else:
            raise TypeError("Only instances of `fastcnn.layers.Layer` can be added to a Sequential model. "
                            f"Received: {layer!r} (of type {type(layer).__name__})")
        self._invalidate()
        if rebuild:
            self._maybe_build()

    def pop(self, rebuild=True):
        if not self._layers:
            raise IndexError("There are no layers in the model.")
        layer = self._layers.pop()
        self._invalidate()
        if rebuild:
            self._maybe_build()
        return layer

    def _invalidate(self):
        self._network = None
        self._graph = None
        self.built = False

    def _maybe_build(self):
        if self._input_sample_shape is not None and self._layers:
            self._build_network(self._input_sample_shape)

    def build(self, input_shape=None):
        """Builds for `input_shape` (batch dimension first, e.g. (None, 28, 28, 1))."""
        if input_shape is None:
            if self._input_sample_shape is None:
                raise ValueError("You must provide an `input_shape` argument.")
            input_shape = (None,) + self._input_sample_shape
        self._build_network(sample_shape(tuple(input_shape)[1:], f"Model {self.name!r} build"))

    def _ensure_built_for(self, x):
        if self._input_sample_shape is None:
            array = np.asarray(x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x) \
                if not isinstance(x, np.ndarray) else x
            if array.ndim < 2:
                raise ValueError(f"`x` must be a batch of samples (rank >= 2). Received: x.shape={array.shape}")
            self._build_network(sample_shape(array.shape[1:], f"Model {self.name!r} input"))
        elif not self.built:
            self._build_network(self._input_sample_shape)

    def _build_for(self, sample):
        """Used as a layer of another model: built for `sample` inputs; returns its output shape."""
        sample = tuple(sample)
        if self._input_sample_shape is None or not self.built:
            self._build_network(self._input_sample_shape or sample)
        self._check_input_sample(0, sample)
        return self._output_sample_shape

    def _build_network(self, input_sample_shape):
        """Builds each layer for its input shape, then the compiled C++ network holding the weights."""
        with self._lock:
            self._build_network_locked(input_sample_shape)

    def _build_network_locked(self, input_sample_shape):
        if not self._layers:
            raise ValueError(f"Model {self.name!r} has no layers.")
        # A failed build must leave the model as it was: layers built by this attempt are unbuilt
        # again, so the next call can build them for another shape.
        unbuilt = [layer for layer in self._layers if isinstance(layer, Layer) and layer._input_sample_shape is None]
        try:
            shape = tuple(input_sample_shape)
            for layer in self._layers:
                shape = tuple(layer._build_for(shape))
                if len(shape) > 3:
                    raise ValueError(f"Layer {layer.name!r} outputs {(None,) + shape}; fastcnn supports up to 3 "
                                     "dimensions per sample.")
            self._output_shape_after_build = shape
            self._input_sample_shape = tuple(input_sample_shape)
            self._compile_graph([self._input_sample_shape])
        except Exception:
            for layer in unbuilt:
                layer._reset_build()
            self._invalidate()
            raise
        if self._input_layer is None or self._input_layer.sample_shape != self._input_sample_shape:
            self._input_layer = InputLayer(shape=self._input_sample_shape)
        self._record_symbolic_calls()

    def _record_symbolic_calls(self):
        """Calls the layers on the model's symbolic input (replacing the previous build's calls),
        so each layer has an input and output tensor as in a Keras Sequential model."""
        for layer, node in self._recorded_nodes:
            if layer._inbound_nodes and layer._inbound_nodes[-1] is node:
                layer._inbound_nodes.pop()
        self._recorded_nodes = []
        tensor = self._input_layer.output
        for layer in self._layers:
            tensor = node_module.record(layer, tensor, [(None,) + tuple(layer._output_sample_shape)])
            self._recorded_nodes.append((layer, tensor.node))
        self._symbolic_output = tensor

    def _emit_graph(self, graph, input_ids, scopes):
        if len(input_ids) != 1:
            raise ValueError(f"Sequential model {self.name!r} takes one input. Received {len(input_ids)}.")
        tensor = input_ids[0]
        for layer in self._layers:
            if isinstance(layer, Model):
                tensor = graph.emit(layer, [tensor], scopes)[0]
            else:
                tensor = graph.add_layer(layer, [tensor], scopes)
        return [tensor]

    @property
    def _input_sample_shapes(self):
        return None if self._input_sample_shape is None else [self._input_sample_shape]

    @property
    def _output_sample_shapes(self):
        return [tuple(self._layers[-1]._output_sample_shape)]

    @property
    def input(self):
        if not self.built:
            raise AttributeError(f"Sequential model {self.name!r} has no defined input yet: it is built on first use.")
        return self._input_layer.output

    @property
    def output(self):
        if not self.built:
            raise AttributeError(f"Sequential model {self.name!r} has no defined output yet: it is built on first use.")
        return self._symbolic_output

    @property
    def inputs(self):
        return [self.input]

    @property
    def outputs(self):
        return [self.output]
