"""BatchNormalization folding in inference (csrc/runtime/plan.cpp batch_norm_folding): a linear
Conv2D, DepthwiseConv2D, SeparableConv2D or Dense read only by a BatchNormalization computes it
with folded kernels and bias, and the elementwise activation layer after it in its epilogue. The
folded pass must equal the unfolded one and Keras, and must follow every change of the weights."""

import numpy as np
import pytest

import fastcnn as keras
from fastcnn import layers
from conftest import relative_error


def _randomize_batch_norm(model, rng):
    """Non-trivial gamma, beta and moving statistics, so that a wrong fold cannot pass."""
    for layer in model.layers:
        if not isinstance(layer, layers.BatchNormalization):
            continue
        for variable in layer.weights:
            if "moving_variance" in variable.path:
                variable.assign(rng.uniform(0.5, 2.0, variable.shape))
            elif "gamma" in variable.path:
                variable.assign(rng.uniform(0.5, 1.5, variable.shape))
            else:
                variable.assign(rng.standard_normal(variable.shape) * 0.3)


def _inverted_residual(lib, input_shape=(12, 12, 8)):
    """MobileNetV2's block: 1x1 expand, ReLU6, depthwise 3x3, ReLU6, 1x1 project, residual add."""
    L = lib.layers
    inputs = lib.Input(input_shape)
    x = L.Conv2D(16, 1, use_bias=False)(inputs)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = L.BatchNormalization(epsilon=1e-2)(x)
    x = L.ReLU(6.0)(x)
    x = L.Conv2D(8, 1, use_bias=False)(x)
    x = L.BatchNormalization(center=False)(x)
    x = L.Add()([inputs, x])
    x = L.SeparableConv2D(6, 3, strides=2)(x)
    x = L.BatchNormalization(scale=False)(x)
    x = L.Activation("relu")(x)
    x = L.Conv2D(6, 3, groups=2, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("swish")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(5)(x)
    x = L.BatchNormalization()(x)
    outputs = L.Activation("softmax")(x)
    return lib.Model(inputs, outputs)


def _compiled(model):
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_the_pass_folds_each_linear_layer_read_only_by_a_batch_norm():
    model = _compiled(_inverted_residual(keras))
    model.predict(np.zeros((1, 12, 12, 8), np.float32), verbose=0)
    names = [layer.name for layer in model.layers[1:]]  # node i is model.layers[i + 1] (after the Input)
    folded = [names[i] for i in model._network.fusion_passes()["batch_norm_folding"]]
    kinds = [name.rsplit("_", 1)[0] if name[-1].isdigit() else name for name in folded]
    # Every linear layer folds its BatchNormalization; the Dense's softmax stays apart (its loss
    # reads the logits).
    assert kinds == ["conv2d", "depthwise_conv2d", "conv2d", "separable_conv2d", "conv2d", "dense"]
    model._network.set_batch_norm_folding(False)
    assert model._network.fusion_passes()["batch_norm_folding"] == []


def test_no_fold_where_the_output_is_read_twice_is_a_model_output_or_already_activated():
    inputs = keras.Input((6, 6, 3))
    activated = layers.Conv2D(4, 3, activation="relu")(inputs)      # node 0: its ReLU comes first
    normalized = layers.BatchNormalization()(activated)              # node 1
    read_twice = layers.Conv2D(4, 1)(normalized)                     # node 2: read by the BN and the Add
    joined = layers.Add()([read_twice, layers.BatchNormalization()(read_twice)])  # nodes 3 (BN), 4 (Add)
    exposed = layers.Conv2D(4, 1)(joined)                            # node 5: also a model output
    out = layers.BatchNormalization()(exposed)                       # node 6
    model = keras.Model(inputs, [out, exposed])
    model.compile("adam", ["mse", "mse"])
    model.predict(np.zeros((1, 6, 6, 3), np.float32), verbose=0)
    assert model._network.fusion_passes()["batch_norm_folding"] == []


@pytest.mark.parametrize("batch", [1, 3, 70])
def test_folded_predictions_equal_the_unfolded_ones(rng, batch):
    model = _compiled(_inverted_residual(keras))
    _randomize_batch_norm(model, rng)
    x = rng.standard_normal((batch, 12, 12, 8)).astype(np.float32)
    folded = model.predict(x, verbose=0)
    model._network.set_batch_norm_folding(False)
    unfolded = model.predict(x, verbose=0)
    assert relative_error(folded, unfolded) <= 1e-5
    model._network.set_batch_norm_folding(True)
    np.testing.assert_array_equal(model.predict(x, verbose=0), folded)


def test_folded_predictions_match_keras(tf, rng):
    reference = _inverted_residual(tf.keras)
    ours = _compiled(_inverted_residual(keras))
    for layer in reference.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2.0, w.shape) if i == len(layer.weights) - 1 else
                               rng.standard_normal(w.shape) * 0.3 + (1.0 if i == 0 and layer.scale else 0.0)
                               for i, w in enumerate(layer.get_weights())])
    ours.set_weights(reference.get_weights())
    x = rng.standard_normal((9, 12, 12, 8)).astype(np.float32)
    assert len(ours._network.fusion_passes()["batch_norm_folding"]) == 6
    assert relative_error(ours.predict(x, verbose=0), reference.predict(x, verbose=0)) <= 1e-5


