"""Dropout (inverted): in training, zeroes each value with probability `rate` and scales the rest by
1/(1 - rate); identity in predict and evaluate. With `noise_shape`, one draw serves every position
along the axes where the noise shape is 1 (SpatialDropout2D: whole channels per sample)."""

import numbers

import numpy as np

from fastcnn import _core, _random
from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer, runtime_flags


def check_seed(seed):
    if seed is not None and not arguments.is_integer(seed):
        raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
    return seed


class TrainingNoise(Layer):
    """Layers whose noise is drawn in training only. With a seed, each eager training call draws from
    the seed and a count of such calls (a fixed sequence, as Keras's SeedGenerator); without one,
    from fastcnn's random state. In a model, the runtime layer keeps that count itself."""

    _built_at_construction = True
    _keras_build_config = False

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = check_seed(seed)
        self._eager_calls = 0
        self._eager_seed_override = None

    def _eager_seed(self):
        if self.seed is None:
            return _random.draw_seed()
        seed = (int(self.seed) * 0x9E3779B97F4A7C15 + self._eager_calls) % 2**64
        self._eager_calls += 1
        return seed

    def _runtime_seed(self):
        """The seed the runtime layer takes: -1 follows each step's seed."""
        if self._eager_seed_override is not None:
            return self._eager_seed_override
        return -1 if self.seed is None else int(self.seed)

    def _eager_call(self, inputs, training):
        if training and self.seed is not None:
            self._eager_seed_override = self._eager_seed() % 2**63
            try:
                return super()._eager_call(inputs, training)
            finally:
                self._eager_seed_override = None
        return super()._eager_call(inputs, training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


def check_rate(rate):
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise ValueError("Invalid value received for argument `rate`. Expected a float value between 0 "
                         f"and 1 (1 excluded). Received: rate={rate!r}")
    return float(rate)


def _noise_shape(noise_shape):
    """Keras's checks of `noise_shape`: None, or a tuple of positive ints and Nones."""
    if noise_shape is None:
        return None
    if isinstance(noise_shape, str):
        raise ValueError("Invalid value received for argument `noise_shape`. Expected a tuple or list of "
                         f"integers. Received: noise_shape={noise_shape}")
    try:
        noise_shape = tuple(noise_shape)
    except TypeError:
        raise ValueError("Invalid value received for argument `noise_shape`. Expected an iterable of integers "
                         f"(e.g., a tuple or list). Received: noise_shape={noise_shape!r}") from None
    for i, dim in enumerate(noise_shape):
        if dim is not None and (not arguments.is_integer(dim) or dim <= 0):
            raise ValueError("Invalid value received for argument `noise_shape`. Expected all dimensions to be "
                             f"positive integers or None. Received: noise_shape={noise_shape!r} (index {i})")
    return tuple(None if dim is None else int(dim) for dim in noise_shape)


class Dropout(TrainingNoise):
    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = check_rate(rate)
        self.noise_shape = _noise_shape(noise_shape)

    def _shared_axes(self, sample):
        """(batch, height, width, channels) flags of the runtime: True where one draw is shared."""
        if self.noise_shape is None:
            return None
        if len(self.noise_shape) != len(sample) + 1:
            raise ValueError(f"Layer {self.name!r}: `noise_shape` {self.noise_shape} must have the rank of its "
                             f"inputs, {(None,) + tuple(sample)}")
        for dim, size in zip(self.noise_shape[1:], sample):
            if dim not in (None, 1, size):
                raise ValueError(f"Layer {self.name!r}: `noise_shape` {self.noise_shape} does not broadcast to "
                                 f"inputs of shape {(None,) + tuple(sample)}")
        # An integer batch entry other than 1 can only be the batch size: one draw per sample.
        return (self.noise_shape[0] == 1,) + runtime_flags(dim == 1 for dim in self.noise_shape[1:])

    def compute_output_shape(self, input_shape):
        self._shared_axes(tuple(input_shape)[1:])
        return tuple(input_shape)

    def _add_to_network(self, network):
        shared = self._shared_axes(self._input_sample_shape)
        if shared is None:
            network.add_dropout(self.rate, self._runtime_seed())
        else:
            network.add_noise(type(self).__name__, rate=self.rate, shared=shared, seed=self._runtime_seed())

    def _eager_call(self, inputs, training):
        if self.noise_shape is not None:
            return super()._eager_call(inputs, training)
        if not training or self.rate == 0:
            return Layer._eager_call(self, inputs, False)
        x = np.asarray(inputs)
        if x.dtype.kind not in "iubf":
            raise TypeError(f"Layer {self.name!r} takes numeric arrays. Received dtype={x.dtype}")
        return _core.ops.dropout_forward(np.ascontiguousarray(x, dtype=np.float32), self.rate, self._eager_seed())

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape}


class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps: one draw per (sample, channel), shared over height and width."""

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)
        self.data_format = arguments.channels_last(data_format)
        self.noise_shape = (None, 1, 1, None)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Input 0 of layer {self.name!r} is incompatible with the layer: expected ndim=4, "
                             f"found ndim={len(input_shape)}. Full shape received: {tuple(input_shape)}")
        return tuple(input_shape)

    def get_config(self):
        # Keras's BaseSpatialDropout lists these keys only, its dtype by name.
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": "float32",
                "data_format": self.data_format}
