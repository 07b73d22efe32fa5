"""SpatialDropout2D, GaussianNoise, GaussianDropout and Dropout(noise_shape=): their draws cannot equal
TensorFlow's, so they are tested for structure and statistics instead.

* Structure: a dropout mask is constant along the axes where the noise shape is 1 (whole channels per
  sample for SpatialDropout2D); kept values are scaled by exactly 1/(1 - rate).
* Statistics (bounds at about 5 standard errors, so a correct layer fails with probability < 1e-6):
  the dropped fraction, the mean and variance of the additive and multiplicative Gaussian noise.
* Identity in inference (predict, a call without training) and with rate / stddev 0; active with
  ``layer(x, training=True)`` and in fit.
* Determinism: a fixed seed gives the same sequence of draws in two layers, successive calls differ.
* Gradients: the input gradient is the mask (the noise factor) times the upstream gradient, read
  from a training step through an identity PReLU in front.
* Bad arguments raise ValueError naming the value.
"""

import math

import numpy as np
import pytest

import fastcnn
from fastcnn import layers


def _x(rng, shape=(16, 6, 5, 8)):
    return (rng.standard_normal(shape) + 3.0).astype(np.float32)  # away from zero: y / x is the factor


def test_spatial_dropout2d_drops_whole_channels_and_scales_the_rest(rng):
    rate = 0.4
    x = _x(rng, (64, 6, 5, 8))
    y = layers.SpatialDropout2D(rate, seed=3)(x, training=True)
    kept_values = y != 0
    # One draw per (sample, channel), shared over height and width.
    np.testing.assert_array_equal(kept_values, np.broadcast_to(kept_values[:, :1, :1, :], y.shape))
    np.testing.assert_allclose(y[kept_values], x[kept_values] / (1.0 - rate), rtol=1e-6)
    kept = kept_values[:, 0, 0, :]
    n = kept.size
    assert abs((~kept).mean() - rate) <= 5 * math.sqrt(rate * (1 - rate) / n)


@pytest.mark.parametrize("noise_shape, shared", [
    ((None, 1, 5, 1), (1, 3)),
    ((None, 6, 1, 8), (2,)),
    ((1, 6, 5, 8), (0,)),
    ((None, 1, 1, 8), (1, 2)),
    ((None, 6, 5, 8), ()),
])
def test_dropout_noise_shape_broadcasts_the_mask(rng, noise_shape, shared):
    rate = 0.5
    x = _x(rng)
    y = layers.Dropout(rate, noise_shape=noise_shape, seed=5)(x, training=True)
    factor = y / x
    assert set(np.unique(factor)) <= {0.0, np.float32(2.0)}
    index = tuple(slice(0, 1) if axis in shared else slice(None) for axis in range(4))
    np.testing.assert_array_equal(factor, np.broadcast_to(factor[index], factor.shape))
    distinct = factor[index].size
    assert abs((factor[index] == 0).mean() - rate) <= 5 * math.sqrt(rate * (1 - rate) / distinct) + 1e-12


def test_dropout_noise_shape_in_a_dense_model(rng):
    x = _x(rng, (32, 12))
    y = layers.Dropout(0.3, noise_shape=(None, 1))(x, training=True)
    kept = y != 0
    np.testing.assert_array_equal(kept, np.broadcast_to(kept[:, :1], kept.shape))
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    assert 0 < kept[:, 0].sum() < len(x)


@pytest.mark.parametrize("stddev", [0.1, 0.5, 1.0])
def test_gaussian_noise_has_the_stated_mean_and_variance(rng, stddev):
    x = _x(rng, (64, 8, 8, 4))
    noise = (layers.GaussianNoise(stddev, seed=1)(x, training=True) - x).astype(np.float64).ravel()
    n = noise.size
    assert abs(noise.mean()) <= 5 * stddev / math.sqrt(n)
    # The variance of a sample variance of normals: 2 sigma^4 / (n - 1).
    assert abs(noise.var() - stddev**2) <= 5 * stddev**2 * math.sqrt(2 / (n - 1))
    # Roughly normal: about 68% within one standard deviation, nothing past the 5.77 the draws allow.
    assert abs(np.mean(np.abs(noise) < stddev) - 0.6827) <= 0.01
    assert np.max(np.abs(noise)) <= 5.8 * stddev


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_gaussian_dropout_multiplies_by_noise_of_mean_one(rng, rate):
    x = _x(rng, (64, 8, 8, 4))
    factor = (layers.GaussianDropout(rate, seed=2)(x, training=True) / x).astype(np.float64).ravel()
    variance = rate / (1 - rate)
    n = factor.size
    assert abs(factor.mean() - 1.0) <= 5 * math.sqrt(variance / n)
    assert abs(factor.var() - variance) <= 5 * variance * math.sqrt(2 / (n - 1)) + 1e-4 * variance


