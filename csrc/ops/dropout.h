// Dropout (inverted): output[i] = keep(i) ? input[i] / (1 - rate) : 0, where keep(i) is a
// counter-based hash of (seed, i) compared with rate, so the mask needs no storage, the backward
// pass recomputes it, and the result does not depend on the number of threads.
#pragma once

#include <cstdint>

namespace fastcnn {

struct DropoutParams {
  int64_t count = 0;
  float rate = 0.0f;
  uint64_t seed = 0;
};

// Uniform in [0, 1) with 24 random bits, from a splitmix64 hash of seed and index.
inline float dropout_uniform(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

}  // namespace fastcnn
