"""Metrics with Keras 3's names, defaults and results: stateful objects (``update_state``,
``result``, ``reset_state``) computed with numpy on a step's predictions, usable in ``compile``
(any number, per output) and on their own, and the stateless functions behind them.

Every metric's state is a set of sums (totals and counts, confusion-matrix counts), so the states
of several processes add up to the state of all their samples (MPIStrategy reduces them so).
"""

import math
import numbers

import numpy as np

from fastcnn import _naming

_EPSILON = 1e-7  # Keras's backend.epsilon()


def _array(value, name):
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"`{name}` must be an array of numbers. Received: {type(value).__name__} ({error})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must hold numbers. Received: {name}.dtype={array.dtype}")
    return array


def squeeze_or_expand_to_same_rank(first, second, expand_rank_1=True):
    """Keras's rule: where the ranks differ by one and the larger's last axis is 1, that axis goes
    (or, for a rank-1 partner with expand_rank_1, the partner gains one)."""
    first_rank, second_rank = first.ndim, second.ndim
    if first_rank == second_rank:
        return first, second
    if first_rank == second_rank + 1 and first.shape[-1] == 1:
        if second_rank == 1 and expand_rank_1:
            second = second[..., None]
        else:
            first = first[..., 0]
    if second_rank == first_rank + 1 and second.shape[-1] == 1:
        if first_rank == 1 and expand_rank_1:
            first = first[..., None]
        else:
            second = second[..., 0]
    return first, second


# ---- stateless functions (per-sample values, as Keras's) ----


def accuracy(y_true, y_pred):
    """1.0 where the prediction equals the target exactly."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(_array(y_true, "y_true"), _array(y_pred, "y_pred"))
    return np.equal(y_true, y_pred).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where (prediction > threshold) equals the target, per element."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(_array(y_true, "y_true"), _array(y_pred, "y_pred"))
    return np.equal(y_true, (y_pred > threshold).astype(y_true.dtype)).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    """1.0 where the prediction's argmax is the target row's argmax."""
    y_true, y_pred = _array(y_true, "y_true"), _array(y_pred, "y_pred")
    return np.equal(np.argmax(y_true, axis=-1), np.argmax(y_pred, axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the prediction's argmax is the class index (targets (batch,) or (batch, 1))."""
    y_true, y_pred = _array(y_true, "y_true"), _array(y_pred, "y_pred")
    squeeze = y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1
    labels = y_true[..., 0] if squeeze else y_true
    matches = np.equal(labels, np.argmax(y_pred, axis=-1).astype(labels.dtype)).astype(np.float32)
    return matches


