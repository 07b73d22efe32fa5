// Checks and geometry of DepthwiseConv2D and grouped Conv2D. The output size and padding come
// from make_conv2d_params (TensorFlow's rules live there once); what is checked here is what only
// these ops have: the depth multiplier and the groups.
#include <stdexcept>
#include <string>

#include "ops/checked.h"
#include "ops/depthwise_conv2d.h"
#include "ops/grouped_conv2d.h"

namespace fastcnn {

DepthwiseConv2DParams make_depthwise_conv2d_params(int64_t batch, int64_t input_height, int64_t input_width,
                                                   int64_t channels, int64_t depth_multiplier,
                                                   int64_t kernel_height, int64_t kernel_width,
                                                   int64_t stride_height, int64_t stride_width,
                                                   int64_t dilation_height, int64_t dilation_width,
                                                   Padding padding, bool use_bias, Activation activation) {
  if (depth_multiplier <= 0) {
    throw std::invalid_argument("`depth_multiplier` must be a positive integer. Received: depth_multiplier=" +
                                std::to_string(depth_multiplier));
  }
  if (!is_elementwise(activation)) {
    throw std::invalid_argument(std::string("DepthwiseConv2D kernels fuse elementwise activations only. Received: "
                                            "activation=") + activation_name(activation));
  }
  // As a Conv2D with depth_multiplier output channels: the same geometry, and its kernel check
  // (kh * kw * channels * depth_multiplier) is exactly the depthwise kernel's size.
  const Conv2DParams conv =
      make_conv2d_params(batch, input_height, input_width, channels, depth_multiplier, kernel_height, kernel_width,
                         stride_height, stride_width, dilation_height, dilation_width, padding, use_bias, activation);
  const int64_t output_channels = checked_multiply(channels, depth_multiplier, "DepthwiseConv2D output channels");
  checked_product({batch, conv.output_height, conv.output_width, output_channels}, "DepthwiseConv2D output");
  DepthwiseConv2DParams params;
  params.batch = batch;
  params.input_height = input_height;
  params.input_width = input_width;
  params.channels = channels;
  params.depth_multiplier = depth_multiplier;
  params.output_height = conv.output_height;
  params.output_width = conv.output_width;
  params.kernel_height = kernel_height;
  params.kernel_width = kernel_width;
  params.stride_height = stride_height;
  params.stride_width = stride_width;
  params.dilation_height = dilation_height;
  params.dilation_width = dilation_width;
  params.pad_top = conv.pad_top;
  params.pad_left = conv.pad_left;
  params.use_bias = use_bias;
  params.activation = activation;
  return params;
}

DepthwiseConv2DParams GroupedConv2DParams::as_depthwise() const {
  DepthwiseConv2DParams params;
  params.batch = conv.batch;
  params.input_height = conv.input_height;
  params.input_width = conv.input_width;
  params.channels = conv.input_channels;
  params.depth_multiplier = conv.output_channels / groups;
  params.output_height = conv.output_height;
  params.output_width = conv.output_width;
  params.kernel_height = conv.kernel_height;
  params.kernel_width = conv.kernel_width;
  params.stride_height = conv.stride_height;
  params.stride_width = conv.stride_width;
  params.dilation_height = conv.dilation_height;
  params.dilation_width = conv.dilation_width;
  params.pad_top = conv.pad_top;
  params.pad_left = conv.pad_left;
  params.use_bias = conv.use_bias;
  params.activation = conv.activation;
  return params;
}

GroupedConv2DParams make_grouped_conv2d_params(int64_t batch, int64_t input_height, int64_t input_width,
                                               int64_t input_channels, int64_t output_channels, int64_t groups,
                                               int64_t kernel_height, int64_t kernel_width, int64_t stride_height,
                                               int64_t stride_width, int64_t dilation_height,
                                               int64_t dilation_width, Padding padding, bool use_bias,
                                               Activation activation) {
  if (groups <= 0) {
    throw std::invalid_argument("`groups` must be a positive integer. Received: groups=" + std::to_string(groups));
  }
  if (input_channels > 0 && input_channels % groups != 0) {
    throw std::invalid_argument("The number of input channels must be evenly divisible by the number of groups. "
                                "Received: groups=" + std::to_string(groups) + ", but the input has " +
                                std::to_string(input_channels) + " channels");
  }
  if (output_channels > 0 && output_channels % groups != 0) {
    throw std::invalid_argument("The number of filters must be evenly divisible by the number of groups. "
                                "Received: groups=" + std::to_string(groups) + ", filters=" +
                                std::to_string(output_channels));
  }
  GroupedConv2DParams params;
  // make_conv2d_params checks the kernel as (kh, kw, Ci, Co), at least the grouped kernel's size.
  params.conv = make_conv2d_params(batch, input_height, input_width, input_channels, output_channels, kernel_height,
                                   kernel_width, stride_height, stride_width, dilation_height, dilation_width, padding,
                                   use_bias, activation);
  params.groups = groups;
  return params;
}

}  // namespace fastcnn
