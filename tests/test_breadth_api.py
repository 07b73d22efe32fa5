"""Non-parity checks of the breadth features: weight initializers, the generated shapes data set
(and its claim that a CNN clearly beats a linear model on it), bad arguments to the new layers,
schedules and optimizers, and the Layer / Sequential structure API (get_layer, pop, layers,
trainable flags)."""

import math
import re

import numpy as np
import pytest

import fastcnn
from fastcnn import datasets, initializers, layers, models, optimizers, utils
from fastcnn.optimizers import schedules

# --------------------------------------------------------------------------------------------
# initializers
# --------------------------------------------------------------------------------------------

KERNEL = (3, 3, 64, 128)
FAN_IN, FAN_OUT = 3 * 3 * 64, 3 * 3 * 128
TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]

# name: (expected sample std, bound on |value| or None); Keras's formulas for KERNEL.
INITIALIZERS = {
    "glorot_uniform": (math.sqrt(2.0 / (FAN_IN + FAN_OUT)), math.sqrt(6.0 / (FAN_IN + FAN_OUT))),
    "glorot_normal": (math.sqrt(2.0 / (FAN_IN + FAN_OUT)), 2 * math.sqrt(2.0 / (FAN_IN + FAN_OUT)) / TRUNCATED_STD),
    "he_uniform": (math.sqrt(2.0 / FAN_IN), math.sqrt(6.0 / FAN_IN)),
    "he_normal": (math.sqrt(2.0 / FAN_IN), 2 * math.sqrt(2.0 / FAN_IN) / TRUNCATED_STD),
    "lecun_uniform": (math.sqrt(1.0 / FAN_IN), math.sqrt(3.0 / FAN_IN)),
    "lecun_normal": (math.sqrt(1.0 / FAN_IN), 2 * math.sqrt(1.0 / FAN_IN) / TRUNCATED_STD),
    "variance_scaling": (math.sqrt(1.0 / FAN_IN), 2 * math.sqrt(1.0 / FAN_IN) / TRUNCATED_STD),
    "random_normal": (0.05, None),
    "random_uniform": (0.1 / math.sqrt(12.0), 0.05),
    "truncated_normal": (0.05 * TRUNCATED_STD, 0.1),
    "zeros": (0.0, 0.0),
    "ones": (0.0, 1.0),
    "constant": (0.0, 0.0),
}


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_initializer_shape_dtype_bounds_and_std(tf, name):
    expected_std, bound = INITIALIZERS[name]
    values = initializers.get(name)(KERNEL)
    assert isinstance(values, np.ndarray)
    assert values.shape == KERNEL and values.dtype == np.float32
    assert np.all(np.isfinite(values))
    if name == "ones":
        assert np.all(values == 1.0)
        return
    if name in ("zeros", "constant"):
        assert np.all(values == 0.0)
        return
    assert abs(float(values.mean())) < 0.02 * expected_std
    assert float(values.std()) == pytest.approx(expected_std, rel=0.02)
    if bound is not None:
        assert float(np.max(np.abs(values))) <= bound * (1 + 1e-6)
        assert float(np.max(np.abs(values))) > 0.98 * bound  # the draws reach the edge: not a narrower law
    # Keras's own draw for the same shape has the same spread.
    keras_values = np.asarray(tf.keras.initializers.get(name)(KERNEL))
    assert float(values.std()) == pytest.approx(float(keras_values.std()), rel=0.03)


@pytest.mark.parametrize("scale,mode,distribution", [
    (2.0, "fan_out", "uniform"), (0.5, "fan_avg", "truncated_normal"), (3.0, "fan_in", "untruncated_normal"),
])
def test_variance_scaling_options_match_keras_spread(tf, scale, mode, distribution):
    n = {"fan_in": FAN_IN, "fan_out": FAN_OUT, "fan_avg": (FAN_IN + FAN_OUT) / 2}[mode]
    values = initializers.VarianceScaling(scale, mode, distribution, seed=1)(KERNEL)
    assert float(values.std()) == pytest.approx(math.sqrt(scale / n), rel=0.02)
    keras_values = np.asarray(tf.keras.initializers.VarianceScaling(scale, mode, distribution, seed=1)(KERNEL))
    assert float(values.std()) == pytest.approx(float(keras_values.std()), rel=0.03)
    if distribution == "uniform":
        assert np.max(np.abs(values)) <= math.sqrt(3 * scale / n) * (1 + 1e-6)
    elif distribution == "truncated_normal":
        assert np.max(np.abs(values)) <= 2 * math.sqrt(scale / n) / TRUNCATED_STD * (1 + 1e-6)


def test_variance_scaling_accepts_keras_normal_alias(tf):
    """Keras takes distribution='normal' (any case) as 'truncated_normal'."""
    keras_initializer = tf.keras.initializers.VarianceScaling(distribution="normal")
    assert keras_initializer.distribution == "truncated_normal"
    values = initializers.VarianceScaling(distribution="normal", seed=2)(KERNEL)
    np.testing.assert_array_equal(values, initializers.VarianceScaling(distribution="truncated_normal", seed=2)(KERNEL))
    assert initializers.VarianceScaling(distribution="Uniform", seed=2)(KERNEL).shape == KERNEL


