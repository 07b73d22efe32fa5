"""BatchNormalization against TensorFlow/Keras: kernels (statistics, forward, every gradient) for
each tier, the layer in both modes inside models, the moving statistics after several fit steps,
and a frozen layer (inference mode, as Keras 3 runs it)."""

import numpy as np
import pytest

from fastcnn import _core, layers, models, optimizers
from conftest import relative_error

TIERS = ["reference"] + [name for name in _core.available_kernels() if name != "reference"]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("shape", [(4, 5, 5, 3), (2, 7, 3, 17), (64, 1, 1, 8), (1, 1, 1, 4), (3, 33, 31, 32)])
def test_batch_norm_kernels_match_tensorflow(tf, rng, tier, shape):
    x = (rng.standard_normal(shape) * 3 + 1.5).astype(np.float32)
    channels = shape[-1]
    gamma = rng.uniform(0.5, 2, channels).astype(np.float32)
    beta = rng.standard_normal(channels).astype(np.float32)
    upstream = rng.standard_normal(shape).astype(np.float32)
    x_t, gamma_t, beta_t = tf.constant(x), tf.Variable(gamma), tf.Variable(beta)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        mean_t, variance_t = tf.nn.moments(x_t, axes=[0, 1, 2])
        out = tf.nn.batch_normalization(x_t, mean_t, variance_t, beta_t, gamma_t, 1e-3)
    dx_t, dgamma_t, dbeta_t = tape.gradient(out, [x_t, gamma_t, beta_t], output_gradients=tf.constant(upstream))

    mean, variance = _core.ops.batch_norm_statistics(x, tier)
    assert relative_error(mean, mean_t.numpy()) <= 1e-5
    assert relative_error(variance, variance_t.numpy()) <= 1e-5
    y = _core.ops.batch_norm_forward(x, mean, variance, gamma, beta, 1e-3, tier)
    assert relative_error(y, out.numpy()) <= 1e-5
    dx, dgamma, dbeta = _core.ops.batch_norm_backward(x, mean, variance, gamma, upstream, 1e-3, tier)
    assert relative_error(dx, dx_t.numpy()) <= 1e-4
    assert relative_error(dgamma, dgamma_t.numpy()) <= 1e-4
    assert relative_error(dbeta, dbeta_t.numpy()) <= 1e-4


def _bn_model(lib, frozen_index=None, center=True, scale=True):
    L = lib["layers"]
    model = lib["models"].Sequential([
        L.Conv2D(6, (3, 3), padding="same", activation="relu", input_shape=(10, 10, 2)),
        L.BatchNormalization(center=center, scale=scale),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(8, (3, 3), padding="same"),
        L.BatchNormalization(momentum=0.9, epsilon=1e-2),
        L.Activation("relu"),
        L.Flatten(),
        L.Dense(5, activation="softmax"),
    ])
    if frozen_index is not None:
        model.layers[frozen_index].trainable = False
    return model


def _seeded(tf, seed=11):
    import warnings

    warnings.filterwarnings("ignore", message=".*input_shape.*", category=UserWarning)
    tf.keras.utils.set_random_seed(seed)


def _random_bn_statistics(model, rng):
    """Non-trivial gamma/beta/moving statistics so that inference mode is really exercised."""
    weights = []
    for layer in model.layers:
        for variable in layer.weights:
            shape = variable.shape
            name = variable.path if hasattr(variable, "path") else variable.name
            if "moving_variance" in name:
                weights.append(rng.uniform(0.5, 2.0, shape).astype(np.float32))
            elif "moving_mean" in name or "beta" in name:
                weights.append(rng.standard_normal(shape).astype(np.float32) * 0.3)
            elif "gamma" in name:
                weights.append(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            else:
                weights.append(np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable))
    return weights


@pytest.fixture
def keras_lib(tf):
    return {"layers": tf.keras.layers, "models": tf.keras.models}


FASTCNN = {"layers": layers, "models": models}


