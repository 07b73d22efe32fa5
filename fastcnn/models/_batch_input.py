"""``fit``/``evaluate``/``predict`` on data that arrives batch by batch: Python generators and
iterators, ``PyDataset``/``Sequence`` objects (``__len__`` + ``__getitem__``) and re-iterable
datasets (``image_dataset_from_directory``'s, a ``tf.data.Dataset``).

Each batch is checked and converted like an array input (``Sequential._prepare_x``/``_prepare_y``)
and trained as one compiled ``train_step`` over ``np.arange(batch)``, so a stream of batches gives
the same weights as ``fit`` on the concatenated arrays with ``shuffle=False``.

Epochs follow Keras's ``EpochIterator``: without ``steps_per_epoch`` an epoch is one pass (a
generator's epoch ends when it is exhausted); with it, an epoch is that many batches, and a
sized source continues where the previous epoch stopped, starting over once all its batches are
used. Where Keras 3.15 differs it is for artefacts of its tf.data plumbing, and fastcnn does the
plain thing (docs/data.md lists them): a generator that is exhausted stops training with Keras's
"Your input ran out of data" warning (Keras 3 instead replays the two batches it peeked at to
learn the shapes), and ``on_epoch_begin``/``on_epoch_end`` of a PyDataset are called exactly
once per epoch.
"""

import itertools
import numbers
import warnings

import numpy as np

from fastcnn import _random
from fastcnn.models import _loop
from fastcnn._py_dataset import PyDataset

_RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or generator can "
            "generate at least `steps_per_epoch * epochs` batches. You may need to use the `.repeat()` function "
            "when building your dataset.")


def callbacks_module():
    """fastcnn.callbacks, imported at the first fit/evaluate/predict rather than by `import fastcnn`."""
    from fastcnn import callbacks  # noqa: PLC0415

    return callbacks


def is_batch_source(x):
    """True for generators/iterators, PyDataset-like and iterable dataset objects; False for
    arrays and anything numpy converts to one (lists, tuples, tensors with ``__array__``)."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes, numbers.Number)):
        return False
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return False
    return (isinstance(x, PyDataset) or hasattr(x, "__next__") or hasattr(x, "__iter__")
            or (hasattr(x, "__getitem__") and (hasattr(x, "__len__") or hasattr(x, "num_batches"))))


def _is_tf_dataset(x):
    return any(parent.__name__ == "DatasetV2" and "tensorflow.python." in parent.__module__
               for parent in type(x).__mro__)


def _describe(x):
    return f"{type(x).__module__}.{type(x).__qualname__}"


def check_no_batch_size(x, batch_size, name="batch_size"):
    if batch_size is not None:
        raise ValueError(f"The `{name}` argument must not be specified for the given input type: batches come "
                         f"from the data itself. Received input: {_describe(x)}, {name}: {batch_size!r}")


def _unsupported_arg(arg_name, arg_description, input_type):
    """Keras's raise_unsupported_arg."""
    raise ValueError(f"When providing `x` as a {input_type}, `{arg_name}` should not be passed. Instead, "
                     f"{arg_description} should be included as part of the {input_type}.")


def _check_steps(value, name):
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0):
        raise ValueError(f"`{name}` must be a positive integer or None. Received: {name}={value!r}")


