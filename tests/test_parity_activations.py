"""Keras 3's remaining activations and the deterministic activation layers against TensorFlow 2.21.

* hard_silu (hard_swish), mish, log_softmax, exponential and softsign, forward and gradient, against
  ``tf.keras.activations.get(name)`` with tf.GradientTape, for every kernel tier through
  ``fastcnn._core.ops``, over ordinary and edge values: <= 1e-5 forward, <= 1e-4 gradient (pointwise,
  relative with a floor of 1, as tests/test_parity_layers.py).
* ``fastcnn.activations``' functions on numpy arrays (relu with max_value / threshold /
  negative_slope included) against Keras's, and get / serialize / deserialize by name and by function.
* ELU(alpha), PReLU (shared_axes, ranks 2 and 4) and LeakyReLU(alpha=) called on arrays against
  Keras's layers, forward <= 1e-5 and gradients (input and alpha) <= 1e-4.
* Models: these activations fused in Conv2D / Dense and as Activation layers, and a small CNN with
  PReLU, ELU, LeakyReLU and the new activations, predict and three fit steps (SGD, and Adam through
  Keras's own fit) against Keras.
"""

import contextlib
import io
import json
import warnings

import numpy as np
import pytest

import fastcnn
from fastcnn import _core, activations, layers
from conftest import relative_error
from test_parity_layers import _images, _seed, check_model_against_keras, pointwise_error

TIERS = list(_core.available_kernels())
NEW_ACTIVATIONS = ["hard_silu", "hard_swish", "mish", "log_softmax", "exponential", "softsign"]
# Their backward pass reads the activation's input (the others' follows from the output).
NEEDS_INPUT = {"hard_silu", "hard_swish", "mish", "softsign"}

# Kinks of hard_silu (x + 3 at 0 and 6), saturation, exp's range, large magnitudes, tiny values.
EDGE_VALUES = np.array([
    0.0, 1e-7, -1e-7, 1e-3, -1e-3, 0.5, -0.5, 1.0, -1.0, 2.9999, 3.0, 3.0001, -2.9999, -3.0, -3.0001,
    5.9999, 6.0, -6.0, 10.0, -10.0, 17.0, -17.0, 30.0, -30.0, 60.0, -60.0, 80.0, -80.0, -88.0, -100.0,
    1e3, -1e3, 1e4, -1e4, 0.25, -0.25, 0.75, -0.75, 2.0, -2.0,
], dtype=np.float32)


def _inputs(rng, name):
    ordinary = (3.0 * rng.standard_normal((6, 8))).astype(np.float32)
    x = np.concatenate([EDGE_VALUES.reshape(-1, 8), ordinary], axis=0)
    if name == "exponential":  # e^x is finite in float32 below 88.7
        x = np.minimum(x, 80.0)
    return x


def _tf_forward_and_gradient(tf, name, x, upstream):
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = tf.keras.activations.get(name)(x_t)
    return out.numpy(), tape.gradient(out, x_t, output_gradients=tf.constant(upstream)).numpy()


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
def test_activation_forward_and_gradient_match_tensorflow(tf, rng, tier, name):
    x = _inputs(rng, name)
    upstream = rng.standard_normal(x.shape).astype(np.float32)
    expected, expected_dx = _tf_forward_and_gradient(tf, name, x, upstream)
    y = _core.ops.activation_forward(name, x, tier)
    assert y.shape == x.shape and y.dtype == np.float32
    assert pointwise_error(y, expected) <= 1e-5
    dx = _core.ops.activation_backward(name, y, upstream, tier, input=x)
    assert relative_error(dx, expected_dx) <= 1e-4
    assert pointwise_error(dx / upstream, expected_dx / upstream) <= 1e-4
    if name in NEEDS_INPUT:
        with pytest.raises(ValueError, match="input"):
            _core.ops.activation_backward(name, y, upstream, tier)
    else:
        np.testing.assert_array_equal(_core.ops.activation_backward(name, y, upstream, tier), dx)


def test_hard_swish_is_hard_silu(rng):
    x = (4 * rng.standard_normal((5, 7))).astype(np.float32)
    for tier in TIERS:
        np.testing.assert_array_equal(_core.ops.activation_forward("hard_swish", x, tier),
                                      _core.ops.activation_forward("hard_silu", x, tier))


