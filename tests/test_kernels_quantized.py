"""The int8 inference kernels (csrc/ops/quantized.h): every optimised tier against the reference,
exactly for the quantization and the int32 sums, within float32 rounding for the dequantizing
epilogue; the reference itself against NumPy's formulas (int64 arithmetic for the sums)."""

import numpy as np
import pytest

from fastcnn import _core
from test_kernels import numpy_conv_forward

ops = _core.ops

TIERS = [name for name in _core.available_kernels() if name != "reference"]


def numpy_quantize(x, scale):
    inverse = np.float32(1.0) / np.float32(scale)
    return np.rint(np.clip(np.asarray(x, np.float32) * inverse, -127, 127)).astype(np.int8)


def random_int8(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)


# ---- quantize_int8 ----

@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 31, 1000, 40000])
def test_quantize_matches_formula_on_every_tier(rng, count):
    x = (rng.standard_normal(count) * 3).astype(np.float32)
    expected = numpy_quantize(x, 0.021)
    np.testing.assert_array_equal(ops.quantize_int8(x, 0.021, kernels="reference"), expected)
    for tier in TIERS:
        np.testing.assert_array_equal(ops.quantize_int8(x, 0.021, kernels=tier), expected, err_msg=tier)


def test_quantize_rounds_half_to_even_and_clamps():
    # Exact halves round to even (as the vector conversions do); out of range clamps to +-127,
    # never -128 (the range is symmetric).
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.4, 127.6, 1e9, -1e9, -127.6, -128.0, 0.0, -0.0, 3.49],
                 np.float32)
    expected = np.array([0, 2, 2, 0, -2, -2, 126, 127, 127, 127, -127, -127, -127, 0, 0, 3], np.int8)
    for tier in ["reference"] + TIERS:
        np.testing.assert_array_equal(ops.quantize_int8(x, 1.0, kernels=tier), expected, err_msg=tier)


def test_quantize_keeps_shape_and_rejects_bad_scale():
    x = np.ones((2, 3, 4), np.float32)
    assert ops.quantize_int8(x, 0.5).shape == (2, 3, 4)
    assert ops.quantize_int8(x, 0.5).dtype == np.int8
    for scale in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale"):
            ops.quantize_int8(x, scale)


# ---- conv2d_int8_forward ----

