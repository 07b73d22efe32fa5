"""Inverted residual blocks in row bands (csrc/runtime/plan.cpp inverted_residual_bands): in
inference a folded DepthwiseConv2D runs together with the folded 1x1 Conv2D that expands into it
and the one that projects its output, image by image in bands of rows. The same kernels compute
every value from the same inputs, so predictions must be bitwise those of the layer-by-layer pass,
whatever the batch, the geometry or the thread count."""

import numpy as np
import pytest

import fastcnn as keras
from fastcnn import layers
from test_batch_norm_folding import _randomize_batch_norm


def _block(x, expansion, filters, *, kernel_size=3, strides=1, padding="same", dilation_rate=1, depth_multiplier=1,
           residual=True):
    """MobileNetV2's block (Keras applications' layout): 1x1 expand, BN, ReLU6, depthwise, BN, ReLU6,
    1x1 project, BN, and the Add where the shapes allow."""
    channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = layers.Conv2D(channels * expansion, 1, use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        y = layers.ReLU(6.0)(y)
    y = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate,
                               depth_multiplier=depth_multiplier, use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU(6.0)(y)
    y = layers.Conv2D(filters, 1, use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    if residual and strides == 1 and filters == channels and y.shape[1:3] == x.shape[1:3]:
        y = layers.Add()([x, y])
    return y


def _model(input_shape, blocks):
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    for options in blocks:
        x = _block(x, **options)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4)(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "mse")
    return model


def _node_names(model, nodes):
    names = [layer.name for layer in model.layers[1:]]  # node i is model.layers[i + 1] (after the Input)
    return [names[i] for i in nodes]


def _banded_and_unbanded(model, x):
    model._network.set_inverted_residual_bands(True)
    banded = model.predict(x, batch_size=len(x), verbose=0)
    model._network.set_inverted_residual_bands(False)
    unbanded = model.predict(x, batch_size=len(x), verbose=0)
    model._network.set_inverted_residual_bands(True)
    return banded, unbanded


def test_the_pass_takes_expand_depthwise_and_project_of_each_block():
    model = _model((10, 10, 3), [dict(expansion=1, filters=8), dict(expansion=6, filters=8),
                                 dict(expansion=6, filters=12, strides=2)])
    model.predict(np.zeros((1, 10, 10, 3), np.float32), verbose=0)
    taken = _node_names(model, model._network.fusion_passes()["inverted_residual_bands"])
    # The first block has no expansion (depthwise + project); the others all three layers.
    assert [name.rsplit("_", 1)[0] if name[-1].isdigit() else name for name in taken] == [
        "depthwise_conv2d", "conv2d",
        "conv2d", "depthwise_conv2d", "conv2d",
        "conv2d", "depthwise_conv2d", "conv2d"]
    model._network.set_inverted_residual_bands(False)
    assert model._network.fusion_passes()["inverted_residual_bands"] == []
    model._network.set_inverted_residual_bands(True)
    model._network.set_batch_norm_folding(False)  # the chain is of folded layers only
    assert model._network.fusion_passes()["inverted_residual_bands"] == []


def test_no_chain_where_a_tensor_is_read_twice_the_convolution_is_not_pointwise_or_nothing_folds():
    inputs = keras.Input((8, 8, 4))
    wide = layers.Conv2D(12, 3, padding="same", use_bias=False)(inputs)    # 3x3: not row-local as a 1x1
    wide = layers.BatchNormalization()(wide)
    depthwise = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(wide)
    depthwise = layers.BatchNormalization()(depthwise)
    both = layers.Concatenate()([depthwise, layers.Conv2D(12, 1)(depthwise)])  # the depthwise output read twice
    strided = layers.Conv2D(8, 1, strides=2, use_bias=False)(both)           # 1x1 with stride 2: rows skipped
    strided = layers.BatchNormalization()(strided)
    plain = layers.DepthwiseConv2D(3, padding="same")(strided)               # no BatchNormalization: not folded
    outputs = layers.Conv2D(4, 1)(plain)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "mse")
    model.predict(np.zeros((1, 8, 8, 4), np.float32), verbose=0)
    assert model._network.fusion_passes()["inverted_residual_bands"] == []


