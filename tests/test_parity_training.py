"""Training features against Keras 3 (TensorFlow 2.21): every optimizer and its options, gradient
clipping, weight decay, learning-rate schedules, sample and class weights, frozen layers and the
*_on_batch methods. Each comparison starts both models from the same weights (set_weights) and
feeds the same batches (shuffle=False) for a few steps; weights must agree to <= 1e-4 relative
and reported losses to rtol 1e-4.

Keras runs eagerly here (``run_eagerly=True``): the same kernels as its traced train step, without
the seconds of tracing per compile that would dominate these tiny models.
"""

import os
import warnings

import numpy as np
import pytest

import fastcnn
from fastcnn import optimizers
from fastcnn.optimizers import schedules
from conftest import relative_error

SHAPE = (8, 8, 2)
CLASSES = 5


def _seed(tf, seed=7):
    warnings.filterwarnings("ignore", message=".*input_shape.*", category=UserWarning)
    tf.keras.utils.set_random_seed(int(os.environ.get("FASTCNN_PARITY_SEED", seed)))


def _cnn(lib):
    """Two small convolutions and a softmax head; `lib` is `fastcnn` or `tf.keras`."""
    L = lib.layers
    return lib.models.Sequential([
        L.Conv2D(4, (3, 3), activation="relu", input_shape=SHAPE),
        L.Conv2D(3, (3, 3), activation="tanh"),
        L.Flatten(),
        L.Dense(CLASSES, activation="softmax"),
    ])


def _transfer(lib):
    """A convolutional base and a dense head, as in transfer learning."""
    L = lib.layers
    return lib.models.Sequential([
        L.Conv2D(4, (3, 3), activation="relu", input_shape=SHAPE),
        L.Conv2D(3, (3, 3), activation="relu"),
        L.Flatten(),
        L.Dense(8, activation="relu"),
        L.Dense(CLASSES, activation="softmax"),
    ])


def _bn_model(lib):
    L = lib.layers
    return lib.models.Sequential([
        L.Conv2D(4, (3, 3), input_shape=SHAPE),
        L.BatchNormalization(),
        L.Activation("relu"),
        L.Flatten(),
        L.Dense(CLASSES, activation="softmax"),
    ])


def _data(n=64, seed=3):
    generator = np.random.default_rng(seed)
    return generator.random((n,) + SHAPE).astype(np.float32), generator.integers(0, CLASSES, n)


def _pair(tf, builder=_cnn, freeze=()):
    """(fastcnn model, Keras model) with Keras's seeded initial weights in both; `freeze` lists
    layer indices set to trainable=False before compiling."""
    _seed(tf)
    keras_model = builder(tf.keras)
    model = builder(fastcnn)
    model.set_weights(keras_model.get_weights())
    for index in freeze:
        keras_model.layers[index].trainable = False
        model.layers[index].trainable = False
    return model, keras_model


def _compile(model, keras_model, make_optimizer, tf, metrics=("accuracy",)):
    metrics = list(metrics) if metrics else None
    keras_model.compile(optimizer=make_optimizer(tf.keras.optimizers), loss="sparse_categorical_crossentropy",
                        metrics=metrics, run_eagerly=True)
    model.compile(optimizer=make_optimizer(optimizers), loss="sparse_categorical_crossentropy", metrics=metrics)


def _assert_weights_match(model, keras_model, bound=1e-4):
    actual, expected = model.get_weights(), keras_model.get_weights()
    assert len(actual) == len(expected)
    for variable, a, e in zip(model.weights, actual, expected):
        assert relative_error(a, e) <= bound, variable.path


def _fit_both(model, keras_model, x, y, **kwargs):
    kwargs = {"batch_size": 16, "epochs": 1, "shuffle": False, "verbose": 0, **kwargs}
    keras_history = keras_model.fit(x, y, **kwargs)
    history = model.fit(x, y, **kwargs)
    return history.history, keras_history.history


def _assert_history_match(history, keras_history):
    for key, values in keras_history.items():
        assert key in history, key
        np.testing.assert_allclose(history[key], values, rtol=1e-4, err_msg=key)


