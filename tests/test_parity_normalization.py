"""LayerNormalization, GroupNormalization and Normalization against TensorFlow 2.21 / Keras 3.

* Forward: each layer alone, with random gamma / beta (or adapted statistics), predict against the
  Keras layer's output (<= 1e-5 relative to the output's magnitude) over odd image sizes, channels
  1, 3, 7, 32, 33, LayerNormalization axes (channels, several sample axes, non-contiguous ones,
  rms_scaling), GroupNormalization groups 1, 2, C (where they divide C) and -1, and Normalization's
  kept axes, invert and constant statistics.
* Gradients: Input -> Conv2D 1x1 -> layer -> Flatten -> Dense softmax; one SGD step of learning
  rate 1 in fastcnn against Keras's loss gradient with tf.GradientTape (<= 1e-4 per weight). The
  layer's gamma and beta gradients are compared directly; its input gradient through the 1x1
  convolution's kernel gradient, which sums it times a different random input at every position.
* Whole models: a small CNN using each layer (Normalization adapted at the front) trained 3 fit
  steps with SGD and with Adam in fastcnn and in Keras from the same weights (<= 1e-4).
* Configs, weights and .keras files both ways, adapt() over arrays, batches and PyDatasets, and bad
  arguments (ValueError naming the value)."""

import json
import warnings

import numpy as np
import pytest

import fastcnn
from fastcnn import config, layers, models, optimizers
from conftest import relative_error

CHANNELS = [1, 3, 7, 32, 33]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Many tiny models: one thread keeps them fast on a loaded machine (results do not depend on
    the thread count)."""
    threads = config.get_num_threads()
    config.set_num_threads(1)
    yield
    config.set_num_threads(threads)


def _random_weights(model, rng):
    """Non-trivial gamma (around 1) and beta, Keras's initial values for everything else."""
    weights = []
    for variable in model.weights:
        name = variable.path if hasattr(variable, "path") else variable.name
        value = np.asarray(variable.numpy())
        if name.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
        elif name.endswith("beta"):
            value = (0.5 * rng.standard_normal(value.shape)).astype(np.float32)
        weights.append(value)
    return weights


def _check_forward(keras, make, shape, rng, x=None, batch=3, single_value_groups=False):
    """The layer alone: fastcnn's predict against Keras's call, from the same (random) weights."""
    if x is None:
        x = (2 * rng.standard_normal((batch,) + shape) + 0.7).astype(np.float32)
    theirs = keras.Sequential([keras.Input(shape), make(keras)])
    ours = models.Sequential([layers.Input(shape), make(fastcnn)])
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    weights = _random_weights(theirs, rng)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    expected = theirs(x, training=False).numpy()
    # A group of one value (LayerNormalization over 1 channel) is exactly beta; TensorFlow computes
    # x * inv + (beta - mean * inv) with inv = gamma / sqrt(epsilon) (31.6 at 1e-3, 316 at 1e-5),
    # amplifying its own rounding, so there it is held to 1e-3.
    assert relative_error(ours.predict(x, verbose=0), expected) <= (1e-3 if single_value_groups else 1e-5)
    return ours


def _check_gradients(tf, keras, make, shape, rng, batch=3, prepare=None, scale_invariant=False, bound=1e-4):
    """One SGD step (learning rate 1) of Conv2D 1x1 -> layer -> Flatten -> Dense softmax: fastcnn's
    weight changes against Keras's gradients. The convolution has no bias: a normalization over the
    axes a bias is constant on cancels it, and its true gradient is 0 (rounding noise in both).
    scale_invariant: the layer's output does not depend on a one-channel convolution's single
    weight (its gradient is 0 as well), so that one is not compared."""
    def build(module):
        return module.Sequential([module.Input(shape), module.layers.Conv2D(shape[-1], 1, use_bias=False), make(module),
                                  module.layers.Flatten(), module.layers.Dense(4, activation="softmax")])

    x = (2 * rng.standard_normal((batch,) + shape)).astype(np.float32)
    y = rng.integers(0, 4, batch)
    theirs, ours = build(keras), build(fastcnn)
    if prepare is not None:
        prepare(theirs, ours, x)
    weights = _random_weights(theirs, rng)
    weights[0] = rng.uniform(-1.5, 1.5, weights[0].shape).astype(np.float32)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy()(y, theirs(x, training=True))
    expected = tape.gradient(loss, theirs.trainable_variables)
    ours.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="sparse_categorical_crossentropy")
    before = [w.numpy() for w in ours.trainable_weights]
    ours.train_on_batch(x, y)
    changes = [b - w.numpy() for b, w in zip(before, ours.trainable_weights)]
    assert len(changes) == len(expected)
    for index, (change, gradient) in enumerate(zip(changes, expected)):
        if index == 0 and scale_invariant:
            continue
        assert relative_error(change, gradient.numpy(), floor=1e-6) <= bound, f"trainable weight {index}"


