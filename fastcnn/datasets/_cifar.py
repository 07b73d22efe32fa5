"""CIFAR's python-format batches: pickled dicts of numpy arrays, read with an unpickler that
rebuilds numpy arrays and nothing else (a tampered file cannot run code)."""

import pickle

import numpy as np

_ALLOWED_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
})


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"Refusing to deserialize `{module}.{name}` while loading a CIFAR batch. The "
                                     "file may be corrupted or malicious.")


def load_batch(path, label_key="labels"):
    """(images (n, 3, 32, 32) uint8, labels) of one CIFAR batch file."""
    try:
        with open(path, "rb") as file:
            batch = _RestrictedUnpickler(file, encoding="bytes").load()
        batch = {key.decode("utf8") if isinstance(key, bytes) else key: value for key, value in batch.items()}
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = batch[label_key]
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, ValueError, TypeError) as error:
        raise ValueError(f"{path!r} is not a CIFAR batch file ({type(error).__name__}: {error}).") from error
    return data.reshape(data.shape[0], 3, 32, 32), labels
