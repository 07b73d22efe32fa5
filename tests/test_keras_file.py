"""`.keras` files: round trips with Keras 3 both ways, resuming training exactly, hostile files
(each a clear exception with nothing executed), and atomic saves."""

import base64
import io
import json
import marshal
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import fastcnn
from fastcnn import models, optimizers
from fastcnn._optimizer_state import optimizer_state_arrays
from conftest import relative_error, smallest_max_pool_gap

h5py = pytest.importorskip("h5py")


def _example_model(lib, number):
    """The seed examples' architectures (shared/seed_examples/example{1,2,3}.py), built with `lib`."""
    L = lib.layers
    stack = [L.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)), L.MaxPooling2D((2, 2)),
             L.Conv2D(64, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)), L.Flatten()]
    if number == 2:
        stack.append(L.Dropout(0.5))
    if number == 3:
        stack = [L.Conv2D(32, (3, 3), padding="same", activation="relu", input_shape=(64, 64, 3)),
                 L.BatchNormalization(), L.Conv2D(32, (3, 3), padding="same", activation="relu"),
                 L.BatchNormalization(), L.MaxPooling2D((2, 2)),
                 L.Conv2D(64, (3, 3), padding="same", activation="relu"), L.BatchNormalization(),
                 L.Conv2D(64, (3, 3), padding="same", activation="relu"), L.BatchNormalization(),
                 L.MaxPooling2D((2, 2)), L.Flatten(), L.Dropout(0.5)]
    stack.append(L.Dense(10, activation="softmax"))
    return lib.models.Sequential(stack)


def _data(number, n=24, seed=0):
    rng = np.random.default_rng(seed)
    shape = (64, 64, 3) if number == 3 else (28, 28, 1)
    return rng.random((n,) + shape).astype(np.float32), rng.integers(0, 10, n)


