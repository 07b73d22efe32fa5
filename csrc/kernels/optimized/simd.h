// The optimised kernels' vector type, one register wide: `floatv` holds kLanes floats in GCC/Clang
// vector extensions. Its width is the tier's choice:
// - avx512 (-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma): 16 lanes, one zmm register;
//   partial loads and stores use AVX-512 masks (__mmask16), never scalar tails.
// - avx2 (-mavx2 -mfma): 8 lanes, one ymm register; partial moves use vmaskmovps.
// - generic: 8 lanes, which GCC lowers to pairs of SSE instructions.
// With -ffp-contract=fast, a * b + c is one vfmadd in the avx2 and avx512 builds. The same sources
// thus become each tier's code; everything lane-count dependent lives in this header.
#pragma once

#include <cstdint>
#include <cstring>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#elif defined(__SSE__)
#include <xmmintrin.h>
#else
#include <cmath>
#endif

#ifndef FASTCNN_ISA
#error "simd.h belongs to the optimised kernels: FASTCNN_ISA must name their instruction set"
#endif

// One namespace per tier (simd::avx2::load, ...): the tiers' functions of the same name differ, and
// an out-of-line copy of one would otherwise be merged by the linker with another tier's (same
// mangled name: a return type is not part of it), an avx512 body running on an AVX2-only CPU.
namespace fastcnn::kernels::simd {
inline namespace FASTCNN_ISA {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif

typedef float floatv __attribute__((vector_size(kLanes * sizeof(float))));
// What comparing two floatv gives: all bits set in true lanes; `mask ? a : b` selects per lane.
typedef int32_t maskv __attribute__((vector_size(kLanes * sizeof(int32_t))));
typedef uint32_t uintv __attribute__((vector_size(kLanes * sizeof(uint32_t))));

inline floatv load(const float* source) {
  floatv value;
  std::memcpy(&value, source, sizeof value);
  return value;
}
inline void store(float* destination, floatv value) {
  std::memcpy(destination, &value, sizeof value);
}

// Every lane `value`. Not `floatv{} + value`, which costs an add of +0.0 (-0.0 + 0.0 != -0.0 under
// IEEE rules): the intrinsic or the element-wise initialisation is one vbroadcastss.
#if defined(__AVX512F__)
inline floatv broadcast(float value) { return reinterpret_cast<floatv>(_mm512_set1_ps(value)); }
inline maskv broadcast_int(int32_t value) { return reinterpret_cast<maskv>(_mm512_set1_epi32(value)); }
#else
inline floatv broadcast(float value) { return floatv{value, value, value, value, value, value, value, value}; }
inline maskv broadcast_int(int32_t value) { return maskv{value, value, value, value, value, value, value, value}; }
#endif

// 0, 1, ..., kLanes - 1.
inline uintv lane_indices() {
  uintv lanes;
  for (int l = 0; l < kLanes; ++l) lanes[l] = static_cast<uint32_t>(l);
  return lanes;
}

// Four floats and the four doubles they widen to (the double-precision sums and weight
// transforms): one ymm register on the x86 tiers, an SSE pair in the generic build. The x86 tiers
// name the widening instruction: GCC 12 widens these vectors half a vector at a time (through the
// stack when the floats come from memory), which also pushed a loop's accumulators out of registers.
typedef double double4 __attribute__((vector_size(4 * sizeof(double))));
typedef float float4 __attribute__((vector_size(4 * sizeof(float))));
inline double4 widen(float4 value) {
#if defined(__AVX__)
  return reinterpret_cast<double4>(_mm256_cvtps_pd(reinterpret_cast<__m128>(value)));
#else
  return __builtin_convertvector(value, double4);
#endif
}

// The first `count` lanes from memory, the rest zero (count in [0, kLanes]); memory past `count`
// is never touched. AVX-512 and AVX2 have masked moves for this (a variable-length memcpy would be
// a library call in the innermost loops); the generic build copies.
#if defined(__AVX512F__)
// Lanes [0, count) set: count <= 16, so the shift stays inside 32 bits.
inline __mmask16 first_lanes(int64_t count) { return static_cast<__mmask16>((1u << count) - 1u); }
inline floatv load_partial(const float* source, int64_t count) {
  return reinterpret_cast<floatv>(_mm512_maskz_loadu_ps(first_lanes(count), source));
}
inline void store_partial(float* destination, floatv value, int64_t count) {
  _mm512_mask_storeu_ps(destination, first_lanes(count), reinterpret_cast<__m512>(value));
}
#elif defined(__AVX2__)
inline __m256i first_lanes(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline floatv load_partial(const float* source, int64_t count) {
  return reinterpret_cast<floatv>(_mm256_maskload_ps(source, first_lanes(count)));
}
inline void store_partial(float* destination, floatv value, int64_t count) {
  _mm256_maskstore_ps(destination, first_lanes(count), reinterpret_cast<__m256>(value));
}
#else
inline floatv load_partial(const float* source, int64_t count) {
  floatv value = {};
  std::memcpy(&value, source, static_cast<size_t>(count) * sizeof(float));
  return value;
}
inline void store_partial(float* destination, floatv value, int64_t count) {
  std::memcpy(destination, &value, static_cast<size_t>(count) * sizeof(float));
}
#endif

// The first `count` lanes (count in [1, kLanes]): a plain move for a whole vector, a masked one
// (or copy) for a channel remainder.
inline floatv load_lanes(const float* source, int64_t count) {
  return count == kLanes ? load(source) : load_partial(source, count);
}
inline void store_lanes(float* destination, floatv value, int64_t count) {
  if (count == kLanes) {
    store(destination, value);
  } else {
    store_partial(destination, value, count);
  }
}

// `value`, held in a register from here on: the compiler may no longer fold its load into each
// instruction that uses it (GCC 12 turned one load feeding three multiply-adds back into three
// multiply-adds with memory operands, three loads, in a loop bound by its loads). An empty asm
// that claims to change the register; no instruction is emitted.
inline floatv in_register(floatv value) {
#if defined(__AVX__)
  asm("" : "+x"(value));
#endif
  return value;
}

// `pointer`, whose value the compiler may no longer derive: a pointer stepped through a loop
// stays one register plus an add per step (no precomputed offset per step). Emits no instruction.
template <typename T>
inline T* opaque(T* pointer) {
  asm("" : "+r"(pointer));
  return pointer;
}

// Whether any lane is NaN.
#if defined(__AVX512F__)
inline bool any_nan(floatv value) {
  const __m512 v = reinterpret_cast<__m512>(value);
  return _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) != 0;
}
#elif defined(__AVX2__)
inline bool any_nan(floatv value) {
  const __m256 v = reinterpret_cast<__m256>(value);
  return _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0;
}
#else
inline bool any_nan(floatv value) {
  bool found = false;
  for (int l = 0; l < kLanes; ++l) found |= value[l] != value[l];
  return found;
}
#endif

// The low byte of each lane, to out[0..kLanes) (lanes holding 0..255: window positions).
#if defined(__AVX512F__)
inline void narrow_to_bytes(maskv lanes, uint8_t* out) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(reinterpret_cast<__m512i>(lanes)));
}
#elif defined(__AVX2__)
inline void narrow_to_bytes(maskv lanes, uint8_t* out) {
  const __m256i value = reinterpret_cast<__m256i>(lanes);
  const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(value), _mm256_extracti128_si256(value, 1));
  const __m128i bytes = _mm_packus_epi16(words, words);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), bytes);
}
#else
inline void narrow_to_bytes(maskv lanes, uint8_t* out) {
  for (int l = 0; l < kLanes; ++l) out[l] = static_cast<uint8_t>(lanes[l]);
}
#endif
// Lanes from kLanes bytes: out[l] = bytes[l] (0..255).
#if defined(__AVX512F__)
inline maskv widen_bytes(const uint8_t* bytes) {
  return reinterpret_cast<maskv>(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes))));
}
#elif defined(__AVX2__)
inline maskv widen_bytes(const uint8_t* bytes) {
  __m128i packed;
  std::memcpy(&packed, bytes, 8);
  return reinterpret_cast<maskv>(_mm256_cvtepu8_epi32(packed));
}
#else
inline maskv widen_bytes(const uint8_t* bytes) {
  maskv lanes;
  for (int l = 0; l < kLanes; ++l) lanes[l] = bytes[l];
  return lanes;
}
#endif

