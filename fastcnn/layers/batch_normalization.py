"""BatchNormalization over the channel axis (Keras 3 defaults: momentum 0.99, epsilon 1e-3).

In fit it normalises with the batch's mean and (biased) variance and updates the moving statistics
(moving = moving * momentum + batch * (1 - momentum)); in predict and evaluate, and whenever the
layer is frozen (``trainable = False``), it uses the moving statistics. Weights, in Keras's order:
gamma, beta (trainable), moving_mean, moving_variance (non-trainable). gamma and beta take Keras's
regularizers (penalties joining the loss) and constraints (applied after each update)."""

import numbers

from fastcnn import constraints, initializers, regularizers
from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer


def gamma_beta_regularization_factors(gamma, beta, activity=None):
    """Factors for the compiled step, which penalises a layer's first two parameter arrays: here
    gamma then beta (whichever exist, given as (regularizer, exists) pairs), in Keras's weight
    order, then the output (`activity`); None when nothing has a regularizer."""
    present = [regularizer for regularizer, exists in (gamma, beta) if exists]
    if not any(present) and activity is None:
        return None
    factors = []
    for regularizer in present + [None] * (2 - len(present)) + [activity]:
        factors.extend(regularizer._factors() if regularizer is not None else (0.0, 0.0))
    return tuple(factors)


class BatchNormalization(Layer):
    _call_takes_mask = True
    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, synchronized=False, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        if not arguments.is_integer(axis):
            raise ValueError(f"`axis` must be an integer (fastcnn normalises the channel axis, -1). Received: axis={axis!r}")
        self.axis = int(axis)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"`momentum` must be a number in [0, 1]. Received: momentum={momentum!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon > 0:
            raise ValueError(f"`epsilon` must be a positive number. Received: epsilon={epsilon!r}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = arguments.boolean(center, "center")
        self.scale = arguments.boolean(scale, "scale")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        if synchronized is not False:
            raise ValueError(f"fastcnn runs on one process: `synchronized=True` is not supported. "
                             f"Received: synchronized={synchronized!r}")
        # Batch renormalization is not implemented; renorm_momentum is kept for the config only
        # (Keras records it even when renorm is off).
        if renorm is not False:
            raise ValueError(f"fastcnn does not support batch renormalization. Received: renorm={renorm!r}")
        arguments.unsupported("renorm_clipping", renorm_clipping)
        if (isinstance(renorm_momentum, bool) or not isinstance(renorm_momentum, numbers.Real)
                or not 0.0 <= renorm_momentum <= 1.0):
            raise ValueError(f"`renorm_momentum` must be a number in [0, 1]. Received: renorm_momentum={renorm_momentum!r}")
        self.renorm_momentum = float(renorm_momentum)

    def _check_axis(self, input_shape):
        rank = len(input_shape)
        if self.axis not in (-1, rank - 1):
            raise ValueError(
                f"Layer {self.name!r}: fastcnn's BatchNormalization normalises the channel axis only "
                f"(axis=-1 or {rank - 1} for inputs of shape {tuple(input_shape)}). Received: axis={self.axis}"
            )

    def build(self, input_shape):
        self._check_axis(input_shape)
        channels = (input_shape[-1],)
        self.gamma = (self.add_weight(channels, self.gamma_initializer, "gamma", regularizer=self.gamma_regularizer,
                                      constraint=self.gamma_constraint) if self.scale else None)
        self.beta = (self.add_weight(channels, self.beta_initializer, "beta", regularizer=self.beta_regularizer,
                                     constraint=self.beta_constraint) if self.center else None)
        self.moving_mean = self.add_weight(channels, self.moving_mean_initializer, "moving_mean", trainable=False)
        self.moving_variance = self.add_weight(channels, self.moving_variance_initializer, "moving_variance",
                                               trainable=False)
        self.built = True

    def _regularization_factors(self):
        return gamma_beta_regularization_factors((self.gamma_regularizer, self.scale),
                                                 (self.beta_regularizer, self.center), self.activity_regularizer)

    def compute_output_shape(self, input_shape):
        self._check_axis(input_shape)
        return tuple(input_shape)

    def _add_to_network(self, network):
        network.add_batch_norm(self.momentum, self.epsilon, self.center, self.scale)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint),
                "synchronized": False, "renorm": False, "renorm_clipping": None,
                "renorm_momentum": self.renorm_momentum}
