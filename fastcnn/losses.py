"""Losses with Keras's names. Training computes them inside the C++ step (fused with softmax when
the model ends in one); these objects configure that and can be called on arrays as in Keras."""

import numbers

import numpy as np

from fastcnn import _core


class Loss:
    """Base class. ``sparse`` losses take class labels; the others take probability rows (or, for
    the binary kind, one target per unit)."""

    sparse = False
    kind = "categorical_crossentropy"  # the C++ loss (csrc/ops/loss.h) this object configures

    def __init__(self, name, reduction="sum_over_batch_size", from_logits=False):
        if reduction not in ("sum_over_batch_size", "sum", "none", None):
            raise ValueError(
                "Invalid value for argument `reduction`. Expected one of sum_over_batch_size, sum, "
                f"none. Received: reduction={reduction!r}"
            )
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        if not isinstance(from_logits, bool):
            raise TypeError(f"`from_logits` must be a bool. Received: from_logits={from_logits!r}")
        self.name = name
        self.reduction = reduction
        self.from_logits = from_logits

    def _kernel_options(self):
        """The loss function's own arguments as the C++ loss takes them (ops/loss.h LossOptions)."""
        return {}

    def _prepare_targets(self, y_true, classes):
        raise NotImplementedError(f"{type(self).__name__} must implement _prepare_targets")

    def _targets_and_truth(self, y_true, classes):
        """(the targets the loss computes with, the targets as the metrics see them: as given, before
        any label smoothing); one array where they are the same."""
        targets = self._prepare_targets(y_true, classes)
        return targets, targets

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, dtype=np.float32)
        if y_pred.ndim != 2:
            raise ValueError(f"`y_pred` must have shape (batch, classes). Received: y_pred.shape={y_pred.shape}")
        per_sample = self.call(y_true, y_pred)
        if sample_weight is not None:
            per_sample = per_sample * np.asarray(sample_weight, dtype=np.float32).reshape(per_sample.shape)
        if self.reduction in ("none", None):
            return per_sample
        if self.reduction == "sum":
            return np.float32(per_sample.sum())
        return np.float32(per_sample.sum() / max(per_sample.shape[0], 1))

    def call(self, y_true, y_pred):
        targets = self._prepare_targets(y_true, y_pred.shape[-1])
        losses, _ = _core.ops.loss(y_pred, targets, self.from_logits, self.kind, **self._kernel_options())
        return losses

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}


def _labels(y_true, classes):
    labels = np.asarray(y_true)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            "sparse categorical labels must have shape (batch,) or (batch, 1). "
            f"Received: y.shape={labels.shape}"
        )
    if labels.dtype.kind not in "iub":
        if labels.dtype.kind != "f":
            raise TypeError(f"labels must be numeric. Received: y.dtype={labels.dtype}")
        bad = labels[~np.isfinite(labels) | (labels != np.round(labels))]
        if bad.size:
            raise ValueError("sparse categorical labels must be integer class indices. Received a label value "
                             f"of {bad.flat[0]!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise ValueError(
            f"Received a label value of {bad} which is outside the valid range of [0, {classes}). "
            "Labels must be class indices of the model's output."
        )
    return labels.astype(np.int32)


def _check_label_smoothing(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1]. Received: label_smoothing={value}")
    return float(value)


def _per_unit(y_true, classes, loss_name):
    """Targets of a per-unit loss as (batch, units) float32; (batch,) targets of a one-unit output
    gain their axis, as Keras expands them."""
    targets = np.asarray(y_true)
    if targets.dtype.kind not in "iubf":
        raise TypeError(f"targets must be numeric. Received: y.dtype={targets.dtype}")
    if targets.ndim == 1 and classes == 1:
        targets = targets[:, None]
    if targets.ndim != 2 or targets.shape[1] != classes:
        raise ValueError(f"{loss_name} needs targets of shape (batch, {classes}), one per output unit. Received: "
                         f"y.shape={targets.shape}")
    return np.ascontiguousarray(targets, dtype=np.float32)


def _probabilities(y_true, classes, label_smoothing=0.0):
    targets = np.asarray(y_true)
    if targets.dtype.kind not in "iubf":
        raise TypeError(f"targets must be numeric. Received: y.dtype={targets.dtype}")
    if targets.ndim != 2 or targets.shape[1] != classes:
        raise ValueError(
            f"categorical targets must have shape (batch, {classes}) (one-hot rows; use "
            "sparse_categorical_crossentropy for class indices). Received: y.shape="
            f"{targets.shape}"
        )
    targets = targets.astype(np.float32)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / classes
    return np.ascontiguousarray(targets)


