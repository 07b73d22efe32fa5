// Elementwise layers with parameters of their own.
//   ReLU (Keras's ReLU layer / LeakyReLU), written as Keras computes it so that kinks and NaN behave
//   the same (t = threshold, s = negative_slope, m = max_value):
//     s != 0, no m, t == 0:  y = x > 0 ? x : s x                       (tf.nn.leaky_relu)
//     otherwise:  p = t != 0 ? (x > t ? x : 0) : (m == 6 ? relu6(x) : relu(x));  p = clip(p, 0, m) if m
//                 (not for relu6);  y = p - s * relu(t - x)
//     dy/dx = d p/dx (mask; clip passes its bounds inclusive) + s [x < t]
//   Rescaling: y = x * scale + offset;  dx = dy * scale  (scale and offset per channel or for all)
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
  // Per channel (Keras's Rescaling with lists or arrays): when channel_scale is set, value i takes
  // channel_scale[i % channels] and channel_offset[i % channels] (no offset when null) instead.
  int64_t channels = 1;
  const float* channel_scale = nullptr;
  const float* channel_offset = nullptr;
};

// ZeroPadding2D: output (h + top + bottom, w + left + right, c), the input in the middle.
struct ZeroPadding2DParams {
  int64_t batch = 0, input_height = 0, input_width = 0, channels = 0;
  int64_t top = 0, bottom = 0, left = 0, right = 0;
  int64_t output_height() const { return input_height + top + bottom; }
  int64_t output_width() const { return input_width + left + right; }
};

// The scalar ReLU formula and its derivative (shared by every tier). Comparisons are arranged so
// that NaN propagates, as in TensorFlow's max/min.
inline bool relu_is_leaky(const ReluParams& p) {
  return p.negative_slope != 0.0f && p.max_value == std::numeric_limits<float>::infinity() && p.threshold == 0.0f;
}
inline bool relu_is_relu6(const ReluParams& p) { return p.max_value == 6.0f && p.threshold == 0.0f; }

inline float parametric_relu(const ReluParams& p, float x) {
  if (relu_is_leaky(p)) return x > 0.0f ? x : p.negative_slope * x;
  float positive;
  if (p.threshold != 0.0f) {
    positive = x > p.threshold ? x : 0.0f;  // NaN and -inf give 0 here, as Keras's thresholded relu does
  } else if (relu_is_relu6(p)) {
    positive = x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
  } else {
    positive = x < 0.0f ? 0.0f : x;
  }
  if (p.max_value != std::numeric_limits<float>::infinity() && !relu_is_relu6(p)) {
    positive = positive < 0.0f ? 0.0f : (positive > p.max_value ? p.max_value : positive);
  }
  if (p.negative_slope == 0.0f) return positive;
  const float below = p.threshold - x;
  return positive - p.negative_slope * (below < 0.0f ? 0.0f : below);
}

inline float parametric_relu_gradient(const ReluParams& p, float x, float g) {
  if (relu_is_leaky(p)) return x > 0.0f ? g : p.negative_slope * g;
  float slope;
  float positive;
  if (p.threshold != 0.0f) {
    slope = x > p.threshold ? 1.0f : 0.0f;
    positive = x > p.threshold ? x : 0.0f;
  } else if (relu_is_relu6(p)) {
    slope = x > 0.0f && x < 6.0f ? 1.0f : 0.0f;
    positive = x;
  } else {
    slope = x > 0.0f ? 1.0f : 0.0f;
    positive = x > 0.0f ? x : 0.0f;
  }
  if (p.max_value != std::numeric_limits<float>::infinity() && !relu_is_relu6(p) &&
      !(positive >= 0.0f && positive <= p.max_value)) {
    slope = 0.0f;  // tf.clip_by_value passes gradients on [min, max], bounds included
  }
  if (p.negative_slope != 0.0f && x < p.threshold) slope += p.negative_slope;
  return g * slope;
}

}  // namespace fastcnn
