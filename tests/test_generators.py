"""fit/evaluate/predict on generators, PyDataset, image datasets and tf.data: the same weights as
the equivalent arrays, Keras's epoch rules and warnings, and clear errors for bad inputs."""

import io
import warnings

import numpy as np
import pytest

from fastcnn import _progbar, callbacks, layers, models, utils

BATCH = 8


@pytest.fixture
def data():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(40, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    return x, y


def make_model(seed=0):
    utils.set_random_seed(seed)
    model = models.Sequential([
        layers.Input((6, 6, 2)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.Flatten(),
        layers.Dropout(0.3),   # draws a seed per step: both paths must draw the same ones
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit_arrays(x, y, epochs=2, **kwargs):
    model = make_model()
    utils.set_random_seed(1)
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, **kwargs)
    return model, history


def batches(x, y, w=None, repeat=1):
    for _ in range(repeat):
        for start in range(0, len(x), BATCH):
            part = slice(start, start + BATCH)
            yield (x[part], y[part]) if w is None else (x[part], y[part], w[part])


class ArrayBatches(utils.PyDataset):
    def __init__(self, x, y, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = x, y
        self.requested = []
        self.epoch_ends = 0
        self.epoch_begins = 0

    def __len__(self):
        return -(-len(self.x) // BATCH)

    def __getitem__(self, index):
        self.requested.append(index)
        return self.x[index * BATCH:(index + 1) * BATCH], self.y[index * BATCH:(index + 1) * BATCH]

    def on_epoch_begin(self):
        self.epoch_begins += 1

    def on_epoch_end(self):
        self.epoch_ends += 1


def assert_same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def fit_source(source, epochs=2, **kwargs):
    model = make_model()
    utils.set_random_seed(1)
    history = model.fit(source, epochs=epochs, shuffle=False, verbose=0, **kwargs)
    return model, history


def test_generator_pydataset_and_tf_dataset_train_like_arrays(tf, data):
    x, y = data
    reference, reference_history = fit_arrays(x, y)
    model, history = fit_source(batches(x, y, repeat=2), steps_per_epoch=5)
    assert_same_weights(model, reference)
    assert history.history == reference_history.history
    model, _ = fit_source(ArrayBatches(x, y))
    assert_same_weights(model, reference)
    model, _ = fit_source(iter(list(batches(x, y, repeat=2))), steps_per_epoch=5)   # any iterator
    assert_same_weights(model, reference)
    model, _ = fit_source(tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH))
    assert_same_weights(model, reference)


def test_sample_weights_in_batches_train_like_array_sample_weight(data):
    x, y = data
    w = np.linspace(0.1, 2.0, len(x)).astype(np.float32)
    reference, _ = fit_arrays(x, y, sample_weight=w)
    model, _ = fit_source(batches(x, y, w, repeat=2), steps_per_epoch=5)
    assert_same_weights(model, reference)


def test_class_weight_with_pydataset_trains_like_arrays(data):
    x, y = data
    reference, _ = fit_arrays(x, y, class_weight={0: 0.5, 2: 3.0})
    model, _ = fit_source(ArrayBatches(x, y), class_weight={0: 0.5, 2: 3.0})
    assert_same_weights(model, reference)


def test_image_dataset_trains_like_its_arrays(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    for label in ("a", "b", "c"):
        (tmp_path / label).mkdir()
        for i in range(7):
            Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    ds = utils.image_dataset_from_directory(str(tmp_path), image_size=(6, 6), batch_size=BATCH, shuffle=False,
                                            color_mode="rgb", verbose=False)
    x, y = ds.as_numpy()

    def model_for_images():
        utils.set_random_seed(0)
        model = models.Sequential([layers.Input((6, 6, 3)), layers.Rescaling(1 / 255), layers.Flatten(),
                                   layers.Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    reference = model_for_images()
    reference.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    model = model_for_images()
    model.fit(ds, epochs=2, verbose=0)   # shuffle=True (the default) is the dataset's own business: no warning
    assert_same_weights(model, reference)
    assert model.evaluate(ds, verbose=0) == reference.evaluate(x, y, batch_size=BATCH, verbose=0)
    np.testing.assert_array_equal(model.predict(ds, verbose=0), reference.predict(x, verbose=0))


def test_evaluate_and_predict_on_batches_equal_arrays(data):
    x, y = data
    model = make_model()
    expected = model.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    assert model.evaluate(batches(x, y), verbose=0, return_dict=True) == expected
    assert model.evaluate(ArrayBatches(x, y), verbose=0) == [expected["loss"], expected["accuracy"]]
    predictions = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(batches(x, y), verbose=0), predictions)
    np.testing.assert_array_equal(model.predict(((x[i:i + 8],) for i in range(0, 40, 8)), verbose=0), predictions)
    np.testing.assert_array_equal(model.predict(batches(x, y, repeat=5), steps=2, verbose=0), predictions[:16])
    first_two = model.evaluate(batches(x[:16], y[:16]), verbose=0)
    assert model.evaluate(batches(x, y), steps=2, verbose=0) == first_two


def test_validation_data_from_generator_and_pydataset(data):
    x, y = data
    x_val, y_val = x[:16], y[:16]
    _, reference = fit_arrays(x, y, validation_data=(x_val, y_val))
    _, history = fit_arrays(x, y, validation_data=ArrayBatches(x_val, y_val))
    assert history.history == reference.history
    _, history = fit_arrays(x, y, validation_data=batches(x_val, y_val, repeat=2), validation_steps=2)
    assert history.history == reference.history
    _, history = fit_source(ArrayBatches(x, y), validation_data=(x_val, y_val))
    assert history.history == reference.history


def test_finite_generator_without_steps_ends_the_epoch_then_warns_and_stops(data):
    x, y = data
    model = make_model()
    with pytest.warns(UserWarning, match="Your input ran out of data; interrupting training."):
        history = model.fit(batches(x, y), epochs=3, shuffle=False, verbose=0)
    assert history.epoch == [0]
    reference, _ = fit_arrays(x, y, epochs=1)
    model, _ = fit_source(batches(x, y), epochs=1)   # one epoch: no warning (pytest turns warnings into errors)
    assert_same_weights(model, reference)


def test_generator_shorter_than_steps_per_epoch_warns_and_stops(data):
    x, y = data
    counter = BatchCounter()
    model = make_model()
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        history = model.fit(batches(x, y), epochs=3, steps_per_epoch=3, shuffle=False, verbose=0,
                            callbacks=[counter])
    assert counter.per_epoch == [3, 2] and history.epoch == [0, 1]


class BatchCounter(callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.per_epoch = []

    def on_epoch_begin(self, epoch, logs=None):
        self.per_epoch.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.per_epoch[-1] += 1


def test_infinite_generator_with_steps_per_epoch(data):
    x, y = data

    def forever():
        while True:
            yield from batches(x, y)

    counter = BatchCounter()
    model = make_model()
    utils.set_random_seed(1)
    model.fit(forever(), steps_per_epoch=5, epochs=2, shuffle=False, verbose=0, callbacks=[counter])
    assert counter.per_epoch == [5, 5]
    reference, _ = fit_arrays(x, y)
    assert_same_weights(model, reference)


def test_pydataset_epoch_hooks_order_and_steps(data):
    x, y = data
    dataset = ArrayBatches(x, y)
    make_model().fit(dataset, epochs=3, shuffle=False, verbose=0)
    assert (dataset.epoch_begins, dataset.epoch_ends) == (3, 3)
    assert dataset.requested == list(range(5)) * 3
    # shuffle=True: a new batch order every epoch, reproducible with set_random_seed.
    orders = []
    for _ in range(2):
        dataset = ArrayBatches(x, y)
        utils.set_random_seed(4)
        make_model().fit(dataset, epochs=2, verbose=0)
        orders.append(dataset.requested)
    assert orders[0] == orders[1] and sorted(orders[0][:5]) == list(range(5)) and orders[0] != list(range(5)) * 2
    # steps_per_epoch below the length continues across epochs, as Keras's EpochIterator does;
    # a pass that ends before steps_per_epoch warns and the next epoch starts over.
    dataset = ArrayBatches(x, y)
    counter = BatchCounter()
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        make_model().fit(dataset, epochs=3, steps_per_epoch=3, shuffle=False, verbose=0, callbacks=[counter])
    assert dataset.requested == [0, 1, 2, 3, 4, 0, 1, 2] and counter.per_epoch == [3, 2, 3]


def test_keras_pydataset_subclass_works(tf, data):
    x, y = data

    class KerasBatches(tf.keras.utils.PyDataset):
        def __init__(self):
            super().__init__()

        def __len__(self):
            return 5

        def __getitem__(self, index):
            return x[index * BATCH:(index + 1) * BATCH], y[index * BATCH:(index + 1) * BATCH]

    reference, _ = fit_arrays(x, y)
    model, _ = fit_source(KerasBatches())
    assert_same_weights(model, reference)


def test_sequence_alias_and_infinite_pydataset(data):
    x, y = data
    assert utils.Sequence is utils.PyDataset

    class Infinite(utils.Sequence):
        @property
        def num_batches(self):
            return None

        def __getitem__(self, index):
            index %= 5
            return x[index * BATCH:(index + 1) * BATCH], y[index * BATCH:(index + 1) * BATCH]

    model = make_model()
    with pytest.raises(ValueError, match="please specify a `steps_per_epoch` value"):
        model.fit(Infinite(), epochs=1, shuffle=False, verbose=0)
    with pytest.warns(UserWarning, match="infinite PyDataset. The PyDataset is expected to already be shuffled"):
        model.fit(Infinite(), epochs=1, steps_per_epoch=2, verbose=0)
    reference, _ = fit_arrays(x, y)
    model, _ = fit_source(Infinite(), steps_per_epoch=5)
    assert_same_weights(model, reference)


def test_shuffle_warning_for_generators_like_keras(data):
    x, y = data
    with pytest.warns(UserWarning, match="`shuffle=True` was passed, but will be ignored since the data `x` was "
                                         "provided as a generator."):
        make_model().fit(batches(x, y), verbose=0)


def test_unknown_length_progress_bar_like_keras():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = _progbar.Progbar(None, stream=stream)
    bar.update(7, [("loss", 0.25)])
    assert stream.getvalue().startswith("\r      7/Unknown \x1b[1m0s\x1b[0m")
    assert stream.getvalue().rstrip().endswith("- loss: 0.2500")


def test_fit_on_generator_prints_the_learnt_count(data, capsys):
    x, y = data
    make_model().fit(batches(x, y), epochs=1, shuffle=False, verbose=1)
    assert capsys.readouterr().out.startswith("5/5 ━━━━━━━━━━━━━━━━━━━━")


@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: m.fit(batches(x, y), batch_size=8, verbose=0),
     r"The `batch_size` argument must not be specified for the given input type.*Received input: builtins\.generator, "
     r"batch_size: 8"),
    (lambda m, x, y: m.fit(batches(x, y), y, shuffle=False, verbose=0),
     r"When providing `x` as a generator, `y` should not be passed\. Instead, the targets should be included as part "
     r"of the generator\."),
    (lambda m, x, y: m.fit(ArrayBatches(x, y), sample_weight=np.ones(40), verbose=0),
     r"When providing `x` as a PyDataset, `sample_weights` should not be passed"),
    (lambda m, x, y: m.fit(batches(x, y), class_weight={0: 1.0}, shuffle=False, verbose=0),
     r"Argument `class_weight` is not supported for Python generator inputs\. Received: class_weight=\{0: 1\.0\}"),
    (lambda m, x, y: m.fit(ArrayBatches(x, y), validation_split=0.2, verbose=0),
     r"Argument `validation_split` is only supported for tensors or NumPy arrays\. Found incompatible type in the "
     r"input: \[<class '.*ArrayBatches'>\]"),
    (lambda m, x, y: m.fit(x, y, steps_per_epoch=2, verbose=0),
     r"`steps_per_epoch` applies to generator, PyDataset and dataset inputs.*Received: steps_per_epoch=2"),
    (lambda m, x, y: m.fit(x, y, validation_data=(x, y), validation_steps=2, verbose=0),
     r"`validation_steps` applies to generator.*Received: validation_steps=2"),
    (lambda m, x, y: m.fit(x, y, validation_data=ArrayBatches(x, y), validation_batch_size=4, verbose=0),
     r"The `validation_batch_size` argument must not be specified for the given input type"),
    (lambda m, x, y: m.evaluate(x, y, steps=2, verbose=0), r"`steps` applies to generator.*Received: steps=2"),
    (lambda m, x, y: m.predict(x, steps=2, verbose=0), r"`steps` applies to generator.*Received: steps=2"),
    (lambda m, x, y: m.predict(iter([x[:8]]), verbose=0),
     r"When passing a Python generator to a fastcnn model, the generator must return a tuple"),
    (lambda m, x, y: m.fit(((xb,) for xb in [x[:8]]), shuffle=False, verbose=0),
     r"each batch of `x` must be \(inputs, targets\)"),
    (lambda m, x, y: m.fit(iter([]), shuffle=False, verbose=0),
     r"it must yield at least one batch\. Received an empty generator as `x`"),
    (lambda m, x, y: m.fit(batches(x, y), steps_per_epoch=0, shuffle=False, verbose=0),
     r"`steps_per_epoch` must be a positive integer or None\. Received: steps_per_epoch=0"),
    (lambda m, x, y: m.fit(iter([(x[:8], y[:8], None, None)]), shuffle=False, verbose=0),
     r"Received a tuple of 4 elements from `x`"),
    (lambda m, x, y: m.fit(iter([(x[:8, :5], y[:8])]), shuffle=False, verbose=0),
     r"expected shape=\(None, 6, 6, 2\), found shape=\(None, 5, 6, 2\)"),
])
def test_bad_batch_inputs_raise_clear_errors(data, call, message):
    x, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=message):
            call(make_model(), x, y)


def test_normalize_matches_keras(tf):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 5))
    x[1] = 0.0
    for kwargs in ({}, {"order": 1}, {"axis": 1}, {"axis": -1, "order": np.inf}):
        np.testing.assert_allclose(utils.normalize(x, **kwargs), tf.keras.utils.normalize(x, **kwargs), rtol=1e-15)
    cube = rng.normal(size=(2, 3, 4)).astype(np.float32)
    result = utils.normalize(cube, axis=1)
    np.testing.assert_allclose(result, tf.keras.utils.normalize(cube, axis=1), rtol=1e-6)
    assert result.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(utils.normalize(x, axis=0), axis=0)[[0, 2, 3, 4]], 1.0)
    with pytest.raises(ValueError, match="Received: axis=3"):
        utils.normalize(x, axis=3)


def test_to_categorical_matches_keras(tf):
    for labels, classes in (([0, 2, 1, 2], None), (np.array([[1], [0]]), 3), (np.array([[1, 2], [0, 1]]), None),
                            (np.uint8(2), 4), ([1, 0], 0)):
        expected = tf.keras.utils.to_categorical(labels, classes)
        actual = utils.to_categorical(labels, classes)
        # float32 by design (the dtype fit uses); Keras returns float64 with the same values.
        assert actual.dtype == np.float32 and actual.shape == expected.shape
        np.testing.assert_array_equal(actual, expected)
