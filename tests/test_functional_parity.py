"""Functional models against Keras (TensorFlow 2.21): graphs with residual adds, concatenated
branches, a squeeze-excite multiply, every merge kind, shared layers and nested models. The same
weights give the same predictions (<= 1e-5 relative); three fit steps with SGD (+ momentum) and
Adam give the same weights (<= 1e-4 relative; tensors whose exact gradient is zero, like a bias
feeding BatchNormalization, are compared absolutely); 1 and 2 threads give bitwise equal results."""

import numpy as np
import pytest

import fastcnn
from fastcnn import optimizers
from conftest import relative_error


def residual(keras, shape=(10, 10, 3), classes=5):
    L = keras.layers
    inputs = keras.Input(shape)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    shortcut = x
    y = L.Conv2D(8, 3, padding="same")(x)
    y = L.BatchNormalization()(y)
    y = L.Activation("relu")(y)
    y = L.Conv2D(8, 3, padding="same")(y)
    x = L.add([y, shortcut])
    x = L.ReLU()(x)
    x = L.Conv2D(6, 1, strides=2)(x)
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="residual")


def inception(keras, shape=(9, 9, 2), classes=4):
    L = keras.layers
    inputs = keras.Input(shape)
    a = L.Conv2D(4, 1, activation="relu")(inputs)
    b = L.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    c = L.MaxPooling2D(3, strides=1, padding="same")(inputs)
    x = L.Concatenate()([a, b, c])
    x = L.Conv2D(6, 3, activation="tanh")(x)
    x = L.Flatten()(x)
    outputs = L.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def squeeze_excite(keras, shape=(8, 8, 4), classes=3):
    L = keras.layers
    inputs = keras.Input(shape)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    gate = L.GlobalAveragePooling2D()(x)
    gate = L.Dense(2, activation="relu")(gate)
    gate = L.Dense(8, activation="sigmoid")(gate)
    gate = L.Reshape((1, 1, 8))(gate)
    x = L.multiply([x, gate])
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def merges(keras, shape=(6, 6, 3), classes=4):
    """Subtract, Average, Maximum, Minimum and a concatenation along the width."""
    L = keras.layers
    inputs = keras.Input(shape)
    a = L.Conv2D(4, 3, padding="same")(inputs)
    b = L.Conv2D(4, 1)(inputs)
    c = L.Conv2D(4, 3, padding="same", activation="tanh")(inputs)
    d = L.subtract([a, b])
    e = L.average([a, b, c])
    f = L.maximum([d, c])
    g = L.minimum([e, f, a])
    x = L.Concatenate(axis=2)([f, g])
    x = L.Flatten()(x)
    outputs = L.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def shared(keras, shape=(6, 6, 4), classes=3):
    """One Conv2D called twice in a row and one Dense on two branches: one set of weights each."""
    L = keras.layers
    inputs = keras.Input(shape)
    convolution = L.Conv2D(4, 3, padding="same", activation="relu")
    x1 = convolution(inputs)
    x2 = convolution(x1)
    dense = L.Dense(5, activation="tanh")
    a = dense(L.GlobalAveragePooling2D()(x1))
    b = dense(L.GlobalMaxPooling2D()(x2))
    x = L.concatenate([a, b, L.Flatten()(L.add([x1, x2]))])
    outputs = L.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def nested(keras, shape=(8, 8, 3), classes=4):
    """A functional block and a Sequential block used as layers of the outer model."""
    L = keras.layers
    block_input = keras.Input(shape)
    y = L.Conv2D(6, 3, padding="same")(block_input)
    y = L.BatchNormalization()(y)
    y = L.Activation("relu")(y)
    block = keras.Model(block_input, L.add([y, L.Conv2D(6, 1)(block_input)]), name="block")
    head = keras.Sequential([L.GlobalAveragePooling2D(), L.Dense(8, activation="relu")], name="head")
    inputs = keras.Input(shape)
    x = block(inputs)
    x = L.MaxPooling2D(2)(x)
    x = head(x)
    outputs = L.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


BUILDERS = {"residual": (residual, (10, 10, 3), 5), "inception": (inception, (9, 9, 2), 4),
            "squeeze_excite": (squeeze_excite, (8, 8, 4), 3), "merges": (merges, (6, 6, 3), 4),
            "shared": (shared, (6, 6, 4), 3), "nested": (nested, (8, 8, 3), 4)}

# Weights whose exact gradient is zero: a convolution's bias feeding BatchNormalization (the batch
# mean removes it). Both frameworks move them by rounding noise only, which Adam scales up to about
# the learning rate per step, so they are checked against that bound instead of against Keras.
ZERO_GRADIENT = {"residual": {3}, "nested": {1}}
# The moving mean after such a bias follows it: it differs by at most the bias's difference.
FOLLOWS_ZERO_GRADIENT = {"residual": {6}, "nested": {4}}

OPTIMIZERS = {
    "sgd": (lambda lib: lib.SGD(learning_rate=0.05)),
    "sgd_momentum": (lambda lib: lib.SGD(learning_rate=0.02, momentum=0.9, nesterov=True)),
    "adam": (lambda lib: lib.Adam(learning_rate=0.001)),
}


