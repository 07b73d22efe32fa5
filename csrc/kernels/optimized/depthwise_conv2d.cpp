// Optimised DepthwiseConv2D. Depthwise convolution does ~2 FLOPs per byte moved, so these kernels
// are written to stream memory once, not to fill FMA units:
// - forward and input gradient share one row engine: a result row is computed in tiles of 8 (then 4, 1) pixels
//   x one vector of channels (kLanes output channels, the channels innermost in NHWC), all taps
//   summed in registers, then bias + activation applied before the one store (fused epilogue).
//   Channels are "output channels" o = c * depth_multiplier + m throughout: the kernel
//   (kh, kw, c, m) is (kh, kw, o) in memory. With depth_multiplier > 1 the forward pass reads each
//   input vector once and permutes it so that lane o holds channel o / depth_multiplier.
//   With data in cache the tap-by-tap tile is bound by its loads (one per multiply-add), so with
//   dilation 1, 3- or 5-wide kernels and stride 1 or 2 the forward pass takes the taps by kernel
//   rows (run_row_by_taps, border tiles too): each input vector once for every result pixel that reads it.
// - the input gradient is a gather per input pixel: dX(ih, iw) = sum over the taps whose output
//   (oh, ow) = ((ih + pad_top - kh*dh) / sh, (iw + pad_left - kw*dw) / sw) is exact and inside.
//   Input columns are taken by phase (iw mod stride_width): within a phase every pixel has the same
//   taps, and consecutive pixels read consecutive output columns, so it runs in the row engine.
//   With depth_multiplier > 1 the engine yields sum over taps per o, then dX(c) = sum_m of that.
// - the kernel gradient dK[tap][o] = sum over pixels of x[tap(pixel)][o / dm] * dY[pixel][o] is
//   summed per fixed chunk of output rows (chunking from the shape only), the chunks' partial sums
//   then added in chunk order: bitwise the same result for any number of threads.
// - grouped convolutions with narrow groups (narrow_groups.h) run on the same engines: lane o reads
//   input channel (o / (Co/g)) * (Ci/g) + i through one permuted load per (tap, i).
// Every result element is computed by one thread in a fixed order: any thread count gives the same bits.
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/optimized/narrow_groups.h"
#include "kernels/optimized/optimized.h"
#include "kernels/optimized/simd.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

using simd::floatv;
constexpr int64_t kLanes = simd::kLanes;
// Lane indices for permuting a floatv (same lane count whatever its width).
typedef int32_t lane_index __attribute__((vector_size(sizeof(floatv))));

// For a >= 0; written so that no intermediate exceeds a (b may be as large as int64 allows).
inline int64_t ceil_div(int64_t a, int64_t b) { return a <= 0 ? 0 : (a - 1) / b + 1; }
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a - 1) / b) - 1; }

// result[l] = value[index[l]].
inline floatv permute(floatv value, lane_index index) {
#if defined(__clang__)
  floatv result;
  for (int64_t l = 0; l < kLanes; ++l) result[l] = value[index[l]];
  return result;
#else
  return __builtin_shuffle(value, index);
#endif
}

// How block b (output channels [b*kLanes, b*kLanes + kLanes)) reads a source pixel.
struct BlockSource {
  int64_t first_channel = 0;  // source channel of lane 0
  int64_t count = 0;          // source channels to load (the rest of the vector reads as zero)
  lane_index lanes{};         // lane l takes source channel first_channel + lanes[l]
};

// One tap of a result row: its weights (kLanes-padded output channels), the source row it reads
// (null: the whole tap is in the padding) and where: result pixel j reads source column
// column_offset + j * column_step.
struct Tap {
  const float* weights;
  const float* source_row;
  int64_t column_offset;
  int64_t source_offset;  // column_offset * source channels: floats from source_row to result pixel 0's read
};
// `sub`: a channel shift within the source pixel (the i-th input channel of a group, see block_sources).
inline Tap make_tap(const float* weights, const float* source_row, int64_t column_offset, int64_t source_channels,
                    int64_t sub = 0) {
  return {weights, source_row, column_offset, column_offset * source_channels + sub};
}

// Whether a tap reading source column offset + j * step (j < count) reaches inside [0, width) for
// some j; taps that never do are left out (they add nothing). What remains has |offset| within a
// few widths, so offset * channels cannot overflow, however large the dilation. count > 1 implies
// step < width (TensorFlow's output sizes), so nothing here overflows either.
inline bool tap_reaches(int64_t offset, int64_t step, int64_t count, int64_t width) {
  return offset < width && (count <= 1 ? offset : offset + (count - 1) * step) >= 0;
}
// A stride used only to step between several result pixels: any value serves when there is one.
inline int64_t pixel_stride(int64_t stride, int64_t count) { return count > 1 ? stride : 1; }

struct RowPass {
  int64_t channels = 0;          // result channels (output channels, o-space)
  int64_t source_channels = 0;   // channels per source pixel
  bool expand = false;           // source channel of lane o is o / depth_multiplier (else o)
  int64_t source_width = 0;
  int64_t column_step = 1;
  int64_t result_pixel_stride = 0;  // floats between consecutive result pixels
  const float* bias = nullptr;      // kLanes-padded, or null
  Activation activation = Activation::linear;
  const BlockSource* blocks = nullptr;
  int64_t block_count = 0;
};

inline floatv load_block(const float* source, int64_t count) {
  return count == kLanes ? simd::load(source) : simd::load_partial(source, count);
}

// Bias, activation (relu and relu6 on the vector; the others from the stored values), store.
inline void store_result(float* destination, floatv value, int64_t width, Activation activation) {
  value = activate_on_vector(value, activation);
  if (width == kLanes) {
    simd::store(destination, value);
  } else {
    simd::store_partial(destination, value, width);
  }
  if (!activates_on_vector(activation)) activate_in_place(activation, destination, width);
}

// A tile of Pixels result pixels of block b: how it reads its source, its first result channel, how many of its lanes
// are stored (the last block's may be fewer), and its accumulators, which start at the bias.
template <int Pixels>
struct BlockTile {
  const BlockSource& source;
  int64_t first_channel, width;
  floatv acc[Pixels];
  BlockTile(const RowPass& pass, int64_t block)
      : source(pass.blocks[block]), first_channel(block * kLanes),
        width(std::min(kLanes, pass.channels - block * kLanes)) {
    const floatv initial = pass.bias != nullptr ? simd::load(pass.bias + first_channel) : floatv{};
    for (int p = 0; p < Pixels; ++p) acc[p] = initial;
  }
  // Result pixels j0.. of this block: activation and store (store_result).
  void store(const RowPass& pass, int64_t j0, float* result) const {
    for (int p = 0; p < Pixels; ++p) {
      store_result(result + (j0 + p) * pass.result_pixel_stride + first_channel, acc[p], width, pass.activation);
    }
  }
};

// Pixels result pixels j0.. j0+Pixels-1 of block b. Checked: taps whose source column falls
// outside the source are skipped (border pixels; then Pixels == 1).
template <int Pixels, bool Expand, bool Checked, bool FullSource>
inline void compute_tile(const RowPass& pass, const Tap* taps, int64_t tap_count, int64_t j0, int64_t block,
                         float* result) {
  BlockTile<Pixels> tile(pass, block);
  const BlockSource& source = tile.source;
  const int64_t source_count = FullSource ? kLanes : source.count;
  const int64_t first_channel = tile.first_channel;
  floatv (&acc)[Pixels] = tile.acc;
  // Independent offsets per pixel (not a running pointer): the loads of a tap do not wait on each other.
  const int64_t pixel_step = pass.column_step * pass.source_channels;
  int64_t pixel_offsets[Pixels];
  for (int p = 0; p < Pixels; ++p) pixel_offsets[p] = p * pixel_step;
  const int64_t tile_offset = j0 * pixel_step + source.first_channel;
  for (int64_t t = 0; t < tap_count; ++t) {
    if constexpr (Checked) {
      const int64_t column = taps[t].column_offset + j0 * pass.column_step;
      if (column < 0 || column >= pass.source_width) continue;
    }
    const floatv w = simd::load(taps[t].weights + first_channel);
    const float* x = taps[t].source_row + (taps[t].source_offset + tile_offset);
    for (int p = 0; p < Pixels; ++p) {
      floatv value = FullSource ? simd::load(x + pixel_offsets[p]) : load_block(x + pixel_offsets[p], source_count);
      if constexpr (Expand) value = permute(value, source.lanes);
      acc[p] += value * w;
    }
  }
  tile.store(pass, j0, result);
}

