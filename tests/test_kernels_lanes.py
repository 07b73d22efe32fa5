"""Channel counts around every tier's vector and block widths, against the reference kernels.

The optimised tiers work in vectors of 8 lanes (generic, avx2) or 16 (avx512), in convolution blocks
of two vectors (16 or 32 output channels), and in a one-vector block where a layer has at most one
vector of output channels; the lanes past a layer's last channel are masked (AVX-512 masks, AVX2
masked moves) or copied. So every count from 1 to 17 and those next to 32, 48 and 64 are checked:
full blocks, one lane short or over, a lone vector, a block and a half. Tolerances as in
test_kernels.py (float32 summation order); max pooling exactly.
"""

import numpy as np
import pytest

from fastcnn import _core

ops = _core.ops

TIERS = [name for name in _core.available_kernels() if name != "reference"]
CHANNELS = list(range(1, 18)) + [31, 32, 33, 47, 48, 49, 63, 65]
WINOGRAD_CHANNELS = [16, 17, 31, 32, 33, 47, 48, 49, 63, 65]  # Winograd runs from 16 channels on both sides

pytestmark = pytest.mark.skipif(not TIERS, reason="no optimised kernel tier on this CPU")


def assert_close(actual, reference, what, rtol=1e-5):
    actual = np.asarray(actual)
    reference = np.asarray(reference)
    assert actual.shape == reference.shape, f"{what}: shape {actual.shape} != {reference.shape}"
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    np.testing.assert_allclose(actual, reference, rtol=rtol, atol=rtol * max(1.0, scale), err_msg=what)


def conv_case(seed, batch, height, width, in_channels, out_channels, kernel_size):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, height, width, in_channels)).astype(np.float32)
    fan_in = kernel_size[0] * kernel_size[1] * in_channels
    kernel = (rng.standard_normal(kernel_size + (in_channels, out_channels)) / np.sqrt(fan_in)).astype(np.float32)
    bias = (0.5 * rng.standard_normal(out_channels)).astype(np.float32)
    return x, kernel, bias


def check_conv(tier, x, kernel, bias, strides=(1, 1), padding="same", activation="relu"):
    """Forward (bias and activation in the epilogue), input gradient, kernel and bias gradients."""
    what = f"{tier} {x.shape} * {kernel.shape} strides {strides}"
    geometry = dict(strides=strides, padding=padding)
    reference = ops.conv2d_forward(x, kernel, bias, activation=activation, kernels="reference", **geometry)
    assert_close(ops.conv2d_forward(x, kernel, bias, activation=activation, kernels=tier, **geometry), reference,
                 f"{what} forward")
    dy = np.random.default_rng(x.size).standard_normal(reference.shape).astype(np.float32)
    assert_close(ops.conv2d_backward_input(dy, kernel, x.shape, kernels=tier, **geometry),
                 ops.conv2d_backward_input(dy, kernel, x.shape, kernels="reference", **geometry), f"{what} input gradient")
    dk, db = ops.conv2d_backward_kernel(x, dy, kernel.shape[:2], use_bias=True, kernels=tier, **geometry)
    ref_dk, ref_db = ops.conv2d_backward_kernel(x, dy, kernel.shape[:2], use_bias=True, kernels="reference", **geometry)
    assert_close(dk, ref_dk, f"{what} kernel gradient")
    assert_close(db, ref_db, f"{what} bias gradient")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels", CHANNELS)
def test_conv2d_output_channel_counts(tier, channels):
    # 3 input channels (a first layer: merged taps, narrow input gradient), stride 1 and 2.
    x, kernel, bias = conv_case(channels, 2, 7, 9, 3, channels, (3, 3))
    check_conv(tier, x, kernel, bias)
    check_conv(tier, x, kernel, bias, strides=(2, 2))


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels", CHANNELS)
def test_conv2d_input_channel_counts(tier, channels):
    # The input gradient's channels are the layer's input channels; a 1x1 and a strided 2x3 kernel.
    x, kernel, bias = conv_case(100 + channels, 2, 5, 6, channels, 7, (1, 1))
    check_conv(tier, x, kernel, bias, padding="valid")
    x, kernel, bias = conv_case(200 + channels, 1, 6, 7, channels, 19, (2, 3))
    check_conv(tier, x, kernel, bias, strides=(2, 1))


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels", WINOGRAD_CHANNELS)
def test_conv2d_winograd_channel_counts(tier, channels):
    # 3x3 stride 1 with at least 16 channels on both sides: Winograd forward, input and kernel gradients.
    x, kernel, bias = conv_case(300 + channels, 2, 6, 7, channels, 16, (3, 3))
    check_conv(tier, x, kernel, bias)
    x, kernel, bias = conv_case(400 + channels, 1, 9, 5, 16, channels, (3, 3))
    check_conv(tier, x, kernel, bias, activation="linear")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("units", [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 65])
