"""The kernels behind the newer layers and activations: every optimised tier against the reference
tier (the executable spec), and NaN propagation through the relu family as in TensorFlow.

average_pool2d, zero_padding2d, the parametric relu and rescaling are not exposed in
``fastcnn._core.ops``; they are exercised through models, which run on whichever kernel set
``fastcnn._core.select_kernels`` made active. For each case and tier, from the same weights:

* a model holding only the layer: its prediction is the forward kernel's output;
* Input -> Conv2D 1x1 -> layer -> Flatten -> Dense softmax: the prediction, and the weight change of
  one SGD step (learning rate 1, so the change is minus the gradient). The 1x1 convolution's kernel
  gradient sums the layer's input gradient times a different random input at every position, so an
  error anywhere in the layer's backward kernel shows there.

Tiers agree within float32 summation-order tolerance (the convolution and dense kernels of the tiers
sum in different orders); forward-only layers whose kernels do no arithmetic agree exactly.
"""

import contextlib

import numpy as np
import pytest

from fastcnn import _core, layers, models, optimizers

TIERS = [name for name in _core.available_kernels() if name != "reference"]

pytestmark = pytest.mark.skipif(not TIERS, reason="no optimised kernel tier on this CPU")

ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax", "relu6", "leaky_relu", "elu", "selu",
               "hard_sigmoid", "softplus", "swish", "silu", "gelu", "hard_silu", "hard_swish", "mish", "log_softmax",
               "exponential", "softsign"]
RELU_FAMILY = ["relu", "relu6", "leaky_relu", "elu", "selu"]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def kernel_set(name):
    previous = _core.kernel_set()
    _core.select_kernels(name)
    try:
        yield
    finally:
        _core.select_kernels(previous)


def assert_close(actual, reference, what, rtol=1e-5):
    """Tolerance relative to the tensor's magnitude (summation order differs between tiers); NaN
    must sit exactly where the reference has NaN."""
    actual = np.asarray(actual)
    reference = np.asarray(reference)
    assert actual.shape == reference.shape, f"{what}: shape {actual.shape} != {reference.shape}"
    assert np.array_equal(np.isnan(actual), np.isnan(reference)), f"{what}: NaN positions differ"
    finite = np.isfinite(reference)
    scale = float(np.max(np.abs(reference[finite]))) if finite.any() else 0.0
    np.testing.assert_allclose(actual, reference, rtol=rtol, atol=rtol * max(1.0, scale), err_msg=what)


def predict_on_every_tier(model, x):
    results = {}
    for tier in ["reference"] + TIERS:
        with kernel_set(tier):
            results[tier] = model.predict(x, verbose=0)
    return results


def train_step_on_every_tier(model, x, y):
    """For each tier, from the same starting weights: the prediction and the weight changes of one
    SGD step with learning rate 1."""
    model.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="sparse_categorical_crossentropy")
    start = [w.copy() for w in model.get_weights()]
    results = {}
    for tier in ["reference"] + TIERS:
        model.set_weights(start)
        with kernel_set(tier):
            prediction = model.predict(x, verbose=0)
            model.train_on_batch(x, y)
        results[tier] = (prediction, [after - before for after, before in zip(model.get_weights(), start)])
    model.set_weights(start)
    return results


