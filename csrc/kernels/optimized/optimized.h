// Declarations of the optimised kernels. Compiled once per instruction set with FASTCNN_ISA set
// to the namespace name (generic, avx2); signatures as in kernels.h.
#pragma once

#include "kernels/kernels.h"

#ifndef FASTCNN_ISA
#error "FASTCNN_ISA must name the instruction-set namespace (generic or avx2)"
#endif

namespace fastcnn::kernels::FASTCNN_ISA {

#include "kernels/declarations.inc"

// Winograd F(2x2, 3x3) forward convolution (conv2d_winograd.cpp): for 3x3 kernels with unit
// stride and dilation and enough channels on both sides to amortise its transforms.
bool winograd_applicable(const Conv2DParams& params);
void conv2d_forward_winograd(const Conv2DParams& params, const float* input, const float* kernel,
                             const float* bias, float* output);
void conv2d_backward_kernel_winograd(const Conv2DParams& params, const float* input,
                                     const float* output_gradient, float* kernel_gradient);

// FLOPs of a pure-FMA loop on every thread of a parallel region (the peak probe).
double fma_peak_probe(int64_t iterations);

// Applies an elementwise activation to `count` contiguous values in place (epilogue helper).
void activate_in_place(Activation activation, float* values, int64_t count);

}  // namespace fastcnn::kernels::FASTCNN_ISA
