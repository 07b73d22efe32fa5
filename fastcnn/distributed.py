"""Data-parallel training across processes and machines on MPI (Open MPI + mpi4py).

The same script runs on every rank under ``mpirun -np N python train.py``::

    from fastcnn import distributed
    strategy = distributed.MPIStrategy()
    x_part, y_part = strategy.shard(x, y)                   # this rank's contiguous block
    strategy.fit(model, x_part, y_part, batch_size=32, epochs=5, callbacks=[...])
    strategy.evaluate(model, x_test_part, y_test_part)      # aggregated over every rank

Semantics (synchronous data parallelism):

- ``fit`` first broadcasts rank 0's weights, BatchNormalization statistics and optimizer state
  (slots, iterations), so every rank starts from the same state: initial weights, or a checkpoint
  that rank 0 alone loaded (``load_model`` sends rank 0's file to the others).
- Each step every rank runs forward and backward on its own ``batch_size`` samples into the
  gradient buffer, with the loss averaged over the global batch (the sum of every rank's batch,
  so ranks whose data ran out join with empty batches); one allreduce (sum) of that buffer gives
  every rank the global batch's mean gradient, and every rank applies the same optimizer update.
  Weight penalties (kernel/bias regularizers) are added once, after the exchange; activity
  penalties are averaged over the global batch like the loss; Dropout draws the masks a single
  process would draw for the global batch. So N ranks with per-rank batch B follow one process
  with batch N*B over the same global batches (the interleaving of the ranks' k-th batches) up to
  float rounding of the sums (tests/test_distributed.py: <= 1e-5 relative).
- BatchNormalization uses per-rank batch statistics (as Horovod and tf.distribute do by default):
  synchronised statistics would need two latency-bound allreduces per BatchNormalization layer in
  the forward and backward passes, which cannot overlap with computation. The moving mean and
  variance are averaged across ranks every step, in the gradients' allreduce, so every rank holds
  the same weights and checkpoints do not depend on the rank that wrote them. With BN a model
  therefore trains as one process with batch statistics over B samples, not N*B.
- Logs (loss, accuracy, validation) are reduced over every rank before the callbacks see them, so
  every rank's callbacks (EarlyStopping, ReduceLROnPlateau, ...) decide alike. Only rank 0 prints
  progress and runs the callbacks that write files (ModelCheckpoint, CSVLogger); checkpoints are
  written atomically by the model's save and resume with any number of ranks.
- A rank that fails makes the job fail: an exception in ``fit``/``evaluate`` aborts every rank
  (MPI_Abort), a rank that dies is reported by mpirun, which ends the others, and a rank that
  stops answering is detected by a watchdog: a collective that has not completed within
  ``timeout`` seconds prints which collective on which rank and aborts the job.

mpi4py is imported when a strategy is created, never by ``import fastcnn`` (``pip install
fastcnn[mpi]``; it needs an MPI library such as Debian's openmpi-bin at run time).
"""

import math
import os
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

from fastcnn.models import _batch_input, _loop

DEFAULT_TIMEOUT = 300.0


class DistributedError(RuntimeError):
    """A distributed run cannot go on (bad arguments across ranks, a peer that stopped answering)."""


def _import_mpi():
    try:
        from mpi4py import MPI  # noqa: PLC0415 (optional dependency, imported on first use)
    except ImportError as error:
        raise ImportError("fastcnn.distributed needs mpi4py and an MPI library: pip install 'fastcnn[mpi]' "
                          "(and e.g. apt-get install openmpi-bin libopenmpi-dev). Cause: " + str(error)) from None
    return MPI


