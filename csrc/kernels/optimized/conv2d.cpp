// Optimised Conv2D (indirect convolution, arXiv 1907.02129, in NHWC):
// - forward and input-gradient share one register-blocked micro-kernel: a tile of 6 output pixels
//   x kBlockWidth output channels (16, or 32 on avx512) lives in 12 vector accumulators; for each kernel tap it reads one
//   pointer per pixel (to an input row of `depth` channels, or to a row of zeros where the tap
//   falls in the padding) and per depth step does 6 broadcasts, 2 weight loads and 12 FMAs.
//   Only the (small) weights are packed; activations are never copied (no im2col).
// - the input gradient is that same kernel run over the output gradient with the weights
//   transposed per tap (in and out channels swapped); taps that fall between strides read zeros.
// - the kernel gradient is a per-tap GEMM dW[tap] = X_tap^T . dY, blocked kGradientChannels (6, or 12 on avx512) input channels x kBlockWidth
//   output channels; each (tap, block) belongs to one thread, which walks the pixels in a fixed
//   order, so the result is bitwise the same for any number of threads.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/optimized/optimized.h"
#include "kernels/optimized/prefetch.h"
#include "kernels/optimized/conv_microkernel.h"
#include "kernels/optimized/simd.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

using namespace microkernel;

// Geometry of one indirect pass: output pixels (image rows x columns) read `depth`-long rows of a
// source through per-tap pointers; the result has `columns` channels per pixel.
struct IndirectPass {
  int64_t images = 0, rows = 0, columns_per_row = 0;  // the pixels computed
  int64_t depth = 0;                                  // channels per source row
  int64_t output_channels = 0;                        // channels per result pixel
  int64_t kernel_height = 0, kernel_width = 0;
  // Where result pixel (image, row, column) is stored: contiguously in (image, row, column) order
  // when result_height is 0, else at pixel (row * result_row_step + result_row_offset,
  // column * result_column_step + result_column_offset) of result_height x result_width images.
  int64_t result_height = 0, result_width = 0;
  int64_t result_row_step = 1, result_row_offset = 0, result_column_step = 1, result_column_offset = 0;
  OutputAffine affine;  // the forward epilogue's affine after the activation (none: scale null)
};

// Where result pixel (row, column) reads at tap (kh, kw), when that is affine: source pixel
// (row * row_step + row_offset + kh * tap_row_step, column * column_step + column_offset +
// kw * tap_column_step) of a source_height x source_width image, or padding outside it.
struct AffineSource {
  const float* data = nullptr;
  int64_t source_height = 0, source_width = 0;
  int64_t row_step = 1, row_offset = 0, tap_row_step = 1;
  int64_t column_step = 1, column_offset = 0, tap_column_step = 1;
};

// The result pixels of one tile: up to 6 consecutive pixels of the flattened (image, row,
// column) sequence, so a tile may continue on the next row or image and none is wasted at row ends.
struct TilePixels {
  int64_t count = 0;
  int64_t image[kTilePixels], row[kTilePixels], column[kTilePixels];
  // All kTilePixels pixels on one row of one image (columns column[0] + p): their pointers are
  // then one pointer plus p steps, worked out once instead of per pixel (a 3-channel first
  // layer's tile spent about as long on its pointers as on one block's multiply-adds).
  bool one_row = false;
};

// Walks a thread's consecutive tiles: one division to place the first pixel, then increments.
class TileCursor {
 public:
  TileCursor(const IndirectPass& pass, int64_t first_pixel, int64_t total_pixels)
      : pass_(pass), pixel_(first_pixel), total_(total_pixels) {
    column_ = first_pixel % pass.columns_per_row;
    const int64_t image_row = first_pixel / pass.columns_per_row;
    row_ = image_row % pass.rows;
    image_ = image_row / pass.rows;
  }
  TilePixels next() {
    TilePixels tile;
    tile.count = std::min(kTilePixels, total_ - pixel_);
    if (tile.count == kTilePixels && column_ + kTilePixels <= pass_.columns_per_row) {
      tile.one_row = true;
      for (int64_t p = 0; p < kTilePixels; ++p) {
        tile.image[p] = image_;
        tile.row[p] = row_;
        tile.column[p] = column_ + p;
      }
      column_ += kTilePixels;
      if (column_ == pass_.columns_per_row) {
        column_ = 0;
        if (++row_ == pass_.rows) {
          row_ = 0;
          ++image_;
        }
      }
      pixel_ += kTilePixels;
      return tile;
    }
    for (int64_t p = 0; p < tile.count; ++p) {
      tile.image[p] = image_;
      tile.row[p] = row_;
      tile.column[p] = column_;
      if (++column_ == pass_.columns_per_row) {
        column_ = 0;
        if (++row_ == pass_.rows) {
          row_ = 0;
          ++image_;
        }
      }
    }
    pixel_ += tile.count;
    return tile;
  }

 private:
  const IndirectPass& pass_;
  int64_t pixel_, total_, image_ = 0, row_ = 0, column_ = 0;
};

// Points the 6 pixels' rows of every active tap of one tile; returns the number of active taps.
// Merged form (tap_column_step 1 and every pixel's kw span inside the source): the kernel_width
// taps of a kernel row read kernel_width * depth contiguous floats, so they become one tap of that
// depth — the packed weights [kh][kw][depth][kBlockWidth] are already laid out for it — and taps fall to
// kernel_height. `zero_row` holds kernel_width * depth zeros; pixels past the tile's end read it.
template <typename SourceRow>
inline int64_t point_tile_rows(const IndirectPass& pass, const AffineSource* affine, const TilePixels& tile,
                               const float* zero_row, SourceRow& source_row, const float** rows,
                               int64_t* tap_indices, bool& merged) {
  merged = affine != nullptr && affine->tap_column_step == 1;
  if (merged && tile.one_row) {
    // Pixel p reads from first_column + p * column_step: inside the source for every p when the
    // first and the last are.
    const int64_t first_column = tile.column[0] * affine->column_step + affine->column_offset;
    const int64_t last_column = first_column + (kTilePixels - 1) * affine->column_step;
    if (first_column >= 0 && last_column + pass.kernel_width - 1 < affine->source_width) {
      const int64_t row_size = affine->source_width * pass.depth;
      const int64_t pixel_step = affine->column_step * pass.depth;
      const int64_t first_row = tile.row[0] * affine->row_step + affine->row_offset;
      const float* first = affine->data + (tile.image[0] * affine->source_height + first_row) * row_size +
                           first_column * pass.depth;
      int64_t tap_count = 0;
      for (int64_t kh = 0; kh < pass.kernel_height; ++kh) {
        const int64_t source_row_index = first_row + kh * affine->tap_row_step;
        if (source_row_index < 0 || source_row_index >= affine->source_height) continue;
        const float* tap_first = first + kh * affine->tap_row_step * row_size;
        const float** tap_rows = rows + tap_count * kTilePixels;
        for (int64_t p = 0; p < kTilePixels; ++p) tap_rows[p] = tap_first + p * pixel_step;
        tap_indices[tap_count++] = kh;
      }
      return tap_count;
    }
  }
  int64_t first_source_column[kTilePixels];
  for (int64_t p = 0; merged && p < tile.count; ++p) {
    first_source_column[p] = tile.column[p] * affine->column_step + affine->column_offset;
    merged = first_source_column[p] >= 0 && first_source_column[p] + pass.kernel_width - 1 < affine->source_width;
  }
  int64_t tap_count = 0;
  if (merged) {
    // Pixel p reads source row first_row[p] + kh * tap_row_step at tap row kh, at
    // pixel_offset[p] + kh * tap_row_step * row_size floats into the source: the products are
    // taken once per pixel, and each tap row only adds (computed per tap, they took a fifth of a
    // 3-channel first layer's time).
    const int64_t row_size = affine->source_width * pass.depth;
    const int64_t tap_row_floats = affine->tap_row_step * row_size;
    int64_t first_row[kTilePixels];
    int64_t pixel_offset[kTilePixels];
    for (int64_t p = 0; p < kTilePixels; ++p) {
      if (p < tile.count) {
        first_row[p] = tile.row[p] * affine->row_step + affine->row_offset;
        pixel_offset[p] = (tile.image[p] * affine->source_height + first_row[p]) * row_size +
                          first_source_column[p] * pass.depth;
      } else {
        first_row[p] = -1 - (pass.kernel_height - 1) * affine->tap_row_step;  // below row 0 at every kh
        pixel_offset[p] = 0;
      }
    }
    for (int64_t kh = 0; kh < pass.kernel_height; ++kh) {
      const float** tap_rows = rows + tap_count * kTilePixels;
      bool any = false;
      for (int64_t p = 0; p < kTilePixels; ++p) {
        const int64_t source_row_index = first_row[p] + kh * affine->tap_row_step;
        const bool inside = source_row_index >= 0 && source_row_index < affine->source_height;
        any |= inside;
        tap_rows[p] = inside ? affine->data + pixel_offset[p] + kh * tap_row_floats : zero_row;
      }
      if (any) tap_indices[tap_count++] = kh;
    }
    return tap_count;
  }
  for (int64_t kh = 0, tap = 0; kh < pass.kernel_height; ++kh) {
    for (int64_t kw = 0; kw < pass.kernel_width; ++kw, ++tap) {
      const float** tap_rows = rows + tap_count * kTilePixels;
      bool any = false;
      for (int64_t p = 0; p < kTilePixels; ++p) {
        const float* pointer =
            p < tile.count ? source_row(tile.image[p], tile.row[p], tile.column[p], kh, kw) : nullptr;
        any |= pointer != nullptr;
        tap_rows[p] = pointer != nullptr ? pointer : zero_row;
      }
      if (any) tap_indices[tap_count++] = tap;
    }
  }
  return tap_count;
}

