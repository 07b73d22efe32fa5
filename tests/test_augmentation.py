"""Augmentation layers: random draws, training-only behaviour, reproducibility, thread
independence, backward passes and bad arguments (parity with Keras: test_parity_augmentation.py).

Random ranges are measured from the outputs themselves: a bright dot's centroid gives the
rotation angle and the translation, a ramp's slope the zoom, a standard deviation the contrast, a
mean shift the brightness; each must lie in the layer's range and spread over it.
"""

import numpy as np
import pytest

import fastcnn
from fastcnn import _core, layers, models, optimizers, utils


def _dot_images(count, size=33, row=8, column=24):
    x = np.zeros((count, size, size, 1), np.float32)
    x[:, row, column, 0] = 1.0
    return x


def _centroids(images):
    rows, columns = np.mgrid[0:images.shape[1], 0:images.shape[2]]
    mass = images[..., 0].sum(axis=(1, 2))
    return ((images[..., 0] * rows).sum(axis=(1, 2)) / mass, (images[..., 0] * columns).sum(axis=(1, 2)) / mass)


def _assert_spread(values, lower, upper, tolerance):
    """Values within [lower, upper] (+- tolerance), reaching near both ends, mean near the middle."""
    assert values.min() >= lower - tolerance and values.max() <= upper + tolerance, (values.min(), values.max())
    width = upper - lower
    assert values.min() <= lower + 0.1 * width and values.max() >= upper - 0.1 * width, (values.min(), values.max())
    assert abs(values.mean() - (lower + upper) / 2) <= 0.08 * width


# ---- flips ----


@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_random_flip_flips_half_the_images_exactly(rng, mode):
    x = rng.standard_normal((2000, 5, 4, 2)).astype(np.float32)
    flipped = {"horizontal": x[:, :, ::-1], "vertical": x[:, ::-1], "horizontal_and_vertical": x[:, ::-1, ::-1]}[mode]
    y = layers.RandomFlip(mode)(x, training=True)
    same = np.all(y == x, axis=(1, 2, 3))
    was_flipped = np.all(y == flipped, axis=(1, 2, 3))
    assert np.all(same | was_flipped), "every output is the image or its flip (Keras 3 flips both axes together)"
    assert 0.45 <= was_flipped.mean() <= 0.55
    np.testing.assert_array_equal(layers.RandomFlip(mode)(x, training=False), x)  # inference: identity
    # Called without `training`, a random layer transforms, as Keras 3's call(inputs, training=True).
    assert 0.45 <= np.all(layers.RandomFlip(mode)(x) == flipped, axis=(1, 2, 3)).mean() <= 0.55


def test_flip_kernel_is_exact_and_its_own_transpose(rng):
    x = rng.standard_normal((4, 3, 5, 2)).astype(np.float32)
    flags = np.array([0, 1, 2, 3], np.uint8)
    y = _core.ops.flip(x, flags)
    np.testing.assert_array_equal(y[0], x[0])
    np.testing.assert_array_equal(y[1], x[1, :, ::-1])
    np.testing.assert_array_equal(y[2], x[2, ::-1])
    np.testing.assert_array_equal(y[3], x[3, ::-1, ::-1])
    np.testing.assert_array_equal(_core.ops.flip(y, flags), x)


# ---- ranges of the random transforms ----


def test_random_rotation_angles_cover_the_range():
    x = _dot_images(600)
    y = layers.RandomRotation((-0.1, 0.05), fill_mode="constant")(x, training=True)
    rows, columns = _centroids(y)
    centre = 16.0
    # Keras's matrix maps output to input by a rotation of +angle, so the image turns by -angle
    # in (row, column) coordinates: output = R(-angle) (input - centre).
    before = np.arctan2(8 - centre, 24 - centre)
    angles = np.degrees(before - np.arctan2(rows - centre, columns - centre))
    _assert_spread(angles, -36.0, 18.0, tolerance=1.0)


