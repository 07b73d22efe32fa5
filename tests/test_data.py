"""fastcnn.data.Dataset against tf.data: the same elements, cardinalities and errors for every
method Keras scripts call; threads (parallel map, prefetch) and caches; datasets in fit."""

import threading

import numpy as np
import pytest

import fastcnn
from fastcnn import layers
from fastcnn.data import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset


def _elements(dataset):
    """A dataset's elements as nested lists of numpy arrays (tf.data's converted with .numpy())."""
    def convert(element):
        if isinstance(element, dict):
            return {key: convert(value) for key, value in element.items()}
        if isinstance(element, (tuple, list)):
            return [convert(item) for item in element]
        return np.asarray(element)
    return [convert(element) for element in dataset]


def _assert_same(ours, theirs):
    ours, theirs = _elements(ours), _elements(theirs)
    assert len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs):
        flat_mine, flat_expected = _flatten(mine), _flatten(expected)
        assert len(flat_mine) == len(flat_expected)
        for a, b in zip(flat_mine, flat_expected):
            np.testing.assert_allclose(a, b)
            assert a.shape == b.shape


def _flatten(element):
    if isinstance(element, dict):
        return [leaf for key in element for leaf in _flatten(element[key])]
    if isinstance(element, list):
        return [leaf for item in element for leaf in _flatten(item)]
    return [element]


X = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
Y = np.arange(7, dtype=np.int64)