@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
def test_activation_special_values_match_tensorflow(tf, name):
    """NaN where TensorFlow gives NaN and the same values elsewhere (log_softmax: a row of finite
    values, then rows holding +-inf and NaN, which spread through the row as in TensorFlow)."""
    x = np.array([[np.nan, np.inf, -np.inf, 0.0, 1.0, -1.0, 7.0, -7.0]], dtype=np.float32)
    if name == "log_softmax":
        x = np.array([[0.0, 1.0, -1.0, 7.0], [-np.inf, 1.0, 2.0, 0.0], [np.nan, 1.0, 2.0, 0.0]], np.float32)
    expected = tf.keras.activations.get(name)(tf.constant(x)).numpy()
    for tier in TIERS:
        y = _core.ops.activation_forward(name, x, tier)
        assert np.array_equal(np.isnan(y), np.isnan(expected)), (tier, y, expected)
        finite = ~np.isnan(expected)
        np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-5, atol=1e-6, err_msg=tier)


# ---- fastcnn.activations on numpy arrays, and by name ----


@pytest.mark.parametrize("name", NEW_ACTIVATIONS + ["linear"])
def test_module_functions_match_keras(keras, rng, name):
    x = (3 * rng.standard_normal((4, 5, 6))).astype(np.float32)
    expected = np.asarray(getattr(keras.activations, name)(x))
    assert pointwise_error(getattr(activations, name)(x), expected) <= 1e-5


def test_log_softmax_function_takes_an_axis(keras, rng):
    x = (3 * rng.standard_normal((4, 5, 6))).astype(np.float32)
    for axis in (0, 1, -1):
        expected = np.asarray(keras.activations.log_softmax(x, axis=axis))
        assert pointwise_error(activations.log_softmax(x, axis=axis), expected) <= 1e-5


@pytest.mark.parametrize("kwargs", [{}, {"max_value": 1.5}, {"max_value": 6.0}, {"threshold": 0.5},
                                    {"negative_slope": 0.1}, {"negative_slope": 0.1, "threshold": 0.5},
                                    {"negative_slope": 0.2, "max_value": 2.0, "threshold": -0.5}])
def test_relu_function_takes_keras_arguments(keras, rng, kwargs):
    x = (3 * rng.standard_normal((4, 9))).astype(np.float32)
    x[0, :5] = [0.0, 0.5, -0.5, 1.5, 6.0]
    expected = np.asarray(keras.activations.relu(x, **kwargs))
    assert pointwise_error(activations.relu(x, **kwargs), expected) <= 1e-6


def test_get_serialize_deserialize_by_name_and_function(keras):
    for name in NEW_ACTIVATIONS:
        canonical = keras.activations.serialize(keras.activations.get(name))
        assert activations.get(name) == canonical
        assert activations.get(getattr(activations, name)) == canonical
        assert activations.get(getattr(keras.activations, name)) == canonical  # matched by its name
        assert activations.serialize(activations.get(name)) == canonical
        assert activations.deserialize(canonical) is getattr(activations, canonical)
    assert activations.get("hard_swish") == "hard_silu"
    for make in (lambda k, a: k.layers.Dense(3, activation=a, name="n"),
                 lambda k, a: k.layers.Conv2D(2, 3, activation=a, name="n"), lambda k, a: k.layers.Activation(a, name="n")):
        for name in NEW_ACTIVATIONS:
            assert json.dumps(make(fastcnn, name).get_config()) == json.dumps(make(keras, name).get_config())


@pytest.mark.parametrize("bad", ["hard_swishh", "Mish", "", "log-softmax"])
def test_unknown_activation_names_raise_naming_the_value(bad):
    for make in (activations.get, lambda a: layers.Dense(3, activation=a), lambda a: layers.Activation(a)):
        with pytest.raises(ValueError, match=repr(bad).replace("(", r"\(")):
            make(bad)


# ---- ELU, PReLU, LeakyReLU called on arrays: forward and gradients against Keras ----


def _keras_layer_forward_and_gradients(tf, layer, x, upstream):
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = layer(x_t)
    gradients = tape.gradient(out, [x_t] + list(layer.trainable_variables),
                              output_gradients=tf.constant(upstream))
    return out.numpy(), [g.numpy() for g in gradients]


