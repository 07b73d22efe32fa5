"""The activations by name and the newer layers against TensorFlow 2.21 / Keras 3.

* Every activation, forward and gradient, against ``tf.keras.activations.get(name)`` (what Keras
  layers call for ``activation=name``) with tf.GradientTape, for every kernel tier through
  ``fastcnn._core.ops``, over ordinary values and edge values (exact kinks, exp over/underflow,
  +-1e4). Bounds: 1e-5 forward, 1e-4 gradient, relative to each value with a floor of 1 (so values
  near zero are held to 1e-5 / 1e-4 absolute, large ones to their own magnitude).
* Every activation fused in Conv2D and Dense and as an Activation layer inside a small model, and
  each new layer (AveragePooling2D, GlobalAverage/MaxPooling2D, ZeroPadding2D, ReLU, LeakyReLU,
  Rescaling, Reshape, Conv2D dilation_rate) inside a small model: with Keras's initial weights,
  predict matches (<= 1e-5) and three SGD steps (fastcnn's fit with shuffle=False; Keras's loss,
  gradient and SGD optimizer on the same batches) leave the same weights (<= 1e-4) and the same
  weight changes (<= 1e-3), with the same epoch loss.
* Subgradients at the kinks (an exactly-zero pre-activation, x == threshold, x == max_value) as
  TensorFlow takes them.
* summary() and output_shape of a model with these layers against Keras.
"""

import os
import warnings

import numpy as np
import pytest

from fastcnn import _core, config, layers, models, optimizers
from conftest import relative_error

TIERS = list(_core.available_kernels())

ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softmax", "relu6", "leaky_relu", "elu", "selu",
               "hard_sigmoid", "softplus", "swish", "silu", "gelu"]
# Their backward pass needs the activation's input; the others' follows from the output alone.
NEEDS_INPUT = {"gelu", "swish", "silu", "softplus"}

FASTCNN = {"layers": layers, "models": models, "optimizers": optimizers}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Parity with Keras does not depend on the thread count (test_parity_models.py runs threaded);
    one thread keeps these many tiny models fast even on a loaded machine, where every OpenMP
    barrier can wait a scheduler time slice."""
    threads = config.get_num_threads()
    config.set_num_threads(1)
    yield
    config.set_num_threads(threads)


@pytest.fixture(scope="module")
def keras_lib(tf):
    return {"layers": tf.keras.layers, "models": tf.keras.models, "optimizers": tf.keras.optimizers}


def pointwise_error(actual, expected, floor=1.0):
    """max over elements of |actual - expected| / max(|expected|, floor)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.max(np.abs(actual - expected) / np.maximum(np.abs(expected), floor)))


def _worst(actual, expected, x, floor=1.0):
    """Where the pointwise error is largest, for failure messages."""
    error = np.abs(np.asarray(actual, np.float64) - expected) / np.maximum(np.abs(expected), floor)
    index = np.unravel_index(np.argmax(error), error.shape)
    return f"worst at x={x[index]!r}: got {actual[index]!r}, TensorFlow {expected[index]!r}"


# Exact kinks (0, +-3, 6), exp over/underflow (+-88, +-89, +-100), large magnitudes, tiny values.
EDGE_VALUES = np.array([
    0.0, 1e-7, -1e-7, 1e-3, -1e-3, 0.5, -0.5, 1.0, -1.0,
    2.9999, 3.0, 3.0001, -2.9999, -3.0, -3.0001, 5.9999, 6.0, 6.0001, -6.0,
    10.0, -10.0, 17.0, -17.0, 30.0, -30.0, 88.0, -88.0, 89.0, -89.0, 100.0, -100.0,
    1e3, -1e3, 1e4, -1e4, 0.25, -0.25, 0.75, -0.75, 2.0,
], dtype=np.float32)


