// Elementwise layers with parameters of their own.
//   ReLU (Keras's ReLU layer / LeakyReLU):
//     positive = threshold != 0 ? (x > threshold ? x : 0) : max(x, 0), clipped to [0, max_value]
//     y = positive - negative_slope * max(threshold - x, 0)
//     dy/dx = [x > threshold or, with threshold 0, x > 0] * [positive < max_value]
//             + negative_slope * [x < threshold]
//   Rescaling: y = x * scale + offset;  dx = dy * scale
#pragma once

#include <cstdint>
#include <limits>

namespace fastcnn {

struct ReluParams {
  int64_t count = 0;
  float max_value = std::numeric_limits<float>::infinity();
  float negative_slope = 0.0f;
  float threshold = 0.0f;
};

struct RescalingParams {
  int64_t count = 0;
  float scale = 1.0f;
  float offset = 0.0f;
};

// ZeroPadding2D: output (h + top + bottom, w + left + right, c), the input in the middle.
struct ZeroPadding2DParams {
  int64_t batch = 0, input_height = 0, input_width = 0, channels = 0;
  int64_t top = 0, bottom = 0, left = 0, right = 0;
  int64_t output_height() const { return input_height + top + bottom; }
  int64_t output_width() const { return input_width + left + right; }
};

// The scalar ReLU formula and its derivative (shared by every tier).
inline float parametric_relu(const ReluParams& p, float x) {
  float positive = p.threshold != 0.0f ? (x > p.threshold ? x : 0.0f) : (x < 0.0f ? 0.0f : x);
  if (positive > p.max_value) positive = p.max_value;
  if (positive < 0.0f) positive = 0.0f;
  const float below = p.threshold - x;
  return p.negative_slope != 0.0f && below > 0.0f ? positive - p.negative_slope * below : positive;
}
inline float parametric_relu_gradient(const ReluParams& p, float x, float g) {
  const bool passes = p.threshold != 0.0f ? x > p.threshold : x > 0.0f;
  float slope = passes && x < p.max_value ? 1.0f : 0.0f;
  if (p.negative_slope != 0.0f && x < p.threshold) slope += p.negative_slope;
  return g * slope;
}

}  // namespace fastcnn
