"""Inference keeps each layer's packed (or Winograd-transformed) kernel between calls
(PackedKernelCache in csrc/ops/conv2d.h): a repeated predict must give what a freshly built model
with the same weights gives, bit for bit, after every way the weights or the kernels can change."""

import numpy as np
import pytest

import fastcnn as keras
from fastcnn import _core, config, layers


def _model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((10, 10, 32))
    x = layers.Conv2D(40, 3, padding="same", activation="relu")(inputs)     # Winograd-sized
    x = layers.Conv2D(24, 1)(x)                                             # packed columns
    x = layers.BatchNormalization()(x)                                      # folded into the 1x1
    x = layers.SeparableConv2D(16, 3, padding="same")(x)
    x = layers.Conv2D(16, 3, strides=2, groups=4)(x)                        # grouped: not cached
    x = layers.Flatten()(x)
    outputs = layers.Dense(7, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def _fresh_prediction(model, x):
    """What a model built now, holding `model`'s weights, predicts (nothing cached yet)."""
    fresh = _model(0)
    fresh.set_weights(model.get_weights())
    return fresh.predict(x, verbose=0)


@pytest.fixture
def x(rng):
    return rng.standard_normal((5, 10, 10, 32)).astype(np.float32)


def test_repeated_predictions_equal_a_fresh_models(x):
    model = _model(1)
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)
    np.testing.assert_array_equal(model.predict(x[:2], verbose=0), first[:2])
    np.testing.assert_array_equal(first, _fresh_prediction(model, x))


def test_assigned_weights_reach_the_next_prediction(x, rng):
    model = _model(1)
    before = model.predict(x, verbose=0)
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.Dense, layers.SeparableConv2D)):
            for variable in layer.weights:
                variable.assign(rng.standard_normal(variable.shape) * 0.1)
            after = model.predict(x, verbose=0)
            assert not np.array_equal(after, before), layer.name
            np.testing.assert_array_equal(after, _fresh_prediction(model, x))
            before = after


def test_training_steps_and_loaded_weights_reach_the_next_prediction(x, tmp_path):
    model = _model(1)
    y = np.arange(5) % 7
    model.predict(x, verbose=0)
    path = tmp_path / "start.weights.h5"
    model.save_weights(path)
    model.fit(x, y, epochs=2, batch_size=2, verbose=0, validation_data=(x, y))
    np.testing.assert_array_equal(model.predict(x, verbose=0), _fresh_prediction(model, x))
    model.load_weights(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), _fresh_prediction(model, x))


@pytest.mark.skipif(len(_core.available_kernels()) < 2, reason="one kernel set only")
def test_switching_kernel_sets_between_calls(x):
    model = _model(1)
    original = config.kernel_set()
    try:
        for name in _core.available_kernels():
            config.set_kernel_set(name)
            cached_before = model.predict(x, verbose=0)
            np.testing.assert_array_equal(model.predict(x, verbose=0), cached_before)
            np.testing.assert_array_equal(cached_before, _fresh_prediction(model, x))
    finally:
        config.set_kernel_set(original)


def test_switching_batch_norm_folding_between_calls(x):
    model = _model(1)
    folded = model.predict(x, verbose=0)
    model._network.set_batch_norm_folding(False)
    unfolded = model.predict(x, verbose=0)
    model._network.set_batch_norm_folding(True)
    np.testing.assert_array_equal(model.predict(x, verbose=0), folded)
    np.testing.assert_allclose(unfolded, folded, rtol=1e-5, atol=1e-6)
