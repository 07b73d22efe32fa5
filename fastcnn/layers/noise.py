"""GaussianNoise(stddev): y = x + N(0, stddev^2) noise; GaussianDropout(rate): y = x * N(1, rate/(1 - rate))
noise. Both in training only (identity in predict and evaluate)."""

import numbers

from fastcnn.layers.dropout import TrainingNoise, check_rate


class GaussianNoise(TrainingNoise):
    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, numbers.Real) or not 0 <= stddev <= 1:
            raise ValueError("Invalid value received for argument `stddev`. Expected a float value between 0 "
                             f"and 1. Received: stddev={stddev!r}")
        self.stddev = stddev

    def _add_to_network(self, network):
        network.add_noise("GaussianNoise", stddev=float(self.stddev), seed=self._runtime_seed())

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(TrainingNoise):
    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_rate(rate)  # rate 1 would give noise of infinite variance
        self.rate = rate

    def _add_to_network(self, network):
        network.add_noise("GaussianDropout", rate=float(self.rate), seed=self._runtime_seed())

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