@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False), (False, False)])
def test_inference_mode_predict_matches_keras(tf, keras_lib, rng, center, scale):
    _seeded(tf)
    keras_model = _bn_model(keras_lib, center=center, scale=scale)
    model = _bn_model(FASTCNN, center=center, scale=scale)
    assert [w.shape for w in model.get_weights()] == [w.shape for w in keras_model.get_weights()]
    keras_model.set_weights(_random_bn_statistics(keras_model, rng))
    model.set_weights(keras_model.get_weights())
    x = rng.random((9, 10, 10, 2)).astype(np.float32)
    assert relative_error(model.predict(x, verbose=0), keras_model.predict(x, verbose=0)) <= 1e-5


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("frozen_index", [None, 1])
def test_fit_steps_match_keras_including_moving_statistics(tf, keras_lib, rng, optimizer, frozen_index):
    _seeded(tf)
    keras_model = _bn_model(keras_lib, frozen_index)
    model = _bn_model(FASTCNN, frozen_index)
    keras_model.set_weights(_random_bn_statistics(keras_model, rng))
    model.set_weights(keras_model.get_weights())
    before = model.get_weights()
    make = {"sgd": lambda lib: lib.SGD(0.05, momentum=0.9), "adam": lambda lib: lib.Adam(0.01, epsilon=1e-3)}[optimizer]
    keras_model.compile(optimizer=make(tf.keras.optimizers), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.compile(optimizer=make(optimizers), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.random((40, 10, 10, 2)).astype(np.float32)
    y = rng.integers(0, 5, 40)
    keras_history = keras_model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    names = [w.path for w in model.weights]
    for name, actual, expected in zip(names, model.get_weights(), keras_model.get_weights()):
        # Biases right before a BatchNormalization have a zero true gradient: rounding noise in both.
        assert relative_error(actual, expected, floor=1e-2) <= 1e-4, name
    np.testing.assert_allclose(history.history["loss"], keras_history.history["loss"], rtol=1e-4)
    if frozen_index is not None:
        # The frozen layer's four weights did not move, and it counts as non-trainable.
        frozen = model.layers[frozen_index]
        offset = sum(len(layer.weights) for layer in model.layers[:frozen_index])
        for index in range(4):
            np.testing.assert_array_equal(model.get_weights()[offset + index], before[offset + index])
        assert frozen.trainable_weights == [] and len(frozen.non_trainable_weights) == 4
    # Evaluation uses the moving statistics, as in Keras.
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), keras_model.evaluate(x, y, verbose=0), rtol=1e-4)


def test_batch_norm_gradient_is_accurate_under_cancellation(tf, rng):
    """When the upstream gradient is nearly linear in x_hat, dx is a small difference of large
    terms. Against an exact float64 computation fastcnn stays within 1e-4 while TensorFlow's
    float32 autodiff of the same formula is off by about 1e-2 (measured here; it is why the
    Example 3 test below compares both with a float64 Keras run)."""
    x = np.maximum(rng.standard_normal((8, 32, 32, 16)), 0).astype(np.float32)
    gamma = rng.uniform(0.5, 2, 16).astype(np.float32)
    x64 = x.astype(np.float64)
    mean64, variance64 = x64.mean((0, 1, 2)), x64.var((0, 1, 2))
    inverse_std = 1 / np.sqrt(variance64 + 1e-3)
    x_hat = (x64 - mean64) * inverse_std
    dy = (0.5 * x_hat + 0.2 + 1e-3 * rng.standard_normal(x.shape)).astype(np.float32)
    dy64 = dy.astype(np.float64)
    exact = gamma * inverse_std * (dy64 - dy64.mean((0, 1, 2)) - x_hat * (dy64 * x_hat).mean((0, 1, 2)))
    mean, variance = _core.ops.batch_norm_statistics(x)
    for tier in TIERS:
        dx, _, _ = _core.ops.batch_norm_backward(x, mean, variance, gamma, dy, 1e-3, tier)
        assert relative_error(dx, exact) <= 1e-4, tier