def _fastcnn_layer_gradients(layer, x, upstream):
    """Input and weight gradients of sum(layer(x) * upstream), through a model: a Dense identity in
    front of the layer carries the input gradient into its bias (batch of one, one pixel per row)."""
    batch, features = x.shape[0], int(np.prod(x.shape[1:]))
    inputs = fastcnn.Input((features,))
    front = layers.Dense(features, name="front")
    reshaped = layers.Reshape(x.shape[1:])(front(inputs))
    model = fastcnn.Model(inputs, layers.Flatten()(layer(reshaped)))
    input_gradients, weight_gradients = [], None
    initial = [np.eye(features, dtype=np.float32), np.zeros(features, np.float32)] + [
        np.array(w.numpy()) for w in layer.weights]
    for sample in range(batch):
        model.set_weights(initial)
        # The mean squared error against y - upstream has d loss / dy = 2 upstream / n: SGD with
        # learning rate n / 2 moves every weight by the gradient of sum(y * upstream).
        n = features
        target = model.predict(x[sample:sample + 1].reshape(1, features), verbose=0)
        start = [w.copy() for w in model.get_weights()]
        model.compile(fastcnn.optimizers.SGD(learning_rate=n / 2.0), "mse")
        model.fit(x[sample:sample + 1].reshape(1, features), target - upstream[sample:sample + 1].reshape(1, features),
                  batch_size=1, epochs=1, shuffle=False, verbose=0)
        steps = [s - w for s, w in zip(start, model.get_weights())]
        input_gradients.append(steps[1].reshape(x.shape[1:]))
        per_sample = steps[2:]
        weight_gradients = per_sample if weight_gradients is None else [
            a + b for a, b in zip(weight_gradients, per_sample)]
    return np.stack(input_gradients), weight_gradients


LAYER_CASES = [
    ("ELU", lambda L: L.ELU(), (3, 4, 5, 2)),
    ("ELU-alpha", lambda L: L.ELU(alpha=0.3), (3, 4, 5, 2)),
    ("ELU-alpha-negative", lambda L: L.ELU(alpha=-1.5), (3, 7)),
    ("LeakyReLU-alpha", lambda L: L.LeakyReLU(alpha=0.15), (3, 4, 5, 2)),
    ("PReLU", lambda L: L.PReLU(alpha_initializer="random_normal"), (3, 4, 5, 2)),
    ("PReLU-spatial", lambda L: L.PReLU(alpha_initializer="random_normal", shared_axes=[1, 2]), (3, 4, 5, 3)),
    ("PReLU-channels", lambda L: L.PReLU(alpha_initializer="random_normal", shared_axes=3), (3, 4, 5, 3)),
    ("PReLU-rank2", lambda L: L.PReLU(alpha_initializer="random_normal"), (3, 7)),
    ("PReLU-rank3", lambda L: L.PReLU(alpha_initializer="random_normal", shared_axes=[1]), (3, 4, 6)),
]


