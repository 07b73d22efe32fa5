"""Every optimised kernel tier against the reference kernels (the executable spec).

The tiers come from ``fastcnn._core.available_kernels()``; 'reference' is the spec and every other
tier ('generic', 'avx2' and 'avx512' where the CPU runs them) must agree with it on the same inputs: within a
float32 summation-order tolerance for the arithmetic kernels, exactly for max pooling (including the
first-maximum routing of ties) and dropout (the mask is a hash of seed and index).

A few small NumPy implementations of the formulas in csrc/ops/*.h also check the reference itself.
"""

import math
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastcnn
from fastcnn import _core

ops = _core.ops

TIERS = [name for name in _core.available_kernels() if name != "reference"]
ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh"]

pytestmark = pytest.mark.skipif(not TIERS, reason="no optimised kernel tier on this CPU")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def assert_close(actual, reference, what=""):
    """float32 results computed in another summation order: tolerance relative to the magnitude."""
    actual = np.asarray(actual)
    reference = np.asarray(reference)
    assert actual.shape == reference.shape, f"{what}: shape {actual.shape} != {reference.shape}"
    assert actual.dtype == np.float32, f"{what}: dtype {actual.dtype}"
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    np.testing.assert_allclose(actual, reference, rtol=1e-5, atol=1e-5 * max(1.0, scale), err_msg=what)


def window_output(size, kernel, stride, dilation, padding):
    """TensorFlow's output size and leading padding (csrc/ops/conv2d.h)."""
    effective = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (size - effective) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2


def make_conv_case(rng, batch, height, width, in_channels, out_channels, kernel_size, use_bias=True):
    """Inputs of unit scale and weights scaled by 1/sqrt(fan_in), so pre-activations are O(1)."""
    x = rng.standard_normal((batch, height, width, in_channels)).astype(np.float32)
    fan_in = kernel_size[0] * kernel_size[1] * in_channels
    kernel = (rng.standard_normal(tuple(kernel_size) + (in_channels, out_channels)) / math.sqrt(fan_in))
    kernel = kernel.astype(np.float32)
    bias = (0.5 * rng.standard_normal(out_channels)).astype(np.float32) if use_bias else None
    return x, kernel, bias


def check_conv_against_reference(tier, x, kernel, bias, strides=(1, 1), padding="valid",
                                  dilation=(1, 1), activation="linear", seed=0):
    """Forward, backward_input and backward_kernel (+ bias gradient) of `tier` vs the reference."""
    geometry = dict(strides=strides, padding=padding, dilation=dilation)
    reference = ops.conv2d_forward(x, kernel, bias, activation=activation, kernels="reference", **geometry)
    batch, height, width, _ = x.shape
    out_h, _ = window_output(height, kernel.shape[0], strides[0], dilation[0], padding)
    out_w, _ = window_output(width, kernel.shape[1], strides[1], dilation[1], padding)
    assert reference.shape == (batch, out_h, out_w, kernel.shape[3])
    actual = ops.conv2d_forward(x, kernel, bias, activation=activation, kernels=tier, **geometry)
    assert_close(actual, reference, f"{tier} conv2d_forward")

    dy = np.random.default_rng(seed + 1).standard_normal(reference.shape).astype(np.float32)
    ref_dx = ops.conv2d_backward_input(dy, kernel, x.shape, kernels="reference", **geometry)
    dx = ops.conv2d_backward_input(dy, kernel, x.shape, kernels=tier, **geometry)
    assert_close(dx, ref_dx, f"{tier} conv2d_backward_input")

    use_bias = bias is not None
    ref_dk, ref_db = ops.conv2d_backward_kernel(x, dy, kernel.shape[:2], use_bias=use_bias,
                                                kernels="reference", **geometry)
    dk, db = ops.conv2d_backward_kernel(x, dy, kernel.shape[:2], use_bias=use_bias, kernels=tier, **geometry)
    assert_close(dk, ref_dk, f"{tier} conv2d_backward_kernel (kernel)")
    if use_bias:
        assert_close(db, ref_db, f"{tier} conv2d_backward_kernel (bias)")
    else:
        assert db is None and ref_db is None


# NumPy versions of the formulas (float64), to check the reference kernels themselves.


def numpy_conv_geometry(x_shape, kernel_shape, strides, padding, dilation):
    _, height, width, _ = x_shape
    kh, kw = kernel_shape[:2]
    out_h, top = window_output(height, kh, strides[0], dilation[0], padding)
    out_w, left = window_output(width, kw, strides[1], dilation[1], padding)
    # Pad generously on the far side so every strided slice is in range.
    bottom = (out_h - 1) * strides[0] + (kh - 1) * dilation[0] + 1 - height - top
    right = (out_w - 1) * strides[1] + (kw - 1) * dilation[1] + 1 - width - left
    return out_h, out_w, (top, max(bottom, 0)), (left, max(right, 0))


def numpy_conv_forward(x, kernel, bias, strides, padding, dilation):
    out_h, out_w, pad_h, pad_w = numpy_conv_geometry(x.shape, kernel.shape, strides, padding, dilation)
    xp = np.pad(x.astype(np.float64), ((0, 0), pad_h, pad_w, (0, 0)))
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[3]))
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            r, c = i * dilation[0], j * dilation[1]
            patch = xp[:, r:r + (out_h - 1) * strides[0] + 1:strides[0], c:c + (out_w - 1) * strides[1] + 1:strides[1], :]
            out += patch @ kernel[i, j].astype(np.float64)
    if bias is not None:
        out += bias
    return out


def numpy_conv_backward(x, kernel, dy, strides, padding, dilation):
    out_h, out_w, pad_h, pad_w = numpy_conv_geometry(x.shape, kernel.shape, strides, padding, dilation)
    xp = np.pad(x.astype(np.float64), ((0, 0), pad_h, pad_w, (0, 0)))
    dxp = np.zeros_like(xp)
    dk = np.zeros(kernel.shape)
    dy = dy.astype(np.float64)
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            r, c = i * dilation[0], j * dilation[1]
            rows = slice(r, r + (out_h - 1) * strides[0] + 1, strides[0])
            cols = slice(c, c + (out_w - 1) * strides[1] + 1, strides[1])
            dk[i, j] = np.einsum("nhwc,nhwo->co", xp[:, rows, cols, :], dy)
            dxp[:, rows, cols, :] += dy @ kernel[i, j].astype(np.float64).T
    dx = dxp[:, pad_h[0]:pad_h[0] + x.shape[1], pad_w[0]:pad_w[0] + x.shape[2], :]
    return dx, dk, dy.sum(axis=(0, 1, 2))


def numpy_max_pool(x, pool, strides, padding):
    """Forward values and the first-maximum (row-major) argmax of every window."""
    batch, height, width, channels = x.shape
    out_h, top = window_output(height, pool[0], strides[0], 1, padding)
    out_w, left = window_output(width, pool[1], strides[1], 1, padding)
    out = np.zeros((batch, out_h, out_w, channels), np.float32)
    argmax = np.zeros((batch, out_h, out_w, channels, 2), np.int64)
    for oh in range(out_h):
        r0, r1 = max(oh * strides[0] - top, 0), min(oh * strides[0] - top + pool[0], height)
        for ow in range(out_w):
            c0, c1 = max(ow * strides[1] - left, 0), min(ow * strides[1] - left + pool[1], width)
            window = x[:, r0:r1, c0:c1, :].reshape(batch, -1, channels)
            first = np.argmax(window, axis=1)  # np.argmax returns the first maximum
            out[:, oh, ow, :] = np.take_along_axis(window, first[:, None, :], axis=1)[:, 0, :]
            argmax[:, oh, ow, :, 0] = r0 + first // (c1 - c0)
            argmax[:, oh, ow, :, 1] = c0 + first % (c1 - c0)
    return out, argmax


# ---------------------------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------------------------

GEOMETRIES = [  # (strides, dilation)
    ((1, 1), (1, 1)),
    ((2, 2), (1, 1)),
    ((2, 1), (1, 1)),
    ((1, 1), (2, 2)),
]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides,dilation", GEOMETRIES, ids=lambda v: "x".join(map(str, v)))
@pytest.mark.parametrize("kernel_size", [(1, 1), (3, 3), (5, 5), (2, 3)], ids=lambda k: f"k{k[0]}x{k[1]}")
def test_conv2d_geometry_sweep(tier, kernel_size, strides, dilation, padding):
    rng = np.random.default_rng(zlib.crc32(repr((kernel_size, strides, dilation, padding)).encode()))
    x, kernel, bias = make_conv_case(rng, 3, 9, 11, 3, 17, kernel_size)
    check_conv_against_reference(tier, x, kernel, bias, strides, padding, dilation)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("out_channels", [1, 5, 16, 17, 40])
@pytest.mark.parametrize("in_channels", [1, 3, 7, 32])
def test_conv2d_channel_sweep(tier, in_channels, out_channels):
    rng = np.random.default_rng(100 * in_channels + out_channels)
    x, kernel, bias = make_conv_case(rng, 2, 7, 9, in_channels, out_channels, (3, 3))
    check_conv_against_reference(tier, x, kernel, bias, padding="same")
    check_conv_against_reference(tier, x, kernel, bias, strides=(2, 2), padding="valid")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel_size", [(3, 3), (5, 5), (2, 3)], ids=lambda k: f"k{k[0]}x{k[1]}")
