"""The application families beyond VGG, ResNet and MobileNet against keras.applications: DenseNet,
Xception and EfficientNet. Per family: Keras's model with perturbed weights saved as `.weights.h5` and legacy
`.h5` loads into fastcnn's builder (same layers, names, weight shapes, parameter counts and
predictions); preprocess_input equals Keras's; Keras's argument errors; the "imagenet" file names
in Keras's cache folder."""

import inspect
import re

import numpy as np
import pytest
from applications_parity import compare_with_keras, keras_message, perturb_statistics, save_legacy
from conftest import relative_error

import fastcnn
from fastcnn import applications

# (builder, Keras module, arguments, weights file formats): the smallest inputs Keras allows,
# headless or few classes. Each file format is a second load and prediction: the slow models
# take one each, the representative unmarked one (Xception, ~8 s) the Keras 3 format only (the
# small DenseNet and EfficientNet bodies below take both).
BOTH = ("weights.h5", "h5")
FAMILIES = [
    pytest.param("DenseNet121", "densenet", {"input_shape": (32, 32, 3), "include_top": False, "pooling": "avg"},
                 BOTH, id="DenseNet121", marks=pytest.mark.slow),
    pytest.param("DenseNet169", "densenet", {"input_shape": (32, 32, 3), "include_top": False, "pooling": "max"},
                 ("h5",), id="DenseNet169", marks=pytest.mark.slow),
    pytest.param("DenseNet201", "densenet", {"input_shape": (32, 32, 3), "include_top": True, "classes": 7},
                 ("weights.h5",), id="DenseNet201-top", marks=pytest.mark.slow),
    pytest.param("Xception", "xception", {"input_shape": (71, 71, 3), "include_top": False, "pooling": "avg"},
                 ("weights.h5",), id="Xception"),
    pytest.param("Xception", "xception", {"input_shape": (71, 75, 3), "include_top": True, "classes": 5,
                                          "classifier_activation": None}, ("h5",), id="Xception-top",
                 marks=pytest.mark.slow),
    pytest.param("EfficientNetB0", "efficientnet", {"input_shape": (32, 32, 3), "include_top": False,
                                                    "pooling": "avg"}, BOTH, id="EfficientNetB0",
                 marks=pytest.mark.slow),
    pytest.param("MobileNetV3Small", "mobilenet_v3", {"input_shape": (32, 32, 3), "include_top": False,
                                                      "pooling": "avg"}, BOTH, id="MobileNetV3Small"),
    pytest.param("MobileNetV3Small", "mobilenet_v3", {"input_shape": (40, 32, 3), "include_top": True, "classes": 5,
                                                      "alpha": 0.75, "minimalistic": True},
                 ("weights.h5",), id="MobileNetV3Small-top-minimalistic"),
    pytest.param("MobileNetV3Large", "mobilenet_v3", {"input_shape": (32, 32, 3), "include_top": True, "classes": 6,
                                                      "alpha": 1.25, "classifier_activation": None},
                 ("h5",), id="MobileNetV3Large-top"),
    pytest.param("MobileNetV3Large", "mobilenet_v3", {"input_shape": (48, 40, 3), "include_top": False,
                                                      "minimalistic": True, "include_preprocessing": False,
                                                      "pooling": "max"}, ("weights.h5",),
                 id="MobileNetV3Large-minimalistic", marks=pytest.mark.slow),
    pytest.param("ConvNeXtTiny", "convnext", {"input_shape": (32, 32, 3), "include_top": False, "pooling": "avg"},
                 ("weights.h5",), id="ConvNeXtTiny", marks=pytest.mark.slow),
    pytest.param("ConvNeXtSmall", "convnext", {"input_shape": (32, 32, 3), "include_top": True, "classes": 3,
                                               "include_preprocessing": False}, ("h5",), id="ConvNeXtSmall-top",
                 marks=pytest.mark.slow),
    pytest.param("EfficientNetB3", "efficientnet", {"input_shape": (32, 40, 3), "include_top": True, "classes": 4},
                 ("h5",), id="EfficientNetB3-top", marks=pytest.mark.slow),
]

CONVNEXTS = ["ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge"]
BUILDERS = (["DenseNet121", "DenseNet169", "DenseNet201", "Xception", "MobileNetV3Small", "MobileNetV3Large"]
            + [f"EfficientNetB{i}" for i in range(8)] + CONVNEXTS)
MODULES = ["densenet", "efficientnet", "xception", "mobilenet_v3", "convnext"]


