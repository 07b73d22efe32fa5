"""Augmentation and image preprocessing against TensorFlow 2.21 / Keras 3.15.

* The kernels through ``fastcnn._core.ops``: the projective transform against
  ``tf.raw_ops.ImageProjectiveTransformV3`` (what ``keras.ops.image.affine_transform`` runs) for
  every fill mode and interpolation, random affine and projective matrices, points far outside
  the image (several reflect / wrap periods), one-pixel axes and odd sizes; resize against
  ``tf.image.resize`` (bilinear and nearest, up and down, odd sizes). Bound 1e-5: the same float32
  formulas in the same order agree bit for bit, except at constant-mode points more than a pixel
  outside, where fastcnn writes fill_value itself and TensorFlow a blend of four fill values
  (an ulp apart at most).
* The layers with a fixed factor (a (q, q) pair fixes the draw in both frameworks) against the
  Keras layer called with training=True: RandomRotation, RandomTranslation, RandomZoom for every
  fill mode and interpolation, RandomContrast, RandomBrightness; Resizing (both interpolations,
  crop_to_aspect_ratio, pad_to_aspect_ratio), CenterCrop (larger and smaller inputs), RandomCrop in
  inference (keras.utils.smart_resize) and in training on an input no larger than the target
  (deterministic in Keras). Zero factors are the identity.
* Training through the layers: a Conv2D before Resizing, CenterCrop, RandomContrast,
  RandomBrightness (fixed factors) trains like Keras (three SGD steps, same weights).
* summary() shapes of a model with every layer against Keras.
"""

import numpy as np
import pytest

from fastcnn import _core, config, layers, models, optimizers
from conftest import relative_error

FILL_MODES = ["reflect", "wrap", "constant", "nearest"]
INTERPOLATIONS = ["bilinear", "nearest"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = config.get_num_threads()
    config.set_num_threads(1)
    yield
    config.set_num_threads(threads)


def _keras_training_call(tf, layer, x):
    return np.asarray(layer(tf.constant(x), training=True))


# ---- kernels ----


def _random_transforms(rng, batch, height, width, projective, far):
    t = np.zeros((batch, 8), np.float32)
    angle = rng.uniform(-np.pi, np.pi, batch)
    scale = rng.uniform(0.5, 1.6, batch)
    t[:, 0], t[:, 1] = scale * np.cos(angle), -scale * np.sin(angle)
    t[:, 3], t[:, 4] = scale * np.sin(angle), scale * np.cos(angle)
    reach = 4.0 if far else 0.5  # far: shifts of several image sizes (many reflect/wrap periods)
    t[:, 2] = rng.uniform(-reach, reach, batch) * width
    t[:, 5] = rng.uniform(-reach, reach, batch) * height
    if projective:
        t[:, 6:] = rng.uniform(-0.02, 0.02, (batch, 2))
    return t


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("shape", [(4, 9, 11, 3), (3, 1, 7, 2), (2, 6, 1, 1), (2, 16, 16, 4)])
def test_projective_transform_matches_tensorflow(tf, rng, fill_mode, interpolation, shape):
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    batch, height, width, _ = shape
    for projective in (False, True):
        for far in (False, True):
            t = _random_transforms(rng, batch, height, width, projective, far)
            expected = tf.raw_ops.ImageProjectiveTransformV3(
                images=x, transforms=t, output_shape=[height, width], fill_value=0.25,
                interpolation=interpolation.upper(), fill_mode=fill_mode.upper()).numpy()
            actual = _core.ops.projective_transform(x, t, interpolation, fill_mode, 0.25)
            np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0,
                                       err_msg=f"projective={projective} far={far}")


def test_projective_transform_identity_and_broadcast(rng):
    x = rng.uniform(0, 1, (3, 5, 6, 2)).astype(np.float32)
    identity = np.array([1, 0, 0, 0, 1, 0, 0, 0], np.float32)
    for mode in FILL_MODES:
        for interpolation in INTERPOLATIONS:
            np.testing.assert_array_equal(_core.ops.projective_transform(x, identity, interpolation, mode), x)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("size", [(4, 5), (17, 23), (9, 11), (1, 1), (20, 3), (3, 40)])
def test_resize_matches_tensorflow(tf, rng, interpolation, size):
    x = rng.uniform(0, 255, (3, 9, 11, 3)).astype(np.float32)
    expected = tf.image.resize(x, size, method=interpolation).numpy()
    np.testing.assert_allclose(_core.ops.resize(x, size, interpolation), expected, atol=1e-5 * 255, rtol=0)


