// Reference activations and dropout: the formulas of ops/activation.h and ops/dropout.h.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/reference/reference.h"
#include "ops/activation_math.h"
#include "ops/noise.h"
#include "ops/parametric_activation.h"

namespace fastcnn::kernels::reference {

void activation_forward(Activation activation, int64_t rows, int64_t columns, const float* input,
                        float* output) {
  if (activation == Activation::log_softmax) {
    for (int64_t r = 0; r < rows; ++r) log_softmax_row(input + r * columns, output + r * columns, columns);
    return;
  }
  if (activation != Activation::softmax) {
    for (int64_t i = 0; i < rows * columns; ++i) output[i] = activate(activation, input[i]);
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

void activation_backward(Activation activation, int64_t rows, int64_t columns, const float* input,
                         const float* output, const float* output_gradient, float* input_gradient) {
  if (activation == Activation::log_softmax) {
    for (int64_t r = 0; r < rows; ++r) {
      log_softmax_gradient_row(output + r * columns, output_gradient + r * columns, input_gradient + r * columns,
                               columns);
    }
    return;
  }
  if (activation == Activation::softmax) {
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
  for (int64_t i = 0; i < rows * columns; ++i) {
    const float x = input != nullptr ? input[i] : 0.0f;
    input_gradient[i] = activation_gradient(activation, x, output[i], output_gradient[i]);
  }
}

void relu_forward(const ReluParams& p, const float* input, float* output) {
  for (int64_t i = 0; i < p.count; ++i) output[i] = parametric_relu(p, input[i]);
}

void relu_backward(const ReluParams& p, const float* input, const float* output_gradient,
                   float* input_gradient) {
  for (int64_t i = 0; i < p.count; ++i) input_gradient[i] = parametric_relu_gradient(p, input[i], output_gradient[i]);
}

void rescaling(const RescalingParams& p, const float* input, float* output) {
  for (int64_t i = 0; i < p.count; ++i) {
    if (p.channel_scale == nullptr) {
      output[i] = input[i] * p.scale + p.offset;
    } else {
      const int64_t c = i % p.channels;
      output[i] = p.channel_offset != nullptr ? input[i] * p.channel_scale[c] + p.channel_offset[c]
                                              : input[i] * p.channel_scale[c];
    }
  }
}

void zero_padding2d_forward(const ZeroPadding2DParams& p, const float* input, float* output) {
  const int64_t height = p.output_height(), width = p.output_width();
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t h = 0; h < height; ++h)
      for (int64_t w = 0; w < width; ++w)
        for (int64_t c = 0; c < p.channels; ++c) {
          const int64_t ih = h - p.top, iw = w - p.left;
          const bool inside = ih >= 0 && ih < p.input_height && iw >= 0 && iw < p.input_width;
          output[((n * height + h) * width + w) * p.channels + c] =
              inside ? input[((n * p.input_height + ih) * p.input_width + iw) * p.channels + c] : 0.0f;
        }
}

void zero_padding2d_backward(const ZeroPadding2DParams& p, const float* output_gradient,
                             float* input_gradient) {
  const int64_t height = p.output_height(), width = p.output_width();
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t ih = 0; ih < p.input_height; ++ih)
      for (int64_t iw = 0; iw < p.input_width; ++iw)
        for (int64_t c = 0; c < p.channels; ++c)
          input_gradient[((n * p.input_height + ih) * p.input_width + iw) * p.channels + c] =
              output_gradient[((n * height + ih + p.top) * width + iw + p.left) * p.channels + c];
}

void dropout_forward(const DropoutParams& p, const float* input, float* output) {
  const float scale = 1.0f / (1.0f - p.rate);
  const DropoutKey key = dropout_key(p);
  for (int64_t i = 0; i < p.count; ++i) {
    const bool keep = dropout_uniform(key, static_cast<uint64_t>(i)) >= p.rate;
    output[i] = keep ? input[i] * scale : 0.0f;
  }
}

void dropout_backward(const DropoutParams& p, const float* output_gradient,
                      float* input_gradient) {
  dropout_forward(p, output_gradient, input_gradient);
}

void elu_forward(const EluParams& p, const float* input, float* output) {
  for (int64_t i = 0; i < p.count; ++i) output[i] = elu_with_alpha(p, input[i]);
}

void elu_backward(const EluParams& p, const float* input, const float* output_gradient, float* input_gradient) {
  for (int64_t i = 0; i < p.count; ++i) input_gradient[i] = elu_with_alpha_gradient(p, input[i], output_gradient[i]);
}

void prelu_forward(const PReluParams& p, const float* input, const float* alpha, float* output) {
  int64_t i = 0;
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t h = 0; h < p.height; ++h)
      for (int64_t w = 0; w < p.width; ++w)
        for (int64_t c = 0; c < p.channels; ++c, ++i) output[i] = prelu(input[i], alpha[p.alpha_index(h, w, c)]);
}

void prelu_backward(const PReluParams& p, const float* input, const float* alpha, const float* output_gradient,
                    float* input_gradient, float* alpha_gradient) {
  if (alpha_gradient != nullptr) {
    std::fill(alpha_gradient, alpha_gradient + p.alpha_height() * p.alpha_width() * p.alpha_channels(), 0.0f);
  }
  int64_t i = 0;
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t h = 0; h < p.height; ++h)
      for (int64_t w = 0; w < p.width; ++w)
        for (int64_t c = 0; c < p.channels; ++c, ++i) {
          const int64_t a = p.alpha_index(h, w, c);
          if (input_gradient != nullptr) input_gradient[i] = prelu_input_gradient(input[i], alpha[a], output_gradient[i]);
          if (alpha_gradient != nullptr) alpha_gradient[a] += prelu_alpha_gradient(input[i], output_gradient[i]);
        }
}

void noise_forward(const NoiseParams& p, const float* input, float* output) {
  const DropoutKey key = dropout_key(p.seed);
  int64_t i = 0;
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t h = 0; h < p.height; ++h)
      for (int64_t w = 0; w < p.width; ++w)
        for (int64_t c = 0; c < p.channels; ++c, ++i) {
          output[i] = apply_noise(p, input[i], noise_value(p, key, p.noise_index(n, h, w, c)));
        }
}

// The additive noise passes the gradient unchanged; the multiplicative kinds multiply it by the same factor.
void noise_backward(const NoiseParams& p, const float* output_gradient, float* input_gradient) {
  if (p.kind == NoiseKind::gaussian_noise) {
    if (input_gradient != output_gradient) std::copy(output_gradient, output_gradient + p.count(), input_gradient);
    return;
  }
  noise_forward(p, output_gradient, input_gradient);
}

#define FASTCNN_TABLE_NAME "reference"
#include "kernels/table.inc"
#undef FASTCNN_TABLE_NAME

}  // namespace fastcnn::kernels::reference