CHAINS = {
    "slices": lambda d, s: d.from_tensor_slices((X, Y)),
    "dict": lambda d, s: d.from_tensor_slices({"a": X, "b": Y}),
    "map_tuple": lambda d, s: d.from_tensor_slices((X, Y)).map(lambda x, y: (x * 2, y + 1)),
    "batch": lambda d, s: d.from_tensor_slices((X, Y)).batch(3),
    "batch_drop": lambda d, s: d.from_tensor_slices((X, Y)).batch(3, drop_remainder=True),
    "unbatch": lambda d, s: d.from_tensor_slices((X, Y)).batch(3).unbatch(),
    "rebatch": lambda d, s: d.from_tensor_slices(X).batch(3).rebatch(2),
    "take_skip": lambda d, s: d.from_tensor_slices(X).skip(2).take(3),
    "take_all": lambda d, s: d.from_tensor_slices(X).take(-1),
    "repeat": lambda d, s: d.from_tensor_slices(Y).repeat(3),
    "filter": lambda d, s: d.from_tensor_slices(Y).filter(lambda y: y % 2 == 0),
    "zip": lambda d, s: d.zip((d.from_tensor_slices(X), d.from_tensor_slices(Y).take(4))),
    "concatenate": lambda d, s: d.from_tensor_slices(Y).concatenate(d.from_tensor_slices(Y * 10)),
    "range": lambda d, s: d.range(2, 11, 3),
    "enumerate": lambda d, s: d.from_tensor_slices(Y).enumerate(start=5),
    "from_tensors": lambda d, s: d.from_tensors(X),
    "parallel_map_prefetch": lambda d, s: d.from_tensor_slices((X, Y)).map(
        lambda x, y: (x - 1, y), num_parallel_calls=s.AUTOTUNE).batch(2).prefetch(s.AUTOTUNE),
    "cache": lambda d, s: d.from_tensor_slices(X).cache().batch(4),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_elements_and_cardinality_equal_tf_data(tf, name):
    import fastcnn.data as ours_module

    ours = CHAINS[name](Dataset, ours_module)
    theirs = CHAINS[name](tf.data.Dataset, tf.data)
    _assert_same(ours, theirs)
    _assert_same(ours, theirs)  # a second iteration (epoch) gives the same elements again
    assert int(ours.cardinality()) == int(theirs.cardinality())


def test_cardinality_of_unknown_and_infinite_datasets(tf):
    pairs = [
        (Dataset.from_tensor_slices(Y).repeat(), tf.data.Dataset.from_tensor_slices(Y).repeat()),
        (Dataset.from_tensor_slices(Y).filter(lambda y: y > 2), tf.data.Dataset.from_tensor_slices(Y).filter(
            lambda y: y > 2)),
        (Dataset.from_tensor_slices(Y).repeat().take(5), tf.data.Dataset.from_tensor_slices(Y).repeat().take(5)),
        (Dataset.from_tensor_slices(Y).repeat().batch(2), tf.data.Dataset.from_tensor_slices(Y).repeat().batch(2)),
    ]
    for ours, theirs in pairs:
        assert int(ours.cardinality()) == int(theirs.cardinality())
    assert INFINITE_CARDINALITY == tf.data.INFINITE_CARDINALITY and UNKNOWN_CARDINALITY == tf.data.UNKNOWN_CARDINALITY
    with pytest.raises(TypeError, match="The dataset is infinite."):
        len(pairs[0][0])
    with pytest.raises(TypeError, match="The dataset length is unknown."):
        len(pairs[1][0])
    assert len(pairs[2][0]) == 5


def test_element_spec_names_shapes_and_dtypes():
    spec = Dataset.from_tensor_slices((X, Y)).batch(4).element_spec
    assert [(s.shape, s.dtype.name) for s in spec] == [((None, 3), "float32"), ((None,), "int64")]
    assert repr(spec[0]) == "TensorSpec(shape=(None, 3), dtype=float32, name=None)"
    assert Dataset.from_tensor_slices(X).batch(4, drop_remainder=True).element_spec.shape == (4, 3)


def test_from_generator_is_called_afresh_every_iteration():
    calls = []

    def generate(limit):
        calls.append(limit)
        for index in range(limit):
            yield np.full(2, index, np.float32), index

    dataset = Dataset.from_generator(generate, args=(3,))
    assert [int(y) for _, y in dataset] == [0, 1, 2]
    assert [int(y) for _, y in dataset.batch(2).unbatch()] == [0, 1, 2]
    assert calls == [3, 3] and int(dataset.cardinality()) == UNKNOWN_CARDINALITY


def test_shuffle_is_a_seeded_permutation_reshuffled_each_iteration():
    values = np.arange(50)
    dataset = Dataset.from_tensor_slices(values).shuffle(50, seed=3)
    first, second = [int(v) for v in dataset], [int(v) for v in dataset]
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second and first != list(range(50))
    again = Dataset.from_tensor_slices(values).shuffle(50, seed=3)
    assert [int(v) for v in again] == first  # the same seed, the same orders
    fixed = Dataset.from_tensor_slices(values).shuffle(50, seed=3, reshuffle_each_iteration=False)
    assert [int(v) for v in fixed] == [int(v) for v in fixed]
    # A buffer of 1 keeps the order; a small buffer moves elements only a little way early.
    assert [int(v) for v in Dataset.from_tensor_slices(values).shuffle(1, seed=0)] == list(range(50))
    assert [int(v) for v in Dataset.from_tensor_slices(values).shuffle(4, seed=0)][0] < 4


def test_parallel_map_runs_on_several_threads_and_keeps_the_order():
    seen, barrier = set(), threading.Barrier(2, timeout=10)

    def work(value):
        seen.add(threading.current_thread().name)
        if value < 2:
            barrier.wait()  # the first two calls can only finish if they run at the same time
        return value * 10

    result = [int(v) for v in Dataset.from_tensor_slices(np.arange(12)).map(work, num_parallel_calls=2)]
    assert result == [v * 10 for v in range(12)]
    assert len(seen) == 2 and all(name.startswith("fastcnn-data") for name in seen)
    unordered = Dataset.from_tensor_slices(np.arange(12)).map(lambda v: v, num_parallel_calls=AUTOTUNE,
                                                              deterministic=False)
    assert sorted(int(v) for v in unordered) == list(range(12))


def test_parallel_map_workers_run_kernels_on_one_thread_each():
    """Each worker's OpenMP thread count is its own: 1 in the workers, so N workers use N cores
    beside the training step, and the caller's count is untouched."""
    if fastcnn.get_num_threads() < 2:
        pytest.skip("one OpenMP thread by default here: nothing to tell apart")
    before = fastcnn.get_num_threads()
    counts = [int(v) for v in Dataset.range(8).map(lambda _: fastcnn.get_num_threads(), num_parallel_calls=2)]
    assert counts == [1] * 8
    assert fastcnn.get_num_threads() == before


def test_errors_inside_map_and_prefetch_reach_the_consumer():
    def fail(value):
        if value == 3:
            raise RuntimeError(f"bad element {int(value)}")
        return value

    for dataset in (Dataset.range(6).map(fail, num_parallel_calls=2), Dataset.range(6).map(fail).prefetch(2)):
        with pytest.raises(RuntimeError, match="bad element 3"):
            list(dataset)


def _data_threads():
    """The dataset threads alive now: map / decoding pools ("fastcnn-data_N") and prefetchers."""
    return [t for t in threading.enumerate() if t.name.startswith(("fastcnn-data", "fastcnn-prefetch"))]


def _fail_at(bad, error=ValueError):
    def function(value):
        if int(value) == bad:
            raise error(f"element {int(value)} is bad")
        return value * 2
    return function


@pytest.mark.parametrize("chain", ["sequential", "parallel", "parallel_unordered", "prefetched"])
def test_a_failing_map_names_the_element_and_leaves_no_thread(chain):
    before = set(threading.enumerate())
    dataset = Dataset.range(40)
    if chain == "sequential":
        dataset = dataset.map(_fail_at(17))
    elif chain == "parallel":
        dataset = dataset.map(_fail_at(17), num_parallel_calls=3)
    elif chain == "parallel_unordered":
        dataset = dataset.map(_fail_at(17), num_parallel_calls=AUTOTUNE, deterministic=False)
    else:
        dataset = dataset.map(_fail_at(17), num_parallel_calls=2).prefetch(4)
    seen = []
    with pytest.raises(ValueError, match=r"^element 17 is bad \(while mapping element 17\)$") as caught:
        for value in dataset:
            seen.append(int(value))
    assert type(caught.value) is ValueError  # the function's own exception, not a wrapper
    if chain != "parallel_unordered":
        assert seen == [2 * index for index in range(17)]  # everything before it was delivered
    # The pools and the prefetcher have ended by the time the exception arrives.
    assert set(threading.enumerate()) <= before and not _data_threads()


def test_the_element_index_counts_the_map_s_input_not_the_source_values():
    dataset = Dataset.range(100, 110).skip(2).map(_fail_at(105, ZeroDivisionError), num_parallel_calls=2)
    with pytest.raises(ZeroDivisionError, match=r"while mapping element 3\)"):
        list(dataset)
    # An upstream map's failure is named once, by the map that raised it.
    chained = Dataset.range(10).map(_fail_at(4)).map(lambda value: value + 1, num_parallel_calls=2)
    with pytest.raises(ValueError) as caught:
        list(chained)
    assert str(caught.value) == "element 4 is bad (while mapping element 4)"


def test_a_failure_without_a_plain_message_gets_a_note():
    def lookup(value):
        return {0: 1}[int(value)]

    for dataset in (Dataset.range(3).map(lookup), Dataset.range(3).map(lookup, num_parallel_calls=2)):
        with pytest.raises(KeyError) as caught:
            list(dataset)
        assert caught.value.args == (1,)  # KeyError's own message is left as it is
        if hasattr(caught.value, "add_note"):  # Python >= 3.11 prints notes under the message
            assert caught.value.__notes__ == ["while mapping element 1"]
    assert not _data_threads()


FIT_INTERRUPTED_WHILE_LOADING = """
import sys, threading, time
import numpy as np
import fastcnn
from fastcnn import callbacks, layers
from fastcnn.data import AUTOTUNE, Dataset

def slow(images, labels):
    time.sleep(0.01)  # the map's threads are busy when training is interrupted
    return images * 2.0, labels

x = np.random.default_rng(0).normal(size=(512, 8, 8, 1)).astype(np.float32)
y = np.arange(512) % 3
dataset = (Dataset.from_tensor_slices((x, y)).batch(8).map(slow, num_parallel_calls=2)
           .prefetch(AUTOTUNE))
model = fastcnn.Sequential([layers.Input((8, 8, 1)), layers.Flatten(), layers.Dense(3)])
model.compile("sgd", fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))

class Interrupt(callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 5:
            raise KeyboardInterrupt

try:
    model.fit(dataset, epochs=3, verbose=0, validation_data=dataset, callbacks=[Interrupt()])
    print("fit ended without the interrupt")
    sys.exit(2)
except KeyboardInterrupt as interrupt:
    kept = interrupt  # the traceback (and the frames holding the iterators) stays alive
left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
print("threads left:", left, flush=True)
sys.exit(1 if left else 0)
"""


def test_interrupting_fit_stops_the_dataset_threads_without_hanging(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "interrupted.py"
    script.write_text(FIT_INTERRUPTED_WHILE_LOADING)
    try:
        completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                                   cwd=str(tmp_path))
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"fit hung after a KeyboardInterrupt: {expired.stdout!r} {expired.stderr!r}")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "threads left: []" in completed.stdout


