"""The kernels behind SeparableConv2D, Cropping2D, UpSampling2D and per-channel Rescaling: every
optimised tier against the reference tier by name (fastcnn._core.select_kernels), through models as
in tests/test_kernels_layers.py: the layer alone (forward), and after a 1x1 Conv2D, before a Dense
softmax (prediction and the weight changes of one SGD step, which carry the layer's input gradient
and its own weight gradients)."""

import numpy as np
import pytest

from fastcnn import layers, models
from test_kernels_layers import TIERS, assert_close, check_layer_on_every_tier, kernel_set

pytestmark = pytest.mark.skipif(not TIERS, reason="no optimised kernel tier on this CPU")

# Channel counts around the tiers' vector (8, 16 lanes) and block widths, and odd image sizes.
SHAPES = [(5, 7, 1), (3, 4, 17), (1, 1, 3), (6, 1, 5), (4, 5, 33)]


def _shape_id(shape):
    return "{}x{}x{}".format(*shape)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [(2, 2), (3, 1), (1, 4), (3, 5)], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_upsampling2d_tiers_match_reference(rng, shape, size, interpolation):
    x = (2 * rng.standard_normal((3,) + shape)).astype(np.float32)
    reference = check_layer_on_every_tier(rng, lambda: layers.UpSampling2D(size, interpolation=interpolation), shape,
                                          x=x, exact_forward=interpolation == "nearest")
    if interpolation == "nearest":
        np.testing.assert_array_equal(reference, np.repeat(np.repeat(x, size[0], axis=1), size[1], axis=2))


@pytest.mark.parametrize("cropping", [0, 1, (2, 0), ((1, 0), (0, 2)), ((0, 2), (3, 1))], ids=str)
@pytest.mark.parametrize("shape", [(5, 7, 1), (5, 6, 17), (6, 5, 33)], ids=_shape_id)
def test_cropping2d_tiers_match_reference(rng, shape, cropping):
    x = (2 * rng.standard_normal((3,) + shape)).astype(np.float32)
    reference = check_layer_on_every_tier(rng, lambda: layers.Cropping2D(cropping), shape, x=x, exact_forward=True)
    (top, bottom), (left, right) = layers.Cropping2D(cropping).cropping
    np.testing.assert_array_equal(reference, x[:, top:shape[0] - bottom, left:shape[1] - right])


@pytest.mark.parametrize("per_channel", ["scale", "offset", "both"])
@pytest.mark.parametrize("shape", [(5, 7, 1), (3, 4, 17), (2, 3, 33)], ids=_shape_id)
def test_channel_rescaling_tiers_match_reference(rng, shape, per_channel):
    channels = shape[-1]
    scale = rng.uniform(-2, 2, channels).astype(np.float32) if per_channel != "offset" else 0.5
    offset = rng.uniform(-1, 1, channels).astype(np.float32) if per_channel != "scale" else -0.25
    if channels == 1 and per_channel != "both":
        pytest.skip("one channel: the per-channel form is the scalar one")
    x = (2 * rng.standard_normal((3,) + shape)).astype(np.float32)
    reference = check_layer_on_every_tier(rng, lambda: layers.Rescaling(scale, offset), shape, x=x)
    np.testing.assert_allclose(reference, x * np.float32(scale) + np.float32(offset), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("filters, kernel, strides, dilation, padding, depth_multiplier", [
    (4, (3, 3), (1, 1), (1, 1), "valid", 1),
    (17, (3, 3), (2, 2), (1, 1), "same", 2),
    (5, (5, 3), (1, 2), (2, 1), "same", 3),
    (33, (2, 2), (2, 2), (2, 2), "valid", 1),
    (3, (1, 1), (1, 1), (1, 1), "valid", 2),
], ids=str)
@pytest.mark.parametrize("shape", [(7, 9, 3), (6, 5, 16)], ids=_shape_id)
def test_separable_conv2d_tiers_match_reference(rng, shape, filters, kernel, strides, dilation, padding,
                                                depth_multiplier):
    def make():
        return layers.SeparableConv2D(filters, kernel, strides=strides, dilation_rate=dilation, padding=padding,
                                      depth_multiplier=depth_multiplier, activation="relu",
                                      bias_initializer="random_normal")

    check_layer_on_every_tier(rng, make, shape, forward_rtol=1e-5)
    # The layer's own weights: one SGD step's changes on every tier from the same weights.
    model = models.Sequential([layers.Input(shape), make(), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    start = [w.copy() for w in model.get_weights()]
    x = rng.standard_normal((4,) + shape).astype(np.float32)
    y = rng.integers(0, 3, 4)
    changes = {}
    for tier in ["reference"] + TIERS:
        model.set_weights(start)
        with kernel_set(tier):
            model.train_on_batch(x, y)
        changes[tier] = [after - before for after, before in zip(model.get_weights(), start)]
    assert np.any(changes["reference"][0] != 0) and np.any(changes["reference"][1] != 0)
    for tier in TIERS:
        for name, change, reference in zip(["depthwise kernel", "pointwise kernel", "bias"], changes[tier],
                                           changes["reference"]):
            assert_close(change, reference, f"{tier} {name} change", rtol=1e-4)


@pytest.mark.parametrize("tier", ["reference"] + TIERS)
def test_training_is_bitwise_the_same_on_1_and_2_threads(rng, tier):
    """The backward kernels gather per input row (no shared accumulators): any thread count gives the
    same bits."""
    from fastcnn import config

    def build():
        return models.Sequential([
            layers.Input((9, 7, 5)), layers.SeparableConv2D(6, 3, padding="same", depth_multiplier=2, activation="relu"),
            layers.UpSampling2D((2, 3), interpolation="bilinear"), layers.Cropping2D(((1, 2), (0, 3))),
            layers.UpSampling2D(2), layers.Rescaling([0.5, 1.0, 2.0, -1.0, 0.25, 3.0], offset=0.1),
            layers.GlobalAveragePooling2D(), layers.Dense(3, activation="softmax")])

    x = rng.standard_normal((8, 9, 7, 5)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    start = build().get_weights()
    results = []
    threads = config.get_num_threads()
    try:
        for count in (1, 2):
            config.set_num_threads(count)
            model = build()
            model.set_weights(start)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            with kernel_set(tier):
                model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
            results.append(model.get_weights())
    finally:
        config.set_num_threads(threads)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
