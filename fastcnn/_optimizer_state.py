"""The optimizer's state as Keras 3's ``optimizer.variables``: names, order, shapes and dtypes.

The C++ optimizer (csrc/runtime/optimizer.h) keeps its slots as up to three flat buffers laid out
like the parameter buffer (``first_moment``, ``second_moment``, ``third_slot``) plus ``iterations``
and Nadam's ``u_product``. Keras keeps one variable per slot and trainable weight. This module maps
one onto the other, in the order Keras's ``optimizer.build(model.trainable_variables)`` creates
them (keras/src/optimizers/base_optimizer.py and each optimizer's ``build``)::

    iteration       int64 ()      the number of steps applied
    learning_rate   float32 ()    the constant rate (absent when the rate is a schedule)
    <slots>         float32       for each `add_optimizer_variables` call of the optimizer's
                                  build, for each trainable weight, each of the call's names
    variable        float32 ()    Nadam only: its u_product (Keras gives it no name)

The slots per optimizer (Keras's build, the C++ buffer holding each)::

    SGD (momentum != 0)   momentum                       first_moment
    Adam / AdamW          momentum, velocity interleaved  first_moment, second_moment
                          then velocity_hat (amsgrad)     third_slot
    RMSprop               velocity                        second_moment
                          then momentum (momentum > 0)    first_moment
                          then average_gradient (centered) third_slot
    Adagrad               accumulator                     second_moment
    Nadam                 momentum, velocity interleaved  first_moment, second_moment

A slot is named ``<weight path with '/' as '_'>_<slot>``, the weight path being Keras's
``<model>/<layer>/<weight>``: ``sequential_conv2d_kernel_momentum``. The trainable weights are the
model's ``trainable_weights`` (frozen layers have no slots, as in Keras, where the optimizer is
built on ``model.trainable_variables``).

Before the compiled model is built (no C++ network yet) the optimizer has only ``iteration`` and
``learning_rate``, as a Keras optimizer before ``build``.
"""

import numpy as np

# Slots that hold running averages of squared gradients: never negative in a real state, and a
# negative value would put a NaN into the next step's square root.
_NON_NEGATIVE_SLOTS = ("velocity", "velocity_hat", "accumulator")


class _Spec:
    """One Keras optimizer variable: what it is called and where fastcnn keeps it."""

    __slots__ = ("name", "shape", "dtype", "kind", "buffer", "layer_index", "weight_index", "non_negative")

    def __init__(self, name, shape, dtype, kind, buffer=None, layer_index=None, weight_index=None,
                 non_negative=False):
        self.name = name
        self.shape = tuple(shape)
        self.dtype = dtype
        self.kind = kind  # "iteration", "learning_rate", "slot" or "u_product"
        self.buffer = buffer
        self.layer_index = layer_index
        self.weight_index = weight_index
        self.non_negative = non_negative



def _specs(optimizer, model):
    """Keras's variables for `optimizer` compiled into `model` (None: not built yet)."""
    specs = [_Spec("iteration", (), "int64", "iteration")]
    if optimizer._has_learning_rate_variable:
        specs.append(_Spec("learning_rate", (), "float32", "learning_rate"))
    if model is None:
        return specs
    # model.trainable_weights, each with its network node and its index among the node's weights
    # (the layout of parameter_views and optimizer_slot_views) and Keras's variable path.
    weights = model._trainable_weight_locations()
    for group in optimizer._slot_groups():
        for layer_index, weight_index, variable, path in weights:
            prefix = path.replace("/", "_").replace(":", "_")
            for slot_name, buffer in group:
                specs.append(_Spec(f"{prefix}_{slot_name}", variable.shape, "float32", "slot", buffer,
                                   layer_index, weight_index, slot_name in _NON_NEGATIVE_SLOTS))
    for name in optimizer._extra_scalars:
        specs.append(_Spec(name, (), "float32", "u_product"))
    return specs


def _compiled_state(model):
    """(optimizer, built model or None, network or None) for a compiled model. A fastcnn model is
    recognised by what this module reads of it (this module sits below fastcnn.models, which
    imports it)."""
    if not all(hasattr(model, name) for name in ("compiled", "optimizer", "_network", "trainable_weights")):
        raise TypeError(f"Expected a fastcnn model. Received: {model!r} (of type {type(model).__name__})")
    if not model.compiled or model.optimizer is None:
        raise ValueError(f"Model {model.name!r} has no optimizer state: it is not compiled. Call `compile()` first.")
    network = model._network
    return model.optimizer, (model if network is not None else None), network