CONV_CASES = [
    # batch, height, width, in, out, kernel, strides, padding, dilation
    (2, 5, 6, 3, 4, (3, 3), (1, 1), "valid", (1, 1)),
    (1, 7, 7, 5, 9, (3, 3), (1, 1), "same", (1, 1)),      # a column remainder past one block of 8
    (3, 6, 5, 8, 16, (1, 1), (1, 1), "valid", (1, 1)),    # 1x1: whole blocks
    (2, 4, 4, 17, 17, (1, 1), (1, 1), "valid", (1, 1)),   # odd depth: the zero-padded last pair
    (1, 9, 8, 3, 7, (3, 3), (2, 2), "same", (1, 1)),
    (2, 9, 9, 2, 5, (3, 2), (1, 2), "valid", (2, 1)),     # dilation, unequal strides and kernel
    (1, 3, 3, 4, 33, (5, 5), (1, 1), "same", (1, 1)),     # kernel wider than the image
    (5, 1, 1, 64, 10, (1, 1), (1, 1), "valid", (1, 1)),   # a Dense layer: rows not a multiple of 6
    (1, 13, 11, 1, 24, (3, 3), (1, 1), "same", (1, 1)),   # one input channel, rows over several tiles
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_int8_matches_reference_exactly(rng, case):
    batch, height, width, channels, filters, kernel_size, strides, padding, dilation = case
    x = random_int8(rng, (batch, height, width, channels))
    kernel = random_int8(rng, kernel_size + (channels, filters))
    reference = ops.conv2d_int8_forward(x, kernel, strides, padding, dilation, kernels="reference")
    assert reference.dtype == np.int32
    expected = numpy_conv_forward(x.astype(np.int64), kernel.astype(np.int64), None, strides, padding, dilation)
    np.testing.assert_array_equal(reference, expected.astype(np.int64))
    for tier in TIERS:
        np.testing.assert_array_equal(ops.conv2d_int8_forward(x, kernel, strides, padding, dilation, kernels=tier),
                                      reference, err_msg=tier)


# The avx512 tier on a CPU with AVX-512 VNNI runs vpdpbusd on 4-byte depth groups and 16-column
# blocks, 5 rows x 4 blocks per micro-tile, 40 rows per gathered tile: depths not a multiple of 4,
# column counts around multiples of 16 and 64, row counts around multiples of 5 and 40.
VNNI_CASES = [
    # batch, height, width, in, out, kernel, strides, padding, dilation
    (1, 1, 1, 1, 1, (1, 1), (1, 1), "valid", (1, 1)),      # depth 1: three zero-weight padding bytes
    (1, 5, 5, 3, 15, (3, 3), (1, 1), "same", (1, 1)),      # depth 27, one partial block
    (2, 6, 7, 5, 16, (3, 3), (2, 2), "same", (1, 1)),      # depth 45, one whole block
    (1, 8, 8, 6, 17, (3, 3), (1, 1), "valid", (1, 1)),     # depth 54, a block and one lane
    (1, 9, 9, 4, 63, (2, 2), (2, 1), "same", (1, 1)),      # 4 blocks, the last partial
    (3, 4, 5, 7, 64, (3, 3), (1, 1), "same", (1, 1)),      # 4 whole blocks
    (1, 7, 6, 9, 65, (3, 3), (1, 1), "valid", (2, 2)),     # a second block group of one lane
    (1, 11, 9, 2, 130, (5, 3), (2, 3), "same", (1, 2)),    # three block groups
    (2, 9, 9, 33, 40, (1, 1), (1, 1), "valid", (1, 1)),    # 162 rows: tiles of 40 and a remainder of 2
    (1, 3, 3, 10, 48, (7, 7), (1, 1), "same", (1, 1)),     # kernel wider than the image: most taps padding
    (41, 1, 1, 259, 70, (1, 1), (1, 1), "valid", (1, 1)),  # a Dense layer: 41 rows, depth 259
]


@pytest.mark.parametrize("case", VNNI_CASES)
def test_conv2d_int8_block_and_depth_edges_match_reference(rng, case):
    batch, height, width, channels, filters, kernel_size, strides, padding, dilation = case
    x = random_int8(rng, (batch, height, width, channels))
    kernel = random_int8(rng, kernel_size + (channels, filters))
    reference = ops.conv2d_int8_forward(x, kernel, strides, padding, dilation, kernels="reference")
    expected = numpy_conv_forward(x.astype(np.int64), kernel.astype(np.int64), None, strides, padding, dilation)
    np.testing.assert_array_equal(reference, expected.astype(np.int64))
    for tier in TIERS:
        np.testing.assert_array_equal(ops.conv2d_int8_forward(x, kernel, strides, padding, dilation, kernels=tier),
                                      reference, err_msg=tier)


@pytest.mark.parametrize("input_value, kernel_value", [(127, 127), (-127, 127), (127, -127), (-127, -127)])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv2d_int8_symmetric_extremes_everywhere(input_value, kernel_value, padding):
    # The quantizer's extremes: the offset activation a + 128 at 255 or 1, every product at
    # +-16129, and with 'same' padding the border windows mixing them with padding (a = 0).
    x = np.full((1, 6, 7, 13), input_value, np.int8)
    kernel = np.full((3, 3, 13, 21), kernel_value, np.int8)
    expected = numpy_conv_forward(x.astype(np.int64), kernel.astype(np.int64), None, (1, 1), padding, (1, 1))
    for tier in ["reference"] + TIERS:
        result = ops.conv2d_int8_forward(x, kernel, (1, 1), padding, (1, 1), kernels=tier)
        np.testing.assert_array_equal(result, expected.astype(np.int64), err_msg=tier)


def test_conv2d_int8_offset_sums_past_int32_still_exact():
    # With activations offset by 128 (the VNNI path) the running sum of (127 + 128) * 127 over a
    # depth of 70001 is 2.27e9 > 2^31 - 1 and wraps; the true sum 127 * 127 * 70001 fits, and the
    # wrapped arithmetic with the compensation subtracted gives it exactly.
    depth = 70001
    x = np.full((2, 1, 1, depth), 127, np.int8)
    x[1, 0, 0, ::2] = -127
    kernel = np.full((1, 1, depth, 18), 127, np.int8)
    kernel[..., 17] = -127
    expected = (x.astype(np.int64).reshape(2, depth) @ kernel.astype(np.int64).reshape(depth, 18))
    for tier in ["reference"] + TIERS:
        result = ops.conv2d_int8_forward(x, kernel, kernels=tier)
        np.testing.assert_array_equal(result.reshape(2, 18), expected, err_msg=tier)


@pytest.mark.parametrize("value", [-128, 127])
def test_conv2d_int8_extreme_values_do_not_saturate(value):
    # Every product at its largest, 16384 (-128 * -128) or 16129: a pair of int16 products would
    # overflow int16 (the vpmaddubsw trap) but the int32 sums must be exact.
    x = np.full((2, 4, 4, 40), value, np.int8)
    kernel = np.full((3, 3, 40, 11), value, np.int8)
    kernel[..., 1] = -kernel[..., 1] if value != -128 else 127  # mixed signs in one column
    expected = numpy_conv_forward(x.astype(np.int64), kernel.astype(np.int64), None, (1, 1), "same", (1, 1))
    for tier in ["reference"] + TIERS:
        result = ops.conv2d_int8_forward(x, kernel, (1, 1), "same", (1, 1), kernels=tier)
        np.testing.assert_array_equal(result, expected.astype(np.int64), err_msg=tier)


def test_conv2d_int8_largest_depth_is_exact_and_one_more_is_refused():
    depth = 2 ** 17 - 1  # 16384 * depth = 2147467264 < 2^31
    x = np.full((1, 1, 1, depth), -128, np.int8)
    kernel = np.full((1, 1, depth, 3), -128, np.int8)
    for tier in ["reference"] + TIERS:
        result = ops.conv2d_int8_forward(x, kernel, kernels=tier)
        assert result.reshape(-1).tolist() == [16384 * depth] * 3, tier
    x = np.zeros((1, 1, 1, depth + 1), np.int8)
    with pytest.raises(ValueError, match="131072"):
        ops.conv2d_int8_forward(x, np.zeros((1, 1, depth + 1, 1), np.int8))


def test_conv2d_int8_refuses_other_dtypes():
    with pytest.raises(TypeError, match="int8 array. Received: input.dtype=float32"):
        ops.conv2d_int8_forward(np.zeros((1, 3, 3, 1), np.float32), np.zeros((1, 1, 1, 1), np.int8))
    with pytest.raises(TypeError, match="kernel.dtype=int16"):
        ops.conv2d_int8_forward(np.zeros((1, 3, 3, 1), np.int8), np.zeros((1, 1, 1, 1), np.int16))


# ---- conv2d_int8_dequantize_forward (the two kernels in one call) ----

@pytest.mark.parametrize("activation", ["linear", "relu", "relu6", "sigmoid"])
@pytest.mark.parametrize("case", VNNI_CASES[:6] + VNNI_CASES[8:])
def test_conv2d_int8_dequantize_equals_the_two_kernels(rng, case, activation):
    batch, height, width, channels, filters, kernel_size, strides, padding, dilation = case
    x = random_int8(rng, (batch, height, width, channels))
    kernel = random_int8(rng, kernel_size + (channels, filters))
    scales = rng.uniform(1e-5, 1e-3, filters).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32) if filters % 2 else None
    sums = ops.conv2d_int8_forward(x, kernel, strides, padding, dilation, kernels="reference")
    expected = ops.dequantize_int32(sums.reshape(-1, filters), scales, bias, activation,
                                    kernels="reference").reshape(sums.shape)
    for tier in ["reference"] + TIERS:
        result = ops.conv2d_int8_dequantize_forward(x, kernel, scales, bias, strides, padding, dilation, activation,
                                                    kernels=tier)
        assert result.dtype == np.float32 and result.shape == sums.shape
        # The same int32 sums; one rounding of the multiply-add apart (a fused multiply-add or not).
        np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6, err_msg=tier)


