// The register-blocked FMA micro-kernel shared by the convolution kernels (direct/indirect in
// conv2d.cpp, Winograd in conv2d_winograd.cpp): a tile of 6 output pixels x kBlockWidth output
// channels (two vectors: 16 channels in ymm registers, 32 in zmm registers on avx512) lives in 12
// vector accumulators. Included by the optimised sources only (compiled per ISA).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/optimized/optimized.h"
#include "kernels/optimized/simd.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace microkernel {

using simd::floatv;
constexpr int64_t kTilePixels = 6;
constexpr int64_t kBlockWidth = 2 * simd::kLanes;  // output channels per tile: 16 (8-lane tiers) or 32 (avx512)

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Layers with at most kLanes output channels (a first layer's input gradient, a Dense layer of
// 10 classes) run a narrow tile: 6 pixels x one vector, 6 accumulators, so that a 32-channel
// block does not compute 16 (avx512) or 29 (3 channels) lanes of zeros. Each output's sum runs
// in the same order in both tiles, so the choice never changes a result.
// On avx512, layers of at most 8 channels take a ymm tile of 8 lanes (simd::floath).
inline int64_t block_width_for(int64_t output_channels) {
#if defined(__AVX512F__)
  if (output_channels <= simd::kHalfLanes) return simd::kHalfLanes;
#endif
  return output_channels <= simd::kLanes ? simd::kLanes : kBlockWidth;
}

// Loads, stores and broadcasts of the narrow tile's vector type: floatv, or floath on avx512.
template <typename Vector>
struct NarrowVector {
  static constexpr int64_t kLanes = simd::kLanes;
  static floatv load(const float* source) { return simd::load(source); }
  static void store(float* destination, floatv value) { simd::store(destination, value); }
  static floatv load_partial(const float* source, int64_t count) { return simd::load_partial(source, count); }
  static void store_partial(float* destination, floatv value, int64_t count) {
    simd::store_partial(destination, value, count);
  }
  static floatv broadcast(float value) { return simd::broadcast(value); }
};
#if defined(__AVX512F__)
template <>
struct NarrowVector<simd::floath> {
  static constexpr int64_t kLanes = simd::kHalfLanes;
  static simd::floath load(const float* source) { return simd::load_half(source); }
  static void store(float* destination, simd::floath value) { simd::store_half(destination, value); }
  static simd::floath load_partial(const float* source, int64_t count) { return simd::load_half_partial(source, count); }
  static void store_partial(float* destination, simd::floath value, int64_t count) {
    simd::store_half_partial(destination, value, count);
  }
  static simd::floath broadcast(float value) { return simd::broadcast_half(value); }
};
#endif

// packed[block][row][0..block_width) = matrix[row][block * block_width + j], zero past the last column.
inline void pack_column_blocks(const float* matrix, int64_t rows, int64_t columns, float* packed,
                               int64_t block_width = kBlockWidth) {
  const int64_t blocks = ceil_div(columns, block_width);
  parallel::parallel_for(blocks, [&](int64_t block) {
    const int64_t first = block * block_width;
    const int64_t width = std::min(block_width, columns - first);
    float* destination = packed + block * rows * block_width;
    for (int64_t row = 0; row < rows; ++row) {
      const float* source = matrix + row * columns + first;
      float* out = destination + row * block_width;
      for (int64_t j = 0; j < width; ++j) out[j] = source[j];
      for (int64_t j = width; j < block_width; ++j) out[j] = 0.0f;
    }
  });
}

// Pixels of the tall tile (pointwise convolutions, Winograd's GEMMs): with Vectors accumulators per
// pixel, as many pixels as leave room for the weight vectors and a broadcast (24 of avx512's 32
// registers, 12 of the 8-lane tiers' 16). Each weight vector loaded then serves that many
// multiply-adds: with the 6-pixel tile, avx512's two full-width FMA units wait on the loads.
template <int Vectors>
constexpr int kTallTilePixels = simd::kLanes == 16 ? 24 / Vectors : 12 / Vectors;

// acc[p][v] = sum over k of row_of(p)[k] * weights[k * RowWidth + v * kLanes ...], from zero, k
// ascending (accumulate_tile's order for one tap: either tile gives the same bits). row_of is
// inlined: for consecutive rows the compiler keeps each row's offset from the first in a register.
template <int Pixels, int Vectors, int64_t RowWidth, typename RowOf>
__attribute__((always_inline)) inline void multiply_rows(RowOf&& row_of, int64_t depth, const float* weights,
                                                         floatv (&acc)[Pixels][Vectors]) {
  const float* rows[Pixels];
#pragma GCC unroll 24
  for (int p = 0; p < Pixels; ++p) rows[p] = row_of(p);
#pragma GCC unroll 24
  for (int p = 0; p < Pixels; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < Vectors; ++v) acc[p][v] = floatv{};
  for (int64_t k = 0; k < depth; ++k) {
    floatv w[Vectors];
#pragma GCC unroll 4
    for (int v = 0; v < Vectors; ++v) w[v] = simd::load(weights + k * RowWidth + v * simd::kLanes);
#pragma GCC unroll 24
    for (int p = 0; p < Pixels; ++p) {
      const floatv b = simd::broadcast(rows[p][k]);
#pragma GCC unroll 4
      for (int v = 0; v < Vectors; ++v) acc[p][v] += b * w[v];
    }
  }
}

// One pixel's input value times a block's two weight vectors, added to its two accumulators.
__attribute__((always_inline)) inline void multiply_add_pixel(const float& value, const floatv& w0, const floatv& w1,
                                                              floatv& low, floatv& high) {
  const floatv b = simd::broadcast(value);
  low += b * w0;
  high += b * w1;
}

// One depth step k of a tile: 2 weight loads, 6 broadcasts, 12 multiply-adds.
__attribute__((always_inline)) inline void accumulate_step(const float* weights, int64_t k, const float* r0,
                                                           const float* r1, const float* r2, const float* r3,
                                                           const float* r4, const float* r5,
                                                           floatv (&acc)[kTilePixels][2]) {
  const floatv w0 = simd::load(weights + k * kBlockWidth);
  const floatv w1 = simd::load(weights + k * kBlockWidth + simd::kLanes);
  floatv b = simd::broadcast(r0[k]);
  acc[0][0] += b * w0;
  acc[0][1] += b * w1;
  b = simd::broadcast(r1[k]);
  acc[1][0] += b * w0;
  acc[1][1] += b * w1;
  b = simd::broadcast(r2[k]);
  acc[2][0] += b * w0;
  acc[2][1] += b * w1;
  b = simd::broadcast(r3[k]);
  acc[3][0] += b * w0;
  acc[3][1] += b * w1;
  b = simd::broadcast(r4[k]);
  acc[4][0] += b * w0;
  acc[4][1] += b * w1;
  b = simd::broadcast(r5[k]);
  acc[5][0] += b * w0;
  acc[5][1] += b * w1;
}

// accumulators[p] += sum over active taps t, depth k of rows[t][p][k] * weights[t][k][0..kBlockWidth).
// `tap_indices` lists the taps with at least one real (non-padding) row for this tile.
// FixedDepth > 0: `depth` is that constant, so the loop over k unrolls completely (see
// accumulate_tile_any_depth).
template <int64_t FixedDepth = 0>
__attribute__((always_inline)) inline void accumulate_tile(const float* const* rows, const int64_t* tap_indices,
                                                           int64_t tap_count, int64_t depth_argument,
                                                           const float* packed_block, floatv (&acc)[kTilePixels][2]) {
  const int64_t depth = FixedDepth > 0 ? FixedDepth : depth_argument;
  for (int64_t t = 0; t < tap_count; ++t) {
    const int64_t tap = tap_indices[t];
    const float* const* tap_rows = rows + t * kTilePixels;
    const float* r0 = tap_rows[0];
    const float* r1 = tap_rows[1];
    const float* r2 = tap_rows[2];
    const float* r3 = tap_rows[3];
    const float* r4 = tap_rows[4];
    const float* r5 = tap_rows[5];
    const float* weights = packed_block + tap * depth * kBlockWidth;
    if constexpr (FixedDepth > 0) {
#pragma GCC unroll 16
      for (int64_t k = 0; k < FixedDepth; ++k) accumulate_step(weights, k, r0, r1, r2, r3, r4, r5, acc);
    } else {
      for (int64_t k = 0; k < depth; ++k) accumulate_step(weights, k, r0, r1, r2, r3, r4, r5, acc);
    }
  }
}

// accumulate_tile with the k loop unrolled where the depth is one of a first layer's: 3 x 3 taps
// merged by kernel rows over 1 or 3 input channels give depths of 3 and 9, and 5 x 5 RGB 15. A
// loop of 3-15 steps per tap spends much of its time on its own branches; unrolled, the same
// multiply-adds in the same order (same bits) run straight through.
// (Forced inline, as accumulate_tile: its four copies made GCC 12 call it out of line, the
// accumulators then in memory, a load and a store around every multiply-add: half the speed.)
__attribute__((always_inline)) inline void accumulate_tile_any_depth(const float* const* rows,
                                                                     const int64_t* tap_indices, int64_t tap_count,
                                                                     int64_t depth, const float* packed_block,
                                                                     floatv (&acc)[kTilePixels][2]) {
  switch (depth) {
    case 3: return accumulate_tile<3>(rows, tap_indices, tap_count, depth, packed_block, acc);
    case 9: return accumulate_tile<9>(rows, tap_indices, tap_count, depth, packed_block, acc);
    case 15: return accumulate_tile<15>(rows, tap_indices, tap_count, depth, packed_block, acc);
    default: return accumulate_tile(rows, tap_indices, tap_count, depth, packed_block, acc);
  }
}

// The narrow tile: accumulators[p] += sum over active taps t, depth k of rows[t][p][k] *
// weights[t][k][0..L), L the lanes of Vector, the weights packed in blocks of RowWidth (L, or
// kBlockWidth where the narrow tile runs the last, partly empty block of a wide layer).
template <typename Vector = floatv, int64_t RowWidth = NarrowVector<Vector>::kLanes>
inline void accumulate_tile_narrow(const float* const* rows, const int64_t* tap_indices, int64_t tap_count,
                                   int64_t depth, const float* packed_block, Vector (&acc)[kTilePixels]) {
  using V = NarrowVector<Vector>;
  for (int64_t t = 0; t < tap_count; ++t) {
    const int64_t tap = tap_indices[t];
    const float* const* tap_rows = rows + t * kTilePixels;
    const float* r0 = tap_rows[0];
    const float* r1 = tap_rows[1];
    const float* r2 = tap_rows[2];
    const float* r3 = tap_rows[3];
    const float* r4 = tap_rows[4];
    const float* r5 = tap_rows[5];
    const float* weights = packed_block + tap * depth * RowWidth;
    for (int64_t k = 0; k < depth; ++k) {
      const Vector w = V::load(weights + k * RowWidth);
      acc[0] += V::broadcast(r0[k]) * w;
      acc[1] += V::broadcast(r1[k]) * w;
      acc[2] += V::broadcast(r2[k]) * w;
      acc[3] += V::broadcast(r3[k]) * w;
      acc[4] += V::broadcast(r4[k]) * w;
      acc[5] += V::broadcast(r5[k]) * w;
    }
  }
}

// A forward epilogue's per-channel affine after the activation (Conv2DParams::output_scale and
// output_shift), padded to whole blocks as the bias is: scale null for none.
struct OutputAffine {
  const float* scale = nullptr;
  const float* shift = nullptr;
  OutputAffine at(int64_t channel) const {
    return scale != nullptr ? OutputAffine{scale + channel, shift + channel} : OutputAffine{};
  }
};

// The affine of a block whose activation ran on the vector (the others get it in finish_activation,
// after their activation). value * scale + shift: the contraction to one fused multiply-add is the
// BatchNormalization kernel's (batch_norm_affine), so the bits are a separate layer's.
template <typename Vector>
inline Vector affine_on_vector(Vector value, const Vector& scale, const Vector& shift) {
  return value * scale + shift;
}

// Writes one pixel's narrow block (width <= the lanes of Vector of them real), adding bias, then
// the residual (laid out as the destination; null: none), then a vector activation (relu, relu6)
// and the output affine; the caller finishes the other activations with finish_activation once the
// tile is stored.
template <typename Vector = floatv>
inline void store_narrow_block(float* destination, int64_t width, Vector value, const float* bias_block,
                               Activation activation, const float* residual = nullptr,
                               OutputAffine affine = {}) {
  using V = NarrowVector<Vector>;
  if (bias_block != nullptr) value += V::load(bias_block);
  if (residual != nullptr) value += width == V::kLanes ? V::load(residual) : V::load_partial(residual, width);
  value = activate_on_vector(value, activation);
  if (affine.scale != nullptr && activates_on_vector(activation)) {
    value = affine_on_vector(value, V::load(affine.scale), V::load(affine.shift));
  }
  if (width == V::kLanes) {
    V::store(destination, value);
  } else {
    V::store_partial(destination, value, width);
  }
}

// Writes one pixel's block of kBlockWidth channels (width <= kBlockWidth of them real), adding bias,
// then the residual (laid out as the destination; null: none), then a vector activation (relu,
// relu6) and the output affine; the caller finishes the other activations with finish_activation
// once the tile is stored.
inline void store_block(float* destination, int64_t width, floatv low, floatv high,
                        const float* bias_block, Activation activation, const float* residual = nullptr,
                        OutputAffine affine = {}) {
  if (bias_block != nullptr) {
    low += simd::load(bias_block);
    high += simd::load(bias_block + simd::kLanes);
  }
  if (residual != nullptr) {
    low += simd::load_lanes(residual, std::min<int64_t>(width, simd::kLanes));
    if (width > simd::kLanes) high += simd::load_lanes(residual + simd::kLanes, width - simd::kLanes);
  }
  low = activate_on_vector(low, activation);
  high = activate_on_vector(high, activation);
  if (affine.scale != nullptr && activates_on_vector(activation)) {
    low = affine_on_vector(low, simd::load(affine.scale), simd::load(affine.shift));
    high = affine_on_vector(high, simd::load(affine.scale + simd::kLanes), simd::load(affine.shift + simd::kLanes));
  }
  if (width == kBlockWidth) {
    simd::store(destination, low);
    simd::store(destination + simd::kLanes, high);
  } else if (width > simd::kLanes) {
    simd::store(destination, low);
    simd::store_partial(destination + simd::kLanes, high, width - simd::kLanes);
  } else {
    simd::store_partial(destination, low, width);
  }
}

// The activations that do not run on the vector, applied to `width` stored values. Called after a
// tile's stores, never between them: a call there keeps the tile's other accumulators alive across
// it, which (no vector register survives a call) made GCC 12 keep 10 of the 12 accumulators of
// run_indirect's avx512 tile on the stack for the whole tile, a load and a store around every
// multiply-add (a 5x5 stride-2 first layer at 43% of one core's peak against avx2's 71%).
// Then the output affine of those (`affine` at the block's first channel).
inline void finish_activation(float* destination, int64_t width, Activation activation, OutputAffine affine = {}) {
  if (activates_on_vector(activation)) return;
  activate_in_place(activation, destination, width);
  if (affine.scale == nullptr) return;
  for (int64_t j = 0; j < width; ++j) {
    destination[j] = affine_on_vector(destination[j], affine.scale[j], affine.shift[j]);
  }
}

// `values` (channels floats; null: none) copied into `storage` padded with zeros to `padded_count`
// (whole blocks, which the epilogue loads a vector at a time); returns the copy, or null.
inline const float* padded_channels(const float* values, int64_t channels, int64_t padded_count,
                                    std::vector<float>& storage) {
  if (values == nullptr) return nullptr;
  storage.assign(static_cast<size_t>(padded_count), 0.0f);
  std::copy(values, values + channels, storage.begin());
  return storage.data();
}

}  // namespace microkernel
}  // namespace fastcnn::kernels::FASTCNN_ISA
