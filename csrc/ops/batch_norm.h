// BatchNormalization over the channel (last) axis of NHWC data, rows = batch * height * width:
//   training:  mean_c = (1/N) sum_r x[r, c];  variance_c = (1/N) sum_r (x[r, c] - mean_c)^2 (biased)
//              moving = moving * momentum + batch_statistic * (1 - momentum)
//   forward:   y = x * s + (beta - mean * s),  s = gamma / sqrt(variance + epsilon)  (TensorFlow's
//              tf.nn.batch_normalization arrangement)
//   backward (batch statistics): x_hat = (x - mean) / sqrt(variance + epsilon)
//              d beta = sum_r dy;  d gamma = sum_r dy * x_hat
//              dx = gamma / sqrt(variance + epsilon) / N * (N dy - d beta - x_hat d gamma)
//   backward (moving statistics, a frozen layer): dx = dy * s
//   relu_input: the input is a ReLU's output and dx also carries the ReLU's derivative,
//              dx = 0 where x <= 0 (or NaN), sparing the ReLU its own pass
//   output_activation (relu or relu6): a ReLU layer that only reads this layer's output, computed
//              in its pass (runtime/plan.cpp, output_activation): forward stores act(y);
//              backward receives the activated output's gradient g and beta, recomputes
//              y = x * s + shift with the forward's expression (so bitwise the forward's y) and
//              uses dy = (y > 0 [and y < 6]) ? g : 0, sparing the ReLU both of its passes and the
//              backward pass a read of the activated output (training is memory-bound there)
//   max_pool: a MaxPooling2D that only reads this layer's output, whose windows tile it without
//              overlap or padding (runtime/plan.cpp, batch_norm_max_pool), in training:
//              forward writes the pooled output max_pool(act(y)) and each window's first maximum
//              (Pool2DParams::window_positions) instead of the layer's output; backward receives
//              the pooled output's gradient g and routes it as the pooling's backward would — g at
//              each window's recorded first maximum, zero elsewhere and past the last window — so
//              neither the layer's output nor the full-size gradient between the two layers is
//              ever written or read back
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/activation.h"
#include "ops/pooling.h"

namespace fastcnn {

// The forward pass's per-channel factors: y = x * scale + shift (null gamma: 1, null beta: 0).
// Inference's BatchNormalization folding (runtime/plan.cpp) applies the same two to the
// convolution before it.
inline void batch_norm_scale_shift(const float* gamma, const float* beta, const float* mean, const float* variance,
                                   float epsilon, int64_t channel, float& scale, float& shift) {
  scale = (gamma != nullptr ? gamma[channel] : 1.0f) / std::sqrt(variance[channel] + epsilon);
  shift = (beta != nullptr ? beta[channel] : 0.0f) - mean[channel] * scale;
}

struct BatchNormParams {
  int64_t rows = 0;
  int64_t channels = 0;
  float epsilon = 1e-3f;
  bool relu_input = false;  // batch_norm_backward only
  Activation output_activation = Activation::linear;  // linear, relu or relu6
  // batch_norm_backward with an output activation: the forward's beta (null: 0), for y's recompute.
  const float* beta = nullptr;
  // The max pooling of the layer's output (null: none): batch_norm_forward's output is its output
  // and it writes its window_positions; batch_norm_backward's output_gradient is its output's
  // gradient, routed by those positions. Its batch, image size and channels are the layer's.
  const Pool2DParams* max_pool = nullptr;
};

// Whether a BatchNormalization can compute the max pooling of its output (BatchNormParams::max_pool):
// windows of fewer than kNoWindowPosition positions, inside the input, without overlap or padding.
inline bool batch_norm_computes_max_pool(const Pool2DParams& pool) {
  return pool.pad_top == 0 && pool.pad_left == 0 && pool.pool_height * pool.pool_width < kNoWindowPosition &&
         pool.stride_height >= pool.pool_height &&
         pool.stride_width >= pool.pool_width && pool.output_height > 0 && pool.output_width > 0 &&
         (pool.output_height - 1) * pool.stride_height + pool.pool_height <= pool.input_height &&
         (pool.output_width - 1) * pool.stride_width + pool.pool_width <= pool.input_width;
}

}  // namespace fastcnn
