"""fastcnn.applications against keras.applications: for every family, Keras builds the model
(weights=None, small inputs), saves its weights (Keras 3 `.weights.h5` and legacy `.h5`), and
fastcnn's builder loads them with `weights=path`: same layer names, order and parameter count,
same predictions. Also preprocess_input in every mode, decode_predictions, Keras's argument
errors and the "imagenet" file lookup in Keras's cache folder."""

import json
import os
import re

import numpy as np
import pytest
from applications_parity import compare_with_keras, keras_message, perturb_statistics, save_legacy
from conftest import relative_error

import fastcnn
from fastcnn import applications
from fastcnn.applications import imagenet_utils

h5py = pytest.importorskip("h5py")

# (builder, Keras module, arguments): small inputs, headless with pooling, cheap alphas.
FAMILIES = [
    pytest.param("VGG16", "vgg16", {"input_shape": (32, 32, 3), "pooling": "avg"}, id="VGG16"),
    pytest.param("VGG19", "vgg19", {"input_shape": (32, 32, 3), "pooling": "max"}, id="VGG19"),
    pytest.param("ResNet50", "resnet50", {"input_shape": (32, 32, 3), "pooling": "avg"}, id="ResNet50"),
    pytest.param("ResNet101", "resnet", {"input_shape": (32, 32, 3), "pooling": "max"}, id="ResNet101",
                 marks=pytest.mark.slow),
    pytest.param("ResNet152", "resnet", {"input_shape": (32, 32, 3), "pooling": "avg"}, id="ResNet152",
                 marks=pytest.mark.slow),
    pytest.param("ResNet50V2", "resnet_v2", {"input_shape": (32, 32, 3), "pooling": "avg"}, id="ResNet50V2"),
    pytest.param("ResNet101V2", "resnet_v2", {"input_shape": (32, 32, 3), "pooling": "avg"}, id="ResNet101V2",
                 marks=pytest.mark.slow),
    pytest.param("ResNet152V2", "resnet_v2", {"input_shape": (32, 32, 3), "pooling": "max"}, id="ResNet152V2",
                 marks=pytest.mark.slow),
    pytest.param("MobileNet", "mobilenet", {"input_shape": (64, 64, 3), "pooling": "avg", "alpha": 0.5,
                                            "depth_multiplier": 2}, id="MobileNet"),
    pytest.param("MobileNetV2", "mobilenet_v2", {"input_shape": (64, 64, 3), "pooling": "avg", "alpha": 0.35},
                 id="MobileNetV2"),
]

# Classifier heads at small sizes (classes=10, no ImageNet weights).
WITH_TOP = [
    pytest.param("ResNet50", "resnet50", {"input_shape": (32, 32, 3), "classes": 10}, id="ResNet50-top"),
    pytest.param("MobileNet", "mobilenet", {"input_shape": (64, 64, 3), "classes": 10, "alpha": 0.25},
                 id="MobileNet-top"),
    pytest.param("MobileNetV2", "mobilenet_v2", {"input_shape": (64, 64, 3), "classes": 10, "alpha": 0.5,
                                                 "classifier_activation": None}, id="MobileNetV2-top"),
]

@pytest.mark.parametrize("name, module, arguments", FAMILIES)
def test_family_matches_keras(keras, tmp_path, name, module, arguments):
    compare_with_keras(keras, name, module, arguments, tmp_path)


@pytest.mark.parametrize("name, module, arguments", WITH_TOP)
def test_classifier_head_matches_keras(keras, tmp_path, name, module, arguments):
    compare_with_keras(keras, name, module, {"include_top": True, **arguments}, tmp_path, formats=("h5",))


def test_top_level_names_and_defaults(keras):
    assert applications.ResNet50 is applications.resnet50.ResNet50 is applications.resnet.ResNet50
    assert fastcnn.applications.MobileNetV2 is applications.mobilenet_v2.MobileNetV2
    import inspect

    for name in ("VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2",
                 "ResNet152V2", "MobileNet", "MobileNetV2"):
        ours = inspect.signature(getattr(applications, name))
        theirs = inspect.signature(getattr(keras.applications, name))
        assert [(p.name, p.default) for p in ours.parameters.values()] == \
               [(p.name, p.default) for p in theirs.parameters.values()], name


