// Int8 inference (post-training quantization, fastcnn/models/_quantization.py). Symmetric quantization:
//   q = clamp(round_half_even(x * inverse_scale), -127, 127),   x ~ q * scale,
// so 0.0 maps to q = 0 exactly (zero padding stays zero). Weights have one scale per output
// channel, activations one per tensor (calibrated). A quantized Conv2D / Dense then computes
//   accumulators[m, c] = sum_k a[m, k] * w[k, c]                       (int8 x int8 -> int32)
//   output[m, c] = act(accumulators[m, c] * column_scales[c] + bias[c]), column_scales[c] =
//                  input_scale * weight_scale[c].
// Conv2D's int8 kernel takes Conv2DParams (its use_bias and activation are ignored: the epilogue
// is dequantize_int32); Dense is the 1x1 convolution of dense_as_conv2d. A quantized
// DepthwiseConv2D is the same with depth kernel_height * kernel_width and one column per output
// channel c * depth_multiplier + m (its kernel's (kh, kw, channels, depth_multiplier) layout read as
// a depth x columns matrix).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ops/activation.h"
#include "ops/conv2d.h"
#include "ops/depthwise_conv2d.h"

namespace fastcnn {

// The largest |product| of two int8 values is 128 * 128 = 2^14, so a dot product of up to
// 2^31 / 2^14 - 1 terms cannot overflow its int32 accumulator whatever the values.
constexpr int64_t kInt8MaxDepth = (int64_t{1} << 17) - 1;

// The dot-product length of an int8 convolution: kernel_height * kernel_width * input_channels.
inline int64_t int8_depth(const Conv2DParams& params) {
  return params.kernel_height * params.kernel_width * params.input_channels;
}

// A depthwise convolution's: kernel_height * kernel_width (one input channel per output).
inline int64_t int8_depth(const DepthwiseConv2DParams& params) { return params.kernel_height * params.kernel_width; }

// Throws std::invalid_argument when a convolution's dot products could overflow int32.
template <typename Params>
void check_int8_depth(const Params& params) {
  const int64_t depth = int8_depth(params);
  if (depth > kInt8MaxDepth) {
    throw std::invalid_argument("int8 quantization supports dot products of at most " +
                                std::to_string(kInt8MaxDepth) + " terms (" +
                                (std::is_same_v<Params, Conv2DParams> ? "kernel_height * kernel_width * input_channels"
                                                                      : "kernel_height * kernel_width") +
                                "). Received: " + std::to_string(depth));
  }
}

// The dequantizing epilogue over `rows` rows of `columns` accumulators.
struct DequantizeParams {
  int64_t rows = 0, columns = 0;
  Activation activation = Activation::linear;  // elementwise only (softmax is applied apart)
};

}  // namespace fastcnn
