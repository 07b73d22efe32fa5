"""Metrics (fastcnn/metrics.py) against Keras 3's: the same results on the same targets and
predictions (sample weights, several updates, reset), the same configs, compile's metrics in
fit/evaluate logs under Keras's names, and clear errors for bad arguments."""

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, metrics

RTOL = 1e-5


def _data(seed=0, samples=60, classes=5):
    rng = np.random.default_rng(seed)
    probabilities = rng.random((samples, classes)).astype(np.float32)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = rng.integers(0, classes, samples)
    return {
        "labels": labels, "one_hot": np.eye(classes, dtype=np.float32)[labels], "probabilities": probabilities,
        "binary_targets": (rng.random((samples, 1)) > 0.5).astype(np.float32),
        "binary_predictions": rng.random((samples, 1)).astype(np.float32),
        "multi_targets": (rng.random((samples, 4)) > 0.6).astype(np.float32),
        "multi_predictions": rng.random((samples, 4)).astype(np.float32),
        "weights": rng.random(samples).astype(np.float32),
    }


# (fastcnn/keras constructor, the data keys of (y_true, y_pred))
CASES = [
    (lambda m: m.SparseCategoricalAccuracy(), ("labels", "probabilities")),
    (lambda m: m.CategoricalAccuracy(), ("one_hot", "probabilities")),
    (lambda m: m.BinaryAccuracy(), ("binary_targets", "binary_predictions")),
    (lambda m: m.BinaryAccuracy(threshold=0.3), ("multi_targets", "multi_predictions")),
    (lambda m: m.TopKCategoricalAccuracy(k=2), ("one_hot", "probabilities")),
    (lambda m: m.SparseTopKCategoricalAccuracy(k=3), ("labels", "probabilities")),
    (lambda m: m.Precision(), ("multi_targets", "multi_predictions")),
    (lambda m: m.Precision(thresholds=[0.2, 0.5, 0.9]), ("multi_targets", "multi_predictions")),
    (lambda m: m.Precision(top_k=2), ("multi_targets", "multi_predictions")),
    (lambda m: m.Recall(class_id=1), ("multi_targets", "multi_predictions")),
    (lambda m: m.Recall(thresholds=0.3, class_id=2), ("multi_targets", "multi_predictions")),
    (lambda m: m.Precision(), ("binary_targets", "binary_predictions")),
    (lambda m: m.AUC(), ("binary_targets", "binary_predictions")),
    (lambda m: m.AUC(curve="PR"), ("multi_targets", "multi_predictions")),
    (lambda m: m.AUC(num_thresholds=7, summation_method="minoring"), ("multi_targets", "multi_predictions")),
    (lambda m: m.AUC(curve="PR", summation_method="majoring"), ("multi_targets", "multi_predictions")),
    (lambda m: m.AUC(multi_label=True), ("multi_targets", "multi_predictions")),
    (lambda m: m.AUC(multi_label=True, curve="PR"), ("multi_targets", "multi_predictions")),
    (lambda m: m.AUC(thresholds=[0.1, 0.4, 0.8]), ("multi_targets", "multi_predictions")),
    (lambda m: m.F1Score(), ("multi_targets", "multi_predictions")),
    (lambda m: m.F1Score(average="macro"), ("multi_targets", "multi_predictions")),
    (lambda m: m.F1Score(average="micro", threshold=0.5), ("multi_targets", "multi_predictions")),
    (lambda m: m.F1Score(average="weighted"), ("multi_targets", "multi_predictions")),
    (lambda m: m.FBetaScore(beta=2.0, average="macro"), ("multi_targets", "multi_predictions")),
]


@pytest.mark.parametrize("make, keys", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_metric_results_equal_keras(keras, make, keys, weighted):
    data = _data()
    y_true, y_pred = data[keys[0]], data[keys[1]]
    weights = data["weights"] if weighted else None
    ours, theirs = make(metrics), make(keras.metrics)
    # Two updates (halves of the data), then the accumulated result; then reset and one update.
    for part in (slice(0, 25), slice(25, None)):
        ours.update_state(y_true[part], y_pred[part], None if weights is None else weights[part])
        theirs.update_state(y_true[part], y_pred[part], sample_weight=None if weights is None else weights[part])
    np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), rtol=RTOL, atol=1e-6)
    ours.reset_state()
    theirs.reset_state()
    np.testing.assert_allclose(ours(y_true[:9], y_pred[:9]), np.asarray(theirs(y_true[:9], y_pred[:9])),
                               rtol=RTOL, atol=1e-6)


