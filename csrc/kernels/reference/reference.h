// Declarations of the reference kernels (naive loops, nothing clever): the executable
// specification every optimised kernel is tested against. Signatures as in kernels.h.
#pragma once

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

}  // namespace fastcnn::kernels::reference