def _seed(tf, seed=11):
    tf.keras.utils.set_random_seed(seed)


def _pair(tf, name):
    builder, shape, classes = BUILDERS[name]
    _seed(tf)
    keras_model = builder(tf.keras, shape, classes)
    model = builder(fastcnn, shape, classes)
    assert [tuple(w.shape) for w in model.get_weights()] == [tuple(w.shape) for w in keras_model.get_weights()]
    model.set_weights(keras_model.get_weights())
    return keras_model, model, shape, classes


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_predict_matches_keras(tf, rng, name):
    keras_model, model, shape, classes = _pair(tf, name)
    assert model.count_params() == keras_model.count_params()
    assert [layer.name.split("_")[0] for layer in model.layers] == \
        [layer.name.split("_")[0] for layer in keras_model.layers]
    x = rng.random((21,) + shape).astype(np.float32)
    expected = keras_model.predict(x, verbose=0)
    actual = model.predict(x, verbose=0)
    assert actual.shape == (21, classes)
    assert relative_error(actual, expected) <= 1e-5
    # A direct call on arrays is inference mode, as Keras's model(x).
    assert relative_error(model(x), expected) <= 1e-5


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_three_fit_steps_match_keras(tf, rng, name, optimizer):
    keras_model, model, shape, classes = _pair(tf, name)
    initial = keras_model.get_weights()
    # Max pooling near-ties can route a gradient differently in two correct implementations;
    # these inputs are continuous random data on graphs whose pooling windows rarely tie.
    x = rng.random((48,) + shape).astype(np.float32)
    y = rng.integers(0, classes, 48)
    keras_model.compile(optimizer=OPTIMIZERS[optimizer](tf.keras.optimizers), loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"])
    model.compile(optimizer=OPTIMIZERS[optimizer](optimizers), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    keras_history = keras_model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 3
    learning_rate = float(model.optimizer.learning_rate)
    for index, (start, actual, expected) in enumerate(zip(initial, model.get_weights(), keras_model.get_weights())):
        if index in ZERO_GRADIENT.get(name, ()):
            bound = 3 * learning_rate * 1.01 if optimizer == "adam" else 1e-5
            assert np.max(np.abs(actual - start)) <= bound, index
            assert np.max(np.abs(expected - start)) <= bound, index
        elif index in FOLLOWS_ZERO_GRADIENT.get(name, ()) and optimizer == "adam":
            assert np.max(np.abs(actual - expected)) <= 2 * 3 * learning_rate * 1.01, index
        else:
            assert relative_error(actual, expected) <= 1e-4, index
    np.testing.assert_allclose(history.history["loss"], keras_history.history["loss"], rtol=1e-4)


@pytest.mark.parametrize("name", ["residual", "shared", "nested"])
def test_bitwise_equal_on_one_and_two_threads(tf, rng, name):
    builder, shape, classes = BUILDERS[name]
    x = rng.random((40,) + shape).astype(np.float32)
    y = rng.integers(0, classes, 40)
    results = []
    threads = fastcnn.get_num_threads()
    try:
        for count in (1, 2):
            fastcnn.set_num_threads(count)
            fastcnn.utils.set_random_seed(3)
            model = builder(fastcnn, shape, classes)
            model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
            model.fit(x, y, batch_size=8, epochs=2, verbose=0)
            results.append(model.get_weights() + [model.predict(x, verbose=0)])
    finally:
        fastcnn.set_num_threads(threads)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def two_outputs(keras, shape=(8, 8, 3)):
    L = keras.layers
    inputs = keras.Input(shape)
    x = L.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    x = L.GlobalAveragePooling2D()(x)
    digit = L.Dense(4, activation="softmax", name="digit")(x)
    parity = L.Dense(2, activation="softmax", name="parity")(L.Dense(5, activation="tanh")(x))
    return keras.Model(inputs, [digit, parity])


def two_inputs(keras, shape=(6, 6, 2)):
    L = keras.layers
    image = keras.Input(shape, name="image")
    extra = keras.Input((3,), name="extra")
    x = L.Flatten()(L.Conv2D(3, 3, activation="relu")(image))
    x = L.concatenate([x, L.Dense(4, activation="relu")(extra)])
    return keras.Model([image, extra], L.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("form", ["list", "dict"])
def test_two_outputs_train_like_keras(tf, rng, form):
    _seed(tf)
    keras_model, model = two_outputs(tf.keras), two_outputs(fastcnn)
    model.set_weights(keras_model.get_weights())
    x = rng.random((48, 8, 8, 3)).astype(np.float32)
    digits = rng.integers(0, 4, 48)
    parity = np.eye(2, dtype=np.float32)[digits % 2]
    if form == "list":
        arguments = dict(loss=["sparse_categorical_crossentropy", "categorical_crossentropy"], loss_weights=[1.0, 0.5],
                         metrics=[["accuracy"], ["accuracy"]])
        y = [digits, parity]
    else:
        arguments = dict(loss={"digit": "sparse_categorical_crossentropy", "parity": "categorical_crossentropy"},
                         loss_weights={"digit": 2.0, "parity": 1.0}, metrics={"parity": "accuracy"})
        y = {"digit": digits, "parity": parity}
    keras_model.compile(optimizer=tf.keras.optimizers.Adam(0.01), **arguments)
    model.compile(optimizer=optimizers.Adam(0.01), **arguments)
    keras_history = keras_model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    assert sorted(history) == sorted(keras_history)
    for key in keras_history:
        np.testing.assert_allclose(history[key], keras_history[key], rtol=1e-4, err_msg=key)
    for actual, expected in zip(model.get_weights(), keras_model.get_weights()):
        assert relative_error(actual, expected) <= 1e-4
    # Equal batches: Keras averages each output's loss over batches with equal weights (its total
    # loss, and fastcnn's every loss, weighs them by their samples), which agree only then.
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=16, verbose=0),
                               keras_model.evaluate(x, y, batch_size=16, verbose=0), rtol=1e-4)
    ours = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    theirs = keras_model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert sorted(ours) == sorted(theirs)
    for predicted, expected in zip(model.predict(x, verbose=0), keras_model.predict(x, verbose=0)):
        assert relative_error(predicted, expected) <= 1e-5


def test_two_inputs_train_like_keras(tf, rng):
    _seed(tf)
    keras_model, model = two_inputs(tf.keras), two_inputs(fastcnn)
    model.set_weights(keras_model.get_weights())
    x = [rng.random((32, 6, 6, 2)).astype(np.float32), rng.random((32, 3)).astype(np.float32)]
    y = rng.integers(0, 3, 32)
    for m, opt in ((keras_model, tf.keras.optimizers), (model, optimizers)):
        m.compile(optimizer=opt.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    keras_history = keras_model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["loss"], keras_history["loss"], rtol=1e-4)
    for actual, expected in zip(model.get_weights(), keras_model.get_weights()):
        assert relative_error(actual, expected) <= 1e-4


def test_multi_output_errors():
    model = two_outputs(fastcnn)
    with pytest.raises(ValueError, match=r"`loss` must have one entry per output \(2"):
        model.compile(optimizer="sgd", loss=["sparse_categorical_crossentropy"] * 3)
    with pytest.raises(ValueError, match=r"Expected keys \['digit', 'parity'\] in loss dict"):
        model.compile(optimizer="sgd", loss={"digit": "sparse_categorical_crossentropy"})
    with pytest.raises(ValueError, match="`metrics` must be a list with one entry per output"):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics="accuracy")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.zeros((4, 8, 8, 3), np.float32)
    with pytest.raises(ValueError, match=r"has 2 outputs \['digit', 'parity'\]: pass `y` as a list of 2"):
        model.fit(x, np.zeros(4, np.int64), verbose=0)
    with pytest.raises(ValueError, match="one entry per output name"):
        model.fit(x, {"digit": np.zeros(4, np.int64)}, verbose=0)
    with pytest.raises(ValueError, match="only supported for models with a single output"):
        model.fit(x, [np.zeros(4, np.int64)] * 2, class_weight={0: 1.0}, verbose=0)