def test_auc_from_logits_and_mean_and_exact_accuracy_equal_keras(keras):
    data = _data(1)
    logits = data["multi_predictions"] * 6 - 3
    np.testing.assert_allclose(metrics.AUC(from_logits=True)(data["multi_targets"], logits),
                               keras.metrics.AUC(from_logits=True)(data["multi_targets"], logits), rtol=RTOL)
    values = data["probabilities"][:, 0]
    np.testing.assert_allclose(metrics.Mean()(values, sample_weight=data["weights"]),
                               keras.metrics.Mean()(values, sample_weight=data["weights"]), rtol=RTOL)
    predicted = np.argmax(data["probabilities"], axis=1)
    np.testing.assert_allclose(metrics.Accuracy()(data["labels"], predicted),
                               keras.metrics.Accuracy()(data["labels"], predicted), rtol=RTOL)


@pytest.mark.parametrize("make", [case[0] for case in CASES[::3]] + [lambda m: m.Mean(), lambda m: m.Accuracy()])
def test_metric_configs_equal_keras(keras, make):
    ours, theirs = make(metrics), make(keras.metrics)
    config = theirs.get_config()
    config["name"] = ours.name  # default names are numbered per process (precision, precision_1, ...)
    assert ours.get_config() == config
    assert type(ours).from_config(config).get_config() == config


def test_default_names_are_numbered_like_keras():
    first, second = metrics.Precision(), metrics.Precision()
    assert first.name.startswith("precision") and second.name != first.name
    assert metrics.get("precision").name == "precision"  # a string names its metric
    assert metrics.get("auc").name == "auc" and isinstance(metrics.get("AUC"), metrics.AUC)
    assert metrics.get(metrics.binary_accuracy).name == "binary_accuracy"
    fastcnn.utils.clear_session()  # Keras's: names start afresh
    assert metrics.Precision().name == "precision" and layers.Dense(2).name == "dense"