// Per-lane square root, correctly rounded (IEEE), as std::sqrt on each lane.
#if defined(__AVX512F__)
inline floatv square_root(floatv value) {
  return reinterpret_cast<floatv>(_mm512_sqrt_ps(reinterpret_cast<__m512>(value)));
}
#elif defined(__AVX2__)
inline floatv square_root(floatv value) {
  return reinterpret_cast<floatv>(_mm256_sqrt_ps(reinterpret_cast<__m256>(value)));
}
#elif defined(__SSE__)
inline floatv square_root(floatv value) {  // two SSE halves
  __m128 halves[2];
  std::memcpy(halves, &value, sizeof value);
  halves[0] = _mm_sqrt_ps(halves[0]);
  halves[1] = _mm_sqrt_ps(halves[1]);
  std::memcpy(&value, halves, sizeof value);
  return value;
}
#else
inline floatv square_root(floatv value) {
  for (int l = 0; l < kLanes; ++l) value[l] = std::sqrt(value[l]);
  return value;
}
#endif

// value < bound ? bound : value, and bound < value ? bound : value, per lane: NaN lanes stay NaN
// (the comparison is false). x86's maxps(a, b) is a > b ? a : b and minps(a, b) is a < b ? a : b,
// so each is one instruction with the bound first; GCC writes the comparisons as a compare and a
// blend (two instructions; relu6's epilogue took four per vector).
#if defined(__AVX512F__)
inline floatv raise_to(floatv bound, floatv value) {
  return reinterpret_cast<floatv>(_mm512_max_ps(reinterpret_cast<__m512>(bound), reinterpret_cast<__m512>(value)));
}
inline floatv lower_to(floatv bound, floatv value) {
  return reinterpret_cast<floatv>(_mm512_min_ps(reinterpret_cast<__m512>(bound), reinterpret_cast<__m512>(value)));
}
#elif defined(__AVX2__)
inline floatv raise_to(floatv bound, floatv value) {
  return reinterpret_cast<floatv>(_mm256_max_ps(reinterpret_cast<__m256>(bound), reinterpret_cast<__m256>(value)));
}
inline floatv lower_to(floatv bound, floatv value) {
  return reinterpret_cast<floatv>(_mm256_min_ps(reinterpret_cast<__m256>(bound), reinterpret_cast<__m256>(value)));
}
#else
inline floatv raise_to(floatv bound, floatv value) { return value < bound ? bound : value; }
inline floatv lower_to(floatv bound, floatv value) { return bound < value ? bound : value; }
#endif

