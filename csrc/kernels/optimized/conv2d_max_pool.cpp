// Conv2D followed by MaxPooling2D as one kernel (kernels.h, conv2d_max_pool2d_*), for the layers
// where the convolution's output costs more to store and re-read than to compute: the first layer
// of an image model (1-4 input channels) writes 32-64 floats per pixel from 9-27 multiply-adds
// each, and its max pooling reads them all back, then its backward pass writes and reads a
// gradient as large. Here that output lives only in a cache-sized band buffer.
//
// Work is split in bands: the pool_height convolution rows under one pooled row.
// - Forward, per band: the input rows the band reads are copied into a zero-padded patch (so
//   every tap of every pixel is inside it and each kernel row is one deep tap), convolve_tile (the
//   6 x kBlockWidth micro-kernel's loop with its accumulators held in registers) computes the band with the
//   same summation order and the same bias and activation epilogue (bitwise the unfused
//   convolution's values), then each window's first maximum (max pooling's rule, NaN included)
//   and its position are written. 2x2 windows (the common case) skip the band buffer: each
//   window's four pixels are summed, activated and pooled in registers (convolve_pool_window),
//   with the same order and epilogue.
// - Kernel gradient, per band: the convolution's output gradient is rebuilt in the band buffer
//   (the pooled gradient at each window's first maximum, times the ReLU's derivative, zero
//   elsewhere) and dW[kh][kw][ci][co] += x[pixel + tap offset][ci] * dY[pixel][co] is summed in
//   registers, 6 (kh, kw, ci) entries x kBlockWidth output channels at a time. Images are summed in fixed
//   chunks of two, each from zero, then the chunks in order: the same bits for any thread count.
// - Inference (no window positions) of a Winograd-shaped convolution with 2x2 pooling (seed
//   Example 1's second pair) goes to conv2d_forward_winograd, which pools each output tile in L1:
//   the convolution's output (4 MB at batch 128 there) is neither stored nor read back.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/optimized/conv_microkernel.h"
#include "kernels/optimized/optimized.h"
#include "kernels/optimized/simd.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

using namespace microkernel;
using simd::floatv;
using simd::maskv;

// One band: the convolution pixels under one pooled row, and the input patch they read.
struct Band {
  int64_t conv_rows = 0, conv_columns = 0;    // pool_height x (pooled width * pool_width)
  int64_t patch_rows = 0, patch_columns = 0;  // input rows x columns they read, padding included
  int64_t channels_padded = 0;                // output channels rounded up to whole blocks
};

Band band_of(const Conv2DParams& c, const Pool2DParams& p) {
  Band band;
  band.conv_rows = p.pool_height;
  band.conv_columns = p.output_width * p.pool_width;
  band.patch_rows = (band.conv_rows - 1) * c.stride_height + (c.kernel_height - 1) * c.dilation_height + 1;
  band.patch_columns = (band.conv_columns - 1) * c.stride_width + (c.kernel_width - 1) * c.dilation_width + 1;
  band.channels_padded = ceil_div(c.output_channels, kBlockWidth) * kBlockWidth;
  return band;
}

// patch[r][col][ci] = input[image, first_row + r, col - pad_left, ci], zero outside the image,
// first_row = the band's first convolution row * stride - pad_top.
void copy_patch(const Conv2DParams& c, const Band& band, const float* input, int64_t image, int64_t pooled_row,
                float* patch) {
  const int64_t first_row = pooled_row * band.conv_rows * c.stride_height - c.pad_top;
  const int64_t row_size = band.patch_columns * c.input_channels;
  // Patch columns [inside_begin, inside_end) hold input columns [inside_begin - pad_left, ...).
  const int64_t inside_begin = std::min(band.patch_columns, c.pad_left);
  const int64_t inside_end = std::max(inside_begin, std::min(band.patch_columns, c.pad_left + c.input_width));
  for (int64_t r = 0; r < band.patch_rows; ++r) {
    float* destination = patch + r * row_size;
    const int64_t ih = first_row + r;
    if (ih < 0 || ih >= c.input_height) {
      std::fill(destination, destination + row_size, 0.0f);
      continue;
    }
    const float* source = input + ((image * c.input_height + ih) * c.input_width + (inside_begin - c.pad_left)) *
                                      c.input_channels;
    std::fill(destination, destination + inside_begin * c.input_channels, 0.0f);
    std::copy(source, source + (inside_end - inside_begin) * c.input_channels, destination + inside_begin * c.input_channels);
    std::fill(destination + inside_end * c.input_channels, destination + row_size, 0.0f);
  }
}

