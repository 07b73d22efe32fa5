"""DepthwiseConv2D and grouped Conv2D kernels: every optimised tier against the reference kernels.

The tiers come from ``fastcnn._core.available_kernels()``. Forward (bias and activation fused),
input gradient and kernel + bias gradient of every tier agree with the reference within float32
summation-order tolerance over sweeps of strides, dilations, padding, odd sizes, channel counts
(below, at and past one vector of lanes), depth multipliers 1-3, groups 1/2/C and batches 1 and 3.
A float64 NumPy version of the formulas checks the reference itself. Results are bitwise the same
for 1, 2 and 3 threads; bad arguments raise ValueError naming what was received; random
configurations (hypothesis, derandomized) agree with the reference as the sweeps do.
"""

import itertools
import math
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastcnn
from fastcnn import _core

ops = _core.ops

TIERS = [name for name in _core.available_kernels() if name != "reference"]

pytestmark = pytest.mark.skipif(not TIERS, reason="no optimised kernel tier on this CPU")


def assert_close(actual, reference, what=""):
    actual, reference = np.asarray(actual), np.asarray(reference)
    assert actual.shape == reference.shape, f"{what}: shape {actual.shape} != {reference.shape}"
    assert actual.dtype == np.float32, f"{what}: dtype {actual.dtype}"
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    np.testing.assert_allclose(actual, reference, rtol=1e-5, atol=1e-5 * max(1.0, scale), err_msg=what)


def seeded(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def depthwise_case(rng, batch, height, width, channels, depth_multiplier, kernel_size, use_bias=True):
    x = rng.standard_normal((batch, height, width, channels)).astype(np.float32)
    kernel = (rng.standard_normal(tuple(kernel_size) + (channels, depth_multiplier)) /
              math.sqrt(kernel_size[0] * kernel_size[1])).astype(np.float32)
    bias = (0.5 * rng.standard_normal(channels * depth_multiplier)).astype(np.float32) if use_bias else None
    return x, kernel, bias


def check_depthwise(x, kernel, bias, strides=(1, 1), padding="valid", dilation=(1, 1), activation="linear"):
    """Forward, input gradient and kernel (+ bias) gradient of every tier against the reference."""
    geometry = dict(strides=strides, padding=padding, dilation=dilation)
    use_bias = bias is not None
    multiplier = kernel.shape[3]

    def run(tier):
        y = ops.depthwise_conv2d_forward(x, kernel, bias, activation=activation, kernels=tier, **geometry)
        dy = seeded(x.shape, kernel.shape).standard_normal(y.shape).astype(np.float32)
        dx = ops.depthwise_conv2d_backward_input(dy, kernel, x.shape, kernels=tier, **geometry)
        dk, db = ops.depthwise_conv2d_backward_kernel(x, dy, kernel.shape[:2], multiplier, use_bias=use_bias,
                                                      kernels=tier, **geometry)
        return y, dx, dk, db

    reference = run("reference")
    for tier in TIERS:
        results = run(tier)
        for name, actual, expected in zip(["forward", "input gradient", "kernel gradient"], results, reference):
            assert_close(actual, expected, f"{tier} depthwise {name}")
        if use_bias:
            assert_close(results[3], reference[3], f"{tier} depthwise bias gradient")
        else:
            assert results[3] is None and reference[3] is None
    return reference[0]


def check_grouped(x, kernel, bias, groups, strides=(1, 1), padding="valid", dilation=(1, 1), activation="linear"):
    geometry = dict(groups=groups, strides=strides, padding=padding, dilation=dilation)

    def run(tier):
        y = ops.grouped_conv2d_forward(x, kernel, bias, activation=activation, kernels=tier, **geometry)
        dy = seeded(x.shape, kernel.shape, groups).standard_normal(y.shape).astype(np.float32)
        dx = ops.grouped_conv2d_backward_input(dy, kernel, x.shape, kernels=tier, **geometry)
        dk, db = ops.grouped_conv2d_backward_kernel(x, dy, kernel.shape[:2], kernels=tier, **geometry)
        return y, dx, dk, db

    reference = run("reference")
    for tier in TIERS:
        names = ["forward", "input gradient", "kernel gradient", "bias gradient"]
        for name, actual, expected in zip(names, run(tier), reference):
            assert_close(actual, expected, f"{tier} grouped {name}")
    return reference[0]


# float64 NumPy versions of the formulas (ops/depthwise_conv2d.h, ops/grouped_conv2d.h).


def window_output(size, kernel, stride, dilation, padding):
    effective = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (size - effective) // stride + 1, 0
    out = -(-size // stride)
    return out, max((out - 1) * stride + effective - size, 0) // 2


def numpy_patches(x, kernel_size, strides, padding, dilation):
    """Yields (kh, kw, the input values tap (kh, kw) reads for every output pixel: (n, oh, ow, C))."""
    _, height, width, _ = x.shape
    out_h, top = window_output(height, kernel_size[0], strides[0], dilation[0], padding)
    out_w, left = window_output(width, kernel_size[1], strides[1], dilation[1], padding)
    bottom = max((out_h - 1) * strides[0] + (kernel_size[0] - 1) * dilation[0] + 1 - height - top, 0)
    right = max((out_w - 1) * strides[1] + (kernel_size[1] - 1) * dilation[1] + 1 - width - left, 0)
    padded = np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)))
    for i, j in itertools.product(range(kernel_size[0]), range(kernel_size[1])):
        r, c = i * dilation[0], j * dilation[1]
        yield i, j, padded[:, r:r + (out_h - 1) * strides[0] + 1:strides[0], c:c + (out_w - 1) * strides[1] + 1:strides[1]]


