"""Datasets with tf.data's methods, on numpy arrays: what Keras scripts call on the datasets they
build or receive from ``image_dataset_from_directory``.

A Dataset is a re-iterable description of a stream of elements: iterating it (``for element in
dataset``, or ``fit(dataset)`` once per epoch) runs the whole chain afresh, as tf.data does. An
element is an array or a tuple/list/dict of arrays. Work that takes time (``map`` with
``num_parallel_calls``, ``prefetch``, the decoding of image files) runs on threads, which overlap
the training step: fastcnn's step releases the GIL, and so do numpy, Pillow's decoder and fastcnn's
layers called on arrays.
"""

import concurrent.futures
import itertools
import json
import math
import numbers
import os
import queue
import threading

import numpy as np

from fastcnn import _core, _random
from fastcnn.data import _structure

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2


def autotuned_workers():
    """The thread count AUTOTUNE stands for: one per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _check_count(value, name, allow_minus_one=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or \
            (value < 0 and not (allow_minus_one and value == -1)):
        allowed = "a non-negative integer or -1" if allow_minus_one else "a non-negative integer"
        raise ValueError(f"`{name}` must be {allowed}. Received: {name}={value!r}")
    return int(value)


def _check_parallelism(value, name="num_parallel_calls"):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (value <= 0 and value != AUTOTUNE):
        raise ValueError(f"`{name}` must be a positive integer, AUTOTUNE (-1) or None. Received: {name}={value!r}")
    return autotuned_workers() if value == AUTOTUNE else int(value)


class TensorSpec:
    """The shape and dtype of an element's array (tf.TensorSpec's fields); None in `shape` for a
    size that varies (the batch axis of a batched dataset)."""

    def __init__(self, shape, dtype, name=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.name = name

    def __repr__(self):
        return f"TensorSpec(shape={self.shape}, dtype={self.dtype.name}, name={self.name})"

    def __eq__(self, other):
        return isinstance(other, TensorSpec) and (self.shape, self.dtype, self.name) == (other.shape, other.dtype,
                                                                                          other.name)

    def __hash__(self):
        return hash((self.shape, self.dtype, self.name))


def _call(function, element):
    """tf.data's calling convention: a tuple element is passed as positional arguments."""
    return function(*element) if isinstance(element, tuple) else function(element)


def annotate_failure(error, context):
    """`error` (raised by a user's function, or a decoder, on one element) with `context` ("while
    mapping element 17") added to its message; the same exception object, so its type, attributes
    and traceback are kept. A one-string message is extended in place; other exceptions (KeyError,
    OSError with an errno) get `context` as a note (Python >= 3.11 prints it under the message)."""
    if not isinstance(error, Exception) or getattr(error, "_fastcnn_context", None) is not None:
        return error  # KeyboardInterrupt and the like pass untouched; annotated once only
    try:
        error._fastcnn_context = context
    except AttributeError:  # an exception class with __slots__
        pass
    if len(error.args) == 1 and isinstance(error.args[0], str) and type(error).__str__ is Exception.__str__:
        error.args = (f"{error.args[0]} ({context})",)
    elif hasattr(error, "add_note"):
        error.add_note(context)
    return error


