"""Regularizers and constraints against Keras 3 (TensorFlow 2.21).

Kernel, bias and activity penalties (L1, L2, L1L2) must join the reported loss exactly as Keras
adds them (weight penalties of trainable weights; activity penalties divided by the batch size; in
evaluation too) and their gradients must move the weights as Keras's do; constraints project each
trainable weight after every update. Each comparison starts both models from the same weights and
feeds the same batches (shuffle=False): weights agree to <= 1e-4 relative, losses to rtol 1e-4.
"""

import os
import warnings

import numpy as np
import pytest

import fastcnn
from fastcnn import constraints, optimizers, regularizers
from conftest import relative_error

SHAPE = (8, 8, 2)
CLASSES = 4


def _seed(tf, seed=11):
    warnings.filterwarnings("ignore", message=".*input_shape.*", category=UserWarning)
    tf.keras.utils.set_random_seed(int(os.environ.get("FASTCNN_PARITY_SEED", seed)))


def _data(n=48, seed=5):
    generator = np.random.default_rng(seed)
    return generator.random((n,) + SHAPE).astype(np.float32), generator.integers(0, CLASSES, n)


def _model(lib, conv=None, hidden=None, head=None, pool=True):
    """Conv(relu) -> [MaxPool] -> Flatten -> Dense(relu) -> Dense(softmax); each dict holds the
    keyword arguments (regularizers, constraints) of that layer, built with `lib`'s classes."""
    L = lib.layers
    stack = [L.Conv2D(4, (3, 3), activation="relu", input_shape=SHAPE, **(conv or {}))]
    if pool:
        stack.append(L.MaxPooling2D((2, 2)))
    stack += [L.Flatten(), L.Dense(6, activation="relu", **(hidden or {})),
              L.Dense(CLASSES, activation="softmax", **(head or {}))]
    return lib.models.Sequential(stack)


def _keras_arguments(tf, arguments):
    """The same layer arguments with Keras's regularizer/constraint objects."""
    converted = {}
    for key, value in (arguments or {}).items():
        module = tf.keras.regularizers if key.endswith("regularizer") else tf.keras.constraints
        converted[key] = module.get({"class_name": type(value).__name__, "config": value.get_config()})
    return converted


def _pair(tf, conv=None, hidden=None, head=None, pool=True, optimizer=lambda o: o.SGD(learning_rate=0.1)):
    _seed(tf)
    keras_model = _model(tf.keras, _keras_arguments(tf, conv), _keras_arguments(tf, hidden),
                         _keras_arguments(tf, head), pool)
    model = _model(fastcnn, conv, hidden, head, pool)
    model.set_weights(keras_model.get_weights())
    keras_model.compile(optimizer=optimizer(tf.keras.optimizers), loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"], run_eagerly=True)
    model.compile(optimizer=optimizer(optimizers), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, keras_model


def _assert_weights_match(model, keras_model, bound=1e-4):
    for variable, a, e in zip(model.weights, model.get_weights(), keras_model.get_weights()):
        assert relative_error(a, e) <= bound, variable.path


def _fit_and_compare(model, keras_model, epochs=2, **kwargs):
    x, y = _data()
    kwargs = {"batch_size": 16, "epochs": epochs, "shuffle": False, "verbose": 0, **kwargs}
    keras_history = keras_model.fit(x, y, **kwargs).history
    history = model.fit(x, y, **kwargs).history
    for key, values in keras_history.items():
        np.testing.assert_allclose(history[key], values, rtol=1e-4, err_msg=key)
    _assert_weights_match(model, keras_model)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), keras_model.evaluate(x, y, verbose=0), rtol=1e-4)
    return history


