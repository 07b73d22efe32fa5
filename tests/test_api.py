"""The Keras-compatible Python API: what a Keras user relies on when swapping
``from tensorflow.keras import layers, models`` for ``from fastcnn import layers, models``.

Small synthetic data and small models throughout; TensorFlow/Keras (a required test dependency) is
imported lazily, inside the tests that compare against it, or run in a subprocess where a fresh
process matters (automatic layer names, summary text at a fixed terminal width).
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastcnn
from fastcnn import callbacks, datasets, layers, losses, models, optimizers, utils


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _tf():
    """TensorFlow, imported on first use (quiet)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow

    return tensorflow


def _small_cnn(input_shape=(8, 8, 1), classes=4, dropout=None, name=None):
    stack = [
        layers.Conv2D(4, (3, 3), activation="relu", input_shape=input_shape),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
    ]
    if dropout is not None:
        stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(classes, activation="softmax"))
    return models.Sequential(stack, name=name)


def _data(rng, n=40, shape=(8, 8, 1), classes=4):
    x = rng.random((n,) + shape, dtype=np.float32)
    y = rng.integers(0, classes, n)
    return x, y


def _compiled(model, optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics) if metrics else None)
    return model


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def _weights_equal(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


# --------------------------------------------------------------------------------------------
# import surface
# --------------------------------------------------------------------------------------------

def test_public_imports_and_version():
    from fastcnn import callbacks as c, datasets as d, layers as l, losses as lo  # noqa: F401
    from fastcnn import models as m, optimizers as o, utils as u  # noqa: F401

    assert isinstance(fastcnn.__version__, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", fastcnn.__version__)
    import importlib.metadata

    assert importlib.metadata.version("fastcnn") == fastcnn.__version__
    assert models.Sequential is fastcnn.Sequential
    for name in ("Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout", "Activation", "Input",
                 "InputLayer", "Layer"):
        assert hasattr(layers, name), name
    assert layers.MaxPool2D is layers.MaxPooling2D
    assert layers.Convolution2D is layers.Conv2D
    assert callable(datasets.mnist.load_data)
    assert callable(utils.to_categorical) and callable(utils.set_random_seed)
    assert issubclass(callbacks.History, callbacks.Callback)


# --------------------------------------------------------------------------------------------
# Sequential structure
# --------------------------------------------------------------------------------------------

def test_sequential_list_and_add_are_equivalent():
    listed = models.Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(9, 9, 2)),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])
    added = models.Sequential()
    added.add(layers.Conv2D(4, 3, activation="relu", input_shape=(9, 9, 2)))
    added.add(layers.MaxPooling2D())
    added.add(layers.Flatten())
    added.add(layers.Dense(3, activation="softmax"))
    for model in (listed, added):
        assert model.built
        assert model.input_shape == (None, 9, 9, 2)
        assert model.output_shape == (None, 3)
        assert len(model.layers) == 4
        assert model.count_params() == (3 * 3 * 2 * 4 + 4) + (3 * 3 * 4 * 3 + 3)
        assert [w.shape for w in model.get_weights()] == [(3, 3, 2, 4), (4,), (36, 3), (3,)]
    added.set_weights(listed.get_weights())
    x = np.random.default_rng(0).random((5, 9, 9, 2), dtype=np.float32)
    np.testing.assert_array_equal(listed.predict(x, verbose=0), added.predict(x, verbose=0))


def test_input_as_first_entry():
    model = models.Sequential([layers.Input(shape=(10, 10, 3)), layers.Conv2D(2, 3), layers.Flatten(),
                               layers.Dense(5)])
    assert model.built
    assert model.input_shape == (None, 10, 10, 3)
    assert len(model.layers) == 3  # the Input is not a layer, as in Keras
    assert isinstance(model.layers[0], layers.Conv2D)
    assert model.layers[0].output_shape == (None, 8, 8, 2)
    assert model.output_shape == (None, 5)
    assert model.count_params() == 3 * 3 * 3 * 2 + 2 + 128 * 5 + 5

    added = models.Sequential()
    added.add(layers.Input(shape=(6,)))
    added.add(layers.Dense(4, activation="relu"))
    assert added.built and added.output_shape == (None, 4)
    added.add(layers.Dense(2))
    assert added.built and added.output_shape == (None, 2)
    assert added.count_params() == 6 * 4 + 4 + 4 * 2 + 2
    with pytest.raises(ValueError):
        added.add(layers.Input(shape=(3,)))  # an Input only as the first entry


def test_lazy_build_from_first_data(rng):
    model = models.Sequential([layers.Conv2D(3, (3, 3), activation="relu"), layers.Flatten(),
                               layers.Dense(4, activation="softmax")])
    assert not model.built
    with pytest.raises(ValueError):
        model.count_params()
    before = []
    model.summary(print_fn=lambda text, **kwargs: before.append(text))
    text = "\n".join(before)
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert len(rows) == 3
    for row in rows:
        cells = [cell.strip() for cell in row.strip("│").split("│")]
        assert cells[1] == "?" and cells[2] == "0 (unbuilt)", row
    assert " Total params: 0 (0.00 B)" in text.splitlines()

    x, y = _data(rng, n=12, shape=(7, 7, 2))
    _compiled(model).fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert model.built
    assert model.input_shape == (None, 7, 7, 2)
    assert model.output_shape == (None, 4)
    after = []
    model.summary(print_fn=lambda text, **kwargs: after.append(text))
    text = "\n".join(after)
    assert "(None, 5, 5, 3)" in text and "(None, 75)" in text and "(None, 4)" in text
    assert "unbuilt" not in text and "?" not in text
    total = 2 * 3 * 3 * 3 + 3 + 75 * 4 + 4
    assert model.count_params() == total
    assert f" Trainable params: {total:,} " in text

    # predict also builds, and a second, differently shaped input is refused.
    other = models.Sequential([layers.Flatten(), layers.Dense(2)])
    assert other.predict(np.ones((3, 4, 5)), verbose=0).shape == (3, 2)
    assert other.input_shape == (None, 4, 5)
    assert other.count_params() == 20 * 2 + 2
    with pytest.raises(ValueError):
        other.predict(np.ones((3, 4, 6)), verbose=0)


