// Max pooling's windows (ops/pooling.h) for the kernels that pool: MaxPooling2D's passes
// (pooling.cpp) and BatchNormalization's forward pass that pools its own output in training
// (batch_norm.cpp, BatchNormParams::max_pool), which computes the window's values instead of
// reading them.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/optimized/optimized.h"
#include "kernels/optimized/simd.h"

namespace fastcnn::kernels::FASTCNN_ISA {

// Window bounds of output (oh, ow), clipped to the input; (top, left): its unclipped origin.
struct PoolWindow {
  int64_t row_begin, row_end, column_begin, column_end, top, left;
};
inline PoolWindow pool_window_of(const Pool2DParams& p, int64_t oh, int64_t ow) {
  const int64_t top = oh * p.stride_height - p.pad_top;
  const int64_t left = ow * p.stride_width - p.pad_left;
  return {std::max<int64_t>(top, 0), std::min(top + p.pool_height, p.input_height),
          std::max<int64_t>(left, 0), std::min(left + p.pool_width, p.input_width), top, left};
}

// Input pixel (ih, iw) of window w as its row-major offset in the pool_height x pool_width window
// (Pool2DParams::window_positions).
inline int32_t window_position(const Pool2DParams& p, const PoolWindow& w, int64_t ih, int64_t iw) {
  return static_cast<int32_t>((ih - w.top) * p.pool_width + iw - w.left);
}

// The maximum of simd::kLanes channels of one window: the first position, then every later one
// that wins (max_pool_wins); with Positions also where it first occurs (window_position). The first
// maximum is the last position that wins, i.e. the first position equal to the maximum.
struct WindowMaximum {
  simd::floatv value;
  simd::maskv position;
};
template <bool Positions, typename ValueAt>
inline WindowMaximum window_maximum(const Pool2DParams& p, const PoolWindow& w, ValueAt&& value_at) {
  WindowMaximum best{value_at(w.row_begin, w.column_begin), {}};
  if constexpr (Positions) best.position = simd::broadcast_int(window_position(p, w, w.row_begin, w.column_begin));
  for (int64_t ih = w.row_begin; ih < w.row_end; ++ih)
    for (int64_t iw = w.column_begin; iw < w.column_end; ++iw) {
      const simd::floatv value = value_at(ih, iw);
      const simd::maskv wins = max_pool_wins(value, best.value);
      best.value = wins ? value : best.value;
      if constexpr (Positions) {
        best.position = wins ? simd::broadcast_int(window_position(p, w, ih, iw)) : best.position;
      }
    }
  return best;
}

// The low `width` bytes of `lanes` (window positions) to out.
inline void store_positions(simd::maskv lanes, uint8_t* out, int64_t width) {
  if (width == simd::kLanes) {
    simd::narrow_to_bytes(lanes, out);
    return;
  }
  uint8_t bytes[simd::kLanes];
  simd::narrow_to_bytes(lanes, bytes);
  std::copy(bytes, bytes + width, out);
}

// One output row of max pooling (image_row = n * output_height + oh): each window's maximum of
// value_at(ih, iw, c, width) — simd::kLanes channels from c (width of them real) at input pixel
// (ih, iw) of image n; with Positions (p.window_positions set) also its first maximum's position
// (kNoWindowPosition where relu_input and the maximum is not > 0).
template <bool Positions, typename ValueAt>
inline void max_pool_output_row(const Pool2DParams& p, int64_t image_row, float* output, ValueAt&& value_at) {
  const int64_t channels = p.channels, oh = image_row % p.output_height;
  for (int64_t ow = 0; ow < p.output_width; ++ow) {
    const PoolWindow w = pool_window_of(p, oh, ow);
    const int64_t out = (image_row * p.output_width + ow) * channels;
    for (int64_t c = 0; c < channels; c += simd::kLanes) {
      const int64_t width = std::min<int64_t>(simd::kLanes, channels - c);
      const WindowMaximum maximum =
          window_maximum<Positions>(p, w, [&](int64_t ih, int64_t iw) { return value_at(ih, iw, c, width); });
      simd::store_lanes(output + out + c, maximum.value, width);
      if constexpr (Positions) {
        const simd::maskv passes = p.relu_input ? (maximum.value > simd::floatv{}) : simd::broadcast_int(-1);
        store_positions(passes ? maximum.position : simd::broadcast_int(kNoWindowPosition), p.window_positions + out + c,
                        width);
      }
    }
  }
}

// max_pool_output_row with or without positions, as p.window_positions asks.
template <typename ValueAt>
inline void max_pool_output_row(const Pool2DParams& p, int64_t image_row, float* output, ValueAt&& value_at) {
  if (p.window_positions != nullptr) {
    max_pool_output_row<true>(p, image_row, output, value_at);
  } else {
    max_pool_output_row<false>(p, image_row, output, value_at);
  }
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