CASES = {
    "kernel_l2_everywhere": dict(conv={"kernel_regularizer": regularizers.L2(0.05)},
                                 hidden={"kernel_regularizer": regularizers.L2(0.05)},
                                 head={"kernel_regularizer": regularizers.L2(0.05)}),
    "kernel_l1": dict(conv={"kernel_regularizer": regularizers.L1(0.01)},
                      head={"kernel_regularizer": regularizers.L1(0.02)}),
    "l1_l2_and_bias": dict(hidden={"kernel_regularizer": regularizers.L1L2(l1=0.01, l2=0.03),
                                   "bias_regularizer": regularizers.L2(0.5)},
                           conv={"bias_regularizer": regularizers.L1(0.2)}),
    # A ReLU conv with an activity penalty followed by max pooling: the pool may not apply the
    # ReLU's derivative for it (the penalty's gradient must join before that derivative).
    "activity_conv_before_pool": dict(conv={"activity_regularizer": regularizers.L1L2(l1=0.01, l2=0.02)}),
    "activity_hidden_dense": dict(hidden={"activity_regularizer": regularizers.L2(0.05)}),
    # On the softmax output: the loss gradient is the logits', the penalty's goes through softmax.
    "activity_softmax_head": dict(head={"activity_regularizer": regularizers.L1L2(l1=0.05, l2=0.3)}),
    "everything": dict(conv={"kernel_regularizer": regularizers.L2(0.01), "activity_regularizer": regularizers.L1(0.001)},
                       hidden={"kernel_regularizer": regularizers.L1L2(0.001, 0.01), "bias_regularizer": regularizers.L2(0.1),
                               "activity_regularizer": regularizers.L2(0.01)},
                       head={"kernel_regularizer": regularizers.L2(0.02), "activity_regularizer": regularizers.L2(0.1)}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_regularized_training_matches_keras(tf, name):
    model, keras_model = _pair(tf, **CASES[name])
    initial = model.get_weights()
    _fit_and_compare(model, keras_model)
    # The regularization moved the weights: the same model without it ends elsewhere.
    plain, _ = _pair(tf)
    plain.set_weights(initial)
    x, y = _data()
    plain.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert max(relative_error(a, b) for a, b in zip(model.get_weights(), plain.get_weights())) > 1e-4


def test_regularized_training_with_adam_and_clipping_matches_keras(tf):
    """Keras clips the gradient of the whole loss, penalties included."""
    model, keras_model = _pair(tf, conv={"kernel_regularizer": regularizers.L2(0.5)},
                               head={"kernel_regularizer": regularizers.L1(0.1)},
                               optimizer=lambda o: o.Adam(learning_rate=0.01, epsilon=1e-3, clipnorm=0.05))
    _fit_and_compare(model, keras_model)


def test_penalty_joins_reported_loss_exactly_as_keras(tf):
    """One batch: the loss train_on_batch reports is the data loss plus every penalty, and
    model.losses lists the weight penalties Keras's model.losses lists."""
    model, keras_model = _pair(tf, **CASES["everything"])
    x, y = _data(16)
    np.testing.assert_allclose(model.test_on_batch(x, y), keras_model.test_on_batch(x, y), rtol=1e-5)
    keras_losses = sorted(float(v) for v in keras_model.losses)
    assert len(model.losses) == 4
    # Keras's model.losses also holds the activity penalties of its last call; ours lists the
    # weight penalties, which must each appear among Keras's.
    for value in model.losses:
        assert min(abs(value - k) for k in keras_losses) <= 1e-5 * abs(value)
    np.testing.assert_allclose(model.train_on_batch(x, y), keras_model.train_on_batch(x, y), rtol=1e-5)
    _assert_weights_match(model, keras_model)


def test_frozen_layer_penalty_is_not_counted(tf):
    """Keras penalises trainable weights only."""
    model, keras_model = _pair(tf, conv={"kernel_regularizer": regularizers.L2(1.0)})
    x, y = _data(16)
    with_penalty = model.evaluate(x, y, verbose=0)[0]
    model.layers[0].trainable = False
    keras_model.layers[0].trainable = False
    without = model.evaluate(x, y, verbose=0)[0]
    assert with_penalty - without == pytest.approx(regularizers.L2(1.0)(model.layers[0].kernel.numpy()), rel=1e-5)
    assert model.losses == []
    keras_model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"], run_eagerly=True)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _fit_and_compare(model, keras_model, epochs=1)


def _bn_model(lib, arguments):
    L = lib.layers
    return lib.models.Sequential([
        # No conv bias: BatchNormalization cancels it, so its gradient is rounding noise.
        L.Conv2D(4, (3, 3), use_bias=False, input_shape=SHAPE), L.BatchNormalization(**arguments),
        L.Activation("relu"),
        L.Flatten(), L.Dense(CLASSES, activation="softmax"),
    ])


@pytest.mark.parametrize("arguments", [
    {"gamma_regularizer": regularizers.L2(0.5), "beta_regularizer": regularizers.L1(0.1)},
    {"beta_regularizer": regularizers.L2(0.3), "scale": False},
    {"gamma_constraint": constraints.MaxNorm(1.0), "beta_constraint": constraints.NonNeg(),
     "gamma_regularizer": regularizers.L1(0.2)},
])
def test_batch_normalization_regularizers_and_constraints_match_keras(tf, arguments):
    _seed(tf)
    keras_arguments = _keras_arguments(tf, {k: v for k, v in arguments.items() if k != "scale"})
    keras_model = _bn_model(tf.keras, {**keras_arguments, **({"scale": False} if "scale" in arguments else {})})
    model = _bn_model(fastcnn, arguments)
    model.set_weights(keras_model.get_weights())
    for m, o in ((keras_model, tf.keras.optimizers), (model, optimizers)):
        m.compile(optimizer=o.SGD(learning_rate=0.2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], **({"run_eagerly": True} if m is keras_model else {}))
    _fit_and_compare(model, keras_model)


# --------------------------------------------------------------------------------------------
# constraints
# --------------------------------------------------------------------------------------------

CONSTRAINT_CASES = {
    "max_norm_per_filter": dict(conv={"kernel_constraint": constraints.MaxNorm(0.3, axis=[0, 1, 2])},
                                head={"kernel_constraint": constraints.MaxNorm(0.5)}),
    "max_norm_default_axis": dict(conv={"kernel_constraint": constraints.max_norm(0.2)}),
    "non_neg": dict(hidden={"kernel_constraint": constraints.NonNeg(), "bias_constraint": constraints.non_neg()}),
    "unit_norm": dict(head={"kernel_constraint": constraints.UnitNorm()},
                      conv={"kernel_constraint": constraints.unit_norm(axis=[0, 1, 2])}),
    "min_max_norm_rate": dict(hidden={"kernel_constraint": constraints.MinMaxNorm(0.5, 0.8, rate=0.5)},
                              head={"bias_constraint": constraints.min_max_norm(0.1, 0.2)}),
    "constraint_with_regularizer": dict(conv={"kernel_constraint": constraints.MaxNorm(0.4, axis=[0, 1, 2]),
                                              "kernel_regularizer": regularizers.L2(0.1)}),
}


@pytest.mark.parametrize("name", list(CONSTRAINT_CASES))
def test_constrained_training_matches_keras(tf, name):
    model, keras_model = _pair(tf, **CONSTRAINT_CASES[name])
    _fit_and_compare(model, keras_model)


@pytest.mark.parametrize("make", [
    lambda lib: lib.constraints.MaxNorm(1.5, axis=[0, 1, 2]), lambda lib: lib.constraints.MaxNorm(0.7),
    lambda lib: lib.constraints.NonNeg(), lambda lib: lib.constraints.UnitNorm(axis=1),
    lambda lib: lib.constraints.MinMaxNorm(0.4, 0.9, rate=0.3, axis=[0, 3]),
])
def test_constraint_values_match_keras(tf, make):
    w = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(make(fastcnn)(w), make(tf.keras)(w).numpy(), rtol=2e-6, atol=1e-7)


def test_constraint_applies_after_every_step_and_only_when_trainable():
    model = fastcnn.Sequential([fastcnn.layers.Input((5,)),
                                fastcnn.layers.Dense(3, kernel_constraint=constraints.NonNeg()),
                                fastcnn.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(1.0), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(1).normal(size=(32, 5)).astype(np.float32)
    y = np.arange(32) % 2
    model.layers[0].kernel.assign(-np.ones((5, 3)))
    model.layers[0].trainable = False
    model.fit(x, y, epochs=1, verbose=0)
    assert np.all(model.layers[0].kernel.numpy() == -1.0)  # frozen: neither updated nor projected
    model.layers[0].trainable = True
    model.train_on_batch(x, y)
    assert np.all(model.layers[0].kernel.numpy() >= 0.0)


def test_custom_constraint_callable():
    calls = []

    def clip_small(w):
        calls.append(w.shape)
        return np.clip(w, -0.01, 0.01)

    model = fastcnn.Sequential([fastcnn.layers.Input((4,)), fastcnn.layers.Dense(2, activation="softmax",
                                                                                 kernel_constraint=clip_small)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(np.ones((8, 4), np.float32), np.arange(8) % 2, batch_size=4, epochs=1, verbose=0)
    assert calls == [(4, 2), (4, 2)]
    assert np.abs(model.layers[0].kernel.numpy()).max() <= 0.01
    assert model.layers[0].get_config()["kernel_constraint"] == "clip_small"


def test_constraint_changing_the_shape_is_a_clear_error():
    model = fastcnn.Sequential([fastcnn.layers.Input((4,)), fastcnn.layers.Dense(
        2, activation="softmax", kernel_constraint=lambda w: w[0])])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"returned shape \(2,\).*\(4, 2\)"):
        model.fit(np.ones((8, 4), np.float32), np.arange(8) % 2, verbose=0)


# --------------------------------------------------------------------------------------------
# the objects themselves
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ours,theirs", [
    (lambda: regularizers.l1(), lambda k: k.regularizers.l1()),
    (lambda: regularizers.L2(0.3), lambda k: k.regularizers.L2(0.3)),
    (lambda: regularizers.l1_l2(), lambda k: k.regularizers.l1_l2()),
    (lambda: regularizers.L1L2(l2=0.2), lambda k: k.regularizers.L1L2(l2=0.2)),
    (lambda: regularizers.get("l2"), lambda k: k.regularizers.get("l2")),
    (lambda: regularizers.get("l1l2"), lambda k: k.regularizers.get("l1l2")),
    (lambda: regularizers.get("L1"), lambda k: k.regularizers.get("L1")),
])
def test_regularizer_penalties_and_configs_match_keras(tf, ours, theirs):
    x = np.random.default_rng(2).normal(size=(6, 7)).astype(np.float32)
    ours, theirs = ours(), theirs(tf.keras)
    assert ours(x) == pytest.approx(float(theirs(x)), rel=1e-6)
    assert ours.get_config() == pytest.approx(theirs.get_config())
    assert type(ours).__name__ == type(theirs).__name__


def test_layer_config_serializes_regularizers_and_constraints_like_keras(tf):
    arguments = {"kernel_regularizer": regularizers.L2(0.25), "bias_constraint": constraints.MaxNorm(3.0)}
    ours = fastcnn.layers.Dense(3, **arguments).get_config()
    theirs = tf.keras.layers.Dense(3, **_keras_arguments(tf, arguments)).get_config()
    assert ("activity_regularizer" in ours) == ("activity_regularizer" in theirs)
    with_activity = {**arguments, "activity_regularizer": regularizers.L1(0.5)}
    assert (fastcnn.layers.Dense(3, **with_activity).get_config()["activity_regularizer"]["config"]
            == tf.keras.layers.Dense(3, **_keras_arguments(tf, with_activity)).get_config()["activity_regularizer"]["config"])
    conv = fastcnn.layers.Conv2D(2, 3).get_config()
    assert conv["activity_regularizer"] is None and conv["kernel_constraint"] is None
    for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                "bias_constraint"):
        if theirs.get(key) is None:
            assert ours.get(key) is None, key
        else:
            assert ours[key]["class_name"] == theirs[key]["class_name"], key
            assert ours[key]["config"] == pytest.approx(theirs[key]["config"]), key


def _activity_everywhere_model(lib, arguments):
    """Keras's Layer takes activity_regularizer for every layer: here on BatchNormalization, ReLU,
    Add, MaxPooling2D and Flatten as well as Conv2D (the ReLU's penalty also keeps the
    BatchNormalization + ReLU pair unfused in training); `arguments` maps each to its keywords."""
    L = lib.layers
    inputs = lib.Input(SHAPE)
    x = L.Conv2D(4, 3, padding="same", **arguments["conv"])(inputs)
    x = L.BatchNormalization(**arguments["norm"])(x)
    x = L.ReLU(**arguments["relu"])(x)
    x = L.Add(**arguments["add"])([x, L.Conv2D(4, 1)(inputs)])
    x = L.MaxPooling2D(2, **arguments["pool"])(x)
    x = L.Flatten(**arguments["flatten"])(x)
    return lib.Model(inputs, L.Dense(CLASSES, activation="softmax")(x))


def test_activity_regularizer_on_every_layer_kind_matches_keras(tf):
    activity = {"conv": regularizers.L1(0.001), "norm": regularizers.L2(0.01), "relu": regularizers.L1L2(0.002, 0.01),
                "add": regularizers.L2(0.005), "pool": regularizers.L1(0.003), "flatten": regularizers.L2(0.002)}
    _seed(tf)
    keras_model = _activity_everywhere_model(tf.keras, {name: _keras_arguments(tf, {"activity_regularizer": value})
                                                        for name, value in activity.items()})
    model = _activity_everywhere_model(fastcnn, {name: {"activity_regularizer": value}
                                                 for name, value in activity.items()})
    model.set_weights(keras_model.get_weights())
    for m, o in ((keras_model, tf.keras.optimizers), (model, optimizers)):
        m.compile(optimizer=o.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data(16)
    np.testing.assert_allclose(model.test_on_batch(x, y), keras_model.test_on_batch(x, y), rtol=1e-5)
    initial = model.get_weights()
    _fit_and_compare(model, keras_model)
    # The penalties moved the weights: the same model without them ends elsewhere.
    plain = _activity_everywhere_model(fastcnn, {name: {} for name in activity})
    plain.set_weights(initial)
    plain.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    plain.fit(*_data(), batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert max(relative_error(a, b) for a, b in zip(model.get_weights(), plain.get_weights())) > 1e-4


@pytest.mark.parametrize("make", [lambda L, **k: L.MaxPooling2D(2, **k), lambda L, **k: L.Activation("relu", **k),
                                  lambda L, **k: L.BatchNormalization(**k), lambda L, **k: L.Flatten(**k),
                                  lambda L, **k: L.LayerNormalization(**k)])
def test_activity_regularizer_of_any_layer_serializes_as_keras(tf, make):
    ours = make(fastcnn.layers, activity_regularizer=regularizers.L1L2(0.5, 0.25)).get_config()
    theirs = make(tf.keras.layers, activity_regularizer=tf.keras.regularizers.L1L2(0.5, 0.25)).get_config()
    assert list(ours) == list(theirs)
    assert ours["activity_regularizer"]["config"] == pytest.approx(theirs["activity_regularizer"]["config"])
    assert "activity_regularizer" not in make(fastcnn.layers).get_config()
    restored = type(make(fastcnn.layers)).from_config(ours)
    assert restored.activity_regularizer.get_config() == pytest.approx({"l1": 0.5, "l2": 0.25})


@pytest.mark.parametrize("call,match", [
    (lambda: regularizers.L2(-0.1), r"Invalid value for argument l2.*Received: l2=-0.1"),
    (lambda: regularizers.L1(float("nan")), r"argument l1.*nan"),
    (lambda: regularizers.L1L2(l1="a"), r"argument l1.*'a'"),
    (lambda: regularizers.get("l3"), r"regularizer identifier: 'l3'"),
    (lambda: fastcnn.layers.Dense(2, kernel_regularizer=lambda w: 0.1 * (w ** 2).sum()), r"custom regularizer"),
    (lambda: fastcnn.layers.Conv2D(2, 3, activity_regularizer=regularizers.L1L2), None),
    (lambda: constraints.MaxNorm("big"), r"max_value.*'big'"),
    (lambda: constraints.UnitNorm(axis=1.5), r"axis.*1.5"),
    (lambda: constraints.MinMaxNorm(2.0, 1.0), r"min_value.*max_value"),
    (lambda: constraints.get("clip"), r"constraint identifier: 'clip'"),
    (lambda: constraints.get(3), r"constraint identifier: 3"),
])
def test_bad_arguments_are_clear_errors(call, match):
    if match is None:
        call()  # accepted: a class stands for its default instance, as in Keras
        return
    with pytest.raises(ValueError, match=match):
        call()


def test_subclassed_regularizer_is_rejected():
    class Scaled(regularizers.L2):
        def __call__(self, x):
            return 2 * super().__call__(x)

    with pytest.raises(ValueError, match="subclasses are not supported"):
        fastcnn.layers.Dense(2, kernel_regularizer=Scaled(0.1))


def test_constraint_axis_out_of_range_is_a_clear_error():
    model = fastcnn.Sequential([fastcnn.layers.Input((4,)), fastcnn.layers.Dense(
        2, activation="softmax", kernel_constraint=constraints.MaxNorm(1.0, axis=3))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"axis=3 is out of range for a weight of shape \(4, 2\)"):
        model.train_on_batch(np.ones((2, 4), np.float32), np.array([0, 1]))


def test_regularized_training_is_bitwise_independent_of_thread_count():
    results = []
    previous = fastcnn.get_num_threads()
    try:
        for threads in (1, 2):
            fastcnn.set_num_threads(threads)
            fastcnn.utils.set_random_seed(3)
            model = _model(fastcnn, **CASES["everything"])
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            x, y = _data(96)
            history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
            results.append((model.get_weights(), history.history["loss"]))
    finally:
        fastcnn.set_num_threads(previous)
    for a, b in zip(results[0][0], results[1][0]):
        assert np.array_equal(a, b)
    assert results[0][1] == results[1][1]