def _activation_inputs(rng):
    ordinary = (3.0 * rng.standard_normal((6, 8))).astype(np.float32)
    return np.concatenate([EDGE_VALUES.reshape(-1, 8), ordinary], axis=0)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_forward_and_gradient_match_tensorflow(tf, rng, tier, name):
    x = _activation_inputs(rng)
    x_t = tf.constant(x)
    function = tf.keras.activations.get(name)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = function(x_t)
    upstream = rng.standard_normal(x.shape).astype(np.float32)
    dx_t = tape.gradient(out, x_t, output_gradients=tf.constant(upstream)).numpy()
    expected = out.numpy()

    y = _core.ops.activation_forward(name, x, tier)
    assert y.shape == x.shape and y.dtype == np.float32
    assert relative_error(y, expected) <= 1e-5, _worst(y, expected, x)
    assert pointwise_error(y, expected) <= 1e-5, _worst(y, expected, x)

    dx = _core.ops.activation_backward(name, y, upstream, tier, input=x)
    assert relative_error(dx, dx_t) <= 1e-4, _worst(dx / upstream, dx_t / upstream, x)
    # The gradient per unit upstream gradient, so each element is judged on its own scale.
    assert pointwise_error(dx / upstream, dx_t / upstream) <= 1e-4, _worst(dx / upstream, dx_t / upstream, x)
    if name not in NEEDS_INPUT:
        # The input is optional where the output determines the derivative.
        np.testing.assert_array_equal(_core.ops.activation_backward(name, y, upstream, tier), dx)


@pytest.mark.parametrize("name", sorted(NEEDS_INPUT))
def test_activation_backward_requires_input_where_needed(rng, name):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = _core.ops.activation_forward(name, x, "reference")
    with pytest.raises(ValueError, match="input"):
        _core.ops.activation_backward(name, y, np.ones_like(y), "reference")


def test_silu_is_swish(rng):
    x = (4 * rng.standard_normal((5, 7))).astype(np.float32)
    for tier in TIERS:
        y = _core.ops.activation_forward("silu", x, tier)
        np.testing.assert_array_equal(y, _core.ops.activation_forward("swish", x, tier))
        g = rng.standard_normal(x.shape).astype(np.float32)
        np.testing.assert_array_equal(_core.ops.activation_backward("silu", y, g, tier, input=x),
                                      _core.ops.activation_backward("swish", y, g, tier, input=x))


@pytest.mark.parametrize("name", [name for name in ACTIVATIONS if name != "softmax"])
def test_activation_special_values_match_tensorflow(tf, name):
    """NaN and +-inf in the forward pass: NaN exactly where TensorFlow gives NaN, the same values
    elsewhere, for every tier. (Softmax is left out: a row holding NaN or inf is not elementwise.)"""
    x = np.array([[np.nan, np.inf, -np.inf, 0.0, 1.0, -1.0, 7.0, -7.0]], dtype=np.float32)
    expected = tf.keras.activations.get(name)(tf.constant(x)).numpy()
    for tier in TIERS:
        y = _core.ops.activation_forward(name, x, tier)
        assert np.array_equal(np.isnan(y), np.isnan(expected)), (tier, "x", x, "got", y, "TensorFlow", expected)
        finite = ~np.isnan(expected)
        np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-5, atol=1e-6, err_msg=tier)


# ------------------------------------------------------------------------------------------------
# Small models: Keras's initial weights copied, predict, then three SGD fit steps
# ------------------------------------------------------------------------------------------------


def _seed(tf, seed=7):
    warnings.filterwarnings("ignore", message=".*input_shape.*", category=UserWarning)
    tf.keras.utils.set_random_seed(int(os.environ.get("FASTCNN_PARITY_SEED", seed)))


def keras_sgd_steps(tf, keras_model, x, y, batch_size, learning_rate):
    """What Keras's fit does with SGD, shuffle=False and no metrics: for each batch in order, the
    mean sparse categorical cross-entropy, its gradient, one SGD update. (Run eagerly with the
    Keras loss and optimizer: a traced fit costs more than these tiny models.) Returns the
    per-batch losses."""
    loss_function = tf.keras.losses.SparseCategoricalCrossentropy()
    optimizer = tf.keras.optimizers.SGD(learning_rate=learning_rate)
    losses = []
    for start in range(0, len(x), batch_size):
        with tf.GradientTape() as tape:
            loss = loss_function(y[start:start + batch_size], keras_model(x[start:start + batch_size], training=True))
        gradients = tape.gradient(loss, keras_model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, keras_model.trainable_variables))
        losses.append(float(loss))
    return losses


