"""The compiled network's plan (csrc/runtime/plan.cpp): the fusion passes apply only where a tensor
has a single consumer, and inference passes keep activations in buffers reused by liveness while
giving the same values as the training pass, which keeps one buffer per tensor."""

import numpy as np
import pytest

import fastcnn as keras
from fastcnn import layers


def _built(model, sample_shapes):
    model.compile("sgd", "sparse_categorical_crossentropy")
    inputs = [np.zeros((1,) + tuple(shape), np.float32) for shape in sample_shapes]
    model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    return model._network


def test_a_chain_needs_two_activation_buffers_in_inference():
    inputs = keras.Input((12, 12, 8))
    x = inputs
    for _ in range(6):
        x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    network = _built(keras.Model(inputs, x), [(12, 12, 8)])
    size = 12 * 12 * 8
    sizes = network.activations_per_sample()
    assert sizes["inference"] == 2 * size  # one read, one written: the kept output is the last one
    assert sizes["training"] >= 6 * size


def test_a_residual_shortcut_stays_live_until_its_add():
    inputs = keras.Input((8, 8, 4))
    shortcut = layers.Conv2D(4, 1)(inputs)
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(shortcut)
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = layers.Add()([shortcut, x])
    network = _built(keras.Model(inputs, x), [(8, 8, 4)])
    assert network.activations_per_sample()["inference"] == 3 * 8 * 8 * 4


def test_fusion_passes_apply_only_where_a_tensor_has_a_single_consumer():
    inputs = keras.Input((16, 16, 1))
    fused = layers.Conv2D(8, 3, activation="relu")(inputs)        # node 0: read by the pool only
    pooled = layers.MaxPooling2D()(fused)                         # node 1
    read_twice = layers.Conv2D(8, 3, padding="same", activation="relu")(pooled)  # node 2: two readers
    left = layers.MaxPooling2D()(read_twice)                      # node 3
    right = layers.MaxPooling2D()(read_twice)                     # node 4
    merged = layers.Add()([left, right])                          # node 5
    normalized = layers.BatchNormalization()(layers.Conv2D(4, 1, activation="relu")(merged))  # nodes 6, 7
    outputs = layers.Dense(3, activation="softmax")(layers.Flatten()(normalized))  # nodes 8, 9
    network = _built(keras.Model(inputs, outputs), [(16, 16, 1)])
    passes = network.fusion_passes()
    assert passes["convolution_max_pool"] == [0]
    assert passes["relu_derivative_hand_off"] == [1, 7]  # the pool after node 0, the BatchNorm after the ReLU
    assert passes["softmax_cross_entropy"] == [9]
    network.set_max_pool_fusion(False)
    assert network.fusion_passes()["convolution_max_pool"] == []


def test_a_softmax_output_read_by_another_layer_is_not_fused_with_its_loss():
    inputs = keras.Input((6,))
    probabilities = layers.Dense(3, activation="softmax", name="first")(inputs)
    second = layers.Dense(2, activation="softmax", name="second")(probabilities)
    model = keras.Model(inputs, [probabilities, second])
    model.compile("sgd", ["sparse_categorical_crossentropy", "sparse_categorical_crossentropy"])
    model.predict(np.zeros((1, 6), np.float32), verbose=0)
    assert model._network.fusion_passes()["softmax_cross_entropy"] == [1]


