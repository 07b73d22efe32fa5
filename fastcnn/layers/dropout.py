"""Dropout (inverted): in training, zeroes each value with probability `rate` and scales the rest by
1/(1 - rate); identity in predict and evaluate."""

import numbers

import numpy as np

from fastcnn import _core, _random
from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer


class Dropout(Layer):
    _built_at_construction = True
    _keras_build_config = False

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError("Invalid value received for argument `rate`. Expected a float value between 0 "
                             f"and 1 (1 excluded). Received: rate={rate!r}")
        arguments.unsupported("noise_shape", noise_shape)
        if seed is not None and not arguments.is_integer(seed):
            raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
        self.rate = float(rate)
        self.seed = seed
        self._eager_calls = 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _add_to_network(self, network):
        network.add_dropout(self.rate, -1 if self.seed is None else int(self.seed))

    def _eager_call(self, inputs, training):
        if not training or self.rate == 0:
            return super()._eager_call(inputs, False)
        x = np.asarray(inputs)
        if x.dtype.kind not in "iubf":
            raise TypeError(f"Layer {self.name!r} takes numeric arrays. Received dtype={x.dtype}")
        if self.seed is None:
            seed = _random.draw_seed()
        else:
            seed = (int(self.seed) * 0x9E3779B97F4A7C15 + self._eager_calls) % 2**64
            self._eager_calls += 1
        return _core.ops.dropout_forward(np.ascontiguousarray(x, dtype=np.float32), self.rate, seed)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": None}
