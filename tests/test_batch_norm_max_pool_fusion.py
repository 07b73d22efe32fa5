"""Training's BatchNormalization + MaxPooling2D (csrc/runtime/plan.cpp batch_norm_max_pool): a
MaxPooling2D whose windows tile its input without overlap or padding, reading only a trainable
BatchNormalization (or the ReLU that BatchNormalization computes), runs inside it: the forward
writes the pooled output and each window's first maximum, the backward routes the pooled gradient
there. Training with the pair fused must give bitwise the weights training without it gives."""

import numpy as np
import pytest

import fastcnn as keras
from fastcnn import layers


def _graph():
    """Fused: a BatchNormalization after a ReLU convolution, then 2x2 pooling (seed Example
    3's pattern); BatchNormalization, ReLU, then pooling with gaps between windows (pool 2, strides
    3); BatchNormalization then GlobalMaxPooling2D. Not fused: a BatchNormalization read twice,
    overlapping windows, 'same' padding that pads, a frozen BatchNormalization, average pooling."""
    inputs = keras.Input((36, 36, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = layers.BatchNormalization(name="bn_pool")(x)
    x = layers.MaxPooling2D(name="pool_after_bn")(x)  # 18 x 18
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(name="bn_relu_pool")(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D(2, strides=3, name="pool_with_gaps")(x)  # 6 x 6
    shared = layers.BatchNormalization(name="bn_read_twice")(layers.Conv2D(8, 1)(x))
    x = layers.Add()([layers.MaxPooling2D(name="pool_of_shared")(shared), layers.AveragePooling2D(2)(shared)])  # 3 x 3
    overlapping = layers.BatchNormalization(name="bn_overlapping")(layers.Conv2D(8, 3, padding="same")(x))
    overlapping = layers.MaxPooling2D(2, strides=1, name="pool_overlapping")(overlapping)
    padded = layers.BatchNormalization(name="bn_padded")(layers.Conv2D(8, 1)(x))
    padded = layers.MaxPooling2D(2, padding="same", name="pool_padded")(padded)
    frozen = layers.BatchNormalization(name="bn_frozen", trainable=False)(layers.Conv2D(8, 1)(x))
    frozen = layers.MaxPooling2D(name="pool_after_frozen")(frozen)
    averaged = layers.BatchNormalization(name="bn_average")(layers.Conv2D(8, 1)(x))
    averaged = layers.AveragePooling2D(2, name="average_pool")(averaged)
    global_max = layers.BatchNormalization(name="bn_global")(layers.Conv2D(8, 1)(x))
    global_max = layers.GlobalMaxPooling2D(name="global_pool")(global_max)
    features = layers.Concatenate()([layers.Flatten()(overlapping), layers.Flatten()(padded), layers.Flatten()(frozen),
                                     layers.Flatten()(averaged), global_max])
    outputs = layers.Dense(4, activation="softmax")(features)
    return keras.Model(inputs, outputs)


def _trained(fuse, steps=3, optimizer="adam"):
    keras.utils.set_random_seed(5)
    model = _graph()
    model.compile(optimizer, "sparse_categorical_crossentropy")
    model._network.set_max_pool_fusion(fuse)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 36, 36, 3)).astype(np.float32)
    x[:, :, 1::2] = x[:, :, ::2]  # equal neighbours: windows with ties, where the first maximum takes the gradient
    y = rng.integers(0, 4, 24)
    history = model.fit(x, y, batch_size=8, epochs=steps // 3, shuffle=False, verbose=0)
    return model, history


def _names(model, nodes):
    return sorted(model._node_layers[i].name for i in nodes)


def test_the_pass_fuses_each_max_pooling_of_a_batch_norm_it_alone_reads_without_overlap_or_padding():
    model, _ = _trained(True)
    fused = _names(model, model._network.fusion_passes()["batch_norm_max_pool"])
    assert fused == ["bn_global", "bn_pool", "bn_relu_pool"]
    model._network.set_max_pool_fusion(False)
    assert model._network.fusion_passes()["batch_norm_max_pool"] == []


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_training_with_the_fusion_equals_training_without_it_bitwise(optimizer):
    fused_model, fused_history = _trained(True, steps=6, optimizer=optimizer)
    plain_model, plain_history = _trained(False, steps=6, optimizer=optimizer)
    assert fused_model._network.fusion_passes()["batch_norm_max_pool"]
    assert list(fused_history.history.values()) == list(plain_history.history.values())
    for fused_weight, plain_weight in zip(fused_model.weights, plain_model.weights):
        np.testing.assert_array_equal(fused_weight.numpy(), plain_weight.numpy(), err_msg=fused_weight.path)


def test_unfreezing_a_batch_norm_fuses_its_pooling_and_freezing_unfuses_it():
    model, _ = _trained(True)
    model.get_layer("bn_frozen").trainable = True
    model.compile("adam", "sparse_categorical_crossentropy")
    assert "bn_frozen" in _names(model, model._network.fusion_passes()["batch_norm_max_pool"])
    model.get_layer("bn_pool").trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    assert "bn_pool" not in _names(model, model._network.fusion_passes()["batch_norm_max_pool"])