def _dense_then_batch_norm():
    return _compiled(keras.Sequential([keras.Input((4,)), layers.Dense(3, use_bias=False),
                                       layers.BatchNormalization(), layers.ReLU(),
                                       layers.Dense(3, activation="softmax")]))


def _unfolded_prediction(model, x):
    model._network.set_batch_norm_folding(False)
    try:
        return model.predict(x, verbose=0)
    finally:
        model._network.set_batch_norm_folding(True)


def test_inference_follows_weights_assigned_after_a_fold(rng):
    model = _dense_then_batch_norm()
    x = rng.standard_normal((5, 4)).astype(np.float32)
    before = model.predict(x, verbose=0)
    batch_norm = model.layers[1]
    batch_norm.weights[2].assign(np.full(3, 2.0))   # moving_mean
    model.layers[0].kernel.assign(rng.standard_normal((4, 3)))
    after = model.predict(x, verbose=0)
    assert not np.allclose(after, before)
    assert relative_error(after, _unfolded_prediction(model, x)) <= 1e-6
    model.set_weights([w * 0.5 for w in model.get_weights()])
    assert relative_error(model.predict(x, verbose=0), _unfolded_prediction(model, x)) <= 1e-6


def test_inference_follows_training_steps_and_loaded_weights(rng, tmp_path):
    model = _dense_then_batch_norm()
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = np.arange(16) % 3
    before = model.predict(x, verbose=0)
    path = tmp_path / "before.weights.h5"
    model.save_weights(path)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)  # moves the kernel and the moving statistics
    trained = model.predict(x, verbose=0)
    assert not np.allclose(trained, before)
    assert relative_error(trained, _unfolded_prediction(model, x)) <= 1e-6
    model.load_weights(path)
    np.testing.assert_allclose(model.predict(x, verbose=0), before, rtol=0, atol=1e-6)


def test_evaluate_reads_the_folded_pass(rng):
    model = _compiled(_inverted_residual(keras))
    _randomize_batch_norm(model, rng)
    x = rng.standard_normal((8, 12, 12, 8)).astype(np.float32)
    y = np.arange(8) % 5
    probabilities = model.predict(x, verbose=0)
    expected = -np.mean(np.log(np.clip(probabilities[np.arange(8), y], 1e-7, 1.0)))
    loss, _ = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_training_mode_calls_run_every_batch_norm(rng):
    model = _compiled(_inverted_residual(keras))
    x = rng.standard_normal((6, 12, 12, 8)).astype(np.float32)
    # Training mode normalizes with the batch's statistics: no fold applies, whatever the switch.
    trained = np.asarray(model(x, training=True))
    inferred = np.asarray(model(x, training=False))
    assert trained.shape == inferred.shape == (6, 5)
    assert not np.allclose(trained, inferred, atol=1e-3)
    model._network.set_batch_norm_folding(False)
    np.testing.assert_array_equal(np.asarray(model(x, training=True)), trained)