def test_dense_kernel_fans():
    """(in, out) kernels: fan_in = in, fan_out = out."""
    values = initializers.GlorotUniform(seed=0)((300, 200))
    assert np.max(np.abs(values)) <= math.sqrt(6.0 / 500) * (1 + 1e-6)
    assert float(values.std()) == pytest.approx(math.sqrt(2.0 / 500), rel=0.02)
    assert float(initializers.HeNormal(seed=0)((300, 200)).std()) == pytest.approx(math.sqrt(2.0 / 300), rel=0.02)


def test_initializer_arguments():
    values = initializers.Constant(0.25)((4, 5))
    assert np.all(values == 0.25) and values.dtype == np.float32
    values = initializers.RandomUniform(minval=1.0, maxval=3.0, seed=0)((1000,))
    assert values.min() >= 1.0 and values.max() <= 3.0 and values.mean() == pytest.approx(2.0, abs=0.1)
    values = initializers.RandomNormal(mean=1.0, stddev=0.5, seed=0)((20000,))
    assert values.mean() == pytest.approx(1.0, abs=0.02) and values.std() == pytest.approx(0.5, rel=0.03)
    values = initializers.TruncatedNormal(mean=-1.0, stddev=0.5, seed=0)((20000,))
    assert values.min() >= -2.0 - 1e-6 and values.max() <= 1e-6
    assert values.mean() == pytest.approx(-1.0, abs=0.02)


SEEDED = [initializers.GlorotUniform, initializers.GlorotNormal, initializers.HeUniform, initializers.HeNormal,
          initializers.LecunUniform, initializers.LecunNormal, initializers.VarianceScaling,
          initializers.RandomNormal, initializers.RandomUniform, initializers.TruncatedNormal]


