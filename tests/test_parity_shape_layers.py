"""SeparableConv2D, Cropping2D, UpSampling2D, Identity, Softmax and per-channel Rescaling against
TensorFlow / Keras 3: the forward pass (<= 1e-5 of the output's magnitude) and every gradient
(<= 1e-4) over a grid of strides, dilations, paddings, odd sizes and depth multipliers, with the
reference kernels and the kernels in use; three fit steps of a small model using them; configs,
.keras and .weights.h5 files both ways; bad arguments raise Keras's errors naming the value.

Gradients: each case is Input -> 1x1 Conv2D ("probe") -> the layer -> Flatten, with a mean squared
error against random targets. One SGD step of learning rate 1 from Keras's weights changes every
weight by minus its gradient; the probe's kernel gradient sums the layer's input gradient times the
(random) input at every pixel, so an error in the layer's input gradient shows there, and the
layer's own weight gradients are compared directly."""

import contextlib
import json

import numpy as np
import pytest

import fastcnn
from conftest import relative_error
from fastcnn import _core, config, layers, models, optimizers

KERNEL_SETS = ["reference", _core.kernel_set()] if _core.kernel_set() != "reference" else ["reference"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Results do not depend on the thread count; one thread keeps these many tiny models fast."""
    threads = config.get_num_threads()
    config.set_num_threads(1)
    yield
    config.set_num_threads(threads)


@contextlib.contextmanager
def kernel_set(name):
    previous = _core.kernel_set()
    _core.select_kernels(name)
    try:
        yield
    finally:
        _core.select_kernels(previous)


def _probe_model(module, shape, make_layer):
    k = module
    return k.Sequential([k.Input(shape), k.layers.Conv2D(shape[-1], 1, use_bias=False, name="probe"),
                         make_layer(k), k.layers.Flatten()])


def check_layer_against_keras(tf, keras, rng, shape, make_layer, kernels, batch=3, input_scale=1.0):
    """make_layer(module) builds the same layer in Keras and fastcnn; forward and gradients compared."""
    theirs = _probe_model(keras, shape, make_layer)
    ours = _probe_model(fastcnn, shape, make_layer)
    weights = [w.numpy() for w in theirs.weights]
    weights[0] = rng.uniform(-1.0, 1.0, weights[0].shape).astype(np.float32)  # the probe, seeded
    for index in range(1, len(weights)):  # nonzero biases, so that they matter
        if not np.any(weights[index]):
            weights[index] = (0.1 * rng.standard_normal(weights[index].shape)).astype(np.float32)
    theirs.set_weights(weights)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights(weights)
    x = (input_scale * rng.standard_normal((batch,) + shape)).astype(np.float32)
    expected = theirs(x, training=False).numpy()
    target = rng.standard_normal(expected.shape).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(theirs(x, training=True) - target))
    gradients = [g.numpy() for g in tape.gradient(loss, theirs.trainable_variables)]

    ours.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="mse")
    with kernel_set(kernels):
        actual = ours.predict(x, verbose=0)
        assert actual.shape == expected.shape
        assert relative_error(actual, expected) <= 1e-5, "forward"
        ours.train_on_batch(x, target)
    changes = [before - after for before, after in zip(weights, ours.get_weights())]
    assert len(changes) == len(gradients)
    for index, (change, gradient) in enumerate(zip(changes, gradients)):
        assert relative_error(change, gradient, floor=1e-6) <= 1e-4, f"gradient of weight {index}"
    return expected


# ---------------------------------------------------------------------------------------------
# SeparableConv2D
# ---------------------------------------------------------------------------------------------

SEPARABLE_CASES = [
    # (input shape, filters, kernel, strides, dilation, padding, depth multiplier, activation, use_bias);
    # TensorFlow's depthwise convolution takes equal strides along both axes only.
    ((7, 9, 3), 4, (3, 3), (1, 1), (1, 1), "valid", 1, None, True),
    ((7, 9, 3), 5, (3, 3), (2, 2), (1, 1), "same", 2, "relu", True),
    ((8, 5, 2), 3, (5, 3), (2, 2), (1, 1), "same", 3, "tanh", False),
    ((9, 8, 4), 6, (3, 3), (1, 1), (2, 2), "valid", 2, None, True),
    ((9, 7, 3), 2, (2, 3), (1, 1), (3, 1), "same", 1, "sigmoid", True),
    ((10, 9, 2), 4, (3, 3), (2, 2), (2, 2), "same", 2, None, True),   # stride and dilation together
    ((6, 6, 5), 8, (1, 1), (1, 1), (1, 1), "valid", 3, "relu6", True),
    ((5, 11, 1), 3, (4, 2), (3, 3), (1, 1), "valid", 1, None, True),
    ((1, 1, 3), 2, (3, 3), (1, 1), (1, 1), "same", 2, None, True),     # one pixel, 'same'
    ((7, 7, 2), 5, (7, 7), (1, 1), (1, 1), "valid", 3, "swish", True),  # kernel as large as the input
]


@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("case", SEPARABLE_CASES, ids=lambda case: "-".join(map(str, case)).replace(" ", ""))
def test_separable_conv2d_matches_keras(tf, keras, rng, case, kernels):
    shape, filters, kernel, strides, dilation, padding, depth_multiplier, activation, use_bias = case

    def make(k):
        return k.layers.SeparableConv2D(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation,
                                        depth_multiplier=depth_multiplier, activation=activation, use_bias=use_bias)

    check_layer_against_keras(tf, keras, rng, shape, make, kernels)


# ---------------------------------------------------------------------------------------------
# UpSampling2D, Cropping2D, Identity, Softmax, Rescaling
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [2, (3, 2), (1, 3), (4, 5)], ids=str)
@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 1, 2), (4, 3, 1), (2, 6, 17)], ids=str)
def test_upsampling2d_matches_keras(tf, keras, rng, shape, size, interpolation, kernels):
    check_layer_against_keras(tf, keras, rng, shape,
                              lambda k: k.layers.UpSampling2D(size, interpolation=interpolation), kernels)


@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("cropping", [0, 1, (2, 1), ((1, 0), (0, 3)), ((0, 4), (2, 2))], ids=str)
def test_cropping2d_matches_keras(tf, keras, rng, cropping, kernels):
    check_layer_against_keras(tf, keras, rng, (7, 8, 3), lambda k: k.layers.Cropping2D(cropping), kernels)


@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("make", [
    lambda k: k.layers.Identity(),
    lambda k: k.layers.Softmax(),
    lambda k: k.layers.Softmax(axis=3),
    lambda k: k.layers.Rescaling([0.5, -2.0, 1.5], offset=0.25),
    lambda k: k.layers.Rescaling(2.0, offset=[0.1, -0.2, 0.3]),
    lambda k: k.layers.Rescaling(np.array([1.0, 2.0, 3.0], np.float32), offset=np.array([-1.0, 0.0, 1.0])),
    lambda k: k.layers.Rescaling([[0.5, 1.0, 2.0]], offset=(0.5,)),
], ids=["identity", "softmax", "softmax-axis3", "rescaling-scales", "rescaling-offsets", "rescaling-arrays",
        "rescaling-1x3"])
def test_elementwise_layers_match_keras(tf, keras, rng, make, kernels):
    check_layer_against_keras(tf, keras, rng, (5, 6, 3), make, kernels, input_scale=2.0)


# ---------------------------------------------------------------------------------------------
# Whole models: fit, configs, files
# ---------------------------------------------------------------------------------------------


def _small_model(module, interpolation="bilinear", depth_multiplier=2):
    """SeparableConv2D encoder, UpSampling2D decoder (a segmentation-style shape), then a classifier."""
    k = module
    inputs = k.Input((8, 8, 3))
    x = k.layers.Rescaling([0.5, 1.0, 2.0], offset=[0.0, -0.5, 0.25], name="scale")(inputs)
    x = k.layers.SeparableConv2D(6, 3, padding="same", depth_multiplier=depth_multiplier, activation="relu",
                                 name="separable")(x)
    x = k.layers.MaxPooling2D(2)(x)
    x = k.layers.UpSampling2D(2, interpolation=interpolation, name="up")(x)
    x = k.layers.Cropping2D(((1, 0), (0, 2)), name="crop")(x)
    x = k.layers.SeparableConv2D(5, (3, 2), strides=2, depth_multiplier=1, activation="tanh", name="separable_2")(x)
    x = k.layers.Identity(name="same")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    x = k.layers.Dense(3, name="logits")(x)
    return k.Model(inputs, k.layers.Softmax(name="probabilities")(x))


@pytest.mark.parametrize("interpolation, depth_multiplier", [("bilinear", 2), ("nearest", 3), ("bilinear", 1)])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_model_fits_as_in_keras(tf, keras, rng, interpolation, depth_multiplier, optimizer):
    keras.utils.set_random_seed(3)
    theirs = _small_model(keras, interpolation, depth_multiplier)
    ours = _small_model(fastcnn, interpolation, depth_multiplier)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    x = rng.random((12, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    expected = theirs.predict(x, verbose=0)
    assert relative_error(ours.predict(x, verbose=0), expected) <= 1e-5
    for model, module in ((ours, fastcnn), (theirs, keras)):
        model.compile(module.optimizers.SGD(0.1) if optimizer == "sgd" else module.optimizers.Adam(0.01),
                      "sparse_categorical_crossentropy")
    ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)  # 3 steps
    theirs.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for index, (mine, reference) in enumerate(zip(ours.get_weights(), theirs.get_weights())):
        assert relative_error(mine, reference, floor=1e-2) <= 1e-4, f"weight {index}"


CONFIG_CASES = [
    lambda k: k.layers.SeparableConv2D(4, 3, name="s"),
    lambda k: k.layers.SeparableConv2D(
        8, (5, 3), strides=2, padding="same", depth_multiplier=3, activation="relu6", use_bias=False,
        depthwise_initializer="he_normal", pointwise_initializer="lecun_uniform",
        depthwise_regularizer=k.regularizers.L2(0.01), pointwise_regularizer=k.regularizers.L1(0.02),
        bias_regularizer=k.regularizers.L1L2(0.01, 0.02), depthwise_constraint=k.constraints.MaxNorm(2.0),
        pointwise_constraint=k.constraints.NonNeg(), name="s"),
    lambda k: k.layers.Cropping2D(name="c"),
    lambda k: k.layers.Cropping2D(2, name="c"),
    lambda k: k.layers.Cropping2D((1, 3), name="c"),
    lambda k: k.layers.Cropping2D(((1, 0), (2, 3)), name="c"),
    lambda k: k.layers.UpSampling2D(name="u"),
    lambda k: k.layers.UpSampling2D((3, 1), interpolation="bilinear", name="u"),
    lambda k: k.layers.Identity(name="i"),
    lambda k: k.layers.Softmax(name="s"),
    lambda k: k.layers.Softmax(axis=3, name="s"),
    lambda k: k.layers.Rescaling([0.5, 2.0, 1.0], offset=[0.0, 1.0, -1.0], name="r"),
    lambda k: k.layers.Rescaling(np.array([0.5, 2.0, 1.0], np.float32), offset=0.5, name="r"),
]


@pytest.mark.parametrize("make", CONFIG_CASES)
def test_layer_configs_equal_keras_both_ways(keras, make):
    ours, theirs = make(fastcnn), make(keras)
    assert json.dumps(ours.get_config()) == json.dumps(theirs.get_config())
    rebuilt = type(ours).from_config(json.loads(json.dumps(theirs.get_config())))
    assert json.dumps(rebuilt.get_config()) == json.dumps(theirs.get_config())
    back = type(theirs).from_config(json.loads(json.dumps(ours.get_config())))
    assert json.dumps(back.get_config()) == json.dumps(theirs.get_config())


def test_model_json_round_trips(keras):
    model = _small_model(fastcnn)
    again = fastcnn.models.model_from_json(model.to_json())
    assert again.count_params() == model.count_params() == _small_model(keras).count_params()
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]


def test_keras_files_load_both_ways(tf, keras, rng, tmp_path):
    theirs = _small_model(keras, "bilinear", 2)
    x = rng.random((3, 8, 8, 3)).astype(np.float32)
    expected = theirs.predict(x, verbose=0)
    theirs.save(tmp_path / "theirs.keras")
    ours = fastcnn.models.load_model(tmp_path / "theirs.keras")
    assert relative_error(ours.predict(x, verbose=0), expected) <= 1e-5
    ours.save(tmp_path / "ours.keras")
    back = keras.models.load_model(tmp_path / "ours.keras")
    assert relative_error(back.predict(x, verbose=0), expected) <= 1e-5
    # Weights files: Keras's into a fresh fastcnn model and back.
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    fresh = _small_model(fastcnn, "bilinear", 2)
    fresh.load_weights(tmp_path / "theirs.weights.h5")
    assert relative_error(fresh.predict(x, verbose=0), expected) <= 1e-5
    fresh.save_weights(tmp_path / "ours.weights.h5")
    other = _small_model(keras, "bilinear", 2)
    other.load_weights(tmp_path / "ours.weights.h5")
    assert relative_error(other.predict(x, verbose=0), expected) <= 1e-5


def test_separable_regularizers_penalise_as_in_keras(tf, keras, rng):
    """Depthwise, pointwise and bias penalties (each its own factors) join the loss and gradients."""
    def build(k):
        return k.Sequential([k.Input((6, 6, 2)), k.layers.SeparableConv2D(
            3, 3, depth_multiplier=2, depthwise_regularizer=k.regularizers.L2(0.05),
            pointwise_regularizer=k.regularizers.L1(0.03), bias_regularizer=k.regularizers.L1L2(0.02, 0.04),
            bias_initializer="ones"), k.layers.Flatten(), k.layers.Dense(2, activation="softmax")])

    keras.utils.set_random_seed(4)
    theirs, ours = build(keras), build(fastcnn)
    ours.set_weights(theirs.get_weights())
    x = rng.standard_normal((8, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 2, 8)
    for model, module in ((ours, fastcnn), (theirs, keras)):
        model.compile(module.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    ours_history = ours.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    theirs_history = theirs.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(ours_history.history["loss"], theirs_history.history["loss"], rtol=1e-5)
    for index, (mine, reference) in enumerate(zip(ours.get_weights(), theirs.get_weights())):
        assert relative_error(mine, reference, floor=1e-2) <= 1e-4, f"weight {index}"


# ---------------------------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, match", [
    (lambda: layers.SeparableConv2D(4, 3, depth_multiplier=0), "depth_multiplier=0"),
    (lambda: layers.SeparableConv2D(4, 3, depth_multiplier=-2), "depth_multiplier=-2"),
    (lambda: layers.SeparableConv2D(0, 3), "filters=0"),
    (lambda: layers.SeparableConv2D(4, (3, 0)), r"kernel_size=\(3, 0\)"),
    (lambda: layers.SeparableConv2D(4, 3, padding="full"), "padding='full'"),
    (lambda: models.Sequential([layers.Input((2, 5, 3)), layers.SeparableConv2D(4, 3)]), "larger than the input"),
    (lambda: models.Sequential([layers.Input((8, 4, 3)), layers.SeparableConv2D(4, 3, dilation_rate=2)]),
     "larger than the input"),
    (lambda: layers.Cropping2D(-1), "cropping=-1"),
    (lambda: layers.Cropping2D((1, 2, 3)), r"cropping=\(1, 2, 3\)"),
    (lambda: layers.Cropping2D(((1, -1), (0, 0))), "value >= 0"),
    (lambda: layers.Cropping2D("top"), "cropping='top'"),
    (lambda: models.Sequential([layers.Input((4, 6, 1)), layers.Cropping2D(((2, 2), (0, 0)))]),
     r"should be smaller than the corresponding spatial dimension.*cropping=\(\(2, 2\), \(0, 0\)\)"),
    (lambda: models.Sequential([layers.Input((4, 6, 1)), layers.Cropping2D((1, 3))]),
     "should be smaller than the corresponding spatial dimension"),
    (lambda: layers.UpSampling2D(0), "size=0"),
    (lambda: layers.UpSampling2D((2, 2, 2)), r"size=\(2, 2, 2\)"),
    (lambda: layers.UpSampling2D(interpolation="bicubic"), "interpolation='bicubic'"),
    (lambda: layers.Softmax(axis=(1, 2)), r"axis=\(1, 2\)"),
    (lambda: models.Sequential([layers.Input((4, 4, 3)), layers.Softmax(axis=1)]), "axis=1"),
    (lambda: layers.Rescaling("half"), "scale='half'"),
    (lambda: layers.Rescaling(1.0, offset=[]), r"offset=\[\]"),
    (lambda: layers.Rescaling([1.0, float("nan")]), "scale=.*nan"),
    (lambda: models.Sequential([layers.Input((4, 4, 3)), layers.Rescaling([1.0, 2.0])]),
     r"2 values.*\(None, 4, 4, 3\).*scale=\[1.0, 2.0\]"),
])
def test_bad_arguments_raise_clearly(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def _built(add, shape=(4, 4, 1)):
    network = _core.Network()
    add(network)
    network.build(shape)
    return network


@pytest.mark.parametrize("call, error, match", [
    (lambda: _core.Network().add_separable_conv2d(2, 0, (1, 1), (1, 1), (1, 1), "valid", True, "linear"),
     ValueError, "depth_multiplier=0"),
    (lambda: _core.Network().add_separable_conv2d(-3, 1, (1, 1), (1, 1), (1, 1), "valid", True, "linear"),
     ValueError, "filters=-3"),
    (lambda: _built(lambda n: n.add_separable_conv2d(2, 1, (5, 5), (1, 1), (1, 1), "valid", True, "linear")),
     ValueError, r"SeparableConv2D.*larger than the input \(4\)"),
    (lambda: _built(lambda n: n.add_separable_conv2d(2**40, 2**30, (1, 1), (1, 1), (1, 1), "valid", True, "linear")),
     ValueError, r"too large.*Received: 1073741824 \* 1099511627776"),
    (lambda: _core.Network().add_upsampling2d((0, 2), "nearest"), ValueError, r"size=\(0, 2\)"),
    (lambda: _core.Network().add_upsampling2d((2, 2), "area"), ValueError, "interpolation=area"),
    (lambda: _built(lambda n: n.add_upsampling2d((2**40, 2**40), "bilinear")), ValueError,
     r"UpSampling2D.*too large.*Received: 4398046511104 \* 4398046511104"),
    (lambda: _core.Network().add_cropping2d(0, -1, 0, 0), ValueError, r"cropping=\(\(0, -1\), \(0, 0\)\)"),
    (lambda: _built(lambda n: n.add_cropping2d(0, 0, 3, 1)), ValueError,
     r"Cropping2D.*should be smaller.*cropping=\(\(0, 0\), \(3, 1\)\)"),
    (lambda: _built(lambda n: n.add_cropping2d(2**62, 2**62, 0, 0)), ValueError,
     "Received: 4611686018427387904 \\+ 4611686018427387904"),
    (lambda: _built(lambda n: n.add_channel_rescaling([1.0, 2.0], [0.0]), (4, 4, 3)), ValueError,
     r"`scale` has 2 values.*\(3\)"),
    (lambda: _core.Network().add_channel_rescaling([], [0.0]), ValueError, "0 scales"),
    (lambda: _built(lambda n: n.add_dense(2, True, "linear")).set_regularization(0, second_kernel_l2=0.1),
     ValueError, "Dense has no second kernel"),
])
def test_network_bindings_refuse_bad_layers(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_identity_output_aliases_its_input():
    network = _built(lambda n: n.add_identity(), (3, 3, 2))
    x = np.arange(36, dtype=np.float32).reshape(2, 3, 3, 2)
    np.testing.assert_array_equal(network.predict(x), x)