def check_model_against_keras(tf, keras_lib, build, x, y, batch_size=8, learning_rate=0.1):
    """Builds `build(lib)` in Keras and fastcnn with Keras's initial weights; predict must agree and
    three SGD fit steps on the same batches must leave the same weights."""
    _seed(tf)
    keras_model = build(keras_lib)
    model = build(FASTCNN)
    initial = keras_model.get_weights()
    model.set_weights(initial)

    expected = keras_model(x, training=False).numpy()
    actual = model.predict(x, verbose=0)
    assert actual.shape == expected.shape
    assert relative_error(actual, expected) <= 1e-5

    keras_losses = keras_sgd_steps(tf, keras_model, x, y, batch_size, learning_rate)
    model.compile(optimizer=optimizers.SGD(learning_rate=learning_rate), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    assert model.optimizer.iterations == len(keras_losses)
    after, keras_after = model.get_weights(), keras_model.get_weights()
    assert len(after) == len(keras_after)
    for index, (actual_w, expected_w, start) in enumerate(zip(after, keras_after, initial)):
        assert relative_error(actual_w, expected_w) <= 1e-4, f"weight {index}"
        # The change itself (what the gradients did), looser for the float32 subtraction.
        assert relative_error(actual_w - start, expected_w - start, floor=1e-6) <= 1e-3, f"weight {index} change"
    # Keras's epoch loss: the batch losses averaged (equal batches here).
    np.testing.assert_allclose(history.history["loss"], [np.mean(keras_losses)], rtol=1e-4)


def test_keras_reference_steps_are_keras_fit(tf, keras_lib, rng):
    """keras_sgd_steps (the reference the model tests use) is what Keras's own fit does."""
    shape = (8, 8, 2)

    def build(lib):
        L = lib["layers"]
        return lib["models"].Sequential([L.Input(shape), L.Conv2D(3, (3, 3), activation="gelu"),
                                         L.AveragePooling2D(2), L.Flatten(), L.Dense(3, activation="softmax")])

    x, y = _images(rng, 24, shape), rng.integers(0, 3, 24)
    _seed(tf)
    fitted = build(keras_lib)
    stepped = build(keras_lib)
    stepped.set_weights(fitted.get_weights())
    fitted.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                   run_eagerly=True)
    history = fitted.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    losses = keras_sgd_steps(tf, stepped, x, y, 8, 0.1)
    for a, b in zip(stepped.get_weights(), fitted.get_weights()):
        assert relative_error(a, b) <= 1e-6
    np.testing.assert_allclose(history.history["loss"], [np.mean(losses)], rtol=1e-6)


def _images(rng, count, shape, scale=2.0):
    return (scale * rng.standard_normal((count,) + shape)).astype(np.float32)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_in_conv2d_dense_and_activation_layer_trains_like_keras(tf, keras_lib, rng, name):
    shape = (8, 8, 2)

    def build(lib):
        L = lib["layers"]
        return lib["models"].Sequential([
            L.Input(shape),
            L.Conv2D(4, (3, 3), activation=name),
            L.Flatten(),
            L.Dense(6, activation=name),
            L.Dense(5),
            L.Activation(name),
            L.Dense(3, activation="softmax"),
        ])

    x = _images(rng, 24, shape)
    y = rng.integers(0, 3, 24)
    check_model_against_keras(tf, keras_lib, build, x, y)


def _conv_then(layer_factory, shape=(9, 9, 2), filters=3, kernel=(2, 2), flatten=True, classes=4):
    """Input -> Conv2D (so the tested layer's backward pass reaches trainable weights) -> layer ->
    [Flatten] -> Dense softmax."""

    def build(lib):
        L = lib["layers"]
        stack = [L.Input(shape), L.Conv2D(filters, kernel, activation="tanh"), layer_factory(L)]
        if flatten:
            stack.append(L.Flatten())
        stack.append(L.Dense(classes, activation="softmax"))
        return lib["models"].Sequential(stack)

    return build


@pytest.mark.parametrize("pool", [2, 3])
@pytest.mark.parametrize("strides", [1, 2, None])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_average_pooling2d_trains_like_keras(tf, keras_lib, rng, pool, strides, padding):
    # Conv output 10 x 9: odd remainders for 'same' (TensorFlow excludes the padding from the mean).
    build = _conv_then(lambda L: L.AveragePooling2D(pool, strides=strides, padding=padding), shape=(11, 10, 2))
    check_model_against_keras(tf, keras_lib, build, _images(rng, 24, (11, 10, 2)), rng.integers(0, 4, 24))


def test_average_pooling2d_non_square_pool_and_strides_train_like_keras(tf, keras_lib, rng):
    build = _conv_then(lambda L: L.AveragePooling2D((3, 2), strides=(2, 3), padding="same"), shape=(12, 11, 3))
    check_model_against_keras(tf, keras_lib, build, _images(rng, 24, (12, 11, 3)), rng.integers(0, 4, 24))


