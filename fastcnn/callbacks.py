"""Keras 3's callbacks: same names, arguments, defaults, hook order, log keys and printed messages.

``fit`` calls, in order: on_train_begin; per epoch on_epoch_begin, per batch on_train_batch_begin /
on_train_batch_end (logs: running ``loss`` and metrics), validation through the on_test_* hooks,
then on_epoch_end (logs with ``val_`` keys); finally on_train_end. ``evaluate`` calls the on_test_*
hooks and ``predict`` the on_predict_* hooks. Setting ``model.stop_training = True`` in a hook stops
training after the current batch (the epoch still ends with validation and on_epoch_end).

As in Keras, every callback of one call receives the same logs dict, with keys sorted and values as
Python floats; so ``learning_rate``, which ReduceLROnPlateau and LearningRateScheduler add at epoch
end, reaches the callbacks after them (History and CSVLogger record it).

The monitoring callbacks (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau) follow Keras's
MonitorCallback: ``mode='auto'`` minimises ``loss``/``val_loss`` and maximises accuracy metrics;
a value improves on the best one when ``current - min_delta < best`` (min mode, min_delta made
negative) or ``current - min_delta > best`` (max mode).
"""

import collections
import math
import numbers
import os
import warnings

import numpy as np

from fastcnn._progbar import Progbar


# ---- argument checks (Keras takes these unchecked; fastcnn names the bad value at construction) ----