def test_random_translation_shifts_cover_the_range():
    x = _dot_images(600, row=16, column=16)
    y = layers.RandomTranslation((-0.2, 0.1), 0.25, fill_mode="constant")(x, training=True)
    rows, columns = _centroids(y)
    _assert_spread((rows - 16) / 33, -0.2, 0.1, tolerance=0.01)
    _assert_spread((columns - 16) / 33, -0.25, 0.25, tolerance=0.01)


def _ramps(count, size=21):
    columns = np.broadcast_to(np.arange(size, dtype=np.float32), (size, size))
    return np.stack([columns, columns.T], axis=-1)[None].repeat(count, axis=0)


@pytest.mark.parametrize("width_factor", [None, (-0.5, 0.2)])
def test_random_zoom_scales_cover_the_range(width_factor):
    x = _ramps(500)
    y = layers.RandomZoom((-0.3, 0.4), width_factor, fill_mode="nearest")(x, training=True)
    # Near the centre a ramp x -> scale * (x - c) + c: its slope is the sampling scale (1 + factor).
    width_scale = (y[:, 10, 11, 0] - y[:, 10, 9, 0]) / 2
    height_scale = (y[:, 11, 10, 1] - y[:, 9, 10, 1]) / 2
    _assert_spread(height_scale, 0.7, 1.4, tolerance=1e-4)
    if width_factor is None:
        np.testing.assert_allclose(width_scale, height_scale, rtol=1e-5)
    else:
        _assert_spread(width_scale, 0.5, 1.2, tolerance=1e-4)


def test_random_contrast_and_brightness_cover_their_ranges(rng):
    x = rng.uniform(100, 150, (500, 6, 6, 3)).astype(np.float32)
    # The contrast factor of each image and channel: the ratio of standard deviations (one per image).
    y = layers.RandomContrast((0.3, 0.5), value_range=(-1e4, 1e4))(x, training=True)
    factors = y.std(axis=(1, 2)) / x.std(axis=(1, 2))
    np.testing.assert_allclose(factors, factors[:, :1] * np.ones_like(factors), rtol=1e-4)
    _assert_spread(factors[:, 0], 0.7, 1.5, tolerance=1e-3)
    # Keras 3: a number f gives contrast in [1, 1 + f].
    y = layers.RandomContrast(0.4, value_range=(-1e4, 1e4))(x, training=True)
    _assert_spread((y.std(axis=(1, 2)) / x.std(axis=(1, 2)))[:, 0], 1.0, 1.4, tolerance=1e-3)
    y = layers.RandomBrightness(0.1, value_range=(0, 1000))(x, training=True)
    deltas = (y - x).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(y - x, deltas[:, None, None, None] * np.ones_like(x), atol=1e-3)
    _assert_spread(deltas, -100.0, 100.0, tolerance=1e-2)


def test_contrast_and_brightness_clip_to_value_range(rng):
    x = rng.uniform(0, 255, (50, 8, 8, 3)).astype(np.float32)
    y = layers.RandomBrightness((0.5, 0.5))(x, training=True)
    np.testing.assert_allclose(y, np.minimum(x + 127.5, 255), rtol=1e-6)
    y = layers.RandomContrast((-0.9, 0.9), value_range=(10, 200))(x, training=True)
    assert y.min() >= 10 and y.max() <= 200 and y.min() == 10 and y.max() == 200