// Runs the micro-kernel over every 6-pixel tile. `source_row(n, row, column, kh, kw)` returns the
// source row pointer or nullptr for padding; `affine` (may be null) describes the same mapping in
// closed form, which lets interior tiles take the merged form above. Results go to
// result[((n*rows+row)*columns+col)*C]. Taps are walked as (kh, kw) so that building the tile's row
// pointers needs no integer division. `residual` (null: none) is laid out as the result and added
// after the bias, before the activation.
template <typename SourceRow>
void run_indirect(const IndirectPass& pass, const AffineSource* affine, const float* packed,
                  const float* bias, Activation activation, float* result, const float* residual,
                  const float* zero_row, SourceRow&& source_row) {
  const int64_t total_pixels = pass.images * pass.rows * pass.columns_per_row;
  const int64_t tiles = ceil_div(total_pixels, kTilePixels);
  // The weights come packed in blocks of block_width_for(output_channels) (see there).
  const int64_t block_width = block_width_for(pass.output_channels);
  const bool narrow = block_width == simd::kLanes;
  const int64_t blocks = ceil_div(pass.output_channels, block_width);
  const int64_t taps = pass.kernel_height * pass.kernel_width;
  const int64_t block_stride = taps * pass.depth * block_width;
  parallel::parallel_region([&](int thread, int threads) {
    // Row pointers and active taps of one tile: on the stack for kernels up to 8x8 taps.
    constexpr int64_t kStackTaps = 64;
    const float* rows_on_stack[kStackTaps * kTilePixels];
    int64_t taps_on_stack[kStackTaps];
    std::vector<const float*> rows_on_heap;
    std::vector<int64_t> taps_on_heap;
    const float** rows = rows_on_stack;
    int64_t* tap_indices = taps_on_stack;
    if (taps > kStackTaps) {
      rows_on_heap.resize(static_cast<size_t>(taps * kTilePixels));
      taps_on_heap.resize(static_cast<size_t>(taps));
      rows = rows_on_heap.data();
      tap_indices = taps_on_heap.data();
    }
    // This thread's share of the tiles, in order (the same split on every call).
    const int64_t tile_begin = tiles * thread / threads, tile_end = tiles * (thread + 1) / threads;
    TileCursor cursor(pass, tile_begin * kTilePixels, total_pixels);
    for (int64_t tile_index = tile_begin; tile_index < tile_end; ++tile_index) {
      const TilePixels tile = cursor.next();
      bool merged = false;
      const int64_t tap_count = point_tile_rows(pass, affine, tile, zero_row, source_row, rows, tap_indices, merged);
      const int64_t depth = merged ? pass.depth * pass.kernel_width : pass.depth;
      float* pixel_result[kTilePixels];
      const float* pixel_residual[kTilePixels] = {};
      // Contiguous results, or one row's: pixel p p result-column steps after the first.
      const bool stepped = pass.result_height == 0 || tile.one_row;
      for (int64_t p = 0; p < tile.count; ++p) {
        if (p > 0 && stepped) {
          const int64_t column_step = pass.result_height == 0 ? 1 : pass.result_column_step;
          pixel_result[p] = pixel_result[0] + p * column_step * pass.output_channels;
        } else {
          pixel_result[p] =
              pass.result_height == 0
                  ? result + (tile_index * kTilePixels + p) * pass.output_channels
                  : result + ((tile.image[p] * pass.result_height + tile.row[p] * pass.result_row_step +
                               pass.result_row_offset) * pass.result_width +
                              tile.column[p] * pass.result_column_step + pass.result_column_offset) *
                                 pass.output_channels;
        }
        if (residual != nullptr) pixel_residual[p] = residual + (pixel_result[p] - result);
      }
      // One block of `zero`'s type (a whole vector, or avx512's 8-lane half) whose weights rows are
      // `row_width` floats apart, `width` channels from `first_channel`. Zeroed and stored
      // unrolled, as the wide tile's below.
      const auto narrow_tile = [&](auto zero, auto row_width, const float* packed_block, int64_t first_channel,
                                   int64_t width) {
        const OutputAffine block_affine = pass.affine.at(first_channel);
        decltype(zero) acc[kTilePixels];
#pragma GCC unroll 6
        for (int p = 0; p < kTilePixels; ++p) acc[p] = zero;
        accumulate_tile_narrow<decltype(zero), decltype(row_width)::value>(rows, tap_indices, tap_count, depth,
                                                                           packed_block, acc);
        const float* bias_block = bias != nullptr ? bias + first_channel : nullptr;
#pragma GCC unroll 6
        for (int p = 0; p < kTilePixels; ++p) {
          if (p < tile.count) {
            store_narrow_block(pixel_result[p] + first_channel, width, acc[p], bias_block, activation,
                               pixel_residual[p] != nullptr ? pixel_residual[p] + first_channel : nullptr,
                               block_affine);
          }
        }
        for (int64_t p = 0; p < tile.count; ++p) {
          finish_activation(pixel_result[p] + first_channel, width, activation, block_affine);
        }
      };
#if defined(__AVX512F__)
      if (block_width == simd::kHalfLanes) {
        narrow_tile(simd::floath{}, std::integral_constant<int64_t, simd::kHalfLanes>{}, packed, 0,
                    pass.output_channels);
        continue;
      }
#endif
      if (narrow) {
        narrow_tile(floatv{}, std::integral_constant<int64_t, simd::kLanes>{}, packed, 0, pass.output_channels);
        continue;
      }
      for (int64_t block = 0; block < blocks; ++block) {
        const int64_t first_channel = block * kBlockWidth;
        const int64_t width = std::min(kBlockWidth, pass.output_channels - first_channel);
        // A last block of one vector's channels or fewer (24 or 40 channels on the 8-lane tiers,
        // 48 or 80 on avx512) runs the one-vector tile over its packed rows: the second vector's
        // multiply-adds would all land on the block's zero padding. Each output's sum keeps its
        // order, so its bits.
        if (width <= simd::kLanes) {
          narrow_tile(floatv{}, std::integral_constant<int64_t, kBlockWidth>{}, packed + block * block_stride,
                      first_channel, width);
          continue;
        }
        // Zeroed and stored unrolled, with constant indices (the pixels past tile.count skipped,
        // not looped to), so the accumulators stay in registers across the taps: an aggregate
        // `= {}` and a loop to tile.count kept them in memory, zeroed by a `rep stos` that took
        // ~6% of a 3x3 stride-2 layer's time.
        floatv acc[kTilePixels][2];
#pragma GCC unroll 6
        for (int p = 0; p < kTilePixels; ++p) acc[p][0] = acc[p][1] = floatv{};
        accumulate_tile_any_depth(rows, tap_indices, tap_count, depth, packed + block * block_stride, acc);
        const float* bias_block = bias != nullptr ? bias + first_channel : nullptr;
        const OutputAffine block_affine = pass.affine.at(first_channel);
#pragma GCC unroll 6
        for (int p = 0; p < kTilePixels; ++p) {
          if (p < tile.count) {
            store_block(pixel_result[p] + first_channel, width, acc[p][0], acc[p][1], bias_block, activation,
                        pixel_residual[p] != nullptr ? pixel_residual[p] + first_channel : nullptr, block_affine);
          }
        }
        for (int64_t p = 0; p < tile.count; ++p) {
          finish_activation(pixel_result[p] + first_channel, width, activation, block_affine);
        }
      }
    }
  });
}

// The source row an affine pass reads at tap (kh, kw) of result pixel (n, row, column), or
// nullptr where that falls in the padding; rows hold `depth` floats.
inline auto affine_source_rows(const AffineSource& affine, int64_t depth) {
  return [&affine, depth](int64_t n, int64_t row, int64_t column, int64_t kh, int64_t kw) -> const float* {
    const int64_t source_row = row * affine.row_step + affine.row_offset + kh * affine.tap_row_step;
    const int64_t source_column = column * affine.column_step + affine.column_offset + kw * affine.tap_column_step;
    if (source_row < 0 || source_row >= affine.source_height || source_column < 0 ||
        source_column >= affine.source_width)
      return nullptr;
    return affine.data + ((n * affine.source_height + source_row) * affine.source_width + source_column) * depth;
  };
}