def _in_top_k(labels, y_pred, k):
    """TensorFlow's in_top_k: the target's score is among the k largest (ties at the boundary count
    as in); a non-finite target score never is."""
    scores = y_pred.reshape(-1, y_pred.shape[-1]).astype(np.float32)
    labels = labels.reshape(-1).astype(np.int64)
    target = scores[np.arange(len(labels)), labels]
    larger = np.sum(scores > target[:, None], axis=-1)
    return ((larger < k) & np.isfinite(target)).astype(np.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the target row's argmax is among the k highest predictions."""
    y_true, y_pred = _array(y_true, "y_true"), _array(y_pred, "y_pred")
    labels = np.argmax(y_true, axis=-1)
    return _in_top_k(labels, y_pred, k).reshape(labels.shape)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the class index is among the k highest predictions."""
    y_true, y_pred = _array(y_true, "y_true"), _array(y_pred, "y_pred")
    labels = y_true[..., 0] if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1 else y_true
    return _in_top_k(labels, y_pred, k).reshape(labels.shape)


# ---- stateful metrics ----


class Metric:
    """Base class: a name, float32 results, and a state of numpy sums listed in `_state_names`."""

    _state_names = ()
    _direction = None  # "up" for the metrics a callback's mode="auto" maximises

    def __init__(self, name=None, dtype=None):
        if dtype not in (None, "float32", np.float32) and not (isinstance(dtype, dict) and dtype.get("config", {})
                                                              .get("name") == "float32"):
            raise ValueError(f"fastcnn computes metrics in float32. Received: dtype={dtype!r}")
        # Without a name, Keras numbers instances of a class: precision, precision_1, ...
        name = _naming.unique_name(_naming.to_snake_case(type(self).__name__)) if name is None else name
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        self.name = name
        self.dtype = "float32"
        self.reset_state()

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result")

    def reset_state(self):
        for name in self._state_names:
            setattr(self, name, np.zeros_like(getattr(self, name, np.zeros(()))))

    def __call__(self, *args, **kwargs):
        """Keras's Metric.__call__: update the state with these values and return the result."""
        self.update_state(*args, **kwargs)
        return self.result()

    @property
    def variables(self):
        """Copies of the state arrays (Keras's metric variables: totals, counts, ...)."""
        return [np.array(getattr(self, name), dtype=np.float32) for name in self._state_names]

    def _state_vector(self):
        """The whole state as one float64 vector (states add up over processes)."""
        parts = [np.ravel(getattr(self, name)).astype(np.float64) for name in self._state_names]
        return np.concatenate(parts) if parts else np.zeros(0)

    def _set_state_vector(self, vector):
        offset = 0
        for name in self._state_names:
            current = getattr(self, name)
            size = int(np.size(current))
            setattr(self, name, np.asarray(vector[offset:offset + size], dtype=np.float64).reshape(np.shape(current)))
            offset += size

    def get_config(self):
        return {"name": self.name, "dtype": "float32"}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _sample_weights(values, sample_weight, reduce):
    """Keras's reduce_to_samplewise_values: per-sample values (other axes reduced) weighted by
    sample_weight, and the weights' per-sample sums."""
    values = values.astype(np.float64)
    if sample_weight is not None:
        weights = _array(sample_weight, "sample_weight").astype(np.float64)
        values, weights = squeeze_or_expand_to_same_rank(values, weights)
        if values.ndim > weights.ndim:
            values = reduce(values, axis=tuple(range(weights.ndim, values.ndim)))
        weights = np.broadcast_to(weights, values.shape)
        values = values * weights
        if weights.ndim > 1:
            weights = reduce(weights, axis=tuple(range(1, weights.ndim)))
    else:
        weights = None
    if values.ndim > 1:
        values = reduce(values, axis=tuple(range(1, values.ndim)))
    return values, weights


class Sum(Metric):
    """The (weighted) sum of the values seen."""

    _state_names = ("total",)

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, values, sample_weight=None):
        values, _ = _sample_weights(_array(values, "values"), sample_weight, np.sum)
        self.total = self.total + np.sum(values)

    def result(self):
        return np.float32(self.total)


class Mean(Metric):
    """The (weighted) mean of the values seen: total / count."""

    _state_names = ("total", "count")

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, values, sample_weight=None):
        values, weights = _sample_weights(_array(values, "values"), sample_weight, np.mean)
        self.total = self.total + np.sum(values)
        if weights is not None:
            self.count = self.count + np.sum(weights)
        else:
            self.count = self.count + (values.shape[0] if values.ndim >= 1 else 1)

    def result(self):
        return np.float32(self.total / self.count) if self.count != 0 else np.float32(0.0)

    def _add_matches(self, matches, count):
        """update_state's effect for `count` unweighted per-sample values of 0 or 1, `matches` of
        them 1 (their float32 sum is exact below 2**24)."""
        self.total = self.total + np.float32(matches)
        self.count = self.count + count


class MeanMetricWrapper(Mean):
    """The mean of a per-sample function `fn(y_true, y_pred, **kwargs)`."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"`fn` must be callable. Received: fn={fn!r}")
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name or "mean_metric_wrapper", dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": "float32"}


class Accuracy(MeanMetricWrapper):
    """How often predictions equal the targets exactly (see BinaryAccuracy, CategoricalAccuracy,
    SparseCategoricalAccuracy for classifier outputs; compile's "accuracy" picks one of those)."""

    _direction = "up"

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    _direction = "up"

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold):
            raise ValueError(f"`threshold` must be a number. Received: threshold={threshold!r}")
        self.threshold = float(threshold)
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=self.threshold)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    _direction = "up"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    _direction = "up"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