def test_random_crop_takes_uniform_windows_per_sample():
    count, height, width = 900, 7, 9
    x = np.arange(height * width, dtype=np.float32).reshape(1, height, width, 1).repeat(count, axis=0)
    y = layers.RandomCrop(4, 5)(x, training=True)
    assert y.shape == (count, 4, 5, 1)
    tops, lefts = (y[:, 0, 0, 0] // width).astype(int), (y[:, 0, 0, 0] % width).astype(int)
    for n in range(count):  # each output is an exact window of its image
        np.testing.assert_array_equal(y[n], x[n, tops[n]:tops[n] + 4, lefts[n]:lefts[n] + 5])
    assert set(tops) == set(range(4)) and set(lefts) == set(range(5))
    assert np.bincount(tops).min() >= count / 4 * 0.75 and np.bincount(lefts).min() >= count / 5 * 0.75


# ---- training only, seeds, threads ----


def _augmented_model(seed=None):
    return models.Sequential([
        layers.Input((12, 12, 3)), layers.RandomFlip(seed=seed), layers.RandomRotation(0.2, seed=seed),
        layers.RandomZoom(0.2, seed=seed), layers.RandomTranslation(0.1, 0.1, seed=seed),
        layers.RandomContrast(0.3, seed=seed), layers.RandomBrightness(0.2, seed=seed),
        layers.RandomCrop(10, 10, seed=seed), layers.Flatten(), layers.Dense(3, activation="softmax")])


def _plain_model():
    return models.Sequential([layers.Input((12, 12, 3)), layers.Resizing(10, 10), layers.Flatten(),
                              layers.Dense(3, activation="softmax")])


def test_random_layers_are_identity_in_predict_and_evaluate_and_active_in_fit(rng):
    x = rng.uniform(0, 255, (64, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model, plain = _augmented_model(), _plain_model()
    plain.set_weights(model.get_weights())
    # RandomCrop in inference resizes the largest centred window with the target's aspect ratio:
    # here the whole 12x12 image, as Resizing(10, 10).
    np.testing.assert_array_equal(model.predict(x, verbose=0), plain.predict(x, verbose=0))
    for m in (model, plain):
        m.compile(optimizer=optimizers.SGD(learning_rate=1e-30), loss="sparse_categorical_crossentropy")
    assert model.evaluate(x, y, verbose=0) == plain.evaluate(x, y, verbose=0)
    # With a learning rate of 1e-30 the weights stay put: fit's loss differs only by the augmentation.
    augmented = model.fit(x, y, batch_size=64, epochs=3, shuffle=False, verbose=0).history["loss"]
    unaugmented = plain.fit(x, y, batch_size=64, epochs=3, shuffle=False, verbose=0).history["loss"]
    assert len(set(unaugmented)) == 1
    assert all(abs(a - unaugmented[0]) > 1e-4 for a in augmented) and len(set(augmented)) == 3


def _fit_losses(model, x, y):
    model.compile(optimizer=optimizers.SGD(learning_rate=1e-5), loss="sparse_categorical_crossentropy")
    return model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]


def test_seeded_layers_reproduce_and_unseeded_follow_set_random_seed(rng):
    x = rng.uniform(0, 255, (48, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    first, second = _augmented_model(seed=5), _augmented_model(seed=5)
    second.set_weights(first.get_weights())
    assert _fit_losses(first, x, y) == _fit_losses(second, x, y)
    other = _augmented_model(seed=6)
    other.set_weights(first.get_weights())
    runs = []
    for _ in range(2):
        utils.set_random_seed(11)
        model = _augmented_model()
        model.set_weights(first.get_weights())
        runs.append(_fit_losses(model, x, y))
    assert runs[0] == runs[1]
    # Eager calls: a seeded layer draws anew at each call, and a new layer with that seed repeats.
    a, b = layers.RandomRotation(0.3, seed=2), layers.RandomRotation(0.3, seed=2)
    first_call, second_call = a(x, training=True), a(x, training=True)
    assert not np.array_equal(first_call, second_call)
    np.testing.assert_array_equal(b(x, training=True), first_call)
    np.testing.assert_array_equal(b(x, training=True), second_call)


def test_results_do_not_depend_on_the_thread_count(rng):
    x = rng.uniform(0, 255, (37, 16, 15, 3)).astype(np.float32)
    stack = [layers.RandomFlip(seed=1), layers.RandomRotation(0.3, seed=1), layers.RandomZoom(0.3, 0.2, seed=1),
             layers.RandomTranslation(0.2, 0.2, seed=1, interpolation="nearest"),
             layers.RandomContrast(0.5, seed=1), layers.RandomBrightness(0.3, seed=1), layers.RandomCrop(9, 11, seed=1),
             layers.Resizing(13, 7)]
    threads = fastcnn.get_num_threads()
    try:
        outputs = []
        for count in (1, 2, 3):
            fastcnn.set_num_threads(count)
            outputs.append([type(layer)(**layer.get_config() | {"name": None})(x, training=True) for layer in stack])
    finally:
        fastcnn.set_num_threads(threads)
    for other in outputs[1:]:
        for expected, actual in zip(outputs[0], other):
            np.testing.assert_array_equal(actual, expected)


# ---- backward passes ----


def _adjoint_gap(forward, backward, x_shape, y_shape, rng):
    """<forward(x), g> - <x, backward(g)> relative to their size: 0 for a linear map and its transpose."""
    x = rng.standard_normal(x_shape).astype(np.float32)
    g = rng.standard_normal(y_shape).astype(np.float32)
    left = float(np.sum(forward(x).astype(np.float64) * g))
    right = float(np.sum(x.astype(np.float64) * backward(g)))
    return abs(left - right) / max(abs(left), 1.0)


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_projective_transform_backward_is_the_transpose(rng, fill_mode, interpolation):
    shape = (3, 11, 9, 2)
    t = np.array([[0.9, -0.4, 3.0, 0.35, 1.1, -2.0, 0.0, 0.0], [1.3, 0.2, -8.0, -0.1, 0.8, 12.0, 0.01, -0.02],
                  [1.0, 0.0, 0.5, 0.0, 1.0, -0.25, 0.0, 0.0]], np.float32)
    gap = _adjoint_gap(lambda x: _core.ops.projective_transform(x, t, interpolation, fill_mode, 0.0),
                       lambda g: _core.ops.projective_transform_backward(g, t, interpolation, fill_mode),
                       shape, shape, rng)
    assert gap <= 1e-5


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("window", [None, ((6, 5), [[1, 2], [0, 3]]), ((14, 11), [[-2, -1], [-2, -1]])])
@pytest.mark.parametrize("size", [(4, 5), (13, 17), (6, 5)])
def test_resize_backward_is_the_transpose(rng, interpolation, window, size):
    window_size, origins = (None, None) if window is None else (window[0], np.array(window[1], np.int64))
    gap = _adjoint_gap(
        lambda x: _core.ops.resize(x, size, interpolation, window_size, origins),
        lambda g: _core.ops.resize_backward(g, (10, 9), interpolation, window_size, origins),
        (2, 10, 9, 3), (2,) + size + (3,), rng)
    assert gap <= 1e-5


def _numeric_gradient(function, x, g, step=1e-2):
    """d<function(x), g>/dx by central differences in float64 arithmetic on float32 inputs."""
    gradient = np.zeros(x.size)
    flat = x.reshape(-1)
    for i in range(flat.size):
        plus, minus = flat.copy(), flat.copy()
        plus[i] += step
        minus[i] -= step
        gradient[i] = (np.sum(function(plus.reshape(x.shape)) * g) - np.sum(function(minus.reshape(x.shape)) * g)) / (2 * step)
    return gradient.reshape(x.shape)


def test_contrast_and_brightness_backward_match_numerical_gradients(rng):
    x = rng.uniform(3.5, 6.5, (2, 4, 3, 2)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    factors, deltas = np.array([1.4, 0.6], np.float32), np.array([1.5, -2.0], np.float32)
    cases = [
        # value_range (1, 9): no value reaches a bound; (1, 6): brightness +1.5 clips the top of
        # the first image (no gradient there), contrast 1.4 clips some of its extremes.
        (_core.ops.contrast, _core.ops.contrast_backward, factors, (1.0, 9.0)),
        (_core.ops.contrast, _core.ops.contrast_backward, factors, (3.0, 6.5)),
        (_core.ops.brightness, _core.ops.brightness_backward, deltas, (1.0, 9.0)),
        (_core.ops.brightness, _core.ops.brightness_backward, deltas, (1.0, 6.0)),
    ]
    for forward, backward, values, value_range in cases:
        def function(v):
            return forward(v.astype(np.float32), values, value_range).astype(np.float64)
        expected = _numeric_gradient(function, x, g)
        np.testing.assert_allclose(backward(x, values, g, value_range), expected, atol=1e-2,
                                   err_msg=f"{forward.__name__} {value_range}")
    clipped = _core.ops.brightness_backward(x, deltas, g, (1.0, 6.0))
    assert np.any(clipped == 0) and np.any(clipped != 0)


def test_augmentation_after_a_trainable_layer_trains(rng):
    """Gradients flow back through every random layer into the Conv2D before them."""
    x = rng.uniform(0, 1, (64, 12, 12, 3)).astype(np.float32)
    y = (x[:, :, :, 0].mean(axis=(1, 2)) > 0.5).astype(int)
    model = models.Sequential([
        layers.Input((12, 12, 3)), layers.Conv2D(4, 3, padding="same", activation="relu"), layers.RandomFlip(seed=1),
        layers.RandomRotation(0.1, seed=1), layers.RandomZoom(0.1, seed=1), layers.RandomTranslation(0.1, 0.1, seed=1),
        layers.RandomContrast(0.2, value_range=(0, 10), seed=1), layers.RandomBrightness(0.1, value_range=(0, 10), seed=1),
        layers.RandomCrop(10, 10, seed=1), layers.Resizing(8, 8), layers.CenterCrop(6, 6),
        layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    before = model.layers[0].get_weights()[0].copy()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    change = np.abs(model.layers[0].get_weights()[0] - before)
    assert np.all(np.isfinite(change)) and change.max() > 1e-4


# ---- configuration and bad arguments ----


def test_defaults_and_get_config_follow_keras():
    assert layers.RandomRotation(0.2).get_config() | {"name": None} == {
        "name": None, "trainable": True, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                                   "config": {"name": "float32"}, "registered_name": None},
        "data_format": "channels_last",
        "factor": (-0.2, 0.2), "fill_mode": "reflect", "fill_value": 0.0, "interpolation": "bilinear", "seed": None}
    assert layers.RandomFlip().mode == "horizontal_and_vertical"
    assert layers.RandomContrast(0.2).factor == (0.0, 0.2)
    assert layers.RandomContrast((0.1, 0.3)).value_range == (0, 255)
    assert layers.RandomBrightness(0.2).factor == (-0.2, 0.2)
    assert layers.RandomBrightness(0.2, value_range=(255, 0)).value_range == [0, 255]
    zoom = layers.RandomZoom(0.2)
    assert (zoom.height_lower, zoom.height_upper, zoom.width_factor) == (-0.2, 0.2, None)
    config = layers.Resizing(3, 4).get_config()
    assert {k: config[k] for k in ("height", "width", "interpolation", "crop_to_aspect_ratio", "pad_to_aspect_ratio",
                                   "fill_mode", "fill_value", "antialias")} == {
        "height": 3, "width": 4, "interpolation": "bilinear", "crop_to_aspect_ratio": False,
        "pad_to_aspect_ratio": False, "fill_mode": "constant", "fill_value": 0.0, "antialias": False}
    assert layers.CenterCrop(3, 4).name.startswith("center_crop")
    assert layers.RandomCrop(3, 4, seed=9).get_config()["seed"] == 9


@pytest.mark.parametrize("make, fragment", [
    (lambda: layers.RandomRotation(1.5), "factor=1.5"),
    (lambda: layers.RandomRotation("0.1"), "factor='0.1'"),
    (lambda: layers.RandomRotation((0.1, 0.2, 0.3)), "factor=(0.1, 0.2, 0.3)"),
    (lambda: layers.RandomRotation(0.1, fill_mode="mirror"), "fill_mode='mirror'"),
    (lambda: layers.RandomRotation(0.1, interpolation="bicubic"), "interpolation='bicubic'"),
    (lambda: layers.RandomRotation(0.1, fill_value="zero"), "fill_value='zero'"),
    (lambda: layers.RandomRotation(0.1, seed=1.5), "seed=1.5"),
    (lambda: layers.RandomRotation(0.1, data_format="channels_first"), "data_format='channels_first'"),
    (lambda: layers.RandomTranslation(1.2, 0.1), "height_factor=1.2"),
    (lambda: layers.RandomTranslation(0.1, (0.1, -1.5)), "width_factor=(0.1, -1.5)"),
    (lambda: layers.RandomZoom(-1.0), "height_factor=-1.0"),
    (lambda: layers.RandomZoom(0.2, width_factor=(-1, 0)), "width_factor=(-1, 0)"),
    (lambda: layers.RandomContrast((0.6, -0.6)), "factor=(0.6, -0.6)"),
    (lambda: layers.RandomContrast(0.2, value_range=(255, 0)), "value_range=(255, 0)"),
    (lambda: layers.RandomBrightness(0.2, value_range=5), "value_range=5"),
    (lambda: layers.RandomBrightness(-1.5), "factor=-1.5"),
    (lambda: layers.RandomFlip("diagonal"), "mode='diagonal'"),
    (lambda: layers.RandomCrop(0, 4), "height=0"),
    (lambda: layers.Resizing(4, -1), "width=-1"),
    (lambda: layers.Resizing(4, 4, interpolation="bicubic"), "interpolation='bicubic'"),
    (lambda: layers.Resizing(4, 4, interpolation="cubic"), "interpolation='cubic'"),
    (lambda: layers.Resizing(4, 4, antialias=True), "antialias=True"),
    (lambda: layers.Resizing(4, 4, fill_mode="reflect"), "fill_mode='reflect'"),
    (lambda: layers.Resizing(4, 4, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), "pad_to_aspect_ratio"),
    (lambda: layers.CenterCrop(4.5, 4), "height=4.5"),
])
def test_bad_arguments_raise_naming_the_value(make, fragment):
    with pytest.raises((ValueError, TypeError)) as error:
        make()
    assert fragment in str(error.value)


def test_bad_inputs_raise(rng):
    with pytest.raises(ValueError, match="ndim=4"):
        models.Sequential([layers.Input((28, 28)), layers.RandomFlip()])
    with pytest.raises(ValueError, match="rank 3"):
        layers.RandomFlip()(np.zeros((2, 3)), training=True)
    with pytest.raises(TypeError, match="numeric"):
        layers.Resizing(2, 2)(np.array([["a"]]))
    with pytest.raises(ValueError, match="fill_mode"):
        _core.ops.projective_transform(np.zeros((1, 2, 2, 1), np.float32), np.zeros(8, np.float32), "bilinear", "mirror")
    with pytest.raises(ValueError, match="transforms"):
        _core.ops.projective_transform(np.zeros((2, 2, 2, 1), np.float32), np.zeros((3, 8), np.float32))
    with pytest.raises(ValueError, match="window_origins"):
        _core.ops.resize(np.zeros((1, 4, 4, 1), np.float32), (2, 2), window_origins=np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="output height"):
        _core.ops.resize(np.zeros((1, 4, 4, 1), np.float32), (0, 2))
    with pytest.raises(ValueError, match="flags"):
        _core.ops.flip(np.zeros((1, 4, 4, 1), np.float32), np.array([7], np.uint8))


def test_dtypes_layouts_and_empty_batches(rng):
    x = rng.uniform(0, 255, (4, 9, 8, 3))
    layer = layers.RandomRotation(0.2, seed=3)
    expected = layers.RandomRotation(0.2, seed=3)(x.astype(np.float32), training=True)
    np.testing.assert_array_equal(layer(np.asfortranarray(x), training=True), expected)
    integers = x.astype(np.uint8)
    np.testing.assert_array_equal(layers.Resizing(5, 5)(integers), layers.Resizing(5, 5)(integers.astype(np.float32)))
    assert layers.RandomCrop(4, 4)(np.zeros((0, 9, 8, 3)), training=True).shape == (0, 4, 4, 3)
    assert layers.Resizing(4, 4)(np.zeros((0, 9, 8, 3))).shape == (0, 4, 4, 3)
    model = models.Sequential([layers.Input((9, 8, 3)), layers.RandomFlip(), layers.Resizing(4, 4), layers.Flatten()])
    assert model.predict(np.zeros((0, 9, 8, 3)), verbose=0).shape == (0, 48)
