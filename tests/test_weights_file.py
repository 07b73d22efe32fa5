"""model.save_weights / load_weights: Keras 3's `.weights.h5` layout, files moving both ways between
fastcnn and keras.Sequential with the same predictions, and the checks and errors of loading."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import relative_error

from fastcnn import layers, models, optimizers
from fastcnn.models import _weights_file

h5py = pytest.importorskip("h5py")


# (class name, args, kwargs), built alike in fastcnn and Keras with explicit names
ARCHITECTURES = {
    "conv-bn-pool-dense": ((8, 8, 3), [
        ("Conv2D", (4, 3), {"activation": "relu"}),
        ("BatchNormalization", (), {}),
        ("MaxPooling2D", (), {}),
        ("Conv2D", (6, 3), {"padding": "same"}),
        ("BatchNormalization", (), {"center": False}),
        ("Flatten", (), {}),
        ("Dropout", (0.5,), {}),
        ("Dense", (7,), {"activation": "relu"}),
        ("Dense", (5,), {"activation": "softmax"}),
    ]),
    "padding-strides-global": ((10, 10, 2), [
        ("ZeroPadding2D", (1,), {}),
        ("Conv2D", (3, 3), {"strides": 2, "use_bias": False}),
        ("BatchNormalization", (), {"scale": False}),
        ("ReLU", (), {}),
        ("AveragePooling2D", (2,), {}),
        ("GlobalAveragePooling2D", (), {}),
        ("Dense", (4,), {"activation": "softmax"}),
    ]),
    "activations-reshape": ((6, 6, 1), [
        ("Rescaling", (1 / 255.0,), {}),
        ("Conv2D", (2, 3), {}),
        ("LeakyReLU", (), {}),
        ("Activation", ("tanh",), {}),
        ("GlobalMaxPooling2D", (), {}),
        ("Reshape", ((2, 1),), {}),
        ("Flatten", (), {}),
        ("Dense", (3,), {"activation": "softmax"}),
    ]),
    "dense-only": ((5,), [
        ("Dense", (4,), {}),
        ("BatchNormalization", (), {}),
        ("Dense", (3,), {"activation": "softmax"}),
    ]),
}


def _fastcnn(name):
    input_shape, spec = ARCHITECTURES[name]
    return models.Sequential([layers.Input(input_shape)] + [
        getattr(layers, cls)(*args, name=f"layer{i}", **kwargs) for i, (cls, args, kwargs) in enumerate(spec)
    ], name="net")


def _keras(keras, name):
    input_shape, spec = ARCHITECTURES[name]
    return keras.Sequential([keras.Input(input_shape)] + [
        getattr(keras.layers, cls)(*args, name=f"layer{i}", **kwargs) for i, (cls, args, kwargs) in enumerate(spec)
    ], name="net")


def _layout(path):
    """Every group (with its attributes) and dataset (shape, dtype) in an h5 file."""
    entries = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            entries[name] = ("dataset", obj.shape, str(obj.dtype))
        else:
            entries[name] = ("group", dict(obj.attrs))

    with h5py.File(path, "r") as file:
        entries["/"] = ("group", dict(file.attrs))
        file.visititems(visit)
    return entries


def _distinct_weights(model, seed):
    """Random weights with every variable distinct (variances positive), so a swapped pair shows."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.5, 1.5, size=np.shape(w)).astype(np.float32) for w in model.get_weights()]


def _inputs(name, seed=3, n=6):
    shape = ARCHITECTURES[name][0]
    return np.random.default_rng(seed).uniform(0, 1, size=(n,) + shape).astype(np.float32)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_layout_is_the_one_keras_writes(keras, tmp_path, name):
    _fastcnn(name).save_weights(tmp_path / "ours.weights.h5")
    _keras(keras, name).save_weights(tmp_path / "theirs.weights.h5")
    assert _layout(tmp_path / "ours.weights.h5") == _layout(tmp_path / "theirs.weights.h5")