// The 8-pixel tile from result pixel j0 reads its last tap's source row first (the rows above it
// were read by the previous result row and are in cache): that row's lines for the tile are
// requested a tile ahead, since the tile reads them vector by vector across channel blocks (a
// stride of a whole pixel), a pattern the hardware prefetchers follow poorly.
inline void prefetch_tile(const RowPass& pass, const Tap& newest, int64_t j0) {
  const int64_t tile_bytes = 8 * pass.column_step * pass.source_channels * int64_t(sizeof(float));
  const char* first = reinterpret_cast<const char*>(newest.source_row + newest.source_offset +
                                                    j0 * pass.column_step * pass.source_channels);
  for (int64_t byte = 0; byte < tile_bytes; byte += 64) __builtin_prefetch(first + byte);
}

// The activation a row of tiles is compiled for: relu and relu6 on the vector before the store, no
// branch per pixel; the other activations run linear, then on the stored row (activate_in_place).
inline Activation epilogue_of(Activation activation) {
  return activates_on_vector(activation) ? activation : Activation::linear;
}

// Result pixels j0.. j0+Pixels-1 of block b, the taps in rows of Width that read consecutive source
// columns of one source row (dilation 1) at a result pixel step of Step columns (the stride):
// result pixel p reads column u = p * Step + k of the row at its k-th tap. Each source vector of the
// row is loaded once and multiplied into every result pixel that reads it: with a 3-wide kernel,
// 10 input loads per 24 multiply-adds at stride 1 (17 at stride 2), where compute_tile loads 24
// (and each multiply-add has its own load: on Zen 1 that tile ran at the loads' pace, about 30% of
// the FMA peak). A result's taps are summed in the same order (u ascending is k ascending), so are
// its bits. Checked: the source columns outside [0, source_width) are skipped, taps and all (border
// tiles), as compute_tile<..., Checked> skips them; with the padding at most Width - 1 columns on a
// side (tap_row_width), only the tile's first and last Width - 1 columns can be outside, and only
// those are checked. Inlined into the row's loop (run_rows_by_taps) so that the accumulators stay
// in registers from the bias to the store.
template <int Pixels, int Width, int Step, bool FullSource, bool Checked, Activation Kind>
__attribute__((always_inline)) inline void rows_tile(const RowPass& pass, const Tap* taps, int64_t tap_count,
                                                     int64_t j0, int64_t block, float* result) {
  BlockTile<Pixels> tile(pass, block);
  const BlockSource& source = tile.source;
  const int64_t source_count = FullSource ? kLanes : source.count;
  const int64_t first_channel = tile.first_channel;
  floatv (&acc)[Pixels] = tile.acc;
  const int64_t column_floats = pass.source_channels;
  const int64_t tile_offset = j0 * Step * column_floats + source.first_channel;
  constexpr int kSpan = (Pixels - 1) * Step + Width;  // source columns the tile reads per tap row
  for (int64_t t = 0; t < tap_count; t += Width) {
    int64_t u_begin = 0, u_end = kSpan;
    if constexpr (Checked) {
      const int64_t column = taps[t].column_offset + j0 * Step;  // the source column of u = 0
      u_begin = std::max<int64_t>(0, -column);
      u_end = std::min<int64_t>(kSpan, pass.source_width - column);
    }
    floatv w[Width];
#pragma GCC unroll 8
    for (int k = 0; k < Width; ++k) w[k] = simd::load(taps[t + k].weights + first_channel);
    // Source column u of the tile, stepped a column at a time: one add per load. (Left to itself,
    // GCC precomputes u * column_floats for every u, more offsets than registers, and reloads them
    // from the stack.)
    const float* column = taps[t].source_row + (taps[t].source_offset + tile_offset);
#pragma GCC unroll 32
    for (int u = 0; u < kSpan; ++u, column = simd::opaque(column + column_floats)) {
      if (Checked && ((u < Width - 1 && u < u_begin) || (u > kSpan - Width && u >= u_end))) continue;
      const floatv value =
          simd::in_register(FullSource ? simd::load(column) : load_block(column, source_count));
#pragma GCC unroll 8
      for (int k = 0; k < Width; ++k) {
        if ((u - k) % Step == 0 && u - k >= 0 && (u - k) / Step < Pixels) acc[(u - k) / Step] += value * w[k];
      }
    }
  }
  for (int p = 0; p < Pixels; ++p) {
    simd::store_lanes(result + (j0 + p) * pass.result_pixel_stride + first_channel,
                      activate_on_vector(acc[p], Kind), tile.width);
  }
}

// Pixels result pixels from j0 over every block, by rows of taps; Checked where one of them reads
// outside the source.
template <int Pixels, int Width, int Step, Activation Kind>
__attribute__((always_inline)) inline void rows_tiles(const RowPass& pass, const Tap* taps, int64_t tap_count,
                                                      int64_t j0, bool checked, float* result) {
  for (int64_t b = 0; b < pass.block_count; ++b) {
    const bool full = pass.blocks[b].count == kLanes;
    if (checked) {
      if (full) {
        rows_tile<Pixels, Width, Step, true, true, Kind>(pass, taps, tap_count, j0, b, result);
      } else {
        rows_tile<Pixels, Width, Step, false, true, Kind>(pass, taps, tap_count, j0, b, result);
      }
    } else if (full) {
      rows_tile<Pixels, Width, Step, true, false, Kind>(pass, taps, tap_count, j0, b, result);
    } else {
      rows_tile<Pixels, Width, Step, false, false, Kind>(pass, taps, tap_count, j0, b, result);
    }
  }
}

// A result row of `count` pixels by rows of taps: tiles of 8 pixels (8 independent FMA chains:
// enough to cover the FMA latency of two pipes), the last one ending at the row's last pixel (it
// recomputes pixels already stored: the same sums in the same order, so the same bits); rows of 4
// to 7 pixels by tiles of 4, shorter ones pixel by pixel. Tiles holding a pixel outside
// [first_inside, last_inside] (one of its taps reads the padding) skip those columns.
template <int Width, int Step, Activation Kind>
void run_rows_by_taps(const RowPass& pass, const Tap* taps, int64_t tap_count, int64_t count, int64_t first_inside,
                      int64_t last_inside, float* result) {
  const auto checked = [&](int64_t j0, int64_t pixels) { return j0 < first_inside || j0 + pixels - 1 > last_inside; };
  if (count >= 8) {
    int64_t j = 0;
    for (; j + 8 <= count; j += 8) {
      if (j + 16 <= count) prefetch_tile(pass, taps[tap_count - 1], j + 8);
      rows_tiles<8, Width, Step, Kind>(pass, taps, tap_count, j, checked(j, 8), result);
    }
    if (j < count) rows_tiles<8, Width, Step, Kind>(pass, taps, tap_count, count - 8, checked(count - 8, 8), result);
  } else if (count >= 4) {
    rows_tiles<4, Width, Step, Kind>(pass, taps, tap_count, 0, checked(0, 4), result);
    if (count > 4) rows_tiles<4, Width, Step, Kind>(pass, taps, tap_count, count - 4, checked(count - 4, 4), result);
  } else {
    for (int64_t j = 0; j < count; ++j) rows_tiles<1, Width, Step, Kind>(pass, taps, tap_count, j, checked(j, 1), result);
  }
}