def _fine_tuning_model(seed):
    """A frozen base (convolutions with BatchNormalization, the first block frozen) and a
    trainable top, as when fine-tuning the top of a pretrained network."""
    keras.utils.set_random_seed(seed)
    base = _inverted_residual(keras)
    _randomize_batch_norm(base, np.random.default_rng(seed))
    for layer in base.layers[:8]:  # up to the depthwise block's ReLU6: conv, BN, ReLU6, depthwise, BN, ReLU6
        layer.trainable = False
    base.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    return base


def test_a_frozen_part_runs_folded_in_training_too_and_trains_as_unfolded():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 12, 12, 8)).astype(np.float32)
    y = rng.integers(0, 5, 16)
    folded, unfolded = _fine_tuning_model(1), _fine_tuning_model(1)
    unfolded._network.set_batch_norm_folding(False)
    folded.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    unfolded.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    names = [layer.name for layer in folded._node_layers]
    in_training = [names[i] for i in folded._network.fusion_passes()["batch_norm_folding_in_training"]]
    # The frozen expand and depthwise convolutions fold in training; the trainable ones do not.
    assert [name.rsplit("_", 1)[0] if name[-1].isdigit() else name for name in in_training] == \
        ["conv2d", "depthwise_conv2d"]
    assert len(folded._network.fusion_passes()["batch_norm_folding"]) == 6
    for a, b in zip(folded.weights, unfolded.weights):
        # (A bias before a BatchNormalization gets gradients of rounding noise only: atol.)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6, err_msg=a.path)
    frozen = [w for layer in folded.layers[:8] for w in layer.weights]
    assert frozen and all(np.array_equal(w.numpy(), u.numpy()) for w, u in
                          zip(frozen, [w for layer in unfolded.layers[:8] for w in layer.weights]))
    # A call in training mode folds the frozen part as well, and agrees with the unfolded call.
    assert relative_error(np.asarray(folded(x, training=True)), np.asarray(unfolded(x, training=True))) < 1e-5


def test_a_trainable_batch_norm_is_never_folded_in_training():
    model = _compiled(_inverted_residual(keras))
    model.predict(np.zeros((1, 12, 12, 8), np.float32), verbose=0)
    assert model._network.fusion_passes()["batch_norm_folding_in_training"] == []
    for layer in model.layers:  # frozen weights but a trainable BatchNormalization: batch statistics
        if not isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    model.predict(np.zeros((1, 12, 12, 8), np.float32), verbose=0)
    assert model._network.fusion_passes()["batch_norm_folding_in_training"] == []


# ---------------------------------------------------------------------------------------------
# residual_add: an Add reading a folded BatchNormalization runs in the convolution's epilogue
# ---------------------------------------------------------------------------------------------

