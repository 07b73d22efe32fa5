"""Model: Keras's trainer (compile, fit, evaluate, predict, save) shared by every model kind.

``Sequential`` (fastcnn/models/sequential.py) and functional models (fastcnn/models/functional.py)
describe structure only; both compile to one C++ network (fastcnn/models/_graph.py). Python drives
epochs and callbacks; everything per batch (gathering the batch, forward, loss, backward, optimizer
update) is one call into that network with the GIL released. Weights live in the network's flat
buffer; layers expose views of it.
"""

import math
import numbers
import threading
import weakref

import numpy as np

from fastcnn import _naming, _random
from fastcnn.models import _quantization
from fastcnn import losses as losses_module
from fastcnn import metrics as metrics_module
from fastcnn import optimizers as optimizers_module
from fastcnn.layers import node as node_module
from fastcnn.layers.base import runtime_shape
from fastcnn.models import _batch_input, _graph, _loop, _step_guard, _summary, _weights_file
from fastcnn.models._batch_input import sample_count as _count
from fastcnn.models._batch_input import take as _take


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose in (0, 1, 2) and not isinstance(verbose, bool):
        return verbose
    raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose!r}")


def _check_batch_size(batch_size, name="batch_size"):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={batch_size!r}")
    return int(batch_size)


def _as_array(value, name):
    if value is None:
        raise ValueError(f"`{name}` is required. Received: {name}=None")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise TypeError(f"`{name}` must be a numeric array. Received: {type(value).__name__} ({error})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must be a numeric array. Received an array of dtype {array.dtype}")
    return array


