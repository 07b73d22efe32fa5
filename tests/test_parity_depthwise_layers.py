"""DepthwiseConv2D and Conv2D(groups=) as layers: their configs equal Keras's, models using them
(a MobileNetV2-style inverted residual block, a ResNeXt-style grouped block) predict and train as
in Keras, and bad arguments raise Keras's errors."""

import json

import numpy as np
import pytest

import fastcnn
from fastcnn import layers


def _inverted_residual(module, depth_multiplier=1, strides=1, groups=2):
    """1x1 expand, ReLU6, depthwise 3x3, 1x1 project, residual add (MobileNetV2), then a grouped 3x3."""
    k = module
    inputs = k.Input((9, 9, 4))
    x = k.layers.Conv2D(8, 1, activation="relu6", name="expand")(inputs)
    x = k.layers.DepthwiseConv2D(3, strides=strides, padding="same", depth_multiplier=depth_multiplier,
                                 activation="relu6", name="depthwise")(x)
    x = k.layers.Conv2D(4, 1, name="project")(x)
    if strides == 1:
        x = k.layers.add([inputs, x])
    x = k.layers.Conv2D(8, 3, groups=groups, activation="relu", name="grouped")(x)
    x = k.layers.DepthwiseConv2D((2, 3), padding="valid", use_bias=False, name="plain")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inputs, k.layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("depth_multiplier, strides, groups", [(1, 1, 2), (2, 2, 4), (3, 1, 4), (1, 2, 1)])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_depthwise_and_grouped_models_train_as_in_keras(tf, keras, rng, depth_multiplier, strides, groups, optimizer):
    keras.utils.set_random_seed(5)
    theirs = _inverted_residual(keras, depth_multiplier, strides, groups)
    ours = _inverted_residual(fastcnn, depth_multiplier, strides, groups)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    x = rng.random((12, 9, 9, 4)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    expected = theirs.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    for model, module in ((ours, fastcnn), (theirs, keras)):
        model.compile(module.optimizers.SGD(0.1) if optimizer == "sgd" else module.optimizers.Adam(0.01),
                      "sparse_categorical_crossentropy")
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)  # 3 steps
    theirs.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for mine, reference in zip(ours.get_weights(), theirs.get_weights()):
        # Relative to the array's scale; arrays of tiny values (biases near 0) absolutely, at 1e-6.
        assert np.max(np.abs(mine - reference)) <= 1e-4 * max(float(np.max(np.abs(reference))), 1e-2)


def test_layer_configs_equal_keras_both_ways(keras):
    for make in (lambda k: k.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                                                    activation="relu6", name="d"),
                 lambda k: k.layers.Conv2D(8, 3, groups=4, name="g")):
        ours, theirs = make(fastcnn), make(keras)
        assert json.dumps(ours.get_config()) == json.dumps(theirs.get_config())
        rebuilt = type(ours).from_config(json.loads(json.dumps(theirs.get_config())))
        assert json.dumps(rebuilt.get_config()) == json.dumps(theirs.get_config())
    model = _inverted_residual(fastcnn)
    again = fastcnn.models.model_from_json(model.to_json())
    assert again.count_params() == model.count_params() == _inverted_residual(keras).count_params()


def test_keras_file_of_a_depthwise_model_loads_both_ways(tf, keras, rng, tmp_path):
    theirs = _inverted_residual(keras, 2, 1, 4)
    theirs.save(tmp_path / "theirs.keras")
    ours = fastcnn.models.load_model(tmp_path / "theirs.keras")
    x = rng.random((3, 9, 9, 4)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "ours.keras")
    back = keras.models.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make, match", [
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier=0"),
    (lambda: layers.Conv2D(6, 3, groups=4), "filters must be evenly divisible by the number of groups"),
    (lambda: layers.Conv2D(8, 3, groups=0), "groups"),
    (lambda: fastcnn.Sequential([fastcnn.Input((8, 8, 6)), layers.Conv2D(8, 3, groups=4)]),
     "input channels must be evenly divisible by the number of groups"),
    (lambda: fastcnn.Sequential([fastcnn.Input((2, 2, 3)), layers.DepthwiseConv2D(3)]), "larger than the input"),
])
def test_bad_arguments_raise_clearly(make, match):
    with pytest.raises(ValueError, match=match):
        make()