class BatchSource:
    """One data argument's batches, epoch after epoch, with Keras's EpochIterator rules."""

    def __init__(self, data, shuffle=False):
        from fastcnn._image_dataset import ImageDataset

        self.data = data
        if hasattr(data, "__next__"):
            self.kind, self.input_type = "iterator", "generator"
            self.num_batches = None
            self._iterator = data
        elif isinstance(data, PyDataset) or (hasattr(data, "__getitem__") and not isinstance(data, ImageDataset)
                                             and not _is_tf_dataset(data)):
            if not (hasattr(data, "__len__") or hasattr(data, "num_batches")):
                raise ValueError(f"A PyDataset-like input needs `__len__` (its number of batches) besides "
                                 f"`__getitem__`. Received: {_describe(data)}")
            self.kind, self.input_type = "indexed", "PyDataset"
            count = data.num_batches if hasattr(data, "num_batches") else len(data)
            self.num_batches = None if count is None else int(count)
            if self.num_batches == 0:
                raise ValueError(f"The PyDataset has length 0. Received: {_describe(data)} with no batches.")
            self._iterator = None
        else:
            self.kind, self.input_type = "iterable", "dataset"
            try:
                count = len(data)
            except TypeError:  # an infinite or unknown-length tf.data.Dataset
                count = None
            self.num_batches = None if count is None or count < 0 else int(count)
            self._iterator = None
        self.shuffle = shuffle
        self.exhausted = False  # a generator that has nothing more to give
        self._steps_seen = 0
        self._pending = None  # a generator's batch read ahead to see whether another epoch can start

    def warn_ignored_shuffle(self):
        """Keras's warnings where fit's shuffle=True (the default) cannot apply."""
        if self.kind == "iterator":
            warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as a "
                          "generator. The generator is expected to yield already-shuffled data.", stacklevel=4)
        elif self.kind == "indexed" and self.num_batches is None:
            warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as an "
                          "infinite PyDataset. The PyDataset is expected to already be shuffled.", stacklevel=4)
        elif self.kind == "iterable" and _is_tf_dataset(self.data):
            warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as a "
                          "tf.data.Dataset. The Dataset is expected to already be shuffled "
                          "(via `.shuffle(buffer_size)`).", stacklevel=4)
        # An ImageDataset shuffles itself, per its own `shuffle` argument: nothing to warn about.

    def can_start_epoch(self):
        """False once a generator is exhausted: reads one batch ahead to know."""
        if self.kind != "iterator" or self.exhausted:
            return not self.exhausted
        if self._pending is None:
            try:
                self._pending = (next(self._iterator),)
            except StopIteration:
                self.exhausted = True
        return not self.exhausted

    def on_epoch_begin(self):
        if self.kind == "indexed" and hasattr(self.data, "on_epoch_begin"):
            self.data.on_epoch_begin()

    def on_epoch_end(self):
        if self.kind == "indexed" and hasattr(self.data, "on_epoch_end"):
            self.data.on_epoch_end()

    def _fresh_iterator(self):
        if self.kind == "indexed":
            count = self.num_batches
            if count is None:
                indices = itertools.count()
            elif self.shuffle:
                indices = _random.generator().permutation(count)
            else:
                indices = range(count)
            return (self.data[int(index)] for index in indices)
        if _is_tf_dataset(self.data):
            return iter(self.data.as_numpy_iterator())
        return iter(self.data)

    def close(self):
        """Ends the pass in progress over a dataset or PyDataset (its prefetch and map threads stop
        before this returns); a generator passed by the caller is left as it is."""
        iterator, self._iterator = self._iterator, None
        if self.kind == "iterator":
            self._iterator = iterator
        elif hasattr(iterator, "close"):
            iterator.close()

    def _next(self):
        if self._pending is not None:
            batch, = self._pending
            self._pending = None
            return batch
        return next(self._iterator)

    def batches(self, steps=None):
        """One epoch's batches: all of them (steps=None) or `steps` of them."""
        if steps is None:
            if self.kind != "iterator":
                self._iterator = self._fresh_iterator()
            while True:
                try:
                    batch = self._next()
                except StopIteration:
                    # The end of a pass; for a generator, the end of its data.
                    self.exhausted = self.kind == "iterator"
                    return
                yield batch
        if self.kind == "iterator":
            for _ in range(steps):
                try:
                    batch = self._next()
                except StopIteration:
                    warnings.warn(_RAN_OUT, stacklevel=2)
                    self.exhausted = True
                    return
                yield batch
            return
        # A sized source with steps: continue the previous epoch's pass; a pass that runs out
        # before `steps` ends the epoch early with Keras's warning, and the next epoch starts over.
        if self._iterator is None:
            self._iterator = self._fresh_iterator()
            self._steps_seen = 0
        for _ in range(steps):
            if self.num_batches is not None and self._steps_seen >= self.num_batches:
                warnings.warn(_RAN_OUT, stacklevel=2)
                break
            try:
                batch = next(self._iterator)
            except StopIteration:  # a dataset of unknown length ended
                warnings.warn(_RAN_OUT, stacklevel=2)
                self._iterator = None
                return
            self._steps_seen += 1
            yield batch
        if self.num_batches is not None and self._steps_seen >= self.num_batches:
            self._iterator = None

    def unpack(self, batch, name):
        """(x, y, sample_weight) from a batch, with Keras's rules for each input type."""
        if isinstance(batch, list) and self.kind == "indexed":
            batch = tuple(batch)
        if not isinstance(batch, tuple):
            if self.kind == "iterator":
                raise ValueError("When passing a Python generator to a fastcnn model, the generator must return a "
                                 "tuple, either (input,) or (inputs, targets) or (inputs, targets, sample_weights). "
                                 f"Received: {str(batch)[:100]}... of type {type(batch).__name__} from `{name}`")
            if isinstance(batch, dict):
                raise ValueError(f"fastcnn models take one input array: batches must be tuples (inputs, targets[, "
                                 f"sample_weights]), not dicts. Received a dict with keys {list(batch)} from `{name}`")
            batch = (batch,)
        if len(batch) not in (1, 2, 3):
            raise ValueError(f"A batch must be a tuple (input,) or (inputs, targets) or (inputs, targets, "
                             f"sample_weights). Received a tuple of {len(batch)} elements from `{name}` "
                             f"({_describe(self.data)})")
        return tuple(batch) + (None,) * (3 - len(batch))


