"""Keeping a model whole around its training steps: Ctrl-C lands between steps, never inside one,
and ``fit(check_numerics=True)`` stops at the first step that goes non-finite, names where, and
leaves the model as it was before that step.

A training step is one C++ call that runs with the GIL released, so Python's SIGINT handler can
only run before or after it; but a step also has Python bookkeeping (the weight constraints, the
running loss), and a KeyboardInterrupt raised between the C++ update and the constraints would
leave weights that no whole step produced. While a step runs, SIGINT is therefore only recorded
and raised as KeyboardInterrupt as soon as the step is complete; outside steps it interrupts at
once, as usual. This applies when fastcnn runs in the main thread and SIGINT has Python's default
handler; a handler of the user's own is left alone.
"""

import contextlib
import signal
import threading

import numpy as np

_OPTIMIZER_SLOTS = ("first_moment", "second_moment", "third_slot")


class _InterruptState:
    installed_depth = 0      # nested fit/train_on_batch calls share one handler
    previous_handler = None
    steps_running = 0        # whole_step blocks open in the main thread
    pending = False          # a SIGINT arrived during a step


def _defer_during_steps(signum, frame):
    if _InterruptState.steps_running:
        _InterruptState.pending = True
    else:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_between_steps():
    """Around fit or train_on_batch: SIGINT during a whole_step() is raised when the step ends."""
    install = threading.current_thread() is threading.main_thread() and (
        _InterruptState.installed_depth > 0 or signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if not install:
        yield
        return
    if _InterruptState.installed_depth == 0:
        _InterruptState.previous_handler = signal.signal(signal.SIGINT, _defer_during_steps)
        _InterruptState.pending = False
    _InterruptState.installed_depth += 1
    try:
        yield
    finally:
        _InterruptState.installed_depth -= 1
        if _InterruptState.installed_depth == 0:
            signal.signal(signal.SIGINT, _InterruptState.previous_handler)
            _InterruptState.previous_handler = None


@contextlib.contextmanager
def whole_step():
    """A training step and its bookkeeping: a SIGINT during it is raised once it is complete."""
    in_main = threading.current_thread() is threading.main_thread() and _InterruptState.installed_depth > 0
    if in_main:
        _InterruptState.steps_running += 1
    try:
        yield
    finally:
        if in_main:
            _InterruptState.steps_running -= 1
    if in_main and _InterruptState.steps_running == 0 and _InterruptState.pending:
        _InterruptState.pending = False
        raise KeyboardInterrupt


# ---- check_numerics ----

def _state(network):
    """Copies of everything a training step changes: the parameter buffer (weights and
    BatchNormalization's moving statistics), the optimizer's slots and counters."""
    slots = {}
    for slot in _OPTIMIZER_SLOTS:
        try:
            views = network.optimizer_slot_views(slot)
        except ValueError:  # this optimizer has no such slot
            continue
        slots[slot] = [[np.array(view) for view in layer] for layer in views]
    return {
        "parameters": [[np.array(view) for view in layer] for layer in network.parameter_views()],
        "slots": slots,
        "iterations": network.optimizer_iterations,
        "nadam_u_product": network.optimizer_nadam_u_product,
    }


def _restore(network, state):
    for layer, saved in zip(network.parameter_views(), state["parameters"]):
        for view, value in zip(layer, saved):
            view[...] = value
    for slot, saved_layers in state["slots"].items():
        for layer, saved in zip(network.optimizer_slot_views(slot), saved_layers):
            for view, value in zip(layer, saved):
                view[...] = value
    network.optimizer_iterations = state["iterations"]
    network.optimizer_nadam_u_product = state["nadam_u_product"]


def _non_finite_text(array):
    nan = int(np.count_nonzero(np.isnan(array)))
    inf = int(np.count_nonzero(np.isinf(array)))
    return f"{nan} NaN and {inf} infinite of {array.size} values"


class NumericsCheck:
    """fit(check_numerics=True): before each step the model's state is copied; after it the loss
    and every weight must be finite. Otherwise the step is undone and a FloatingPointError names
    the first place a non-finite value appeared: the input batch, a layer's weights, a layer's
    output (a training-mode forward pass of the same batch with the same seed, so Dropout draws
    the same masks), the loss, or a layer's weight update (its gradient or the optimizer's
    arithmetic overflowed)."""

    def __init__(self, model):
        self.model = model
        self.saved = None

    def before_step(self):
        self.saved = _state(self.model._network)

    def after_step(self, loss_sum, x_batch, seed, epoch, step):
        network = self.model._network
        updated = [[np.asarray(view) for view in layer] for layer in network.parameter_views()]
        if np.isfinite(loss_sum) and all(np.isfinite(view).all() for layer in updated for view in layer):
            return
        bad_update = next((index for index, layer in enumerate(updated)
                           if not all(np.isfinite(view).all() for view in layer)), None)
        bad_update_text = _non_finite_text(np.concatenate([view.ravel() for view in updated[bad_update]])) \
            if bad_update is not None else ""
        _restore(network, self.saved)
        try:
            where = self._first_non_finite(x_batch, seed, bad_update, bad_update_text, loss_sum)
        finally:
            _restore(network, self.saved)  # the diagnostic forward pass moves BatchNormalization's statistics
        raise FloatingPointError(
            f"check_numerics: {where}, at epoch {epoch + 1}, batch {step} (optimizer step "
            f"{self.saved['iterations'] + 1}). The step was not applied: the model's weights and optimizer "
            f"state are those from before it.")

    def _layer_text(self, index):
        layer = self.model._graph.node_layers[index]
        return f"layer {layer.name!r} ({type(layer).__name__})"

    def _first_non_finite(self, x_batch, seed, bad_update, bad_update_text, loss_sum):
        for index, inputs in enumerate(x_batch if isinstance(x_batch, list) else [x_batch]):
            if not np.isfinite(inputs).all():
                which = f"input {index} of the batch" if isinstance(x_batch, list) else "the input batch"
                return f"{which} holds non-finite values ({_non_finite_text(inputs)})"
        for index, layer in enumerate(self.saved["parameters"]):
            for view in layer:
                if not np.isfinite(view).all():
                    return f"{self._layer_text(index)} already had non-finite weights ({_non_finite_text(view)})"
        outputs = self.model._network.forward_training_layer_outputs(x_batch, seed)
        for index, output in enumerate(outputs):
            if not np.isfinite(output).all():
                return f"{self._layer_text(index)} produced non-finite values in its output ({_non_finite_text(output)})"
        if not np.isfinite(loss_sum):
            return f"the loss is {loss_sum} although every layer's output is finite"
        return (f"the optimizer update made {self._layer_text(bad_update)}'s weights non-finite "
                f"({bad_update_text}): its gradient or the update overflowed")