// Per-thread buffers (OpenMP's workers persist, so they stop growing after the first calls).
struct BandScratch {
  std::vector<float> patch, band, zeros;
  std::vector<const float*> rows;
};
BandScratch& band_scratch() {
  thread_local BandScratch scratch;
  return scratch;
}
template <typename T>
T* at_least(std::vector<T>& buffer, int64_t count) {
  if (static_cast<int64_t>(buffer.size()) < count) buffer.resize(static_cast<size_t>(count));
  return buffer.data();
}

// Window positions to lanes: kLanes bytes of window_index, width of them real (the rest never match).
inline maskv load_window_index(const uint8_t* index, int64_t width) {
  if (width == simd::kLanes) return simd::widen_bytes(index);
  uint8_t bytes[simd::kLanes];
  std::memcpy(bytes, index, static_cast<size_t>(width));
  maskv lanes = simd::widen_bytes(bytes);
  for (int64_t l = width; l < simd::kLanes; ++l) lanes[l] = -1;
  return lanes;
}

// The convolution's output gradient in one band (band.conv_rows x band.conv_columns pixels,
// band.channels_padded floats each): the pooled gradient at each window's first maximum, where the
// ReLU passed it, zero at the window's other positions and past the real channels; the pooled
// gradient (after the ReLU) is added to bias_partial. The arrays start at the band's pooled row.
// PoolHeight, PoolWidth: the window fixed at compile time (2x2), or 0 to read p's. Every size is
// read into a local first: simd::store may alias anything, so fields read through p or band in
// the loop would be reloaded after every store.
template <int PoolHeight, int PoolWidth>
void band_gradient(const Pool2DParams& p, const Band& band, int64_t output_channels, bool relu,
                   const float* output_gradient, const float* output, const uint8_t* window_index, float* gradient,
                   float* bias_partial) {
  const int64_t pool_height = PoolHeight > 0 ? PoolHeight : p.pool_height;
  const int64_t pool_width = PoolWidth > 0 ? PoolWidth : p.pool_width;
  const int64_t pooled_width = p.output_width, channels_padded = band.channels_padded;
  const int64_t row_step = band.conv_columns * channels_padded;  // one convolution row of the band
  for (int64_t pooled_column = 0; pooled_column < pooled_width; ++pooled_column) {
    const int64_t out = pooled_column * output_channels;
    float* window = gradient + pooled_column * pool_width * channels_padded;
    for (int64_t channel = 0; channel < channels_padded; channel += simd::kLanes) {
      const int64_t width = std::clamp<int64_t>(output_channels - channel, 0, simd::kLanes);
      floatv g = {};
      maskv position = maskv{} - 1;  // past the real channels: matches no position
      if (width > 0) {
        g = simd::load_lanes(output_gradient + out + channel, width);
        if (relu) g = simd::load_lanes(output + out + channel, width) > floatv{} ? g : floatv{};
        position = load_window_index(window_index + out + channel, width);
      }
      simd::store(bias_partial + channel, simd::load(bias_partial + channel) + g);
      float* pixel = window + channel;
      for (int64_t dy = 0; dy < pool_height; ++dy) {
        for (int64_t dx = 0; dx < pool_width; ++dx) {
          const maskv here = position == simd::broadcast_int(static_cast<int32_t>(dy * pool_width + dx));
          simd::store(pixel + dy * row_step + dx * channels_padded, here ? g : floatv{});
        }
      }
    }
  }
}