@pytest.mark.parametrize("cls", SEEDED, ids=lambda cls: cls.__name__)
def test_seeded_initializers_are_reproducible(cls):
    a = cls(seed=42)((3, 3, 4, 8))
    b = cls(seed=42)((3, 3, 4, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, cls(seed=43)((3, 3, 4, 8)))
    # The global random state does not affect a seeded initializer.
    utils.set_random_seed(1)
    c = cls(seed=42)((3, 3, 4, 8))
    utils.set_random_seed(2)
    np.testing.assert_array_equal(c, cls(seed=42)((3, 3, 4, 8)))
    np.testing.assert_array_equal(a, c)


def test_seeded_initializer_instance_repeats_its_values_like_keras(tf):
    """Keras documents that an initializer seeded with an integer produces the same values on
    every call (so a seeded instance shared by two layers of one shape gives both the same
    kernel, and rebuilding a layer reproduces its weights). fastcnn should behave the same."""
    differing = []
    for cls in SEEDED:
        keras_initializer = getattr(tf.keras.initializers, cls.__name__)(seed=42)
        np.testing.assert_array_equal(np.asarray(keras_initializer((4, 6))), np.asarray(keras_initializer((4, 6))))
        initializer = cls(seed=42)
        if not np.array_equal(initializer((4, 6)), initializer((4, 6))):
            differing.append(cls.__name__)
    assert differing == [], f"a second call of the same seeded instance gives new values: {differing}"


def _seeded_model():
    return models.Sequential([
        layers.Input((10, 10, 3)),
        layers.Conv2D(6, 3, kernel_initializer="he_normal", bias_initializer="random_uniform"),
        layers.BatchNormalization(gamma_initializer="random_normal"),
        layers.Flatten(),
        layers.Dense(5, kernel_initializer="lecun_uniform"),
    ])


def test_set_random_seed_makes_layer_initialisation_reproducible():
    utils.set_random_seed(11)
    first = _seeded_model().get_weights()
    utils.set_random_seed(11)
    second = _seeded_model().get_weights()
    utils.set_random_seed(12)
    third = _seeded_model().get_weights()
    assert len(first) == len(second) == 8
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    random_indices = (0, 1, 2, 6)  # conv kernel and bias, gamma, dense kernel
    for index in random_indices:
        assert not np.array_equal(first[index], third[index]), index
    # The default glorot_uniform of a lazily built model is covered too.
    utils.set_random_seed(5)
    lazy = models.Sequential([layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(2)])
    lazy.build((None, 6, 6, 1))
    utils.set_random_seed(5)
    again = models.Sequential([layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(2)])
    again.predict(np.zeros((1, 6, 6, 1), np.float32), verbose=0)
    for a, b in zip(lazy.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [
    lambda: initializers.get("glorot"),
    lambda: initializers.get("Glorot_Uniform_"),
    lambda: layers.Conv2D(2, 3, kernel_initializer="bogus_init"),
    lambda: layers.Conv2D(2, 3, bias_initializer="bogus_init"),
    lambda: layers.Dense(2, kernel_initializer="bogus_init"),
    lambda: layers.Dense(2, bias_initializer="bogus_init"),
    lambda: layers.BatchNormalization(gamma_initializer="bogus_init"),
    lambda: layers.BatchNormalization(beta_initializer="bogus_init"),
    lambda: layers.BatchNormalization(moving_mean_initializer="bogus_init"),
    lambda: layers.BatchNormalization(moving_variance_initializer="bogus_init"),
])
def test_unknown_initializer_names_raise_naming_the_value(make):
    with pytest.raises(ValueError) as error:
        make()
    message = str(error.value)
    assert "bogus_init" in message or "glorot" in message.lower()
    assert re.search(r"'(bogus_init|glorot|Glorot_Uniform_)'", message), message


@pytest.mark.parametrize("make,pattern", [
    (lambda: initializers.VarianceScaling(mode="fan_x"), r"mode.*'fan_x'"),
    (lambda: initializers.VarianceScaling(distribution="cauchy"), r"distribution.*'cauchy'"),
    (lambda: initializers.VarianceScaling(scale=0.0), r"scale.*0"),
    (lambda: initializers.RandomUniform(minval=1.0, maxval=1.0), r"minval.*maxval"),
    (lambda: initializers.RandomNormal(stddev=-1.0), r"stddev.*-1"),
    (lambda: initializers.TruncatedNormal(stddev=0.0), r"stddev.*0"),
    (lambda: initializers.GlorotUniform(seed="a"), r"seed.*'a'"),
    (lambda: initializers.HeNormal(seed=1.5), r"seed.*1\.5"),
])
def test_bad_initializer_arguments(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_layer_initializers_by_name_and_object():
    model = models.Sequential([
        layers.Input((5, 5, 2)),
        layers.Conv2D(3, 3, kernel_initializer="ones", bias_initializer=initializers.Constant(0.5)),
        layers.BatchNormalization(gamma_initializer=initializers.Constant(2.0), beta_initializer="ones",
                                  moving_mean_initializer=initializers.Constant(-1.0),
                                  moving_variance_initializer="zeros"),
        layers.Flatten(),
        layers.Dense(4, kernel_initializer=initializers.Zeros(), bias_initializer="Ones"),
        layers.Dense(2, kernel_initializer="GlorotUniform", bias_initializer=initializers.RandomUniform(1.0, 2.0)),
    ])
    w = model.get_weights()
    np.testing.assert_array_equal(w[0], np.ones((3, 3, 2, 3), np.float32))
    np.testing.assert_array_equal(w[1], np.full(3, 0.5, np.float32))
    np.testing.assert_array_equal(w[2], np.full(3, 2.0, np.float32))   # gamma
    np.testing.assert_array_equal(w[3], np.ones(3, np.float32))        # beta
    np.testing.assert_array_equal(w[4], np.full(3, -1.0, np.float32))  # moving_mean
    np.testing.assert_array_equal(w[5], np.zeros(3, np.float32))       # moving_variance
    np.testing.assert_array_equal(w[6], np.zeros((27, 4), np.float32))
    np.testing.assert_array_equal(w[7], np.ones(4, np.float32))
    assert w[8].shape == (4, 2) and np.max(np.abs(w[8])) <= math.sqrt(6 / 6) and np.any(w[8] != 0)
    assert np.all((w[9] >= 1.0) & (w[9] <= 2.0))
    # The initial weights are the ones the model computes with: x=1 everywhere -> conv 18 + 0.5.
    x = np.ones((1, 5, 5, 2), np.float32)
    hidden = models.Sequential(model.layers[:1])
    np.testing.assert_allclose(hidden.predict(x, verbose=0), np.full((1, 3, 3, 3), 18.5), rtol=1e-6)


def test_keras_initializer_defaults_for_layers():
    """Conv2D/Dense: glorot_uniform kernel, zero bias; BatchNormalization: ones, zeros, zeros, ones."""
    model = models.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(4, 3), layers.BatchNormalization(),
                               layers.Flatten(), layers.Dense(3)])
    w = model.get_weights()
    assert np.max(np.abs(w[0])) <= math.sqrt(6.0 / (18 + 36)) and np.all(w[1] == 0)
    np.testing.assert_array_equal(np.stack(w[2:6]), np.array([[1] * 4, [0] * 4, [0] * 4, [1] * 4], np.float32))
    assert np.max(np.abs(w[6])) <= math.sqrt(6.0 / (64 + 3)) and np.all(w[7] == 0)


# --------------------------------------------------------------------------------------------
# the shapes data set
# --------------------------------------------------------------------------------------------

def test_shapes_default_image_size_and_dtypes():
    (x_train, y_train), (x_test, y_test) = datasets.shapes.load_data(num_train=30, num_test=20)
    assert x_train.shape == (30, 64, 64, 3) and x_test.shape == (20, 64, 64, 3)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.shape == (30,) and y_test.shape == (20,)
    assert y_train.dtype.kind in "ui" and y_test.dtype.kind in "ui"
    assert len(datasets.shapes.CLASS_NAMES) == 10
    # Images use the range: dark noisy backgrounds and bright shapes.
    assert x_train.min() < 30 and x_train.max() > 200
    assert not np.array_equal(x_train[:20], x_test)


