"""Arithmetic on symbolic tensors (fastcnn/layers/_operations.py): ``x + 3.0``, ``x * y``, ``-x``
record Keras 3's operations (Add, Subtract, Multiply, TrueDivide, Negative of keras.ops.numpy).
Checked against Keras on the same graph: shapes and broadcasting, model.layers without them and
model.operations with them, predictions and one training step (every gradient, through each
operator with a number on either side and with two tensors, broadcast included), the saved config
(fastcnn's .keras file loads in Keras and Keras's in fastcnn, same predictions), and the errors,
which name what was received."""

import json
import re
import zipfile

import numpy as np
import pytest
from conftest import relative_error

import fastcnn


def build(keras_module):
    """A small graph with every operator: number on the left and on the right, two tensors of one
    shape, and a (1, 1, C) gate broadcast over an (H, W, C) map."""
    layers = keras_module.layers
    inputs = keras_module.Input((5, 4, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = layers.ReLU(6.0, name="relu6")(x + 3.0) * (1.0 / 6.0)
    y = layers.Dense(4, name="dense")(x)
    z = 2.0 - y
    z = -z + 0.5 * x
    z = z / (y * y + 1.0)
    gate = layers.GlobalAveragePooling2D(keepdims=True, name="gap")(z)
    z = z * gate - gate
    z = 1.0 + z / 4.0
    z = z - 0.25
    outputs = layers.Dense(2, name="head")(layers.Flatten(name="flatten")(z))
    return keras_module.Model(inputs, outputs, name="arithmetic")


def automatic(name):
    return re.sub(r"_\d+$", "", name)


def both(keras):
    theirs = build(keras)
    ours = build(fastcnn)
    ours.set_weights([np.asarray(w) for w in theirs.weights])
    return theirs, ours


def test_operations_are_not_layers_and_are_listed_in_keras_order(keras):
    theirs, ours = both(keras)
    # Automatic names count from each library's own earlier calls ("add", "add_7"): compared without the count.
    assert [automatic(layer.name) for layer in ours.layers] == [automatic(layer.name) for layer in theirs.layers]
    assert [(type(op).__name__, automatic(op.name)) for op in ours.operations] == \
           [(type(op).__name__, automatic(op.name)) for op in theirs.operations]
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    lines = []
    ours.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(TrueDivide)" in text and "(Negative)" in text and "(Subtract)" in text


def test_shapes_and_broadcasting():
    x = fastcnn.Input((5, 4, 3))
    gate = fastcnn.layers.GlobalAveragePooling2D(keepdims=True)(x)
    column = fastcnn.layers.Conv2D(1, (1, 4))(x)  # (5, 1, 1)
    assert (x + 1).shape == (None, 5, 4, 3)
    assert (gate * x).shape == (None, 5, 4, 3)
    assert (x / gate).shape == (None, 5, 4, 3)
    assert (column - x).shape == (None, 5, 4, 3)
    assert (-gate).shape == (None, 1, 1, 3)
    with pytest.raises(ValueError, match=r"Received shapes \(None, 5, 4, 3\) and \(None, 5, 4, 2\)"):
        _ = x + fastcnn.layers.Conv2D(2, 1)(x)
    with pytest.raises(ValueError, match=r"same rank.*Received shapes \(None, 5, 4, 3\) and \(None, 3\)"):
        _ = x * fastcnn.layers.GlobalAveragePooling2D()(x)


@pytest.mark.parametrize("operand, message", [
    (np.ones(3, np.float32), r"Received: array\(\[1\., 1\., 1\.\]"),
    ("3", r"Received: '3' \(of type str\)"),
    ([1.0], r"Received: \[1\.0\] \(of type list\)"),
    (True, r"Received: True \(of type bool\)"),
])
def test_unsupported_operands_are_named(operand, message):
    x = fastcnn.Input((4, 4, 3))
    with pytest.raises(TypeError, match=message):
        _ = x + operand


def test_unsupported_operations_raise():
    x = fastcnn.Input((4, 4, 3))
    with pytest.raises(TypeError, match=r"cannot divide a number by a tensor.*Received: 2\.0 / a symbolic tensor"):
        _ = 2.0 / x
    with pytest.raises(ValueError, match=r"division by the number 0.*Received: x / 0\.0"):
        _ = x / 0
    with pytest.raises(ValueError, match=r"finite number.*Received: \[inf\]"):
        _ = x * float("inf")
    with pytest.raises(ValueError, match=r"float32 result is finite.*Received: \[1e-40\]"):
        _ = x / 1e-40
    with pytest.raises(TypeError, match=r"support \+, -, \*, /.*Received another operator"):
        _ = x ** 2
    with pytest.raises(TypeError, match=r"Received another operator"):
        _ = abs(x)


def test_predictions_and_a_training_step_match_keras(keras):
    theirs, ours = both(keras)
    rng = np.random.default_rng(0)
    images = rng.normal(0, 1, (6, 5, 4, 3)).astype("float32")
    targets = rng.normal(0, 1, (6, 2)).astype("float32")
    assert relative_error(ours.predict(images, verbose=0), np.asarray(theirs(images))) <= 1e-5
    initial = [np.asarray(w) for w in theirs.weights]
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ours.compile(optimizer=fastcnn.optimizers.SGD(0.1), loss="mse")
    expected_loss = float(theirs.train_on_batch(images, targets))
    assert float(ours.train_on_batch(images, targets)) == pytest.approx(expected_loss, rel=1e-5)
    for mine, other, start in zip(ours.get_weights(), theirs.weights, initial):
        expected_update = np.asarray(other) - start
        assert relative_error(mine - start, expected_update) <= 1e-4


def test_keras_file_round_trips_both_ways(keras, tmp_path):
    theirs, ours = both(keras)
    images = np.random.default_rng(1).normal(0, 1, (3, 5, 4, 3)).astype("float32")
    expected = ours.predict(images, verbose=0)
    ours.save(tmp_path / "ours.keras")
    layers_config = json.loads(zipfile.ZipFile(tmp_path / "ours.keras").read("config.json"))["config"]["layers"]
    first = next(entry for entry in layers_config if entry["module"] == "keras.src.ops.numpy")
    assert first["class_name"] == "Add" and first["registered_name"] == "Add"
    assert first["config"] == {"name": first["name"]} and first["inbound_nodes"][0]["args"][1] == 3.0
    reloaded = fastcnn.models.load_model(tmp_path / "ours.keras")
    assert [op.name for op in reloaded.operations] == [op.name for op in ours.operations]
    np.testing.assert_array_equal(reloaded.predict(images, verbose=0), expected)
    in_keras = keras.saving.load_model(tmp_path / "ours.keras")
    assert relative_error(np.asarray(in_keras(images)), expected) <= 1e-5
    theirs.save(tmp_path / "theirs.keras")
    from_keras = fastcnn.models.load_model(tmp_path / "theirs.keras")
    assert relative_error(from_keras.predict(images, verbose=0), expected) <= 1e-5
    assert fastcnn.models.model_from_json(ours.to_json()).count_params() == ours.count_params()


def test_saved_operations_are_checked(tmp_path):
    model = build(fastcnn)
    config = json.loads(model.to_json())
    entry = next(entry for entry in config["config"]["layers"] if entry["module"] == "keras.src.ops.numpy")
    entry["class_name"] = "Power"
    with pytest.raises(ValueError, match=r"fastcnn computes the operations .*Received: class_name='Power'"):
        fastcnn.models.model_from_json(json.dumps(config))
    entry["class_name"] = "Add"
    entry["inbound_nodes"][0]["args"] = [3.0, 4.0]
    with pytest.raises(ValueError, match=r"needs a symbolic tensor among its arguments"):
        fastcnn.models.model_from_json(json.dumps(config))