def _residual_network(lib):
    """ResNet v1's blocks: conv-BN-ReLU, conv-BN, Add with the shortcut (the block's input, or a
    strided 1x1 conv-BN created after the main branch), ReLU; and MobileNetV2's Add without an
    activation after it."""
    L = lib.layers

    def conv_bn(x, filters, kernel_size=3, strides=1, relu=True):
        x = L.Conv2D(filters, kernel_size, strides=strides, padding="same")(x)
        x = L.BatchNormalization()(x)
        return L.Activation("relu")(x) if relu else x

    inputs = lib.Input((10, 10, 8))
    x = conv_bn(inputs, 16)                                          # its BatchNormalization is read by an Activation
    y = conv_bn(conv_bn(x, 16), 16, relu=False)
    x = L.Activation("relu")(L.Add()([y, x]))                        # y's convolution adds x
    y = conv_bn(conv_bn(x, 24, strides=2), 24, relu=False)           # computed before the shortcut
    shortcut = conv_bn(x, 24, kernel_size=1, strides=2, relu=False)  # adds y: the later convolution folds the Add
    x = L.ReLU()(L.Add()([y, shortcut]))
    y = conv_bn(x, 24, kernel_size=1, relu=False)
    x = L.Add()([x, y])                                              # no activation after it
    x = L.GlobalAveragePooling2D()(x)
    return lib.Model(inputs, L.Dense(5, activation="softmax")(x))


def _residual_add_layers(model):
    return [model._node_layers[i].name for i in model._network.fusion_passes()["residual_add"]]


def test_residual_add_folds_where_the_other_input_is_ready_and_equals_the_unfused_pass(rng):
    model = _compiled(_residual_network(keras))
    _randomize_batch_norm(model, rng)
    x = rng.standard_normal((7, 10, 10, 8)).astype(np.float32)
    fused = model.predict(x, verbose=0)
    convolutions = [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)]
    # Convolutions 3, 6 (the 1x1 shortcut, after the strided branch's 5) and 7 fold an Add.
    assert _residual_add_layers(model) == [convolutions[2], convolutions[5], convolutions[6]]
    model._network.set_residual_add_fusion(False)
    assert _residual_add_layers(model) == []
    # The epilogue adds the residual after the folded bias, as the Add after the stored output
    # would: the same additions in the same order.
    np.testing.assert_array_equal(model.predict(x, verbose=0), fused)
    model._network.set_residual_add_fusion(True)
    np.testing.assert_array_equal(model.predict(x, verbose=0), fused)
    assert relative_error(fused, _unfolded_prediction(model, x)) <= 1e-5


def test_residual_add_predictions_match_keras(tf, rng):
    reference = _residual_network(tf.keras)
    ours = _compiled(_residual_network(keras))
    _randomize_batch_norm(reference, rng)
    ours.set_weights(reference.get_weights())
    x = rng.standard_normal((6, 10, 10, 8)).astype(np.float32)
    assert len(_residual_add_layers(ours)) == 3
    assert relative_error(ours.predict(x, verbose=0), reference.predict(x, verbose=0)) <= 1e-5


def test_no_residual_add_where_the_add_broadcasts_has_three_inputs_or_the_convolution_is_grouped(rng):
    inputs = keras.Input((6, 6, 4))
    normalized = layers.BatchNormalization()(layers.Conv2D(4, 3, padding="same")(inputs))
    per_channel = layers.Reshape((1, 1, 4))(layers.Dense(4)(layers.GlobalAveragePooling2D()(inputs)))
    broadcast = layers.Add()([normalized, per_channel])                       # (6, 6, 4) + (1, 1, 4)
    second = layers.BatchNormalization()(layers.Conv2D(4, 1)(broadcast))
    three = layers.Add()([second, broadcast, inputs])                          # three inputs
    grouped = layers.BatchNormalization()(layers.Conv2D(4, 3, padding="same", groups=2)(three))
    subtracted = layers.Subtract()([grouped, three])                          # not an Add
    fourth = layers.BatchNormalization()(layers.Conv2D(4, 1, name="folds_the_add")(subtracted))
    added = layers.Add()([fourth, subtracted])
    last = layers.BatchNormalization()(layers.Conv2D(4, 1, groups=2)(added))  # grouped
    model = _compiled(keras.Model(inputs, layers.Flatten()(layers.Add()([last, added]))))
    _randomize_batch_norm(model, rng)
    x = rng.standard_normal((3, 6, 6, 4)).astype(np.float32)
    fused = model.predict(x, verbose=0)
    assert _residual_add_layers(model) == ["folds_the_add"]
    assert len(model._network.fusion_passes()["batch_norm_folding"]) == 5  # each still folds its BatchNormalization
    model._network.set_residual_add_fusion(False)
    np.testing.assert_array_equal(model.predict(x, verbose=0), fused)


