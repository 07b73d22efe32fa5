"""Sequential: a linear stack of layers with Keras's training API.

Python describes the model and drives epochs and callbacks; everything per batch (gathering the
batch, forward, loss, backward, optimizer update) is one call into the compiled C++ network with
the GIL released. Weights live in that network's flat buffer; layers expose views of it.
"""

import math
import numbers
import threading

import numpy as np

from fastcnn import _core, _naming, _random
from fastcnn import losses as losses_module
from fastcnn import metrics as metrics_module
from fastcnn import optimizers as optimizers_module
from fastcnn.layers.base import Layer, runtime_shape, sample_shape
from fastcnn.layers.input_layer import InputLayer
from fastcnn.models import _batch_input, _step_guard, _summary, _weights_file


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


class Sequential:
    def __init__(self, layers=None, name=None, trainable=True):
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        self.name = name or _naming.unique_name("sequential")
        if not isinstance(trainable, bool):
            raise TypeError(f"`trainable` must be a bool. Received: trainable={trainable!r}")
        self._trainable = trainable
        self._layers = []
        self._input_sample_shape = None
        # The model's InputLayer as Keras's Sequential keeps one: the `Input` passed, or one made
        # (named input_layer, input_layer_1, ...) when the model is first built.
        self._input_layer = None
        self._compile_arguments = None
        self._network = None
        self._compiled = False
        self.optimizer = None
        self.loss = None
        self._metric = None
        self.stop_training = False
        self.history = None
        # Held by each training step (with its constraints), each predict/evaluate batch, building
        # and set_weights/load_weights: threads sharing the model see whole steps only. Reentrant,
        # as a callback run inside a step's bookkeeping may predict.
        self._lock = threading.RLock()
        self.built = False
        if layers is not None:
            if isinstance(layers, (Layer, InputLayer)):
                layers = [layers]
            for layer in layers:
                self.add(layer, rebuild=False)
            self._maybe_build()

    # ---- structure ----

    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer, rebuild=True):
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("An Input can only be the first entry of a Sequential model. "
                                 f"Received {layer!r} after {len(self._layers)} layers.")
            self._input_sample_shape = layer.sample_shape
            self._input_layer = layer
        elif isinstance(layer, Layer):
            if any(existing is layer for existing in self._layers):
                raise ValueError(f"Layer {layer.name!r} is already in this model.")
            if any(existing.name == layer.name for existing in self._layers):
                raise ValueError(f"All layers added to a Sequential model should have unique names. Name "
                                 f"{layer.name!r} is already the name of a layer in this model.")
            if not self._layers and self._input_sample_shape is None and layer._declared_input_shape is not None:
                self._input_sample_shape = layer._declared_input_shape
            self._layers.append(layer)
            layer._model = self
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
        layer._model = None
        self._invalidate()
        if rebuild:
            self._maybe_build()
        return layer

    def get_layer(self, name=None, index=None):
        if index is not None:
            if not isinstance(index, int) or not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(self._layers)} layers.")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in self._layers]}.")

    def _invalidate(self):
        self._network = None
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

    def _build_network(self, input_sample_shape):
        """Builds each layer for its input shape, then the compiled C++ network holding the weights."""
        with self._lock:
            self._build_network_locked(input_sample_shape)

    def _build_network_locked(self, input_sample_shape):
        if not self._layers:
            raise ValueError(f"Model {self.name!r} has no layers.")
        # A failed build must leave the model as it was: layers built by this attempt are unbuilt
        # again, so the next call can build them for another shape.
        unbuilt = [layer for layer in self._layers if layer._input_sample_shape is None]
        try:
            shape = tuple(input_sample_shape)
            for layer in self._layers:
                shape = layer._build_for(shape)
                if len(shape) > 3:
                    raise ValueError(f"Layer {layer.name!r} outputs {(None,) + shape}; fastcnn supports up to 3 "
                                     "dimensions per sample.")
            network = _core.Network()
            for index, layer in enumerate(self._layers):
                layer._add_to_network(network)
                factors = layer._regularization_factors()
                if factors is not None:
                    network.set_regularization(index, *factors)
            network.build(runtime_shape(input_sample_shape))
        except Exception:
            for layer in unbuilt:
                layer._reset_build()
            raise
        for layer, views in zip(self._layers, network.parameter_views()):
            for variable, view in zip(layer._weights, views):
                variable._bind(view)
        for index, layer in enumerate(self._layers):
            network.set_trainable(index, layer.trainable and self.trainable)
        self._input_sample_shape = tuple(input_sample_shape)
        if self._input_layer is None or self._input_layer.sample_shape != self._input_sample_shape:
            self._input_layer = InputLayer(shape=self._input_sample_shape)
        self._network = network
        self.built = True
        if self._compiled:
            self._configure_network()

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Freezing the model freezes every layer's weights (and runs BatchNormalization in
        inference mode), as in Keras."""
        if not isinstance(value, bool):
            raise TypeError(f"`trainable` must be a bool. Received: trainable={value!r}")
        self._trainable = value
        for layer in self._layers:
            self._layer_trainable_changed(layer)

    def _layer_trainable_changed(self, layer):
        if self._network is not None:
            network_index = self._layers.index(layer)
            self._network.set_trainable(network_index, layer.trainable and self.trainable)

    @property
    def input_shape(self):
        if self._input_sample_shape is None:
            raise AttributeError(f"Model {self.name!r} has no input shape yet: it is built on first use.")
        return (None,) + self._input_sample_shape

    @property
    def output_shape(self):
        if not self.built:
            raise AttributeError(f"Model {self.name!r} is not built yet.")
        return self._layers[-1].output_shape

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
        if zipped not in (None, True):
            raise ValueError(f"fastcnn writes zipped `.keras` files only. Received: zipped={zipped!r}")
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to save: {kwargs}")
        from fastcnn.models import _keras_file  # zipfile and the configs only when saving

        _keras_file.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Writes the weights to a Keras 3 `.weights.h5` file, which `keras.Sequential.load_weights`
        reads too (layout and checks: fastcnn/models/_weights_file.py; needs h5py)."""
        _weights_file.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        """Reads a `.weights.h5` file written by fastcnn or Keras 3; shapes are checked first and a
        mismatch raises naming the layer (nothing loaded), or with `skip_mismatch=True` that layer
        is skipped with a warning."""
        with self._lock:
            _weights_file.load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def count_params(self):
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on model {self.name!r}, but the model isn't "
                             "built. You can build it manually via: `model.build(batch_input_shape)`.")
        return sum(layer.count_params() for layer in self._layers)

    # ---- configuration (Keras's formats; fastcnn/saving) ----

    def get_config(self):
        """Keras's Sequential config: name, trainable, dtype, the layers (the InputLayer first once
        there is one) each serialized as Keras's serialize_keras_object does, and build_input_shape
        once built."""
        from fastcnn.saving import _serialize  # noqa: PLC0415 (saving imports models)

        return _serialize.sequential_config(self)

    def get_build_config(self):
        if not self.built:
            return None
        return {"input_shape": (None,) + tuple(self._input_sample_shape)}

    def get_compile_config(self):
        """Keras's compile_config ({} before compile): optimizer, loss, metrics, ... serialized."""
        from fastcnn.saving import _serialize  # noqa: PLC0415

        return _serialize.compile_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A model from a Keras-format Sequential config (the "config" entry of a serialized model),
        checked against fastcnn's allow-lists: nothing named in it is imported or called."""
        from fastcnn.saving import _config  # noqa: PLC0415

        if custom_objects is not None:
            raise ValueError("fastcnn builds models from its own allow-listed classes only; `custom_objects` "
                             f"is not supported. Received: custom_objects={custom_objects!r}")
        return _config.sequential_from_config(config)

    def to_json(self, **kwargs):
        """The model serialized as Keras's ``model.to_json()``: json.dumps of the dict that
        ``fastcnn.saving.serialize_model`` returns (kwargs go to json.dumps)."""
        import json  # noqa: PLC0415

        from fastcnn.saving import serialize_model  # noqa: PLC0415

        return json.dumps(serialize_model(self), **kwargs)

    # ---- summary ----

    def summary(self, line_length=None, print_fn=None):
        rows = []
        for layer in self._layers:
            title = f"{layer.name} ({type(layer).__name__})"
            shape = "?"
            if layer._output_sample_shape is not None:
                shape = "(" + ", ".join(str(d) for d in layer.output_shape) + ")"
            rows.append((title, shape, f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"))
        trainable = sum(math.prod(w.shape) for w in self.trainable_weights)
        non_trainable = sum(math.prod(w.shape) for w in self.non_trainable_weights)
        optimizer_count = None
        if self._compiled and self.optimizer is not None and self.optimizer.built:
            optimizer_count = self.optimizer.count_variables(trainable)
        text = _summary.render(self.name, rows, trainable, non_trainable, optimizer_count, line_length)
        if print_fn is None:
            print(text, end="")
        else:
            print_fn(text)

    # ---- compile ----

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto"):
        for name, value in (("loss_weights", loss_weights), ("weighted_metrics", weighted_metrics)):
            if value is not None:
                raise ValueError(f"fastcnn does not support `{name}` yet. Received: {name}={value!r}")
        if not isinstance(run_eagerly, bool):
            raise TypeError(f"`run_eagerly` must be a bool. Received: run_eagerly={run_eagerly!r}")
        if isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, numbers.Integral) \
                or steps_per_execution <= 0:
            raise ValueError("`steps_per_execution` must be a positive integer. Received: "
                             f"steps_per_execution={steps_per_execution!r}")
        if not (isinstance(jit_compile, bool) or jit_compile == "auto"):
            raise ValueError(f"`jit_compile` must be a bool or 'auto'. Received: jit_compile={jit_compile!r}")
        self.optimizer = optimizers_module.get(optimizer)
        if loss is None:
            raise ValueError("fastcnn needs a `loss` in compile(): e.g. loss='sparse_categorical_crossentropy'.")
        self.loss = losses_module.get(loss)
        raw_metrics = metrics
        if isinstance(metrics, (str, metrics_module.Accuracy)):
            metrics = [metrics]
        metrics = list(metrics or [])
        resolved = [metrics_module.get(m) for m in metrics]
        if len(resolved) > 1:
            raise ValueError(f"fastcnn reports one accuracy metric. Received: metrics={metrics!r}")
        self._metric = resolved[0] if resolved else None
        # What get_compile_config reports, as Keras records it: the arguments as passed (a single
        # metric as a one-item list: Keras's compile takes lists only), jit_compile="auto" resolved as Keras resolves it on a CPU (False). fastcnn
        # runs every step compiled, so run_eagerly, steps_per_execution and jit_compile change
        # nothing else.
        self._compile_arguments = {"loss": loss, "metrics": None if raw_metrics is None else metrics,
                                   "run_eagerly": run_eagerly, "steps_per_execution": int(steps_per_execution),
                                   "jit_compile": False if jit_compile == "auto" else jit_compile}
        self._compiled = True
        self.stop_training = False
        if self._network is not None:
            self._configure_network()

    @property
    def compiled(self):
        return self._compiled

    @property
    def metrics_names(self):
        return ["loss"] + ([self._metric.name] if self._metric else [])

    def _configure_network(self):
        self._network.configure_loss(self.loss.from_logits)
        self.optimizer._attach(self._network, model=self)

    def _require_compiled(self, what):
        if not self._compiled:
            raise ValueError(f"You must call `compile()` before using the model for {what}.")

    # ---- data ----

    def _prepare_x(self, x, name="x"):
        """x as contiguous float32 of shape (n,) + runtime shape; builds the model on first data."""
        array = _as_array(x, name)
        if array.ndim < 2:
            raise ValueError(f"`{name}` must be a batch of samples (rank >= 2). Received: {name}.shape={array.shape}")
        with self._lock:  # two threads calling an unbuilt model build it once
            if self._input_sample_shape is None:
                self._build_network(sample_shape(array.shape[1:], f"Model {self.name!r} input"))
            elif not self.built:
                self._build_network(self._input_sample_shape)
        if tuple(array.shape[1:]) != self._input_sample_shape:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected shape='
                f"{(None,) + self._input_sample_shape}, found shape={(None,) + tuple(array.shape[1:])}"
            )
        array = np.ascontiguousarray(array, dtype=np.float32)
        return array.reshape((array.shape[0],) + runtime_shape(self._input_sample_shape))

    def _prepare_y(self, y, samples, name="y"):
        array = _as_array(y, name)
        if array.ndim == 0 or array.shape[0] != samples:
            sizes = array.shape[0] if array.ndim else "a scalar"
            raise ValueError(f"Data cardinality is ambiguous. Make sure all arrays contain the same number "
                             f"of samples.'x' sizes: {samples}\n'{name}' sizes: {sizes}")
        classes = self._network.output_shape[2]
        if math.prod(self._network.output_shape[:2]) != 1:
            raise ValueError(f"fastcnn's losses need a model whose output is a vector of class scores; this "
                             f"model outputs {self.output_shape}. Add a Flatten or global pooling layer.")
        if self.loss.sparse:
            return {"labels": self.loss._prepare_targets(array, classes), "probabilities": None}
        return {"labels": None, "probabilities": self.loss._prepare_targets(array, classes)}

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
                labels = np.argmax(targets["probabilities"], axis=1)
            return np.ascontiguousarray(table[labels])
        return None

    # ---- training ----

    def _prepare_validation_arrays(self, validation_data):
        """(x_val, targets) from validation_data = (x_val, y_val) or (x_val, y_val, sample_weight)."""
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("`validation_data` must be a tuple (x_val, y_val), a generator, a PyDataset or a "
                             f"dataset. Received: {type(validation_data).__name__}")
        x_val = self._prepare_x(validation_data[0], "x_val")
        val_targets = self._prepare_y(validation_data[1], x_val.shape[0], "y_val")
        val_weights = validation_data[2] if len(validation_data) == 3 else None
        val_targets["sample_weights"] = self._prepare_sample_weights(val_weights, None, val_targets, x_val.shape[0])
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
        self._require_compiled("training")
        if check_numerics not in (True, False):
            raise ValueError(f"`check_numerics` must be True or False. Received: check_numerics={check_numerics!r}")
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
        targets_all = self._prepare_y(y, x_all.shape[0])
        samples = x_all.shape[0]
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
            validation = (x_all[split_at:], {k: None if v is None else v[split_at:] for k, v in targets_all.items()})
            x_all = x_all[:split_at]
            targets_all = {k: None if v is None else v[:split_at] for k, v in targets_all.items()}
            samples = split_at

        steps = math.ceil(samples / batch_size)
        callback_list = _batch_input.callbacks_module()._callback_list_for(
            callbacks, add_history=True, add_progbar=verbose != 0, model=self,
            verbose=verbose, epochs=epochs, steps=steps,
        )
        self.stop_training = False
        with _step_guard.interrupts_between_steps():
            return self._fit_arrays(x_all, targets_all, samples, batch_size, epochs, initial_epoch, shuffle, steps,
                                    validation, validation_freq, validation_steps, validation_batch_size, callback_list,
                                    numerics)

    def _fit_arrays(self, x_all, targets_all, samples, batch_size, epochs, initial_epoch, shuffle, steps,
                    validation, validation_freq, validation_steps, validation_batch_size, callback_list, numerics):
        logs = {}
        callback_list.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            order = _random.generator().permutation(samples) if shuffle else np.arange(samples)
            total_loss = 0.0
            total_correct = 0
            seen = 0
            for step in range(steps):
                callback_list.on_train_batch_begin(step)
                indices = order[step * batch_size:(step + 1) * batch_size]
                loss_sum, correct = self._train_step(x_all, targets_all["labels"], targets_all["probabilities"],
                                                     indices, targets_all["sample_weights"], numerics, (epoch, step))
                total_loss += loss_sum
                total_correct += correct
                seen += len(indices)
                logs = _batch_input._running_logs(self, total_loss, total_correct, seen)
                callback_list.on_train_batch_end(step, dict(logs))
                if self.stop_training:
                    break
            epoch_logs = dict(logs)
            epoch_logs.update(self._validation_logs(validation, epoch, validation_freq, validation_steps,
                                                    validation_batch_size, callback_list))
            callback_list.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if self.stop_training:
                break
        callback_list.on_train_end(logs)
        return callback_list.history

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

    def _train_step(self, x, labels, probabilities, indices, sample_weights, numerics=None, position=(0, 0)):
        """One optimizer step on x[indices] and the weight constraints after it, as one whole: under
        the model's lock (another thread's predict sees the weights before or after it) and with
        Ctrl-C held until it is complete. numerics: a NumericsCheck or None; position: (epoch,
        step) for its message. Returns (loss sum, correct)."""
        learning_rate = self.optimizer.learning_rate
        seed = _random.draw_seed()
        with self._lock, _step_guard.whole_step():
            if numerics is not None:
                numerics.before_step()
            loss_sum, correct = self._network.train_step(x, labels, probabilities, indices, learning_rate, seed,
                                                         sample_weights)
            self._apply_constraints()
            if numerics is not None:
                numerics.after_step(loss_sum, x[indices], seed, *position)
        return loss_sum, correct

    def _test_step(self, x, labels, probabilities, indices, sample_weights):
        """Loss sum and correct count on x[indices] in inference mode, under the model's lock (so
        another thread's training is seen between whole steps only)."""
        with self._lock:
            return self._network.test_step(x, labels, probabilities, indices, sample_weights)

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
        samples = x.shape[0]
        total_loss, total_correct, seen = 0.0, 0, 0
        logs = {}
        if callback_list is not None:
            callback_list.on_test_begin()
        for step in range(math.ceil(samples / batch_size)):
            if callback_list is not None:
                callback_list.on_test_batch_begin(step)
            indices = np.arange(step * batch_size, min(samples, (step + 1) * batch_size))
            loss_sum, correct = self._test_step(x, targets["labels"], targets["probabilities"], indices,
                                                targets.get("sample_weights"))
            total_loss += loss_sum
            total_correct += correct
            seen += len(indices)
            logs = _batch_input._running_logs(self, total_loss, total_correct, seen)
            if callback_list is not None:
                callback_list.on_test_batch_end(step, dict(logs))
        if not logs:
            logs = _batch_input._running_logs(self, 0.0, 0, 0)  # no samples: zeros, as Keras reports
        if callback_list is not None:
            callback_list.on_test_end(dict(logs))
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (and accuracy) on arrays `x`, `y`, or on a generator, PyDataset or dataset of
        batches (`steps` of them, or all)."""
        self._require_compiled("evaluation")
        verbose = _check_verbose(verbose)
        if _batch_input.is_batch_source(x):
            _batch_input.check_no_batch_size(x, batch_size)
            logs = _batch_input.evaluate(self, x, y, verbose, sample_weight, steps, callbacks)
            if return_dict:
                return logs
            return logs["loss"] if self._metric is None else [logs["loss"], logs[self._metric.name]]
        if steps is not None:
            raise ValueError("`steps` applies to generator, PyDataset and dataset inputs; arrays are evaluated "
                             f"whole. Received: steps={steps!r}")
        batch_size = _check_batch_size(batch_size)
        x_all = self._prepare_x(x)
        targets = self._prepare_y(y, x_all.shape[0])
        targets["sample_weights"] = self._prepare_sample_weights(sample_weight, None, targets, x_all.shape[0])
        callback_list = _batch_input.callbacks_module()._callback_list_for(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
            steps=math.ceil(x_all.shape[0] / batch_size),
        )
        logs = self._evaluate_prepared(x_all, targets, batch_size, callback_list)
        if return_dict:
            return logs
        if self._metric is None:
            return logs["loss"]
        return [logs["loss"], logs[self._metric.name]]

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
        samples = x_all.shape[0]
        output_sample = self._layers[-1]._output_sample_shape
        steps = math.ceil(samples / batch_size)
        callback_list = _batch_input.callbacks_module()._callback_list_for(
            callbacks, add_progbar=verbose != 0 and steps > 0, model=self, verbose=verbose, epochs=1, steps=steps,
        )
        outputs = np.empty((samples,) + output_sample, dtype=np.float32)
        callback_list.on_predict_begin()
        for step in range(steps):
            callback_list.on_predict_batch_begin(step)
            batch = x_all[step * batch_size:(step + 1) * batch_size]
            batch_outputs = outputs[step * batch_size:step * batch_size + batch.shape[0]]
            with self._lock:
                batch_outputs[...] = self._network.predict(batch).reshape((batch.shape[0],) + output_sample)
            callback_list.on_predict_batch_end(step, {"outputs": batch_outputs})  # this batch's, as Keras
        if steps:
            callback_list.on_predict_end()
        return outputs

    def _batch_logs(self, loss, accuracy, return_dict):
        if return_dict:
            return ({self._metric.name: accuracy} if self._metric else {}) | {"loss": loss}
        return [loss, accuracy] if self._metric else loss

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on this batch; returns [loss, accuracy] (or the loss alone, or a dict)."""
        self._require_compiled("training")
        x_all = self._prepare_x(x)
        targets = self._prepare_y(y, x_all.shape[0])
        weights = self._prepare_sample_weights(sample_weight, class_weight, targets, x_all.shape[0])
        indices = np.arange(x_all.shape[0])
        with _step_guard.interrupts_between_steps():
            loss_sum, correct = self._train_step(x_all, targets["labels"], targets["probabilities"], indices, weights)
        samples = max(1, x_all.shape[0])
        return self._batch_logs(loss_sum / samples, correct / samples, return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        self._require_compiled("evaluation")
        x_all = self._prepare_x(x)
        targets = self._prepare_y(y, x_all.shape[0])
        targets["sample_weights"] = self._prepare_sample_weights(sample_weight, None, targets, x_all.shape[0])
        logs = self._evaluate_prepared(x_all, targets, max(1, x_all.shape[0]), None)
        return self._batch_logs(logs["loss"], logs.get(self._metric.name) if self._metric else None, return_dict)

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=max(1, len(x)), verbose=0)

    def __call__(self, inputs, training=False):
        return self.predict(inputs, verbose=0)

    def __repr__(self):
        return f"<Sequential name={self.name}, built={self.built}>"