@pytest.mark.parametrize("make, match", [
    (lambda: metrics.Precision(thresholds=1.5), "Threshold values must be in \\[0, 1\\]"),
    (lambda: metrics.Recall(thresholds=[0.2, -0.1]), "Threshold values must be in \\[0, 1\\]"),
    (lambda: metrics.AUC(num_thresholds=1), "num_thresholds=1"),
    (lambda: metrics.AUC(curve="roc_curve"), "Invalid AUC curve value"),
    (lambda: metrics.TopKCategoricalAccuracy(k=0), "k=0"),
    (lambda: metrics.F1Score(average="mean"), "average='mean'"),
    (lambda: metrics.FBetaScore(beta=0), "beta=0"),
    (lambda: metrics.get("precission"), "Could not interpret metric identifier: 'precission'"),
    (lambda: metrics.Precision()(np.zeros(4), np.zeros((4, 3))), "same shape"),
    (lambda: metrics.Mean(dtype="float16"), "float32"),
])
def test_bad_metric_arguments_raise_clearly(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def _classifier(module, activation="softmax", units=4):
    model = module.Sequential([module.layers.Input((6, 6, 1)), module.layers.Conv2D(3, 3, activation="relu"),
                               module.layers.Flatten(), module.layers.Dense(units, activation=activation)])
    return model


@pytest.mark.parametrize("loss, metric_names", [
    ("sparse_categorical_crossentropy", lambda m: ["accuracy", m.SparseTopKCategoricalAccuracy(k=2, name="top2")]),
    ("categorical_crossentropy", lambda m: ["acc", m.Precision(name="p"), m.Recall(name="r"), m.AUC(name="auc"),
                                            m.F1Score(average="macro", name="f1"), "top_k_categorical_accuracy"]),
])
def test_compiled_metrics_in_evaluate_and_fit_logs_equal_keras(tf, keras, rng, loss, metric_names):
    keras.utils.set_random_seed(3)  # the initial weights (both models start from Keras's)
    x = rng.random((40, 6, 6, 1)).astype(np.float32)
    labels = rng.integers(0, 4, 40)
    y = labels if loss.startswith("sparse") else np.eye(4, dtype=np.float32)[labels]
    ours, theirs = _classifier(fastcnn), _classifier(keras)
    ours.set_weights(theirs.get_weights())
    for model, module in ((ours, fastcnn), (theirs, keras)):
        model.compile("sgd", loss, metrics=metric_names(module.metrics))
    ours_logs = ours.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    theirs_logs = theirs.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert list(ours_logs) == list(theirs_logs)
    for key in theirs_logs:
        np.testing.assert_allclose(ours_logs[key], theirs_logs[key], rtol=1e-4, atol=1e-6, err_msg=key)
    # Keras 3 lists ["loss", "compile_metrics"] here; fastcnn names every entry of evaluate's list
    # (whose order, Keras's, the comparison of the lists below checks).
    assert sorted(ours.metrics_names) == sorted(theirs_logs)
    ours_list = ours.evaluate(x, y, batch_size=16, verbose=0)
    np.testing.assert_allclose(ours_list, theirs.evaluate(x, y, batch_size=16, verbose=0), rtol=1e-4, atol=1e-6)
    # Training logs: the same keys (plain SGD keeps both models' weights within rounding).
    ours_history = ours.fit(x, y, batch_size=40, epochs=1, verbose=0, shuffle=False).history
    theirs_history = theirs.fit(x, y, batch_size=40, epochs=1, verbose=0, shuffle=False).history
    assert sorted(ours_history) == sorted(theirs_history)
    for key in theirs_history:
        np.testing.assert_allclose(ours_history[key], theirs_history[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_accuracy_string_picks_the_output_kind():
    binary = _classifier(fastcnn, activation="sigmoid", units=1)
    binary.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    sparse = _classifier(fastcnn)
    sparse.compile("sgd", "sparse_categorical_crossentropy", metrics=["acc"])
    dense = _classifier(fastcnn)
    dense.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    assert [type(m).__name__ for m in binary.metrics] == ["BinaryAccuracy"]
    assert [(type(m).__name__, m.name) for m in sparse.metrics] == [("SparseCategoricalAccuracy", "acc")]
    assert [type(m).__name__ for m in dense.metrics] == ["CategoricalAccuracy"]


def test_metrics_are_reset_per_epoch_and_per_evaluation(rng):
    model = _classifier(fastcnn)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=[metrics.SparseTopKCategoricalAccuracy(k=1), "accuracy"])
    x = rng.random((12, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 4, 12)
    model.evaluate(x, y, verbose=0)
    accuracy = model.metrics[1]
    first = float(accuracy.result())
    model.evaluate(x[:3], y[:3], verbose=0)
    assert float(accuracy.result()) == float(metrics.SparseCategoricalAccuracy()(y[:3], model.predict(x[:3], verbose=0)))
    assert np.isfinite(first)


def test_multi_output_metrics_are_named_per_output(rng):
    inputs = fastcnn.Input((5,))
    hidden = layers.Dense(6, activation="relu")(inputs)
    digit = layers.Dense(3, activation="softmax", name="digit")(hidden)
    parity = layers.Dense(2, activation="softmax", name="parity")(hidden)
    model = fastcnn.Model(inputs, [digit, parity])
    model.compile("sgd", ["sparse_categorical_crossentropy"] * 2,
                  metrics={"digit": ["accuracy", metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")],
                           "parity": "accuracy"})
    x = rng.random((10, 5)).astype(np.float32)
    logs = model.evaluate(x, [np.arange(10) % 3, np.arange(10) % 2], verbose=0, return_dict=True)
    assert list(logs) == sorted(["loss", "digit_loss", "parity_loss", "digit_accuracy", "digit_top2",
                                 "parity_accuracy"])
    assert model.metrics_names == ["loss", "digit_loss", "parity_loss", "digit_accuracy", "digit_top2",
                                   "parity_accuracy"]


@pytest.mark.parametrize("weighting", ["sample_weight", "class_weight"])
def test_weighted_metrics_equal_keras(tf, keras, rng, weighting):
    keras.utils.set_random_seed(4)
    x = rng.random((40, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 4, 40)
    weights = rng.random(40).astype(np.float32)
    ours, theirs = _classifier(fastcnn), _classifier(keras)
    ours.set_weights(theirs.get_weights())
    for model, module in ((ours, fastcnn), (theirs, keras)):
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"],
                      weighted_metrics=["accuracy", module.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")])
    # Evaluated with sample weights: the weighted metrics see them, "accuracy" does not.
    ours_logs = ours.evaluate(x, y, sample_weight=weights, batch_size=16, verbose=0, return_dict=True)
    theirs_logs = theirs.evaluate(x, y, sample_weight=weights, batch_size=16, verbose=0, return_dict=True)
    assert sorted(ours_logs) == sorted(theirs_logs) == ["accuracy", "loss", "top2", "weighted_accuracy"]
    for key in theirs_logs:
        np.testing.assert_allclose(ours_logs[key], theirs_logs[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert ours_logs["accuracy"] != ours_logs["weighted_accuracy"]  # the weights do change the result
    assert ours.metrics_names == ["loss", "accuracy", "weighted_accuracy", "top2"]
    fit_weights = {"sample_weight": weights} if weighting == "sample_weight" else {"class_weight": {0: 3.0, 2: 0.5}}
    ours_history = ours.fit(x, y, batch_size=40, epochs=1, verbose=0, shuffle=False, **fit_weights).history
    theirs_history = theirs.fit(x, y, batch_size=40, epochs=1, verbose=0, shuffle=False, **fit_weights).history
    assert sorted(ours_history) == sorted(theirs_history)
    for key in theirs_history:
        np.testing.assert_allclose(ours_history[key], theirs_history[key], rtol=1e-4, atol=1e-6, err_msg=key)
    assert ours.get_compile_config()["weighted_metrics"] == theirs.get_compile_config()["weighted_metrics"]
    restored = _classifier(fastcnn)
    restored.compile_from_config(theirs.get_compile_config())
    assert restored.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True).keys() == ours_logs.keys()


def test_weighted_metrics_per_output_and_bad_forms(rng):
    inputs = fastcnn.Input((5,))
    hidden = layers.Dense(6, activation="relu")(inputs)
    digit = layers.Dense(3, activation="softmax", name="digit")(hidden)
    parity = layers.Dense(2, activation="softmax", name="parity")(hidden)
    model = fastcnn.Model(inputs, [digit, parity])
    model.compile("sgd", ["sparse_categorical_crossentropy"] * 2, metrics={"digit": ["accuracy"]},
                  weighted_metrics={"digit": ["accuracy"], "parity": ["accuracy"]})
    assert model.metrics_names == ["loss", "digit_loss", "parity_loss", "digit_accuracy", "digit_weighted_accuracy",
                                   "parity_accuracy"]
    x = rng.random((10, 5)).astype(np.float32)
    weights = np.r_[np.ones(5), np.zeros(5)].astype(np.float32)
    logs = model.evaluate(x, [np.arange(10) % 3, np.arange(10) % 2], sample_weight=weights, verbose=0,
                          return_dict=True)
    predictions = model.predict(x[:5], verbose=0)
    expected = metrics.SparseCategoricalAccuracy()(np.arange(5) % 2, predictions[1])
    np.testing.assert_allclose(logs["parity_accuracy"], expected, rtol=1e-6)  # only the weighted samples count
    with pytest.raises(ValueError, match="weighted_metrics='accuracy'"):
        _classifier(fastcnn).compile("sgd", "sparse_categorical_crossentropy", weighted_metrics="accuracy")


def _accuracy_model(classes, activation):
    model = fastcnn.Sequential([layers.Input((3, 4, 1)), layers.Flatten(), layers.Dense(classes, activation=activation)])
    return model


@pytest.mark.parametrize("targets", ["labels", "one_hot", "smoothed"])
@pytest.mark.parametrize("outputs", ["trained", "ties", "nan"])
def test_step_counted_accuracy_equals_the_numpy_update(monkeypatch, targets, outputs):
    """Sparse / categorical accuracy counted inside the compiled step (Network.step_argmax_matches)
    gives fit's and evaluate's logs bitwise what the metrics' numpy update gives: ties take the
    first largest output, a NaN output counts as the largest (numpy's argmax), and label-smoothed
    targets (which the metrics see unsmoothed) keep the numpy path."""
    rng = np.random.default_rng(7)
    classes, samples = 5, 37
    x = rng.standard_normal((samples, 3, 4, 1)).astype(np.float32)
    labels = rng.integers(0, classes, samples)
    if outputs == "nan":
        labels[::2] = 1  # the class of the first NaN output: a NaN-skipping argmax would miss all of these
    y = labels if targets == "labels" else np.eye(classes, dtype=np.float32)[labels]
    loss = ("sparse_categorical_crossentropy" if targets == "labels" else
            fastcnn.losses.CategoricalCrossentropy(label_smoothing=0.1 if targets == "smoothed" else 0.0))
    counted = []
    original = metrics.Mean._add_matches
    monkeypatch.setattr(metrics.Mean, "_add_matches", lambda self, *a: counted.append(a) or original(self, *a))

    def run(step_counted):
        monkeypatch.setattr(metrics, "_STEP_COUNTED", step_counted)
        fastcnn.utils.set_random_seed(3)
        model = _accuracy_model(classes, "linear" if outputs == "nan" else "softmax")
        model.compile(optimizer="sgd", loss=loss, metrics=["accuracy", metrics.SparseCategoricalAccuracy(name="sca")
                                                           if targets == "labels" else
                                                           metrics.CategoricalAccuracy(name="ca")])
        kernel, bias = model.layers[-1].get_weights()
        if outputs == "ties":
            model.layers[-1].set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
        elif outputs == "nan":
            bias[[1, 3]] = np.nan
            kernel[:, 2] = 0.0
            model.layers[-1].set_weights([kernel, bias])
        logs = [model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)]
        if outputs == "trained":
            logs.append(model.fit(x, y, batch_size=8, epochs=2, verbose=0).history)
        return logs

    step_counted = run(dict(metrics._STEP_COUNTED))
    assert bool(counted) == (targets != "smoothed")
    counted.clear()
    numpy_only = run({})
    assert not counted
    assert repr(step_counted) == repr(numpy_only)
    if outputs == "nan":  # every output row holds a NaN at class 1: numpy's argmax picks it
        assert step_counted[0]["accuracy"] == pytest.approx(np.mean(labels == 1))
