"""The seed article's examples run exactly as shipped, and the main job trains Example 2 to at
least 95% test accuracy on the embedded MNIST split."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import seed_example

def run_python(arguments, timeout=300):
    # Run outside the checkout so that `import fastcnn` finds the installed package.
    return subprocess.run([sys.executable, *arguments], capture_output=True, text=True, timeout=timeout,
                          cwd=os.path.expanduser("~") if os.path.isdir(os.path.expanduser("~")) else "/",
                          env={**os.environ, "COLUMNS": "80"})


KERAS_TOTALS = {
    "example1.py": (" Total params: 34,826 (136.04 KB)", " Trainable params: 34,826 (136.04 KB)",
                    " Non-trainable params: 0 (0.00 B)"),
    "example2.py": (" Total params: 34,826 (136.04 KB)", " Trainable params: 34,826 (136.04 KB)",
                    " Non-trainable params: 0 (0.00 B)"),
    "example3.py": (" Total params: 230,186 (899.16 KB)", " Trainable params: 229,802 (897.66 KB)",
                    " Non-trainable params: 384 (1.50 KB)"),
}


@pytest.mark.parametrize("name", sorted(KERAS_TOTALS))
def test_seed_example_prints_keras_totals(name):
    result = run_python([str(seed_example(name))])
    assert result.returncode == 0, result.stderr
    for line in KERAS_TOTALS[name]:
        assert line in result.stdout.splitlines()
    assert result.stderr == ""


def test_main_job_runs_from_the_repository_root():
    """The README's quick start runs `python -m fastcnn` in the checkout after `pip install .`: the
    uncompiled source folder then comes first on sys.path and borrows the installed `_core`."""
    root = pathlib.Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-m", "fastcnn", "--epochs", "1", "--verbose", "0"], capture_output=True,
                            text=True, timeout=300, cwd=root)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^test accuracy: 0\.\d{4}$", result.stdout, re.MULTILINE), result.stdout


def test_main_job_example3_pipeline_runs():
    """A short run of `python -m fastcnn --example 3` (the full run's accuracy is in the README)."""
    result = run_python(["-m", "fastcnn", "--example", "3", "--epochs", "1", "--train-samples", "64",
                         "--test-samples", "32", "--verbose", "0"])
    assert result.returncode == 0, result.stderr
    assert "example 3 on generated colour shapes, 64 train / 32 test" in result.stdout
    assert re.search(r"^test accuracy: [01]\.\d{4}$", result.stdout, re.MULTILINE), result.stdout


def test_main_job_reaches_95_percent_test_accuracy():
    result = run_python(["-m", "fastcnn", "--verbose", "2"], timeout=600)
    assert result.returncode == 0, result.stderr
    match = re.search(r"^test accuracy: (0\.\d{4})$", result.stdout, re.MULTILINE)
    assert match, result.stdout
    assert float(match.group(1)) >= 0.95, result.stdout
    assert re.search(r"^wall time: \d+\.\d s", result.stdout, re.MULTILINE)
    assert result.stdout.count("125/125 - ") == 10  # one verbose=2 line per epoch