def check_layer_on_every_tier(rng, make_layer, shape, batch=3, exact_forward=False, x=None, forward_rtol=1e-6,
                              passes_gradient=True):
    """The layer alone (forward) and after a 1x1 Conv2D (forward and one training step), every
    optimised tier against the reference."""
    if x is None:
        x = (2 * rng.standard_normal((batch,) + shape)).astype(np.float32)
    alone = models.Sequential([layers.Input(shape), make_layer()])
    outputs = predict_on_every_tier(alone, x)
    for tier in TIERS:
        if exact_forward:
            np.testing.assert_array_equal(outputs[tier], outputs["reference"], err_msg=f"{tier} forward")
        else:
            assert_close(outputs[tier], outputs["reference"], f"{tier} forward", rtol=forward_rtol)

    channels = shape[-1]
    model = models.Sequential([layers.Input(shape), layers.Conv2D(channels, (1, 1)), make_layer(),
                               layers.Flatten(), layers.Dense(4, activation="softmax")])
    weights = model.get_weights()
    # The conv kernel from the test's seeded generator, not the unseeded initializer: with one
    # channel it is a single weight, and a draw near 0 (a few percent of runs) put every value
    # below ReLU's threshold of 0.5, so that no gradient came back and the test failed at random.
    weights[0] = rng.uniform(-1.5, 1.5, weights[0].shape).astype(np.float32)
    weights[1] = (0.1 * rng.standard_normal(weights[1].shape)).astype(np.float32)  # a nonzero conv bias
    # The Dense kernel too: left to the initializer, it followed whatever the global seed was after
    # the tests run before this one, and with some draws (a file that seeds it run first) the
    # Rescaling(-0.5, 3) case on inputs up to 100 saturated the softmax past the tolerance.
    weights[2] = rng.uniform(-0.05, 0.05, weights[2].shape).astype(np.float32)
    model.set_weights(weights)
    y = rng.integers(0, 4, len(x))
    results = train_step_on_every_tier(model, x, y)
    reference_prediction, reference_changes = results["reference"]
    if passes_gradient:
        assert any(np.any(change != 0) for change in reference_changes[:2]), "the layer passed no gradient back"
    for tier in TIERS:
        prediction, changes = results[tier]
        assert_close(prediction, reference_prediction, f"{tier} model prediction")
        for name, change, reference_change in zip(["conv kernel", "conv bias", "dense kernel", "dense bias"],
                                                  changes, reference_changes):
            assert_close(change, reference_change, f"{tier} {name} change")
    return outputs["reference"]


def window_output(size, pool, stride, padding):
    if padding == "valid":
        return (size - pool) // stride + 1
    return -(-size // stride)


# ---------------------------------------------------------------------------------------------
# AveragePooling2D
# ---------------------------------------------------------------------------------------------

POOL_SHAPES = [(7, 9, 1), (5, 5, 3), (11, 6, 17), (2, 3, 3)]
POOL_WINDOWS = [
    ((2, 2), (2, 2)),
    ((3, 3), (2, 2)),   # pool larger than strides: overlapping windows
    ((3, 3), (1, 1)),
    ((2, 3), (3, 1)),   # strides larger than the pool in one direction
    ((5, 4), (3, 2)),
    ((4, 4), (1, 1)),
]


def numpy_average_pool(x, pool, strides, padding):
    """TensorFlow's AvgPool: window means over the positions inside the input."""
    batch, height, width, channels = x.shape
    out_h = window_output(height, pool[0], strides[0], padding)
    out_w = window_output(width, pool[1], strides[1], padding)
    pad_top = pad_left = 0
    if padding == "same":
        pad_top = max((out_h - 1) * strides[0] + pool[0] - height, 0) // 2
        pad_left = max((out_w - 1) * strides[1] + pool[1] - width, 0) // 2
    out = np.zeros((batch, out_h, out_w, channels), np.float64)
    for i in range(out_h):
        for j in range(out_w):
            top, left = i * strides[0] - pad_top, j * strides[1] - pad_left
            window = x[:, max(top, 0):max(top + pool[0], 0), max(left, 0):max(left + pool[1], 0), :]
            out[:, i, j, :] = window.astype(np.float64).mean(axis=(1, 2))
    return out


POOL_CASES = [
    pytest.param(shape, window, padding, id="{}x{}x{}-p{}x{}_s{}x{}-{}".format(*shape, *window[0], *window[1], padding))
    for shape in POOL_SHAPES for window in POOL_WINDOWS for padding in ["valid", "same"]
    # valid padding needs the pool to fit in the input
    if padding == "same" or (shape[0] >= window[0][0] and shape[1] >= window[0][1])
]


@pytest.mark.parametrize("shape,window,padding", POOL_CASES)
def test_average_pooling2d_tiers_match_reference(rng, shape, window, padding):
    pool, strides = window
    x = (2 * rng.standard_normal((3,) + shape)).astype(np.float32)
    reference = check_layer_on_every_tier(
        rng, lambda: layers.AveragePooling2D(pool, strides=strides, padding=padding), shape, x=x)
    # The reference itself: the mean over the window's positions inside the input.
    np.testing.assert_allclose(reference, numpy_average_pool(x, pool, strides, padding), rtol=1e-6, atol=1e-6)


def test_average_pooling2d_pool_larger_than_input_same_padding(rng):
    # Every window is clipped on several sides; a 1x1 output averages the whole image.
    for shape, pool, strides in [((3, 2, 17), (5, 5), (3, 3)), ((1, 1, 3), (3, 3), (1, 1)), ((2, 5, 1), (4, 6), (1, 2))]:
        x = (2 * rng.standard_normal((2,) + shape)).astype(np.float32)
        reference = check_layer_on_every_tier(
            rng, lambda: layers.AveragePooling2D(pool, strides=strides, padding="same"), shape, x=x)
        np.testing.assert_allclose(reference, numpy_average_pool(x, pool, strides, "same"), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# GlobalAveragePooling2D / GlobalMaxPooling2D
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("kind", ["average", "max"])
@pytest.mark.parametrize("shape", [(1, 1, 17), (7, 5, 3), (13, 11, 1), (4, 9, 33)], ids=lambda s: "{}x{}x{}".format(*s))
def test_global_pooling2d_tiers_match_reference(rng, shape, kind, keepdims):
    layer_class = layers.GlobalAveragePooling2D if kind == "average" else layers.GlobalMaxPooling2D
    x = (2 * rng.standard_normal((3,) + shape)).astype(np.float32)
    reference = check_layer_on_every_tier(rng, lambda: layer_class(keepdims=keepdims), shape, x=x,
                                          exact_forward=(kind == "max"))
    expected = x.mean(axis=(1, 2), dtype=np.float64) if kind == "average" else x.max(axis=(1, 2))
    if keepdims:
        expected = expected[:, None, None, :]
    np.testing.assert_allclose(reference, expected, rtol=1e-6, atol=1e-6)


def test_global_max_pooling2d_ties_and_nan_match_reference(rng):
    x = np.zeros((2, 4, 5, 17), np.float32)
    x[0, 1:3, 1:4, :] = 2.0            # a tie of equal maxima
    x[1, 2, 3, 5] = np.nan             # NaN is the maximum, as in TensorFlow
    model = models.Sequential([layers.Input((4, 5, 17)), layers.GlobalMaxPooling2D()])
    outputs = predict_on_every_tier(model, x)
    assert np.isnan(outputs["reference"][1, 5]) and np.sum(np.isnan(outputs["reference"])) == 1
    for tier in TIERS:
        np.testing.assert_array_equal(outputs[tier], outputs["reference"], err_msg=tier)


# ---------------------------------------------------------------------------------------------
# ZeroPadding2D
# ---------------------------------------------------------------------------------------------

PADDINGS = [((0, 0), (0, 0)), 1, (2, 0), ((3, 0), (0, 2)), ((0, 4), (5, 1)), ((2, 2), (7, 0))]


@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("shape", [(5, 7, 1), (3, 4, 17), (1, 1, 3), (6, 1, 5)], ids=lambda s: "{}x{}x{}".format(*s))
def test_zero_padding2d_tiers_match_reference(rng, shape, padding):
    x = (2 * rng.standard_normal((3,) + shape)).astype(np.float32)
    reference = check_layer_on_every_tier(rng, lambda: layers.ZeroPadding2D(padding), shape, x=x, exact_forward=True)
    if isinstance(padding, int):
        (top, bottom), (left, right) = (padding, padding), (padding, padding)
    elif isinstance(padding[0], int):
        (top, bottom), (left, right) = (padding[0], padding[0]), (padding[1], padding[1])
    else:
        (top, bottom), (left, right) = padding
    # Whole rows and columns of padding are zeros; the input sits unchanged in the middle.
    np.testing.assert_array_equal(reference, np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))))