def test_layout_example():
    """The groups for repeated layer kinds are numbered as Keras numbers them."""
    assert [path for path, _ in _weights_file.layer_paths(_fastcnn("conv-bn-pool-dense"))] == [
        "layers/conv2d", "layers/batch_normalization", "layers/max_pooling2d", "layers/conv2d_1",
        "layers/batch_normalization_1", "layers/flatten", "layers/dropout", "layers/dense", "layers/dense_1"]


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_fastcnn_file_loads_into_keras_and_predicts_the_same(keras, tmp_path, rng, name):
    model = _fastcnn(name)
    model.compile(optimizers.Adam(learning_rate=0.01), "sparse_categorical_crossentropy")
    x = _inputs(name, n=24)
    model.fit(x, rng.integers(0, model.output_shape[-1], size=24), batch_size=8, epochs=1, verbose=0)
    model.save_weights(str(tmp_path / "model.weights.h5"))
    twin = _keras(keras, name)
    twin.load_weights(str(tmp_path / "model.weights.h5"))
    for theirs, ours in zip(twin.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(theirs, ours)
    x = _inputs(name, seed=4)
    assert relative_error(model.predict(x, verbose=0), twin.predict(x, verbose=0)) <= 1e-5


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_keras_file_loads_into_fastcnn_and_predicts_the_same(keras, tmp_path, name):
    twin = _keras(keras, name)
    twin.set_weights(_distinct_weights(twin, seed=7))
    twin.save_weights(str(tmp_path / "model.weights.h5"))
    model = _fastcnn(name)
    model.load_weights(tmp_path / "model.weights.h5")
    for ours, theirs in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    x = _inputs(name)
    assert relative_error(model.predict(x, verbose=0), twin.predict(x, verbose=0)) <= 1e-5


def test_keras_file_of_a_trained_compiled_model_loads_its_optimizer_group_ignored(keras, tmp_path, rng):
    twin = _keras(keras, "conv-bn-pool-dense")
    twin.compile(keras.optimizers.Adam(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    keras.utils.set_random_seed(0)
    twin.fit(_inputs("conv-bn-pool-dense", n=16), rng.integers(0, 5, size=16), epochs=1, verbose=0)
    twin.save_weights(str(tmp_path / "trained.weights.h5"))
    assert "optimizer" in _layout(tmp_path / "trained.weights.h5")
    model = _fastcnn("conv-bn-pool-dense")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.load_weights(str(tmp_path / "trained.weights.h5"))
    x = _inputs("conv-bn-pool-dense")
    assert relative_error(model.predict(x, verbose=0), twin.predict(x, verbose=0)) <= 1e-5


def test_frozen_layers_keep_keras_variable_order(keras, tmp_path):
    """A variable's place in the file follows its trainable flag at creation, not the layer's
    later freezing: a frozen BatchNormalization still writes gamma, beta, moving mean, variance."""
    model = _fastcnn("dense-only")
    model.set_weights(_distinct_weights(model, seed=2))
    model.get_layer("layer1").trainable = False
    model.save_weights(str(tmp_path / "frozen.weights.h5"))
    twin = _keras(keras, "dense-only")
    twin.get_layer("layer1").trainable = False
    twin.load_weights(str(tmp_path / "frozen.weights.h5"))
    x = _inputs("dense-only")
    assert relative_error(model.predict(x, verbose=0), twin.predict(x, verbose=0)) <= 1e-5
    with h5py.File(tmp_path / "frozen.weights.h5", "r") as file:
        np.testing.assert_array_equal(file["layers/batch_normalization/vars/0"][()],
                                      model.get_layer("layer1").gamma.numpy())


def test_round_trip_is_exact_and_replaces_atomically(tmp_path):
    model = _fastcnn("conv-bn-pool-dense")
    model.set_weights(_distinct_weights(model, seed=1))
    path = tmp_path / "round.weights.h5"
    model.save_weights(path)
    model.save_weights(path)  # overwrite=True by default
    other = _fastcnn("conv-bn-pool-dense")
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tmp_path)) == ["round.weights.h5"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_save_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    model = _fastcnn("dense-only")
    path = tmp_path / "kept.weights.h5"
    model.save_weights(path)
    before = path.read_bytes()

    def failing(layer):
        if layer.name == "layer2":
            raise OSError("disk full")
        return original(layer)

    original = _weights_file.file_variables
    monkeypatch.setattr(_weights_file, "file_variables", failing)
    model.set_weights(_distinct_weights(model, seed=9))
    with pytest.raises(OSError, match="disk full"):
        model.save_weights(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["kept.weights.h5"]


def test_overwrite_false_asks_as_keras_does(tmp_path, monkeypatch, capsys):
    model = _fastcnn("dense-only")
    path = tmp_path / "ask.weights.h5"
    model.save_weights(path)
    before = path.read_bytes()
    model.set_weights(_distinct_weights(model, seed=4))
    prompts = []

    def answer(*replies):
        replies = list(replies)

        def fake_input(prompt):
            prompts.append(prompt)
            return replies.pop(0)
        return fake_input

    monkeypatch.setattr("builtins.input", answer("n"))
    model.save_weights(path, overwrite=False)
    assert path.read_bytes() == before
    assert prompts == [f"[WARNING] {path} already exists - overwrite? [y/n]"]
    monkeypatch.setattr("builtins.input", answer("maybe", " Y "))
    model.save_weights(path, overwrite=False)
    assert prompts[1:] == [prompts[0], 'Enter "y" (overwrite) or "n" (cancel).']
    assert capsys.readouterr().out == "[TIP] Next time specify overwrite=True!\n"
    other = _fastcnn("dense-only")
    other.load_weights(path)
    np.testing.assert_array_equal(other.get_weights()[0], model.get_weights()[0])


def test_legacy_layer_checkpoint_dependencies_files_load(keras, tmp_path):
    """Files from early Keras 3 releases name the layers group `_layer_checkpoint_dependencies`."""
    twin = _keras(keras, "dense-only")
    twin.set_weights(_distinct_weights(twin, seed=5))
    path = str(tmp_path / "legacy.weights.h5")
    twin.save_weights(path)
    with h5py.File(path, "a") as file:
        file.move("layers", "_layer_checkpoint_dependencies")
    model = _fastcnn("dense-only")
    model.load_weights(path)
    for ours, theirs in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------

def _keras_error(call):
    with pytest.raises(Exception) as error:
        call()
    return str(error.value)


@pytest.mark.parametrize("filepath", ["model.h5", "model.keras", "model.weights", "weights.h5.tmp"])
def test_save_refuses_other_extensions_with_keras_wording(keras, tmp_path, filepath):
    path = str(tmp_path / filepath)
    with pytest.raises(ValueError) as error:
        _fastcnn("dense-only").save_weights(path)
    assert str(error.value) == _keras_error(lambda: _keras(keras, "dense-only").save_weights(path))
    assert str(error.value) == f"The filename must end in `.weights.h5`. Received: filepath={path}"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("filepath", ["model.keras", "model.weights.json", "model.npz"])
def test_load_refuses_other_formats(filepath):
    with pytest.raises(ValueError, match=r"^File format not supported: filepath=" + filepath + r"\. .*\.weights\.h5"):
        _fastcnn("dense-only").load_weights(filepath)


def test_unbuilt_model_errors_match_keras(keras, tmp_path):
    path = str(tmp_path / "unbuilt.weights.h5")
    for method in ("save_weights", "load_weights"):
        with pytest.raises(ValueError) as ours:
            getattr(models.Sequential([layers.Dense(3)]), method)(path)
        theirs = _keras_error(lambda: getattr(keras.Sequential([keras.layers.Dense(3)]), method)(path))
        assert str(ours.value) == theirs


def test_variable_count_mismatch_message_is_keras(keras, tmp_path):
    """A BatchNormalization without beta (3 variables) into one with it (4): the same message."""
    source = models.Sequential([layers.Input((5,)), layers.BatchNormalization(center=False, name="bn")])
    path = str(tmp_path / "three.weights.h5")
    source.save_weights(path)
    target = models.Sequential([layers.Input((5,)), layers.BatchNormalization(name="bn")])
    with pytest.raises(ValueError) as ours:
        target.load_weights(path)
    twin = keras.Sequential([keras.Input((5,)), keras.layers.BatchNormalization(name="bn")])
    assert str(ours.value) == _keras_error(lambda: twin.load_weights(path))
    assert "Layer 'bn' expected 4 variables, but received 3 variables" in str(ours.value)


def _mismatched(tmp_path):
    """A file from a model whose last Dense has 4 units, and a model with 3."""
    source = models.Sequential([layers.Input((5,)), layers.Dense(6, name="hidden"), layers.Dense(4, name="head")])
    source.set_weights(_distinct_weights(source, seed=8))
    path = str(tmp_path / "mismatch.weights.h5")
    source.save_weights(path)
    target = models.Sequential([layers.Input((5,)), layers.Dense(6, name="hidden"), layers.Dense(3, name="head")])
    return source, target, path


def test_shape_mismatch_names_the_layer_and_loads_nothing(tmp_path):
    source, target, path = _mismatched(tmp_path)
    before = target.get_weights()
    with pytest.raises(ValueError) as error:
        target.load_weights(path)
    message = str(error.value)
    assert message.startswith("A total of 1 objects could not be loaded. Example error message for object "
                              "<Dense name=head, built=True>:")
    assert "Layer 'head': variable 0 (kernel) has shape (6, 3) in the model but (6, 4) in the weights file" in message
    for old, new in zip(before, target.get_weights()):
        np.testing.assert_array_equal(old, new)  # not even the matching layer was written


def test_skip_mismatch_loads_the_rest_and_warns(tmp_path):
    source, target, path = _mismatched(tmp_path)
    head_before = target.get_layer("head").get_weights()
    with pytest.warns(UserWarning, match=r"(?s)A total of 1 objects could not be loaded.*Layer 'head'"):
        target.load_weights(path, skip_mismatch=True)
    for ours, theirs in zip(target.get_layer("hidden").get_weights(), source.get_layer("hidden").get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    for ours, before in zip(target.get_layer("head").get_weights(), head_before):
        np.testing.assert_array_equal(ours, before)


def test_keras_also_refuses_the_mismatch(keras, tmp_path):
    _, _, path = _mismatched(tmp_path)
    twin = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, name="hidden"),
                             keras.layers.Dense(3, name="head")])
    assert _keras_error(lambda: twin.load_weights(path)).startswith(
        "A total of 1 objects could not be loaded. Example error message for object <Dense name=head, built=True>:")


@pytest.mark.parametrize("bad", ["int32", "group"])
def test_non_float_or_missing_arrays_are_refused(tmp_path, bad):
    model = models.Sequential([layers.Input((5,)), layers.Dense(2, name="head")])
    path = str(tmp_path / "bad.weights.h5")
    model.save_weights(path)
    with h5py.File(path, "a") as file:
        del file["layers/dense/vars/1"]
        if bad == "int32":
            file["layers/dense/vars/1"] = np.zeros(2, dtype=np.int32)
        else:
            file["layers/dense/vars"].create_group("1")
    pattern = (r"variable 1 \(bias\) must be a float array.*dtype int32" if bad == "int32"
               else r"no dataset '/layers/dense/vars/1' for variable 1 \(bias\)")
    with pytest.raises(ValueError, match=r"(?s)Layer 'head'.*" + pattern):
        model.load_weights(path)


def test_float64_arrays_are_accepted(tmp_path):
    model = models.Sequential([layers.Input((5,)), layers.Dense(2)])
    path = str(tmp_path / "f64.weights.h5")
    model.save_weights(path)
    values = np.linspace(-1, 1, 10).reshape(5, 2)
    with h5py.File(path, "a") as file:
        del file["layers/dense/vars/0"]
        file["layers/dense/vars/0"] = values
    model.load_weights(path)
    np.testing.assert_array_equal(model.get_weights()[0], values.astype(np.float32))


def test_bad_filepath_type():
    with pytest.raises(TypeError, match=r"`filepath`.*filepath=None"):
        _fastcnn("dense-only").save_weights(None)
    with pytest.raises(TypeError, match=r"`filepath`.*filepath=3"):
        _fastcnn("dense-only").load_weights(3)


def test_missing_h5py_gives_an_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` raise ImportError
    with pytest.raises(ImportError, match=r"requires the h5py package.*pip install h5py"):
        _fastcnn("dense-only").save_weights(tmp_path / "x.weights.h5")
    assert os.listdir(tmp_path) == []


def test_importing_fastcnn_does_not_import_h5py():
    code = "import sys, fastcnn; fastcnn.models.Sequential; print('h5py' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=os.path.dirname(os.path.abspath(__file__)))
    assert result.stdout.strip() == "False"
