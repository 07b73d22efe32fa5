// Declarations of the reference kernels (naive loops, double-free of cleverness): the executable
// specification every optimised kernel is tested against. Signatures as in kernels.h.
#pragma once

#include "kernels/kernels.h"

namespace fastcnn::kernels::reference {

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

// The scalar activation used by every tier's epilogue.
float apply_activation(Activation activation, float value);

}  // namespace fastcnn::kernels::reference