// 1x1 convolutions without padding: output pixel (n, oh, ow) reads input pixel
// (n, oh * stride_h, ow * stride_w) — input row i for output pixel i with unit strides — so the
// layer is the matrix product [pixels x depth] . [depth x output_channels] over those rows, and a
// tile needs no tap list, no padding checks and no per-pixel division (PointwiseRows walks the
// rows). With few input channels (an inverted residual block's 16-24-channel expansion, a residual
// network's stride-2 projection) the indirect tile's per-tile costs were most of the work: 16
// multiply-adds per output against a tile set-up and a stack round trip of the accumulators. Each
// output's sum runs in run_indirect's order (from zero over k, then bias, residual, activation), so
// a layer gives the same bits on either path.
inline bool pointwise_applicable(const Conv2DParams& p) {
  return p.kernel_height == 1 && p.kernel_width == 1 && p.pad_top == 0 && p.pad_left == 0 &&
         (p.output_height - 1) * p.stride_height < p.input_height &&
         (p.output_width - 1) * p.stride_width < p.input_width;
}

// The input rows of a pointwise layer's output pixels, in pixel order from `first_pixel`: the
// cursor keeps (image row, column) and steps them, one division at the start only.
class PointwiseRows {
 public:
  PointwiseRows(const Conv2DParams& p, const float* input, int64_t first_pixel)
      : p_(p), input_(input), column_(first_pixel % p.output_width) {
    const int64_t image_row = first_pixel / p.output_width;
    image_ = image_row / p.output_height;
    output_row_ = image_row % p.output_height;
    find_row();
  }
  const float* next() {
    const float* row = input_ + row_offset_ + column_ * p_.stride_width * p_.input_channels;
    if (++column_ == p_.output_width) {
      column_ = 0;
      if (++output_row_ == p_.output_height) {
        output_row_ = 0;
        ++image_;
      }
      find_row();
    }
    return row;
  }

 private:
  // An offset, not a pointer: past the last pixel it points past the input.
  void find_row() {
    row_offset_ = (image_ * p_.input_height + output_row_ * p_.stride_height) * p_.input_width * p_.input_channels;
  }
  const Conv2DParams& p_;
  const float* input_;
  int64_t column_, image_ = 0, output_row_ = 0, row_offset_ = 0;
};

// Pixels per pointwise tile: the tall tile, whose height spreads the row pointers and epilogue over
// as many multiply-adds as the registers allow (with 16 or 24 channels of depth, what decides the
// speed).
template <int Vectors>
constexpr int kPointwisePixels = kTallTilePixels<Vectors>;

// result[pixel][0 .. width) for `count` (<= Pixels) pixels whose input rows (`depth` floats each)
// are row_of(0 .. count): acc[p][v] = sum over k of row p[k] * weights[k][v-th vector], from zero,
// k ascending (accumulate_tile's order for one tap, so either path gives the same bits), then
// store_block's epilogue (bias, residual laid out as the result, activation). row_of(count ..
// Pixels) repeat the last row and are not stored. (row_of is inlined into multiply_rows: a list of
// row pointers read per tile and block would cost 4-5% on 16-32 channels of depth.)
// `RowWidth`: floats per packed weight row (the block's width; wider than the tile's Vectors
// vectors where a narrow tile runs a layer's last, partly empty block).
template <int Pixels, int Vectors, int64_t RowWidth = Vectors * simd::kLanes, typename RowOf>
inline void pointwise_tile(RowOf&& row_of, int64_t depth, int64_t count, const float* weights,
                           const float* bias_block, Activation activation, float* result,
                           const float* residual, int64_t result_stride, int64_t width, OutputAffine affine) {
  floatv acc[Pixels][Vectors];
  multiply_rows<Pixels, Vectors, RowWidth>(row_of, depth, weights, acc);
  // Stored unrolled, with constant indices (the pixels past count skipped, not looped to), so that
  // the accumulators are read from their registers rather than from a stack copy.
#pragma GCC unroll 24
  for (int p = 0; p < Pixels; ++p) {
    if (p >= count) continue;
    const float* residual_row = residual != nullptr ? residual + p * result_stride : nullptr;
    if constexpr (Vectors == 2) {
      store_block(result + p * result_stride, width, acc[p][0], acc[p][1], bias_block, activation, residual_row,
                  affine);
    } else {
      store_narrow_block(result + p * result_stride, width, acc[p][0], bias_block, activation, residual_row, affine);
    }
  }
  for (int64_t p = 0; p < count; ++p) finish_activation(result + p * result_stride, width, activation, affine);
}

// The pointwise pass over every output pixel, weights packed in blocks of Vectors * kLanes
// channels (pack_column_blocks), `bias` and `affine` padded to whole blocks (null: none). Each thread takes a
// fixed run of tiles and, per tile, its blocks (the tile's input rows stay in L1 across them).
template <int Vectors, int Pixels = kPointwisePixels<Vectors>>
void run_pointwise(const Conv2DParams& p, const float* input, const float* packed, const float* bias,
                   OutputAffine affine, float* result) {
  constexpr int64_t kWidth = Vectors * simd::kLanes;
  const int64_t pixels = p.batch * p.output_height * p.output_width;
  const int64_t depth = p.input_channels, output_channels = p.output_channels;
  const int64_t tiles = ceil_div(pixels, Pixels);
  const int64_t blocks = ceil_div(output_channels, kWidth);
  // Each thread takes an equal run of (tile, block) items, tile by tile: whole tiles but for at most
  // one at each end of its run, shared with a neighbour. (Runs of whole tiles left few tiles
  // unevenly split: a Dense layer at batch 128 makes 11 tiles of 12 rows on avx512, 6 for one thread
  // and 5 for the other.) Each item is computed alone, so the split does not change a bit.
  const int64_t items = tiles * blocks;
  // A tile reads its Pixels input rows side by side, k by k. Rows a multiple of 512 floats (2 KiB)
  // apart start at one or two offsets within 4 KiB, so they share one or two of L1's sets (8 ways
  // each) and evict one another at every step: a Dense layer of 16384 inputs ran at 17 GFLOP/s where
  // 16400 inputs ran at 57 (1536: 42), one thread, avx512. Such tiles are copied first to rows a
  // cache line longer than the depth (each in its own set), once per tile for all its blocks.
  const bool skew_rows = depth % 512 == 0;
  const int64_t skewed_stride = depth + 64 / static_cast<int64_t>(sizeof(float));
  parallel::parallel_region([&](int thread, int threads) {
    const int64_t item_begin = items * thread / threads, item_end = items * (thread + 1) / threads;
    if (item_begin >= item_end) return;
    const int64_t tile_begin = item_begin / blocks, tile_end = ceil_div(item_end, blocks);
    thread_local std::vector<float> skew_buffer;  // each thread's copies (a failed allocation reaches the caller)
    if (skew_rows && static_cast<int64_t>(skew_buffer.size()) < Pixels * skewed_stride)
      skew_buffer.resize(static_cast<size_t>(Pixels * skewed_stride));
    float* const skewed_rows = skew_rows ? skew_buffer.data() : nullptr;
    // Output pixel i reads input row i exactly where the output keeps the input's size (then
    // (out - 1) * stride < in leaves a stride other than 1 only on a side of size 1). The strides
    // alone do not tell: grouped_conv2d's dense_group sets a one-row output's stride to 1.
    const bool consecutive = p.output_height == p.input_height && p.output_width == p.input_width;
    PointwiseRows cursor(p, input, tile_begin * Pixels);
    for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
      const int64_t first = tile * Pixels;
      const int64_t count = std::min<int64_t>(Pixels, pixels - first);
      const float* strided_rows[Pixels];
      if (!consecutive) {
        for (int64_t i = 0; i < count; ++i) strided_rows[i] = cursor.next();
        for (int64_t i = count; i < Pixels; ++i) strided_rows[i] = strided_rows[count - 1];
      }
      const float* first_row = input + first * depth;
      // The next tile's rows (its first kPrefetchBytes: all of them at the few channels of an
      // expanding 1x1 layer, whose tiles are short) requested while this one runs (prefetch.h).
      if (consecutive && tile + 1 < tile_end) {
        prefetch_floats(first_row, count * depth, std::min<int64_t>(Pixels * depth, kPrefetchFloats));
      }
      if (skew_rows) {
        for (int64_t i = 0; i < count; ++i) {
          const float* row = consecutive ? first_row + i * depth : strided_rows[i];
          std::copy(row, row + depth, skewed_rows + i * skewed_stride);
        }
      }
      const int64_t block_begin = tile == tile_begin ? item_begin - tile * blocks : 0;
      const int64_t block_end = tile == tile_end - 1 ? item_end - tile * blocks : blocks;
      for (int64_t block = block_begin; block < block_end; ++block) {
        const int64_t channel = block * kWidth;
        const int64_t width = std::min(kWidth, output_channels - channel);
        const auto tile_with = [&](auto&& row_of) {
          const auto run_tile = [&](auto narrow) {
            pointwise_tile<Pixels, decltype(narrow)::value ? 1 : Vectors, kWidth>(
                row_of, depth, count, packed + block * depth * kWidth, bias != nullptr ? bias + channel : nullptr,
                p.activation, result + first * output_channels + channel,
                p.residual != nullptr ? p.residual + first * output_channels + channel : nullptr, output_channels,
                width, affine.at(channel));
          };
          // A last block with one vector's channels or fewer (24 or 40 channels on the 8-lane tiers,
          // 48 or 80 on avx512) runs one vector per pixel: the second vector's multiply-adds would all
          // land on the block's zero padding. Each output's sum is the same, so are its bits.
          if (Vectors > 1 && width <= simd::kLanes) {
            run_tile(std::true_type{});
          } else {
            run_tile(std::false_type{});
          }
        };
        if (skew_rows) {
          tile_with([skewed_rows, count, skewed_stride](int i) {
            return skewed_rows + std::min<int64_t>(i, count - 1) * skewed_stride;
          });
        } else if (consecutive) {
          tile_with([first_row, count, depth](int i) { return first_row + std::min<int64_t>(i, count - 1) * depth; });
        } else {
          tile_with([&strided_rows](int i) { return strided_rows[i]; });
        }
      }
    }
  });
}

