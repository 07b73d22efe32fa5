// DepthwiseConv2D (Keras): each input channel c is convolved with its own depth_multiplier
// filters; output channel c * depth_multiplier + m is
//   output[n, oh, ow, c*dm + m] = act(bias[c*dm + m] + sum_{kh, kw}
//       input[n, oh*stride_h - pad_top + kh*dilation_h, ow*stride_w - pad_left + kw*dilation_w, c]
//       * kernel[kh, kw, c, m]),
// out-of-range input positions read as zero. Kernel layout is Keras's (kh, kw, channels,
// depth_multiplier), which in memory is (kh, kw, channels * depth_multiplier): the output channels
// in order. Geometry (output size, padding) follows TensorFlow exactly as Conv2D's does.
#pragma once

#include <cstdint>

#include "ops/activation.h"
#include "ops/conv2d.h"

namespace fastcnn {

struct DepthwiseConv2DParams {
  int64_t batch = 0;
  int64_t input_height = 0, input_width = 0, channels = 0;
  int64_t depth_multiplier = 1;
  int64_t output_height = 0, output_width = 0;
  int64_t kernel_height = 0, kernel_width = 0;
  int64_t stride_height = 1, stride_width = 1;
  int64_t dilation_height = 1, dilation_width = 1;
  int64_t pad_top = 0, pad_left = 0;
  bool use_bias = true;
  // Applied in the forward kernel's epilogue; must be elementwise. As for Conv2D, the backward
  // kernels take the gradient of the pre-activation output.
  Activation activation = Activation::linear;

  int64_t output_channels() const { return channels * depth_multiplier; }
  int64_t input_size() const { return batch * input_height * input_width * channels; }
  int64_t output_size() const { return batch * output_height * output_width * output_channels(); }
  int64_t kernel_size() const { return kernel_height * kernel_width * output_channels(); }
};

// Output size and padding from make_conv2d_params (TensorFlow's rules, see ops/conv2d.h).
// Throws std::invalid_argument naming the received value: depth_multiplier <= 0, non-positive
// sizes, strides or dilations, a kernel larger than a 'valid' input, a non-elementwise activation.
DepthwiseConv2DParams make_depthwise_conv2d_params(int64_t batch, int64_t input_height, int64_t input_width,
                                                   int64_t channels, int64_t depth_multiplier,
                                                   int64_t kernel_height, int64_t kernel_width,
                                                   int64_t stride_height, int64_t stride_width,
                                                   int64_t dilation_height, int64_t dilation_width,
                                                   Padding padding, bool use_bias, Activation activation);

}  // namespace fastcnn
