"""Optimizers with Keras 3's names, defaults and update rules. The update itself runs in C++ as one
fused pass over the model's flat parameter buffer (csrc/runtime/optimizer.h gives the formulas);
these objects hold the hyperparameters and read the state back."""

import numbers
import weakref

import numpy as np

from fastcnn import _naming, schedules


def _check_float(name, value, low=None, high=None, low_inclusive=True, high_inclusive=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a number. Received: {name}={value!r}")
    value = float(value)
    if value != value:
        raise ValueError(f"`{name}` must not be NaN. Received: {name}={value}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        bound = f">= {low}" if low_inclusive else f"> {low}"
        raise ValueError(f"`{name}` must be {bound}. Received: {name}={value}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        bound = f"<= {high}" if high_inclusive else f"< {high}"
        raise ValueError(f"`{name}` must be {bound}. Received: {name}={value}")
    return value


class Optimizer:
    """Base class: learning rate (a float or a schedule), gradient clipping, weight decay, name, and
    the link to the compiled model holding the state. Keras's base arguments:

    - ``clipnorm``: each weight array's gradient scaled to an L2 norm of at most clipnorm;
    - ``global_clipnorm``: all gradients scaled together to a global norm of at most this;
    - ``clipvalue``: each gradient value clipped to [-clipvalue, clipvalue] (one of the three only);
    - ``weight_decay``: before each update, ``w -= w * weight_decay * learning_rate``.
    """

    _kind = None

    def __init__(self, learning_rate, name, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, **kwargs):
        for argument in ("use_ema", "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps"):
            if kwargs.get(argument) not in (None, False):
                raise ValueError(f"fastcnn does not support `{argument}`. Received: {argument}={kwargs[argument]!r}")
            kwargs.pop(argument, None)
        # Keras records ema_momentum (default 0.99) even with use_ema=False; without EMA it has no
        # effect, so any momentum in [0, 1] is accepted and kept for the config.
        self._ema_momentum = _check_float("ema_momentum", kwargs.pop("ema_momentum", 0.99), 0.0, 1.0)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        self.learning_rate = learning_rate
        if name is None:  # Keras's auto_name: the class name in snake case, numbered from the second
            name = _naming.unique_name(_naming.to_snake_case(type(self).__name__))
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        self.name = name
        self.weight_decay = None if weight_decay is None else _check_float("weight_decay", weight_decay, low=0.0)
        self.clipnorm = None if clipnorm is None else _check_float("clipnorm", clipnorm, low=0.0, low_inclusive=False)
        self.clipvalue = None if clipvalue is None else _check_float("clipvalue", clipvalue, low=0.0, low_inclusive=False)
        self.global_clipnorm = (None if global_clipnorm is None
                                else _check_float("global_clipnorm", global_clipnorm, low=0.0, low_inclusive=False))
        if sum(v is not None for v in (self.clipnorm, self.clipvalue, self.global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self._network = None
        self._model_ref = None

    @property
    def learning_rate(self):
        """The learning rate of the next step (a schedule is evaluated at `iterations`)."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, schedules.LearningRateSchedule):
            self._learning_rate = value
            return
        if isinstance(getattr(self, "_learning_rate", None), schedules.LearningRateSchedule):
            # Keras refuses this too: the schedule, not a callback, owns the learning rate.
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule`"
                " object as its `learning_rate` constructor argument, "
                "hence its learning rate is not settable. If you need the"
                " learning rate to be settable, you should instantiate "
                "the optimizer with a float `learning_rate` argument."
            )
        # 0 is allowed, as in Keras: a LearningRateScheduler or ReduceLROnPlateau(factor=0) may set
        # it. A step at 0 changes no weight (weight decay is scaled by it too); the optimizer's
        # moments and iterations and BatchNormalization's moving statistics still advance.
        self._learning_rate = _check_float("learning_rate", value, low=0.0)

    def _base_runtime_config(self):
        return {"weight_decay": self.weight_decay or 0.0, "clipnorm": self.clipnorm or 0.0,
                "clipvalue": self.clipvalue or 0.0, "global_clipnorm": self.global_clipnorm or 0.0}

    @property
    def iterations(self):
        """Number of updates applied so far."""
        return self._network.optimizer_iterations if self._network is not None else 0

    @property
    def built(self):
        return self._network is not None and self.iterations > 0

    def _runtime_config(self):
        raise NotImplementedError(f"{type(self).__name__} must implement _runtime_config")

    def _attach(self, network, model=None):
        """Configures the compiled model's optimizer (fresh state). `model` (held weakly) is the
        Sequential that owns `network`: `variables` names the slots after its weights."""
        network.configure_optimizer(kind=self._kind, **self._base_runtime_config(), **self._runtime_config())
        self._network = network
        self._model_ref = weakref.ref(model) if model is not None else None

    # Keras's slot variables, as the `build` of each Keras optimizer creates them: a list of groups,
    # one per `add_optimizer_variables` call, each a list of (Keras slot name, C++ buffer of
    # csrc/runtime/optimizer.h). Within a group Keras interleaves the names per weight (Adam:
    # w0 momentum, w0 velocity, w1 momentum, ...); the groups follow one another.
    def _slot_groups(self):
        return []

    # Keras variables after the slots that belong to no weight: Nadam's `u_product` scalar.
    _extra_scalars = ()

    @property
    def _has_learning_rate_variable(self):
        """Keras keeps a float32 `learning_rate` variable for a constant rate; a schedule is
        evaluated at `iterations` and stores none."""
        return not isinstance(self._learning_rate, schedules.LearningRateSchedule)

    @property
    def _slots_per_parameter(self):
        return sum(len(group) for group in self._slot_groups())

    def count_variables(self, trainable_count):
        """Number of values in Keras's optimizer variables (what `summary()` reports as Optimizer
        params): `iteration`, `learning_rate` (not with a schedule), the slots (momentum, moments,
        ...) of every trainable parameter, and Nadam's `u_product`."""
        return (self._slots_per_parameter * trainable_count + 1 + self._has_learning_rate_variable
                + len(self._extra_scalars))

    @property
    def variables(self):
        """Keras's `optimizer.variables`, in its order and with its names and shapes: `iteration`
        (int64), `learning_rate` (float32; absent with a schedule), then the slots of every
        trainable weight of the compiled model (see `_slot_groups`). Each has `name`, `shape`,
        `dtype`, `numpy()` (a copy of the C++ state) and `assign(value)`; before the model is built
        only the first two exist, as in Keras before `optimizer.build`."""
        from fastcnn import _optimizer_state  # noqa: PLC0415 (numpy arrays of the C++ state, when asked)

        return _optimizer_state.optimizer_variables(self)

    def get_config(self):
        """Keras 3.15's optimizer config: a float learning rate as Keras reads it back from its
        float32 variable (0.001 -> 0.0010000000474974513), a schedule serialized."""
        learning_rate = self._learning_rate
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            learning_rate = schedules.serialize(learning_rate)
        else:
            learning_rate = float(np.float32(learning_rate))
        return {"name": self.name, "learning_rate": learning_rate, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue,
                "use_ema": False, "ema_momentum": self._ema_momentum, "ema_overwrite_frequency": None,
                "loss_scale_factor": None, "gradient_accumulation_steps": None}

    def __repr__(self):
        return f"<{type(self).__name__} {self.get_config()}>"


class SGD(Optimizer):
    _kind = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.momentum = _check_float("momentum", momentum, 0.0, 1.0)
        if not isinstance(nesterov, bool):
            raise TypeError(f"`nesterov` must be a bool. Received: nesterov={nesterov!r}")
        self.nesterov = nesterov

    def _slot_groups(self):
        # Keras: `if self.momentum != 0: add_optimizer_variables(variables, "momentum")`; the C++
        # momentum m = momentum * m - lr * g is Keras's own sign convention.
        return [[("momentum", "first_moment")]] if self.momentum != 0 else []

    def _runtime_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    _kind = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1 = _check_float("beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        self.beta_2 = _check_float("beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        self.epsilon = _check_float("epsilon", epsilon, 0.0, low_inclusive=False)
        if not isinstance(amsgrad, bool):
            raise TypeError(f"`amsgrad` must be a bool. Received: amsgrad={amsgrad!r}")
        self.amsgrad = amsgrad

    def _slot_groups(self):
        # Keras: momentums and velocities in one call (interleaved per weight), then velocity_hats.
        groups = [[("momentum", "first_moment"), ("velocity", "second_moment")]]
        if self.amsgrad:
            groups.append([("velocity_hat", "third_slot")])
        return groups

    def _runtime_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class RMSprop(Optimizer):
    _kind = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.rho = _check_float("rho", rho, 0.0, 1.0)
        self.momentum = _check_float("momentum", momentum, 0.0, 1.0)
        self.epsilon = _check_float("epsilon", epsilon, 0.0, low_inclusive=False)
        if not isinstance(centered, bool):
            raise TypeError(f"`centered` must be a bool. Received: centered={centered!r}")
        self.centered = centered

    def _slot_groups(self):
        # Keras: all velocities, then all momentums (momentum > 0), then all average_gradients
        # (centered), each its own add_optimizer_variables call.
        groups = [[("velocity", "second_moment")]]
        if self.momentum > 0:
            groups.append([("momentum", "first_moment")])
        if self.centered:
            groups.append([("average_gradient", "third_slot")])
        return groups

    def _runtime_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras default weight_decay=0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name=None, **kwargs):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, name, weight_decay=weight_decay, **kwargs)


class Adagrad(Optimizer):
    _kind = "adagrad"

    def _slot_groups(self):
        # Starts at initial_accumulator_value, in Keras and in C++ alike.
        return [[("accumulator", "second_moment")]]

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, name=None,
                 **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.initial_accumulator_value = _check_float("initial_accumulator_value", initial_accumulator_value, low=0.0)
        self.epsilon = _check_float("epsilon", epsilon, 0.0, low_inclusive=False)

    def _runtime_config(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Nadam(Optimizer):
    _kind = "nadam"
    # Keras's `self._u_product = backend.Variable(1.0)`, created after the slots with no name of
    # its own, hence Keras's default name "variable".
    _extra_scalars = ("variable",)

    def _slot_groups(self):
        return [[("momentum", "first_moment"), ("velocity", "second_moment")]]

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1 = _check_float("beta_1", beta_1, 0.0, 1.0, high_inclusive=False)
        self.beta_2 = _check_float("beta_2", beta_2, 0.0, 1.0, high_inclusive=False)
        self.epsilon = _check_float("epsilon", epsilon, 0.0, low_inclusive=False)

    def _runtime_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Nadam", "schedules", "get"]

_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad, "nadam": Nadam}


def serialize(optimizer):
    """Keras's serialized optimizer: ``{"module": "keras.optimizers", "class_name": ..., "config":
    ..., "registered_name": None}``."""
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__, "config": optimizer.get_config(),
            "registered_name": None}


def get(identifier):
    """An optimizer from a Keras name ('adam', 'sgd', 'rmsprop', any case) or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(
        f"Could not interpret optimizer identifier: {identifier!r}. Supported: {', '.join(_BY_NAME)} "
        "or an instance of fastcnn.optimizers.Optimizer."
    )
