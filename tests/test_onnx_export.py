"""model.export(path, format="onnx"): ONNX Runtime's predictions equal fastcnn's (1e-5 relative)
for the seed models, a functional ResNet-style model, a depthwise model, a model of the other
layers, arithmetic on symbolic tensors and MobileNetV3Small, with batch sizes 1 and 7 through the dynamic batch axis; onnx.checker passes; folded
BatchNormalization; clear errors."""

import numpy as np
import pytest

import fastcnn
from fastcnn import layers

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def _randomize_batch_norms(model, rng):
    """Moving statistics and affine weights away from their initial values, so that folding shows."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if index in (0, 3) else
                               rng.normal(0, 0.3, w.shape).astype(np.float32)
                               for index, w in enumerate(layer.get_weights())])


def seed_example1():
    return fastcnn.Sequential([layers.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                               layers.MaxPooling2D(), layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
                               layers.Flatten(), layers.Dense(10, activation="softmax")])


def seed_example3():
    return fastcnn.Sequential([
        layers.Input((64, 64, 3)), layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.BatchNormalization(), layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(0.5),
        layers.Dense(10, activation="softmax")])


def resnet_style():
    inputs = fastcnn.Input((20, 20, 3))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    for filters, strides in ((16, 1), (32, 2)):
        y = layers.Conv2D(filters, 3, strides=strides, padding="same")(x)
        y = layers.BatchNormalization()(y)
        y = layers.Activation("relu")(y)
        y = layers.Conv2D(filters, 3, padding="same")(y)
        y = layers.BatchNormalization()(y)
        shortcut = x if strides == 1 else layers.Conv2D(filters, 1, strides=strides)(x)
        x = layers.Activation("relu")(layers.add([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    return fastcnn.Model(inputs, layers.Dense(5, activation="softmax")(x))


def depthwise():
    inputs = fastcnn.Input((17, 17, 8))
    x = layers.Conv2D(24, 1, use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, depth_multiplier=2)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(12, 1, groups=4)(x)
    x = layers.GlobalMaxPooling2D()(x)
    return fastcnn.Model(inputs, layers.Dense(3)(x))


def other_layers():
    inputs = fastcnn.Input((15, 13, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = layers.ZeroPadding2D(((1, 2), (0, 1)))(x)
    a = layers.Conv2D(6, 3, dilation_rate=2, padding="same", activation="swish")(x)
    b = layers.AveragePooling2D(3, strides=1, padding="same")(x)  # the padding left out of each average
    b = layers.Conv2D(6, 3, padding="same", activation="gelu")(b)
    x = layers.concatenate([a, b])
    x = layers.LeakyReLU(0.1)(x)
    x = layers.Dense(4, activation="tanh")(x)  # on every pixel
    x = layers.Reshape((18 * 14 * 4,))(x)
    x = layers.Dense(8, activation="hard_sigmoid")(x)
    outputs = [layers.Dense(2, activation="sigmoid", name="yes_no")(x), layers.Dense(3, name="score")(x)]
    return fastcnn.Model(inputs, outputs)


def newer_layers():
    inputs = fastcnn.Input((11, 12, 3))
    x = layers.SeparableConv2D(8, 3, strides=2, padding="same", depth_multiplier=2, activation="relu")(inputs)
    x = layers.BatchNormalization()(layers.SeparableConv2D(8, 3, padding="same", use_bias=False)(x))
    x = layers.PReLU(shared_axes=[1, 2], alpha_initializer="random_uniform")(x)
    x = layers.Cropping2D(((1, 0), (0, 2)))(x)
    near = layers.UpSampling2D((2, 6))(x)
    smooth = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.concatenate([layers.Conv2D(4, (1, 3), strides=(1, 3))(near), smooth])
    x = layers.GaussianNoise(0.5)(layers.Identity()(x))
    x = layers.Softmax()(layers.Dense(5)(layers.GlobalAveragePooling2D()(x)))
    return fastcnn.Model(inputs, x)


def arithmetic():
    """Every operator on symbolic tensors: numbers on either side, two tensors, a broadcast gate."""
    inputs = fastcnn.Input((9, 8, 3))
    x = layers.Conv2D(6, 3, padding="same")(inputs)
    x = layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)
    gate = layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = (2.0 - x) / (gate + 1.0) - -x * gate
    x = layers.Flatten()(x / 4.0)
    return fastcnn.Model(inputs, layers.Dense(3)(x))


def mobilenet_v3_small():
    return fastcnn.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), include_top=False,
                                                 pooling="avg")


@pytest.mark.parametrize("make", [seed_example1, seed_example3, resnet_style, depthwise, other_layers, newer_layers,
                                  arithmetic, mobilenet_v3_small])
def test_onnx_runtime_predicts_as_fastcnn(tmp_path, rng, make):
    fastcnn.utils.set_random_seed(0)
    model = make()
    _randomize_batch_norms(model, rng)
    path = str(tmp_path / "model.onnx")
    assert model.export(path, format="onnx") == path
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    shape = model.input_shape[1:]
    for batch in (1, 7):
        x = rng.uniform(0, 2, (batch,) + tuple(shape)).astype(np.float32)
        expected = model.predict(x, verbose=0)
        expected = expected if isinstance(expected, list) else [expected]
        received = session.run(None, {session.get_inputs()[0].name: x})
        assert len(received) == len(expected)
        for mine, theirs in zip(received, expected):
            assert mine.shape == theirs.shape
            scale = max(float(np.max(np.abs(theirs))), 1e-6)
            assert float(np.max(np.abs(mine - theirs))) <= 1e-5 * scale
    if make in (resnet_style, depthwise, newer_layers):  # BatchNormalization after an activation-free convolution is folded
        assert not any(node.op_type == "BatchNormalization" for node in proto.graph.node)
        assert sum(node.op_type == "Mul" for node in proto.graph.node) == 0


def test_export_errors_name_what_is_wrong(tmp_path):
    model = fastcnn.Sequential([layers.Input((8, 8, 3)), layers.Resizing(4, 4), layers.Flatten(), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"does not support layer 'resizing.*' \(Resizing\)"):
        model.export(str(tmp_path / "m.onnx"), format="onnx")
    with pytest.raises(ValueError, match="fastcnn exports models to ONNX only.*format='tf_saved_model'"):
        model.export(str(tmp_path / "m"))
    small = seed_example1()
    with pytest.raises(ValueError, match=r"`input_signature` must describe the model's inputs"):
        small.export(str(tmp_path / "m.onnx"), format="onnx", input_signature=[np.zeros((1, 4, 4, 1))])
    small.export(str(tmp_path / "m.onnx"), format="onnx", input_signature=[np.zeros((1, 28, 28, 1))])
