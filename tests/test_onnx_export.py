"""model.export(path, format="onnx"): ONNX Runtime's predictions equal fastcnn's (1e-5 relative)
for the seed models, a functional ResNet-style model, a depthwise model, models of the other
layers (normalizations, image resizing and cropping), arithmetic on symbolic tensors and every
application family, with batch sizes 1 and 7 through the dynamic batch axis; onnx.checker passes;
folded BatchNormalization; clear errors."""

import warnings

import numpy as np
import pytest

import fastcnn
from fastcnn import layers

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def _randomize_batch_norms(model, rng):
    """Moving statistics and affine weights away from their initial values, so that folding shows;
    the other normalizations' gamma and beta and ConvNeXt's LayerScale too (it starts at 1e-6,
    which would hide its residual branches)."""
    for layer in model.layers:
        if isinstance(layer, fastcnn.Model):
            _randomize_batch_norms(layer, rng)
        elif isinstance(layer, layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if index in (0, 3) else
                               rng.normal(0, 0.3, w.shape).astype(np.float32)
                               for index, w in enumerate(layer.get_weights())])
        elif type(layer).__name__ in ("LayerNormalization", "GroupNormalization", "LayerScale"):
            layer.set_weights([rng.normal(0.5, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])


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


def normalizations():
    """Normalization (constants, and adapted), LayerNormalization over the channels, over the image
    and with rms_scaling, GroupNormalization, on images and on flat tensors."""
    inputs = fastcnn.Input((7, 6, 4))
    adapted = layers.Normalization(axis=(1, 3))
    adapted.adapt(np.random.default_rng(1).normal(2.0, 3.0, (16, 7, 6, 4)).astype(np.float32))
    x = adapted(inputs)
    x = layers.Normalization(mean=[1.0, 2.0, 3.0, 4.0], variance=[1.0, 2.0, 0.5, 4.0])(x)
    x = layers.Normalization(axis=None, mean=0.5, variance=4.0, invert=True)(x)
    x = layers.LayerNormalization()(x)
    x = layers.LayerNormalization(axis=[1, 2], epsilon=0.1, center=False)(x)
    x = layers.GroupNormalization(groups=2)(x)
    x = layers.Dense(6)(layers.Flatten()(x))
    with warnings.catch_warnings():  # rms_scaling is deprecated in Keras, with its warning
        warnings.simplefilter("ignore")
        scaled = layers.LayerNormalization(rms_scaling=True)(x)  # x / sqrt(variance + epsilon): not centred
    grouped = layers.GroupNormalization(groups=3, scale=False)(x)
    return fastcnn.Model(inputs, layers.concatenate([scaled, grouped, layers.LayerNormalization()(x)]))


def resizing_and_cropping():
    """Resizing (bilinear and nearest; stretched, cropped and padded to the aspect ratio), CenterCrop
    (a plain crop, and an image smaller than the target resized) and RandomCrop in inference."""
    inputs = fastcnn.Input((23, 17, 3))
    branches = [layers.Resizing(12, 20)(inputs),
                layers.Resizing(12, 20, interpolation="nearest")(inputs),
                layers.Resizing(12, 20, crop_to_aspect_ratio=True)(inputs),
                layers.Resizing(12, 20, interpolation="nearest", crop_to_aspect_ratio=True)(inputs),
                layers.Resizing(12, 20, pad_to_aspect_ratio=True, fill_value=0.5)(inputs),
                layers.Resizing(12, 20, interpolation="nearest", pad_to_aspect_ratio=True)(inputs),
                layers.Resizing(12, 20)(layers.CenterCrop(20, 15)(inputs)),
                layers.CenterCrop(12, 20)(inputs),
                layers.RandomCrop(12, 20)(inputs),
                layers.Resizing(12, 20)(layers.Resizing(46, 35)(inputs))]
    x = layers.concatenate(branches)
    return fastcnn.Model(inputs, layers.Conv2D(4, 3)(x))


def mobilenet_v3_small():
    return fastcnn.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), include_top=False,
                                                 pooling="avg")


def _application(name, input_shape=(32, 32, 3)):
    def make():
        return getattr(fastcnn.applications, name)(weights=None, input_shape=input_shape, include_top=False,
                                                   pooling="avg")
    make.__name__ = name
    return make


APPLICATION_FAMILIES = [_application(name) for name in (
    "VGG16", "ResNet50", "ResNet50V2", "MobileNet", "MobileNetV2", "MobileNetV3Large", "EfficientNetB0",
    "DenseNet121", "ConvNeXtTiny")] + [_application("Xception", (71, 71, 3))]


@pytest.mark.parametrize("make", [seed_example1, seed_example3, resnet_style, depthwise, other_layers, newer_layers,
                                  arithmetic, normalizations, resizing_and_cropping, mobilenet_v3_small]
                         + APPLICATION_FAMILIES, ids=lambda make: make.__name__)
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
    class Passthrough(layers.Layer):  # a layer of the user's own, on the runtime's identity
        def _add_to_network(self, network):
            network.add_identity()

    model = fastcnn.Sequential([layers.Input((8, 8, 3)), Passthrough(name="mine"), layers.Flatten(), layers.Dense(2)])
    with pytest.raises(ValueError, match=r"does not support layer 'mine' \(Passthrough\): it knows fastcnn's built-in"):
        model.export(str(tmp_path / "m.onnx"), format="onnx")
    with pytest.raises(ValueError, match="fastcnn exports models to ONNX only.*format='tf_saved_model'"):
        model.export(str(tmp_path / "m"))
    small = seed_example1()
    with pytest.raises(ValueError, match=r"`input_signature` must describe the model's inputs"):
        small.export(str(tmp_path / "m.onnx"), format="onnx", input_signature=[np.zeros((1, 4, 4, 1))])
    small.export(str(tmp_path / "m.onnx"), format="onnx", input_signature=[np.zeros((1, 28, 28, 1))])


def test_a_subclass_of_a_built_in_layer_exports_as_that_layer(tmp_path, rng):
    class Convolution(layers.Conv2D):
        pass

    model = fastcnn.Sequential([layers.Input((9, 9, 2)), Convolution(3, 3, activation="relu"), layers.Flatten()])
    path = str(tmp_path / "m.onnx")
    model.export(path, format="onnx")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = rng.normal(size=(2, 9, 9, 2)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