class Model:
    """Keras's Model. ``Model(inputs, outputs)`` builds a functional model (Keras's Functional);
    ``Sequential`` is the other kind. Subclassing with a custom ``call`` is not supported: fastcnn
    compiles a graph of its own layers."""

    _call_takes_mask = True  # Keras records a model call with mask=None

    def __new__(cls, *args, **kwargs):
        if cls is Model:
            from fastcnn.models.functional import Functional  # noqa: PLC0415 (functional imports model)

            if not args and "inputs" not in kwargs and "outputs" not in kwargs:
                raise TypeError("fastcnn builds models from layers: use keras.Model(inputs, outputs) with "
                                "tensors from keras.Input and layer calls, or keras.Sequential([...]). Subclassing "
                                "Model with a custom call() is not supported.")
            return super().__new__(Functional)
        return super().__new__(cls)

    def _init_model(self, name, trainable, default_name):
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        self.name = name or _naming.unique_name(default_name)
        if not isinstance(trainable, bool):
            raise TypeError(f"`trainable` must be a bool. Received: trainable={trainable!r}")
        self._trainable = trainable
        self._layers = []  # the model's own layers (and models used as layers), InputLayers excluded
        self._compile_arguments = None
        self._graph = None  # the CompiledGraph once built
        self._network = None
        self._compiled = False
        self.optimizer = None
        self.loss = None
        self._output_losses = []  # per output: its Loss
        self._loss_weights = []
        # Per output: compile's metrics as given (a Metric, or "accuracy"/"acc", which resolve once
        # the output's size is known) and, once resolved, the Metric objects (_compiled_metrics).
        self._metric_specs = [[]]
        self._weighted_metric_specs = [[]]  # compile's weighted_metrics, alike
        self._output_metrics = None
        self.stop_training = False
        self.history = None
        self._inbound_nodes = []  # calls of this model inside other models
        self._models = weakref.WeakSet()  # models whose compiled graph contains this one
        # Held by each training step (with its constraints), each predict/evaluate batch, building
        # and set_weights/load_weights: threads sharing the model see whole steps only. Reentrant,
        # as a callback run inside a step's bookkeeping may predict.
        self._lock = threading.RLock()
        self.built = False

    # ---- structure (the subclasses define it) ----

    @property
    def layers(self):
        return list(self._layers)

    def get_layer(self, name=None, index=None):
        layers = self.layers
        if index is not None:
            if not isinstance(index, int) or not -len(layers) <= index < len(layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(layers)} layers.")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in layers]}.")

    def _emit_graph(self, graph, input_ids, scopes):
        """Adds this model's layers to `graph` reading `input_ids`; returns the output tensor ids."""
        raise NotImplementedError

    @property
    def _input_sample_shapes(self):
        raise NotImplementedError

    @property
    def _output_sample_shapes(self):
        raise NotImplementedError

    def _ensure_built_for(self, x):
        """Builds the model from the first data it sees where its input shape is not known yet."""

    def _compile_graph(self, input_sample_shapes):
        """Compiles the layer graph into a new network; the layers' weights become views of it."""
        graph = _graph.compile_model(self, input_sample_shapes)
        for layer in graph.layers:
            layer._models.add(self)
        for scopes in graph.node_scopes:
            for model in scopes:
                model._models.add(self)
        self._graph = graph
        self._network = graph.network
        self._node_layers = graph.node_layers
        self.built = True
        if self._compiled:
            self._configure_network()

    def _use_own_weights(self):
        """Takes the layers' Variables back into this model's network when another model sharing
        layers (a base model inside a bigger one) has compiled or run since."""
        if self._graph is not None and not self._graph.weights_bound():
            self._graph.bind_weights()

    def _variable_paths(self, prefix=""):
        """(Variable, Keras's path) for every weight: Keras names a weight by the layer and the
        Sequential models that built it (`sequential/dense/kernel`); a functional model adds no
        name of its own (its layers were built by the calls that made its graph)."""
        from fastcnn.models.sequential import Sequential  # noqa: PLC0415

        own = prefix + (f"{self.name}/" if isinstance(self, Sequential) else "")
        for layer in self._layers:
            if isinstance(layer, Model):
                yield from layer._variable_paths(own)
            else:
                for variable in layer._weights:
                    yield variable, own + variable.path

    def _trainable_weight_locations(self):
        """(network node, index among that node's weights, Variable, Keras path) for each of
        model.trainable_weights, in that order (the optimizer's)."""
        location = {}
        for layer in self._graph.layers:
            owner = self._graph.layer_nodes[id(layer)][0]
            for index, variable in enumerate(layer._weights):
                location[id(variable)] = (owner, index)
        paths = {id(variable): path for variable, path in self._variable_paths()}
        return [location[id(v)] + (v, paths[id(v)]) for v in self.trainable_weights]

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Freezing the model freezes every layer's weights (and runs BatchNormalization in
        inference mode); as in Keras 3 the flag is set on every layer inside, so unfreezing the
        model unfreezes them all."""
        if not isinstance(value, bool):
            raise TypeError(f"`trainable` must be a bool. Received: trainable={value!r}")
        affected = {id(self): self}
        self._set_trainable_quietly(value, affected)
        for model in affected.values():
            model._refresh_trainable()

    def _set_trainable_quietly(self, value, affected):
        """Sets the flag here and on every layer inside, collecting the models to refresh."""
        self._trainable = value
        for model in self._models:
            affected[id(model)] = model
        for layer in self._layers:
            if isinstance(layer, Model):
                layer._set_trainable_quietly(value, affected)
            else:
                layer._trainable = value
                for model in layer._models:
                    affected[id(model)] = model

    def _refresh_trainable(self):
        """Hands every node's trainable flag (its layer's and every enclosing model's) to the network."""
        if self._graph is not None:
            with self._lock:
                self._graph.apply_trainable()

    @property
    def input_shape(self):
        shapes = self._input_sample_shapes
        if shapes is None:
            raise AttributeError(f"Model {self.name!r} has no input shape yet: it is built on first use.")
        batch_shapes = [(None,) + tuple(shape) for shape in shapes]
        return batch_shapes[0] if len(batch_shapes) == 1 else batch_shapes

    @property
    def output_shape(self):
        if not self.built:
            raise AttributeError(f"Model {self.name!r} is not built yet.")
        shapes = [(None,) + tuple(shape) for shape in self._output_sample_shapes]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def _output_sample_shape(self):
        """The single output's per-sample shape (what a model used as a layer produces)."""
        if not self.built:
            return None
        return tuple(self._output_sample_shapes[0])

    # ---- weights ----

    @property
    def weights(self):
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self._layers for w in layer.trainable_weights] if self.trainable else []

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    def get_weights(self):
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        _quantization.refuse_if_quantized(self, "set_weights")
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self._layers)
        if len(weights) != expected:
            raise ValueError(f"You called `set_weights(weights)` on model {self.name!r} with a weight list of "
                             f"length {len(weights)}, but the model was expecting {expected} weights.")
        start = 0
        pending = []
        for layer in self._layers:
            count = len(layer.weights)
            pending.append((layer, weights[start:start + count]))
            start += count
        for layer, layer_weights in pending:  # check every shape before writing any
            for variable, value in zip(layer.weights, layer_weights):
                if np.shape(value) != variable.shape:
                    raise ValueError(f"Layer {layer.name!r} weight shape {variable.shape} is not compatible "
                                     f"with provided weight shape {np.shape(value)}.")
        with self._lock:
            for layer, layer_weights in pending:
                layer.set_weights(layer_weights)

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Writes the whole model — architecture, weights, and (when compiled) the compile settings
        and optimizer state — to a Keras 3 `.keras` file that `keras.models.load_model` reads, and
        `fastcnn.models.load_model` too (format, checks and atomic write:
        fastcnn/models/_keras_file.py; needs h5py)."""
        _quantization.refuse_if_quantized(self, "save")
        if zipped not in (None, True):
            raise ValueError(f"fastcnn writes zipped `.keras` files only. Received: zipped={zipped!r}")
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to save: {kwargs}")
        from fastcnn.models import _keras_file  # zipfile and the configs only when saving

        _keras_file.save_model(self, filepath, overwrite=overwrite)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras's export: `format="onnx"` writes the inference graph as an ONNX model with a
        dynamic batch axis (`opset_version=` keyword, default 18), for ONNX Runtime and other ONNX
        consumers (needs the onnx package: pip install "fastcnn[onnx]"; details in
        fastcnn/models/_onnx_export.py). `input_signature`, when given, must describe the model's
        inputs (one spec or shape per input, the batch size free)."""
        _quantization.refuse_if_quantized(self, "export")
        if format != "onnx":
            raise ValueError(f"fastcnn exports models to ONNX only: call export(filepath, format='onnx'). "
                             f"Received: format={format!r}")
        unknown = set(kwargs) - {"opset_version"}
        if unknown:
            raise TypeError(f"Unrecognized keyword arguments passed to export: {sorted(unknown)}")
        if input_signature is not None:
            specs = input_signature if isinstance(input_signature, (list, tuple)) else [input_signature]
            expected = [tuple(shape) for shape in self._input_sample_shapes or []]
            received = [tuple(getattr(spec, "shape", spec))[1:] for spec in specs]
            if received != expected:
                raise ValueError(f"`input_signature` must describe the model's inputs, per-sample shapes {expected} "
                                 f"with any batch size. Received per-sample shapes {received}")
        from fastcnn.models import _onnx_export  # onnx only when exporting

        with self._lock:
            return _onnx_export.export_onnx(self, filepath, kwargs.get("opset_version"), verbose)

    def save_weights(self, filepath, overwrite=True):
        """Writes the weights to a Keras 3 `.weights.h5` file, which `keras.Sequential.load_weights`
        reads too (layout and checks: fastcnn/models/_weights_file.py; needs h5py)."""
        _quantization.refuse_if_quantized(self, "save_weights")
        _weights_file.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Reads a `.weights.h5` file written by fastcnn or Keras 3, or a legacy Keras 2 `.h5` /
        `.hdf5` file (fastcnn/models/_legacy_weights_file.py; `by_name=True` matches its layers by
        name); shapes are checked first and a mismatch raises naming the layer (nothing loaded), or
        with `skip_mismatch=True` that layer is skipped with a warning."""
        _quantization.refuse_if_quantized(self, "load_weights")
        from fastcnn.models import _legacy_weights_file

        by_name = kwargs.pop("by_name", None)
        if kwargs:
            raise ValueError(f"Invalid keyword arguments: {kwargs}")
        path = _weights_file._as_path(filepath)
        with self._lock:
            if _legacy_weights_file.is_legacy_path(path):
                _legacy_weights_file.load_weights(self, path, skip_mismatch=skip_mismatch,
                                                  by_name=bool(by_name) if by_name is not None else False)
                return
            if by_name is not None:
                raise ValueError(f"`by_name` only supports loading legacy '.h5' or '.hdf5' files. Received: {path}")
            _weights_file.load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def count_params(self):
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on model {self.name!r}, but the model isn't "
                             "built. You can build it manually via: `model.build(batch_input_shape)`.")
        return sum(layer.count_params() for layer in self._layers)

    # ---- configuration (Keras's formats: models/_to_config.py, models/_from_config.py) ----

    def get_config(self):
        """Keras's config of this model kind (Sequential or Functional), each layer serialized as
        Keras's serialize_keras_object does."""
        from fastcnn.models import _to_config  # noqa: PLC0415 (it imports this module)

        return _to_config.model_config(self)

    def get_build_config(self):
        if not self.built:
            return None
        return {"input_shape": self.input_shape}

    def get_compile_config(self):
        """Keras's compile_config ({} before compile): optimizer, loss, metrics, ... serialized."""
        from fastcnn.models import _to_config  # noqa: PLC0415

        return _to_config.compile_config(self)

    def compile_from_config(self, config):
        """Keras's compile_from_config: compiles this model as a compile_config (from
        get_compile_config, or a .keras file's) describes, its entries checked first."""
        from fastcnn.models import _compile_config  # noqa: PLC0415

        _compile_config.compile_from_config(self, config)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A model from a Keras-format Sequential or Functional config (the "config" entry of a
        serialized model), checked against fastcnn's allow-lists: nothing named in it is imported
        or called."""
        from fastcnn.models import _from_config  # noqa: PLC0415 (it imports this module)

        if custom_objects is not None:
            raise ValueError("fastcnn builds models from its own allow-listed classes only; `custom_objects` "
                             f"is not supported. Received: custom_objects={custom_objects!r}")
        return _from_config.model_from_config(cls, config)

    def to_json(self, **kwargs):
        """The model serialized as Keras's ``model.to_json()``: json.dumps of the dict that
        ``fastcnn.saving.serialize_model`` returns (kwargs go to json.dumps)."""
        import json  # noqa: PLC0415

        from fastcnn.models import _to_config  # noqa: PLC0415

        return json.dumps(_to_config.serialize_model(self), **kwargs)

    # ---- summary ----

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Prints Keras's summary table (fastcnn/models/_summary.py); a functional model's has the
        "Connected to" column, show_trainable=True adds "Trainable"."""
        if positions is not None or expand_nested or layer_range is not None:
            raise ValueError("fastcnn's summary takes line_length, print_fn and show_trainable. Received: "
                             f"positions={positions!r}, expand_nested={expand_nested!r}, layer_range={layer_range!r}")
        optimizer_count = None
        if self._compiled and self.optimizer is not None and self.optimizer.built:
            optimizer_count = self.optimizer.count_variables(sum(math.prod(w.shape) for w in self.trainable_weights))
        text = _summary.summarize(self, line_length, show_trainable, optimizer_count)
        if print_fn is None:
            print(text, end="")
        else:
            print_fn(text)

    # ---- compile ----

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto"):
        """Keras's compile. A model with several outputs takes `loss` as one loss for every output,
        a list (one per output) or a dict keyed by output name; `loss_weights` and `metrics` alike
        (metrics per output: a list of lists, or a dict). `weighted_metrics` take the same forms and
        are updated with the sample weights (fit's sample_weight or class_weight, evaluate's
        sample_weight)."""
        if weighted_metrics is not None and not isinstance(weighted_metrics, (list, tuple, dict)):
            raise ValueError("Expected `weighted_metrics` argument to be a list, tuple, or dict. Received instead: "
                             f"weighted_metrics={weighted_metrics!r} of type {type(weighted_metrics)}")
        if not isinstance(run_eagerly, bool):
            raise TypeError(f"`run_eagerly` must be a bool. Received: run_eagerly={run_eagerly!r}")
        if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, numbers.Integral) \
                or steps_per_execution <= 0:
            raise ValueError("`steps_per_execution` must be a positive integer. Received: "
                             f"steps_per_execution={steps_per_execution!r}")
        if not (isinstance(jit_compile, bool) or jit_compile == "auto"):
            raise ValueError(f"`jit_compile` must be a bool or 'auto'. Received: jit_compile={jit_compile!r}")
        if loss is None:
            raise ValueError("fastcnn needs a `loss` in compile(): e.g. loss='sparse_categorical_crossentropy'.")
        names = self._output_names_for_compile()
        output_losses = [losses_module.get(item) for item in _per_output(loss, names, "loss")]
        if any(item is None for item in output_losses):
            raise ValueError(f"fastcnn needs a loss for every output of model {self.name!r}. Received: loss={loss!r}")
        weights = [1.0] * len(names)
        if loss_weights is not None:
            weights = _per_output(loss_weights, names, "loss_weights", broadcast=False)
            for weight in weights:
                if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not np.isfinite(weight) \
                        or weight < 0:
                    raise ValueError(f"`loss_weights` must be finite non-negative numbers. Received: "
                                     f"loss_weights={loss_weights!r}")
        raw_metrics = metrics
        specs = _metric_specs(metrics, names, "metrics")
        weighted_specs = _metric_specs(weighted_metrics, names, "weighted_metrics")
        self.optimizer = optimizers_module.get(optimizer)
        self._output_losses = output_losses
        self._loss_weights = [float(w) for w in weights]
        self._metric_specs = specs
        self._weighted_metric_specs = weighted_specs
        self._output_metrics = None
        self.loss = output_losses[0] if len(names) == 1 else loss
        # What get_compile_config reports, as Keras records it: the arguments as passed (a single
        # metric as a one-item list: Keras's compile takes lists only), jit_compile="auto" resolved
        # as Keras resolves it on a CPU (False). fastcnn runs every step compiled, so run_eagerly,
        # steps_per_execution and jit_compile change nothing else.
        self._compile_arguments = {"loss": loss, "loss_weights": loss_weights,
                                   "metrics": None if raw_metrics is None else (metrics if len(names) == 1
                                                                                else raw_metrics),
                                   "weighted_metrics": weighted_metrics,
                                   "run_eagerly": run_eagerly, "steps_per_execution": int(steps_per_execution),
                                   "jit_compile": False if jit_compile == "auto" else jit_compile}
        self._compiled = True
        self.stop_training = False
        if self._network is not None:
            self._configure_network()

    def _output_names_for_compile(self):
        """The output names compile's lists and dicts refer to (one name for a single output)."""
        return list(getattr(self, "output_names", None) or ["output_0"])

    @property
    def compiled(self):
        return self._compiled

    @property
    def metrics_names(self):
        return list(self._log_keys())

    def _log_keys(self):
        """The keys of evaluate's list, in Keras's order: the loss, each output's loss (several
        outputs), then every output's metrics."""
        return ["loss"] + [f"{name}_loss" for name in self._output_names_for_compile()
                           if len(self._output_losses) > 1] + [key for key, _ in self._metric_keys()]

    def _metric_keys(self):
        """(log key, Metric) of every compiled metric: the metrics of every output, then the weighted
        metrics of every output, named as Keras's CompileMetrics.result names them: the metric's
        name, prefixed with its output's name when the model has several; a repeated name gains
        "_1", "_2", ...; a weighted metric whose name is taken becomes "weighted_" + its name."""
        names = self._output_names_for_compile()
        several = len(self._output_losses) > 1
        unweighted, weighted = self._metric_sets()
        keys, counters = [], {}

        def numbered(key):
            if key not in counters:
                counters[key] = 1
                return key
            counters[key] += 1
            return f"{key}_{counters[key] - 1}"

        for name, metrics in zip(names, unweighted):
            for metric in metrics:
                keys.append((numbered(f"{name}_{metric.name}" if several else metric.name), metric))
        for name, metrics in zip(names, weighted):
            for metric in metrics:
                key = f"{name}_{metric.name}" if several else metric.name
                if key in counters:
                    key = numbered(f"{name}_weighted_{metric.name}" if several else f"weighted_{metric.name}")
                else:
                    counters[key] = 1
                keys.append((key, metric))
        return keys

    def _metric_sets(self):
        """(metrics, weighted metrics), each per output; compile's "accuracy" becomes BinaryAccuracy
        for a one-unit output, SparseCategoricalAccuracy for class-index targets, CategoricalAccuracy
        otherwise (Keras's rule), named as given. Before the model is built, the accuracy strings
        are left out (their kind is not known yet)."""
        if self._output_metrics is None:
            specs = (self._metric_specs, self._weighted_metric_specs)
            if self._network is None:
                return tuple([[m for m in entries if not isinstance(m, str)] for entries in kind] for kind in specs)
            self._output_metrics = tuple([self._resolve_metrics(index, entries) for index, entries in enumerate(kind)]
                                         for kind in specs)
        return self._output_metrics

    def _resolve_metrics(self, index, entries):
        metrics = []
        for entry in entries:
            if isinstance(entry, str):
                units = self._network.output_shapes[index][2]
                if units == 1:
                    entry = metrics_module.BinaryAccuracy(name=entry)
                elif self._output_losses[index].sparse:
                    entry = metrics_module.SparseCategoricalAccuracy(name=entry)
                else:
                    entry = metrics_module.CategoricalAccuracy(name=entry)
            metrics.append(entry)
        return metrics

    @property
    def metrics(self):
        """The compiled metrics (Keras lists its loss tracker first; fastcnn reports the loss in the
        logs without a Metric object)."""
        return [metric for _, metric in self._metric_keys()] if self._compiled else []

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()

    def _metric_state(self):
        return np.concatenate([m._state_vector() for m in self.metrics] + [np.zeros(0)])

    def _set_metric_state(self, vector):
        offset = 0
        for metric in self.metrics:
            size = len(metric._state_vector())
            metric._set_state_vector(vector[offset:offset + size])
            offset += size

    def _update_metrics(self, targets, indices):
        """Every compiled metric updated with the last pass's outputs against truth[indices] (per
        output): the metrics without sample weights, the weighted metrics with the sample weights
        (every output the same ones, as Keras repeats them)."""
        per_output, weighted = self._metric_sets()
        if not any(per_output) and not any(weighted):
            return
        truth = targets["truth"]
        truths = truth if isinstance(truth, list) else [truth]
        step_targets = self._step_counted_targets(targets)
        count = len(indices)
        weights = targets.get("sample_weights")
        weights = None if weights is None else weights[indices]  # every output's weighted metrics share them
        outputs = matches = None
        for index, target in enumerate(truths):
            y_pred = y_true = None
            for metric, weighted_metric in [(m, False) for m in per_output[index]] + [(m, True) for m in weighted[index]]:
                # Sparse / categorical accuracy as the step counted it, while its outputs were in
                # cache: the same total and count as update_state's numpy pass.
                if (not weighted_metric and step_targets[index] is not None
                        and metrics_module._step_counted_target(metric) == step_targets[index]):
                    if matches is None:
                        matches = self._network.step_argmax_matches()
                    metric._add_matches(matches[index] if count else 0, count)
                    continue
                if y_pred is None:
                    if outputs is None:
                        outputs = self._network.step_outputs()
                    output = outputs[index]
                    y_pred = output.reshape((len(output),) + tuple(self._output_sample_shapes[index]))
                    y_true = target[indices]
                if weighted_metric:
                    metric.update_state(y_true, y_pred, sample_weight=weights)
                else:
                    metric.update_state(y_true, y_pred)

    @staticmethod
    def _step_counted_targets(targets):
        """Per output, which targets the compiled step compared its argmax with (metrics'
        _step_counted_target): "labels", "probabilities" where the metrics see the very rows the
        step used (no label smoothing), else None."""
        labels, probabilities, truth = targets["labels"], targets["probabilities"], targets["truth"]
        if not isinstance(truth, list):
            labels, probabilities, truth = [labels], [probabilities], [truth]
        return ["labels" if label is not None else "probabilities" if rows is seen else None
                for label, rows, seen in zip(labels, probabilities, truth)]

    def _configure_network(self):
        if len(self._output_losses) != self._network.output_count:
            raise ValueError(f"Model {self.name!r} has {self._network.output_count} outputs but was compiled with "
                             f"{len(self._output_losses)} losses.")
        for index, (loss, weight) in enumerate(zip(self._output_losses, self._loss_weights)):
            if loss.kind in ("categorical_crossentropy", "categorical_focal_crossentropy") and \
                    self._network.output_shapes[index][2] == 1:
                raise ValueError(f"Output {index} of model {self.name!r} has one unit, so {loss.name} (a softmax over "
                                 "the units) is always 0 and nothing trains. For two classes use one sigmoid unit "
                                 "with loss='binary_crossentropy', or two units with a categorical loss.")
            self._network.configure_output_loss(index, loss.from_logits, weight, loss.kind, **loss._kernel_options())
        self.optimizer._attach(self._network, model=self)

    def _require_compiled(self, what):
        if not self._compiled:
            raise ValueError(f"You must call `compile()` before using the model for {what}.")

    # ---- data ----

    def _prepare_x(self, x, name="x"):
        """x as contiguous float32 of shape (n,) + runtime shape, or for a model with several
        inputs a list of such arrays (from a list, or a dict keyed by input name); builds the
        model on first data where its input shape is not known yet."""
        with self._lock:  # two threads calling an unbuilt model build it once
            self._ensure_built_for(x)
        shapes = self._input_sample_shapes
        if len(shapes) == 1:
            if isinstance(x, (list, tuple)) and len(x) == 1 and not np.isscalar(x[0]) and np.ndim(x[0]) >= 2:
                x = x[0]  # [array] for a single-input model, as Keras accepts
            return self._prepare_input(x, shapes[0], 0, name)
        if isinstance(x, dict):
            names = self._input_names()
            unknown = sorted(set(x) - set(names))
            if unknown or len(x) != len(names):
                raise ValueError(f"`{name}` as a dict needs one array per input name {names}. Received keys: "
                                 f"{sorted(x)}")
            x = [x[input_name] for input_name in names]
        if not isinstance(x, (list, tuple)):
            raise ValueError(f"Model {self.name!r} has {len(shapes)} inputs: pass `{name}` as a list of "
                             f"{len(shapes)} arrays (or a dict keyed by input name). Received: {type(x).__name__}")
        if len(x) != len(shapes):
            raise ValueError(f"Model {self.name!r} expects {len(shapes)} input(s), but it received {len(x)} input "
                             "arrays.")
        arrays = [self._prepare_input(value, shape, index, f"{name}[{index}]")
                  for index, (value, shape) in enumerate(zip(x, shapes))]
        counts = {a.shape[0] for a in arrays}
        if len(counts) > 1:
            raise ValueError("Data cardinality is ambiguous. Make sure all arrays contain the same number of "
                             f"samples. Received input sizes: {[a.shape[0] for a in arrays]}")
        return arrays

    def _prepare_input(self, value, shape, index, name):
        array = _as_array(value, name)
        if array.ndim < 2:
            raise ValueError(f"`{name}` must be a batch of samples (rank >= 2). Received: {name}.shape={array.shape}")
        self._check_input_sample(index, array.shape[1:])
        array = np.ascontiguousarray(array, dtype=np.float32)
        return array.reshape((array.shape[0],) + runtime_shape(tuple(shape)))

    def _check_input_sample(self, index, sample):
        """Input `index` takes samples of the model's shape, in Keras's words when not."""
        expected = tuple(self._input_sample_shapes[index])
        if tuple(sample) != expected:
            raise ValueError(f'Input {index} of layer "{self.name}" is incompatible with the layer: expected shape='
                             f"{(None,) + expected}, found shape={(None,) + tuple(sample)}")

    def _input_names(self):
        return [f"input_{index}" for index in range(len(self._input_sample_shapes))]

    def _prepare_y(self, y, samples, name="y"):
        """Targets for the network: {"labels": ..., "probabilities": ...}, each an array or None
        for a single output, or a list with one entry per output (from a list of arrays or a dict
        keyed by output name)."""
        count = len(self._output_losses)
        if count == 1:
            if isinstance(y, (list, tuple)) and len(y) == 1 and np.ndim(y[0]) >= 1 and len(y[0]) == samples:
                y = y[0]  # [labels] for a single-output model, as Keras accepts
            return self._prepare_output_targets(y, samples, 0, name)
        names = self._output_names_for_compile()
        if isinstance(y, dict):
            if set(y) != set(names):
                raise ValueError(f"`{name}` as a dict needs one entry per output name {names}. Received keys: "
                                 f"{sorted(y)}")
            y = [y[output_name] for output_name in names]
        if not isinstance(y, (list, tuple)) or len(y) != count:
            raise ValueError(f"Model {self.name!r} has {count} outputs {names}: pass `{name}` as a list of {count} "
                             f"arrays or a dict keyed by output name. Received: {type(y).__name__}"
                             + (f" of length {len(y)}" if isinstance(y, (list, tuple)) else ""))
        parts = [self._prepare_output_targets(value, samples, index, f"{name}[{index}]")
                 for index, value in enumerate(y)]
        return {key: [part[key] for part in parts] for key in ("labels", "probabilities", "truth")}

    def _prepare_output_targets(self, y, samples, index, name):
        array = _as_array(y, name)
        if array.ndim == 0 or array.shape[0] != samples:
            sizes = array.shape[0] if array.ndim else "a scalar"
            raise ValueError(f"Data cardinality is ambiguous. Make sure all arrays contain the same number "
                             f"of samples.'x' sizes: {samples}\n'{name}' sizes: {sizes}")
        shape = self._network.output_shapes[index]
        classes = shape[2]
        if math.prod(shape[:2]) != 1:
            raise ValueError(f"fastcnn's losses need a model whose output is a vector of class scores; this "
                             f"model's output {index} is {(None,) + tuple(self._output_sample_shapes[index])}. Add a "
                             "Flatten or global pooling layer.")
        loss = self._output_losses[index]
        # "truth": what the metrics compare with (Keras's metrics see the targets as given, before
        # a loss's label smoothing).
        if loss.sparse:
            labels = loss._prepare_targets(array, classes)
            return {"labels": labels, "probabilities": None, "truth": labels}
        probabilities, truth = loss._targets_and_truth(array, classes)
        return {"labels": None, "probabilities": probabilities, "truth": truth}

    def _prepare_sample_weights(self, sample_weight, class_weight, targets, samples):
        """Per-sample loss weights (float32, one per sample) from sample_weight or class_weight."""
        if sample_weight is not None and class_weight is not None:
            raise ValueError("You cannot pass both `class_weight` and `sample_weight` at the same time.")
        if sample_weight is not None:
            weights = _as_array(sample_weight, "sample_weight").astype(np.float64)
            if weights.ndim == 2 and weights.shape[1] == 1:
                weights = weights[:, 0]
            if weights.shape != (samples,):
                raise ValueError(f"`sample_weight` must have shape ({samples},), one weight per sample. "
                                 f"Received: sample_weight.shape={weights.shape}")
            if not np.all(np.isfinite(weights)):
                raise ValueError("`sample_weight` must hold finite numbers.")
            return np.ascontiguousarray(weights, dtype=np.float32)
        if class_weight is not None:
            if len(self._output_losses) > 1:
                raise ValueError("`class_weight` is only supported for models with a single output. Model "
                                 f"{self.name!r} has {len(self._output_losses)}.")
            if not isinstance(class_weight, dict):
                raise ValueError(f"`class_weight` must be a dict of class index -> weight. Received: {class_weight!r}")
            classes = self._network.output_shape[2]
            table = np.ones(classes, dtype=np.float32)
            for key, value in class_weight.items():
                if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < classes:
                    raise ValueError(f"`class_weight` keys must be class indices in [0, {classes}). Received key {key!r}")
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
                    raise ValueError(f"`class_weight` values must be finite numbers. Received {key!r}: {value!r}")
                table[int(key)] = value
            labels = targets["labels"]
            if labels is None:
                # One-hot rows give their argmax; one-unit binary targets their rounded value (Keras's rule).
                probabilities = targets["probabilities"]
                labels = (np.round(probabilities[:, 0]).astype(np.int64) if probabilities.shape[1] == 1
                          else np.argmax(probabilities, axis=1))
            return np.ascontiguousarray(table[labels])
        return None

    # ---- training ----

    def _prepare_validation_arrays(self, validation_data):
        """(x_val, targets) from validation_data = (x_val, y_val) or (x_val, y_val, sample_weight)."""
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("`validation_data` must be a tuple (x_val, y_val), a generator, a PyDataset or a "
                             f"dataset. Received: {type(validation_data).__name__}")
        x_val = self._prepare_x(validation_data[0], "x_val")
        val_targets = self._prepare_y(validation_data[1], _count(x_val), "y_val")
        val_weights = validation_data[2] if len(validation_data) == 3 else None
        val_targets["sample_weights"] = self._prepare_sample_weights(val_weights, None, val_targets, _count(x_val))
        return x_val, val_targets

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq=1, check_numerics=False):
        """Trains on arrays `x`, `y` (in batches of `batch_size`), or on a generator/iterator of
        batches, a `fastcnn.utils.PyDataset` or a dataset such as `image_dataset_from_directory`'s
        (no `y`, `batch_size` or `sample_weight` then; `steps_per_epoch` limits an epoch's batches).
        `validation_data` takes the same kinds (with `validation_steps`). Returns the History.

        `check_numerics=True` (fastcnn's, not Keras's) checks the loss and the weights after every
        step; at the first non-finite value it undoes that step and raises FloatingPointError naming
        where the value first appeared (fastcnn/models/_step_guard.py). Ctrl-C lands between steps."""
        _quantization.refuse_if_quantized(self, "fit")
        self._require_compiled("training")
        if check_numerics not in (True, False):
            raise ValueError(f"`check_numerics` must be True or False. Received: check_numerics={check_numerics!r}")
        hook = _loop.step_hook()
        hook.check_fit(_batch_input.is_batch_source(x) or (validation_data is not None
                                                           and _batch_input.is_batch_source(validation_data)),
                       check_numerics)
        numerics = _step_guard.NumericsCheck(self) if check_numerics else None
        verbose = _check_verbose(verbose)
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch), ("validation_freq", validation_freq)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < (1 if name != "initial_epoch" else 0):
                raise ValueError(f"`{name}` must be a {'non-negative' if name == 'initial_epoch' else 'positive'} "
                                 f"integer. Received: {name}={value!r}")
        if not isinstance(validation_split, numbers.Real) or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"`validation_split` must be in [0, 1). Received: validation_split={validation_split!r}")
        if shuffle not in (True, False):
            raise ValueError(f"`shuffle` must be True or False. Received: shuffle={shuffle!r}")
        if _batch_input.is_batch_source(x):
            _batch_input.check_no_batch_size(x, batch_size)
            with _step_guard.interrupts_between_steps():
                return _batch_input.fit(self, x, y, epochs, verbose, callbacks, validation_split, validation_data,
                                        shuffle, class_weight, sample_weight, initial_epoch, steps_per_epoch,
                                        validation_steps, validation_batch_size, validation_freq, numerics)
        if steps_per_epoch is not None:
            raise ValueError("`steps_per_epoch` applies to generator, PyDataset and dataset inputs; with arrays, "
                             f"every epoch is one pass over them. Received: steps_per_epoch={steps_per_epoch!r}")
        if validation_data is not None and _batch_input.is_batch_source(validation_data):
            _batch_input.check_no_batch_size(validation_data, validation_batch_size, "validation_batch_size")
        batch_size = _check_batch_size(batch_size)
        validation_batch_size = _check_batch_size(validation_batch_size or batch_size, "validation_batch_size")

        x_all = self._prepare_x(x)
        targets_all = self._prepare_y(y, _count(x_all))
        samples = _count(x_all)
        targets_all["sample_weights"] = self._prepare_sample_weights(sample_weight, class_weight, targets_all, samples)
        validation = None
        if validation_data is not None and _batch_input.is_batch_source(validation_data):
            validation = _batch_input.BatchSource(validation_data)
        elif validation_steps is not None:
            raise ValueError("`validation_steps` applies to generator, PyDataset and dataset validation data; array "
                             f"validation data is evaluated whole. Received: validation_steps={validation_steps!r}")
        elif validation_data is not None:
            validation = self._prepare_validation_arrays(validation_data)
        elif validation_split:
            # Keras takes the last samples, before any shuffling.
            split_at = int(math.floor(samples * (1.0 - validation_split)))
            validation = (_take(x_all, slice(split_at, None)),
                          _take_targets(targets_all, slice(split_at, None)))
            x_all = _take(x_all, slice(None, split_at))
            targets_all = _take_targets(targets_all, slice(None, split_at))
            samples = split_at

        hook.begin_fit(self, self._network, (batch_size, epochs, initial_epoch, shuffle, validation is not None))
        steps = hook.step_count(samples, batch_size)
        callbacks, verbose = hook.callbacks(callbacks, verbose)
        callback_list = _batch_input.callbacks_module()._callback_list_for(
            callbacks, add_history=True, add_progbar=verbose != 0, model=self,
            verbose=verbose, epochs=epochs, steps=steps,
        )
        with _step_guard.interrupts_between_steps():
            return self._fit_arrays(x_all, targets_all, samples, batch_size, epochs, initial_epoch, shuffle, steps,
                                    validation, validation_freq, validation_steps, validation_batch_size, callback_list,
                                    numerics, hook)

    def _fit_arrays(self, x_all, targets_all, samples, batch_size, epochs, initial_epoch, shuffle, steps,
                    validation, validation_freq, validation_steps, validation_batch_size, callback_list, numerics,
                    hook):
        def epoch_runs(epoch):
            order = _random.generator().permutation(samples) if shuffle else np.arange(samples)
            for step in range(steps):
                indices, global_batch, first_sample = hook.batch(order, step, batch_size)
                yield lambda indices=indices, step=step, global_batch=global_batch, first_sample=first_sample: \
                    self._train_step(x_all, targets_all, indices, numerics, (epoch, step), hook, global_batch,
                                     first_sample) + (global_batch,)

        def epoch_validation(epoch):
            return self._validation_logs(validation, epoch, validation_freq, validation_steps, validation_batch_size,
                                         callback_list)

        return _loop.fit_epochs(self, callback_list, initial_epoch, epochs, epoch_runs, epoch_validation,
                                after_epoch=lambda: hook.after_epoch(self))

    def _validation_logs(self, validation, epoch, validation_freq, validation_steps, validation_batch_size,
                         callback_list):
        """The `val_` entries of an epoch's logs: validation (prepared arrays or a batch source) is
        evaluated after every `validation_freq`-th epoch, through the on_test_* hooks."""
        if validation is None or (epoch + 1) % validation_freq != 0:
            return {}
        if isinstance(validation, _batch_input.BatchSource):
            val_logs = _batch_input.evaluate_validation(self, validation, validation_steps, callback_list)
        else:
            val_logs = self._evaluate_prepared(validation[0], validation[1], validation_batch_size, callback_list)
        return {f"val_{key}": value for key, value in val_logs.items()}

    def _train_step(self, x, targets, indices, numerics=None, position=(0, 0), hook=None, global_batch=None,
                    first_sample=0):
        """One optimizer step on x[indices] and the weight constraints after it, as one whole: under
        the model's lock (another thread's predict sees the weights before or after it) and with
        Ctrl-C held until it is complete. numerics: a NumericsCheck or None; position: (epoch,
        step) for its message. A distributed step hook spreads the step: this process's gradients
        over its samples, averaged over `global_batch`, are exchanged by the hook before the update,
        and the metrics' updates with them. Returns (loss sum, per-output loss sums)."""
        learning_rate = self.optimizer.learning_rate
        seed = _random.draw_seed()
        labels, probabilities, sample_weights = targets["labels"], targets["probabilities"], targets["sample_weights"]
        with self._lock, _step_guard.whole_step():
            self._use_own_weights()
            if numerics is not None:
                numerics.before_step()
            network = self._network
            if hook is not None and hook.distributed:
                loss_sum, outcome = _step_totals(network.compute_gradients(
                    x, labels, probabilities, indices, global_batch, first_sample, seed, sample_weights,
                    hook.on_layer_gradient(network)))
                before = self._metric_state()
                self._update_metrics(targets, indices)
                loss_sum, outcome, change = hook.exchange(network, loss_sum, outcome, self._metric_state() - before)
                self._set_metric_state(before + change)
                loss_sum += global_batch * network.apply_gradients(learning_rate)
            else:
                loss_sum, outcome = _step_totals(network.train_step(x, labels, probabilities, indices, learning_rate,
                                                                    seed, sample_weights))
                self._update_metrics(targets, indices)
            self._apply_constraints()
            if numerics is not None:
                numerics.after_step(loss_sum, _take(x, indices), seed, *position)
        return loss_sum, outcome

    def _test_step(self, x, targets, indices):
        """Loss sum and per-output loss sums on x[indices] in inference mode, the metrics updated,
        under the model's lock (so another thread's training is seen between whole steps only)."""
        with self._lock:
            self._use_own_weights()
            result = _step_totals(self._network.test_step(x, targets["labels"], targets["probabilities"], indices,
                                                          targets.get("sample_weights")))
            self._update_metrics(targets, indices)
            return result

    def _apply_constraints(self):
        """Keras's optimizer projects each trainable weight through its constraint after updating it."""
        if self.trainable:
            for layer in self._layers:
                layer._apply_constraints()

    @property
    def losses(self):
        """The current kernel and bias regularization penalties of every layer (floats)."""
        return [loss for layer in self._layers for loss in layer.losses]

    def _evaluate_prepared(self, x, targets, batch_size, callback_list):
        samples = _count(x)

        def runs():
            for step in range(math.ceil(samples / batch_size)):
                indices = np.arange(step * batch_size, min(samples, (step + 1) * batch_size))
                yield lambda indices=indices: self._test_step(x, targets, indices) + (len(indices),)

        hook = _loop.step_hook()

        def finish(totals):  # a distributed hook adds every process's totals and metric states
            loss, outcome, seen, state = hook.reduce_totals(totals.loss, totals.outcome, totals.seen,
                                                            self._metric_state())
            self._set_metric_state(state)
            return _loop.running_logs(self, loss, outcome, seen)

        return _loop.evaluate_runs(self, callback_list, runs(), finish=finish)[0]

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (and accuracy) on arrays `x`, `y`, or on a generator, PyDataset or dataset of
        batches (`steps` of them, or all)."""
        self._require_compiled("evaluation")
        verbose = _check_verbose(verbose)
        hook = _loop.step_hook()
        hook.check_fit(_batch_input.is_batch_source(x), False)
        if _batch_input.is_batch_source(x):
            _batch_input.check_no_batch_size(x, batch_size)
            logs = _batch_input.evaluate(self, x, y, verbose, sample_weight, steps, callbacks)
            return self._logs_result(logs, return_dict)
        if steps is not None:
            raise ValueError("`steps` applies to generator, PyDataset and dataset inputs; arrays are evaluated "
                             f"whole. Received: steps={steps!r}")
        batch_size = _check_batch_size(batch_size)
        x_all = self._prepare_x(x)
        targets = self._prepare_y(y, _count(x_all))
        targets["sample_weights"] = self._prepare_sample_weights(sample_weight, None, targets, _count(x_all))
        callbacks, verbose = hook.callbacks(callbacks, verbose)
        callback_list = _batch_input.callbacks_module()._callback_list_for(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
            steps=math.ceil(_count(x_all) / batch_size),
        )
        logs = self._evaluate_prepared(x_all, targets, batch_size, callback_list)
        return self._logs_result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for arrays `x`, or for a generator, PyDataset or dataset of batches (`steps` of
        them, or all; a batch may be `x` alone or a tuple whose first element is `x`)."""
        verbose = _check_verbose(verbose)
        if _batch_input.is_batch_source(x):
            _batch_input.check_no_batch_size(x, batch_size)
            return _batch_input.predict(self, x, verbose, steps, callbacks)
        if steps is not None:
            raise ValueError("`steps` applies to generator, PyDataset and dataset inputs; arrays are predicted "
                             f"whole. Received: steps={steps!r}")
        batch_size = _check_batch_size(batch_size)
        x_all = self._prepare_x(x)
        samples = _count(x_all)
        output_samples = [tuple(shape) for shape in self._output_sample_shapes]
        steps = math.ceil(samples / batch_size)
        callback_list = _batch_input.callbacks_module()._callback_list_for(
            callbacks, add_progbar=verbose != 0 and steps > 0, model=self, verbose=verbose, epochs=1, steps=steps,
        )
        outputs = [np.empty((samples,) + shape, dtype=np.float32) for shape in output_samples]
        single = len(outputs) == 1
        # The runtime's (h, w, c) per output, which each batch's rows are viewed as.
        runtime_shapes = [tuple(shape) for shape in self._network.output_shapes] if steps else []
        callback_list.on_predict_begin()
        for step in range(steps):
            callback_list.on_predict_batch_begin(step)
            window = slice(step * batch_size, (step + 1) * batch_size)
            batch = _take(x_all, window)
            batch_outputs = [output[window] for output in outputs]
            # The runtime writes each batch into `outputs` directly: views of the rows as its
            # (n, h, w, c) layout (a slice of whole samples of a C-contiguous array is one).
            targets = [target.reshape((len(target),) + shape) for target, shape in zip(batch_outputs, runtime_shapes)]
            with self._lock:
                self._use_own_weights()
                self._network.predict(batch, out=targets[0] if single else targets)
            # this batch's, as Keras
            callback_list.on_predict_batch_end(step, {"outputs": batch_outputs[0] if single else batch_outputs})
        if steps:
            callback_list.on_predict_end()
        return outputs[0] if single else outputs

    # ---- int8 quantization (fastcnn/models/_quantization.py) ----

    def quantize(self, mode=None, config=None, filters=None, calibration_data=None, **kwargs):
        """Keras's `Model.quantize`: mode "int8" gives Conv2D (groups=1), DepthwiseConv2D and Dense layers (those
        `filters` selects, as in Keras: a regex on the layer name, a list of them, or a callable)
        int8 weights per output channel and int8 inputs with scales calibrated on
        `calibration_data` (fastcnn's: a batch of typical inputs; Keras quantizes activations at
        run time instead). The model then runs inference only (docs/deployment.md)."""
        _quantization.quantize_model(self, mode, config, filters, calibration_data, kwargs)

    def _logs_result(self, logs, return_dict):
        """What evaluate / train_on_batch return: the logs dict, the loss alone, or the list in
        Keras's order (metrics_names)."""
        if return_dict:
            return logs
        keys = self._log_keys()
        return logs["loss"] if len(keys) == 1 else [logs[key] for key in keys]

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on this batch; returns [loss, accuracy] (or the loss alone, or a dict)."""
        _quantization.refuse_if_quantized(self, "train_on_batch")
        self._require_compiled("training")
        x_all = self._prepare_x(x)
        targets = self._prepare_y(y, _count(x_all))
        weights = self._prepare_sample_weights(sample_weight, class_weight, targets, _count(x_all))
        targets["sample_weights"] = weights
        indices = np.arange(_count(x_all))
        self.reset_metrics()  # as Keras's train_on_batch: the logs are this batch's
        with _step_guard.interrupts_between_steps():
            loss_sum, outcome = self._train_step(x_all, targets, indices)
        return self._logs_result(_loop.running_logs(self, loss_sum, outcome, _count(x_all)), return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        self._require_compiled("evaluation")
        x_all = self._prepare_x(x)
        targets = self._prepare_y(y, _count(x_all))
        targets["sample_weights"] = self._prepare_sample_weights(sample_weight, None, targets, _count(x_all))
        logs = self._evaluate_prepared(x_all, targets, max(1, _count(x_all)), None)
        return self._logs_result(logs, return_dict)

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=max(1, _count(self._prepare_x(x))), verbose=0)

    def __call__(self, *args, **kwargs):
        """On symbolic tensors records this model as one node of a bigger model (its layers are
        inlined when that model compiles); on arrays runs the graph: in inference mode, or with
        training=True in training mode (Dropout, augmentation and BatchNormalization's batch
        statistics active; no update)."""
        from fastcnn.layers.base import _call_arguments  # noqa: PLC0415

        inputs, training = _call_arguments(self, args, kwargs)
        if node_module.contains_symbolic(inputs):
            return self._symbolic_call(inputs, training)
        if not training:
            return self.predict(inputs, batch_size=max(1, _count(self._prepare_x(inputs))), verbose=0)
        _quantization.refuse_if_quantized(self, "calling it with training=True")
        x = self._prepare_x(inputs)
        with self._lock:
            self._use_own_weights()
            results = _as_list(self._network.forward_training(x, _random.draw_seed()))
        count = _count(x)
        outputs = [r.reshape((count,) + tuple(shape)) for r, shape in zip(results, self._output_sample_shapes)]
        return outputs[0] if len(outputs) == 1 else outputs

    def _symbolic_call(self, inputs, training):
        if not node_module.is_symbolic(inputs):
            raise TypeError(f"Model {self.name!r} received a mix of symbolic tensors and other values: {inputs!r}")
        tensors = list(inputs.values()) if isinstance(inputs, dict) else (
            list(inputs) if isinstance(inputs, (list, tuple)) else [inputs])
        with self._lock:
            if not self.built:
                self._ensure_built_for([np.empty((0,) + tuple(t.shape[1:]), np.float32) for t in tensors]
                                       if len(tensors) > 1 else np.empty((0,) + tuple(tensors[0].shape[1:]), np.float32))
        shapes = self._input_sample_shapes
        if len(tensors) != len(shapes):
            raise ValueError(f"Model {self.name!r} expects {len(shapes)} input(s), but it received {len(tensors)} "
                             "input tensors.")
        for index, tensor in enumerate(tensors):
            self._check_input_sample(index, tensor.shape[1:])
        batch = tensors[0].shape[0] if len({t.shape[0] for t in tensors}) == 1 else None
        return node_module.record(self, tensors if len(tensors) > 1 else tensors[0],
                                  [(batch,) + tuple(shape) for shape in self._output_sample_shapes], training)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _per_output(value, names, argument, broadcast=True, optional=False):
    """One entry per output from one value (every output), a list/tuple in output order, or a
    dict keyed by output name (Keras's compile rules)."""
    count = len(names)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown or (not optional and set(value) != set(names)):
            raise ValueError(f"Expected keys {names} in {argument} dict, but found {argument}.keys()={list(value)}")
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)) and not (argument == "loss" and count == 1 and len(value) != 1):
        if len(value) != count:
            raise ValueError(f"`{argument}` must have one entry per output ({count}: {names}) or be a dict keyed by "
                             f"output name. Received: {argument}={value!r}")
        return list(value)
    if value is None and optional:
        return [None] * count
    if broadcast or count == 1:
        return [value] * count
    raise ValueError(f"`{argument}` must be a list with one entry per output ({count}: {names}) or a dict keyed by "
                     f"output name. Received: {argument}={value!r}")