@pytest.mark.parametrize("kind", ["GlobalAveragePooling2D", "GlobalMaxPooling2D"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling2d_trains_like_keras(tf, keras_lib, rng, kind, keepdims):
    build = _conv_then(lambda L: getattr(L, kind)(keepdims=keepdims), shape=(9, 8, 3), filters=5,
                       kernel=(3, 3), flatten=keepdims)
    check_model_against_keras(tf, keras_lib, build, _images(rng, 24, (9, 8, 3)), rng.integers(0, 4, 24))


@pytest.mark.parametrize("padding", [1, (2, 1), ((1, 2), (0, 3))], ids=["int", "pair", "pairs"])
def test_zero_padding2d_trains_like_keras(tf, keras_lib, rng, padding):
    shape = (8, 8, 2)

    def build(lib):
        L = lib["layers"]
        return lib["models"].Sequential([
            L.Input(shape),
            L.Conv2D(3, (3, 3), activation="tanh"),
            L.ZeroPadding2D(padding),
            L.Conv2D(4, (3, 3)),
            L.Flatten(),
            L.Dense(3, activation="softmax"),
        ])

    check_model_against_keras(tf, keras_lib, build, _images(rng, 24, shape), rng.integers(0, 3, 24))


RELU_CONFIGS = [
    {},
    {"max_value": 6.0},
    {"max_value": 1.5},
    {"negative_slope": 0.1},
    {"threshold": 0.5},
    {"max_value": 6.0, "negative_slope": 0.1},
    {"max_value": 2.0, "threshold": 0.5},
    {"negative_slope": 0.1, "threshold": 0.5},
    {"max_value": 2.0, "negative_slope": 0.1, "threshold": 0.5},
]


def _config_id(config):
    return "-".join(f"{key}={value}" for key, value in config.items()) or "defaults"


@pytest.mark.parametrize("config", RELU_CONFIGS, ids=_config_id)
def test_relu_layer_trains_like_keras(tf, keras_lib, rng, config):
    # Plain Conv2D before the ReLU so its input spans both signs, the threshold and the max_value.
    shape = (8, 8, 2)

    def build(lib):
        L = lib["layers"]
        return lib["models"].Sequential([L.Input(shape), L.Conv2D(4, (3, 3)), L.ReLU(**config), L.Flatten(),
                                         L.Dense(3, activation="softmax")])

    check_model_against_keras(tf, keras_lib, build, _images(rng, 24, shape, scale=3.0), rng.integers(0, 3, 24))


@pytest.mark.parametrize("kwargs", [{}, {"negative_slope": 0.05}], ids=["default", "slope0.05"])
def test_leaky_relu_layer_trains_like_keras(tf, keras_lib, rng, kwargs):
    shape = (8, 8, 2)

    def build(lib):
        L = lib["layers"]
        return lib["models"].Sequential([L.Input(shape), L.Conv2D(4, (3, 3)), L.LeakyReLU(**kwargs), L.Flatten(),
                                         L.Dense(3, activation="softmax")])

    check_model_against_keras(tf, keras_lib, build, _images(rng, 24, shape), rng.integers(0, 3, 24))


def test_leaky_relu_default_slope_is_keras_0_3(tf):
    assert layers.LeakyReLU().negative_slope == pytest.approx(tf.keras.layers.LeakyReLU().negative_slope)
    x = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]], np.float32)
    model = models.Sequential([layers.Input((5,)), layers.LeakyReLU()])
    np.testing.assert_allclose(model.predict(x, verbose=0), tf.keras.layers.LeakyReLU()(x).numpy(), rtol=1e-6)


@pytest.mark.parametrize("scale,offset", [(1 / 255, 0.0), (2.0, -1.0)], ids=["1/255", "2,-1"])
def test_rescaling_trains_like_keras(tf, keras_lib, rng, scale, offset):
    shape = (8, 8, 3)

    def build(lib):
        L = lib["layers"]
        return lib["models"].Sequential([
            L.Input(shape),
            L.Rescaling(scale, offset),            # on the input pixels
            L.Conv2D(3, (3, 3), activation="tanh"),
            L.Rescaling(scale, offset),            # inside the model: its backward pass is used
            L.Conv2D(2, (3, 3)),
            L.Flatten(),
            L.Dense(3, activation="softmax"),
        ])

    if scale < 1:
        x = rng.integers(0, 256, (24,) + shape).astype(np.float32)
    else:
        x = rng.random((24,) + shape).astype(np.float32)
    check_model_against_keras(tf, keras_lib, build, x, rng.integers(0, 3, 24))