def _attached_model(optimizer):
    """The built model whose network this optimizer drives now, or None."""
    model = optimizer._model_ref() if optimizer._model_ref is not None else None
    if model is None or model.optimizer is not optimizer or model._network is None:
        return None
    if model._network is not optimizer._network:
        return None
    return model


# ---- reading ----

class _Reader:
    """Reads specs from one network, taking each slot buffer's views once."""

    def __init__(self, optimizer, network):
        self.optimizer = optimizer
        self.network = network
        self.views = {}

    def slot_view(self, spec):
        if spec.buffer not in self.views:
            self.views[spec.buffer] = self.network.optimizer_slot_views(spec.buffer)
        return self.views[spec.buffer][spec.layer_index][spec.weight_index]

    def read(self, spec):
        if spec.kind == "iteration":
            return np.array(self.network.optimizer_iterations if self.network is not None else 0, dtype=np.int64)
        if spec.kind == "learning_rate":
            return np.array(self.optimizer.learning_rate, dtype=np.float32)
        if spec.kind == "u_product":
            return np.array(self.network.optimizer_nadam_u_product, dtype=np.float32)
        return np.array(self.slot_view(spec), dtype=np.float32, copy=True)

    def write(self, spec, value):
        """`value` already checked by _check_value."""
        if spec.kind == "iteration":
            if self.network is not None:
                self.network.optimizer_iterations = int(value)
            elif value != 0:
                raise ValueError(f"Optimizer {self.optimizer.name!r} has taken no step and its model is not built, "
                                 f"so its `iteration` can only be 0. Received: {value}. Build the model first.")
        elif spec.kind == "learning_rate":
            # Keras's variable is float32; keep the configured Python float when it rounds to the
            # same float32 (the C++ step receives the float32 anyway), so get_config stays tidy.
            current = self.optimizer._learning_rate
            if np.float32(current) != value:
                self.optimizer.learning_rate = float(value)
        elif spec.kind == "u_product":
            self.network.optimizer_nadam_u_product = float(value)
        else:
            self.slot_view(spec)[...] = value


def optimizer_state_arrays(model):
    """Copies of Keras's `model.optimizer.variables` for a compiled fastcnn model: numpy arrays in
    Keras's order, shapes and dtypes (int64 `iteration`, float32 the rest); what Keras writes
    as `optimizer/vars/0, 1, ...` in a weights file."""
    optimizer, built, network = _compiled_state(model)
    reader = _Reader(optimizer, network)
    return [reader.read(spec) for spec in _specs(optimizer, built)]


def optimizer_state_names(model):
    """Keras's names of the arrays `optimizer_state_arrays(model)` returns, in the same order."""
    optimizer, built, _ = _compiled_state(model)
    return [spec.name for spec in _specs(optimizer, built)]


# ---- checking and writing ----

def _check_value(spec, index, value, who):
    """`value` as the array to store for `spec`, or a ValueError/TypeError naming the variable."""
    where = f"{who} variable {index} ({spec.name!r})"
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{where} must be a numeric array. Received: {type(value).__name__} ({error})") from None
    if array.shape != spec.shape:
        raise ValueError(f"{where} has shape {spec.shape} but the received array has shape {array.shape}.")
    if spec.kind == "iteration":
        if array.dtype.kind not in "iu":
            raise TypeError(f"{where} must be an integer array (Keras stores it as int64). "
                            f"Received dtype={array.dtype}")
        count = int(array)
        if count < 0 or count > np.iinfo(np.int64).max:
            raise ValueError(f"{where} is a step count and must be >= 0. Received: {count}")
        return count
    if array.dtype.kind != "f":
        raise TypeError(f"{where} must be a float32 or float64 array. Received dtype={array.dtype}")
    with np.errstate(over="ignore"):
        converted = np.asarray(array, dtype=np.float32)
    if not np.all(np.isfinite(converted)):
        bad = array[~np.isfinite(converted)] if array.ndim else array
        raise ValueError(f"{where} must hold finite float32 values. Received a non-finite value or one beyond "
                         f"float32's range: {np.ravel(bad)[0]!r}")
    if spec.kind == "learning_rate" and converted < 0:
        raise ValueError(f"{where} must be >= 0. Received: {float(array)}")
    if spec.non_negative and np.any(converted < 0):
        raise ValueError(f"{where} is a running average of squared gradients and cannot be negative. Received a "
                         f"minimum of {float(converted.min())}")
    return converted


def _names_preview(specs, limit=8):
    names = [spec.name for spec in specs]
    if len(names) <= limit:
        return str(names)
    return f"{names[:limit]} ... ({len(names)} in all)"


