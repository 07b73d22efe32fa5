// Declarations of the optimised kernels. Compiled once per instruction set with FASTCNN_ISA set
// to the namespace name (generic, avx2); signatures as in kernels.h.
#pragma once

#include "kernels/kernels.h"

#ifndef FASTCNN_ISA
#error "FASTCNN_ISA must name the instruction-set namespace (generic or avx2)"
#endif

namespace fastcnn::kernels::FASTCNN_ISA {

#include "kernels/declarations.inc"

// FLOPs of a pure-FMA loop on every thread of a parallel region (the peak probe).
double fma_peak_probe(int64_t iterations);

// Applies an elementwise activation to `count` contiguous values in place (epilogue helper).
void activate_in_place(Activation activation, float* values, int64_t count);

}  // namespace fastcnn::kernels::FASTCNN_ISA
