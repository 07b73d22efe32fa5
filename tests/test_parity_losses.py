"""The losses (csrc/ops/loss.h) against TensorFlow/Keras; binary cross-entropy first: the loss
function on arrays (from probabilities, clipped, and from logits; label smoothing; soft labels;
sample weights and reductions), its gradient, and whole models with sigmoid heads (the sigmoid
fused with the loss) trained side by side with Keras."""

import numpy as np
import pytest

import fastcnn
from fastcnn import _core, losses

from conftest import relative_error


def _probabilities(rng, shape):
    values = rng.random(shape).astype(np.float32)
    values.flat[:3] = [0.0, 1.0, 1e-9]  # inside and outside the clip at epsilon
    return values


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("units", [1, 4])
def test_binary_crossentropy_equals_keras(keras, rng, from_logits, label_smoothing, units):
    y_pred = (rng.normal(size=(9, units)) * 4).astype(np.float32) if from_logits else _probabilities(rng, (9, units))
    y_true = (rng.random((9, units)) > 0.5).astype(np.float32)
    y_true[0] = 0.3  # a soft label
    weights = rng.random(9).astype(np.float32)
    for reduction in ("sum_over_batch_size", "sum", "none"):
        ours = losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing, reduction=reduction)
        theirs = keras.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing,
                                                 reduction=reduction)
        for sample_weight in (None, weights):
            np.testing.assert_allclose(ours(y_true, y_pred, sample_weight=sample_weight),
                                       np.asarray(theirs(y_true, y_pred, sample_weight=sample_weight)), rtol=1e-5,
                                       atol=1e-6)
    np.testing.assert_allclose(losses.binary_crossentropy(y_true, y_pred, from_logits=from_logits),
                               keras.losses.binary_crossentropy(y_true, y_pred, from_logits=from_logits), rtol=1e-5)


@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_crossentropy_gradient_equals_tensorflow(tf, rng, from_logits):
    y_pred = (rng.normal(size=(6, 3)) * 3).astype(np.float32) if from_logits else _probabilities(rng, (6, 3))
    y_true = rng.random((6, 3)).astype(np.float32)
    losses_, gradient = _core.ops.loss(y_pred, y_true, from_logits, "binary_crossentropy")
    variable = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        per_sample = tf.keras.losses.binary_crossentropy(y_true, variable, from_logits=from_logits)
        mean = tf.reduce_mean(per_sample)
    expected = tape.gradient(mean, variable).numpy()
    np.testing.assert_allclose(losses_, per_sample.numpy(), rtol=1e-5, atol=1e-6)
    assert relative_error(gradient, expected) <= 1e-5


def _sigmoid_model(module, units, activation):
    return module.Sequential([module.layers.Input((6, 6, 2)), module.layers.Conv2D(4, 3, activation="relu"),
                              module.layers.MaxPooling2D(), module.layers.Flatten(),
                              module.layers.Dense(units, activation=activation)])