// relu: lanes below zero become zero; NaN lanes stay NaN (as TensorFlow's max(x, 0)).
inline floatv max_zero(floatv value) { return raise_to(floatv{}, value); }

// e^x lane by lane (Cephes expf, within about 1 ulp of std::exp): x = n ln2 + r with n the nearest
// integer to x / ln2 and |r| <= ln2 / 2 (ln2 in two parts, so that n ln2 is exact), e^r by a
// degree-6 polynomial, then 2^n applied as 2^floor(n/2) * 2^(n - floor(n/2)): each factor is a
// normal float for every n in [-150, 128], so subnormal results round once and e^x past 88.72
// overflows to +inf by the multiplication itself. x is clamped to [-104, 89] first (e^-104 rounds
// to 0, e^89 to +inf); a NaN lane fails both comparisons and stays NaN.
inline floatv exponential(floatv x) {
  const floatv low = broadcast(-104.0f), high = broadcast(89.0f);
  x = x < low ? low : x;
  x = x > high ? high : x;
  // Adding 1.5 * 2^23 rounds to an integer (ties to even) held in the low mantissa bits.
  const floatv round_to_integer = broadcast(12582912.0f);
  const floatv shifted = x * broadcast(1.44269504088896341f) + round_to_integer;
  const floatv n = shifted - round_to_integer;
  const maskv exponent = reinterpret_cast<maskv>(shifted) - reinterpret_cast<maskv>(round_to_integer);
  floatv r = x - n * broadcast(0.693359375f);
  r = r - n * broadcast(-2.12194440e-4f);
  floatv p = broadcast(1.9875691500e-4f);
  p = p * r + broadcast(1.3981999507e-3f);
  p = p * r + broadcast(8.3334519073e-3f);
  p = p * r + broadcast(4.1665795894e-2f);
  p = p * r + broadcast(1.6666665459e-1f);
  p = p * r + broadcast(5.0000001201e-1f);
  p = p * (r * r) + r + broadcast(1.0f);
  const maskv half = exponent >> 1;
  const maskv biased = maskv{} + 127;
  const floatv first_scale = reinterpret_cast<floatv>((half + biased) << 23);
  const floatv second_scale = reinterpret_cast<floatv>((exponent - half + biased) << 23);
  return p * first_scale * second_scale;
}