// Per-call scratch owned by the calling thread (only grows: no allocation in steady state).
struct Scratch {
  std::vector<float> packed, transposed, zeros, bias, scale, shift, padded_input, bias_chunk_sums;
};

// Below this many input channels (first layers: 1 or 3) the forward pass reads a zero-padded copy
// of its input. A tile holding a border column reads each of its taps separately, a loop of only
// Ci steps per tap and tap_count x 6 row pointers to set up, several times slower than the merged
// form (kernel_width * Ci contiguous floats per kernel row), and with 16 or 32 output columns most
// tiles hold one. The copy (Ci floats per input pixel) is small next to the multiply-adds
// (Co * taps * Ci / stride^2 per input pixel) and small in memory (a 224 x 224 x 3 batch of 32: 20 MB).
constexpr int64_t kPaddedCopyChannels = 16;

// Columns [-left, input_width + right) of every input row, zeros outside the input, where
// left = pad_left and right covers the last column the last output column's taps read; returns the
// copy's width, or 0 (no copy made) where the taps never leave the input horizontally.
int64_t pad_columns(const Conv2DParams& p, const float* input, std::vector<float>& padded) {
  const int64_t last_column_read = (p.output_width - 1) * p.stride_width - p.pad_left + p.kernel_width - 1;
  const int64_t left = p.pad_left, right = std::max<int64_t>(0, last_column_read - (p.input_width - 1));
  if (left + right == 0) return 0;
  const int64_t width = left + p.input_width + right, channels = p.input_channels;
  padded.resize(static_cast<size_t>(p.batch * p.input_height * width * channels));
  float* destination = padded.data();
  parallel::parallel_for(p.batch * p.input_height, [&](int64_t row) {
    float* target = destination + row * width * channels;
    std::fill(target, target + left * channels, 0.0f);
    std::copy(input + row * p.input_width * channels, input + (row + 1) * p.input_width * channels,
              target + left * channels);
    std::fill(target + (left + p.input_width) * channels, target + width * channels, 0.0f);
  });
  return width;
}
Scratch& scratch() {
  thread_local Scratch buffers;
  return buffers;
}

// kernel_gradient[tap][ci0 + i][co0 + j] += sum over the rows' pixels of x[i] * dy[j]
// Output columns [first, last] whose input column ow*stride - pad_left + kw*dilation is inside.
struct ColumnRange {
  int64_t first, last;
};
inline ColumnRange tap_columns(const Conv2DParams& p, int64_t kw) {
  const int64_t column_offset = kw * p.dilation_width - p.pad_left;
  return {std::max<int64_t>(0, ceil_div(std::max<int64_t>(-column_offset, 0), p.stride_width)),
          std::min(p.output_width - 1, floor_div(p.input_width - 1 - column_offset, p.stride_width))};
}

// Every output column whose input column lies inside counts (tap_columns). "Channels" may run
// past input_channels into the next kw taps (the merged pass): with dilation_width 1, input
// channel first_input_channel + i of tap (kh, 0) is channel (i % Ci) of tap (kh, i / Ci), at the
// same memory and gradient offsets.
// sums[i][0..Vectors * kLanes) carries the tile's running sums from the previous step of rows (the
// sum over the pixels so far, in pixel order) and receives them after these rows: stored and
// reloaded floats are exact, so stepping does not change a result.
// The block's dY columns: those of image row `first_row`'s first pixel at `data`, then one pixel
// every `pixel_stride` floats; Vectors whole vectors of them are read (a whole block of dY, or a
// packed panel, zero past the real channels: a masked load in the loop made GCC store every
// accumulator to the stack on each pixel).
struct GradientBlock {
  const float* data;
  int64_t first_row, pixel_stride;
};
template <int Channels, int Vectors>
void accumulate_kernel_tile(const Conv2DParams& p, const float* input, GradientBlock block, int64_t tap,
                            int64_t first_input_channel, int64_t row_begin, int64_t row_end, float* sums) {
  const int64_t kh = tap / p.kernel_width;
  const int64_t kw = tap % p.kernel_width;
  floatv acc[Channels][Vectors];
  for (int i = 0; i < Channels; ++i)
    for (int v = 0; v < Vectors; ++v) acc[i][v] = simd::load(sums + i * kBlockWidth + v * simd::kLanes);
  const int64_t column_offset = kw * p.dilation_width - p.pad_left;
  const ColumnRange inside = tap_columns(p, kw);
  const int64_t first_column = inside.first, last_column = inside.last;
  const int64_t dy_ahead = prefetch_rows(block.pixel_stride) * block.pixel_stride;
  for (int64_t image_row = row_begin; image_row < row_end; ++image_row) {
    const int64_t image = image_row / p.output_height;
    const int64_t oh = image_row % p.output_height;
    const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
    if (ih < 0 || ih >= p.input_height || first_column > last_column) continue;
    const float* x = input +
                     ((image * p.input_height + ih) * p.input_width +
                      (first_column * p.stride_width + column_offset)) * p.input_channels +
                     first_input_channel;
    const float* dy = block.data + ((image_row - block.first_row) * p.output_width + first_column) * block.pixel_stride;
    const int64_t x_step = p.stride_width * p.input_channels;
    for (int64_t ow = first_column; ow <= last_column; ++ow) {
      prefetch_floats(dy, dy_ahead, Vectors * simd::kLanes);
      floatv g[Vectors];
      for (int v = 0; v < Vectors; ++v) g[v] = simd::load(dy + v * simd::kLanes);
      for (int i = 0; i < Channels; ++i) {
        const floatv b = simd::broadcast(x[i]);
        for (int v = 0; v < Vectors; ++v) acc[i][v] += b * g[v];
      }
      x += x_step;
      dy += block.pixel_stride;
    }
  }
  for (int i = 0; i < Channels; ++i)
    for (int v = 0; v < Vectors; ++v) simd::store(sums + i * kBlockWidth + v * simd::kLanes, acc[i][v]);
}

// Input channels per kernel-gradient task: x 2 vectors of output channels, plus the two dY vectors
// and a broadcast, they fill the register file — 6 (12 accumulators of 16 ymm registers) on the
// 8-lane tiers, 12 (24 of 32 zmm registers) on avx512, where longer tiles also spread each output
// row's loop overhead over twice the multiply-adds.
constexpr int64_t kGradientChannels = simd::kLanes == 16 ? 12 : 6;

template <int Vectors, int... Counts>
void accumulate_kernel_tile_of(std::integer_sequence<int, Counts...>, int64_t channels, const Conv2DParams& p,
                               const float* input, GradientBlock block, int64_t tap, int64_t ci, int64_t row_begin,
                               int64_t row_end, float* sums) {
  // Runs the instance for Counts + 1 == channels.
  (void)((channels == Counts + 1 &&
          (accumulate_kernel_tile<Counts + 1, Vectors>(p, input, block, tap, ci, row_begin, row_end, sums),
           true)) ||
         ...);
}

template <int Vectors>
void accumulate_kernel_tile_any(int64_t channels, const Conv2DParams& p, const float* input, GradientBlock block,
                                int64_t tap, int64_t ci, int64_t row_begin, int64_t row_end, float* sums) {
  accumulate_kernel_tile_of<Vectors>(std::make_integer_sequence<int, kGradientChannels>(), channels, p, input, block,
                                     tap, ci, row_begin, row_end, sums);
}

