// Declarations of the optimised kernels. Compiled once per instruction set with FASTCNN_ISA set
// to the namespace name (generic, avx2); signatures as in kernels.h.
#pragma once

#include "kernels/kernels.h"

#ifndef FASTCNN_ISA
#error "FASTCNN_ISA must name the instruction-set namespace (generic or avx2)"
#endif

namespace fastcnn::kernels::FASTCNN_ISA {

void conv2d_forward(const Conv2DParams& params, const float* input, const float* kernel,
                    const float* bias, float* output);
void conv2d_backward_input(const Conv2DParams& params, const float* output_gradient,
                           const float* kernel, float* input_gradient);
void conv2d_backward_kernel(const Conv2DParams& params, const float* input,
                            const float* output_gradient, float* kernel_gradient,
                            float* bias_gradient);
void dense_forward(const DenseParams& params, const float* input, const float* kernel,
                   const float* bias, float* output);
void dense_backward_input(const DenseParams& params, const float* output_gradient,
                          const float* kernel, float* input_gradient);
void dense_backward_kernel(const DenseParams& params, const float* input,
                           const float* output_gradient, float* kernel_gradient,
                           float* bias_gradient);
void max_pool2d_forward(const Pool2DParams& params, const float* input, float* output);
void max_pool2d_backward(const Pool2DParams& params, const float* input,
                         const float* output_gradient, float* input_gradient);
void activation_forward(Activation activation, int64_t rows, int64_t columns, const float* input,
                        float* output);
void activation_backward(Activation activation, int64_t rows, int64_t columns,
                         const float* input, const float* output, const float* output_gradient,
                         float* input_gradient);
void batch_norm_statistics(const BatchNormParams& params, const float* input, float* mean,
                           float* variance);
void batch_norm_forward(const BatchNormParams& params, const float* input, const float* mean,
                        const float* variance, const float* gamma, const float* beta, float* output);
void batch_norm_backward(const BatchNormParams& params, const float* input, const float* mean,
                         const float* variance, const float* gamma, const float* output_gradient,
                         float* input_gradient, float* gamma_gradient, float* beta_gradient);
void average_pool2d_forward(const Pool2DParams& params, const float* input, float* output);
void average_pool2d_backward(const Pool2DParams& params, const float* output_gradient,
                             float* input_gradient);
void zero_padding2d_forward(const ZeroPadding2DParams& params, const float* input, float* output);
void zero_padding2d_backward(const ZeroPadding2DParams& params, const float* output_gradient,
                             float* input_gradient);
void relu_forward(const ReluParams& params, const float* input, float* output);
void relu_backward(const ReluParams& params, const float* input, const float* output_gradient,
                   float* input_gradient);
void rescaling(const RescalingParams& params, const float* input, float* output);
void dropout_forward(const DropoutParams& params, const float* input, float* output);
void dropout_backward(const DropoutParams& params, const float* output_gradient,
                      float* input_gradient);

// Applies an elementwise activation to `count` contiguous values in place (epilogue helper).
void activate_in_place(Activation activation, float* values, int64_t count);

}  // namespace fastcnn::kernels::FASTCNN_ISA