@pytest.mark.parametrize("spatial", [(7, 9), (1, 1), (2, 2), (13, 5), (6, 1), (1, 8)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
def test_conv2d_odd_spatial_sizes_same_padding(tier, spatial, kernel_size, stride):
    rng = np.random.default_rng(spatial[0] * 31 + spatial[1] + 7 * stride)
    x, kernel, bias = make_conv_case(rng, 3, spatial[0], spatial[1], 5, 17, kernel_size)
    check_conv_against_reference(tier, x, kernel, bias, strides=(stride, stride), padding="same")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides", [(2, 2), (3, 3), (2, 3), (4, 1)], ids=lambda s: f"s{s[0]}x{s[1]}")
@pytest.mark.parametrize("kernel_size", [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (7, 3)],
                         ids=lambda k: f"k{k[0]}x{k[1]}")
def test_conv2d_strided_input_gradient_phases(tier, kernel_size, strides, padding):
    """Strided layers take the input gradient one phase (ih = ph mod stride, iw = pw mod stride)
    at a time: kernels smaller than the stride leave phases that no tap reaches (zero gradient),
    sizes that are not a multiple of the stride make some phases a row or column shorter, `valid`
    leaves trailing pixels that no output reads, and phases differ in how many taps reach them."""
    rng = np.random.default_rng(zlib.crc32(repr((kernel_size, strides, padding)).encode()))
    for batch, height, width, in_channels, out_channels in ((2, 13, 11, 5, 17), (1, 9, 16, 40, 8)):
        x, kernel, bias = make_conv_case(rng, batch, height, width, in_channels, out_channels, kernel_size)
        check_conv_against_reference(tier, x, kernel, bias, strides=strides, padding=padding)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("batch", [0, 1, 3])
def test_conv2d_batch_sizes(tier, batch):
    rng = np.random.default_rng(batch)
    x, kernel, bias = make_conv_case(rng, batch, 7, 9, 7, 20, (3, 3))
    for padding in ("valid", "same"):
        check_conv_against_reference(tier, x, kernel, bias, strides=(1, 2), padding=padding)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("shape", [(2, 40, 37, 20), (1, 2, 700, 3), (1, 600, 1, 2)], ids=lambda s: "x".join(map(str, s)))
def test_conv2d_large_and_wide_images(tier, shape):
    """Many pixel chunks in backward_kernel (about 512 output pixels each), input-channel
    remainder blocks in backward_input, and very wide or tall images."""
    rng = np.random.default_rng(shape[2])
    x, kernel, bias = make_conv_case(rng, shape[0], shape[1], shape[2], shape[3], 17, (3, 3))
    check_conv_against_reference(tier, x, kernel, bias, padding="same")
    check_conv_against_reference(tier, x, kernel, bias, strides=(1, 2), padding="same")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("geometry", [dict(padding="same"), dict(strides=(2, 3), padding="same"),
                                      dict(dilation=(2, 1), padding="valid")], ids=["same", "strided", "dilated"])
def test_conv2d_input_gradient_of_wide_layers(tier, geometry):
    """The input gradient swaps each tap's channels in tiles of 16 x 16 (in parallel): 37 -> 50
    channels leave a partial tile on both sides, and a 3 x 2 kernel tells taps apart (rotated for
    unit strides, regrouped by phase for strides, in order when dilated). Against the reference,
    and bitwise equal for one and two threads."""
    rng = np.random.default_rng(37)
    x, kernel, _ = make_conv_case(rng, 2, 9, 11, 37, 50, (3, 2))
    dy_shape = ops.conv2d_forward(x, kernel, kernels="reference", **geometry).shape
    dy = rng.standard_normal(dy_shape).astype(np.float32)
    reference = ops.conv2d_backward_input(dy, kernel, x.shape, kernels="reference", **geometry)
    results = _on_one_two_and_three_threads(
        lambda: ops.conv2d_backward_input(dy, kernel, x.shape, kernels=tier, **geometry))
    assert_close(results[0], reference, f"{tier} conv2d_backward_input of a wide layer")
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("units", [(300, 130), (70, 45)], ids=lambda u: f"{u[0]}to{u[1]}")
def test_dense_input_gradient_of_wide_layers(tier, units):
    """A Dense layer's input gradient through the tiled channel swap, against numpy's dy @ kernel.T."""
    rng = np.random.default_rng(units[0])
    kernel = (rng.standard_normal(units) / math.sqrt(units[0])).astype(np.float32)
    dy = rng.standard_normal((7, units[1])).astype(np.float32)
    expected = (dy.astype(np.float64) @ kernel.astype(np.float64).T).astype(np.float32)
    assert_close(ops.dense_backward_input(dy, kernel, kernels=tier), expected, f"{tier} dense_backward_input")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("out_channels", [34, 40, 44, 48, 100, 112, 120])
@pytest.mark.parametrize("geometry", [dict(padding="same"), dict(strides=(2, 2), padding="same"),
                                      dict(dilation=(2, 1), padding="valid")], ids=["same", "stride2", "dilated"])
def test_conv2d_kernel_gradient_over_packed_panels(tier, out_channels, geometry):
    """Kernel gradients of layers with 3+ blocks of output channels and 16+ tasks per block, which
    read dY from packed panels: whole blocks and each kind of last block (a whole vector, a partial
    vector, one and a half vectors, on 16- and 32-channel blocks), over several pixel chunks and
    steps (rows of 13 and 7 columns divide neither 512 nor 128), against the reference and bitwise
    equal for one and two threads."""
    rng = np.random.default_rng(out_channels)
    x, kernel, _ = make_conv_case(rng, 5, 15, 13, 13, out_channels, (3, 3))
    dy_shape = ops.conv2d_forward(x, kernel, kernels="reference", **geometry).shape
    dy = rng.standard_normal(dy_shape).astype(np.float32)
    ref_dk, _ = ops.conv2d_backward_kernel(x, dy, (3, 3), kernels="reference", **geometry)
    previous = fastcnn.config.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            fastcnn.config.set_num_threads(threads)
            results.append(ops.conv2d_backward_kernel(x, dy, (3, 3), kernels=tier, **geometry)[0])
    finally:
        fastcnn.config.set_num_threads(previous)
    assert_close(results[0], ref_dk, f"{tier} conv2d_backward_kernel over packed panels")
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("tier", TIERS)
def test_conv2d_empty_batch_gives_empty_output_and_zero_gradients(tier):
    x = np.zeros((0, 6, 6, 3), np.float32)
    kernel = np.ones((3, 3, 3, 18), np.float32)
    out = ops.conv2d_forward(x, kernel, np.ones(18, np.float32), padding="same", kernels=tier)
    assert out.shape == (0, 6, 6, 18)
    dy = np.zeros((0, 6, 6, 18), np.float32)
    assert ops.conv2d_backward_input(dy, kernel, (0, 6, 6, 3), padding="same", kernels=tier).shape == (0, 6, 6, 3)
    dk, db = ops.conv2d_backward_kernel(x, dy, (3, 3), padding="same", kernels=tier)
    np.testing.assert_array_equal(dk, np.zeros((3, 3, 3, 18), np.float32))
    np.testing.assert_array_equal(db, np.zeros(18, np.float32))


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_conv2d_fused_activations(tier, activation, use_bias):
    rng = np.random.default_rng(ACTIVATIONS.index(activation) + 10 * use_bias)
    x, kernel, bias = make_conv_case(rng, 2, 8, 7, 4, 21, (3, 3), use_bias=use_bias)
    check_conv_against_reference(tier, x, kernel, bias, padding="same", activation=activation)
    check_conv_against_reference(tier, x, kernel, bias, strides=(2, 1), padding="valid", activation=activation)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels", [(4, 5), (4, 21), (32, 40)], ids=["narrow", "blocks", "winograd"])
def test_conv2d_relu6_epilogue_clips_both_ends(tier, channels):
    """relu6 on the vector (BatchNormalization folding puts MobileNet's ReLU6 in the epilogue):
    pre-activations spread over [-30, 30] reach both clips and NaN stays NaN in the narrow-block and
    register-block stores, and the Winograd store clips too (its tile transform spreads a NaN input
    over the whole tile, so that case has none)."""
    in_channels, out_channels = channels
    rng = np.random.default_rng(in_channels + out_channels)
    x, kernel, bias = make_conv_case(rng, 2, 8, 9, in_channels, out_channels, (3, 3))
    x *= 10.0
    if in_channels < 32:
        x[0, 3, 4, 0] = np.nan
    reference = ops.conv2d_forward(x, kernel, bias, padding="same", activation="relu6", kernels="reference")
    actual = ops.conv2d_forward(x, kernel, bias, padding="same", activation="relu6", kernels=tier)
    assert (reference == 6.0).any() and (reference == 0.0).any() and np.isnan(reference).any() == (in_channels < 32)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(reference))
    finite = ~np.isnan(reference)
    assert_close(actual[finite], reference[finite], f"{tier} conv2d_forward relu6")


@pytest.mark.parametrize("tier", TIERS)
def test_conv2d_forward_activation_epilogue_matches_separate_activation(tier):
    """The fused epilogue equals the linear conv followed by the activation kernel."""
    rng = np.random.default_rng(5)
    x, kernel, bias = make_conv_case(rng, 2, 6, 6, 3, 19, (3, 3))
    linear = ops.conv2d_forward(x, kernel, bias, padding="same", kernels=tier)
    for activation in ACTIVATIONS:
        fused = ops.conv2d_forward(x, kernel, bias, padding="same", activation=activation, kernels=tier)
        separate = ops.activation_forward(activation, linear, kernels="reference")
        assert_close(fused, separate, f"{tier} fused {activation}")


RESIDUAL_CASES = [
    # (batch, h, w, cin, cout, kernel, strides, padding): the direct tile with a partial two-vector
    # block, the narrow tiles (8 lanes on avx512, one vector), Winograd's wide and narrow blocks
    # with edge tiles, a strided direct layer
    (2, 9, 7, 3, 40, (3, 3), (1, 1), "same"),
    (2, 6, 6, 8, 5, (1, 1), (1, 1), "valid"),
    (2, 5, 6, 4, 12, (3, 3), (1, 1), "same"),
    (2, 8, 8, 16, 16, (3, 3), (1, 1), "same"),
    (1, 13, 11, 24, 40, (3, 3), (1, 1), "valid"),
    (2, 9, 9, 16, 24, (5, 5), (2, 2), "same"),
]


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@pytest.mark.parametrize("case", RESIDUAL_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_conv2d_forward_residual_equals_the_add_then_the_activation(tier, case):
    """activation(conv + bias + residual) in the epilogue: bitwise the linear convolution, then the
    residual added, then the activation (what a separate Add and activation layer compute), with
    either Winograd tile."""
    batch, h, w, cin, cout, kernel_size, strides, padding = case
    rng = np.random.default_rng(11)
    x, kernel, bias = make_conv_case(rng, batch, h, w, cin, cout, kernel_size)
    geometry = dict(strides=strides, padding=padding)
    linear = ops.conv2d_forward(x, kernel, bias, kernels=tier, **geometry)
    residual = rng.standard_normal(linear.shape).astype(np.float32)
    for large_tile in (True, False):
        linear = ops.conv2d_forward(x, kernel, bias, kernels=tier, large_winograd_tile=large_tile, **geometry)
        for activation in ("linear", "relu", "sigmoid"):
            fused = ops.conv2d_forward(x, kernel, bias, activation=activation, kernels=tier, residual=residual,
                                       large_winograd_tile=large_tile, **geometry)
            added = (linear + residual).reshape(-1, cout)
            separate = ops.activation_forward(activation, added, kernels=tier).reshape(linear.shape)
            what = f"{tier} {activation} large_tile={large_tile}"
            if activation == "sigmoid":  # the epilogue's vector form may round apart from the kernel's
                assert_close(fused, separate, what)
            else:
                np.testing.assert_array_equal(fused, separate, err_msg=what)


# RESIDUAL_CASES and a pointwise layer of two-vector blocks with a partial last one.
OUTPUT_AFFINE_CASES = RESIDUAL_CASES + [(2, 6, 7, 16, 40, (1, 1), (1, 1), "valid")]


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@pytest.mark.parametrize("case", OUTPUT_AFFINE_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_conv2d_forward_output_affine_equals_the_batch_norm_after_the_activation(tier, case):
    """activation(conv + bias) * output_scale + output_shift in the epilogue: bitwise the activated
    convolution, then the same tier's BatchNormalization kernel (inference form, statistics chosen
    so that its scale and shift are exactly gamma and beta: mean 0, variance + epsilon = 1), for
    activations on the vector (relu, relu6) and applied after the stores (elu), with a residual too."""
    batch, h, w, cin, cout, kernel_size, strides, padding = case
    rng = np.random.default_rng(12)
    x, kernel, bias = make_conv_case(rng, batch, h, w, cin, cout, kernel_size)
    gamma = rng.uniform(-1.5, 1.5, cout).astype(np.float32)
    beta = rng.standard_normal(cout).astype(np.float32)
    zeros, variance = np.zeros(cout, np.float32), np.full(cout, 0.75, np.float32)
    for large_tile in (True, False):
        geometry = dict(strides=strides, padding=padding, large_winograd_tile=large_tile, kernels=tier)
        residual = rng.standard_normal(ops.conv2d_forward(x, kernel, bias, **geometry).shape).astype(np.float32)
        for activation in ("relu", "relu6", "elu", "linear"):
            for extra in ({}, {"residual": residual}):
                activated = ops.conv2d_forward(x, kernel, bias, activation=activation, **geometry, **extra)
                fused = ops.conv2d_forward(x, kernel, bias, activation=activation, output_scale=gamma,
                                           output_shift=beta, **geometry, **extra)
                normalized = ops.batch_norm_forward(activated.reshape(-1, cout), zeros, variance, gamma, beta,
                                                    epsilon=0.25, kernels=tier).reshape(activated.shape)
                assert (activated != 0).any()
                np.testing.assert_array_equal(fused, normalized, err_msg=f"{tier} {activation} {sorted(extra)} "
                                                                         f"large_tile={large_tile}")


def test_conv2d_forward_refuses_an_output_affine_half_given_or_of_another_length():
    x, kernel, bias = make_conv_case(np.random.default_rng(0), 2, 6, 6, 3, 4, (3, 3))
    ones = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"output_scale and output_shift go together.*output_shift only"):
        ops.conv2d_forward(x, kernel, bias, output_shift=ones)
    with pytest.raises(ValueError, match=r"output_shift.*must be 4.*\(5,\)"):
        ops.conv2d_forward(x, kernel, bias, output_scale=ones, output_shift=np.ones(5, np.float32))
    with pytest.raises(ValueError, match=r"output_scale.*rank 1"):
        ops.conv2d_forward(x, kernel, bias, output_scale=np.ones((2, 2), np.float32), output_shift=ones)


def test_conv2d_forward_refuses_a_residual_of_another_shape():
    x, kernel, bias = make_conv_case(np.random.default_rng(0), 2, 6, 6, 3, 4, (3, 3))
    with pytest.raises(ValueError, match=r"residual.*output width.*must be 4.*\(2, 4, 5, 4\)"):
        ops.conv2d_forward(x, kernel, bias, residual=np.zeros((2, 4, 5, 4), np.float32))
    with pytest.raises(ValueError, match=r"residual.*rank 4"):
        ops.conv2d_forward(x, kernel, bias, residual=np.zeros((2, 4, 4), np.float32))


CONV_SPEC_CASES = [
    # (batch, h, w, cin, cout, kernel, strides, padding, dilation)
    (2, 7, 9, 3, 5, (3, 3), (1, 1), "same", (1, 1)),
    (1, 8, 8, 2, 4, (3, 3), (2, 2), "same", (1, 1)),
    (2, 9, 7, 2, 3, (2, 3), (2, 1), "valid", (1, 1)),
    (1, 9, 9, 3, 2, (3, 3), (1, 1), "same", (2, 2)),
    (1, 1, 1, 3, 4, (5, 5), (1, 1), "same", (1, 1)),
    (1, 6, 5, 1, 2, (5, 5), (3, 2), "same", (1, 1)),
]


@pytest.mark.parametrize("case", CONV_SPEC_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_conv2d_reference_matches_numpy_formula(case):
    """The reference (which the tiers are compared with) follows ops/conv2d.h and TF's padding."""
    batch, h, w, cin, cout, kernel_size, strides, padding, dilation = case
    rng = np.random.default_rng(42)
    x, kernel, bias = make_conv_case(rng, batch, h, w, cin, cout, kernel_size)
    geometry = dict(strides=strides, padding=padding, dilation=dilation)
    expected = numpy_conv_forward(x, kernel, bias, **geometry)
    out = ops.conv2d_forward(x, kernel, bias, kernels="reference", **geometry)
    assert_close(out, expected.astype(np.float32), "reference forward vs numpy")
    dy = rng.standard_normal(out.shape).astype(np.float32)
    dx, dk, db = numpy_conv_backward(x, kernel, dy, **geometry)
    assert_close(ops.conv2d_backward_input(dy, kernel, x.shape, kernels="reference", **geometry),
                 dx.astype(np.float32), "reference backward_input vs numpy")
    ref_dk, ref_db = ops.conv2d_backward_kernel(x, dy, kernel_size, kernels="reference", **geometry)
    assert_close(ref_dk, dk.astype(np.float32), "reference backward_kernel vs numpy")
    assert_close(ref_db, db.astype(np.float32), "reference bias gradient vs numpy")


# ---------------------------------------------------------------------------------------------
# conv2d: random configurations (hypothesis)
# ---------------------------------------------------------------------------------------------


@st.composite
def conv_configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.sampled_from([(1, 1), (1, 2), (2, 1), (2, 2)]))
    padding = draw(st.sampled_from(["valid", "same"]))
    eff_h, eff_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    h = draw(st.integers(eff_h if padding == "valid" else 1, eff_h + 7))
    w = draw(st.integers(eff_w if padding == "valid" else 1, eff_w + 7))
    return dict(
        batch=draw(st.integers(0, 3)), height=h, width=w,
        in_channels=draw(st.integers(1, 20)), out_channels=draw(st.integers(1, 36)),
        kernel_size=(kh, kw), strides=(sh, sw), dilation=(dh, dw), padding=padding,
        activation=draw(st.sampled_from(ACTIVATIONS)), use_bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@pytest.mark.parametrize("tier", TIERS)
@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=conv_configs())
def test_conv2d_random_configurations_match_reference(tier, config):
    rng = np.random.default_rng(config["seed"])
    x, kernel, bias = make_conv_case(rng, config["batch"], config["height"], config["width"],
                                     config["in_channels"], config["out_channels"], config["kernel_size"],
                                     use_bias=config["use_bias"])
    check_conv_against_reference(tier, x, kernel, bias, config["strides"], config["padding"],
                                 config["dilation"], config["activation"], seed=config["seed"])


def _call_with_invalid_config(kind, tier, value):
    """One conv op call whose configuration is invalid in the way `kind` names."""
    x = np.ones((2, 5, 6, 3), np.float32)
    kernel = np.ones((3, 3, 3, 4), np.float32)
    dy = np.ones((2, 3, 4, 4), np.float32)
    if kind == "stride":
        return ops.conv2d_forward(x, kernel, strides=(value, 1), kernels=tier)
    if kind == "stride_width_backward_input":
        return ops.conv2d_backward_input(dy, kernel, x.shape, strides=(1, value), kernels=tier)
    if kind == "stride_backward_kernel":
        return ops.conv2d_backward_kernel(x, dy, (3, 3), strides=(value, value), kernels=tier)
    if kind == "dilation":
        return ops.conv2d_forward(x, kernel, dilation=(1, value), kernels=tier)
    if kind == "kernel_too_large":
        big = np.ones((6 + min(-value, 4), 3, 3, 4), np.float32)
        return ops.conv2d_forward(x, big, padding="valid", kernels=tier)
    if kind == "dilated_kernel_too_large":
        return ops.conv2d_forward(x, kernel, padding="valid", dilation=(3 - value, 1), kernels=tier)
    if kind == "kernel_size_backward_kernel":
        return ops.conv2d_backward_kernel(x, dy, (value, 3), kernels=tier)
    if kind == "kernel_size_too_large_backward_kernel":
        return ops.conv2d_backward_kernel(x, dy, (3, 7 - value), kernels=tier)
    if kind == "negative_batch":
        return ops.conv2d_backward_input(dy, kernel, (value - 1, 5, 6, 3), kernels=tier)
    if kind == "negative_height":
        return ops.conv2d_backward_input(dy, kernel, (2, value - 1, 6, 3), kernels=tier)
    if kind == "zero_width_input":
        return ops.conv2d_forward(np.ones((2, 5, 0, 3), np.float32), kernel, kernels=tier)
    if kind == "input_shape_too_small_backward_input":
        return ops.conv2d_backward_input(dy, kernel, (2, 2, 6, 3), kernels=tier)
    raise AssertionError(kind)


INVALID_KINDS = ["stride", "stride_width_backward_input", "stride_backward_kernel", "dilation",
                 "kernel_too_large", "dilated_kernel_too_large", "kernel_size_backward_kernel",
                 "kernel_size_too_large_backward_kernel", "negative_batch", "negative_height",
                 "zero_width_input", "input_shape_too_small_backward_input"]


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(INVALID_KINDS), value=st.integers(-(2**40), 0))
def test_conv2d_invalid_configurations_raise_value_error(tier, kind, value):
    with pytest.raises(ValueError):
        _call_with_invalid_config(kind, tier, value)


# ---------------------------------------------------------------------------------------------
# dense
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("batch", [1, 5, 32])
@pytest.mark.parametrize("units", [1, 10, 16, 33])
def test_dense_matches_reference(tier, units, batch):
    rng = np.random.default_rng(units * 100 + batch)
    for input_units in (1, 13, 40):
        x = rng.standard_normal((batch, input_units)).astype(np.float32)
        kernel = (rng.standard_normal((input_units, units)) / math.sqrt(input_units)).astype(np.float32)
        bias = rng.standard_normal(units).astype(np.float32)
        for activation in ACTIVATIONS:
            for b in (bias, None):
                ref = ops.dense_forward(x, kernel, b, activation=activation, kernels="reference")
                assert ref.shape == (batch, units)
                assert_close(ops.dense_forward(x, kernel, b, activation=activation, kernels=tier), ref,
                             f"{tier} dense_forward {activation}")
        dy = rng.standard_normal((batch, units)).astype(np.float32)
        assert_close(ops.dense_backward_input(dy, kernel, kernels=tier),
                     ops.dense_backward_input(dy, kernel, kernels="reference"), f"{tier} dense_backward_input")
        for use_bias in (True, False):
            dk, db = ops.dense_backward_kernel(x, dy, use_bias=use_bias, kernels=tier)
            ref_dk, ref_db = ops.dense_backward_kernel(x, dy, use_bias=use_bias, kernels="reference")
            assert_close(dk, ref_dk, f"{tier} dense_backward_kernel")
            if use_bias:
                assert_close(db, ref_db, f"{tier} dense bias gradient")
            else:
                assert db is None


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("shape", [(30, 300, 130), (7, 64, 200), (128, 1024, 96), (30, 1536, 40),
                                   (64, 1600, 10), (36, 100, 30), (36, 100, 8)],
                         ids=lambda s: "x".join(map(str, s)))
def test_pointwise_split_inside_a_tile_is_bitwise_thread_independent(tier, shape):
    """Threads split a pointwise pass (a Dense layer, a 1x1 convolution) by (tile, block) items, so
    with few tiles a tile's blocks go to two threads: the same bits for 1, 2 and 3 threads, and the
    reference's values. Depths of 1024 and 1536 take the copied, skewed rows (a last tile of 6 rows
    among 12-row tiles for batch 30). 64 rows of 10 units (avx512) and 36 rows of 30 (avx512) or 8
    (avx2) units take half-height tiles on 2 or 3 threads (the tall ones would split unevenly)."""
    batch, units_in, units = shape
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, units_in)).astype(np.float32)
    kernel = (rng.standard_normal((units_in, units)) / math.sqrt(units_in)).astype(np.float32)
    bias = rng.standard_normal(units).astype(np.float32)
    images = x.reshape(1, 1, batch, units_in)
    dense, conv = zip(*_on_one_two_and_three_threads(lambda: (
        ops.dense_forward(x, kernel, bias, activation="relu", kernels=tier),
        ops.conv2d_forward(images, kernel.reshape(1, 1, units_in, units), bias, kernels=tier))))
    assert_close(dense[0], ops.dense_forward(x, kernel, bias, activation="relu", kernels="reference"),
                 f"{tier} dense_forward")
    assert_close(conv[0], ops.conv2d_forward(images, kernel.reshape(1, 1, units_in, units), bias, kernels="reference"),
                 f"{tier} 1x1 conv2d_forward")
    for results in (dense, conv):
        np.testing.assert_array_equal(results[0], results[1])
        np.testing.assert_array_equal(results[0], results[2])


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (1, 3)])
def test_pointwise_convolution_of_skewed_rows_matches_reference(tier, strides):
    """1x1 convolutions whose depth is a multiple of 512 (input rows copied to skewed rows first),
    with unit and other strides (rows taken pixel by pixel), whole and partial tiles and blocks."""
    rng = np.random.default_rng(strides[1])
    x, kernel, bias = make_conv_case(rng, 2, 5, 7, 512, 40, (1, 1))
    check_conv_against_reference(tier, x, kernel, bias, strides=strides, activation="relu")


