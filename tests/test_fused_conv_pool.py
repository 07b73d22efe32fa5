"""Conv2D + MaxPooling2D as one kernel (``conv2d_max_pool2d_*``): the first convolution of an image
model (at most 4 input channels) computes the max pooling after it without storing its own output.

Kernel level, every tier: the fused forward equals the unfused convolution then pooling bitwise,
its window positions are those of each window's first maximum, and the fused kernel gradient
equals the unfused chain (pooling backward with the ReLU's derivative, then the convolution's
kernel gradient) — exactly on integer data, where every sum is exact, and within float rounding on
random data. Network level: which pairs fuse, and training/prediction with the fusion on and off
(prediction computes no window positions: bitwise the unfused pair's maxima, NaN included).
"""

import numpy as np
import pytest

import fastcnn
from fastcnn import _core, layers, models, utils
from conftest import relative_error

ops = _core.ops
TIERS = list(_core.available_kernels())
OPTIMISED = [name for name in TIERS if name != "reference"]

# (batch, height, width, in, out, kernel, strides, padding, dilation, activation, pool)
GEOMETRIES = [
    (3, 28, 28, 1, 32, (3, 3), (1, 1), "valid", (1, 1), "relu", (2, 2)),   # seed Example 1's first pair
    (2, 29, 27, 3, 20, (3, 3), (1, 1), "same", (1, 1), "relu", (2, 2)),    # odd sizes: last row/column dropped
    (2, 17, 19, 2, 7, (5, 3), (2, 1), "same", (1, 2), "linear", (3, 2)),   # strides, dilation, no ReLU
    (2, 16, 16, 4, 40, (3, 3), (1, 1), "valid", (2, 2), "relu", (1, 1)),   # 1x1 windows, partial channel block
    (1, 9, 9, 1, 3, (2, 2), (1, 1), "valid", (1, 1), "relu", (8, 8)),      # one window over the image
    (2, 12, 10, 3, 16, (1, 1), (1, 1), "valid", (1, 1), "relu", (2, 5)),   # 1x1 kernel
    (1, 34, 34, 1, 1, (3, 3), (1, 1), "valid", (1, 1), "relu", (16, 16)),  # 256-position window
    (5, 8, 8, 2, 17, (7, 7), (1, 1), "same", (1, 1), "relu", (2, 2)),      # kernel larger than half the image
    (2, 15, 13, 1, 48, (3, 3), (1, 1), "same", (1, 1), "relu", (2, 2)),    # 1-channel 3x3, padded, 1.5 blocks
    (2, 19, 17, 3, 9, (3, 3), (2, 2), "valid", (1, 1), "linear", (2, 2)),  # strided, under one vector
    (1, 16, 16, 2, 24, (3, 3), (1, 1), "valid", (2, 1), "relu", (2, 2)),   # dilated rows
]
IDS = [f"{g[1]}x{g[2]}x{g[3]}-{g[4]}_k{g[5][0]}{g[5][1]}_s{g[6][0]}{g[6][1]}_{g[7]}_d{g[8][0]}{g[8][1]}_{g[9]}_p{g[10][0]}{g[10][1]}"
       for g in GEOMETRIES]


def _data(geometry, integer, seed=0):
    batch, height, width, cin, cout, kernel_size = geometry[:6]
    rng = np.random.default_rng(seed)
    if integer:
        x = rng.integers(-3, 4, (batch, height, width, cin)).astype(np.float32)
        kernel = rng.integers(-2, 3, kernel_size + (cin, cout)).astype(np.float32)
        bias = rng.integers(-2, 3, cout).astype(np.float32)
    else:
        x = rng.standard_normal((batch, height, width, cin)).astype(np.float32)
        kernel = rng.standard_normal(kernel_size + (cin, cout)).astype(np.float32)
        bias = rng.standard_normal(cout).astype(np.float32)
    return x, kernel, bias


def _fused(geometry, x, kernel, bias, tier):
    _, _, _, _, _, _, strides, padding, dilation, activation, pool = geometry
    return ops.conv2d_max_pool2d_forward(x, kernel, bias, strides=strides, padding=padding, dilation=dilation,
                                         activation=activation, pool_size=pool, kernels=tier)


