"""Legacy HDF5 weights files (Keras 2 / tf.keras `.h5`, the format of Keras's ImageNet files):
written by Keras 3's own legacy writer, read by fastcnn's Model.load_weights as Keras 3 reads
them (in order, or by_name), with its errors, and refused cleanly when corrupt."""

import os
import warnings

import numpy as np
import pytest
from conftest import relative_error

import fastcnn
from fastcnn import layers

h5py = pytest.importorskip("h5py")


def _build(module, widths=(4, 6), last_name="head"):
    """The same small functional model (conv, BN, residual add, depthwise, dense) in either framework."""
    L = module.layers
    inputs = module.Input((9, 9, 3))
    x = L.Conv2D(widths[0], 3, name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = L.Add(name="add")([x, y])
    x = L.Conv2D(widths[1], 1, name="pointwise")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(5, activation="softmax", name=last_name)(x)
    return module.Model(inputs, outputs, name="small")


def _randomize(model, seed):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "variance" in variable.path:
            variable.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
        else:
            variable.assign(rng.normal(0.0, 0.5, shape).astype("float32"))


def _write_legacy(keras, model, path):
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


@pytest.fixture
def keras_model(keras):
    model = _build(keras)
    _randomize(model, 7)
    return model


def _images(seed=3, n=4):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 9, 9, 3)).astype("float32")