def _graph_model(seed):
    """A graph with a shortcut, a concatenation, a shared layer, a reshape, an intermediate tensor
    that is also a model output, and kept pre-activations (softmax)."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((10, 10, 3))
    side = keras.Input((5,))
    a = layers.Conv2D(6, 3, padding="same", activation="relu")(image)
    b = layers.Conv2D(6, 3, padding="same", activation="tanh")(a)
    c = layers.Add()([a, b])
    shared = layers.Conv2D(6, 1, activation="relu")
    d = layers.Concatenate()([shared(c), shared(b)])
    pooled = layers.MaxPooling2D()(d)
    features = layers.Flatten()(pooled)
    side_features = layers.Dense(8, activation="relu")(side)
    joined = layers.Concatenate()([features, side_features])
    first = layers.Dense(4, activation="softmax", name="first")(joined)
    second = layers.Dense(3, name="second")(layers.Activation("softmax")(layers.Dense(5)(joined)))
    return keras.Model([image, side], [first, second, side_features])


def _node_output(layer_outputs, shape):
    """The one node output of this shape (the test model's outputs have sizes of their own; the
    runtime holds every tensor as (batch, height, width, channels))."""
    matches = [output.reshape(shape) for output in layer_outputs if output.size == np.prod(shape)]
    assert len(matches) == 1, [output.shape for output in layer_outputs]
    return matches[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_inference_buffers_give_the_training_buffers_values(rng, seed):
    model = _graph_model(seed)
    x = [rng.standard_normal((7, 10, 10, 3)).astype(np.float32), rng.standard_normal((7, 5)).astype(np.float32)]
    model.compile("adam", ["sparse_categorical_crossentropy", "sparse_categorical_crossentropy",
                           keras.losses.SparseCategoricalCrossentropy(from_logits=True)])
    y = [np.arange(7) % 4, np.arange(7) % 3, np.arange(7) % 8]
    for _ in range(2):
        predicted = model.predict(x, verbose=0)
        # No random or batch-dependent layer: training mode computes what inference does, there in
        # one buffer per tensor and without the pooling fusion.
        layer_outputs = model._network.forward_training_layer_outputs([x[0], x[1].reshape(7, 1, 1, 5)], 0)
        for produced in predicted:
            np.testing.assert_array_equal(produced, _node_output(layer_outputs, produced.shape))
        sizes = model._network.activations_per_sample()
        assert 0 < sizes["inference"] < sizes["training"]
        # Again after training steps moved the weights and used the training workspace.
        model.fit(x, y, epochs=2, batch_size=4, verbose=0)


def test_predict_slices_keep_activations_in_cache_unless_the_weights_cost_more():
    """predict runs a large batch in slices: as many samples as keep their activations within
    8 MiB (of cache), but at least enough that a slice's activations outweigh the weights it
    re-reads, and at most 64."""
    small = _built(keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3), layers.Flatten(),
                                     layers.Dense(2)]), [(8, 8, 3)])
    assert small.predict_slice() == 64
    # Large images, few weights: the activations decide.
    wide = _built(keras.Sequential([keras.Input((160, 160, 3)), layers.Conv2D(48, 3, padding="same"),
                                    layers.Conv2D(48, 3, padding="same"), layers.GlobalAveragePooling2D()]),
                  [(160, 160, 3)])
    activation_bytes = 4 * wide.activations_per_sample()["inference"]
    assert activation_bytes > 8 << 20 and wide.predict_slice() == 1
    # The same images through a layer of many weights: the slice grows to cover them.
    heavy = _built(keras.Sequential([keras.Input((160, 160, 3)), layers.Conv2D(48, 3, padding="same"),
                                     layers.Conv2D(48, 3, padding="same"), layers.Flatten(),
                                     layers.Dense(8)]), [(160, 160, 3)])
    weights = 160 * 160 * 48 * 8
    assert heavy.predict_slice() >= min(64, weights * 4 // (4 * heavy.activations_per_sample()["inference"]))
    assert heavy.predict_slice() > wide.predict_slice()


def test_predict_writes_each_batch_into_its_result(rng):
    """Model.predict has the runtime write every batch into the array it returns (Network.predict's
    `out`): the same values as one pass over the whole input, for one output and for several, with a
    last batch shorter than the others."""
    feature_map = keras.Sequential([keras.Input((9, 9, 3)), layers.Conv2D(5, 3, activation="relu")])
    x = rng.standard_normal((13, 9, 9, 3)).astype(np.float32)
    whole = feature_map.predict(x, batch_size=13, verbose=0)
    assert whole.shape == (13, 7, 7, 5)
    np.testing.assert_array_equal(feature_map.predict(x, batch_size=4, verbose=0), whole)
    np.testing.assert_array_equal(feature_map._network.predict(x), whole)
    out = np.full((13, 7, 7, 5), np.nan, np.float32)
    assert feature_map._network.predict(x, out=out) is out
    np.testing.assert_array_equal(out, whole)

    model = _graph_model(3)
    inputs = [rng.standard_normal((13, 10, 10, 3)).astype(np.float32), rng.standard_normal((13, 5)).astype(np.float32)]
    whole = model.predict(inputs, batch_size=13, verbose=0)
    for batched, one_pass in zip(model.predict(inputs, batch_size=5, verbose=0), whole):
        np.testing.assert_array_equal(batched, one_pass)
    outs = [np.empty((13, 1, 1, produced.shape[1]), np.float32) for produced in whole]
    results = model._network.predict([inputs[0], inputs[1].reshape(13, 1, 1, 5)], out=outs)
    for result, out, produced in zip(results, outs, whole):
        assert result is out
        np.testing.assert_array_equal(out.reshape(produced.shape), produced)


def test_predict_out_names_what_it_received(rng):
    feature_map = keras.Sequential([keras.Input((9, 9, 3)), layers.Conv2D(5, 3)])
    x = rng.standard_normal((4, 9, 9, 3)).astype(np.float32)
    feature_map.predict(x, verbose=0)
    network = feature_map._network
    wrong_shape = np.empty((4, 7, 7, 4), np.float32)
    with pytest.raises(ValueError, match=r"`out` must be a writeable C-contiguous float32 array of shape "
                                         r"\(4, 7, 7, 5\). Received: out.shape=\(4, 7, 7, 4\), out.dtype=float32"):
        network.predict(x, out=wrong_shape)
    with pytest.raises(ValueError, match="out.dtype=float64"):
        network.predict(x, out=np.empty((4, 7, 7, 5)))
    with pytest.raises(ValueError, match="C-contiguous"):
        network.predict(x, out=np.empty((4, 7, 7, 10), np.float32)[..., ::2])
    read_only = np.empty((4, 7, 7, 5), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        network.predict(x, out=read_only)
    with pytest.raises(TypeError, match="`out` must be a numpy array. Received: out of type list"):
        network.predict(x, out=[1.0])
    # An output over the input would overwrite samples not yet read.
    same_size = keras.Sequential([keras.Input((9, 9, 3)), layers.Conv2D(3, 1)])
    same_size.predict(x, verbose=0)
    with pytest.raises(ValueError, match="`out` must not share memory with an input"):
        same_size._network.predict(x, out=x)

    model = _graph_model(3)
    inputs = [rng.standard_normal((2, 10, 10, 3)).astype(np.float32), rng.standard_normal((2, 1, 1, 5)).astype(np.float32)]
    model.predict([inputs[0], inputs[1].reshape(2, 5)], verbose=0)
    shapes = [tuple(shape) for shape in model._network.output_shapes]
    with pytest.raises(TypeError, match="this network has 3 outputs: pass `out` as a list with one entry"):
        model._network.predict(inputs, out=np.empty((2,) + shapes[0], np.float32))
    with pytest.raises(ValueError, match=r"`out` needs one entry per output \(3\). Received: 2 entries"):
        model._network.predict(inputs, out=[None, None])
    with pytest.raises(ValueError, match=r"`out\[1\]` must be a writeable"):
        model._network.predict(inputs, out=[None, np.empty((2, 1, 1, 99), np.float32), None])
    overlapping = np.empty(2 * 64, np.float32)
    first = overlapping[: 2 * shapes[0][2]].reshape((2,) + shapes[0])
    second = overlapping[2 * shapes[0][2] - 1: 2 * shapes[0][2] - 1 + 2 * shapes[1][2]].reshape((2,) + shapes[1])
    with pytest.raises(ValueError, match=r"`out\[0\]` and `out\[1\]` share memory"):
        model._network.predict(inputs, out=[first, second, None])
    # None entries get new arrays; the others are filled.
    shared = np.empty((2,) + shapes[0], np.float32)
    results = model._network.predict(inputs, out=[shared, None, None])
    assert results[0] is shared
    np.testing.assert_array_equal(shared.reshape(2, -1), model.predict([inputs[0], inputs[1].reshape(2, 5)], verbose=0)[0])


def _winograd_model(selector):
    """A 3x3 convolution with 16 channels on both sides on 8x8 images (a Winograd layer, where
    F(4x4, 3x3) computes fewer points than F(2x2, 3x3)), its output the model's (flattened),
    optionally beside a layer that selects a maximum."""
    inputs = keras.Input((8, 8, 16))
    convolution = layers.Conv2D(16, 3, padding="same")(inputs)
    outputs = [layers.Flatten()(convolution)]
    if selector == "max_pooling":
        outputs.append(layers.Flatten()(layers.MaxPooling2D()(inputs)))
    elif selector == "global_max_pooling":
        outputs.append(layers.GlobalMaxPooling2D()(inputs))
    elif selector == "maximum":
        outputs.append(layers.Flatten()(layers.Maximum()([inputs, inputs])))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", ["mse"] * len(outputs))
    return model, convolution


@pytest.mark.parametrize("selector", [None, "max_pooling", "global_max_pooling", "maximum"])
def test_training_takes_the_large_winograd_tile_only_where_no_layer_selects_a_maximum(rng, selector):
    """The plan's training_winograd_tile: a training step's 3x3 Winograd forward pass is bitwise
    the kernel's F(4x4, 3x3) (large_winograd_tile=True) in a network without max pooling or a
    Maximum/Minimum merge, and its F(2x2, 3x3) in one with any of them (the two differ in the
    last bits, which is what the assertions see)."""
    from fastcnn import _core
    if _core.kernel_set() == "reference":
        pytest.skip("the reference kernels have no Winograd")
    model, _ = _winograd_model(selector)
    x = rng.standard_normal((5, 8, 8, 16)).astype(np.float32)
    second = {"max_pooling": 256, "global_max_pooling": 16, "maximum": 1024}
    targets = [np.zeros((5, 1024), np.float32)] + ([np.zeros((5, second[selector]), np.float32)] if selector else [])
    conv = model.layers[1]
    kernel, bias = [w.copy() for w in conv.get_weights()]
    model.train_on_batch(x, targets if selector else targets[0])
    trained_output = model._network.step_outputs()[0].reshape(5, 8, 8, 16)
    network = model._network
    assert network.large_winograd_tile_in_training == (selector is None)
    large = _core.ops.conv2d_forward(x, kernel, bias, padding="same", large_winograd_tile=True)
    small = _core.ops.conv2d_forward(x, kernel, bias, padding="same", large_winograd_tile=False)
    assert not np.array_equal(large, small)
    np.testing.assert_array_equal(trained_output, large if selector is None else small)


@pytest.mark.parametrize("selector", [False, True])
def test_training_input_gradient_takes_the_large_winograd_tile_only_where_no_layer_selects_a_maximum(rng, selector):
    """The plan's training_winograd_tile also picks the Winograd layer's input-gradient tile. That
    gradient is read through the kernel gradient of a 1x1 convolution in front of it: with a mean
    absolute error against targets far above every output, the Winograd layer's output gradient is
    -1/1024/4 = -2^-12 everywhere (exact), so the expected kernel gradient follows from the ops
    bitwise. A Maximum of the output with itself (which passes the gradient on unchanged) makes
    the network one that selects a maximum."""
    from fastcnn import _core
    if _core.kernel_set() == "reference":
        pytest.skip("the reference kernels have no Winograd")
    inputs = keras.Input((8, 8, 16))
    front = layers.Conv2D(16, 1, use_bias=False)
    winograd = layers.Conv2D(16, 3, padding="same")
    hidden = winograd(front(inputs))
    if selector:
        hidden = layers.Maximum()([hidden, hidden])
    model = keras.Model(inputs, layers.Flatten()(hidden))
    model.compile("sgd", "mae")
    x = rng.standard_normal((4, 8, 8, 16)).astype(np.float32)
    targets = np.full((4, 1024), 1e6, np.float32)
    model.train_on_batch(x, targets)  # compiles the network
    network = model._network
    assert network.large_winograd_tile_in_training == (not selector)
    network.compute_gradients(x, None, targets, np.arange(4), 4, 0, 0)
    front_gradient = np.array(network.flat_gradients())[:16 * 16].reshape(1, 1, 16, 16)
    kernel = winograd.get_weights()[0]
    output_gradient = np.full((4, 8, 8, 16), -2.0 ** -12, np.float32)
    expected = {}
    for large in (True, False):
        middle = _core.ops.conv2d_backward_input(output_gradient, kernel, x.shape, padding="same",
                                                 large_winograd_tile=large)
        expected[large] = _core.ops.conv2d_backward_kernel(x, middle, (1, 1), use_bias=False)[0]
    assert not np.array_equal(expected[True], expected[False])
    np.testing.assert_array_equal(front_gradient, expected[not selector])


def _tensor_read_by_several_layers():
    """A tensor (the stem's output) read by a 3x3 convolution, a 1x1 stride-2 one, a 5x5 stride-2
    one, a DepthwiseConv2D and an Add. In backward order the last of them in node order takes the
    tensor's gradient slot; the depthwise layer's gradient is added in from scratch, the other
    convolutions' in their own kernels."""
    inputs = keras.Input((9, 9, 8))
    stem = layers.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inputs)
    same_size = layers.Conv2D(16, 3, padding="same", name="same_size")(stem)
    pointwise = layers.Conv2D(16, 1, strides=2, name="pointwise")(stem)
    wide = layers.Conv2D(16, 5, strides=2, padding="same", name="wide")(stem)
    depthwise = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(stem)
    full = layers.Add(name="full")([same_size, stem, depthwise])
    half = layers.Add()([pointwise, wide])
    merged = layers.Concatenate()([layers.Flatten()(full), layers.Flatten()(half)])
    model = keras.Model(inputs, layers.Dense(3, activation="softmax")(merged))
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    return model