def _unfused(geometry, x, kernel, bias, tier):
    _, _, _, _, _, _, strides, padding, dilation, activation, pool = geometry
    convolution = ops.conv2d_forward(x, kernel, bias, strides=strides, padding=padding, dilation=dilation,
                                     activation=activation, kernels=tier)
    return convolution, ops.max_pool2d_forward(convolution, pool, pool, "valid", kernels=tier)


def _fused_gradient(geometry, x, output, index, gradient, tier, use_bias=True):
    _, _, _, _, _, kernel_size, strides, padding, dilation, activation, pool = geometry
    return ops.conv2d_max_pool2d_backward_kernel(x, output, index, gradient, kernel_size=kernel_size,
                                                 strides=strides, padding=padding, dilation=dilation,
                                                 activation=activation, pool_size=pool, use_bias=use_bias,
                                                 kernels=tier)


def _unfused_gradient(geometry, x, convolution, gradient, tier):
    _, _, _, _, _, kernel_size, strides, padding, dilation, activation, pool = geometry
    convolution_gradient = ops.max_pool2d_backward(convolution, gradient, pool, pool, "valid", kernels=tier,
                                                   relu_input=activation == "relu")
    return ops.conv2d_backward_kernel(x, convolution_gradient, kernel_size, strides=strides, padding=padding,
                                      dilation=dilation, kernels=tier)


def _first_maximum_positions(convolution, pool, pooled_shape):
    """The row-major window position of each window's first maximum (NaN wins), in NumPy."""
    batch, rows, columns, channels = pooled_shape
    ph, pw = pool
    windows = convolution[:, :rows * ph, :columns * pw, :].reshape(batch, rows, ph, columns, pw, channels)
    windows = windows.transpose(0, 1, 3, 5, 2, 4).reshape(batch, rows, columns, channels, ph * pw)
    with np.errstate(invalid="ignore"):
        nan = np.isnan(windows)
        return np.where(nan.any(-1), np.argmax(nan, -1), np.argmax(windows, -1)).astype(np.uint8)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("integer", [True, False], ids=["integer", "random"])
def test_fused_forward_equals_convolution_then_pooling(geometry, tier, integer):
    x, kernel, bias = _data(geometry, integer)
    output, index = _fused(geometry, x, kernel, bias, tier)
    convolution, pooled = _unfused(geometry, x, kernel, bias, tier)
    np.testing.assert_array_equal(output, pooled)
    assert index.dtype == np.uint8 and index.shape == output.shape
    np.testing.assert_array_equal(index, _first_maximum_positions(convolution, geometry[10], output.shape))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("tier", OPTIMISED)
def test_fused_forward_matches_the_reference(geometry, tier):
    x, kernel, bias = _data(geometry, integer=True)  # exact sums: equal values, equal first maxima
    output, index = _fused(geometry, x, kernel, bias, tier)
    reference_output, reference_index = _fused(geometry, x, kernel, bias, "reference")
    np.testing.assert_array_equal(output, reference_output)
    np.testing.assert_array_equal(index, reference_index)
    x, kernel, bias = _data(geometry, integer=False)
    output, _ = _fused(geometry, x, kernel, bias, tier)
    reference_output, _ = _fused(geometry, x, kernel, bias, "reference")
    np.testing.assert_allclose(output, reference_output, rtol=1e-5, atol=1e-5 * np.abs(reference_output).max())


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
def test_fused_kernel_gradient_equals_the_unfused_chain(geometry, tier, use_bias):
    # Integer data and gradient: every sum is exact, so any order gives the same bits.
    x, kernel, bias = _data(geometry, integer=True, seed=1)
    output, index = _fused(geometry, x, kernel, bias, tier)
    gradient = np.random.default_rng(2).integers(-3, 4, output.shape).astype(np.float32)
    kernel_gradient, bias_gradient = _fused_gradient(geometry, x, output, index, gradient, tier, use_bias)
    convolution, _ = _unfused(geometry, x, kernel, bias, tier)
    expected_kernel, expected_bias = _unfused_gradient(geometry, x, convolution, gradient, tier)
    assert np.any(expected_kernel != 0), "the sweep case passes no gradient"
    np.testing.assert_array_equal(kernel_gradient, expected_kernel)
    if use_bias:
        np.testing.assert_array_equal(bias_gradient, expected_bias)
    else:
        assert bias_gradient is None
    # Random data: the same within float rounding of the summation order.
    x, kernel, bias = _data(geometry, integer=False, seed=3)
    output, index = _fused(geometry, x, kernel, bias, tier)
    gradient = np.random.default_rng(4).standard_normal(output.shape).astype(np.float32)
    kernel_gradient, bias_gradient = _fused_gradient(geometry, x, output, index, gradient, tier)
    expected_kernel, expected_bias = _unfused_gradient(geometry, x, _unfused(geometry, x, kernel, bias, tier)[0],
                                                       gradient, tier)
    np.testing.assert_allclose(kernel_gradient, expected_kernel, rtol=1e-4, atol=1e-4 * np.abs(expected_kernel).max())
    np.testing.assert_allclose(bias_gradient, expected_bias, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(expected_bias).max()))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=IDS)