@pytest.mark.parametrize("name, module, arguments, formats", FAMILIES)
def test_family_matches_keras(keras, tmp_path, name, module, arguments, formats):
    compare_with_keras(keras, name, module, arguments, tmp_path, formats=formats)


# Small bodies of whole families: DenseNet121, 169 and 201 are one body with other block counts,
# EfficientNetB0 to B7 one body scaled; these have every layer kind of their family (dense and
# transition blocks; expansion, strided and 5×5 depthwise blocks, squeeze-and-excitation, the
# stochastic-depth Dropout before the residual Add) and build in a few seconds.
SMALL_BODIES = {
    # ConvNeXt with stochastic depth (StochasticDepth layers, not Keras's identity Activation).
    "convnext": lambda module, **arguments: module.ConvNeXt([1, 1, 2, 1], [8, 16, 24, 32], name="small_convnext",
                                                            **{"drop_path_rate": 0.2, **arguments}),
    "densenet": lambda module, **arguments: module.DenseNet((2, 1, 2, 1), **arguments),
    "efficientnet": lambda module, **arguments: module.EfficientNet(0.5, 0.5, 32, name="small_efficientnet",
                                                                    **arguments),
}


def _modules(family):
    import importlib

    return (importlib.import_module(f"keras.src.applications.{family}"),
            importlib.import_module(f"fastcnn.applications.{family}"))


@pytest.mark.parametrize("family", sorted(SMALL_BODIES))
def test_small_body_matches_keras(keras, tmp_path, family):
    keras_module, fastcnn_module = _modules(family)
    build = SMALL_BODIES[family]
    compare_with_keras(keras, family, family, {"input_shape": (32, 32, 3), "include_top": True, "classes": 6},
                       tmp_path, builders=(lambda **arguments: build(keras_module, **arguments),
                                           lambda **arguments: build(fastcnn_module, **arguments)))


@pytest.mark.parametrize("family", ["densenet", "convnext", pytest.param("efficientnet", marks=pytest.mark.slow)])
def test_one_training_step_matches_keras(keras, tmp_path, family):
    """One SGD step of train_on_batch (BatchNormalization in training mode, every layer's
    gradient: Concatenate and AveragePooling2D; squeeze-and-excitation's broadcast Multiply,
    swish, sigmoid, Reshape, depthwise convolutions): same loss, same weight updates (moving
    statistics included), same predictions after it. Without dropout, whose draws differ. At
    64×64 the last maps are 2×2: at 32×32 BatchNormalization in training mode normalises 1×1
    maps over a batch of 4 values, which magnifies float32 rounding up to 1e-3."""
    keras_module, fastcnn_module = _modules(family)
    keras.utils.set_random_seed(1)
    arguments = {"input_shape": (64, 64, 3), "include_top": True, "classes": 3}
    if family == "efficientnet":
        arguments.update(dropout_rate=0.0, drop_connect_rate=0.0)
    if family == "convnext":
        arguments.update(drop_path_rate=0.0)
    theirs = SMALL_BODIES[family](keras_module, weights=None, **arguments)
    path = str(tmp_path / "initial.weights.h5")
    theirs.save_weights(path)
    initial = [np.asarray(variable) for variable in theirs.weights]
    ours = SMALL_BODIES[family](fastcnn_module, weights=path, **arguments)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    labels = np.array([0, 1, 2, 1])
    theirs.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    ours.compile(optimizer=fastcnn.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    expected_loss = float(theirs.train_on_batch(images, labels))
    assert abs(float(ours.train_on_batch(images, labels)) - expected_loss) <= 1e-5 * abs(expected_loss)
    expected_updates = [np.asarray(variable) - start for variable, start in zip(theirs.weights, initial)]
    updates = [weight - start for weight, start in zip(ours.get_weights(), initial)]
    largest = max(float(np.abs(update).max()) for update in expected_updates)
    # A few betas feed only a convolution followed by BatchNormalization in training mode, which
    # removes any shift: their true gradient is 0 and both sides' is rounding noise, so the
    # updates are compared against the largest update, not each variable's own.
    assert max(float(np.abs(a - b).max()) for a, b in zip(updates, expected_updates)) <= 1e-4 * largest
    assert relative_error(ours.predict_on_batch(images), np.asarray(theirs.predict_on_batch(images))) <= 1e-4


@pytest.mark.slow
def test_efficientnet_imagenet_model_is_keras(keras, tmp_path, monkeypatch):
    """With weights="imagenet" Keras adds a Rescaling by 1/sqrt(ImageNet's stddev) after the
    Normalization layer; Keras's own model (its download pointed at the same file) is the oracle."""
    from keras.src.applications import efficientnet as keras_efficientnet

    arguments = {"input_shape": (32, 32, 3), "include_top": False, "pooling": "avg"}
    source = keras.applications.EfficientNetB0(weights=None, **arguments)
    perturb_statistics(source, 3)
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "efficientnetb0_notop.h5"
    save_legacy(source, str(path))
    monkeypatch.setattr(keras_efficientnet.file_utils, "get_file", lambda *args, **kwargs: str(path))
    theirs = keras.applications.EfficientNetB0(weights="imagenet", **arguments)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    ours = applications.EfficientNetB0(weights="imagenet", **arguments)
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in theirs.layers]
    images = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = np.asarray(theirs(images, training=False))
    assert relative_error(ours.predict(images, verbose=0), expected) <= 1e-4