def _check_int(owner, name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: `{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _check_number(owner, name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{owner}: `{name}` must be a number{' or None' if allow_none else ''}. "
                         f"Received: {name}={value!r}")
    return value


def _check_flag(owner, name, value):
    # True/False, or 1/0 as Keras scripts sometimes pass.
    if isinstance(value, str) or value not in (True, False):
        raise ValueError(f"{owner}: `{name}` must be True or False. Received: {name}={value!r}")
    return bool(value)


def _check_verbose(owner, value):
    if isinstance(value, str) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{owner}: `verbose` must be 0 (silent) or 1 (messages). Received: verbose={value!r}")
    return int(value)


def _check_monitor(owner, value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"{owner}: `monitor` must be the name of a logged quantity such as 'val_loss'. "
                         f"Received: monitor={value!r}")
    return value


def _check_path(owner, name, value):
    try:
        path = os.fspath(value)
    except TypeError:
        raise TypeError(f"{owner}: `{name}` must be a string or a path-like object. "
                        f"Received: {name}={value!r}") from None
    return os.fsdecode(path)


def _pythonify_logs(logs):
    """Keras's pythonify_logs: nested dicts flattened, keys sorted, scalar values as Python floats
    (other values, such as predict's batch outputs, are passed as they are)."""
    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(_pythonify_logs(value))
            continue
        if not isinstance(value, (str, list, tuple)) and np.ndim(value) == 0:
            try:
                value = float(value)
            except (TypeError, ValueError):
                pass
        result[key] = value
    return result


def _print_msg(message):
    print(message, flush=True)


def _learning_rate(optimizer):
    """The learning rate as Keras reads it: Keras keeps it in a float32 variable, and fastcnn's
    compiled step takes it as a float, so the float32 value is the one training uses."""
    return float(np.float32(optimizer.learning_rate))


class Callback:
    """Base class for callbacks: override the ``on_*`` hooks of interest. ``self.model`` is the
    model being trained, ``self.params`` a dict with ``verbose``, ``epochs`` and ``steps``."""

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    def on_batch_begin(self, batch, logs=None):
        """A backwards compatibility alias for ``on_train_batch_begin``."""

    def on_batch_end(self, batch, logs=None):
        """A backwards compatibility alias for ``on_train_batch_end``."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of an epoch (training only)."""

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of an epoch, with the epoch's training and ``val_`` logs."""

    def on_train_batch_begin(self, batch, logs=None):
        """Called before a training batch; by default calls ``on_batch_begin``, as Keras's does."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called after a training batch with the running means; by default calls ``on_batch_end``."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        """Called before a batch of ``evaluate`` or of fit's validation."""

    def on_test_batch_end(self, batch, logs=None):
        """Called after a batch of ``evaluate`` or of fit's validation, with the running means."""

    def on_predict_batch_begin(self, batch, logs=None):
        """Called before a batch of ``predict``."""

    def on_predict_batch_end(self, batch, logs=None):
        """Called after a batch of ``predict``; logs hold the batch's ``outputs``."""

    def on_train_begin(self, logs=None):
        """Called at the beginning of training."""

    def on_train_end(self, logs=None):
        """Called at the end of training with the last epoch's logs."""

    def on_test_begin(self, logs=None):
        """Called at the beginning of evaluation or validation."""

    def on_test_end(self, logs=None):
        """Called at the end of evaluation or validation with its final logs."""

    def on_predict_begin(self, logs=None):
        """Called at the beginning of prediction."""

    def on_predict_end(self, logs=None):
        """Called at the end of prediction."""


class History(Callback):
    """Records the epoch logs: ``history.history['loss']`` etc.; ``fit`` returns it."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        # The model's history is the latest state, as in Keras.
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints ``Epoch i/n`` and Keras's progress bar (verbose=1) or one line per epoch (verbose=2).
    Inside fit the validation pass is silent; in evaluate and predict the bar counts their steps."""

    def __init__(self):
        super().__init__()
        self.verbose = 1
        self.epochs = 1
        self.target = None
        self.seen = 0
        self.progbar = None
        self._in_fit = False

    def set_params(self, params):
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def _new_bar(self):
        self.seen = 0
        self.progbar = Progbar(self.target, verbose=self.verbose, unit_name="step")

    def _update(self, batch, logs):
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finish(self, logs):
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.seen
        self.progbar.update(self.target, list((logs or {}).items()), finalize=True)

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._new_bar()
        if self.verbose and self.epochs > 1:
            _print_msg(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._new_bar()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._update(batch, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._new_bar()

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)  # predictions are not shown

    def on_predict_end(self, logs=None):
        self._finish(None)


class CallbackList(Callback):
    """Calls every callback's hooks in list order. ``add_history`` appends a History and
    ``add_progbar`` then a ProgbarLogger unless the list has one, so, as in Keras, user callbacks
    run first and the progress bar prints the epoch's last line after their on_epoch_end."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        super().__init__()
        self.callbacks = []
        for callback in self._flatten(callbacks):
            if not isinstance(callback, Callback):
                raise TypeError("`callbacks` must be a list of fastcnn.callbacks.Callback instances. "
                                f"Received: {callback!r} (of type {type(callback).__name__})")
            self.callbacks.append(callback)
        self._history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        self._progbar = next((c for c in self.callbacks if isinstance(c, ProgbarLogger)), None)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self.set_model(model)
        self.set_params(params)

    @staticmethod
    def _flatten(callbacks):
        if callbacks is None:
            return []
        if isinstance(callbacks, Callback):
            return [callbacks]
        if not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"`callbacks` must be a list of Callback instances. Received: callbacks={callbacks!r}")
        flat = []
        for item in callbacks:
            flat.extend(CallbackList._flatten(item) if isinstance(item, (list, tuple)) else [item])
        return flat

    @property
    def history(self):
        return self._history

    def set_params(self, params):
        self.params = params
        if params:
            for callback in self.callbacks:
                callback.set_params(params)

    def set_model(self, model):
        if model is None:
            return
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for callback in self.callbacks:
            callback.set_model(model)

    # Keras passes a batch hook's logs by keyword and the other hooks' positionally; so do we, so
    # that any function a callback defines or a LambdaCallback holds is called the same way.
    def _call_batch(self, hook, batch, logs):
        logs = _pythonify_logs(logs)
        for callback in self.callbacks:
            getattr(callback, hook)(batch, logs=logs)

    def _call(self, hook, *args):
        *args, logs = args
        logs = _pythonify_logs(logs)
        for callback in self.callbacks:
            getattr(callback, hook)(*args, logs)

    def on_batch_begin(self, batch, logs=None): self._call_batch("on_batch_begin", batch, logs)
    def on_batch_end(self, batch, logs=None): self._call_batch("on_batch_end", batch, logs)
    def on_train_batch_begin(self, batch, logs=None): self._call_batch("on_train_batch_begin", batch, logs)
    def on_train_batch_end(self, batch, logs=None): self._call_batch("on_train_batch_end", batch, logs)
    def on_test_batch_begin(self, batch, logs=None): self._call_batch("on_test_batch_begin", batch, logs)
    def on_test_batch_end(self, batch, logs=None): self._call_batch("on_test_batch_end", batch, logs)
    def on_predict_batch_begin(self, batch, logs=None): self._call_batch("on_predict_batch_begin", batch, logs)
    def on_predict_batch_end(self, batch, logs=None): self._call_batch("on_predict_batch_end", batch, logs)
    def on_epoch_begin(self, epoch, logs=None): self._call("on_epoch_begin", epoch, logs)
    def on_epoch_end(self, epoch, logs=None): self._call("on_epoch_end", epoch, logs)
    def on_train_begin(self, logs=None): self._call("on_train_begin", logs)
    def on_train_end(self, logs=None): self._call("on_train_end", logs)
    def on_test_begin(self, logs=None): self._call("on_test_begin", logs)
    def on_test_end(self, logs=None): self._call("on_test_end", logs)
    def on_predict_begin(self, logs=None): self._call("on_predict_begin", logs)
    def on_predict_end(self, logs=None): self._call("on_predict_end", logs)


def _callback_list_for(callbacks, **kwargs):
    """The CallbackList a fit/evaluate/predict call uses: the one given, as it is (Keras accepts a
    ready CallbackList), or a new one built from `callbacks` with `kwargs`."""
    if isinstance(callbacks, CallbackList):
        return callbacks
    return CallbackList(callbacks, **kwargs)


class LambdaCallback(Callback):
    """A callback from plain functions: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_train_batch_begin(batch, logs)``,
    ``on_train_batch_end(batch, logs)``; other keyword arguments become attributes (Keras's
    way to pass e.g. ``on_test_end=``)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        self.__dict__.update(kwargs)
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_train_begin": on_train_begin,
                 "on_train_end": on_train_end, "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end}
        for name, function in hooks.items():
            if function is not None:
                if not callable(function):
                    raise TypeError(f"LambdaCallback: `{name}` must be callable. Received: {name}={function!r}")
                setattr(self, name, function)


class MonitorCallback(Callback):
    """Base of the callbacks that watch one logged quantity (Keras's MonitorCallback): picks the
    comparison from ``mode`` and decides what counts as an improvement."""

    _baseline_argument = "baseline"  # the subclass's name for the initial best value, for errors

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        owner = type(self).__name__
        if mode not in ["auto", "min", "max"]:
            warnings.warn(f"{owner} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        self.monitor = _check_monitor(owner, monitor)
        self.mode = mode
        self.best = _check_number(owner, self._baseline_argument, baseline, allow_none=True)
        self.min_delta = abs(_check_number(owner, "min_delta", min_delta))
        self.monitor_op = None

    def _metric_direction(self, metric_name):
        """'up', 'down' or None for a compiled metric of the model logged under that name (also with
        the `val_` prefix): accuracies, precision, recall, AUC and F-scores go up."""
        model = self.model
        if model is None or not getattr(model, "compiled", False):
            return None
        name = metric_name[4:] if metric_name.startswith("val_") else metric_name
        for key, metric in model._metric_keys():
            if key == name:
                return getattr(metric, "_direction", None)
        return None

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            metric_name = self.monitor.removeprefix("val_")
            if metric_name == "loss":
                self.monitor_op = np.less
            direction = self._metric_direction(metric_name)
            if direction is not None:
                self.monitor_op = np.greater if direction == "up" else np.less
            if self.monitor_op is None:
                raise ValueError(
                    f"{self.__class__.__name__} callback received "
                    f"monitor={self.monitor}, but Keras isn't able to "
                    "automatically determine whether that metric should be "
                    "maximized or minimized. Pass `mode='max'` in order to "
                    "monitor based on the highest metric value, or pass "
                    "`mode='min'` in order to use the lowest value."
                )
        # Improvement is `op(current - min_delta, best)`: in min mode the value must fall below
        # best - |min_delta|, in max mode rise above best + |min_delta|.
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))


class EarlyStopping(MonitorCallback):
    """Stops training when ``monitor`` has not improved (by more than ``min_delta``) for ``patience``
    epochs. With ``baseline``, training also stops if no epoch improves on it within ``patience``
    epochs. ``restore_best_weights`` sets the weights of the best epoch when training ends, whether
    it stopped early or ran all its epochs (Keras 3). Epochs before ``start_from_epoch`` are not
    monitored."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = _check_int("EarlyStopping", "patience", patience)
        self.verbose = _check_verbose("EarlyStopping", verbose)
        self.baseline = _check_number("EarlyStopping", "baseline", baseline, allow_none=True)
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = _check_flag("EarlyStopping", "restore_best_weights", restore_best_weights)
        self.best_weights = None
        self.start_from_epoch = _check_int("EarlyStopping", "start_from_epoch", start_from_epoch)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # The first monitored epoch's weights, restored if no later epoch improves on them.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Only an improvement on the baseline (when there is one) resets the patience count.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print_msg(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print_msg(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        monitor_value = logs.get(self.monitor)
        if monitor_value is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(list(logs.keys()))}",
                stacklevel=2,
            )
        return monitor_value


class ModelCheckpoint(MonitorCallback):
    """Saves the model every epoch (``save_freq='epoch'``) or every ``save_freq`` training batches,
    to ``filepath.format(epoch=epoch + 1, **logs)`` (plus ``batch=batch + 1`` when saving on
    batches), creating its directory. ``save_best_only`` saves only when ``monitor`` improves on
    the best value so far (starting from ``initial_value_threshold``).

    Whole models go to Keras 3 ``.keras`` files (``model.save``: architecture, weights, optimizer
    state); with ``save_weights_only=True``, the weights to ``.weights.h5`` files."""

    _baseline_argument = "initial_value_threshold"

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        owner = "ModelCheckpoint"
        self.verbose = _check_verbose(owner, verbose)
        self.filepath = _check_path(owner, "filepath", filepath)
        self.save_best_only = _check_flag(owner, "save_best_only", save_best_only)
        self.save_weights_only = _check_flag(owner, "save_weights_only", save_weights_only)
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = None
        self._current_epoch = 0

        if self.save_freq != "epoch" and (isinstance(self.save_freq, bool) or not isinstance(self.save_freq, int)):
            raise ValueError(f"Unrecognized save_freq: {self.save_freq}. "
                             "Expected save_freq are 'epoch' or integer values")
        if isinstance(self.save_freq, int) and self.save_freq <= 0:
            raise ValueError(f"{owner}: an integer `save_freq` is a number of batches and must be >= 1. "
                             f"Received: save_freq={self.save_freq}")
        if self.save_weights_only:
            if not self.filepath.endswith(".weights.h5"):
                raise ValueError(
                    "When using `save_weights_only=True` in `ModelCheckpoint`"
                    ", the filepath provided must end in `.weights.h5` "
                    "(Keras weights format). Received: "
                    f"filepath={self.filepath}"
                )
        elif self.filepath.endswith(".h5"):
            # Keras 3 still writes its legacy HDF5 model format here; fastcnn writes `.keras` only.
            raise ValueError("ModelCheckpoint: fastcnn saves whole models in Keras 3's `.keras` format only, not "
                             "the legacy `.h5` model format. Use a filepath ending in `.keras`, or "
                             f"`save_weights_only=True` with `.weights.h5`. Received: filepath={self.filepath}")
        elif not self.filepath.endswith(".keras"):
            raise ValueError(f"The filepath provided must end in `.keras` (Keras model format). "
                             f"Received: filepath={self.filepath}")

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_on_batch(self, batch):
        """Counts batches across epochs: the batch index restarts each epoch, so a batch index not
        above the last one seen means a new epoch began and adds batch + 1 batches."""
        if self.save_freq == "epoch":
            return False
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            add_batches = batch + 1
        else:
            add_batches = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add_batches
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _should_save_model(self, epoch, batch, logs, filepath):
        logs = logs or {}
        if not self.save_best_only:
            if self.verbose > 0:
                _print_msg(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            return True
        if isinstance(current, np.ndarray) and len(current.shape) > 0:
            warnings.warn("Can save best model only when `monitor` is a scalar value. "
                          f"Received: {current}. Falling back to `save_best_only=False`.")
            return True
        if self.monitor_op is None:  # batch-level saving before the first epoch end
            self._set_monitor_op()
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                _print_msg(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to {current:.5f}, "
                           f"saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            _print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        try:
            if self._should_save_model(epoch, batch, logs, filepath):
                dirname = os.path.dirname(filepath)
                if dirname and not os.path.exists(dirname):
                    os.makedirs(dirname, exist_ok=True)
                if self.save_weights_only:
                    self.model.save_weights(filepath, overwrite=True)
                else:
                    self.model.save(filepath, overwrite=True)
                if self.verbose > 0:
                    _print_msg(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")
        except IsADirectoryError:
            raise IOError("Please specify a non-directory filepath for ModelCheckpoint. "
                          f"Filepath used is an existing directory: {filepath}") from None

    def _get_file_path(self, epoch, batch, logs):
        logs = logs or {}
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as error:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {error}') from None


class ReduceLROnPlateau(MonitorCallback):
    """Multiplies the optimizer's learning rate by ``factor`` (not below ``min_lr``) when ``monitor``
    has not improved by more than ``min_delta`` for ``patience`` epochs, then waits ``cooldown``
    epochs before counting again. Adds the current ``learning_rate`` to the epoch logs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to ReduceLROnPlateau: {kwargs}")
        super().__init__(monitor, mode, min_delta=min_delta)
        owner = "ReduceLROnPlateau"
        _check_number(owner, "factor", factor)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        if factor < 0.0:
            raise ValueError(f"{owner}: `factor` must be >= 0 (a negative learning rate would ascend the "
                             f"loss). Received: factor={factor}")
        self.factor = factor
        _check_number(owner, "min_lr", min_lr)
        if min_lr < 0:
            raise ValueError(f"{owner}: `min_lr` must be >= 0. Received: min_lr={min_lr}")
        self.min_lr = min_lr
        self.patience = _check_int(owner, "patience", patience)
        self.verbose = _check_verbose(owner, verbose)
        self.cooldown = _check_int(owner, "cooldown", cooldown)
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def _reduce_optimizer_lr(self, optimizer, epoch):
        old_lr = _learning_rate(optimizer)
        # Compared in float32, as Keras compares its float32 variable: a learning rate already at
        # min_lr is not "reduced" again.
        if old_lr > np.float32(self.min_lr):
            new_lr = max(old_lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose > 0:
                _print_msg(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
            return True
        return False

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs or {}  # as Keras: an empty logs dict is replaced, not filled
        logs["learning_rate"] = _learning_rate(self.model.optimizer)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(list(logs.keys()))}.",
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce_optimizer_lr(self.model.optimizer, epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def in_cooldown(self):
        return self.cooldown_counter > 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of every epoch to ``schedule(epoch, lr)`` (epoch from 0,
    lr the current rate) or, for a one-argument function, ``schedule(epoch)``; the result must be a
    float. Adds the current ``learning_rate`` to the epoch logs."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: `schedule` must be a function of (epoch, lr) or "
                            f"(epoch). Received: schedule={schedule!r}")
        self.schedule = schedule
        self.verbose = _check_verbose("LearningRateScheduler", verbose)

    def _update_optimizer_lr(self, optimizer, epoch):
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        try:  # new API: schedule(epoch, lr)
            learning_rate = self.schedule(epoch, _learning_rate(optimizer))
        except TypeError:  # old API: schedule(epoch), as Keras falls back
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = learning_rate
        return learning_rate

    def on_epoch_begin(self, epoch, logs=None):
        learning_rate = self._update_optimizer_lr(self.model.optimizer, epoch)
        if self.verbose > 0:
            _print_msg(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        logs["learning_rate"] = _learning_rate(self.model.optimizer)


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss is NaN or infinite (``model.stop_training``, so the epoch
    and on_train_end hooks still run), or with ``raise_error=True`` raises RuntimeError at once."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = _check_flag("TerminateOnNaN", "raise_error", raise_error)

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. "
                                   f"Loss value: {loss}. Terminating training immediately.")
            _print_msg(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Writes one CSV row per epoch: ``epoch`` (from 0) then the logged keys in sorted order (``val_``
    columns added, empty as ``NA``, when the first epoch had no validation), values as Python's
    ``str`` of the float, Excel dialect (``\\r\\n`` line ends). ``append=True`` continues an existing
    file without repeating its header."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: `separator` must be a one-character string. Received: separator={separator!r}")
        self.sep = separator
        self.filename = _check_path("CSVLogger", "filename", filename)
        self.append = _check_flag("CSVLogger", "append", append)
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, "r") as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode)
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def handle_value(value):
            is_zero_dim_ndarray = isinstance(value, np.ndarray) and value.ndim == 0
            if isinstance(value, str):
                return value
            if isinstance(value, collections.abc.Iterable) and not is_zero_dim_ndarray:
                return f'"[{", ".join(map(str, value))}]"'
            return value

        if self.keys is None:
            self.keys = sorted(logs.keys())
            if not any(key.startswith("val_") for key in self.keys) and self.keys:
                self.keys.extend([f"val_{key}" for key in self.keys])

        if not self.writer:
            import csv  # here, not at import

            class CustomDialect(csv.excel):
                delimiter = self.sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + (self.keys or []),
                                         dialect=CustomDialect)
            if self.append_header:
                self.writer.writeheader()

        row = collections.OrderedDict({"epoch": epoch})
        row.update((key, handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


__all__ = [
    "Callback",
    "CallbackList",
    "CSVLogger",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "MonitorCallback",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]