def _example3(lib, dtype=None):
    """The seed's Example 3 (64x64x3, four BN layers), Dropout left out so that masks match."""
    L = lib["layers"]
    kwargs = {"dtype": dtype} if dtype else {}
    return lib["models"].Sequential([
        L.Conv2D(32, (3, 3), padding="same", activation="relu", input_shape=(64, 64, 3), **kwargs),
        L.BatchNormalization(**kwargs),
        L.Conv2D(32, (3, 3), padding="same", activation="relu", **kwargs),
        L.BatchNormalization(**kwargs),
        L.MaxPooling2D((2, 2), **kwargs),
        L.Conv2D(64, (3, 3), padding="same", activation="relu", **kwargs),
        L.BatchNormalization(**kwargs),
        L.Conv2D(64, (3, 3), padding="same", activation="relu", **kwargs),
        L.BatchNormalization(**kwargs),
        L.MaxPooling2D((2, 2), **kwargs),
        L.Flatten(**kwargs),
        L.Dense(10, activation="softmax", **kwargs),
    ])


def test_seed_example3_gradients_and_moving_statistics_match_keras(tf, keras_lib, rng):
    """Example 3 in fastcnn, in Keras (float32) and in Keras computing in float64 (the exact answer).

    One SGD step with learning rate 1 exposes the gradients: fastcnn's are within 1e-4 of the
    exact ones (measured: ~3e-6) and closer to them than Keras float32's (measured: up to 2e-2,
    BatchNormalization's backward pass cancels heavily in float32 autodiff). Predictions with equal
    weights agree with Keras float32 to 1e-5, and the moving statistics after three small steps
    to 1e-4."""
    _seeded(tf, 5)
    keras_model = _example3(keras_lib)
    exact_model = _example3(keras_lib, "float64")
    model = _example3(FASTCNN)
    initial = keras_model.get_weights()
    exact_model.set_weights([w.astype(np.float64) for w in initial])
    model.set_weights(initial)
    x = rng.random((24, 64, 64, 3)).astype(np.float32)
    y = rng.integers(0, 10, 24)
    assert relative_error(model.predict(x, verbose=0), keras_model.predict(x, verbose=0)) <= 1e-5

    def keras_gradients(candidate, inputs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y[:8], candidate(inputs, training=True)))
        return [g.numpy() for g in tape.gradient(loss, candidate.trainable_variables)]

    exact = keras_gradients(exact_model, tf.constant(x[:8].astype(np.float64)))
    keras32 = keras_gradients(keras_model, tf.constant(x[:8]))
    model.compile(optimizer=optimizers.SGD(1.0), loss="sparse_categorical_crossentropy")
    before = [w.numpy() for w in model.trainable_weights]
    model.fit(x[:8], y[:8], batch_size=8, epochs=1, shuffle=False, verbose=0)
    ours = [b - w.numpy() for b, w in zip(before, model.trainable_weights)]
    for variable, gradient, reference, theirs in zip(model.trainable_weights, ours, exact, keras32):
        our_error = relative_error(gradient, reference, floor=1e-6)
        assert our_error <= 1e-4, variable.path
        assert our_error <= relative_error(theirs, reference, floor=1e-6) + 1e-6, variable.path

    # Moving statistics after three small steps, from the same starting weights.
    keras_model.set_weights(initial)
    model.set_weights(initial)
    keras_model.compile(optimizer=tf.keras.optimizers.SGD(1e-4), loss="sparse_categorical_crossentropy")
    model.compile(optimizer=optimizers.SGD(1e-4), loss="sparse_categorical_crossentropy")
    keras_model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for variable, ours_value, theirs_value in zip(model.weights, model.get_weights(), keras_model.get_weights()):
        if "moving" in variable.path:
            assert relative_error(ours_value, theirs_value) <= 1e-4, variable.path
