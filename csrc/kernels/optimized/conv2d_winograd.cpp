// Winograd convolution (Lavin & Gray, arXiv 1509.09308) for 3x3 kernels with unit stride and
// dilation, in two variants F(m x m, 3 x 3): each m x m block of output pixels ("tile") is
//   Y = A^T [ (G g G^T) . (B^T d B) ] A
// with d the n x n input patch under the tile (n = m + 2, zeros in the padding) and g the 3x3
// kernel; summed over input channels, the n^2 element-wise products become n^2 GEMMs
// V[point] (tiles x Cin) . U[point] (Cin x Cout).
// - F(2x2, 3x3): 16 multiply-adds per 4 outputs and channel pair (36 direct: a 2.25x cut); its
//   matrices hold 0, +-1 and +-1/2 only, so it rounds within a few ulps of the direct sum.
//     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//     G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//     A^T = [1 1 1 0; 0 1 -1 -1]
// - F(4x4, 3x3): 36 per 16 outputs (144 direct: 4x). Its transforms scale by up to 8, so it
//   rounds more; the interpolation points 0, 1, -1, 1/2, -2 (and infinity) instead of the usual
//   0, +-1, +-2 cut that error about 3x (Barabasz et al., arXiv 1803.10986), to ~1.5e-6 of the
//   output's magnitude at 64 channels (the direct float32 sum: ~1e-6; tests bound it against
//   float64). The kernel transforms run in double and are rounded once.
//     B^T = [1 -3/2 -2 3/2 1 0; 0 -1 1/2 5/2 1 0; 0 1 -5/2 1/2 1 0;
//            0 -2 -1 2 1 0; 0 1/2 -1 -1/2 1 0; 0 1 -3/2 -2 3/2 1]
//     G   = [1 0 0; 1/3 1/3 1/3; -1/3 1/3 -1/3; -16/15 -8/15 -4/15; 1/15 -2/15 4/15; 0 0 1]
//     A^T = [1 1 1 1 1 0; 0 1 -1 1/2 -2 0; 0 1 1 1/4 4 0; 0 1 -1 1/8 -8 1]
// The kernel gradient and the inference forward pass take the variant that computes fewer
// transformed points (tiles x n^2) for the output size: F(4x4) for all but the smallest images.
// The training forward pass and the input gradient of a network with max pooling (or a
// Maximum/Minimum merge) keep F(2x2), to stay on TensorFlow's training trajectory: in the
// forward pass, two max-pooling inputs within F(4x4)'s rounding of each other would order
// differently (and route the gradient elsewhere) 4x as often; the input gradient's
// error reaches every earlier layer's gradient (F(4x4) there failed the three-step TensorFlow parity
// test of seed Example 1 with SGD + Nesterov: the slightly different weights then meet max-pooling
// decisions TensorFlow takes otherwise). Networks without such a layer take F(4x4) in both
// (Conv2DParams::large_winograd_tile, the plan's training_winograd_tile). The GEMMs run on the
// shared micro-kernel (conv_microkernel.h); every output element is computed by one thread in a
// fixed order, so results do not depend on the thread count.
#include <algorithm>
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
// One tall tile of tiles per task (12 on avx512, 6 on the 8-lane tiers), its GEMMs on the tall
// micro-kernel: each weight vector loaded serves 12 tiles. With 6 tiles per task on the 6-pixel
// tile the GEMMs ran at 50-90 GFLOP/s of a 239 GFLOP/s core with full-width AVX-512 FMA units,
// waiting on the weight loads (each (point, block) panel came from L2 for 6 tiles only).
constexpr int64_t kTilesPerTask = kTallTilePixels<2>;

// The one-dimensional transforms of a variant (applied along rows, then columns), for float
// (weights) and floatv (simd::kLanes channels of activations). T * float multiplies every lane.
struct F2x2 {
  static constexpr int kOut = 2, kIn = 4, kPoints = kIn * kIn;
  template <typename T> static void kernel(const T (&g)[3], T (&u)[kIn]) {  // u = G g
    u[0] = g[0];
    u[1] = 0.5f * (g[0] + g[1] + g[2]);
    u[2] = 0.5f * (g[0] - g[1] + g[2]);
    u[3] = g[2];
  }
  template <typename T> static void input(const T (&d)[kIn], T (&v)[kIn]) {  // v = B^T d
    v[0] = d[0] - d[2];
    v[1] = d[1] + d[2];
    v[2] = d[2] - d[1];
    v[3] = d[1] - d[3];
  }
  template <typename T> static void output(const T (&m)[kIn], T (&y)[kOut]) {  // y = A^T m
    y[0] = m[0] + m[1] + m[2];
    y[1] = m[1] - m[2] - m[3];
  }
  template <typename T> static void gradient(const T (&y)[kOut], T (&m)[kIn]) {  // m = A y
    m[0] = y[0];
    m[1] = y[0] + y[1];
    m[2] = y[0] - y[1];
    m[3] = -y[1];
  }
  template <typename T> static void kernel_gradient(const T (&u)[kIn], T (&w)[3]) {  // w = G^T u
    w[0] = u[0] + 0.5f * (u[1] + u[2]);
    w[1] = 0.5f * (u[1] - u[2]);
    w[2] = 0.5f * (u[1] + u[2]) + u[3];
  }
};