// dY's columns first_output_channel.. of one chunk's pixels, kBlockWidth per pixel (zero past the
// real channels): the kernel-gradient tiles of that block then read one contiguous panel.
void pack_gradient_panel(const Conv2DParams& p, const float* output_gradient, int64_t row_begin, int64_t row_end,
                         int64_t first_output_channel, float* panel) {
  const int64_t width = std::min(kBlockWidth, p.output_channels - first_output_channel);
  const float* source = output_gradient + row_begin * p.output_width * p.output_channels + first_output_channel;
  const int64_t pixels = (row_end - row_begin) * p.output_width;
  for (int64_t pixel = 0; pixel < pixels; ++pixel, source += p.output_channels, panel += kBlockWidth) {
    if (width == kBlockWidth) {
      simd::store(panel, simd::load(source));
      simd::store(panel + simd::kLanes, simd::load(source + simd::kLanes));
    } else {
      simd::store(panel, simd::load_partial(source, std::min<int64_t>(width, simd::kLanes)));
      simd::store(panel + simd::kLanes,
                  simd::load_partial(source + simd::kLanes, std::max<int64_t>(width - simd::kLanes, 0)));
    }
  }
}

struct GradientScratch {
  std::vector<float> panels, sums;
};

}  // namespace

void conv2d_forward(const Conv2DParams& p, const float* input, const float* kernel,
                    const float* bias, float* output) {
  if (p.output_size() == 0) return;
  // Max pooling in the epilogue: only Winograd's tiles compute it, and a pair that is fusable is
  // Winograd-shaped (and stride 1, so not space-to-depth's), so the dispatch below takes it there.
  if (p.max_pool != nullptr && !conv2d_winograd_max_pool2d_fusable(p, *p.max_pool)) {
    throw std::invalid_argument("max pooling in the convolution's epilogue needs a 3x3, stride-1 convolution "
                                "with at least 16 channels in and out, no residual, and 2x2 windows that tile "
                                "its output. Received: a " + std::to_string(p.kernel_height) + "x" +
                                std::to_string(p.kernel_width) + " kernel, " + std::to_string(p.input_channels) +
                                " -> " + std::to_string(p.output_channels) + " channels");
  }
  if (space_to_depth_applicable(p)) {
    conv2d_forward_space_to_depth(p, input, kernel, bias, output);
    return;
  }
  if (winograd_applicable(p)) {
    conv2d_forward_winograd(p, input, kernel, bias, output,
                            p.large_winograd_tile ? WinogradTile::fewest_points : WinogradTile::two_by_two);
    return;
  }
  Scratch& buffers = scratch();
  const int64_t taps = p.kernel_height * p.kernel_width;
  const int64_t block_width = block_width_for(p.output_channels);
  const int64_t blocks = ceil_div(p.output_channels, block_width);
  // Layout: column blocks of block_width (the tier's vector width decides it).
  const float* packed = packed_kernel(p, kernel, 1000 + block_width, blocks * taps * p.input_channels * block_width,
                                      buffers.packed, [&](float* destination) {
                                        pack_column_blocks(kernel, taps * p.input_channels, p.output_channels,
                                                           destination, block_width);
                                      });
  const int64_t padded_count = blocks * block_width;
  const float* padded_bias = padded_channels(p.use_bias ? bias : nullptr, p.output_channels, padded_count, buffers.bias);
  const OutputAffine output_affine{padded_channels(p.output_scale, p.output_channels, padded_count, buffers.scale),
                                   padded_channels(p.output_shift, p.output_channels, padded_count, buffers.shift)};
  // (Layers of at most 8 channels on avx512 keep the indirect pass's 8-lane ymm tile.)
  if (pointwise_applicable(p) && (block_width == kBlockWidth || block_width == simd::kLanes)) {
    // Few rows (a Dense layer at a small batch) split into few tall tiles, unevenly over the
    // threads: 64 rows of one block make 3 tiles of 24 on avx512, 2 for one thread. Tiles of half
    // the height are taken where they leave the busiest thread fewer rows (each tile also costs
    // about 4 rows' time to start: its weight panel, its row pointers). Each output's sum is the
    // same in either tile, so are the bits.
    const int64_t pixels = p.batch * p.output_height * p.output_width, threads = parallel::max_threads();
    const auto busiest_thread_rows = [&](int64_t tile_pixels) {
      return ceil_div(ceil_div(pixels, tile_pixels) * blocks, threads) * (tile_pixels + 4);
    };
    const bool two_vectors = block_width == kBlockWidth;
    const int64_t tall = two_vectors ? kPointwisePixels<2> : kPointwisePixels<1>;
    const bool half_height = busiest_thread_rows(tall / 2) < busiest_thread_rows(tall);
    const auto run = two_vectors ? (half_height ? run_pointwise<2, kPointwisePixels<2> / 2> : run_pointwise<2>)
                                 : (half_height ? run_pointwise<1, kPointwisePixels<1> / 2> : run_pointwise<1>);
    run(p, input, packed, padded_bias, output_affine, output);
    return;
  }
  buffers.zeros.assign(static_cast<size_t>(p.kernel_width * p.input_channels), 0.0f);  // a merged tap's depth
  IndirectPass pass;
  pass.images = p.batch;
  pass.rows = p.output_height;
  pass.columns_per_row = p.output_width;
  pass.depth = p.input_channels;
  pass.output_channels = p.output_channels;
  pass.kernel_height = p.kernel_height;
  pass.kernel_width = p.kernel_width;
  pass.affine = output_affine;
  // Output (oh, ow) reads input (oh*stride_h - pad_top + kh*dilation_h, ow*stride_w - pad_left + kw*dilation_w).
  AffineSource affine;
  affine.data = input;
  affine.source_height = p.input_height;
  affine.source_width = p.input_width;
  affine.row_step = p.stride_height;
  affine.row_offset = -p.pad_top;
  affine.tap_row_step = p.dilation_height;
  affine.column_step = p.stride_width;
  affine.column_offset = -p.pad_left;
  affine.tap_column_step = p.dilation_width;
  if (p.input_channels < kPaddedCopyChannels && p.dilation_width == 1 && p.kernel_width > 1) {
    // Each output's sum runs over the same taps in the same order; a tap in the padding adds
    // zero-input products (as a tile mixing border and interior pixels already did), which changes
    // no finite sum, only the sign of an exactly zero one.
    const int64_t padded_width = pad_columns(p, input, buffers.padded_input);
    if (padded_width > 0) {
      affine.data = buffers.padded_input.data();
      affine.source_width = padded_width;
      affine.column_offset = 0;
    }
  }
  run_indirect(pass, &affine, packed, padded_bias, p.activation, output, p.residual, buffers.zeros.data(),
               affine_source_rows(affine, p.input_channels));
}