def test_dense_unit_counts(tier, units):
    rng = np.random.default_rng(units)
    x = rng.standard_normal((13, 37)).astype(np.float32)
    kernel = (rng.standard_normal((37, units)) / 6).astype(np.float32)
    bias = rng.standard_normal(units).astype(np.float32)
    assert_close(ops.dense_forward(x, kernel, bias, kernels=tier), ops.dense_forward(x, kernel, bias, kernels="reference"),
                 f"{tier} dense forward {units}")
    dy = rng.standard_normal((13, units)).astype(np.float32)
    assert_close(ops.dense_backward_input(dy, kernel, kernels=tier),
                 ops.dense_backward_input(dy, kernel, kernels="reference"), f"{tier} dense input gradient {units}")
    dk, db = ops.dense_backward_kernel(x, dy, kernels=tier)
    ref_dk, ref_db = ops.dense_backward_kernel(x, dy, kernels="reference")
    assert_close(dk, ref_dk, f"{tier} dense kernel gradient {units}")
    assert_close(db, ref_db, f"{tier} dense bias gradient {units}")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels", CHANNELS)
def test_fused_conv_max_pool_channel_counts(tier, channels):
    x, kernel, bias = conv_case(500 + channels, 2, 8, 9, 1, channels, (3, 3))
    pooled, index = ops.conv2d_max_pool2d_forward(x, kernel, bias, activation="relu", kernels=tier)
    ref_pooled, ref_index = ops.conv2d_max_pool2d_forward(x, kernel, bias, activation="relu", kernels="reference")
    assert_close(pooled, ref_pooled, f"{tier} fused forward {channels}")
    gradient = np.random.default_rng(channels).standard_normal(pooled.shape).astype(np.float32)
    # From the tier's own forward result (its window positions), as training runs it.
    dk, db = ops.conv2d_max_pool2d_backward_kernel(x, pooled, index, gradient, kernel_size=(3, 3), activation="relu",
                                                   kernels=tier)
    ref_dk, ref_db = ops.conv2d_max_pool2d_backward_kernel(x, pooled, index, gradient, kernel_size=(3, 3),
                                                           activation="relu", kernels="reference")
    assert_close(dk, ref_dk, f"{tier} fused kernel gradient {channels}")
    assert_close(db, ref_db, f"{tier} fused bias gradient {channels}")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels", CHANNELS)
def test_max_pool_channel_counts(tier, channels):
    rng = np.random.default_rng(channels)
    x = rng.integers(-3, 4, (2, 7, 6, channels)).astype(np.float32)  # ties: the first maximum wins
    for pool, strides, padding in [((2, 2), (2, 2), "valid"), ((3, 3), (2, 2), "same")]:
        out = ops.max_pool2d_forward(x, pool, strides, padding, kernels=tier)
        np.testing.assert_array_equal(out, ops.max_pool2d_forward(x, pool, strides, padding, kernels="reference"))
        dy = rng.standard_normal(out.shape).astype(np.float32)
        np.testing.assert_array_equal(ops.max_pool2d_backward(x, dy, pool, strides, padding, kernels=tier),
                                      ops.max_pool2d_backward(x, dy, pool, strides, padding, kernels="reference"))


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels", CHANNELS)
def test_batch_norm_channel_counts(tier, channels):
    rng = np.random.default_rng(channels)
    x = (2 * rng.standard_normal((3, 5, 4, channels)) + 1).astype(np.float32)
    mean, variance = ops.batch_norm_statistics(x, kernels=tier)
    ref_mean, ref_variance = ops.batch_norm_statistics(x, kernels="reference")
    assert_close(mean, ref_mean, f"{tier} mean", rtol=1e-4)
    assert_close(variance, ref_variance, f"{tier} variance", rtol=1e-4)
    gamma = rng.standard_normal(channels).astype(np.float32)
    beta = rng.standard_normal(channels).astype(np.float32)
    assert_close(ops.batch_norm_forward(x, ref_mean, ref_variance, gamma, beta, kernels=tier),
                 ops.batch_norm_forward(x, ref_mean, ref_variance, gamma, beta, kernels="reference"), f"{tier} BN forward",
                 rtol=1e-4)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    for relu_input in (False, True):
        actual = ops.batch_norm_backward(x, ref_mean, ref_variance, gamma, dy, kernels=tier, relu_input=relu_input)
        expected = ops.batch_norm_backward(x, ref_mean, ref_variance, gamma, dy, kernels="reference",
                                           relu_input=relu_input)
        for name, a, b in zip(["input", "gamma", "beta"], actual, expected):
            assert_close(a, b, f"{tier} BN backward {name} gradient (relu_input={relu_input})", rtol=1e-4)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "softmax"])
