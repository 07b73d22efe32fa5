"""The runnable examples of the README and docs/ run as printed (each executed in a fresh temporary directory)."""

import pathlib
import re

import numpy as np
import pytest

import fastcnn

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme_block(containing, document):
    """The one ```python block of `document` (README.md or a docs/ file) that contains `containing`."""
    blocks = [block for block in re.findall(r"```python\n(.*?)```", (ROOT / document).read_text(), re.S)
              if containing in block]
    assert len(blocks) == 1, f"{len(blocks)} {document} blocks contain {containing!r}"
    return blocks[0]


def run_block(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "<docs example>", "exec"), namespace)
    return namespace


@pytest.mark.slow
def test_fighting_overfitting_script_runs_as_printed(tmp_path, monkeypatch, capsys):
    """Augmentation + dropout + l2 + EarlyStopping + ModelCheckpoint, as
    docs/overfitting-and-augmentation.md prints it."""
    pytest.importorskip("h5py")
    namespace = run_block(readme_block("callbacks.EarlyStopping(monitor=\"val_loss\", patience=4",
                                       "docs/overfitting-and-augmentation.md"), tmp_path,
                          monkeypatch)
    out = capsys.readouterr().out
    match = re.search(r"stopped after (\d+) epochs; test accuracy: (\d\.\d+)", out)
    assert match, out[-2000:]
    epochs, accuracy = int(match.group(1)), float(match.group(2))
    assert epochs < 40  # early stopping stopped it
    assert accuracy >= 0.95
    model = namespace["model"]
    # The checkpoint holds the best epoch's weights, which EarlyStopping restored into the model.
    restored = model.get_weights()
    model.load_weights(tmp_path / "best.weights.h5")
    for a, b in zip(restored, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    history = namespace["history"].history
    assert min(history["val_loss"]) == pytest.approx(model.evaluate(
        namespace["x_train"][-400:], namespace["y_train"][-400:], verbose=0)[0], rel=1e-5)


def test_image_folder_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    pytest.importorskip("PIL")
    code = readme_block("image_dataset_from_directory(", "docs/data.md")
    namespace = run_block(code, tmp_path, monkeypatch)
    out = capsys.readouterr().out
    for comment in re.findall(r"^# (Found .*|Using .*)$", code, re.M):
        assert comment + "\n" in out           # the messages the example shows are the ones printed
    assert "['circle', 'horizontal_bar', 'vertical_bar']" in out
    assert len(namespace["history"].history["val_loss"]) == 6
    assert 0.0 <= namespace["accuracy"] <= 1.0 and np.isfinite(namespace["loss"])
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_fine_tuning_a_keras_trained_model_runs_as_printed(tf, tmp_path, monkeypatch, capsys):
    """docs/saving.md's two scripts: trained in Keras, fine-tuned in fastcnn with frozen layers, saved
    for Keras again."""
    pytest.importorskip("h5py")
    tf.keras.utils.set_random_seed(0)  # the test session runs TensorFlow with op determinism, which wants a seed
    run_block(readme_block('model.save("keras_trained.keras")', "docs/saving.md"), tmp_path, monkeypatch)
    namespace = run_block(readme_block('models.load_model("keras_trained.keras")', "docs/saving.md"), tmp_path,
                          monkeypatch)
    out = capsys.readouterr().out
    before = float(re.search(r"Keras-trained, on all ten digits: (\d\.\d+)", out).group(1))
    after = float(re.search(r"fine-tuned in fastcnn: (\d\.\d+)", out).group(1))
    assert before < 0.6 < 0.85 < after  # it knew half the digits; the retrained head knows them all
    assert "Trainable params: 16,010" in out
    keras_model = tf.keras.models.load_model(tmp_path / "fine_tuned.keras")
    assert [layer.trainable for layer in keras_model.layers] == [False] * 5 + [True]
    x_test = namespace["x_test"][:64]
    np.testing.assert_allclose(keras_model.predict(x_test, verbose=0), namespace["model"].predict(x_test, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_functional_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    """The README's residual network: builds, prints Keras's functional summary, trains, saves."""
    pytest.importorskip("h5py")
    # Seeded so that a failure reproduces: over seeds 0-7 this run's test accuracy spread from 0.749
    # to 0.947 (three epochs, the last one's BatchNormalization statistics still moving), so the
    # bound asks for learning (chance is 0.1), not for a good seed.
    fastcnn.utils.set_random_seed(0)
    namespace = run_block(readme_block("residual_block(x, filters)", "README.md"), tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert "Connected to" in out and 'Model: "small_resnet"' in out
    accuracy = float(re.search(r"test accuracy: (\d\.\d+)", out).group(1))
    assert accuracy >= 0.6, out[-2000:]
    assert namespace["features"].output_shape == (None, 32)
    assert (tmp_path / "small_resnet.keras").exists()


def test_functional_docs_example_runs_as_printed(tmp_path, monkeypatch):
    namespace = run_block(readme_block("layers.concatenate(branches)", "docs/functional.md"), tmp_path, monkeypatch)
    model = namespace["model"]
    assert model.output_shape == (None, 10)
    assert [type(layer).__name__ for layer in model.layers].count("Concatenate") == 1


def test_binary_classification_example_runs(tmp_path, monkeypatch, capsys):
    """docs/using.md's one-sigmoid-unit classifier with Precision, Recall and AUC: it trains and
    logs Keras's names (automatic names start afresh, as in a new process)."""
    fastcnn.utils.clear_session()
    namespace = run_block(readme_block('loss="binary_crossentropy"', "docs/using.md"), tmp_path, monkeypatch)
    logs = namespace["history"].history
    assert sorted(logs) == ["accuracy", "auc", "loss", "precision", "recall", "val_accuracy", "val_auc", "val_loss",
                            "val_precision", "val_recall"]
    assert logs["loss"][-1] < logs["loss"][0]


def test_data_md_pipeline_example_runs(tmp_path, monkeypatch):
    """docs/data.md's tf.data-style pipeline: augmentation in a parallel map, prefetch, fit."""
    namespace = run_block(readme_block("data.Dataset.from_tensor_slices((x, y))", "docs/data.md"), tmp_path,
                          monkeypatch)
    assert int(namespace["train_ds"].cardinality()) == 8
    loss, accuracy = namespace["model"].evaluate(namespace["data"].Dataset.from_tensor_slices(
        (namespace["x"], namespace["y"])).batch(64), verbose=0)
    assert accuracy > 0.8  # the label is the images' brightness: learnable in 10 epochs
    assert namespace["train_ds"].element_spec[0].shape == (None, 16, 16, 3)