def numpy_depthwise(x, kernel, bias, strides, padding, dilation):
    out = 0.0
    for i, j, patch in numpy_patches(x, kernel.shape[:2], strides, padding, dilation):
        out = out + patch[..., :, None] * kernel[i, j].astype(np.float64)  # (n, oh, ow, C, dm)
    out = out.reshape(out.shape[:3] + (-1,))
    return out + bias if bias is not None else out


def numpy_grouped(x, kernel, bias, groups, strides, padding, dilation):
    group_in, group_out = x.shape[3] // groups, kernel.shape[3] // groups
    out = 0.0
    for i, j, patch in numpy_patches(x, kernel.shape[:2], strides, padding, dilation):
        per_group = patch.reshape(patch.shape[:3] + (groups, group_in))
        weights = kernel[i, j].astype(np.float64).reshape(group_in, groups, group_out)
        out = out + np.einsum("nhwgi,igo->nhwgo", per_group, weights)
    out = out.reshape(out.shape[:3] + (-1,))
    return out + bias if bias is not None else out


# ---------------------------------------------------------------------------------------------
# depthwise
# ---------------------------------------------------------------------------------------------

GEOMETRIES = [  # (strides, dilation)
    ((1, 1), (1, 1)),
    ((2, 2), (1, 1)),
    ((2, 1), (1, 1)),
    ((1, 1), (2, 2)),
    ((2, 2), (2, 1)),
]


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides,dilation", GEOMETRIES, ids=lambda v: "x".join(map(str, v)))
@pytest.mark.parametrize("kernel_size", [(1, 1), (3, 3), (5, 5), (2, 3)], ids=lambda k: f"k{k[0]}x{k[1]}")
def test_depthwise_geometry_sweep(kernel_size, strides, dilation, padding):
    rng = seeded(kernel_size, strides, dilation, padding)
    x, kernel, bias = depthwise_case(rng, 3, 11, 10, 13, 2, kernel_size)
    check_depthwise(x, kernel, bias, strides, padding, dilation, activation="relu")