# Geometries that split images into several bands (40 x 40 x 48 rows of expanded values hold 1,920
# floats: a band of 192 KiB holds 25 of them), keep whole images per band (small images, grouped),
# and read the image unevenly ('valid' stride 2 leaves the last row unread).
GEOMETRIES = {
    "bands_stride_1": ((40, 40, 3), [dict(expansion=6, filters=8)]),
    "bands_stride_2_dilated": ((41, 40, 3), [dict(expansion=6, filters=8, strides=2),
                                             dict(expansion=6, filters=8, dilation_rate=2)]),
    "bands_5x5_multiplier": ((40, 40, 3), [dict(expansion=3, filters=8, kernel_size=5, depth_multiplier=2)]),
    "whole_images": ((9, 7, 3), [dict(expansion=1, filters=8), dict(expansion=6, filters=8),
                                 dict(expansion=6, filters=16, strides=2)]),
    "valid_stride_2": ((10, 10, 3), [dict(expansion=4, filters=8, strides=2, padding="valid"),
                                     dict(expansion=4, filters=8, padding="valid")]),
    "tall_rows_valid": ((64, 48, 3), [dict(expansion=6, filters=8, strides=2, padding="valid"),
                                      dict(expansion=6, filters=8, kernel_size=5, padding="valid")]),
}


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("batch", [1, 2, 3, 13])
@pytest.mark.parametrize("threads", [1, 2])
def test_banded_predictions_are_bitwise_the_layer_by_layer_ones(rng, geometry, batch, threads):
    input_shape, blocks = GEOMETRIES[geometry]
    model = _model(input_shape, blocks)
    _randomize_batch_norm(model, rng)
    x = rng.standard_normal((batch,) + input_shape).astype(np.float32)
    previous = keras.config.get_num_threads()
    try:
        keras.config.set_num_threads(threads)
        assert model._network.fusion_passes()["inverted_residual_bands"] != []
        banded, unbanded = _banded_and_unbanded(model, x)
    finally:
        keras.config.set_num_threads(previous)
    np.testing.assert_array_equal(banded, unbanded)


def test_banded_intermediate_outputs_are_bitwise_the_layer_by_layer_ones(rng):
    # The chain's own output (the Add) as a model output: nothing after it can hide a wrong row.
    inputs = keras.Input((40, 40, 8))
    outputs = _block(inputs, expansion=6, filters=8)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "mse")
    _randomize_batch_norm(model, rng)
    x = rng.standard_normal((6, 40, 40, 8)).astype(np.float32)
    banded, unbanded = _banded_and_unbanded(model, x)
    assert len(model._network.fusion_passes()["inverted_residual_bands"]) == 3
    np.testing.assert_array_equal(banded, unbanded)


def test_banded_predictions_do_not_depend_on_the_thread_count_and_follow_new_weights(rng):
    model = _model(*GEOMETRIES["bands_stride_2_dilated"])
    _randomize_batch_norm(model, rng)
    x = rng.standard_normal((5,) + GEOMETRIES["bands_stride_2_dilated"][0]).astype(np.float32)
    previous = keras.config.get_num_threads()
    try:
        keras.config.set_num_threads(1)
        one = model.predict(x, verbose=0)
        keras.config.set_num_threads(2)
        two = model.predict(x, verbose=0)
        _randomize_batch_norm(model, rng)  # the folded kernels change: the bands must read the new ones
        banded, unbanded = _banded_and_unbanded(model, x)
    finally:
        keras.config.set_num_threads(previous)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(banded, unbanded)
    assert not np.array_equal(banded, one)


def test_evaluate_runs_the_banded_pass(rng):
    model = _model(*GEOMETRIES["bands_stride_1"])
    _randomize_batch_norm(model, rng)
    x = rng.standard_normal((4, 40, 40, 3)).astype(np.float32)
    y = rng.standard_normal((4, 4)).astype(np.float32)
    banded = model.evaluate(x, y, verbose=0)
    model._network.set_inverted_residual_bands(False)
    assert model.evaluate(x, y, verbose=0) == banded
    assert banded == pytest.approx(float(np.mean((model.predict(x, verbose=0) - y) ** 2)), rel=1e-6)