class Dataset:
    """The base of every dataset: subclasses implement ``_iterate()`` (a fresh iterator over the
    elements) and ``_cardinality()``."""

    # ---- sources ----

    @staticmethod
    def from_tensor_slices(tensors, name=None):
        """One element per index of the arrays' first axis (every array of the structure must have
        the same length)."""
        return _TensorSlices(tensors)

    @staticmethod
    def from_tensors(tensors, name=None):
        """A dataset of one element: `tensors` itself."""
        return _TensorSlices(_structure.map_structure(lambda a: np.asarray(a)[None], tensors))

    @staticmethod
    def range(*args, dtype=np.int64, name=None):
        """Integers as Python's range(start, stop, step), produced one by one."""
        return _Range(range(*args), np.dtype(dtype))

    @staticmethod
    def from_generator(generator, output_types=None, output_shapes=None, args=None, output_signature=None,
                       name=None):
        """The elements a generator yields: `generator` is a callable returning an iterator, called
        again for every iteration of the dataset (with `args`)."""
        if not callable(generator):
            raise TypeError(f"`generator` must be a Python callable. Received: generator={generator!r}")
        return _FromGenerator(generator, tuple(args) if args is not None else ())

    @staticmethod
    def zip(*datasets, name=None):
        """Tuples of the datasets' elements, until the shortest ends (`datasets` a tuple of
        datasets, or the datasets as arguments)."""
        if len(datasets) == 1 and isinstance(datasets[0], (tuple, list)):
            datasets = tuple(datasets[0])
        for dataset in datasets:
            if not isinstance(dataset, Dataset):
                raise TypeError(f"zip takes datasets. Received: {dataset!r}")
        return _Zip(datasets)

    # ---- iteration and size ----

    def __iter__(self):
        return self._iterate()

    def _iterate(self):
        raise NotImplementedError(f"{type(self).__name__} must implement _iterate")

    def _cardinality(self):
        raise NotImplementedError(f"{type(self).__name__} must implement _cardinality")

    def as_numpy_iterator(self):
        """The elements (already numpy arrays) as an iterator."""
        return iter(self)

    def cardinality(self):
        """The number of elements, INFINITE_CARDINALITY (-1) or UNKNOWN_CARDINALITY (-2), as
        tf.data counts it without iterating."""
        return np.int64(self._cardinality())

    def __len__(self):
        count = self._cardinality()
        if count == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if count == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return count

    def __bool__(self):
        return True  # a dataset of unknown length is not false

    @property
    def element_spec(self):
        """The structure of TensorSpecs of the elements (read from the first element), the first
        axis None where batches vary in size (batched without drop_remainder)."""
        try:
            first = next(iter(self.take(1)))
        except StopIteration:
            raise ValueError("element_spec of an empty dataset: it has no element to describe") from None
        varying = self._varying_batch()

        def spec(array):
            shape = np.shape(array)
            return TensorSpec((None,) + shape[1:] if varying and shape else shape, np.asarray(array).dtype)

        return _structure.map_structure(spec, first)

    def _varying_batch(self):
        """Whether elements are batches whose size varies; a transformation of one source inherits it."""
        source = getattr(self, "_source", None)
        return source is not None and source._varying_batch()

    # ---- transformations ----

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """map_func applied to every element (a tuple element's items as its arguments); with
        num_parallel_calls (a count or AUTOTUNE), on that many threads, the order kept unless
        deterministic=False."""
        if not callable(map_func):
            raise TypeError(f"`map_func` must be callable. Received: map_func={map_func!r}")
        return _Map(self, map_func, _check_parallelism(num_parallel_calls), deterministic is not False)

    def filter(self, predicate, name=None):
        """The elements for which predicate(element) is true."""
        if not callable(predicate):
            raise TypeError(f"`predicate` must be callable. Received: predicate={predicate!r}")
        return _Filter(self, predicate)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None, deterministic=None, name=None):
        """Consecutive elements stacked along a new first axis; the last batch smaller unless
        drop_remainder."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
        return _Batch(self, int(batch_size), bool(drop_remainder))

    def unbatch(self, name=None):
        """The rows of every element's arrays as elements of their own."""
        return _Unbatch(self)

    def rebatch(self, batch_size, drop_remainder=False, name=None):
        """The same elements in batches of batch_size."""
        return self.unbatch().batch(batch_size, drop_remainder)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        """tf.data's shuffle: elements drawn at random from a buffer of buffer_size that refills
        from the input (a buffer as large as the dataset gives a uniform permutation); a new order
        every iteration unless reshuffle_each_iteration=False. Seeded by `seed`, else by
        fastcnn.utils.set_random_seed's stream."""
        if buffer_size == AUTOTUNE:
            raise ValueError("shuffle needs an explicit buffer_size (AUTOTUNE is not supported). Received: "
                             "buffer_size=-1")
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, numbers.Integral) or buffer_size <= 0:
            raise ValueError(f"`buffer_size` must be a positive integer. Received: buffer_size={buffer_size!r}")
        return _Shuffle(self, int(buffer_size), seed, bool(reshuffle_each_iteration))

    def take(self, count, name=None):
        """The first `count` elements (-1: all)."""
        return _Take(self, _check_count(count, "count", allow_minus_one=True))

    def skip(self, count, name=None):
        """Every element after the first `count` (-1: none)."""
        return _Skip(self, _check_count(count, "count", allow_minus_one=True))

    def repeat(self, count=None, name=None):
        """The elements `count` times over (None or -1: for ever)."""
        if count is not None:
            count = _check_count(count, "count", allow_minus_one=True)
        return _Repeat(self, None if count in (None, -1) else count)

    def cache(self, filename="", name=None):
        """The elements kept after the first complete iteration, in memory (filename "") or in a
        file (read back by later iterations, and by later runs that cache to the same file);
        upstream work (decoding, map) then runs once. An iteration stopped early caches nothing."""
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"`filename` must be a string or a path. Received: filename={filename!r}")
        return _Cache(self, os.fspath(filename))

    def prefetch(self, buffer_size, name=None):
        """Up to buffer_size elements (AUTOTUNE: 2) prepared ahead on a background thread while the
        consumer works on the current one."""
        if buffer_size != AUTOTUNE:
            buffer_size = _check_count(buffer_size, "buffer_size")
        return _Prefetch(self, 2 if buffer_size == AUTOTUNE else buffer_size)

    def concatenate(self, dataset, name=None):
        """This dataset's elements, then `dataset`'s."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"concatenate takes a dataset. Received: {dataset!r}")
        return _Concatenate(self, dataset)

    def enumerate(self, start=0, name=None):
        """(index, element) pairs, counting from `start`."""
        return Dataset.zip(Dataset.range(start, np.iinfo(np.int64).max), self)

    def apply(self, transformation_func):
        """transformation_func(self): a chain of transformations as one call."""
        return transformation_func(self)


class _TensorSlices(Dataset):
    def __init__(self, tensors):
        arrays = _structure.as_arrays(tensors)
        lengths = {len(a) if a.ndim else None for a in _structure.leaves(arrays)}
        if None in lengths:
            raise ValueError("from_tensor_slices needs arrays with at least one axis to slice. Received a scalar.")
        if len(lengths) > 1:
            raise ValueError(f"from_tensor_slices needs arrays of one length along their first axis. Received "
                             f"lengths {sorted(lengths)}.")
        self._tensors = arrays
        self._length = lengths.pop() if lengths else 0

    def _cardinality(self):
        return self._length

    def _iterate(self):
        for index in range(self._length):
            yield _structure.map_structure(lambda a, index=index: a[index], self._tensors)


class _Range(Dataset):
    def __init__(self, values, dtype):
        self._values, self._dtype = values, dtype

    def _cardinality(self):
        return len(self._values)

    def _iterate(self):
        for value in self._values:
            yield np.asarray(value, dtype=self._dtype)


class _FromGenerator(Dataset):
    def __init__(self, generator, args):
        self._generator, self._args = generator, args

    def _cardinality(self):
        return UNKNOWN_CARDINALITY

    def _iterate(self):
        for element in self._generator(*self._args):
            yield _structure.as_arrays(element)


class _Zip(Dataset):
    def __init__(self, datasets):
        self._datasets = datasets

    def _varying_batch(self):
        return any(d._varying_batch() for d in self._datasets)

    def _cardinality(self):
        counts = [d._cardinality() for d in self._datasets]
        finite = [c for c in counts if c >= 0]
        if finite:
            return min(finite)
        return UNKNOWN_CARDINALITY if UNKNOWN_CARDINALITY in counts else INFINITE_CARDINALITY

    def _iterate(self):
        return zip(*(iter(d) for d in self._datasets))


class _Map(Dataset):
    def __init__(self, source, function, workers, deterministic):
        self._source, self._function, self._workers, self._deterministic = source, function, workers, deterministic

    def _cardinality(self):
        return self._source._cardinality()

    def _apply(self, element):
        return _structure.as_arrays(_call(self._function, element))

    def _iterate(self):
        if self._workers is None:
            for index, element in enumerate(self._source):
                try:
                    result = self._apply(element)
                except Exception as error:
                    raise annotate_failure(error, _mapping_context(index, element))
                yield result
            return
        yield from _parallel_map(self._apply, iter(self._source), self._workers, self._deterministic,
                                 context=_mapping_context)


def _mapping_context(index, element):
    return f"while mapping element {index}"


def _kernels_on_one_thread():
    """A worker runs fastcnn's kernels (a resize, augmentation layers called in `map`) on its own
    thread only: OpenMP's thread count belongs to the calling thread, and an OpenMP team per worker
    beside the training step's would oversubscribe the cores."""
    _core.set_num_threads(1)