// run_rows_by_taps for the row width (from tap_row_width: 3 or 5, or 2 or 1 at step 1), the pass's
// column step (1 or 2) and its activation; activations other than relu and relu6 on the stored row.
inline void run_row_by_taps(const RowPass& pass, const Tap* taps, int64_t tap_count, int row_width, int64_t count,
                            int64_t first_inside, int64_t last_inside, float* result) {
  const auto run = [&](auto width, auto step) {
    constexpr int kWidth = decltype(width)::value, kStep = decltype(step)::value;
    switch (epilogue_of(pass.activation)) {
      case Activation::relu:
        return run_rows_by_taps<kWidth, kStep, Activation::relu>(pass, taps, tap_count, count, first_inside,
                                                                  last_inside, result);
      case Activation::relu6:
        return run_rows_by_taps<kWidth, kStep, Activation::relu6>(pass, taps, tap_count, count, first_inside,
                                                                   last_inside, result);
      default:
        return run_rows_by_taps<kWidth, kStep, Activation::linear>(pass, taps, tap_count, count, first_inside,
                                                                    last_inside, result);
    }
  };
  using one = std::integral_constant<int, 1>;
  using two = std::integral_constant<int, 2>;
  using three = std::integral_constant<int, 3>;
  using five = std::integral_constant<int, 5>;
  if (row_width == 3 && pass.column_step == 1) {
    run(three{}, one{});
  } else if (row_width == 3) {
    run(three{}, two{});
  } else if (row_width == 5 && pass.column_step == 1) {
    run(five{}, one{});
  } else if (row_width == 5) {
    run(five{}, two{});
  } else if (row_width == 2) {
    run(two{}, one{});
  } else {
    run(one{}, one{});
  }
  if (!activates_on_vector(pass.activation)) {
    for (int64_t j = 0; j < count; ++j) {
      activate_in_place(pass.activation, result + j * pass.result_pixel_stride, pass.channels);
    }
  }
}

// The width of the rows run_row_by_taps can take the taps of a `count`-pixel result row in (0:
// none): 3 or 5 consecutive taps on one source row, one column apart, each row whole, the source
// read lane for channel, and the padding no wider than a row's width less one on either side (the
// first pixel's last tap and the last pixel's first tap inside the source; "same" and "valid"
// padding always are), which is what rows_tile's border checks assume. At a column step of 1, also
// rows of 2 and of 1 tap: a stride-2 input gradient's phases (a 3x3 kernel's even input columns
// take taps kw = 2 and 0, consecutive output columns; its odd ones kw = 1 alone), which tap by tap
// loaded every source vector once per tap and ran a quarter as fast as stride 1.
inline int tap_row_width(const RowPass& pass, const Tap* taps, int64_t tap_count, int64_t count) {
  if (pass.expand || tap_count == 0 || (pass.column_step != 1 && pass.column_step != 2)) return 0;
  for (const int width : {3, 5, 2, 1}) {
    if (width < 3 && pass.column_step != 1) break;
    if (tap_count % width != 0) continue;
    bool rows = true;
    for (int64_t t = 0; t < tap_count && rows; t += width) {
      const int64_t first_column = taps[t].column_offset;
      rows = taps[t].source_row != nullptr && first_column + width - 1 >= 0 &&
             first_column + (count - 1) * pass.column_step <= pass.source_width - 1;
      for (int k = 1; k < width && rows; ++k) {
        const Tap& tap = taps[t + k];
        rows = tap.source_row == taps[t].source_row && tap.column_offset == first_column + k &&
               tap.source_offset == taps[t].source_offset + k * pass.source_channels;
      }
    }
    if (rows) return width;
  }
  return 0;
}

// Block b of result pixels [j0, j0 + Pixels), its source loads full vectors or not.
template <int Pixels, bool Expand, bool Checked>
inline void compute_tile_any(const RowPass& pass, const Tap* taps, int64_t tap_count, int64_t j0, int64_t block,
                             float* result) {
  if (pass.blocks[block].count == kLanes) {
    compute_tile<Pixels, Expand, Checked, true>(pass, taps, tap_count, j0, block, result);
  } else {
    compute_tile<Pixels, Expand, Checked, false>(pass, taps, tap_count, j0, block, result);
  }
}

// An interior tile of Pixels result pixels from j0 over every block, tap by tap.
template <int Pixels, bool Expand>
inline void interior_tiles(const RowPass& pass, const Tap* taps, int64_t tap_count, int64_t j0, float* result) {
  for (int64_t b = 0; b < pass.block_count; ++b) {
    compute_tile_any<Pixels, Expand, false>(pass, taps, tap_count, j0, b, result);
  }
}

// result pixels [0, count) of one row, every block: by rows of taps where tap_row_width finds them
// (run_row_by_taps), else tap by tap: interior pixels 8 at a time (8 independent FMA chains:
// enough to cover the FMA latency of two pipes), the rest as a tile of 8 ending at the last
// interior pixel where the interior holds 8, else by 4 (likewise) and 1; border pixels one by one.
template <bool Expand>
void run_row(const RowPass& pass, const Tap* taps, int64_t tap_count, int64_t count, float* result) {
  // Pixels whose every tap reads inside the source: j with 0 <= offset + j*step < source_width.
  int64_t first_inside = 0, last_inside = count - 1;
  for (int64_t t = 0; t < tap_count; ++t) {
    const int64_t offset = taps[t].column_offset;
    first_inside = std::max(first_inside, ceil_div(std::max<int64_t>(-offset, 0), pass.column_step));
    last_inside = std::min(last_inside, floor_div(pass.source_width - 1 - offset, pass.column_step));
  }
  const int row_width = tap_row_width(pass, taps, tap_count, count);
  if (row_width != 0) {
    run_row_by_taps(pass, taps, tap_count, row_width, count, first_inside, last_inside, result);
    return;
  }
  auto border_pixel = [&](int64_t j) {
    for (int64_t b = 0; b < pass.block_count; ++b) compute_tile_any<1, Expand, true>(pass, taps, tap_count, j, b, result);
  };
  if (first_inside > last_inside) {
    for (int64_t j = 0; j < count; ++j) border_pixel(j);
    return;
  }
  for (int64_t j = 0; j < first_inside; ++j) border_pixel(j);
  int64_t j = first_inside;
  for (; j + 7 <= last_inside; j += 8) {
    if (tap_count > 0 && j + 15 <= last_inside) prefetch_tile(pass, taps[tap_count - 1], j + 8);
    interior_tiles<8, Expand>(pass, taps, tap_count, j, result);
  }
  // The interior's last pixels: a tile ending at last_inside that starts inside the pixels already
  // stored, where the interior holds a whole tile. It recomputes those pixels (the same sums in the
  // same order, so the same bits) and keeps 8 (or 4) independent FMA chains, where 4- and 1-pixel
  // tiles would wait on the FMA latency: a 14-pixel interior ran an 8-, a 4- and two 1-pixel tiles.
  const int64_t interior = last_inside - first_inside + 1;
  if (j <= last_inside && interior >= 8) {
    interior_tiles<8, Expand>(pass, taps, tap_count, last_inside - 7, result);
    j = last_inside + 1;
  }
  for (; j + 3 <= last_inside; j += 4) interior_tiles<4, Expand>(pass, taps, tap_count, j, result);
  if (j <= last_inside && interior >= 4) {
    interior_tiles<4, Expand>(pass, taps, tap_count, last_inside - 3, result);
    j = last_inside + 1;
  }
  for (; j <= last_inside; ++j) {
    for (int64_t b = 0; b < pass.block_count; ++b) compute_tile_any<1, Expand, false>(pass, taps, tap_count, j, b, result);
  }
  for (j = last_inside + 1; j < count; ++j) border_pixel(j);
}