def test_prefetch_thread_stops_when_the_consumer_leaves_early():
    dataset = Dataset.range(10_000).prefetch(2)
    for index, _ in enumerate(dataset):
        if index == 3:
            break
    for _ in range(100):
        if not any(t.name == "fastcnn-prefetch" and t.is_alive() for t in threading.enumerate()):
            break
        threading.Event().wait(0.02)
    assert not any(t.name == "fastcnn-prefetch" and t.is_alive() for t in threading.enumerate())


def test_memory_and_file_caches_run_the_upstream_once(tmp_path):
    calls = []
    mapped = Dataset.from_tensor_slices({"x": X, "y": Y}).map(lambda e: (calls.append(1), e)[1])
    cached = mapped.cache()
    list(cached.take(2))  # an iteration stopped early caches nothing
    first, second = _elements(cached), _elements(cached)
    assert len(calls) == 2 + 7
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["x"], b["x"])
    path = tmp_path / "cache"
    list(mapped.cache(str(path)))
    assert path.exists() and len(calls) == 2 + 7 + 7
    reread = _elements(mapped.cache(str(path)))  # another dataset, the same file: read back, not recomputed
    assert len(calls) == 2 + 7 + 7
    assert [int(e["y"]) for e in reread] == list(range(7))
    np.testing.assert_array_equal(reread[4]["x"], X[4])
    path.write_bytes(b"not a cache")
    with pytest.raises(ValueError, match="is not a fastcnn cache"):
        list(mapped.cache(str(path)))