# ---- LayerNormalization ----

LAYER_NORM_CASES = [
    ((5, 3), {}),
    ((5, 3), {"axis": [1, 2, 3]}),
    ((5, 3), {"axis": [-3, -2]}),
    ((5, 3), {"axis": [1, 3]}),
    ((5, 3), {"axis": 2}),
    ((5, 3), {"axis": [2, 3], "center": False}),
    ((5, 3), {"scale": False, "epsilon": 1e-5}),
]


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("image, arguments", LAYER_NORM_CASES, ids=[str(a) for _, a in LAYER_NORM_CASES])
def test_layer_normalization_matches_keras(tf, keras, rng, channels, image, arguments):
    shape = image + (channels,)
    make = lambda module: module.layers.LayerNormalization(**arguments)  # noqa: E731
    single_channel_axes = channels == 1 and arguments.get("axis", -1) in (-1, 3)
    _check_forward(keras, make, shape, rng, single_value_groups=single_channel_axes)
    # One channel: a normalization over whole channels makes the 1x1 convolution's weight irrelevant.
    _check_gradients(tf, keras, make, shape, rng, scale_invariant=channels == 1 and arguments.get("axis") != 2)


@pytest.mark.parametrize("shape, axis", [((7,), -1), ((7,), 1), ((4, 33), -1), ((4, 33), [1, 2]), ((4, 33), 1)])
def test_layer_normalization_of_vectors_and_sequences_matches_keras(keras, rng, shape, axis):
    _check_forward(keras, lambda module: module.layers.LayerNormalization(axis=axis), shape, rng)


@pytest.mark.parametrize("channels", [3, 32])
def test_layer_normalization_rms_scaling_matches_keras(tf, keras, rng, channels):
    def make(module):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return module.layers.LayerNormalization(rms_scaling=True)

    shape = (3, 5, channels)
    ours = _check_forward(keras, make, shape, rng)
    assert [w.name for w in ours.weights] == ["gamma"]
    _check_gradients(tf, keras, make, shape, rng)
    with pytest.warns(UserWarning, match="rms_scaling=True"):
        layers.LayerNormalization(rms_scaling=True)


# ---- GroupNormalization ----

GROUP_CASES = [(c, g) for c in CHANNELS for g in sorted({1, 2, c, -1}) if g == -1 or c % g == 0]


@pytest.mark.parametrize("channels, groups", GROUP_CASES)
def test_group_normalization_matches_keras(tf, keras, rng, channels, groups):
    shape = (5, 3, channels)
    make = lambda module: module.layers.GroupNormalization(groups=groups)  # noqa: E731
    _check_forward(keras, make, shape, rng)
    _check_gradients(tf, keras, make, shape, rng, scale_invariant=channels == 1)


@pytest.mark.parametrize("arguments", [{"center": False}, {"scale": False, "epsilon": 1e-5}])
def test_group_normalization_options_match_keras(tf, keras, rng, arguments):
    make = lambda module: module.layers.GroupNormalization(groups=3, **arguments)  # noqa: E731
    _check_forward(keras, make, (7, 5, 12), rng)
    _check_gradients(tf, keras, make, (7, 5, 12), rng)
    _check_forward(keras, make, (12,), rng)


# ---- Normalization ----

NORMALIZATION_AXES = [-1, None, (1, 2, 3), (1, 2), (2,), (1, 3), (-2, -1)]