def test_dense_reference_matches_numpy_formula():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 13)).astype(np.float32)
    kernel = rng.standard_normal((13, 7)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    dy = rng.standard_normal((5, 7)).astype(np.float32)
    x64, k64 = x.astype(np.float64), kernel.astype(np.float64)
    assert_close(ops.dense_forward(x, kernel, bias, kernels="reference"), (x64 @ k64 + bias).astype(np.float32))
    assert_close(ops.dense_backward_input(dy, kernel, kernels="reference"), (dy @ k64.T).astype(np.float32))
    dk, db = ops.dense_backward_kernel(x, dy, kernels="reference")
    assert_close(dk, (x64.T @ dy).astype(np.float32))
    assert_close(db, dy.sum(axis=0))


@pytest.mark.parametrize("tier", TIERS)
def test_dense_empty_batch(tier):
    kernel = np.ones((6, 17), np.float32)
    assert ops.dense_forward(np.zeros((0, 6), np.float32), kernel, np.ones(17, np.float32),
                             kernels=tier).shape == (0, 17)
    assert ops.dense_backward_input(np.zeros((0, 17), np.float32), kernel, kernels=tier).shape == (0, 6)
    dk, db = ops.dense_backward_kernel(np.zeros((0, 6), np.float32), np.zeros((0, 17), np.float32), kernels=tier)
    np.testing.assert_array_equal(dk, np.zeros((6, 17), np.float32))
    np.testing.assert_array_equal(db, np.zeros(17, np.float32))


# ---------------------------------------------------------------------------------------------
# max pooling
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels", [1, 3, 8, 17, 32])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("pool", [(2, 2), (3, 3)], ids=lambda p: f"p{p[0]}x{p[1]}")
def test_max_pool2d_matches_reference_exactly_with_ties(tier, pool, stride, padding, channels):
    rng = np.random.default_rng(pool[0] * 1000 + stride * 100 + channels + (padding == "same"))
    for shape in ((2, 7, 9, channels), (1, 6, 6, channels), (3, 3, 5, channels)):
        # Few distinct values: most windows hold several maxima, exercising the first-max rule.
        x = rng.integers(-2, 2, size=shape).astype(np.float32)
        strides = (stride, stride)
        ref = ops.max_pool2d_forward(x, pool, strides, padding, kernels="reference")
        out = ops.max_pool2d_forward(x, pool, strides, padding, kernels=tier)
        np.testing.assert_array_equal(out, ref)
        dy = rng.standard_normal(ref.shape).astype(np.float32)
        ref_dx = ops.max_pool2d_backward(x, dy, pool, strides, padding, kernels="reference")
        dx = ops.max_pool2d_backward(x, dy, pool, strides, padding, kernels=tier)
        assert dx.shape == x.shape
        np.testing.assert_array_equal(dx, ref_dx)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("pool", [(2, 2), (3, 3), (2, 3)], ids=lambda p: f"p{p[0]}x{p[1]}")
def test_max_pool2d_reference_routes_gradient_to_first_maximum(pool, stride, padding):
    """The reference follows ops/pooling.h: the first maximum (row-major) gets the gradient."""
    rng = np.random.default_rng(11)
    x = rng.integers(0, 2, size=(2, 7, 8, 3)).astype(np.float32)
    out, argmax = numpy_max_pool(x, pool, (stride, stride), padding)
    np.testing.assert_array_equal(ops.max_pool2d_forward(x, pool, (stride, stride), padding, kernels="reference"), out)
    dy = rng.standard_normal(out.shape).astype(np.float32)
    expected = np.zeros(x.shape, np.float64)
    for n, oh, ow, c in np.ndindex(out.shape):
        r, col = argmax[n, oh, ow, c]
        expected[n, r, col, c] += dy[n, oh, ow, c]
    dx = ops.max_pool2d_backward(x, dy, pool, (stride, stride), padding, kernels="reference")
    np.testing.assert_allclose(dx, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("tier", TIERS)
def test_max_pool2d_constant_input_routes_everything_to_window_corner(tier):
    """All ties: each window's gradient goes to its top-left (first) in-range element."""
    x = np.full((1, 4, 4, 2), 3.0, np.float32)
    dy = np.ones((1, 2, 2, 2), np.float32)
    for kernels in ("reference", tier):
        dx = ops.max_pool2d_backward(x, dy, (2, 2), (2, 2), "valid", kernels=kernels)
        expected = np.zeros_like(x)
        expected[:, ::2, ::2, :] = 1.0
        np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("tier", TIERS)
def test_max_pool2d_negative_inputs_and_nan_agree_with_reference(tier):
    """Padding never wins (all-negative inputs with 'same'), NaN propagates; signed zeros tie."""
    rng = np.random.default_rng(9)
    x = -rng.uniform(1, 2, size=(2, 5, 5, 3)).astype(np.float32)
    x[0, 2, 2, 1] = np.nan
    x[1, 0, :, 0] = -0.0
    x[1, 1, :, 0] = 0.0
    for pool, stride in (((2, 2), 2), ((3, 3), 1), ((3, 3), 2)):
        ref = ops.max_pool2d_forward(x, pool, (stride, stride), "same", kernels="reference")
        out = ops.max_pool2d_forward(x, pool, (stride, stride), "same", kernels=tier)
        np.testing.assert_array_equal(out, ref)
        assert np.all((ref < 0) | np.isnan(ref) | (ref == 0))
        assert np.isnan(ref[0, ..., 1]).any()
        # sign bits agree too (the first of the tied zeros)
        np.testing.assert_array_equal(np.signbit(out), np.signbit(ref))
        dy = rng.standard_normal(ref.shape).astype(np.float32)
        np.testing.assert_array_equal(
            ops.max_pool2d_backward(x, dy, pool, (stride, stride), "same", kernels=tier),
            ops.max_pool2d_backward(x, dy, pool, (stride, stride), "same", kernels="reference"))


@pytest.mark.parametrize("tier", TIERS)
def test_max_pool2d_empty_batch(tier):
    x = np.zeros((0, 4, 4, 3), np.float32)
    assert ops.max_pool2d_forward(x, (2, 2), (2, 2), kernels=tier).shape == (0, 2, 2, 3)
    dx = ops.max_pool2d_backward(x, np.zeros((0, 2, 2, 3), np.float32), (2, 2), (2, 2), kernels=tier)
    assert dx.shape == (0, 4, 4, 3)


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------

NUMPY_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "softmax": lambda x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True),
}


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("shape", [(5, 10), (3, 4, 17), (1, 1), (7,), (0, 5), (2, 40000), (16385,)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("activation", ACTIVATIONS + ["softmax"])
def test_activation_forward_backward_match_reference(tier, activation, shape):
    rng = np.random.default_rng(len(shape) * 7 + sum(shape))
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    ref = ops.activation_forward(activation, x, kernels="reference")
    out = ops.activation_forward(activation, x, kernels=tier)
    assert out.shape == x.shape
    assert_close(out, ref, f"{tier} {activation} forward")
    if x.size:
        assert_close(ref, NUMPY_ACTIVATIONS[activation](x.astype(np.float64)).astype(np.float32),
                     f"reference {activation} vs numpy")
    if activation == "softmax" and x.size:
        # rows sum to 1 up to float32 accumulation over `columns` terms
        np.testing.assert_allclose(out.sum(axis=-1, dtype=np.float64), 1.0, rtol=max(1e-5, 1e-7 * shape[-1]))
    dy = rng.standard_normal(shape).astype(np.float32)
    ref_dx = ops.activation_backward(activation, ref, dy, kernels="reference")
    dx = ops.activation_backward(activation, ref, dy, kernels=tier)
    assert_close(dx, ref_dx, f"{tier} {activation} backward")


def test_activation_backward_reference_formulas():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    g = rng.standard_normal((4, 6)).astype(np.float32)
    for activation in ACTIVATIONS + ["softmax"]:
        y = ops.activation_forward(activation, x, kernels="reference").astype(np.float64)
        dx = ops.activation_backward(activation, y.astype(np.float32), g, kernels="reference")
        expected = {
            "linear": g,
            "relu": g * (y > 0),
            "sigmoid": g * y * (1 - y),
            "tanh": g * (1 - y * y),
            "softmax": y * (g - (g * y).sum(-1, keepdims=True)),
        }[activation]
        assert_close(dx, expected.astype(np.float32), activation)


def float32_ulps_apart(actual, expected):
    """|actual - expected| in units of the last place of float32 at `expected` (expected in float64)."""
    expected32 = expected.astype(np.float32)
    spacing = np.spacing(np.abs(expected32)).astype(np.float64)
    return np.abs(actual.astype(np.float64) - expected) / spacing


@pytest.mark.parametrize("tier", TIERS)
def test_vector_sigmoid_and_swish_within_a_few_ulps_over_the_whole_range(tier):
    """The optimised tiers compute e^x with their own vector polynomial (simd::exponential): over
    every range it must handle (|x| small, the overflow and subnormal edges of e^x near +-88.7 and
    -87.3 .. -104, infinities and NaN) sigmoid and swish stay within 4 ulps of float64 math, and the
    backward passes within the usual tolerance of the reference."""
    edges = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 0.5, -0.5, 0.34657359, 20.0, -20.0, 87.3, -87.3, 87.4,
                      -87.4, 88.7, -88.7, 88.8, -88.8, 89.0, -89.0, 100.0, -100.0, 103.9, -103.9, 104.1, -104.1, 1e4,
                      -1e4, np.inf, -np.inf], np.float32)
    x = np.concatenate([edges, np.linspace(-110, 110, 20011, dtype=np.float32),
                        np.random.default_rng(5).standard_normal(4099).astype(np.float32) * 4])
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        sigmoid64 = 1 / (1 + np.exp(-x64))
        # swish = x * sigmoid(x) from float32's sigmoid, subnormals flushed: past x = -87.3 that sigmoid
        # is 0 (float32's e^-x overflows, as in the scalar formula and TensorFlow's), so swish is too.
        sigmoid32 = sigmoid64.astype(np.float32)
        sigmoid32[np.abs(sigmoid32) < np.finfo(np.float32).tiny] = 0
        swish64 = x64 * sigmoid32.astype(np.float64)
    for activation, expected in [("sigmoid", sigmoid64), ("swish", swish64)]:
        out = ops.activation_forward(activation, x, kernels=tier)
        finite = np.isfinite(expected)
        # swish(-inf) = -inf * 0 is NaN, as in the scalar form; swish(inf) = inf.
        np.testing.assert_array_equal(out[~finite], expected[~finite].astype(np.float32), err_msg=activation)
        # Subnormal results: the parallel regions flush them to zero (parallel.h, as TensorFlow does).
        tiny = np.abs(expected) < np.finfo(np.float32).tiny
        ulps = float32_ulps_apart(out[finite & ~tiny], expected[finite & ~tiny])
        assert ulps.max() <= 4, f"{tier} {activation}: {ulps.max()} ulps at x = {x[finite & ~tiny][ulps.argmax()]}"
        assert tiny.sum() > 1000 and np.all(np.abs(out[tiny]) < np.finfo(np.float32).tiny), activation
        ref = ops.activation_forward(activation, x, kernels="reference")
        dy = np.random.default_rng(6).standard_normal(x.shape).astype(np.float32)
        ref_dx = ops.activation_backward(activation, ref, dy, kernels="reference", input=x)
        dx = ops.activation_backward(activation, ref, dy, kernels=tier, input=x)
        both_finite = np.isfinite(ref_dx)
        assert np.array_equal(np.isfinite(dx), both_finite), activation
        assert_close(dx[both_finite], ref_dx[both_finite], f"{tier} {activation} backward")