// Block sources for reading a source pixel into result-channel lanes, groups of `out_per_group`
// result channels reading `in_per_group` source channels each: lane o reads source channel
// (o / out_per_group) * in_per_group + sub, sub < in_per_group being a tap's channel shift
// (Tap::source_offset). Depthwise forward: (1, depth_multiplier); a plain lane-for-channel read: (1, 1).
// count covers the largest shift; lanes_fit() says whether every lane lies inside one vector.
std::vector<BlockSource> block_sources(int64_t channels, int64_t source_channels, int64_t in_per_group,
                                       int64_t out_per_group) {
  std::vector<BlockSource> blocks(static_cast<size_t>(ceil_div(channels, kLanes)));
  for (size_t b = 0; b < blocks.size(); ++b) {
    const int64_t first_output = static_cast<int64_t>(b) * kLanes;
    BlockSource& source = blocks[b];
    source.first_channel = (first_output / out_per_group) * in_per_group;
    source.count = std::min(kLanes, source_channels - source.first_channel - (in_per_group - 1));
    for (int64_t l = 0; l < kLanes; ++l) {
      // Lanes past the last result channel repeat a loaded one (their results are never stored).
      const int64_t output_channel = std::min(first_output + l, channels - 1);
      source.lanes[l] =
          static_cast<int32_t>((output_channel / out_per_group) * in_per_group - source.first_channel);
    }
  }
  return blocks;
}

bool lanes_fit(const std::vector<BlockSource>& blocks) {
  for (const BlockSource& source : blocks) {
    if (source.count < 1) return false;
    for (int64_t l = 0; l < kLanes; ++l) {
      if (source.lanes[l] >= source.count) return false;
    }
  }
  return true;
}

struct Scratch {
  std::vector<float> weights, bias, partial;
};
Scratch& scratch() {
  thread_local Scratch buffers;
  return buffers;
}

// weights[tap][0, padded) = kernel[tap][0, channels), zero after.
void pad_weights(const float* kernel, int64_t taps, int64_t channels, std::vector<float>& weights) {
  const int64_t padded = ceil_div(channels, kLanes) * kLanes;
  weights.assign(static_cast<size_t>(taps * padded), 0.0f);
  for (int64_t tap = 0; tap < taps; ++tap) std::copy(kernel + tap * channels, kernel + (tap + 1) * channels, weights.begin() + tap * padded);
}

}  // namespace

void depthwise_conv2d_forward(const DepthwiseConv2DParams& p, const float* input, const float* kernel,
                              const float* bias, float* output) {
  if (p.output_size() == 0) return;
  const int64_t channels = p.output_channels();
  const int64_t padded = ceil_div(channels, kLanes) * kLanes;
  const int64_t taps = p.kernel_height * p.kernel_width;
  Scratch& buffers = scratch();
  pad_weights(kernel, taps, channels, buffers.weights);
  if (p.use_bias) {
    buffers.bias.assign(static_cast<size_t>(padded), 0.0f);
    std::copy(bias, bias + channels, buffers.bias.begin());
  }
  const std::vector<BlockSource> blocks = block_sources(channels, p.channels, 1, p.depth_multiplier);
  RowPass pass;
  pass.channels = channels;
  pass.source_channels = p.channels;
  pass.expand = p.depth_multiplier > 1;
  pass.source_width = p.input_width;
  pass.column_step = pixel_stride(p.stride_width, p.output_width);
  pass.result_pixel_stride = channels;
  pass.bias = p.use_bias ? buffers.bias.data() : nullptr;
  pass.activation = p.activation;
  pass.blocks = blocks.data();
  pass.block_count = static_cast<int64_t>(blocks.size());
  const float* weights = buffers.weights.data();
  // Output (oh, ow) reads input (oh*sh - pad_top + kh*dh, ow*sw - pad_left + kw*dw).
  parallel::parallel_for(p.batch * p.output_height, [&](int64_t image_row) {
    const int64_t n = image_row / p.output_height, oh = image_row % p.output_height;
    thread_local std::vector<Tap> row_taps;
    row_taps.clear();
    for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
      const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
      if (ih < 0 || ih >= p.input_height) continue;
      const float* source_row = input + (n * p.input_height + ih) * p.input_width * p.channels;
      for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
        const int64_t offset = kw * p.dilation_width - p.pad_left;
        if (!tap_reaches(offset, p.stride_width, p.output_width, p.input_width)) continue;
        row_taps.push_back(make_tap(weights + (kh * p.kernel_width + kw) * padded, source_row, offset, p.channels));
      }
    }
    float* result = output + image_row * p.output_width * channels;
    const int64_t tap_count = static_cast<int64_t>(row_taps.size());
    if (pass.expand) {
      run_row<true>(pass, row_taps.data(), tap_count, p.output_width, result);
    } else {
      run_row<false>(pass, row_taps.data(), tap_count, p.output_width, result);
    }
  });
}

void depthwise_conv2d_backward_input(const DepthwiseConv2DParams& p, const float* output_gradient,
                                     const float* kernel, float* input_gradient) {
  if (p.input_size() == 0) return;
  if (p.output_size() == 0) {
    std::fill(input_gradient, input_gradient + p.input_size(), 0.0f);
    return;
  }
  const int64_t channels = p.output_channels();
  const int64_t dm = p.depth_multiplier;
  const int64_t padded = ceil_div(channels, kLanes) * kLanes;
  const int64_t taps = p.kernel_height * p.kernel_width;
  Scratch& buffers = scratch();
  pad_weights(kernel, taps, channels, buffers.weights);
  const std::vector<BlockSource> blocks = block_sources(channels, channels, 1, 1);
  RowPass pass;
  pass.channels = channels;
  pass.source_channels = channels;
  pass.source_width = p.output_width;
  pass.column_step = 1;
  // Several result pixels per phase only when stride_width < input_width.
  pass.result_pixel_stride = (p.stride_width < p.input_width ? p.stride_width : 1) * channels;
  pass.blocks = blocks.data();
  pass.block_count = static_cast<int64_t>(blocks.size());
  const float* weights = buffers.weights.data();
  parallel::parallel_for(p.batch * p.input_height, [&](int64_t image_row) {
    const int64_t n = image_row / p.input_height, ih = image_row % p.input_height;
    thread_local std::vector<Tap> row_taps;
    thread_local std::vector<float> sums;  // per-o sums of one row when depth_multiplier > 1
    float* input_gradient_row = input_gradient + image_row * p.input_width * p.channels;
    float* result_row = input_gradient_row;
    if (dm > 1) {
      sums.resize(static_cast<size_t>(p.input_width * channels));
      result_row = sums.data();
    }
    // Input column iw = phase + j * stride_width reads output column ow = j + (phase + pad_left - kw*dw) / sw
    // at tap kw when the division is exact (the same for every j of the phase).
    for (int64_t phase = 0; phase < std::min(p.stride_width, p.input_width); ++phase) {
      row_taps.clear();
      for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
        const int64_t row_offset = ih + p.pad_top - kh * p.dilation_height;
        if (row_offset < 0 || row_offset % p.stride_height != 0) continue;
        const int64_t oh = row_offset / p.stride_height;
        if (oh >= p.output_height) continue;
        const float* source_row = output_gradient + (n * p.output_height + oh) * p.output_width * channels;
        // kw descending: the source offsets ascend, the order in which run_row finds rows of taps.
        for (int64_t kw = p.kernel_width - 1; kw >= 0; --kw) {
          const int64_t column_offset = phase + p.pad_left - kw * p.dilation_width;
          if (floor_div(column_offset, p.stride_width) * p.stride_width != column_offset) continue;
          const int64_t offset = floor_div(column_offset, p.stride_width);
          if (!tap_reaches(offset, 1, ceil_div(p.input_width - phase, p.stride_width), p.output_width)) continue;
          row_taps.push_back(make_tap(weights + (kh * p.kernel_width + kw) * padded, source_row, offset, channels));
        }
      }
      const int64_t count = ceil_div(p.input_width - phase, p.stride_width);
      run_row<false>(pass, row_taps.data(), static_cast<int64_t>(row_taps.size()), count,
                     result_row + phase * channels);
    }
    if (dm > 1) {
      // dX(c) = sum_m sums(c*dm + m), m in order.
      for (int64_t iw = 0; iw < p.input_width; ++iw) {
        const float* pixel_sums = result_row + iw * channels;
        float* dx = input_gradient_row + iw * p.channels;
        for (int64_t c = 0; c < p.channels; ++c) {
          float sum = pixel_sums[c * dm];
          for (int64_t m = 1; m < dm; ++m) sum += pixel_sums[c * dm + m];
          dx[c] = sum;
        }
      }
    }
  });
}

