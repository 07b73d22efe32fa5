"""Configs in Keras 3.15's format both ways (fastcnn.saving), and the safety of building from them.

Every comparison is on the JSON text Keras would write into a .keras file's config.json
(json.dumps of serialize_keras_object's dict), so key order and int/float types count too.
"""

import contextlib
import io
import json
import os
import pathlib

import numpy as np
import pytest

import fastcnn
from fastcnn import saving
from fastcnn.layers import _from_config as layer_configs
from fastcnn.models import _compile_config, _to_config

from conftest import relative_error, seed_example

def _text(value):
    return json.dumps(value)


# ---- every layer's get_config equals Keras's ----

LAYER_CASES = [
    ("InputLayer", lambda k: k.layers.InputLayer(shape=(28, 28, 1), name="n")),
    ("InputLayer", lambda k: k.layers.InputLayer(batch_shape=(None, 8, 6, 3), name="n")),
    ("Conv2D", lambda k: k.layers.Conv2D(32, 3, name="n")),
    ("Conv2D", lambda k: k.layers.Conv2D(8, 3, groups=4, name="n")),
    ("DepthwiseConv2D", lambda k: k.layers.DepthwiseConv2D(3, name="n")),
    ("DepthwiseConv2D", lambda k: k.layers.DepthwiseConv2D(
        (5, 3), strides=2, padding="same", depth_multiplier=3, activation="relu6", use_bias=False,
        depthwise_initializer="he_normal", depthwise_regularizer=k.regularizers.L2(0.01),
        depthwise_constraint=k.constraints.MaxNorm(2.0), name="n")),
    ("Conv2D", lambda k: k.layers.Conv2D(16, (5, 3), strides=2, padding="same", activation="relu", use_bias=False,
                                         kernel_initializer="he_normal", name="n")),
    ("Conv2D", lambda k: k.layers.Conv2D(
        4, 3, dilation_rate=2, padding="SAME", activation="tanh", trainable=False,
        kernel_initializer=k.initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=3),
        bias_initializer=k.initializers.Constant(0.1), kernel_regularizer=k.regularizers.L2(1e-4),
        bias_regularizer=k.regularizers.L1L2(0.1, 0.2), activity_regularizer=k.regularizers.L1(1e-3),
        kernel_constraint=k.constraints.MaxNorm(3.0, axis=[0, 1, 2]), bias_constraint=k.constraints.NonNeg(),
        name="n")),
    ("Dense", lambda k: k.layers.Dense(10, name="n")),
    ("Dense", lambda k: k.layers.Dense(
        5, activation="softmax", kernel_regularizer=k.regularizers.L1L2(l1=0.1, l2=0.2),
        activity_regularizer=k.regularizers.L2(0.01), kernel_constraint=k.constraints.MinMaxNorm(0.5, 2.0, 0.7, [0]),
        bias_constraint=k.constraints.UnitNorm(), kernel_initializer=k.initializers.TruncatedNormal(stddev=0.1, seed=2),
        bias_initializer="ones", name="n")),
    ("Dense", lambda k: k.layers.Dense(3, use_bias=False, kernel_initializer=k.initializers.RandomUniform(-1.0, 1.0),
                                       trainable=False, name="n")),
    ("BatchNormalization", lambda k: k.layers.BatchNormalization(name="n")),
    ("BatchNormalization", lambda k: k.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, center=False, gamma_regularizer=k.regularizers.L2(1e-4),
        beta_constraint=k.constraints.UnitNorm(), moving_variance_initializer=k.initializers.Constant(2.0),
        gamma_initializer=k.initializers.RandomNormal(1.0, 0.02, seed=7), name="n")),
    ("LayerNormalization", lambda k: k.layers.LayerNormalization(name="n")),
    ("LayerNormalization", lambda k: k.layers.LayerNormalization(
        axis=[1, 2], epsilon=1e-5, center=False, gamma_regularizer=k.regularizers.L2(1e-4),
        beta_constraint=k.constraints.NonNeg(), gamma_initializer=k.initializers.Constant(2.0), name="n")),
    ("GroupNormalization", lambda k: k.layers.GroupNormalization(name="n")),
    ("GroupNormalization", lambda k: k.layers.GroupNormalization(
        groups=-1, epsilon=1e-5, scale=False, beta_regularizer=k.regularizers.L1(0.1), name="n")),
    ("Normalization", lambda k: k.layers.Normalization(name="n")),
    ("Normalization", lambda k: k.layers.Normalization(axis=None, mean=2.0, variance=3.0, invert=True, name="n")),
    ("Normalization", lambda k: k.layers.Normalization(axis=(1, 2), mean=[[1.0], [2.0]], variance=[[1.0], [4.0]],
                                                       name="n")),
    ("Dropout", lambda k: k.layers.Dropout(0.5, name="n")),
    ("Dropout", lambda k: k.layers.Dropout(0.25, seed=3, name="n")),
    ("Dropout", lambda k: k.layers.Dropout(0.25, noise_shape=(None, 1, 1, 4), name="n")),
    ("SpatialDropout2D", lambda k: k.layers.SpatialDropout2D(0.3, name="n")),
    ("SpatialDropout2D", lambda k: k.layers.SpatialDropout2D(0.5, data_format="channels_last", seed=4, name="n")),
    ("GaussianNoise", lambda k: k.layers.GaussianNoise(0.1, name="n")),
    ("GaussianNoise", lambda k: k.layers.GaussianNoise(1, seed=2, name="n")),
    ("GaussianDropout", lambda k: k.layers.GaussianDropout(0.2, name="n")),
    ("GaussianDropout", lambda k: k.layers.GaussianDropout(0.5, seed=9, trainable=False, name="n")),
    ("MaxPooling2D", lambda k: k.layers.MaxPooling2D(name="n")),
    ("MaxPooling2D", lambda k: k.layers.MaxPooling2D((3, 3), strides=(2, 1), padding="same", name="n")),
    ("AveragePooling2D", lambda k: k.layers.AveragePooling2D(2, name="n")),
    ("AveragePooling2D", lambda k: k.layers.AveragePooling2D((2, 3), strides=1, padding="same", name="n")),
    ("GlobalAveragePooling2D", lambda k: k.layers.GlobalAveragePooling2D(keepdims=True, name="n")),
    ("GlobalMaxPooling2D", lambda k: k.layers.GlobalMaxPooling2D(name="n")),
    ("Flatten", lambda k: k.layers.Flatten(name="n")),
    ("Reshape", lambda k: k.layers.Reshape((4, -1), name="n")),
    ("Reshape", lambda k: k.layers.Reshape([2, 3, 4], name="n")),
    ("ZeroPadding2D", lambda k: k.layers.ZeroPadding2D(name="n")),
    ("ZeroPadding2D", lambda k: k.layers.ZeroPadding2D(2, name="n")),
    ("ZeroPadding2D", lambda k: k.layers.ZeroPadding2D(((1, 2), (3, 4)), name="n")),
    ("Rescaling", lambda k: k.layers.Rescaling(1 / 255, name="n")),
    ("Rescaling", lambda k: k.layers.Rescaling(2.0, offset=-1.0, name="n")),
    ("Activation", lambda k: k.layers.Activation("relu", name="n")),
    ("Activation", lambda k: k.layers.Activation("softmax", name="n")),
    ("ReLU", lambda k: k.layers.ReLU(name="n")),
    ("ReLU", lambda k: k.layers.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.5, name="n")),
    ("LeakyReLU", lambda k: k.layers.LeakyReLU(name="n")),
    ("LeakyReLU", lambda k: k.layers.LeakyReLU(negative_slope=0.2, name="n")),
    ("ELU", lambda k: k.layers.ELU(name="n")),
    ("ELU", lambda k: k.layers.ELU(alpha=0.5, name="n")),
    ("PReLU", lambda k: k.layers.PReLU(name="n")),
    ("PReLU", lambda k: k.layers.PReLU(alpha_initializer="ones", alpha_regularizer=k.regularizers.L2(0.01),
                                       alpha_constraint=k.constraints.NonNeg(), shared_axes=[1, 2], name="n")),
    ("PReLU", lambda k: k.layers.PReLU(shared_axes=3, name="n")),
    ("Activation", lambda k: k.layers.Activation("hard_swish", name="n")),
    ("Activation", lambda k: k.layers.Activation("log_softmax", name="n")),
    ("RandomFlip", lambda k: k.layers.RandomFlip(name="n")),
    ("RandomFlip", lambda k: k.layers.RandomFlip("horizontal", seed=1, name="n")),
    ("RandomRotation", lambda k: k.layers.RandomRotation(0.2, name="n")),
    ("RandomRotation", lambda k: k.layers.RandomRotation((-0.1, 0.3), fill_mode="constant", fill_value=1.0,
                                                         interpolation="nearest", seed=4, name="n")),
    ("RandomTranslation", lambda k: k.layers.RandomTranslation(0.1, 0.2, name="n")),
    ("RandomTranslation", lambda k: k.layers.RandomTranslation((-0.1, 0.2), 0.3, fill_mode="nearest", seed=2,
                                                               name="n")),
    ("RandomZoom", lambda k: k.layers.RandomZoom(0.1, name="n")),
    ("RandomZoom", lambda k: k.layers.RandomZoom((-0.2, 0.3), (0.1, 0.2), fill_mode="wrap", seed=5, name="n")),
    ("RandomContrast", lambda k: k.layers.RandomContrast(0.2, name="n")),
    ("RandomContrast", lambda k: k.layers.RandomContrast((0.1, 0.3), value_range=(0, 1), seed=2, name="n")),
    ("RandomBrightness", lambda k: k.layers.RandomBrightness(0.2, name="n")),
    ("RandomBrightness", lambda k: k.layers.RandomBrightness((-0.1, 0.3), value_range=(1.0, 0.0), seed=3, name="n")),
    ("RandomCrop", lambda k: k.layers.RandomCrop(3, 4, seed=9, name="n")),
    ("Resizing", lambda k: k.layers.Resizing(3, 4, name="n")),
    ("Resizing", lambda k: k.layers.Resizing(8, 6, interpolation="nearest", crop_to_aspect_ratio=True, name="n")),
    ("Resizing", lambda k: k.layers.Resizing(5, 5, pad_to_aspect_ratio=True, fill_value=2.0, name="n")),
    ("CenterCrop", lambda k: k.layers.CenterCrop(3, 4, name="n")),
    ("Add", lambda k: k.layers.Add(name="n")),
    ("Subtract", lambda k: k.layers.Subtract(name="n")),
    ("Multiply", lambda k: k.layers.Multiply(name="n")),
    ("Average", lambda k: k.layers.Average(name="n")),
    ("Maximum", lambda k: k.layers.Maximum(name="n")),
    ("Minimum", lambda k: k.layers.Minimum(trainable=False, name="n")),
    ("Concatenate", lambda k: k.layers.Concatenate(name="n")),
    ("Concatenate", lambda k: k.layers.Concatenate(axis=1, name="n")),
    ("SeparableConv2D", lambda k: k.layers.SeparableConv2D(8, 3, name="n")),
    ("SeparableConv2D", lambda k: k.layers.SeparableConv2D(
        4, (5, 3), strides=2, padding="same", depth_multiplier=2, activation="relu", use_bias=False,
        pointwise_initializer="he_normal", pointwise_regularizer=k.regularizers.L2(0.01),
        depthwise_constraint=k.constraints.MaxNorm(2.0), name="n")),
    ("Cropping2D", lambda k: k.layers.Cropping2D(name="n")),
    ("Cropping2D", lambda k: k.layers.Cropping2D(((1, 2), (0, 3)), name="n")),
    ("UpSampling2D", lambda k: k.layers.UpSampling2D(name="n")),
    ("UpSampling2D", lambda k: k.layers.UpSampling2D((3, 2), interpolation="bilinear", name="n")),
    ("Identity", lambda k: k.layers.Identity(name="n")),
    ("Softmax", lambda k: k.layers.Softmax(name="n")),
    ("Rescaling", lambda k: k.layers.Rescaling([0.5, 1.0, 2.0], offset=[0.0, 0.1, 0.2], name="n")),
]