# --------------------------------------------------------------------------------------------
# optimizers
# --------------------------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda o: o.SGD(learning_rate=0.1),
    "sgd_momentum": lambda o: o.SGD(learning_rate=0.05, momentum=0.9),
    "sgd_nesterov": lambda o: o.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    "adam": lambda o: o.Adam(learning_rate=0.01),
    "adam_epsilon": lambda o: o.Adam(learning_rate=0.01, epsilon=1e-3),
    "adam_amsgrad": lambda o: o.Adam(learning_rate=0.01, amsgrad=True, epsilon=1e-3),
    "adamw_default_decay": lambda o: o.AdamW(learning_rate=0.01, epsilon=1e-3),
    "adamw_decay_0.1": lambda o: o.AdamW(learning_rate=0.01, weight_decay=0.1, epsilon=1e-3),
    "rmsprop_momentum": lambda o: o.RMSprop(learning_rate=0.01, momentum=0.9),
    "rmsprop_centered": lambda o: o.RMSprop(learning_rate=0.01, centered=True),
    "rmsprop_centered_momentum": lambda o: o.RMSprop(learning_rate=0.005, rho=0.8, momentum=0.5, centered=True),
    "adagrad_defaults": lambda o: o.Adagrad(),
    "adagrad_accumulator": lambda o: o.Adagrad(learning_rate=0.1, initial_accumulator_value=0.5, epsilon=1e-5),
    "nadam": lambda o: o.Nadam(learning_rate=0.01, epsilon=1e-3),
    "nadam_defaults": lambda o: o.Nadam(),
    "sgd_weight_decay": lambda o: o.SGD(learning_rate=0.1, weight_decay=0.05),
    "sgd_momentum_weight_decay": lambda o: o.SGD(learning_rate=0.05, momentum=0.9, weight_decay=0.2),
    "adam_weight_decay": lambda o: o.Adam(learning_rate=0.01, weight_decay=0.05, epsilon=1e-3),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_match_keras(tf, name):
    """Four steps (64 samples, batch 16). The Adam family mostly uses epsilon=1e-3: with Keras's
    1e-7 an update m/(sqrt(v)+eps) of a parameter whose gradient is ~0 is rounding noise over
    rounding noise; 'adam' keeps the default to show that it matches on this model too."""
    model, keras_model = _pair(tf)
    initial = model.get_weights()
    _compile(model, keras_model, OPTIMIZERS[name], tf)
    x, y = _data()
    history, keras_history = _fit_both(model, keras_model, x, y)
    assert model.optimizer.iterations == 4 == int(keras_model.optimizer.iterations)
    _assert_weights_match(model, keras_model)
    _assert_history_match(history, keras_history)
    # The updates themselves (not just the weights they are added to) agree closely, so a small
    # update rule error could not hide under the size of the weights.
    for variable, a, e, w0 in zip(model.weights, model.get_weights(), keras_model.get_weights(), initial):
        assert np.any(e != w0), variable.path
        assert relative_error(a - w0, e - w0) <= 1e-3, variable.path


