"""Each op, forward and every gradient, against TensorFlow (tf.nn ops and tf.GradientTape).

Error measure: max |fastcnn - tf| / max |tf| over the tensor; bounds 1e-5 forward, 1e-4 gradients.
Both the reference kernels (the spec) and the kernels in use are checked."""

import itertools

import numpy as np
import pytest

from fastcnn import _core
from conftest import relative_error

TIERS = ["reference", "active"]

CONV_CASES = [
    # (batch, height, width, in_channels, out_channels, kernel, strides, padding, dilation)
    (2, 9, 7, 3, 5, (3, 3), (1, 1), "valid", (1, 1)),
    (2, 9, 7, 3, 5, (3, 3), (1, 1), "same", (1, 1)),
    (2, 11, 10, 1, 8, (3, 3), (2, 2), "same", (1, 1)),   # odd padding split (bottom/right extra)
    (2, 11, 10, 3, 4, (3, 3), (2, 2), "valid", (1, 1)),
    (1, 8, 8, 3, 17, (1, 1), (1, 1), "valid", (1, 1)),
    (1, 8, 9, 2, 6, (1, 1), (2, 2), "same", (1, 1)),
    (2, 12, 12, 1, 3, (5, 5), (1, 1), "same", (1, 1)),
    (1, 12, 13, 3, 16, (5, 5), (2, 2), "valid", (1, 1)),
    (1, 10, 10, 4, 7, (3, 3), (1, 1), "same", (2, 2)),   # dilation
    (1, 10, 11, 3, 5, (2, 3), (1, 2), "same", (1, 1)),   # non-square kernel and strides
    (3, 5, 5, 32, 33, (3, 3), (1, 1), "same", (1, 1)),
    (1, 1, 1, 3, 4, (3, 3), (1, 1), "same", (1, 1)),     # kernel larger than a 1x1 input, same padding
]


def _case_id(case):
    return "n{}_{}x{}x{}_o{}_k{}x{}_s{}{}_{}_d{}".format(case[0], case[1], case[2], case[3], case[4],
                                                         *case[5], *case[6], case[7], case[8][0])


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_conv2d_matches_tensorflow(tf, rng, tier, case, activation):
    batch, height, width, channels, filters, kernel_size, strides, padding, dilation = case
    x = rng.standard_normal((batch, height, width, channels)).astype(np.float32)
    kernel = rng.standard_normal(kernel_size + (channels, filters)).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32)
    x_t, kernel_t, bias_t = tf.constant(x), tf.Variable(kernel), tf.Variable(bias)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x_t)
        # tf.nn.convolution is what Keras calls; it runs dilated convolutions through space_to_batch.
        pre = tf.nn.convolution(x_t, kernel_t, strides=strides, padding=padding.upper(), dilations=dilation) + bias_t
        out = tf.nn.relu(pre) if activation == "relu" else pre
    upstream = rng.standard_normal(out.shape).astype(np.float32)
    dx_t, dk_t, db_t = tape.gradient(out, [x_t, kernel_t, bias_t], output_gradients=tf.constant(upstream))

    y = _core.ops.conv2d_forward(x, kernel, bias, strides, padding, dilation, activation, tier)
    assert relative_error(y, out.numpy()) <= 1e-5
    # Backward kernels take the pre-activation gradient; the activation's part is applied first.
    pre_gradient = _core.ops.activation_backward(activation, y, upstream, tier)
    dx = _core.ops.conv2d_backward_input(pre_gradient, kernel, x.shape, strides, padding, dilation, tier)
    dk, db = _core.ops.conv2d_backward_kernel(x, pre_gradient, kernel_size, strides, padding, dilation, True, tier)
    assert relative_error(dx, dx_t.numpy()) <= 1e-4
    assert relative_error(dk, dk_t.numpy()) <= 1e-4
    assert relative_error(db, db_t.numpy()) <= 1e-4


POOL_CASES = list(itertools.product(
    [(2, 8, 8, 3), (1, 7, 9, 17), (2, 5, 5, 1)],
    [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((3, 3), (1, 1)), ((2, 3), (3, 1))],
    ["valid", "same"],
))


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("shape,window,padding", POOL_CASES)
def test_max_pool2d_matches_tensorflow(tf, rng, tier, shape, window, padding):
    pool_size, strides = window
    x = rng.standard_normal(shape).astype(np.float32)
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = tf.nn.max_pool2d(x_t, ksize=pool_size, strides=strides, padding=padding.upper())
    upstream = rng.standard_normal(out.shape).astype(np.float32)
    dx_t = tape.gradient(out, x_t, output_gradients=tf.constant(upstream))
    y = _core.ops.max_pool2d_forward(x, pool_size, strides, padding, tier)
    assert np.array_equal(y, out.numpy())
    dx = _core.ops.max_pool2d_backward(x, upstream, pool_size, strides, padding, tier)
    assert relative_error(dx, dx_t.numpy()) <= 1e-6


