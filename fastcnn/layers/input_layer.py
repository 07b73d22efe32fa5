"""``Input(shape=...)`` / ``InputLayer``: a model's input. ``Input`` returns the symbolic tensor a
functional model starts from (Keras's KerasTensor); a Sequential model takes it as its first entry."""

from fastcnn import _naming
from fastcnn.layers import node as node_module
from fastcnn.layers.base import check_dtype, sample_shape


class InputLayer:
    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, input_tensor=None,
                 optional=False, name=None, ragged=None, input_shape=None):
        if shape is None and batch_shape is not None:
            try:
                batch_shape = tuple(batch_shape)
            except TypeError:
                raise ValueError(f"`batch_shape` must be a tuple of integers. Received: batch_shape={batch_shape!r}") from None
            if not batch_shape:
                raise ValueError(f"`batch_shape` needs a batch dimension. Received: batch_shape={batch_shape!r}")
            if batch_size is None:
                batch_size = batch_shape[0]
            shape = batch_shape[1:]
        if shape is None:
            shape = input_shape
        if shape is None:
            raise ValueError("You must pass a `shape` argument to Input / InputLayer.")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size!r}")
        check_dtype(dtype)
        # Keras's tensor-kind options: fastcnn takes dense, required float32 arrays only.
        for argument, value in (("sparse", sparse), ("ragged", ragged), ("optional", optional)):
            if value not in (None, False):
                raise ValueError(f"fastcnn's Input takes dense arrays only: `{argument}` must be False. "
                                 f"Received: {argument}={value!r}")
        if input_tensor is not None:
            raise ValueError(f"fastcnn's Input does not take `input_tensor`. Received: input_tensor={input_tensor!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        self.name = name or _naming.unique_name("input_layer")
        self.shape = (batch_size,) + sample_shape(shape, "Input")
        self.batch_size = batch_size
        self.trainable = False
        self.built = True
        self._inbound_nodes = []
        self.output = node_module.record(self, [], [self.shape])
        self.output.name = self.name  # as Keras names an Input's tensor

    @property
    def input(self):
        return self.output

    @property
    def output_shape(self):
        return self.shape

    @property
    def weights(self):
        return []

    trainable_weights = non_trainable_weights = variables = weights

    def count_params(self):
        return 0

    @property
    def sample_shape(self):
        return self.shape[1:]

    @property
    def batch_shape(self):
        return self.shape

    def get_config(self):
        """Keras 3.15's InputLayer config (its dtype is the plain name, not a policy)."""
        return {"batch_shape": self.shape, "dtype": "float32", "sparse": False, "ragged": False, "name": self.name,
                "optional": False}

    @classmethod
    def from_config(cls, config):
        from fastcnn.layers import _from_config  # noqa: PLC0415 (it lists every layer class)

        return _from_config.layer_from_config(cls, config)

    def __repr__(self):
        return f"<InputLayer name={self.name}, shape={self.shape}>"


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, sparse=None, optional=False,
          tensor=None):
    """The symbolic input of Keras's functional API (a KerasTensor of shape (batch_size, *shape));
    also accepted as the first entry of a Sequential model."""
    if tensor is not None:
        raise ValueError(f"fastcnn's Input does not take `tensor`. Received: tensor={tensor!r}")
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape,
                       sparse=sparse, optional=optional)
    return layer.output
