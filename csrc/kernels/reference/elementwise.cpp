// Reference activations and dropout: the formulas of ops/activation.h and ops/dropout.h.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/reference/reference.h"

namespace fastcnn::kernels::reference {

float apply_activation(Activation activation, float value) {
  switch (activation) {
    case Activation::relu: return value < 0.0f ? 0.0f : value;  // NaN stays NaN
    case Activation::sigmoid: return 1.0f / (1.0f + std::exp(-value));
    case Activation::tanh: return std::tanh(value);
    case Activation::linear:
    case Activation::softmax: return value;
  }
  return value;
}

void activation_forward(Activation activation, int64_t rows, int64_t columns, const float* input,
                        float* output) {
  if (activation != Activation::softmax) {
    for (int64_t i = 0; i < rows * columns; ++i) output[i] = apply_activation(activation, input[i]);
    return;
  }
  // softmax(x)_j = e^(x_j - max x) / sum_k e^(x_k - max x)
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = input + r * columns;
    float* y = output + r * columns;
    const float maximum = *std::max_element(x, x + columns);
    float sum = 0.0f;
    for (int64_t j = 0; j < columns; ++j) {
      y[j] = std::exp(x[j] - maximum);
      sum += y[j];
    }
    for (int64_t j = 0; j < columns; ++j) y[j] /= sum;
  }
}

void activation_backward(Activation activation, int64_t rows, int64_t columns,
                         const float* output, const float* output_gradient,
                         float* input_gradient) {
  const int64_t count = rows * columns;
  switch (activation) {
    case Activation::linear:
      std::copy(output_gradient, output_gradient + count, input_gradient);
      return;
    case Activation::relu:
      for (int64_t i = 0; i < count; ++i) input_gradient[i] = output[i] > 0.0f ? output_gradient[i] : 0.0f;
      return;
    case Activation::sigmoid:
      for (int64_t i = 0; i < count; ++i) input_gradient[i] = output_gradient[i] * output[i] * (1.0f - output[i]);
      return;
    case Activation::tanh:
      for (int64_t i = 0; i < count; ++i) input_gradient[i] = output_gradient[i] * (1.0f - output[i] * output[i]);
      return;
    case Activation::softmax:
      // dx_j = y_j * (g_j - sum_k g_k y_k)
      for (int64_t r = 0; r < rows; ++r) {
        const float* y = output + r * columns;
        const float* g = output_gradient + r * columns;
        float dot = 0.0f;
        for (int64_t j = 0; j < columns; ++j) dot += g[j] * y[j];
        float* dx = input_gradient + r * columns;
        for (int64_t j = 0; j < columns; ++j) dx[j] = y[j] * (g[j] - dot);
      }
      return;
  }
}

void dropout_forward(const DropoutParams& p, const float* input, float* output) {
  const float scale = 1.0f / (1.0f - p.rate);
  for (int64_t i = 0; i < p.count; ++i) {
    const bool keep = dropout_uniform(p.seed, static_cast<uint64_t>(i)) >= p.rate;
    output[i] = keep ? input[i] * scale : 0.0f;
  }
}

void dropout_backward(const DropoutParams& p, const float* output_gradient,
                      float* input_gradient) {
  dropout_forward(p, output_gradient, input_gradient);
}

const KernelTable& table() {
  static const KernelTable kernels{
      "reference",
      conv2d_forward,
      conv2d_backward_input,
      conv2d_backward_kernel,
      dense_forward,
      dense_backward_input,
      dense_backward_kernel,
      max_pool2d_forward,
      max_pool2d_backward,
      activation_forward,
      activation_backward,
      batch_norm_statistics,
      batch_norm_forward,
      batch_norm_backward,
      dropout_forward,
      dropout_backward,
  };
  return kernels;
}

}  // namespace fastcnn::kernels::reference