namespace {

// The input gradient's epilogue adds its old contents where the call accumulates (read before the
// same thread stores each element: the residual of store_block, in place).
inline const float* accumulated(const Conv2DParams& p, const float* input_gradient) {
  return p.accumulate_input_gradient ? input_gradient : nullptr;
}

// Each tap's channels swapped, for the input gradient's forward pass over dY:
// target_of(tap)[co][ci] = source_of(tap)[ci][co], an input_channels x output_channels matrix per
// tap. In square tiles of kTransposeTile (a tile's source lines stay in L1 while its target lines
// are written whole), parallel over taps and rows of tiles. Walking ci then co instead writes with
// a stride of input_channels floats, a cache line per element: a 4096 -> 512 Dense layer's input
// gradient spent most of its time there.
template <typename SourceOf, typename TargetOf>
void transpose_taps(int64_t taps, int64_t input_channels, int64_t output_channels, SourceOf source_of,
                    TargetOf target_of) {
  constexpr int64_t kTransposeTile = 16;
  const int64_t row_tiles = ceil_div(input_channels, kTransposeTile);
  parallel::parallel_for(taps * row_tiles, [&](int64_t task) {
    const int64_t tap = task / row_tiles;
    const int64_t ci_begin = task % row_tiles * kTransposeTile;
    const int64_t ci_end = std::min(ci_begin + kTransposeTile, input_channels);
    const float* source = source_of(tap);
    float* target = target_of(tap);
    for (int64_t co_begin = 0; co_begin < output_channels; co_begin += kTransposeTile) {
      const int64_t co_end = std::min(co_begin + kTransposeTile, output_channels);
      for (int64_t co = co_begin; co < co_end; ++co)
        for (int64_t ci = ci_begin; ci < ci_end; ++ci) target[co * input_channels + ci] = source[ci * output_channels + co];
    }
  });
}

// The input gradient of a strided layer without dilation, one phase at a time. The input pixels
// of phase (ph, pw) — ih = ph + stride_h * i, iw = pw + stride_w * j — are reached only by the
// taps kh = kh0 + stride_h * m with kh0 = (ph + pad_top) mod stride_h (likewise kw), and for
// those oh = (ih + pad_top - kh) / stride_h = i + (ph + pad_top - kh0) / stride_h - m, affine in
// i. Taken in reverse order (m' = M - 1 - m, so the tap step is +1), they make a unit-stride
// forward pass over dY with an M_h x M_w sub-kernel of transposed weights, whose results land on
// every stride-th input pixel: no multiply-add reads the zeros between strides, and interior
// tiles take the merged-tap form.
void strided_input_gradient_by_phase(const Conv2DParams& p, const float* output_gradient, const float* kernel,
                                     float* input_gradient, Scratch& buffers) {
  const int64_t block_width = block_width_for(p.input_channels);
  const int64_t blocks = ceil_div(p.input_channels, block_width);
  buffers.zeros.assign(static_cast<size_t>(ceil_div(p.kernel_width, p.stride_width) * p.output_channels), 0.0f);
  for (int64_t phase_row = 0; phase_row < std::min(p.stride_height, p.input_height); ++phase_row) {
    const int64_t first_tap_row = (phase_row + p.pad_top) % p.stride_height;
    const int64_t tap_rows = first_tap_row < p.kernel_height ? ceil_div(p.kernel_height - first_tap_row, p.stride_height) : 0;
    for (int64_t phase_column = 0; phase_column < std::min(p.stride_width, p.input_width); ++phase_column) {
      const int64_t first_tap_column = (phase_column + p.pad_left) % p.stride_width;
      const int64_t tap_columns =
          first_tap_column < p.kernel_width ? ceil_div(p.kernel_width - first_tap_column, p.stride_width) : 0;
      IndirectPass pass;
      pass.images = p.batch;
      pass.rows = ceil_div(p.input_height - phase_row, p.stride_height);
      pass.columns_per_row = ceil_div(p.input_width - phase_column, p.stride_width);
      pass.depth = p.output_channels;
      pass.output_channels = p.input_channels;
      pass.kernel_height = tap_rows;
      pass.kernel_width = tap_columns;
      pass.result_height = p.input_height;
      pass.result_width = p.input_width;
      pass.result_row_step = p.stride_height;
      pass.result_row_offset = phase_row;
      pass.result_column_step = p.stride_width;
      pass.result_column_offset = phase_column;
      if (tap_rows == 0 || tap_columns == 0) {  // a kernel smaller than the stride: no tap reaches this phase
        if (p.accumulate_input_gradient) continue;
        parallel::parallel_for(pass.images * pass.rows, [&](int64_t image_row) {
          const int64_t n = image_row / pass.rows, ih = phase_row + (image_row % pass.rows) * p.stride_height;
          for (int64_t j = 0; j < pass.columns_per_row; ++j) {
            float* pixel = input_gradient +
                           ((n * p.input_height + ih) * p.input_width + phase_column + j * p.stride_width) *
                               p.input_channels;
            std::fill(pixel, pixel + p.input_channels, 0.0f);
          }
        });
        continue;
      }
      // sub_kernel[m'_h][m'_w][co][ci] = kernel[kh0 + (M_h-1-m'_h)*s_h][kw0 + (M_w-1-m'_w)*s_w][ci][co]
      const int64_t taps = tap_rows * tap_columns;
      buffers.transposed.resize(static_cast<size_t>(taps * p.output_channels * p.input_channels));
      const int64_t tap_size = p.input_channels * p.output_channels;
      transpose_taps(
          taps, p.input_channels, p.output_channels,
          [&](int64_t tap) {  // tap = row_tap * tap_columns + column_tap
            const int64_t kh = first_tap_row + (tap_rows - 1 - tap / tap_columns) * p.stride_height;
            const int64_t kw = first_tap_column + (tap_columns - 1 - tap % tap_columns) * p.stride_width;
            return kernel + (kh * p.kernel_width + kw) * tap_size;
          },
          [&](int64_t tap) { return buffers.transposed.data() + tap * tap_size; });
      buffers.packed.resize(static_cast<size_t>(blocks * taps * p.output_channels * block_width));
      pack_column_blocks(buffers.transposed.data(), taps * p.output_channels, p.input_channels,
                         buffers.packed.data(), block_width);
      AffineSource affine;
      affine.data = output_gradient;
      affine.source_height = p.output_height;
      affine.source_width = p.output_width;
      affine.row_offset = (phase_row + p.pad_top - first_tap_row) / p.stride_height - (tap_rows - 1);
      affine.column_offset = (phase_column + p.pad_left - first_tap_column) / p.stride_width - (tap_columns - 1);
      run_indirect(pass, &affine, buffers.packed.data(), nullptr, Activation::linear, input_gradient,
                   accumulated(p, input_gradient), buffers.zeros.data(), affine_source_rows(affine, p.output_channels));
    }
  }
}

}  // namespace

void conv2d_backward_input(const Conv2DParams& p, const float* output_gradient,
                           const float* kernel, float* input_gradient) {
  if (p.input_size() == 0) return;
  if (space_to_depth_applicable(p) && p.output_size() > 0) {
    conv2d_backward_input_space_to_depth(p, output_gradient, kernel, input_gradient);
    return;
  }
  Scratch& buffers = scratch();
  const int64_t taps = p.kernel_height * p.kernel_width;
  // With unit strides the input gradient is a forward convolution of dY with the kernel rotated
  // by 180 degrees and in/out channels swapped: dX(ih, iw) = sum over (kh, kw) of
  // dY(ih + pad_top - kh*dh, iw + pad_left - kw*dw) . W[kh][kw]^T, i.e. padding kernel - 1 - pad
  // and taps walking dY forwards — so it runs as conv2d_forward (Winograd or indirect, merged
  // taps included). Strided layers without dilation run phase by phase (above); others keep the
  // tap order and test divisibility per pixel.
  Conv2DParams as_forward = p;
  as_forward.input_height = p.output_height;
  as_forward.input_width = p.output_width;
  as_forward.input_channels = p.output_channels;
  as_forward.output_height = p.input_height;
  as_forward.output_width = p.input_width;
  as_forward.output_channels = p.input_channels;
  as_forward.pad_top = (p.kernel_height - 1) * p.dilation_height - p.pad_top;
  as_forward.pad_left = (p.kernel_width - 1) * p.dilation_width - p.pad_left;
  as_forward.use_bias = false;
  as_forward.activation = Activation::linear;
  as_forward.kernel_cache = nullptr;  // the rotated kernel lives in this call's scratch
  as_forward.residual = accumulated(p, input_gradient);
  as_forward.accumulate_input_gradient = false;
  const bool forward_pass = p.stride_height == 1 && p.stride_width == 1 && p.output_size() > 0 &&
                            as_forward.pad_top >= 0 && as_forward.pad_left >= 0;
  if (!forward_pass && p.dilation_height == 1 && p.dilation_width == 1 && p.pad_top >= 0 && p.pad_left >= 0 &&
      p.output_size() > 0) {
    strided_input_gradient_by_phase(p, output_gradient, kernel, input_gradient, buffers);
    return;
  }
  // transposed[tap'][co][ci] = kernel[tap][ci][co], tap' = the rotated tap for the forward pass.
  buffers.transposed.resize(static_cast<size_t>(taps * p.output_channels * p.input_channels));
  const int64_t tap_size = p.input_channels * p.output_channels;
  transpose_taps(
      taps, p.input_channels, p.output_channels, [&](int64_t tap) { return kernel + tap * tap_size; },
      [&](int64_t tap) { return buffers.transposed.data() + (forward_pass ? taps - 1 - tap : tap) * tap_size; });
  if (forward_pass) {
    if (winograd_applicable(as_forward) && as_forward.output_size() > 0) {
      conv2d_forward_winograd(as_forward, output_gradient, buffers.transposed.data(), nullptr, input_gradient,
                              p.large_winograd_tile ? WinogradTile::fewest_points : WinogradTile::two_by_two);
    } else {
      conv2d_forward(as_forward, output_gradient, buffers.transposed.data(), nullptr, input_gradient);
    }
    return;
  }
  const int64_t block_width = block_width_for(p.input_channels);
  const int64_t blocks = ceil_div(p.input_channels, block_width);
  buffers.packed.resize(static_cast<size_t>(blocks * taps * p.output_channels * block_width));
  pack_column_blocks(buffers.transposed.data(), taps * p.output_channels, p.input_channels,
                     buffers.packed.data(), block_width);
  buffers.zeros.assign(static_cast<size_t>(p.kernel_width * p.output_channels), 0.0f);  // a merged tap's depth
  if (p.output_size() == 0) {
    if (!p.accumulate_input_gradient) std::fill(input_gradient, input_gradient + p.input_size(), 0.0f);
    return;
  }
  IndirectPass pass;
  pass.images = p.batch;
  pass.rows = p.input_height;
  pass.columns_per_row = p.input_width;
  pass.depth = p.output_channels;
  pass.output_channels = p.input_channels;
  pass.kernel_height = p.kernel_height;
  pass.kernel_width = p.kernel_width;
  // Input pixel (ih, iw) is read by tap (kh, kw) of output (oh, ow) when
  // ih = oh*stride_h - pad_top + kh*dilation_h, i.e. oh = (ih + pad_top - kh*dilation_h) / stride_h exactly.
  run_indirect(pass, nullptr, buffers.packed.data(), nullptr, Activation::linear, input_gradient,
               accumulated(p, input_gradient), buffers.zeros.data(),
               [&](int64_t n, int64_t ih, int64_t iw, int64_t kh, int64_t kw) -> const float* {
                 const int64_t row_offset = ih + p.pad_top - kh * p.dilation_height;
                 const int64_t column_offset = iw + p.pad_left - kw * p.dilation_width;
                 if (row_offset < 0 || column_offset < 0) return nullptr;
                 if (row_offset % p.stride_height != 0 || column_offset % p.stride_width != 0) return nullptr;
                 const int64_t oh = row_offset / p.stride_height;
                 const int64_t ow = column_offset / p.stride_width;
                 if (oh >= p.output_height || ow >= p.output_width) return nullptr;
                 return output_gradient + ((n * p.output_height + oh) * p.output_width + ow) * p.output_channels;
               });
}