def test_pop_layers_and_get_layer():
    conv = layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1), name="features")
    dense = layers.Dense(10, activation="softmax", name="head")
    model = models.Sequential([conv, layers.MaxPooling2D(), layers.Flatten(), dense])
    assert model.layers[0] is conv and model.layers[-1] is dense
    assert model.get_layer("features") is conv
    assert model.get_layer("head") is dense
    assert model.get_layer(index=0) is conv
    assert model.get_layer(index=-1) is dense
    with pytest.raises(ValueError):
        model.get_layer("nope")
    with pytest.raises(ValueError):
        model.get_layer(index=4)
    model.layers.append("not a layer")  # `layers` is a copy, as in Keras
    assert len(model.layers) == 4

    params_before = model.count_params()
    popped = model.pop()
    assert popped is dense
    assert len(model.layers) == 3
    assert model.output_shape == (None, 36)
    assert model.count_params() == params_before - (36 * 10 + 10)
    model.add(layers.Dense(2, activation="softmax"))
    assert model.output_shape == (None, 2)
    assert model.predict(np.zeros((2, 8, 8, 1)), verbose=0).shape == (2, 2)

    with pytest.raises(ValueError):  # names in a model are unique
        model.add(layers.Dense(3, name="features"))


def test_count_params_example1():
    model = models.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    assert model.count_params() == 34826
    assert [layer.count_params() for layer in model.layers] == [320, 0, 18496, 0, 0, 16010]
    assert [layer.output_shape for layer in model.layers] == [
        (None, 26, 26, 32), (None, 13, 13, 32), (None, 11, 11, 64), (None, 5, 5, 64), (None, 1600), (None, 10)]


# --------------------------------------------------------------------------------------------
# Names and summary text against Keras, each in a fresh process (counters start at zero)
# --------------------------------------------------------------------------------------------

_REFERENCE_SCRIPT = textwrap.dedent('''
    import json, os, sys, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    if sys.argv[1] == "keras":
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        from tensorflow import keras
        layers, models, optimizers = keras.layers, keras.models, keras.optimizers
    else:
        from fastcnn import layers, models, optimizers

    def capture(model):
        texts = []
        model.summary(print_fn=lambda text, **kwargs: texts.append(text))
        return texts

    out = {}
    rng = np.random.default_rng(0)
    # The seed article's Example 1.
    model = models.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    out["names"] = [model.name] + [layer.name for layer in model.layers]
    out["summary"] = capture(model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(rng.random((16, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 16), epochs=1,
              batch_size=8, verbose=0)
    out["summary_adam"] = capture(model)

    # A lazily built model (no input shape), before any data.
    lazy = models.Sequential([layers.Conv2D(4, (3, 3)), layers.MaxPooling2D(), layers.Activation("relu"),
                              layers.Flatten(), layers.Dropout(0.2), layers.Dense(3, activation="softmax")])
    out["names_lazy"] = [lazy.name] + [layer.name for layer in lazy.layers]
    out["summary_unbuilt"] = capture(lazy)

    # SGD keeps no slots: Keras still counts its iterations (int64) and learning rate (float32).
    sgd = models.Sequential([layers.Input(shape=(6,)), layers.Dense(5, activation="relu"),
                             layers.Dense(3, activation="softmax")])
    sgd.compile(optimizer=optimizers.SGD(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    sgd.fit(rng.random((8, 6), dtype=np.float32), rng.integers(0, 3, 8), epochs=1, batch_size=4, verbose=0)
    out["names_sgd"] = [sgd.name] + [layer.name for layer in sgd.layers]
    out["summary_sgd"] = capture(sgd)

    more = [layers.Conv2D(1, 1), layers.Conv2D(1, 1), layers.Dense(1), layers.MaxPooling2D(),
            layers.Flatten(), layers.Dropout(0.1), layers.Activation("relu")]
    out["names_more"] = [layer.name for layer in more]
    print("JSON:" + json.dumps(out))
''')


def _run_reference(backend_name):
    env = dict(os.environ, COLUMNS="80", LINES="40", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-c", _REFERENCE_SCRIPT, backend_name], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__)))


def _collect(process):
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    lines = [line for line in stdout.splitlines() if line.startswith("JSON:")]
    assert lines, stdout[-2000:] + stderr[-2000:]
    return json.loads(lines[-1][len("JSON:"):])


@pytest.fixture(scope="module")
def reference():
    """The same script run by Keras and by fastcnn, each in a fresh process with COLUMNS=80."""
    keras_process = _run_reference("keras")
    fastcnn_process = _run_reference("fastcnn")
    return {"fastcnn": _collect(fastcnn_process), "keras": _collect(keras_process)}


def _lines(texts):
    return "".join(texts).splitlines()


def test_automatic_names_match_keras(reference):
    ours, theirs = reference["fastcnn"], reference["keras"]
    assert ours["names"] == ["sequential", "conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1",
                             "flatten", "dense"]
    assert ours["names_lazy"] == ["sequential_1", "conv2d_2", "max_pooling2d_2", "activation", "flatten_1",
                                  "dropout", "dense_1"]
    for key in ("names", "names_lazy", "names_sgd", "names_more"):
        assert ours[key] == theirs[key], key


def test_summary_example1_matches_keras_line_for_line(reference):
    ours, theirs = _lines(reference["fastcnn"]["summary"]), _lines(reference["keras"]["summary"])
    assert ours == theirs
    assert " Total params: 34,826 (136.04 KB)" in ours


def test_summary_after_fit_with_adam_matches_keras(reference):
    ours, theirs = _lines(reference["fastcnn"]["summary_adam"]), _lines(reference["keras"]["summary_adam"])
    assert " Optimizer params: 69,654 (272.09 KB)" in theirs
    assert [line for line in ours if line.startswith(" Optimizer params:")] == \
        [" Optimizer params: 69,654 (272.09 KB)"]
    assert ours == theirs  # includes the Total params line and its memory size


def test_summary_after_fit_with_sgd_matches_keras(reference):
    ours, theirs = _lines(reference["fastcnn"]["summary_sgd"]), _lines(reference["keras"]["summary_sgd"])
    assert ours == theirs


def test_summary_unbuilt_matches_keras(reference):
    ours, theirs = _lines(reference["fastcnn"]["summary_unbuilt"]), _lines(reference["keras"]["summary_unbuilt"])
    assert ours == theirs


def test_summary_print_fn_receives_keras_text(reference):
    """print_fn gets the whole table as one string, exactly the string Keras passes (which ends
    with a newline, so ``print_fn=file.write`` writes complete lines)."""
    ours, theirs = reference["fastcnn"]["summary"], reference["keras"]["summary"]
    assert len(ours) == len(theirs) == 1
    assert ours[0] == theirs[0]


def test_summary_prints_to_stdout_without_print_fn(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    model = _small_cnn(name="printed")
    captured = []
    model.summary(print_fn=lambda text, **kwargs: captured.append(text))
    capsys.readouterr()
    model.summary()
    out = capsys.readouterr().out
    assert out.splitlines() == "".join(captured).splitlines()
    assert out.startswith('Model: "printed"\n')
    assert out.endswith("\n")


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------

def _transfer_models(tf):
    keras = tf.keras
    keras.utils.set_random_seed(0)  # Keras's initial weights, reproducibly
    spec = [
        ("Conv2D", dict(filters=6, kernel_size=3, padding="same", activation="relu")),
        ("MaxPooling2D", dict(pool_size=2)),
        ("Conv2D", dict(filters=5, kernel_size=(3, 2), activation="relu")),
        ("Flatten", {}),
        ("Dropout", dict(rate=0.3)),
        ("Dense", dict(units=8, activation="relu")),
        ("Dense", dict(units=5, activation="softmax")),
    ]
    keras_model = keras.Sequential([keras.Input(shape=(10, 10, 2))]
                                   + [getattr(keras.layers, kind)(**kw) for kind, kw in spec])
    ours = models.Sequential([layers.Input(shape=(10, 10, 2))]
                             + [getattr(layers, kind)(**kw) for kind, kw in spec])
    return keras_model, ours


def _assert_close_relative(actual, expected, tolerance=1e-5):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    error = float(np.max(np.abs(actual - expected))) / scale
    assert error <= tolerance, f"relative error {error:.3e} > {tolerance:.0e}"


def test_weights_keras_order_and_shapes():
    model = models.Sequential([
        layers.Conv2D(6, (3, 2), input_shape=(9, 8, 3)),
        layers.MaxPooling2D(),
        layers.Conv2D(4, 2, use_bias=False),
        layers.Flatten(),
        layers.Dense(7),
        layers.Dense(2, use_bias=False),
    ])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 2, 3, 6), (6,), (2, 2, 6, 4), (16, 7), (7,), (7, 2)]
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert [v.shape for v in model.weights] == shapes
    assert [v.path for v in model.weights][:2] == [f"{model.layers[0].name}/kernel", f"{model.layers[0].name}/bias"]
    conv = model.layers[0]
    assert [w.shape for w in conv.get_weights()] == [(3, 2, 3, 6), (6,)]
    assert conv.kernel.shape == (3, 2, 3, 6) and conv.bias.shape == (6,)
    np.testing.assert_array_equal(conv.bias.numpy(), np.zeros(6, np.float32))  # zeros bias init
    assert model.layers[2].bias is None
    assert model.layers[1].get_weights() == [] and model.layers[3].get_weights() == []