# The per-sample accuracies that a compiled step counts itself (Network.step_argmax_matches), and
# the targets each compares with there: the class labels, or one-hot / probability rows.
_STEP_COUNTED = {sparse_categorical_accuracy: "labels", categorical_accuracy: "probabilities"}


def _step_counted_target(metric):
    """"labels" or "probabilities" where `metric`'s unweighted update is the mean of a per-sample
    accuracy that the compiled step counts (the built-in SparseCategoricalAccuracy /
    CategoricalAccuracy and wrappers of their functions, not overridden), else None."""
    if not isinstance(metric, MeanMetricWrapper) or type(metric).update_state is not MeanMetricWrapper.update_state:
        return None
    if metric._fn_kwargs:
        return None
    return _STEP_COUNTED.get(metric._fn)


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
    return int(k)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    _direction = "up"

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        self.k = _check_k(k)
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=self.k)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    _direction = "up"

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None, from_sorted_ids=False):
        if from_sorted_ids:
            raise ValueError("fastcnn's SparseTopKCategoricalAccuracy takes scores, not sorted ids. Received: "
                             "from_sorted_ids=True")
        self.k = _check_k(k)
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=self.k)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


# ---- confusion-matrix metrics ----


def _check_thresholds(thresholds, default):
    """Keras's parse_init_thresholds: None -> [default]; every value in [0, 1]."""
    if thresholds is None:
        return [default], False
    single = isinstance(thresholds, numbers.Real) and not isinstance(thresholds, bool)
    values = [thresholds] if single else list(thresholds)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
            raise ValueError(f"Threshold values must be in [0, 1]. Received: {values}")
    return [float(v) for v in values], single


def _confusion_counts(y_true, y_pred, thresholds, sample_weight, top_k=None, class_id=None, multi_label=False,
                      evenly_distributed=False):
    """Weighted (true positives, false positives, true negatives, false negatives) per threshold
    (and per label when multi_label), prediction > threshold being positive and a non-zero target
    a positive label (Keras's update_confusion_matrix_variables)."""
    y_true = _array(y_true, "y_true").astype(np.float32)
    y_pred = _array(y_pred, "y_pred").astype(np.float32)
    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    if y_true.shape != y_pred.shape:
        raise ValueError("Confusion-matrix metrics (Precision, Recall, AUC) compare targets and predictions "
                         "element by element: they need the same shape (one-hot or multi-label targets). Received: "
                         f"y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}")
    weights = None
    if sample_weight is not None:
        weights = _array(sample_weight, "sample_weight").astype(np.float32)[..., None]
        _, weights = squeeze_or_expand_to_same_rank(y_true, weights, expand_rank_1=False)
    if top_k is not None:
        order = np.argsort(-y_pred, axis=-1, kind="stable")[..., :top_k]
        kept = np.zeros(y_pred.shape, dtype=bool)
        np.put_along_axis(kept, order, True, axis=-1)
        y_pred = np.where(kept, y_pred, np.float32(-1e10))
    if class_id is not None:
        if y_pred.ndim == 1:
            raise ValueError("When class_id is provided, y_pred must be a 2D array with shape (num_samples, "
                             f"num_classes), found shape: {y_pred.shape}")
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
    weights = np.ones(y_pred.shape, np.float64) if weights is None else \
        np.broadcast_to(weights, y_pred.shape).astype(np.float64)
    positive = y_true.astype(bool)
    thresholds = np.asarray(thresholds, dtype=np.float32)
    if not multi_label:
        y_pred, positive, weights = y_pred.reshape(1, -1), positive.reshape(1, -1), weights.reshape(1, -1)
    else:
        y_pred, positive, weights = (y_pred.reshape(-1, y_pred.shape[-1]).T, positive.reshape(-1, y_pred.shape[-1]).T,
                                     weights.reshape(-1, y_pred.shape[-1]).T)
    count = len(thresholds)
    if evenly_distributed:
        # Keras's bucketed count for evenly spaced thresholds: bucket ceil(p (T - 1)) - 1.
        buckets = np.ceil(np.clip(y_pred, 0.0, 1.0) * np.float32(count - 1)) - 1
        buckets = np.maximum(buckets, 0).astype(np.int64)
    else:
        # Positive at every threshold below the prediction: the number of thresholds < p.
        order = np.argsort(thresholds, kind="stable")
        buckets = np.searchsorted(thresholds[order], y_pred, side="left") - 1
    results = []
    for labels_row, buckets_row, weights_row in zip(positive, buckets, weights):
        valid = buckets_row >= 0
        true_hist = np.bincount(buckets_row[valid], weights=(weights_row * labels_row)[valid], minlength=count)
        false_hist = np.bincount(buckets_row[valid], weights=(weights_row * ~labels_row)[valid], minlength=count)
        true_positives = np.cumsum(true_hist[::-1])[::-1]
        false_positives = np.cumsum(false_hist[::-1])[::-1]
        if not evenly_distributed:
            # Sorted-order counts back to the thresholds' own order.
            unsorted_tp, unsorted_fp = np.empty(count), np.empty(count)
            unsorted_tp[order], unsorted_fp[order] = true_positives, false_positives
            true_positives, false_positives = unsorted_tp, unsorted_fp
        total_true = np.sum(weights_row * labels_row)
        total_false = np.sum(weights_row * ~labels_row)
        results.append((true_positives, false_positives, total_false - false_positives, total_true - true_positives))
    stacked = [np.stack([r[i] for r in results], axis=-1) for i in range(4)]
    if not multi_label:
        stacked = [s[:, 0] for s in stacked]
    return stacked