def test_resize_of_a_window_is_resize_of_the_slice(tf, rng):
    x = rng.uniform(0, 1, (2, 12, 10, 2)).astype(np.float32)
    origins = np.array([[1, 2], [3, 0]], np.int64)
    actual = _core.ops.resize(x, (5, 7), "bilinear", window_size=(8, 6), window_origins=origins)
    for n, (top, left) in enumerate(origins):
        expected = tf.image.resize(x[n:n + 1, top:top + 8, left:left + 6], (5, 7)).numpy()[0]
        np.testing.assert_allclose(actual[n], expected, atol=1e-6)


# ---- layers with fixed factors against Keras's training call ----


def _image_batch(rng, shape=(3, 13, 17, 3), high=255.0):
    return rng.uniform(0, high, shape).astype(np.float32)


def _compare(actual, expected, interpolation):
    if interpolation == "nearest":
        # Our cos/sin may differ from TensorFlow's by an ulp: a sample point within ~1e-6 of a
        # pixel boundary could then round the other way. Allow a handful of such pixels.
        mismatched = np.any(np.abs(actual - expected) > 1e-3, axis=-1)
        assert mismatched.mean() <= 0.002, f"{mismatched.sum()} pixels differ"
    else:
        assert relative_error(actual, expected) <= 2e-5


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_fixed_rotation_matches_keras(tf, rng, fill_mode, interpolation):
    x = _image_batch(rng)
    for q in (0.1, -0.3, 0.25):
        kwargs = dict(factor=(q, q), fill_mode=fill_mode, interpolation=interpolation, fill_value=7.0)
        expected = _keras_training_call(tf, tf.keras.layers.RandomRotation(**kwargs), x)
        actual = layers.RandomRotation(**kwargs)(x, training=True)
        _compare(actual, expected, interpolation)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_fixed_translation_matches_keras(tf, rng, fill_mode, interpolation):
    x = _image_batch(rng)
    for height_factor, width_factor in (((0.2, 0.2), (-0.35, -0.35)), ((-0.9, -0.9), (0.55, 0.55))):
        kwargs = dict(height_factor=height_factor, width_factor=width_factor, fill_mode=fill_mode,
                      interpolation=interpolation, fill_value=-3.0)
        expected = _keras_training_call(tf, tf.keras.layers.RandomTranslation(**kwargs), x)
        actual = layers.RandomTranslation(**kwargs)(x, training=True)
        _compare(actual, expected, interpolation)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_fixed_zoom_matches_keras(tf, rng, fill_mode, interpolation):
    x = _image_batch(rng)
    for height_factor, width_factor in (((0.3, 0.3), None), ((-0.4, -0.4), (0.5, 0.5)), ((0.7, 0.7), (-0.2, -0.2))):
        kwargs = dict(height_factor=height_factor, width_factor=width_factor, fill_mode=fill_mode,
                      interpolation=interpolation)
        expected = _keras_training_call(tf, tf.keras.layers.RandomZoom(**kwargs), x)
        actual = layers.RandomZoom(**kwargs)(x, training=True)
        _compare(actual, expected, interpolation)


def test_fixed_contrast_and_brightness_match_keras(tf, rng):
    x = _image_batch(rng)
    # Keras 3's factor rules: (-q, q) passes its check and fixes the contrast at 1 + q; a number f
    # would draw from [1, 1 + f].
    for factor, value_range in (((-0.3, 0.3), (0, 255)), ((-0.6, 0.6), (0, 255)), ((-0.5, 0.5), (20, 200))):
        expected = _keras_training_call(tf, tf.keras.layers.RandomContrast(factor, value_range=value_range), x)
        actual = layers.RandomContrast(factor, value_range=value_range)(x, training=True)
        assert relative_error(actual, expected) <= 1e-5
    for factor, value_range in (((0.2, 0.2), (0, 255)), ((-0.35, -0.35), (255, 0)), ((0.1, 0.1), (-10, 100))):
        expected = _keras_training_call(tf, tf.keras.layers.RandomBrightness(factor, value_range=value_range), x)
        actual = layers.RandomBrightness(factor, value_range=value_range)(x, training=True)
        assert relative_error(actual, expected) <= 1e-6