class SparseCategoricalCrossentropy(Loss):
    sparse = True

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy"):
        if ignore_class is not None:
            raise ValueError(f"`ignore_class` is not supported by fastcnn. Received: ignore_class={ignore_class!r}")
        super().__init__(name, reduction, from_logits)

    def _prepare_targets(self, y_true, classes):
        return _labels(y_true, classes)

    def get_config(self):
        return {**super().get_config(), "ignore_class": None}


class CategoricalCrossentropy(Loss):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy"):
        if axis != -1:
            raise ValueError(f"fastcnn computes cross-entropy over the last axis only. Received: axis={axis}")
        super().__init__(name, reduction, from_logits)
        self.label_smoothing = _check_label_smoothing(label_smoothing)

    def _prepare_targets(self, y_true, classes):
        return _probabilities(y_true, classes, self.label_smoothing)

    def _targets_and_truth(self, y_true, classes):
        truth = _probabilities(y_true, classes)
        return (_probabilities(y_true, classes, self.label_smoothing) if self.label_smoothing else truth), truth

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "axis": -1}


class BinaryCrossentropy(Loss):
    """Keras's binary cross-entropy: every output unit an independent probability (one sigmoid unit
    for two classes, several for multi-label), the loss the mean over the units; targets in [0, 1]
    per unit (soft labels accepted, as in Keras). A sigmoid output is fused with it: the loss reads
    the logits."""

    kind = "binary_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy"):
        if axis != -1:
            raise ValueError(f"fastcnn computes cross-entropy over the last axis only. Received: axis={axis}")
        super().__init__(name, reduction, from_logits)
        self.label_smoothing = _check_label_smoothing(label_smoothing)

    def _prepare_targets(self, y_true, classes):
        return self._targets_and_truth(y_true, classes)[0]

    def _targets_and_truth(self, y_true, classes):
        truth = _per_unit(y_true, classes, "binary_crossentropy")
        if not self.label_smoothing:
            return truth, truth
        smoothed = truth * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return np.ascontiguousarray(smoothed, dtype=np.float32), truth

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "axis": -1}


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Per-sample losses, shape (batch,): the mean over the units."""
    return BinaryCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing,
                              reduction="none")(y_true, y_pred)


def _check_focal(alpha, gamma):
    for name, value in (("alpha", alpha), ("gamma", gamma)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    if gamma < 0:
        raise ValueError(f"`gamma` must be non-negative (the focusing exponent). Received: gamma={gamma!r}")
    return float(alpha), float(gamma)


class BinaryFocalCrossentropy(BinaryCrossentropy):
    """Keras's binary focal cross-entropy (Lin et al., 2017): the binary cross-entropy of each unit
    scaled by (1 - p_t)^gamma, p_t the probability given to the true value, and with
    apply_class_balancing by alpha for positive targets and 1 - alpha for negative ones; the mean over
    the units. A sigmoid output hands the loss its logits, as for binary cross-entropy."""

    kind = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                 axis=-1, reduction="sum_over_batch_size", name="binary_focal_crossentropy"):
        super().__init__(from_logits=from_logits, label_smoothing=label_smoothing, axis=axis, reduction=reduction,
                         name=name)
        if not isinstance(apply_class_balancing, bool):
            raise TypeError("`apply_class_balancing` must be a bool. Received: "
                            f"apply_class_balancing={apply_class_balancing!r}")
        self.apply_class_balancing = apply_class_balancing
        self.alpha, self.gamma = _check_focal(alpha, gamma)

    def _kernel_options(self):
        return {"focal_gamma": self.gamma, "focal_alpha": self.alpha,
                "apply_class_balancing": self.apply_class_balancing}

    def get_config(self):
        return {**super().get_config(), "apply_class_balancing": self.apply_class_balancing, "alpha": self.alpha,
                "gamma": self.gamma}


class CategoricalFocalCrossentropy(CategoricalCrossentropy):
    """Keras's categorical focal cross-entropy: -alpha (1 - q)^gamma t log q summed over the classes,
    q the prediction normalised to sum 1 and clipped to [1e-7, 1 - 1e-7] (softmax of the logits with
    from_logits). One-hot targets, as CategoricalCrossentropy."""

    kind = "categorical_focal_crossentropy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy"):
        super().__init__(from_logits=from_logits, label_smoothing=label_smoothing, axis=axis, reduction=reduction,
                         name=name)
        self.alpha, self.gamma = _check_focal(alpha, gamma)

    def _kernel_options(self):
        return {"focal_gamma": self.gamma, "focal_alpha": self.alpha}

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                              label_smoothing=0.0):
    """Per-sample losses, shape (batch,): the mean over the units."""
    return BinaryFocalCrossentropy(apply_class_balancing=apply_class_balancing, alpha=alpha, gamma=gamma,
                                   from_logits=from_logits, label_smoothing=label_smoothing,
                                   reduction="none")(y_true, y_pred)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0):
    """Per-sample losses, shape (batch,)."""
    return CategoricalFocalCrossentropy(alpha=alpha, gamma=gamma, from_logits=from_logits,
                                        label_smoothing=label_smoothing, reduction="none")(y_true, y_pred)


class _PerUnitLoss(Loss):
    """A regression or distribution loss (ops/loss.h): targets per output unit, no logits."""

    def __init__(self, reduction, name):
        super().__init__(name, reduction, False)

    def _prepare_targets(self, y_true, classes):
        return _per_unit(y_true, classes, self.kind)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


class MeanSquaredError(_PerUnitLoss):
    """mean((y_pred - y_true)^2) over the last axis."""

    kind = "mean_squared_error"

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(reduction, name)


class MeanAbsoluteError(_PerUnitLoss):
    """mean(|y_pred - y_true|) over the last axis."""

    kind = "mean_absolute_error"

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(reduction, name)


class Huber(_PerUnitLoss):
    """Squared error within `delta` of the target, linear beyond, averaged over the last axis."""

    kind = "huber"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not np.isfinite(delta) or delta <= 0:
            raise ValueError(f"`delta` must be a positive number. Received: delta={delta!r}")
        super().__init__(reduction, name)
        self.delta = float(delta)

    def _kernel_options(self):
        return {"huber_delta": self.delta}

    def get_config(self):
        # Keras 3.15 records no delta; fastcnn adds it where it is not the default, so it survives.
        config = super().get_config()
        if self.delta != 1.0:
            config["delta"] = self.delta
        return config


class KLDivergence(_PerUnitLoss):
    """sum(t log(t / p)) over the last axis, t and p clipped to [1e-7, 1]."""

    kind = "kl_divergence"

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence"):
        super().__init__(reduction, name)


class CategoricalHinge(_PerUnitLoss):
    """max(max((1 - t) p) - sum(t p) + 1, 0): one-hot targets, scores as predictions."""

    kind = "categorical_hinge"

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge"):
        super().__init__(reduction, name)


def mean_squared_error(y_true, y_pred):
    """Per-sample losses, shape (batch,)."""
    return MeanSquaredError(reduction="none")(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    """Per-sample losses, shape (batch,)."""
    return MeanAbsoluteError(reduction="none")(y_true, y_pred)


def huber(y_true, y_pred, delta=1.0):
    """Per-sample losses, shape (batch,)."""
    return Huber(delta=delta, reduction="none")(y_true, y_pred)


def kl_divergence(y_true, y_pred):
    """Per-sample losses, shape (batch,)."""
    return KLDivergence(reduction="none")(y_true, y_pred)


def categorical_hinge(y_true, y_pred):
    """Per-sample losses, shape (batch,)."""
    return CategoricalHinge(reduction="none")(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Per-sample losses, shape (batch,)."""
    return SparseCategoricalCrossentropy(from_logits=from_logits, reduction="none")(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Per-sample losses, shape (batch,)."""
    return CategoricalCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing,
                                   reduction="none")(y_true, y_pred)


_BY_NAME = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "huber": Huber, "kl_divergence": KLDivergence, "kld": KLDivergence,
    "categorical_hinge": CategoricalHinge,
    "binary_focal_crossentropy": BinaryFocalCrossentropy,
    "categorical_focal_crossentropy": CategoricalFocalCrossentropy,
}
# The loss functions compile accepts, as Keras's public functions (serialized by name).
_FUNCTIONS = {f.__name__: f for f in (sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy,
                                      mean_squared_error, mean_absolute_error, huber, kl_divergence,
                                      categorical_hinge, binary_focal_crossentropy,
                                      categorical_focal_crossentropy)}


def get(identifier):
    """A loss object from a Keras name, a loss function of this module, or a Loss instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if callable(identifier) and _FUNCTIONS.get(getattr(identifier, "__name__", None)) is identifier:
        return _BY_NAME[identifier.__name__]()
    raise ValueError(
        f"Could not interpret loss identifier: {identifier!r}. fastcnn computes the loss inside its "
        f"C++ training step; supported: {', '.join(_BY_NAME)} (or their Loss classes)."
    )
