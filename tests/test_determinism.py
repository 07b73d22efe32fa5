"""Training results do not depend on the number of threads: every reduction in the kernels is split
by output element or summed over fixed chunks in a fixed order, so 1 and 2 threads give bitwise
identical weights."""

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, models, utils


def _seed_example_1():
    """Seed Example 1's network: its first Conv2D computes the max pooling after it (fused)."""
    return models.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(20, 20, 3)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])


def _train(threads, kernels, network="mixed"):
    previous_threads, previous_kernels = fastcnn.config.get_num_threads(), fastcnn.config.kernel_set()
    fastcnn.config.set_num_threads(threads)
    fastcnn.config.set_kernel_set(kernels)
    try:
        utils.set_random_seed(3)
        model = _seed_example_1() if network == "seed_example_1" else models.Sequential([
            layers.Conv2D(16, (3, 3), padding="same", activation="relu", input_shape=(20, 20, 3)),
            layers.BatchNormalization(),
            layers.Conv2D(16, (3, 3), padding="same", activation="relu"),  # Winograd in the fast tiers
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(16, (3, 3), strides=(2, 2), activation="relu"),
            layers.AveragePooling2D((2, 2), padding="same"),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        rng = np.random.default_rng(0)
        x = rng.random((96, 20, 20, 3)).astype(np.float32)
        y = rng.integers(0, 10, 96)
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        return model.get_weights(), history.history["loss"]
    finally:
        fastcnn.config.set_num_threads(previous_threads)
        fastcnn.config.set_kernel_set(previous_kernels)


@pytest.mark.parametrize("network", ["mixed", "seed_example_1"])
@pytest.mark.parametrize("kernels", [name for name in fastcnn._core.available_kernels() if name != "reference"])
def test_training_is_bitwise_identical_with_one_and_two_threads(kernels, network):
    one_weights, one_loss = _train(1, kernels, network)
    two_weights, two_loss = _train(2, kernels, network)
    assert one_loss == two_loss
    for one, two in zip(one_weights, two_weights):
        np.testing.assert_array_equal(one, two)


def test_predictions_do_not_depend_on_the_batch_size():
    """Inference treats every sample alone (large batches also run in cache-sized slices inside
    predict), so any batch size gives bitwise the same predictions."""
    utils.set_random_seed(5)
    model = models.Sequential([
        layers.Conv2D(16, (3, 3), padding="same", activation="relu", input_shape=(14, 14, 3)),
        layers.BatchNormalization(),
        layers.Conv2D(16, (3, 3), activation="relu"),  # Winograd in the fast tiers
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(2)
    x = rng.random((300, 14, 14, 3)).astype(np.float32)
    model.fit(x, rng.integers(0, 10, 300), batch_size=50, epochs=1, verbose=0)
    reference = model.predict(x, batch_size=1, verbose=0)
    for batch_size in (7, 64, 65, 300):
        np.testing.assert_array_equal(model.predict(x, batch_size=batch_size, verbose=0), reference)