def test_zero_factors_are_identity(rng):
    x = _image_batch(rng)
    for layer in (layers.RandomRotation(0.0), layers.RandomTranslation(0.0, 0.0), layers.RandomZoom(0.0),
                  layers.RandomRotation(0.0, interpolation="nearest", fill_mode="constant"),
                  layers.RandomZoom((0.0, 0.0), (0.0, 0.0), interpolation="nearest"),
                  layers.RandomBrightness(0.0), layers.RandomCrop(13, 17)):
        np.testing.assert_array_equal(layer(x, training=True), x, err_msg=layer.name)
    # Contrast 1: (x - mean) * 1 + mean, exact up to the rounding of the subtraction (as in Keras).
    np.testing.assert_allclose(layers.RandomContrast(0.0)(x, training=True), x, rtol=0, atol=255 * 1e-6)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("size", [(5, 7), (26, 9), (13, 17), (1, 30), (40, 40)])
@pytest.mark.parametrize("aspect", [None, "crop_to_aspect_ratio", "pad_to_aspect_ratio"])
def test_resizing_matches_keras(tf, rng, interpolation, size, aspect):
    x = _image_batch(rng)
    kwargs = {"interpolation": interpolation}
    if aspect:
        kwargs[aspect] = True
        kwargs["fill_value"] = 9.0 if aspect == "pad_to_aspect_ratio" else 0.0
    expected = np.asarray(tf.keras.layers.Resizing(*size, **kwargs)(x))
    actual = layers.Resizing(*size, **kwargs)(x)
    assert actual.shape == expected.shape
    assert relative_error(actual, expected) <= 1e-6


@pytest.mark.parametrize("size", [(5, 7), (13, 17), (6, 17), (20, 9), (30, 40), (1, 1)])
def test_center_crop_matches_keras(tf, rng, size):
    x = _image_batch(rng)
    expected = np.asarray(tf.keras.layers.CenterCrop(*size)(x))
    actual = layers.CenterCrop(*size)(x)
    assert actual.shape == expected.shape
    assert relative_error(actual, expected) <= 1e-6


@pytest.mark.parametrize("size", [(5, 7), (6, 17), (13, 17), (20, 9), (30, 40)])
def test_random_crop_inference_is_smart_resize_and_small_input_training_matches_keras(tf, rng, size):
    x = _image_batch(rng)
    layer = layers.RandomCrop(*size)
    expected = np.asarray(tf.keras.preprocessing.image.smart_resize(x, size))
    assert relative_error(layer(x, training=False), expected) <= 1e-6
    if not (13 > size[0] and 17 > size[1]):  # Keras's training crop is deterministic here
        expected = _keras_training_call(tf, tf.keras.layers.RandomCrop(*size), x)
        assert relative_error(layer(x, training=True), expected) <= 1e-6


# ---- training through the layers ----


def _sgd_steps(tf, keras_model, x, y, batch_size, learning_rate):
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


@pytest.mark.parametrize("middle", ["resizing_up", "resizing_nearest", "center_crop", "contrast", "brightness",
                                    "random_crop_small"])