def _parallel_map(function, elements, workers, ordered=True, window=None, context=None):
    """function over an iterator on `workers` threads, at most `window` calls (default 2 * workers)
    in flight; results in input order (or as they finish when not ordered). An exception in a call
    is raised here, its message extended with context(index, element) when `context` is given
    (index: the element's position in `elements`). However the loop ends (exhausted, a failure,
    the consumer closing it), the calls not started are cancelled and the threads have ended
    before control returns."""
    window = window or 2 * workers
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastcnn-data",
                                                     initializer=_kernels_on_one_thread)
    pending = []  # (index, element, future), in submission order
    numbered = enumerate(elements)

    def submit(count):
        for index, element in itertools.islice(numbered, count):
            pending.append((index, element, executor.submit(function, element)))

    try:
        submit(window)
        while pending:
            if ordered:
                done = pending.pop(0)
            else:
                finished, _ = concurrent.futures.wait([future for _, _, future in pending],
                                                      return_when=concurrent.futures.FIRST_COMPLETED)
                done = next(entry for entry in pending if entry[2] in finished)
                pending.remove(done)
            index, element, future = done
            try:
                result = future.result()
            except Exception as error:
                if context is None:
                    raise
                raise annotate_failure(error, context(index, element))
            submit(1)
            yield result
    finally:
        for _, _, future in pending:
            future.cancel()
        executor.shutdown(wait=True)


