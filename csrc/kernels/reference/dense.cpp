// Reference Dense: the formula of ops/dense.h as plain loops.
#include <algorithm>
#include <cstdint>

#include "kernels/reference/reference.h"
#include "ops/activation_math.h"

namespace fastcnn::kernels::reference {

void dense_forward(const DenseParams& p, const float* input, const float* kernel,
                   const float* bias, float* output) {
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t o = 0; o < p.output_units; ++o) {
      float sum = p.use_bias ? bias[o] : 0.0f;
      for (int64_t i = 0; i < p.input_units; ++i) {
        sum += input[n * p.input_units + i] * kernel[i * p.output_units + o];
      }
      output[n * p.output_units + o] = activate(p.activation, sum);
    }
}

// d input[n, i] = sum_o d output[n, o] * kernel[i, o]
void dense_backward_input(const DenseParams& p, const float* output_gradient,
                          const float* kernel, float* input_gradient) {
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t i = 0; i < p.input_units; ++i) {
      float sum = 0.0f;
      for (int64_t o = 0; o < p.output_units; ++o) {
        sum += output_gradient[n * p.output_units + o] * kernel[i * p.output_units + o];
      }
      input_gradient[n * p.input_units + i] = sum;
    }
}

// d kernel[i, o] = sum_n input[n, i] * d output[n, o];  d bias[o] = sum_n d output[n, o]
void dense_backward_kernel(const DenseParams& p, const float* input,
                           const float* output_gradient, float* kernel_gradient,
                           float* bias_gradient) {
  for (int64_t i = 0; i < p.input_units; ++i)
    for (int64_t o = 0; o < p.output_units; ++o) {
      float sum = 0.0f;
      for (int64_t n = 0; n < p.batch; ++n) {
        sum += input[n * p.input_units + i] * output_gradient[n * p.output_units + o];
      }
      kernel_gradient[i * p.output_units + o] = sum;
    }
  if (bias_gradient != nullptr) {
    for (int64_t o = 0; o < p.output_units; ++o) {
      float sum = 0.0f;
      for (int64_t n = 0; n < p.batch; ++n) sum += output_gradient[n * p.output_units + o];
      bias_gradient[o] = sum;
    }
  }
}

}  // namespace fastcnn::kernels::reference