def test_every_allow_listed_layer_class_has_config_cases():
    assert {name for name, _ in LAYER_CASES} == set(layer_configs.LAYER_CLASSES)


@pytest.mark.parametrize("case", range(len(LAYER_CASES)), ids=[f"{n}-{i}" for i, (n, _) in enumerate(LAYER_CASES)])
def test_layer_config_equals_keras(keras, case):
    class_name, make = LAYER_CASES[case]
    ours, theirs = make(fastcnn), make(keras)
    assert type(ours).__name__ == type(theirs).__name__ == class_name
    assert _text(ours.get_config()) == _text(theirs.get_config())
    # ... and so does its serialized entry (module, class_name, registered_name)
    assert _text(_to_config.serialize_layer(ours)) == _text(keras.saving.serialize_keras_object(theirs))
    # Keras -> fastcnn: its config (after the JSON round trip) builds the same layer here.
    keras_config = json.loads(_text(theirs.get_config()))
    assert set(keras_config) <= set(layer_configs.LAYER_KEYS[class_name])
    rebuilt = type(ours).from_config(keras_config)
    assert _text(rebuilt.get_config()) == _text(theirs.get_config())
    # fastcnn -> Keras: Keras rebuilds the same layer from fastcnn's config.
    again = type(theirs).from_config(json.loads(_text(ours.get_config())))
    assert _text(again.get_config()) == _text(theirs.get_config())