class _Filter(Dataset):
    def __init__(self, source, predicate):
        self._source, self._predicate = source, predicate

    def _cardinality(self):
        return UNKNOWN_CARDINALITY if self._source._cardinality() != INFINITE_CARDINALITY else INFINITE_CARDINALITY

    def _iterate(self):
        for element in self._source:
            keep = np.asarray(_call(self._predicate, element))
            if keep.shape != () or keep.dtype != np.bool_:
                raise ValueError(f"filter's predicate must return a scalar boolean. Received: {keep!r}")
            if keep:
                yield element


def stack_elements(elements):
    """A batch from a list of same-structured elements (their arrays stacked on a new first axis);
    arrays of different shapes raise a ValueError naming both."""
    def stack(*arrays):
        shapes = {np.shape(a) for a in arrays}
        if len(shapes) > 1:
            raise ValueError(f"Cannot batch elements of different shapes: {sorted(shapes)}. Resize them to one shape "
                             "first (e.g. with a Resizing layer in map).")
        return np.stack(arrays)

    return _structure.map_structure(stack, *elements)


class _Batch(Dataset):
    def __init__(self, source, batch_size, drop_remainder):
        self._source, self._batch_size, self._drop_remainder = source, batch_size, drop_remainder

    def _cardinality(self):
        count = self._source._cardinality()
        if count < 0:
            return count
        return count // self._batch_size if self._drop_remainder else math.ceil(count / self._batch_size)

    def _varying_batch(self):
        return not self._drop_remainder

    def _iterate(self):
        elements = iter(self._source)
        while True:
            chunk = list(itertools.islice(elements, self._batch_size))
            if not chunk or (self._drop_remainder and len(chunk) < self._batch_size):
                return
            yield stack_elements(chunk)


class _Unbatch(Dataset):
    def __init__(self, source):
        self._source = source

    def _varying_batch(self):
        return False

    def _cardinality(self):
        return INFINITE_CARDINALITY if self._source._cardinality() == INFINITE_CARDINALITY else UNKNOWN_CARDINALITY

    def _iterate(self):
        for element in self._source:
            arrays = _structure.leaves(element)
            rows = {np.shape(a)[0] if np.ndim(a) else None for a in arrays}
            if None in rows or len(rows) > 1:
                raise ValueError("unbatch needs arrays with one shared first axis. Received shapes "
                                 f"{[np.shape(a) for a in arrays]}")
            for row in range(rows.pop() if rows else 0):
                yield _structure.map_structure(lambda a, row=row: a[row], element)


class _Shuffle(Dataset):
    def __init__(self, source, buffer_size, seed, reshuffle):
        self._source, self._buffer_size, self._reshuffle = source, buffer_size, reshuffle
        # One generator for the dataset's life: each iteration draws its own seed from it.
        self._seeds = np.random.default_rng(seed if seed is not None else _random.draw_seed())
        self._fixed_seed = int(self._seeds.integers(0, 2**63 - 1))

    def _cardinality(self):
        return self._source._cardinality()

    def _iterate(self):
        seed = int(self._seeds.integers(0, 2**63 - 1)) if self._reshuffle else self._fixed_seed
        rng = np.random.default_rng(seed)
        elements = iter(self._source)
        buffer = list(itertools.islice(elements, self._buffer_size))
        for element in elements:
            index = int(rng.integers(len(buffer)))
            yield buffer[index]
            buffer[index] = element
        for index in rng.permutation(len(buffer)):
            yield buffer[index]


class _Take(Dataset):
    def __init__(self, source, count):
        self._source, self._count = source, count

    def _cardinality(self):
        count = self._source._cardinality()
        if self._count == -1:
            return count
        if count == UNKNOWN_CARDINALITY:
            return UNKNOWN_CARDINALITY
        return self._count if count == INFINITE_CARDINALITY else min(count, self._count)

    def _iterate(self):
        if self._count == -1:
            return iter(self._source)
        return itertools.islice(iter(self._source), self._count)