struct F4x4 {
  static constexpr int kOut = 4, kIn = 6, kPoints = kIn * kIn;
  template <typename T> static void kernel(const T (&g)[3], T (&u)[kIn]) {  // u = G g
    u[0] = g[0];
    u[1] = (g[0] + g[1] + g[2]) / 3.0;
    u[2] = (g[1] - g[0] - g[2]) / 3.0;
    u[3] = -(16.0 * g[0] + 8.0 * g[1] + 4.0 * g[2]) / 15.0;
    u[4] = (g[0] - 2.0 * g[1] + 4.0 * g[2]) / 15.0;
    u[5] = g[2];
  }
  template <typename T> static void input(const T (&d)[kIn], T (&v)[kIn]) {  // v = B^T d
    v[0] = (d[0] - 2.0f * d[2] + d[4]) + 1.5f * (d[3] - d[1]);
    v[1] = (d[4] - d[1]) + 0.5f * d[2] + 2.5f * d[3];
    v[2] = (d[1] + d[4]) - 2.5f * d[2] + 0.5f * d[3];
    v[3] = (d[4] - d[2]) + 2.0f * (d[3] - d[1]);
    v[4] = (d[4] - d[2]) + 0.5f * (d[1] - d[3]);
    v[5] = (d[1] - 2.0f * d[3] + d[5]) + 1.5f * (d[4] - d[2]);
  }
  template <typename T> static void output(const T (&m)[kIn], T (&y)[kOut]) {  // y = A^T m
    const T sum12 = m[1] + m[2], difference12 = m[1] - m[2];
    y[0] = m[0] + sum12 + m[3] + m[4];
    y[1] = difference12 + 0.5f * m[3] - 2.0f * m[4];
    y[2] = sum12 + 0.25f * m[3] + 4.0f * m[4];
    y[3] = difference12 + 0.125f * m[3] - 8.0f * m[4] + m[5];
  }
  template <typename T> static void gradient(const T (&y)[kOut], T (&m)[kIn]) {  // m = A y
    const T even = y[0] + y[2], odd = y[1] + y[3];
    m[0] = y[0];
    m[1] = even + odd;
    m[2] = even - odd;
    m[3] = y[0] + 0.5f * y[1] + 0.25f * y[2] + 0.125f * y[3];
    m[4] = y[0] - 2.0f * y[1] + 4.0f * y[2] - 8.0f * y[3];
    m[5] = y[3];
  }
  template <typename T> static void kernel_gradient(const T (&u)[kIn], T (&w)[3]) {  // w = G^T u
    w[0] = u[0] + (u[1] - u[2]) / 3.0 + (u[4] - 16.0 * u[3]) / 15.0;
    w[1] = (u[1] + u[2]) / 3.0 - (8.0 * u[3] + 2.0 * u[4]) / 15.0;
    w[2] = (u[1] - u[2]) / 3.0 + (4.0 * u[4] - 4.0 * u[3]) / 15.0 + u[5];
  }
};

// The variant with fewer transformed points (tiles x n^2) for this output size.
bool use_f4x4(const Conv2DParams& p) {
  const int64_t points_f4 = ceil_div(p.output_height, 4) * ceil_div(p.output_width, 4) * F4x4::kPoints;
  const int64_t points_f2 = ceil_div(p.output_height, 2) * ceil_div(p.output_width, 2) * F2x2::kPoints;
  return points_f4 < points_f2;
}

// Four doubles: the weight transforms run in double, 4 output channels at a time, and are rounded
// once to float (they are applied to every tile, so their own rounding should be the smallest).
using simd::double4;
using simd::float4;
// Whole vectors (count 4, all but a layer's last channels) move as one 16-byte copy: the
// variable-length copy took most of a training step's per-call weight transform.
inline double4 load_widened(const float* source, int64_t count) {  // count in [1, 4]; the rest 0
  float4 values = {};
  if (count == 4) {
    std::memcpy(&values, source, sizeof values);
  } else {
    std::copy(source, source + count, reinterpret_cast<float*>(&values));
  }
  return simd::widen(values);
}
inline void store_narrowed(float* destination, double4 value, int64_t count) {
  const float4 narrowed = __builtin_convertvector(value, float4);
  if (count == 4) {
    std::memcpy(destination, &narrowed, sizeof narrowed);
  } else {
    std::copy(reinterpret_cast<const float*>(&narrowed), reinterpret_cast<const float*>(&narrowed) + count, destination);
  }
}