# ---- preprocess_input ----

MODULES = {"vgg16": "caffe", "vgg19": "caffe", "resnet": "caffe", "resnet50": "caffe", "resnet_v2": "tf",
           "mobilenet": "tf", "mobilenet_v2": "tf"}


@pytest.mark.parametrize("module", sorted(MODULES))
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (5, 4, 3)])
def test_preprocess_input_matches_keras(keras, module, data_format, shape):
    if data_format == "channels_first":
        shape = shape[:-3] + (3,) + shape[-3:-1]
    x = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    expected = getattr(keras.applications, module).preprocess_input(x.copy(), data_format=data_format)
    actual = getattr(applications, module).preprocess_input(x.copy(), data_format=data_format)
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_imagenet_utils_modes_match_keras(keras, mode):
    from keras.applications import imagenet_utils as keras_utils

    for x in (np.random.default_rng(1).uniform(0, 255, (3, 6, 5, 3)), np.arange(90, dtype=np.uint8).reshape(5, 6, 3)):
        expected = keras_utils.preprocess_input(x.copy(), mode=mode)
        actual = imagenet_utils.preprocess_input(x.copy(), mode=mode)
        assert actual.dtype == expected.dtype
        np.testing.assert_array_equal(actual, expected)
    with pytest.raises(ValueError, match="Expected mode to be one of `caffe`, `tf` or `torch`. Received: mode=x"):
        imagenet_utils.preprocess_input(np.zeros((2, 2, 3)), mode="x")
    with pytest.raises(ValueError, match="Received: data_format=nhwc"):
        imagenet_utils.preprocess_input(np.zeros((2, 2, 3)), data_format="nhwc")


# ---- Keras's argument rules ----

@pytest.mark.parametrize("name, arguments", [
    ("VGG16", {"weights": "imagenet", "classes": 10}),
    ("ResNet50", {"weights": "no/such/file.h5"}),
    ("MobileNet", {"weights": "imagenet", "include_top": False, "input_shape": (128, 128, 3), "alpha": 0.3}),
    ("MobileNet", {"weights": "imagenet", "include_top": False, "input_shape": (128, 128, 3), "depth_multiplier": 2}),
    ("MobileNetV2", {"weights": "imagenet", "include_top": False, "input_shape": (96, 96, 3), "alpha": 0.2}),
    ("MobileNetV2", {"weights": "imagenet", "classes": 5}),
    ("VGG19", {"weights": None, "include_top": False, "input_shape": (31, 64, 3)}),
    ("ResNet50", {"weights": "imagenet", "include_top": True, "input_shape": (64, 64, 3)}),
    ("ResNet50", {"weights": "imagenet", "include_top": False, "input_shape": (64, 64, 1)}),
    ("ResNet50", {"weights": None, "include_top": False, "input_shape": (64, 64)}),
])
def test_argument_errors_are_keras(keras, name, arguments):
    expected = keras_message(lambda: getattr(keras.applications, name)(**arguments))
    assert keras_message(lambda: getattr(applications, name)(**arguments)) == expected


def test_classifier_activation_with_pretrained_weights(tmp_path):
    with pytest.raises(ValueError, match="Only `None` and `softmax` activations are allowed .* "
                                         "classifier_activation=relu"):
        applications.MobileNet(input_shape=(128, 128, 3), alpha=0.25, classifier_activation="relu")


def test_unknown_spatial_size_is_refused_with_advice():
    with pytest.raises(ValueError, match=r"pass `input_shape`, e.g. input_shape=\(224, 224, 3\). Received: "
                                         r"input_shape=\(None, None, 3\)"):
        applications.ResNet50(weights=None, include_top=False)