class _ConfusionMetric(Metric):
    _direction = "up"

    _state_names = ("true_positives", "false_positives", "true_negatives", "false_negatives")

    def __init__(self, thresholds, top_k, class_id, name, dtype, default_threshold=0.5):
        self.init_thresholds = thresholds
        self.thresholds, self._single = _check_thresholds(thresholds, default_threshold if top_k is None else -1e10)
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
            raise ValueError(f"`top_k` must be a positive integer. Received: top_k={top_k!r}")
        if class_id is not None and (isinstance(class_id, bool) or not isinstance(class_id, numbers.Integral)
                                     or class_id < 0):
            raise ValueError(f"`class_id` must be a non-negative integer. Received: class_id={class_id!r}")
        self.top_k = top_k
        self.class_id = class_id
        for name_ in self._state_names:
            setattr(self, name_, np.zeros(len(self.thresholds)))
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        tp, fp, tn, fn = _confusion_counts(y_true, y_pred, self.thresholds, sample_weight, self.top_k, self.class_id)
        self.true_positives = self.true_positives + tp
        self.false_positives = self.false_positives + fp
        self.true_negatives = self.true_negatives + tn
        self.false_negatives = self.false_negatives + fn

    def _finish(self, values):
        values = np.asarray(values, dtype=np.float32)
        return values[0] if self._single or len(self.thresholds) == 1 else values

    def get_config(self):
        return {"name": self.name, "dtype": "float32", "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


def _divide_no_nan(numerator, denominator):
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape),
                     where=denominator != 0)


class Precision(_ConfusionMetric):
    """true positives / (true positives + false positives), at each threshold (default 0.5)."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._finish(_divide_no_nan(self.true_positives, self.true_positives + self.false_positives))


class Recall(_ConfusionMetric):
    """true positives / (true positives + false negatives), at each threshold (default 0.5)."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._finish(_divide_no_nan(self.true_positives, self.true_positives + self.false_negatives))