def test_optimizer_and_schedule_configs_equal_keras(keras):
    def make(k):
        s = k.optimizers.schedules
        return [k.optimizers.SGD(momentum=0.9, nesterov=True, clipnorm=1.0, name="o"),
                k.optimizers.Adam(amsgrad=True, global_clipnorm=2.0, name="o"),
                k.optimizers.AdamW(learning_rate=0.01, weight_decay=0.1, name="o"),
                k.optimizers.RMSprop(rho=0.8, momentum=0.5, centered=True, clipvalue=0.5, name="o"),
                k.optimizers.Adagrad(initial_accumulator_value=0.2, name="o"), k.optimizers.Nadam(name="o"),
                k.optimizers.Adam(learning_rate=s.ExponentialDecay(0.1, 100, 0.9, staircase=True), name="o"),
                k.optimizers.SGD(learning_rate=s.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]), name="o"),
                k.optimizers.RMSprop(learning_rate=s.CosineDecay(0.1, 1000, alpha=0.1, warmup_target=0.2,
                                                                  warmup_steps=10), name="o")]
    for ours, theirs in zip(make(fastcnn), make(keras)):
        serialized = fastcnn.optimizers.serialize(ours)
        assert _text(serialized) == _text(keras.saving.serialize_keras_object(theirs))
        rebuilt = _compile_config.deserialize_optimizer(json.loads(_text(keras.saving.serialize_keras_object(theirs))))
        assert _text(fastcnn.optimizers.serialize(rebuilt)) == _text(serialized)


