"""LayerNormalization and GroupNormalization: per-sample statistics (the same in fit and predict).

LayerNormalization normalizes each sample over ``axis`` (default -1, the channels, as ConvNeXt
does; any set of sample axes works) and scales and shifts by gamma and beta spanning those axes.
GroupNormalization splits the channels into ``groups`` contiguous groups, normalizes each over the
image and its channels, and scales and shifts per channel. Formulas: csrc/ops/normalization.h.
Weights, in Keras's order: gamma (``scale``), beta (``center``), both trainable, with Keras's
regularizers and constraints."""

import numbers
import warnings

from fastcnn import constraints, initializers, regularizers
from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer
from fastcnn.layers.batch_normalization import gamma_beta_regularization_factors


def _epsilon(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"`epsilon` must be a positive number. Received: epsilon={value!r}")
    return value


def _check_axes_in_bounds(axes, input_shape, received):
    """Keras's out-of-bounds error (its layers' compute_output_shape)."""
    for axis in axes:
        if axis >= len(input_shape) or axis < -len(input_shape):
            raise ValueError(f"Axis {axis} is out of bounds for input shape {tuple(input_shape)}. "
                             f"Received: axis={received}")


def _runtime_axis(axis, rank):
    """Position in the runtime's (height, width, channels) of sample axis `axis` (1 <= axis < rank)."""
    return 3 - (rank - 1) + (axis - 1)