def _trained(number, steps_epochs=1):
    fastcnn.utils.set_random_seed(number)
    model = _example_model(fastcnn, number)
    model.compile(optimizer=optimizers.Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = _data(number)
    model.fit(x, y, batch_size=8, epochs=steps_epochs, verbose=0)
    return model


# --------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------

def _assert_same_optimizer_state(model, keras_model):
    """The optimizer travelled: iteration, learning rate and every slot equal Keras's variables."""
    ours = optimizer_state_arrays(model)
    theirs = [v.numpy() for v in keras_model.optimizer.variables]
    assert len(ours) == len(theirs) > 2
    for a, e in zip(ours, theirs):
        np.testing.assert_array_equal(a, e)


def _assert_same_step(tf, model, keras_model, number):
    """One more step in both continues identically (the optimizer state travelled). On a batch
    without max-pooling near-ties: two correct float32 implementations may route such a window's
    gradient to different positions (see smallest_max_pool_gap), which no file format can help."""
    for seed in range(100, 130):
        x, y = _data(number, n=8, seed=seed)
        if smallest_max_pool_gap(tf, keras_model, x) > 1e-6:
            break
    else:
        pytest.fail("no tie-free batch in 30 draws")
    model.train_on_batch(x, y)
    keras_model.train_on_batch(x, y)
    for a, e in zip(model.get_weights(), keras_model.get_weights()):
        assert relative_error(a, e) <= 1e-4


@pytest.mark.parametrize("number", [1, 2, 3])
def test_fastcnn_to_keras_to_fastcnn(tf, tmp_path, number):
    """Saved by fastcnn, loaded and predicted by Keras, saved again by Keras, loaded by fastcnn:
    the same predictions all along, and training continues identically in both."""
    model = _trained(number)
    x, y = _data(number, n=16, seed=1)
    model.save(tmp_path / "ours.keras")
    keras_model = tf.keras.models.load_model(tmp_path / "ours.keras")
    expected = model.predict(x, verbose=0)
    assert relative_error(keras_model.predict(x, verbose=0), expected) <= 1e-5
    _assert_same_optimizer_state(model, keras_model)
    if number == 1:  # no dropout: the next training step is comparable across frameworks
        _assert_same_step(tf, model, keras_model, number)
    keras_model.save(tmp_path / "theirs.keras")
    again = models.load_model(tmp_path / "theirs.keras")
    assert relative_error(again.predict(x, verbose=0), keras_model.predict(x, verbose=0)) <= 1e-5
    assert again.optimizer.iterations == int(keras_model.optimizer.iterations)


@pytest.mark.parametrize("number", [1, 2, 3])
def test_keras_to_fastcnn_to_keras(tf, tmp_path, number):
    tf.keras.utils.set_random_seed(number)
    keras_model = _example_model(tf.keras, number)
    keras_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data(number)
    keras_model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    keras_model.save(tmp_path / "theirs.keras")
    model = models.load_model(tmp_path / "theirs.keras")
    assert [layer.name for layer in model.layers] == [layer.name for layer in keras_model.layers]
    assert model.count_params() == keras_model.count_params()
    assert relative_error(model.predict(x, verbose=0), keras_model.predict(x, verbose=0)) <= 1e-5
    model.save(tmp_path / "ours.keras")
    back = tf.keras.models.load_model(tmp_path / "ours.keras")
    assert relative_error(back.predict(x, verbose=0), keras_model.predict(x, verbose=0)) <= 1e-5
    _assert_same_optimizer_state(model, keras_model)
    _assert_same_optimizer_state(model, back)
    if number == 1:
        _assert_same_step(tf, model, keras_model, number)


@pytest.mark.parametrize("number", [1, 2, 3])
def test_resumed_training_matches_uninterrupted(tmp_path, number):
    """Save mid-training, load, continue: bitwise the weights of training without the break. (The
    random seed is set again at the break in both runs: building the loaded model draws initial
    weights, which would otherwise move the dropout masks of the steps after.)"""
    def run(break_after):
        fastcnn.utils.set_random_seed(4)
        model = _example_model(fastcnn, number)
        model.compile(optimizer=optimizers.Adam(learning_rate=3e-3, amsgrad=True),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        x, y = _data(number, n=32)
        for step in range(4):
            if step == 2:
                if break_after:
                    model.save(tmp_path / "mid.keras")
                    model = models.load_model(tmp_path / "mid.keras")
                fastcnn.utils.set_random_seed(5)
            model.train_on_batch(x[step * 8:(step + 1) * 8], y[step * 8:(step + 1) * 8])
        return model.get_weights() + optimizer_state_arrays(model)

    for a, b in zip(run(False), run(True)):
        np.testing.assert_array_equal(a, b)


def test_load_without_compile_gives_an_uncompiled_model(tmp_path):
    model = _trained(1)
    model.save(tmp_path / "m.keras")
    loaded = models.load_model(tmp_path / "m.keras", compile=False)
    assert not loaded.compiled
    x, _ = _data(1, n=4)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# --------------------------------------------------------------------------------------------
# hostile files: a clear exception each, and nothing executed
# --------------------------------------------------------------------------------------------

def _valid_archive(tmp_path):
    model = _trained(1)
    path = tmp_path / "valid.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_archive(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _with_config(members, edit):
    config = json.loads(members["config.json"])
    edit(config)
    return {**members, "config.json": json.dumps(config).encode()}


def test_config_naming_a_module_function_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    members = _with_config(_valid_archive(tmp_path), lambda c: c["config"]["layers"].insert(1, {
        "module": "os", "class_name": "system", "config": {"command": f"touch {marker}"}, "registered_name": None}))
    path = _write_archive(tmp_path / "evil.keras", members)
    with pytest.raises(ValueError, match="system"):
        models.load_model(path)
    assert not marker.exists()


def test_lambda_layer_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    code = compile(f"open({str(marker)!r}, 'w').close()", "<payload>", "exec")
    function = {"class_name": "__lambda__", "config": {
        "code": base64.b64encode(marshal.dumps(code)).decode(), "defaults": None, "closure": None}}
    members = _with_config(_valid_archive(tmp_path), lambda c: c["config"]["layers"].insert(2, {
        "module": "keras.layers", "class_name": "Lambda",
        "config": {"name": "lambda", "function": function, "arguments": {}}, "registered_name": None}))
    path = _write_archive(tmp_path / "lambda.keras", members)
    with pytest.raises(ValueError, match="Lambda"):
        models.load_model(path)
    assert not marker.exists()


def test_pickled_object_array_in_the_weights_is_refused(tmp_path):
    members = _valid_archive(tmp_path)
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as file:
        del file["layers/conv2d/vars/0"]
        # The bytes of a pickle that would run os.system, stored as an opaque/object dataset.
        payload = b"cos\nsystem\n(S'touch pwned'\ntR."
        file.create_dataset("layers/conv2d/vars/0", data=np.void(payload))
    path = _write_archive(tmp_path / "pickle.keras", {**members, "model.weights.h5": buffer.getvalue()})
    with pytest.raises(ValueError, match="float array"):
        models.load_model(path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_archive_is_a_clear_error(tmp_path):
    path = _write_archive(tmp_path / "whole.keras", _valid_archive(tmp_path))
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 30):
        truncated = tmp_path / f"cut{cut}.keras"
        truncated.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a valid .keras file"):
            models.load_model(truncated)


def test_zip_bomb_is_refused_before_decompressing(tmp_path):
    members = _valid_archive(tmp_path)
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", members["metadata.json"])
        archive.writestr("config.json", members["config.json"])
        # 64 MiB of zeros deflate to ~64 KiB: a 1000x expansion.
        archive.writestr(zipfile.ZipInfo("model.weights.h5"), bytes(64 << 20), compress_type=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match="decompression bomb"):
        models.load_model(path)


@pytest.mark.parametrize("name,match", [
    ("../outside.json", "climbs out"), ("/etc/passwd", "absolute path"), ("extra.bin", "unexpected archive member"),
])
def test_bad_member_names_are_refused(tmp_path, name, match):
    members = {**_valid_archive(tmp_path), name: b"x"}
    path = _write_archive(tmp_path / "names.keras", members)
    with pytest.raises(ValueError, match=match):
        models.load_model(path)


def test_too_many_members_and_missing_members(tmp_path):
    members = _valid_archive(tmp_path)
    path = tmp_path / "many.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(40):
            archive.writestr(f"assets/{index}/", b"")
    with pytest.raises(ValueError, match="40 members"):
        models.load_model(path)
    path = _write_archive(tmp_path / "noweights.keras", {"config.json": members["config.json"]})
    with pytest.raises(ValueError, match="no model.weights.h5"):
        models.load_model(path)


def test_mismatched_weight_shapes_name_the_layer(tmp_path):
    def widen(config):
        dense = [layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense"][0]
        dense["config"]["units"] = 11
    path = _write_archive(tmp_path / "shapes.keras", _with_config(_valid_archive(tmp_path), widen))
    with pytest.raises(ValueError, match=r"(?s)'dense[_0-9]*'.*\(1600, 11\).*\(1600, 10\)"):
        models.load_model(path)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", bytes(np.random.default_rng(0).integers(0, 256, 4096,
                                                                                                  dtype=np.uint8))])