def test_default_optimizer_names_follow_keras():
    fastcnn._naming.reset()
    names = [fastcnn.optimizers.get(n).name for n in ("sgd", "rmsprop", "adamw", "adam", "adam")]
    assert names == ["sgd", "rm_sprop", "adam_w", "adam", "adam_1"]


# ---- whole models ----


def _seed_model(lib, path):
    """Runs a seed example as printed, with `from fastcnn import` switched to `lib`."""
    source = path.read_text()
    if lib != "fastcnn":
        source = source.replace("from fastcnn import layers, models", "from tensorflow.keras import layers, models")
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 (our own example files)
    return namespace["model"]


def _without_names(serialized):
    """The serialized model with its unique names (model, layers, optimizer) replaced by position."""
    serialized = json.loads(_text(serialized))
    serialized["config"]["name"] = "model"
    for index, layer in enumerate(serialized["config"]["layers"]):
        layer["config"]["name"] = f"layer_{index}"
    if serialized.get("compile_config"):
        serialized["compile_config"]["optimizer"]["config"]["name"] = "optimizer"
    return serialized


@pytest.mark.parametrize("example", ["example1.py", "example2.py", "example3.py"])
def test_seed_examples_serialize_as_keras(tf, keras, example):
    ours, theirs = _seed_model("fastcnn", seed_example(example)), _seed_model("keras", seed_example(example))
    assert _text(_without_names(saving.serialize_model(ours))) == \
        _text(_without_names(keras.saving.serialize_keras_object(theirs)))
    assert json.loads(ours.to_json()) == json.loads(_text(saving.serialize_model(ours)))


def _all_layers(k):
    """A model with every layer type that predicts the same in fastcnn and Keras (RandomCrop is
    left out: in inference Keras 3.15 returns its input uncropped, fastcnn centre-crops)."""
    L = k.layers
    return k.Sequential([
        L.Input((20, 18, 3), name="image"),
        L.RandomFlip(seed=1, name="flip"), L.RandomRotation(0.1, seed=1, name="rotation"),
        L.RandomTranslation(0.1, 0.1, seed=1, name="translation"), L.RandomZoom(0.1, seed=1, name="zoom"),
        L.RandomContrast(0.1, seed=1, name="contrast"), L.RandomBrightness(0.1, seed=1, name="brightness"),
        L.Resizing(18, 16, name="resizing"), L.CenterCrop(16, 16, name="crop"), L.Rescaling(1 / 255, name="rescaling"),
        L.ZeroPadding2D(1, name="padding"),
        L.Conv2D(6, 3, activation="relu", kernel_regularizer=k.regularizers.L2(1e-4), name="conv"),
        L.BatchNormalization(name="bn"), L.Activation("tanh", name="tanh"), L.ReLU(max_value=6.0, name="relu"),
        L.LeakyReLU(negative_slope=0.2, name="leaky"), L.MaxPooling2D(name="max_pool"),
        L.AveragePooling2D(2, name="avg_pool"), L.Dropout(0.2, name="dropout"),
        L.Reshape((4, 4, 6), name="reshape"), L.GlobalMaxPooling2D(keepdims=True, name="global_max"),
        L.GlobalAveragePooling2D(keepdims=True, name="global_avg"), L.Flatten(name="flatten"),
        L.Dense(8, activation="swish", name="dense"), L.Dense(4, activation="softmax", name="out"),
    ], name="everything")