@pytest.mark.parametrize("ours,theirs", [
    (optimizers.SGD, "SGD"), (optimizers.Adam, "Adam"), (optimizers.AdamW, "AdamW"),
    (optimizers.RMSprop, "RMSprop"), (optimizers.Adagrad, "Adagrad"), (optimizers.Nadam, "Nadam"),
])
def test_optimizer_defaults_equal_keras_config(tf, ours, theirs):
    """Every hyperparameter both configs name has Keras's default (names differ: Keras numbers
    them sgd, sgd_1, ...). Keras stores the learning rate as float32."""
    config = ours().get_config()
    keras_config = getattr(tf.keras.optimizers, theirs)().get_config()
    shared = (set(config) & set(keras_config)) - {"name"}
    assert {"learning_rate", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm"} <= shared
    for key in sorted(shared):
        if isinstance(keras_config[key], float):
            assert config[key] == pytest.approx(keras_config[key], rel=1e-7), key
        else:
            assert config[key] == keras_config[key], key
    # The hyperparameters this optimizer has beyond the base ones are all shared.
    base = {"name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm", "clipvalue"}
    assert set(config) - base <= set(keras_config)


def test_adamw_default_weight_decay_is_keras():
    assert optimizers.AdamW().weight_decay == pytest.approx(0.004)
    assert optimizers.AdamW().get_config()["weight_decay"] == pytest.approx(0.004)
    assert optimizers.Adam().weight_decay is None


# --------------------------------------------------------------------------------------------
# gradient clipping
# --------------------------------------------------------------------------------------------

def _first_batch_gradients(tf, keras_model, x, y):
    with tf.GradientTape() as tape:
        predictions = keras_model(x, training=True)
        loss = tf.keras.losses.SparseCategoricalCrossentropy()(y, predictions)
    return [g.numpy() for g in tape.gradient(loss, keras_model.trainable_variables)]


CLIPS = {
    # name: (option, value, optimizer factory); the values are well below this model's gradients
    # (asserted), so clipping acts.
    "clipnorm": ("clipnorm", 0.05, lambda o, **clip: o.SGD(learning_rate=0.1, **clip)),
    "global_clipnorm": ("global_clipnorm", 0.05, lambda o, **clip: o.SGD(learning_rate=0.1, **clip)),
    "clipvalue": ("clipvalue", 0.005, lambda o, **clip: o.SGD(learning_rate=0.1, **clip)),
    "clipnorm_adam": ("clipnorm", 0.05, lambda o, **clip: o.Adam(learning_rate=0.01, epsilon=1e-3, **clip)),
    "global_clipnorm_momentum": ("global_clipnorm", 0.05,
                                 lambda o, **clip: o.SGD(learning_rate=0.05, momentum=0.9, **clip)),
    "clipvalue_rmsprop": ("clipvalue", 0.005, lambda o, **clip: o.RMSprop(learning_rate=0.01, **clip)),
}


@pytest.mark.parametrize("name", list(CLIPS))
def test_gradient_clipping_matches_keras(tf, name):
    option, value, make = CLIPS[name]
    model, keras_model = _pair(tf)
    initial = model.get_weights()
    x, y = _data()
    gradients = _first_batch_gradients(tf, keras_model, x[:16], y[:16])
    norms = [float(np.linalg.norm(g)) for g in gradients]
    if option == "clipnorm":
        assert sum(n > 2 * value for n in norms) >= 2, norms  # clipping acts on several variables
    elif option == "global_clipnorm":
        assert float(np.sqrt(sum(n * n for n in norms))) > 2 * value, norms
    else:
        assert sum(int(np.sum(np.abs(g) > 2 * value)) for g in gradients) > 10  # many values are clipped
    _compile(model, keras_model, lambda o: make(o, **{option: value}), tf)
    assert getattr(model.optimizer, option) == pytest.approx(value)
    history, keras_history = _fit_both(model, keras_model, x, y)
    _assert_weights_match(model, keras_model)
    _assert_history_match(history, keras_history)
    for variable, a, e, w0 in zip(model.weights, model.get_weights(), keras_model.get_weights(), initial):
        assert relative_error(a - w0, e - w0) <= 1e-3, variable.path

    # Clipping changed the result: the same training unclipped ends clearly elsewhere.
    unclipped = _cnn(fastcnn)
    unclipped.set_weights(initial)
    unclipped.compile(optimizer=make(optimizers), loss="sparse_categorical_crossentropy")
    unclipped.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    difference = max(relative_error(a - w0, b - w0)
                     for a, b, w0 in zip(unclipped.get_weights(), model.get_weights(), initial))
    assert difference > 0.05


@pytest.mark.parametrize("kwargs", [
    {"clipnorm": 1.0, "clipvalue": 1.0},
    {"clipnorm": 1.0, "global_clipnorm": 1.0},
    {"clipvalue": 0.5, "global_clipnorm": 1.0},
    {"clipnorm": 1.0, "clipvalue": 1.0, "global_clipnorm": 1.0},
])
@pytest.mark.parametrize("cls", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Nadam"])
def test_two_clip_options_raise_value_error(tf, kwargs, cls):
    with pytest.raises(ValueError):
        getattr(tf.keras.optimizers, cls)(**kwargs)
    with pytest.raises(ValueError, match="Only one of"):
        getattr(optimizers, cls)(**kwargs)


# --------------------------------------------------------------------------------------------
# learning-rate schedules
# --------------------------------------------------------------------------------------------

SCHEDULES = {
    "exponential": lambda s: s.ExponentialDecay(0.1, decay_steps=7, decay_rate=0.5),
    "exponential_staircase": lambda s: s.ExponentialDecay(0.1, decay_steps=7, decay_rate=0.5, staircase=True),
    "exponential_growth_staircase": lambda s: s.ExponentialDecay(0.01, decay_steps=4, decay_rate=1.1, staircase=True),
    "piecewise": lambda s: s.PiecewiseConstantDecay([10, 25], [0.1, 0.05, 0.01]),
    "piecewise_floats": lambda s: s.PiecewiseConstantDecay([3.5, 20.0, 40.0], [1.0, 0.5, 0.25, 0.125]),
    "cosine": lambda s: s.CosineDecay(0.1, decay_steps=40),
    "cosine_alpha": lambda s: s.CosineDecay(0.1, decay_steps=40, alpha=0.2),
    "cosine_warmup": lambda s: s.CosineDecay(0.0, decay_steps=30, warmup_target=0.1, warmup_steps=10),
    "cosine_warmup_alpha": lambda s: s.CosineDecay(0.01, decay_steps=25, alpha=0.1, warmup_target=0.05,
                                                   warmup_steps=8),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_values_match_keras(tf, name):
    """Steps 0..50 cover warmup, decay and the flat part after decay_steps or the last boundary.
    Keras computes in float32: values are compared with rtol 1e-6 plus an absolute 2e-7 of the
    schedule's largest value (about two float32 ulps). That absolute part is Keras's rounding, not
    slack for fastcnn: near the end of a cosine decay 0.5 * (1 + cos) is a difference of nearly
    equal numbers, which float32 keeps to ~6e-8 absolute only (observed: Keras's plain cosine is
    1e-5 off in relative terms at step 39 of 40, ~8e-9 absolute on 0.1)."""
    ours, theirs = SCHEDULES[name](schedules), SCHEDULES[name](tf.keras.optimizers.schedules)
    steps = range(51)
    expected = np.array([float(theirs(step)) for step in steps])
    actual = np.array([float(ours(step)) for step in steps])
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=2e-7 * np.max(np.abs(expected)))


def test_schedule_configs_match_keras(tf):
    for name, make in SCHEDULES.items():
        config, keras_config = make(schedules).get_config(), make(tf.keras.optimizers.schedules).get_config()
        assert set(config) == set(keras_config), name
        for key, value in keras_config.items():
            if isinstance(value, float):
                assert config[key] == pytest.approx(value), (name, key)
            else:
                assert config[key] == value, (name, key)


TRAINING_SCHEDULES = {
    "sgd_exponential_staircase": lambda o, s: o.SGD(s.ExponentialDecay(0.2, decay_steps=2, decay_rate=0.5,
                                                                       staircase=True)),
    "sgd_momentum_exponential": lambda o, s: o.SGD(s.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.7),
                                                   momentum=0.9),
    "rmsprop_piecewise": lambda o, s: o.RMSprop(s.PiecewiseConstantDecay([2, 5], [0.01, 0.003, 0.001])),
    "adam_cosine_alpha": lambda o, s: o.Adam(s.CosineDecay(0.02, decay_steps=6, alpha=0.1), epsilon=1e-3),
    "adam_cosine_warmup": lambda o, s: o.Adam(s.CosineDecay(0.0, decay_steps=5, warmup_target=0.02,
                                                            warmup_steps=3), epsilon=1e-3),
    "adamw_cosine_warmup": lambda o, s: o.AdamW(s.CosineDecay(0.001, decay_steps=4, warmup_target=0.02,
                                                              warmup_steps=2), weight_decay=0.1, epsilon=1e-3),
}


@pytest.mark.parametrize("name", list(TRAINING_SCHEDULES))
def test_training_with_a_schedule_matches_keras(tf, name):
    """Two epochs of three steps: the schedule is evaluated at every step (iterations 0..5), and
    `optimizer.learning_rate` reads it at the current iteration, as Keras's does."""
    model, keras_model = _pair(tf)
    make = TRAINING_SCHEDULES[name]
    _compile(model, keras_model, lambda o: make(o, o.schedules), tf)
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, schedules.LearningRateSchedule)
    assert model.optimizer.learning_rate == pytest.approx(schedule(0))
    x, y = _data(n=48)
    history, keras_history = _fit_both(model, keras_model, x, y, epochs=2)
    assert model.optimizer.iterations == 6
    _assert_weights_match(model, keras_model)
    _assert_history_match(history, keras_history)
    assert model.optimizer.learning_rate == pytest.approx(schedule(6), rel=1e-6)
    assert model.optimizer.learning_rate == pytest.approx(float(keras_model.optimizer.learning_rate), rel=1e-6)
    model.train_on_batch(x[:8], y[:8])
    assert model.optimizer.learning_rate == pytest.approx(schedule(7), rel=1e-6)