@pytest.mark.parametrize("num_train,num_test", [(1000, 200), (25, 13)])
def test_shapes_labels_are_balanced(num_train, num_test):
    (_, y_train), (_, y_test) = datasets.shapes.load_data(num_train=num_train, num_test=num_test, image_size=16)
    for labels, count in ((y_train, num_train), (y_test, num_test)):
        assert labels.min() >= 0 and labels.max() <= 9
        counts = np.bincount(labels, minlength=10)
        assert len(counts) == 10 and counts.sum() == count
        assert counts.max() - counts.min() <= 1, counts
        # Shuffled, not sorted by class.
        assert np.any(np.diff(labels.astype(int)) < 0)


def test_shapes_deterministic_per_seed_and_seeds_differ():
    first = datasets.shapes.load_data(num_train=40, num_test=10, image_size=24, seed=3)
    second = datasets.shapes.load_data(num_train=40, num_test=10, image_size=24, seed=3)
    other = datasets.shapes.load_data(num_train=40, num_test=10, image_size=24, seed=4)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(first[0][0], other[0][0])
    assert not np.array_equal(first[0][1], other[0][1])
    default = datasets.shapes.load_data(num_train=40, num_test=10, image_size=24)
    np.testing.assert_array_equal(default[0][0], datasets.shapes.load_data(num_train=40, num_test=10,
                                                                           image_size=24, seed=0)[0][0])


@pytest.mark.parametrize("image_size", [16, 32, 48])
def test_shapes_image_size(image_size):
    (x_train, _), (x_test, _) = datasets.shapes.load_data(num_train=10, num_test=3, image_size=image_size)
    assert x_train.shape == (10, image_size, image_size, 3)
    assert x_test.shape == (3, image_size, image_size, 3)


def test_shapes_empty_splits():
    (x_train, y_train), (x_test, y_test) = datasets.shapes.load_data(num_train=0, num_test=0, image_size=16)
    assert x_train.shape == (0, 16, 16, 3) and y_train.shape == (0,)
    assert x_test.shape == (0, 16, 16, 3) and y_test.shape == (0,)