@pytest.mark.parametrize("target", [(-1, 4), (2, 2, -1), (-1,), (16, 4)], ids=str)
def test_reshape_trains_like_keras(tf, keras_lib, rng, target):
    shape = (6, 6, 2)

    def build(lib):
        L = lib["layers"]
        return lib["models"].Sequential([
            L.Input(shape),
            L.Conv2D(4, (3, 3), activation="tanh"),   # (4, 4, 4): 64 values per sample
            L.Reshape(target),
            L.Dense(3, activation="tanh"),            # acts on the reshaped last axis
            L.Flatten(),
            L.Dense(3, activation="softmax"),
        ])

    check_model_against_keras(tf, keras_lib, build, _images(rng, 24, shape), rng.integers(0, 3, 24))


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("dilation", [2, (2, 3)], ids=["2", "2x3"])
def test_conv2d_dilation_trains_like_keras(tf, keras_lib, rng, padding, dilation):
    shape = (11, 12, 2)

    def build(lib):
        L = lib["layers"]
        return lib["models"].Sequential([
            L.Input(shape),
            L.Conv2D(4, (3, 3), dilation_rate=dilation, padding=padding, activation="relu"),
            L.Conv2D(3, (2, 2), dilation_rate=dilation, padding=padding),
            L.Flatten(),
            L.Dense(3, activation="softmax"),
        ])

    check_model_against_keras(tf, keras_lib, build, _images(rng, 24, shape), rng.integers(0, 3, 24))


# ------------------------------------------------------------------------------------------------
# Subgradients at the kinks, as TensorFlow takes them
# ------------------------------------------------------------------------------------------------


def _check_kink(tf, keras_lib, rng, layer_factory, value):
    """The layer's derivative at exactly `value`, as Keras takes it. A 1x1 Conv2D that starts as the
    identity (kernel 1, bias 0) feeds the layer `value` everywhere, so the conv's bias gradient is
    the sum of upstream gradients times the layer's derivative at `value` (and its kernel gradient
    that times `value`); compared after one SGD step of learning rate 1 with Keras's gradient."""
    width = 5
    x = np.full((12, 1, width, 1), value, np.float32)
    # One label for all: the upstream gradients cannot cancel over the (identical) samples.
    y = np.zeros(12, np.int64)

    def build(lib):
        L = lib["layers"]
        return lib["models"].Sequential([L.Input((1, width, 1)), L.Conv2D(1, (1, 1)), layer_factory(L),
                                         L.Flatten(), L.Dense(3, activation="softmax")])

    _seed(tf)
    keras_model, model = build(keras_lib), build(FASTCNN)
    weights = keras_model.get_weights()
    weights[0] = np.ones_like(weights[0])
    weights[1] = np.zeros_like(weights[1])
    keras_model.set_weights(weights)
    model.set_weights(weights)
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.SparseCategoricalCrossentropy()(y, keras_model(x, training=True))
    keras_gradients = [g.numpy() for g in tape.gradient(loss, keras_model.trainable_variables)]
    model.compile(optimizer=optimizers.SGD(1.0), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0)
    gradients = [start - after for start, after in zip(weights, model.get_weights())]
    names = ["conv kernel", "conv bias", "dense kernel", "dense bias"]
    for name, actual, expected in zip(names, gradients, keras_gradients):
        assert relative_error(actual, expected, floor=1e-6) <= 1e-3, (
            f"at x = {value}: {name} gradient fastcnn {actual.ravel()[:3]}, Keras {expected.ravel()[:3]}")


RELU_KINKS = [
    ({}, 0.0),
    ({"max_value": 6.0}, 0.0),
    ({"max_value": 6.0}, 6.0),
    ({"max_value": 4.0}, 4.0),
    ({"negative_slope": 0.1}, 0.0),
    ({"threshold": 0.5}, 0.5),
    ({"threshold": 0.5}, 0.0),
    ({"max_value": 6.0, "negative_slope": 0.1}, 0.0),
    ({"max_value": 6.0, "negative_slope": 0.1}, 6.0),
    ({"max_value": 4.0, "negative_slope": 0.1, "threshold": 0.5}, 0.5),
    ({"max_value": 4.0, "negative_slope": 0.1, "threshold": 0.5}, 4.0),
    ({"max_value": 4.0, "threshold": 1.0}, 4.0),
]