# ---------------------------------------------------------------------------------------------
# ReLU / LeakyReLU (the parametric relu kernel) and Rescaling
# ---------------------------------------------------------------------------------------------

RELU_CONFIGS = [
    {},
    {"max_value": 6.0},
    {"max_value": 1.0},
    {"negative_slope": 0.1},
    {"threshold": 0.5},
    {"max_value": 6.0, "negative_slope": 0.1},
    {"max_value": 2.0, "threshold": 0.5},
    {"negative_slope": 0.2, "threshold": 0.5},
    {"max_value": 2.0, "negative_slope": 0.1, "threshold": 0.5},
]


def _config_id(config):
    return "-".join(f"{key}={value}" for key, value in config.items()) or "defaults"


def numpy_relu(x, max_value=None, negative_slope=0.0, threshold=0.0):
    """Keras's relu (keras.activations.relu) in NumPy, for finite inputs."""
    x = x.astype(np.float64)
    positive = np.where(x > threshold, x, 0.0) if threshold != 0 else np.maximum(x, 0.0)
    if max_value is not None:
        positive = np.clip(positive, 0.0, max_value)
    return positive - negative_slope * np.maximum(threshold - x, 0.0)


def _with_kinks(x, config):
    """Puts exact kink values (0, the threshold, max_value) at some positions."""
    flat = x.reshape(-1)
    kinks = [0.0, config.get("threshold", 0.0), config.get("max_value") or 0.0, -0.0]
    for index, value in enumerate(kinks):
        flat[index::11][: max(1, flat.size // 50)] = value
    return x


@pytest.mark.parametrize("config", RELU_CONFIGS, ids=_config_id)
@pytest.mark.parametrize("shape", [(5, 7, 1), (4, 3, 17), (60, 50, 3)], ids=lambda s: "{}x{}x{}".format(*s))
def test_relu_layer_tiers_match_reference(rng, shape, config):
    # (60, 50, 3) x 3 samples is more than one 16384-value chunk of the optimised kernels.
    x = _with_kinks((3 * rng.standard_normal((3,) + shape)).astype(np.float32), config)
    reference = check_layer_on_every_tier(rng, lambda: layers.ReLU(**config), shape, x=x, exact_forward=True)
    np.testing.assert_allclose(reference, numpy_relu(x, **config), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("slope", [0.3, 0.05])
@pytest.mark.parametrize("shape", [(5, 7, 1), (60, 50, 3)], ids=lambda s: "{}x{}x{}".format(*s))
def test_leaky_relu_layer_tiers_match_reference(rng, shape, slope):
    x = _with_kinks((3 * rng.standard_normal((3,) + shape)).astype(np.float32), {})
    reference = check_layer_on_every_tier(rng, lambda: layers.LeakyReLU(slope), shape, x=x, exact_forward=True)
    np.testing.assert_allclose(reference, numpy_relu(x, negative_slope=slope), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("scale,offset", [(1 / 255, 0.0), (2.0, -1.0), (-0.5, 3.0), (0.0, 1.0)])
@pytest.mark.parametrize("shape", [(5, 7, 1), (4, 3, 17), (60, 50, 3)], ids=lambda s: "{}x{}x{}".format(*s))
def test_rescaling_tiers_match_reference(rng, shape, scale, offset):
    x = (100 * rng.random((3,) + shape)).astype(np.float32)
    reference = check_layer_on_every_tier(rng, lambda: layers.Rescaling(scale, offset), shape, x=x,
                                          passes_gradient=scale != 0)
    np.testing.assert_allclose(reference, x.astype(np.float64) * np.float32(scale) + offset, rtol=1e-6, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Activations: the kernels directly, and fused in Conv2D / Dense / Activation
# ---------------------------------------------------------------------------------------------


def _activation_values(rng, rows, columns):
    """Normal values with edge values (kinks, exp over/underflow, +-1e4, denormal-range) scattered in."""
    x = (4 * rng.standard_normal((rows, columns))).astype(np.float32)
    edge = np.array([0.0, -0.0, 3.0, -3.0, 6.0, 88.0, -88.0, 89.0, -89.0, 1e4, -1e4, 1e-30, -1e-30], np.float32)
    flat = x.reshape(-1)
    positions = rng.choice(flat.size, size=min(flat.size, 13 * 20), replace=False)
    flat[positions] = np.resize(edge, positions.size)
    return x


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("rows,columns", [(3, 17), (400, 100)])
def test_activation_kernels_match_reference(rng, name, rows, columns):
    # 400 x 100 is more than two 16384-value chunks (the optimised kernels run chunks in parallel).
    x = _activation_values(rng, rows, columns)
    g = rng.standard_normal(x.shape).astype(np.float32)
    y_reference = _core.ops.activation_forward(name, x, "reference")
    dx_reference = _core.ops.activation_backward(name, y_reference, g, "reference", input=x)
    for tier in TIERS:
        y = _core.ops.activation_forward(name, x, tier)
        assert_close(y, y_reference, f"{tier} {name} forward", rtol=1e-6)
        dx = _core.ops.activation_backward(name, y_reference, g, tier, input=x)
        assert_close(dx, dx_reference, f"{tier} {name} backward", rtol=1e-6)
        # In place (input_gradient == output_gradient) is allowed by the kernel contract; through
        # a model the layers use it, checked below.


# exponential applied four times in a row overflows float32 (inf - inf), whatever the tier.
@pytest.mark.parametrize("name", [name for name in ACTIVATIONS if name != "exponential"])
def test_activation_fused_in_conv2d_dense_and_activation_layer_tiers_match_reference(rng, name):
    shape = (9, 7, 3)
    model = models.Sequential([
        layers.Input(shape),
        layers.Conv2D(17, (3, 3), padding="same", activation=name),   # 16-channel block + 1
        layers.Conv2D(5, (2, 2), strides=(2, 2), activation=name),
        layers.Flatten(),
        layers.Dense(19, activation=name),
        layers.Activation(name),
        layers.Dense(3, activation="softmax"),
    ])
    x = (2 * rng.standard_normal((5,) + shape)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    results = train_step_on_every_tier(model, x, y)
    reference_prediction, reference_changes = results["reference"]
    for tier in TIERS:
        prediction, changes = results[tier]
        assert_close(prediction, reference_prediction, f"{tier} prediction")
        for index, (change, reference_change) in enumerate(zip(changes, reference_changes)):
            assert_close(change, reference_change, f"{tier} weight {index} change", rtol=1e-4)


@pytest.mark.parametrize("dilation", [(2, 2), (3, 2)], ids=str)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_dilated_conv2d_in_a_model_tiers_match_reference(rng, dilation, padding):
    shape = (13, 11, 3)
    model = models.Sequential([
        layers.Input(shape),
        layers.Conv2D(17, (3, 3), dilation_rate=dilation, padding=padding, activation="gelu"),
        layers.AveragePooling2D(3, strides=2, padding="same"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])
    x = (2 * rng.standard_normal((4,) + shape)).astype(np.float32)
    results = train_step_on_every_tier(model, x, rng.integers(0, 3, 4))
    for tier in TIERS:
        assert_close(results[tier][0], results["reference"][0], f"{tier} prediction")
        for index, (change, reference_change) in enumerate(zip(results[tier][1], results["reference"][1])):
            assert_close(change, reference_change, f"{tier} weight {index} change", rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# NaN through the relu family, as TensorFlow
# ---------------------------------------------------------------------------------------------

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, -0.5, 7.0, -7.0, 1e30, -1e30], np.float32)


@pytest.mark.parametrize("name", RELU_FAMILY)
def test_relu_family_activation_propagates_nan_like_tensorflow(tf, name):
    x = np.tile(SPECIAL, (3, 1))
    expected = tf.keras.activations.get(name)(tf.constant(x)).numpy()
    assert np.isnan(expected[:, 0]).all()
    for tier in ["reference"] + TIERS:
        y = _core.ops.activation_forward(name, x, tier)
        assert np.array_equal(np.isnan(y), np.isnan(expected)), (tier, y[0], expected[0])
        finite = ~np.isnan(expected)
        np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-6, err_msg=tier)


@pytest.mark.parametrize("config", RELU_CONFIGS + [{"negative_slope": 0.3, "_layer": "LeakyReLU"}], ids=_config_id)
def test_relu_layer_propagates_nan_like_keras(tf, config):
    config = dict(config)
    layer_name = config.pop("_layer", "ReLU")
    x = np.tile(SPECIAL, (2, 1))
    keras_layer = getattr(tf.keras.layers, layer_name)(**config)
    expected = keras_layer(tf.constant(x)).numpy()
    model = models.Sequential([layers.Input((len(SPECIAL),)), getattr(layers, layer_name)(**config)])
    for tier, y in predict_on_every_tier(model, x).items():
        assert np.array_equal(np.isnan(y), np.isnan(expected)), (
            f"{tier}: x={SPECIAL.tolist()} got {y[0].tolist()}, Keras {expected[0].tolist()}")
        finite = ~np.isnan(expected)
        np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-6, err_msg=tier)


@pytest.mark.parametrize("name", RELU_FAMILY)
def test_nan_input_through_fused_conv2d_dense_and_activation_layer_like_keras(tf, name):
    """A NaN pixel reaches exactly the outputs whose windows hold it, through each kernel's fused
    activation epilogue (16-channel blocks plus a remainder), Dense and an Activation layer."""
    shape = (6, 7, 2)

    def build(lib):
        L = lib.layers
        return lib.models.Sequential([
            L.Input(shape),
            L.Conv2D(17, (3, 3), activation=name),
            L.Activation(name),
            L.Dense(5, activation=name),
        ])

    tf.keras.utils.set_random_seed(3)
    keras_model = build(tf.keras)
    import fastcnn

    model = build(fastcnn)
    model.set_weights(keras_model.get_weights())
    x = np.random.default_rng(5).standard_normal((2,) + shape).astype(np.float32)
    x[0, 2, 3, 1] = np.nan
    expected = keras_model(x, training=False).numpy()
    assert np.isnan(expected).any() and not np.isnan(expected).all()
    for tier, y in predict_on_every_tier(model, x).items():
        assert np.array_equal(np.isnan(y), np.isnan(expected)), tier
        finite = ~np.isnan(expected)
        np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-5, atol=1e-5, err_msg=tier)


def test_kernel_set_is_restored():
    # The helpers above switch kernel sets; whatever the test order, the active set is put back.
    before = _core.kernel_set()
    with kernel_set("reference"):
        assert _core.kernel_set() == "reference"
    assert _core.kernel_set() == before


# ---------------------------------------------------------------------------------------------
# ELU(alpha), PReLU and the training-noise layers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 0.3, -1.5])
@pytest.mark.parametrize("shape", [(5, 7, 1), (4, 3, 17), (60, 50, 3)], ids=lambda s: "{}x{}x{}".format(*s))
def test_elu_layer_tiers_match_reference(rng, shape, alpha):
    check_layer_on_every_tier(rng, lambda: layers.ELU(alpha), shape)


@pytest.mark.parametrize("shared_axes", [None, [1, 2], [3], [1], [1, 2, 3]], ids=str)
@pytest.mark.parametrize("shape", [(5, 7, 1), (4, 3, 17), (9, 8, 70)], ids=lambda s: "{}x{}x{}".format(*s))
def test_prelu_layer_tiers_match_reference(rng, shape, shared_axes):
    # 70 channels: more than one 64-channel block of the optimised alpha gradient.
    check_layer_on_every_tier(rng, lambda: layers.PReLU(alpha_initializer="random_normal", shared_axes=shared_axes),
                              shape)
    model = models.Sequential([layers.Input(shape), layers.PReLU(alpha_initializer="random_normal",
                                                                 shared_axes=shared_axes),
                               layers.Flatten(), layers.Dense(3, activation="softmax")])
    x = (2 * rng.standard_normal((6,) + shape)).astype(np.float32)
    results = train_step_on_every_tier(model, x, rng.integers(0, 3, 6))
    for tier in TIERS:
        assert_close(results[tier][1][0], results["reference"][1][0], f"{tier} alpha change")


NOISE_LAYERS = {
    "SpatialDropout2D": lambda seed: layers.SpatialDropout2D(0.4, seed=seed),
    "Dropout-noise_shape": lambda seed: layers.Dropout(0.4, noise_shape=(None, 1, None, 1), seed=seed),
    "GaussianNoise": lambda seed: layers.GaussianNoise(0.5, seed=seed),
    "GaussianDropout": lambda seed: layers.GaussianDropout(0.4, seed=seed),
}


@pytest.mark.parametrize("name", NOISE_LAYERS)
@pytest.mark.parametrize("shape", [(5, 7, 1), (4, 3, 17), (60, 50, 3)], ids=lambda s: "{}x{}x{}".format(*s))
def test_noise_layer_tiers_match_reference(rng, name, shape):
    """A fresh layer with the same seed per tier draws the same noise; the dropout kinds' factors are
    exact, the Gaussian ones go through each tier's log, cos and sqrt."""
    x = (2 * rng.standard_normal((3,) + shape)).astype(np.float32)
    outputs = {}
    for tier in ["reference"] + TIERS:
        with kernel_set(tier):
            outputs[tier] = NOISE_LAYERS[name](17)(x, training=True)
    assert not np.array_equal(outputs["reference"], x)
    for tier in TIERS:
        if name.startswith("Gaussian"):
            assert_close(outputs[tier], outputs["reference"], f"{tier} {name}", rtol=1e-6)
        else:
            np.testing.assert_array_equal(outputs[tier], outputs["reference"], err_msg=f"{tier} {name}")
    # The backward kernels: one training step of a fresh model per tier (same seed, same weights).
    start, changes = None, {}
    for tier in ["reference"] + TIERS:
        model = models.Sequential([layers.Input(shape), layers.Conv2D(shape[-1], (1, 1)), NOISE_LAYERS[name](17),
                                   layers.Flatten(), layers.Dense(4, activation="softmax")])
        if start is None:
            start = [(0.5 * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()]
        model.set_weights(start)
        model.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="sparse_categorical_crossentropy")
        with kernel_set(tier):
            model.train_on_batch(x, np.arange(len(x)) % 4)
        changes[tier] = [after - before for after, before in zip(model.get_weights(), start)]
    assert np.any(changes["reference"][0] != 0)
    for tier in TIERS:
        for index, (change, reference_change) in enumerate(zip(changes[tier], changes["reference"])):
            assert_close(change, reference_change, f"{tier} {name} weight {index} change")
