"""The Functional API: symbolic tensors, Model(inputs, outputs) over any acyclic graph, shared and
nested layers, sub-models, several inputs, and the errors for graphs that cannot work."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastcnn as keras
from fastcnn import layers
from conftest import relative_error


def small_residual(shape=(8, 8, 3), classes=4):
    inputs = keras.Input(shape=shape, name="image")
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="stem")(inputs)
    y = layers.Conv2D(6, 3, padding="same", name="block_conv")(x)
    x = layers.add([x, y], name="block")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="small_residual")


# ---- symbolic tensors and graph attributes ----


def test_input_is_a_symbolic_tensor():
    tensor = keras.Input(shape=(28, 28, 1), name="pixels")
    assert tensor.shape == (None, 28, 28, 1)
    assert tensor.dtype == "float32"
    assert tensor.name == "pixels"
    assert repr(tensor).startswith("<KerasTensor shape=(None, 28, 28, 1), dtype=float32")
    assert keras.Input(shape=(4,), batch_size=8).shape == (8, 4)
    assert keras.layers.Input is keras.Input
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(tensor)
    # + records Keras's Add operation (tests/test_symbolic_arithmetic.py); operators fastcnn lacks say so.
    assert type((tensor + tensor)._keras_history[0]).__name__ == "Add"
    with pytest.raises(TypeError, match=r"support \+, -, \*, /"):
        tensor @ tensor  # noqa: B018


def test_layer_calls_record_nodes_and_shapes():
    inputs = keras.Input((10, 10, 3))
    convolution = layers.Conv2D(4, 3)
    x = convolution(inputs)
    assert x.shape == (None, 8, 8, 4)
    assert convolution.input is inputs and convolution.output is x
    assert convolution.built and convolution.count_params() == 3 * 3 * 3 * 4 + 4
    flat = layers.Flatten()(x)
    assert flat.shape == (None, 256)
    with pytest.raises(AttributeError, match="never been called"):
        layers.Dense(2).output  # noqa: B018


def test_model_structure_attributes():
    model = small_residual()
    assert model.name == "small_residual"
    assert [layer.name for layer in model.layers] == ["image", "stem", "block_conv", "block", "pool", "classifier"]
    assert type(model.layers[0]).__name__ == "InputLayer"
    assert model.input is model.inputs[0] and model.output is model.outputs[0]
    assert model.input_shape == (None, 8, 8, 3) and model.output_shape == (None, 4)
    assert model.get_layer("block").output.shape == (None, 8, 8, 6)
    assert model.get_layer(index=1).name == "stem"
    assert isinstance(model, keras.Model) and isinstance(keras.Sequential(), keras.Model)
    with pytest.raises(ValueError, match="No such layer: nothing"):
        model.get_layer("nothing")
    assert model.count_params() == (3 * 3 * 3 * 6 + 6) + (3 * 3 * 6 * 6 + 6) + (6 * 4 + 4)


def test_predict_fit_evaluate_and_call():
    rng = np.random.default_rng(0)
    model = small_residual()
    x = rng.random((40, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 40)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_split=0.25)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    predictions = model.predict(x, verbose=0)
    assert predictions.shape == (40, 4)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(model(x), predictions)
    np.testing.assert_array_equal(model(x, training=False), predictions)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    assert model.train_on_batch(x[:8], y[:8])[0] > 0


def test_training_mode_call_runs_dropout():
    inputs = keras.Input((16,))
    outputs = layers.Dropout(0.5)(layers.Dense(16)(inputs))
    model = keras.Model(inputs, outputs)
    x = np.ones((4, 16), np.float32)
    inference = model(x)
    training = model(x, training=True)
    assert np.count_nonzero(training == 0) > 0
    np.testing.assert_array_equal(model.predict(x, verbose=0), inference)


# ---- sub-models, several inputs and outputs ----


def test_feature_extractor_over_intermediate_tensors():
    model = small_residual()
    rng = np.random.default_rng(1)
    x = rng.random((5, 8, 8, 3)).astype(np.float32)
    extractor = keras.Model(model.input, model.get_layer("block").output)
    features = extractor.predict(x, verbose=0)
    assert features.shape == (5, 8, 8, 6)
    several = keras.Model(model.input, [model.get_layer("stem").output, model.output])
    stem, probabilities = several.predict(x, verbose=0)
    assert stem.shape == (5, 8, 8, 6)
    np.testing.assert_allclose(probabilities, model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    # The sub-model shares the layers: training the full model changes what it computes.
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(5) % 4, verbose=0)
    np.testing.assert_allclose(extractor.predict(x, verbose=0),
                               keras.Model(model.input, model.get_layer("block").output).predict(x, verbose=0))


def test_two_inputs_as_a_list_or_a_dict():
    image = keras.Input((6, 6, 2), name="image")
    extra = keras.Input((3,), name="extra")
    x = layers.Flatten()(layers.Conv2D(3, 3)(image))
    x = layers.concatenate([x, layers.Dense(4)(extra)])
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model([image, extra], outputs)
    rng = np.random.default_rng(2)
    a = rng.random((12, 6, 6, 2)).astype(np.float32)
    b = rng.random((12, 3)).astype(np.float32)
    as_list = model.predict([a, b], verbose=0)
    np.testing.assert_array_equal(model.predict({"image": a, "extra": b}, verbose=0), as_list)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit([a, b], np.arange(12) % 2, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="expects 2 input"):
        model.predict([a], verbose=0)
    with pytest.raises(ValueError, match="2 inputs: pass `x` as a list"):
        model.predict(a, verbose=0)
    with pytest.raises(ValueError, match="cardinality"):
        model.predict([a, b[:5]], verbose=0)


def test_dict_outputs_predict_in_order():
    inputs = keras.Input((4,))
    hidden = layers.Dense(3)(inputs)
    model = keras.Model(inputs, {"first": hidden, "second": layers.Dense(2)(hidden)})
    first, second = model.predict(np.ones((2, 4), np.float32), verbose=0)
    assert first.shape == (2, 3) and second.shape == (2, 2)


# ---- shared and nested layers ----


def test_shared_layer_has_one_set_of_weights():
    inputs = keras.Input((5,))
    dense = layers.Dense(5, activation="tanh")
    outputs = dense(dense(inputs))
    model = keras.Model(inputs, outputs)
    assert model.count_params() == 30 and len(model.weights) == 2
    assert len(dense._inbound_nodes) == 2
    x = np.random.default_rng(3).random((3, 5)).astype(np.float32)
    kernel, bias = dense.get_weights()
    expected = np.tanh(np.tanh(x @ kernel + bias) @ kernel + bias)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)  # random weights


def test_frozen_base_model_inside_a_bigger_model():
    base = small_residual()
    base_before = base.get_weights()
    base.trainable = False
    inputs = keras.Input((8, 8, 3))
    features = keras.Model(base.input, base.get_layer("pool").output)(inputs)
    outputs = layers.Dense(2, activation="softmax")(features)
    model = keras.Model(inputs, outputs)
    assert len(model.trainable_weights) == 2
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(4)
    x = rng.random((16, 8, 8, 3)).astype(np.float32)
    model.fit(x, np.arange(16) % 2, epochs=2, verbose=0)
    for before, after in zip(base_before, base.get_weights()):
        np.testing.assert_array_equal(before, after)
    base.trainable = True
    assert len(model.trainable_weights) == 2 + 4
    model.fit(x, np.arange(16) % 2, verbose=0)
    assert any(not np.array_equal(b, a) for b, a in zip(base_before, base.get_weights()))


def test_functional_model_as_a_layer_of_a_sequential_model():
    base = small_residual()
    extractor = keras.Model(base.input, base.get_layer("pool").output, name="extractor")
    model = keras.Sequential([extractor, layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(5).random((6, 8, 8, 3)).astype(np.float32)
    predictions = model.predict(x, verbose=0)
    features = extractor.predict(x, verbose=0)
    kernel, bias = model.layers[1].get_weights()
    logits = features @ kernel + bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(predictions, expected / expected.sum(axis=1, keepdims=True), rtol=1e-5)
    assert model.count_params() == extractor.count_params() + 6 * 3 + 3


def test_sequential_layers_have_symbolic_outputs():
    model = keras.Sequential([keras.Input((6, 6, 1)), layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(3)])
    assert model.input.shape == (None, 6, 6, 1)
    assert model.layers[0].output.shape == (None, 4, 4, 2)
    extractor = keras.Model(model.input, model.layers[1].output)
    x = np.random.default_rng(6).random((2, 6, 6, 1)).astype(np.float32)
    assert extractor.predict(x, verbose=0).shape == (2, 32)


# ---- merges ----


def test_merge_layers_compute_what_numpy_computes():
    rng = np.random.default_rng(7)
    a, b, c = (rng.standard_normal((3, 4, 4, 2)).astype(np.float32) for _ in range(3))
    gate = rng.standard_normal((3, 1, 1, 2)).astype(np.float32)
    np.testing.assert_allclose(layers.Add()([a, b, c]), a + b + c, rtol=1e-6)
    np.testing.assert_allclose(layers.Subtract()([a, b]), a - b, rtol=1e-6)
    np.testing.assert_allclose(layers.Multiply()([a, gate]), a * gate, rtol=1e-6)
    np.testing.assert_allclose(layers.Average()([a, b]), (a + b) / 2, rtol=1e-6)
    np.testing.assert_array_equal(layers.Maximum()([a, b, c]), np.maximum(np.maximum(a, b), c))
    np.testing.assert_array_equal(layers.Minimum()([a, b]), np.minimum(a, b))
    np.testing.assert_array_equal(layers.Concatenate()([a, b]), np.concatenate([a, b], axis=-1))
    np.testing.assert_array_equal(layers.Concatenate(axis=1)([a, c]), np.concatenate([a, c], axis=1))
    np.testing.assert_array_equal(layers.concatenate([a[:, 0], b[:, 0]], axis=1),
                                  np.concatenate([a[:, 0], b[:, 0]], axis=1))


# ---- bad graphs and bad inputs: clear errors naming what was received ----


def test_bad_graphs_raise_clear_errors():
    a = keras.Input((4, 4, 3))
    b = keras.Input((4, 4, 2))
    with pytest.raises(ValueError, match=r"incompatible shapes.*\(None, 4, 4, 3\) and \(None, 4, 4, 2\)"):
        layers.add([a, b])
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate(axis=1)([a, b])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.subtract([a, a, a])
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Add()(a)
    with pytest.raises(ValueError, match=r'expects 1 input\(s\), but it received 2'):
        layers.Dense(2)([a, b])
    x = layers.Conv2D(2, 1)(b)
    with pytest.raises(ValueError, match="Graph disconnected"):
        keras.Model(a, x)
    with pytest.raises(ValueError, match="same input"):
        keras.Model([a, a], layers.Conv2D(1, 1)(a))
    with pytest.raises(ValueError, match="start from keras.Input"):
        keras.Model(x, layers.Conv2D(1, 1)(x))
    with pytest.raises(ValueError, match="one of the model's inputs"):
        keras.Model(a, a)
    with pytest.raises(ValueError, match="symbolic tensor"):
        keras.Model(a, np.zeros(3))
    with pytest.raises(TypeError, match="Subclassing Model"):
        keras.Model()
    named = layers.Conv2D(2, 1, name="twin")
    twin = layers.Conv2D(2, 1, name="twin")
    with pytest.raises(ValueError, match='The name "twin" is used 2 times'):
        keras.Model(a, layers.add([named(a), twin(a)]))


def test_layer_called_on_a_list_of_numbers_is_a_clear_error():
    with pytest.raises(ValueError, match=r"rank >= 2\)\. Received shape=\(3,\)"):
        layers.Dense(2)([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="mix of symbolic tensors"):
        layers.Add()([keras.Input((2,)), np.ones((1, 2))])


def test_wrong_arrays_for_the_model_are_clear_errors():
    model = small_residual()
    with pytest.raises(ValueError, match=r"expected shape=\(None, 8, 8, 3\), found shape=\(None, 8, 8, 2\)"):
        model.predict(np.zeros((2, 8, 8, 2), np.float32), verbose=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="cardinality"):
        model.fit(np.zeros((4, 8, 8, 3), np.float32), np.zeros(3, np.int64), verbose=0)


# ---- Keras's printed output ----

_SUMMARY_SCRIPT = textwrap.dedent('''
    import json, os, sys, warnings
    warnings.simplefilter("ignore")
    if sys.argv[1] == "keras":
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        from tensorflow import keras
    else:
        import fastcnn as keras
    L = keras.layers
    texts = {}

    def capture(name, model, **kwargs):
        lines = []
        model.summary(print_fn=lambda text, **_: lines.append(text), **kwargs)
        texts[name] = "".join(lines)

    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    y = L.Conv2D(6, 3, padding="same")(x)
    x = L.add([x, y])
    shared = L.Conv2D(6, 1)
    z = L.concatenate([shared(x), shared(y)])
    x = L.GlobalAveragePooling2D()(z)
    outputs = L.Dense(4, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    capture("graph", model)
    capture("graph_trainable", model, show_trainable=True)
    chain_input = keras.Input((6,))
    chain = keras.Model(chain_input, L.Dense(2)(L.Dense(3)(chain_input)))
    capture("chain", chain)
    model.layers[1].trainable = False
    nested_input = keras.Input((8, 8, 3))
    nested = keras.Model(nested_input, L.Dense(2)(model(nested_input)), name="outer")
    capture("nested", nested, show_trainable=True)
    texts["names"] = [layer.name for layer in nested.layers] + [layer.name for layer in model.layers]
    # Arithmetic on symbolic tensors: operations with rows of their own, names from the counters
    # the layers use ("add" was taken by L.add above).
    image = keras.Input((4, 4, 3))
    x = L.ReLU(6.0)(image + 3.0) * (1.0 / 6.0)
    x = L.Dense(3)(x)
    x = (2.0 - x) / (x * x + 1.0) - -x
    arithmetic = keras.Model(image, x + L.GlobalAveragePooling2D(keepdims=True)(x))
    capture("arithmetic", arithmetic)
    texts["operations"] = [[type(op).__name__, op.name] for op in arithmetic.operations]
    print("JSON:" + json.dumps(texts))
''')


@pytest.fixture(scope="module")
def summaries():
    env = dict(os.environ, COLUMNS="120", LINES="40", TF_CPP_MIN_LOG_LEVEL="3")
    processes = {name: subprocess.Popen([sys.executable, "-c", _SUMMARY_SCRIPT, name], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        cwd=os.path.dirname(os.path.abspath(__file__)))
                 for name in ("keras", "fastcnn")}
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        line = [line for line in stdout.splitlines() if line.startswith("JSON:")][-1]
        results[name] = json.loads(line[len("JSON:"):])
    return results


@pytest.mark.parametrize("case", ["graph", "graph_trainable", "chain", "nested", "names", "arithmetic", "operations"])
def test_summary_and_names_match_keras(summaries, case):
    ours, theirs = summaries["fastcnn"][case], summaries["keras"][case]
    if isinstance(ours, str):
        assert ours.splitlines() == theirs.splitlines()
    else:
        assert ours == theirs


# ---- determinism of the graph runtime ----


def test_thread_count_does_not_change_a_graph_step():
    rng = np.random.default_rng(8)
    x = rng.random((32, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 32)
    results = []
    threads = keras.get_num_threads()
    try:
        for count in (1, 2):
            keras.set_num_threads(count)
            keras.utils.set_random_seed(9)
            model = small_residual()
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            model.fit(x, y, batch_size=8, verbose=0)
            results.append(model.get_weights())
    finally:
        keras.set_num_threads(threads)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
    assert relative_error(results[0][0], results[1][0]) == 0.0


# ---- the trainer's other paths on graphs ----


def test_check_numerics_names_the_layer_of_a_graph():
    inputs = keras.Input((4,))
    x = layers.Dense(3, name="first")(inputs)
    y = layers.Dense(3, name="blows_up", kernel_initializer=keras.initializers.Constant(1e30))(inputs)
    outputs = layers.Dense(2, activation="softmax")(layers.concatenate([x, y]))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(FloatingPointError, match=r"layer 'blows_up' \(Dense\) produced non-finite values"):
        model.fit(np.full((4, 4), 1e10, np.float32), np.zeros(4, np.int64), check_numerics=True, verbose=0)


def test_generator_of_two_input_batches():
    image = keras.Input((4, 4, 1))
    extra = keras.Input((2,))
    x = layers.concatenate([layers.Flatten()(image), extra])
    model = keras.Model([image, extra], layers.Dense(2, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(10)

    def batches():
        while True:
            yield [rng.random((5, 4, 4, 1)), rng.random((5, 2))], rng.integers(0, 2, 5)

    history = model.fit(batches(), steps_per_epoch=3, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2
    (a, b), _ = next(batches())
    # A batch of x alone for several inputs is a 1-tuple holding the list, as in Keras.
    predictions = model.predict((((a, b),) for _ in range(2)), verbose=0)
    np.testing.assert_allclose(predictions, np.concatenate([model.predict([a, b], verbose=0)] * 2), rtol=1e-6)