def test_conv2d_int8_dequantize_checks_its_arrays():
    x, kernel = np.zeros((1, 3, 3, 2), np.int8), np.zeros((1, 1, 2, 4), np.int8)
    with pytest.raises(ValueError, match="column_scales"):
        ops.conv2d_int8_dequantize_forward(x, kernel, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="bias"):
        ops.conv2d_int8_dequantize_forward(x, kernel, np.ones(4, np.float32), np.ones(5, np.float32))
    with pytest.raises(ValueError, match="elementwise"):
        ops.conv2d_int8_dequantize_forward(x, kernel, np.ones(4, np.float32), activation="softmax")


# ---- depthwise_conv2d_int8_forward ----

DEPTHWISE_CASES = [
    # batch, height, width, channels, depth_multiplier, kernel, strides, padding, dilation
    (2, 6, 7, 3, 1, (3, 3), (1, 1), "same", (1, 1)),
    (1, 9, 9, 16, 1, (3, 3), (2, 2), "same", (1, 1)),     # one whole avx512 vector of channels
    (1, 8, 7, 17, 1, (3, 3), (1, 1), "valid", (1, 1)),    # a vector and one channel
    (3, 5, 5, 40, 1, (5, 5), (1, 1), "same", (1, 1)),     # most windows reach the padding
    (1, 9, 8, 5, 3, (3, 3), (1, 1), "same", (1, 1)),      # depth_multiplier 3
    (2, 10, 9, 7, 2, (3, 2), (2, 3), "valid", (1, 1)),    # unequal strides and kernel
    (1, 11, 11, 6, 1, (3, 3), (1, 1), "same", (2, 2)),    # dilation
    (1, 12, 10, 4, 2, (3, 3), (1, 1), "valid", (3, 2)),
    (1, 3, 3, 9, 1, (7, 7), (1, 1), "same", (1, 1)),      # kernel wider than the image
    (1, 1, 1, 33, 4, (1, 1), (1, 1), "valid", (1, 1)),    # batch 1, one pixel
]


