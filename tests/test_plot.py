"""plot_history and `python -m fastcnn --plot` (the README's image-folder example: tests/test_readme.py)."""

import os
import subprocess
import sys

import pytest

from fastcnn import callbacks, utils

pytest.importorskip("matplotlib")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _history():
    history = callbacks.History()
    history.history = {"accuracy": [0.5, 0.7, 0.8], "loss": [1.2, 0.8, 0.6], "val_accuracy": [0.4, 0.6, 0.7],
                       "val_loss": [1.3, 1.0, 0.9]}
    return history


def test_plot_history_writes_a_png_with_loss_and_accuracy_panels(tmp_path):
    path = tmp_path / "curves.png"
    figure = utils.plot_history(_history(), path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]   # loss first
    loss_lines = {line.get_label(): list(line.get_ydata()) for line in axes[0].get_lines()}
    assert loss_lines == {"training": [1.2, 0.8, 0.6], "validation": [1.3, 1.0, 0.9]}
    assert list(axes[0].get_lines()[0].get_xdata()) == [1, 2, 3]


def test_plot_history_takes_the_dict_and_a_metric_subset():
    figure = utils.plot_history({"loss": [1.0, 0.5], "val_loss": [1.1]}, metrics="loss")
    (ax,) = figure.get_axes()
    validation = [line for line in ax.get_lines() if line.get_label() == "validation"][0]
    assert list(validation.get_xdata()) == [2]   # validation_freq=2: validated at epoch 2
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_plot_history_bad_inputs():
    with pytest.raises(ValueError, match=r"the history does not hold: \['acc'\]"):
        utils.plot_history(_history(), metrics=["acc"])
    with pytest.raises(TypeError, match="Received: list"):
        utils.plot_history([0.1, 0.2])
    with pytest.raises(ValueError, match="holds no metrics to plot"):
        utils.plot_history({})


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install fastcnn\[plot\]"):
        utils.plot_history(_history())


def test_main_plot_writes_the_curves(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastcnn", "--epochs", "2", "--verbose", "0", "--plot",
                             "history.png"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, result.stderr
    assert "training curves (validation = the test set): history.png" in result.stdout
    assert (tmp_path / "history.png").read_bytes()[:8] == PNG_SIGNATURE
