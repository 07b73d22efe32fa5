"""The one epoch loop and the one evaluation loop of every trainer path, and the step hook that
spreads a trainer's steps over processes.

``Model.fit`` on arrays and on batch sources (generators, PyDatasets, datasets:
fastcnn/models/_batch_input.py) differ only in where a step's batch comes from; they hand this
loop an iterator of step runs, and the loop calls the callbacks in Keras's order, keeps the running
logs and stops when `model.stop_training` is set. A step run is a zero-argument callable returning
(loss sum, outcome, samples): outcome is 0.0, or for a model with several outputs the per-output
loss sums (fastcnn/models/model.py's _step_totals), and both sum across steps; the step updates the
model's metrics itself.

A step hook (``LocalSteps``, or fastcnn/distributed.py's MPI one, made current by
``spread_steps``) decides what the array trainer's steps are across processes: which samples each
step takes, how a step's gradients and totals are combined, what the callbacks see. The trainer
asks the current hook; nothing outside fastcnn.models reaches into a model.
"""

import contextlib
import math
import threading

import numpy as np


def running_logs(model, total_loss, total_outcome, seen):
    """The logs of `seen` samples: the mean loss, for several outputs each output's mean loss
    (total_outcome holds their sums), and every compiled metric's result, under Keras's names
    (`loss`, `accuracy`; `digit_loss`, `digit_accuracy`), keys sorted as Keras's logs are."""
    seen = max(seen, 1)
    logs = {"loss": total_loss / seen}
    if len(model._output_losses) > 1:
        sums = total_outcome if isinstance(total_outcome, np.ndarray) else np.zeros(len(model._output_losses))
        for name, total in zip(model._output_names_for_compile(), sums):
            logs[f"{name}_loss"] = float(total) / seen
    for key, metric in model._metric_keys():
        value = metric.result()
        logs[key] = float(value) if np.ndim(value) == 0 else np.asarray(value)
    return dict(sorted(logs.items()))


class Totals:
    """Loss, per-output loss and sample sums over a pass's steps; a pass starts the model's
    metrics afresh (Keras resets them at every epoch and evaluation)."""

    def __init__(self, model):
        model.reset_metrics()
        self.loss, self.outcome, self.seen, self.steps = 0.0, 0.0, 0, 0

    def add(self, loss_sum, outcome, samples):
        self.loss += loss_sum
        self.outcome = self.outcome + outcome
        self.seen += samples
        self.steps += 1

    def logs(self, model):
        return running_logs(model, self.loss, self.outcome, self.seen)


def fit_epochs(model, callback_list, initial_epoch, epochs, epoch_runs, epoch_validation, can_start_epoch=None,
               after_epoch=None):
    """Keras's fit loop. epoch_runs(epoch): the epoch's step runs (an iterator; closed after the
    epoch's last step, so a source's end-of-epoch work runs before validation);
    epoch_validation(epoch): the `val_` logs; can_start_epoch(): False stops training (a
    generator that ran dry); after_epoch(): runs after on_epoch_end (MPIStrategy agrees on
    stopping there). Returns the History."""
    logs = {}
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        if can_start_epoch is not None and not can_start_epoch():
            break
        callback_list.on_epoch_begin(epoch)
        totals = Totals(model)
        runs = epoch_runs(epoch)
        try:
            for step, run in enumerate(runs):
                callback_list.on_train_batch_begin(step)
                totals.add(*run())
                logs = totals.logs(model)
                callback_list.on_train_batch_end(step, dict(logs))
                if model.stop_training:
                    break
        finally:
            close = getattr(runs, "close", None)
            if close is not None:
                close()
        epoch_logs = dict(logs)
        epoch_logs.update(epoch_validation(epoch))
        callback_list.on_epoch_end(epoch, epoch_logs)
        logs = epoch_logs
        if after_epoch is not None:
            after_epoch()
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return callback_list.history


def evaluate_runs(model, callback_list, runs, finish=None):
    """Keras's evaluation loop over step runs; returns (logs, steps). Batch logs are this pass's
    running means; finish(totals), when given, turns the totals into the final logs (MPIStrategy
    reduces them over the ranks); without any step the logs are zeros, as Keras reports."""
    totals = Totals(model)
    if callback_list is not None:
        callback_list.on_test_begin()
    try:
        for step, run in enumerate(runs):
            if callback_list is not None:
                callback_list.on_test_batch_begin(step)
            totals.add(*run())
            if callback_list is not None:
                callback_list.on_test_batch_end(step, dict(totals.logs(model)))
    finally:
        close = getattr(runs, "close", None)
        if close is not None:
            close()
    logs = finish(totals) if finish is not None else totals.logs(model)
    if callback_list is not None:
        callback_list.on_test_end(dict(logs))
    return logs, totals.steps


class LocalSteps:
    """The step hook of one process: the default. The array trainer (``Model.fit``/``evaluate``)
    calls, in this order: ``check_fit`` (may refuse what cannot be spread), ``begin_fit`` (before
    the first step), ``step_count``, per step ``batch`` and, where ``distributed``, the network's
    compute_gradients with ``on_layer_gradient`` then ``exchange`` then apply_gradients (one
    train_step otherwise); ``after_epoch``; and ``reduce_totals`` on an evaluation's totals.
    ``callbacks`` picks the callbacks and verbosity this process runs."""

    distributed = False

    def check_fit(self, batch_source, check_numerics):
        pass

    def begin_fit(self, model, network, settings):
        """settings: (batch_size, epochs, initial_epoch, shuffle, has_validation)."""

    def step_count(self, samples, batch_size):
        return math.ceil(samples / batch_size)

    def batch(self, order, step, batch_size):
        """(indices of this process's samples, the global batch size, this batch's first sample's
        position in the global batch)."""
        indices = order[step * batch_size:(step + 1) * batch_size]
        return indices, len(indices), 0

    def callbacks(self, callbacks, verbose):
        return callbacks, verbose

    def on_layer_gradient(self, network):
        return None

    def exchange(self, network, loss_sum, outcome, metric_change):
        """The step's totals and metric state change over every process (here: this one's)."""
        return loss_sum, outcome, metric_change

    def after_epoch(self, model):
        pass

    def reduce_totals(self, loss, outcome, seen, metric_state):
        return loss, outcome, seen, metric_state


_LOCAL = LocalSteps()
_current = threading.local()


def step_hook():
    """The step hook of this thread's trainers: LocalSteps unless ``spread_steps`` set one."""
    return getattr(_current, "hook", None) or _LOCAL


@contextlib.contextmanager
def spread_steps(hook):
    """Makes `hook` this thread's step hook for the block (MPIStrategy.scope)."""
    previous = getattr(_current, "hook", None)
    _current.hook = hook
    try:
        yield hook
    finally:
        _current.hook = previous