// packed[point][block][ci][0..block_width) = (G g G^T)[point] for g = kernel[.][.][ci][block*block_width + j].
template <typename V>
void transform_kernel(const Conv2DParams& p, const float* kernel, float* packed, int64_t block_width) {
  constexpr int n = V::kIn;
  const int64_t in_channels = p.input_channels, out_channels = p.output_channels;
  const int64_t blocks = ceil_div(out_channels, block_width);
  // Only a last, partial block has lanes that no output channel writes (zero weights).
  if (out_channels % block_width != 0) std::fill(packed, packed + V::kPoints * blocks * in_channels * block_width, 0.0f);
  parallel::parallel_for(in_channels, [&](int64_t ci) {
    for (int64_t co = 0; co < out_channels; co += 4) {
      const int64_t count = std::min<int64_t>(4, out_channels - co);
      double4 t[n][3];  // G g, column by column
      for (int j = 0; j < 3; ++j) {
        const double4 column[3] = {load_widened(kernel + ((0 * 3 + j) * in_channels + ci) * out_channels + co, count),
                                   load_widened(kernel + ((1 * 3 + j) * in_channels + ci) * out_channels + co, count),
                                   load_widened(kernel + ((2 * 3 + j) * in_channels + ci) * out_channels + co, count)};
        double4 transformed[n];
        V::kernel(column, transformed);
        for (int i = 0; i < n; ++i) t[i][j] = transformed[i];
      }
      // co is a multiple of 4, so the 4 channels lie in one block; its place is found once (an
      // integer division per store was most of the transform's time).
      float* first_point = packed + ((co / block_width) * in_channels + ci) * block_width + co % block_width;
      const int64_t point_stride = blocks * in_channels * block_width;
      for (int i = 0; i < n; ++i) {
        double4 u[n];  // (G g) G^T, row i
        V::kernel(t[i], u);
        for (int j = 0; j < n; ++j) store_narrowed(first_point + (i * n + j) * point_stride, u[j], count);
      }
    }
  });
}

// V[point][tile][c..c+width) = (B^T d B)[point] for kLanes channels of one tile (n^2 source pointers).
template <typename V>
inline void transform_input_tile(const float* const* patch, int64_t c, int64_t width, float* tile_values,
                                 int64_t point_stride) {
  constexpr int n = V::kIn;
  floatv t[n][n];  // B^T d
  for (int j = 0; j < n; ++j) {
    floatv column[n];
    for (int i = 0; i < n; ++i) {
      column[i] = width == simd::kLanes ? simd::load(patch[i * n + j] + c) : simd::load_partial(patch[i * n + j] + c, width);
    }
    floatv transformed[n];
    V::input(column, transformed);
    for (int i = 0; i < n; ++i) t[i][j] = transformed[i];
  }
  for (int i = 0; i < n; ++i) {
    floatv v[n];  // (B^T d) B, row i
    V::input(t[i], v);
    for (int j = 0; j < n; ++j) {
      float* destination = tile_values + (i * n + j) * point_stride + c;
      if (width == simd::kLanes) {
        simd::store(destination, v[j]);
      } else {
        simd::store_partial(destination, v[j], width);
      }
    }
  }
}

// y = A^T m A for one vector (half a block) of a tile's n^2 products.
template <typename V>
inline void transform_output(const floatv (&m)[V::kPoints], floatv (&y)[V::kOut][V::kOut]) {
  constexpr int n = V::kIn, r = V::kOut;
  floatv t[r][n];  // A^T m
  for (int j = 0; j < n; ++j) {
    floatv column[n];
    for (int i = 0; i < n; ++i) column[i] = m[i * n + j];
    floatv transformed[r];
    V::output(column, transformed);
    for (int i = 0; i < r; ++i) t[i][j] = transformed[i];
  }
  for (int i = 0; i < r; ++i) V::output(t[i], y[i]);
}

struct Scratch {
  std::vector<float> packed, zeros, bias, scale, shift;
};
struct WorkerScratch {
  std::vector<float> input_tiles, products;  // V for one task; M for one task and channel block
};

