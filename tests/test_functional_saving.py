"""Functional models in Keras 3's formats, both ways: configs (JSON equal to Keras's for the same
graph), `.keras` files (nested models included) and `.weights.h5` files; and hostile graph configs
refused with a clear error before anything is built."""

import copy
import json

import numpy as np
import pytest

import fastcnn
from fastcnn import saving

from conftest import relative_error


@pytest.fixture(scope="module")
def keras(tf):
    import keras as keras_module  # tf.keras is Keras 3; keras.saving is its module

    keras_module.utils.set_random_seed(5)  # TensorFlow's op determinism needs seeded initializers
    return keras_module


def graph(keras, shape=(8, 8, 3)):
    """Every layer named, so the two libraries' configs can be compared as text: a residual add, a
    concatenation, a shared Dense, a squeeze-excite multiply and a nested functional block."""
    L = keras.layers
    block_input = keras.Input(shape, name="block_input")
    y = L.Conv2D(6, 3, padding="same", name="block_conv")(block_input)
    y = L.BatchNormalization(name="block_norm")(y)
    block = keras.Model(block_input, L.ReLU(name="block_relu")(y), name="block")
    inputs = keras.Input(shape, name="image")
    x = block(inputs)
    shortcut = L.Conv2D(6, 1, name="projection")(inputs)
    x = L.add([x, shortcut], name="residual")
    gate = L.GlobalAveragePooling2D(name="squeeze")(x)
    gate = L.Dense(6, activation="sigmoid", name="excite")(gate)
    x = L.multiply([x, L.Reshape((1, 1, 6), name="gate")(gate)], name="scale")
    pooled = L.GlobalMaxPooling2D(name="max_pool")(x)
    shared = L.Dense(5, activation="tanh", name="shared")
    x = L.concatenate([shared(pooled), shared(gate)], name="joined")
    outputs = L.Dense(3, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="graph")


def _inputs(rng, count=7, shape=(8, 8, 3)):
    return rng.random((count,) + shape).astype(np.float32)


def test_config_equals_keras_and_rebuilds_both_ways(keras):
    keras_model, model = graph(keras), graph(fastcnn)
    ours = json.dumps(saving.serialize_model(model))
    theirs = json.dumps(keras.saving.serialize_keras_object(keras_model))
    assert ours == theirs
    # Keras rebuilds fastcnn's config; fastcnn rebuilds Keras's.
    rebuilt_in_keras = keras.Model.from_config(json.loads(json.dumps(model.get_config())))
    assert json.dumps(rebuilt_in_keras.get_config()) == json.dumps(keras_model.get_config())
    rebuilt = fastcnn.Model.from_config(json.loads(json.dumps(keras_model.get_config())))
    assert json.dumps(rebuilt.get_config()) == json.dumps(keras_model.get_config())
    again = fastcnn.models.model_from_json(model.to_json())
    assert again.count_params() == model.count_params()
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]


def test_keras_files_move_both_ways(keras, rng, tmp_path):
    pytest.importorskip("h5py")
    x = _inputs(rng)
    keras_model = graph(keras)
    keras_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    keras_model.fit(x, np.arange(7) % 3, epochs=1, verbose=0)
    keras_model.save(tmp_path / "keras.keras")
    loaded = fastcnn.models.load_model(tmp_path / "keras.keras")
    assert relative_error(loaded.predict(x, verbose=0), keras_model.predict(x, verbose=0)) <= 1e-5
    assert loaded.compiled and loaded.optimizer.iterations == 1
    # ... and training continues here.
    loaded.fit(x, np.arange(7) % 3, epochs=1, verbose=0)

    model = graph(fastcnn)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, np.arange(7) % 3, epochs=1, verbose=0)
    model.save(tmp_path / "fastcnn.keras")
    in_keras = keras.models.load_model(tmp_path / "fastcnn.keras")
    assert relative_error(in_keras.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-5
    back = fastcnn.models.load_model(tmp_path / "fastcnn.keras")
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))


def test_weights_files_move_both_ways(keras, rng, tmp_path):
    pytest.importorskip("h5py")
    x = _inputs(rng)
    keras_model, model = graph(keras), graph(fastcnn)
    keras_model.save_weights(tmp_path / "keras.weights.h5")
    model.load_weights(tmp_path / "keras.weights.h5")
    assert relative_error(model.predict(x, verbose=0), keras_model.predict(x, verbose=0)) <= 1e-5
    other = graph(fastcnn)
    other.save_weights(tmp_path / "fastcnn.weights.h5")
    keras_model.load_weights(tmp_path / "fastcnn.weights.h5")
    assert relative_error(keras_model.predict(x, verbose=0), other.predict(x, verbose=0)) <= 1e-5


def test_multi_output_compile_config_round_trips(keras, tmp_path):
    pytest.importorskip("h5py")
    inputs = fastcnn.Input((4,), name="features")
    hidden = fastcnn.layers.Dense(5, name="hidden")(inputs)
    model = fastcnn.Model(inputs, [fastcnn.layers.Dense(3, activation="softmax", name="first")(hidden),
                                   fastcnn.layers.Dense(2, activation="softmax", name="second")(hidden)])
    arguments = dict(loss={"first": "sparse_categorical_crossentropy", "second": "sparse_categorical_crossentropy"},
                     loss_weights={"first": 2.0, "second": 0.5}, metrics={"second": "accuracy"})
    model.compile(optimizer="sgd", **arguments)
    model.save(tmp_path / "two.keras")
    in_keras = keras.models.load_model(tmp_path / "two.keras")
    assert in_keras.get_compile_config()["loss_weights"] == {"first": 2.0, "second": 0.5}
    loaded = fastcnn.models.load_model(tmp_path / "two.keras")
    x = np.random.default_rng(0).random((6, 4)).astype(np.float32)
    y = [np.arange(6) % 3, np.arange(6) % 2]
    np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6)