// The kernel gradient of one band for one block of kBlockWidth channels and `Entries` (kh, kw, ci) entries:
// partial[e][0..kBlockWidth) += sum over the band's pixels of patch[pixel + offsets[e]] * gradient[pixel].
template <int Entries>
void accumulate_band(const Conv2DParams& c, const Band& band, const float* patch, const int64_t* offsets,
                     const float* gradient, float* partial) {
  floatv acc[Entries][2] = {};
  const int64_t patch_row_size = band.patch_columns * c.input_channels;
  for (int64_t r = 0; r < band.conv_rows; ++r) {
    const float* x = patch + r * c.stride_height * patch_row_size;
    const float* dy = gradient + r * band.conv_columns * band.channels_padded;
    for (int64_t column = 0; column < band.conv_columns; ++column) {
      const floatv g0 = simd::load(dy), g1 = simd::load(dy + simd::kLanes);
      for (int e = 0; e < Entries; ++e) {
        const floatv b = simd::broadcast(x[offsets[e]]);
        acc[e][0] += b * g0;
        acc[e][1] += b * g1;
      }
      x += c.stride_width * c.input_channels;
      dy += band.channels_padded;
    }
  }
  for (int e = 0; e < Entries; ++e) {
    float* row = partial + e * band.channels_padded;
    simd::store(row, simd::load(row) + acc[e][0]);
    simd::store(row + simd::kLanes, simd::load(row + simd::kLanes) + acc[e][1]);
  }
}

void accumulate_band_any(int64_t entries, const Conv2DParams& c, const Band& band, const float* patch,
                         const int64_t* offsets, const float* gradient, float* partial) {
  switch (entries) {
    case 1: accumulate_band<1>(c, band, patch, offsets, gradient, partial); break;
    case 2: accumulate_band<2>(c, band, patch, offsets, gradient, partial); break;
    case 3: accumulate_band<3>(c, band, patch, offsets, gradient, partial); break;
    case 4: accumulate_band<4>(c, band, patch, offsets, gradient, partial); break;
    case 5: accumulate_band<5>(c, band, patch, offsets, gradient, partial); break;
    default: accumulate_band<6>(c, band, patch, offsets, gradient, partial); break;
  }
}

// One 6-pixel x kBlockWidth-channel tile of the band: the micro-kernel's sum (accumulate_tile's order:
// taps, then depth) in 12 named accumulators, which the compiler keeps in registers (an array
// passed by reference here stayed on the stack), then store_block's bias and activation.
// TapCount, Depth: known at compile time (unrolled loops) for the commonest first layer, 0 otherwise.
template <int TapCount = 0, int Depth = 0>
inline void convolve_tile(const float* const* rows, int64_t tap_count, int64_t depth, const float* weights,
                          const float* bias_block, Activation activation, int64_t count, int64_t stride,
                          float* destination) {
  if constexpr (TapCount > 0) tap_count = TapCount;
  if constexpr (Depth > 0) depth = Depth;
  floatv a00 = {}, a01 = {}, a10 = {}, a11 = {}, a20 = {}, a21 = {}, a30 = {}, a31 = {}, a40 = {}, a41 = {},
         a50 = {}, a51 = {};
  for (int64_t t = 0; t < tap_count; ++t, rows += kTilePixels, weights += depth * kBlockWidth) {
    const float *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3], *r4 = rows[4], *r5 = rows[5];
    for (int64_t k = 0; k < depth; ++k) {
      const floatv w0 = simd::load(weights + k * kBlockWidth), w1 = simd::load(weights + k * kBlockWidth + simd::kLanes);
      multiply_add_pixel(r0[k], w0, w1, a00, a01);
      multiply_add_pixel(r1[k], w0, w1, a10, a11);
      multiply_add_pixel(r2[k], w0, w1, a20, a21);
      multiply_add_pixel(r3[k], w0, w1, a30, a31);
      multiply_add_pixel(r4[k], w0, w1, a40, a41);
      multiply_add_pixel(r5[k], w0, w1, a50, a51);
    }
  }
  const floatv low[kTilePixels] = {a00, a10, a20, a30, a40, a50}, high[kTilePixels] = {a01, a11, a21, a31, a41, a51};
  for (int64_t q = 0; q < count; ++q) {
    store_block(destination + q * stride, kBlockWidth, low[q], high[q], bias_block, activation);
  }
  for (int64_t q = 0; q < count; ++q) finish_activation(destination + q * stride, kBlockWidth, activation);
}

// How a 2x2 window's values become its output (pool_window).
enum class WindowPooling {
  // Training: each pixel's epilogue, then the first maximum and its position, by max pooling's rule.
  with_positions,
  // Inference: each pixel's epilogue, then the maximum (the rule itself where a NaN is).
  epilogue_then_maximum,
  // Inference with a bias whose every lane is finite and not -0: the maximum of the sums, then one
  // epilogue (the rule, on each pixel's epilogue, where a NaN is). Bitwise the same: x -> x + b
  // and ReLU never decrease, so they carry the maximum over; and no value is -0 after + b
  // (a sum is -0 only when both terms are), so equal values are equal bits and which of them
  // is first does not matter.
  maximum_then_epilogue,
};

