// Noise layers, all active only in training (identity otherwise), on the counter-based uniforms of
// ops/dropout.h so that no mask is stored and the backward pass recomputes each factor:
//   broadcast dropout (Dropout(noise_shape=), SpatialDropout2D):  y = x m / (1 - rate), m = [u >= rate],
//       one u per position of the noise shape: a dimension of size 1 there is shared (broadcast)
//   gaussian noise (GaussianNoise(stddev)):          y = x + stddev z,                      dx = g
//   gaussian dropout (GaussianDropout(rate)):        y = x (1 + sqrt(rate / (1 - rate)) z),  dx = g (same factor)
// z is a standard normal draw by Box-Muller from two uniforms of the same stream (indices 2i, 2i + 1):
// z = sqrt(-2 log u1) cos(2 pi u2) with u1 in (0, 1] on a 2^-24 grid, so |z| <= sqrt(2 log 2^24) = 5.77.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/dropout.h"

namespace fastcnn {

enum class NoiseKind { broadcast_dropout, gaussian_noise, gaussian_dropout };

struct NoiseParams {
  NoiseKind kind = NoiseKind::broadcast_dropout;
  int64_t batch = 0, height = 0, width = 0, channels = 0;
  // Dimensions where the noise shape is 1 (broadcast dropout only; the gaussian kinds draw per element).
  bool shared_batch = false, shared_height = false, shared_width = false, shared_channels = false;
  float rate = 0.0f;    // broadcast_dropout, gaussian_dropout
  float stddev = 0.0f;  // gaussian_noise
  uint64_t seed = 0;
  // Global index of this call's sample 0 (a data-parallel rank's first sample): the noise of a
  // sample does not depend on how the batch is split.
  int64_t first_sample = 0;

  int64_t count() const { return batch * height * width * channels; }
  // The position in the noise tensor of element (n, h, w, c) of this call.
  uint64_t noise_index(int64_t n, int64_t h, int64_t w, int64_t c) const {
    const int64_t noise_height = shared_height ? 1 : height, noise_width = shared_width ? 1 : width;
    const int64_t noise_channels = shared_channels ? 1 : channels;
    const int64_t sample = shared_batch ? 0 : n + first_sample;
    return static_cast<uint64_t>(
        ((sample * noise_height + (shared_height ? 0 : h)) * noise_width + (shared_width ? 0 : w)) * noise_channels +
        (shared_channels ? 0 : c));
  }
};

inline float standard_normal(DropoutKey key, uint64_t index) {
  const float u1 = 1.0f - dropout_uniform(key, 2 * index);  // (0, 1]: the logarithm stays finite
  const float u2 = dropout_uniform(key, 2 * index + 1);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853071795865f * u2);
}

// The factor multiplying x (dropout kinds) at noise position `index`; the additive noise for gaussian_noise.
inline float noise_value(const NoiseParams& p, DropoutKey key, uint64_t index) {
  switch (p.kind) {
    case NoiseKind::broadcast_dropout:
      return dropout_uniform(key, index) >= p.rate ? 1.0f / (1.0f - p.rate) : 0.0f;
    case NoiseKind::gaussian_noise: return p.stddev * standard_normal(key, index);
    case NoiseKind::gaussian_dropout:
      return 1.0f + std::sqrt(p.rate / (1.0f - p.rate)) * standard_normal(key, index);
  }
  return 0.0f;
}

inline float apply_noise(const NoiseParams& p, float x, float value) {
  if (p.kind == NoiseKind::gaussian_noise) return x + value;
  return p.kind == NoiseKind::broadcast_dropout && value == 0.0f ? 0.0f : x * value;  // dropped: 0, as Dropout
}

}  // namespace fastcnn
