"""``Input(shape=...)`` / ``InputLayer``: declares a Sequential model's per-sample input shape."""

from fastcnn import _naming
from fastcnn.layers.base import sample_shape


class InputLayer:
    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, batch_shape=None,
                 input_shape=None):
        if shape is None and batch_shape is not None:
            shape = tuple(batch_shape)[1:]
        if shape is None:
            shape = input_shape
        if shape is None:
            raise ValueError("You must pass a `shape` argument to Input / InputLayer.")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size!r}")
        if dtype not in (None, "float32"):
            raise ValueError(f"fastcnn computes in float32. Received: dtype={dtype!r}")
        self.name = name or _naming.unique_name("input_layer")
        self.shape = (batch_size,) + sample_shape(shape, "Input")
        self.batch_size = batch_size

    @property
    def sample_shape(self):
        return self.shape[1:]

    def __repr__(self):
        return f"<InputLayer name={self.name}, shape={self.shape}>"


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None):
    """The model input of Keras's functional API, accepted as the first entry of a Sequential."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape)
