"""The Layer base class and Variable, the weight handle layers expose.

Layers describe: they check their configuration in ``__init__``, create weights in ``build`` and
compute shapes in ``compute_output_shape``. The compute runs in the model's compiled C++ network
(csrc/runtime); once a layer belongs to a built model its Variables are views of that network's
parameter buffer, so reading or assigning them touches the weights training uses, without copies.
"""

import math
import weakref

import numpy as np

from fastcnn import _core, _naming, initializers, regularizers
from fastcnn._config_checks import check_dtype_policy
from fastcnn.layers import node as node_module


class Variable:
    """A layer weight: ``numpy()``, ``assign(value)``, ``shape``, ``name``, ``trainable``."""

    # How weights files store it: float32, or int64 for Keras's integer counters (Normalization's count).
    file_dtype = np.float32

    def __init__(self, value, name, trainable=True, path=None, regularizer=None, constraint=None):
        self._value = np.asarray(value, dtype=np.float32, order="C")  # keeps a scalar weight 0-d (Normalization count)
        self.name = name
        self.path = path or name
        self._trainable = trainable
        self._network = None  # the compiled network whose buffer holds the value, once bound
        self.regularizer = regularizer
        self.constraint = constraint

    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return "float32"

    @property
    def trainable(self):
        return self._trainable

    def numpy(self):
        return self._value.copy()

    def assign(self, value):
        value = np.asarray(value)
        if value.dtype.kind not in "iuf":
            raise TypeError(f"Variable {self.path!r} takes numeric values. Received dtype={value.dtype}")
        if value.shape != self._value.shape:
            raise ValueError(f"The shape of the target variable and the shape of the value in `assign()` "
                             f"differ. Target variable shape={self._value.shape}, Received: value.shape={value.shape}")
        self._value[...] = value
        if self._network is not None:
            self._network.parameters_changed()  # its inference refolds BatchNormalization
        return self

    def __array__(self, dtype=None, copy=None):
        return np.array(self._value, dtype=dtype, copy=True)

    def _bind(self, view, network):
        """Moves the value into `view` (a slice of `network`'s parameter buffer) and uses it."""
        view[...] = self._value
        self._value = view
        self._network = network

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype=float32>"


# Keras 3's serialized float32 dtype policy, the ``dtype`` entry of every layer and model config.
FLOAT32_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                  "registered_name": None}


def float32_policy():
    """A fresh copy of FLOAT32_POLICY (configs are handed out and may be mutated by callers)."""
    return {**FLOAT32_POLICY, "config": dict(FLOAT32_POLICY["config"])}


def check_dtype(dtype):
    """fastcnn computes in float32: accepts None, "float32", numpy's float32, or Keras's serialized
    float32 policy (``{"class_name": "DTypePolicy", "config": {"name": "float32"}, ...}``, also the
    ``FloatDTypePolicy`` of Keras 3.0-3.3); anything else raises naming what was received."""
    if dtype is None or dtype is np.float32 or (isinstance(dtype, str) and dtype == "float32"):
        return
    if isinstance(dtype, dict):
        check_dtype_policy(dtype, "dtype")
        return
    raise ValueError(f"fastcnn computes in float32. Received: dtype={dtype!r}")


def sample_shape(shape, who):
    """A per-sample shape as a tuple of positive ints; None is not supported (fixed sizes)."""
    try:
        values = tuple(shape)
    except TypeError:
        raise ValueError(f"{who}: a shape must be a tuple of integers. Received: {shape!r}") from None
    for value in values:
        if value is None:
            raise ValueError(f"{who}: fastcnn needs every input dimension known; None is not supported. "
                             f"Received: shape={values}")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{who}: shape dimensions must be positive integers. Received: shape={values}")
    if not values:
        raise ValueError(f"{who}: a shape needs at least one dimension. Received: shape={values}")
    return tuple(int(v) for v in values)


def runtime_shape(shape):
    """The C++ runtime's (height, width, channels) for a Keras per-sample shape: (units,) ->
    (1, 1, units), (w, c) -> (1, w, c)."""
    if len(shape) > 3:
        raise ValueError(f"fastcnn supports inputs of up to 3 dimensions per sample. Received: shape={shape}")
    return (1,) * (3 - len(shape)) + tuple(shape)


def runtime_flags(flags):
    """Per-axis flags of a Keras per-sample shape as the runtime's (height, width, channels): the
    axes runtime_shape adds in front have size 1, so whatever the flag means (shared, broadcast)
    holds there: True."""
    flags = tuple(bool(flag) for flag in flags)
    return (True,) * (3 - len(flags)) + flags


