"""ELU(alpha=1.0): y = x for x > 0, alpha * (exp(x) - 1) otherwise (Keras's ELU layer)."""

import numbers

from fastcnn.layers.base import Layer


class ELU(Layer):
    _built_at_construction = True
    _keras_build_config = False

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or alpha != alpha:
            raise ValueError(f"`alpha` of an ELU layer must be a number. Received: alpha={alpha!r}")
        self.alpha = alpha

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _add_to_network(self, network):
        network.add_elu(float(self.alpha))

    def get_config(self):
        # Keras's order: its constructor arguments (name, alpha), then trainable and dtype.
        base = super().get_config()
        return {"name": base["name"], "alpha": self.alpha, **{k: v for k, v in base.items() if k != "name"}}