def test_weights_round_trip_and_assign(rng):
    model = _small_cnn()
    x = rng.random((6, 8, 8, 1), dtype=np.float32)
    original = model.get_weights()
    new = [rng.standard_normal(w.shape).astype(np.float32) for w in original]
    model.set_weights(new)
    assert _weights_equal(model.get_weights(), new)
    # get_weights returns copies.
    got = model.get_weights()
    got[0][...] = 0
    assert _weights_equal(model.get_weights(), new)
    first = model.predict(x, verbose=0)

    # per layer
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    np.testing.assert_array_equal(kernel, dense.kernel.numpy())
    np.testing.assert_array_equal(bias, dense.bias.numpy())
    dense.set_weights([kernel * 0, bias * 0])
    np.testing.assert_allclose(model.predict(x, verbose=0), np.full((6, 4), 0.25, np.float32), rtol=1e-6)
    dense.kernel.assign(kernel)
    dense.bias.assign(bias)
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)
    np.testing.assert_array_equal(np.asarray(dense.kernel), kernel)

    # float64 values are accepted, shape mismatches refused (nothing written)
    model.set_weights([w.astype(np.float64) for w in original])
    assert _weights_equal(model.get_weights(), original)
    with pytest.raises(ValueError):
        model.set_weights(new[:-1])
    bad = list(new)
    bad[-1] = np.zeros((5,), np.float32)
    with pytest.raises(ValueError):
        model.set_weights(bad)
    assert _weights_equal(model.get_weights(), original)
    with pytest.raises(ValueError):
        dense.kernel.assign(np.zeros((3, 3)))


def test_weights_from_keras_give_identical_predictions_and_back(rng):
    tf = _tf()
    keras_model, ours = _transfer_models(tf)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in keras_model.get_weights()]
    x = rng.random((9, 10, 10, 2), dtype=np.float32)

    # Keras -> fastcnn (with non-zero biases)
    keras_weights = [w + rng.normal(0, 0.1, w.shape).astype(np.float32) if w.ndim == 1 else w
                     for w in keras_model.get_weights()]
    keras_model.set_weights(keras_weights)
    ours.set_weights(keras_model.get_weights())
    _assert_close_relative(ours.predict(x, verbose=0), keras_model.predict(x, verbose=0))

    # fastcnn -> Keras
    _, fresh = _transfer_models(tf)
    fresh_weights = [w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in fresh.get_weights()]
    fresh.set_weights(fresh_weights)
    keras_model.set_weights(fresh.get_weights())
    _assert_close_relative(keras_model.predict(x, verbose=0), fresh.predict(x, verbose=0))
    for a, b in zip(keras_model.get_weights(), fresh_weights):
        np.testing.assert_array_equal(a, b)