// The 2x2, stride-2 max pooling of one transformed tile's outputs (`tile_output`: r x r pixels of
// `stride` floats, the first `width` channels real), written for the windows that lie inside the
// pooled output: `pooled` points at the tile's first window (pixel (top / 2, left / 2)).
template <int r>
inline void pool_tile(const float* tile_output, int64_t stride, int64_t width, int64_t windows_down,
                      int64_t windows_across, float* pooled, int64_t pooled_row, int64_t channels) {
  for (int64_t a = 0; a < windows_down; ++a)
    for (int64_t b = 0; b < windows_across; ++b) {
      const float* window = tile_output + (2 * a * r + 2 * b) * stride;
      float* destination = pooled + a * pooled_row + b * channels;
      for (int64_t c = 0; c < width; c += simd::kLanes) {
        const int64_t count = std::min<int64_t>(simd::kLanes, width - c);
        // Row-major from the window's first position, as max_pool2d_forward.
        floatv best = simd::load_lanes(window + c, count);
        for (const int64_t position : {int64_t{1}, int64_t{r}, int64_t{r + 1}}) {
          const floatv value = simd::load_lanes(window + position * stride + c, count);
          best = max_pool_wins(value, best) ? value : best;
        }
        if (count == simd::kLanes) {
          simd::store(destination + c, best);
        } else {
          simd::store_partial(destination + c, best, count);
        }
      }
    }
}