def _compile_both(model, k, loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
    model.compile(optimizer=k.optimizers.Adam(learning_rate=k.optimizers.schedules.ExponentialDecay(0.01, 10, 0.5),
                                              name="opt"), loss=loss, metrics=list(metrics))
    return model


def _same_predictions(ours, theirs, shape, rng):
    # Images in [0, 255] for models that rescale them, [0, 1] for the seed examples.
    high = 255.0 if isinstance(ours.layers[0], (fastcnn.layers.RandomFlip, fastcnn.layers.Rescaling)) else 1.0
    x = rng.uniform(0, high, size=(5,) + shape).astype(np.float32)
    assert relative_error(ours.predict(x, verbose=0), theirs.predict(x, verbose=0)) <= 1e-5


@pytest.mark.parametrize("make", ["all_layers", "example3"])
def test_keras_model_deserializes_to_the_same_fastcnn_model(tf, keras, rng, make):
    theirs = _all_layers(keras) if make == "all_layers" else _seed_model("keras", seed_example("example3.py"))
    if make == "all_layers":
        _compile_both(theirs, keras)
    serialized = json.loads(_text(keras.saving.serialize_keras_object(theirs)))
    ours = saving.deserialize_model(serialized)
    # Names, shapes, every value: fastcnn writes back exactly what Keras wrote.
    assert _text(saving.serialize_model(ours)) == _text(serialized)
    assert ours.count_params() == theirs.count_params()
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert ours.compiled and isinstance(ours.optimizer, fastcnn.optimizers.Adam)
    ours.set_weights(theirs.get_weights())
    _same_predictions(ours, theirs, theirs.input_shape[1:], rng)
    # The bare Sequential config (keras_model.get_config()) builds it too.
    bare = saving.deserialize_model(json.loads(_text(theirs.get_config())))
    assert _text(bare.get_config()) == _text(theirs.get_config()) and not bare.compiled
    # and model_from_json reads Keras's to_json.
    assert _text(fastcnn.models.model_from_json(theirs.to_json()).get_config()) == _text(theirs.get_config())


def test_fastcnn_model_deserializes_in_keras(tf, keras, rng):
    ours = _compile_both(_all_layers(fastcnn), fastcnn)
    serialized = saving.serialize_model(ours)
    theirs = keras.saving.deserialize_keras_object(json.loads(_text(serialized)))
    assert _text(keras.saving.serialize_keras_object(theirs)) == _text(serialized)
    assert type(theirs.optimizer).__name__ == "Adam"
    theirs.set_weights(ours.get_weights())
    _same_predictions(ours, theirs, (20, 18, 3), rng)
    # Keras's model_from_json reads fastcnn's to_json.
    assert _text(keras.models.model_from_json(ours.to_json()).get_config()) == _text(ours.get_config())


@pytest.mark.parametrize("loss,metrics", [
    (lambda k: k.losses.SparseCategoricalCrossentropy(from_logits=True), lambda k: ["acc"]),
    (lambda k: k.losses.CategoricalCrossentropy(label_smoothing=0.1), lambda k: [k.metrics.CategoricalAccuracy()]),
    (lambda k: k.losses.sparse_categorical_crossentropy, lambda k: [k.metrics.SparseCategoricalAccuracy(name="sa")]),
    (lambda k: "categorical_crossentropy", lambda k: None),
    (lambda k: k.losses.BinaryCrossentropy(label_smoothing=0.1, from_logits=True), lambda k: ["accuracy"]),
    (lambda k: "binary_crossentropy", lambda k: [k.metrics.BinaryAccuracy(threshold=0.3), "auc"]),
    (lambda k: k.losses.binary_crossentropy, lambda k: None),
    (lambda k: "categorical_crossentropy",
     lambda k: ["accuracy", k.metrics.Precision(thresholds=[0.3, 0.6], name="p"), k.metrics.Recall(class_id=1, name="r"),
                k.metrics.AUC(num_thresholds=50, curve="PR", name="auc_pr"), k.metrics.TopKCategoricalAccuracy(k=1, name="t"),
                k.metrics.F1Score(average="macro", name="f1"), "top_k_categorical_accuracy", k.metrics.categorical_accuracy]),
])
def test_compile_configs_equal_keras_both_ways(keras, loss, metrics):
    def make(k):
        model = k.Sequential([k.layers.Input((3,), name="x"), k.layers.Dense(2, activation="softmax", name="d")],
                             name="m")
        model.compile(optimizer=k.optimizers.SGD(0.1, momentum=0.5, name="opt"), loss=loss(k), metrics=metrics(k),
                      run_eagerly=True, steps_per_execution=2)
        return model

    ours, theirs = make(fastcnn), make(keras)
    assert _text(saving.serialize_model(ours)) == _text(keras.saving.serialize_keras_object(theirs))
    rebuilt = saving.deserialize_model(json.loads(_text(keras.saving.serialize_keras_object(theirs))))
    assert _text(saving.serialize_model(rebuilt)) == _text(saving.serialize_model(ours))
    assert rebuilt.optimizer.momentum == 0.5 and type(rebuilt.loss) is type(ours.loss)
    assert rebuilt.metrics_names == ours.metrics_names


def test_unbuilt_and_lazily_built_models_serialize_as_keras(keras):
    def make(k):
        return k.Sequential([k.layers.Flatten(name="f"), k.layers.Dense(3, name="d")], name="m")

    ours, theirs = make(fastcnn), make(keras)
    assert _text(saving.serialize_model(ours)) == _text(keras.saving.serialize_keras_object(theirs))
    unbuilt = saving.deserialize_model(saving.serialize_model(ours))
    assert not unbuilt.built and unbuilt.predict(np.ones((2, 4, 2), np.float32), verbose=0).shape == (2, 3)
    ours.build((None, 4, 2))
    theirs.build((None, 4, 2))
    ours_dict, theirs_dict = saving.serialize_model(ours), keras.saving.serialize_keras_object(theirs)
    ours_dict["config"]["layers"][0]["config"]["name"] = theirs_dict["config"]["layers"][0]["config"]["name"] = "i"
    assert _text(ours_dict) == _text(theirs_dict)


def test_model_built_from_config_reads_a_weights_file(tmp_path, rng):
    pytest.importorskip("h5py")
    model = _all_layers(fastcnn)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.weights])
    model.save_weights(tmp_path / "m.weights.h5")
    rebuilt = fastcnn.models.model_from_json(model.to_json())
    rebuilt.load_weights(tmp_path / "m.weights.h5")
    x = rng.uniform(0, 255, size=(3, 20, 18, 3)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0))