def test_learning_rate_property_follows_the_schedule_step_by_step(tf):
    schedule = schedules.PiecewiseConstantDecay([1, 3], [0.1, 0.05, 0.01])
    model = _cnn(fastcnn)
    model.compile(optimizer=optimizers.SGD(schedule), loss="sparse_categorical_crossentropy")
    x, y = _data(n=8)
    seen = []
    for _ in range(5):
        seen.append(model.optimizer.learning_rate)
        model.train_on_batch(x, y)
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.01])
    # A schedule on an optimizer that is not yet attached to a model reads step 0.
    assert optimizers.Adam(schedules.ExponentialDecay(0.5, 1, 0.5)).learning_rate == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# sample and class weights
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda o: o.SGD(0.1, momentum=0.5), lambda o: o.Adam(0.01, epsilon=1e-3)],
                         ids=["sgd_momentum", "adam"])
def test_fit_with_sample_weight_matches_keras(tf, make):
    model, keras_model = _pair(tf)
    initial = model.get_weights()
    _compile(model, keras_model, make, tf)
    x, y = _data(n=56)  # a last batch of 8
    weights = np.random.default_rng(11).uniform(0.0, 3.0, 56).astype(np.float32)
    weights[:5] = 0.0
    history, keras_history = _fit_both(model, keras_model, x, y, sample_weight=weights, epochs=2)
    _assert_weights_match(model, keras_model)
    _assert_history_match(history, keras_history)
    # The weights matter: training unweighted ends elsewhere.
    unweighted = _cnn(fastcnn)
    unweighted.set_weights(initial)
    unweighted.compile(optimizer=make(optimizers), loss="sparse_categorical_crossentropy")
    unweighted.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert max(relative_error(a, b) for a, b in zip(unweighted.get_weights(), model.get_weights())) > 1e-3