// Vectors: 2 (blocks of kBlockWidth output channels, the 6 x 2-vector tile) or 1 (blocks of one
// vector, the narrow tile: for layers of at most kLanes output channels, as 16 on avx512).
template <typename V, int Vectors>
void forward(const Conv2DParams& p, const float* input, const float* kernel, const float* bias, float* output) {
  const Pool2DParams* pool = p.max_pool;  // null: none
  constexpr int n = V::kIn, r = V::kOut, kPoints = V::kPoints;
  constexpr int64_t block_width = Vectors * simd::kLanes;
  thread_local Scratch buffers;
  const int64_t in_channels = p.input_channels, out_channels = p.output_channels;
  const int64_t blocks = ceil_div(out_channels, block_width);
  // Layout: the tile's transformed points in column blocks of block_width.
  const float* packed = packed_kernel(p, kernel, 2000 + 100 * kPoints + block_width,
                                      kPoints * blocks * in_channels * block_width, buffers.packed,
                                      [&](float* destination) { transform_kernel<V>(p, kernel, destination, block_width); });
  buffers.zeros.assign(static_cast<size_t>(in_channels), 0.0f);
  const float* padded_bias = padded_channels(bias, out_channels, blocks * block_width, buffers.bias);
  const OutputAffine output_affine{padded_channels(p.output_scale, out_channels, blocks * block_width, buffers.scale),
                                   padded_channels(p.output_shift, out_channels, blocks * block_width, buffers.shift)};
  const float* zeros = buffers.zeros.data();
  const int64_t tile_rows = ceil_div(p.output_height, r), tile_columns = ceil_div(p.output_width, r);
  const int64_t tiles = p.batch * tile_rows * tile_columns;
  const int64_t tasks = ceil_div(tiles, kTilesPerTask);
  parallel::parallel_region([&](int thread, int threads) {
    thread_local WorkerScratch worker;
    worker.input_tiles.resize(static_cast<size_t>(kPoints * kTilesPerTask * in_channels));
    worker.products.resize(static_cast<size_t>(kPoints * kTilesPerTask * block_width));
    float* input_tiles = worker.input_tiles.data();
    float* products = worker.products.data();
    const int64_t point_stride = kTilesPerTask * in_channels;  // V[point][tile][channel]
    const int64_t task_end = tasks * (thread + 1) / threads;
    for (int64_t task = tasks * thread / threads; task < task_end; ++task) {
      const int64_t first_tile = task * kTilesPerTask;
      const int64_t tile_count = std::min(kTilesPerTask, tiles - first_tile);
      int64_t image[kTilesPerTask], top[kTilesPerTask], left[kTilesPerTask];  // the tile's output origin
      for (int64_t t = 0; t < tile_count; ++t) {
        const int64_t tile = first_tile + t;
        image[t] = tile / (tile_rows * tile_columns);
        top[t] = r * ((tile / tile_columns) % tile_rows);
        left[t] = r * (tile % tile_columns);
        // The n x n input patch at (top - pad_top, left - pad_left), zeros outside the image.
        const float* patch[kPoints];
        for (int i = 0; i < n; ++i) {
          const int64_t ih = top[t] - p.pad_top + i;
          for (int j = 0; j < n; ++j) {
            const int64_t iw = left[t] - p.pad_left + j;
            const bool inside = ih >= 0 && ih < p.input_height && iw >= 0 && iw < p.input_width;
            patch[i * n + j] =
                inside ? input + ((image[t] * p.input_height + ih) * p.input_width + iw) * in_channels : zeros;
          }
        }
        for (int64_t c = 0; c < in_channels; c += simd::kLanes) {
          transform_input_tile<V>(patch, c, std::min<int64_t>(simd::kLanes, in_channels - c),
                                  input_tiles + t * in_channels, point_stride);
        }
      }
      for (int64_t block = 0; block < blocks; ++block) {
        const int64_t first_channel = block * block_width;
        const int64_t width = std::min(block_width, out_channels - first_channel);
        // A wide layer's last block with one vector's channels or fewer (24 or 40 channels on the
        // 8-lane tiers, 48 or 80 on avx512) takes the one-vector tile and transform: the second vector's
        // multiply-adds and transform would all be spent on the block's zero padding. Each output
        // keeps its arithmetic, so its bits.
        const bool one_vector = Vectors == 2 && width <= simd::kLanes;
        // M[point][tile][block_width] = V[point][tile][:] . U[point][:][block]
        for (int point = 0; point < kPoints; ++point) {
          const float* weights = packed + (point * blocks + block) * in_channels * block_width;
          const float* first_row = input_tiles + point * point_stride;
          // Spare rows (a last, partial task) repeat the last tile and are not stored.
          const auto row_of = [first_row, tile_count, in_channels](int row) {
            return first_row + std::min<int64_t>(row, tile_count - 1) * in_channels;
          };
          float* point_products = products + point * kTilesPerTask * block_width;
          const auto multiply_and_store = [&](auto vectors) {
            constexpr int kVectors = decltype(vectors)::value;
            floatv acc[kTilesPerTask][kVectors];
            multiply_rows<kTilesPerTask, kVectors, block_width>(row_of, in_channels, weights, acc);
            // Unrolled with constant indices, so that the accumulators are stored from their registers.
#pragma GCC unroll 24
            for (int row = 0; row < kTilesPerTask; ++row) {
              if (row >= tile_count) continue;
#pragma GCC unroll 4
              for (int v = 0; v < kVectors; ++v) simd::store(point_products + row * block_width + v * simd::kLanes, acc[row][v]);
            }
          };
          if (Vectors == 1 || one_vector) {
            multiply_and_store(std::integral_constant<int, 1>{});
          } else if constexpr (Vectors == 2) {
            multiply_and_store(std::integral_constant<int, 2>{});
          }
        }
        // Y = A^T M A per tile, then bias, residual, activation and output affine on the pixels
        // inside the output; `used`: the vectors of the block that hold channels (a compile-time
        // count, so each variant keeps its values in registers).
        const float* bias_block = padded_bias != nullptr ? padded_bias + first_channel : nullptr;
        const OutputAffine affine_block = output_affine.at(first_channel);
        const auto transform_block = [&](auto used) {
          constexpr int kUsed = decltype(used)::value;
          for (int64_t t = 0; t < tile_count; ++t) {
            alignas(64) float tile_output[r * r * block_width];  // with `pool`: the tile's outputs, then pooled
            floatv low[kPoints], high[kPoints];
            for (int point = 0; point < kPoints; ++point) {
              const float* source = products + (point * kTilesPerTask + t) * block_width;
              low[point] = simd::load(source);
              if constexpr (kUsed == 2) high[point] = simd::load(source + simd::kLanes);
            }
            floatv y_low[r][r], y_high[r][r];
            transform_output<V>(low, y_low);
            if constexpr (kUsed == 2) transform_output<V>(high, y_high);
            float* stored[r * r];
            int stored_count = 0;
            for (int i = 0; i < r && top[t] + i < p.output_height; ++i)
              for (int j = 0; j < r && left[t] + j < p.output_width; ++j) {
                const int64_t offset =
                    ((image[t] * p.output_height + top[t] + i) * p.output_width + left[t] + j) * out_channels +
                    first_channel;
                const float* residual = p.residual != nullptr ? p.residual + offset : nullptr;
                float* destination = pool != nullptr ? tile_output + (i * r + j) * block_width : output + offset;
                if constexpr (kUsed == 2) {
                  store_block(destination, width, y_low[i][j], y_high[i][j], bias_block, p.activation, residual,
                              affine_block);
                } else {
                  store_narrow_block(destination, width, y_low[i][j], bias_block, p.activation, residual,
                                     affine_block);
                }
                stored[stored_count++] = destination;
              }
            for (int q = 0; q < stored_count; ++q) finish_activation(stored[q], width, p.activation, affine_block);
            if (pool != nullptr) {
              // Tiles start at even rows and columns (r is even): each window lies in one tile.
              const int64_t pooled_top = top[t] / 2, pooled_left = left[t] / 2;
              const int64_t pooled_row = pool->output_width * out_channels;
              pool_tile<r>(tile_output, block_width, width,
                           std::clamp<int64_t>(pool->output_height - pooled_top, 0, r / 2),
                           std::clamp<int64_t>(pool->output_width - pooled_left, 0, r / 2),
                           output + ((image[t] * pool->output_height + pooled_top) * pool->output_width + pooled_left) *
                                        out_channels + first_channel,
                           pooled_row, out_channels);
            }
          }
        };
        if (one_vector) {
          transform_block(std::integral_constant<int, 1>{});
        } else {
          transform_block(std::integral_constant<int, Vectors>{});
        }
      }
    }
  });
}

