"""The two layers Keras defines inside keras.applications.convnext (not in keras.layers), which
fastcnn.applications.convnext builds and configs name under that module: LayerScale and
StochasticDepth."""

import math

from fastcnn import initializers
from fastcnn.layers.base import Layer
from fastcnn.layers.dropout import Dropout

# Keras serializes the two layers it defines in convnext.py under that module.
KERAS_MODULE = "keras.src.applications.convnext"


class LayerScale(Layer):
    """Keras's ConvNeXt LayerScale (Touvron et al., arXiv 2103.17239): y = x * gamma, with gamma of
    shape (projection_dim,) starting at init_values."""

    _keras_module = KERAS_MODULE
    _keras_registered_name = "LayerScale"

    def __init__(self, init_values, projection_dim, **kwargs):
        super().__init__(**kwargs)
        if isinstance(projection_dim, bool) or not isinstance(projection_dim, int) or projection_dim <= 0:
            raise ValueError(f"`projection_dim` must be a positive integer. Received: projection_dim={projection_dim!r}")
        if isinstance(init_values, bool) or not isinstance(init_values, (int, float)) or not math.isfinite(init_values):
            raise ValueError(f"`init_values` must be a finite number. Received: init_values={init_values!r}")
        self.init_values = init_values
        self.projection_dim = projection_dim

    def build(self, input_shape):
        if input_shape[-1] != self.projection_dim:
            raise ValueError(f"Layer {self.name!r} scales {self.projection_dim} channels (projection_dim). Received: "
                             f"input_shape={tuple(input_shape)}")
        self.gamma = self.add_weight(shape=(self.projection_dim,),
                                     initializer=initializers.Constant(self.init_values),
                                     name="gamma")
        self.built = True

    def _add_to_network(self, network):
        network.add_layer_scale()

    def get_config(self):
        return {**super().get_config(), "init_values": self.init_values, "projection_dim": self.projection_dim}


class StochasticDepth(Layer):
    """Keras's ConvNeXt StochasticDepth: in training, the whole residual branch of a batch is kept
    with probability 1 - drop_path_rate and scaled by 1 / (1 - drop_path_rate) (Keras draws one
    value per sample); at inference the identity. fastcnn computes it as Dropout with one draw
    per sample (noise_shape (None, 1, ..., 1)), which is the same distribution."""

    _built_at_construction = True
    _keras_module = KERAS_MODULE
    _keras_registered_name = "StochasticDepth"

    def __init__(self, drop_path_rate, **kwargs):
        super().__init__(**kwargs)
        if isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, (int, float)) or \
                not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"`drop_path_rate` must be in [0, 1). Received: drop_path_rate={drop_path_rate}")
        self.drop_path_rate = drop_path_rate
        self._dropout = None

    def _build_for(self, sample):
        # One draw per sample whatever the rank; named, so that it takes no automatic Dropout name.
        self._dropout = Dropout(self.drop_path_rate, noise_shape=(None,) + (1,) * len(sample),
                                       name=f"{self.name}_dropout")
        self._dropout._build_for(sample)
        return super()._build_for(sample)

    def _add_to_network(self, network):
        self._dropout._add_to_network(network)

    def get_config(self):
        return {**super().get_config(), "drop_path_rate": self.drop_path_rate}