def test_fit_with_column_sample_weight_matches_keras(tf):
    model, keras_model = _pair(tf)
    _compile(model, keras_model, lambda o: o.SGD(0.1), tf)
    x, y = _data(n=32)
    weights = np.random.default_rng(5).uniform(0.5, 2.0, (32, 1)).astype(np.float32)
    history, keras_history = _fit_both(model, keras_model, x, y, sample_weight=weights)
    _assert_weights_match(model, keras_model)
    _assert_history_match(history, keras_history)


@pytest.mark.parametrize("labels", ["sparse", "one_hot"])
def test_fit_with_class_weight_matches_keras(tf, labels):
    model, keras_model = _pair(tf)
    loss = "sparse_categorical_crossentropy" if labels == "sparse" else "categorical_crossentropy"
    keras_model.compile(optimizer=tf.keras.optimizers.SGD(0.1, momentum=0.5), loss=loss, metrics=["accuracy"],
                        run_eagerly=True)
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.5), loss=loss, metrics=["accuracy"])
    x, y = _data(n=48)
    if labels == "one_hot":
        y = np.eye(CLASSES, dtype=np.float32)[y]
    class_weight = {0: 2.0, 1: 0.5, 3: 3.0, 4: 0.0}  # class 2 keeps weight 1
    history, keras_history = _fit_both(model, keras_model, x, y, class_weight=class_weight, epochs=2)
    _assert_weights_match(model, keras_model)
    _assert_history_match(history, keras_history)