namespace {

// partial[tap * in_per_group + sub][o] += sum over output pixels of
//     x(tap, pixel)[(o / out_per_group) * in_per_group + sub] * dY(pixel)[o]
// for the output rows [row_begin, row_end) of geometry g (input_channels: source channels,
// output_channels: o); partial_bias[o] += sum of dY(pixel)[o] when not null. Per (row, block, tap,
// sub): two accumulators over the row's pixels (even and odd positions from the tap's first
// column), added at the row's end to the tap's running sum.
//
// Work goes in groups of about 128 pixels of rows, whose x and dY rows stay in L2 while every
// block and tap passes over them. In a group, one walk over the rows serves up to 4 taps of one
// kernel row (Taps): each dY vector is loaded once per group of taps rather than once per tap,
// and the taps' running sums stay in registers across the rows (a walk per row and tap spent
// more on its setup than on its few columns), saved to `targets` between groups (exactly). Each
// tap keeps its row sums by the column's parity: the accumulator holding the tap's first column
// is its "even" one, so every sum runs over the same pixels in the same order as a walk per tap.

// Tap column kw's input offset and the output columns whose input column ow*sw + offset lies
// inside the input (first > last: none).
struct TapColumns {
  int64_t offset, first, last;
};

template <bool Expand, int Taps>
void kernel_gradient_tap_rows(const Conv2DParams& g, const float* input, const float* output_gradient,
                              const BlockSource& source, int64_t first, int64_t width, int64_t kh,
                              const TapColumns* tap_columns, int64_t sub, int64_t row_begin, int64_t row_end,
                              float* targets, int64_t target_step) {
  int64_t offset[Taps], first_column[Taps], last_column[Taps];
  int64_t lo = g.output_width, hi = -1, inner_lo = 0, inner_hi = g.output_width - 1;
  for (int t = 0; t < Taps; ++t) {
    offset[t] = tap_columns[t].offset;
    first_column[t] = tap_columns[t].first;
    last_column[t] = tap_columns[t].last;
    if (first_column[t] > last_column[t]) {
      inner_lo = g.output_width;  // a tap entirely in the padding: every column checks its taps
      continue;
    }
    lo = std::min(lo, first_column[t]);
    hi = std::max(hi, last_column[t]);
    inner_lo = std::max(inner_lo, first_column[t]);
    inner_hi = std::min(inner_hi, last_column[t]);
  }
  if (lo > hi) return;
  if (inner_lo > inner_hi) inner_lo = hi + 1, inner_hi = hi;  // no column with every tap inside: all checked
  const int64_t channels = g.output_channels;
  floatv totals[Taps];
  for (int t = 0; t < Taps; ++t) totals[t] = simd::load(targets + t * target_step);
  for (int64_t image_row = row_begin, n = row_begin / g.output_height, oh = row_begin % g.output_height;
       image_row < row_end; ++image_row, oh = oh + 1 == g.output_height ? 0 : oh + 1, n += oh == 0 ? 1 : 0) {
    const int64_t ih = oh * g.stride_height - g.pad_top + kh * g.dilation_height;
    if (ih < 0 || ih >= g.input_height) continue;
    const float* x_row =
        input + (n * g.input_height + ih) * g.input_width * g.input_channels + source.first_channel + sub;
    const float* dy_row = output_gradient + image_row * g.output_width * channels + first;
    const auto x_at = [&](int64_t ow, int t) {
      const floatv x = load_block(x_row + (ow * g.stride_width + offset[t]) * g.input_channels, source.count);
      if constexpr (Expand) return permute(x, source.lanes);
      return x;
    };
    floatv even[Taps], odd[Taps];
    for (int t = 0; t < Taps; ++t) even[t] = odd[t] = floatv{};
    // Columns where some tap is outside: each tap checks its range.
    const auto checked_column = [&](int64_t ow) {
      const floatv dy = load_block(dy_row + ow * channels, width);
      for (int t = 0; t < Taps; ++t) {
        if (ow < first_column[t] || ow > last_column[t]) continue;
        if ((ow & 1) != 0) {
          odd[t] += x_at(ow, t) * dy;
        } else {
          even[t] += x_at(ow, t) * dy;
        }
      }
    };
    for (int64_t ow = lo; ow < inner_lo; ++ow) checked_column(ow);
    // Every tap inside: in pairs from an even column.
    int64_t column = inner_lo;
    if (column <= inner_hi && (column & 1) != 0) {
      const floatv dy = load_block(dy_row + column * channels, width);
      for (int t = 0; t < Taps; ++t) odd[t] += x_at(column, t) * dy;
      ++column;
    }
    for (; column + 1 <= inner_hi; column += 2) {
      const floatv dy0 = load_block(dy_row + column * channels, width);
      const floatv dy1 = load_block(dy_row + (column + 1) * channels, width);
      for (int t = 0; t < Taps; ++t) even[t] += x_at(column, t) * dy0;
      for (int t = 0; t < Taps; ++t) odd[t] += x_at(column + 1, t) * dy1;
    }
    if (column <= inner_hi) {
      const floatv dy = load_block(dy_row + column * channels, width);
      for (int t = 0; t < Taps; ++t) even[t] += x_at(column, t) * dy;
    }
    for (int64_t ow = std::max(inner_hi + 1, inner_lo); ow <= hi; ++ow) checked_column(ow);
    for (int t = 0; t < Taps; ++t) {
      if (first_column[t] > last_column[t]) continue;
      totals[t] += even[t] + odd[t];  // (the tap's even + odd: addition commutes exactly)
    }
  }
  for (int t = 0; t < Taps; ++t) simd::store(targets + t * target_step, totals[t]);
}

template <bool Expand>
void kernel_gradient_row_group(const Conv2DParams& g, int64_t in_per_group, const float* input,
                               const float* output_gradient, const BlockSource* blocks, int64_t block_count,
                               int64_t row_begin, int64_t row_end, int64_t padded, const TapColumns* tap_columns,
                               float* partial, float* partial_bias) {
  const int64_t channels = g.output_channels;
  for (int64_t b = 0; b < block_count; ++b) {
    const BlockSource& source = blocks[b];
    const int64_t first = b * kLanes;
    const int64_t width = std::min(kLanes, channels - first);
    if (partial_bias != nullptr) {
      for (int64_t image_row = row_begin; image_row < row_end; ++image_row) {
        const float* dy_row = output_gradient + image_row * g.output_width * channels;
        floatv sum = {};
        for (int64_t ow = 0; ow < g.output_width; ++ow) sum += load_block(dy_row + ow * channels + first, width);
        simd::store(partial_bias + first, simd::load(partial_bias + first) + sum);
      }
    }
    for (int64_t kh = 0; kh < g.kernel_height; ++kh) {
      for (int64_t sub = 0; sub < in_per_group; ++sub) {
        for (int64_t first_kw = 0; first_kw < g.kernel_width; first_kw += 4) {
          float* targets = partial + ((kh * g.kernel_width + first_kw) * in_per_group + sub) * padded + first;
          const int64_t step = in_per_group * padded;
          switch (std::min<int64_t>(4, g.kernel_width - first_kw)) {
            case 1:
              kernel_gradient_tap_rows<Expand, 1>(g, input, output_gradient, source, first, width, kh,
                                                  tap_columns + first_kw, sub, row_begin, row_end, targets, step);
              break;
            case 2:
              kernel_gradient_tap_rows<Expand, 2>(g, input, output_gradient, source, first, width, kh,
                                                  tap_columns + first_kw, sub, row_begin, row_end, targets, step);
              break;
            case 3:
              kernel_gradient_tap_rows<Expand, 3>(g, input, output_gradient, source, first, width, kh,
                                                  tap_columns + first_kw, sub, row_begin, row_end, targets, step);
              break;
            default:
              kernel_gradient_tap_rows<Expand, 4>(g, input, output_gradient, source, first, width, kh,
                                                  tap_columns + first_kw, sub, row_begin, row_end, targets, step);
              break;
          }
        }
      }
    }
  }
}

template <bool Expand>
void kernel_gradient_rows(const Conv2DParams& g, int64_t in_per_group, const float* input,
                          const float* output_gradient, const BlockSource* blocks, int64_t block_count,
                          int64_t row_begin, int64_t row_end, int64_t padded, float* partial, float* partial_bias) {
  thread_local std::vector<TapColumns> tap_columns;
  tap_columns.resize(static_cast<size_t>(g.kernel_width));
  for (int64_t kw = 0; kw < g.kernel_width; ++kw) {
    const int64_t offset = kw * g.dilation_width - g.pad_left;
    tap_columns[kw] = {offset, ceil_div(std::max<int64_t>(-offset, 0), g.stride_width),
                       std::min(g.output_width - 1, floor_div(g.input_width - 1 - offset, g.stride_width))};
  }
  const int64_t rows_per_group = std::max<int64_t>(1, 128 / std::max<int64_t>(1, g.output_width));
  for (int64_t group_begin = row_begin; group_begin < row_end; group_begin += rows_per_group) {
    const int64_t group_end = std::min(row_end, group_begin + rows_per_group);
    kernel_gradient_row_group<Expand>(g, in_per_group, input, output_gradient, blocks, block_count, group_begin,
                                      group_end, padded, tap_columns.data(), partial, partial_bias);
  }
}

// The same partial sums for a depthwise 3x3 kernel (one source channel per output channel),
// dilation 1, any stride: per block of kLanes channels, the nine taps' sums (and dY's, for the
// bias) stay in registers while one walk goes over the pixels, each dY vector loaded once for all
// nine taps (the walk per kernel row above loads it three times, and its per-row setup outweighed
// a narrow row's few columns). Each tap's sum runs over the pixels in row-major order, skipping
// those whose tap is in the padding; the rows go in groups of about 128 pixels, whose x and dY rows
// stay in L1 while every block passes over them, the sums saved to `partial` between groups
// (exactly: the chain goes on where it stopped).
struct ThreeByThreeWalk {
  const float* rows[3];  // the kernel rows' input rows at channel `first`, null where in the padding
  const float* dy_row;   // at channel `first`
  int64_t channels;      // output and input channels: the pixel step
  int64_t stride_width, pad_left, input_width, output_width;
  int64_t inner_lo, inner_hi;  // the output columns whose three taps are all inside the input
  int64_t width;               // channels of this block (kLanes but in the last block)
};

// Pixel ow of a row: tap (kh, kw) for the kernel rows in RowMask, adding x * dY to sums[kh * 3 + kw].
template <int RowMask, bool Full, bool Checked>
__attribute__((always_inline)) inline void kernel_gradient_3x3_pixel(const ThreeByThreeWalk& walk, int64_t ow,
                                                                     floatv (&sums)[9], floatv& bias_sum) {
  const floatv dy = Full ? simd::load(walk.dy_row + ow * walk.channels) : simd::load_partial(walk.dy_row + ow * walk.channels, walk.width);
  bias_sum += dy;
  const int64_t column = ow * walk.stride_width - walk.pad_left;
  for (int kh = 0; kh < 3; ++kh) {
    if (((RowMask >> kh) & 1) == 0) continue;  // a constant once unrolled
    const float* x = walk.rows[kh] + column * walk.channels;
    for (int kw = 0; kw < 3; ++kw) {
      if (Checked && (column + kw < 0 || column + kw >= walk.input_width)) continue;
      const floatv value = Full ? simd::load(x + kw * walk.channels) : simd::load_partial(x + kw * walk.channels, walk.width);
      sums[kh * 3 + kw] += value * dy;
    }
  }
}

// `row_count` rows from the walk's, each the one below (in the same image, the same kernel rows
// inside). The sums are copied into locals, which stay in registers (through the pointer every one
// would be loaded and stored per pixel).
template <int RowMask, bool Full>
void kernel_gradient_3x3_rows_run(const ThreeByThreeWalk& first_row, int64_t row_count, int64_t input_row_step,
                                  int64_t output_row_step, floatv* sums_in_memory, floatv& bias_in_memory) {
  ThreeByThreeWalk walk = first_row;
  floatv sums[9];
  for (int t = 0; t < 9; ++t) sums[t] = sums_in_memory[t];
  floatv bias_sum = bias_in_memory;
  const int64_t inner_begin = std::min(walk.inner_lo, walk.output_width);
  for (int64_t row = 0; row < row_count; ++row) {
    int64_t ow = 0;
    for (; ow < inner_begin; ++ow) kernel_gradient_3x3_pixel<RowMask, Full, true>(walk, ow, sums, bias_sum);
    for (; ow <= walk.inner_hi; ++ow) kernel_gradient_3x3_pixel<RowMask, Full, false>(walk, ow, sums, bias_sum);
    for (; ow < walk.output_width; ++ow) kernel_gradient_3x3_pixel<RowMask, Full, true>(walk, ow, sums, bias_sum);
    for (int kh = 0; kh < 3; ++kh) {
      if (((RowMask >> kh) & 1) != 0) walk.rows[kh] += input_row_step;
    }
    walk.dy_row += output_row_step;
  }
  for (int t = 0; t < 9; ++t) sums_in_memory[t] = sums[t];
  bias_in_memory = bias_sum;
}

template <bool Full>
void kernel_gradient_3x3_rows_any(int row_mask, const ThreeByThreeWalk& walk, int64_t row_count,
                                  int64_t input_row_step, int64_t output_row_step, floatv* sums, floatv& bias_sum) {
  switch (row_mask) {  // the kernel rows inside the input: a run of consecutive ones
#define FASTCNN_ROWS_RUN(mask)                                                                                 \
  case mask:                                                                                                   \
    kernel_gradient_3x3_rows_run<mask, Full>(walk, row_count, input_row_step, output_row_step, sums, bias_sum); \
    break;
    FASTCNN_ROWS_RUN(1)
    FASTCNN_ROWS_RUN(2)
    FASTCNN_ROWS_RUN(3)
    FASTCNN_ROWS_RUN(4)
    FASTCNN_ROWS_RUN(6)
    FASTCNN_ROWS_RUN(7)
#undef FASTCNN_ROWS_RUN
    default: break;  // 0: every kernel row in the padding
  }
}

bool kernel_gradient_3x3_applies(const Conv2DParams& g, int64_t in_per_group, int64_t out_per_group) {
  return in_per_group == 1 && out_per_group == 1 && g.kernel_height == 3 && g.kernel_width == 3 &&
         g.dilation_height == 1 && g.dilation_width == 1;
}

void kernel_gradient_3x3_rows(const Conv2DParams& g, const float* input, const float* output_gradient,
                              int64_t row_begin, int64_t row_end, int64_t padded, float* partial,
                              float* partial_bias) {
  ThreeByThreeWalk walk{};
  walk.channels = g.output_channels;
  walk.stride_width = g.stride_width;
  walk.pad_left = g.pad_left;
  walk.input_width = g.input_width;
  walk.output_width = g.output_width;
  // Tap kw is inside for ow*sw - pad_left + kw in [0, input_width): all three for ow in [inner_lo, inner_hi].
  walk.inner_lo = ceil_div(g.pad_left, g.stride_width);
  walk.inner_hi = std::min(g.output_width - 1, floor_div(g.input_width - 3 + g.pad_left, g.stride_width));
  // Bit kh set: input row oh * sh - pad_top + kh is inside.
  const auto kernel_rows_inside = [&](int64_t oh) {
    int mask = 0;
    for (int kh = 0; kh < 3; ++kh) {
      const int64_t ih = oh * g.stride_height - g.pad_top + kh;
      mask |= ih >= 0 && ih < g.input_height ? 1 << kh : 0;
    }
    return mask;
  };
  const int64_t input_row_step = g.stride_height * g.input_width * g.input_channels;
  const int64_t output_row_step = g.output_width * g.output_channels;
  const int64_t rows_per_group = std::max<int64_t>(1, 128 / std::max<int64_t>(1, g.output_width));
  for (int64_t group_begin = row_begin; group_begin < row_end; group_begin += rows_per_group) {
    const int64_t group_end = std::min(row_end, group_begin + rows_per_group);
    for (int64_t first = 0; first < g.output_channels; first += kLanes) {
      walk.width = std::min(kLanes, g.output_channels - first);
      floatv sums[9];
      for (int t = 0; t < 9; ++t) sums[t] = simd::load(partial + t * padded + first);
      floatv bias_sum = partial_bias != nullptr ? simd::load(partial_bias + first) : floatv{};
      for (int64_t image_row = group_begin; image_row < group_end;) {
        const int64_t n = image_row / g.output_height, oh = image_row % g.output_height;
        const int row_mask = kernel_rows_inside(oh);
        for (int kh = 0; kh < 3; ++kh) {
          const int64_t ih = oh * g.stride_height - g.pad_top + kh;
          walk.rows[kh] = ((row_mask >> kh) & 1) != 0
                              ? input + ((n * g.input_height + ih) * g.input_width) * g.input_channels + first
                              : nullptr;
        }
        walk.dy_row = output_gradient + image_row * g.output_width * g.output_channels + first;
        int64_t run = 1;  // the rows below in the same image with the same kernel rows inside
        while (image_row + run < group_end && oh + run < g.output_height && kernel_rows_inside(oh + run) == row_mask) ++run;
        if (walk.width == kLanes) {
          kernel_gradient_3x3_rows_any<true>(row_mask, walk, run, input_row_step, output_row_step, sums, bias_sum);
        } else {
          kernel_gradient_3x3_rows_any<false>(row_mask, walk, run, input_row_step, output_row_step, sums, bias_sum);
        }
        image_row += run;
      }
      for (int t = 0; t < 9; ++t) simd::store(partial + t * padded + first, sums[t]);
      if (partial_bias != nullptr) simd::store(partial_bias + first, bias_sum);
    }
  }
}

// kernel_gradient[(tap * in_per_group + sub)][o] (and bias_gradient[o] when not null) as
// kernel_gradient_rows describes, over every output row: per fixed chunk of rows (chunking from
// the shape alone: at most 64 chunks of at least 4 rows), then the chunks' partial sums added in
// chunk order. Bitwise the same for any thread count.
void kernel_gradient_pass(const Conv2DParams& g, int64_t in_per_group, int64_t out_per_group, const float* input,
                     const float* output_gradient, float* kernel_gradient, float* bias_gradient) {
  const int64_t channels = g.output_channels;
  const int64_t padded = ceil_div(channels, kLanes) * kLanes;
  const int64_t kernel_rows = g.kernel_height * g.kernel_width * in_per_group;
  const int64_t image_rows = g.batch * g.output_height;
  const int64_t rows_per_chunk = std::max<int64_t>(4, ceil_div(image_rows, 64));
  const int64_t chunks = ceil_div(image_rows, rows_per_chunk);
  // One partial gradient per chunk: the kernel's rows, then one row of bias, each padded.
  const int64_t partial_size = (kernel_rows + 1) * padded;
  Scratch& buffers = scratch();
  buffers.partial.assign(static_cast<size_t>(std::max<int64_t>(chunks, 1) * partial_size), 0.0f);
  float* partial = buffers.partial.data();
  const std::vector<BlockSource> blocks = block_sources(channels, g.input_channels, in_per_group, out_per_group);
  const bool expand = in_per_group != 1 || out_per_group != 1;
  const bool with_bias = bias_gradient != nullptr;
  const bool three_by_three = kernel_gradient_3x3_applies(g, in_per_group, out_per_group);
  parallel::parallel_for(chunks, [&](int64_t chunk) {
    float* chunk_partial = partial + chunk * partial_size;
    const int64_t row_begin = chunk * rows_per_chunk, row_end = std::min(image_rows, row_begin + rows_per_chunk);
    float* chunk_bias = with_bias ? chunk_partial + kernel_rows * padded : nullptr;
    const int64_t block_count = static_cast<int64_t>(blocks.size());
    if (three_by_three) {
      kernel_gradient_3x3_rows(g, input, output_gradient, row_begin, row_end, padded, chunk_partial, chunk_bias);
    } else if (expand) {
      kernel_gradient_rows<true>(g, in_per_group, input, output_gradient, blocks.data(), block_count, row_begin,
                                 row_end, padded, chunk_partial, chunk_bias);
    } else {
      kernel_gradient_rows<false>(g, in_per_group, input, output_gradient, blocks.data(), block_count, row_begin,
                                  row_end, padded, chunk_partial, chunk_bias);
    }
  });
  // Chunk partials added in chunk order, each row by one thread.
  parallel::parallel_for(kernel_rows + 1, [&](int64_t row) {
    if (row == kernel_rows && !with_bias) return;
    float* target = row < kernel_rows ? kernel_gradient + row * channels : bias_gradient;
    for (int64_t first = 0; first < padded; first += kLanes) {
      floatv sum = {};
      for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += simd::load(partial + chunk * partial_size + row * padded + first);
      store_result(target + first, sum, std::min(kLanes, channels - first), Activation::linear);
    }
  });
}

// The geometry of a depthwise convolution as a Conv2D's: channels in, channels * dm out.
Conv2DParams geometry_of(const DepthwiseConv2DParams& p) {
  Conv2DParams g;
  g.batch = p.batch;
  g.input_height = p.input_height;
  g.input_width = p.input_width;
  g.input_channels = p.channels;
  g.output_height = p.output_height;
  g.output_width = p.output_width;
  g.output_channels = p.output_channels();
  g.kernel_height = p.kernel_height;
  g.kernel_width = p.kernel_width;
  g.stride_height = p.stride_height;
  g.stride_width = p.stride_width;
  g.dilation_height = p.dilation_height;
  g.dilation_width = p.dilation_width;
  g.pad_top = p.pad_top;
  g.pad_left = p.pad_left;
  return g;
}

}  // namespace