def _activated_then_normalized(lib, activation="relu"):
    """Seed Example 3's pattern: Conv2D(activation) -> BatchNormalization, the statistics taken
    after the activation, through the Winograd (3x3 'same'), the first-layer (3 channels), the
    pointwise (1x1) and the strided paths; then a pooling, a grouped convolution and a Dense."""
    L = lib.layers
    return lib.Sequential([
        lib.Input((12, 12, 3)),
        L.Conv2D(16, 3, padding="same", activation=activation), L.BatchNormalization(),          # 0, 1
        L.Conv2D(24, 3, padding="same", activation="relu6"), L.BatchNormalization(epsilon=0.1),   # 2, 3
        L.MaxPooling2D(),                                                                        # 4
        L.Conv2D(40, 1, activation="relu", use_bias=False), L.BatchNormalization(center=False),   # 5, 6
        L.Conv2D(8, 3, strides=2, activation="elu"), L.BatchNormalization(scale=False),           # 7, 8
        L.Conv2D(8, 1, groups=2, activation="relu"), L.BatchNormalization(),                      # 9, 10
        L.Flatten(), L.Dense(5, activation="softmax"),
    ])


def test_batch_norm_after_activation_applies_to_conv2d_with_an_epilogue_activation_and_one_group():
    model = _compiled(_activated_then_normalized(keras))
    model.predict(np.zeros((1, 12, 12, 3), np.float32), verbose=0)
    passes = model._network.fusion_passes()
    # Not the grouped convolution (node 9); none of them folds (an activation comes first).
    assert passes["batch_norm_after_activation"] == [0, 2, 5, 7]
    assert passes["batch_norm_folding"] == []
    model._network.set_batch_norm_folding(False)
    assert model._network.fusion_passes()["batch_norm_after_activation"] == []
    # gelu runs after the kernel, from the kept pre-activation: no epilogue to extend.
    gelu = _compiled(_activated_then_normalized(keras, activation="gelu"))
    gelu.predict(np.zeros((1, 12, 12, 3), np.float32), verbose=0)
    assert gelu._network.fusion_passes()["batch_norm_after_activation"] == [2, 5, 7]


def _activation_layer_between(lib):
    """A linear Conv2D, an activation layer, then BatchNormalization: the same pass, the activation
    layer's in the epilogue (not where the activation layer is read twice, node 6's)."""
    L = lib.layers
    inputs = lib.Input((10, 10, 3))
    x = L.Conv2D(16, 3, padding="same")(inputs)                               # 0
    x = L.BatchNormalization()(L.ReLU(6.0)(x))                                 # 1, 2
    x = L.Conv2D(24, 1, use_bias=False)(x)                                     # 3
    x = L.BatchNormalization(epsilon=0.1)(L.Activation("elu")(x))              # 4, 5
    x = L.Conv2D(8, 3, strides=2)(x)                                           # 6
    activated = L.Activation("relu")(x)                                        # 7
    x = L.Add()([activated, L.BatchNormalization()(activated)])                # 8, 9
    x = L.GlobalAveragePooling2D()(x)
    return lib.Model(inputs, L.Dense(5, activation="softmax")(x))


def test_batch_norm_after_an_activation_layer_runs_in_the_convolutions_epilogue(tf, rng):
    ours = _compiled(_activation_layer_between(keras))
    ours.predict(np.zeros((1, 10, 10, 3), np.float32), verbose=0)
    assert ours._network.fusion_passes()["batch_norm_after_activation"] == [0, 3]
    reference = _activation_layer_between(tf.keras)
    for layer in reference.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.standard_normal(beta.shape) * 0.3,
                               rng.standard_normal(mean.shape) * 0.3, rng.uniform(0.5, 2.0, variance.shape)])
    ours.set_weights(reference.get_weights())
    x = rng.standard_normal((7, 10, 10, 3)).astype(np.float32)
    fused = ours.predict(x, verbose=0)
    assert relative_error(fused, _unfolded_prediction(ours, x)) <= 1e-6
    assert relative_error(fused, reference.predict(x, verbose=0)) <= 1e-5