class Layer:
    """Base of every layer. Subclasses implement ``compute_output_shape``, ``_add_to_network`` and,
    if they have weights, ``build`` (calling ``add_weight``)."""

    # Layers with nothing to build count as built from construction, as in Keras.
    _built_at_construction = False

    def __init__(self, *, name=None, trainable=True, dtype=None, input_shape=None,
                 batch_input_shape=None, input_dim=None, activity_regularizer=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        check_dtype(dtype)
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        if not isinstance(trainable, bool):
            raise TypeError(f"`trainable` must be a bool. Received: trainable={trainable!r}")
        self.name = name or _naming.unique_name(_naming.to_snake_case(type(self).__name__))
        self._trainable = trainable
        # Keras's Layer takes it for every layer: a penalty on the layer's output, divided by the
        # batch size, added to the loss (its gradient to the output's).
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.built = self._built_at_construction
        self._weights = []
        self._input_sample_shape = None
        self._output_sample_shape = None
        self._models = weakref.WeakSet()  # the models whose compiled network holds this layer
        self._inbound_nodes = []  # one Node per symbolic call (fastcnn/layers/node.py)
        self._declared_input_shape = None
        if input_shape is not None:
            self._declared_input_shape = sample_shape(input_shape, f"Layer {self.name!r} input_shape")
        elif batch_input_shape is not None:
            self._declared_input_shape = sample_shape(tuple(batch_input_shape)[1:], f"Layer {self.name!r} batch_input_shape")
        elif input_dim is not None:
            self._declared_input_shape = sample_shape((input_dim,), f"Layer {self.name!r} input_dim")

    # ---- configuration and shapes ----

    # Whether Keras's counterpart overrides ``build``: only such layers record a ``build_config``
    # (their input shape) in a serialized model; layers Keras builds at construction do not.
    _keras_build_config = True

    def get_config(self):
        """Keras's base layer config; an activity regularizer, when set, follows ``dtype`` as in
        keras.layers.Layer.get_config (subclasses' keys are merged after, keeping that position)."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": float32_policy()}
        if getattr(self, "activity_regularizer", None) is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        """The layer a Keras-format config describes, every key and value checked against
        fastcnn's allow-lists (fastcnn/layers/_from_config.py); never imports or calls anything
        named in the config."""
        from fastcnn.layers import _from_config  # noqa: PLC0415 (it lists every layer class)

        return _from_config.layer_from_config(cls, config)

    def get_build_config(self):
        """``{"input_shape": (None, ...)}`` once built, for the layers Keras records it for."""
        if type(self)._keras_build_config and self._input_sample_shape is not None:
            return {"input_shape": (None,) + tuple(self._input_sample_shape)}
        return None

    def compute_output_shape(self, input_shape):
        """Keras shapes, batch dimension first (None)."""
        return tuple(input_shape)

    def build(self, input_shape):
        """Creates the weights for `input_shape` (batch dimension first)."""
        self.built = True

    def _build_for(self, sample):
        """Builds for a per-sample shape unless already built for it; returns the output sample shape."""
        if self.built and self._input_sample_shape is not None:
            if tuple(sample) != self._input_sample_shape:
                raise ValueError(
                    f"Layer {self.name!r} was built for inputs of shape {(None,) + self._input_sample_shape} "
                    f"and cannot take inputs of shape {(None,) + tuple(sample)}"
                )
        else:
            self.build((None,) + tuple(sample))
            self.built = True
        self._input_sample_shape = tuple(sample)
        self._output_sample_shape = tuple(self.compute_output_shape((None,) + tuple(sample))[1:])
        return self._output_sample_shape

    def _reset_build(self):
        """Forgets a build (used when building a model fails part-way)."""
        self.built = self._built_at_construction
        self._weights = []
        self._input_sample_shape = None
        self._output_sample_shape = None

    @property
    def output_shape(self):
        if self._output_sample_shape is None:
            raise AttributeError(f"Layer {self.name!r} has not been built yet, so it has no output_shape")
        return (None,) + self._output_sample_shape

    @property
    def input_shape(self):
        if self._input_sample_shape is None:
            raise AttributeError(f"Layer {self.name!r} has not been built yet, so it has no input_shape")
        return (None,) + self._input_sample_shape

    def _add_to_network(self, network):
        raise NotImplementedError(f"{type(self).__name__} must implement _add_to_network")

    # ---- weights ----

    def add_weight(self, shape, initializer, name, trainable=True, regularizer=None, constraint=None):
        initializer = initializers.get(initializer)
        value = np.asarray(initializer(tuple(shape)), dtype=np.float32)
        variable = Variable(value, name, trainable, path=f"{self.name}/{name}", regularizer=regularizer,
                            constraint=constraint)
        self._weights.append(variable)
        return variable

    # ---- regularization and constraints ----

    def _regularization_factors(self):
        """(kernel_l1, kernel_l2, bias_l1, bias_l2, activity_l1, activity_l2) for the compiled step,
        or None. Layers with kernel/bias/activity regularizers keep them under Keras's names."""
        found = [getattr(self, name, None) for name in
                 ("kernel_regularizer", "bias_regularizer", "activity_regularizer")]
        if not any(found):
            return None
        factors = []
        for regularizer in found:
            factors.extend(regularizer._factors() if regularizer is not None else (0.0, 0.0))
        return tuple(factors)

    @property
    def losses(self):
        """The current kernel and bias penalties of this layer's trainable weights (floats), as
        Keras's ``layer.losses`` lists them. (Activity penalties exist only inside a step.)"""
        return [w.regularizer(w._value) for w in self.trainable_weights if w.regularizer is not None]

    def _apply_constraints(self):
        """Projects each trainable weight through its constraint, as Keras's optimizer does after
        every update."""
        for variable in self.trainable_weights:
            if variable.constraint is None:
                continue
            projected = np.asarray(variable.constraint(variable._value.copy()))
            if projected.shape != variable.shape:
                raise ValueError(f"The constraint {variable.constraint!r} of {variable.path!r} returned shape "
                                 f"{projected.shape}; it must keep the weight's shape {variable.shape}.")
            variable.assign(projected)

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, bool):
            raise TypeError(f"`trainable` must be a bool. Received: trainable={value!r}")
        self._trainable = value
        for model in list(self._models):
            model._refresh_trainable()

    @property
    def weights(self):
        return self.trainable_weights + self.non_trainable_weights

    @property
    def trainable_weights(self):
        return [w for w in self._weights if w.trainable] if self._trainable else []

    @property
    def non_trainable_weights(self):
        if not self._trainable:
            return list(self._weights)
        return [w for w in self._weights if not w.trainable]

    @property
    def variables(self):
        return list(self._weights)

    def get_weights(self):
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        targets = self.weights
        weights = list(weights)
        if len(weights) != len(targets):
            raise ValueError(
                f"You called `set_weights(weights)` on layer {self.name!r} with a weight list of length "
                f"{len(weights)}, but the layer was expecting {len(targets)} weights."
            )
        arrays = []
        for variable, value in zip(targets, weights):
            value = np.asarray(value)
            if value.dtype.kind not in "iuf":
                raise TypeError(f"Layer {self.name!r} weights must be numeric arrays. Received dtype={value.dtype}")
            if value.shape != variable.shape:
                raise ValueError(
                    f"Layer {self.name!r} weight shape {variable.shape} is not compatible with provided "
                    f"weight shape {value.shape}."
                )
            arrays.append(value)
        for variable, value in zip(targets, arrays):
            variable.assign(value)

    def count_params(self):
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer {self.name!r}, but the layer isn't built. "
                "You can build it manually via: `layer.build(batch_input_shape)`."
            )
        return int(sum(math.prod(w.shape) for w in self._weights))

    # ---- calls: symbolic (records a node) or eager (computes) ----

    def __call__(self, *args, **kwargs):
        """On symbolic tensors (``keras.Input`` and what layers return for it) records a node and
        returns the symbolic output; on arrays computes the output with the layer's kernels.
        ``training`` (default False; True for the augmentation layers, as in Keras 3) selects
        the mode of an eager call; a symbolic call records it for the model's graph."""
        inputs, training = _call_arguments(self, args, kwargs)
        if node_module.contains_symbolic(inputs):
            return self._symbolic_call(inputs, training)
        return self._eager_call(inputs, training)

    # Layers with several inputs (the merge layers) take a list; the others one tensor.
    _takes_input_list = False
    # Whether Keras's call() of this layer takes a mask (Keras then records mask=None in a call's
    # serialized kwargs).
    _call_takes_mask = False

    def _symbolic_call(self, inputs, training):
        if not node_module.is_symbolic(inputs):
            raise TypeError(f"Layer {self.name!r} received a mix of symbolic tensors and other values: {inputs!r}. "
                            "In a functional model every input of a layer must come from keras.Input or a layer.")
        if isinstance(inputs, dict):
            raise TypeError(f"Layer {self.name!r} takes a tensor or a list of tensors, not a dict. "
                            f"Received: {inputs!r}")
        if self._takes_input_list:
            if not isinstance(inputs, (list, tuple)):
                raise ValueError(f"A `{type(self).__name__}` layer should be called on a list of inputs. "
                                 f"Received: inputs={inputs!r} (not a list of tensors)")
            shapes = [tuple(t.shape[1:]) for t in inputs]
        else:
            if isinstance(inputs, (list, tuple)):
                if len(inputs) != 1:
                    raise ValueError(f'Layer "{self.name}" expects 1 input(s), but it received {len(inputs)} input '
                                     f"tensors. Inputs received: {list(inputs)!r}")
                inputs = inputs[0]
            shapes = tuple(inputs.shape[1:])
        output_sample = self._build_for(shapes)
        if len(output_sample) > 3:
            raise ValueError(f"Layer {self.name!r} outputs {(None,) + tuple(output_sample)}; fastcnn supports up to "
                             "3 dimensions per sample.")
        batch = _common_batch(inputs)
        return node_module.record(self, inputs, [(batch,) + tuple(output_sample)], training)

    # What an eager call defaults to when `training` is not given (Keras's augmentation layers: True).
    _eager_training_default = False

    def _eager_call(self, inputs, training):
        """Applies the layer to a numpy array (batch first) in the given mode."""
        if training is None:
            training = self._eager_training_default
        arrays = _eager_arrays(self, inputs)
        sample_shapes = [a.shape[1:] for a in arrays]
        output_sample = self._build_for(sample_shapes if self._takes_input_list else sample_shapes[0])
        network = _core.Network()
        for shape in sample_shapes:
            network.add_input(runtime_shape(shape))
        self._add_to_network(network)
        network.connect(0, [-1 - k for k in range(len(arrays))], -1)
        network.build()
        for variable, view in zip(self._weights, network.parameter_views()[0]):
            view[...] = variable._value
        batches = [np.ascontiguousarray(a.reshape((a.shape[0],) + runtime_shape(a.shape[1:])), dtype=np.float32)
                   for a in arrays]
        x = batches if len(batches) > 1 else batches[0]
        if training:
            from fastcnn import _random  # noqa: PLC0415

            output = network.forward_training(x, _random.draw_seed())
        else:
            output = network.predict(x)
        return output.reshape((arrays[0].shape[0],) + tuple(output_sample))

    # ---- graph attributes (Keras's Operation.input / output) ----

    def _node_attribute(self, attribute):
        if not self._inbound_nodes:
            raise AttributeError(f"The layer {self.name!r} has never been called and thus has no defined {attribute}.")
        node = self._inbound_nodes[0]
        tensors = node.input_tensors if attribute == "input" else node.output_tensors
        if attribute == "input" and node.call_structure == "list":
            return list(tensors)
        return tensors[0] if len(tensors) == 1 else list(tensors)

    @property
    def input(self):
        """The symbolic input(s) of the layer's first call."""
        return self._node_attribute("input")

    @property
    def output(self):
        """The symbolic output of the layer's first call."""
        return self._node_attribute("output")

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _call_arguments(layer, args, kwargs):
    """(inputs, training) from a layer call's arguments, as Keras's Layer.__call__ takes them."""
    kwargs = dict(kwargs)
    training = kwargs.pop("training", None)
    if args:
        inputs, rest = args[0], args[1:]
    elif "inputs" in kwargs:
        inputs, rest = kwargs.pop("inputs"), ()
    else:
        raise TypeError(f"Layer {layer.name!r} was called without inputs.")
    kwargs.pop("mask", None)
    if rest or kwargs:
        raise TypeError(f"Layer {layer.name!r} takes its inputs and `training` only. Received extra arguments: "
                        f"{list(rest) + sorted(kwargs)}")
    if training is not None and not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"`training` must be a bool or None. Received: training={training!r}")
    return inputs, None if training is None else bool(training)


def _common_batch(inputs):
    """The batch dimension of symbolic inputs: a fixed size where every input has the same one."""
    tensors = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    sizes = {t.shape[0] for t in tensors}
    return sizes.pop() if len(sizes) == 1 else None


def _eager_arrays(layer, inputs):
    """The eager inputs as numeric arrays of rank >= 2: one, or a list for a multi-input layer."""
    if layer._takes_input_list:
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise ValueError(f"A `{type(layer).__name__}` layer should be called on a list of inputs. "
                             f"Received: inputs={inputs!r}")
        values = list(inputs)
    else:
        values = [inputs]
    arrays = []
    for value in values:
        x = np.asarray(value)
        if x.dtype.kind not in "iubf":
            raise TypeError(f"Layer {layer.name!r} takes numeric arrays. Received dtype={x.dtype}")
        if x.ndim < 2:
            raise ValueError(f"Layer {layer.name!r} takes a batch of inputs (rank >= 2). Received shape={x.shape}")
        arrays.append(x)
    if len({a.shape[0] for a in arrays}) > 1:
        raise ValueError(f"Layer {layer.name!r} received inputs with different batch sizes: "
                         f"{[a.shape for a in arrays]}")
    return arrays
