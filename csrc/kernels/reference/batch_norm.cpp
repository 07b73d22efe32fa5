// Reference BatchNormalization: the formulas of ops/batch_norm.h, one channel at a time, sums in
// double precision.
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/reference/reference.h"
#include "ops/activation_math.h"

namespace fastcnn::kernels::reference {

void batch_norm_statistics(const BatchNormParams& p, const float* input, float* mean,
                           float* variance) {
  for (int64_t c = 0; c < p.channels; ++c) {
    double sum = 0.0;
    for (int64_t r = 0; r < p.rows; ++r) sum += input[r * p.channels + c];
    const double average = p.rows > 0 ? sum / static_cast<double>(p.rows) : 0.0;
    double squares = 0.0;
    for (int64_t r = 0; r < p.rows; ++r) {
      const double difference = input[r * p.channels + c] - average;
      squares += difference * difference;
    }
    mean[c] = static_cast<float>(average);
    variance[c] = p.rows > 0 ? static_cast<float>(squares / static_cast<double>(p.rows)) : 0.0f;
  }
}

void batch_norm_forward(const BatchNormParams& p, const float* input, const float* mean,
                        const float* variance, const float* gamma, const float* beta, float* output) {
  if (p.max_pool != nullptr) {  // the layer's output, then its pooling
    std::vector<float> normalized(static_cast<size_t>(p.rows * p.channels));
    BatchNormParams unpooled = p;
    unpooled.max_pool = nullptr;
    batch_norm_forward(unpooled, input, mean, variance, gamma, beta, normalized.data());
    max_pool2d_forward(*p.max_pool, normalized.data(), output);
    return;
  }
  for (int64_t c = 0; c < p.channels; ++c) {
    float scale, shift;
    batch_norm_scale_shift(gamma, beta, mean, variance, p.epsilon, c, scale, shift);
    for (int64_t r = 0; r < p.rows; ++r) {
      output[r * p.channels + c] = activate(p.output_activation, input[r * p.channels + c] * scale + shift);
    }
  }
}

void batch_norm_backward(const BatchNormParams& p, const float* input, const float* mean,
                         const float* variance, const float* gamma, const float* output_gradient,
                         float* input_gradient, float* gamma_gradient, float* beta_gradient) {
  if (p.max_pool != nullptr) {
    // The pooled gradient at each window's recorded first maximum, zero elsewhere, then this
    // layer's own backward pass.
    const Pool2DParams& pool = *p.max_pool;
    std::vector<float> gradient(static_cast<size_t>(p.rows * p.channels), 0.0f);
    for (int64_t n = 0; n < pool.batch; ++n)
      for (int64_t oh = 0; oh < pool.output_height; ++oh)
        for (int64_t ow = 0; ow < pool.output_width; ++ow)
          for (int64_t c = 0; c < p.channels; ++c) {
            const int64_t out = ((n * pool.output_height + oh) * pool.output_width + ow) * p.channels + c;
            const uint8_t position = pool.window_positions[out];
            if (position == kNoWindowPosition) continue;
            const int64_t ih = oh * pool.stride_height + position / pool.pool_width;
            const int64_t iw = ow * pool.stride_width + position % pool.pool_width;
            gradient[static_cast<size_t>(((n * pool.input_height + ih) * pool.input_width + iw) * p.channels + c)] =
                output_gradient[out];
          }
    BatchNormParams unpooled = p;
    unpooled.max_pool = nullptr;
    batch_norm_backward(unpooled, input, mean, variance, gamma, gradient.data(), input_gradient, gamma_gradient,
                        beta_gradient);
    return;
  }
  const double count = static_cast<double>(p.rows);
  // The normalized output's gradient: the activated output's, through the fused activation, at
  // y = x * scale + shift recomputed as the forward computes it.
  auto gradient_at = [&](int64_t index, float scale, float shift) {
    const float g = output_gradient[index];
    return p.output_activation == Activation::linear
               ? g
               : activation_gradient(p.output_activation, 0.0f,
                                     activate(p.output_activation, input[index] * scale + shift), g);
  };
  for (int64_t c = 0; c < p.channels; ++c) {
    float scale, shift;
    batch_norm_scale_shift(gamma, p.beta, mean, variance, p.epsilon, c, scale, shift);
    const double inverse_std = 1.0 / std::sqrt(static_cast<double>(variance[c]) + p.epsilon);
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int64_t r = 0; r < p.rows; ++r) {
      const double dy = gradient_at(r * p.channels + c, scale, shift);
      sum_dy += dy;
      sum_dy_xhat += dy * (input[r * p.channels + c] - mean[c]) * inverse_std;
    }
    if (beta_gradient != nullptr) beta_gradient[c] = static_cast<float>(sum_dy);
    if (gamma_gradient != nullptr) gamma_gradient[c] = static_cast<float>(sum_dy_xhat);
    if (input_gradient == nullptr || p.rows == 0) continue;
    const double g = gamma != nullptr ? gamma[c] : 1.0;
    for (int64_t r = 0; r < p.rows; ++r) {
      const double x_hat = (input[r * p.channels + c] - mean[c]) * inverse_std;
      const float x = input[r * p.channels + c];
      input_gradient[r * p.channels + c] = p.relu_input && !(x > 0.0f) ? 0.0f : static_cast<float>(
          g * inverse_std / count * (count * gradient_at(r * p.channels + c, scale, shift) - sum_dy - x_hat * sum_dy_xhat));
    }
  }
}

}  // namespace fastcnn::kernels::reference