class AUC(Metric):
    """The area under the ROC or precision-recall curve, by a Riemann sum over `num_thresholds`
    evenly spaced thresholds (Keras's AUC: interpolation, minoring or majoring)."""
    _direction = "up"

    _state_names = ("true_positives", "false_positives", "true_negatives", "false_negatives")

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, numbers.Integral) or num_thresholds <= 1:
            raise ValueError(f"Argument `num_thresholds` must be an integer > 1. Received: "
                             f"num_thresholds={num_thresholds!r}")
        if not isinstance(curve, str) or curve.upper() not in ("ROC", "PR"):
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["ROC", "PR"]')
        if not isinstance(summation_method, str) or summation_method.lower() not in ("interpolation", "minoring",
                                                                                      "majoring"):
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". Expected values are '
                             '["interpolation", "majoring", "minoring"]')
        if label_weights is not None:
            raise ValueError(f"fastcnn's AUC does not take label_weights. Received: label_weights={label_weights!r}")
        if not isinstance(multi_label, bool) or not isinstance(from_logits, bool):
            raise TypeError(f"`multi_label` and `from_logits` must be bools. Received: multi_label={multi_label!r}, "
                            f"from_logits={from_logits!r}")
        self.curve = curve.upper()
        self.summation_method = summation_method.lower()
        self.multi_label = multi_label
        self.num_labels = num_labels
        self._from_logits = from_logits
        if thresholds is not None:
            inner, _ = _check_thresholds(thresholds, 0.5)
            self.num_thresholds = len(inner) + 2
            self._evenly = False
            inner = sorted(inner)
        else:
            self.num_thresholds = int(num_thresholds)
            self._evenly = True
            inner = [(i + 1) * 1.0 / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
        self._thresholds = np.array([0.0 - _EPSILON] + inner + [1.0 + _EPSILON])  # float64, as Keras keeps them
        self._state_shape = None
        super().__init__(name=name, dtype=dtype)

    @property
    def thresholds(self):
        return list(self._thresholds)

    def reset_state(self):
        shape = (self.num_thresholds,) if self._state_shape is None else self._state_shape
        for name in self._state_names:
            setattr(self, name, np.zeros(shape))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _array(y_pred, "y_pred").astype(np.float32)
        if self._from_logits:
            y_pred = 1.0 / (1.0 + np.exp(-y_pred))
        counts = _confusion_counts(y_true, y_pred, self._thresholds, sample_weight, multi_label=self.multi_label,
                                   evenly_distributed=self._evenly)
        if self.multi_label and self._state_shape is None:
            self._state_shape = counts[0].shape
            self.reset_state()
        self.true_positives = self.true_positives + counts[0]
        self.false_positives = self.false_positives + counts[1]
        self.true_negatives = self.true_negatives + counts[2]
        self.false_negatives = self.false_negatives + counts[3]

    def _interpolate_pr_auc(self):
        """Davis & Goadrich's interpolation of precision between the thresholds' recall points."""
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        prec_slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - prec_slope * p[1:]
        safe_p_ratio = np.where((p[:-1] > 0) & (p[1:] > 0), _divide_no_nan(p[:-1], np.maximum(p[1:], 0)),
                                np.ones_like(p[1:]))
        pr_auc_increment = _divide_no_nan(prec_slope * (dtp + intercept * np.log(safe_p_ratio)),
                                          np.maximum(tp[1:] + fn[1:], 0))
        if self.multi_label:
            return np.float32(np.mean(np.sum(pr_auc_increment, axis=0)))
        return np.float32(np.sum(pr_auc_increment))

    def result(self):
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc()
        tp, fp, tn, fn = self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        terms = (x[:-1] - x[1:]) * heights
        if self.multi_label:
            return np.float32(np.mean(np.sum(terms, axis=0)))
        return np.float32(np.sum(terms))

    def get_config(self):
        config = {"name": self.name, "dtype": "float32", "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels, "label_weights": None, "from_logits": self._from_logits}
        if not self._evenly:
            config["thresholds"] = [float(t) for t in self._thresholds[1:-1]]
        return config


class FBetaScore(Metric):
    """F-beta per class from thresholded predictions (threshold None: each row's maximum is 1),
    averaged as `average` says (None: one score per class, "micro", "macro", "weighted")."""
    _direction = "up"

    _state_names = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: {None, 'micro', 'macro', "
                             f"'weighted'}}. Received: average={average!r}")
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not beta > 0:
            raise ValueError(f"`beta` value should be >0. Received: beta={beta!r}")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
                                      or not 0.0 < threshold <= 1.0):
            raise ValueError(f"`threshold` should be a float in the interval (0, 1]. Received: threshold={threshold!r}")
        self.average = average
        self.beta = float(beta)
        self.threshold = threshold
        self._classes = None
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        size = 0 if self._classes is None else self._classes
        for name in self._state_names:
            setattr(self, name, np.zeros(size))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = _array(y_true, "y_true").astype(np.float32)
        y_pred = _array(y_pred, "y_pred").astype(np.float32)
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise ValueError("FBetaScore expects 2D inputs with shape (batch_size, output_dim). Received: "
                             f"y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}")
        if self._classes is None:
            self._classes = y_pred.shape[-1]
            self.reset_state()
        if self.threshold is None:
            predicted = (y_pred >= np.max(y_pred, axis=-1, keepdims=True)).astype(np.float64)
        else:
            predicted = (y_pred > self.threshold).astype(np.float64)
        weights = np.ones((len(y_true), 1)) if sample_weight is None else \
            _array(sample_weight, "sample_weight").astype(np.float64).reshape(-1, 1)
        truth = y_true.astype(np.float64)
        self.true_positives = self.true_positives + np.sum(predicted * truth * weights, axis=0)
        self.false_positives = self.false_positives + np.sum(predicted * (1 - truth) * weights, axis=0)
        self.false_negatives = self.false_negatives + np.sum((1 - predicted) * truth * weights, axis=0)
        self.intermediate_weights = self.intermediate_weights + np.sum(truth * weights, axis=0)

    def result(self):
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        if self.average == "micro":
            tp, fp, fn = np.sum(tp), np.sum(fp), np.sum(fn)
        precision = _divide_no_nan(tp, tp + fp)
        recall = _divide_no_nan(tp, tp + fn)
        beta_squared = self.beta ** 2
        mean = _divide_no_nan((1 + beta_squared) * precision * recall, beta_squared * precision + recall)
        if self.average == "weighted":
            weights = _divide_no_nan(self.intermediate_weights, np.sum(self.intermediate_weights))
            return np.float32(np.sum(mean * weights))
        if self.average is not None:
            return np.float32(np.mean(mean))
        return mean.astype(np.float32)

    def get_config(self):
        return {"name": self.name, "dtype": "float32", "beta": self.beta, "average": self.average,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


# ---- lookup ----

# Keras's string names (and their class names) for the metrics above.
_BY_NAME = {
    "accuracy": Accuracy, "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy, "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy, "precision": Precision, "recall": Recall,
    "auc": AUC, "f1_score": F1Score, "fbeta_score": FBetaScore, "mean": Mean, "sum": Sum,
}
_CLASSES = {cls.__name__: cls for cls in set(_BY_NAME.values())}
# The functions compile accepts as metrics (each wrapped in a MeanMetricWrapper named after it).
_FUNCTIONS = {f.__name__: f for f in (accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
                                      top_k_categorical_accuracy, sparse_top_k_categorical_accuracy)}


def get(identifier):
    """A metric from a Keras name ("precision", "binary_accuracy", ...; "accuracy"/"acc" give the
    exact-match Accuracy here, while compile picks the accuracy that suits the output), a class
    name, a Metric instance or class, or one of this module's metric functions."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        # Named by the string, as Keras's compile names them.
        if identifier == "acc":
            return Accuracy(name=identifier)
        if identifier in _BY_NAME:
            return _BY_NAME[identifier](name=identifier)
        if identifier in _CLASSES:
            return _CLASSES[identifier](name=identifier)
    if callable(identifier) and getattr(identifier, "__name__", None) in _FUNCTIONS \
            and _FUNCTIONS[identifier.__name__] is identifier:
        return MeanMetricWrapper(identifier, name=identifier.__name__)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}. Supported: "
                     f"{', '.join(sorted(set(_BY_NAME) | {'acc'}))}, their classes, or a Metric instance.")


def serialize(metric):
    return {"module": "keras.metrics", "class_name": type(metric).__name__, "config": metric.get_config(),
            "registered_name": None}