def test_input_tensor_is_used_as_the_input():
    inputs = fastcnn.Input((64, 64, 3))
    model = applications.MobileNetV2(weights=None, include_top=False, input_tensor=inputs, alpha=0.35, pooling="avg")
    assert model.inputs[0] is inputs and model.output_shape == (None, 1280)
    with pytest.raises(ValueError, match="symbolic `input_tensor`"):
        applications.MobileNetV2(weights=None, include_top=False, input_tensor=np.zeros((1, 64, 64, 3)))


# ---- "imagenet": Keras's file in Keras's cache folder ----

def test_imagenet_weights_are_read_from_keras_cache(keras, tmp_path, monkeypatch):
    arguments = {"input_shape": (96, 96, 3), "alpha": 0.35, "include_top": False, "pooling": "avg"}
    theirs = keras.applications.MobileNetV2(weights=None, **arguments)
    perturb_statistics(theirs, 9)
    folder = tmp_path / "keras_home" / "models"
    file_name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    (tmp_path / "keras_home").mkdir()  # Keras makes its home folder at import; a missing one means /tmp/.keras
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    with pytest.raises(FileNotFoundError) as error:
        applications.MobileNetV2(weights="imagenet", **arguments)
    message = str(error.value)
    assert file_name in message and str(folder) in message
    assert f"https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/{file_name}" in message
    folder.mkdir(parents=True)
    save_legacy(theirs, str(folder / file_name))
    ours = applications.MobileNetV2(weights="imagenet", **arguments)
    images = np.random.default_rng(4).uniform(-1, 1, (2, 96, 96, 3)).astype("float32")
    assert relative_error(ours.predict(images, verbose=0), np.asarray(theirs(images, training=False))) <= 1e-4


@pytest.mark.parametrize("builder, arguments, file_name", [
    ("VGG16", {"include_top": False, "input_shape": (32, 32, 3)}, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("ResNet101", {"include_top": False, "input_shape": (32, 32, 3)},
     "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("ResNet50V2", {"include_top": False, "input_shape": (32, 32, 3)},
     "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("MobileNet", {"include_top": True, "input_shape": (128, 128, 3), "alpha": 0.75}, "mobilenet_7_5_128_tf.h5"),
    ("MobileNetV2", {"include_top": True, "alpha": 1.4}, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.4_224.h5"),
])
def test_imagenet_file_names_are_keras(tmp_path, monkeypatch, builder, arguments, file_name):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=re.escape(file_name)):
        getattr(applications, builder)(weights="imagenet", **arguments)


def test_decode_predictions_reads_the_class_index_from_keras_cache(keras, tmp_path, monkeypatch):
    from keras.applications import imagenet_utils as keras_utils

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", None)
    predictions = np.random.default_rng(0).random((2, 1000)).astype("float32")
    with pytest.raises(FileNotFoundError, match=r"imagenet_class_index.json .*" + re.escape(str(tmp_path / "models"))):
        applications.resnet50.decode_predictions(predictions)
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "imagenet_class_index.json").write_text(json.dumps(index))
    monkeypatch.setattr(keras_utils, "CLASS_INDEX", index, raising=False)
    import keras.src.applications.imagenet_utils as keras_source

    monkeypatch.setattr(keras_source, "CLASS_INDEX", index)
    assert applications.resnet50.decode_predictions(predictions, top=3) == \
        keras.applications.resnet50.decode_predictions(predictions, top=3)
    with pytest.raises(ValueError, match=r"expects a batch of predictions .* Received array with shape: \(2, 10\)"):
        applications.vgg16.decode_predictions(np.zeros((2, 10)))


def test_weights_are_looked_up_where_keras_get_file_keeps_them(monkeypatch, tmp_path):
    from fastcnn.applications import _weights

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "elsewhere"))
    assert _weights.cache_folder("models") == str(tmp_path / "elsewhere" / "models")
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".keras").mkdir()
    assert _weights.cache_folder("models") == os.path.join(str(tmp_path), ".keras", "models")
    (tmp_path / ".keras").rmdir()  # a missing folder: Keras's /tmp/.keras fallback
    assert _weights.cache_folder("models") == os.path.join("/tmp", ".keras", "models")