def test_no_batch_norm_after_activation_where_the_output_is_read_twice_or_is_a_model_output():
    inputs = keras.Input((6, 6, 3))
    activated = layers.Conv2D(4, 3, activation="relu")(inputs)                     # node 0: read twice
    joined = layers.Add()([activated, layers.BatchNormalization()(activated)])     # nodes 1 (BN), 2 (Add)
    exposed = layers.Conv2D(4, 1, activation="relu")(joined)                       # node 3: a model output
    out = layers.BatchNormalization()(exposed)                                     # node 4
    model = keras.Model(inputs, [out, exposed])
    model.compile("adam", ["mse", "mse"])
    model.predict(np.zeros((1, 6, 6, 3), np.float32), verbose=0)
    assert model._network.fusion_passes()["batch_norm_after_activation"] == []


@pytest.mark.parametrize("batch", [1, 5, 70])
def test_batch_norm_after_activation_predictions_equal_the_separate_layers(rng, batch):
    model = _compiled(_activated_then_normalized(keras))
    _randomize_batch_norm(model, rng)
    x = rng.standard_normal((batch, 12, 12, 3)).astype(np.float32)
    fused = model.predict(x, verbose=0)
    # The same kernel path and the same multiply-add (test_kernels.py checks those bit for bit);
    # the shift beta - moving_mean * scale may round apart where the BatchNormalization kernel's
    # compiler fuses it into one multiply-add: a unit in the last place of the shift.
    unfused = _unfolded_prediction(model, x)
    assert relative_error(fused, unfused) <= 1e-6
    # Weights assigned after a pass are followed (the scale and shift are refolded).
    model.layers[1].weights[0].assign(rng.uniform(0.5, 1.5, 16))
    model.layers[3].weights[2].assign(rng.standard_normal(24))  # moving_mean
    after = model.predict(x, verbose=0)
    assert relative_error(after, fused) > 1e-3
    assert relative_error(after, _unfolded_prediction(model, x)) <= 1e-6


def test_batch_norm_after_activation_predictions_match_keras(tf, rng):
    reference = _activated_then_normalized(tf.keras)
    ours = _compiled(_activated_then_normalized(keras))
    weights = []
    for layer in reference.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            # gamma (if any) near 1, beta (if any) and the moving mean around 0, the variance positive.
            values = [rng.standard_normal(w.shape) * 0.3 for w in layer.get_weights()]
            if layer.scale:
                values[0] += 1.0
            values[-1] = rng.uniform(0.5, 2.0, values[-1].shape)
            layer.set_weights(values)
    ours.set_weights(reference.get_weights())
    x = rng.standard_normal((9, 12, 12, 3)).astype(np.float32)
    assert len(ours._network.fusion_passes()["batch_norm_after_activation"]) == 4
    assert relative_error(ours.predict(x, verbose=0), reference.predict(x, verbose=0)) <= 1e-5


def test_batch_norm_after_activation_predictions_do_not_depend_on_the_thread_count(rng):
    model = _compiled(_activated_then_normalized(keras))
    _randomize_batch_norm(model, rng)
    x = rng.standard_normal((37, 12, 12, 3)).astype(np.float32)
    previous = keras.config.get_num_threads()
    try:
        keras.config.set_num_threads(1)
        one = model.predict(x, verbose=0)
        keras.config.set_num_threads(2)
        two = model.predict(x, verbose=0)
    finally:
        keras.config.set_num_threads(previous)
    np.testing.assert_array_equal(one, two)