class _Watchdog:
    """Aborts the job when a collective has not completed within `timeout` seconds: a peer that is
    stuck (or a machine that vanished without its TCP connections closing) would otherwise leave
    the others waiting forever. One daemon thread; arming and disarming cost a lock each."""

    def __init__(self, comm, timeout):
        self._comm = comm
        self._timeout = timeout
        self._condition = threading.Condition()
        self._what = None
        self._deadline = None
        self._generation = 0
        self._thread = threading.Thread(target=self._run, name="fastcnn-mpi-watchdog", daemon=True)
        self._thread.start()

    def arm(self, what):
        with self._condition:
            self._what = what
            self._deadline = time.monotonic() + self._timeout
            self._generation += 1
            self._condition.notify()

    def disarm(self):
        with self._condition:
            self._what = None
            self._deadline = None

    def _run(self):
        while True:
            with self._condition:
                while self._deadline is None:
                    self._condition.wait()
                generation = self._generation
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._condition.wait(remaining)
                    continue
                if self._deadline is None or generation != self._generation:
                    continue
                what = self._what
            message = (f"fastcnn.distributed: rank {self._comm.Get_rank()} of {self._comm.Get_size()} waited "
                       f"{self._timeout:g} s for the other ranks in {what}; a rank has died or stopped "
                       "answering. Aborting the job (MPI_Abort).")
            print(message, file=sys.stderr, flush=True)
            try:
                self._comm.Abort(70)
            finally:
                os._exit(70)


