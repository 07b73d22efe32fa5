"""PReLU: y = x for x > 0, alpha * x otherwise, with a trainable alpha of the input's shape where
each of `shared_axes` (Keras axes: 1 is the first after the batch) has size 1."""

from fastcnn import constraints, initializers, regularizers
from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer, runtime_flags


class PReLU(Layer):
    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if not all(arguments.is_integer(axis) and axis >= 1 for axis in axes):
                raise ValueError("`shared_axes` must be None or axes >= 1 (axis 0 is the batch). "
                                 f"Received: shared_axes={shared_axes!r}")
            self.shared_axes = [int(axis) for axis in axes]

    def _alpha_shape(self, sample):
        shape = list(sample)
        for axis in self.shared_axes or []:
            if axis > len(sample):
                raise ValueError(f"Layer {self.name!r}: `shared_axes` {self.shared_axes} name an axis beyond "
                                 f"inputs of shape {(None,) + tuple(sample)}")
            shape[axis - 1] = 1
        return tuple(shape)

    def build(self, input_shape):
        self.alpha = self.add_weight(self._alpha_shape(tuple(input_shape)[1:]), self.alpha_initializer, "alpha",
                                     regularizer=self.alpha_regularizer, constraint=self.alpha_constraint)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._alpha_shape(tuple(input_shape)[1:])
        return tuple(input_shape)

    def _add_to_network(self, network):
        alpha_shape = self._alpha_shape(self._input_sample_shape)
        network.add_prelu(list(alpha_shape), *runtime_flags(size == 1 for size in alpha_shape))

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": constraints.serialize(self.alpha_constraint),
                "shared_axes": self.shared_axes}