# ---- hostile graph configs ----


def _base_config():
    return json.loads(graph(fastcnn).to_json())


def _layer_entry(config, name):
    return next(entry for entry in config["config"]["layers"] if entry["name"] == name)


def _history(entry, call=0, argument=0):
    args = entry["inbound_nodes"][call]["args"][0]
    tensor = args[argument] if isinstance(args, list) else args
    return tensor["config"]["keras_history"]


def _cycle(config):
    # "projection" reads "classifier", which (through the graph) reads "projection".
    _history(_layer_entry(config, "projection"))[0] = "classifier"
    return config


def _missing_layer(config):
    _history(_layer_entry(config, "excite"))[0] = "nowhere"
    return config


def _bad_node_index(config):
    _history(_layer_entry(config, "excite"))[1] = 3
    return config


def _bad_tensor_index(config):
    _history(_layer_entry(config, "excite"))[2] = 1
    return config


def _lambda_layer(config):
    entry = _layer_entry(config, "excite")
    entry["class_name"] = "Lambda"
    entry["config"]["function"] = {"class_name": "__lambda__", "config": {"code": "b'...'"}}
    return config


def _huge_layer(config):
    _layer_entry(config, "shared")["config"]["units"] = 2**20
    _layer_entry(config, "classifier")["config"]["units"] = 2**20
    return config


def _unknown_call_argument(config):
    _layer_entry(config, "excite")["inbound_nodes"][0]["kwargs"] = {"mask": None, "scale": 2}
    return config


def _output_of_nothing(config):
    config["config"]["output_layers"] = ["classifier", 4, 0]
    return config


def _code_in_node(config):
    _layer_entry(config, "excite")["inbound_nodes"][0]["args"] = [{"class_name": "function",
                                                                   "config": "os.system"}]
    return config


HOSTILE = [
    ("cycle", _cycle, "loops or calls that read missing nodes"),
    ("missing layer", _missing_layer, "reads the layer 'nowhere', which the config does not define"),
    ("node index", _bad_node_index, "loops or calls that read missing nodes"),
    ("tensor index", _bad_tensor_index, "reads output 1 of 'squeeze', which has 1"),
    ("Lambda", _lambda_layer, "unknown layer class_name 'Lambda'"),
    ("huge", _huge_layer, "beyond fastcnn's bound"),
    ("unknown call argument", _unknown_call_argument, "unknown config key 'scale'"),
    ("output of nothing", _output_of_nothing, "refers to node 4 output 0 of 'classifier', which does not exist"),
    ("code in a call", _code_in_node, "call arguments must be symbolic tensors. Received: class_name='function'"),
]


@pytest.mark.parametrize("case", range(len(HOSTILE)), ids=[name for name, _, _ in HOSTILE])
def test_hostile_graph_configs_are_refused(case, monkeypatch):
    _, corrupt, message = HOSTILE[case]
    config = corrupt(copy.deepcopy(_base_config()))
    built = []
    monkeypatch.setattr(fastcnn.layers.Dense, "build", lambda self, shape: built.append(self.name))
    with pytest.raises(ValueError) as error:
        fastcnn.saving.deserialize_model(config)
    assert message in str(error.value)
    if HOSTILE[case][0] != "output of nothing":  # refused on its layers, references or shapes
        assert built == [], "a layer was built (weights allocated) before the config was refused"


def _sequential_around_a_base(keras):
    """The transfer-learning shape: a functional base as the first layer of a Sequential model."""
    L = keras.layers
    base_input = keras.Input((8, 8, 3), name="base_input")
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="base_conv")(base_input)
    base = keras.Model(base_input, L.GlobalAveragePooling2D(name="base_pool")(x), name="base")
    return keras.Sequential([base, L.Dense(3, activation="softmax", name="head")], name="classifier")


def test_sequential_with_a_nested_model_moves_both_ways(keras, rng, tmp_path):
    pytest.importorskip("h5py")
    keras_model, model = _sequential_around_a_base(keras), _sequential_around_a_base(fastcnn)
    # Keras names the Sequential's automatic InputLayer by its own counter: compare the rest.
    ours = json.loads(json.dumps(saving.serialize_model(model)))
    theirs = json.loads(json.dumps(keras.saving.serialize_keras_object(keras_model)))
    for config in (ours, theirs):
        config["config"]["layers"][0]["config"]["name"] = "input"
    assert json.dumps(ours) == json.dumps(theirs)
    x = _inputs(rng)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "fastcnn.keras")
    in_keras = keras.models.load_model(tmp_path / "fastcnn.keras")
    assert relative_error(in_keras.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-5
    keras_model.save(tmp_path / "keras.keras")
    loaded = fastcnn.models.load_model(tmp_path / "keras.keras")
    assert relative_error(loaded.predict(x, verbose=0), keras_model.predict(x, verbose=0)) <= 1e-5
    assert [type(layer).__name__ for layer in loaded.layers] == ["Functional", "Dense"]
