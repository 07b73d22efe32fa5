"""Training's output activation fusion (csrc/runtime/plan.cpp output_activation): a
BatchNormalization or an elementwise merge (a residual Add, ...) read only by a ReLU layer (ReLU(),
ReLU(6.0), Activation("relu"/"relu6")) stores the activated output itself and its backward applies
the ReLU's derivative; the ReLU runs neither pass. Training with the fusion must give bitwise the
weights training without it gives."""

import numpy as np
import pytest

import fastcnn as keras
from fastcnn import layers


def _graph(frozen=False):
    """Each pattern once: fused (ReLU(6.0), ReLU(), Activation("relu"), Activation("relu6"), a
    ReLU that is a model output; a residual Add and a Multiply before a ReLU) and not fused (a
    BatchNormalization read twice, an Add read twice, LeakyReLU, ReLU(4.0))."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization(name="bn_relu6")(x)
    x = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.BatchNormalization(name="bn_relu", trainable=not frozen)(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(8, 1)(x)
    x = layers.BatchNormalization(name="bn_activation_relu", center=False)(x)
    x = layers.Activation("relu")(x)
    x = layers.Add(name="add_relu")([x, layers.Conv2D(8, 3, padding="same")(x)])
    x = layers.ReLU()(x)
    x = layers.Multiply(name="multiply_relu6")([x, layers.Conv2D(8, 1)(x)])
    x = layers.Activation("relu6")(x)
    read_twice = layers.Add(name="add_read_twice")([x, layers.Conv2D(8, 1)(x)])
    x = layers.Add()([layers.ReLU()(read_twice), read_twice])
    shared = layers.BatchNormalization(name="bn_read_twice")(layers.Conv2D(8, 1)(x))
    x = layers.Add()([layers.ReLU()(shared), shared])
    x = layers.BatchNormalization(name="bn_leaky")(x)
    x = layers.LeakyReLU(0.1)(x)
    x = layers.BatchNormalization(name="bn_clip4", scale=False)(x)
    x = layers.ReLU(4.0)(x)
    x = layers.BatchNormalization(name="bn_activation_relu6")(x)
    x = layers.Activation("relu6")(x)
    features = layers.GlobalAveragePooling2D()(x)
    side = layers.Dense(6)(features)
    side = layers.BatchNormalization(name="bn_dense_output")(side)
    side = layers.ReLU(name="relu_output")(side)
    outputs = layers.Dense(4, activation="softmax")(features)
    return keras.Model(inputs, [outputs, side])


def _trained(fuse, frozen=False, steps=3, optimizer="adam"):
    keras.utils.set_random_seed(4)
    model = _graph(frozen)
    model.compile(optimizer, ["sparse_categorical_crossentropy", "mse"])
    model._network.set_output_activation_fusion(fuse)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 24)
    side = rng.random((24, 6)).astype(np.float32)
    history = model.fit(x, [y, side], batch_size=8, epochs=steps // 3, shuffle=False, verbose=0)
    return model, history


def _names(model, nodes):
    return sorted(model._node_layers[i].name for i in nodes)


def test_the_pass_fuses_each_batch_norm_and_merge_read_only_by_a_plain_or_relu6_relu():
    model, _ = _trained(True, steps=3)
    fused = _names(model, model._network.fusion_passes()["output_activation"])
    assert fused == ["add_relu", "bn_activation_relu", "bn_activation_relu6", "bn_dense_output", "bn_relu", "bn_relu6",
                     "multiply_relu6"]
    model._network.set_output_activation_fusion(False)
    assert model._network.fusion_passes()["output_activation"] == []


@pytest.mark.parametrize("frozen", [False, True], ids=["trainable", "one-frozen"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_training_with_the_fusion_equals_training_without_it_bitwise(frozen, optimizer):
    fused_model, fused_history = _trained(True, frozen, steps=6, optimizer=optimizer)
    plain_model, plain_history = _trained(False, frozen, steps=6, optimizer=optimizer)
    # (The two models' automatic output names differ; the logged values must not.)
    assert list(fused_history.history.values()) == list(plain_history.history.values())
    for fused_weight, plain_weight in zip(fused_model.weights, plain_model.weights):
        np.testing.assert_array_equal(fused_weight.numpy(), plain_weight.numpy(), err_msg=fused_weight.path)
    x = np.random.default_rng(1).standard_normal((5, 8, 8, 3)).astype(np.float32)
    for fused_output, plain_output in zip(fused_model.predict(x, verbose=0), plain_model.predict(x, verbose=0)):
        np.testing.assert_array_equal(fused_output, plain_output)


def test_a_fused_relu_output_of_the_model_keeps_its_activated_values_in_training_calls():
    model, _ = _trained(True)
    x = np.random.default_rng(2).standard_normal((3, 8, 8, 3)).astype(np.float32)
    _, side = model(x, training=True)
    side = np.asarray(side)
    assert side.shape == (3, 6) and side.min() >= 0.0 and (side > 0).any()
