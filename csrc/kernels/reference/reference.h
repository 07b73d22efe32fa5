// Declarations of the reference kernels (naive loops, nothing clever): the executable
// specification every optimised kernel is tested against. Signatures as in kernels.h.
#pragma once

#include <vector>

#include "kernels/kernels.h"
#include "ops/activation_math.h"

namespace fastcnn::kernels::reference {

#include "kernels/declarations.inc"

// A convolution's epilogue for output element `index` of output channel `channel`, from its sum
// (bias included): the residual, the activation, then the output affine (ops/conv2d.h).
inline float conv2d_epilogue(const Conv2DParams& p, float sum, int64_t index, int64_t channel) {
  const float activated = activate(p.activation, p.residual != nullptr ? sum + p.residual[index] : sum);
  return p.output_scale != nullptr ? activated * p.output_scale[channel] + p.output_shift[channel] : activated;
}

// Conv2DParams::max_pool: convolve(params without it, buffer) writes the convolution, then its max
// pooling goes to `output`. Returns false, having done nothing, where max_pool is null.
template <typename Convolve>
bool convolve_then_max_pool(const Conv2DParams& p, float* output, Convolve&& convolve) {
  if (p.max_pool == nullptr) return false;
  Conv2DParams convolution_only = p;
  convolution_only.max_pool = nullptr;
  std::vector<float> convolution(static_cast<size_t>(p.output_size()));
  convolve(convolution_only, convolution.data());
  max_pool2d_forward(*p.max_pool, convolution.data(), output);
  return true;
}

}  // namespace fastcnn::kernels::reference
