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
    pytest.param("EfficientNetB3", "efficientnet", {"input_shape": (32, 40, 3), "include_top": True, "classes": 4},
                 ("h5",), id="EfficientNetB3-top", marks=pytest.mark.slow),
]

BUILDERS = ["DenseNet121", "DenseNet169", "DenseNet201", "Xception"] + [f"EfficientNetB{i}" for i in range(8)]
MODULES = ["densenet", "efficientnet", "xception"]


@pytest.mark.parametrize("name, module, arguments, formats", FAMILIES)
def test_family_matches_keras(keras, tmp_path, name, module, arguments, formats):
    compare_with_keras(keras, name, module, arguments, tmp_path, formats=formats)


def test_small_densenet_body_matches_keras(keras, tmp_path):
    """DenseNet121, 169 and 201 are one body with other block counts: a two-layer-per-block body
    checks every layer kind, name and weight order in a few seconds."""
    from keras.src.applications import densenet as keras_densenet

    from fastcnn.applications import densenet

    def builder(module):
        return lambda **arguments: module.DenseNet((2, 1, 2, 1), **arguments)

    compare_with_keras(keras, "DenseNet", "densenet", {"input_shape": (32, 32, 3), "include_top": True, "classes": 6},
                       tmp_path, builders=(builder(keras_densenet), builder(densenet)))


def test_small_efficientnet_body_matches_keras(keras, tmp_path):
    """EfficientNetB0 to B7 are one body scaled: at half width and depth it has every layer kind
    (expansion, strided and 5×5 depthwise blocks, squeeze-and-excitation, stochastic-depth
    Dropout before the residual Add) in a few seconds."""
    from keras.src.applications import efficientnet as keras_efficientnet

    from fastcnn.applications import efficientnet

    def builder(module):
        return lambda **arguments: module.EfficientNet(0.5, 0.5, 32, name="small_efficientnet", **arguments)

    compare_with_keras(keras, "EfficientNet", "efficientnet",
                       {"input_shape": (32, 32, 3), "include_top": True, "classes": 3}, tmp_path,
                       builders=(builder(keras_efficientnet), builder(efficientnet)))


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


@pytest.mark.parametrize("name", ["DenseNet121", "Xception", "EfficientNetB0"])
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
])
def test_imagenet_file_names_are_keras(tmp_path, monkeypatch, builder, arguments, file_name):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=re.escape(file_name)):
        getattr(applications, builder)(weights="imagenet", **arguments)