@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
def test_inference_forward_equals_convolution_then_pooling(geometry, tier, use_bias):
    """window_positions=False (inference) takes a window's maximum by plain maxima where it holds
    no NaN, the first-maximum rule where it does: bitwise the unfused pair either way, on windows
    of distinct values, of ties (integer data), of NaN and of infinities of both signs, and of
    zeros of both signs (products that underflow), and of a bias with -0 and infinite lanes (which
    keep each pixel's bias and activation before the maximum)."""
    for data in ("random", "integer", "underflow", "special bias"):
        x, kernel, bias = _data(geometry, integer=data == "integer")
        if data == "random":
            x.reshape(-1)[::37] = np.nan
            x.reshape(-1)[5::41] = np.inf
            x.reshape(-1)[9::43] = -np.inf
        if data == "underflow":
            x, kernel, bias = np.sign(x) * np.float32(1e-30), kernel * np.float32(1e-30), np.zeros_like(bias)
        if data == "special bias":
            x, kernel, bias = np.sign(x) * np.float32(1e-30), kernel * np.float32(1e-30), np.zeros_like(bias)
            bias[::2] = -0.0
            bias[1::3] = np.inf
            x.reshape(-1)[::5] = -np.inf
        bias = bias if use_bias else None
        _, _, _, _, _, _, strides, padding, dilation, activation, pool = geometry
        output, index = ops.conv2d_max_pool2d_forward(x, kernel, bias, strides=strides, padding=padding,
                                                      dilation=dilation, activation=activation, pool_size=pool,
                                                      kernels=tier, window_positions=False)
        assert index is None
        convolution = ops.conv2d_forward(x, kernel, bias, strides=strides, padding=padding, dilation=dilation,
                                         activation=activation, kernels=tier)
        pooled = ops.max_pool2d_forward(convolution, pool, pool, "valid", kernels=tier)
        assert output.shape == pooled.shape
        # NaN where the unfused pair has NaN (a NaN's sign bit may differ: which operand's NaN an
        # instruction passes on is the tier's business), every other value bit for bit, zero signs
        # included where no padding is read (the fused kernel multiplies padding zeros in, which
        # can turn a -0 sum into +0; the unfused one skips those taps).
        nan = np.isnan(pooled)
        np.testing.assert_array_equal(np.isnan(output), nan)
        if padding == "valid":
            np.testing.assert_array_equal(output[~nan].view(np.uint32), pooled[~nan].view(np.uint32))
        else:
            np.testing.assert_array_equal(output[~nan], pooled[~nan])


@pytest.mark.parametrize("tier", TIERS)
def test_inference_bias_lanes_of_negative_zero_or_infinity_keep_each_pixels_epilogue(tier):
    """Where a bias lane is -0 or infinite, taking the window's maximum before the bias and ReLU
    would differ from max pooling after them: a ReLU of -0 stays -0 while a negative value becomes
    +0, and -inf + inf is NaN. Those lanes keep each pixel's epilogue first."""
    x = np.full((1, 2, 4, 1), -1e10, np.float32)
    x[0, 0, 1, 0] = -1e-30  # times the weight: underflows to -0 (window 0's second pixel)
    x[0, 0, 3, 0] = -np.inf  # window 1's second pixel
    kernel = np.full((1, 1, 1, 3), 1e-30, np.float32)
    bias = np.array([-0.0, 0.0, np.inf], np.float32)
    output, _ = ops.conv2d_max_pool2d_forward(x, kernel, bias, activation="relu", pool_size=(2, 2), kernels=tier,
                                              window_positions=False)
    convolution = ops.conv2d_forward(x, kernel, bias, activation="relu", kernels=tier)
    pooled = ops.max_pool2d_forward(convolution, (2, 2), (2, 2), "valid", kernels=tier)
    assert not np.signbit(output[0, 0, 0, 0]) and output[0, 0, 0, 0] == 0  # ReLU(-1e-20) = +0 came first
    assert np.isnan(output[0, 0, 1, 2])  # -inf + inf
    nan = np.isnan(pooled)
    np.testing.assert_array_equal(np.isnan(output), nan)
    np.testing.assert_array_equal(output[~nan].view(np.uint32), pooled[~nan].view(np.uint32))