@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_activation_layers_forward_and_gradients_match_keras(tf, keras, rng, case):
    _, make, shape = case
    x = (2 * rng.standard_normal(shape)).astype(np.float32)
    x.flat[:4] = [0.0, -0.0, 1e-6, -1e-6]
    upstream = rng.standard_normal(shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LeakyReLU's alpha= warning, in both
        theirs, ours = make(keras.layers), make(layers)
    expected, expected_gradients = _keras_layer_forward_and_gradients(tf, theirs, x, upstream)
    ours(x)  # builds
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights([w.numpy() for w in theirs.weights])
    assert pointwise_error(ours(x), expected) <= 1e-5
    assert pointwise_error(ours(x, training=True), expected) <= 1e-5  # deterministic in training too
    input_gradient, weight_gradients = _fastcnn_layer_gradients(ours, x, upstream)
    assert relative_error(input_gradient, expected_gradients[0]) <= 1e-4
    for mine, reference in zip(weight_gradients, expected_gradients[1:]):
        assert relative_error(mine, reference) <= 1e-4


# ---- models ----


@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
def test_activation_in_conv2d_dense_and_activation_layer_trains_like_keras(tf, rng, name):
    # A tanh before the Activation layer bounds what exponential sees after two fused uses.
    shape = (8, 8, 2)
    keras_lib = {"layers": tf.keras.layers, "models": tf.keras.models, "optimizers": tf.keras.optimizers}

    def build(lib):
        L = lib["layers"]
        return lib["models"].Sequential([
            L.Input(shape), L.Conv2D(4, (3, 3), activation=name), L.Flatten(), L.Dense(6, activation=name),
            L.Dense(5, activation="tanh"), L.Activation(name), L.Dense(3, activation="softmax"),
        ])

    check_model_against_keras(tf, keras_lib, build, _images(rng, 24, shape, scale=1.0), rng.integers(0, 3, 24))


def _small_cnn(module):
    k = module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = k.Input((10, 10, 3))
        x = k.layers.Conv2D(6, 3, activation="hard_swish", name="conv1")(inputs)
        x = k.layers.PReLU(alpha_initializer=k.initializers.RandomUniform(-0.5, 0.5, seed=3), shared_axes=[1, 2],
                           name="prelu1")(x)
        x = k.layers.MaxPooling2D(2)(x)
        x = k.layers.Conv2D(8, 3, activation="mish", name="conv2")(x)
        x = k.layers.ELU(alpha=0.7)(x)
        x = k.layers.PReLU(alpha_initializer=k.initializers.RandomUniform(-0.5, 0.5, seed=4), name="prelu2")(x)
        x = k.layers.Flatten()(x)
        x = k.layers.Dense(12, activation="softsign")(x)
        x = k.layers.LeakyReLU(alpha=0.2)(x)
        x = k.layers.Dense(6, activation="exponential")(x)
        x = k.layers.Activation("log_softmax")(x)
        return k.Model(inputs, k.layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_small_cnn_with_prelu_and_new_activations_trains_like_keras(tf, keras, rng, optimizer):
    _seed(tf, 11)
    theirs, ours = _small_cnn(keras), _small_cnn(fastcnn)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    x = rng.random((12, 10, 10, 3)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    expected = theirs.predict(x, verbose=0)
    assert relative_error(ours.predict(x, verbose=0), expected) <= 1e-5
    for model, module in ((ours, fastcnn), (theirs, keras)):
        model.compile(module.optimizers.SGD(0.1) if optimizer == "sgd" else module.optimizers.Adam(0.01),
                      "sparse_categorical_crossentropy")
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)  # 3 steps
    theirs.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for index, (mine, reference) in enumerate(zip(ours.get_weights(), theirs.get_weights())):
        assert np.max(np.abs(mine - reference)) <= 1e-4 * max(float(np.max(np.abs(reference))), 1e-2), index


def _model_with_every_new_layer(module):
    k = module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return k.Sequential([
            k.Input((8, 8, 3)), k.layers.GaussianNoise(0.1, seed=1), k.layers.Conv2D(4, 3, activation="mish"),
            k.layers.PReLU(alpha_initializer=k.initializers.RandomUniform(-0.5, 0.5, seed=3), shared_axes=[1, 2]),
            k.layers.SpatialDropout2D(0.2, seed=2), k.layers.ELU(alpha=0.5), k.layers.GaussianDropout(0.3),
            k.layers.LeakyReLU(alpha=0.1), k.layers.Dropout(0.2, noise_shape=(None, 1, 1, 4)), k.layers.Flatten(),
            k.layers.Dense(5, activation="hard_swish"), k.layers.PReLU(), k.layers.Dense(3, activation="log_softmax"),
        ])


def test_keras_and_weights_files_of_the_new_layers_load_both_ways(tf, keras, rng, tmp_path):
    theirs = _model_with_every_new_layer(keras)
    x = rng.random((4, 8, 8, 3)).astype(np.float32)
    expected = theirs.predict(x, verbose=0)
    theirs.save(tmp_path / "theirs.keras")
    ours = fastcnn.models.load_model(tmp_path / "theirs.keras")
    assert relative_error(ours.predict(x, verbose=0), expected) <= 1e-5
    ours.save(tmp_path / "ours.keras")
    back = keras.models.load_model(tmp_path / "ours.keras")
    assert relative_error(back.predict(x, verbose=0), expected) <= 1e-5
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    fresh = _model_with_every_new_layer(fastcnn)
    fresh.load_weights(tmp_path / "theirs.weights.h5")
    assert relative_error(fresh.predict(x, verbose=0), expected) <= 1e-5
    fresh.save_weights(tmp_path / "ours.weights.h5")
    again = _model_with_every_new_layer(keras)
    again.load_weights(tmp_path / "ours.weights.h5")
    assert relative_error(again.predict(x, verbose=0), expected) <= 1e-5
    assert json.dumps(ours.get_config()) == json.dumps(theirs.get_config())


def test_summary_of_the_new_layers_equals_keras(keras):
    def text(model):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            model.summary()
        return out.getvalue()

    # The automatic names count from zero in both after a cleared session.
    fastcnn.utils.clear_session()
    keras.utils.clear_session()
    assert text(_model_with_every_new_layer(fastcnn)) == text(_model_with_every_new_layer(keras))