def test_evaluate_with_sample_weight_matches_keras(tf):
    model, keras_model = _pair(tf)
    _compile(model, keras_model, lambda o: o.SGD(0.1), tf)
    x, y = _data(n=45)  # batches of 16, 16, 13
    weights = np.random.default_rng(9).uniform(0.0, 2.0, 45).astype(np.float32)
    expected = keras_model.evaluate(x, y, sample_weight=weights, batch_size=16, verbose=0)
    actual = model.evaluate(x, y, sample_weight=weights, batch_size=16, verbose=0)
    np.testing.assert_allclose(actual, expected, rtol=1e-4)
    unweighted = model.evaluate(x, y, batch_size=16, verbose=0)
    assert abs(unweighted[0] - actual[0]) > 1e-3  # the weights change the loss
    np.testing.assert_allclose(unweighted, keras_model.evaluate(x, y, batch_size=16, verbose=0), rtol=1e-4)
    expected_dict = keras_model.evaluate(x, y, sample_weight=weights, batch_size=16, verbose=0, return_dict=True)
    actual_dict = model.evaluate(x, y, sample_weight=weights, batch_size=16, verbose=0, return_dict=True)
    assert set(actual_dict) == set(expected_dict)
    for key in expected_dict:
        assert actual_dict[key] == pytest.approx(expected_dict[key], rel=1e-4), key


def test_validation_data_with_sample_weights_matches_keras(tf):
    model, keras_model = _pair(tf)
    _compile(model, keras_model, lambda o: o.SGD(0.1), tf)
    x, y = _data(n=32)
    x_val, y_val = _data(n=20, seed=4)
    w_val = np.random.default_rng(2).uniform(0.0, 3.0, 20).astype(np.float32)
    history, keras_history = _fit_both(model, keras_model, x, y, epochs=2, validation_data=(x_val, y_val, w_val))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(keras_history)
    _assert_history_match(history, keras_history)
    _assert_weights_match(model, keras_model)
    # The third element is used: without it the validation loss differs.
    plain = model.evaluate(x_val, y_val, batch_size=16, verbose=0)[0]
    weighted = model.evaluate(x_val, y_val, sample_weight=w_val, batch_size=16, verbose=0)[0]
    assert history["val_loss"][-1] == pytest.approx(weighted, rel=1e-6)
    assert abs(plain - weighted) > 1e-3


def test_sample_weight_and_class_weight_together_raise(tf):
    model, keras_model = _pair(tf)
    _compile(model, keras_model, lambda o: o.SGD(0.1), tf)
    x, y = _data(n=16)
    before = model.get_weights()
    with pytest.raises(ValueError):
        keras_model.fit(x, y, sample_weight=np.ones(16), class_weight={0: 2.0}, verbose=0)
    with pytest.raises(ValueError, match="class_weight.*sample_weight|sample_weight.*class_weight"):
        model.fit(x, y, sample_weight=np.ones(16), class_weight={0: 2.0}, verbose=0)
    with pytest.raises(ValueError, match="class_weight.*sample_weight|sample_weight.*class_weight"):
        model.train_on_batch(x, y, sample_weight=np.ones(16), class_weight={0: 2.0})
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


# --------------------------------------------------------------------------------------------
# freezing
# --------------------------------------------------------------------------------------------

def _summary_lines(model):
    texts = []
    model.summary(print_fn=lambda text, **kwargs: texts.append(text))
    return [line for line in "\n".join(texts).splitlines() if "params:" in line]