// dM = A dY A^T (n x n) from one r x r output-gradient tile, for kLanes channels.
template <typename V>
inline void transform_gradient_tile(const float* const* pixels, int64_t c, float* tile_values, int64_t point_stride) {
  constexpr int n = V::kIn, r = V::kOut;
  floatv t[n][r];  // A dY
  for (int b = 0; b < r; ++b) {
    floatv column[r];
    for (int a = 0; a < r; ++a) column[a] = simd::load(pixels[a * r + b] + c);
    floatv transformed[n];
    V::gradient(column, transformed);
    for (int i = 0; i < n; ++i) t[i][b] = transformed[i];
  }
  for (int i = 0; i < n; ++i) {
    floatv m[n];  // (A dY) A^T, row i
    V::gradient(t[i], m);
    for (int j = 0; j < n; ++j) simd::store(tile_values + (i * n + j) * point_stride + c, m[j]);
  }
}

// gradient[i][0..Vectors * kLanes) += sum over tiles t of values[t][i] * products[t][0..Vectors * kLanes),
// i < Channels; with `first`, the sums start from +0 instead of gradient's contents (what adding
// them to a zeroed gradient gives, bit for bit, without the pass that zeroes it).
template <int Channels, int Vectors>
inline void accumulate_point_block(bool first, const float* values, int64_t value_stride, const float* products,
                                   int64_t product_stride, int64_t tile_count, float* gradient,
                                   int64_t gradient_stride) {
  floatv acc[Channels][Vectors];
  for (int i = 0; i < Channels; ++i)
    for (int v = 0; v < Vectors; ++v) {
      acc[i][v] = first ? floatv{} : simd::load(gradient + i * gradient_stride + v * simd::kLanes);
    }
  for (int64_t t = 0; t < tile_count; ++t) {
    floatv g[Vectors];
    for (int v = 0; v < Vectors; ++v) g[v] = simd::load(products + t * product_stride + v * simd::kLanes);
    for (int i = 0; i < Channels; ++i) {
      const floatv b = simd::broadcast(values[t * value_stride + i]);
      for (int v = 0; v < Vectors; ++v) acc[i][v] += b * g[v];
    }
  }
  for (int i = 0; i < Channels; ++i)
    for (int v = 0; v < Vectors; ++v) simd::store(gradient + i * gradient_stride + v * simd::kLanes, acc[i][v]);
}