def test_random_bytes_are_a_clear_error(tmp_path, content):
    path = tmp_path / "random.keras"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a valid .keras file"):
        models.load_model(path)


def test_garbage_json_and_hdf5_are_clear_errors(tmp_path):
    members = _valid_archive(tmp_path)
    for replaced, match in (({"config.json": b"{not json"}, "config.json is not valid JSON"),
                            ({"config.json": b"[" * 100000 + b"]" * 100000}, "config"),
                            ({"model.weights.h5": b"\x89HDF\r\n" + bytes(100)}, "not a valid HDF5 file")):
        path = _write_archive(tmp_path / "garbage.keras", {**members, **replaced})
        with pytest.raises(ValueError, match=match):
            models.load_model(path)


def test_wrong_extension_and_missing_file():
    with pytest.raises(ValueError, match="File format not supported"):
        models.load_model("model.h5")
    with pytest.raises(ValueError, match="File not found"):
        models.load_model("no/such/model.keras")
    model = _example_model(fastcnn, 2)
    with pytest.raises(ValueError, match="Invalid filepath extension for saving"):
        model.save("model.pt")


def test_custom_objects_are_refused():
    with pytest.raises(ValueError, match="custom_objects"):
        models.load_model("m.keras", custom_objects={"f": print})


# --------------------------------------------------------------------------------------------
# atomic saves
# --------------------------------------------------------------------------------------------

def _no_temporaries(directory):
    return [p.name for p in pathlib.Path(directory).iterdir() if p.name.endswith(".tmp")]


def test_exception_mid_save_keeps_the_previous_file(tmp_path, monkeypatch):
    from fastcnn.models import _keras_file

    model = _trained(1)
    path = tmp_path / "m.keras"
    model.save(path)
    before = path.read_bytes()

    def failing(stream, *arguments):
        stream.write(b"PK partial")
        raise OSError("disk full (injected)")

    monkeypatch.setattr(_keras_file, "_write_archive", failing)
    model.train_on_batch(*_data(1, n=8))
    with pytest.raises(OSError, match="injected"):
        model.save(path)
    assert path.read_bytes() == before
    assert _no_temporaries(tmp_path) == []
    models.load_model(path)


def test_sigkill_mid_save_keeps_a_loadable_file(tmp_path):
    """A child saves a large model over and over; killed at some point mid-save, the file it
    replaces is always a complete, loadable archive."""
    path = tmp_path / "big.keras"
    script = textwrap.dedent(f"""
        import sys
        import fastcnn
        from fastcnn import layers
        model = fastcnn.Sequential([layers.Input((4096,)), layers.Dense(2048), layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.save({str(path)!r})
        print("saved", flush=True)
        while True:
            model.save({str(path)!r})
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "saved"
        import time
        time.sleep(1.5)  # several saves of a 34 MB archive: the kill lands mid-save with high odds
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        child.stdout.close()
    model = models.load_model(path)
    assert model.count_params() == 4096 * 2048 + 2048 + 2048 * 10 + 10


def test_saving_into_a_read_only_directory_is_a_clear_error(tmp_path):
    model = _example_model(fastcnn, 2)
    if os.geteuid() == 0:
        directory = pathlib.Path("/sys")   # read-only even for root
    else:
        directory = tmp_path / "readonly"
        directory.mkdir()
        directory.chmod(0o555)
    with pytest.raises(PermissionError, match=f"Cannot save {directory / 'm.keras'}.*not|Cannot save"):
        model.save(directory / "m.keras")


def test_save_does_not_import_h5py_at_fastcnn_import():
    result = subprocess.run([sys.executable, "-c", "import sys, fastcnn; print('h5py' in sys.modules)"],
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
