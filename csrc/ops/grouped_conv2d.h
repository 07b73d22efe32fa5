// Conv2D(groups=g) (Keras / TensorFlow): the input channels and the output channels are each
// split into g contiguous groups; output group j (channels [j*Co/g, (j+1)*Co/g)) convolves input
// group j (channels [j*Ci/g, (j+1)*Ci/g)) only:
//   output[n, oh, ow, co] = act(bias[co] + sum_{kh, kw, i < Ci/g}
//       input[n, ih, iw, (co / (Co/g)) * Ci/g + i] * kernel[kh, kw, i, co]),
// ih, iw as for Conv2D (ops/conv2d.h). The kernel is Keras's (kh, kw, Ci/g, Co): each output
// channel's filter sees its group's Ci/g input channels. groups == 1 is Conv2D; Ci/g == 1 is
// DepthwiseConv2D with depth_multiplier Co/g (the same kernel memory).
#pragma once

#include <cstdint>

#include "ops/activation.h"
#include "ops/conv2d.h"
#include "ops/depthwise_conv2d.h"

namespace fastcnn {

struct GroupedConv2DParams {
  // The whole layer's geometry: conv.input_channels and conv.output_channels are the totals.
  Conv2DParams conv;
  int64_t groups = 1;

  int64_t group_input_channels() const { return conv.input_channels / groups; }
  int64_t group_output_channels() const { return conv.output_channels / groups; }
  int64_t input_size() const { return conv.input_size(); }
  int64_t output_size() const { return conv.output_size(); }
  int64_t kernel_size() const {
    return conv.kernel_height * conv.kernel_width * group_input_channels() * conv.output_channels;
  }
  // One group as a dense Conv2D: Ci/g input and Co/g output channels, the same geometry.
  Conv2DParams group_params() const {
    Conv2DParams group = conv;
    group.input_channels = group_input_channels();
    group.output_channels = group_output_channels();
    return group;
  }
  // With one input channel per group: the same layer as DepthwiseConv2D(depth_multiplier=Co/g).
  DepthwiseConv2DParams as_depthwise() const;
};

// Throws std::invalid_argument naming the received value: groups <= 0, groups not dividing the
// input or the output channels, and everything make_conv2d_params refuses.
GroupedConv2DParams make_grouped_conv2d_params(int64_t batch, int64_t input_height, int64_t input_width,
                                               int64_t input_channels, int64_t output_channels, int64_t groups,
                                               int64_t kernel_height, int64_t kernel_width, int64_t stride_height,
                                               int64_t stride_width, int64_t dilation_height,
                                               int64_t dilation_width, Padding padding, bool use_bias,
                                               Activation activation);

}  // namespace fastcnn