@pytest.mark.parametrize("tier", TIERS)
def test_nan_propagates_as_in_max_pooling(tier):
    geometry = GEOMETRIES[0]
    x, kernel, bias = _data(geometry, integer=True)
    x[0, 5, 7, 0] = np.nan
    x[1, 0, 0, 0] = np.inf
    output, index = _fused(geometry, x, kernel, bias, tier)
    convolution, pooled = _unfused(geometry, x, kernel, bias, tier)
    assert np.isnan(output).any()
    np.testing.assert_array_equal(np.isnan(output), np.isnan(pooled))
    np.testing.assert_array_equal(output[~np.isnan(output)], pooled[~np.isnan(pooled)])
    np.testing.assert_array_equal(index, _first_maximum_positions(convolution, geometry[10], output.shape))


@pytest.mark.parametrize("tier", OPTIMISED)
def test_kernel_gradient_does_not_depend_on_the_thread_count(tier):
    geometry = (9, 28, 28, 1, 32, (3, 3), (1, 1), "valid", (1, 1), "relu", (2, 2))
    x, kernel, bias = _data(geometry, integer=False)
    output, index = _fused(geometry, x, kernel, bias, tier)
    gradient = np.random.default_rng(5).standard_normal(output.shape).astype(np.float32)
    previous = fastcnn.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            fastcnn.set_num_threads(threads)
            results.append(_fused_gradient(geometry, x, output, index, gradient, tier))
    finally:
        fastcnn.set_num_threads(previous)
    for kernel_gradient, bias_gradient in results[1:]:
        np.testing.assert_array_equal(kernel_gradient, results[0][0])
        np.testing.assert_array_equal(bias_gradient, results[0][1])


@pytest.mark.parametrize("tier", TIERS)
def test_empty_batch(tier):
    geometry = (0, 28, 28, 1, 8, (3, 3), (1, 1), "valid", (1, 1), "relu", (2, 2))
    x, kernel, bias = _data(geometry, integer=True)
    output, index = _fused(geometry, x, kernel, bias, tier)
    assert output.shape == (0, 13, 13, 8) and index.shape == (0, 13, 13, 8)
    kernel_gradient, bias_gradient = _fused_gradient(geometry, x, output, index, output, tier)
    assert not kernel_gradient.any() and not bias_gradient.any()


def test_bad_arguments_raise():
    geometry = GEOMETRIES[0]
    x, kernel, bias = _data(geometry, integer=True)
    with pytest.raises(ValueError, match="activation=tanh"):
        ops.conv2d_max_pool2d_forward(x, kernel, bias, activation="tanh")
    with pytest.raises(ValueError, match=r"pool_size=\(17, 16\)"):
        ops.conv2d_max_pool2d_forward(x, kernel, bias, pool_size=(17, 16))
    output, index = ops.conv2d_max_pool2d_forward(x, kernel, bias)
    with pytest.raises(ValueError, match="Received: 4"):
        ops.conv2d_max_pool2d_backward_kernel(x, output, np.full(index.shape, 4), output, kernel_size=(3, 3))
    with pytest.raises(ValueError, match="Received: 255"):  # the forward's own uint8 array is checked too
        ops.conv2d_max_pool2d_backward_kernel(x, output, np.full_like(index, 255), output, kernel_size=(3, 3))
    # One bad value among good ones: the first out of range in C order is named.
    wide = index.astype(np.int64)
    wide[1, 2, 3, 4], wide[2, 0, 0, 0] = 9, -3
    with pytest.raises(ValueError, match="Received: 9$"):
        ops.conv2d_max_pool2d_backward_kernel(x, output, wide, output, kernel_size=(3, 3))
    wide[1, 2, 3, 4] = 0
    with pytest.raises(ValueError, match="Received: -3$"):
        ops.conv2d_max_pool2d_backward_kernel(x, output, wide, output, kernel_size=(3, 3))
    with pytest.raises(ValueError, match="window_index"):
        ops.conv2d_max_pool2d_backward_kernel(x, output, index[:, :5], output, kernel_size=(3, 3))
    with pytest.raises(TypeError, match="window_index"):
        ops.conv2d_max_pool2d_backward_kernel(x, output, index.astype(np.float32), output, kernel_size=(3, 3))