class MPIStrategy:
    """Synchronous data-parallel training of a fastcnn model (Sequential or functional, any number
    of inputs and outputs) over MPI ranks: the model's own fit and evaluate, their steps spread
    over the ranks (``scope()``).

    comm: an mpi4py communicator (default MPI.COMM_WORLD). timeout: seconds a collective may wait
    for the other ranks before the job is aborted with a clear message (default 300). overlap:
    exchange each layer's gradients as soon as its backward pass has produced them, while earlier
    layers still compute (non-blocking allreduce per layer), instead of one allreduce after the
    backward pass; see the README for when that pays.
    """

    def __init__(self, comm=None, timeout=DEFAULT_TIMEOUT, overlap=False):
        MPI = _import_mpi()
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0 \
                or not math.isfinite(timeout):
            raise ValueError(f"`timeout` must be a positive number of seconds. Received: timeout={timeout!r}")
        if not isinstance(overlap, bool):
            raise TypeError(f"`overlap` must be a bool. Received: overlap={overlap!r}")
        self.timeout = float(timeout)
        self.overlap = overlap
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._watchdog = _Watchdog(self.comm, self.timeout)

    def __repr__(self):
        return f"<MPIStrategy rank={self.rank} size={self.size} overlap={self.overlap}>"

    @property
    def is_chief(self):
        """True on rank 0, the rank that prints and writes files."""
        return self.rank == 0

    # ---- collectives under the watchdog ----

    def _collective(self, what, function, *args):
        self._watchdog.arm(what)
        try:
            return function(*args)
        finally:
            self._watchdog.disarm()

    def barrier(self):
        self._collective("a barrier", self.comm.Barrier)

    def allreduce_sum(self, values, what="an allreduce"):
        """Element-wise sum over every rank of a float64 array (a new array)."""
        send = np.ascontiguousarray(values, dtype=np.float64)
        receive = np.empty_like(send)
        self._collective(what, self.comm.Allreduce, send, receive, self._MPI.SUM)
        return receive

    def broadcast_object(self, value, root=0, what="a broadcast"):
        return self._collective(what, self.comm.bcast, value, root)

    def _abort_on_error(self, function, *args, **kwargs):
        """Runs function; an exception on this rank aborts every rank (the others would otherwise
        wait in their next collective), after printing it with this rank's number."""
        try:
            return function(*args, **kwargs)
        except BaseException as error:
            if self.size == 1:
                raise  # nobody waits for this rank
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            print(f"fastcnn.distributed: rank {self.rank} of {self.size} failed; aborting the job.\n{text}",
                  file=sys.stderr, flush=True)
            self.comm.Abort(1)
            raise

    # ---- data ----

    def shard(self, *arrays):
        """This rank's contiguous block of each array's samples: rank r of N takes samples
        [floor(r n / N), floor((r + 1) n / N)) (sizes differ by at most one). Returns one array,
        or a tuple for several (which must have the same number of samples)."""
        if not arrays:
            raise ValueError("shard() needs at least one array. Received none.")
        for array in arrays:
            if not hasattr(array, "__len__") or not hasattr(array, "__getitem__"):
                raise TypeError(f"shard() takes arrays of samples. Received: {type(array).__name__}")
        lengths = {len(array) for array in arrays}
        if len(lengths) != 1:
            raise ValueError(f"shard() needs arrays with the same number of samples. Received lengths "
                             f"{[len(array) for array in arrays]}")
        samples = lengths.pop()
        start, stop = self.rank * samples // self.size, (self.rank + 1) * samples // self.size
        parts = tuple(array[start:stop] for array in arrays)
        return parts[0] if len(parts) == 1 else parts

    # ---- state ----

    def broadcast_model(self, model, root=0):
        """Copies rank `root`'s weights, BatchNormalization statistics and optimizer state (slots,
        iterations, Nadam's product) to every rank, in place. The model must be built (and, for the
        optimizer state, compiled) alike on every rank."""
        network = model._network
        if network is None:
            raise ValueError("broadcast_model needs a built model: call model.build(input_shape) or pass data "
                             "first.")
        self._broadcast_network(network, model.compiled, model.optimizer, root)

    def _broadcast_network(self, network, compiled, optimizer, root=0):
        slots = []
        if compiled:
            for slot in ("first_moment", "second_moment", "third_slot"):
                try:
                    slots.append((slot, network.optimizer_slot_views(slot)))
                except ValueError:
                    pass  # this optimizer configuration keeps no such slot
        signature = (tuple(tuple(r) for r in network.layer_parameter_ranges()), network.parameter_count,
                     compiled and type(optimizer).__name__, tuple(slot for slot, _ in slots))
        signatures = self._collective("the model check", self.comm.allgather, signature)
        if any(other != signatures[root] for other in signatures):
            different = [rank for rank, other in enumerate(signatures) if other != signatures[root]]
            raise DistributedError(f"Every rank must build and compile the same model. Ranks {different} differ "
                                   f"from rank {root}: (layer ranges, parameter count, optimizer, optimizer slots) "
                                   f"{signatures[different[0]]} != {signatures[root]}")
        self._collective("the weights broadcast", self.comm.Bcast, network.flat_parameters(), root)
        for _, views in slots:
            for layer_views in views:
                for view in layer_views:
                    self._collective("the optimizer state broadcast", self.comm.Bcast, view, root)
        if compiled:
            scalars = self.broadcast_object(
                (network.optimizer_iterations, network.optimizer_nadam_u_product), root,
                "the optimizer state broadcast")
            network.optimizer_iterations, network.optimizer_nadam_u_product = scalars

    def load_model(self, filepath, compile=True):
        """Loads a `.keras` model on every rank from rank 0's file (the other machines need no copy
        of it): rank 0 reads the bytes, every rank loads them from a private temporary file."""
        from fastcnn import models  # noqa: PLC0415

        def read():
            with open(filepath, "rb") as file:
                return file.read()

        payload = None
        error = None
        if self.rank == 0:
            try:
                payload = read()
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
        payload, error = self.broadcast_object((payload, error), 0, "the model file broadcast")
        if error is not None:
            raise OSError(f"Rank 0 could not read the model file {filepath!r}: {error}")
        if self.rank == 0:
            return models.load_model(filepath, compile=compile)
        with tempfile.TemporaryDirectory(prefix="fastcnn-mpi-") as directory:
            path = os.path.join(directory, os.path.basename(str(filepath)) or "model.keras")
            with open(path, "wb") as file:
                file.write(payload)
            return models.load_model(path, compile=compile)

    # ---- training and evaluation: the model's own trainer, its steps spread by this strategy ----

    def scope(self):
        """A context in which this thread's ``model.fit`` and ``model.evaluate`` on arrays run on
        every rank in step (each rank passes its shard), as ``fit`` and ``evaluate`` below do::

            with strategy.scope():
                model.fit(x_part, y_part, batch_size=32, epochs=5)
        """
        return _loop.spread_steps(_MPISteps(self))

    def fit(self, model, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0):
        """Trains `model` on this rank's arrays `x`, `y` (its shard) in batches of `batch_size` per
        rank, every rank in step; the global batch is the sum of the ranks' batches. Returns the
        History (the same logs on every rank: reduced over all ranks). `validation_data` is this
        rank's shard of the validation arrays, evaluated and reduced over all ranks. Models with
        several inputs or outputs take lists or dicts of arrays, as their fit does."""
        def run():
            with self.scope():
                return model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
                                 validation_data=validation_data, shuffle=shuffle, class_weight=class_weight,
                                 sample_weight=sample_weight, initial_epoch=initial_epoch)

        return self._abort_on_error(run)

    def evaluate(self, model, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, callbacks=None,
                 return_dict=False):
        """Loss (and accuracy) over the union of every rank's arrays (each rank passes its shard):
        the per-rank sums of losses, correct predictions and samples are added over all ranks, so
        the result is the single-process evaluate of all the samples, the same on every rank."""
        def run():
            with self.scope():
                return model.evaluate(x, y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight,
                                      callbacks=callbacks, return_dict=return_dict)

        return self._abort_on_error(run)