LAYERS = [
    lambda seed=None: layers.SpatialDropout2D(0.5, seed=seed),
    lambda seed=None: layers.GaussianNoise(0.3, seed=seed),
    lambda seed=None: layers.GaussianDropout(0.4, seed=seed),
    lambda seed=None: layers.Dropout(0.5, noise_shape=(None, 1, 1, 8), seed=seed),
]
IDS = ["SpatialDropout2D", "GaussianNoise", "GaussianDropout", "Dropout-noise_shape"]


@pytest.mark.parametrize("make", LAYERS, ids=IDS)
def test_identity_in_inference_and_active_in_training(rng, make):
    x = _x(rng)
    layer = make()
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer(x, training=False), x)
    assert not np.array_equal(layer(x, training=True), x)
    model = fastcnn.Sequential([fastcnn.Input(x.shape[1:]), make(), layers.Flatten(), layers.Dense(2)])
    model.set_weights([np.ones_like(w) for w in model.get_weights()])
    reference = fastcnn.Sequential([fastcnn.Input(x.shape[1:]), layers.Flatten(), layers.Dense(2)])
    reference.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict(x, verbose=0), reference.predict(x, verbose=0))
    assert not np.allclose(model(x, training=True), reference.predict(x, verbose=0))


@pytest.mark.parametrize("make", [lambda: layers.SpatialDropout2D(0.0), lambda: layers.GaussianNoise(0.0),
                                  lambda: layers.GaussianDropout(0.0), lambda: layers.Dropout(0.0, (None, 1, 1, 8))])
def test_zero_rate_or_stddev_is_identity_in_training(rng, make):
    x = _x(rng)
    np.testing.assert_array_equal(make()(x, training=True), x)