@pytest.mark.parametrize("axis", NORMALIZATION_AXES, ids=str)
@pytest.mark.parametrize("invert", [False, True])
def test_normalization_adapted_matches_keras(tf, keras, rng, axis, invert):
    shape = (5, 3, 7)
    data = (3 * rng.standard_normal((20,) + shape) + 2).astype(np.float32)
    data[..., 0] = 4.0  # one channel of zero variance: the divisor is Keras's epsilon floor (1e-7)

    def make(module):
        layer = module.layers.Normalization(axis=axis, invert=invert)
        layer.adapt(data)
        return layer

    theirs, ours = make(keras), make(fastcnn)
    for mine, reference in zip(ours.get_weights(), theirs.get_weights()):
        assert relative_error(mine, np.asarray(reference, dtype=np.float32)) <= 1e-5
    _check_forward(keras, make, shape, rng)

    # invert multiplies by the standard deviation (about 2) and adds the mean, and the dense kernel's
    # gradient sums those outputs over 3 samples with cancellation: one rounding of the fused
    # multiply-add against TensorFlow's two reaches 1.2e-4 there, so invert is held to 2e-4.
    _check_gradients(tf, keras, lambda module: module.layers.Normalization(axis=axis, invert=invert), shape, rng,
                     prepare=_adapt_after_conv, bound=2e-4 if invert else 1e-4)


def _adapt_after_conv(keras_model, fastcnn_model, x):  # noqa: ARG001 (the batch: not needed)
    """Adapts both models' Normalization (layer 1) to statistics of its own (not the conv's output:
    any fixed statistics will do for the gradients)."""
    shape = keras_model.layers[1].input.shape[1:]
    data = np.random.default_rng(5).standard_normal((6,) + tuple(shape)).astype(np.float32) * 2 + 1
    keras_model.layers[1].adapt(data)
    fastcnn_model.layers[1].adapt(data)


@pytest.mark.parametrize("mean, variance, axis", [(3.0, 2.0, -1), ([1.0, 2.0, 3.0], [4.0, 5.0, 0.5], -1),
                                                  ([[1.0], [2.0], [0.5]], [[1.0], [2.0], [9.0]], (1, 2)),
                                                  (0.5, 4.0, None)])
@pytest.mark.parametrize("invert", [False, True])
def test_normalization_with_constants_matches_keras(keras, rng, mean, variance, axis, invert):
    make = lambda module: module.layers.Normalization(axis=axis, mean=mean, variance=variance, invert=invert)  # noqa: E731
    ours = _check_forward(keras, make, (3, 3), rng, batch=4)
    assert ours.weights == []


def test_normalization_adapts_over_batches_as_keras(keras, rng):
    data = (rng.standard_normal((23, 4, 3)) * [1.0, 3.0, 0.1] + [0.0, -2.0, 5.0]).astype(np.float32)
    labels = np.arange(23)
    batches = [data[i:i + 8] for i in range(0, 23, 8)]
    theirs = keras.layers.Normalization(axis=-1)
    theirs.adapt(batches)
    expected = theirs.get_weights()

    class Batches(fastcnn.utils.PyDataset):
        def __len__(self):
            return len(batches)

        def __getitem__(self, index):
            return batches[index], labels[8 * index: 8 * index + len(batches[index])]

    for source in (batches, (b for b in batches), [(b, None) for b in batches], Batches(), data):
        ours = layers.Normalization(axis=-1)
        ours.adapt(source)
        for mine, reference in zip(ours.get_weights(), expected):
            assert relative_error(mine, np.asarray(reference, dtype=np.float32)) <= 1e-5


def test_normalization_adapts_over_datasets_as_keras(tf, keras, rng):
    """fastcnn.data.Dataset against tf.data: batched (x, y) elements, and unbatched vectors, which
    both batch by 128 before adapting."""
    x = (rng.standard_normal((300, 5)) * [1.0, 2.0, 3.0, 0.5, 9.0] + 4.0).astype(np.float32)
    y = rng.integers(0, 2, 300)
    for ours_data, their_data in (
            (fastcnn.data.Dataset.from_tensor_slices((x, y)).batch(32), tf.data.Dataset.from_tensor_slices((x, y)).batch(32)),
            (fastcnn.data.Dataset.from_tensor_slices(x), tf.data.Dataset.from_tensor_slices(x))):
        ours, theirs = layers.Normalization(), keras.layers.Normalization()
        ours.adapt(ours_data)
        theirs.adapt(their_data)
        for mine, reference in zip(ours.get_weights()[:2], theirs.get_weights()[:2]):
            assert relative_error(mine, reference) <= 1e-5