@pytest.mark.parametrize("make", [lambda o: o.SGD(0.1, momentum=0.9), lambda o: o.Adam(0.01, epsilon=1e-3)],
                         ids=["sgd_momentum", "adam"])
def test_frozen_convolutional_base_matches_keras(tf, make):
    model, keras_model = _pair(tf, _transfer, freeze=(0, 1))
    before = model.get_weights()
    assert [len(layer.trainable_weights) for layer in model.layers] == \
        [len(layer.trainable_weights) for layer in keras_model.layers] == [0, 0, 0, 2, 2]
    assert model.count_params() == keras_model.count_params()
    assert _summary_lines(model) == _summary_lines(keras_model)
    _compile(model, keras_model, make, tf)
    x, y = _data()
    history, keras_history = _fit_both(model, keras_model, x, y)
    weights = model.get_weights()
    for index in range(4):  # both convolutions' kernels and biases, bit for bit
        np.testing.assert_array_equal(weights[index], before[index])
    for index in range(4, 8):
        assert np.any(weights[index] != before[index])
    _assert_weights_match(model, keras_model)
    _assert_history_match(history, keras_history)
    # After fit the summary also counts the optimizer's variables (only for trainable weights).
    assert _summary_lines(model) == _summary_lines(keras_model)
    assert model.count_params() == keras_model.count_params()


def test_unfreezing_after_training_trains_the_base_again(tf):
    """The fine-tuning step: unfreeze and recompile (Keras needs the compile; so does fastcnn's
    fresh optimizer state), then everything trains and still matches Keras."""
    model, keras_model = _pair(tf, _transfer, freeze=(0,))
    make = lambda o: o.SGD(0.05, momentum=0.9)  # noqa: E731
    _compile(model, keras_model, make, tf)
    x, y = _data()
    _fit_both(model, keras_model, x[:32], y[:32])
    frozen = model.get_weights()[:2]
    for layer in (model.layers[0], keras_model.layers[0]):
        layer.trainable = True
    _compile(model, keras_model, make, tf)
    history, keras_history = _fit_both(model, keras_model, x[32:], y[32:])
    assert np.any(model.get_weights()[0] != frozen[0])
    _assert_weights_match(model, keras_model)
    _assert_history_match(history, keras_history)
    assert _summary_lines(model) == _summary_lines(keras_model)