@pytest.mark.parametrize("name", BUILDERS)
def test_signature_is_keras(keras, name):
    ours = inspect.signature(getattr(applications, name))
    theirs = inspect.signature(getattr(keras.applications, name))
    assert [(p.name, p.default) for p in ours.parameters.values()] == \
           [(p.name, p.default) for p in theirs.parameters.values()]


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_preprocess_input_matches_keras(keras, module, data_format):
    shape = (2, 5, 4, 3) if data_format == "channels_last" else (2, 3, 5, 4)
    x = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    expected = getattr(keras.applications, module).preprocess_input(x.copy(), data_format=data_format)
    actual = getattr(applications, module).preprocess_input(x.copy(), data_format=data_format)
    np.testing.assert_array_equal(actual, expected)


# Keras's messages, where fastcnn's add the value received after them.
@pytest.mark.parametrize("name, arguments", [
    ("DenseNet121", {"weights": "imagenet", "classes": 10}),
    ("DenseNet169", {"weights": "no/such/file.h5"}),
    ("DenseNet201", {"weights": None, "include_top": False, "input_shape": (31, 64, 3)}),
    ("DenseNet121", {"weights": "imagenet", "include_top": True, "input_shape": (64, 64, 3)}),
    ("Xception", {"weights": "imagenet", "classes": 10}),
    ("Xception", {"weights": "no/such/file.h5"}),
    ("Xception", {"weights": None, "include_top": False, "input_shape": (70, 71, 3)}),
    ("Xception", {"weights": "imagenet", "include_top": False, "input_shape": (80, 80, 1)}),
    ("EfficientNetB0", {"weights": "imagenet", "classes": 10}),
    ("EfficientNetB1", {"weights": "no/such/file.h5"}),
    ("EfficientNetB2", {"weights": None, "include_top": False, "input_shape": (31, 64, 3)}),
    ("EfficientNetB7", {"weights": "imagenet", "include_top": True, "input_shape": (224, 224, 3)}),
    ("MobileNetV3Small", {"weights": "imagenet", "classes": 10}),
    ("MobileNetV3Large", {"weights": "no/such/file.h5"}),
    ("MobileNetV3Small", {"weights": None, "include_top": False, "input_shape": (31, 64, 3)}),
    ("MobileNetV3Large", {"weights": "imagenet", "alpha": 0.5}),
    ("MobileNetV3Small", {"weights": "imagenet", "alpha": 0.75, "minimalistic": True}),
    ("ConvNeXtTiny", {"weights": "imagenet", "classes": 10}),
    ("ConvNeXtSmall", {"weights": "no/such/file.h5"}),
    ("ConvNeXtBase", {"weights": None, "include_top": False, "input_shape": (31, 64, 3)}),
    ("ConvNeXtLarge", {"weights": "imagenet", "name": "mine"}),
])
def test_argument_errors_are_keras(keras, name, arguments):
    expected = keras_message(lambda: getattr(keras.applications, name)(**arguments))
    actual = keras_message(lambda: getattr(applications, name)(**arguments))
    assert actual.startswith(expected), (actual, expected)


def test_densenet_blocks_without_imagenet_weights_are_refused(keras):
    from keras.src.applications import densenet as keras_densenet

    from fastcnn.applications import densenet

    arguments = {"blocks": [1, 1, 1, 1], "weights": "imagenet", "include_top": False, "input_shape": (32, 32, 3)}
    expected = keras_message(lambda: keras_densenet.DenseNet(**arguments))
    actual = keras_message(lambda: densenet.DenseNet(**arguments))
    assert actual.startswith(expected) and "Received: blocks=[1, 1, 1, 1]" in actual