def test_normalization_adapts_over_an_image_dataset(tmp_path, rng):
    """An image dataset's (images, labels) batches: the statistics of all its images."""
    from PIL import Image

    images = rng.integers(0, 256, (5, 4, 6, 3), dtype=np.uint8)
    for index, image in enumerate(images):
        folder = tmp_path / f"class_{index % 2}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{index}.png")
    dataset = fastcnn.utils.image_dataset_from_directory(tmp_path, image_size=(4, 6), batch_size=2, shuffle=False)
    ours = layers.Normalization()
    ours.adapt(dataset)
    pixels = np.concatenate([batch for batch, _ in dataset]).reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(ours.mean.numpy(), pixels.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(ours.variance.numpy(), pixels.var(axis=0), rtol=1e-4)


# ---- whole models: three fit steps ----


def _small_cnn(module, adapt_data):
    k = module
    inputs = k.Input((9, 9, 3))
    normalization = k.layers.Normalization()
    normalization.adapt(adapt_data)
    x = normalization(inputs)
    x = k.layers.Conv2D(8, 3, activation="relu")(x)
    x = k.layers.LayerNormalization(gamma_regularizer=k.regularizers.L2(0.01))(x)
    x = k.layers.Conv2D(8, 3, padding="same")(x)
    x = k.layers.GroupNormalization(groups=4, beta_regularizer=k.regularizers.L1(0.01))(x)
    x = k.layers.Activation("relu")(x)
    x = k.layers.LayerNormalization(axis=[1, 2, 3], center=False)(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inputs, k.layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_small_cnn_with_normalization_layers_trains_as_in_keras(tf, keras, rng, optimizer):
    keras.utils.set_random_seed(5)
    adapt_data = (rng.random((30, 9, 9, 3)) * 255).astype(np.float32)
    theirs = _small_cnn(keras, adapt_data)
    ours = _small_cnn(fastcnn, adapt_data)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    weights = _random_weights(theirs, rng)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    x = (rng.random((12, 9, 9, 3)) * 255).astype(np.float32)
    y = rng.integers(0, 3, 12)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    for model, module in ((ours, fastcnn), (theirs, keras)):
        model.compile(module.optimizers.SGD(0.1) if optimizer == "sgd" else module.optimizers.Adam(0.01),
                      "sparse_categorical_crossentropy")
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)  # 3 steps
    theirs.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for mine, reference in zip(ours.get_weights(), theirs.get_weights()):
        reference = np.asarray(reference, dtype=np.float32)
        assert np.max(np.abs(mine - reference)) <= 1e-4 * max(float(np.max(np.abs(reference))), 1e-2)


def test_sequential_cnn_with_normalization_layers_trains_as_in_keras(tf, keras, rng):
    def build(module, adapt_data):
        normalization = module.layers.Normalization(axis=None)
        normalization.adapt(adapt_data)
        return module.Sequential([
            module.Input((7, 7, 2)), normalization,
            module.layers.Conv2D(6, 3, padding="same", activation="relu"),
            module.layers.GroupNormalization(groups=-1),
            module.layers.Conv2D(6, 3), module.layers.LayerNormalization(axis=[1, 2], epsilon=1e-5),
            module.layers.Flatten(), module.layers.Dense(3, activation="softmax")])

    keras.utils.set_random_seed(9)
    adapt_data = (rng.standard_normal((16, 7, 7, 2)) * 3 + 1).astype(np.float32)
    theirs, ours = build(keras, adapt_data), build(fastcnn, adapt_data)
    weights = _random_weights(theirs, rng)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    x = (rng.standard_normal((12, 7, 7, 2)) * 3 + 1).astype(np.float32)
    y = rng.integers(0, 3, 12)
    for model, module in ((ours, fastcnn), (theirs, keras)):
        model.compile(module.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for mine, reference in zip(ours.get_weights(), theirs.get_weights()):
        reference = np.asarray(reference, dtype=np.float32)
        assert np.max(np.abs(mine - reference)) <= 1e-4 * max(float(np.max(np.abs(reference))), 1e-2)


# ---- configs, weights and files ----


def test_keras_file_of_a_normalized_model_loads_both_ways(tf, keras, rng, tmp_path):
    adapt_data = (rng.random((10, 9, 9, 3)) * 4).astype(np.float32)
    theirs = _small_cnn(keras, adapt_data)
    theirs.set_weights(_random_weights(theirs, rng))
    theirs.save(tmp_path / "theirs.keras")
    ours = fastcnn.models.load_model(tmp_path / "theirs.keras")
    x = (rng.random((3, 9, 9, 3)) * 4).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "ours.keras")
    back = keras.models.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    ours.save_weights(tmp_path / "ours.weights.h5")
    fresh = _small_cnn(keras, adapt_data[:2])
    fresh.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_built_layer_configs_equal_keras(keras):
    """After build, Keras records LayerNormalization's axis as a sorted list and GroupNormalization's
    groups=-1 as the channel count; the model config (with build configs) equals Keras's."""
    for make in (lambda k: k.layers.LayerNormalization(axis=[-1, -3], name="n"),
                 lambda k: k.layers.GroupNormalization(groups=-1, name="n"),
                 lambda k: k.layers.Normalization(axis=(1, 2), mean=[1.0, 2.0], variance=[3.0, 4.0], name="n")):
        ours, theirs = make(fastcnn), make(keras)
        models.Sequential([layers.Input((4, 2, 6)), ours])
        keras.Sequential([keras.Input((4, 2, 6)), theirs])
        assert json.dumps(ours.get_config()) == json.dumps(theirs.get_config())
        assert ours.get_build_config() == {"input_shape": (None, 4, 2, 6)}
        rebuilt = type(ours).from_config(json.loads(json.dumps(theirs.get_config())))
        assert json.dumps(rebuilt.get_config()) == json.dumps(ours.get_config())


def test_frozen_layer_normalization_passes_its_input_gradient(rng):
    """A frozen LayerNormalization keeps gamma and beta but still normalizes with its own statistics
    and passes the gradient to the convolution before it (as in Keras: it has no moving state)."""
    model = models.Sequential([layers.Input((5, 5, 4)), layers.Conv2D(4, 1), layers.LayerNormalization(),
                               layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.layers[1].trainable = False
    model.compile(optimizer=optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    before = model.get_weights()
    model.fit(rng.standard_normal((6, 5, 5, 4)).astype(np.float32), rng.integers(0, 2, 6), verbose=0)
    after = model.get_weights()
    assert not np.array_equal(after[0], before[0])  # the convolution's kernel trained through it
    np.testing.assert_array_equal(after[2], before[2])  # gamma
    np.testing.assert_array_equal(after[3], before[3])  # beta


def test_summary_counts_the_weights_as_keras(keras):
    """Normalization's count is an int64 in Keras: 8 bytes of the non-trainable memory."""
    def build(module):
        return module.Sequential([module.Input((5, 3)), module.layers.Normalization(),
                                  module.layers.LayerNormalization(axis=[1, 2]), module.layers.GroupNormalization(3),
                                  module.layers.Dense(2)])

    def totals(model):
        lines = []
        model.summary(print_fn=lambda line, **_: lines.append(line))
        text = "\n".join(lines)
        return [line.strip() for line in text.splitlines() if "params:" in line]

    assert totals(build(fastcnn)) == totals(build(keras))


# ---- bad arguments ----


@pytest.mark.parametrize("make, error, match", [
    (lambda: layers.LayerNormalization(axis="channels"), TypeError, "axis"),
    (lambda: layers.LayerNormalization(epsilon=0), ValueError, "epsilon=0"),
    (lambda: layers.LayerNormalization(center=1), TypeError, "center=1"),
    (lambda: models.Sequential([layers.Input((4, 4, 3)), layers.LayerNormalization(axis=4)]), ValueError,
     r"Axis 4 is out of bounds for input shape \(None, 4, 4, 3\). Received: axis=4"),
    (lambda: models.Sequential([layers.Input((4, 4, 3)), layers.LayerNormalization(axis=[1, -5])]), ValueError,
     r"Axis -5 is out of bounds"),
    (lambda: models.Sequential([layers.Input((4, 4, 3)), layers.LayerNormalization(axis=0)]), ValueError,
     "batch axis"),
    (lambda: models.Sequential([layers.Input((4, 4, 3)), layers.LayerNormalization(axis=[-1, 3])]), ValueError,
     r"axis=\[-1, 3\]"),
    (lambda: layers.GroupNormalization(groups=0), ValueError, "groups=0"),
    (lambda: layers.GroupNormalization(groups=2.0), ValueError, "groups=2.0"),
    (lambda: models.Sequential([layers.Input((4, 4, 6)), layers.GroupNormalization(groups=4)]), ValueError,
     r"Number of groups \(4\) must be a multiple of the number of channels \(6\)"),
    (lambda: models.Sequential([layers.Input((4, 4, 6)), layers.GroupNormalization(groups=8)]), ValueError,
     r"Number of groups \(8\) cannot be more than the number of channels \(6\)"),
    (lambda: models.Sequential([layers.Input((4, 4, 6)), layers.GroupNormalization(groups=2, axis=1)]), ValueError,
     "axis=1"),
    (lambda: layers.Normalization(mean=1.0), ValueError, "mean=1.0 and variance=None"),
    (lambda: layers.Normalization(mean=[1.0, 2.0], variance=[1.0]), ValueError, r"mean shape \(2,\)"),
    (lambda: layers.Normalization(axis=None, mean=[1.0], variance=[1.0]), ValueError, "rank of `mean`"),
    (lambda: layers.Normalization(mean="a", variance="b"), ValueError, "mean='a'"),
    (lambda: layers.Normalization(axis="x"), ValueError, "axis='x'"),
    (lambda: models.Sequential([layers.Input((4, 3)), layers.Normalization(axis=3)]), ValueError,
     r"range \[-ndim, ndim\). Received inputs with ndim=3, while axis=\(3,\)"),
    (lambda: models.Sequential([layers.Input((4, 3)), layers.Normalization(axis=0)]), ValueError, "batch axis"),
    (lambda: models.Sequential([layers.Input((4, 3)), layers.Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0])]),
     ValueError, r"shape \(2,\) cannot broadcast"),
    (lambda: layers.Normalization().adapt("text"), TypeError, "Unsupported data type"),
    (lambda: layers.Normalization().adapt(np.zeros((0, 3))), ValueError, "no data"),
    (lambda: layers.Normalization(mean=0.0, variance=1.0).adapt(np.zeros((2, 3))), ValueError, "adapt"),
])
def test_bad_arguments_raise_clearly(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("add, match", [
    (lambda n: n.add_layer_norm((False, False, False), 1e-3, True, True, False), "at least one sample axis"),
    (lambda n: n.add_layer_norm((False, False, True), 0.0, True, True, False), "epsilon"),
    (lambda n: n.add_group_norm(0, 1e-3, True, True), "groups=0"),
    (lambda n: n.add_group_norm(2, float("nan"), True, True), "epsilon"),
    (lambda n: n.add_normalization((False, False, True), False, [1.0, 2.0], [1.0]), "same size"),
])
def test_runtime_refuses_bad_layer_arguments(add, match):
    """The compiled network checks what it is given, whatever the Python layers checked first."""
    with pytest.raises(ValueError, match=match):
        add(fastcnn._core.Network())


@pytest.mark.parametrize("add, match", [
    (lambda n: n.add_group_norm(4, 1e-3, True, True), r"Number of groups \(4\) must be a multiple"),
    (lambda n: n.add_normalization((False, False, True), False, [1.0, 2.0], [1.0, 1.0]), r"kept axes \(6\)"),
])
def test_runtime_refuses_layers_that_do_not_fit_their_input(add, match):
    network = fastcnn._core.Network()
    network.add_input((3, 3, 6))
    add(network)
    network.connect(0, [-1], -1)
    with pytest.raises(ValueError, match=match):
        network.build()


def test_adapt_refuses_data_of_another_shape():
    layer = layers.Normalization()
    layer.adapt(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"data.shape=\(4, 5\)"):
        layer.adapt(np.ones((4, 5), np.float32))