@pytest.mark.parametrize("units, activation, loss_arguments, soft", [
    (1, "sigmoid", {}, False),                          # cats vs dogs: one sigmoid unit
    (3, "sigmoid", {"label_smoothing": 0.1}, False),    # multi-label
    (1, None, {"from_logits": True}, False),            # a logit head
    (2, "sigmoid", {}, True),                           # soft labels
])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sigmoid_heads_train_as_in_keras(tf, keras, rng, units, activation, loss_arguments, soft, optimizer):
    keras.utils.set_random_seed(7)  # the initial weights (both models start from Keras's)
    x = rng.random((24, 6, 6, 2)).astype(np.float32)
    y = rng.random((24, units)).astype(np.float32) if soft else (rng.random((24, units)) > 0.5).astype(np.float32)
    ours, theirs = _sigmoid_model(fastcnn, units, activation), _sigmoid_model(keras, units, activation)
    ours.set_weights(theirs.get_weights())
    for model, module in ((ours, fastcnn), (theirs, keras)):
        chosen = module.optimizers.SGD(0.3) if optimizer == "sgd" else module.optimizers.Adam(0.01)
        model.compile(chosen, module.losses.BinaryCrossentropy(**loss_arguments),
                      metrics=["accuracy", module.metrics.AUC(name="auc")])
    ours_logs = ours.evaluate(x, y, verbose=0, return_dict=True)
    theirs_logs = theirs.evaluate(x, y, verbose=0, return_dict=True)
    assert list(ours_logs) == list(theirs_logs)
    for key in theirs_logs:
        np.testing.assert_allclose(ours_logs[key], theirs_logs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    ours.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 3 steps
    theirs.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for mine, expected in zip(ours.get_weights(), theirs.get_weights()):
        # Relative to the array's scale; an array of tiny values (a bias near 0) absolutely, at 1e-6.
        assert np.max(np.abs(mine - expected)) <= 1e-4 * max(float(np.max(np.abs(expected))), 1e-2)
    expected = theirs.predict(x, verbose=0)  # logits near 0 are compared at the outputs' scale
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4 * np.max(np.abs(expected)))
    # The sigmoid Dense head (node 3) hands the loss its logits; a logit head has nothing to fuse.
    assert ours._network.fusion_passes()["sigmoid_binary_cross_entropy"] == ([3] if activation else [])


def test_binary_targets_and_heads_are_checked(rng):
    model = _sigmoid_model(fastcnn, 1, "sigmoid")
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    x = rng.random((4, 6, 6, 2)).astype(np.float32)
    model.fit(x, np.array([0, 1, 1, 0]), verbose=0)  # (batch,) targets of a one-unit head, as in Keras
    with pytest.raises(ValueError, match=r"binary_crossentropy needs targets of shape \(batch, 1\)"):
        model.fit(x, np.zeros((4, 2)), verbose=0)
    categorical = _sigmoid_model(fastcnn, 1, "softmax")
    with pytest.raises(ValueError, match="has one unit, so categorical_crossentropy"):
        categorical.compile("sgd", "categorical_crossentropy")
        categorical.fit(x, np.ones((4, 1)), verbose=0)
    assert model.metrics[0].__class__.__name__ == "BinaryAccuracy"


# Regression and distribution losses: (fastcnn/keras constructor, whether targets are one-hot rows)
PER_UNIT = [
    (lambda m: m.MeanSquaredError(), False),
    (lambda m: m.MeanAbsoluteError(), False),
    (lambda m: m.Huber(), False),
    (lambda m: m.Huber(delta=0.3), False),
    (lambda m: m.KLDivergence(), True),
    (lambda m: m.CategoricalHinge(), True),
]


@pytest.mark.parametrize("make, one_hot", PER_UNIT)
def test_regression_and_distribution_losses_equal_keras(tf, keras, rng, make, one_hot):
    y_pred = rng.random((10, 4)).astype(np.float32) * 2 - 0.5
    y_pred[0, :2] = [0.0, 1e-9]  # at and below KL-divergence's clip
    y_true = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 10)] if one_hot else rng.normal(size=(10, 4)).astype(
        np.float32)
    weights = rng.random(10).astype(np.float32)
    ours, theirs = make(losses), make(keras.losses)
    for sample_weight in (None, weights):
        np.testing.assert_allclose(ours(y_true, y_pred, sample_weight=sample_weight),
                                   np.asarray(theirs(y_true, y_pred, sample_weight=sample_weight)), rtol=1e-5, atol=1e-6)
    # The gradient of the batch mean, through the binding the training step's kernel shares.
    kind = ours.kind
    _, gradient = _core.ops.loss(y_pred, y_true, False, kind, **ours._kernel_options())
    variable = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        mean = tf.reduce_mean(theirs.call(tf.constant(y_true), variable))
    expected = tape.gradient(mean, variable).numpy()
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("make, one_hot", PER_UNIT)
def test_models_with_regression_losses_train_as_in_keras(tf, keras, rng, make, one_hot):
    keras.utils.set_random_seed(11)
    x = rng.random((24, 6, 6, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 24)] if one_hot else rng.normal(size=(24, 3)).astype(np.float32)
    activation = "softmax" if one_hot else None
    ours, theirs = _sigmoid_model(fastcnn, 3, activation), _sigmoid_model(keras, 3, activation)
    ours.set_weights(theirs.get_weights())
    for model, module in ((ours, fastcnn), (theirs, keras)):
        model.compile(module.optimizers.SGD(0.1), make(module.losses))
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)
    ours.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    theirs.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for mine, expected in zip(ours.get_weights(), theirs.get_weights()):
        assert np.max(np.abs(mine - expected)) <= 1e-4 * max(float(np.max(np.abs(expected))), 1e-2)