template <int Vectors>
inline void accumulate_point_block_any(int64_t channels, bool first, const float* values, int64_t value_stride,
                                       const float* products, int64_t product_stride, int64_t tile_count,
                                       float* gradient, int64_t gradient_stride) {
  switch (channels) {
    case 1: accumulate_point_block<1, Vectors>(first, values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
    case 2: accumulate_point_block<2, Vectors>(first, values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
    case 3: accumulate_point_block<3, Vectors>(first, values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
    case 4: accumulate_point_block<4, Vectors>(first, values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
    case 5: accumulate_point_block<5, Vectors>(first, values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
    default: accumulate_point_block<6, Vectors>(first, values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
  }
}

constexpr int64_t kTilesPerStep = 24;  // tiles transformed at once: V and dM stay in L2

struct KernelGradientScratch {
  std::vector<float> chunk_sums, zeros;
};

// dW for a 3x3, stride-1 convolution through the same transforms: with V = B^T d B of each input
// patch and dM = A dY A^T of each output-gradient tile, dU[point] = sum over tiles of
// V[point]^T dM[point] (n^2 GEMMs reducing over tiles), then dW = G^T dU G. Tiles are summed in
// fixed chunks (sized by the problem), each from zero by one thread, and the chunks are added in
// order: bitwise the same for any thread count.
// Vectors: the output channels per block in vectors, as in forward().
template <typename V, int Vectors>
void backward_kernel(const Conv2DParams& p, const float* input, const float* output_gradient, float* kernel_gradient) {
  constexpr int n = V::kIn, r = V::kOut, kPoints = V::kPoints;
  constexpr int64_t block_width = Vectors * simd::kLanes;
  thread_local KernelGradientScratch buffers;
  const int64_t in_channels = p.input_channels, out_channels = p.output_channels;
  const int64_t blocks = ceil_div(out_channels, block_width);
  const int64_t padded_out = blocks * block_width;
  const int64_t channel_tiles = ceil_div(in_channels, kTilePixels);
  const int64_t tile_rows = ceil_div(p.output_height, r), tile_columns = ceil_div(p.output_width, r);
  const int64_t tiles = p.batch * tile_rows * tile_columns;
  // Chunks: about 16 per call (work for every thread, few partial sums to add), whole steps of
  // tiles; their size depends on the problem only, never on the thread count.
  const int64_t tiles_per_chunk =
      std::clamp<int64_t>(ceil_div(ceil_div(tiles, 16), kTilesPerStep) * kTilesPerStep, 2 * kTilesPerStep, 42 * kTilesPerStep);
  const int64_t chunks = std::max<int64_t>(1, ceil_div(tiles, tiles_per_chunk));
  const int64_t chunk_size = kPoints * in_channels * padded_out;  // dU[point][ci][co] of one chunk
  buffers.chunk_sums.resize(static_cast<size_t>(chunks * chunk_size));
  buffers.zeros.assign(static_cast<size_t>(std::max(in_channels, padded_out)), 0.0f);
  float* chunk_sums = buffers.chunk_sums.data();
  const float* zeros = buffers.zeros.data();
  parallel::parallel_region([&](int thread, int threads) {
    thread_local WorkerScratch worker;
    worker.input_tiles.resize(static_cast<size_t>(kPoints * kTilesPerStep * in_channels));
    worker.products.resize(static_cast<size_t>(kPoints * kTilesPerStep * padded_out));
    float* input_tiles = worker.input_tiles.data();      // V[point][tile][ci]
    float* gradient_tiles = worker.products.data();      // dM[point][tile][co], zero past out_channels
    const int64_t input_point_stride = kTilesPerStep * in_channels;
    const int64_t gradient_point_stride = kTilesPerStep * padded_out;
    const int64_t chunk_end = chunks * (thread + 1) / threads;
    for (int64_t chunk = chunks * thread / threads; chunk < chunk_end; ++chunk) {
      float* sums = chunk_sums + chunk * chunk_size;
      const int64_t last_tile = std::min(tiles, (chunk + 1) * tiles_per_chunk);
      for (int64_t first_tile = chunk * tiles_per_chunk; first_tile < last_tile; first_tile += kTilesPerStep) {
        // The chunk's first step writes every sum of `sums` (each point, channel tile and block).
        const bool first_step = first_tile == chunk * tiles_per_chunk;
        const int64_t tile_count = std::min(kTilesPerStep, last_tile - first_tile);
        for (int64_t t = 0; t < tile_count; ++t) {
          const int64_t tile = first_tile + t;
          const int64_t image = tile / (tile_rows * tile_columns);
          const int64_t top = r * ((tile / tile_columns) % tile_rows);
          const int64_t left = r * (tile % tile_columns);
          const float* patch[kPoints];
          for (int i = 0; i < n; ++i) {
            const int64_t ih = top - p.pad_top + i;
            for (int j = 0; j < n; ++j) {
              const int64_t iw = left - p.pad_left + j;
              const bool inside = ih >= 0 && ih < p.input_height && iw >= 0 && iw < p.input_width;
              patch[i * n + j] =
                  inside ? input + ((image * p.input_height + ih) * p.input_width + iw) * in_channels : zeros;
            }
          }
          for (int64_t c = 0; c < in_channels; c += simd::kLanes) {
            transform_input_tile<V>(patch, c, std::min<int64_t>(simd::kLanes, in_channels - c),
                                    input_tiles + t * in_channels, input_point_stride);
          }
          // The tile's r x r output gradient (zeros past the output's edge), padded to whole blocks.
          const float* pixels[r * r];
          for (int a = 0; a < r; ++a)
            for (int b = 0; b < r; ++b) {
              const bool inside = top + a < p.output_height && left + b < p.output_width;
              pixels[a * r + b] = inside ? output_gradient +
                                               ((image * p.output_height + top + a) * p.output_width + left + b) *
                                                   out_channels
                                         : zeros;
            }
          float* tile_gradient = gradient_tiles + t * padded_out;
          if (out_channels == padded_out) {
            for (int64_t c = 0; c < out_channels; c += simd::kLanes) {
              transform_gradient_tile<V>(pixels, c, tile_gradient, gradient_point_stride);
            }
          } else {
            // Channels past out_channels read as zeros: each vector's lanes through a local copy.
            for (int64_t c = 0; c < padded_out; c += simd::kLanes) {
              const int64_t width = std::max<int64_t>(0, std::min<int64_t>(simd::kLanes, out_channels - c));
              const float* partial_pixels[r * r];
              float lanes[r * r][simd::kLanes];
              for (int k = 0; k < r * r; ++k) {
                simd::store(lanes[k], width > 0 ? simd::load_partial(pixels[k] + c, width) : floatv{});
                partial_pixels[k] = lanes[k];
              }
              transform_gradient_tile<V>(partial_pixels, 0, tile_gradient + c, gradient_point_stride);
            }
          }
        }
        for (int point = 0; point < kPoints; ++point) {
          for (int64_t channel_tile = 0; channel_tile < channel_tiles; ++channel_tile) {
            const int64_t first_channel = channel_tile * kTilePixels;
            const int64_t channels = std::min(kTilePixels, in_channels - first_channel);
            for (int64_t block = 0; block < blocks; ++block) {
              accumulate_point_block_any<Vectors>(
                  channels, first_step, input_tiles + point * input_point_stride + first_channel, in_channels,
                  gradient_tiles + point * gradient_point_stride + block * block_width, padded_out, tile_count,
                  sums + (point * in_channels + first_channel) * padded_out + block * block_width, padded_out);
            }
          }
        }
      }
    }
  });
  // dU = the chunks added in order, into the first chunk (contiguous, vectorised, split by element).
  const int64_t element_blocks = ceil_div(chunk_size, 4096);
  parallel::parallel_for(element_blocks, [&](int64_t element_block) {
    const int64_t begin = element_block * 4096, end = std::min(chunk_size, begin + 4096);
    for (int64_t chunk = 1; chunk < chunks; ++chunk) {
      const float* source = chunk_sums + chunk * chunk_size;
      for (int64_t e = begin; e < end; ++e) chunk_sums[e] += source[e];
    }
  });
  // dW[kh][kw][ci][co] = (G^T dU G)[kh][kw], in double, 4 output channels at a time.
  parallel::parallel_for(in_channels, [&](int64_t ci) {
    for (int64_t co = 0; co < out_channels; co += 4) {
      const int64_t count = std::min<int64_t>(4, out_channels - co);
      double4 s[3][n];  // G^T dU, column by column
      for (int j = 0; j < n; ++j) {
        double4 column[n];
        for (int i = 0; i < n; ++i) column[i] = load_widened(chunk_sums + ((i * n + j) * in_channels + ci) * padded_out + co, count);
        double4 transformed[3];
        V::kernel_gradient(column, transformed);
        for (int a = 0; a < 3; ++a) s[a][j] = transformed[a];
      }
      for (int a = 0; a < 3; ++a) {
        double4 w[3];  // (G^T dU) G, row a
        V::kernel_gradient(s[a], w);
        for (int b = 0; b < 3; ++b) store_narrowed(kernel_gradient + ((a * 3 + b) * in_channels + ci) * out_channels + co, w[b], count);
      }
    }
  });
}

}  // namespace

bool winograd_applicable(const Conv2DParams& p) { return conv2d_winograd_shape(p); }

void conv2d_forward_winograd(const Conv2DParams& p, const float* input, const float* kernel, const float* bias,
                             float* output, WinogradTile tile) {
  if (p.output_size() == 0) return;
  // One-vector blocks where the output channels fit one vector (16 on avx512; never on the 8-lane
  // tiers, Winograd needing 16 channels): two-vector blocks would be half zeros.
  const bool narrow = p.output_channels <= simd::kLanes;
  if (tile == WinogradTile::fewest_points && use_f4x4(p)) {
    narrow ? forward<F4x4, 1>(p, input, kernel, bias, output) : forward<F4x4, 2>(p, input, kernel, bias, output);
  } else {
    narrow ? forward<F2x2, 1>(p, input, kernel, bias, output) : forward<F2x2, 2>(p, input, kernel, bias, output);
  }
}

void conv2d_backward_kernel_winograd(const Conv2DParams& p, const float* input, const float* output_gradient,
                                     float* kernel_gradient) {
  const bool narrow = p.output_channels <= simd::kLanes;  // as in conv2d_forward_winograd
  if (use_f4x4(p)) {
    narrow ? backward_kernel<F4x4, 1>(p, input, output_gradient, kernel_gradient)
           : backward_kernel<F4x4, 2>(p, input, output_gradient, kernel_gradient);
  } else {
    narrow ? backward_kernel<F2x2, 1>(p, input, output_gradient, kernel_gradient)
           : backward_kernel<F2x2, 2>(p, input, output_gradient, kernel_gradient);
  }
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
