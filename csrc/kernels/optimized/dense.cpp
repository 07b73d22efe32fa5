// Optimised Dense: a dense layer is a 1x1 convolution over a 1 x batch image (ops/dense.h), so it
// runs on the convolution's register-blocked kernels, 6 samples x kBlockWidth units per tile.
#include "kernels/optimized/optimized.h"

namespace fastcnn::kernels::FASTCNN_ISA {

void dense_forward(const DenseParams& params, const float* input, const float* kernel,
                   const float* bias, float* output) {
  conv2d_forward(dense_as_conv2d(params), input, kernel, bias, output);
}

void dense_backward_input(const DenseParams& params, const float* output_gradient,
                          const float* kernel, float* input_gradient) {
  conv2d_backward_input(dense_as_conv2d(params), output_gradient, kernel, input_gradient);
}

void dense_backward_kernel(const DenseParams& params, const float* input,
                           const float* output_gradient, float* kernel_gradient,
                           float* bias_gradient) {
  conv2d_backward_kernel(dense_as_conv2d(params), input, output_gradient, kernel_gradient,
                         bias_gradient);
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