namespace {

// One pass of the kernel gradient: `taps` taps (tap index = tap_of(t)) x `channels` input
// channels (kGradientChannels per task) x output blocks of kBlockWidth channels. Each task owns its
// gradient elements and sums the rows in fixed chunks, each from zero and then added to the
// gradient in order, so any thread count gives the same bits.
// A thread walks each chunk in steps of about 128 pixels, each step running all its tasks block by
// block, so that the step's dY columns and input rows stay in L1 while the tasks pass over them.
// Where dY has at least 3 blocks (a block's columns are at most a third of each pixel's) and at
// least 16 tasks share a block, it first packs the chunk's dY columns of each block into a
// contiguous panel (measured: 1.1-1.2x on such layers); with fewer tasks (first layers, narrow 1x1
// layers) or narrower dY the copy costs about what it saves, and only a partial last block is packed.
template <typename TapOf>
void kernel_gradient_pass(const Conv2DParams& p, const float* input, const float* output_gradient, int64_t taps,
                          int64_t channels, TapOf&& tap_of, float* kernel_gradient) {
  // Channels split evenly over the fewest tiles of at most kGradientChannels (16 on avx512: 8 + 8,
  // not 12 + 4, whose short tile would spend its loop overhead on a third of the multiply-adds).
  const int64_t channel_tiles = ceil_div(channels, kGradientChannels);
  const int64_t short_tile = channels / channel_tiles, long_tiles = channels % channel_tiles;
  const int64_t blocks = ceil_div(p.output_channels, kBlockWidth);
  const int64_t tasks = taps * channel_tiles * blocks;
  const int64_t image_rows = p.batch * p.output_height;
  // Chunks of about 512 output pixels: the two-level sum's inner length (its rounding error grows
  // with chunk length + chunk count, close to TensorFlow's blocked reductions).
  const int64_t columns = std::max<int64_t>(1, p.output_width);
  const int64_t rows_per_chunk = std::max<int64_t>(1, 512 / columns);
  constexpr int64_t kSumsPerTask = kGradientChannels * kBlockWidth;
  if (p.output_width <= 0) return;
  const bool packed = taps * channel_tiles >= 16 && blocks >= 3;
  const int64_t rows_per_step = std::max<int64_t>(1, 128 / columns);
  const int64_t chunks = ceil_div(image_rows, rows_per_chunk);
  struct Task {
    int64_t block, t, first_input_channel, channels;
  };
  const auto task_at = [&](int64_t task) {
    const int64_t channel_tile = task % channel_tiles;
    return Task{task / (taps * channel_tiles), (task / channel_tiles) % taps,
                channel_tile * short_tile + std::min(channel_tile, long_tiles),
                short_tile + (channel_tile < long_tiles ? 1 : 0)};
  };
  const auto first_panel_block_of = [&](int64_t first_block) {
    // Blocks read from panels: every block when packed, else a partial last block (whole loads need
    // the panel's zeros past its real channels).
    return std::max(first_block, packed ? first_block : (p.output_channels % kBlockWidth != 0 ? blocks - 1 : blocks));
  };
  const auto panel_blocks_of = [&](int64_t task_begin, int64_t task_end) {
    const int64_t first_block = task_begin / (taps * channel_tiles), last_block = (task_end - 1) / (taps * channel_tiles);
    return std::max<int64_t>(0, last_block - first_panel_block_of(first_block) + 1);
  };
  const int64_t panel_size = rows_per_chunk * p.output_width * kBlockWidth;
  // sums[task - task_begin] = the sums of tasks [task_begin, task_end) over chunk `chunk`'s rows,
  // from zero; `panels` holds the packed blocks from first_panel_block_of on (panel_blocks_of).
  const auto chunk_sums = [&](int64_t chunk, int64_t task_begin, int64_t task_end, float* panels, float* sums) {
    const int64_t row_begin = chunk * rows_per_chunk, row_end = std::min(image_rows, row_begin + rows_per_chunk);
    const int64_t first_block = task_begin / (taps * channel_tiles), last_block = (task_end - 1) / (taps * channel_tiles);
    const int64_t first_panel_block = first_panel_block_of(first_block);
    const auto panel_of = [&](int64_t block) { return panels + (block - first_panel_block) * panel_size; };
    for (int64_t block = first_panel_block; block <= last_block; ++block)
      pack_gradient_panel(p, output_gradient, row_begin, row_end, block * kBlockWidth, panel_of(block));
    std::fill(sums, sums + (task_end - task_begin) * kSumsPerTask, 0.0f);
    for (int64_t step_begin = row_begin; step_begin < row_end; step_begin += rows_per_step) {
      const int64_t step_end = std::min(row_end, step_begin + rows_per_step);
      for (int64_t task = task_begin; task < task_end; ++task) {
        const Task at = task_at(task);
        const int64_t first_output_channel = at.block * kBlockWidth;
        const GradientBlock block = at.block >= first_panel_block
                                        ? GradientBlock{panel_of(at.block), row_begin, kBlockWidth}
                                        : GradientBlock{output_gradient + first_output_channel, 0, p.output_channels};
        float* task_sums = sums + (task - task_begin) * kSumsPerTask;
        const int64_t tap = tap_of(at.t), ci = at.first_input_channel;
        // A last block of at most one vector of real channels takes one vector.
        if (p.output_channels - first_output_channel > simd::kLanes) {
          accumulate_kernel_tile_any<2>(at.channels, p, input, block, tap, ci, step_begin, step_end, task_sums);
        } else {
          accumulate_kernel_tile_any<1>(at.channels, p, input, block, tap, ci, step_begin, step_end, task_sums);
        }
      }
    }
  };
  // kernel_gradient[tap][ci0 + i][co0 + j] += sums[i][j]: a chunk's sums of one task into the gradient.
  const auto add_task_sums = [&](int64_t task, const float* task_sums) {
    const Task at = task_at(task);
    const int64_t first_output_channel = at.block * kBlockWidth;
    const int64_t width = std::min(kBlockWidth, p.output_channels - first_output_channel);
    for (int64_t i = 0; i < at.channels; ++i) {
      float* row = kernel_gradient + (tap_of(at.t) * p.input_channels + at.first_input_channel + i) * p.output_channels +
                   first_output_channel;
      for (int64_t v = 0; v * simd::kLanes < width; ++v) {
        const int64_t lanes = std::min<int64_t>(simd::kLanes, width - v * simd::kLanes);
        simd::store_lanes(row + v * simd::kLanes,
                          simd::load_lanes(row + v * simd::kLanes, lanes) +
                              simd::load(task_sums + i * kBlockWidth + v * simd::kLanes),
                          lanes);
      }
    }
  };
  // Few tasks (a first layer's 3 merged kernel rows x one block) would split unevenly or not at
  // all over the threads: then each thread takes a run of chunks for every task instead, keeping
  // every chunk's sums, which are added in chunk order after the region. Each chunk's sums and their
  // order of addition are the same either way, so are the bits.
  const int64_t threads_available = parallel::max_threads();
  const int64_t chunk_sums_size = chunks * tasks * kSumsPerTask;
  if (threads_available > 1 && tasks < 8 * threads_available && chunks >= 2 * threads_available &&
      chunk_sums_size <= (int64_t{16} << 20)) {
    thread_local GradientScratch by_chunk;  // the calling thread's: every chunk's sums, every thread's panels
    const int64_t panel_blocks = panel_blocks_of(0, tasks);
    if (static_cast<int64_t>(by_chunk.sums.size()) < chunk_sums_size) by_chunk.sums.resize(static_cast<size_t>(chunk_sums_size));
    if (static_cast<int64_t>(by_chunk.panels.size()) < threads_available * panel_blocks * panel_size)
      by_chunk.panels.resize(static_cast<size_t>(threads_available * panel_blocks * panel_size));
    float* const all_sums = by_chunk.sums.data();
    float* const all_panels = by_chunk.panels.data();
    parallel::parallel_region([&](int thread, int threads) {
      float* panels = all_panels + thread * panel_blocks * panel_size;
      const int64_t chunk_end = chunks * (thread + 1) / threads;
      for (int64_t chunk = chunks * thread / threads; chunk < chunk_end; ++chunk)
        chunk_sums(chunk, 0, tasks, panels, all_sums + chunk * tasks * kSumsPerTask);
    });
    parallel::parallel_for(tasks, [&](int64_t task) {
      for (int64_t chunk = 0; chunk < chunks; ++chunk) add_task_sums(task, all_sums + (chunk * tasks + task) * kSumsPerTask);
    });
    return;
  }
  parallel::parallel_region([&](int thread, int threads) {
    // Tasks in (block, tap, channel tile) order: a thread's consecutive tasks share a panel.
    const int64_t task_begin = tasks * thread / threads;
    const int64_t task_end = tasks * (thread + 1) / threads;
    if (task_begin == task_end) return;
    thread_local GradientScratch scratch;
    const int64_t panel_blocks = panel_blocks_of(task_begin, task_end);
    if (static_cast<int64_t>(scratch.panels.size()) < panel_blocks * panel_size)
      scratch.panels.resize(static_cast<size_t>(panel_blocks * panel_size));
    if (static_cast<int64_t>(scratch.sums.size()) < (task_end - task_begin) * kSumsPerTask)
      scratch.sums.resize(static_cast<size_t>((task_end - task_begin) * kSumsPerTask));
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      chunk_sums(chunk, task_begin, task_end, scratch.panels.data(), scratch.sums.data());
      for (int64_t task = task_begin; task < task_end; ++task)
        add_task_sums(task, scratch.sums.data() + (task - task_begin) * kSumsPerTask);
    }
  });
}

