"""`python -m fastcnn train / predict / evaluate` end to end on generated JPEG folders (several
classes, odd image sizes, a corrupt file): printed metrics against model.evaluate on the same
split, the saved model in fastcnn and in Keras, predict's output against model.predict, and the
messages and exit codes of bad input."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from fastcnn import _commands, saving


def _write_folder(root, rng, per_class=24, classes=("red", "green", "blue")):
    from PIL import Image

    for label, name in enumerate(classes):
        os.makedirs(root / name, exist_ok=True)
        for index in range(per_class):
            height, width = rng.integers(20, 41, 2)  # odd sizes, resized by the pipeline
            image = rng.integers(0, 90, (height, width, 3)).astype(np.uint8)
            image[:, :, label] += 150  # the class is the dominant colour
            Image.fromarray(image).save(root / name / f"{index}.jpg", quality=95)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One training run shared by the tests: (folder, model path, printed output)."""
    rng = np.random.default_rng(0)
    root = _write_folder(tmp_path_factory.mktemp("photos") / "photos", rng)
    (root / "green" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    output = root.parent / "model.keras"
    result = subprocess.run([sys.executable, "-m", "fastcnn", "train", str(root), "--output", str(output),
                             "--image-size", "32", "--epochs", "4", "--batch-size", "16", "--verbose", "0",
                             "--plot", str(root.parent / "history.png"), "--plot",
                             str(root.parent / "confusion.png")],
                            capture_output=True, text=True, cwd=root.parent, timeout=600)
    assert result.returncode == 0, result.stderr
    return root, output, result.stdout, result.stderr


def test_train_reports_the_validation_metrics_of_the_saved_model(trained):
    root, output, printed, errors = trained
    assert "Found 73 images of 3 classes (blue, green, red): 58 for training, 15 for validation." in printed
    assert "Skipping an image that cannot be decoded" in errors and "broken.jpg" in errors
    assert f"Saved the model to {output}" in printed
    assert (root.parent / "history.png").stat().st_size > 0 and (root.parent / "confusion.png").stat().st_size > 0
    model = saving.load_model(output)
    # The same stratified split, rebuilt as train did, evaluated by the public API.
    paths, labels, class_names = _commands._labelled_folder(str(root), None)
    _, validation = _commands._stratified_split(labels, 0.2, 1337)
    kept = [i for i in validation if not paths[i].endswith("broken.jpg")]
    dataset = _commands._dataset([paths[i] for i in kept], labels[kept], class_names, 32, 16, False, 0)
    _, accuracy = model.evaluate(dataset, verbose=0)  # the saved model is compiled with metrics=["accuracy"]
    reported = float(printed.split("accuracy: ")[1].split()[0])
    assert reported == pytest.approx(accuracy, abs=1e-4)
    # The dominant colour is learnable in 4 epochs: chance (1/3) here would mean that inference, with
    # BatchNormalization's moving statistics, does not see what training saw.
    assert reported >= 0.5
    assert "confusion matrix (rows: true class, columns: predicted)" in printed
    with zipfile.ZipFile(output) as archive:
        assert json.loads(archive.read("assets/class_names.json")) == ["blue", "green", "red"]


def test_the_saved_model_loads_in_keras(keras, trained):
    _, output, _, _ = trained
    ours = saving.load_model(output)
    theirs = keras.saving.load_model(output)
    x = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


def test_predict_and_evaluate_match_the_model(trained, capsys):
    root, output, _, _ = trained
    model = saving.load_model(output)
    images = [str(root / "red" / "0.jpg"), str(root / "blue")]
    assert _commands.main(["predict", str(output), *images, "--top-k", "2", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    paths = [r["path"] for r in results]
    assert paths[0] == images[0] and len(paths) == 1 + 24
    kept, decoded = _commands._decoded(paths, (32, 32))
    expected = model.predict(decoded, verbose=0)
    names = ["blue", "green", "red"]
    for result, row in zip(results, expected):
        top = np.argsort(-row, kind="stable")[:2]
        assert [p["class"] for p in result["predictions"]] == [names[i] for i in top]
        np.testing.assert_allclose([p["probability"] for p in result["predictions"]], row[top], rtol=1e-5)
    with pytest.warns(UserWarning, match=r"Skipping an image that cannot be decoded: .*broken\.jpg"):
        assert _commands.main(["evaluate", str(output), str(root)]) == 0
    printed = capsys.readouterr()
    assert "accuracy: " in printed.out and "73 images" not in printed.out and "/72 images)" in printed.out


@pytest.mark.parametrize("arguments, code, message", [
    (["train", "/no/such/folder"], 2, "'/no/such/folder' is not a folder"),
    (["train", "{one}"], 2, "holds images of 1 class(es) (only)"),
    (["train", "{two}", "--validation-split", "1.5"], 2, "--validation-split must be in (0, 1)"),
    (["predict", "{not_a_model}", "{two}"], 1, "is not a fastcnn or Keras model file"),
    (["train", "--help"], 0, "one subfolder of images per"),
])
def test_bad_input_gives_the_shell_messages_and_exit_codes(tmp_path, rng, arguments, code, message):
    _write_folder(tmp_path / "one", rng, per_class=2, classes=("only",))
    _write_folder(tmp_path / "two", rng, per_class=2, classes=("a", "b"))
    (tmp_path / "not_a_model.keras").write_bytes(b"hello")
    filled = [a.format(one=tmp_path / "one", two=tmp_path / "two", not_a_model=tmp_path / "not_a_model.keras")
              for a in arguments]
    result = subprocess.run([sys.executable, "-m", "fastcnn", *filled], capture_output=True, text=True, timeout=300)
    assert result.returncode == code
    assert message in (result.stdout + result.stderr).replace("\n", " ")


@pytest.mark.slow
def test_train_transfer_learning_from_a_mobilenetv2_weights_file(keras, tmp_path):
    """--model mobilenetv2 --weights FILE: the base frozen under a new head, then its top fine-tuned;
    the saved model predicts as the printed report says."""
    rng = np.random.default_rng(2)
    root = _write_folder(tmp_path / "photos", rng, per_class=10)
    weights = str(tmp_path / "base.weights.h5")
    keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None).save_weights(weights)
    output = tmp_path / "model.keras"
    result = subprocess.run([sys.executable, "-m", "fastcnn", "train", str(root), "--model", "mobilenetv2",
                             "--weights", weights, "--output", str(output), "--image-size", "32", "--epochs", "2",
                             "--verbose", "0"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Transfer learning: MobileNetV2" in result.stdout and "accuracy: " in result.stdout
    model = saving.load_model(output)
    assert model.get_layer("mobilenetv2_1.00_32").count_params() > 2_000_000
    bad = subprocess.run([sys.executable, "-m", "fastcnn", "train", str(root), "--model", "mobilenetv2"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "KERAS_HOME": str(tmp_path)})
    assert bad.returncode == 2 and "--model mobilenetv2 needs --weights" in bad.stderr