def fine_tuning(keras, shape=(8, 8, 3), classes=3):
    """The Keras transfer-learning pattern: a base model called with training=False under a new
    head. Keras 3.15's fit passes training=True to every call of a functional model, overriding
    the recorded False (its BatchNormalization then uses batch statistics and moves its moving
    statistics, unless the base is frozen), and so does fastcnn."""
    L = keras.layers
    base_input = keras.Input(shape)
    y = L.Conv2D(6, 3, padding="same", use_bias=False)(base_input)
    y = L.BatchNormalization()(y)
    y = L.ReLU()(y)
    base = keras.Model(base_input, y, name="base")
    inputs = keras.Input(shape)
    x = base(inputs, training=False)
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs), base


@pytest.mark.parametrize("frozen", [False, True])
def test_base_called_with_training_false_trains_like_keras(tf, rng, frozen):
    _seed(tf)
    keras_model, keras_base = fine_tuning(tf.keras)
    model, base = fine_tuning(fastcnn)
    # Moving statistics away from their initial 0 and 1, so inference mode matters.
    weights = keras_model.get_weights()
    weights[3] = rng.random(6).astype(np.float32)
    weights[4] = 1.0 + rng.random(6).astype(np.float32)
    keras_model.set_weights(weights)
    model.set_weights(weights)
    keras_base.trainable = not frozen
    base.trainable = not frozen
    x = rng.random((48, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    for m, opt in ((keras_model, tf.keras.optimizers), (model, optimizers)):
        m.compile(optimizer=opt.SGD(0.1), loss="sparse_categorical_crossentropy")
    keras_history = keras_model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["loss"], keras_history["loss"], rtol=1e-4)
    for index, (actual, expected) in enumerate(zip(model.get_weights(), keras_model.get_weights())):
        assert relative_error(actual, expected) <= 1e-4, index
    # Frozen, nothing in the base moved (BatchNormalization in inference mode); trainable, all did.
    changed = [not np.array_equal(a, b) for a, b in zip(model.get_weights()[:5], weights[:5])]
    assert not any(changed) if frozen else all(changed)
