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
  // Index of element 0 in the whole batch's mask: a data-parallel rank holding samples from
  // first_sample on passes first_sample * sample_size, so its mask is the one a single process
  // would draw for those samples (0: the mask starts at the call's first element).
  uint64_t first_index = 0;
};

// lowbias32 (C. Wellons): a 32-bit integer hash with very low bias, built from 32-bit multiplies
// and shifts only, so a loop over consecutive indices vectorises (8 lanes with AVX2).
inline uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// The per-call constants of the mask: splitmix64 of the seed split into an odd multiplier and an
// offset, so that different seeds give unrelated index sequences hash32(index * multiplier + offset).
struct DropoutKey {
  uint32_t multiplier, offset;
};
inline DropoutKey dropout_key(uint64_t seed) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return {static_cast<uint32_t>(z >> 32) | 1u, static_cast<uint32_t>(z)};
}

// The key of a call: hash32((first_index + i) * multiplier + offset) = hash32(i * multiplier +
// (first_index * multiplier + offset)) in 32-bit arithmetic, so shifting the offset starts the
// mask at first_index with the kernels' loops unchanged.
inline DropoutKey dropout_key(const DropoutParams& params) {
  DropoutKey key = dropout_key(params.seed);
  key.offset += static_cast<uint32_t>(params.first_index) * key.multiplier;
  return key;
}

// Uniform in [0, 1) with 24 random bits for element `index` (its low 32 bits: the mask repeats
// only past 2^32 elements, far beyond any one layer's batch).
inline float dropout_uniform(DropoutKey key, uint64_t index) {
  const uint32_t bits = hash32(static_cast<uint32_t>(index) * key.multiplier + key.offset);
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

}  // namespace fastcnn