@pytest.mark.parametrize("call, match", [
    (lambda: Dataset.from_tensor_slices((X, Y[:3])), r"one length along their first axis. Received lengths \[3, 7\]"),
    (lambda: Dataset.from_tensor_slices(np.float32(1)), "Received a scalar"),
    (lambda: Dataset.range(3).batch(0), "batch_size=0"),
    (lambda: Dataset.range(3).shuffle(0), "buffer_size=0"),
    (lambda: Dataset.range(3).take(-2), "count=-2"),
    (lambda: Dataset.range(3).map(lambda v: v, num_parallel_calls=0), "num_parallel_calls=0"),
    (lambda: Dataset.range(3).map("double"), "map_func='double'"),
    (lambda: list(Dataset.range(4).map(lambda v: np.zeros(int(v) + 1)).batch(2)),
     r"Cannot batch elements of different shapes: \[\(1,\), \(2,\)\]"),
    (lambda: list(Dataset.range(3).filter(lambda v: np.array([True, False]))), "scalar boolean"),
])
def test_bad_arguments_raise_clearly(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_fit_evaluate_predict_consume_datasets_as_arrays(rng):
    x = rng.random((40, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 40)

    def model():
        fastcnn.utils.set_random_seed(1)
        built = fastcnn.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(4, 3, activation="relu"),
                                    layers.Flatten(), layers.Dense(3, activation="softmax")])
        built.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return built

    from_arrays, from_dataset = model(), model()
    from_arrays.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    pipeline = Dataset.from_tensor_slices((x, y)).map(lambda a, b: (a, b), num_parallel_calls=AUTOTUNE)
    from_dataset.fit(pipeline.batch(8).prefetch(AUTOTUNE), epochs=2, verbose=0)
    for a, b in zip(from_arrays.get_weights(), from_dataset.get_weights()):
        np.testing.assert_array_equal(a, b)
    # An infinite dataset with steps_per_epoch: the same batches.
    repeated = model()
    repeated.fit(Dataset.from_tensor_slices((x, y)).batch(8).repeat(), steps_per_epoch=5, epochs=2, verbose=0)
    for a, b in zip(from_arrays.get_weights(), repeated.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(from_dataset.evaluate(Dataset.from_tensor_slices((x, y)).batch(16), verbose=0),
                               from_arrays.evaluate(x, y, verbose=0), rtol=1e-6)
    np.testing.assert_array_equal(from_dataset.predict(Dataset.from_tensor_slices(x).batch(16), verbose=0),
                                  from_arrays.predict(x, verbose=0))
