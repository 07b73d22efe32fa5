"""SeparableConv2D: a depthwise convolution (kernel (kh, kw, in, depth_multiplier), no bias) followed
by a 1x1 convolution (kernel (1, 1, in * depth_multiplier, filters)) with bias and activation, as
Keras's layer (weights in its order: depthwise_kernel, pointwise_kernel, bias)."""

from fastcnn import activations, constraints, initializers, regularizers
from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer
from fastcnn.layers.conv2d import check_window_input, window_output_shape


class SeparableConv2D(Layer):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1),
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if not arguments.is_integer(depth_multiplier) or depth_multiplier <= 0:
            raise ValueError("Invalid value for argument `depth_multiplier`. Expected a strictly positive value. "
                             f"Received depth_multiplier={depth_multiplier!r}.")
        if not arguments.is_integer(filters) or filters <= 0:
            raise ValueError("Invalid value for argument `filters`. Expected a strictly positive value. "
                             f"Received filters={filters!r}.")
        self.depth_multiplier = int(depth_multiplier)
        self.filters = int(filters)
        self.kernel_size = arguments.integer_tuple(kernel_size, 2, "kernel_size")
        self.strides = arguments.integer_tuple(strides, 2, "strides")
        self.padding = arguments.padding_mode(padding)
        self.data_format = arguments.channels_last(data_format)
        self.dilation_rate = arguments.integer_tuple(dilation_rate, 2, "dilation_rate")
        self.activation = activations.get(activation)
        self.use_bias = arguments.boolean(use_bias, "use_bias")
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.pointwise_constraint = constraints.get(pointwise_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def build(self, input_shape):
        check_window_input(self, input_shape)
        channels = input_shape[-1]
        self.depthwise_kernel = self.add_weight(
            self.kernel_size + (channels, self.depth_multiplier), self.depthwise_initializer, "depthwise_kernel",
            regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint)
        self.pointwise_kernel = self.add_weight(
            (1, 1, channels * self.depth_multiplier, self.filters), self.pointwise_initializer, "pointwise_kernel",
            regularizer=self.pointwise_regularizer, constraint=self.pointwise_constraint)
        self.bias = (self.add_weight((self.filters,), self.bias_initializer, "bias", regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint) if self.use_bias else None)
        self.built = True

    def compute_output_shape(self, input_shape):
        check_window_input(self, input_shape)
        return window_output_shape(self, input_shape, self.filters)

    def _regularization_factors(self):
        """The compiled step's (kernel, bias, activity, second kernel) factors: the depthwise kernel
        is the first kernel, the pointwise kernel the second."""
        found = (self.depthwise_regularizer, self.bias_regularizer, self.activity_regularizer,
                 self.pointwise_regularizer)
        if not any(found):
            return None
        factors = []
        for regularizer in found:
            factors.extend(regularizer._factors() if regularizer is not None else (0.0, 0.0))
        return tuple(factors)

    def _add_to_network(self, network):
        network.add_separable_conv2d(self.filters, self.depth_multiplier, self.kernel_size, self.strides,
                                     self.dilation_rate, self.padding, self.use_bias, self.activation)

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier, "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate, "activation": self.activation,
                "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
                "pointwise_constraint": constraints.serialize(self.pointwise_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}