# ---- the Network: which pairs fuse, and the same training with the fusion on and off ----

def _model(first, regularizer=None):
    utils.set_random_seed(7)
    model = models.Sequential(first + [
        layers.Conv2D(8, (3, 3), activation="relu", activity_regularizer=regularizer, name="fusable"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(16, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _input_first(channels):
    return [layers.InputLayer(input_shape=(20, 20, channels))]


def test_which_pairs_fuse():
    model = _model(_input_first(1))
    model.build()
    assert list(model._network.fused_max_pool_layers()) == [0]  # Conv2D(8) reads 1 channel; Conv2D(16) reads 8
    assert list(model._network.fused_max_pool_layers(training=True)) == [0]  # it needs no input gradient
    model = _model([layers.Conv2D(4, (1, 1), input_shape=(20, 20, 1))])  # now Conv2D(8) needs one
    model.build()
    assert list(model._network.fused_max_pool_layers()) == [1]
    assert list(model._network.fused_max_pool_layers(training=True)) == []
    model = _model(_input_first(3), regularizer="l2")  # an activity penalty reads the convolution's output
    model.build()
    assert list(model._network.fused_max_pool_layers()) == []
    for pool in [layers.MaxPooling2D((2, 2), strides=(1, 1)), layers.MaxPooling2D((3, 3), padding="same"),
                 layers.AveragePooling2D((2, 2))]:
        model = models.Sequential([layers.Conv2D(4, (3, 3), activation="relu", input_shape=(10, 10, 1)), pool])
        model.build()
        assert list(model._network.fused_max_pool_layers()) == [], pool.get_config()
    model = models.Sequential([layers.Conv2D(4, (3, 3), activation="tanh", input_shape=(10, 10, 1)),
                               layers.MaxPooling2D((2, 2))])
    model.build()
    assert list(model._network.fused_max_pool_layers()) == []
    model = models.Sequential([layers.Conv2D(4, (3, 3), input_shape=(10, 10, 2)), layers.GlobalMaxPooling2D()])
    model.build()
    assert list(model._network.fused_max_pool_layers()) == [0]  # an 8x8 window over the whole image


def _train_and_predict(model, fusion, x, y):
    model._network.set_max_pool_fusion(fusion)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    return model.get_weights(), history.history["loss"], model.predict(x, verbose=0)


def _first_layers(case):
    """Fresh layers before the fusable pair, and the input's channel count."""
    if case == "first_layer":
        return _input_first(1), 1
    # A 1x1 convolution with 2 outputs first: the fusable pair then reads 2 channels.
    return _input_first(3) + [layers.Conv2D(2, (1, 1), name="mix")], 3


def _with_kernels(tier, body):
    previous = fastcnn.config.kernel_set()
    fastcnn.config.set_kernel_set(tier)
    try:
        return body()
    finally:
        fastcnn.config.set_kernel_set(previous)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("case", ["first_layer", "after_a_trainable_layer", "after_a_frozen_layer"])
def test_training_with_and_without_fusion(tier, case):
    rng = np.random.default_rng(0)
    channels = _first_layers(case)[1]
    x = rng.random((48, 20, 20, channels)).astype(np.float32)
    y = rng.integers(0, 10, 48)

    def train(fusion):
        model = _model(_first_layers(case)[0])
        if case == "after_a_frozen_layer":
            model.get_layer("mix").trainable = False
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return _train_and_predict(model, fusion, x, y)

    fused_weights, fused_loss, fused_prediction = _with_kernels(tier, lambda: train(True))
    weights, loss, _ = _with_kernels(tier, lambda: train(False))
    if case == "after_a_trainable_layer":
        # The pair needs an input gradient: training runs it unfused, bitwise the same; predict fuses.
        for a, b in zip(fused_weights, weights):
            np.testing.assert_array_equal(a, b)
        assert fused_loss == loss
    else:
        for a, b in zip(fused_weights, weights):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(fused_loss, loss, rtol=1e-5)

    # Prediction from the same weights is bitwise the same with the fusion on and off.
    def predict_both():
        model = _model(_first_layers(case)[0])
        model.set_weights(fused_weights)
        with_fusion = model.predict(x, verbose=0)
        model._network.set_max_pool_fusion(False)
        return with_fusion, model.predict(x, verbose=0)

    with_fusion, without_fusion = _with_kernels(tier, predict_both)
    np.testing.assert_array_equal(with_fusion, without_fusion)
    np.testing.assert_array_equal(with_fusion, fused_prediction)


@pytest.mark.parametrize("tier", TIERS)
def test_predict_skips_window_positions_and_keeps_max_pooling_rule(tier):
    """Inference passes compute the fused pair without the windows' positions (only training needs
    them): the same maxima, NaN included, as the unfused convolution and pooling."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 20, 20, 1)).astype(np.float32)
    x[0, 3:6, 3:6, 0] = np.nan  # NaN windows: max pooling keeps the NaN
    x[1, :, :, 0] = 0.0  # all-equal windows: the first position wins, the value is the same

    def predict_both():
        model = _model(_input_first(1))
        model.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()])
        assert list(model._network.fused_max_pool_layers()) == [0]
        with_fusion = model.predict(x, verbose=0)
        model._network.set_max_pool_fusion(False)
        return with_fusion, model.predict(x, verbose=0)

    with_fusion, without_fusion = _with_kernels(tier, predict_both)
    assert np.isnan(with_fusion[0]).any()
    np.testing.assert_array_equal(with_fusion, without_fusion)


# ---- Inference: a Winograd convolution pools its output tiles as it stores them ----

# (batch, height, width, in, out, padding): 3x3 stride-1 convolutions with at least 16 channels in
# and out (conv2d_winograd_shape), 2x2 pooling.
WINOGRAD_GEOMETRIES = [
    (3, 13, 13, 32, 64, "valid"),  # seed Example 1's second pair: 11x11, the last row and column dropped
    (2, 20, 18, 16, 16, "same"),   # several tiles per image
    (2, 9, 14, 24, 40, "same"),    # a partial channel block
    (1, 6, 6, 16, 17, "valid"),    # one pooled row of one-vector tiles' edge
    (2, 4, 5, 16, 33, "same"),     # fewer rows than a 4x4 tile, an odd width
]
WINOGRAD_IDS = [f"{g[1]}x{g[2]}x{g[3]}-{g[4]}_{g[5]}" for g in WINOGRAD_GEOMETRIES]


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("geometry", WINOGRAD_GEOMETRIES, ids=WINOGRAD_IDS)
def test_inference_pooling_of_winograd_tiles_equals_convolution_then_pooling(geometry, tier, activation):
    batch, height, width, cin, cout, padding = geometry
    rng = np.random.default_rng(cin + cout)
    x = rng.standard_normal((batch, height, width, cin)).astype(np.float32)
    x[0, 1, 2, 0] = np.nan  # the windows that read it are NaN in both
    kernel = rng.standard_normal((3, 3, cin, cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    pooled, index = ops.conv2d_max_pool2d_forward(x, kernel, bias, padding=padding, activation=activation,
                                                  kernels=tier, window_positions=False)
    assert index is None
    convolution = ops.conv2d_forward(x, kernel, bias, padding=padding, activation=activation, kernels=tier)
    expected = ops.max_pool2d_forward(convolution, (2, 2), (2, 2), "valid", kernels=tier)
    assert np.isnan(pooled).any()
    np.testing.assert_array_equal(pooled, expected)  # NaN where the other has NaN, every other bit equal
    # Against the reference tier's direct convolution, on finite data (a Winograd tile's transforms
    # carry a NaN to every output of the tile): Winograd's rounding only, about 2e-6 of the output's
    # magnitude for F(4x4, 3x3).
    x[0, 1, 2, 0] = 0.5
    pooled, _ = ops.conv2d_max_pool2d_forward(x, kernel, bias, padding=padding, activation=activation, kernels=tier,
                                              window_positions=False)
    reference, _ = ops.conv2d_max_pool2d_forward(x, kernel, bias, padding=padding, activation=activation,
                                                 kernels="reference", window_positions=False)
    assert relative_error(pooled, reference) <= 2e-5


def _winograd_pair_model():
    utils.set_random_seed(3)
    model = models.Sequential([
        layers.InputLayer(input_shape=(14, 14, 3)),
        layers.Conv2D(16, (3, 3), activation="relu", padding="same"),
        layers.Conv2D(32, (3, 3), activation="relu"),  # 16 channels in and out: Winograd-shaped
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("tier", TIERS)
def test_a_winograd_pair_fuses_in_inference_only(tier):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 14, 14, 3)).astype(np.float32)
    x[3, 4:7, 4:7, :] = np.nan
    y = rng.integers(0, 10, 20)

    def run(fusion):
        model = _winograd_pair_model()
        model._network.set_max_pool_fusion(fusion)
        fused = list(model._network.fused_max_pool_layers())
        assert list(model._network.fused_max_pool_layers(training=True)) == []  # inference only
        prediction = model.predict(x, verbose=0)
        training_mode = np.asarray(model(x[:4], training=True))
        model.fit(np.nan_to_num(x), y, batch_size=10, epochs=1, verbose=0, shuffle=False)
        return fused, prediction, training_mode, model.get_weights(), model.predict(np.nan_to_num(x), verbose=0)

    fused, prediction, training_mode, weights, trained_prediction = _with_kernels(tier, lambda: run(True))
    unfused, expected, expected_training_mode, expected_weights, expected_trained = _with_kernels(tier,
                                                                                                lambda: run(False))
    assert fused == [1] and unfused == []
    assert np.isnan(prediction[3]).all()
    np.testing.assert_array_equal(prediction, expected)
    # Training passes (a training step, a training-mode call) run the pair unfused: bitwise the same.
    np.testing.assert_array_equal(training_mode, expected_training_mode)
    for a, b in zip(weights, expected_weights):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(trained_prediction, expected_trained)


def _folded_pairs_model():
    """Winograd-shaped convolutions folding a BatchNormalization, the max pooling reading its output:
    after the activation (seed Example 3's order) and before it (conv, BN, ReLU), and one whose Add
    (a residual in the epilogue) keeps it apart."""
    utils.set_random_seed(11)
    inputs = fastcnn.Input((16, 16, 3))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)     # node 1: BN after its ReLU
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(24, 3, padding="same")(x)                         # node 4: BN, then ReLU
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    pooled = layers.MaxPooling2D(2)(x)
    y = layers.Conv2D(24, 3, padding="same")(pooled)                    # node 8: BN, Add, then pooling
    y = layers.BatchNormalization()(y)
    y = layers.Add()([pooled, y])
    y = layers.MaxPooling2D(2)(y)
    outputs = layers.Dense(5, activation="softmax")(layers.Flatten()(y))
    model = fastcnn.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("tier", TIERS)
def test_a_folded_winograd_convolution_pools_in_inference(tier):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((12, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 5, 12)

    def run(fusion):
        model = _folded_pairs_model()
        for layer in model.layers:  # non-trivial statistics, so that a wrong fold cannot pass
            if isinstance(layer, layers.BatchNormalization):
                gamma, beta, mean, variance = layer.get_weights()
                layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape),
                                   rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 2.0, variance.shape)])
        model._network.set_max_pool_fusion(fusion)
        fused = list(model._network.fused_max_pool_layers())
        prediction = model.predict(x, verbose=0)
        model.fit(x, y, batch_size=6, epochs=1, verbose=0, shuffle=False)
        return fused, prediction, model.get_weights(), model.predict(x, verbose=0), model.evaluate(x, y, verbose=0)

    rng_state = rng.bit_generator.state
    fused, prediction, weights, trained_prediction, loss = _with_kernels(tier, lambda: run(True))
    rng.bit_generator.state = rng_state  # the same statistics for the unfused model
    unfused, expected, expected_weights, expected_trained, expected_loss = _with_kernels(tier, lambda: run(False))
    assert fused == [1, 4] and unfused == []  # nodes 1 and 4; node 8's Add keeps its pooling apart
    np.testing.assert_array_equal(prediction, expected)
    for a, b in zip(weights, expected_weights):  # training keeps every pair apart: bitwise the same
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(trained_prediction, expected_trained)
    assert loss == expected_loss