def _needs_targets(y, source, name):
    if y is None:
        raise ValueError(f"Training and evaluation need targets: each batch of `{name}` must be (inputs, targets) or "
                         f"(inputs, targets, sample_weights). Received a batch without targets from "
                         f"{_describe(source.data)}")


def sample_count(x):
    """Samples in prepared inputs (an array, or a list of arrays for a model with several inputs)."""
    return x[0].shape[0] if isinstance(x, list) else x.shape[0]


def take(x, index):
    """x[index] for prepared inputs (every input indexed alike)."""
    return [array[index] for array in x] if isinstance(x, list) else x[index]


def _run_step(model, train, x, y, sample_weight, class_weight, numerics=None, position=(0, 0)):
    """One batch through the compiled network (the model's metrics updated); returns (loss sum,
    per-output loss sums, samples)."""
    x_batch = model._prepare_x(x)
    samples = sample_count(x_batch)
    targets = model._prepare_y(y, samples)
    targets["sample_weights"] = model._prepare_sample_weights(sample_weight, class_weight, targets, samples)
    indices = np.arange(samples)
    if train:
        loss_sum, outcome = model._train_step(x_batch, targets, indices, numerics, position)
    else:
        loss_sum, outcome = model._test_step(x_batch, targets, indices)
    return loss_sum, outcome, samples


def evaluate_source(model, source, steps, callback_list, name="x"):
    """Evaluates the batches of one epoch of `source`; None if it had no batch to give."""
    if not source.can_start_epoch():
        return None

    def run(batch):
        x, y, sample_weight = source.unpack(batch, name)
        _needs_targets(y, source, name)
        return _run_step(model, False, x, y, sample_weight, None)

    def runs():
        source.on_epoch_begin()
        try:
            for batch in source.batches(steps):
                yield lambda batch=batch: run(batch)
        finally:  # also when the loop stops early
            source.on_epoch_end()

    logs, count = _loop.evaluate_runs(model, callback_list, runs())
    return logs if count else None


def evaluate_validation(model, source, steps, callback_list):
    """fit's validation pass over a batch source. A generator that has run dry warns and stops
    training (Keras's message), and the epoch then has no validation logs."""
    logs = evaluate_source(model, source, steps, callback_list, "validation_data")
    if logs is None:
        warnings.warn(_RAN_OUT, stacklevel=4)
        model.stop_training = True
        return {}
    return logs


def _empty_error(source, name):
    return ValueError(f"When passing a Python {source.input_type} to a fastcnn model, it must yield at least one "
                      f"batch. Received an empty {source.input_type} as `{name}`.")