def test_training_through_layers_matches_keras(tf, rng, middle):
    """A gradient flows back through the layer into a Conv2D: Keras (autodiff of its ops) and
    fastcnn (the kernels' backward passes) take the same three SGD steps."""
    def build(L, M):
        middle_layer = {
            "resizing_up": lambda: L.Resizing(11, 13),
            "resizing_nearest": lambda: L.Resizing(5, 9, interpolation="nearest"),
            "center_crop": lambda: L.CenterCrop(5, 4),
            "contrast": lambda: L.RandomContrast((-0.4, 0.4), value_range=(-1.0, 1.5)),
            "brightness": lambda: L.RandomBrightness((0.1, 0.1), value_range=(-1.0, 1.0)),
            "random_crop_small": lambda: L.RandomCrop(10, 6),  # not larger: deterministic
        }[middle]()
        return M.Sequential([L.Input((9, 8, 2)), L.Conv2D(3, 3, padding="same", activation="tanh"), middle_layer,
                             L.Flatten(), L.Dense(3, activation="softmax")])

    tf.keras.utils.set_random_seed(3)
    keras_model = build(tf.keras.layers, tf.keras.models)
    model = build(layers, models)
    initial = keras_model.get_weights()
    model.set_weights(initial)
    x = rng.standard_normal((24, 9, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    losses = _sgd_steps(tf, keras_model, x, y, 8, 0.5)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.5), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for index, (actual, expected, start) in enumerate(zip(model.get_weights(), keras_model.get_weights(), initial)):
        assert relative_error(actual, expected) <= 1e-4, f"weight {index}"
        assert relative_error(actual - start, expected - start, floor=1e-6) <= 2e-3, f"weight {index} change"
    np.testing.assert_allclose(history.history["loss"], [np.mean(losses)], rtol=1e-4)


def test_summary_shapes_match_keras(tf):
    def build(L, M):
        return M.Sequential([
            L.Input((32, 30, 3)), L.RandomFlip("horizontal"), L.RandomRotation(0.1), L.RandomZoom(0.1),
            L.RandomTranslation(0.1, 0.2), L.RandomContrast(0.2), L.RandomBrightness(0.2), L.RandomCrop(28, 26),
            L.Resizing(20, 21), L.CenterCrop(16, 15), L.Conv2D(4, 3), L.Flatten(), L.Dense(2)])

    keras_model, model = build(tf.keras.layers, tf.keras.models), build(layers, models)
    for ours, theirs in zip(model.layers, keras_model.layers):
        assert type(ours).__name__ == type(theirs).__name__
        assert ours.output_shape == tuple(theirs.output.shape), ours.name
        assert ours.count_params() == theirs.count_params()
    assert model.count_params() == keras_model.count_params()


def _resize_reference(image, size, interpolation, window, fill_value):
    """tf.image.resize's arithmetic in float32 numpy, one sample (height, width, channels): the
    half-pixel taps of ops/upsampling.h, then compute_lerp's three lerps in its order, on the
    window (top, left, height, width), reading `fill_value` outside the image."""
    top, left, window_height, window_width = window
    image = image.astype(np.float32)

    def taps(output, window_size):
        scale = np.float32(window_size) / np.float32(output)
        index = np.arange(output, dtype=np.float32)
        if interpolation == "nearest":
            lower = np.clip(np.floor((index + np.float32(0.5)) * scale), 0, window_size - 1).astype(np.int64)
            return lower, lower, np.zeros(output, np.float32)
        position = (index + np.float32(0.5)) * scale - np.float32(0.5)
        below = np.floor(position)
        return (np.maximum(below, 0).astype(np.int64), np.minimum(np.ceil(position), window_size - 1).astype(np.int64),
                (position - below).astype(np.float32))

    def read(rows, columns):
        rows, columns = rows[:, None] + top, columns[None, :] + left
        inside = (rows >= 0) & (rows < image.shape[0]) & (columns >= 0) & (columns < image.shape[1])
        values = image[np.clip(rows, 0, image.shape[0] - 1), np.clip(columns, 0, image.shape[1] - 1)]
        return np.where(inside[..., None], values, np.float32(fill_value))

    row_lower, row_upper, row_lerp = taps(size[0], window_height)
    column_lower, column_upper, column_lerp = taps(size[1], window_width)
    if window_height == size[0] and window_width == size[1]:  # a crop
        return read(np.arange(size[0]), np.arange(size[1]))
    if interpolation == "nearest":
        return read(row_lower, column_lower)
    column_lerp, row_lerp = column_lerp[None, :, None], row_lerp[:, None, None]
    top_left, top_right = read(row_lower, column_lower), read(row_lower, column_upper)
    bottom_left, bottom_right = read(row_upper, column_lower), read(row_upper, column_upper)
    upper = top_left + (top_right - top_left) * column_lerp
    lower = bottom_left + (bottom_right - bottom_left) * column_lerp
    return upper + (lower - upper) * row_lerp


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_resize_equals_its_numpy_twin_bitwise(rng, interpolation, channels, dtype):
    """Windows inside the image (the unchecked row path), partly or wholly outside it (fill), crops
    and up- and down-scaling, from float32 and from uint8 pixels (converted as they are read)."""
    images = rng.integers(0, 256, (2, 13, 17, channels)).astype(dtype)
    cases = [((13, 17), None, (5, 7)), ((13, 17), None, (29, 40)), ((13, 17), None, (13, 17)),
             ((8, 9), [[2, 3], [5, 8]], (4, 5)), ((8, 9), [[2, 3], [0, 0]], (8, 9)),
             ((10, 12), [[-3, -2], [6, 9]], (7, 11)), ((6, 6), [[20, 30], [-10, 4]], (3, 4))]
    for window_size, origins, size in cases:
        origins_array = None if origins is None else np.array(origins, np.int64)
        actual = _core.ops.resize(images, size, interpolation, window_size if origins else None, origins_array,
                                  fill_value=7.5)
        assert actual.dtype == np.float32
        for n in range(2):
            top, left = (0, 0) if origins is None else origins[n]
            expected = _resize_reference(images[n], size, interpolation, (top, left) + window_size, 7.5)
            np.testing.assert_array_equal(actual[n], expected, err_msg=f"{window_size} {origins} -> {size}")
        if dtype == np.uint8:
            np.testing.assert_array_equal(actual, _core.ops.resize(images.astype(np.float32), size, interpolation,
                                                                   window_size if origins else None, origins_array,
                                                                   fill_value=7.5))