def test_activation_column_counts(tier, activation):
    rng = np.random.default_rng(len(activation))
    for columns in CHANNELS:
        x = (3 * rng.standard_normal((3, columns))).astype(np.float32)
        reference = ops.activation_forward(activation, x, kernels="reference")
        assert_close(ops.activation_forward(activation, x, kernels=tier), reference, f"{tier} {activation} {columns}")
        dy = rng.standard_normal(x.shape).astype(np.float32)
        assert_close(ops.activation_backward(activation, reference, dy, kernels=tier),
                     ops.activation_backward(activation, reference, dy, kernels="reference"),
                     f"{tier} {activation} backward {columns}")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels", CHANNELS)
def test_average_pool_channel_counts(tier, channels):
    """The window sums run in vectors of channels, the last partial one masked. Within 1e-6: the
    reference divides by the window's count where the tiers multiply by its reciprocal (an ulp),
    and the backward pass's dx + dy * (1 / count) may contract to one FMA."""
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((2, 7, 6, channels)).astype(np.float32)
    for pool, strides, padding in [((2, 2), (2, 2), "valid"), ((3, 3), (2, 2), "same"), ((3, 2), (1, 1), "valid")]:
        out = ops.average_pool2d_forward(x, pool, strides, padding, kernels=tier)
        assert_close(out, ops.average_pool2d_forward(x, pool, strides, padding, kernels="reference"),
                     f"{tier} average pool forward {pool} {strides} {padding}", rtol=1e-6)
        dy = rng.standard_normal(out.shape).astype(np.float32)
        assert_close(ops.average_pool2d_backward(x, dy, pool, strides, padding, kernels=tier),
                     ops.average_pool2d_backward(x, dy, pool, strides, padding, kernels="reference"),
                     f"{tier} average pool backward {pool} {strides} {padding}", rtol=1e-6)


@pytest.mark.parametrize("tier", TIERS)
def test_relu_layer_counts(tier):
    """The ReLU layer's kernels over every remainder of both vector widths: the plain relu (one
    vector pass, masked tail) exactly, NaN, -0.0 and infinities included; the parametric forms as
    the reference within float32 rounding."""
    rng = np.random.default_rng(5)
    special = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, -1.0, 2.0], np.float32)
    for count in list(range(1, 71)) + [16383, 16384, 16385, 40001]:
        x = (3 * rng.standard_normal(count)).astype(np.float32)
        x[:min(count, special.size)] = special[:count]
        dy = rng.standard_normal(count).astype(np.float32)
        dy[-1] = -dy[-1] if count % 2 else np.inf  # -0.0 and NaN where x <= 0, as dy * 0
        np.testing.assert_array_equal(ops.relu_forward(x, kernels=tier), ops.relu_forward(x, kernels="reference"),
                                      err_msg=f"{tier} relu {count}")
        actual = ops.relu_backward(x, dy, kernels=tier)
        expected = ops.relu_backward(x, dy, kernels="reference")
        nan = np.isnan(expected)
        assert np.array_equal(np.isnan(actual), nan), f"{tier} relu backward {count}: NaN positions"
        assert np.array_equal(actual[~nan].view(np.uint32), expected[~nan].view(np.uint32)), \
            f"{tier} relu backward {count}"  # bits: -0.0 where dy < 0 and x <= 0
        for settings in ({"max_value": 6.0}, {"negative_slope": 0.1}, {"threshold": 0.5, "negative_slope": 0.2}):
            finite = np.nan_to_num(x, nan=0.5, posinf=7.0, neginf=-7.0)
            finite_dy = np.nan_to_num(dy, posinf=1.0)
            assert_close(ops.relu_forward(finite, kernels=tier, **settings),
                         ops.relu_forward(finite, kernels="reference", **settings), f"{tier} {settings} {count}")
            assert_close(ops.relu_backward(finite, finite_dy, kernels=tier, **settings),
                         ops.relu_backward(finite, finite_dy, kernels="reference", **settings),
                         f"{tier} {settings} backward {count}")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("settings", [{"max_value": 6.0}, {"max_value": 3.5}, {"max_value": 0.0},
                                      {"negative_slope": 0.1}, {"negative_slope": -2.0}])