// One 2x2 window of one channel vector, its four pixels' sums (q = dy * 2 + dx: 0 top left, 1 top
// right, 2 bottom left, 3 bottom right) in registers: store_block's epilogue (bias, then the
// activation, relu or linear) on each, then the first maximum by max pooling's rule and, with
// positions, its position; `width` <= kLanes channels stored. Bitwise the band buffer's store then
// pool_band. Without positions, a window with no NaN (the sum of its four values is not NaN) takes
// the maximum by three maxps in order, each keeping the earlier value on a tie (as the rule does):
// the rule's own compare, select and NaN test cost three times as many instructions, all on the
// FMA pipes.
template <WindowPooling Pooling, Activation kActivation>
__attribute__((always_inline)) inline void pool_window(floatv p0, floatv p1, floatv p2, floatv p3,
                                                       const float* bias, int64_t width, float* output,
                                                       uint8_t* window_index) {
  constexpr bool kPositions = Pooling == WindowPooling::with_positions;
  auto activate = [](floatv value) {
    if constexpr (kActivation == Activation::relu) value = simd::max_zero(value);
    return value;
  };
  // max(a, b) in order: a if a > b, else b (the earlier value on a tie).
  auto maximum = [](floatv a0, floatv a1, floatv a2, floatv a3) {
    return simd::raise_to(a3, simd::raise_to(a2, simd::raise_to(a1, a0)));
  };
  if constexpr (Pooling == WindowPooling::maximum_then_epilogue) {
    if (!simd::any_nan((p0 + p1) + (p2 + p3))) {  // NaN where a value is (or where inf meets -inf)
      simd::store_lanes(output, activate(maximum(p0, p1, p2, p3) + simd::load(bias)), width);
      return;
    }
  }
  if (bias != nullptr) {
    const floatv b = simd::load(bias);
    p0 += b;
    p1 += b;
    p2 += b;
    p3 += b;
  }
  p0 = activate(p0);
  p1 = activate(p1);
  p2 = activate(p2);
  p3 = activate(p3);
  floatv best = p0;
  maskv position = {};
  if (kPositions || simd::any_nan((p0 + p1) + (p2 + p3))) {
    const floatv candidates[3] = {p1, p2, p3};
    for (int q = 1; q < 4; ++q) {
      const maskv wins = max_pool_wins(candidates[q - 1], best);
      best = wins ? candidates[q - 1] : best;
      if constexpr (kPositions) position = wins ? simd::broadcast_int(q) : position;
    }
  } else {
    best = maximum(p0, p1, p2, p3);
  }
  simd::store_lanes(output, best, width);
  if constexpr (kPositions) {
    uint8_t positions[simd::kLanes];
    simd::narrow_to_bytes(position, positions);
    if (width == simd::kLanes) {
      std::memcpy(window_index, positions, simd::kLanes);  // one move, not a call
    } else {
      std::memcpy(window_index, positions, static_cast<size_t>(width));
    }
  }
}