def test_frozen_batch_normalization_runs_in_inference_mode(tf):
    model, keras_model = _pair(tf, _bn_model, freeze=(1,))
    statistics = np.random.default_rng(1)
    weights = keras_model.get_weights()
    weights[2] = statistics.uniform(0.5, 1.5, 4).astype(np.float32)    # gamma
    weights[3] = statistics.uniform(-0.3, 0.3, 4).astype(np.float32)   # beta
    weights[4] = statistics.uniform(-0.5, 0.5, 4).astype(np.float32)   # moving_mean
    weights[5] = statistics.uniform(0.2, 2.0, 4).astype(np.float32)    # moving_variance
    keras_model.set_weights(weights)
    model.set_weights(weights)
    assert _summary_lines(model) == _summary_lines(keras_model)
    _compile(model, keras_model, lambda o: o.SGD(0.1), tf)
    x, y = _data()
    history, keras_history = _fit_both(model, keras_model, x, y)
    after = model.get_weights()
    for index in (2, 3, 4, 5):
        np.testing.assert_array_equal(after[index], weights[index])
    _assert_weights_match(model, keras_model)
    _assert_history_match(history, keras_history)
    # In inference mode the training loss of a batch is the loss evaluate reports for it.
    model2, _ = _pair(tf, _bn_model, freeze=(1,))
    model2.set_weights(weights)
    model2.compile(optimizer=optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    evaluated = model2.evaluate(x[:16], y[:16], verbose=0)
    trained = model2.train_on_batch(x[:16], y[:16])
    assert trained == pytest.approx(evaluated, rel=1e-5)
    # Unfrozen, the same layer updates its moving statistics.
    model.layers[1].trainable = True
    model.compile(optimizer=optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(x[:16], y[:16], batch_size=16, verbose=0)
    assert np.all(model.get_weights()[4] != after[4]) and np.all(model.get_weights()[5] != after[5])


@pytest.mark.parametrize("builder", [_transfer, _bn_model], ids=["transfer", "batchnorm"])
def test_model_trainable_false_freezes_everything(tf, builder):
    model, keras_model = _pair(tf, builder)
    model.trainable = False
    keras_model.trainable = False
    assert model.trainable_weights == []
    assert len(model.non_trainable_weights) == len(model.weights) == len(keras_model.non_trainable_weights)
    assert _summary_lines(model) == _summary_lines(keras_model)
    assert model.count_params() == keras_model.count_params()
    before = model.get_weights()
    _compile(model, keras_model, lambda o: o.SGD(0.1, momentum=0.9), tf)
    x, y = _data(n=32)
    history, keras_history = _fit_both(model, keras_model, x, y)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    _assert_weights_match(model, keras_model)
    _assert_history_match(history, keras_history)
    # And back: trainable again, the weights move.
    model.trainable = True
    assert len(model.trainable_weights) == len(keras_model.weights) - (2 if builder is _bn_model else 0)
    model.compile(optimizer=optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    assert any(np.any(a != b) for a, b in zip(model.get_weights(), before))


# --------------------------------------------------------------------------------------------
# *_on_batch
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("metrics", [("accuracy",), None], ids=["accuracy", "loss_only"])
def test_on_batch_methods_match_keras(tf, metrics):
    model, keras_model = _pair(tf)
    _compile(model, keras_model, lambda o: o.Adam(0.01, epsilon=1e-3), tf, metrics=metrics)
    x, y = _data(n=40)
    sample_weight = np.random.default_rng(8).uniform(0.0, 2.0, 12).astype(np.float32)
    calls = [
        ("train_on_batch", (x[:16], y[:16]), {}),
        ("train_on_batch", (x[16:28], y[16:28]), {"sample_weight": sample_weight}),
        ("test_on_batch", (x[28:40], y[28:40]), {}),
        ("train_on_batch", (x[28:40], y[28:40]), {"class_weight": {0: 3.0, 2: 0.25}}),
        ("test_on_batch", (x[:12], y[:12]), {"sample_weight": sample_weight}),
        ("train_on_batch", (x[:1], y[:1]), {}),
    ]
    for method, args, kwargs in calls:
        expected = getattr(keras_model, method)(*args, **kwargs)
        actual = getattr(model, method)(*args, **kwargs)
        if metrics is None:
            assert np.ndim(actual) == np.ndim(expected) == 0, method
        else:
            assert len(actual) == len(expected) == 2, method
        np.testing.assert_allclose(actual, expected, rtol=1e-4, err_msg=f"{method} {kwargs}")
    assert model.optimizer.iterations == 4 == int(keras_model.optimizer.iterations)
    _assert_weights_match(model, keras_model)
    predictions = model.predict_on_batch(x[:7])
    keras_predictions = keras_model.predict_on_batch(x[:7])
    assert predictions.shape == keras_predictions.shape == (7, CLASSES)
    assert isinstance(predictions, np.ndarray) and predictions.dtype == np.float32
    assert relative_error(predictions, keras_predictions) <= 1e-5


def test_on_batch_return_dict_matches_keras(tf):
    model, keras_model = _pair(tf)
    _compile(model, keras_model, lambda o: o.SGD(0.1), tf)
    x, y = _data(n=16)
    expected = keras_model.train_on_batch(x, y, return_dict=True)
    actual = model.train_on_batch(x, y, return_dict=True)
    assert set(actual) == set(expected)
    for key in expected:
        assert actual[key] == pytest.approx(expected[key], rel=1e-4), key
    expected = keras_model.test_on_batch(x, y, return_dict=True)
    actual = model.test_on_batch(x, y, return_dict=True)
    assert set(actual) == set(expected)
    for key in expected:
        assert actual[key] == pytest.approx(expected[key], rel=1e-4), key