@pytest.mark.parametrize("make", LAYERS, ids=IDS)
def test_fixed_seed_is_deterministic_and_calls_differ(rng, make):
    x = _x(rng)
    first, second = make(seed=7), make(seed=7)
    a1, a2 = first(x, training=True), first(x, training=True)
    b1, b2 = second(x, training=True), second(x, training=True)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)
    assert not np.array_equal(make(seed=8)(x, training=True), a1)
    # In a model: two models with the same seeded layer draw the same noise in fit.
    trained = []
    for _ in range(2):
        model = fastcnn.Sequential([fastcnn.Input(x.shape[1:]), make(seed=11), layers.Flatten(),
                                    layers.Dense(3, activation="softmax")])
        model.set_weights([np.full_like(w, 0.01) for w in model.get_weights()])
        model.compile(fastcnn.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        model.fit(x, np.arange(len(x)) % 3, batch_size=4, epochs=1, shuffle=False, verbose=0)
        trained.append(model.get_weights())
    for a, b in zip(*trained):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", LAYERS, ids=IDS)
def test_gradient_is_the_noise_factor_times_the_upstream_gradient(rng, make):
    """Identity PReLU (alpha = 1) on negative inputs in front: its alpha gradient is x times the
    gradient reaching the noise layer's input, per element (batch of one). The loss is the mean
    squared error, so the upstream gradient is 2 (y - t) / n; the noise of the fit's step is the
    first training call's of a second model with the same seed."""
    shape = (6, 5, 8)
    x = -_x(rng, (1,) + shape)
    target = rng.standard_normal((1,) + shape).astype(np.float32).reshape(1, -1)

    def build():
        return fastcnn.Sequential([fastcnn.Input(shape), layers.PReLU(alpha_initializer="ones"), make(seed=21),
                                   layers.Flatten()])

    model, twin = build(), build()
    model.compile(fastcnn.optimizers.SGD(1.0), "mse")
    model.fit(x, target, batch_size=1, epochs=1, shuffle=False, verbose=0)
    alpha_gradient = 1.0 - model.get_weights()[0]
    y = np.asarray(twin(x, training=True)).reshape((1,) + shape)
    upstream = 2.0 * (y.reshape(1, -1) - target).reshape((1,) + shape) / y.size
    if isinstance(model.layers[1], layers.GaussianNoise):
        factor = np.ones_like(x)
    else:
        factor = y / x
        assert not np.allclose(factor, 1.0)
    np.testing.assert_allclose(alpha_gradient, (x * factor * upstream)[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("make, match", [
    (lambda: layers.SpatialDropout2D(1.0), "rate=1.0"),
    (lambda: layers.SpatialDropout2D(-0.1), "rate=-0.1"),
    (lambda: layers.Dropout(1.5, noise_shape=(None, 1)), "rate=1.5"),
    (lambda: layers.GaussianDropout(1.0), "rate=1.0"),
    (lambda: layers.GaussianDropout(-0.2), "rate=-0.2"),
    (lambda: layers.GaussianNoise(-0.5), "stddev=-0.5"),
    (lambda: layers.GaussianNoise(2.0), "stddev=2.0"),
    (lambda: layers.GaussianNoise(0.1, seed=1.5), "seed=1.5"),
    (lambda: layers.Dropout(0.5, noise_shape="abc"), "noise_shape=abc"),
    (lambda: layers.Dropout(0.5, noise_shape=(None, 0)), "noise_shape"),
    (lambda: layers.SpatialDropout2D(0.5, data_format="channels_first"), "channels_first"),
    (lambda: fastcnn.Sequential([fastcnn.Input((4, 4, 3)), layers.Dropout(0.5, noise_shape=(None, 1, 3))]),
     "noise_shape"),
    (lambda: fastcnn.Sequential([fastcnn.Input((4, 4, 3)), layers.Dropout(0.5, noise_shape=(None, 2, 1, 3))]),
     "broadcast"),
    (lambda: fastcnn.Sequential([fastcnn.Input((4, 3)), layers.SpatialDropout2D(0.5)]), "ndim=4"),
])
def test_bad_arguments_raise_naming_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make", LAYERS, ids=IDS)
def test_data_parallel_halves_draw_the_noise_of_the_whole_batch(rng, make):
    """What distributed.py's ranks rely on: the gradients of samples [0, 2) and of samples [2, 4)
    (first_sample = 2) from one step seed add up to the whole batch's, and a rank that claimed
    first_sample = 0 for samples [2, 4) would draw other noise."""
    # Small inputs keep the softmax far from saturation: a saturated, correctly classified sample has
    # gradients near 0 whatever its noise, and the misplaced draw could not be told apart.
    x = (0.1 * rng.standard_normal((4, 6, 5, 8))).astype(np.float32)
    labels = np.array([0, 1, 2, 0], np.int32)
    model = fastcnn.Sequential([fastcnn.Input(x.shape[1:]), layers.Conv2D(8, 1), make(), layers.Flatten(),
                                layers.Dense(3, activation="softmax")])
    model.compile(fastcnn.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.train_on_batch(x, labels)  # compiles the network
    network = model._network

    def gradients(indices, first_sample):
        loss_sum, _ = network.compute_gradients(x, labels, None, np.array(indices), 4, first_sample, 99)
        return loss_sum, np.array(network.flat_gradients())

    whole_loss, whole = gradients([0, 1, 2, 3], 0)
    first_loss, first = gradients([0, 1], 0)
    second_loss, second = gradients([2, 3], 2)
    assert whole_loss == pytest.approx(first_loss + second_loss, rel=1e-6)
    np.testing.assert_allclose(first + second, whole, rtol=1e-5, atol=1e-6 * np.max(np.abs(whole)))
    _, misplaced = gradients([2, 3], 0)
    assert not np.allclose(first + misplaced, whole, rtol=1e-3)


def _graph(with_noise):
    """A functional graph whose noise layers (when `with_noise`) sit where inference passes must alias
    their output to their input: on the model input, on a tensor another branch also reads, in a
    chain, before a merge, and as a model output."""
    def noise(layer, tensor):
        return layer(tensor) if with_noise else tensor

    inputs = fastcnn.Input((6, 5, 3))
    x = noise(layers.Dropout(0.5), inputs)
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    branch = noise(layers.GaussianNoise(0.3), x)
    branch = noise(layers.RandomFlip("horizontal"), branch)
    branch = layers.Conv2D(4, 1)(branch)
    other = layers.Conv2D(4, 1)(x)  # reads the tensor the noise branch also reads
    merged = layers.add([noise(layers.SpatialDropout2D(0.4), branch), other])
    flat = layers.Flatten()(merged)
    logits = layers.Dense(5)(noise(layers.GaussianDropout(0.2), flat))
    second = layers.Dropout(0.3)(logits) if with_noise else layers.Activation("linear")(logits)
    return fastcnn.Model(inputs, [logits, second])


def test_inference_aliases_noise_layers_in_any_graph_position(rng):
    model, reference = _graph(True), _graph(False)
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in reference.get_weights()]
    model.set_weights(weights)
    reference.set_weights(weights)
    for batch in (1, 7, 300):  # 300: predict runs it in slices that reuse the activation buffers
        x = rng.standard_normal((batch, 6, 5, 3)).astype(np.float32)
        outputs, expected = model.predict(x, verbose=0), reference.predict(x, verbose=0)
        np.testing.assert_array_equal(outputs[0], expected[0])
        np.testing.assert_array_equal(outputs[1], expected[1])
        np.testing.assert_array_equal(model(x)[1], expected[1])
    only_noise = fastcnn.Sequential([fastcnn.Input((6, 5, 3)), layers.Dropout(0.5)])
    x = rng.standard_normal((4, 6, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(only_noise.predict(x, verbose=0), x)
    assert not np.array_equal(model(x, training=True)[0], reference(x)[0])