class _AffineNormalization(Layer):
    """What LayerNormalization and GroupNormalization share: epsilon, center, scale and gamma / beta
    with their initializers, regularizers and constraints."""

    def __init__(self, epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                 gamma_regularizer, beta_constraint, gamma_constraint, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = _epsilon(epsilon)
        self.center = arguments.boolean(center, "center")
        self.scale = arguments.boolean(scale, "scale")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.gamma = None
        self.beta = None

    def _add_affine_weights(self, shape, with_gamma, with_beta):
        self.gamma = (self.add_weight(shape, self.gamma_initializer, "gamma", regularizer=self.gamma_regularizer,
                                      constraint=self.gamma_constraint) if with_gamma else None)
        self.beta = (self.add_weight(shape, self.beta_initializer, "beta", regularizer=self.beta_regularizer,
                                     constraint=self.beta_constraint) if with_beta else None)

    def _reset_build(self):
        super()._reset_build()
        self.gamma = None
        self.beta = None

    def _regularization_factors(self):
        return gamma_beta_regularization_factors((self.gamma_regularizer, self.gamma is not None),
                                                 (self.beta_regularizer, self.beta is not None),
                                                 self.activity_regularizer)

    def _affine_config(self):
        return {"beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}


class LayerNormalization(_AffineNormalization):
    """Normalizes each sample over ``axis`` (an int or a list of sample axes; Keras 3's defaults:
    ``epsilon=1e-3``, ``center=True``, ``scale=True``). gamma and beta have the normalized axes'
    sizes. ``rms_scaling=True`` (deprecated in Keras, with its warning) scales by 1/sqrt(variance +
    epsilon) without centering and has gamma only."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, *, rms_scaling=False, **kwargs):
        rms_scaling = arguments.boolean(rms_scaling, "rms_scaling")
        if rms_scaling:
            warnings.warn("You passed `rms_scaling=True`, which is deprecated. This argument incorrectly scales the "
                          "input by the variance, not the root mean square. To correctly use RMS Normalization, "
                          "please use `keras.layers.RMSNormalization` instead.", stacklevel=2)
        super().__init__(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                         gamma_regularizer, beta_constraint, gamma_constraint, **kwargs)
        if isinstance(axis, (list, tuple)) and all(arguments.is_integer(a) for a in axis):
            self.axis = [int(a) for a in axis]
        elif arguments.is_integer(axis):
            self.axis = int(axis)
        else:
            raise TypeError(f"Expected an int or a list/tuple of ints for the argument 'axis', but received: {axis!r}")
        self.rms_scaling = rms_scaling

    def _normalized_axes(self, input_shape):
        """The normalized axes as positions 1 .. rank-1, in Keras's (sorted) weight order; raises
        Keras's error for an axis out of bounds and refuses the batch axis and repeats."""
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        _check_axes_in_bounds(axes, input_shape, self.axis)
        rank = len(input_shape)
        if not axes:
            raise ValueError(f"Layer {self.name!r}: LayerNormalization needs at least one axis. Received: axis={self.axis}")
        positions = [axis % rank for axis in sorted(axes)]
        if 0 in positions:
            raise ValueError(f"Layer {self.name!r}: LayerNormalization normalizes within each sample; the batch axis "
                             f"(0) cannot be normalized. Received: axis={self.axis} for inputs of shape "
                             f"{tuple(input_shape)}")
        if len(set(positions)) != len(positions):
            raise ValueError(f"Layer {self.name!r}: each axis may be normalized once. Received: axis={self.axis} for "
                             f"inputs of shape {tuple(input_shape)}")
        if positions != sorted(positions):
            # Keras sorts the values as given, so mixing signs orders gamma's axes apart from the data's.
            raise ValueError(f"Layer {self.name!r}: give the axes all negative or all non-negative, so that "
                             f"gamma's axes follow the input's order. Received: axis={self.axis}")
        return positions

    def _affine_weights(self):
        """(gamma, beta): which weights exist (Keras: gamma with scale or rms_scaling, beta with
        center unless rms_scaling)."""
        return self.scale or self.rms_scaling, self.center and not self.rms_scaling

    def build(self, input_shape):
        positions = self._normalized_axes(input_shape)
        shape = tuple(input_shape[position] for position in positions)
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]  # as Keras's build
        self._add_affine_weights(shape, *self._affine_weights())
        flags = [False, False, False]
        for position in positions:
            flags[_runtime_axis(position, len(input_shape))] = True
        self._runtime_axes = tuple(flags)
        self.built = True

    def compute_output_shape(self, input_shape):
        _check_axes_in_bounds(self.axis if isinstance(self.axis, list) else [self.axis], input_shape, self.axis)
        return tuple(input_shape)

    def _add_to_network(self, network):
        network.add_layer_norm(self._runtime_axes, self.epsilon, self.gamma is not None, self.beta is not None,
                               self.rms_scaling)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": self.rms_scaling, **self._affine_config()}


class GroupNormalization(_AffineNormalization):
    """Normalizes each sample's channel groups (``groups`` contiguous groups of channels, each over
    the whole image; ``groups=-1``: one per channel, instance normalization). gamma and beta are per
    channel. fastcnn normalizes the channel axis (``axis=-1``)."""

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        if not arguments.is_integer(groups) or (groups <= 0 and groups != -1):
            raise ValueError("Received an invalid value for argument `groups`, expected a positive integer (or `-1` "
                             f"for instance normalization). Received: groups={groups!r}")
        if not arguments.is_integer(axis):
            raise ValueError(f"`axis` must be an integer (fastcnn normalizes groups of the channel axis, -1). "
                             f"Received: axis={axis!r}")
        super().__init__(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                         gamma_regularizer, beta_constraint, gamma_constraint, **kwargs)
        self.groups = int(groups)
        self.axis = int(axis)

    def _channels(self, input_shape):
        _check_axes_in_bounds([self.axis], input_shape, self.axis)
        if self.axis % len(input_shape) != len(input_shape) - 1:
            raise ValueError(f"Layer {self.name!r}: fastcnn's GroupNormalization groups the channel axis only "
                             f"(axis=-1 or {len(input_shape) - 1} for inputs of shape {tuple(input_shape)}). "
                             f"Received: axis={self.axis}")
        return input_shape[-1]

    def _check_groups(self, channels):
        """Keras's errors for groups against the channels."""
        if channels < self.groups:
            raise ValueError(f"Number of groups ({self.groups}) cannot be more than the number of channels "
                             f"({channels}).")
        if channels % self.groups != 0:
            raise ValueError(f"Number of groups ({self.groups}) must be a multiple of the number of channels "
                             f"({channels}).")

    def build(self, input_shape):
        channels = self._channels(input_shape)
        if self.groups == -1:
            self.groups = channels  # as Keras's build (the config then records the count)
        self._check_groups(channels)
        self._add_affine_weights((channels,), self.scale, self.center)
        self.built = True

    def compute_output_shape(self, input_shape):
        channels = self._channels(input_shape)
        if self.groups != -1:
            self._check_groups(channels)
        return tuple(input_shape)

    def _add_to_network(self, network):
        network.add_group_norm(self.groups, self.epsilon, self.gamma is not None, self.beta is not None)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, **self._affine_config()}