def _step_totals(result):
    """(loss sum, outcome) of a network step, (loss sum, [per-output loss sums]): outcome is 0.0 for
    a single output, or for several outputs the array of each output's loss sum (both sum across
    steps)."""
    loss_sum, output_loss_sums = result
    return loss_sum, (np.array(output_loss_sums, dtype=np.float64) if len(output_loss_sums) > 1 else 0.0)


def _take_targets(targets, index):
    """targets[index] for a targets dict: each entry an array, None, or a list of them (one per
    output)."""
    def take(value):
        if value is None:
            return None
        if isinstance(value, list):
            return [take(item) for item in value]
        return value[index]

    return {key: take(value) for key, value in targets.items()}


# compile's accuracy strings: resolved per output once its size is known (_compiled_metrics).
_ACCURACY_STRINGS = ("accuracy", "acc")


def _metric_specs(metrics, names, argument):
    """compile's metrics (or weighted_metrics) per output: Metric objects resolved now (unknown names
    fail at compile), except the accuracy strings: Keras picks binary, sparse or categorical accuracy
    from the output's size and the targets."""
    if len(names) == 1:
        output_metrics = [_metric_list(metrics)]
    else:
        output_metrics = [_metric_list(m) for m in _per_output(metrics, names, argument, broadcast=False,
                                                               optional=True)]
    return [[m if isinstance(m, str) and m in _ACCURACY_STRINGS else metrics_module.get(m) for m in entries]
            for entries in output_metrics]


def _metric_list(value):
    """compile's metrics of one output as a list (a single metric, a list of them, or None)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _as_list(results):
    return results if isinstance(results, list) else [results]