// One 2x2 pooling window for one block of kBlockWidth channels, all in registers: its four pixels'
// sums (convolve_tile's order: taps, then depth) in 8 accumulators, then pool_window on each
// vector, so that nothing goes through the band buffer. `pixel`: the window's top-left pixel's
// first patch float; the pixel to its right is column_step floats on, the one below row_step;
// each tap (a merged kernel row) is tap_step floats down. TapCount, Depth: compile-time for the
// commonest first layer (a 3x3 kernel on one channel), 0 otherwise.
template <WindowPooling Pooling, Activation kActivation, int TapCount, int Depth>
__attribute__((always_inline)) inline void convolve_pool_window(const float* pixel, int64_t row_step,
                                                                int64_t column_step, int64_t tap_step,
                                                                int64_t tap_count, int64_t depth,
                                                                const float* weights, const float* bias_block,
                                                                int64_t width, float* output,
                                                                uint8_t* window_index) {
  if constexpr (TapCount > 0) tap_count = TapCount;
  if constexpr (Depth > 0) depth = Depth;
  // The weights reloaded for every window: hoisted out of the window loop, GCC 12 kept the 18
  // vectors on the stack and ran each sum's 9 multiply-adds back to back.
  weights = simd::opaque(weights);
  floatv a00 = {}, a01 = {}, a10 = {}, a11 = {}, a20 = {}, a21 = {}, a30 = {}, a31 = {};
  const float* r0 = pixel;
  for (int64_t t = 0; t < tap_count; ++t, r0 += tap_step, weights += depth * kBlockWidth) {
    const float *r1 = r0 + column_step, *r2 = r0 + row_step, *r3 = r0 + row_step + column_step;
    for (int64_t k = 0; k < depth; ++k) {
      const floatv w0 = simd::load(weights + k * kBlockWidth), w1 = simd::load(weights + k * kBlockWidth + simd::kLanes);
      multiply_add_pixel(r0[k], w0, w1, a00, a01);
      multiply_add_pixel(r1[k], w0, w1, a10, a11);
      multiply_add_pixel(r2[k], w0, w1, a20, a21);
      multiply_add_pixel(r3[k], w0, w1, a30, a31);
    }
  }
  // The high vector's sums computed here, not sunk into the branch below: there GCC 12 ran them as
  // a second pass over the taps, keeping the first pass's broadcasts on the stack.
  a01 = simd::in_register(a01);
  a11 = simd::in_register(a11);
  a21 = simd::in_register(a21);
  a31 = simd::in_register(a31);
  const int64_t low_width = std::min<int64_t>(width, simd::kLanes);
  pool_window<Pooling, kActivation>(a00, a10, a20, a30, bias_block, low_width, output, window_index);
  if (width > simd::kLanes) {
    pool_window<Pooling, kActivation>(a01, a11, a21, a31, bias_block + (bias_block != nullptr ? simd::kLanes : 0),
                                      width - simd::kLanes, output + simd::kLanes,
                                      window_index + (window_index != nullptr ? simd::kLanes : 0));
  }
}

// Each window's first maximum in row-major order over one band: a later position wins only when
// strictly greater, or NaN over a non-NaN best (as max_pool2d_forward). PoolHeight/PoolWidth: the
// window at compile time (the common 2x2, unrolled), or 0 for p's. Positions: whether the positions
// go to window_index (training; inference passes skip them).
template <int PoolHeight, int PoolWidth, bool Positions>
void pool_band(const Pool2DParams& p, const Band& band, int64_t channels, const float* convolution, float* output,
               uint8_t* window_index) {
  const int64_t pool_height = PoolHeight > 0 ? PoolHeight : p.pool_height;
  const int64_t pool_width = PoolWidth > 0 ? PoolWidth : p.pool_width;
  const int64_t row_stride = band.conv_columns * band.channels_padded;
  for (int64_t pooled_column = 0; pooled_column < p.output_width; ++pooled_column) {
    const float* window = convolution + pooled_column * pool_width * band.channels_padded;
    for (int64_t channel = 0; channel < channels; channel += simd::kLanes) {
      floatv best = simd::load(window + channel);
      maskv best_position = {};
      for (int64_t dy = 0; dy < pool_height; ++dy)
        for (int64_t dx = 0; dx < pool_width; ++dx) {
          if (dy == 0 && dx == 0) continue;
          const floatv value = simd::load(window + dy * row_stride + dx * band.channels_padded + channel);
          const maskv wins = max_pool_wins(value, best);
          best = wins ? value : best;
          if constexpr (Positions) {
            const int32_t position = static_cast<int32_t>(dy * pool_width + dx);
            best_position = wins ? simd::broadcast_int(position) : best_position;
          }
        }
      const int64_t width = std::min<int64_t>(simd::kLanes, channels - channel);
      if (width == simd::kLanes) {
        simd::store(output + channel, best);
      } else {
        simd::store_partial(output + channel, best, width);
      }
      if constexpr (Positions) {
        // The positions as bytes in a local first: byte stores through window_index could alias
        // anything, and would make the compiler reload every pointer after each.
        uint8_t positions[simd::kLanes];
        simd::narrow_to_bytes(best_position, positions);
        if (width == simd::kLanes) {
          std::memcpy(window_index + channel, positions, simd::kLanes);
        } else {
          std::memcpy(window_index + channel, positions, static_cast<size_t>(width));
        }
      }
    }
    output += channels;
    if constexpr (Positions) window_index += channels;
  }
}

}  // namespace

