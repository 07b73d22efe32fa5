"""Whole models against Keras (TensorFlow 2.21): the same weights give the same predictions
(<= 1e-5 relative) and, after three fit steps on the same batches (no shuffle, no dropout), the
same weights (<= 1e-4 relative), with SGD, SGD+momentum, Adam and RMSprop."""

import numpy as np
import pytest

from fastcnn import layers, models, optimizers
from conftest import relative_error, smallest_max_pool_gap


def seed_example1(lib, input_shape=(28, 28, 1)):
    """The seed article's Example 1, built with `lib.layers` / `lib.models`."""
    return lib["models"].Sequential([
        lib["layers"].Conv2D(32, (3, 3), activation="relu", input_shape=input_shape),
        lib["layers"].MaxPooling2D((2, 2)),
        lib["layers"].Conv2D(64, (3, 3), activation="relu"),
        lib["layers"].MaxPooling2D((2, 2)),
        lib["layers"].Flatten(),
        lib["layers"].Dense(10, activation="softmax"),
    ])


def strided_same_model(lib, input_shape=(15, 13, 3)):
    """Stride 2 'same' convolutions, odd sizes, 5x5 and 1x1 kernels, same-padded pooling, hidden
    tanh/sigmoid dense layers and a softmax Activation layer."""
    L = lib["layers"]
    return lib["models"].Sequential([
        L.Conv2D(8, (5, 5), strides=(2, 2), padding="same", activation="relu", input_shape=input_shape),
        L.Conv2D(12, (1, 1), activation="tanh"),
        L.MaxPooling2D((3, 3), strides=(2, 2), padding="same"),
        L.Conv2D(6, (3, 3), padding="same", use_bias=False, activation="sigmoid"),
        L.Flatten(),
        L.Dense(16, activation="tanh"),
        L.Dense(5),
        L.Activation("softmax"),
    ])


@pytest.fixture(scope="module")
def keras_lib(tf):
    return {"layers": tf.keras.layers, "models": tf.keras.models}


FASTCNN = {"layers": layers, "models": models}


def _quiet(tf, seed=7):
    """Seeds Keras's initialisers (the tests are deterministic) and silences its input_shape hint."""
    import os
    import warnings

    warnings.filterwarnings("ignore", message=".*input_shape.*", category=UserWarning)
    tf.keras.utils.set_random_seed(int(os.environ.get("FASTCNN_PARITY_SEED", seed)))


@pytest.mark.parametrize("builder,shape,classes", [(seed_example1, (28, 28, 1), 10), (strided_same_model, (15, 13, 3), 5)])
def test_predict_matches_keras_with_the_same_weights(tf, keras_lib, rng, builder, shape, classes):
    _quiet(tf)
    keras_model = builder(keras_lib, shape)
    model = builder(FASTCNN, shape)
    model.set_weights(keras_model.get_weights())
    x = rng.random((37,) + shape).astype(np.float32)
    expected = keras_model.predict(x, verbose=0)
    actual = model.predict(x, verbose=0)
    assert actual.shape == (37, classes)
    assert relative_error(actual, expected) <= 1e-5
    # And back: fastcnn's initial weights into Keras.
    fresh = builder(FASTCNN, shape)
    keras_model.set_weights(fresh.get_weights())
    assert relative_error(fresh.predict(x, verbose=0), keras_model.predict(x, verbose=0)) <= 1e-5


OPTIMIZERS = {
    "sgd": (lambda lib: lib.SGD(learning_rate=0.05)),
    "sgd_momentum_nesterov": (lambda lib: lib.SGD(learning_rate=0.02, momentum=0.9, nesterov=True)),
    "adam": (lambda lib: lib.Adam(learning_rate=0.001)),
    "adam_amsgrad": (lambda lib: lib.Adam(learning_rate=0.002, amsgrad=True)),
    "rmsprop": (lambda lib: lib.RMSprop(learning_rate=0.001)),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("builder,shape,classes", [(seed_example1, (28, 28, 1), 10), (strided_same_model, (15, 13, 3), 5)])
def test_three_fit_steps_match_keras(tf, keras_lib, rng, optimizer, builder, shape, classes):
    _quiet(tf)
    keras_model = builder(keras_lib, shape)
    model = builder(FASTCNN, shape)
    initial_weights = keras_model.get_weights()
    model.set_weights(initial_weights)
    model.compile(optimizer=OPTIMIZERS[optimizer](optimizers), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # Keras trains step by step (the three batches fit takes) so that every step's max-pooling
    # inputs can be checked for near-ties, which make any two implementations diverge (see
    # smallest_max_pool_gap); data whose Keras trajectory has one is replaced by the next draw.
    for _ in range(30):
        x = rng.random((48,) + shape).astype(np.float32)
        y = rng.integers(0, classes, 48)
        keras_model.set_weights(initial_weights)
        keras_model.compile(optimizer=OPTIMIZERS[optimizer](tf.keras.optimizers),
                            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        keras_results = []
        for step in range(3):
            batch = slice(16 * step, 16 * (step + 1))
            if smallest_max_pool_gap(tf, keras_model, x[batch]) <= 1e-6:
                break
            keras_results.append(keras_model.train_on_batch(x[batch], y[batch], return_dict=True))
        if len(keras_results) == 3:
            break
    assert len(keras_results) == 3, "no tie-free data in 30 draws"
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 3
    for actual, expected in zip(model.get_weights(), keras_model.get_weights()):
        assert relative_error(actual, expected) <= 1e-4
    # fit reports the mean over the epoch's (equal-sized) batches, as Keras's fit does.
    np.testing.assert_allclose(history.history["loss"], [np.mean([r["loss"] for r in keras_results])], rtol=1e-4)
    np.testing.assert_allclose(history.history["accuracy"], [np.mean([r["accuracy"] for r in keras_results])],
                               rtol=1e-6)


@pytest.mark.parametrize("loss", ["categorical", "categorical_from_logits", "sparse_from_logits"])
def test_loss_variants_train_like_keras(tf, keras_lib, rng, loss):
    _quiet(tf)
    shape = (12, 12, 2)

    def build(lib):
        L = lib["layers"]
        last_activation = None if loss.endswith("from_logits") else "softmax"
        return lib["models"].Sequential([
            L.Conv2D(4, (3, 3), activation="relu", input_shape=shape),
            L.Flatten(),
            L.Dense(6, activation=last_activation),
        ])

    def make_loss(lib):
        if loss == "categorical":
            return lib.CategoricalCrossentropy()
        if loss == "categorical_from_logits":
            return lib.CategoricalCrossentropy(from_logits=True)
        return lib.SparseCategoricalCrossentropy(from_logits=True)

    from fastcnn import losses

    keras_model, model = build(keras_lib), build(FASTCNN)
    model.set_weights(keras_model.get_weights())
    keras_model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss=make_loss(tf.keras.losses), metrics=["accuracy"])
    model.compile(optimizer=optimizers.Adam(0.01), loss=make_loss(losses), metrics=["accuracy"])
    x = rng.random((30,) + shape).astype(np.float32)
    labels = rng.integers(0, 6, 30)
    y = labels if loss.startswith("sparse") else np.eye(6, dtype=np.float32)[labels]
    keras_history = keras_model.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    history = model.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    for actual, expected in zip(model.get_weights(), keras_model.get_weights()):
        assert relative_error(actual, expected) <= 1e-4
    np.testing.assert_allclose(history.history["loss"], keras_history.history["loss"], rtol=1e-4)
    keras_eval = keras_model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), keras_eval, rtol=1e-4)