@pytest.mark.parametrize("case", DEPTHWISE_CASES)
def test_depthwise_int8_matches_reference_exactly(rng, case):
    from test_kernels_depthwise import numpy_depthwise

    batch, height, width, channels, multiplier, kernel_size, strides, padding, dilation = case
    x = random_int8(rng, (batch, height, width, channels))
    kernel = random_int8(rng, kernel_size + (channels, multiplier))
    reference = ops.depthwise_conv2d_int8_forward(x, kernel, strides, padding, dilation, kernels="reference")
    assert reference.dtype == np.int32
    expected = numpy_depthwise(x.astype(np.int64), kernel.astype(np.int64), None, strides, padding, dilation)
    np.testing.assert_array_equal(reference, expected.astype(np.int64))
    for tier in TIERS:
        result = ops.depthwise_conv2d_int8_forward(x, kernel, strides, padding, dilation, kernels=tier)
        np.testing.assert_array_equal(result, reference, err_msg=tier)


@pytest.mark.parametrize("value", [-128, -127, 127])
def test_depthwise_int8_extreme_values(value):
    from test_kernels_depthwise import numpy_depthwise

    x = np.full((2, 5, 6, 19), value, np.int8)
    kernel = np.full((3, 3, 19, 2), value, np.int8)
    kernel[..., 1] = 127 if value < 0 else -127  # mixed signs
    expected = numpy_depthwise(x.astype(np.int64), kernel.astype(np.int64), None, (1, 1), "same", (1, 1))
    for tier in ["reference"] + TIERS:
        result = ops.depthwise_conv2d_int8_forward(x, kernel, (1, 1), "same", (1, 1), kernels=tier)
        np.testing.assert_array_equal(result, expected.astype(np.int64), err_msg=tier)


def test_depthwise_int8_checks_its_arrays():
    with pytest.raises(TypeError, match="kernel.dtype=float32"):
        ops.depthwise_conv2d_int8_forward(np.zeros((1, 3, 3, 2), np.int8), np.zeros((1, 1, 2, 1), np.float32))
    with pytest.raises(ValueError, match="kernel"):
        ops.depthwise_conv2d_int8_forward(np.zeros((1, 3, 3, 2), np.int8), np.zeros((1, 1, 3, 1), np.int8))


# ---- dequantize_int32 ----

@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("rows, columns", [(1, 1), (7, 9), (300, 16), (3, 100)])
def test_dequantize_matches_formula_on_every_tier(rng, rows, columns, activation):
    sums = rng.integers(-2 ** 20, 2 ** 20, size=(rows, columns)).astype(np.int32)
    scales = rng.uniform(1e-6, 1e-4, columns).astype(np.float32)
    bias = rng.standard_normal(columns).astype(np.float32)
    pre = sums.astype(np.float64) * scales + bias
    expected = {"linear": pre, "relu": np.maximum(pre, 0), "sigmoid": 1 / (1 + np.exp(-pre)), "tanh": np.tanh(pre)}
    reference = ops.dequantize_int32(sums, scales, bias, activation, kernels="reference")
    np.testing.assert_allclose(reference, expected[activation], rtol=1e-5, atol=1e-6)
    for tier in TIERS:
        np.testing.assert_allclose(ops.dequantize_int32(sums, scales, bias, activation, kernels=tier), reference,
                                   rtol=1e-5, atol=1e-6, err_msg=tier)
    no_bias = ops.dequantize_int32(sums, scales, None, "linear", kernels="reference")
    np.testing.assert_allclose(no_bias, sums.astype(np.float64) * scales, rtol=1e-6)


def test_dequantize_checks_its_arrays():
    sums = np.zeros((2, 3), np.int32)
    with pytest.raises(ValueError, match="column_scales"):
        ops.dequantize_int32(sums, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="bias"):
        ops.dequantize_int32(sums, np.ones(3, np.float32), np.ones(2, np.float32))
    with pytest.raises(TypeError, match="int32 array"):
        ops.dequantize_int32(sums.astype(np.int64), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="elementwise"):
        ops.dequantize_int32(sums, np.ones(3, np.float32), activation="softmax")
