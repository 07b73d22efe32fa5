"""Transfer learning as in Keras's guide, on a generated data set: a MobileNetV2 base loaded from a
weights file, frozen, used as a layer under a new classifier; then fine-tuned at a low learning
rate with its BatchNormalization layers kept frozen."""

import numpy as np
import pytest

import fastcnn as keras
from fastcnn import layers
from fastcnn.applications import MobileNetV2
from fastcnn.applications.mobilenet_v2 import preprocess_input

SIZE = 64


def _colour_images(n, seed):
    """Three classes by dominant colour channel, under noise and a random brightness."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.uniform(0, 120, (n, SIZE, SIZE, 3))
    images[np.arange(n), :, :, labels] += 120
    images *= rng.uniform(0.7, 1.0, (n, 1, 1, 1))
    return preprocess_input(images.astype("float32")), labels


def _stand_in_for_imagenet_weights(path):
    """A weights file for the base. Without the ImageNet file (no download here), random kernels
    scaled as He et al. do (variance 2 / fan_in) keep the signal's scale through the 52 layers
    (Keras's Glorot initialisation with BatchNormalization in inference mode shrinks the features to
    about 1e-11), so the frozen base gives features a classifier can use."""
    base = MobileNetV2(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), alpha=0.35)
    rng = np.random.default_rng(0)
    for layer in base.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            shape = tuple(layer.kernel.shape)
            fan_in = shape[0] * shape[1] * (1 if isinstance(layer, layers.DepthwiseConv2D) else shape[2])
            layer.kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype("float32"))
    base.save_weights(path)
    return path


@pytest.mark.slow  # 10-27 s on 2 shared cores (more with the generic kernels)
def test_freeze_train_head_then_fine_tune(tmp_path):
    keras.utils.set_random_seed(0)
    path = _stand_in_for_imagenet_weights(str(tmp_path / "base.weights.h5"))

    base = MobileNetV2(include_top=False, weights=path, input_shape=(SIZE, SIZE, 3), alpha=0.35)
    base.trainable = False
    inputs = keras.Input(shape=(SIZE, SIZE, 3))
    x = base(inputs, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == len(base.weights)

    x_train, y_train = _colour_images(128, seed=1)
    x_test, y_test = _colour_images(64, seed=2)
    frozen = [w.numpy().copy() for w in base.weights]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=5, batch_size=32, verbose=0)
    for before, variable in zip(frozen, base.weights):
        np.testing.assert_array_equal(before, variable.numpy(), err_msg=variable.path)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.8, accuracy  # chance is 1/3

    # Fine-tuning: unfreeze the base but keep BatchNormalization frozen (in inference mode, its
    # statistics untouched), recompile at a low learning rate.
    base.trainable = True
    batch_norms = [layer for layer in base.layers if isinstance(layer, layers.BatchNormalization)]
    for layer in batch_norms:
        layer.trainable = False
    statistics = [w.numpy().copy() for layer in batch_norms for w in layer.weights]
    kernel = base.get_layer("Conv1").kernel.numpy().copy()
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    assert len(model.trainable_weights) == 2 + sum(len(layer.weights) for layer in base.layers
                                                   if not isinstance(layer, layers.BatchNormalization))
    model.fit(x_train[:64], y_train[:64], epochs=1, batch_size=32, verbose=0)
    assert not np.array_equal(kernel, base.get_layer("Conv1").kernel.numpy())
    after = [w.numpy() for layer in batch_norms for w in layer.weights]
    for before, now in zip(statistics, after):
        np.testing.assert_array_equal(before, now)
    _, tuned_accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert tuned_accuracy >= 0.8, tuned_accuracy
