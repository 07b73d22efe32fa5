"""The LayerNormalization, GroupNormalization and Normalization kernels of every optimised tier
against the reference tier (the executable spec), through models run on each kernel set by name
(``fastcnn._core.select_kernels``), whatever FASTCNN_KERNELS says. For each case and tier, from the
same weights:

* the layer alone: its prediction is the forward kernel's output;
* Input -> Conv2D 1x1 -> layer -> Flatten -> Dense softmax: the prediction and the weight changes of
  one SGD step of learning rate 1 (minus the gradients: the layer's gamma and beta directly, its
  input gradient through the convolution's kernel gradient, a sum of it times a different random
  input at every position).

Channel counts straddle the vector widths (8 and 16 lanes); shapes large enough to span several
of the optimised kernels' fixed chunks are included. The optimised results are bitwise the same on
1 and 2 threads (per-chunk sums added in a fixed order), and a batch of zero samples works.
"""

import contextlib

import numpy as np
import pytest

from fastcnn import _core, config, layers, models, optimizers

TIERS = [name for name in _core.available_kernels() if name != "reference"]

pytestmark = pytest.mark.skipif(not TIERS, reason="no optimised kernel tier on this CPU")


@contextlib.contextmanager
def kernel_set(name):
    previous = _core.kernel_set()
    _core.select_kernels(name)
    try:
        yield
    finally:
        _core.select_kernels(previous)


def assert_close(actual, reference, what, rtol=1e-5):
    """Within float32 rounding of the array's magnitude (the tiers sum in different orders)."""
    actual, reference = np.asarray(actual), np.asarray(reference)
    assert actual.shape == reference.shape, what
    scale = max(1.0, float(np.max(np.abs(reference)))) if reference.size else 1.0
    np.testing.assert_allclose(actual, reference, rtol=rtol, atol=rtol * scale, err_msg=what)


def _randomized(model, rng):
    weights = []
    for variable in model.weights:
        shape = variable.shape
        if variable.name in ("gamma", "variance"):
            weights.append(rng.uniform(0.5, 1.5, shape).astype(np.float32))
        elif variable.name in ("beta", "mean"):
            weights.append((0.5 * rng.standard_normal(shape)).astype(np.float32))
        elif variable.name == "count":
            weights.append(np.zeros(shape, np.float32))
        else:
            weights.append(rng.uniform(-1.0, 1.0, shape).astype(np.float32))
    model.set_weights(weights)
    return weights


def check_on_every_tier(rng, make_layer, shape, batch=3):
    x = (2 * rng.standard_normal((batch,) + shape) + 0.5).astype(np.float32)
    alone = models.Sequential([layers.Input(shape), make_layer()])
    _randomized(alone, rng)
    outputs = {}
    for tier in ["reference"] + TIERS:
        with kernel_set(tier):
            outputs[tier] = alone.predict(x, verbose=0)
    for tier in TIERS:
        assert_close(outputs[tier], outputs["reference"], f"{tier} forward")

    # No convolution bias: a normalization over the axes it is constant on cancels it (its true
    # gradient is 0, rounding noise in every tier).
    model = models.Sequential([layers.Input(shape), layers.Conv2D(shape[-1], 1, use_bias=False), make_layer(),
                               layers.Flatten(),
                               layers.Dense(4, activation="softmax")])
    start = _randomized(model, rng)
    model.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="sparse_categorical_crossentropy")
    y = rng.integers(0, 4, batch)
    results = {}
    for tier in ["reference"] + TIERS:
        model.set_weights(start)
        with kernel_set(tier):
            model.train_on_batch(x, y)
        results[tier] = [after - before for after, before in zip(model.get_weights(), start)]
    assert any(np.any(change != 0) for change in results["reference"]), "the step changed no weight"
    for tier in TIERS:
        for index, (change, reference) in enumerate(zip(results[tier], results["reference"])):
            assert_close(change, reference, f"{tier} weight {index} change")


CHANNELS = [1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48]


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("axis", [-1, [1, 2, 3], [1, 2], [2], [1, 3]], ids=str)
def test_layer_normalization_tiers_match_reference(rng, channels, axis):
    check_on_every_tier(rng, lambda: layers.LayerNormalization(axis=axis), (5, 3, channels))


@pytest.mark.parametrize("arguments", [{"center": False}, {"scale": False}, {"center": False, "scale": False}])
def test_layer_normalization_options_tiers_match_reference(rng, arguments):
    check_on_every_tier(rng, lambda: layers.LayerNormalization(**arguments), (4, 5, 17))


def test_layer_normalization_rms_scaling_tiers_match_reference(rng):
    with pytest.warns(UserWarning, match="rms_scaling"):
        check_on_every_tier(rng, lambda: layers.LayerNormalization(rms_scaling=True), (4, 5, 17))


@pytest.mark.parametrize("channels, groups", [(c, g) for c in CHANNELS for g in (1, 2, 3, c) if c % g == 0])
def test_group_normalization_tiers_match_reference(rng, channels, groups):
    check_on_every_tier(rng, lambda: layers.GroupNormalization(groups=groups), (5, 3, channels))


@pytest.mark.parametrize("axis", [-1, None, (1, 2, 3), (1, 2), (2,), (1, 3)], ids=str)
@pytest.mark.parametrize("invert", [False, True])
def test_normalization_tiers_match_reference(rng, axis, invert):
    check_on_every_tier(rng, lambda: layers.Normalization(axis=axis, invert=invert), (5, 3, 17))


@pytest.mark.parametrize("make, shape", [
    (lambda: layers.LayerNormalization(), (33, 31, 17)),          # 5115 rows: several chunks
    (lambda: layers.LayerNormalization(axis=[1, 2]), (40, 41, 5)),  # gamma over the image, one sample a chunk
    (lambda: layers.GroupNormalization(groups=4), (40, 40, 8)),
    (lambda: layers.Normalization(axis=(2, 3), invert=True), (33, 31, 17)),
], ids=["layer-channels", "layer-image", "group", "normalization"])
def test_large_shapes_tiers_match_reference(rng, make, shape):
    check_on_every_tier(rng, make, shape, batch=2)


@pytest.mark.parametrize("make", [lambda: layers.LayerNormalization(axis=[1, 2]),
                                  lambda: layers.GroupNormalization(groups=2), lambda: layers.LayerNormalization()])
def test_training_is_bitwise_the_same_on_one_and_two_threads(rng, make):
    shape = (20, 21, 8)
    x = rng.standard_normal((6,) + shape).astype(np.float32)
    y = rng.integers(0, 3, 6)
    model = models.Sequential([layers.Input(shape), layers.Conv2D(8, 1), make(), layers.Flatten(), layers.Dense(3)])
    model.compile(optimizer=optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    start = _randomized(model, rng)
    threads = config.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            config.set_num_threads(count)
            model.set_weights(start)
            model.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
            results.append(model.get_weights())
    finally:
        config.set_num_threads(threads)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("make", [lambda: layers.LayerNormalization(), lambda: layers.GroupNormalization(groups=3),
                                  lambda: layers.Normalization()])
def test_empty_batch(make):
    model = models.Sequential([layers.Input((4, 4, 6)), make()])
    for tier in ["reference"] + TIERS:
        with kernel_set(tier):
            assert model.predict(np.zeros((0, 4, 4, 6), np.float32), verbose=0).shape == (0, 4, 4, 6)