def fit(model, x, y, epochs, verbose, callbacks, validation_split, validation_data, shuffle, class_weight,
        sample_weight, initial_epoch, steps_per_epoch, validation_steps, validation_batch_size, validation_freq,
        numerics=None):
    """``Sequential.fit`` for a batch source `x`; arguments already checked by ``fit``. numerics: a
    _step_guard.NumericsCheck for check_numerics=True, else None."""
    source = BatchSource(x, shuffle=shuffle)
    if y is not None:
        _unsupported_arg("y", "the targets", source.input_type)
    if sample_weight is not None:
        _unsupported_arg("sample_weights", "the sample weights", source.input_type)
    if class_weight is not None and source.kind == "iterator":
        raise ValueError(f"Argument `class_weight` is not supported for Python generator inputs. Received: "
                         f"class_weight={class_weight}")
    if validation_split:
        raise ValueError("Argument `validation_split` is only supported for tensors or NumPy arrays. Found "
                         f"incompatible type in the input: [{type(x)}]")
    _check_steps(steps_per_epoch, "steps_per_epoch")
    _check_steps(validation_steps, "validation_steps")
    if steps_per_epoch is None and source.kind == "indexed" and source.num_batches is None:
        raise ValueError("When passing an infinite PyDataset, please specify a `steps_per_epoch` value so that "
                         "epoch level callbacks continue to work.")
    if shuffle:
        source.warn_ignored_shuffle()
    if source.kind == "iterator" and not source.can_start_epoch():
        raise _empty_error(source, "x")

    validation = None
    if validation_data is not None:
        if is_batch_source(validation_data):
            check_no_batch_size(validation_data, validation_batch_size, "validation_batch_size")
            validation = BatchSource(validation_data)
        else:
            if validation_steps is not None:
                raise ValueError("`validation_steps` applies to generator, PyDataset or dataset validation data; "
                                 "array validation data is evaluated whole. Received: "
                                 f"validation_steps={validation_steps!r}")
            validation = model._prepare_validation_arrays(validation_data)
    _check_steps(validation_batch_size, "validation_batch_size")
    validation_batch_size = validation_batch_size or 32  # fit's default batch size, for array validation data

    callback_list = callbacks_module()._callback_list_for(
        callbacks, add_history=True, add_progbar=verbose != 0, model=model,
        verbose=verbose, epochs=epochs, steps=steps_per_epoch or source.num_batches,
    )

    def can_start_epoch():
        if source.can_start_epoch():
            return True
        warnings.warn(_RAN_OUT, stacklevel=4)
        return False

    def run(batch, epoch, step):
        batch_x, batch_y, batch_weight = source.unpack(batch, "x")
        _needs_targets(batch_y, source, "x")
        return _run_step(model, True, batch_x, batch_y, batch_weight, class_weight, numerics, (epoch, step))

    def epoch_runs(epoch):
        source.on_epoch_begin()
        try:
            for step, batch in enumerate(source.batches(steps_per_epoch)):
                yield lambda batch=batch, step=step: run(batch, epoch, step)
        finally:  # also when training stops early
            source.on_epoch_end()

    def epoch_validation(epoch):
        return model._validation_logs(validation, epoch, validation_freq, validation_steps, validation_batch_size,
                                      callback_list)

    try:
        return _loop.fit_epochs(model, callback_list, initial_epoch, epochs, epoch_runs, epoch_validation,
                                can_start_epoch=can_start_epoch)
    finally:
        # Also when a callback (or Ctrl-C) interrupts training: the datasets' threads end now,
        # not when the traceback that holds their iterators is freed.
        source.close()
        if isinstance(validation, BatchSource):
            validation.close()


def evaluate(model, x, y, verbose, sample_weight, steps, callbacks):
    source = BatchSource(x)
    if y is not None:
        _unsupported_arg("y", "the targets", source.input_type)
    if sample_weight is not None:
        _unsupported_arg("sample_weights", "the sample weights", source.input_type)
    _check_steps(steps, "steps")
    if steps is None and source.kind == "indexed" and source.num_batches is None:
        raise ValueError("When passing an infinite PyDataset, please specify `steps`.")
    callback_list = callbacks_module()._callback_list_for(
        callbacks, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=1,
        steps=steps or source.num_batches,
    )
    try:
        logs = evaluate_source(model, source, steps, callback_list)
    finally:
        source.close()
    if logs is None:
        raise _empty_error(source, "x")
    return logs


def predict(model, x, verbose, steps, callbacks):
    source = BatchSource(x)
    _check_steps(steps, "steps")
    if steps is None and source.kind == "indexed" and source.num_batches is None:
        raise ValueError("When passing an infinite PyDataset, please specify `steps`.")
    if not source.can_start_epoch():
        raise _empty_error(source, "x")
    callback_list = callbacks_module()._callback_list_for(
        callbacks, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=1,
        steps=steps or source.num_batches,
    )
    outputs = []
    callback_list.on_predict_begin()
    source.on_epoch_begin()
    try:
        for step, batch in enumerate(source.batches(steps)):
            callback_list.on_predict_batch_begin(step)
            batch_x = source.unpack(batch, "x")[0]
            x_batch = model._prepare_x(batch_x)
            count = sample_count(x_batch)
            with model._lock:
                model._use_own_weights()
                results = model._network.predict(x_batch)
            results = results if isinstance(results, list) else [results]
            outputs.append([r.reshape((count,) + tuple(shape))
                            for r, shape in zip(results, model._output_sample_shapes)])
            callback_list.on_predict_batch_end(step, {"outputs": outputs[-1][0] if len(outputs[-1]) == 1
                                                      else outputs[-1]})
    finally:
        source.close()
    source.on_epoch_end()
    if not outputs:
        raise _empty_error(source, "x")
    callback_list.on_predict_end()
    joined = [np.concatenate(parts) for parts in zip(*outputs)]
    return joined[0] if len(joined) == 1 else joined