void conv2d_max_pool2d_forward(const Conv2DParams& c, const Pool2DParams& p, const float* input, const float* kernel,
                               const float* bias, float* output, uint8_t* window_index) {
  if (p.output_size() == 0) return;
  if (window_index == nullptr && conv2d_winograd_max_pool2d_fusable(c, p)) {
    // Inference: the convolution conv2d_forward runs (Winograd), each output tile pooled as it is
    // stored; bitwise that convolution followed by max_pool2d_forward.
    Conv2DParams pooled = c;
    pooled.max_pool = &p;
    conv2d_forward(pooled, input, kernel, bias, output);
    return;
  }
  const Band band = band_of(c, p);
  const int64_t taps = c.kernel_height * c.kernel_width;
  const int64_t blocks = ceil_div(c.output_channels, kBlockWidth);
  // The caller's buffers; the parallel region below reads them through pointers.
  thread_local std::vector<float> packed, padded_bias;
  packed.resize(static_cast<size_t>(blocks * taps * c.input_channels * kBlockWidth));
  pack_column_blocks(kernel, taps * c.input_channels, c.output_channels, packed.data());
  const float* bias_blocks = padded_channels(c.use_bias ? bias : nullptr, c.output_channels, blocks * kBlockWidth,
                                             padded_bias);
  const float* packed_blocks = packed.data();
  // With unit dilation along the width a kernel row's taps read kernel_width * Ci contiguous
  // patch floats: one tap of that depth (the packed [kh][kw][ci][kBlockWidth] weights are laid out for it).
  const bool merged = c.dilation_width == 1;
  const int64_t depth = merged ? c.kernel_width * c.input_channels : c.input_channels;
  const int64_t tap_count = merged ? c.kernel_height : taps;
  // A 3x3 kernel on one channel (MNIST-style first layers): 3 merged taps of depth 3, unrolled.
  const bool three_by_three_on_one_channel = merged && tap_count == 3 && depth == 3;
  const int64_t block_stride = taps * c.input_channels * kBlockWidth;
  const int64_t patch_row_size = band.patch_columns * c.input_channels;
  const int64_t band_pixels = band.conv_rows * band.conv_columns;
  const int64_t items = p.batch * p.output_height;  // bands
  if (merged && p.pool_height == 2 && p.pool_width == 2) {
    // Every window in registers (convolve_pool_window).
    const int64_t row_step = c.stride_height * patch_row_size, column_step = c.stride_width * c.input_channels;
    const int64_t tap_step = c.dilation_height * patch_row_size, window_step = 2 * column_step;
    // kernel: one convolve_pool_window instance (window pooling, activation and, for a 3x3 kernel on one
    // channel, the loop counts fixed at compile time).
    auto run = [&](auto kernel) {
      parallel::parallel_region([&](int thread, int threads) {
        float* patch = at_least(band_scratch().patch, band.patch_rows * patch_row_size);
        const int64_t item_end = items * (thread + 1) / threads;
        for (int64_t item = items * thread / threads; item < item_end; ++item) {
          const int64_t image = item / p.output_height, pooled_row = item % p.output_height;
          copy_patch(c, band, input, image, pooled_row, patch);
          const int64_t out = item * p.output_width * c.output_channels;
          for (int64_t pooled_column = 0; pooled_column < p.output_width; ++pooled_column) {
            const float* pixel = patch + pooled_column * window_step;
            for (int64_t block = 0; block < blocks; ++block) {
              const int64_t at = out + pooled_column * c.output_channels + block * kBlockWidth;
              kernel(pixel, row_step, column_step, tap_step, tap_count, depth, packed_blocks + block * block_stride,
                     bias_blocks != nullptr ? bias_blocks + block * kBlockWidth : nullptr,
                     std::min(kBlockWidth, c.output_channels - block * kBlockWidth), output + at,
                     window_index != nullptr ? window_index + at : nullptr);
            }
          }
        }
      });
    };
    // The instance as a lambda, so that it inlines into the loop above (a function pointer would not).
    auto with = [&](auto pooling, auto relu, auto fixed) {
      constexpr WindowPooling kPooling = decltype(pooling)::value;
      constexpr bool kFixed = decltype(fixed)::value;
      constexpr Activation kActivation = decltype(relu)::value ? Activation::relu : Activation::linear;
      run([](auto... arguments) {
        convolve_pool_window<kPooling, kActivation, kFixed ? 3 : 0, kFixed ? 3 : 0>(arguments...);
      });
    };
    auto with_fixed = [&](auto pooling, auto relu) {
      if (three_by_three_on_one_channel) {
        with(pooling, relu, std::true_type{});
      } else {
        with(pooling, relu, std::false_type{});
      }
    };
    auto with_relu = [&](auto pooling) {
      if (c.activation == Activation::relu) {
        with_fixed(pooling, std::true_type{});
      } else {
        with_fixed(pooling, std::false_type{});
      }
    };
    // maximum_then_epilogue's condition on the bias: every lane finite and not -0.
    bool plain_bias = bias_blocks != nullptr;
    for (int64_t channel = 0; plain_bias && channel < c.output_channels; ++channel) {
      plain_bias = std::isfinite(bias[channel]) && !(bias[channel] == 0.0f && std::signbit(bias[channel]));
    }
    using Pooling = WindowPooling;
    if (window_index != nullptr) {
      with_relu(std::integral_constant<Pooling, Pooling::with_positions>{});
    } else if (plain_bias) {
      with_relu(std::integral_constant<Pooling, Pooling::maximum_then_epilogue>{});
    } else {
      with_relu(std::integral_constant<Pooling, Pooling::epilogue_then_maximum>{});
    }
    return;
  }
  parallel::parallel_region([&](int thread, int threads) {
    BandScratch& scratch = band_scratch();
    float* patch = at_least(scratch.patch, band.patch_rows * patch_row_size);
    float* convolution = at_least(scratch.band, band_pixels * band.channels_padded);
    const float* zero_row = at_least(scratch.zeros, depth);
    std::fill(scratch.zeros.begin(), scratch.zeros.end(), 0.0f);
    // Every band has the same geometry and this thread's patch buffer is fixed, so the tiles' row
    // pointers are set once per call: tile i's taps at rows[i * tap_count * 6 ...].
    const int64_t tiles = ceil_div(band_pixels, kTilePixels);
    const float** rows = at_least(scratch.rows, tiles * tap_count * kTilePixels);
    for (int64_t tile = 0; tile < tiles; ++tile) {
      for (int64_t q = 0; q < kTilePixels; ++q) {
        const int64_t pixel = tile * kTilePixels + q;
        const int64_t r = pixel / band.conv_columns, column = pixel % band.conv_columns;
        for (int64_t t = 0; t < tap_count; ++t) {
          const int64_t kh = merged ? t : t / c.kernel_width, kw = merged ? 0 : t % c.kernel_width;
          rows[(tile * tap_count + t) * kTilePixels + q] =
              pixel < band_pixels ? patch + (r * c.stride_height + kh * c.dilation_height) * patch_row_size +
                                        (column * c.stride_width + kw * c.dilation_width) * c.input_channels
                                  : zero_row;
        }
      }
    }
    const int64_t item_end = items * (thread + 1) / threads;
    for (int64_t item = items * thread / threads; item < item_end; ++item) {
      const int64_t image = item / p.output_height, pooled_row = item % p.output_height;
      copy_patch(c, band, input, image, pooled_row, patch);
      for (int64_t tile = 0, first = 0; first < band_pixels; ++tile, first += kTilePixels) {
        const int64_t count = std::min(kTilePixels, band_pixels - first);
        const float* const* tile_rows = rows + tile * tap_count * kTilePixels;
        for (int64_t block = 0; block < blocks; ++block) {
          const float* bias_block = bias_blocks != nullptr ? bias_blocks + block * kBlockWidth : nullptr;
          float* destination = convolution + first * band.channels_padded + block * kBlockWidth;
          if (three_by_three_on_one_channel) {
            convolve_tile<3, 3>(tile_rows, tap_count, depth, packed_blocks + block * block_stride, bias_block,
                                c.activation, count, band.channels_padded, destination);
          } else {
            convolve_tile(tile_rows, tap_count, depth, packed_blocks + block * block_stride, bias_block,
                          c.activation, count, band.channels_padded, destination);
          }
        }
      }
      const int64_t out = item * p.output_width * c.output_channels;
      const bool square = p.pool_height == 2 && p.pool_width == 2;
      if (window_index == nullptr) {
        (square ? pool_band<2, 2, false> : pool_band<0, 0, false>)(p, band, c.output_channels, convolution,
                                                                   output + out, nullptr);
      } else {
        (square ? pool_band<2, 2, true> : pool_band<0, 0, true>)(p, band, c.output_channels, convolution,
                                                                 output + out, window_index + out);
      }
    }
  });
}

