// Dense: output[n, o] = act(bias[o] + sum_i input[n, i] * kernel[i, o]); kernel is (in, out).
#pragma once

#include <cstdint>

#include "ops/activation.h"
#include "ops/conv2d.h"

namespace fastcnn {

struct DenseParams {
  int64_t batch = 0;
  int64_t input_units = 0;
  int64_t output_units = 0;
  bool use_bias = true;
  Activation activation = Activation::linear;  // elementwise only, as for Conv2D
  PackedKernelCache* kernel_cache = nullptr;   // as Conv2DParams's (inference only)
  uint64_t weights_version = 0;
};

DenseParams make_dense_params(int64_t batch, int64_t input_units, int64_t output_units,
                              bool use_bias, Activation activation);

// A dense layer is a 1x1 convolution over a 1 x batch image: the optimised kernels reuse the
// convolution's register-blocked micro-kernel through this mapping.
Conv2DParams dense_as_conv2d(const DenseParams& params);

}  // namespace fastcnn
