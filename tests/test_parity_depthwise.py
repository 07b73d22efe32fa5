"""DepthwiseConv2D and grouped Conv2D, forward and every gradient, against TensorFlow.

Depthwise: tf.nn.depthwise_conv2d (what Keras's DepthwiseConv2D runs), gradients by tf.GradientTape.
Grouped: tf.nn.convolution with the grouped kernel (kh, kw, Ci/g, Co) for the forward pass (what
Keras's Conv2D(groups=g) runs); TensorFlow's CPU kernels have no gradient for grouped
convolutions ("Gradients for grouped convolutions are not supported on CPU"), so the gradients
come from the same layer written as g convolutions on channel slices, concatenated.
Error measure: max |fastcnn - tf| / max |tf|; bounds 1e-5 forward, 1e-4 gradients. Both the
reference kernels (the spec) and the kernels in use are checked."""

import numpy as np
import pytest

from fastcnn import _core
from conftest import relative_error

TIERS = ["reference", "active"]

DEPTHWISE_CASES = [
    # (batch, height, width, channels, depth_multiplier, kernel, strides, padding, dilation)
    (2, 9, 7, 3, 1, (3, 3), (1, 1), "valid", (1, 1)),
    (2, 9, 7, 5, 2, (3, 3), (1, 1), "same", (1, 1)),
    (1, 11, 10, 8, 3, (3, 3), (2, 2), "same", (1, 1)),   # odd padding split (bottom/right extra)
    (3, 11, 10, 17, 1, (3, 3), (2, 2), "valid", (1, 1)),
    (1, 8, 8, 16, 1, (1, 1), (1, 1), "valid", (1, 1)),
    (2, 12, 12, 4, 2, (5, 5), (1, 1), "same", (1, 1)),
    (1, 13, 12, 33, 1, (5, 5), (2, 2), "same", (1, 1)),
    (1, 10, 10, 6, 1, (3, 3), (1, 1), "same", (2, 2)),   # dilation (TensorFlow takes it with unit strides only)
    (1, 10, 11, 7, 3, (3, 3), (1, 1), "valid", (2, 2)),
    (1, 10, 11, 3, 2, (2, 3), (2, 2), "same", (1, 1)),   # non-square kernel (TensorFlow: equal strides only)
    (1, 1, 1, 4, 1, (3, 3), (1, 1), "same", (1, 1)),     # kernel larger than a 1x1 input, same padding
]

GROUPED_CASES = [
    # (batch, height, width, in_channels, filters, groups, kernel, strides, padding, dilation)
    (2, 9, 7, 4, 6, 2, (3, 3), (1, 1), "same", (1, 1)),
    (2, 9, 7, 6, 9, 3, (3, 3), (2, 2), "valid", (1, 1)),
    (1, 10, 9, 8, 8, 8, (3, 3), (1, 1), "same", (1, 1)),   # groups == channels: depthwise
    (1, 10, 9, 6, 12, 6, (5, 5), (2, 2), "same", (1, 1)),  # one input channel per group, two filters each
    (1, 10, 9, 12, 24, 4, (1, 1), (1, 1), "valid", (1, 1)),
    (1, 11, 10, 8, 16, 2, (3, 3), (1, 1), "same", (2, 2)),
    (2, 8, 8, 32, 32, 1, (3, 3), (1, 1), "same", (1, 1)),  # groups == 1: Conv2D
]


def _id(case):
    return "_".join(str(value).replace(" ", "") for value in case)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=_id)