@pytest.mark.parametrize("channels", list(range(1, 18)) + [31, 33])
def test_depthwise_channel_sweep(channels):
    for depth_multiplier in (1, 2, 3):
        rng = seeded(channels, depth_multiplier)
        x, kernel, bias = depthwise_case(rng, 1, 7, 9, channels, depth_multiplier, (3, 3))
        check_depthwise(x, kernel, bias, padding="same")
        check_depthwise(x, kernel, None, strides=(2, 2), padding="valid")


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel_size", [(3, 3), (5, 5)], ids=lambda k: f"k{k[0]}x{k[1]}")
@pytest.mark.parametrize("spatial", [(1, 1), (2, 2), (13, 5), (6, 1), (1, 8), (17, 19)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_depthwise_odd_spatial_sizes_same_padding(spatial, kernel_size, stride):
    rng = seeded(spatial, kernel_size, stride)
    x, kernel, bias = depthwise_case(rng, 3, spatial[0], spatial[1], 9, 1, kernel_size)
    check_depthwise(x, kernel, bias, strides=(stride, stride), padding="same")


# Rows whose interior (the pixels every tap reads inside the input) holds 1 to 20 pixels: the
# forward pass runs whole tiles of 8, then a tile ending at the row's last interior pixel that
# overlaps pixels already stored, then 4s, then single pixels; with dilation 1 and 3- or 5-wide
# kernels the tiles load each input vector of a kernel row once for all the pixels that read it.
ROW_WIDTHS = list(range(1, 21))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel_size", [(3, 3), (5, 5)], ids=lambda k: f"k{k[0]}x{k[1]}")
def test_depthwise_row_tiles_match_the_reference(kernel_size, stride):
    for output_width in ROW_WIDTHS:
        width = (output_width - 1) * stride + kernel_size[1]
        for channels, padding, activation in ((16, "valid", "relu6"), (13, "same", "linear")):
            rng = seeded(kernel_size, stride, output_width, channels)
            x, kernel, bias = depthwise_case(rng, 2, kernel_size[0] + 2, width, channels, 1, kernel_size)
            check_depthwise(x, kernel, bias, strides=(stride, stride), padding=padding, activation=activation)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel_size", [(3, 3), (5, 5)], ids=lambda k: f"k{k[0]}x{k[1]}")
def test_depthwise_row_tiles_are_bitwise_the_single_pixel_sums(tier, kernel_size, stride):
    """Each output pixel of a wide row equals, bit for bit, the same pixel computed alone (an input
    crop with one output column: a one-pixel tile): the 8- and 4-pixel row tiles sum a pixel's taps
    in the same order, and a pixel stored twice by overlapping tiles holds the same value."""
    for output_width in ROW_WIDTHS:
        width = (output_width - 1) * stride + kernel_size[1]
        rng = seeded("bitwise", kernel_size, stride, output_width)
        x, kernel, bias = depthwise_case(rng, 2, kernel_size[0], width, 20, 1, kernel_size)
        wide = ops.depthwise_conv2d_forward(x, kernel, bias, strides=(stride, stride), activation="relu6",
                                            kernels=tier)
        for column in range(output_width):
            crop = np.ascontiguousarray(x[:, :, column * stride:column * stride + kernel_size[1]])
            alone = ops.depthwise_conv2d_forward(crop, kernel, bias, strides=(stride, stride), activation="relu6",
                                                 kernels=tier)
            np.testing.assert_array_equal(wide[:, :, column:column + 1], alone,
                                          err_msg=f"{tier}: column {column} of {output_width}")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel_size", [(3, 3), (5, 5)], ids=lambda k: f"k{k[0]}x{k[1]}")
def test_depthwise_border_tiles_are_bitwise_the_zero_padded_sums(tier, kernel_size, stride):
    """With "same" padding the row tiles that hold border pixels skip the taps in the padding. Each
    output pixel equals, bit for bit, the pixel computed alone from the explicitly zero-padded input
    ("valid"): a zero tap adds exactly nothing to a nonzero running sum (the random bias makes every
    sum nonzero), so the skipped taps and the order of the others are checked together."""
    for output_width in ROW_WIDTHS:
        width = (output_width - 1) * stride + 1
        rng = seeded("border", kernel_size, stride, output_width)
        x, kernel, bias = depthwise_case(rng, 2, kernel_size[0] + 1, width, 20, 1, kernel_size)
        wide = ops.depthwise_conv2d_forward(x, kernel, bias, strides=(stride, stride), padding="same",
                                            activation="relu6", kernels=tier)
        assert wide.shape[2] == output_width

        def same_pads(size, kernel_extent):
            total = max((-(-size // stride) - 1) * stride + kernel_extent - size, 0)
            return total // 2, total - total // 2

        padded = np.pad(x, ((0, 0), same_pads(x.shape[1], kernel_size[0]), same_pads(width, kernel_size[1]), (0, 0)))
        for column in range(output_width):
            crop = np.ascontiguousarray(padded[:, :, column * stride:column * stride + kernel_size[1]])
            alone = ops.depthwise_conv2d_forward(crop, kernel, bias, strides=(stride, stride), activation="relu6",
                                                 kernels=tier)
            np.testing.assert_array_equal(wide[:, :, column:column + 1], alone,
                                          err_msg=f"{tier}: column {column} of {output_width}")


@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (1, 2), (2, 1)], ids=lambda s: f"s{s[0]}x{s[1]}")
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_depthwise_3x3_kernel_gradient_every_border(strides, padding):
    """The 3x3 kernel gradient's own walk (nine taps per pixel, border columns checked, runs of rows
    with the same kernel rows inside): images 1-7 rows and 1-17 columns high and wide, so that every
    pattern of kernel rows and columns inside the input occurs, channel counts below, at and past a
    vector, with and without bias; against the reference, bitwise equal for one and two threads."""
    previous = fastcnn.config.get_num_threads()
    for height, width in [(1, 1), (1, 2), (2, 3), (3, 1), (3, 5), (4, 4), (5, 17), (7, 6)]:
        for channels, use_bias in [(1, True), (8, False), (13, True), (16, True)]:
            rng = seeded("3x3 kernel gradient", strides, padding, height, width, channels)
            x, kernel, bias = depthwise_case(rng, 3, height, width, channels, 1, (3, 3), use_bias)
            geometry = dict(strides=strides, padding=padding)
            if padding == "valid" and (height < 3 or width < 3):
                continue  # no output
            y = ops.depthwise_conv2d_forward(x, kernel, bias, kernels="reference", **geometry)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            reference = ops.depthwise_conv2d_backward_kernel(x, dy, (3, 3), 1, use_bias=use_bias, kernels="reference",
                                                             **geometry)
            for tier in TIERS:
                try:
                    results = []
                    for threads in (1, 2):
                        fastcnn.config.set_num_threads(threads)
                        results.append(ops.depthwise_conv2d_backward_kernel(x, dy, (3, 3), 1, use_bias=use_bias,
                                                                            kernels=tier, **geometry))
                finally:
                    fastcnn.config.set_num_threads(previous)
                what = f"{tier} {height}x{width}x{channels}"
                assert_close(results[0][0], reference[0], f"{what} kernel gradient")
                np.testing.assert_array_equal(results[0][0], results[1][0], err_msg=what)
                if use_bias:
                    assert_close(results[0][1], reference[1], f"{what} bias gradient")
                    np.testing.assert_array_equal(results[0][1], results[1][1], err_msg=what)
                else:
                    assert results[0][1] is None


@pytest.mark.parametrize("depth_multiplier", [1, 3])
@pytest.mark.parametrize("kernel_size,strides,padding", [((3, 3), (1, 1), "same"), ((5, 5), (2, 2), "same"),
                                                         ((3, 7), (1, 1), "valid"), ((1, 9), (1, 2), "same")],
                         ids=["k3-same", "k5-s2", "k3x7-valid", "k1x9-s1x2"])
def test_depthwise_kernel_gradient_over_row_groups(kernel_size, strides, padding, depth_multiplier):
    """Kernel gradients over many row groups (about 128 output pixels each) inside each chunk of
    rows, with kernel rows of 1 to 9 taps (taken 4 at a time: groups of 4, 3 and 1), against the
    reference and bitwise equal for one and two threads."""
    rng = seeded("row groups", kernel_size, strides, padding, depth_multiplier)
    x, kernel, bias = depthwise_case(rng, 6, 23, 70, 13, depth_multiplier, kernel_size)
    geometry = dict(strides=strides, padding=padding)
    y = ops.depthwise_conv2d_forward(x, kernel, bias, kernels="reference", **geometry)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    reference = ops.depthwise_conv2d_backward_kernel(x, dy, kernel_size, depth_multiplier, kernels="reference",
                                                     **geometry)
    previous = fastcnn.config.get_num_threads()
    for tier in TIERS:
        try:
            results = []
            for threads in (1, 2):
                fastcnn.config.set_num_threads(threads)
                results.append(ops.depthwise_conv2d_backward_kernel(x, dy, kernel_size, depth_multiplier,
                                                                    kernels=tier, **geometry))
        finally:
            fastcnn.config.set_num_threads(previous)
        assert_close(results[0][0], reference[0], f"{tier} depthwise kernel gradient")
        assert_close(results[0][1], reference[1], f"{tier} depthwise bias gradient")
        np.testing.assert_array_equal(results[0][0], results[1][0])
        np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("activation", ["linear", "relu", "relu6", "sigmoid", "swish", "gelu"])
def test_depthwise_fused_activations(activation):
    x, kernel, bias = depthwise_case(seeded(activation), 2, 8, 9, 19, 1, (3, 3))
    x *= 4.0  # reach relu6's upper clip
    check_depthwise(x, kernel, bias, padding="same", activation=activation)


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@pytest.mark.parametrize("case", [
    ((2, 2), "same", (1, 1), 3), ((1, 1), "valid", (2, 2), 1), ((2, 1), "same", (1, 2), 2),
])
def test_depthwise_matches_numpy_formula(tier, case):
    strides, padding, dilation, multiplier = case
    x, kernel, bias = depthwise_case(seeded(case), 2, 9, 8, 5, multiplier, (3, 3))
    actual = ops.depthwise_conv2d_forward(x, kernel, bias, strides, padding, dilation, kernels=tier)
    expected = numpy_depthwise(x, kernel, bias, strides, padding, dilation)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
def test_depthwise_gradients_are_the_adjoints_of_the_forward_map(tier):
    """Input and kernel gradients are the adjoints of the forward map: <dy, J dx> = <J^T dy, dx>."""
    rng = seeded("adjoint", tier)
    x, kernel, _ = depthwise_case(rng, 2, 9, 8, 6, 2, (3, 3))
    geometry = dict(strides=(2, 2), padding="same", dilation=(1, 1))
    y = ops.depthwise_conv2d_forward(x, kernel, None, kernels=tier, **geometry)
    dy = rng.standard_normal(y.shape)
    dx = ops.depthwise_conv2d_backward_input(dy, kernel, x.shape, kernels=tier, **geometry)
    dk, _ = ops.depthwise_conv2d_backward_kernel(x, dy, (3, 3), 2, use_bias=False, kernels=tier, **geometry)
    # The forward map is bilinear: <dy, y> = <dx, x> = <dk, kernel>.
    expected = float(np.sum(dy * y))
    assert math.isclose(float(np.sum(dx * x)), expected, rel_tol=1e-4, abs_tol=1e-3)
    assert math.isclose(float(np.sum(dk * kernel)), expected, rel_tol=1e-4, abs_tol=1e-3)


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
def test_depthwise_empty_batch(tier):
    x, kernel, bias = depthwise_case(seeded("empty"), 0, 5, 5, 4, 2, (3, 3))
    y = ops.depthwise_conv2d_forward(x, kernel, bias, padding="same", kernels=tier)
    assert y.shape == (0, 5, 5, 8)
    dx = ops.depthwise_conv2d_backward_input(y, kernel, x.shape, padding="same", kernels=tier)
    assert dx.shape == x.shape
    dk, db = ops.depthwise_conv2d_backward_kernel(x, y, (3, 3), 2, padding="same", kernels=tier)
    np.testing.assert_array_equal(dk, np.zeros((3, 3, 4, 2), np.float32))
    np.testing.assert_array_equal(db, np.zeros(8, np.float32))


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
def test_depthwise_layouts_give_the_contiguous_result(tier):
    x, kernel, bias = depthwise_case(seeded("layouts"), 2, 6, 7, 5, 2, (3, 3))
    expected = ops.depthwise_conv2d_forward(x, kernel, bias, padding="same", kernels=tier)
    for variant in (x.astype(np.float64), np.asfortranarray(x), x[:, ::-1][:, ::-1], np.flip(np.flip(x).copy())):
        np.testing.assert_array_equal(ops.depthwise_conv2d_forward(variant, kernel, bias, padding="same", kernels=tier),
                                      expected)


# ---------------------------------------------------------------------------------------------
# grouped
# ---------------------------------------------------------------------------------------------


def grouped_case(rng, batch, height, width, in_channels, out_channels, groups, kernel_size):
    x = rng.standard_normal((batch, height, width, in_channels)).astype(np.float32)
    fan_in = kernel_size[0] * kernel_size[1] * in_channels // groups
    kernel = (rng.standard_normal(tuple(kernel_size) + (in_channels // groups, out_channels)) /
              math.sqrt(fan_in)).astype(np.float32)
    bias = (0.5 * rng.standard_normal(out_channels)).astype(np.float32)
    return x, kernel, bias


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides,dilation", GEOMETRIES[:4], ids=lambda v: "x".join(map(str, v)))
@pytest.mark.parametrize("kernel_size", [(1, 1), (3, 3), (5, 5)], ids=lambda k: f"k{k[0]}x{k[1]}")
def test_grouped_geometry_sweep(kernel_size, strides, dilation, padding):
    x, kernel, bias = grouped_case(seeded(kernel_size, strides, dilation, padding), 3, 11, 10, 12, 18, 3, kernel_size)
    check_grouped(x, kernel, bias, 3, strides, padding, dilation, activation="relu")


@pytest.mark.parametrize("in_channels,out_channels,groups", [
    (4, 6, 1), (4, 6, 2), (8, 8, 8), (6, 12, 6), (17, 34, 17), (33, 33, 3), (32, 48, 2), (16, 16, 4),
])
def test_grouped_channel_sweep(in_channels, out_channels, groups):
    x, kernel, bias = grouped_case(seeded(in_channels, out_channels, groups), 1, 7, 9, in_channels, out_channels,
                                   groups, (3, 3))
    check_grouped(x, kernel, bias, groups, padding="same")
    check_grouped(x, kernel, bias, groups, strides=(2, 2), padding="valid")


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
@pytest.mark.parametrize("groups", [1, 2, 6])
def test_grouped_matches_numpy_formula(tier, groups):
    x, kernel, bias = grouped_case(seeded("numpy", groups), 2, 9, 8, 6, 12, groups, (3, 3))
    actual = ops.grouped_conv2d_forward(x, kernel, bias, groups, (2, 1), "same", (1, 1), kernels=tier)
    np.testing.assert_allclose(actual, numpy_grouped(x, kernel, bias, groups, (2, 1), "same", (1, 1)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
def test_grouped_with_one_group_is_conv2d_and_one_channel_per_group_is_depthwise(tier):
    x, kernel, bias = grouped_case(seeded("special"), 2, 8, 7, 6, 12, 1, (3, 3))
    assert_close(ops.grouped_conv2d_forward(x, kernel, bias, 1, padding="same", kernels=tier),
                 ops.conv2d_forward(x, kernel, bias, padding="same", kernels=tier), "groups=1")
    x, kernel, bias = grouped_case(seeded("special dw"), 2, 8, 7, 6, 12, 6, (3, 3))
    depthwise_kernel = kernel.reshape(3, 3, 6, 2)  # (kh, kw, 1, C*dm) and (kh, kw, C, dm): the same memory
    np.testing.assert_array_equal(ops.grouped_conv2d_forward(x, kernel, bias, 6, padding="same", kernels="reference"),
                                  ops.depthwise_conv2d_forward(x, depthwise_kernel, bias, padding="same",
                                                               kernels="reference"))
    assert_close(ops.grouped_conv2d_forward(x, kernel, bias, 6, padding="same", kernels=tier),
                 ops.depthwise_conv2d_forward(x, depthwise_kernel, bias, padding="same", kernels=tier), "groups=C")


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
def test_grouped_empty_batch(tier):
    x, kernel, bias = grouped_case(seeded("empty grouped"), 0, 5, 5, 4, 6, 2, (3, 3))
    y = ops.grouped_conv2d_forward(x, kernel, bias, 2, padding="same", kernels=tier)
    assert y.shape == (0, 5, 5, 6)
    assert ops.grouped_conv2d_backward_input(y, kernel, x.shape, 2, padding="same", kernels=tier).shape == x.shape
    dk, db = ops.grouped_conv2d_backward_kernel(x, y, (3, 3), 2, padding="same", kernels=tier)
    np.testing.assert_array_equal(dk, np.zeros((3, 3, 2, 6), np.float32))
    np.testing.assert_array_equal(db, np.zeros(6, np.float32))


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------


def _bits(array):
    return np.ascontiguousarray(array).view(np.uint32)


@pytest.mark.parametrize("tier", TIERS)
def test_bitwise_identical_with_one_two_and_three_threads(tier):
    rng = seeded("threads")
    x, kernel, bias = depthwise_case(rng, 4, 17, 15, 40, 1, (3, 3))
    x2, kernel2, bias2 = depthwise_case(rng, 3, 9, 10, 12, 3, (5, 5))
    xg, kernelg, biasg = grouped_case(rng, 3, 9, 10, 16, 24, 4, (3, 3))
    xd, kerneld, biasd = grouped_case(rng, 2, 9, 10, 32, 48, 2, (3, 3))  # wide groups: dense Conv2D per group
    dyd = rng.standard_normal((2, 9, 10, 48)).astype(np.float32)
    dy = rng.standard_normal((4, 17, 15, 40)).astype(np.float32)
    dy2 = rng.standard_normal((3, 5, 5, 36)).astype(np.float32)
    dyg = rng.standard_normal((3, 9, 10, 24)).astype(np.float32)
    results = {}
    previous = _core.get_num_threads()
    try:
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            results[threads] = [
                ops.depthwise_conv2d_forward(x, kernel, bias, padding="same", activation="relu6", kernels=tier),
                ops.depthwise_conv2d_backward_input(dy, kernel, x.shape, padding="same", kernels=tier),
                *ops.depthwise_conv2d_backward_kernel(x, dy, (3, 3), 1, padding="same", kernels=tier),
                ops.depthwise_conv2d_forward(x2, kernel2, bias2, strides=(2, 2), padding="same", kernels=tier),
                ops.depthwise_conv2d_backward_input(dy2, kernel2, x2.shape, strides=(2, 2), padding="same", kernels=tier),
                *ops.depthwise_conv2d_backward_kernel(x2, dy2, (5, 5), 3, strides=(2, 2), padding="same", kernels=tier),
                ops.grouped_conv2d_forward(xg, kernelg, biasg, 4, padding="same", kernels=tier),
                ops.grouped_conv2d_backward_input(dyg, kernelg, xg.shape, 4, padding="same", kernels=tier),
                *ops.grouped_conv2d_backward_kernel(xg, dyg, (3, 3), 4, padding="same", kernels=tier),
                ops.grouped_conv2d_forward(xd, kerneld, biasd, 2, padding="same", kernels=tier),
                ops.grouped_conv2d_backward_input(dyd, kerneld, xd.shape, 2, padding="same", kernels=tier),
                *ops.grouped_conv2d_backward_kernel(xd, dyd, (3, 3), 2, padding="same", kernels=tier),
            ]
    finally:
        _core.set_num_threads(previous)
    for threads in (2, 3):
        for index, (one, many) in enumerate(zip(results[1], results[threads])):
            np.testing.assert_array_equal(_bits(one), _bits(many), err_msg=f"{tier} result {index}: 1 vs {threads} threads")


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_bad_depthwise_arguments_raise_value_error():
    x = np.zeros((1, 5, 5, 4), np.float32)
    kernel = np.zeros((3, 3, 4, 2), np.float32)
    with pytest.raises(ValueError, match="depth_multiplier=0"):
        ops.depthwise_conv2d_forward(x, np.zeros((3, 3, 4, 0), np.float32))
    with pytest.raises(ValueError, match="depth_multiplier=-1"):
        ops.depthwise_conv2d_backward_kernel(x, np.zeros((1, 3, 3, 4), np.float32), (3, 3), -1)
    with pytest.raises(ValueError, match=r"kernel.shape=\(3, 3, 3, 2\)"):
        ops.depthwise_conv2d_forward(x, np.zeros((3, 3, 3, 2), np.float32))
    with pytest.raises(ValueError, match="larger than the input"):
        ops.depthwise_conv2d_forward(x, np.zeros((7, 3, 4, 2), np.float32))
    with pytest.raises(ValueError, match=r"bias.shape=\(4,\)"):
        ops.depthwise_conv2d_forward(x, kernel, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="stride_height"):
        ops.depthwise_conv2d_forward(x, kernel, strides=(0, 1))
    with pytest.raises(ValueError, match="padding=full"):
        ops.depthwise_conv2d_forward(x, kernel, padding="full")
    with pytest.raises(ValueError, match="softmax"):
        ops.depthwise_conv2d_forward(x, kernel, activation="softmax")
    with pytest.raises(ValueError, match=r"output_gradient.shape=\(1, 3, 3, 4\)"):
        ops.depthwise_conv2d_backward_input(np.zeros((1, 3, 3, 4), np.float32), kernel, x.shape)
    with pytest.raises(ValueError, match=r"output_gradient.shape=\(1, 3, 3, 7\)"):
        ops.depthwise_conv2d_backward_kernel(x, np.zeros((1, 3, 3, 7), np.float32), (3, 3), 2)
    with pytest.raises(ValueError, match="rank 4"):
        ops.depthwise_conv2d_forward(x[0], kernel)


def test_bad_grouped_arguments_raise_value_error():
    x = np.zeros((1, 5, 5, 6), np.float32)
    with pytest.raises(ValueError, match="groups=4"):
        ops.grouped_conv2d_forward(x, np.zeros((3, 3, 1, 8), np.float32), groups=4)  # 4 does not divide 6
    with pytest.raises(ValueError, match="groups=2, filters=5"):
        ops.grouped_conv2d_forward(x, np.zeros((3, 3, 3, 5), np.float32), groups=2)
    with pytest.raises(ValueError, match="groups=0"):
        ops.grouped_conv2d_forward(x, np.zeros((3, 3, 3, 6), np.float32), groups=0)
    with pytest.raises(ValueError, match=r"kernel.shape=\(3, 3, 2, 6\)"):
        ops.grouped_conv2d_forward(x, np.zeros((3, 3, 2, 6), np.float32), groups=2)
    with pytest.raises(ValueError, match="larger than the input"):
        ops.grouped_conv2d_forward(x, np.zeros((3, 9, 3, 6), np.float32), groups=2)
    with pytest.raises(ValueError, match=r"output_gradient.shape=\(1, 3, 3, 5\)"):
        ops.grouped_conv2d_backward_input(np.zeros((1, 3, 3, 5), np.float32), np.zeros((3, 3, 3, 6), np.float32),
                                          x.shape, groups=2)
    with pytest.raises(ValueError, match="groups=4"):
        ops.grouped_conv2d_backward_kernel(x, np.zeros((1, 3, 3, 8), np.float32), (3, 3), groups=4)


def test_huge_depth_multiplier_and_strides_are_refused_not_overflowed():
    x = np.zeros((1, 5, 5, 4), np.float32)
    dy = np.zeros((1, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match="too large"):
        ops.depthwise_conv2d_backward_kernel(x, dy, (3, 3), 2**62)
    with pytest.raises(ValueError):
        ops.depthwise_conv2d_backward_kernel(x, dy, (2**40, 2**40), 1, padding="same")
    y = ops.depthwise_conv2d_forward(x, np.zeros((3, 3, 4, 1), np.float32), strides=(2**62, 2**62), padding="same")
    assert y.shape == (1, 1, 1, 4)



def test_huge_strides_and_dilations_compute_like_the_reference():
    """Windows reaching far past the input ('same' padding): only the taps that land inside count."""
    rng = seeded("huge")
    for strides, dilation in (((2**62, 2**61), (1, 1)), ((2**63 - 1, 2**63 - 1), (1, 1)), ((1, 1), (2**40, 2**41)),
                              ((3, 2**50), (2**45, 1))):
        x, kernel, bias = depthwise_case(rng, 2, 5, 6, 3, 2, (3, 3))
        check_depthwise(x, kernel, bias, strides, "same", dilation)
        xg, kernelg, biasg = grouped_case(rng, 2, 5, 6, 8, 8, 2, (3, 3))
        check_grouped(xg, kernelg, biasg, 2, strides, "same", dilation)
        xg, kernelg, biasg = grouped_case(rng, 1, 5, 6, 32, 32, 2, (3, 3))  # wide groups: dense per group
        check_grouped(xg, kernelg, biasg, 2, strides, "same", dilation)


# ---------------------------------------------------------------------------------------------
# out= and the bandwidth probe
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
def test_out_receives_the_result(tier):
    x, kernel, bias = depthwise_case(seeded("out"), 2, 7, 6, 5, 2, (3, 3))
    expected = ops.depthwise_conv2d_forward(x, kernel, bias, padding="same", kernels=tier)
    out = np.full_like(expected, np.nan)
    assert ops.depthwise_conv2d_forward(x, kernel, bias, padding="same", kernels=tier, out=out) is out
    np.testing.assert_array_equal(out, expected)
    dx = np.full_like(x, np.nan)
    assert ops.depthwise_conv2d_backward_input(expected, kernel, x.shape, padding="same", kernels=tier, out=dx) is dx
    np.testing.assert_array_equal(dx, ops.depthwise_conv2d_backward_input(expected, kernel, x.shape, padding="same",
                                                                          kernels=tier))


def test_bad_out_raises():
    x, kernel, bias = depthwise_case(seeded("bad out"), 1, 5, 5, 3, 1, (3, 3))
    with pytest.raises(ValueError, match=r"Received: out.shape=\(1, 5, 5, 4\)"):
        ops.depthwise_conv2d_forward(x, kernel, bias, padding="same", out=np.zeros((1, 5, 5, 4), np.float32))
    with pytest.raises(ValueError, match="out.dtype=float64"):
        ops.depthwise_conv2d_forward(x, kernel, bias, padding="same", out=np.zeros((1, 5, 5, 3)))
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.depthwise_conv2d_forward(x, kernel, bias, padding="same",
                                     out=np.zeros((1, 5, 5, 6), np.float32)[..., ::2])
    with pytest.raises(ValueError, match="share memory"):
        ops.depthwise_conv2d_forward(x, kernel, bias, padding="same", out=x)
    with pytest.raises(TypeError, match="out of type list"):
        ops.depthwise_conv2d_forward(x, kernel, bias, padding="same", out=[0.0])
    read_only = np.zeros((1, 5, 5, 3), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        ops.depthwise_conv2d_backward_input(np.zeros((1, 5, 5, 3), np.float32), kernel, x.shape, padding="same",
                                            out=read_only)


def test_memory_bandwidth_probe():
    assert ops.memory_bandwidth_probe(3, 2) > 0.1  # GB/s; a tiny probe runs from cache
    with pytest.raises(ValueError, match="megabytes=0"):
        ops.memory_bandwidth_probe(0)


# ---------------------------------------------------------------------------------------------
# random configurations (hypothesis)
# ---------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=30, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@st.composite
def configurations(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["valid", "same"]))
    minimum = [(k - 1) * d + 1 if padding == "valid" else 1 for k, d in zip(kernel, dilation)]
    height, width = draw(st.integers(minimum[0], 12)), draw(st.integers(minimum[1], 12))
    return dict(batch=draw(st.integers(0, 3)), height=height, width=width, kernel=kernel, strides=strides,
                dilation=dilation, padding=padding)


@FUZZ
@given(configurations(), st.integers(1, 20), st.integers(1, 3), st.sampled_from(["linear", "relu6", "elu"]))
def test_depthwise_random_configurations(config, channels, multiplier, activation):
    rng = seeded("fuzz", config, channels, multiplier)
    x, kernel, bias = depthwise_case(rng, config["batch"], config["height"], config["width"], channels, multiplier,
                                     config["kernel"])
    check_depthwise(x, kernel, bias, config["strides"], config["padding"], config["dilation"], activation)


@FUZZ
@given(configurations(), st.integers(1, 6), st.integers(1, 6), st.integers(1, 5))
def test_grouped_random_configurations(config, in_per_group, out_per_group, groups):
    rng = seeded("fuzz grouped", config, in_per_group, out_per_group, groups)
    x, kernel, bias = grouped_case(rng, config["batch"], config["height"], config["width"], in_per_group * groups,
                                   out_per_group * groups, groups, config["kernel"])
    check_grouped(x, kernel, bias, groups, config["strides"], config["padding"], config["dilation"])