# ---- hostile and malformed configs ----


def _model_dict(**layer_changes):
    """A valid serialized model whose Dense layer's entry is updated with `layer_changes`."""
    model = fastcnn.Sequential([fastcnn.layers.Input((4,), name="x"), fastcnn.layers.Dense(2, name="dense")],
                               name="m")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    serialized = json.loads(_text(saving.serialize_model(model)))
    serialized["config"]["layers"][1].update(layer_changes)
    return serialized


def _with(serialized, path, value):
    target = serialized
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return serialized


def _with_input(serialized, batch_shape):
    """Sets the input shape everywhere a serialized model records it."""
    serialized["config"]["layers"][0]["config"]["batch_shape"] = batch_shape
    serialized["config"]["build_input_shape"] = batch_shape
    serialized["build_config"] = {"input_shape": batch_shape}
    serialized["config"]["layers"][1].pop("build_config", None)
    return serialized


def _dense_config(**changes):
    return {**_model_dict()["config"]["layers"][1]["config"], **changes}


def _second_dense(build_config):
    """_model_dict() with a second Dense layer whose entry records `build_config`."""
    serialized = _model_dict()
    serialized["config"]["layers"].append({**serialized["config"]["layers"][1], "config": _dense_config(name="d2"),
                                           "build_config": build_config})
    return serialized


def _nested(depth):
    value = {}
    for _ in range(depth):
        value = {"a": value}
    return value


