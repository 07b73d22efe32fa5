"""Shared test setup: TensorFlow quiet and single-sourced, and a guard that the tests exercise the
installed, compiled fastcnn rather than the uncompiled source folder beside them."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # TF's plain kernels: fewer rounding differences

import numpy as np
import pytest

import fastcnn

SOURCE_TREE = pathlib.Path(__file__).resolve().parent.parent


def pytest_report_header(config):
    return (f"fastcnn {fastcnn.__version__} from {pathlib.Path(fastcnn.__file__).parent}, "
            f"kernels {fastcnn.config.kernel_set()}, threads {fastcnn.config.get_num_threads()}")


@pytest.fixture(scope="session", autouse=True)
def installed_package():
    location = pathlib.Path(fastcnn.__file__).resolve().parent
    assert location != SOURCE_TREE / "fastcnn", (
        "tests imported the source tree instead of the installed package; run pytest from the "
        "repository root with the package installed (pip install '.[test]')"
    )


@pytest.fixture(scope="session")
def tf():
    import tensorflow

    tensorflow.config.experimental.enable_op_determinism()
    return tensorflow


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def relative_error(actual, expected, floor=1e-30):
    """max |actual - expected| / max(max |expected|, floor): the scale-aware error the parity bounds
    use. `floor` stops arrays that are pure rounding noise in both (a bias just before a
    BatchNormalization has an exactly-zero true gradient) from counting as large relative errors."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.size == 0:
        return 0.0
    scale = max(np.max(np.abs(expected)), floor)
    return float(np.max(np.abs(actual - expected)) / scale)