@pytest.mark.parametrize("suffix", [".h5", ".hdf5"])
def test_keras_legacy_file_loads_and_predicts_as_keras(keras, keras_model, tmp_path, suffix):
    path = str(tmp_path / f"small{suffix}")
    _write_legacy(keras, keras_model, path)
    ours = _build(fastcnn)
    ours.load_weights(path)
    for mine, theirs in zip(ours.weights, keras_model.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    x = _images()
    assert relative_error(ours.predict(x, verbose=0), keras_model.predict(x, verbose=0)) <= 1e-5


def test_whole_model_h5_file_reads_its_model_weights_group(keras, keras_model, tmp_path):
    path = str(tmp_path / "whole.h5")
    keras_model.save(path)  # Keras's legacy whole-model format: the weights in /model_weights
    with h5py.File(path, "r") as file:
        assert "model_weights" in file and "layer_names" not in file.attrs
    ours = _build(fastcnn)
    ours.load_weights(path)
    x = _images(4)
    assert relative_error(ours.predict(x, verbose=0), keras_model.predict(x, verbose=0)) <= 1e-5


def test_frozen_layers_keep_keras_legacy_order(keras, keras_model, tmp_path):
    # A frozen BatchNormalization lists all four weights as non-trainable, in their own order.
    keras_model.get_layer("stem_bn").trainable = False
    path = str(tmp_path / "frozen.h5")
    _write_legacy(keras, keras_model, path)
    ours = _build(fastcnn)
    ours.get_layer("stem_bn").trainable = False
    ours.load_weights(path)
    for mine, theirs in zip(ours.get_layer("stem_bn").weights, keras_model.get_layer("stem_bn").weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_by_name_loads_the_layers_of_the_same_name(keras, keras_model, tmp_path):
    path = str(tmp_path / "named.h5")
    _write_legacy(keras, keras_model, path)
    ours = _build(fastcnn, last_name="new_head")  # a new classifier: not in the file
    head_before = [w.numpy().copy() for w in ours.get_layer("new_head").weights]
    ours.load_weights(path, by_name=True)
    for name in ("stem", "stem_bn", "dw", "pointwise"):
        for mine, theirs in zip(ours.get_layer(name).weights, keras_model.get_layer(name).weights):
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    for before, after in zip(head_before, ours.get_layer("new_head").weights):
        np.testing.assert_array_equal(before, after.numpy())


def test_by_name_skip_mismatch_warns_and_loads_the_others(keras, keras_model, tmp_path):
    path = str(tmp_path / "named.h5")
    _write_legacy(keras, keras_model, path)
    ours = _build(fastcnn, widths=(4, 8))  # `pointwise` has 8 filters here, 6 in the file
    pointwise_before = ours.get_layer("pointwise").kernel.numpy().copy()
    with pytest.raises(ValueError, match=r"layer #\d+ \(named pointwise\).*pointwise/kernel.*\(1, 1, 4, 8\).*"
                                         r"\(1, 1, 4, 6\)"):
        ours.load_weights(path, by_name=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours.load_weights(path, by_name=True, skip_mismatch=True)
    skipped = sorted(str(w.message).split(" due to")[0] for w in caught)
    # the head reads pointwise's 8 channels where the file has 6: skipped too
    assert sorted(s.split(" (named ")[1] for s in skipped) == ["head)", "pointwise)", "pointwise)"]
    np.testing.assert_array_equal(ours.get_layer("pointwise").kernel.numpy(), pointwise_before)
    np.testing.assert_array_equal(ours.get_layer("stem").kernel.numpy(), keras_model.get_layer("stem").kernel.numpy())


def test_shape_mismatch_names_the_layer_and_both_shapes_and_loads_nothing(keras, keras_model, tmp_path):
    path = str(tmp_path / "small.h5")
    _write_legacy(keras, keras_model, path)
    ours = _build(fastcnn, widths=(4, 8))
    before = [w.numpy().copy() for w in ours.weights]
    with pytest.raises(ValueError) as error:
        ours.load_weights(path)
    message = str(error.value)
    assert path in message and "named pointwise" in message
    assert "Weight expects shape (1, 1, 4, 8). Received saved weight with shape (1, 1, 4, 6)" in message
    for old, variable in zip(before, ours.weights):
        np.testing.assert_array_equal(old, variable.numpy())


def test_layer_count_mismatch_is_keras_message(keras, tmp_path):
    inputs = keras.Input((9, 9, 3))
    small = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="stem")(inputs))
    path = str(tmp_path / "one_layer.h5")
    _write_legacy(keras, small, path)
    with pytest.raises(ValueError, match="Layer count mismatch when loading weights from file. Model expected 5 "
                                         "layers, found 1 saved layers."):
        _build(fastcnn).load_weights(path)


def test_by_name_is_for_legacy_files_only(tmp_path):
    model = _build(fastcnn)
    with pytest.raises(ValueError, match=r"`by_name` only supports loading legacy '.h5' or '.hdf5' files"):
        model.load_weights(str(tmp_path / "x.weights.h5"), by_name=True)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        _build(fastcnn).load_weights(str(tmp_path / "absent.h5"))


def test_truncated_and_garbage_files_raise_value_error_naming_the_file(keras, keras_model, tmp_path):
    path = str(tmp_path / "small.h5")
    _write_legacy(keras, keras_model, path)
    with open(path, "rb") as file:
        data = file.read()
    truncated = str(tmp_path / "truncated.h5")
    with open(truncated, "wb") as file:
        file.write(data[: len(data) // 2])
    garbage = str(tmp_path / "garbage.h5")
    with open(garbage, "wb") as file:
        file.write(os.urandom(4096))
    model = _build(fastcnn)
    for bad in (truncated, garbage):
        with pytest.raises(ValueError, match=bad):
            model.load_weights(bad)


def _hostile(tmp_path, edit):
    path = str(tmp_path / "hostile.h5")
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [b"stem"]
        group = file.create_group("stem")
        group.attrs["weight_names"] = [b"stem/kernel:0", b"stem/bias:0"]
        group["stem/kernel:0"] = np.zeros((3, 3, 3, 4), "float32")
        group["stem/bias:0"] = np.zeros((4,), "float32")
        edit(file)
    return path


@pytest.mark.parametrize("edit, match", [
    (lambda f: f.attrs.__setitem__("layer_names", [b"stem", b"absent"]), "no group 'absent'"),
    (lambda f: f["stem"].attrs.__setitem__("weight_names", [b"stem/kernel:0", b"stem/gone:0"]),
     "no dataset 'stem/gone:0'"),
    (lambda f: f["stem"].attrs.__setitem__("weight_names", np.array([1, 2])), "must hold strings"),
    (lambda f: (f["stem"].__delitem__("stem/bias:0"), f["stem"].__setitem__("stem/bias:0", np.array([b"x"] * 4))),
     "must hold numbers"),
])
def test_hostile_files_raise_value_error(tmp_path, edit, match):
    inputs = fastcnn.Input((9, 9, 3))
    model = fastcnn.Model(inputs, layers.Conv2D(4, 3, name="stem")(inputs))
    with pytest.raises(ValueError, match=match):
        model.load_weights(_hostile(tmp_path, edit))
    # the unedited file loads
    model.load_weights(_hostile(tmp_path, lambda f: None))


def _nested(module):
    """A model used as a layer (a frozen base under a new head), as in transfer learning."""
    base = _build(module)
    base.get_layer("stem_bn").trainable = False
    inputs = module.Input((9, 9, 3))
    x = base(inputs)
    outputs = module.layers.Dense(2, name="new_head")(x)
    return module.Model(inputs, outputs, name="outer")


def test_a_model_used_as_a_layer_is_one_entry_in_keras_order(keras, tmp_path):
    theirs = _nested(keras)
    _randomize(theirs, 11)
    path = str(tmp_path / "nested.h5")
    _write_legacy(keras, theirs, path)
    with h5py.File(path, "r") as file:
        assert len(file["small"].attrs["weight_names"]) == len(theirs.layers[1].weights)
    ours = _nested(fastcnn)
    ours.load_weights(path)
    x = _images(5)
    assert relative_error(ours.predict(x, verbose=0), np.asarray(theirs(x, training=False))) <= 1e-5