class _Skip(Dataset):
    def __init__(self, source, count):
        self._source, self._count = source, count

    def _cardinality(self):
        count = self._source._cardinality()
        if count < 0:
            return count
        return 0 if self._count == -1 else max(0, count - self._count)

    def _iterate(self):
        if self._count == -1:
            return iter(())
        return itertools.islice(iter(self._source), self._count, None)


class _Repeat(Dataset):
    def __init__(self, source, count):
        self._source, self._count = source, count

    def _cardinality(self):
        count = self._source._cardinality()
        if self._count is None:
            return 0 if count == 0 else INFINITE_CARDINALITY
        return count * self._count if count >= 0 else count

    def _iterate(self):
        rounds = itertools.count() if self._count is None else range(self._count)
        for _ in rounds:
            empty = True
            for element in self._source:
                empty = False
                yield element
            if empty:  # an empty dataset repeated for ever is empty, as in tf.data
                return


class _Cache(Dataset):
    def __init__(self, source, filename):
        self._source, self._filename = source, filename
        self._elements = None  # the memory cache, once complete
        self._lock = threading.Lock()

    def _cardinality(self):
        return self._source._cardinality()

    def _iterate(self):
        if self._filename:
            return self._iterate_file()
        if self._elements is not None:
            return iter(self._elements)
        return self._fill_memory()

    def _fill_memory(self):
        elements = []
        for element in self._source:
            elements.append(element)
            yield element
        with self._lock:
            self._elements = elements

    def _iterate_file(self):
        if os.path.exists(self._filename):
            yield from _read_cache_file(self._filename)
            return
        temporary = f"{self._filename}.{os.getpid()}.{threading.get_ident()}.partial"
        try:
            with open(temporary, "wb") as file:
                for element in self._source:
                    description = json.dumps(_structure.describe(element))
                    np.save(file, np.array(description), allow_pickle=False)
                    for leaf in _structure.leaves(element):
                        np.save(file, np.asarray(leaf), allow_pickle=False)
                    yield element
            os.replace(temporary, self._filename)  # complete: later iterations read it
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)


def _read_cache_file(path):
    """The elements of a cache file: per element, its structure (JSON) then its arrays."""
    try:
        with open(path, "rb") as file:
            while file.peek(1) if hasattr(file, "peek") else file.read(1):
                template = _structure.from_description(json.loads(str(np.load(file, allow_pickle=False))))
                count = len(_structure.leaves(template))
                yield _structure.rebuild(template, [np.load(file, allow_pickle=False) for _ in range(count)])
    except (ValueError, OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"The dataset cache file {path!r} is not a fastcnn cache (or is damaged): {error}. "
                         "Delete it to rebuild the cache.") from error


_END = object()


class _Prefetch(Dataset):
    def __init__(self, source, buffer_size):
        self._source, self._buffer_size = source, buffer_size

    def _cardinality(self):
        return self._source._cardinality()

    def _iterate(self):
        if self._buffer_size == 0:
            yield from self._source
            return
        yield from prefetched(iter(self._source), self._buffer_size)


def prefetched(elements, buffer_size):
    """The iterator's elements, produced up to buffer_size ahead on a background thread; an
    exception there is raised here; leaving the loop early stops the thread."""
    ready = queue.Queue(maxsize=buffer_size)
    stop = threading.Event()

    def produce():
        try:
            for element in elements:
                while not stop.is_set():
                    try:
                        ready.put((element, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put((_END, None))
        except BaseException as error:  # handed to the consumer, which raises it
            ready.put((_END, error))

    thread = threading.Thread(target=produce, name="fastcnn-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            element, error = ready.get()
            if element is _END:
                if error is not None:
                    raise error
                return
            yield element
    finally:
        stop.set()
        while thread.is_alive():
            try:
                ready.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
        if hasattr(elements, "close"):
            elements.close()  # the upstream generators' own threads (parallel map, decoding) end now


class _Concatenate(Dataset):
    def __init__(self, first, second):
        self._first, self._second = first, second

    def _varying_batch(self):
        return self._first._varying_batch() or self._second._varying_batch()

    def _cardinality(self):
        counts = (self._first._cardinality(), self._second._cardinality())
        if INFINITE_CARDINALITY in counts:
            return INFINITE_CARDINALITY
        if UNKNOWN_CARDINALITY in counts:
            return UNKNOWN_CARDINALITY
        return sum(counts)

    def _iterate(self):
        return itertools.chain(self._first, self._second)