void conv2d_max_pool2d_backward_kernel(const Conv2DParams& c, const Pool2DParams& p, const float* input,
                                       const float* output, const uint8_t* window_index, const float* output_gradient,
                                       float* kernel_gradient, float* bias_gradient) {
  const int64_t entries = c.kernel_height * c.kernel_width * c.input_channels;  // Keras's (kh, kw, ci) order
  std::fill(kernel_gradient, kernel_gradient + entries * c.output_channels, 0.0f);
  if (bias_gradient != nullptr) std::fill(bias_gradient, bias_gradient + c.output_channels, 0.0f);
  if (p.output_size() == 0) return;
  const Band band = band_of(c, p);
  const int64_t channels_padded = band.channels_padded;
  const int64_t patch_row_size = band.patch_columns * c.input_channels;
  const int64_t band_pixels = band.conv_rows * band.conv_columns;
  // Where entry (kh, kw, ci) of a pixel's patch lies, from the pixel's first patch float.
  thread_local std::vector<int64_t> offsets;
  offsets.resize(static_cast<size_t>(entries));
  for (int64_t kh = 0, e = 0; kh < c.kernel_height; ++kh)
    for (int64_t kw = 0; kw < c.kernel_width; ++kw)
      for (int64_t ci = 0; ci < c.input_channels; ++ci, ++e)
        offsets[e] = kh * c.dilation_height * patch_row_size + kw * c.dilation_width * c.input_channels + ci;
  // One partial per chunk of kChunkImages images: rows 0..entries-1 the kernel gradient, row
  // `entries` the bias gradient, channels_padded floats each.
  constexpr int64_t kChunkImages = 2;
  const int64_t chunks = ceil_div(p.batch, kChunkImages);
  const int64_t partial_size = (entries + 1) * channels_padded;
  thread_local std::vector<float> partial_buffer;
  partial_buffer.assign(static_cast<size_t>(chunks * partial_size), 0.0f);
  // Pointers, not the thread_local vectors, go into the parallel region (a worker naming them
  // would get its own).
  float* const partials = partial_buffer.data();
  const int64_t* const entry_offsets = offsets.data();
  const bool relu = c.activation == Activation::relu;
  parallel::parallel_for(chunks, [&](int64_t chunk) {
    BandScratch& scratch = band_scratch();
    float* patch = at_least(scratch.patch, band.patch_rows * patch_row_size);
    float* gradient = at_least(scratch.band, band_pixels * channels_padded);
    float* partial = partials + chunk * partial_size;
    float* bias_partial = partial + entries * channels_padded;
    const int64_t image_end = std::min(p.batch, (chunk + 1) * kChunkImages);
    for (int64_t image = chunk * kChunkImages; image < image_end; ++image) {
      for (int64_t pooled_row = 0; pooled_row < p.output_height; ++pooled_row) {
        copy_patch(c, band, input, image, pooled_row, patch);
        const int64_t first_out = (image * p.output_height + pooled_row) * p.output_width * c.output_channels;
        const bool square = p.pool_height == 2 && p.pool_width == 2;
        (square ? band_gradient<2, 2> : band_gradient<0, 0>)(p, band, c.output_channels, relu,
                                                            output_gradient + first_out, output + first_out,
                                                            window_index + first_out, gradient, bias_partial);
        for (int64_t block = 0; block < channels_padded; block += kBlockWidth) {
          for (int64_t first_entry = 0; first_entry < entries; first_entry += kTilePixels) {
            accumulate_band_any(std::min(kTilePixels, entries - first_entry), c, band, patch,
                                entry_offsets + first_entry, gradient + block,
                                partial + first_entry * channels_padded + block);
          }
        }
      }
    }
  });
  // The chunks' partials in chunk order.
  parallel::parallel_for(entries + 1, [&](int64_t row) {
    float* destination = row < entries ? kernel_gradient + row * c.output_channels : bias_gradient;
    if (destination == nullptr) return;
    for (int64_t co = 0; co < c.output_channels; ++co) {
      float sum = 0.0f;
      for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partials[chunk * partial_size + row * channels_padded + co];
      destination[co] = sum;
    }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
