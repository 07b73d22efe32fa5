// Scalar activation formulas (ops/activation.h), shared by every kernel tier: the elementwise work
// is memory-bound, so one exact formula per activation serves all of them.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/activation.h"

namespace fastcnn {

constexpr float kSeluScale = 1.0507009873554805f;
constexpr float kSeluAlpha = 1.6732632423543772f;
constexpr float kLeakyReluSlope = 0.2f;

inline float sigmoid_of(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// softplus(x) = log(1 + e^x), computed without overflow: max(x, 0) + log1p(e^-|x|).
inline float softplus_of(float x) { return std::fmax(x, 0.0f) + std::log1p(std::exp(-std::fabs(x))); }

// relu6(x + 3) / 6, as Keras's hard_sigmoid in ops (x + 3 rounded first, then clipped).
inline float hard_sigmoid_of_shifted(float x) {
  const float v = x + 3.0f;
  return (v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v)) / 6.0f;
}

inline float activate(Activation activation, float x) {
  switch (activation) {
    case Activation::relu: return x < 0.0f ? 0.0f : x;  // NaN stays NaN, as max(x, 0) in TensorFlow
    case Activation::relu6: return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
    case Activation::leaky_relu: return x > 0.0f ? x : kLeakyReluSlope * x;
    case Activation::elu: return x > 0.0f ? x : std::expm1(x);
    case Activation::selu: return kSeluScale * (x > 0.0f ? x : kSeluAlpha * std::expm1(x));
    case Activation::sigmoid: return sigmoid_of(x);
    case Activation::hard_sigmoid: {
      const float v = x / 6.0f + 0.5f;  // comparisons, not fmin/fmax, so that NaN stays NaN
      return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    }
    case Activation::tanh: return std::tanh(x);
    case Activation::softplus: return softplus_of(x);
    case Activation::swish: return x * sigmoid_of(x);
    case Activation::gelu: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case Activation::hard_silu: return x * hard_sigmoid_of_shifted(x);
    case Activation::mish: return x * std::tanh(softplus_of(x));
    case Activation::exponential: return std::exp(x);
    case Activation::softsign: return x / (1.0f + std::fabs(x));
    case Activation::linear:
    case Activation::softmax:
    case Activation::log_softmax: return x;
  }
  return x;
}

// dy/dx times the incoming gradient g, from the output y and (where needed) the input x.
inline float activation_gradient(Activation activation, float x, float y, float g) {
  switch (activation) {
    case Activation::relu: return y > 0.0f ? g : 0.0f;
    case Activation::relu6: return (y > 0.0f && y < 6.0f) ? g : 0.0f;
    case Activation::leaky_relu: return y > 0.0f ? g : kLeakyReluSlope * g;
    case Activation::elu: return y > 0.0f ? g : g * (y + 1.0f);
    case Activation::selu: return y < 0.0f ? g * (y + kSeluScale * kSeluAlpha) : g * kSeluScale;  // as TF's SeluGrad
    case Activation::sigmoid: return g * y * (1.0f - y);
    case Activation::hard_sigmoid: return (y > 0.0f && y < 1.0f) ? g / 6.0f : 0.0f;
    case Activation::tanh: return g * (1.0f - y * y);
    case Activation::softplus: return g * sigmoid_of(x);
    case Activation::swish: {
      const float s = sigmoid_of(x);
      return g * s * (1.0f + x * (1.0f - s));
    }
    case Activation::gelu: {
      const float cdf = 0.5f * (1.0f + std::erf(x * 0.70710678118654752f));
      const float pdf = 0.39894228040143268f * std::exp(-0.5f * x * x);
      return g * (cdf + x * pdf);
    }
    case Activation::hard_silu: {
      const float shifted = x + 3.0f;
      const float inside = (shifted > 0.0f && shifted < 6.0f) ? 1.0f / 6.0f : 0.0f;
      return g * (hard_sigmoid_of_shifted(x) + x * inside);
    }
    case Activation::mish: {
      const float t = std::tanh(softplus_of(x));
      return g * (t + x * (1.0f - t * t) * sigmoid_of(x));
    }
    case Activation::exponential: return g * y;
    case Activation::softsign: {
      const float denominator = 1.0f + std::fabs(x);
      return g / (denominator * denominator);  // as TensorFlow's SoftsignGrad
    }
    case Activation::linear:
    case Activation::softmax:
    case Activation::log_softmax: return g;
  }
  return g;
}

// log_softmax of one row of `columns` values, as TensorFlow: s = x - max x, y = s - log sum_j e^s_j.
inline void log_softmax_row(const float* x, float* y, int64_t columns) {
  float maximum = -INFINITY;
  for (int64_t j = 0; j < columns; ++j) maximum = x[j] > maximum ? x[j] : maximum;
  float sum = 0.0f;
  for (int64_t j = 0; j < columns; ++j) sum += std::exp(x[j] - maximum);
  const float log_sum = std::log(sum);
  for (int64_t j = 0; j < columns; ++j) y[j] = (x[j] - maximum) - log_sum;
}

// Its gradient from the output, as TensorFlow's LogSoftmaxGrad: dx_j = g_j - e^y_j sum_k g_k.
inline void log_softmax_gradient_row(const float* y, const float* g, float* dx, int64_t columns) {
  float sum = 0.0f;
  for (int64_t j = 0; j < columns; ++j) sum += g[j];
  for (int64_t j = 0; j < columns; ++j) dx[j] = g[j] - std::exp(y[j]) * sum;
}

}  // namespace fastcnn