@pytest.mark.parametrize("kwargs,pattern", [
    ({"num_train": -1}, r"num_train.*-1"),
    ({"num_train": 10.5}, r"num_train.*10\.5"),
    ({"num_test": -5}, r"num_test.*-5"),
    ({"num_test": "10"}, r"num_test.*'10'"),
    ({"image_size": 8}, r"image_size.*8"),
    ({"image_size": 0}, r"image_size.*0"),
    ({"image_size": True}, r"image_size.*True"),
    ({"image_size": 32.0}, r"image_size.*32\.0"),
    ({"seed": -1}, r"seed.*-1"),
    ({"seed": 1.5}, r"seed.*1\.5"),
    ({"seed": None}, r"seed.*None"),
])
def test_shapes_bad_arguments(kwargs, pattern):
    arguments = {"num_train": 10, "num_test": 10, "image_size": 16, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        datasets.shapes.load_data(**arguments)


def test_shapes_cnn_clearly_beats_a_linear_model():
    """The data set's point: colour and position carry no class information, so a linear softmax
    on the pixels stays near chance while a small CNN learns the shapes. Observed (1500 train /
    500 test at 32x32, five epochs each, seed 0): linear ~0.15-0.21 test accuracy, CNN ~0.93-0.95
    (about 15 s on two cores)."""
    (x_train, y_train), (x_test, y_test) = datasets.shapes.load_data(num_train=1500, num_test=500,
                                                                     image_size=32, seed=0)
    x_train = x_train.astype(np.float32) / 255.0
    x_test = x_test.astype(np.float32) / 255.0
    utils.set_random_seed(0)
    linear = models.Sequential([layers.Input((32, 32, 3)), layers.Flatten(), layers.Dense(10, activation="softmax")])
    linear.compile(optimizer=optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    linear.fit(x_train, y_train, epochs=5, batch_size=32, verbose=0)
    linear_accuracy = linear.evaluate(x_test, y_test, verbose=0)[1]
    cnn = models.Sequential([
        layers.Input((32, 32, 3)),
        layers.Conv2D(8, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu"),
        layers.GlobalMaxPooling2D(),
        layers.Dense(10, activation="softmax"),
    ])
    cnn.compile(optimizer=optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    cnn.fit(x_train, y_train, epochs=5, batch_size=32, verbose=0)
    cnn_accuracy = cnn.evaluate(x_test, y_test, verbose=0)[1]
    assert linear_accuracy < 0.4, linear_accuracy
    assert cnn_accuracy > 0.75, cnn_accuracy
    assert cnn_accuracy > linear_accuracy + 0.4, (linear_accuracy, cnn_accuracy)


# --------------------------------------------------------------------------------------------
# bad arguments to the new layers, schedules and optimizers
# --------------------------------------------------------------------------------------------

def test_batch_normalization_axis_must_be_the_channel_axis():
    for axis in (1, 2, 0, -2, 4):
        with pytest.raises(ValueError, match=rf"channel axis only.*Received: axis={axis}\b"):
            models.Sequential([layers.Input((8, 8, 2)), layers.BatchNormalization(axis=axis)])
    # Lazily built from data, the same message.
    model = models.Sequential([layers.BatchNormalization(axis=1), layers.Flatten(), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"channel axis only.*axis=1\b"):
        model.predict(np.zeros((2, 8, 8, 2), np.float32), verbose=0)
    # The explicit last axis is accepted, on images and on vectors.
    models.Sequential([layers.Input((8, 8, 2)), layers.BatchNormalization(axis=3)])
    models.Sequential([layers.Input((6,)), layers.BatchNormalization(axis=1)])
    with pytest.raises(ValueError, match=r"axis.*'last'"):
        layers.BatchNormalization(axis="last")


@pytest.mark.parametrize("kwargs,pattern", [
    ({"epsilon": 0}, r"epsilon.*epsilon=0\b"),
    ({"epsilon": 0.0}, r"epsilon.*epsilon=0\.0\b"),
    ({"epsilon": -1e-3}, r"epsilon.*epsilon=-0\.001\b"),
    ({"epsilon": "small"}, r"epsilon.*'small'"),
    ({"momentum": 1.5}, r"momentum.*\[0, 1\].*momentum=1\.5\b"),
    ({"momentum": -0.1}, r"momentum.*momentum=-0\.1\b"),
    ({"momentum": float("nan")}, r"momentum.*nan"),
    ({"momentum": True}, r"momentum.*True"),
])
def test_batch_normalization_bad_epsilon_and_momentum(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        layers.BatchNormalization(**kwargs)


def test_batch_normalization_edge_momentum_values_are_accepted():
    for momentum in (0, 0.0, 1, 1.0):
        layers.BatchNormalization(momentum=momentum)


@pytest.mark.parametrize("index", [0, 1, 2, 3], ids=["gamma", "beta", "moving_mean", "moving_variance"])
def test_batch_normalization_set_weights_wrong_length(index):
    model = models.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(4, 3), layers.BatchNormalization(),
                               layers.Flatten(), layers.Dense(3)])
    bn = model.layers[1]
    before = model.get_weights()
    new = [np.full(4, 0.5, np.float32) for _ in range(4)]
    new[index] = np.full(3, 0.5, np.float32)
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        bn.set_weights(new)
    full = before[:2] + new + before[6:]
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        model.set_weights(full)
    new[index] = np.full((4, 1), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"\(4, 1\)"):
        bn.set_weights(new)
    with pytest.raises(ValueError, match=r"length 3.*4 weights"):
        bn.set_weights(new[:3])
    for a, b in zip(model.get_weights(), before):  # nothing was written
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make,pattern", [
    (lambda: layers.Dense(3, activation="relux"), r"'relux'"),
    (lambda: layers.Conv2D(3, 3, activation="RELU"), r"'RELU'"),
    (lambda: layers.Activation("leakyrelu"), r"'leakyrelu'"),
    (lambda: layers.Dense(3, activation=42), r"42"),
    (lambda: optimizers.get("adamx"), r"'adamx'"),
    (lambda: optimizers.get("nadamw"), r"'nadamw'"),
    (lambda: optimizers.get(None), r"None"),
    (lambda: initializers.get("uniform_glorot"), r"'uniform_glorot'"),
    (lambda: initializers.get(3), r"3"),
])
def test_unknown_names_raise_value_error_naming_them(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_compile_with_unknown_optimizer_name():
    model = models.Sequential([layers.Input((4,)), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"'adamz'"):
        model.compile(optimizer="adamz", loss="sparse_categorical_crossentropy")
    # Every Keras optimizer name fastcnn offers resolves, in any case.
    for name, cls in (("sgd", optimizers.SGD), ("Adam", optimizers.Adam), ("adamw", optimizers.AdamW),
                      ("RMSprop", optimizers.RMSprop), ("adagrad", optimizers.Adagrad), ("Nadam", optimizers.Nadam)):
        model.compile(optimizer=name, loss="sparse_categorical_crossentropy")
        assert type(model.optimizer) is cls


@pytest.mark.parametrize("pool", [layers.MaxPooling2D, layers.AveragePooling2D])
@pytest.mark.parametrize("pool_size,input_shape", [((4, 4), (3, 3, 2)), ((2, 5), (6, 4, 1)), (7, (6, 6, 1))])
def test_pooling_larger_than_input_with_valid_padding(pool, pool_size, input_shape):
    with pytest.raises(ValueError, match=r"pool_size=\(\d, \d\).*larger than the input.*padding='valid'"):
        models.Sequential([layers.Input(input_shape), pool(pool_size)])
    with pytest.raises(ValueError, match=r"larger than the input"):
        models.Sequential([pool(pool_size), layers.Flatten(), layers.Dense(2)]).predict(
            np.zeros((1,) + input_shape, np.float32), verbose=0)
    # 'same' padding takes any window.
    model = models.Sequential([layers.Input(input_shape), pool(pool_size, padding="same")])
    assert model.output_shape[1:3] == tuple(math.ceil(s / p) for s, p in
                                            zip(input_shape[:2], layers.MaxPooling2D(pool_size).pool_size))


@pytest.mark.parametrize("padding,shown", [
    (-1, r"padding=-1"), ((1, -1), r"padding=\(1, -1\)"), ((-2, 0), r"padding=\(-2, 0\)"),
    (((0, 1), (-1, 0)), r"padding=\(\(0, 1\), \(-1, 0\)\)"), (((-1, 0), (0, 0)), r"padding=\(\(-1, 0\)"),
])
def test_zero_padding_negative(padding, shown):
    with pytest.raises(ValueError, match=r">= 0.*" + shown):
        layers.ZeroPadding2D(padding)


@pytest.mark.parametrize("padding", [(1, 2, 3), ((1, 2, 3), (0, 0)), "same", 1.5])
def test_zero_padding_malformed(padding):
    with pytest.raises(ValueError, match=r"padding"):
        layers.ZeroPadding2D(padding)


@pytest.mark.parametrize("target,pattern", [
    ((5, 5), r"total size.*\(None, 8, 8, 2\).*\(5, 5\)"),
    ((-1, 7), r"cannot reshape.*\(None, 8, 8, 2\).*\(-1, 7\)"),
    ((8, 8, 3), r"total size.*\(8, 8, 3\)"),
])
def test_reshape_incompatible_target(target, pattern):
    with pytest.raises(ValueError, match=pattern):
        models.Sequential([layers.Input((8, 8, 2)), layers.Reshape(target)])
    with pytest.raises(ValueError, match=pattern.split(".*")[0]):
        models.Sequential([layers.Reshape(target), layers.Flatten(), layers.Dense(2)]).predict(
            np.zeros((1, 8, 8, 2), np.float32), verbose=0)


@pytest.mark.parametrize("target", [(0, 4), (-1, -1), (-2, 64), (2.5, 4), "abc", 7, (), (2, 2, 2, 16)])
def test_reshape_malformed_target(target):
    with pytest.raises(ValueError, match=r"target_shape"):
        layers.Reshape(target)


def test_reshape_compatible_targets_work():
    model = models.Sequential([layers.Input((8, 8, 2)), layers.Reshape((-1, 4)), layers.Reshape((4, 4, 8))])
    assert model.output_shape == (None, 4, 4, 8)
    x = np.arange(2 * 128, dtype=np.float32).reshape(2, 8, 8, 2)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x.reshape(2, 4, 4, 8))


@pytest.mark.parametrize("slope", [-0.1, -1, float("nan"), "0.2", None])
def test_leaky_relu_bad_negative_slope(slope):
    with pytest.raises(ValueError, match=r"negative_slope"):
        layers.LeakyReLU(negative_slope=slope)


def test_leaky_relu_accepted_slopes():
    assert layers.LeakyReLU().negative_slope == pytest.approx(0.3)
    assert layers.LeakyReLU(negative_slope=0).negative_slope == 0.0
    values = layers.LeakyReLU(negative_slope=0.5)(np.array([[-2.0, 3.0]], np.float32))
    np.testing.assert_allclose(values, [[-1.0, 3.0]])


@pytest.mark.parametrize("make,pattern", [
    (lambda: schedules.ExponentialDecay(0.1, decay_steps=0, decay_rate=0.5), r"decay_steps.*decay_steps=0\b"),
    (lambda: schedules.ExponentialDecay(0.1, decay_steps=-3, decay_rate=0.5), r"decay_steps.*-3"),
    (lambda: schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=-0.5), r"decay_rate.*-0\.5"),
    (lambda: schedules.ExponentialDecay(-0.1, decay_steps=10, decay_rate=0.5), r"initial_learning_rate.*-0\.1"),
    (lambda: schedules.ExponentialDecay("0.1", decay_steps=10, decay_rate=0.5), r"initial_learning_rate.*'0\.1'"),
    (lambda: schedules.ExponentialDecay(0.1, decay_steps=float("nan"), decay_rate=0.5), r"decay_steps.*nan"),
    (lambda: schedules.PiecewiseConstantDecay([5, 10], [0.1, 0.05]), r"length.*boundaries.*values"),
    (lambda: schedules.PiecewiseConstantDecay([5], [0.1, 0.05, 0.01]), r"length"),
    (lambda: schedules.PiecewiseConstantDecay([10, 5], [0.1, 0.05, 0.01]), r"increasing.*\[10, 5\]"),
    (lambda: schedules.PiecewiseConstantDecay([5, 5], [0.1, 0.05, 0.01]), r"increasing.*\[5, 5\]"),
    (lambda: schedules.PiecewiseConstantDecay([5], [0.1, -0.05]), r"values.*-0\.05"),
    (lambda: schedules.CosineDecay(0.1, decay_steps=0), r"decay_steps.*0"),
    (lambda: schedules.CosineDecay(0.1, decay_steps=10, alpha=-0.1), r"alpha.*-0\.1"),
    (lambda: schedules.CosineDecay(-1.0, decay_steps=10), r"initial_learning_rate.*-1"),
    (lambda: schedules.CosineDecay(0.0, decay_steps=10, warmup_target=-0.1, warmup_steps=5),
     r"warmup_target.*-0\.1"),
    (lambda: schedules.CosineDecay(0.0, decay_steps=10, warmup_target=0.1, warmup_steps=-5), r"warmup_steps.*-5"),
])
def test_schedules_bad_arguments(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("cls", [optimizers.SGD, optimizers.Adam, optimizers.AdamW, optimizers.RMSprop,
                                 optimizers.Adagrad, optimizers.Nadam])
@pytest.mark.parametrize("value,shown", [(-0.01, r"-0\.01"), (-1, r"-1(\.0)?\b"),
                                         (float("nan"), r"nan"), ("0.1", r"'0\.1'"), (None, r"None")])
def test_optimizer_learning_rate_must_be_non_negative(cls, value, shown):
    with pytest.raises(ValueError, match=r"learning_rate.*" + shown):
        cls(learning_rate=value)
    optimizer = cls()
    with pytest.raises(ValueError, match=r"learning_rate.*" + shown):
        optimizer.learning_rate = value
    assert optimizer.learning_rate == pytest.approx(cls().learning_rate)  # unchanged


@pytest.mark.parametrize("make,pattern", [
    (lambda: optimizers.SGD(momentum=1.5), r"momentum.*1\.5"),
    (lambda: optimizers.SGD(momentum=-0.5), r"momentum.*-0\.5"),
    (lambda: optimizers.Adam(beta_1=1.0), r"beta_1.*1\.0"),
    (lambda: optimizers.Nadam(beta_2=-0.1), r"beta_2.*-0\.1"),
    (lambda: optimizers.Adam(epsilon=0), r"epsilon.*0"),
    (lambda: optimizers.RMSprop(rho=1.2), r"rho.*1\.2"),
    (lambda: optimizers.Adagrad(initial_accumulator_value=-1), r"initial_accumulator_value.*-1"),
    (lambda: optimizers.SGD(clipnorm=0), r"clipnorm.*0"),
    (lambda: optimizers.SGD(clipvalue=-1), r"clipvalue.*-1"),
    (lambda: optimizers.SGD(global_clipnorm=-1), r"global_clipnorm.*-1"),
    (lambda: optimizers.Adam(weight_decay=-0.1), r"weight_decay.*-0\.1"),
    (lambda: optimizers.AdamW(weight_decay=None), r"weight_decay.*None"),
])
def test_optimizer_bad_hyperparameters(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("make,pattern", [
    (lambda: optimizers.SGD(nesterov="yes"), r"nesterov.*'yes'"),
    (lambda: optimizers.Adam(amsgrad=1), r"amsgrad.*1"),
    (lambda: optimizers.RMSprop(centered="no"), r"centered.*'no'"),
    (lambda: optimizers.SGD(momentun=0.9), r"momentun"),
])
def test_optimizer_bad_types(make, pattern):
    with pytest.raises(TypeError, match=pattern):
        make()


# --------------------------------------------------------------------------------------------
# Layer and Sequential structure API
# --------------------------------------------------------------------------------------------

def _structured():
    return models.Sequential([
        layers.Input((8, 8, 2)),
        layers.Conv2D(4, 3, name="base_conv"),
        layers.BatchNormalization(name="base_bn"),
        layers.ReLU(name="base_relu"),
        layers.Flatten(name="flat"),
        layers.Dense(6, activation="relu", name="hidden"),
        layers.Dense(3, activation="softmax", name="head"),
    ], name="structured")


def test_get_layer_by_name_and_index():
    model = _structured()
    assert [layer.name for layer in model.layers] == ["base_conv", "base_bn", "base_relu", "flat", "hidden", "head"]
    assert model.get_layer("hidden") is model.layers[4]
    assert model.get_layer(index=0) is model.layers[0]
    assert model.get_layer(index=-1) is model.layers[-1]
    assert isinstance(model.get_layer("base_bn"), layers.BatchNormalization)
    with pytest.raises(ValueError, match=r"No such layer: missing"):
        model.get_layer("missing")
    with pytest.raises(ValueError, match=r"index 6.*6 layers"):
        model.get_layer(index=6)
    # `layers` is a copy: changing it does not change the model.
    listed = model.layers
    listed.pop()
    assert len(model.layers) == 6


def test_pop_keeps_the_remaining_weights_and_rebuilds():
    model = _structured()
    before = model.get_weights()
    x = np.random.default_rng(0).random((3, 8, 8, 2)).astype(np.float32)
    head = model.pop()
    assert head.name == "head" and len(model.layers) == 5
    assert model.output_shape == (None, 6)
    assert model.predict(x, verbose=0).shape == (3, 6)
    for a, b in zip(model.get_weights(), before[:-2]):
        np.testing.assert_array_equal(a, b)
    model.add(layers.Dense(2, name="new_head"))
    assert model.output_shape == (None, 2) and model.layers[-1].name == "new_head"
    assert len(model.get_weights()) == len(before)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, np.array([0, 1, 1]), verbose=0)
    while model.layers:
        model.pop()
    with pytest.raises(IndexError):
        model.pop()


def test_layer_trainable_flags_in_weight_lists():
    model = _structured()
    conv, bn, _, _, hidden, head = model.layers
    assert len(model.weights) == 10
    assert [w.path for w in model.trainable_weights] == [
        "base_conv/kernel", "base_conv/bias", "base_bn/gamma", "base_bn/beta",
        "hidden/kernel", "hidden/bias", "head/kernel", "head/bias"]
    assert [w.path for w in model.non_trainable_weights] == ["base_bn/moving_mean", "base_bn/moving_variance"]
    model.layers[0].trainable = False
    assert conv.trainable is False
    assert conv.trainable_weights == [] and len(conv.non_trainable_weights) == 2
    assert [w.path for w in model.trainable_weights] == [
        "base_bn/gamma", "base_bn/beta", "hidden/kernel", "hidden/bias", "head/kernel", "head/bias"]
    assert [w.path for w in model.non_trainable_weights] == [
        "base_conv/kernel", "base_conv/bias", "base_bn/moving_mean", "base_bn/moving_variance"]
    model.layers[1].trainable = False
    assert [w.path for w in model.non_trainable_weights] == [
        "base_conv/kernel", "base_conv/bias", "base_bn/gamma", "base_bn/beta", "base_bn/moving_mean",
        "base_bn/moving_variance"]
    # The order of model.weights (and get_weights) does not depend on the flags.
    assert [w.path for w in model.weights][:6] == [
        "base_conv/kernel", "base_conv/bias", "base_bn/gamma", "base_bn/beta", "base_bn/moving_mean",
        "base_bn/moving_variance"]
    # Counted in summary.
    lines = []
    model.summary(print_fn=lambda text, **kwargs: lines.append(text))
    trainable = sum(w.numpy().size for w in model.trainable_weights)
    non_trainable = sum(w.numpy().size for w in model.non_trainable_weights)
    assert trainable == hidden.count_params() + head.count_params()
    assert f" Trainable params: {trainable:,} " in lines[0]
    assert f" Non-trainable params: {non_trainable:,} " in lines[0]
    assert model.count_params() == trainable + non_trainable
    # Frozen layers do not change in fit; the others do.
    before = model.get_weights()
    model.compile(optimizer=optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(1).random((8, 8, 8, 2)).astype(np.float32)
    model.fit(x, np.arange(8) % 3, batch_size=4, verbose=0)
    after = model.get_weights()
    for index in range(6):
        np.testing.assert_array_equal(after[index], before[index])
    for index in range(6, 10):
        assert np.any(after[index] != before[index])
    # Unfreezing puts the weights back in the trainable list, in layer order.
    conv.trainable = True
    bn.trainable = True
    assert len(model.trainable_weights) == 8 and len(model.non_trainable_weights) == 2


def test_model_trainable_flag_overrides_layers():
    model = _structured()
    model.trainable = False
    assert model.trainable is False
    assert model.trainable_weights == [] and len(model.non_trainable_weights) == 10
    # Keras 3 sets the flag on every layer inside (Layer.trainable's setter), so unfreezing the
    # model unfreezes them all.
    assert not any(layer.trainable for layer in model.layers)
    model.trainable = True
    assert all(layer.trainable for layer in model.layers)
    assert len(model.trainable_weights) == 8
    with pytest.raises(TypeError, match=r"trainable.*1"):
        model.trainable = 1
    with pytest.raises(TypeError, match=r"trainable.*'no'"):
        model.layers[0].trainable = "no"
    with pytest.raises(TypeError, match=r"trainable"):
        layers.Dense(2, trainable=None)
    frozen = layers.Dense(2, trainable=False)
    built = models.Sequential([layers.Input((3,)), frozen])
    assert built.trainable_weights == [] and len(built.non_trainable_weights) == 2


def test_layer_weights_are_variables_with_keras_attributes():
    model = _structured()
    kernel = model.get_layer("base_conv").weights[0]
    assert isinstance(kernel, layers.Variable)
    assert kernel.shape == (3, 3, 2, 4) and kernel.dtype == "float32" and kernel.trainable
    assert kernel.name == "kernel" and kernel.path == "base_conv/kernel"
    assert model.get_layer("base_bn").weights[2].trainable is False
    kernel.assign(np.zeros((3, 3, 2, 4)))
    np.testing.assert_array_equal(model.get_weights()[0], np.zeros((3, 3, 2, 4), np.float32))
    assert fastcnn.layers.Layer is layers.Layer
