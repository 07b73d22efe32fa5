"""The application families beyond VGG, ResNet and MobileNet against keras.applications: DenseNet
and Xception. Per family: Keras's model with perturbed weights saved as `.weights.h5` and legacy
`.h5` loads into fastcnn's builder (same layers, names, weight shapes, parameter counts and
predictions); preprocess_input equals Keras's; Keras's argument errors; the "imagenet" file names
in Keras's cache folder."""

import inspect
import re

import numpy as np
import pytest
from applications_parity import compare_with_keras, keras_message

from fastcnn import applications

# (builder, Keras module, arguments): the smallest inputs Keras allows, headless or few classes.
FAMILIES = [
    pytest.param("DenseNet121", "densenet", {"input_shape": (32, 32, 3), "include_top": False, "pooling": "avg"},
                 id="DenseNet121", marks=pytest.mark.slow),
    pytest.param("DenseNet169", "densenet", {"input_shape": (32, 32, 3), "include_top": False, "pooling": "max"},
                 id="DenseNet169", marks=pytest.mark.slow),
    pytest.param("DenseNet201", "densenet", {"input_shape": (32, 32, 3), "include_top": True, "classes": 7},
                 id="DenseNet201-top", marks=pytest.mark.slow),
    pytest.param("Xception", "xception", {"input_shape": (71, 71, 3), "include_top": False, "pooling": "avg"},
                 id="Xception"),
    pytest.param("Xception", "xception", {"input_shape": (71, 75, 3), "include_top": True, "classes": 5,
                                          "classifier_activation": None}, id="Xception-top", marks=pytest.mark.slow),
]

BUILDERS = ["DenseNet121", "DenseNet169", "DenseNet201", "Xception"]
MODULES = {"densenet": "torch", "xception": "tf"}


@pytest.mark.parametrize("name, module, arguments", FAMILIES)
def test_family_matches_keras(keras, tmp_path, name, module, arguments):
    compare_with_keras(keras, name, module, arguments, tmp_path)


def test_small_densenet_body_matches_keras(keras, tmp_path):
    """DenseNet121, 169 and 201 are one body with other block counts: a two-layer-per-block body
    checks every layer kind, name and weight order in a few seconds."""
    from keras.src.applications import densenet as keras_densenet

    from fastcnn.applications import densenet

    def builder(module):
        return lambda **arguments: module.DenseNet((2, 1, 2, 1), **arguments)

    compare_with_keras(keras, "DenseNet", "densenet", {"input_shape": (32, 32, 3), "include_top": True, "classes": 6},
                       tmp_path, builders=(builder(keras_densenet), builder(densenet)))


@pytest.mark.parametrize("name", BUILDERS)
def test_signature_is_keras(keras, name):
    ours = inspect.signature(getattr(applications, name))
    theirs = inspect.signature(getattr(keras.applications, name))
    assert [(p.name, p.default) for p in ours.parameters.values()] == \
           [(p.name, p.default) for p in theirs.parameters.values()]


@pytest.mark.parametrize("module", sorted(MODULES))
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
])
def test_argument_errors_are_keras(keras, name, arguments):
    expected = keras_message(lambda: getattr(keras.applications, name)(**arguments))
    actual = keras_message(lambda: getattr(applications, name)(**arguments))
    assert actual.startswith(expected), (actual, expected)


@pytest.mark.parametrize("builder, arguments, file_name", [
    ("DenseNet121", {"include_top": True}, "densenet121_weights_tf_dim_ordering_tf_kernels.h5"),
    ("DenseNet169", {"include_top": False, "input_shape": (32, 32, 3)},
     "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("DenseNet201", {"include_top": False, "input_shape": (32, 32, 3)},
     "densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("Xception", {"include_top": True}, "xception_weights_tf_dim_ordering_tf_kernels.h5"),
    ("Xception", {"include_top": False, "input_shape": (71, 71, 3)}, "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
])
def test_imagenet_file_names_are_keras(tmp_path, monkeypatch, builder, arguments, file_name):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=re.escape(file_name)):
        getattr(applications, builder)(weights="imagenet", **arguments)