@pytest.mark.parametrize("tier", TIERS)
def test_softmax_is_stable_for_large_logits(tier):
    x = np.array([[1000.0, 1000.0, -1000.0], [-1e30, 0.0, 1e30], [88.0, 89.0, 90.0]], np.float32)
    ref = ops.activation_forward("softmax", x, kernels="reference")
    out = ops.activation_forward("softmax", x, kernels=tier)
    assert np.all(np.isfinite(out))
    assert_close(out, ref)
    np.testing.assert_allclose(out[0], [0.5, 0.5, 0.0], atol=1e-7)


# ---------------------------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_dropout_same_mask_across_tiers_and_scale(tier, rate):
    rng = np.random.default_rng(int(rate * 10))
    x = rng.uniform(0.5, 1.5, size=(4, 50, 101)).astype(np.float32)  # no zeros: zero <=> dropped
    seed = 12345
    ref = ops.dropout_forward(x, rate, seed, kernels="reference")
    out = ops.dropout_forward(x, rate, seed, kernels=tier)
    np.testing.assert_array_equal(out, ref)
    assert out.shape == x.shape
    kept = out != 0
    dropped_fraction = 1.0 - kept.mean()
    assert abs(dropped_fraction - rate) < 0.01, (dropped_fraction, rate)
    scale = np.float32(1.0) / np.float32(1.0 - rate)
    np.testing.assert_allclose(out[kept], x[kept] * scale, rtol=1e-6)
    # Same seed, same mask; backward applies that mask and scale to the gradient.
    np.testing.assert_array_equal(ops.dropout_forward(x, rate, seed, kernels=tier), out)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = ops.dropout_backward(dy, rate, seed, kernels=tier)
    np.testing.assert_array_equal(dx, ops.dropout_backward(dy, rate, seed, kernels="reference"))
    np.testing.assert_array_equal(dx == 0, ~kept | (dy == 0))
    np.testing.assert_allclose(dx[kept], dy[kept] * scale, rtol=1e-6)


