// The register-blocked FMA micro-kernel shared by the convolution kernels (direct/indirect in
// conv2d.cpp, Winograd in conv2d_winograd.cpp): a tile of 6 output pixels x kBlockWidth output
// channels (two vectors: 16 channels in ymm registers, 32 in zmm registers on avx512) lives in 12
// vector accumulators. Included by the optimised sources only (compiled per ISA).
#pragma once

#include <algorithm>
#include <cstdint>

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
inline int64_t block_width_for(int64_t output_channels) {
  return output_channels <= simd::kLanes ? simd::kLanes : kBlockWidth;
}

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

// accumulators[p] += sum over active taps t, depth k of rows[t][p][k] * weights[t][k][0..kBlockWidth).
// `tap_indices` lists the taps with at least one real (non-padding) row for this tile.
inline void accumulate_tile(const float* const* rows, const int64_t* tap_indices, int64_t tap_count,
                            int64_t depth, const float* packed_block, floatv (&acc)[kTilePixels][2]) {
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
    for (int64_t k = 0; k < depth; ++k) {
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
  }
}

// The narrow tile: accumulators[p] += sum over active taps t, depth k of rows[t][p][k] *
// weights[t][k][0..kLanes), the weights packed in blocks of kLanes.
inline void accumulate_tile_narrow(const float* const* rows, const int64_t* tap_indices, int64_t tap_count,
                                   int64_t depth, const float* packed_block, floatv (&acc)[kTilePixels]) {
  for (int64_t t = 0; t < tap_count; ++t) {
    const int64_t tap = tap_indices[t];
    const float* const* tap_rows = rows + t * kTilePixels;
    const float* r0 = tap_rows[0];
    const float* r1 = tap_rows[1];
    const float* r2 = tap_rows[2];
    const float* r3 = tap_rows[3];
    const float* r4 = tap_rows[4];
    const float* r5 = tap_rows[5];
    const float* weights = packed_block + tap * depth * simd::kLanes;
    for (int64_t k = 0; k < depth; ++k) {
      const floatv w = simd::load(weights + k * simd::kLanes);
      acc[0] += simd::broadcast(r0[k]) * w;
      acc[1] += simd::broadcast(r1[k]) * w;
      acc[2] += simd::broadcast(r2[k]) * w;
      acc[3] += simd::broadcast(r3[k]) * w;
      acc[4] += simd::broadcast(r4[k]) * w;
      acc[5] += simd::broadcast(r5[k]) * w;
    }
  }
}

// Writes one pixel's kLanes-channel block (width <= kLanes of them real), adding bias and activation.
inline void store_narrow_block(float* destination, int64_t width, floatv value, const float* bias_block,
                               Activation activation) {
  if (bias_block != nullptr) value += simd::load(bias_block);
  if (activation == Activation::relu) value = simd::max_zero(value);
  if (width == simd::kLanes) {
    simd::store(destination, value);
  } else {
    simd::store_partial(destination, value, width);
  }
  if (activation != Activation::linear && activation != Activation::relu) {
    activate_in_place(activation, destination, width);
  }
}

// Writes one pixel's block of kBlockWidth channels (width <= kBlockWidth of them real), adding bias
// and activation.
inline void store_block(float* destination, int64_t width, floatv low, floatv high,
                        const float* bias_block, Activation activation) {
  if (bias_block != nullptr) {
    low += simd::load(bias_block);
    high += simd::load(bias_block + simd::kLanes);
  }
  if (activation == Activation::relu) {
    low = simd::max_zero(low);
    high = simd::max_zero(high);
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
  if (activation != Activation::linear && activation != Activation::relu) {
    activate_in_place(activation, destination, width);
  }
}

}  // namespace microkernel
}  // namespace fastcnn::kernels::FASTCNN_ISA