// sigmoid(x) = 1 / (1 + e^-x), the scalar sigmoid_of's formula on the vector exponential.
inline floatv sigmoid(floatv x) {
  const floatv one = broadcast(1.0f);
  return one / (one + exponential(-x));
}

// erf(x) lane by lane: x * P(x^2) / Q(x^2) on x clamped to [-4, 4] (a rational approximation of
// degrees 13 / 8, Eigen's float erf; within 4.2e-7 of erf, so erf(+-4) rounds to +-1 as erf does
// from 3.92 on). A NaN lane stays NaN.
inline floatv error_function(floatv x) {
  const floatv four = broadcast(4.0f), minus_four = broadcast(-4.0f);
  x = x > four ? four : x;
  x = x < minus_four ? minus_four : x;
  const floatv square = x * x;
  floatv p = broadcast(-2.72614225801306e-10f);
  p = p * square + broadcast(2.77068142495902e-08f);
  p = p * square + broadcast(-2.10102402082508e-06f);
  p = p * square + broadcast(-5.69250639462346e-05f);
  p = p * square + broadcast(-7.34990630326855e-04f);
  p = p * square + broadcast(-2.95459980854025e-03f);
  p = p * square + broadcast(-1.60960333262415e-02f);
  floatv q = broadcast(-1.45660718464996e-05f);
  q = q * square + broadcast(-2.13374055278905e-04f);
  q = q * square + broadcast(-1.68282697438203e-03f);
  q = q * square + broadcast(-7.37332916720468e-03f);
  q = q * square + broadcast(-1.42647390514189e-02f);
  return x * p / q;
}

#if defined(__AVX512F__)
// Half a zmm register: 8 lanes in a ymm register, with AVX-512VL masks for partial moves. For
// layers of at most 8 channels, where a zmm instruction would spend half its work on lanes of
// zeros (Zen 4 runs a zmm FMA as two 256-bit halves: a ymm FMA costs half as much).
constexpr int kHalfLanes = 8;
typedef float floath __attribute__((vector_size(kHalfLanes * sizeof(float))));
inline floath load_half(const float* source) {
  floath value;
  std::memcpy(&value, source, sizeof value);
  return value;
}
inline void store_half(float* destination, floath value) { std::memcpy(destination, &value, sizeof value); }
inline floath load_half_partial(const float* source, int64_t count) {
  return reinterpret_cast<floath>(_mm256_maskz_loadu_ps(static_cast<__mmask8>((1u << count) - 1u), source));
}
inline void store_half_partial(float* destination, floath value, int64_t count) {
  _mm256_mask_storeu_ps(destination, static_cast<__mmask8>((1u << count) - 1u), reinterpret_cast<__m256>(value));
}
inline floath broadcast_half(float value) { return reinterpret_cast<floath>(_mm256_set1_ps(value)); }
inline floath raise_to(floath bound, floath value) {
  return reinterpret_cast<floath>(_mm256_max_ps(reinterpret_cast<__m256>(bound), reinterpret_cast<__m256>(value)));
}
inline floath lower_to(floath bound, floath value) {
  return reinterpret_cast<floath>(_mm256_min_ps(reinterpret_cast<__m256>(bound), reinterpret_cast<__m256>(value)));
}
inline floath max_zero(floath value) { return raise_to(floath{}, value); }
#endif

}  // namespace FASTCNN_ISA
}  // namespace fastcnn::kernels::simd