def test_loss_names_and_configs(keras):
    for name, cls in (("mse", losses.MeanSquaredError), ("mae", losses.MeanAbsoluteError), ("huber", losses.Huber),
                      ("kld", losses.KLDivergence), ("categorical_hinge", losses.CategoricalHinge)):
        assert type(losses.get(name)) is cls
    for make, _ in PER_UNIT[:3] + PER_UNIT[4:]:
        assert make(losses).get_config() == make(keras.losses).get_config()
    with pytest.raises(ValueError, match="delta=0"):
        losses.Huber(delta=0)
    with pytest.raises(ValueError, match="unknown loss kind 'median'"):
        _core.ops.loss(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), False, "median")


# Focal losses: (fastcnn/keras constructor arguments), over from_logits, smoothing, gamma and balancing.
FOCAL = [
    {},
    {"gamma": 0.0},
    {"gamma": 0.5, "label_smoothing": 0.1},
    {"gamma": 3.0, "alpha": 0.6},
]


@pytest.mark.parametrize("arguments", FOCAL + [{"apply_class_balancing": True, "alpha": 0.3}])
@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_focal_crossentropy_equals_keras(tf, keras, rng, arguments, from_logits):
    y_pred = (rng.normal(size=(9, 3)) * 3).astype(np.float32) if from_logits else _probabilities(rng, (9, 3))
    y_true = (rng.random((9, 3)) > 0.5).astype(np.float32)
    y_true[0] = 0.3  # a soft label
    weights = rng.random(9).astype(np.float32)
    for reduction in ("sum_over_batch_size", "sum", "none"):
        ours = losses.BinaryFocalCrossentropy(from_logits=from_logits, reduction=reduction, **arguments)
        theirs = keras.losses.BinaryFocalCrossentropy(from_logits=from_logits, reduction=reduction, **arguments)
        for sample_weight in (None, weights):
            np.testing.assert_allclose(ours(y_true, y_pred, sample_weight=sample_weight),
                                       np.asarray(theirs(y_true, y_pred, sample_weight=sample_weight)), rtol=1e-5,
                                       atol=1e-6)
    assert ours.get_config() == theirs.get_config()
    _, gradient = _core.ops.loss(y_pred, ours._prepare_targets(y_true, 3), from_logits, ours.kind,
                                 **ours._kernel_options())
    variable = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        mean = tf.reduce_mean(theirs.call(tf.constant(y_true), variable))
    np.testing.assert_allclose(gradient, tape.gradient(mean, variable).numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arguments", FOCAL)
@pytest.mark.parametrize("from_logits", [False, True])
def test_categorical_focal_crossentropy_equals_keras(tf, keras, rng, arguments, from_logits):
    y_pred = (rng.normal(size=(9, 4)) * 3).astype(np.float32) if from_logits else rng.random((9, 4)).astype(np.float32)
    if not from_logits:
        y_pred[0] = [1.0, 0.0, 0.0, 1e-9]  # at the clip
    y_true = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 9)]
    weights = rng.random(9).astype(np.float32)
    ours = losses.CategoricalFocalCrossentropy(from_logits=from_logits, **arguments)
    theirs = keras.losses.CategoricalFocalCrossentropy(from_logits=from_logits, **arguments)
    for sample_weight in (None, weights):
        np.testing.assert_allclose(ours(y_true, y_pred, sample_weight=sample_weight),
                                   np.asarray(theirs(y_true, y_pred, sample_weight=sample_weight)), rtol=1e-5,
                                   atol=1e-6)
    assert ours.get_config() == theirs.get_config()
    np.testing.assert_allclose(losses.categorical_focal_crossentropy(y_true, y_pred, from_logits=from_logits,
                                                                     **arguments),
                               keras.losses.categorical_focal_crossentropy(y_true, y_pred, from_logits=from_logits,
                                                                          **arguments), rtol=1e-5, atol=1e-7)
    _, gradient = _core.ops.loss(y_pred, ours._prepare_targets(y_true, 4), from_logits, ours.kind,
                                 **ours._kernel_options())
    variable = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        mean = tf.reduce_mean(theirs.call(tf.constant(y_true), variable))
    assert relative_error(gradient, tape.gradient(mean, variable).numpy()) <= 1e-4


