// Conv2D: output[n, oh, ow, co] = act(bias[co] + sum_{kh, kw, ci}
//     input[n, oh*stride_h - pad_top + kh*dilation_h, ow*stride_w - pad_left + kw*dilation_w, ci]
//     * kernel[kh, kw, ci, co]),
// with out-of-range input positions read as zero. Kernel layout is Keras's (kh, kw, in, out).
#pragma once

#include <cstdint>
#include <vector>

#include "ops/activation.h"

namespace fastcnn {

struct Pool2DParams;  // ops/pooling.h

enum class Padding { valid, same };
Padding parse_padding(const char* name);

// Inference keeps a layer's packed (or Winograd-transformed) kernel between calls: an optimised
// forward kernel handed a cache whose key matches (the kernel's address, the weights' version, the
// packing's layout) reads it instead of packing again, and otherwise packs into it. Training
// passes none: there the weights change every step.
struct PackedKernelCache {
  const void* kernel = nullptr;  // the float kernel, or the int8 one of an int8 layer
  uint64_t version = 0;  // 0: empty
  int64_t layout = 0;    // which packing data holds (each kernel path and block width its own)
  std::vector<float> data;
  std::vector<int32_t> integer_data;  // the int8 kernels' packings (4 int8 or 2 int16 per word)
};
inline std::vector<float>& cache_storage(PackedKernelCache& cache, const float*) { return cache.data; }
inline std::vector<int32_t>& cache_storage(PackedKernelCache& cache, const int32_t*) { return cache.integer_data; }

struct Conv2DParams {
  int64_t batch = 0;
  int64_t input_height = 0, input_width = 0, input_channels = 0;
  int64_t output_height = 0, output_width = 0, output_channels = 0;
  int64_t kernel_height = 0, kernel_width = 0;
  int64_t stride_height = 1, stride_width = 1;
  int64_t dilation_height = 1, dilation_width = 1;
  int64_t pad_top = 0, pad_left = 0;
  bool use_bias = true;
  // Applied in the forward kernel's epilogue; must be elementwise (softmax is applied apart).
  Activation activation = Activation::linear;
  // Optimised tiers, 3x3 Winograd layers: whether the forward pass and the input gradient may take
  // the larger, faster F(4x4, 3x3) tile, whose rounding (2e-6 of the output's magnitude) is 4x
  // F(2x2, 3x3)'s. Inference takes it; a training step only in networks where no layer selects a
  // maximum (the plan's training_winograd_tile): elsewhere two nearly equal max-pooling inputs
  // would order differently than in TensorFlow that much more often, and a training run would
  // leave TensorFlow's trajectory (the gradient goes to the other one) more often.
  bool large_winograd_tile = true;
  // Optional (inference, groups of 1): a tensor of the output's shape added to the convolution
  // before the activation, output = activation(convolution + bias + residual) with the residual
  // added last, as a separate Add layer would (plan.cpp residual_add).
  const float* residual = nullptr;
  // Optional (inference): a per-output-channel affine applied after the activation,
  //   output = activation(convolution + bias + residual) * output_scale + output_shift,
  // as a BatchNormalization reading the activated output computes it in inference (plan.cpp
  // batch_norm_after_activation); both set or both null, output_channels floats each.
  const float* output_scale = nullptr;
  const float* output_shift = nullptr;
  // Optional (inference, groups of 1, no residual): the output is this max pooling of the
  // convolution's (after the activation and the output affine), for a pair that
  // conv2d_winograd_max_pool2d_fusable (ops/pooling.h) accepts; the convolution's own output is
  // never stored. Batch as the convolution's.
  const Pool2DParams* max_pool = nullptr;
  // conv2d_backward_input (groups of 1): add the result to input_gradient's contents instead of
  // overwriting them, input_gradient = old + (the gradient's own sum): a tensor that several layers
  // read takes each one's gradient in turn without a scratch copy (network.cpp).
  bool accumulate_input_gradient = false;
  // Optional (inference): where the forward kernel keeps its packed kernel, valid for weights of
  // version weights_version (0: no caching).
  PackedKernelCache* kernel_cache = nullptr;
  uint64_t weights_version = 0;

  int64_t input_size() const { return batch * input_height * input_width * input_channels; }
  int64_t output_size() const { return batch * output_height * output_width * output_channels; }
  int64_t kernel_size() const { return kernel_height * kernel_width * input_channels * output_channels; }
};

// Fills output size and padding the way TensorFlow does: 'valid' gives
// out = floor((in - effective_kernel) / stride) + 1; 'same' gives out = ceil(in / stride) with
// total padding max((out - 1) * stride + effective_kernel - in, 0), the odd row/column going to the
// bottom/right. effective_kernel = (kernel - 1) * dilation + 1. Throws std::invalid_argument
// naming the received value for anything non-positive, or a kernel larger than a 'valid' input.
Conv2DParams make_conv2d_params(int64_t batch, int64_t input_height, int64_t input_width,
                                int64_t input_channels, int64_t output_channels,
                                int64_t kernel_height, int64_t kernel_width, int64_t stride_height,
                                int64_t stride_width, int64_t dilation_height,
                                int64_t dilation_width, Padding padding, bool use_bias,
                                Activation activation);

// The optimised tiers run a convolution's forward pass and input gradient as 3x3 Winograd where it
// is 3x3, stride 1, undilated, with at least 16 input and 16 output channels (first layers' products
// are too short to pay for the transforms). The reference tier computes every layer directly.
bool conv2d_winograd_shape(const Conv2DParams& params);

}  // namespace fastcnn