def test_clipped_and_leaky_relu_layers_are_the_reference_bit_for_bit(tier, settings):
    """ReLU(max_value=m) and LeakyReLU run in vectors with a masked tail: the same bits as the
    reference's scalar formula, at the bounds (0, m, 6), for NaN, +-0 and infinities, and for -0.0
    and NaN gradients (dy * 0)."""
    rng = np.random.default_rng(7)
    special = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 6.0, 3.5, -1.0, 2.0, 7.0], np.float32)
    for count in list(range(1, 40)) + [16383, 16385, 40001]:
        x = (4 * rng.standard_normal(count)).astype(np.float32)
        x[:min(count, special.size)] = special[:count]
        dy = rng.standard_normal(count).astype(np.float32)
        dy[-1] = -abs(dy[-1]) if count % 2 else np.nan
        for actual, expected, what in (
                (ops.relu_forward(x, kernels=tier, **settings), ops.relu_forward(x, kernels="reference", **settings),
                 "forward"),
                (ops.relu_backward(x, dy, kernels=tier, **settings),
                 ops.relu_backward(x, dy, kernels="reference", **settings), "backward")):
            nan = np.isnan(expected)
            assert np.array_equal(np.isnan(actual), nan), f"{tier} {settings} {what} {count}: NaN positions"
            assert np.array_equal(actual[~nan].view(np.uint32), expected[~nan].view(np.uint32)), \
                f"{tier} {settings} {what} {count}"


@pytest.mark.parametrize("tier", TIERS)
def test_relu_activation_counts(tier):
    """The relu activation (one vector pass with a masked tail) exactly, in place as well."""
    rng = np.random.default_rng(6)
    for count in list(range(1, 71)) + [16383, 16385]:
        x = (3 * rng.standard_normal((1, count))).astype(np.float32)
        x[0, 0] = np.nan
        reference = ops.activation_forward("relu", x, kernels="reference")
        np.testing.assert_array_equal(ops.activation_forward("relu", x, kernels=tier), reference)
        dy = rng.standard_normal(x.shape).astype(np.float32)
        np.testing.assert_array_equal(ops.activation_backward("relu", reference, dy, kernels=tier),
                                      ops.activation_backward("relu", reference, dy, kernels="reference"))


@pytest.mark.parametrize("tier", TIERS)
def test_dropout_counts(tier):
    rng = np.random.default_rng(3)
    for count in CHANNELS + [255, 256, 257]:
        x = rng.standard_normal(count).astype(np.float32)
        np.testing.assert_array_equal(ops.dropout_forward(x, 0.3, 11, kernels=tier),
                                      ops.dropout_forward(x, 0.3, 11, kernels="reference"))


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("kind", ["add", "multiply", "maximum"])
def test_merge_channel_counts(tier, kind):
    rng = np.random.default_rng(len(kind))
    for channels in CHANNELS:
        inputs = [rng.standard_normal((2, 3, 2, channels)).astype(np.float32),
                  rng.standard_normal((2, 1, 1, channels)).astype(np.float32)]
        out = ops.merge_forward(kind, inputs, kernels=tier)
        assert_close(out, ops.merge_forward(kind, inputs, kernels="reference"), f"{tier} {kind} {channels}")
        dy = rng.standard_normal(out.shape).astype(np.float32)
        for a, b in zip(ops.merge_backward(kind, inputs, dy, kernels=tier),
                        ops.merge_backward(kind, inputs, dy, kernels="reference")):
            assert_close(a, b, f"{tier} {kind} backward {channels}")