@pytest.mark.parametrize("units, activation, make", [
    (1, "sigmoid", lambda m: m.BinaryFocalCrossentropy()),                             # fused: reads the logits
    (3, "sigmoid", lambda m: m.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=1.5)),
    (2, None, lambda m: m.BinaryFocalCrossentropy(from_logits=True, label_smoothing=0.1)),
    (3, "softmax", lambda m: m.CategoricalFocalCrossentropy()),
    (3, None, lambda m: m.CategoricalFocalCrossentropy(from_logits=True, gamma=1.0, alpha=0.5)),
])
def test_models_with_focal_losses_train_as_in_keras(tf, keras, rng, units, activation, make):
    keras.utils.set_random_seed(5)
    x = rng.random((24, 6, 6, 2)).astype(np.float32)
    categorical = "Categorical" in type(make(losses)).__name__
    y = np.eye(units, dtype=np.float32)[rng.integers(0, units, 24)] if categorical else \
        (rng.random((24, units)) > 0.5).astype(np.float32)
    ours, theirs = _sigmoid_model(fastcnn, units, activation), _sigmoid_model(keras, units, activation)
    ours.set_weights(theirs.get_weights())
    for model, module in ((ours, fastcnn), (theirs, keras)):
        model.compile(module.optimizers.SGD(0.5), make(module.losses))
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)
    ours.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    theirs.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for mine, expected in zip(ours.get_weights(), theirs.get_weights()):
        assert np.max(np.abs(mine - expected)) <= 1e-4 * max(float(np.max(np.abs(expected))), 1e-2)
    fused = ours._network.fusion_passes()["sigmoid_binary_cross_entropy"]
    assert fused == ([3] if activation == "sigmoid" else [])


def test_focal_losses_by_name_and_bad_arguments(rng):
    assert type(losses.get("binary_focal_crossentropy")) is losses.BinaryFocalCrossentropy
    assert type(losses.get("categorical_focal_crossentropy")) is losses.CategoricalFocalCrossentropy
    assert type(losses.get(losses.binary_focal_crossentropy)) is losses.BinaryFocalCrossentropy
    with pytest.raises(ValueError, match="gamma=-1"):
        losses.BinaryFocalCrossentropy(gamma=-1)
    with pytest.raises(ValueError, match="alpha=nan"):
        losses.CategoricalFocalCrossentropy(alpha=float("nan"))
    with pytest.raises(TypeError, match="apply_class_balancing='yes'"):
        losses.BinaryFocalCrossentropy(apply_class_balancing="yes")
    with pytest.raises(ValueError, match="gamma=-2"):
        _core.ops.loss(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), False, "binary_focal_crossentropy",
                       focal_gamma=-2.0)
    model = _sigmoid_model(fastcnn, 1, "softmax")
    with pytest.raises(ValueError, match="has one unit, so categorical_focal_crossentropy"):
        model.compile("sgd", "categorical_focal_crossentropy")
