"""Property-based tests over random layer configurations and shapes (hypothesis).

1. Valid configurations: every optimised tier ('generic', and 'avx2' and 'avx512' where the CPU runs them) gives
   the reference kernels' result. Tolerance: float32 summation order, |actual - reference| <=
   1e-5 * max(1, max|reference|) + 1e-5 * |reference| for the arithmetic kernels (conv, dense,
   activations; batch normalisation 1e-4, its reductions being two passes deep); exact equality
   for max pooling and dropout. The image ops have one implementation: they are checked against
   NumPy formulas (flips, identity resizes and transforms, brightness) instead.
2. Invalid configurations (a random defect applied to a valid call: a non-positive stride, pool or
   dilation, mismatched channels or gradient shapes, BN vectors of the wrong length, rates outside
   [0, 1), wrong ranks, unknown names) raise ValueError or TypeError.
3. Arbitrary integers (the whole int64 range) for window sizes, strides and dilations either work
   or raise ValueError / MemoryError: never a crash. Every case runs in this process, so a crash
   fails the suite.

Reproducible: derandomize=True and no example database. FASTCNN_FUZZ_EXAMPLES (default 40) sets
the examples per test; raise it for a longer local run.
"""

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fastcnn import _core

ops = _core.ops

TIERS = [name for name in _core.available_kernels() if name != "reference"]
EXAMPLES = int(os.environ.get("FASTCNN_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ELEMENTWISE = ["linear", "relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid", "tanh",
               "softplus", "swish", "gelu", "hard_silu", "mish", "softsign"]

pytestmark = pytest.mark.skipif(not TIERS, reason="no optimised kernel tier on this CPU")


def assert_close(actual, reference, what, tolerance=1e-5):
    actual, reference = np.asarray(actual), np.asarray(reference)
    assert actual.shape == reference.shape, f"{what}: shape {actual.shape} != {reference.shape}"
    assert actual.dtype == np.float32, f"{what}: dtype {actual.dtype}"
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    np.testing.assert_allclose(actual, reference, rtol=tolerance, atol=tolerance * max(1.0, scale), err_msg=what)


def normal(seed, shape, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


@st.composite
def windows(draw, max_window=4, allow_dilation=True):
    """(height, width, kernel, strides, dilation, padding) with the window inside the input for 'valid'."""
    kernel = (draw(st.integers(1, max_window)), draw(st.integers(1, max_window)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if allow_dilation else (1, 1)
    padding = draw(st.sampled_from(["valid", "same"]))
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    low = effective if padding == "valid" else [1, 1]
    height, width = draw(st.integers(low[0], low[0] + 6)), draw(st.integers(low[1], low[1] + 6))
    return height, width, kernel, strides, dilation, padding


# ---------------------------------------------------------------------------------------------
# 1. valid configurations: optimised tiers == reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
@FUZZ
@given(window=windows(), batch=st.integers(0, 3), channels=st.integers(1, 9), filters=st.integers(1, 17),
       activation=st.sampled_from(ELEMENTWISE), use_bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_conv2d_tiers_match_reference(tier, window, batch, channels, filters, activation, use_bias, seed):
    height, width, kernel_size, strides, dilation, padding = window
    geometry = dict(strides=strides, padding=padding, dilation=dilation)
    x = normal(seed, (batch, height, width, channels))
    kernel = normal(seed + 1, kernel_size + (channels, filters), 1.0 / math.sqrt(channels * np.prod(kernel_size)))
    bias = normal(seed + 2, (filters,)) if use_bias else None
    reference = ops.conv2d_forward(x, kernel, bias, activation=activation, kernels="reference", **geometry)
    assert_close(ops.conv2d_forward(x, kernel, bias, activation=activation, kernels=tier, **geometry), reference,
                 f"{tier} conv2d_forward")
    dy = normal(seed + 3, reference.shape)
    assert_close(ops.conv2d_backward_input(dy, kernel, x.shape, kernels=tier, **geometry),
                 ops.conv2d_backward_input(dy, kernel, x.shape, kernels="reference", **geometry),
                 f"{tier} conv2d_backward_input")
    actual = ops.conv2d_backward_kernel(x, dy, kernel_size, use_bias=use_bias, kernels=tier, **geometry)
    expected = ops.conv2d_backward_kernel(x, dy, kernel_size, use_bias=use_bias, kernels="reference", **geometry)
    assert_close(actual[0], expected[0], f"{tier} conv2d_backward_kernel")
    if use_bias:
        assert_close(actual[1], expected[1], f"{tier} conv2d bias gradient")


@pytest.mark.parametrize("tier", TIERS)
@FUZZ
@given(batch=st.integers(0, 9), units_in=st.integers(1, 40), units_out=st.integers(1, 40),
       activation=st.sampled_from(ELEMENTWISE), use_bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_dense_tiers_match_reference(tier, batch, units_in, units_out, activation, use_bias, seed):
    x = normal(seed, (batch, units_in))
    kernel = normal(seed + 1, (units_in, units_out), 1.0 / math.sqrt(units_in))
    bias = normal(seed + 2, (units_out,)) if use_bias else None
    reference = ops.dense_forward(x, kernel, bias, activation=activation, kernels="reference")
    assert_close(ops.dense_forward(x, kernel, bias, activation=activation, kernels=tier), reference,
                 f"{tier} dense_forward")
    dy = normal(seed + 3, reference.shape)
    assert_close(ops.dense_backward_input(dy, kernel, kernels=tier),
                 ops.dense_backward_input(dy, kernel, kernels="reference"), f"{tier} dense_backward_input")
    actual = ops.dense_backward_kernel(x, dy, use_bias=use_bias, kernels=tier)
    expected = ops.dense_backward_kernel(x, dy, use_bias=use_bias, kernels="reference")
    assert_close(actual[0], expected[0], f"{tier} dense_backward_kernel")
    if use_bias:
        assert_close(actual[1], expected[1], f"{tier} dense bias gradient")


@pytest.mark.parametrize("tier", TIERS)
@FUZZ
@given(window=windows(allow_dilation=False), batch=st.integers(0, 3), channels=st.integers(1, 19),
       relu_input=st.booleans(), ties=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_max_pool2d_tiers_match_reference_exactly(tier, window, batch, channels, relu_input, ties, seed):
    height, width, pool, strides, _, padding = window
    x = normal(seed, (batch, height, width, channels))
    if ties:  # few distinct values: the first-maximum routing of ties decides the gradient
        x = np.round(x)
    reference = ops.max_pool2d_forward(x, pool, strides, padding, kernels="reference")
    np.testing.assert_array_equal(ops.max_pool2d_forward(x, pool, strides, padding, kernels=tier), reference)
    dy = normal(seed + 1, reference.shape)
    np.testing.assert_array_equal(
        ops.max_pool2d_backward(x, dy, pool, strides, padding, kernels=tier, relu_input=relu_input),
        ops.max_pool2d_backward(x, dy, pool, strides, padding, kernels="reference", relu_input=relu_input))


@pytest.mark.parametrize("tier", TIERS)
@FUZZ
@given(shape=st.lists(st.integers(0, 7), min_size=1, max_size=4).map(tuple).filter(lambda s: s[-1] > 0),
       activation=st.sampled_from(ELEMENTWISE + ["softmax", "log_softmax", "exponential"]),
       scale=st.sampled_from([0.1, 1.0, 30.0]),
       seed=st.integers(0, 2**31 - 1))
def test_activations_tiers_match_reference(tier, shape, activation, scale, seed):
    x = normal(seed, shape, scale)
    reference = ops.activation_forward(activation, x, kernels="reference")
    output = ops.activation_forward(activation, x, kernels=tier)
    assert_close(output, reference, f"{tier} {activation} forward")
    dy = normal(seed + 1, shape)
    assert_close(ops.activation_backward(activation, reference, dy, kernels=tier, input=x),
                 ops.activation_backward(activation, reference, dy, kernels="reference", input=x),
                 f"{tier} {activation} backward")


@pytest.mark.parametrize("tier", TIERS)
@FUZZ
@given(shape=st.lists(st.integers(0, 9), min_size=1, max_size=4).map(tuple),
       rate=st.floats(0.0, 0.95), seed=st.integers(0, 2**64 - 1))
def test_dropout_tiers_match_reference_exactly(tier, shape, rate, seed):
    x = normal(seed % 2**32, shape)
    np.testing.assert_array_equal(ops.dropout_forward(x, rate, seed, kernels=tier),
                                  ops.dropout_forward(x, rate, seed, kernels="reference"))
    np.testing.assert_array_equal(ops.dropout_backward(x, rate, seed, kernels=tier),
                                  ops.dropout_backward(x, rate, seed, kernels="reference"))


@pytest.mark.parametrize("tier", TIERS)
@FUZZ
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4).map(tuple),
       epsilon=st.sampled_from([1e-5, 1e-3, 0.5]), center=st.booleans(), scale=st.booleans(),
       relu_input=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_batch_norm_tiers_match_reference(tier, shape, epsilon, center, scale, relu_input, seed):
    channels = shape[-1]
    x = normal(seed, shape, 2.0) + 0.5
    mean, variance = ops.batch_norm_statistics(x, kernels="reference")
    actual_mean, actual_variance = ops.batch_norm_statistics(x, kernels=tier)
    assert_close(actual_mean, mean, f"{tier} batch_norm mean", 1e-4)
    assert_close(actual_variance, variance, f"{tier} batch_norm variance", 1e-4)
    gamma = normal(seed + 1, (channels,)) if scale else None
    beta = normal(seed + 2, (channels,)) if center else None
    reference = ops.batch_norm_forward(x, mean, variance, gamma, beta, epsilon, kernels="reference")
    assert_close(ops.batch_norm_forward(x, mean, variance, gamma, beta, epsilon, kernels=tier), reference,
                 f"{tier} batch_norm_forward", 1e-4)
    dy = normal(seed + 3, shape)
    actual = ops.batch_norm_backward(x, mean, variance, gamma, dy, epsilon, kernels=tier, relu_input=relu_input)
    expected = ops.batch_norm_backward(x, mean, variance, gamma, dy, epsilon, kernels="reference",
                                       relu_input=relu_input)
    for name, a, e in zip(("input", "gamma", "beta"), actual, expected):
        assert_close(a, e, f"{tier} batch_norm_backward {name} gradient", 1e-4)


@FUZZ
@given(batch=st.integers(0, 4), height=st.integers(1, 6), width=st.integers(1, 6), channels=st.integers(1, 4),
       data=st.data())
def test_image_ops_match_numpy_formulas(batch, height, width, channels, data):
    images = normal(batch * 1000 + height * 10 + width, (batch, height, width, channels))
    flags = np.array(data.draw(st.lists(st.integers(0, 3), min_size=batch, max_size=batch)), np.int64)
    expected = images.copy()
    for n, flag in enumerate(flags):
        if flag & 1:
            expected[n] = expected[n, :, ::-1]
        if flag & 2:
            expected[n] = expected[n, ::-1]
    np.testing.assert_array_equal(ops.flip(images, flags), expected)
    interpolation = data.draw(st.sampled_from(["bilinear", "nearest"]))
    np.testing.assert_array_equal(ops.resize(images, (height, width), interpolation=interpolation), images)
    fill_mode = data.draw(st.sampled_from(["reflect", "wrap", "constant", "nearest"]))
    identity = np.array([1, 0, 0, 0, 1, 0, 0, 0], np.float32)
    np.testing.assert_allclose(ops.projective_transform(images, identity, interpolation, fill_mode), images,
                               atol=1e-6)
    deltas = data.draw(st.floats(-2.0, 2.0, width=32))
    np.testing.assert_allclose(ops.brightness(images, np.float32(deltas), (-1.0, 1.0)),
                               np.clip(images + np.float32(deltas), -1.0, 1.0), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# 2. invalid configurations raise ValueError / TypeError
# ---------------------------------------------------------------------------------------------

X = np.ones((2, 5, 6, 3), np.float32)
KERNEL = np.ones((3, 3, 3, 4), np.float32)
DY = np.ones((2, 3, 4, 4), np.float32)  # conv output gradient of X, KERNEL, 'valid'
D_X = np.ones((3, 5), np.float32)
D_K = np.ones((5, 2), np.float32)


def invalid_call(defect, value, tier):
    """One op call with the defect `defect`: `bad` (from `value`) is a non-positive integer argument,
    `offset` (1 to 7) how far a shape is off."""
    bad = value if value <= 0 else -value
    offset = 1 + abs(value) % 7
    if defect == "conv-stride":
        return ops.conv2d_forward(X, KERNEL, strides=(1, bad), kernels=tier)
    if defect == "conv-dilation":
        return ops.conv2d_backward_kernel(X, DY, (3, 3), dilation=(bad, 1), kernels=tier)
    if defect == "conv-kernel-channels":
        return ops.conv2d_forward(X, np.ones((3, 3, 3 + offset, 4), np.float32), kernels=tier)
    if defect == "conv-gradient-height":
        return ops.conv2d_backward_input(np.ones((2, 3 + offset, 4, 4), np.float32), KERNEL, X.shape,
                                         kernels=tier)
    if defect == "conv-gradient-width":
        return ops.conv2d_backward_kernel(X, np.ones((2, 3, 4 + offset, 4), np.float32), (3, 3), kernels=tier)
    if defect == "conv-input-shape":
        return ops.conv2d_backward_input(DY, KERNEL, (2, bad, 6, 3), kernels=tier)
    if defect == "conv-window-too-large":
        return ops.conv2d_forward(X, np.ones((6 + offset, 3, 3, 4), np.float32), kernels=tier)
    if defect == "pool-size":
        return ops.max_pool2d_forward(X, (bad, 2), (1, 1), kernels=tier)
    if defect == "pool-stride":
        return ops.max_pool2d_backward(X, np.ones((2, 4, 5, 3), np.float32), (2, 2), (bad, 1), kernels=tier)
    if defect == "pool-gradient-shape":
        return ops.max_pool2d_backward(X, np.ones((2, 4 + offset, 5, 3), np.float32), (2, 2), (1, 1),
                                       kernels=tier)
    if defect == "dense-kernel-units":
        return ops.dense_forward(D_X, np.ones((5 + offset, 2), np.float32), kernels=tier)
    if defect == "dense-gradient-batch":
        return ops.dense_backward_kernel(D_X, np.ones((3 + offset, 2), np.float32), kernels=tier)
    if defect == "bn-mean-length":
        return ops.batch_norm_forward(D_X, np.zeros(5 + offset), np.ones(5), kernels=tier)
    if defect == "bn-gamma-length":
        return ops.batch_norm_backward(D_X, np.zeros(5), np.ones(5), np.ones(5 + offset), D_X, kernels=tier)
    if defect == "bn-gradient-shape":
        return ops.batch_norm_backward(D_X, np.zeros(5), np.ones(5), None, np.ones((3 + offset, 5)),
                                       kernels=tier)
    if defect == "bn-epsilon":
        return ops.batch_norm_forward(D_X, np.zeros(5), np.ones(5), epsilon=float(bad), kernels=tier)
    if defect == "dropout-rate":
        return ops.dropout_forward(D_X, 1.0 + offset * 0.25, 0, kernels=tier)
    if defect == "dropout-rate-nan":
        return ops.dropout_backward(D_X, float("nan"), 0, kernels=tier)
    if defect == "activation-gradient-shape":
        return ops.activation_backward("tanh", D_X, np.ones((3, 5 + offset), np.float32), kernels=tier)
    if defect == "activation-rank-0":
        return ops.activation_forward("relu", np.float32(offset), kernels=tier)
    if defect == "input-rank":
        return ops.conv2d_forward(np.ones((5, 6, 3)[: 3 - min(offset, 3)], np.float32), KERNEL, kernels=tier)
    if defect == "input-none":
        return ops.dense_backward_input(None, D_K, kernels=tier)
    if defect == "resize-size":
        return ops.resize(X, (bad, 2))
    if defect == "flip-flags":
        return ops.flip(X, np.array([4 + offset, 0]))
    if defect == "transform-shape":
        return ops.projective_transform(X, np.ones(8 + offset, np.float32))
    raise AssertionError(defect)


DEFECTS = ["conv-stride", "conv-dilation", "conv-kernel-channels", "conv-gradient-height", "conv-gradient-width",
           "conv-input-shape", "conv-window-too-large", "pool-size", "pool-stride", "pool-gradient-shape",
           "dense-kernel-units", "dense-gradient-batch", "bn-mean-length", "bn-gamma-length", "bn-gradient-shape",
           "bn-epsilon", "dropout-rate", "dropout-rate-nan", "activation-gradient-shape", "activation-rank-0",
           "input-rank", "input-none", "resize-size", "flip-flags", "transform-shape"]


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@settings(FUZZ, max_examples=4 * EXAMPLES)
@given(defect=st.sampled_from(DEFECTS), value=st.integers(-(2**62), 2**62))
def test_invalid_configurations_raise_value_or_type_error(tier, defect, value):
    with pytest.raises((ValueError, TypeError)):
        invalid_call(defect, value, tier)


# ---------------------------------------------------------------------------------------------
# 3. arbitrary int64 window arguments: a result or a Python exception, never a crash
# ---------------------------------------------------------------------------------------------

ANY_INT64 = st.one_of(st.integers(-3, 8), st.integers(-(2**63), 2**63 - 1),
                      st.sampled_from([2**31, 2**32, 2**50, 2**62, 2**63 - 1, -(2**63)]))


@settings(FUZZ, max_examples=4 * EXAMPLES)
@given(op=st.sampled_from(["conv_forward", "conv_backward_input", "conv_backward_kernel", "pool", "resize"]),
       first=ANY_INT64, second=ANY_INT64, third=ANY_INT64, padding=st.sampled_from(["valid", "same"]),
       tier=st.sampled_from(["reference"] + TIERS))
def test_arbitrary_int64_window_arguments_never_crash(op, first, second, third, padding, tier):
    x = np.ones((1, 4, 5, 2), np.float32)
    # Valid but large sizes do real work (a kernel gradient or a resized image of first * second
    # values): bounded here to keep the test fast; the harness (scripts/fuzz_bindings.py) goes further.
    if op in ("conv_backward_kernel", "resize") and first > 0 and second > 0:
        assume(first * second <= 2**12)
    try:
        if op == "conv_forward":
            result = ops.conv2d_forward(x, np.ones((2, 2, 2, 3), np.float32), strides=(first, second),
                                        dilation=(third, 1), padding=padding, kernels=tier)
        elif op == "conv_backward_input":
            result = ops.conv2d_backward_input(np.ones((1, 1, 1, 3), np.float32), np.ones((2, 2, 2, 3), np.float32),
                                               (1, 4, 5, 2), strides=(first, second), dilation=(1, third),
                                               padding=padding, kernels=tier)
        elif op == "conv_backward_kernel":
            result = ops.conv2d_backward_kernel(x, np.ones((1, 1, 1, 3), np.float32), (first, second),
                                                strides=(third, third), padding=padding, kernels=tier)[0]
        elif op == "pool":
            result = ops.max_pool2d_forward(x, (first, second), (third, 1), padding, kernels=tier)
        else:
            result = ops.resize(x, (first, second), window_size=(max(third, 1), 2))
    except (ValueError, MemoryError):
        return
    assert np.all(np.isfinite(result))