@pytest.mark.parametrize("tier", TIERS)
def test_conv2d_bitwise_identical_across_thread_counts_at_block_edges(tier):
    previous = _core.get_num_threads()
    x, kernel, bias = conv_case(7, 3, 9, 10, 33, 49, (3, 3))  # Winograd with partial blocks on both sides
    x1, kernel1, bias1 = conv_case(8, 3, 9, 10, 3, 15, (3, 3))  # the narrow tile
    dy = np.random.default_rng(9).standard_normal((3, 9, 10, 49)).astype(np.float32)
    results = {}
    try:
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            results[threads] = [
                ops.conv2d_forward(x, kernel, bias, padding="same", kernels=tier),
                ops.conv2d_backward_input(dy, kernel, x.shape, padding="same", kernels=tier),
                ops.conv2d_backward_kernel(x, dy, (3, 3), padding="same", kernels=tier)[0],
                ops.conv2d_forward(x1, kernel1, bias1, padding="same", strides=(2, 2), kernels=tier),
            ]
    finally:
        _core.set_num_threads(previous)
    for threads in (2, 3):
        for one, many in zip(results[1], results[threads]):
            np.testing.assert_array_equal(one.view(np.uint32), many.view(np.uint32), err_msg=f"{tier}: 1 vs {threads}")


def test_widest_tier_is_the_default_and_avx512_is_refused_where_unsupported():
    """The dispatcher prefers avx512 where the CPU and OS run it; elsewhere asking for it raises."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "FASTCNN_KERNELS"}
    chosen = subprocess.run([sys.executable, "-c", "from fastcnn import _core; print(_core.kernel_set())"],
                            env=env, cwd="/", capture_output=True, text=True, timeout=120)
    assert chosen.returncode == 0, chosen.stderr
    available = _core.available_kernels()
    widest = "avx512" if "avx512" in available else "avx2" if "avx2" in available else "generic"
    assert chosen.stdout.strip() == widest
    if "avx512" not in available:
        with pytest.raises(ValueError, match="AVX-512"):
            _core.select_kernels("avx512")
        forced = subprocess.run([sys.executable, "-c", "import fastcnn"], env={**env, "FASTCNN_KERNELS": "avx512"},
                                cwd="/", capture_output=True, text=True, timeout=120)
        assert forced.returncode != 0 and "AVX-512" in forced.stderr


def _sequential_chunk_sums(values, rows_per_chunk=512):
    """Per-channel sums of values (rows, channels) in double as the kernels take them: each chunk
    of 512 rows summed in row order from zero, then the chunks' sums added in chunk order
    (np.cumsum adds in order, unlike np.sum's pairwise tree)."""
    chunk_sums = [np.cumsum(values[start:start + rows_per_chunk], axis=0)[-1]
                  for start in range(0, len(values), rows_per_chunk)]
    return np.cumsum(np.array(chunk_sums), axis=0)[-1]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels", [16, 33, 96, 101, 144])
@pytest.mark.parametrize("threads", [1, 2])
def test_batch_norm_sums_are_bitwise_the_row_order_sums(tier, channels, threads):
    """Narrow rows are summed a group of channels at a time, wide rows (over two groups) row by row
    with the running sums in memory: either way each channel's sums are chains of double additions
    in row order within fixed chunks, so the statistics and beta's gradient equal, bit for bit,
    that order computed in NumPy, at any thread count (x^2 and its sum are exact to contract:
    a float's square fits a double)."""
    rng = np.random.default_rng(channels)
    rows = 1300  # three chunks, the last partial
    x = (2 * rng.standard_normal((rows, channels)) + 1).astype(np.float32)
    x64 = x.astype(np.float64)
    total, total_squares = _sequential_chunk_sums(x64), _sequential_chunk_sums(x64 * x64)
    expected_mean = (total / rows).astype(np.float32)
    expected_variance = np.maximum((total_squares - total * (total / rows)) / rows, 0.0).astype(np.float32)
    dy = rng.standard_normal((rows, channels)).astype(np.float32)
    expected_beta_gradient = _sequential_chunk_sums(dy.astype(np.float64)).astype(np.float32)
    previous = _core.get_num_threads()
    try:
        _core.set_num_threads(threads)
        mean, variance = ops.batch_norm_statistics(x.reshape(rows, 1, 1, channels), kernels=tier)
        gamma = rng.standard_normal(channels).astype(np.float32)
        _, _, beta_gradient = ops.batch_norm_backward(x.reshape(rows, 1, 1, channels), mean, variance, gamma,
                                                      dy.reshape(rows, 1, 1, channels), kernels=tier)
    finally:
        _core.set_num_threads(previous)
    np.testing.assert_array_equal(mean, expected_mean)
    np.testing.assert_array_equal(variance, expected_variance)
    np.testing.assert_array_equal(beta_gradient, expected_beta_gradient)
