"""Metrics with Keras's names. Training counts correct predictions inside the C++ step (argmax of
the prediction against the label, or against the target row's argmax for one-hot targets)."""

import numpy as np


class Accuracy:
    """Classification accuracy; its name is the key it gets in logs and History."""

    def __init__(self, name="accuracy"):
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        self.name = name

    def get_config(self):
        return {"name": self.name, "dtype": "float32"}

    def __call__(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        y_true = np.asarray(y_true)
        predicted = np.argmax(y_pred, axis=-1)
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == y_pred.shape[-1] and y_true.shape[-1] > 1:
            expected = np.argmax(y_true, axis=-1)
        else:
            expected = y_true.reshape(predicted.shape)
        return np.float32(np.mean(predicted == expected)) if predicted.size else np.float32(0.0)


class SparseCategoricalAccuracy(Accuracy):
    def __init__(self, name="sparse_categorical_accuracy"):
        super().__init__(name)


class CategoricalAccuracy(Accuracy):
    def __init__(self, name="categorical_accuracy"):
        super().__init__(name)


_ACCURACY_NAMES = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy")


def get(identifier):
    """A metric from a Keras name ('accuracy', 'acc', ...) or an Accuracy instance."""
    if isinstance(identifier, Accuracy):
        return identifier
    if isinstance(identifier, str) and identifier in _ACCURACY_NAMES:
        return Accuracy(identifier)
    raise ValueError(
        f"Could not interpret metric identifier: {identifier!r}. Supported: {', '.join(_ACCURACY_NAMES)}."
    )