void depthwise_conv2d_backward_kernel(const DepthwiseConv2DParams& p, const float* input,
                                      const float* output_gradient, float* kernel_gradient, float* bias_gradient) {
  kernel_gradient_pass(geometry_of(p), 1, p.depth_multiplier, input, output_gradient, kernel_gradient,
                               bias_gradient);
}

// ---- grouped convolution with narrow groups (narrow_groups.h) ----

bool narrow_groups_applicable(const GroupedConv2DParams& p) {
  const int64_t in_per_group = p.group_input_channels(), out_per_group = p.group_output_channels();
  // The dense micro-kernel fills 16 output channels per tile: narrower groups leave it mostly idle.
  if (p.groups == 1 || out_per_group >= 16 || in_per_group >= 16) return false;
  return lanes_fit(block_sources(p.conv.output_channels, p.conv.input_channels, in_per_group, out_per_group)) &&
         lanes_fit(block_sources(p.conv.input_channels, p.conv.output_channels, out_per_group, in_per_group));
}

// output[o] = act(bias[o] + sum over taps and i < Ci/g of x(tap)[(o / (Co/g)) * (Ci/g) + i] * kernel[tap][i][o]):
// the depthwise forward engine with Ci/g taps per kernel tap, each shifted by i channels.
void grouped_conv2d_forward_narrow(const GroupedConv2DParams& gp, const float* input, const float* kernel,
                                   const float* bias, float* output) {
  const Conv2DParams& p = gp.conv;
  if (p.output_size() == 0) return;
  const int64_t in_per_group = gp.group_input_channels(), out_per_group = gp.group_output_channels();
  const int64_t channels = p.output_channels;
  const int64_t padded = ceil_div(channels, kLanes) * kLanes;
  Scratch& buffers = scratch();
  pad_weights(kernel, p.kernel_height * p.kernel_width * in_per_group, channels, buffers.weights);
  if (p.use_bias) {
    buffers.bias.assign(static_cast<size_t>(padded), 0.0f);
    std::copy(bias, bias + channels, buffers.bias.begin());
  }
  const std::vector<BlockSource> blocks = block_sources(channels, p.input_channels, in_per_group, out_per_group);
  RowPass pass;
  pass.channels = channels;
  pass.source_channels = p.input_channels;
  pass.expand = true;
  pass.source_width = p.input_width;
  pass.column_step = pixel_stride(p.stride_width, p.output_width);
  pass.result_pixel_stride = channels;
  pass.bias = p.use_bias ? buffers.bias.data() : nullptr;
  pass.activation = p.activation;
  pass.blocks = blocks.data();
  pass.block_count = static_cast<int64_t>(blocks.size());
  const float* weights = buffers.weights.data();
  parallel::parallel_for(p.batch * p.output_height, [&](int64_t image_row) {
    const int64_t n = image_row / p.output_height, oh = image_row % p.output_height;
    thread_local std::vector<Tap> row_taps;
    row_taps.clear();
    for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
      const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
      if (ih < 0 || ih >= p.input_height) continue;
      const float* source_row = input + (n * p.input_height + ih) * p.input_width * p.input_channels;
      for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
        const int64_t offset = kw * p.dilation_width - p.pad_left;
        if (!tap_reaches(offset, p.stride_width, p.output_width, p.input_width)) continue;
        for (int64_t i = 0; i < in_per_group; ++i) {
          row_taps.push_back(make_tap(weights + ((kh * p.kernel_width + kw) * in_per_group + i) * padded, source_row,
                                      offset, p.input_channels, i));
        }
      }
    }
    run_row<true>(pass, row_taps.data(), static_cast<int64_t>(row_taps.size()), p.output_width,
                  output + image_row * p.output_width * channels);
  });
}