@pytest.mark.parametrize("tier", TIERS)
def test_dropout_mask_depends_on_seed_and_matches_hash(tier):
    x = np.ones(40000, np.float32)
    a = ops.dropout_forward(x, 0.5, 1, kernels=tier)
    b = ops.dropout_forward(x, 0.5, 2, kernels=tier)
    assert (a != b).mean() > 0.4  # independent masks differ in about half the positions
    # The mask of ops/dropout.h: key = splitmix64(seed) split into an odd multiplier and an offset;
    # keep(i) = lowbias32(i * multiplier + offset) / 2^32 >= rate (24 bits).
    with np.errstate(over="ignore"):
        z = np.uint64(1) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        multiplier = np.uint32(int(z) >> 32 | 1)
        offset = np.uint32(int(z) & 0xFFFFFFFF)
        h = np.arange(x.size, dtype=np.uint32) * multiplier + offset
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x7FEB352D)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x846CA68B)
        h ^= h >> np.uint32(16)
    uniform = (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    np.testing.assert_array_equal(a != 0, uniform >= np.float32(0.5))
    # Lengths that are not a multiple of the vector width take the scalar tail.
    for size in (1, 7, 9, 16385):
        np.testing.assert_array_equal(ops.dropout_forward(x[:size], 0.5, 1, kernels=tier), a[:size])


@pytest.mark.parametrize("tier", TIERS)
def test_dropout_does_not_depend_on_thread_count(tier):
    x = np.ones((3, 50000), np.float32)
    previous = _core.get_num_threads()
    try:
        _core.set_num_threads(1)
        one = ops.dropout_forward(x, 0.3, 77, kernels=tier)
        _core.set_num_threads(2)
        two = ops.dropout_forward(x, 0.3, 77, kernels=tier)
    finally:
        _core.set_num_threads(previous)
    np.testing.assert_array_equal(one, two)


# ---------------------------------------------------------------------------------------------
# determinism and memory layouts
# ---------------------------------------------------------------------------------------------


def _bits(array):
    return np.ascontiguousarray(array).view(np.uint32)


@pytest.mark.parametrize("tier", TIERS)
def test_conv2d_bitwise_identical_with_one_two_and_three_threads(tier):
    rng = np.random.default_rng(2024)
    x, kernel, bias = make_conv_case(rng, 4, 16, 15, 32, 40, (3, 3))
    dy = rng.standard_normal((4, 16, 15, 40)).astype(np.float32)
    results = {}
    previous = _core.get_num_threads()
    try:
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            assert _core.get_num_threads() == threads
            dk, db = ops.conv2d_backward_kernel(x, dy, (3, 3), padding="same", kernels=tier)
            dk2, db2 = ops.conv2d_backward_kernel(x, dy, (3, 3), padding="same", kernels=tier)
            results[threads] = (
                dk, db, dk2, db2,
                ops.conv2d_forward(x, kernel, bias, padding="same", kernels=tier),
                ops.conv2d_backward_input(dy, kernel, x.shape, padding="same", kernels=tier),
                ops.dense_backward_kernel(x.reshape(-1, 32)[:333], dy.reshape(-1, 40)[:333], kernels=tier)[0],
            )
    finally:
        _core.set_num_threads(previous)
    assert _core.get_num_threads() == previous
    names = ["kernel gradient", "bias gradient", "kernel gradient (repeat)", "bias gradient (repeat)",
             "forward", "input gradient", "dense kernel gradient"]
    for threads in (2, 3):
        for name, one, many in zip(names, results[1], results[threads]):
            np.testing.assert_array_equal(_bits(one), _bits(many), err_msg=f"{tier} {name}: 1 vs {threads} threads")
    np.testing.assert_array_equal(_bits(results[1][0]), _bits(results[1][2]))


def _layouts(array):
    """float64, Fortran-ordered and non-contiguous versions of a float32 C-contiguous array."""
    yield "float64", array.astype(np.float64)
    yield "fortran", np.asfortranarray(array)
    padded = np.zeros(tuple(2 * s for s in array.shape), np.float32)
    padded[tuple(slice(None, None, 2) for _ in array.shape)] = array
    view = padded[tuple(slice(None, None, 2) for _ in array.shape)]
    assert not view.flags.c_contiguous
    yield "strided", view
    reversed_view = np.flip(np.flip(array).copy())  # same values, every stride negative
    assert all(stride < 0 for stride in reversed_view.strides)
    yield "negative-stride", reversed_view
    yield "float64-fortran", np.asfortranarray(array.astype(np.float64))


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
def test_non_contiguous_and_float64_inputs_match_contiguous_float32(tier):
    rng = np.random.default_rng(8)
    # Values exactly representable in float32 so the float64 copies convert without rounding.
    x = rng.standard_normal((2, 7, 9, 5)).astype(np.float32)
    kernel = (rng.standard_normal((3, 3, 5, 17)) / 6).astype(np.float32)
    bias = rng.standard_normal(17).astype(np.float32)
    dy = rng.standard_normal((2, 4, 5, 17)).astype(np.float32)
    geometry = dict(strides=(2, 2), padding="same")

    expected_forward = ops.conv2d_forward(x, kernel, bias, kernels=tier, **geometry)
    expected_dx = ops.conv2d_backward_input(dy, kernel, x.shape, kernels=tier, **geometry)
    expected_dk, expected_db = ops.conv2d_backward_kernel(x, dy, (3, 3), kernels=tier, **geometry)
    expected_pool = ops.max_pool2d_forward(x, (2, 2), (2, 2), "same", kernels=tier)
    expected_act = ops.activation_forward("softmax", x, kernels=tier)
    dense_x, dense_k = x.reshape(14, 45), kernel.reshape(45, 17)
    expected_dense = ops.dense_forward(dense_x, dense_k, bias, kernels=tier)
    expected_dropout = ops.dropout_forward(x, 0.25, 3, kernels=tier)

    for (name, xv), (_, kv), (_, bv), (_, dyv), (_, dxv), (_, dkv) in zip(
            _layouts(x), _layouts(kernel), _layouts(bias), _layouts(dy), _layouts(dense_x), _layouts(dense_k)):
        np.testing.assert_array_equal(ops.conv2d_forward(xv, kv, bv, kernels=tier, **geometry), expected_forward,
                                      err_msg=f"conv2d_forward {name}")
        np.testing.assert_array_equal(ops.conv2d_backward_input(dyv, kv, x.shape, kernels=tier, **geometry),
                                      expected_dx, err_msg=f"conv2d_backward_input {name}")
        dk, db = ops.conv2d_backward_kernel(xv, dyv, (3, 3), kernels=tier, **geometry)
        np.testing.assert_array_equal(dk, expected_dk, err_msg=f"conv2d_backward_kernel {name}")
        np.testing.assert_array_equal(db, expected_db, err_msg=f"conv2d bias gradient {name}")
        np.testing.assert_array_equal(ops.max_pool2d_forward(xv, (2, 2), (2, 2), "same", kernels=tier),
                                      expected_pool, err_msg=f"max_pool2d_forward {name}")
        np.testing.assert_array_equal(ops.activation_forward("softmax", xv, kernels=tier), expected_act,
                                      err_msg=f"softmax {name}")
        np.testing.assert_array_equal(ops.dense_forward(dxv, dkv, bv, kernels=tier), expected_dense,
                                      err_msg=f"dense_forward {name}")
        np.testing.assert_array_equal(ops.dropout_forward(xv, 0.25, 3, kernels=tier), expected_dropout,
                                      err_msg=f"dropout_forward {name}")


def test_available_kernels_lists_reference_and_a_portable_tier():
    names = _core.available_kernels()
    assert names[0] == "reference"
    assert "generic" in names
    assert _core.kernel_set() in names


# ---------------------------------------------------------------------------------------------
# Winograd F(4x4, 3x3) (inference's forward pass and the kernel gradient; F(2x2, 3x3) for the
# smallest images, 1x1 and 2x3 here, for a training step's forward pass and for the input
# gradient, a forward pass over dY): 3x3, stride-1, undilated layers with >= 16 channels on both
# sides take it in the optimised tiers.
# ---------------------------------------------------------------------------------------------


WINOGRAD_SHAPES = [(spatial, padding) for spatial in [(1, 1), (2, 3), (3, 3), (4, 7), (7, 9), (13, 13), (16, 5)]
                   for padding in ["valid", "same"] if padding == "same" or min(spatial) >= 3]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels", [(16, 16), (17, 33), (64, 20), (24, 64)], ids=lambda c: f"{c[0]}to{c[1]}")
@pytest.mark.parametrize("spatial,padding", WINOGRAD_SHAPES, ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_conv2d_winograd_shapes_match_reference(tier, spatial, padding, channels):
    rng = np.random.default_rng(zlib.crc32(repr((spatial, channels, padding)).encode()))
    x, kernel, bias = make_conv_case(rng, 3, spatial[0], spatial[1], channels[0], channels[1], (3, 3))
    check_conv_against_reference(tier, x, kernel, bias, padding=padding, activation="relu")
    # The training forward pass's F(2x2, 3x3) (check_conv_against_reference ran inference's F(4x4)).
    expected = ops.conv2d_forward(x, kernel, bias, padding=padding, activation="relu", kernels="reference")
    actual = ops.conv2d_forward(x, kernel, bias, padding=padding, activation="relu", kernels=tier,
                                large_winograd_tile=False)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("tier", TIERS)
def test_conv2d_winograd_error_bound_against_float64(tier):
    """The stated bounds against the exact (float64) result at 64 channels, with the direct float32
    sum at ~1e-6 of max|y|: inference's forward pass, F(4x4, 3x3) on these 20x18 images, within
    4e-6 (measured ~2e-6), and so the input gradient's F(4x4) (a training step without max
    pooling); the forward pass and the input gradient of a training step with max pooling,
    F(2x2, 3x3), within 1.5e-6 (measured ~5e-7)."""
    rng = np.random.default_rng(5)
    x, kernel, bias = make_conv_case(rng, 2, 20, 18, 64, 64, (3, 3))
    exact = numpy_conv_forward(x, kernel, bias, (1, 1), "same", (1, 1))
    actual = ops.conv2d_forward(x, kernel, bias, padding="same", kernels=tier)
    assert np.max(np.abs(actual - exact)) <= 4e-6 * np.max(np.abs(exact))
    # A training step's forward pass: F(2x2, 3x3) (measured ~5e-7).
    training = ops.conv2d_forward(x, kernel, bias, padding="same", kernels=tier, large_winograd_tile=False)
    assert np.max(np.abs(training - exact)) <= 1.5e-6 * np.max(np.abs(exact))
    dy = rng.standard_normal(exact.shape).astype(np.float32)
    exact_dx, _, _ = numpy_conv_backward(x, kernel, dy, (1, 1), "same", (1, 1))
    dx = ops.conv2d_backward_input(dy, kernel, x.shape, padding="same", kernels=tier)
    # F(2x2)'s bound: F(4x4) here measured 2.5e-6, enough to fail a TensorFlow parity test with max
    # pooling (conv2d_winograd.cpp), so only networks without one take it in training.
    assert np.max(np.abs(dx - exact_dx)) <= 1.5e-6 * np.max(np.abs(exact_dx))
    dx_large = ops.conv2d_backward_input(dy, kernel, x.shape, padding="same", kernels=tier, large_winograd_tile=True)
    assert not np.array_equal(dx_large, dx)
    assert np.max(np.abs(dx_large - exact_dx)) <= 4e-6 * np.max(np.abs(exact_dx))


def _on_one_two_and_three_threads(compute):
    """compute()'s results with 1, 2 and 3 threads, the thread count restored after."""
    previous = _core.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            results.append(compute())
    finally:
        _core.set_num_threads(previous)
    return results


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("case", [
    (1, (3, 3), 32, dict(padding="same")), (3, (3, 3), 16, dict(padding="same")),
    (3, (3, 3), 40, dict(padding="valid")), (8, (3, 3), 32, dict(strides=(2, 2), padding="same")),
    (3, (5, 5), 32, dict(strides=(1, 2), padding="same")), (1, (3, 2), 24, dict(dilation=(2, 1), padding="same")),
], ids=lambda case: f"{case[0]}ch-{case[1][0]}x{case[1][1]}-to{case[2]}-{'-'.join(map(str, case[3].values()))}")
@pytest.mark.parametrize("batch", [8, 1])
def test_first_layer_kernel_gradient_matches_reference_on_any_thread_count(tier, case, batch):
    """Few input channels: each kernel row's taps merge into one (kernel_width x channels
    contiguous inputs) over a zero-padded copy of the input, so border columns take the merged
    form too; few tasks split by chunks of rows over the threads (batch 8), or by task where
    there are too few chunks (batch 1). Against the reference, bitwise equal for 1, 2 and 3 threads."""
    channels, kernel_size, filters, geometry = case
    rng = np.random.default_rng(channels * 100 + filters)
    x, _, _ = make_conv_case(rng, batch, 20, 17, channels, filters, kernel_size)
    dy_shape = ops.conv2d_forward(x, np.zeros(kernel_size + (channels, filters), np.float32), kernels="reference",
                                  **geometry).shape
    dy = rng.standard_normal(dy_shape).astype(np.float32)
    expected_kernel, expected_bias = ops.conv2d_backward_kernel(x, dy, kernel_size, kernels="reference", **geometry)
    results = _on_one_two_and_three_threads(
        lambda: ops.conv2d_backward_kernel(x, dy, kernel_size, kernels=tier, **geometry))
    assert_close(results[0][0], expected_kernel, f"{tier} first-layer kernel gradient")
    assert_close(results[0][1], expected_bias, f"{tier} first-layer bias gradient")
    for kernel_gradient, bias_gradient in results[1:]:
        np.testing.assert_array_equal(kernel_gradient, results[0][0])
        np.testing.assert_array_equal(bias_gradient, results[0][1])


def _two_level_sum(values, chunk):
    """The bias gradient's order (conv2d.cpp conv2d_backward_bias): each chunk of `chunk` rows
    summed from zero in row order, then the chunk sums added in chunk order from zero, in float32
    (np.cumsum adds in order; np.sum would pair)."""
    chunk_sums = [np.cumsum(values[begin:begin + chunk], axis=0, dtype=np.float32)[-1]
                  for begin in range(0, len(values), chunk)]
    return np.cumsum(np.array(chunk_sums, np.float32), axis=0, dtype=np.float32)[-1]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("filters", [5, 16, 32, 40, 96])
def test_bias_gradient_sums_in_chunks_of_256_pixels_on_any_thread_count(tier, filters):
    """The chunks run in parallel (even where one block holds every channel) and their sums are
    added in chunk order: bitwise that order's float32 sums, the same on 1, 2 and 3 threads."""
    rng = np.random.default_rng(filters)
    x = rng.standard_normal((5, 19, 23, 3)).astype(np.float32)  # 2185 pixels: 8 whole chunks and a part
    dy = rng.standard_normal((5, 19, 23, filters)).astype(np.float32)
    results = _on_one_two_and_three_threads(
        lambda: ops.conv2d_backward_kernel(x, dy, (1, 1), use_bias=True, kernels=tier)[1])
    expected = _two_level_sum(dy.reshape(-1, filters), 256)
    for bias_gradient in results:
        np.testing.assert_array_equal(bias_gradient, expected)


@pytest.mark.parametrize("tier", TIERS)
def test_conv2d_winograd_kernel_gradient_does_not_depend_on_thread_count(tier):
    """Its sum over tiles runs in chunks fixed by the problem size, added in order."""
    rng = np.random.default_rng(9)
    x, kernel, _ = make_conv_case(rng, 6, 30, 26, 20, 24, (3, 3))
    dy = rng.standard_normal((6, 30, 26, 24)).astype(np.float32)
    results = _on_one_two_and_three_threads(
        lambda: ops.conv2d_backward_kernel(x, dy, (3, 3), padding="same", kernels=tier))
    for dk, db in results[1:]:
        np.testing.assert_array_equal(dk, results[0][0])
        np.testing.assert_array_equal(db, results[0][1])


# ---------------------------------------------------------------------------------------------
# Stride-2 layers whose kernel covers 3 rows and columns of 2x2 pixel blocks (5x5 kernels, 6x6 with
# even padding) run in the optimised tiers as a 3x3 stride-1 layer over a space-to-depth input
# (4x the input channels) on Winograd, where that layer has >= 16 channels on both sides
# (conv2d_space_to_depth.cpp); the kernel gradient only up to 8192 channel products (4 Ci x Co).
# ---------------------------------------------------------------------------------------------


SPACE_TO_DEPTH_CASES = [((4, 16), (5, 5)), ((5, 17), (5, 5)), ((8, 32), (5, 5)), ((32, 64), (5, 5)),
                        ((64, 40), (5, 5)), ((8, 24), (6, 6)), ((16, 16), (5, 6))]
SPACE_TO_DEPTH_GEOMETRIES = [(spatial, padding) for spatial in [(1, 1), (2, 3), (6, 6), (9, 7), (16, 16), (17, 15)]
                             for padding in ["valid", "same"] if padding == "same" or min(spatial) >= 6]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("channels,kernel_size", SPACE_TO_DEPTH_CASES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
@pytest.mark.parametrize("spatial,padding", SPACE_TO_DEPTH_GEOMETRIES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_conv2d_space_to_depth_shapes_match_reference(tier, channels, kernel_size, spatial, padding):
    rng = np.random.default_rng(zlib.crc32(repr((channels, kernel_size, spatial, padding)).encode()))
    x, kernel, bias = make_conv_case(rng, 3, spatial[0], spatial[1], channels[0], channels[1], kernel_size)
    # Inference's F(4x4) forward pass, the F(2x2) input gradient and the kernel gradient.
    check_conv_against_reference(tier, x, kernel, bias, (2, 2), padding, activation="relu")
    geometry = dict(strides=(2, 2), padding=padding)
    expected = ops.conv2d_forward(x, kernel, bias, activation="relu", kernels="reference", **geometry)
    training = ops.conv2d_forward(x, kernel, bias, activation="relu", kernels=tier, large_winograd_tile=False,
                                  **geometry)
    assert_close(training, expected, f"{tier} F(2x2) forward")
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    expected_dx = ops.conv2d_backward_input(dy, kernel, x.shape, kernels="reference", **geometry)
    dx = ops.conv2d_backward_input(dy, kernel, x.shape, kernels=tier, large_winograd_tile=True, **geometry)
    assert_close(dx, expected_dx, f"{tier} F(4x4) input gradient")


@pytest.mark.parametrize("tier", TIERS)
def test_conv2d_space_to_depth_takes_winograd_where_it_applies(tier):
    """The Winograd tile changes the rounding; the direct kernel ignores the flag."""
    rng = np.random.default_rng(3)

    def tiles_differ(in_channels, out_channels, kernel_size, strides):
        x, kernel, bias = make_conv_case(rng, 2, 16, 16, in_channels, out_channels, kernel_size)
        geometry = dict(strides=strides, padding="same")
        large = ops.conv2d_forward(x, kernel, bias, kernels=tier, **geometry)
        small = ops.conv2d_forward(x, kernel, bias, kernels=tier, large_winograd_tile=False, **geometry)
        return not np.array_equal(large, small)

    assert tiles_differ(32, 64, (5, 5), (2, 2))
    assert tiles_differ(4, 16, (5, 5), (2, 2))
    assert not tiles_differ(3, 32, (5, 5), (2, 2))  # 12 rearranged channels: direct
    assert not tiles_differ(4, 8, (5, 5), (2, 2))  # 8 output channels: direct
    assert not tiles_differ(32, 64, (3, 3), (2, 2))  # 2x2 rearranged taps: direct
    assert not tiles_differ(32, 64, (5, 5), (2, 1))


@pytest.mark.parametrize("tier", TIERS)
def test_conv2d_space_to_depth_error_bound_against_float64(tier):
    """The 3x3 Winograd layer's bounds hold for the rearranged 5x5 one (measured at 32 -> 64
    channels: F(4x4) forward 2.6e-6, F(2x2) 4e-7, input gradient F(2x2) 3e-7 and F(4x4) 1.9e-6,
    kernel gradient 1e-6 of the largest exact value)."""
    rng = np.random.default_rng(5)
    x, kernel, bias = make_conv_case(rng, 2, 16, 16, 32, 64, (5, 5))
    geometry = dict(strides=(2, 2), padding="same")
    exact = numpy_conv_forward(x, kernel, bias, (2, 2), "same", (1, 1))

    def relative_error(actual, expected):
        return np.max(np.abs(actual - expected)) / np.max(np.abs(expected))

    assert relative_error(ops.conv2d_forward(x, kernel, bias, kernels=tier, **geometry), exact) <= 4e-6
    training = ops.conv2d_forward(x, kernel, bias, kernels=tier, large_winograd_tile=False, **geometry)
    assert relative_error(training, exact) <= 1.5e-6
    dy = rng.standard_normal(exact.shape).astype(np.float32)
    exact_dx, exact_dk, _ = numpy_conv_backward(x, kernel, dy, (2, 2), "same", (1, 1))
    dx = ops.conv2d_backward_input(dy, kernel, x.shape, kernels=tier, **geometry)
    assert relative_error(dx, exact_dx) <= 1.5e-6
    dx_large = ops.conv2d_backward_input(dy, kernel, x.shape, kernels=tier, large_winograd_tile=True, **geometry)
    assert relative_error(dx_large, exact_dx) <= 4e-6
    dk, _ = ops.conv2d_backward_kernel(x, dy, (5, 5), kernels=tier, **geometry)
    assert relative_error(dk, exact_dk) <= 2e-6


@pytest.mark.parametrize("tier", TIERS)
def test_conv2d_space_to_depth_does_not_depend_on_thread_count(tier):
    rng = np.random.default_rng(11)
    x, kernel, bias = make_conv_case(rng, 5, 17, 14, 8, 24, (5, 5))
    geometry = dict(strides=(2, 2), padding="same")
    dy = rng.standard_normal((5, 9, 7, 24)).astype(np.float32)
    results = _on_one_two_and_three_threads(
        lambda: (ops.conv2d_forward(x, kernel, bias, kernels=tier, **geometry),
                 ops.conv2d_backward_input(dy, kernel, x.shape, kernels=tier, **geometry),
                 *ops.conv2d_backward_kernel(x, dy, (5, 5), kernels=tier, **geometry)))
    for result in results[1:]:
        for actual, expected in zip(result, results[0]):
            np.testing.assert_array_equal(actual, expected)


# ---------------------------------------------------------------------------------------------
# The input gradient added to values already there (add_to; Conv2DParams::accumulate_input_gradient):
# a tensor read by several layers takes each one's gradient in turn. Bitwise old + the gradient on
# every path: direct (wide and narrow tiles), Winograd, strided by phase (a 1x1 stride-2 kernel
# reaches one phase in four: the others keep their values), space-to-depth, dilated.
# ---------------------------------------------------------------------------------------------


# (96, 24) and (32, 48): an inverted residual block's projections, whose last block of output
# channels holds one vector's worth or less (24 on the 8-lane tiers, 48 on avx512) and runs the
# one-vector tile; so do 17, 40 and 100.
POINTWISE_CHANNELS = [(1, 5), (3, 9), (16, 8), (16, 17), (24, 32), (16, 40), (24, 96), (32, 100), (96, 24), (32, 48)]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("in_channels,out_channels", POINTWISE_CHANNELS, ids=lambda v: str(v))
@pytest.mark.parametrize("batch,spatial", [(1, (1, 1)), (3, (5, 7)), (2, (12, 12)), (1, (1, 25))],
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v))
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (2, 3)], ids=lambda v: "s" + "x".join(map(str, v)))
def test_conv2d_pointwise_matches_reference(tier, in_channels, out_channels, batch, spatial, strides):
    """1x1 layers run as a product over pixels (tiles of 12 or 24 pixels, whose last tile is
    partial here but for 2x12x12 at unit strides), strided ones reading every stride-th pixel of
    every stride-th row (odd sizes: 'same' and 'valid' keep different last columns): forward, input
    gradient (the same product with the kernel transposed at unit strides) and kernel gradient
    against the reference, one-vector, two-vector, partial and several-block channel counts, 8 or
    fewer output channels (avx512's ymm tile) included."""
    rng = np.random.default_rng(zlib.crc32(repr((in_channels, out_channels, batch, spatial)).encode()))
    x, kernel, bias = make_conv_case(rng, batch, *spatial, in_channels, out_channels, (1, 1))
    check_conv_against_reference(tier, x, kernel, bias, strides=strides, padding="same")
    check_conv_against_reference(tier, x, kernel, None, strides=strides, padding="valid", activation="relu")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("in_channels,out_channels", POINTWISE_CHANNELS, ids=lambda v: str(v))
def test_conv2d_pointwise_is_bitwise_the_indirect_tile(tier, in_channels, out_channels):
    """Each output's sum runs in the same order as in the general (indirect) tile. On 1x1 images a
    3x3 kernel that is zero but for its centre, with stride 2 and 'same' padding, takes the
    indirect pass with the centre as its only tap (the others fall in the padding and are skipped):
    the same arithmetic per pixel as the 1x1 layer's product over pixels, at either stride, so
    every epilogue (bias, residual, activation) gives the same bits; 47 pixels leave a partial last
    tile on every tier."""
    rng = np.random.default_rng(in_channels * 1000 + out_channels)
    x, kernel, bias = make_conv_case(rng, 47, 1, 1, in_channels, out_channels, (1, 1))
    x *= 4.0  # pre-activations reach relu6's upper clip
    centred = np.zeros((3, 3, in_channels, out_channels), np.float32)
    centred[1, 1] = kernel[0, 0]
    residual = rng.standard_normal((47, 1, 1, out_channels)).astype(np.float32)
    for activation in ("linear", "relu", "relu6", "sigmoid"):
        for extra in ({}, {"residual": residual}):
            indirect = ops.conv2d_forward(x, centred, bias, strides=(2, 2), padding="same", activation=activation,
                                          kernels=tier, **extra)
            for strides in ((1, 1), (2, 2)):
                pointwise = ops.conv2d_forward(x, kernel, bias, strides=strides, activation=activation, kernels=tier,
                                               **extra)
                np.testing.assert_array_equal(_bits(pointwise), _bits(indirect),
                                              err_msg=f"{tier} {activation} residual={bool(extra)} strides={strides}")
    dy = rng.standard_normal((47, 1, 1, out_channels)).astype(np.float32)
    pointwise = ops.conv2d_backward_input(dy, kernel, x.shape, kernels=tier)
    indirect = ops.conv2d_backward_input(dy, centred, x.shape, strides=(2, 2), padding="same", kernels=tier)
    np.testing.assert_array_equal(_bits(pointwise), _bits(indirect), err_msg=f"{tier} input gradient")


# Lanes of each tier's float vector: two of them make a block of output channels.
TIER_LANES = {"avx512": 16, "avx2": 8, "generic": 8}

# (kernel size, strides, input channels): the pointwise product, Winograd (3x3, unit strides, at
# least 16 channels both sides), the indirect tile with phases (3x3 stride 2), with merged taps (5x5).
LAST_BLOCK_GEOMETRIES = [((1, 1), (1, 1), 24), ((3, 3), (1, 1), 24), ((3, 3), (2, 2), 16), ((5, 5), (1, 1), 20)]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("geometry", LAST_BLOCK_GEOMETRIES, ids=lambda g: f"k{g[0][0]}s{g[1][0]}c{g[2]}")
@pytest.mark.parametrize("extra_lanes", [0, 3], ids=["one-vector", "partial"])
def test_conv2d_last_block_of_one_vector_is_bitwise_the_two_vector_tile(tier, geometry, extra_lanes):
    """A layer whose last block of output channels holds one vector's worth or less (24 on the
    8-lane tiers, 48 on avx512; here 2 blocks less a vector, or a vector and 3 lanes more than a
    block) runs that block with the one-vector tile, the result of which must be the two-vector
    tile's low half: the same layer with its kernel padded by zero columns to whole blocks gives
    the same bits in the real channels, for the forward pass (bias, residual, relu6) and for the
    input gradient (whose result channels are the layer's input channels: padded likewise)."""
    kernel_size, strides, in_channels = geometry
    lanes = TIER_LANES[tier]
    channels = 2 * lanes + (lanes if extra_lanes == 0 else extra_lanes)
    padded = 4 * lanes
    rng = np.random.default_rng(zlib.crc32(repr((geometry, channels)).encode()))
    x, kernel, bias = make_conv_case(rng, 2, 11, 10, in_channels, channels, kernel_size)
    geometry_args = dict(strides=strides, padding="same")
    y = ops.conv2d_forward(x, kernel, bias, kernels=tier, **geometry_args)
    residual = rng.standard_normal(y.shape).astype(np.float32)
    pad_columns = ((0, 0), (0, 0), (0, 0), (0, padded - channels))
    kernel_wide = np.pad(kernel, pad_columns)
    bias_wide = np.pad(bias, (0, padded - channels))
    residual_wide = np.pad(residual, pad_columns)
    for activation in ("linear", "relu6"):
        for with_residual in (False, True):
            extra = {"residual": residual} if with_residual else {}
            extra_wide = {"residual": residual_wide} if with_residual else {}
            narrow = ops.conv2d_forward(x, kernel, bias, activation=activation, kernels=tier, **geometry_args, **extra)
            wide = ops.conv2d_forward(x, kernel_wide, bias_wide, activation=activation, kernels=tier,
                                      **geometry_args, **extra_wide)
            np.testing.assert_array_equal(_bits(narrow), _bits(wide[..., :channels]),
                                          err_msg=f"{tier} {activation} residual={with_residual}")
    # The input gradient of a layer with `channels` inputs against its zero-padded twin.
    x_in = rng.standard_normal((2, 11, 10, channels)).astype(np.float32)
    kernel_in = rng.standard_normal(kernel_size + (channels, in_channels)).astype(np.float32)
    dy = rng.standard_normal(ops.conv2d_forward(x_in, kernel_in, None, **geometry_args).shape).astype(np.float32)
    dx = ops.conv2d_backward_input(dy, kernel_in, x_in.shape, kernels=tier, **geometry_args)
    dx_wide = ops.conv2d_backward_input(dy, np.pad(kernel_in, ((0, 0), (0, 0), (0, padded - channels), (0, 0))),
                                        x_in.shape[:3] + (padded,), kernels=tier, **geometry_args)
    np.testing.assert_array_equal(_bits(dx), _bits(dx_wide[..., :channels]), err_msg=f"{tier} input gradient")
    assert_close(dx, ops.conv2d_backward_input(dy, kernel_in, x_in.shape, kernels="reference", **geometry_args),
                 f"{tier} input gradient")


# (kernel size, strides, input channels, padding) of first layers whose merged kernel rows are
# 3 (1 channel x 3), 9 (3 x 3) or 15 (3 x 5) floats deep: the depths the tile unrolls.
FIXED_DEPTH_GEOMETRIES = [((3, 3), (1, 1), 1, "valid"), ((3, 3), (1, 1), 3, "same"), ((3, 3), (2, 2), 3, "same"),
                          ((5, 5), (1, 1), 3, "same"), ((3, 3), (1, 1), 1, "same")]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("geometry", FIXED_DEPTH_GEOMETRIES,
                         ids=lambda g: f"k{g[0][0]}s{g[1][0]}c{g[2]}{g[3]}")
def test_conv2d_unrolled_first_layer_depths_are_bitwise_the_general_loop(tier, geometry):
    """The tile's depth loop is unrolled for merged kernel rows 3, 9 or 15 floats deep. The same
    layer with one more input channel, all zeros in the input (its weights random), has a depth
    the loop does not unroll (4, 12 or 20 per kernel row) and adds only +-0 products to each sum in
    the same order: the same bits, with and without bias and relu, on images whose tiles run
    across row ends and into padding."""
    kernel_size, strides, in_channels, padding = geometry
    rng = np.random.default_rng(zlib.crc32(repr(geometry).encode()))
    x, kernel, bias = make_conv_case(rng, 2, 11, 10, in_channels, 32, kernel_size)
    x_twin = np.concatenate([x, np.zeros(x.shape[:3] + (1,), np.float32)], axis=3)
    extra_weights = rng.standard_normal(kernel_size + (1, 32)).astype(np.float32)
    kernel_twin = np.concatenate([kernel, extra_weights], axis=2)
    geometry_args = dict(strides=strides, padding=padding)
    for activation, layer_bias in (("linear", None), ("relu", bias)):
        unrolled = ops.conv2d_forward(x, kernel, layer_bias, activation=activation, kernels=tier, **geometry_args)
        general = ops.conv2d_forward(x_twin, kernel_twin, layer_bias, activation=activation, kernels=tier,
                                     **geometry_args)
        np.testing.assert_array_equal(_bits(unrolled), _bits(general), err_msg=f"{tier} {activation}")
        assert_close(unrolled, ops.conv2d_forward(x, kernel, layer_bias, activation=activation, kernels="reference",
                                                  **geometry_args), f"{tier} {activation}")


def _patches(x, kernel_size, strides, padding, dilation):
    """Every output pixel's receptive field as one row of kh * kw * Ci values in the kernel's
    (kh, kw, ci) order, zeros where it reads the padding (TensorFlow's 'same' split)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, strides, dilation
    _, height, width, _ = x.shape
    extent_h, extent_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if padding == "same":
        out_h, out_w = -(-height // sh), -(-width // sw)
        pad_h, pad_w = max((out_h - 1) * sh + extent_h - height, 0), max((out_w - 1) * sw + extent_w - width, 0)
        x = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    else:
        out_h, out_w = (height - extent_h) // sh + 1, (width - extent_w) // sw + 1
    taps = [x[:, i * dh:i * dh + (out_h - 1) * sh + 1:sh, j * dw:j * dw + (out_w - 1) * sw + 1:sw, :]
            for i in range(kh) for j in range(kw)]
    return np.ascontiguousarray(np.concatenate(taps, axis=3))


# (kernel size, strides, dilation, input channels, output channels, padding, height, width): first
# layers of 1 and 3 channels, 3x3 to ResNet's 7x7 stride 2, a dilated height, 5 to 40 output
# channels (narrow, wide and partial blocks), images whose tiles run across row and image ends.
PATCH_GEOMETRIES = [((3, 3), (1, 1), (1, 1), 3, 32, "same", 11, 10), ((3, 3), (1, 1), (1, 1), 1, 32, "valid", 9, 13),
                    ((3, 3), (2, 2), (1, 1), 3, 40, "same", 12, 9), ((5, 5), (1, 1), (1, 1), 3, 16, "same", 7, 8),
                    ((7, 7), (2, 2), (1, 1), 3, 24, "same", 15, 14), ((3, 5), (1, 2), (2, 1), 2, 5, "same", 8, 11),
                    ((2, 3), (3, 1), (1, 1), 15, 17, "valid", 10, 7)]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("geometry", PATCH_GEOMETRIES, ids=lambda g: "-".join(map(str, g)).replace(" ", ""))
def test_conv2d_first_layers_are_bitwise_the_pointwise_product_of_their_patches(tier, geometry):
    """A layer of fewer than 16 input channels (kernel rows merged over a column-padded copy of its
    input) sums each output's kh * kw * Ci products in the kernel's (kh, kw, ci) order from zero, as
    a matrix product does: bitwise the 1x1 convolution of its patches (built here in NumPy, zeros for
    the padding) with the kernel as one kh * kw * Ci-deep matrix, with bias, residual, relu6 and the
    output affine, and close to the reference."""
    kernel_size, strides, dilation, in_channels, out_channels, padding, height, width = geometry
    rng = np.random.default_rng(zlib.crc32(repr(geometry).encode()))
    x, kernel, bias = make_conv_case(rng, 3, height, width, in_channels, out_channels, kernel_size)
    patches = _patches(x, kernel_size, strides, padding, dilation)
    matrix = kernel.reshape(1, 1, -1, out_channels)
    geometry_args = dict(strides=strides, padding=padding, dilation=dilation)
    residual = rng.standard_normal(patches.shape[:3] + (out_channels,)).astype(np.float32)
    scale, shift = rng.uniform(-2, 2, (2, out_channels)).astype(np.float32)
    for extra in ({}, {"residual": residual, "output_scale": scale, "output_shift": shift}):
        for activation, layer_bias in (("linear", None), ("relu6", bias)):
            actual = ops.conv2d_forward(x, kernel, layer_bias, activation=activation, kernels=tier, **geometry_args,
                                        **extra)
            product = ops.conv2d_forward(patches, matrix, layer_bias, activation=activation, kernels=tier, **extra)
            what = f"{tier} {activation} {sorted(extra)}"
            np.testing.assert_array_equal(_bits(actual), _bits(product), err_msg=what)
            assert_close(actual, ops.conv2d_forward(x, kernel, layer_bias, activation=activation, kernels="reference",
                                                    **geometry_args, **extra), what)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("shape,strides", [((2, 3, 4, 3), (3, 1)), ((2, 5, 3, 4), (1, 3)), ((3, 3, 3, 16), (3, 3)),
                                           ((2, 4, 7, 24), (4, 2))], ids=str)
def test_conv2d_pointwise_with_one_output_row_or_column(tier, shape, strides):
    """A layer whose output is one row (or column) tall runs with that stride set to 1 (it cannot
    matter there: the grouped entry point's dense_group, which every Conv2D layer goes through),
    yet its input rows are not consecutive: each image contributes one row of its several."""
    rng = np.random.default_rng(zlib.crc32(repr((shape, strides)).encode()))
    x, kernel, bias = make_conv_case(rng, *shape, 8, (1, 1))
    for padding in ("valid", "same"):
        expected = ops.conv2d_forward(x, kernel, bias, strides=strides, padding=padding, kernels="reference")
        actual = ops.grouped_conv2d_forward(x, kernel, bias, groups=1, strides=strides, padding=padding, kernels=tier)
        assert_close(actual, expected, f"{tier} {padding}")


@pytest.mark.parametrize("tier", TIERS)
def test_conv2d_pointwise_does_not_depend_on_tiles_or_threads(tier):
    """A pixel's result does not depend on which tile holds it (each image alone against the
    batch: the tiles fall differently) or on the thread count."""
    rng = np.random.default_rng(77)
    x, kernel, bias = make_conv_case(rng, 5, 7, 5, 24, 40, (1, 1))
    whole = ops.conv2d_forward(x, kernel, bias, padding="same", activation="relu6", kernels=tier)
    for image in range(5):
        alone = ops.conv2d_forward(x[image:image + 1], kernel, bias, padding="same", activation="relu6",
                                   kernels=tier)
        np.testing.assert_array_equal(_bits(alone[0]), _bits(whole[image]), err_msg=f"{tier} image {image}")
    results = _on_one_two_and_three_threads(
        lambda: ops.conv2d_forward(x, kernel, bias, padding="same", activation="relu6", kernels=tier))
    for result in results:
        np.testing.assert_array_equal(_bits(result), _bits(whole), err_msg=f"{tier} threads")


ADD_TO_CASES = [((3, 3), (1, 1), (1, 1), 4, 8), ((3, 3), (1, 1), (1, 1), 32, 16), ((3, 3), (1, 1), (1, 1), 16, 48),
                ((1, 1), (2, 2), (1, 1), 16, 32), ((3, 3), (2, 2), (1, 1), 16, 32), ((5, 5), (2, 2), (1, 1), 8, 32),
                ((3, 3), (1, 1), (2, 2), 5, 7), ((1, 1), (1, 1), (1, 1), 24, 40), ((1, 1), (1, 1), (1, 1), 40, 5)]


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@pytest.mark.parametrize("kernel_size,strides,dilation,in_channels,out_channels", ADD_TO_CASES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v))
@pytest.mark.parametrize("large_tile", [False, True])
def test_conv2d_backward_input_adds_to_the_values_there(tier, kernel_size, strides, dilation, in_channels,
                                                       out_channels, large_tile):
    rng = np.random.default_rng(zlib.crc32(repr((kernel_size, strides, dilation, in_channels)).encode()))
    x, kernel, _ = make_conv_case(rng, 3, 11, 10, in_channels, out_channels, kernel_size)
    geometry = dict(strides=strides, padding="same", dilation=dilation, kernels=tier, large_winograd_tile=large_tile)
    output_shape = ops.conv2d_forward(x, kernel, None, strides=strides, padding="same", dilation=dilation).shape
    dy = rng.standard_normal(output_shape).astype(np.float32)
    old = rng.standard_normal(x.shape).astype(np.float32)
    kept = old.copy()
    added = ops.conv2d_backward_input(dy, kernel, x.shape, add_to=old, **geometry)
    np.testing.assert_array_equal(old, kept)  # the binding adds to a copy
    np.testing.assert_array_equal(added, old + ops.conv2d_backward_input(dy, kernel, x.shape, **geometry))


def test_conv2d_backward_input_add_to_must_have_the_input_shape():
    x, kernel, _ = make_conv_case(np.random.default_rng(0), 2, 6, 6, 3, 4, (3, 3))
    dy = np.zeros((2, 4, 4, 4), np.float32)
    with pytest.raises(ValueError, match="add_to"):
        ops.conv2d_backward_input(dy, kernel, x.shape, add_to=np.zeros((2, 6, 5, 3), np.float32))


# ---------------------------------------------------------------------------------------------
# ReLU fused into the next layer's backward: max pooling and BatchNormalization after a ReLU apply
# its derivative (zero where their input is not > 0) in their own input-gradient pass.
# ---------------------------------------------------------------------------------------------


def _relu_output(rng, shape):
    x = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)  # about half exact zeros
    x.flat[::97] = np.nan  # NaN passes no gradient through a ReLU either
    return x


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@pytest.mark.parametrize("pool,stride,padding", [((2, 2), 2, "valid"), ((3, 3), 2, "same"), ((2, 2), 1, "valid"),
                                                 ((2, 2), 3, "same")])
@pytest.mark.parametrize("channels", [3, 16, 17])
def test_max_pool2d_backward_with_relu_input_is_pool_then_relu_backward(tier, pool, stride, padding, channels):
    rng = np.random.default_rng(channels * 10 + stride)
    x = _relu_output(rng, (2, 9, 11, channels))
    y = ops.max_pool2d_forward(x, pool, (stride, stride), padding, kernels="reference")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    plain = ops.max_pool2d_backward(x, dy, pool, (stride, stride), padding, kernels="reference")
    expected = ops.activation_backward("relu", x, plain, kernels="reference")
    fused = ops.max_pool2d_backward(x, dy, pool, (stride, stride), padding, kernels=tier, relu_input=True)
    np.testing.assert_array_equal(fused, expected)


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@pytest.mark.parametrize("channels", [1, 5, 32])
def test_batch_norm_backward_with_relu_input_is_bn_then_relu_backward(tier, channels):
    rng = np.random.default_rng(channels)
    x = _relu_output(rng, (4, 6, 5, channels))
    x[np.isnan(x)] = 0.0  # batch statistics need finite values
    mean, variance = ops.batch_norm_statistics(x, kernels="reference")
    gamma = rng.standard_normal(channels).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    plain, dgamma, dbeta = ops.batch_norm_backward(x, mean, variance, gamma, dy, kernels=tier)
    fused, fused_dgamma, fused_dbeta = ops.batch_norm_backward(x, mean, variance, gamma, dy, kernels=tier,
                                                               relu_input=True)
    np.testing.assert_array_equal(fused, np.where(x > 0, plain, 0.0))
    np.testing.assert_array_equal(fused_dgamma, dgamma)  # gamma and beta see BN's own output gradient
    np.testing.assert_array_equal(fused_dbeta, dbeta)


# ---------------------------------------------------------------------------------------------
# A ReLU computed by the BatchNormalization before it (training's output_activation fusion):
# forward stores relu(BN(x)) or relu6(BN(x)); backward takes the activated output's gradient and
# must give what BN's backward gives for the ReLU's input gradient.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@pytest.mark.parametrize("activation", ["relu", "relu6"])
@pytest.mark.parametrize("channels", [1, 7, 16, 21, 33])
@pytest.mark.parametrize("relu_input", [False, True])
def test_batch_norm_with_output_activation_is_bn_then_the_activation(tier, activation, channels, relu_input):
    rng = np.random.default_rng(channels * 3 + len(activation))
    x = (3 * rng.standard_normal((3, 5, 7, channels))).astype(np.float32)
    if relu_input:
        x = np.maximum(x, 0)
    mean, variance = ops.batch_norm_statistics(x, kernels="reference")
    # Every channel's outputs on both sides of 0 and of 6.
    gamma = (rng.uniform(2.5, 4, channels) * rng.choice([-1, 1], channels)).astype(np.float32)
    beta = rng.uniform(1, 4, channels).astype(np.float32)
    normalized = ops.batch_norm_forward(x, mean, variance, gamma, beta, kernels=tier)
    activated = ops.batch_norm_forward(x, mean, variance, gamma, beta, kernels=tier, activation=activation)
    expected = ops.activation_forward(activation, normalized, kernels="reference")
    np.testing.assert_array_equal(activated, expected)
    if activation == "relu6" and not relu_input:  # the case covers both clipped sides and the inside
        assert (activated == 6).any() and (activated == 0).any() and ((activated > 0) & (activated < 6)).any()
    dy = rng.standard_normal(x.shape).astype(np.float32)
    through_activation = ops.activation_backward(activation, activated, dy, kernels="reference")
    plain = ops.batch_norm_backward(x, mean, variance, gamma, through_activation, kernels=tier, relu_input=relu_input)
    fused = ops.batch_norm_backward(x, mean, variance, gamma, dy, kernels=tier, relu_input=relu_input,
                                    activation=activation, beta=beta)
    for name, a, e in zip(("input", "gamma", "beta"), fused, plain):
        np.testing.assert_array_equal(a, e, err_msg=f"{tier} {activation} {name} gradient")


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@pytest.mark.parametrize("activation", ["relu", "relu6"])
def test_batch_norm_fused_activation_mask_is_the_forwards_at_the_kinks(tier, activation):
    """The backward recomputes the pre-activation x * scale + shift: its mask must be the stored
    output's exactly, also for inputs whose pre-activation lies within a few ulps of 0 and 6,
    where an FMA and a separate multiply and add round differently."""
    rng = np.random.default_rng(7)
    channels, rows = 19, 400
    mean = rng.normal(0, 1, channels).astype(np.float32)
    variance = rng.uniform(0.3, 3, channels).astype(np.float32)
    gamma = rng.uniform(0.5, 2, channels).astype(np.float32)
    beta = rng.uniform(-2, 2, channels).astype(np.float32)
    scale = gamma / np.sqrt(variance + np.float32(1e-3))
    shift = beta - mean * scale
    kinks = np.array([0.0, 6.0], np.float32)[rng.integers(0, 2, (rows, channels))]
    # x near (kink - shift) / scale, nudged by up to 8 ulps either way.
    x = ((kinks - shift) / scale).astype(np.float32)
    x = x + np.spacing(x) * rng.integers(-8, 9, x.shape).astype(np.float32)
    x = x.reshape(4, 10, 10, channels)
    activated = ops.batch_norm_forward(x, mean, variance, gamma, beta, kernels=tier, activation=activation)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    through_activation = ops.activation_backward(activation, activated, dy, kernels="reference")
    plain = ops.batch_norm_backward(x, mean, variance, gamma, through_activation, kernels=tier)
    fused = ops.batch_norm_backward(x, mean, variance, gamma, dy, kernels=tier, activation=activation, beta=beta)
    inside = ((activated > 0) & (activated < 6)) if activation == "relu6" else activated > 0
    assert 0.2 < inside.mean() < 0.8  # the inputs straddle the kinks
    for name, a, e in zip(("input", "gamma", "beta"), fused, plain):
        np.testing.assert_array_equal(a, e, err_msg=f"{tier} {activation} {name} gradient")


def test_batch_norm_output_activation_arguments_are_checked():
    x = np.ones((2, 3), np.float32)
    mean, variance = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="must be 'linear', 'relu' or 'relu6'. Received: swish"):
        ops.batch_norm_forward(x, mean, variance, activation="swish")
    with pytest.raises(ValueError, match=r"`beta` is read only with activation='relu' or 'relu6'.*Received: "
                                         r"activation='linear'"):
        ops.batch_norm_backward(x, mean, variance, None, x, beta=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"beta"):
        ops.batch_norm_backward(x, mean, variance, None, x, activation="relu6", beta=np.ones(2, np.float32))


# ---------------------------------------------------------------------------------------------
# A max pooling computed by the BatchNormalization it reads (training's batch_norm_max_pool):
# forward writes the pooled output and each window's first maximum; backward takes the pooled
# output's gradient and must give what BN's backward gives for the pooling's input gradient, bit
# for bit.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@pytest.mark.parametrize("activation", ["linear", "relu", "relu6"])
@pytest.mark.parametrize("shape, pool_size, strides", [
    ((2, 6, 8, 16), (2, 2), None),
    ((3, 7, 9, 5), (2, 2), None),           # a row and a column past the last window
    ((2, 9, 10, 21), (3, 2), (3, 3)),       # gaps between windows, a channel remainder
    ((1, 24, 27, 33), (2, 2), None),        # 648 rows: chunks of 512 end inside an image row
    ((2, 4, 4, 1), (4, 4), None),
])
@pytest.mark.parametrize("relu_input", [False, True])
def test_batch_norm_with_max_pool_is_bn_then_max_pool_forward_and_backward(tier, activation, shape, pool_size,
                                                                               strides, relu_input):
    rng = np.random.default_rng(shape[1] * 7 + shape[3] + len(activation))
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    if relu_input:
        x = np.maximum(x, 0)  # also ties at 0 inside windows
    x[:, 1, :, :] = x[:, 0, :, :]  # ties between a window's rows: the first maximum takes the gradient
    mean, variance = ops.batch_norm_statistics(x, kernels="reference")
    gamma = (rng.uniform(2.5, 4, shape[3]) * rng.choice([-1, 1], shape[3])).astype(np.float32)
    beta = rng.uniform(-1, 4, shape[3]).astype(np.float32)
    output = ops.batch_norm_forward(x, mean, variance, gamma, beta, kernels=tier, activation=activation)
    pool_strides = strides or pool_size
    # The pooling's relu_input where its input is a ReLU's (a fused relu here).
    pool_relu_input = activation == "relu"
    pooled, positions = ops.batch_norm_forward(x, mean, variance, gamma, beta, kernels=tier, activation=activation,
                                               pool_size=pool_size, pool_strides=strides,
                                               pool_relu_input=pool_relu_input)
    np.testing.assert_array_equal(pooled, ops.max_pool2d_forward(output, pool_size, pool_strides, "valid", kernels=tier))
    _, pooling_positions = ops.max_pool2d_forward(output, pool_size, pool_strides, "valid", kernels=tier,
                                                  positions=True, relu_input=pool_relu_input)
    np.testing.assert_array_equal(positions, pooling_positions)
    pooled_gradient = rng.standard_normal(pooled.shape).astype(np.float32)
    output_gradient = ops.max_pool2d_backward(output, pooled_gradient, pool_size, pool_strides, "valid", kernels=tier,
                                              relu_input=pool_relu_input)
    fused_activation = {} if activation == "linear" else {"activation": activation, "beta": beta}
    plain = ops.batch_norm_backward(x, mean, variance, gamma, output_gradient, kernels=tier, relu_input=relu_input,
                                    **fused_activation)
    routed = ops.batch_norm_backward(x, mean, variance, gamma, pooled_gradient, kernels=tier, relu_input=relu_input,
                                     pool_size=pool_size, pool_strides=strides, window_positions=positions,
                                     **fused_activation)
    assert np.count_nonzero(output_gradient) > 0
    if pool_relu_input and positions.size > 100:
        assert (positions == 255).any()  # windows whose maximum is 0 pass no gradient
    for name, a, e in zip(("input", "gamma", "beta"), routed, plain):
        np.testing.assert_array_equal(a, e, err_msg=f"{tier} {activation} {name} gradient")


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
def test_max_pool_positions_are_the_first_maximum_in_the_window(tier):
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, (2, 7, 8, 19)).astype(np.float32)  # many ties
    x[0, 0, 0, :3] = np.nan
    x[1, 2, 3, 5] = np.nan
    pooled, positions = ops.max_pool2d_forward(x, (2, 3), (3, 3), "valid", kernels=tier, positions=True)
    # windows[n, oh, ow, c, position]: the 2 x 3 window's values, row-major.
    windows = np.stack([x[:, a:a + 4:3, b:b + 6:3] for a in range(2) for b in range(3)], -1)
    assert windows.shape == (2, 2, 2, 19, 6)
    # The first NaN where there is one, else the first maximum.
    expected = np.where(np.isnan(windows).any(-1), np.argmax(np.isnan(windows), -1),
                        np.argmax(np.where(np.isnan(windows), -np.inf, windows), -1))
    np.testing.assert_array_equal(positions, expected.astype(np.uint8))
    assert (np.sum(windows == windows.max(-1, keepdims=True), -1) > 1).any()  # ties were there to break
    _, relu_positions = ops.max_pool2d_forward(np.maximum(x, 0), (2, 3), (3, 3), "valid", kernels=tier, positions=True,
                                               relu_input=True)
    # (A NaN maximum is not > 0 either: max_pool2d_backward's relu_input passes nothing there.)
    maxima = np.where(np.isnan(windows).any(-1), np.nan, np.nanmax(np.maximum(windows, 0), -1))
    no_gradient = ~(maxima > 0)
    assert no_gradient.any() and not no_gradient.all()
    np.testing.assert_array_equal(relu_positions == 255, no_gradient)


def test_batch_norm_max_pool_arguments_are_checked():
    x = np.ones((2, 4, 4, 3), np.float32)
    mean, variance = np.zeros(3, np.float32), np.ones(3, np.float32)
    pooled = np.ones((2, 2, 2, 3), np.float32)
    positions = np.zeros((2, 2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match=r"do not overlap.*Received: pool_size=\(2, 2\), "
                                         r"strides=\(1, 1\) on input.shape=\(2, 4, 4, 3\)"):
        ops.batch_norm_backward(x, mean, variance, None, np.ones((2, 3, 3, 3), np.float32), pool_size=(2, 2),
                                pool_strides=(1, 1), window_positions=np.zeros((2, 3, 3, 3), np.uint8))
    with pytest.raises(ValueError, match=r"do not overlap.*Received: pool_size=\(3, 3\), strides=\(2, 2\)"):
        ops.batch_norm_forward(x, mean, variance, pool_size=(3, 3), pool_strides=(2, 2))
    with pytest.raises(ValueError, match=r"fewer than 255 positions.*Received: pool_size=\(16, 16\)"):
        ops.batch_norm_forward(np.ones((1, 16, 16, 3), np.float32), mean, variance, pool_size=(16, 16))
    with pytest.raises(ValueError, match=r"`pool_strides` and `pool_relu_input` are read only with `pool_size`"):
        ops.batch_norm_forward(x, mean, variance, pool_relu_input=True)
    pooled_output, forward_positions = ops.batch_norm_forward(x, mean, variance, pool_size=(2, 2))
    assert pooled_output.shape == forward_positions.shape == (2, 2, 2, 3) and forward_positions.dtype == np.uint8
    with pytest.raises(ValueError, match=r"pooled output's shape \(2, 2, 2, 3\)\. Received: "
                                         r"output_gradient.shape=\(2, 4, 4, 3\)"):
        ops.batch_norm_backward(x, mean, variance, None, x, pool_size=(2, 2), window_positions=positions)
    with pytest.raises(TypeError, match=r"`window_positions` must be the uint8 array.*Received: an array of dtype "
                                        r"int64"):
        ops.batch_norm_backward(x, mean, variance, None, pooled, pool_size=(2, 2), window_positions=positions.astype(int))
    with pytest.raises(TypeError, match=r"Received: NoneType"):
        ops.batch_norm_backward(x, mean, variance, None, pooled, pool_size=(2, 2))
    with pytest.raises(ValueError, match=r"`window_positions` must have the pooled output's shape.*Received: "
                                         r"window_positions.shape=\(2, 2, 2, 2\)"):
        ops.batch_norm_backward(x, mean, variance, None, pooled, pool_size=(2, 2), window_positions=positions[..., :2])
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\) or be 255\. Received: 4"):
        ops.batch_norm_backward(x, mean, variance, None, pooled, pool_size=(2, 2), window_positions=positions + 4)
    with pytest.raises(ValueError, match=r"read only with `pool_size`"):
        ops.batch_norm_backward(x, mean, variance, None, x, pool_strides=(2, 2))
    with pytest.raises(ValueError, match=r"read only with `pool_size`"):
        ops.batch_norm_backward(x, mean, variance, None, x, window_positions=positions)
    with pytest.raises(ValueError, match=r"input.*4"):
        ops.batch_norm_backward(np.ones((2, 3), np.float32), mean, variance, None, np.ones((1, 3), np.float32),
                                pool_size=(2, 2), window_positions=positions)
    with pytest.raises(ValueError, match=r"`relu_input` is read only with positions=True"):
        ops.max_pool2d_forward(x, (2, 2), (2, 2), relu_input=True)
    with pytest.raises(ValueError, match=r"at most 254 positions\. Received: pool_size=\(16, 16\)"):
        ops.max_pool2d_forward(np.ones((1, 16, 16, 1), np.float32), (16, 16), (16, 16), positions=True)


@pytest.mark.parametrize("tier", TIERS)
def test_vector_gelu_matches_float64_and_the_reference(tier):
    """The optimised tiers compute erf with their own rational approximation
    (simd::error_function, within 4.2e-7 of erf): gelu(x) = x (1 + erf(x / sqrt 2)) / 2 stays within
    3e-7 |x| + 1 ulp of float64 math everywhere (the reference's std::erf itself is within 1 ulp),
    its backward within the usual tolerance of the reference's, and NaN and infinities follow the
    formula."""
    import math

    x = np.concatenate([np.array([0.0, -0.0, 1e-30, -1e-30, 2.8, -2.8, 5.6, -5.6, 5.7, -5.7, 40.0, -40.0,
                                  np.inf, -np.inf, np.nan], np.float32),
                        np.linspace(-12, 12, 24001, dtype=np.float32),
                        np.random.default_rng(7).standard_normal(4099).astype(np.float32) * 3])
    out = ops.activation_forward("gelu", x, kernels=tier)
    finite = np.isfinite(x)
    x64 = x[finite].astype(np.float64)
    expected = 0.5 * x64 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x64]))
    error = np.abs(out[finite].astype(np.float64) - expected)
    bound = 3e-7 * np.abs(x64) + np.spacing(np.abs(expected).astype(np.float32)).astype(np.float64)
    assert (error <= bound).all(), f"{tier}: {error.max()} at x = {x64[(error - bound).argmax()]}"
    reference = ops.activation_forward("gelu", x, kernels="reference")
    np.testing.assert_array_equal(np.isnan(out), np.isnan(reference))
    np.testing.assert_array_equal(out[np.isinf(x)], reference[np.isinf(x)])
    dy = np.random.default_rng(8).standard_normal(x.shape).astype(np.float32)
    dx = ops.activation_backward("gelu", reference, dy, kernels=tier, input=x)
    reference_dx = ops.activation_backward("gelu", reference, dy, kernels="reference", input=x)
    number = ~np.isnan(reference_dx)
    np.testing.assert_array_equal(np.isnan(dx), ~number)
    assert_close(dx[number], reference_dx[number], f"{tier} gelu backward")


def _memory_error_under_address_space_limit(tmp_path, setup, call, room, tier="active"):
    """Runs `setup` (defines x, ...; warms the threads up with a small call) in a child process, then
    `call` under an address-space limit of what is in use plus `room` (an expression) bytes, and
    asserts that it raised MemoryError: never a crash, never success (the limit is set to fail)."""
    script = tmp_path / "out_of_memory.py"
    script.write_text(textwrap.dedent("""
        import resource
        import numpy as np
        from fastcnn import _core
        _core.set_num_threads(2)
        tier = {tier!r}
    """).format(tier=tier) + textwrap.dedent(setup) + textwrap.dedent("""
        in_use = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        limit = in_use + ({room})
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            {call}
            print("no error")
        except MemoryError:
            print("MemoryError")
    """).format(room=room, call=call))
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == "MemoryError", completed.stdout


_SANITIZER_ADDRESS_SPACE = pytest.mark.skipif(
    hasattr(_core, "_sanitizer_canary"), reason="AddressSanitizer reserves more address space than the limit")


@_SANITIZER_ADDRESS_SPACE
def test_pointwise_pass_out_of_memory_raises_memory_error(tmp_path):
    """A pointwise pass whose row copies cannot be allocated raises MemoryError. The address-space
    limit leaves room for the packed kernel, not for the copies."""
    _memory_error_under_address_space_limit(tmp_path, """
        depth = 1 << 21  # a multiple of 512: the pass copies each tile's rows
        x = np.ones((12, depth), np.float32)
        kernel = np.ones((depth, 16), np.float32)
        _core.ops.dense_forward(x[:1, :512], kernel[:512], None)  # threads started before the limit
    """, "_core.ops.dense_forward(x, kernel, None)",
        room="(128 + 60) * 2**20")  # the 128 MiB packed kernel fits; 12 or 24 rows of 8 MiB per thread do not


@_SANITIZER_ADDRESS_SPACE
@pytest.mark.parametrize("tier", TIERS)
def test_allocation_failing_on_a_worker_thread_raises_memory_error(tmp_path, tier):
    """A kernel whose worker threads cannot allocate their scratch raises MemoryError on the calling
    thread (an exception leaving an OpenMP region would end the process): the direct kernel
    gradient (parallel_region, per-thread panels and sums) and the overlapping max pool's backward
    pass (parallel_for, per-thread window maxima). Each limit leaves room for the result array."""
    _memory_error_under_address_space_limit(tmp_path, """
        input_channels, output_channels = 12, 1 << 17
        x = np.ones((1, 8, 8, input_channels), np.float32)
        dy = np.ones((1, 6, 6, output_channels), np.float32)
        _core.ops.conv2d_backward_kernel(x, dy[..., :64], (3, 3), use_bias=False, kernels=tier)
    """, "_core.ops.conv2d_backward_kernel(x, dy, (3, 3), use_bias=False, kernels=tier)",
        room="9 * input_channels * output_channels * 4 + 16 * 2**20", tier=tier)
    _memory_error_under_address_space_limit(tmp_path, """
        x = np.random.default_rng(0).random((2, 2, 2, 1 << 22), dtype=np.float32)
        dy = np.ones((2, 1, 1, 1 << 22), np.float32)
        _core.ops.max_pool2d_backward(x[..., :64], dy[..., :64], (2, 2), (1, 1), "valid", kernels=tier)
    """, "_core.ops.max_pool2d_backward(x, dy, (2, 2), (1, 1), 'valid', kernels=tier)",
        room="x.nbytes + 16 * 2**20", tier=tier)  # the input gradient fits; 12 bytes per channel per thread do not