def test_training_matches_keras_sgd_and_adam(rng):
    """The same weights and data, shuffle=False: two epochs of updates as Keras makes them.

    Adam runs with epsilon=1e-3 here: with Keras's default 1e-7, a parameter whose gradient is
    ~1e-6 (or a rounding residue of 0) moves by lr * g / (|g| + 1e-7), which turns float32
    summation-order differences into percent-level weight differences (seen, rarely, against
    Keras itself). A larger epsilon keeps the comparison tight and still checks where epsilon and
    the bias corrections enter Keras's formula."""
    tf = _tf()
    x = rng.random((20, 10, 10, 2), dtype=np.float32)
    y = rng.integers(0, 5, 20)
    for make_keras, make_ours in (
        (lambda: tf.keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
         lambda: optimizers.SGD(learning_rate=0.1, momentum=0.9)),
        (lambda: tf.keras.optimizers.SGD(learning_rate=0.05, momentum=0.5, nesterov=True),
         lambda: optimizers.SGD(learning_rate=0.05, momentum=0.5, nesterov=True)),
        (lambda: tf.keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-3),
         lambda: optimizers.Adam(learning_rate=0.01, epsilon=1e-3)),
        (lambda: tf.keras.optimizers.RMSprop(learning_rate=0.01),
         lambda: optimizers.RMSprop(learning_rate=0.01)),
    ):
        keras_model, ours = _transfer_models(tf)
        # without the dropout (random masks differ between the libraries)
        keras_model = tf.keras.Sequential([tf.keras.Input(shape=(10, 10, 2))]
                                          + [l for l in keras_model.layers if not isinstance(l, tf.keras.layers.Dropout)])
        ours = models.Sequential([layers.Input(shape=(10, 10, 2))]
                                 + [l for l in ours.layers if not isinstance(l, layers.Dropout)])
        ours.set_weights(keras_model.get_weights())
        keras_model.compile(optimizer=make_keras(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        ours.compile(optimizer=make_ours(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        keras_history = keras_model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        our_history = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        assert int(ours.optimizer.iterations) == int(keras_model.optimizer.iterations) == 6
        for a, b in zip(ours.get_weights(), keras_model.get_weights()):
            _assert_close_relative(a, b, 1e-4)
        np.testing.assert_allclose(our_history.history["loss"], keras_history.history["loss"], rtol=1e-4)
        np.testing.assert_allclose(our_history.history["accuracy"], keras_history.history["accuracy"], atol=1e-6)


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------

def test_fit_history_keys_with_validation(rng):
    x, y = _data(rng, n=40)
    model = _compiled(_small_cnn())
    history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
    assert isinstance(history, callbacks.History)
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(values) == 3 for values in history.history.values())
    assert history.epoch == [0, 1, 2]
    assert model.history is history
    assert all(isinstance(v, float) for values in history.history.values() for v in values)

    xv, yv = _data(rng, n=10)
    history = model.fit(x, y, epochs=2, batch_size=8, validation_data=(xv, yv), verbose=0)
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    loss, accuracy = model.evaluate(xv, yv, batch_size=8, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(accuracy, rel=1e-6)

    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert list(history.history) == ["accuracy", "loss"]

    # initial_epoch: epochs counts up to `epochs`, as in Keras
    history = model.fit(x, y, epochs=5, initial_epoch=3, batch_size=8, verbose=0)
    assert history.epoch == [3, 4] and len(history.history["loss"]) == 2


def test_validation_split_takes_the_last_samples_before_shuffling(rng):
    n, classes, split_at = 50, 4, 40  # validation_split=0.2 -> the last 10 samples
    x = rng.random((n, 8, 8, 1), dtype=np.float32)
    # the tail's labels are all the last class, which the head never has
    y = np.concatenate([rng.integers(0, classes - 1, split_at), np.full(n - split_at, classes - 1)])
    utils.set_random_seed(2)  # fixed initial weights: the head/tail comparison below is deterministic
    initial = _small_cnn(classes=classes).get_weights()

    def fit(x_fit, y_fit, seed, **kwargs):
        model = _compiled(_small_cnn(classes=classes), optimizer="adam")
        model.set_weights(initial)
        utils.set_random_seed(seed)
        history = model.fit(x_fit, y_fit, epochs=2, batch_size=7, verbose=0, **kwargs)
        return model, history

    # Training on x with validation_split=0.2 is training on the first 80%: the same shuffles of
    # those 40 samples, bitwise the same weights, whether shuffled or not.
    for shuffle in (True, False):
        split_model, split_history = fit(x, y, 11, validation_split=0.2, shuffle=shuffle)
        head_model, head_history = fit(x[:split_at], y[:split_at], 11, shuffle=shuffle)
        assert _weights_equal(split_model.get_weights(), head_model.get_weights()), shuffle
        assert split_history.history["loss"] == head_history.history["loss"]
        assert split_history.history["accuracy"] == head_history.history["accuracy"]
        # ... and the validation metrics are those of the tail (evaluated after the last epoch)
        tail = split_model.evaluate(x[split_at:], y[split_at:], batch_size=7, return_dict=True, verbose=0)
        assert split_history.history["val_loss"][-1] == pytest.approx(tail["loss"], rel=1e-6)
        assert split_history.history["val_accuracy"][-1] == pytest.approx(tail["accuracy"], abs=1e-9)
        head = split_model.evaluate(x[:n - split_at], y[:n - split_at], batch_size=7, return_dict=True, verbose=0)
        assert split_history.history["val_loss"][-1] != pytest.approx(head["loss"], rel=1e-3)

    # validation_split is applied before shuffling also when the tail is poisoned: had any tail
    # sample been trained on, the weights would differ from training on the head alone
    poisoned = x.copy()
    poisoned[split_at:] = 1e3
    split_model, _ = fit(poisoned, y, 3, validation_split=0.2, shuffle=True)
    head_model, _ = fit(x[:split_at], y[:split_at], 3, shuffle=True)
    assert _weights_equal(split_model.get_weights(), head_model.get_weights())


def test_shuffle_false_is_deterministic(rng):
    x, y = _data(rng, n=45)
    initial = _small_cnn().get_weights()
    results = []
    for _ in range(2):
        model = _compiled(_small_cnn(), optimizer=optimizers.Adam(learning_rate=0.01))
        model.set_weights(initial)
        history = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        results.append((model.get_weights(), history.history))
    assert _weights_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]


def test_set_random_seed_reproduces_init_shuffle_and_dropout(rng):
    x, y = _data(rng, n=48)

    def run(seed):
        utils.set_random_seed(seed)
        model = _compiled(_small_cnn(dropout=0.5), optimizer="adam")
        initial = model.get_weights()
        history = model.fit(x, y, epochs=2, batch_size=8, shuffle=True, validation_split=0.25, verbose=0)
        return initial, model.get_weights(), history.history

    first, second, other = run(123), run(123), run(124)
    assert _weights_equal(first[0], second[0])
    assert _weights_equal(first[1], second[1])
    assert first[2] == second[2]
    assert not _weights_equal(first[0], other[0])
    assert not _weights_equal(first[1], other[1])

    # Same initial weights, same seed for shuffling+dropout: identical; the seed drives both.
    def run_from(initial, seed, shuffle):
        model = _compiled(_small_cnn(dropout=0.5), optimizer="adam")
        model.set_weights(initial)
        utils.set_random_seed(seed)
        model.fit(x, y, epochs=1, batch_size=8, shuffle=shuffle, verbose=0)
        return model.get_weights()

    assert _weights_equal(run_from(first[0], 5, True), run_from(first[0], 5, True))
    assert not _weights_equal(run_from(first[0], 5, True), run_from(first[0], 6, True))
    # shuffle=False: only the dropout masks depend on the seed
    assert not _weights_equal(run_from(first[0], 5, False), run_from(first[0], 6, False))


def test_verbose_0_prints_nothing(rng, capsys):
    x, y = _data(rng, n=20)
    model = _compiled(_small_cnn())
    model.fit(x, y, epochs=2, batch_size=8, validation_split=0.2, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


_VERBOSE2_LINE = re.compile(
    r"^\d+/\d+ - \d+s - \d+(ms|s|us)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4}"
    r"( - val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4})?$"
)


def test_verbose_2_one_line_per_epoch(rng, capsys):
    x, y = _data(rng, n=40)
    model = _compiled(_small_cnn())
    capsys.readouterr()
    model.fit(x, y, epochs=2, batch_size=8, validation_split=0.2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4, lines
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    for line in (lines[1], lines[3]):
        assert _VERBOSE2_LINE.match(line), line
        assert line.startswith("4/4 - ")
        assert "val_accuracy" in line

    model.fit(x, y, epochs=1, batch_size=16, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines  # no "Epoch 1/1" header for a single epoch, as in Keras
    assert _VERBOSE2_LINE.match(lines[0]) and lines[0].startswith("3/3 - ") and "val_" not in lines[0]


def test_verbose_1_to_a_file_prints_the_final_bar(rng, capsys):
    x, y = _data(rng, n=32)
    model = _compiled(_small_cnn())
    capsys.readouterr()
    model.fit(x, y, epochs=2, batch_size=8, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    bar = re.compile(r"^4/4 ━{20} \d+s \d+(ms|s|us)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4}$")
    assert lines[0] == "Epoch 1/2"
    assert "Epoch 2/2" in lines
    bars = [line for line in lines if line.startswith("4/4 ")]
    assert len(bars) == 2, lines
    assert all(bar.match(line) for line in bars), bars
    assert lines[-1] == bars[-1]
    assert "\x1b" not in "".join(lines) and "\r" not in "".join(lines)  # no escape codes off a terminal
    # fit's default verbose ('auto') is 1
    model.fit(x, y, epochs=1, batch_size=8)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 1 and bar.match(lines[-1])
    # evaluate and predict draw one bar each
    model.evaluate(x, y, batch_size=8, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and bar.match(lines[0]), lines
    model.predict(x, batch_size=16, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and re.match(r"^2/2 ━{20} \d+s \d+(ms|s|us)/step$", lines[0]), lines


# --------------------------------------------------------------------------------------------
# callbacks
# --------------------------------------------------------------------------------------------

def _recorder(base):
    class Recorder(base):
        def __init__(self):
            super().__init__()
            self.events = []
            self.batch_logs = []
            self.epoch_logs = []
            self.models = set()

        def _record(self, name, logs=None):
            self.events.append(name)
            self.models.add(id(self.model))

        def on_train_begin(self, logs=None): self._record("on_train_begin")
        def on_train_end(self, logs=None): self._record("on_train_end")
        def on_epoch_begin(self, epoch, logs=None): self._record(f"on_epoch_begin:{epoch}")

        def on_epoch_end(self, epoch, logs=None):
            self._record(f"on_epoch_end:{epoch}")
            self.epoch_logs.append(dict(logs or {}))

        def on_train_batch_begin(self, batch, logs=None): self._record(f"on_train_batch_begin:{batch}")

        def on_train_batch_end(self, batch, logs=None):
            self._record(f"on_train_batch_end:{batch}")
            self.batch_logs.append(dict(logs or {}))

        def on_test_begin(self, logs=None): self._record("on_test_begin")
        def on_test_end(self, logs=None): self._record("on_test_end")
        def on_test_batch_begin(self, batch, logs=None): self._record(f"on_test_batch_begin:{batch}")
        def on_test_batch_end(self, batch, logs=None): self._record(f"on_test_batch_end:{batch}")
        def on_predict_begin(self, logs=None): self._record("on_predict_begin")
        def on_predict_end(self, logs=None): self._record("on_predict_end")
        def on_predict_batch_begin(self, batch, logs=None): self._record(f"on_predict_batch_begin:{batch}")
        def on_predict_batch_end(self, batch, logs=None): self._record(f"on_predict_batch_end:{batch}")

    return Recorder()


def test_callback_hook_order_and_logs(rng):
    x, y = _data(rng, n=20)
    model = _compiled(_small_cnn())
    recorder = _recorder(callbacks.Callback)
    model.fit(x, y, epochs=2, batch_size=8, callbacks=[recorder], verbose=0)
    expected = ["on_train_begin"]
    for epoch in range(2):
        expected.append(f"on_epoch_begin:{epoch}")
        for batch in range(3):
            expected += [f"on_train_batch_begin:{batch}", f"on_train_batch_end:{batch}"]
        expected.append(f"on_epoch_end:{epoch}")
    expected.append("on_train_end")
    assert recorder.events == expected
    assert recorder.models == {id(model)}
    assert recorder.model is model
    assert recorder.params["epochs"] == 2 and recorder.params["steps"] == 3
    for logs in recorder.batch_logs + recorder.epoch_logs:
        assert set(logs) == {"loss", "accuracy"}
        assert np.isfinite(logs["loss"]) and 0.0 <= logs["accuracy"] <= 1.0
    # epoch logs are those History records
    history = model.history.history
    assert [logs["loss"] for logs in recorder.epoch_logs] == history["loss"]


def _keras_twin(tf):
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(8, 8, 1)), tf.keras.layers.Conv2D(4, 3, activation="relu"),
        tf.keras.layers.MaxPooling2D(), tf.keras.layers.Flatten(), tf.keras.layers.Dense(4, activation="softmax"),
    ])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _recorded(tf, run):
    recorders = {}
    for key, model, base in (("keras", _keras_twin(tf), tf.keras.callbacks.Callback),
                             ("fastcnn", _compiled(_small_cnn()), callbacks.Callback)):
        recorder = _recorder(base)
        run(model, recorder)
        recorders[key] = recorder
    return recorders["fastcnn"], recorders["keras"]


def test_callback_hooks_in_evaluate_and_predict_match_keras(rng):
    x, y = _data(rng, n=20)

    def run(model, recorder):
        model.evaluate(x, y, batch_size=8, callbacks=[recorder], verbose=0)
        recorder.events.append("|")
        model.predict(x, batch_size=8, callbacks=[recorder], verbose=0)

    ours, theirs = _recorded(_tf(), run)
    assert ours.events == theirs.events
    assert ours.events[:8] == ["on_test_begin", "on_test_batch_begin:0", "on_test_batch_end:0",
                               "on_test_batch_begin:1", "on_test_batch_end:1", "on_test_batch_begin:2",
                               "on_test_batch_end:2", "on_test_end"]


def test_callback_hooks_in_fit_with_validation_match_keras(rng):
    """Keras runs fit's validation through evaluate with fit's callbacks: on_test_begin,
    on_test_batch_begin/end per validation batch and on_test_end come before on_epoch_end."""
    x, y = _data(rng, n=20)

    def run(model, recorder):
        model.fit(x, y, epochs=2, batch_size=8, validation_split=0.2, callbacks=[recorder], verbose=0)

    ours, theirs = _recorded(_tf(), run)
    assert [sorted(logs) for logs in ours.epoch_logs] == [sorted(logs) for logs in theirs.epoch_logs]
    assert ours.events == theirs.events


def test_stop_training_from_a_callback(rng):
    x, y = _data(rng, n=40)

    class StopAtEpoch(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    model = _compiled(_small_cnn())
    history = model.fit(x, y, epochs=10, batch_size=8, callbacks=[StopAtEpoch()], verbose=0)
    assert history.epoch == [0, 1]
    assert len(history.history["loss"]) == 2
    assert int(model.optimizer.iterations) == 10

    class StopAtBatch(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if batch == 1:
                self.model.stop_training = True

    stopper = StopAtBatch()
    model = _compiled(_small_cnn())
    history = model.fit(x, y, epochs=5, batch_size=8, callbacks=[stopper], verbose=0)
    assert stopper.batches == 2
    assert history.epoch == [0]
    assert int(model.optimizer.iterations) == 2

    # a new fit starts again
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert history.epoch == [0, 1]


# --------------------------------------------------------------------------------------------
# evaluate / predict
# --------------------------------------------------------------------------------------------

def test_evaluate_return_forms(rng):
    x, y = _data(rng, n=30)
    model = _compiled(_small_cnn())
    result = model.evaluate(x, y, batch_size=8, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    loss, accuracy = result
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    as_dict = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert set(as_dict) == {"loss", "accuracy"}
    assert as_dict["loss"] == pytest.approx(loss, rel=1e-6)
    assert as_dict["accuracy"] == pytest.approx(accuracy)

    # the numbers themselves: mean cross-entropy and accuracy of predict
    p = model.predict(x, verbose=0).astype(np.float64)
    assert loss == pytest.approx(float(np.mean(-np.log(p[np.arange(30), y]))), rel=1e-5)
    assert accuracy == pytest.approx(float(np.mean(np.argmax(p, axis=1) == y)))
    # batch size does not change the result (beyond rounding)
    assert model.evaluate(x, y, batch_size=7, verbose=0)[0] == pytest.approx(loss, rel=1e-5)

    bare = _compiled(_small_cnn(), metrics=None)
    bare.set_weights(model.get_weights())
    scalar = bare.evaluate(x, y, batch_size=8, verbose=0)
    assert not isinstance(scalar, (list, tuple, dict))
    assert float(scalar) == pytest.approx(loss, rel=1e-6)
    assert bare.evaluate(x, y, verbose=0, return_dict=True).keys() == {"loss"}
    assert bare.metrics_names == ["loss"] and model.metrics_names == ["loss", "accuracy"]


def test_predict_outputs(rng):
    model = _small_cnn(classes=10)
    x = rng.random((10, 8, 8, 1), dtype=np.float32)
    p = model.predict(x, verbose=0)
    assert isinstance(p, np.ndarray) and p.shape == (10, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), np.ones(10), rtol=1e-5)
    assert (p >= 0).all()
    # batch_size that does not divide n
    np.testing.assert_allclose(model.predict(x, batch_size=3, verbose=0), p, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict(x, batch_size=1, verbose=0), p, rtol=1e-6, atol=1e-7)
    # no compile needed; calling the model predicts too
    np.testing.assert_allclose(model(x), p, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict_on_batch(x), p, rtol=1e-6, atol=1e-7)
    # empty input
    empty = model.predict(np.zeros((0, 8, 8, 1), np.float32), verbose=0)
    assert empty.shape == (0, 10) and empty.dtype == np.float32
    # wrong sample shape is refused
    with pytest.raises(ValueError):
        model.predict(np.zeros((2, 8, 9, 1), np.float32), verbose=0)


def test_input_dtypes_and_layouts_give_same_predictions(rng):
    model = _small_cnn(input_shape=(8, 8, 2), classes=5)
    big = rng.random((20, 8, 16, 4), dtype=np.float32)
    view = big[::2, :, ::2, 1:3]
    assert not view.flags["C_CONTIGUOUS"] and view.shape == (10, 8, 8, 2)
    reference = model.predict(np.ascontiguousarray(view), verbose=0)
    np.testing.assert_array_equal(model.predict(view, verbose=0), reference)
    fortran = np.asfortranarray(view)
    assert fortran.flags["F_CONTIGUOUS"] and not fortran.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(model.predict(fortran, verbose=0), reference)
    as_float64 = view.astype(np.float64)
    np.testing.assert_array_equal(model.predict(as_float64, verbose=0), reference)
    as_list = np.ascontiguousarray(view).tolist()
    np.testing.assert_array_equal(model.predict(as_list, verbose=0), reference)

    images = rng.integers(0, 256, (10, 8, 8, 2), dtype=np.uint8)
    np.testing.assert_array_equal(model.predict(images, verbose=0),
                                  model.predict(images.astype(np.float32), verbose=0))
    np.testing.assert_array_equal(model.predict(images.astype(np.int64)[:, ::-1], verbose=0),
                                  model.predict(np.ascontiguousarray(images[:, ::-1], dtype=np.float32), verbose=0))

    # fit and evaluate too: a strided float64 x and int labels train exactly as the contiguous copy
    y = rng.integers(0, 5, 10)
    initial = model.get_weights()
    results = []
    for xs, ys in ((np.ascontiguousarray(view), y), (view.astype(np.float64)[:, :, :, :], y.astype(np.uint8)),
                   (np.asfortranarray(view), y.astype(np.float32))):
        m = _compiled(_small_cnn(input_shape=(8, 8, 2), classes=5))
        m.set_weights(initial)
        m.fit(xs, ys, epochs=1, batch_size=4, shuffle=False, verbose=0)
        results.append((m.get_weights(), m.evaluate(xs, ys, verbose=0)))
    for weights, evaluation in results[1:]:
        assert _weights_equal(weights, results[0][0])
        assert evaluation == results[0][1]


def test_dropout_only_in_training(rng):
    x, y = _data(rng, n=16)
    with_dropout = _compiled(_small_cnn(dropout=0.5), optimizer=optimizers.SGD(learning_rate=1e-3))
    without = _compiled(_small_cnn(), optimizer=optimizers.SGD(learning_rate=1e-3))
    without.set_weights(with_dropout.get_weights())
    p1 = with_dropout.predict(x, verbose=0)
    p2 = with_dropout.predict(x, verbose=0)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(p1, without.predict(x, verbose=0))
    assert with_dropout.evaluate(x, y, verbose=0) == without.evaluate(x, y, verbose=0)

    # the training step sees the dropped-out network: its loss differs from the inference loss
    before = without.test_on_batch(x, y)
    assert without.train_on_batch(x, y)[0] == pytest.approx(before[0], rel=1e-5)
    before = with_dropout.test_on_batch(x, y)
    assert with_dropout.train_on_batch(x, y)[0] != pytest.approx(before[0], rel=1e-3)

    # eager Dropout layer: identity unless training=True
    layer = layers.Dropout(0.5)
    values = np.ones((4, 100), np.float32)
    np.testing.assert_array_equal(layer(values), values)
    dropped = np.asarray(layer(values, training=True))
    assert set(np.unique(dropped)) <= {0.0, 2.0} and 0 < (dropped == 0).sum() < values.size


def test_relu_propagates_nan_as_keras_does():
    """A NaN reaching a ReLU stays NaN in Keras (tf.nn.relu), so a diverged model shows NaN
    predictions and losses instead of silently looking healthy."""
    values = np.array([[np.nan, -1.0, 1.0]], np.float32)
    tf = _tf()
    expected = tf.keras.layers.Activation("relu")(values).numpy()
    assert np.isnan(expected[0, 0])
    np.testing.assert_array_equal(layers.Activation("relu")(values), expected)
    model = models.Sequential([layers.Dense(3, activation="relu", input_shape=(3,)), layers.Dense(2)])
    assert np.isnan(model.predict(np.array([[np.nan, 0.0, 0.0]], np.float32), verbose=0)).all()


# --------------------------------------------------------------------------------------------
# optimizers
# --------------------------------------------------------------------------------------------

def test_optimizer_defaults_and_names(rng):
    adam = optimizers.Adam()
    assert adam.learning_rate == pytest.approx(0.001)
    assert adam.beta_1 == pytest.approx(0.9) and adam.beta_2 == pytest.approx(0.999)
    assert adam.epsilon == pytest.approx(1e-7)
    assert adam.amsgrad is False
    sgd = optimizers.SGD()
    assert sgd.learning_rate == pytest.approx(0.01)
    assert sgd.momentum == 0 and sgd.nesterov is False
    rms = optimizers.RMSprop()
    assert rms.learning_rate == pytest.approx(0.001) and rms.rho == pytest.approx(0.9)
    assert rms.epsilon == pytest.approx(1e-7)
    tf = _tf()
    keras_adam, keras_sgd = tf.keras.optimizers.Adam(), tf.keras.optimizers.SGD()
    assert adam.beta_1 == keras_adam.beta_1 and adam.beta_2 == keras_adam.beta_2
    assert adam.epsilon == keras_adam.epsilon
    assert sgd.momentum == keras_sgd.momentum and sgd.nesterov == keras_sgd.nesterov
    assert adam.learning_rate == pytest.approx(float(keras_adam.learning_rate))
    assert sgd.learning_rate == pytest.approx(float(keras_sgd.learning_rate))

    x, y = _data(rng, n=20)
    for name, cls in (("adam", optimizers.Adam), ("sgd", optimizers.SGD), ("rmsprop", optimizers.RMSprop),
                      ("Adam", optimizers.Adam)):
        model = _compiled(_small_cnn(), optimizer=name)
        assert isinstance(model.optimizer, cls)
        assert int(model.optimizer.iterations) == 0
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)  # 3 steps per epoch
        assert int(model.optimizer.iterations) == 6
        model.train_on_batch(x[:4], y[:4])
        assert int(model.optimizer.iterations) == 7
    model = models.Sequential([layers.Dense(2)])
    model.compile(loss="sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, optimizers.RMSprop)  # Keras's compile default


def test_learning_rate_is_used(rng):
    x, y = _data(rng, n=16)
    initial = _small_cnn().get_weights()

    def delta(lr):
        model = _compiled(_small_cnn(), optimizer=optimizers.SGD(learning_rate=lr))
        model.set_weights(initial)
        model.train_on_batch(x, y)
        return [a - b for a, b in zip(model.get_weights(), initial)]

    small, large = delta(0.01), delta(0.04)
    for a, b in zip(small, large):
        np.testing.assert_allclose(b, 4 * a, rtol=1e-3, atol=1e-7)


# --------------------------------------------------------------------------------------------
# losses and metrics
# --------------------------------------------------------------------------------------------

def test_losses_match_keras(rng):
    tf = _tf()
    n, classes = 12, 5
    logits = rng.normal(0, 2, (n, classes)).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probabilities = probabilities.astype(np.float32)
    labels = rng.integers(0, classes, n)
    one_hot = utils.to_categorical(labels, classes)
    np.testing.assert_array_equal(one_hot, tf.keras.utils.to_categorical(labels, classes))

    def close(ours, theirs):
        np.testing.assert_allclose(np.asarray(ours, np.float64), np.asarray(theirs, np.float64), rtol=1e-6,
                                   atol=1e-6)

    close(losses.SparseCategoricalCrossentropy()(labels, probabilities),
          tf.keras.losses.SparseCategoricalCrossentropy()(labels, probabilities).numpy())
    close(losses.CategoricalCrossentropy()(one_hot, probabilities),
          tf.keras.losses.CategoricalCrossentropy()(one_hot, probabilities).numpy())
    close(losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits),
          tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits).numpy())
    close(losses.CategoricalCrossentropy(from_logits=True)(one_hot, logits),
          tf.keras.losses.CategoricalCrossentropy(from_logits=True)(one_hot, logits).numpy())
    close(losses.SparseCategoricalCrossentropy(reduction="none")(labels, probabilities),
          tf.keras.losses.SparseCategoricalCrossentropy(reduction="none")(labels, probabilities).numpy())
    close(losses.CategoricalCrossentropy(reduction="sum")(one_hot, probabilities),
          tf.keras.losses.CategoricalCrossentropy(reduction="sum")(one_hot, probabilities).numpy())
    close(losses.CategoricalCrossentropy(label_smoothing=0.1)(one_hot, probabilities),
          tf.keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(one_hot, probabilities).numpy())
    close(losses.sparse_categorical_crossentropy(labels, probabilities),
          tf.keras.losses.sparse_categorical_crossentropy(labels, probabilities).numpy())
    close(losses.categorical_crossentropy(one_hot, probabilities),
          tf.keras.losses.categorical_crossentropy(one_hot, probabilities).numpy())
    weights = rng.random(n).astype(np.float32)
    close(losses.SparseCategoricalCrossentropy()(labels, probabilities, sample_weight=weights),
          tf.keras.losses.SparseCategoricalCrossentropy()(labels, probabilities, sample_weight=weights).numpy())
    # (n, 1) labels, as Keras accepts
    close(losses.SparseCategoricalCrossentropy()(labels[:, None], probabilities),
          tf.keras.losses.SparseCategoricalCrossentropy()(labels[:, None], probabilities).numpy())


def test_losses_match_keras_at_saturated_probabilities():
    """Keras clips probabilities to [1e-7, 1 - 1e-7]: a zero probability on the true class costs
    -log(1e-7), not infinity."""
    tf = _tf()
    probabilities = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], np.float32)
    labels = np.array([1, 1, 2])
    one_hot = utils.to_categorical(labels, 3)
    ours = losses.SparseCategoricalCrossentropy(reduction="none")(labels, probabilities)
    theirs = tf.keras.losses.SparseCategoricalCrossentropy(reduction="none")(labels, probabilities).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    ours = losses.CategoricalCrossentropy(reduction="none")(one_hot, probabilities)
    theirs = tf.keras.losses.CategoricalCrossentropy(reduction="none")(one_hot, probabilities).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_categorical_crossentropy_training_with_one_hot_labels(rng):
    x, y = _data(rng, n=32)
    one_hot = utils.to_categorical(y, 4)
    assert one_hot.shape == (32, 4) and one_hot.dtype == np.float32
    np.testing.assert_array_equal(one_hot.argmax(axis=1), y)
    model = _compiled(_small_cnn(), optimizer="adam", loss="categorical_crossentropy")
    history = model.fit(x, one_hot, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    loss, accuracy = model.evaluate(x, one_hot, verbose=0)
    p = model.predict(x, verbose=0).astype(np.float64)
    assert accuracy == pytest.approx(float(np.mean(p.argmax(axis=1) == y)))
    assert loss == pytest.approx(float(np.mean(-np.log(p[np.arange(32), y]))), rel=1e-5)

    # the sparse model with the same weights reports the same numbers
    sparse = _compiled(_small_cnn(), optimizer="adam")
    sparse.set_weights(model.get_weights())
    sparse_loss, sparse_accuracy = sparse.evaluate(x, y, verbose=0)
    assert sparse_loss == pytest.approx(loss, rel=1e-5) and sparse_accuracy == accuracy
    # class-index labels are refused by the categorical loss
    with pytest.raises(ValueError):
        model.fit(x, y, epochs=1, verbose=0)


def test_metric_aliases_name_the_logs(rng):
    x, y = _data(rng, n=16)
    for metric in ("accuracy", "acc", "sparse_categorical_accuracy"):
        model = _compiled(_small_cnn(), metrics=[metric])
        history = model.fit(x, y, epochs=1, batch_size=8, validation_split=0.25, verbose=0)
        # in Keras's order: its callbacks get the logs with sorted keys, so History records them so
        assert list(history.history) == sorted([metric, "loss", f"val_{metric}", "val_loss"])


# --------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------

def test_mnist_embedded_subset():
    (x_train, y_train), (x_test, y_test) = datasets.mnist.load_embedded()
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert y_train.shape == (4000,) and y_test.shape == (1000,)
    assert x_train.dtype == np.uint8 and x_test.dtype == np.uint8
    assert y_train.dtype == np.uint8 and y_test.dtype == np.uint8
    assert np.array_equal(np.bincount(y_train, minlength=10), np.full(10, 400))
    assert np.array_equal(np.bincount(y_test, minlength=10), np.full(10, 100))
    assert set(np.unique(y_train)) == set(range(10))
    assert x_train.max() == 255 and x_train.min() == 0
    # shuffled, not sorted by class
    assert not np.all(np.diff(y_train.astype(int)) >= 0)
    # deterministic
    (x2, y2), (x3, y3) = datasets.mnist.load_embedded()
    assert np.array_equal(x2, x_train) and np.array_equal(y2, y_train)
    assert np.array_equal(x3, x_test) and np.array_equal(y3, y_test)
    # train and test disjoint
    train_images = {image.tobytes() for image in x_train}
    assert len(train_images) == 4000
    assert not any(image.tobytes() in train_images for image in x_test)


def test_mnist_from_a_keras_npz_file(tmp_path):
    rng = np.random.default_rng(5)
    arrays = {
        "x_train": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 30).astype(np.uint8),
        "x_test": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 7).astype(np.uint8),
    }
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data(path=str(path))
    for got, key in ((x_train, "x_train"), (y_train, "y_train"), (x_test, "x_test"), (y_test, "y_test")):
        assert got.dtype == arrays[key].dtype
        np.testing.assert_array_equal(got, arrays[key])
    (x_train, _), _ = datasets.mnist.load_data(path=path)  # a pathlib.Path works too
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    with pytest.raises(FileNotFoundError):
        datasets.mnist.load_data(path=str(tmp_path / "missing.npz"))


def test_mnist_trains_a_small_model_quickly():
    (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data()
    x_train = (x_train[:1000].astype(np.float32) / 255.0)[..., None]
    x_test = (x_test[:300].astype(np.float32) / 255.0)[..., None]
    utils.set_random_seed(0)
    model = models.Sequential([
        layers.Conv2D(8, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train[:1000], epochs=2, batch_size=32, verbose=0)
    loss, accuracy = model.evaluate(x_test, y_test[:300], verbose=0)
    assert accuracy > 0.7, (loss, accuracy)


# --------------------------------------------------------------------------------------------
# eager layer calls
# --------------------------------------------------------------------------------------------

def test_layers_called_eagerly_on_arrays(rng):
    dense = layers.Dense(3)
    out = dense(np.ones((2, 4)))
    assert out.shape == (2, 3)
    kernel, bias = dense.get_weights()
    assert kernel.shape == (4, 3) and bias.shape == (3,)
    np.testing.assert_allclose(out, np.ones((2, 4)) @ kernel + bias, rtol=1e-6, atol=1e-6)

    x = rng.random((2, 6, 6, 3), dtype=np.float32)
    conv = layers.Conv2D(5, 3, padding="same", activation="relu")
    assert conv(x).shape == (2, 6, 6, 5)
    assert conv.kernel.shape == (3, 3, 3, 5)
    pooled = layers.MaxPooling2D()(x)
    np.testing.assert_array_equal(pooled, x.reshape(2, 3, 2, 3, 2, 3).max(axis=(2, 4)))
    np.testing.assert_array_equal(layers.Flatten()(x), x.reshape(2, -1))
    relu = layers.Activation("relu")(x - 0.5)
    np.testing.assert_array_equal(relu, np.maximum(x - 0.5, 0))

    # the same weights in Keras give the same output
    tf = _tf()
    keras_conv = tf.keras.layers.Conv2D(5, 3, padding="same", activation="relu")
    keras_conv.build((None, 6, 6, 3))
    keras_conv.set_weights([conv.kernel.numpy(), rng.normal(0, 0.1, 5).astype(np.float32)])
    conv.set_weights(keras_conv.get_weights())
    _assert_close_relative(conv(x), keras_conv(x).numpy())