@pytest.mark.parametrize("name", ["DenseNet121", "Xception", "EfficientNetB0", "MobileNetV3Small"])
def test_input_tensor_is_used_as_the_input(name):
    shape = (71, 71, 3)
    inputs = fastcnn.Input(shape)
    model = getattr(applications, name)(weights=None, include_top=False, input_tensor=inputs, pooling="max")
    alone = getattr(applications, name)(weights=None, include_top=False, input_shape=shape, pooling="max")
    assert model.inputs[0] is inputs and model.output_shape == alone.output_shape
    assert [type(layer) for layer in model.layers] == [type(layer) for layer in alone.layers]


@pytest.mark.parametrize("builder, arguments, file_name", [
    ("DenseNet121", {"include_top": True}, "densenet121_weights_tf_dim_ordering_tf_kernels.h5"),
    ("DenseNet169", {"include_top": False, "input_shape": (32, 32, 3)},
     "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("DenseNet201", {"include_top": False, "input_shape": (32, 32, 3)},
     "densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("Xception", {"include_top": True}, "xception_weights_tf_dim_ordering_tf_kernels.h5"),
    ("Xception", {"include_top": False, "input_shape": (71, 71, 3)},
     "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("EfficientNetB0", {"include_top": True}, "efficientnetb0.h5"),
    ("EfficientNetB5", {"include_top": False, "input_shape": (32, 32, 3)}, "efficientnetb5_notop.h5"),
    ("EfficientNetB7", {"include_top": False, "input_shape": (32, 32, 3), "name": "mine"}, "mine_notop.h5"),
    ("MobileNetV3Small", {"include_top": True}, "weights_mobilenet_v3_small_224_1.0_float.h5"),
    ("MobileNetV3Small", {"include_top": False, "input_shape": (224, 224, 3), "alpha": 0.75},
     "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5"),
    ("MobileNetV3Large", {"include_top": True, "minimalistic": True},
     "weights_mobilenet_v3_large_minimalistic_224_1.0_float.h5"),
    ("MobileNetV3Large", {"include_top": False, "input_shape": (224, 224, 3)},
     "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5"),
    ("ConvNeXtTiny", {"include_top": True}, "convnext_tiny.h5"),
    ("ConvNeXtXLarge", {"include_top": False, "input_shape": (32, 32, 3)}, "convnext_xlarge_notop.h5"),
])
def test_imagenet_file_names_are_keras(tmp_path, monkeypatch, builder, arguments, file_name):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=re.escape(file_name)):
        getattr(applications, builder)(weights="imagenet", **arguments)


def test_convnext_keras_file_round_trips_both_ways(keras, tmp_path):
    """ConvNeXt's own layers (LayerScale, StochasticDepth) are saved under Keras's module
    keras.src.applications.convnext: fastcnn's file loads in Keras and Keras's in fastcnn, with
    the nested Sequential blocks and the residual operations."""
    from keras.src.applications import convnext as keras_convnext

    from fastcnn.applications import convnext

    arguments = {"input_shape": (32, 32, 3), "include_top": True, "classes": 4, "weights": None,
                 "drop_path_rate": 0.3, "name": "small_convnext"}
    theirs = keras_convnext.ConvNeXt([1, 1, 2, 1], [8, 16, 24, 32], **arguments)
    perturb_statistics(theirs, 7)
    ours = convnext.ConvNeXt([1, 1, 2, 1], [8, 16, 24, 32], **arguments)
    ours.set_weights([np.asarray(w) for w in theirs.weights])
    images = np.random.default_rng(4).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = ours.predict(images, verbose=0)
    assert relative_error(expected, np.asarray(theirs(images))) <= 1e-5
    ours.save(tmp_path / "ours.keras")
    theirs.save(tmp_path / "theirs.keras")
    np.testing.assert_array_equal(fastcnn.models.load_model(tmp_path / "ours.keras").predict(images, verbose=0),
                                  expected)
    assert relative_error(np.asarray(keras.saving.load_model(tmp_path / "ours.keras")(images)), expected) <= 1e-5
    from_keras = fastcnn.models.load_model(tmp_path / "theirs.keras")
    assert [type(layer).__name__ for layer in from_keras.layers] == [type(layer).__name__ for layer in ours.layers]
    assert relative_error(from_keras.predict(images, verbose=0), expected) <= 1e-5