class _MPISteps(_loop.LocalSteps):
    """The step hook of MPIStrategy (fastcnn/models/_loop.py): every rank takes its own batch of
    its shard, the gradients are summed over the ranks before each update, and the totals of
    training and evaluation are added over the ranks."""

    distributed = True

    def __init__(self, strategy):
        self.strategy = strategy
        self.ranges = []
        self.rank_samples = []

    def check_fit(self, batch_source, check_numerics):
        if batch_source:
            raise TypeError("MPIStrategy trains and evaluates on arrays (each rank's shard); generators, PyDatasets "
                            "and datasets are not supported.")
        if check_numerics:
            raise ValueError("check_numerics=True replays a step in one process; it is not supported under "
                             "MPIStrategy. Run the check in a single process.")

    def begin_fit(self, model, network, settings):
        strategy = self.strategy
        # Every rank must agree on the run's shape, or a collective would pair unrelated calls.
        all_settings = strategy._collective("the settings check", strategy.comm.allgather, settings)
        if any(other != all_settings[0] for other in all_settings):
            raise DistributedError(f"Every rank must call fit with the same batch_size, epochs, initial_epoch, "
                                   f"shuffle and validation. Received per rank: {all_settings}")
        strategy._broadcast_network(network, model.compiled, model.optimizer)
        self.ranges = [tuple(r) for r in network.layer_parameter_ranges()]

    def step_count(self, samples, batch_size):
        strategy = self.strategy
        self.rank_samples = strategy._collective("the sample count exchange", strategy.comm.allgather, samples)
        # Batch k of rank r holds min(B, max(0, n_r - k B)) samples; steps: the longest shard's.
        steps = max(math.ceil(n / batch_size) for n in self.rank_samples)
        if steps == 0:
            raise ValueError("fit needs at least one sample on some rank. Received 0 samples on every rank.")
        return steps

    def batch(self, order, step, batch_size):
        sizes = [min(batch_size, max(0, n - step * batch_size)) for n in self.rank_samples]
        rank = self.strategy.rank
        return order[step * batch_size:step * batch_size + sizes[rank]], sum(sizes), sum(sizes[:rank])

    def callbacks(self, callbacks, verbose):
        """Every callback on rank 0; elsewhere those that neither print nor write files (progress
        bars, ModelCheckpoint, CSVLogger are rank 0's)."""
        callbacks_module = _batch_input.callbacks_module()
        if isinstance(callbacks, callbacks_module.CallbackList):
            callbacks = callbacks.callbacks
        chosen = list(callbacks_module.CallbackList._flatten(callbacks)) if callbacks is not None else []
        if self.strategy.rank != 0:
            writers = (callbacks_module.ModelCheckpoint, callbacks_module.CSVLogger, callbacks_module.ProgbarLogger)
            chosen = [callback for callback in chosen if not isinstance(callback, writers)]
            verbose = 0
        return chosen, verbose

    def on_layer_gradient(self, network):
        """With overlap: starts a non-blocking allreduce of a layer's slice as soon as its backward
        pass has produced it, and drives the pending ones (Open MPI progresses non-blocking
        collectives inside MPI calls)."""
        strategy = self.strategy
        self.requests = None
        if not (strategy.overlap and strategy.size > 1):
            return None
        self.requests = requests = []
        gradients = network.flat_gradients()
        parameters = network.flat_parameters()
        MPI = strategy._MPI
        ranges = self.ranges

        def on_layer_gradient(layer_index):
            offset, trainable_count, count, trainable = ranges[layer_index]
            if trainable and count:  # a frozen layer has nothing to exchange
                if count > trainable_count:
                    gradients[offset + trainable_count:offset + count] = \
                        parameters[offset + trainable_count:offset + count]
                requests.append(strategy.comm.Iallreduce(MPI.IN_PLACE, gradients[offset:offset + count], MPI.SUM))
            if requests:
                MPI.Request.Testall(requests)

        return on_layer_gradient

    def exchange(self, network, loss_sum, outcome, metric_change):
        """Sums the gradient buffer over the ranks, in place, with the BatchNormalization moving
        statistics (copied into their unused gradient slots) averaged alongside; the step's loss
        sums and metric state changes travel beside them (started first, waited for after, so
        their latency hides behind the larger exchange)."""
        strategy = self.strategy
        if strategy.size == 1:
            return loss_sum, outcome, metric_change
        totals = np.concatenate([[loss_sum], np.ravel(outcome), metric_change]).astype(np.float64)
        local = totals.copy()
        totals_request = strategy.comm.Iallreduce(local, totals, strategy._MPI.SUM)
        gradients = network.flat_gradients()
        parameters = network.flat_parameters()
        requests = getattr(self, "requests", None)
        if requests is None:
            for offset, trainable_count, count, trainable in self.ranges:
                if trainable and count > trainable_count:
                    state = slice(offset + trainable_count, offset + count)
                    gradients[state] = parameters[state]
            strategy._collective("the gradient allreduce", strategy.comm.Allreduce, strategy._MPI.IN_PLACE,
                                 gradients, strategy._MPI.SUM)
        else:
            strategy._collective("the gradient allreduce", strategy._MPI.Request.Waitall, requests)
        # A frozen layer's statistics do not change (and are alike on every rank): left as they are.
        for offset, trainable_count, count, trainable in self.ranges:
            if trainable and count > trainable_count:
                parameters[offset + trainable_count:offset + count] = \
                    gradients[offset + trainable_count:offset + count] / np.float32(strategy.size)
        strategy._collective("the loss allreduce", totals_request.Wait)
        reduced_outcome, metric_change = _split_outcome(totals[1:], outcome)
        return float(totals[0]), reduced_outcome, metric_change

    def after_epoch(self, model):
        # Callbacks see the same logs everywhere, so they stop alike; a rank-local decision (a
        # custom callback reading local state) still stops every rank together.
        stop = self.strategy.allreduce_sum([1.0 if model.stop_training else 0.0], "the stop decision")[0] > 0
        model.stop_training = bool(stop)

    def reduce_totals(self, loss, outcome, seen, metric_state):
        totals = self.strategy.allreduce_sum(np.concatenate([[loss, seen], np.ravel(outcome), metric_state]),
                                             "the evaluation allreduce")
        reduced_outcome, reduced_state = _split_outcome(totals[2:], outcome)
        return float(totals[0]), reduced_outcome, int(round(totals[1])), reduced_state


def _split_outcome(values, outcome):
    """(the outcome shaped as `outcome` was, the rest) from reduced values that begin with the
    flattened outcome (a float, or the per-output loss sums)."""
    size = np.size(outcome)
    reduced = values[:size].reshape(np.shape(outcome)) if isinstance(outcome, np.ndarray) else float(values[0])
    return reduced, values[size:]