def test_depthwise_matches_tensorflow(tf, rng, tier, case):
    batch, height, width, channels, multiplier, kernel_size, strides, padding, dilation = case
    activation = "relu6"
    x = rng.standard_normal((batch, height, width, channels)).astype(np.float32)
    kernel = rng.standard_normal(kernel_size + (channels, multiplier)).astype(np.float32)
    bias = rng.standard_normal(channels * multiplier).astype(np.float32)
    x_t, kernel_t, bias_t = tf.constant(x), tf.Variable(kernel), tf.Variable(bias)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        pre = tf.nn.depthwise_conv2d(x_t, kernel_t, (1,) + strides + (1,), padding.upper(), dilations=dilation) + bias_t
        out = tf.nn.relu6(pre)
    upstream = rng.standard_normal(out.shape).astype(np.float32)
    dx_t, dk_t, db_t = tape.gradient(out, [x_t, kernel_t, bias_t], output_gradients=tf.constant(upstream))

    ops = _core.ops
    y = ops.depthwise_conv2d_forward(x, kernel, bias, strides, padding, dilation, activation, tier)
    assert relative_error(y, out.numpy()) <= 1e-5
    # The backward kernels take the pre-activation gradient; the activation's part goes first.
    pre_gradient = ops.activation_backward(activation, y, upstream, tier)
    dx = ops.depthwise_conv2d_backward_input(pre_gradient, kernel, x.shape, strides, padding, dilation, tier)
    dk, db = ops.depthwise_conv2d_backward_kernel(x, pre_gradient, kernel_size, multiplier, strides, padding,
                                                  dilation, True, tier)
    assert relative_error(dx, dx_t.numpy()) <= 1e-4
    assert relative_error(dk, dk_t.numpy()) <= 1e-4
    assert relative_error(db, db_t.numpy()) <= 1e-4


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("case", GROUPED_CASES, ids=_id)
def test_grouped_conv2d_matches_tensorflow(tf, rng, tier, case):
    batch, height, width, in_channels, filters, groups, kernel_size, strides, padding, dilation = case
    x = rng.standard_normal((batch, height, width, in_channels)).astype(np.float32)
    kernel = rng.standard_normal(kernel_size + (in_channels // groups, filters)).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32)
    geometry = dict(strides=strides, padding=padding.upper(), dilations=dilation)
    grouped = tf.nn.convolution(x, kernel, **geometry) + bias
    x_t, kernel_t, bias_t = tf.constant(x), tf.Variable(kernel), tf.Variable(bias)
    group_in, group_out = in_channels // groups, filters // groups
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        parts = [tf.nn.convolution(x_t[..., g * group_in:(g + 1) * group_in],
                                   kernel_t[..., g * group_out:(g + 1) * group_out], **geometry)
                 for g in range(groups)]
        out = tf.nn.relu(tf.concat(parts, axis=-1) + bias_t)
    assert relative_error(tf.nn.relu(grouped).numpy(), out.numpy()) <= 1e-5  # the two TensorFlow forms agree
    upstream = rng.standard_normal(out.shape).astype(np.float32)
    dx_t, dk_t, db_t = tape.gradient(out, [x_t, kernel_t, bias_t], output_gradients=tf.constant(upstream))

    ops = _core.ops
    y = ops.grouped_conv2d_forward(x, kernel, bias, groups, strides, padding, dilation, "relu", tier)
    assert relative_error(y, tf.nn.relu(grouped).numpy()) <= 1e-5
    pre_gradient = ops.activation_backward("relu", y, upstream, tier)
    dx = ops.grouped_conv2d_backward_input(pre_gradient, kernel, x.shape, groups, strides, padding, dilation, tier)
    dk, db = ops.grouped_conv2d_backward_kernel(x, pre_gradient, kernel_size, groups, strides, padding, dilation,
                                                True, tier)
    assert relative_error(dx, dx_t.numpy()) <= 1e-4
    assert relative_error(dk, dk_t.numpy()) <= 1e-4
    assert relative_error(db, db_t.numpy()) <= 1e-4


@pytest.mark.parametrize("tier", TIERS)
def test_separable_shape_matches_tensorflow(tf, rng, tier):
    """SeparableConv2D's two steps (depthwise then 1x1 pointwise) against tf.nn.separable_conv2d."""
    x = rng.standard_normal((2, 10, 9, 6)).astype(np.float32)
    depthwise = rng.standard_normal((3, 3, 6, 2)).astype(np.float32)
    pointwise = rng.standard_normal((1, 1, 12, 5)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    expected = tf.nn.separable_conv2d(x, depthwise, pointwise, (1, 2, 2, 1), "SAME") + bias
    middle = _core.ops.depthwise_conv2d_forward(x, depthwise, None, (2, 2), "same", kernels=tier)
    actual = _core.ops.conv2d_forward(middle, pointwise, bias, kernels=tier)
    assert relative_error(actual, expected.numpy()) <= 1e-5
