// An 8-lane float vector in GCC/Clang vector extensions. The same source becomes AVX2+FMA code in
// the avx2 build (-mavx2 -mfma -ffp-contract=fast: a*b+c is one vfmadd) and pairs of SSE
// instructions in the generic build, so both tiers share one implementation.
#pragma once

#include <cstdint>
#include <cstring>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace fastcnn::kernels::simd {

typedef float float8 __attribute__((vector_size(32)));
// What comparing two float8 gives: all bits set in true lanes; `mask ? a : b` selects per lane.
typedef int32_t mask8 __attribute__((vector_size(32)));
typedef uint32_t uint8x32 __attribute__((vector_size(32)));  // 8 lanes of uint32
constexpr int kLanes = 8;

inline float8 load(const float* source) {
  float8 value;
  std::memcpy(&value, source, sizeof value);
  return value;
}
inline void store(float* destination, float8 value) {
  std::memcpy(destination, &value, sizeof value);
}
// The first `count` lanes from memory, the rest zero (count in [0, 8]); memory past `count` is
// never touched. AVX2 has masked moves for this (a variable-length memcpy would be a library call
// in the innermost loops); the generic build copies.
#if defined(__AVX2__)
inline __m256i first_lanes(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline float8 load_partial(const float* source, int64_t count) {
  return reinterpret_cast<float8>(_mm256_maskload_ps(source, first_lanes(count)));
}
inline void store_partial(float* destination, float8 value, int64_t count) {
  _mm256_maskstore_ps(destination, first_lanes(count), reinterpret_cast<__m256>(value));
}
#else
inline float8 load_partial(const float* source, int64_t count) {
  float8 value = {};
  std::memcpy(&value, source, static_cast<size_t>(count) * sizeof(float));
  return value;
}
inline void store_partial(float* destination, float8 value, int64_t count) {
  std::memcpy(destination, &value, static_cast<size_t>(count) * sizeof(float));
}
#endif
// The low byte of each lane, to out[0..8) (lanes holding 0..255: window positions).
#if defined(__AVX2__)
inline void narrow_to_bytes(mask8 lanes, uint8_t* out) {
  const __m256i value = reinterpret_cast<__m256i>(lanes);
  const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(value), _mm256_extracti128_si256(value, 1));
  const __m128i bytes = _mm_packus_epi16(words, words);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), bytes);
}
#else
inline void narrow_to_bytes(mask8 lanes, uint8_t* out) {
  for (int l = 0; l < kLanes; ++l) out[l] = static_cast<uint8_t>(lanes[l]);
}
#endif
// Lanes from 8 bytes: out[l] = bytes[l] (0..255).
#if defined(__AVX2__)
inline mask8 widen_bytes(const uint8_t* bytes) {
  __m128i packed;
  std::memcpy(&packed, bytes, 8);
  return reinterpret_cast<mask8>(_mm256_cvtepu8_epi32(packed));
}
#else
inline mask8 widen_bytes(const uint8_t* bytes) {
  mask8 lanes;
  for (int l = 0; l < kLanes; ++l) lanes[l] = bytes[l];
  return lanes;
}
#endif
// Element-wise initialisation (not `float8{} + value`, which costs a scalar add of +0.0 since
// -0.0 + 0.0 != -0.0 under IEEE rules) lets the compiler emit one vbroadcastss from memory.
inline float8 broadcast(float value) { return float8{value, value, value, value, value, value, value, value}; }
// relu: lanes below zero become zero; NaN lanes stay NaN (as TensorFlow's max(x, 0)).
inline float8 max_zero(float8 value) {
  const float8 zero = {};
  return value < zero ? zero : value;
}

}  // namespace fastcnn::kernels::simd
