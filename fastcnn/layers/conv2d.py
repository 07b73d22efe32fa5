"""Conv2D (kernel (kh, kw, in / groups, out), grouped where groups > 1) and DepthwiseConv2D (kernel
(kh, kw, in, depth_multiplier)): 2D convolutions over NHWC inputs, optional bias, fused activation."""

from fastcnn import activations, constraints, initializers, regularizers
from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer


def _window_output(size, window, stride, dilation, padding):
    effective = (window - 1) * dilation + 1
    if padding == "same":
        return (size + stride - 1) // stride
    return (size - effective) // stride + 1


def check_window_input(layer, input_shape):
    """A 4-D input at least as large as `layer`'s (dilated) kernel where its padding is 'valid'."""
    if len(input_shape) != 4:
        raise ValueError(
            f'Input 0 of layer "{layer.name}" is incompatible with the layer: expected ndim=4, '
            f"found ndim={len(input_shape)}. Full shape received: {tuple(input_shape)}"
        )
    for axis, size, window, dilation in ((1, input_shape[1], layer.kernel_size[0], layer.dilation_rate[0]),
                                         (2, input_shape[2], layer.kernel_size[1], layer.dilation_rate[1])):
        effective = (window - 1) * dilation + 1
        if layer.padding == "valid" and size is not None and size < effective:
            raise ValueError(
                f"Layer {layer.name!r}: the kernel ({layer.kernel_size}, dilation {layer.dilation_rate}) is "
                f"larger than the input along axis {axis} with padding='valid'. Received input shape "
                f"{tuple(input_shape)}; use padding='same' or a smaller kernel_size."
            )


def window_output_shape(layer, input_shape, channels):
    """(batch, height, width, channels) of `layer`'s convolution window over `input_shape`."""
    height = _window_output(input_shape[1], layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0],
                            layer.padding)
    width = _window_output(input_shape[2], layer.kernel_size[1], layer.strides[1], layer.dilation_rate[1],
                           layer.padding)
    return (input_shape[0], height, width, channels)


class Conv2D(Layer):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = arguments.positive_integer(filters, "filters")
        self.kernel_size = arguments.integer_tuple(kernel_size, 2, "kernel_size")
        self.strides = arguments.integer_tuple(strides, 2, "strides")
        self.padding = arguments.padding_mode(padding)
        self.data_format = arguments.channels_last(data_format)
        self.dilation_rate = arguments.integer_tuple(dilation_rate, 2, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.groups = arguments.positive_integer(groups, "groups")
        if self.filters % self.groups != 0:
            raise ValueError("The number of filters must be evenly divisible by the number of groups. Received: "
                             f"groups={self.groups}, filters={self.filters}.")
        self.activation = activations.get(activation)
        self.use_bias = arguments.boolean(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def _check_input(self, input_shape):
        check_window_input(self, input_shape)

    def _check_groups(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels % self.groups != 0:
            raise ValueError("The number of input channels must be evenly divisible by the number of groups. "
                             f"Received groups={self.groups}, but the input has {channels} channels (full input shape "
                             f"is {tuple(input_shape)}).")

    def build(self, input_shape):
        self._check_input(input_shape)
        self._check_groups(input_shape)
        in_channels = input_shape[-1] // self.groups
        self.kernel = self.add_weight(self.kernel_size + (in_channels, self.filters), self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = (self.add_weight((self.filters,), self.bias_initializer, "bias", regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint) if self.use_bias else None)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_input(input_shape)
        self._check_groups(input_shape)
        return window_output_shape(self, input_shape, self.filters)

    def _add_to_network(self, network):
        network.add_conv2d(self.filters, self.kernel_size, self.strides, self.dilation_rate, self.padding,
                           self.use_bias, self.activation, self.groups)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": self.dilation_rate, "groups": self.groups, "activation": self.activation,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}


class DepthwiseConv2D(Conv2D):
    """Each input channel convolved with its own `depth_multiplier` filters: kernel
    (kh, kw, channels, depth_multiplier), output channels channels * depth_multiplier (channel
    c's filters give outputs c * depth_multiplier ... c * depth_multiplier + depth_multiplier - 1)."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, int) or depth_multiplier <= 0:
            raise ValueError("Invalid value for argument `depth_multiplier`. Expected a strictly positive value. "
                             f"Received depth_multiplier={depth_multiplier!r}.")
        # The kernel's initializer, regularizer and constraint are the depthwise ones (Keras's names).
        super().__init__(1, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         kernel_initializer=depthwise_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=depthwise_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, kernel_constraint=depthwise_constraint,
                         bias_constraint=bias_constraint, **kwargs)
        self.depth_multiplier = depth_multiplier

    def _check_groups(self, input_shape):
        pass

    def build(self, input_shape):
        self._check_input(input_shape)
        channels = input_shape[-1]
        self.kernel = self.add_weight(self.kernel_size + (channels, self.depth_multiplier), self.kernel_initializer,
                                      "kernel", regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = (self.add_weight((channels * self.depth_multiplier,), self.bias_initializer, "bias",
                                     regularizer=self.bias_regularizer, constraint=self.bias_constraint)
                     if self.use_bias else None)
        self.built = True

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = super().compute_output_shape(input_shape)
        return (batch, height, width, input_shape[-1] * self.depth_multiplier)

    def _add_to_network(self, network):
        network.add_depthwise_conv2d(self.depth_multiplier, self.kernel_size, self.strides, self.dilation_rate,
                                     self.padding, self.use_bias, self.activation)

    def get_config(self):
        return {**Layer.get_config(self), "depth_multiplier": self.depth_multiplier, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": self.dilation_rate, "activation": self.activation, "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "depthwise_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}