def test_convolutions_add_their_input_gradient_where_another_layer_took_the_slot(rng):
    """The plan's input_gradient_accumulation: training is bitwise the same as with each gradient
    written to scratch and added after (the same additions in the same order)."""
    x = rng.standard_normal((6, 9, 9, 8)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    accumulating = _tensor_read_by_several_layers()
    separate = _tensor_read_by_several_layers()
    separate.set_weights(accumulating.get_weights())
    accumulating.train_on_batch(x, y)
    separate.train_on_batch(x, y)
    node_of = {layer.name: i for i, layer in enumerate(accumulating._node_layers)}
    takes_the_slot = max(["same_size", "pointwise", "wide", "depthwise", "full"], key=node_of.get)
    expected = [name for name in ["pointwise", "same_size", "wide"] if name != takes_the_slot]
    added = accumulating._network.fusion_passes()["input_gradient_accumulation"]
    assert sorted(accumulating._node_layers[i].name for i in added) == expected
    separate._network.set_gradient_accumulation(False)
    assert separate._network.fusion_passes()["input_gradient_accumulation"] == []
    separate.set_weights(accumulating.get_weights())
    for _ in range(3):
        accumulating.train_on_batch(x, y)
        separate.train_on_batch(x, y)
    for ours, theirs in zip(accumulating.get_weights(), separate.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