@pytest.mark.parametrize("tier", TIERS)
def test_max_pool2d_ties_route_like_tensorflow(tf, tier):
    # Whole windows of equal values: TensorFlow sends the gradient to the first maximum.
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[0, :2, :2, 1] = 3.0
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = tf.nn.max_pool2d(x_t, ksize=2, strides=2, padding="VALID")
    upstream = np.arange(out.numpy().size, dtype=np.float32).reshape(out.shape) + 1
    dx_t = tape.gradient(out, x_t, output_gradients=tf.constant(upstream))
    dx = _core.ops.max_pool2d_backward(x, upstream, (2, 2), (2, 2), "valid", tier)
    np.testing.assert_array_equal(dx, dx_t.numpy())


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("batch,inputs,units", [(1, 7, 1), (5, 33, 10), (32, 1600, 10), (4, 16, 17)])
@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh"])
def test_dense_matches_tensorflow(tf, rng, tier, batch, inputs, units, activation):
    x = rng.standard_normal((batch, inputs)).astype(np.float32)
    kernel = (rng.standard_normal((inputs, units)) / np.sqrt(inputs)).astype(np.float32)
    bias = rng.standard_normal(units).astype(np.float32)
    x_t, kernel_t, bias_t = tf.constant(x), tf.Variable(kernel), tf.Variable(bias)
    function = {"linear": tf.identity, "relu": tf.nn.relu, "sigmoid": tf.sigmoid, "tanh": tf.tanh}[activation]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x_t)
        out = function(tf.matmul(x_t, kernel_t) + bias_t)
    upstream = rng.standard_normal(out.shape).astype(np.float32)
    dx_t, dk_t, db_t = tape.gradient(out, [x_t, kernel_t, bias_t], output_gradients=tf.constant(upstream))
    y = _core.ops.dense_forward(x, kernel, bias, activation, tier)
    assert relative_error(y, out.numpy()) <= 1e-5
    pre_gradient = _core.ops.activation_backward(activation, y, upstream, tier)
    dx = _core.ops.dense_backward_input(pre_gradient, kernel, tier)
    dk, db = _core.ops.dense_backward_kernel(x, pre_gradient, True, tier)
    assert relative_error(dx, dx_t.numpy()) <= 1e-4
    assert relative_error(dk, dk_t.numpy()) <= 1e-4
    assert relative_error(db, db_t.numpy()) <= 1e-4


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "softmax", "linear"])
def test_activations_match_tensorflow(tf, rng, tier, activation):
    x = (3 * rng.standard_normal((6, 10))).astype(np.float32)
    x_t = tf.constant(x)
    function = {"linear": tf.identity, "relu": tf.nn.relu, "sigmoid": tf.sigmoid, "tanh": tf.tanh,
                "softmax": tf.nn.softmax}[activation]
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = function(x_t)
    upstream = rng.standard_normal(x.shape).astype(np.float32)
    dx_t = tape.gradient(out, x_t, output_gradients=tf.constant(upstream))
    y = _core.ops.activation_forward(activation, x, tier)
    assert relative_error(y, out.numpy()) <= 1e-5
    dx = _core.ops.activation_backward(activation, y, upstream, tier)
    assert relative_error(dx, dx_t.numpy()) <= 1e-4


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("sparse", [True, False])
def test_cross_entropy_matches_tensorflow(tf, rng, from_logits, sparse):
    batch, classes = 8, 10
    logits = (4 * rng.standard_normal((batch, classes))).astype(np.float32)
    predictions = logits if from_logits else tf.nn.softmax(logits).numpy()
    labels = rng.integers(0, classes, batch)
    one_hot = np.eye(classes, dtype=np.float32)[labels]
    p_t = tf.constant(predictions)
    with tf.GradientTape() as tape:
        tape.watch(p_t)
        if sparse:
            loss_t = tf.keras.losses.sparse_categorical_crossentropy(labels, p_t, from_logits=from_logits)
        else:
            loss_t = tf.keras.losses.categorical_crossentropy(one_hot, p_t, from_logits=from_logits)
        mean_t = tf.reduce_mean(loss_t)
    gradient_t = tape.gradient(mean_t, p_t)
    losses, gradient = _core.ops.loss(predictions, labels.astype(np.int32) if sparse else one_hot, from_logits)
    assert relative_error(losses, loss_t.numpy()) <= 1e-5
    assert relative_error(gradient, gradient_t.numpy()) <= 1e-4


def test_cross_entropy_is_stable_for_extreme_logits(tf):
    logits = np.array([[1000.0, -1000.0, 0.0], [-50.0, 80.0, 80.0]], np.float32)
    labels = np.array([1, 0], np.int32)
    losses, gradient = _core.ops.loss(logits, labels, True)
    expected = tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True).numpy()
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(gradient))
    np.testing.assert_allclose(losses, expected, rtol=1e-6)