HOSTILE = [
    ("lambda layer", lambda: _model_dict(class_name="Lambda", config={"name": "l", "function": {
        "class_name": "__lambda__", "config": {"value": "ZGVm"}}}), "unknown layer class_name 'Lambda'"),
    ("TFOpLambda", lambda: _model_dict(class_name="TFOpLambda"), "unknown layer class_name 'TFOpLambda'"),
    ("os.system", lambda: _model_dict(module="os", class_name="system", config="touch pwned"),
     "unknown layer class_name 'system'"),
    ("builtins module on a Dense", lambda: _model_dict(module="builtins"), "module must be 'keras.layers'"),
    ("registered custom layer", lambda: _model_dict(registered_name="my_package>Dense"), "registered_name"),
    ("function activation", lambda: _model_dict(config=_dense_config(activation={
        "module": "builtins", "class_name": "function", "config": "eval", "registered_name": "function"})),
     "unknown activation"),
    ("lambda initializer", lambda: _model_dict(config=_dense_config(kernel_initializer={
        "class_name": "__lambda__", "config": {"value": "ZGVm"}})), "unknown initializer class_name '__lambda__'"),
    ("initializer from os", lambda: _model_dict(config=_dense_config(kernel_initializer={
        "module": "os", "class_name": "Zeros", "config": {}, "registered_name": None})), "must come from module"),
    ("custom regularizer", lambda: _model_dict(config=_dense_config(kernel_regularizer={
        "module": "keras.regularizers", "class_name": "OrthogonalRegularizer", "config": {}})),
     "unknown regularizer class_name 'OrthogonalRegularizer'"),
    ("unknown class", lambda: _model_dict(class_name="Conv3D"), "unknown layer class_name 'Conv3D'"),
    ("extra key", lambda: _model_dict(config=_dense_config(evil="x")), "unknown config key 'evil'"),
    ("extra key in an initializer", lambda: _model_dict(config=_dense_config(kernel_initializer={
        "module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None, "gain": 2.0},
        "registered_name": None})), "unknown config key 'gain'"),
    ("wrong type", lambda: _model_dict(config=_dense_config(units="10")), "units='10'"),
    ("bool as int", lambda: _model_dict(config=_dense_config(units=True)), "units=True"),
    ("float units", lambda: _model_dict(config=_dense_config(units=2.5)), "units=2.5"),
    ("huge units", lambda: _model_dict(config=_dense_config(units=10**12)), "units=1000000000000"),
    ("huge filters", lambda: _with_input(_model_dict(class_name="Conv2D", config={
        "name": "dense", "filters": 10**12, "kernel_size": [3, 3]}), [None, 8, 8, 1]), "filters=1000000000000"),
    ("too many weights", lambda: _with_input(_model_dict(config=_dense_config(units=2**20)), [None, 2**20]),
     "weights, beyond fastcnn's bound"),
    ("huge input", lambda: _with_input(_model_dict(), [None, 2**20, 2**20, 3]), "values per sample"),
    ("negative input", lambda: _with_input(_model_dict(), [None, -4]),
     "dimensions must be integers"),
    ("unknown input dimension", lambda: _with_input(_model_dict(), [None, None]), "dimensions must be integers"),
    ("contradicting build_config", lambda: _model_dict(build_config={"input_shape": [None, 5]}), "contradicts"),
    ("wrong inner build_config", lambda: _second_dense({"input_shape": [None, 3]}),
     "differs from the shape it receives"),
    ("NaN learning rate", lambda: _with(_model_dict(), ["compile_config", "optimizer", "config", "learning_rate"],
                                        float("nan")), "must be a finite number"),
    ("inf rate", lambda: _model_dict(class_name="Dropout", config={"name": "dense", "rate": float("inf")}),
     "must be a finite number"),
    ("deep nesting", lambda: _model_dict(config=_dense_config(kernel_initializer=_nested(200))),
     "nested more than"),
    ("python object", lambda: _model_dict(config=_dense_config(kernel_initializer=object())),
     "must be plain JSON data"),
    ("duplicate names", lambda: _with(_model_dict(), ["config", "layers", 0, "config", "name"], "dense"),
     "names must be unique"),
    ("slash in name", lambda: _model_dict(config=_dense_config(name="a/b")), "cannot contain '/'"),
    ("long name", lambda: _model_dict(config=_dense_config(name="n" * 1000)), "at most 256 characters"),
    ("float64 policy", lambda: _model_dict(config=_dense_config(dtype={
        "module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"}, "registered_name": None})),
     "dtype policy must be float32"),
    ("mixed precision", lambda: _model_dict(config=_dense_config(dtype="mixed_float16")), "must be float32"),
    ("quantized", lambda: _model_dict(config=_dense_config(quantization_config={"mode": "int8"})),
     "quantization_config"),
    ("custom model class", lambda: {**_model_dict(), "class_name": "MyModel"},
     "Sequential and Functional models only"),
    ("Sequential config as Functional", lambda: {**_model_dict(), "class_name": "Functional",
                                                 "module": "keras.src.models.functional"},
     "unknown config key 'build_input_shape'"),
    ("model module", lambda: {**_model_dict(), "module": "subprocess"}, "module must be one of ('keras'"),
    ("unknown optimizer", lambda: _with(_model_dict(), ["compile_config", "optimizer", "class_name"], "Lion"),
     "unknown optimizer class_name 'Lion'"),
    ("optimizer extra key", lambda: _with(_model_dict(), ["compile_config", "optimizer", "config", "decay"], 0.1),
     "unknown config key 'decay'"),
    ("schedule from elsewhere", lambda: _with(_model_dict(), ["compile_config", "optimizer", "config",
                                                               "learning_rate"],
                                              {"module": "os", "class_name": "ExponentialDecay", "config": {}}),
     "must come from module"),
    ("custom loss function", lambda: _with(_model_dict(), ["compile_config", "loss"], {
        "module": "builtins", "class_name": "function", "config": "eval", "registered_name": "function"}),
     "unknown loss function"),
    ("unknown loss", lambda: _with(_model_dict(), ["compile_config", "loss"], "poisson"), "unknown loss 'poisson'"),
    ("metric threshold out of range", lambda: _with(_model_dict(), ["compile_config", "metrics"], [{
        "module": "keras.metrics", "class_name": "Precision", "config": {"name": "p", "thresholds": 1.5}}]),
     "Threshold values must be in [0, 1]"),
    ("metric class not allow-listed", lambda: _with(_model_dict(), ["compile_config", "metrics"], [{
        "module": "keras.metrics", "class_name": "MeanIoU", "config": {"name": "iou", "num_classes": 2}}]),
     "unknown metric class_name 'MeanIoU'"),
    ("metric function not allow-listed", lambda: _with(_model_dict(), ["compile_config", "metrics"], [{
        "module": "builtins", "class_name": "function", "config": "eval", "registered_name": "function"}]),
     "unknown metric function"),
    ("negative loss weight", lambda: _with(_model_dict(), ["compile_config", "loss_weights"], [-2.0]),
     "a loss weight must be a finite non-negative number. Received: -2.0"),
    ("loss weights for two outputs", lambda: _with(_model_dict(), ["compile_config", "loss_weights"], [1.0, 2.0]),
     "`loss_weights` must have one entry per output (1"),
]


@pytest.mark.parametrize("case", range(len(HOSTILE)), ids=[name for name, _, _ in HOSTILE])
def test_hostile_configs_raise_a_clear_value_error(case):
    _, make, match = HOSTILE[case]
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace("[", r"\[")):
        saving.deserialize_model(make())