def set_optimizer_state_arrays(model, arrays):
    """Sets a compiled fastcnn model's optimizer state from arrays in Keras's order (a Keras
    `[v.numpy() for v in model.optimizer.variables]`, or `optimizer_state_arrays` of another
    fastcnn model). Every array is checked (count, shape, dtype, finite values) before any is
    written: a mismatch raises naming the variable and both shapes, and leaves the state as it was.

    `iteration` sets the step count (schedules and Adam's bias corrections continue from it),
    `learning_rate` the optimizer's rate, as loading does in Keras. The state of an optimizer that
    was never built (only `iteration` = 0 and `learning_rate`, what Keras saves for a model
    compiled but never trained) is accepted too: the slots start afresh."""
    optimizer, built, network = _compiled_state(model)
    if isinstance(arrays, (str, bytes, np.ndarray)) or not hasattr(arrays, "__iter__"):
        raise TypeError(f"`arrays` must be a list of arrays. Received: {type(arrays).__name__}")
    arrays = list(arrays)
    specs = _specs(optimizer, built)
    base = [spec for spec in specs if spec.kind in ("iteration", "learning_rate")]
    who = f"Optimizer {optimizer.name!r}:"
    fresh = len(arrays) == len(base) and len(specs) > len(base)
    if len(arrays) != len(specs) and not fresh:
        hint = (" The optimizer's class, its options (momentum, amsgrad, centered), whether its rate is a "
                "schedule (which keeps no `learning_rate` variable) and the model's trainable weights decide them.")
        raise ValueError(f"Optimizer {optimizer.name!r} of model {model.name!r} has {len(specs)} variables but "
                         f"{len(arrays)} arrays were received. Expected, in Keras's order: "
                         f"{_names_preview(specs)}.{hint}")
    checked_specs = base if fresh else specs
    values = [_check_value(spec, index, value, who) for index, (spec, value) in enumerate(zip(checked_specs, arrays))]
    if network is None and values[0] != 0:
        raise ValueError(f"{who} model {model.name!r} is not built yet, so only a fresh state (iteration=0) can be "
                         f"set; received iteration={values[0]}. Build the model first (`model.build(input_shape)`).")
    if fresh and values[0] != 0:
        raise ValueError(f"{who} the received state holds only {[spec.name for spec in base]}, the variables of an "
                         f"optimizer that was never built, but iteration={values[0]}; a trained optimizer's state "
                         f"also needs its {len(specs) - len(base)} slot variables ({_names_preview(specs)}).")
    if fresh:
        optimizer._attach(network, model)  # slots at their initial values, iterations 0
    reader = _Reader(optimizer, network)
    for spec, value in zip(checked_specs, values):
        reader.write(spec, value)


# ---- Keras-style variable handles ----

class OptimizerVariable:
    """One of `optimizer.variables`: `name`, `path`, `shape`, `dtype`, `numpy()` and
    `assign(value)` on the compiled model's live optimizer state."""

    trainable = False

    def __init__(self, optimizer, model, network, spec, index):
        self._optimizer = optimizer
        self._model = model
        self._network = network
        self._spec = spec
        self._index = index

    @property
    def name(self):
        return self._spec.name

    @property
    def path(self):
        return f"{self._optimizer.name}/{self._spec.name}"

    @property
    def shape(self):
        return self._spec.shape

    @property
    def dtype(self):
        return self._spec.dtype

    def _current(self):
        if self._model is not None and (self._model._network is not self._network
                                        or self._model.optimizer is not self._optimizer):
            raise RuntimeError(f"Optimizer variable {self.path!r} belongs to a model that was rebuilt or "
                               "recompiled since; read `optimizer.variables` again.")
        return _Reader(self._optimizer, self._network)

    def numpy(self):
        return self._current().read(self._spec)

    def assign(self, value):
        reader = self._current()
        reader.write(self._spec, _check_value(self._spec, self._index, value, f"Optimizer {self._optimizer.name!r}:"))
        return self

    def __array__(self, dtype=None, copy=None):
        return np.array(self.numpy(), dtype=dtype, copy=True)

    def __repr__(self):
        return f"<OptimizerVariable path={self.path}, shape={self.shape}, dtype={self.dtype}>"


def optimizer_variables(optimizer):
    """`optimizer.variables`: handles for the optimizer's Keras variables (see the module doc)."""
    model = _attached_model(optimizer)
    network = model._network if model is not None else None
    return [OptimizerVariable(optimizer, model, network, spec, index)
            for index, spec in enumerate(_specs(optimizer, model))]


__all__ = ["optimizer_state_arrays", "optimizer_state_names", "set_optimizer_state_arrays", "OptimizerVariable",
           "optimizer_variables"]