// dX[c] = sum over the taps that read it and j < Co/g of dY[(c / (Ci/g)) * (Co/g) + j] * kernel[tap][c % (Ci/g)][that channel]:
// the depthwise input-gradient engine (columns by phase) with Co/g taps per kernel tap, the kernel
// transposed to transposed[tap][j][c].
void grouped_conv2d_backward_input_narrow(const GroupedConv2DParams& gp, const float* output_gradient,
                                          const float* kernel, float* input_gradient) {
  const Conv2DParams& p = gp.conv;
  if (p.input_size() == 0) return;
  if (p.output_size() == 0) {
    std::fill(input_gradient, input_gradient + p.input_size(), 0.0f);
    return;
  }
  const int64_t in_per_group = gp.group_input_channels(), out_per_group = gp.group_output_channels();
  const int64_t channels = p.input_channels;
  const int64_t padded = ceil_div(channels, kLanes) * kLanes;
  const int64_t taps = p.kernel_height * p.kernel_width;
  Scratch& buffers = scratch();
  buffers.weights.assign(static_cast<size_t>(taps * out_per_group * padded), 0.0f);
  for (int64_t tap = 0; tap < taps; ++tap)
    for (int64_t j = 0; j < out_per_group; ++j)
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t o = (c / in_per_group) * out_per_group + j;
        buffers.weights[(tap * out_per_group + j) * padded + c] =
            kernel[(tap * in_per_group + c % in_per_group) * p.output_channels + o];
      }
  const std::vector<BlockSource> blocks = block_sources(channels, p.output_channels, out_per_group, in_per_group);
  RowPass pass;
  pass.channels = channels;
  pass.source_channels = p.output_channels;
  pass.expand = true;
  pass.source_width = p.output_width;
  pass.column_step = 1;
  // Several result pixels per phase only when stride_width < input_width.
  pass.result_pixel_stride = (p.stride_width < p.input_width ? p.stride_width : 1) * channels;
  pass.blocks = blocks.data();
  pass.block_count = static_cast<int64_t>(blocks.size());
  const float* weights = buffers.weights.data();
  parallel::parallel_for(p.batch * p.input_height, [&](int64_t image_row) {
    const int64_t n = image_row / p.input_height, ih = image_row % p.input_height;
    thread_local std::vector<Tap> row_taps;
    float* result_row = input_gradient + image_row * p.input_width * channels;
    for (int64_t phase = 0; phase < std::min(p.stride_width, p.input_width); ++phase) {
      row_taps.clear();
      for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
        const int64_t row_offset = ih + p.pad_top - kh * p.dilation_height;
        if (row_offset < 0 || row_offset % p.stride_height != 0) continue;
        const int64_t oh = row_offset / p.stride_height;
        if (oh >= p.output_height) continue;
        const float* source_row = output_gradient + (n * p.output_height + oh) * p.output_width * p.output_channels;
        for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
          const int64_t column_offset = phase + p.pad_left - kw * p.dilation_width;
          if (floor_div(column_offset, p.stride_width) * p.stride_width != column_offset) continue;
          const int64_t offset = floor_div(column_offset, p.stride_width);
          if (!tap_reaches(offset, 1, ceil_div(p.input_width - phase, p.stride_width), p.output_width)) continue;
          for (int64_t j = 0; j < out_per_group; ++j) {
            row_taps.push_back(make_tap(weights + ((kh * p.kernel_width + kw) * out_per_group + j) * padded,
                                        source_row, offset, p.output_channels, j));
          }
        }
      }
      const int64_t count = ceil_div(p.input_width - phase, p.stride_width);
      run_row<true>(pass, row_taps.data(), static_cast<int64_t>(row_taps.size()), count,
                    result_row + phase * channels);
    }
  });
}

void grouped_conv2d_backward_kernel_narrow(const GroupedConv2DParams& gp, const float* input,
                                           const float* output_gradient, float* kernel_gradient,
                                           float* bias_gradient) {
  kernel_gradient_pass(gp.conv, gp.group_input_channels(), gp.group_output_channels(), input, output_gradient,
                       kernel_gradient, bias_gradient);
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