def test_nothing_named_in_a_config_is_imported_or_run(tmp_path, monkeypatch):
    """Class names that would create a file if resolved and called: refused, and no file."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    payloads = [
        _model_dict(module="os", class_name="system", config={"command": f"touch {marker}"}),
        _model_dict(module="builtins", class_name="exec", config=f"open({str(marker)!r}, 'w')"),
        _model_dict(module="pathlib", class_name="Path", config={"name": str(marker)}),
        _with(_model_dict(), ["compile_config", "loss"], {"module": "os", "class_name": "function",
                                                           "config": "system", "registered_name": "function"}),
        _model_dict(config=_dense_config(kernel_initializer={"module": "builtins", "class_name": "__import__",
                                                             "config": {"name": "os"}})),
    ]
    for payload in payloads:
        with pytest.raises(ValueError):
            saving.deserialize_model(payload)
        with pytest.raises(ValueError):
            fastcnn.models.model_from_json(json.dumps(payload))
    assert not marker.exists()


@pytest.mark.parametrize("text,match", [
    ('{"class_name": "Sequential", "config": {"name": "m", "layers": [], "trainable": NaN}}', "NaN"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("{not json", "not valid JSON"),
    ('{"a": Infinity}', "Infinity"),
])
def test_model_from_json_rejects_bad_documents(text, match):
    with pytest.raises(ValueError, match=match):
        fastcnn.models.model_from_json(text)


def test_layer_from_config_checks_like_the_model_path():
    with pytest.raises(ValueError, match="unknown config key 'function'"):
        fastcnn.layers.Dense.from_config({"name": "d", "units": 2, "function": "x"})
    with pytest.raises(ValueError, match="filters=0"):
        fastcnn.layers.Conv2D.from_config({"name": "c", "filters": 0, "kernel_size": [3, 3]})
    with pytest.raises(ValueError, match="custom_objects"):
        fastcnn.models.model_from_json("{}", custom_objects={"x": print})
    layer = fastcnn.layers.Dense.from_config({"name": "d", "units": 2, "kernel_initializer": "he_normal"})
    assert layer.units == 2 and type(layer.kernel_initializer).__name__ == "HeNormal"


def test_configs_from_fastcnn_round_trip_exactly():
    model = _compile_both(_all_layers(fastcnn), fastcnn, loss=fastcnn.losses.SparseCategoricalCrossentropy(),
                          metrics=[fastcnn.metrics.SparseCategoricalAccuracy()])
    serialized = saving.serialize_model(model)
    rebuilt = saving.deserialize_model(json.loads(_text(serialized)))
    assert _text(saving.serialize_model(rebuilt)) == _text(serialized)
    assert _text(fastcnn.Sequential.from_config(model.get_config()).get_config()) == _text(model.get_config())
    # Keras's other route, the constructor on a config (nested dicts included), gives the same layers.
    for layer in model.layers:
        assert _text(type(layer)(**layer.get_config()).get_config()) == _text(layer.get_config())
    not_compiled = saving.deserialize_model(serialized, compile=False)
    assert not not_compiled.compiled and not_compiled.built


def test_show_config_reports_version_kernels_threads_and_openmp_runtime(capsys):
    import fastcnn

    fastcnn.show_config()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"fastcnn {fastcnn.__version__} (")
    assert out[1].startswith(f"kernels: {fastcnn.config.kernel_set()} (available: ")
    assert out[2].startswith(f"threads: {fastcnn.get_num_threads()} (OMP_NUM_THREADS=")
    # A source build links the compiler's libgomp; the wheel's own (fastcnn.libs) is tests/test_wheel.py's.
    assert out[3].startswith("openmp: libgomp"), out[3]
    path, bundled = fastcnn.config.openmp_runtime()
    assert path is not None and os.path.isfile(path) and path in out[3]
    assert bundled == ("/fastcnn.libs/" in path)
    assert out[4] == f"numpy: {__import__('numpy').__version__}"
    assert out[5].startswith("python: ")


@pytest.mark.parametrize("module, keras_object", [
    ("initializers", lambda k: k.initializers.VarianceScaling(scale=2.0, mode="fan_out", seed=5)),
    ("initializers", lambda k: k.initializers.Constant(0.25)),
    ("regularizers", lambda k: k.regularizers.L1L2(l1=0.01, l2=0.02)),
    ("constraints", lambda k: k.constraints.MinMaxNorm(min_value=0.5, max_value=2.0, axis=[0, 1])),
])
def test_public_deserialize_reads_keras_objects_and_checks_them(keras, module, keras_object):
    """initializers/regularizers/constraints.deserialize take Keras's serialized objects, through
    the same allow-lists as layer configs; an unknown key or class is refused, naming it."""
    theirs = keras_object(keras)
    serialized = json.loads(_text(keras.saving.serialize_keras_object(theirs)))
    ours_module = getattr(fastcnn, module)
    ours = ours_module.deserialize(serialized)
    assert type(ours).__name__ == type(theirs).__name__
    assert _text(ours_module.serialize(ours)) == _text(serialized)
    with pytest.raises(ValueError, match="unknown config key 'payload'"):
        ours_module.deserialize({**serialized, "config": {**serialized["config"], "payload": 1}})
    with pytest.raises(ValueError, match="unknown .* class_name 'Lambda'"):
        ours_module.deserialize({**serialized, "class_name": "Lambda"})
    with pytest.raises(ValueError, match="custom \\(registered\\) objects"):
        ours_module.deserialize({**serialized, "registered_name": "my_package>Thing"})