// dW[tap] = X_tap^T . dY per tap (see the top of this file). Layers with few input channels (the
// first ones) merge each kernel row's taps: its kernel_width * Ci contiguous inputs act as one tap's
// channels, so the register tile fills up (1 or 3 channels alone would leave most of it idle). They
// read a zero-padded copy of the input, as the forward pass does, so that every column takes the
// merged form: the columns whose taps reach into the padding ran per tap, in passes over one or
// two columns that took more time than all the others (a 3 -> 16 layer on 64 x 32 x 32 x 3, avx512,
// 2 threads: 0.55 of 0.89 ms). A tap in the padding adds products of zero inputs.
void conv2d_backward_kernel_direct(const Conv2DParams& p, const float* input, const float* output_gradient,
                                   float* kernel_gradient) {
  std::fill(kernel_gradient, kernel_gradient + p.kernel_size(), 0.0f);
  const bool merge = p.dilation_width == 1 && p.kernel_width > 1 && p.input_channels * p.kernel_width <= 24;
  if (!merge) {
    kernel_gradient_pass(p, input, output_gradient, p.kernel_height * p.kernel_width, p.input_channels,
                         [](int64_t t) { return t; }, kernel_gradient);
    return;
  }
  Conv2DParams padded = p;
  const float* source = input;
  std::vector<float>& copy = scratch().padded_input;
  const int64_t padded_width = pad_columns(p, input, copy);
  if (padded_width > 0) {  // else the taps never leave the input horizontally
    padded.input_width = padded_width;
    padded.pad_left = 0;
    source = copy.data();
  }
  kernel_gradient_pass(padded, source, output_gradient, p.kernel_height, p.kernel_width * p.input_channels,
                       [&](int64_t kh) { return kh * p.kernel_width; }, kernel_gradient);
}

// d bias[co] = sum over pixels of dY[pixel][co] in two levels: chunks of kBiasChunk pixels, each
// summed from zero in pixel order, then the chunk sums added in chunk order from zero. The chunks
// run in parallel and keep their sums, added after the region (threads split by channel blocks
// left one thread alone on a layer of at most 32 channels: reading 65536 pixels of 16 channels
// took 7% of that layer's kernel gradient, 2 threads). Each chunk's sum and the order of the
// additions do not depend on the thread count, so neither do the bits.
void conv2d_backward_bias(const Conv2DParams& p, const float* output_gradient, float* bias_gradient) {
  constexpr int64_t kBiasChunk = 256;
  const int64_t channels = p.output_channels;
  const int64_t blocks = ceil_div(channels, kBlockWidth);
  const int64_t padded = blocks * kBlockWidth;
  const int64_t pixels = p.batch * p.output_height * p.output_width;
  const int64_t chunks = ceil_div(pixels, kBiasChunk);
  std::vector<float>& chunk_sums = scratch().bias_chunk_sums;
  chunk_sums.resize(static_cast<size_t>(std::max<int64_t>(chunks, 1) * padded));
  float* const sums = chunk_sums.data();
  parallel::parallel_for(chunks, [&](int64_t chunk) {
    const int64_t chunk_begin = chunk * kBiasChunk, chunk_end = std::min(pixels, chunk_begin + kBiasChunk);
    for (int64_t first = 0; first < channels; first += kBlockWidth) {
      const int64_t width = std::min(kBlockWidth, channels - first);
      const int64_t low_width = std::min<int64_t>(width, simd::kLanes);
      const int64_t high_width = std::max<int64_t>(width - simd::kLanes, 0);
      floatv chunk_low = {}, chunk_high = {};
      for (int64_t pixel = chunk_begin; pixel < chunk_end; ++pixel) {
        const float* dy = output_gradient + pixel * channels + first;
        if (width == kBlockWidth) {
          chunk_low += simd::load(dy);
          chunk_high += simd::load(dy + simd::kLanes);
        } else {
          chunk_low += simd::load_partial(dy, low_width);
          chunk_high += simd::load_partial(dy + simd::kLanes, high_width);
        }
      }
      simd::store(sums + chunk * padded + first, chunk_low);
      simd::store(sums + chunk * padded + first + simd::kLanes, chunk_high);
    }
  });
  // The chunk sums in chunk order, per channel vector (inside a region: denormals flushed as in the
  // chunks' additions).
  parallel::parallel_for(padded / simd::kLanes, [&](int64_t vector) {
    const int64_t first = vector * simd::kLanes;
    floatv total = {};
    for (int64_t chunk = 0; chunk < chunks; ++chunk) total += simd::load(sums + chunk * padded + first);
    simd::store_partial(bias_gradient + first, total, std::clamp<int64_t>(channels - first, 0, simd::kLanes));
  });
}

}  // namespace

void conv2d_backward_kernel(const Conv2DParams& p, const float* input,
                            const float* output_gradient, float* kernel_gradient,
                            float* bias_gradient) {
  if (space_to_depth_kernel_gradient_applicable(p) && p.output_size() > 0) {
    conv2d_backward_kernel_space_to_depth(p, input, output_gradient, kernel_gradient, bias_gradient);
    return;
  }
  if (winograd_applicable(p) && p.output_size() > 0) {
    conv2d_backward_kernel_winograd(p, input, output_gradient, kernel_gradient);
  } else {
    conv2d_backward_kernel_direct(p, input, output_gradient, kernel_gradient);
  }
  if (bias_gradient != nullptr) conv2d_backward_bias(p, output_gradient, bias_gradient);
}

}  // namespace fastcnn::kernels::FASTCNN_ISA

namespace fastcnn::kernels::FASTCNN_ISA {

// The peak probe: 12 independent vector FMA chains (enough to cover FMA latency x throughput on
// current x86 cores) per thread, `iterations` times; returns the FLOPs executed on each thread.
double fma_peak_probe(int64_t iterations) {
  using simd::floatv;
  double flops = 0.0;
  parallel::parallel_region([&](int thread, int threads) {
    floatv acc[12];
    for (int i = 0; i < 12; ++i) acc[i] = simd::broadcast(static_cast<float>(i + thread) * 1e-3f);
    const floatv a = simd::broadcast(0.999999f), b = simd::broadcast(1e-7f);
    for (int64_t k = 0; k < iterations; ++k) {
      for (int i = 0; i < 12; ++i) acc[i] = acc[i] * a + b;
    }
    float sink = 0.0f;
    for (int i = 0; i < 12; ++i) sink += acc[i][0];
    // Keep the result observable so the loop is not removed.
    if (sink == 12345.0f) flops += 1.0;
    if (thread == 0) flops += 2.0 * simd::kLanes * 12 * static_cast<double>(iterations) * threads;
  });
  return flops;
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
