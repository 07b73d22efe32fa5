// Activation layers with parameters of their own (Keras's ELU and PReLU layers):
//   ELU(alpha):  y = x > 0 ? x : alpha (e^x - 1)
//                dy/dx = x > 0 ? 1 : alpha e^x   (at 0: alpha, as TensorFlow's where(x > 0, elu, alpha elu))
//   PReLU:       y = relu(x) - a relu(-x) = x > 0 ? x : a x, with a = alpha broadcast over the shared axes
//                dy/dx = [x > 0] + a [x < 0];  d loss/d a = sum over the shared positions of g min(x, 0)
#pragma once

#include <cmath>
#include <cstdint>

namespace fastcnn {

struct EluParams {
  int64_t count = 0;
  float alpha = 1.0f;
};

// Keras computes where(x > 0, elu(x), alpha elu(x)) with TensorFlow's elu; its gradient is
// EluGrad's (elu < 0 ? g (elu + 1) : g), times alpha where x <= 0.
inline float elu_with_alpha(const EluParams& p, float x) {
  const float elu = x < 0.0f ? std::expm1(x) : x;
  return x > 0.0f ? elu : p.alpha * elu;
}
inline float elu_with_alpha_gradient(const EluParams& p, float x, float g) {
  const float elu = x < 0.0f ? std::expm1(x) : x;
  const float elu_gradient = elu < 0.0f ? g * (elu + 1.0f) : g;
  return x > 0.0f ? elu_gradient : p.alpha * elu_gradient;
}

// PReLU over a batch of (height, width, channels) samples; alpha has the sample's shape with each
// shared axis of size 1 (Keras's shared_axes), stored (alpha_height, alpha_width, alpha_channels).
struct PReluParams {
  int64_t batch = 0, height = 0, width = 0, channels = 0;
  bool shared_height = false, shared_width = false, shared_channels = false;
  int64_t alpha_height() const { return shared_height ? 1 : height; }
  int64_t alpha_width() const { return shared_width ? 1 : width; }
  int64_t alpha_channels() const { return shared_channels ? 1 : channels; }
  int64_t alpha_index(int64_t h, int64_t w, int64_t c) const {
    return ((shared_height ? 0 : h) * alpha_width() + (shared_width ? 0 : w)) * alpha_channels() +
           (shared_channels ? 0 : c);
  }
};

// relu(x) - a relu(-x): x for x > 0, a x (exactly, negation being exact) for x < 0, NaN stays NaN.
inline float prelu(float x, float a) { return x > 0.0f ? x : (x < 0.0f ? a * x : x * 0.0f); }
inline float prelu_input_gradient(float x, float a, float g) {
  return x > 0.0f ? g : (x < 0.0f ? a * g : 0.0f);
}
inline float prelu_alpha_gradient(float x, float g) { return x < 0.0f ? x * g : 0.0f; }

}  // namespace fastcnn
