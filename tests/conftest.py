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
# The seed article's examples, as shipped: ../shared/seed_examples beside the checkout, where CI
# lays it (the repository does not copy them).
SEED_EXAMPLES = SOURCE_TREE.parent / "shared" / "seed_examples"


def seed_example(name=None):
    """The seed examples' folder, or example `name` in it. Where it is missing the test fails
    (never skips: CI must not pass without running them), naming the path it looked for."""
    path = SEED_EXAMPLES if name is None else SEED_EXAMPLES / name
    if not path.exists():
        pytest.fail(f"seed example missing: {path} (CI lays ../shared beside the checkout)")
    return path


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


@pytest.fixture(scope="session")
def keras(tf):
    """Keras 3 (tf.keras is the same package; `keras.saving` is reached through it)."""
    import keras as keras_module

    return keras_module


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


def smallest_max_pool_gap(tf, keras_model, x):
    """The smallest relative gap between the largest and second-largest value of any max-pooling
    window (with a positive maximum) that `keras_model` sees on the batch x; exact ties (a ReLU's
    zeros, a saturated tanh's ones) do not count, since every implementation computes them alike.

    Max pooling routes the gradient to one position; when two values of a window lie closer than
    float32 rounding, two correct implementations (TensorFlow and ours, summing in different
    orders) may pick different ones, and training diverges from there. Parity tests over several
    steps assert that their data has no such near-tie, so a failure means a real difference."""
    pools = [layer for layer in keras_model.layers if isinstance(layer, tf.keras.layers.MaxPooling2D)]
    if not pools:
        return np.inf
    probe = tf.keras.Model(keras_model.inputs, [layer.input for layer in pools])
    inputs = probe(x, training=True)
    inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    smallest = np.inf
    for layer, values in zip(pools, inputs):
        values = np.asarray(values, dtype=np.float64)
        (pool_h, pool_w), (stride_h, stride_w) = layer.pool_size, layer.strides
        _, height, width, _ = values.shape
        if layer.padding == "same":
            out_h, out_w = -(-height // stride_h), -(-width // stride_w)
            pad_h = max((out_h - 1) * stride_h + pool_h - height, 0)
            pad_w = max((out_w - 1) * stride_w + pool_w - width, 0)
            values = np.pad(values, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
                            constant_values=-np.inf)
        windows = np.lib.stride_tricks.sliding_window_view(values, (pool_h, pool_w), axis=(1, 2))
        windows = windows[:, ::stride_h, ::stride_w].reshape(-1, pool_h * pool_w)
        top_two = np.sort(windows, axis=1)[:, -2:]
        distinct = (top_two[:, 1] > 0) & (top_two[:, 1] != top_two[:, 0])
        if distinct.any():
            # Relative to the largest value of the tensor: float32 sums err by a few ulps of their
            # terms' magnitude, not of the (possibly small) result.
            scale = np.max(np.abs(values[np.isfinite(values)]))
            gaps = (top_two[distinct, 1] - top_two[distinct, 0]) / scale
            smallest = min(smallest, float(gaps.min()))
    return smallest