@pytest.mark.parametrize("config,value", RELU_KINKS, ids=[f"{_config_id(c)}-at{v}" for c, v in RELU_KINKS])
def test_relu_layer_subgradient_at_kink_matches_keras(tf, keras_lib, rng, config, value):
    _check_kink(tf, keras_lib, rng, lambda L: L.ReLU(**config), value)


@pytest.mark.parametrize("kwargs", [{}, {"negative_slope": 0.05}], ids=["default", "slope0.05"])
def test_leaky_relu_layer_subgradient_at_zero_matches_keras(tf, keras_lib, rng, kwargs):
    _check_kink(tf, keras_lib, rng, lambda L: L.LeakyReLU(**kwargs), 0.0)


ACTIVATION_KINKS = [("relu", 0.0), ("relu6", 0.0), ("relu6", 6.0), ("leaky_relu", 0.0), ("elu", 0.0),
                    ("selu", 0.0), ("hard_sigmoid", 3.0), ("hard_sigmoid", -3.0)]


@pytest.mark.parametrize("name,value", ACTIVATION_KINKS, ids=[f"{n}-at{v}" for n, v in ACTIVATION_KINKS])
def test_activation_layer_subgradient_at_kink_matches_keras(tf, keras_lib, rng, name, value):
    _check_kink(tf, keras_lib, rng, lambda L: L.Activation(name), value)


# ------------------------------------------------------------------------------------------------
# summary() and output shapes
# ------------------------------------------------------------------------------------------------


def _summary_model(lib):
    L = lib["layers"]
    return lib["models"].Sequential([
        L.Input((10, 11, 3)),
        L.Rescaling(1 / 255, name="scale"),
        L.ZeroPadding2D(((1, 2), (0, 3)), name="pad"),
        L.Conv2D(8, (3, 3), dilation_rate=2, activation="gelu", name="dilated"),
        L.AveragePooling2D(3, strides=2, padding="same", name="avg"),
        L.ReLU(max_value=6.0, name="relu"),
        L.Conv2D(6, (1, 1), activation="selu", name="pointwise"),
        L.LeakyReLU(name="leaky"),
        L.ZeroPadding2D(1, name="pad1"),
        L.AveragePooling2D(2, name="avg2"),
        L.GlobalMaxPooling2D(keepdims=True, name="gmax"),
        L.Reshape((2, 3, -1), name="reshape"),
        L.GlobalAveragePooling2D(name="gavg"),
        L.Reshape((-1, 1), name="column"),
        L.Dense(4, activation="swish", name="dense"),
        L.Flatten(name="flat"),
        L.Dense(3, activation="softmax", name="out"),
    ], name="layers_model")


def _summary_rows(text):
    """(output shape, param count) per layer row of a summary table."""
    rows = []
    for line in text.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.split("│")[1:-1]]
            if len(cells) == 3 and cells[1]:
                rows.append((cells[1], cells[2]))
    return rows


def test_summary_and_output_shapes_match_keras(tf, keras_lib, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "40")
    _seed(tf)
    keras_model = _summary_model(keras_lib)
    model = _summary_model(FASTCNN)
    assert model.output_shape == tuple(keras_model.output_shape)
    assert len(model.layers) == len(keras_model.layers)
    for ours, theirs in zip(model.layers, keras_model.layers):
        assert ours.name == theirs.name
        assert type(ours).__name__ == type(theirs).__name__
        assert tuple(ours.output_shape) == tuple(theirs.output.shape), ours.name
        assert ours.count_params() == theirs.count_params(), ours.name
    assert model.count_params() == keras_model.count_params()

    texts, keras_texts = [], []
    model.summary(print_fn=lambda text, **kwargs: texts.append(text))
    keras_model.summary(print_fn=lambda text, **kwargs: keras_texts.append(text))
    ours, theirs = "".join(texts), "".join(keras_texts)
    assert _summary_rows(ours) == _summary_rows(theirs)
    assert len(_summary_rows(ours)) == len(model.layers)
    for prefix in (" Total params:", " Trainable params:", " Non-trainable params:"):
        assert [line for line in ours.splitlines() if line.startswith(prefix)] == \
            [line for line in theirs.splitlines() if line.startswith(prefix)], prefix
    assert ours.splitlines() == theirs.splitlines()
