// Winograd F(2x2, 3x3) convolution (Lavin & Gray, arXiv 1509.09308) for 3x3 kernels with unit
// stride and dilation: each 2x2 block of output pixels ("tile") is
//   Y = A^T [ (G g G^T) . (B^T d B) ] A
// with d the 4x4 input patch under the tile (zeros in the padding) and g the 3x3 kernel; summed
// over input channels, the 16 element-wise products become 16 GEMMs V[point] (tiles x Cin) .
// U[point] (Cin x Cout). That is 16 multiply-adds per tile and channel pair instead of 36, a 2.25x
// cut, for two cheap transforms. The transform matrices hold 0, +-1 and +-1/2 only, so the rounding
// error stays within a few float32 ulps of the direct sum (checked against the reference kernels).
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// The GEMMs run on the shared 6 x 16 micro-kernel; every output element is computed by one thread
// in a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/optimized/conv_microkernel.h"
#include "kernels/optimized/optimized.h"
#include "kernels/optimized/simd.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

using namespace microkernel;
constexpr int kPoints = 16;             // a transformed tile is 4 x 4
constexpr int64_t kTilesPerTask = 12;  // 2 micro-kernel groups; V = 16 x 12 x Cin floats stays in L1/L2

// packed[point][block][ci][0..16) = (G g G^T)[point] for g = kernel[.][.][ci][block*16 + j].
void transform_kernel(const Conv2DParams& p, const float* kernel, float* packed) {
  const int64_t in_channels = p.input_channels, out_channels = p.output_channels;
  const int64_t blocks = ceil_div(out_channels, kBlockWidth);
  std::fill(packed, packed + kPoints * blocks * in_channels * kBlockWidth, 0.0f);
  for (int64_t ci = 0; ci < in_channels; ++ci) {
    for (int64_t co = 0; co < out_channels; ++co) {
      float g[3][3];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) g[i][j] = kernel[((i * 3 + j) * in_channels + ci) * out_channels + co];
      float t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        t[0][j] = g[0][j];
        t[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
        t[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
        t[3][j] = g[2][j];
      }
      for (int i = 0; i < 4; ++i) {
        const float u[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]),
                            t[i][2]};  // (G g) G^T
        for (int j = 0; j < 4; ++j) {
          const int64_t point = i * 4 + j;
          packed[((point * blocks + co / kBlockWidth) * in_channels + ci) * kBlockWidth + co % kBlockWidth] = u[j];
        }
      }
    }
  }
}

// V[point][tile][c..c+width) = (B^T d B)[point] for 8 channels of one tile (16 source pointers).
inline void transform_input_tile(const float* const* patch, int64_t c, int64_t width, float* tile_values,
                                 int64_t point_stride) {
  using simd::float8;
  auto load = [width](const float* source) {
    return width == simd::kLanes ? simd::load(source) : simd::load_partial(source, width);
  };
  float8 d[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) d[i][j] = load(patch[i * 4 + j] + c);
  float8 t[4][4];  // B^T d
  for (int j = 0; j < 4; ++j) {
    t[0][j] = d[0][j] - d[2][j];
    t[1][j] = d[1][j] + d[2][j];
    t[2][j] = d[2][j] - d[1][j];
    t[3][j] = d[1][j] - d[3][j];
  }
  for (int i = 0; i < 4; ++i) {
    const float8 v[4] = {t[i][0] - t[i][2], t[i][1] + t[i][2], t[i][2] - t[i][1], t[i][1] - t[i][3]};  // (B^T d) B
    for (int j = 0; j < 4; ++j) {
      float* destination = tile_values + (i * 4 + j) * point_stride + c;
      if (width == simd::kLanes) {
        simd::store(destination, v[j]);
      } else {
        simd::store_partial(destination, v[j], width);
      }
    }
  }
}

// (y00, y01, y10, y11) = A^T m A for one 8-channel half of a tile's 16 products.
inline void transform_output(const simd::float8 (&m)[kPoints], simd::float8 (&y)[2][2]) {
  using simd::float8;
  float8 t[2][4];  // A^T m
  for (int j = 0; j < 4; ++j) {
    t[0][j] = m[j] + m[4 + j] + m[8 + j];
    t[1][j] = m[4 + j] - m[8 + j] - m[12 + j];
  }
  for (int i = 0; i < 2; ++i) {
    y[i][0] = t[i][0] + t[i][1] + t[i][2];
    y[i][1] = t[i][1] - t[i][2] - t[i][3];
  }
}

struct Scratch {
  std::vector<float> packed, zeros, bias;
};
struct WorkerScratch {
  std::vector<float> input_tiles, products;  // V for one task; M for one task and channel block
};

}  // namespace

bool winograd_applicable(const Conv2DParams& p) {
  // Small channel counts leave the GEMMs too short to pay for the transforms (first layers).
  return p.kernel_height == 3 && p.kernel_width == 3 && p.stride_height == 1 && p.stride_width == 1 &&
         p.dilation_height == 1 && p.dilation_width == 1 && p.input_channels >= 16 && p.output_channels >= 16;
}

void conv2d_forward_winograd(const Conv2DParams& p, const float* input, const float* kernel, const float* bias,
                             float* output) {
  if (p.output_size() == 0) return;
  thread_local Scratch buffers;
  const int64_t in_channels = p.input_channels, out_channels = p.output_channels;
  const int64_t blocks = ceil_div(out_channels, kBlockWidth);
  buffers.packed.resize(static_cast<size_t>(kPoints * blocks * in_channels * kBlockWidth));
  transform_kernel(p, kernel, buffers.packed.data());
  buffers.zeros.assign(static_cast<size_t>(in_channels), 0.0f);
  const float* padded_bias = nullptr;
  if (bias != nullptr) {
    buffers.bias.assign(static_cast<size_t>(blocks * kBlockWidth), 0.0f);
    std::copy(bias, bias + out_channels, buffers.bias.begin());
    padded_bias = buffers.bias.data();
  }
  const float* packed = buffers.packed.data();
  const float* zeros = buffers.zeros.data();
  const int64_t tile_rows = ceil_div(p.output_height, 2), tile_columns = ceil_div(p.output_width, 2);
  const int64_t tiles = p.batch * tile_rows * tile_columns;
  const int64_t tasks = ceil_div(tiles, kTilesPerTask);
  parallel::parallel_region([&](int thread, int threads) {
    thread_local WorkerScratch worker;
    worker.input_tiles.resize(static_cast<size_t>(kPoints * kTilesPerTask * in_channels));
    worker.products.resize(static_cast<size_t>(kPoints * kTilesPerTask * kBlockWidth));
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
        top[t] = 2 * ((tile / tile_columns) % tile_rows);
        left[t] = 2 * (tile % tile_columns);
        // The 4x4 input patch at (top - pad_top, left - pad_left), zeros outside the image.
        const float* patch[kPoints];
        for (int i = 0; i < 4; ++i) {
          const int64_t ih = top[t] - p.pad_top + i;
          for (int j = 0; j < 4; ++j) {
            const int64_t iw = left[t] - p.pad_left + j;
            const bool inside = ih >= 0 && ih < p.input_height && iw >= 0 && iw < p.input_width;
            patch[i * 4 + j] =
                inside ? input + ((image[t] * p.input_height + ih) * p.input_width + iw) * in_channels : zeros;
          }
        }
        for (int64_t c = 0; c < in_channels; c += simd::kLanes) {
          transform_input_tile(patch, c, std::min<int64_t>(simd::kLanes, in_channels - c),
                               input_tiles + t * in_channels, point_stride);
        }
      }
      for (int64_t block = 0; block < blocks; ++block) {
        // M[point][tile][16] = V[point][tile][:] . U[point][:][block]
        for (int point = 0; point < kPoints; ++point) {
          const float* weights = packed + (point * blocks + block) * in_channels * kBlockWidth;
          for (int64_t group = 0; group < tile_count; group += kTilePixels) {
            const float* rows[kTilePixels];
            for (int64_t r = 0; r < kTilePixels; ++r) {
              const int64_t t = group + r < tile_count ? group + r : group;  // spare rows repeat the first
              rows[r] = input_tiles + point * point_stride + t * in_channels;
            }
            const int64_t only_tap = 0;
            float8 acc[kTilePixels][2] = {};
            accumulate_tile(rows, &only_tap, 1, in_channels, weights, acc);
            for (int64_t r = 0; r < kTilePixels && group + r < tile_count; ++r) {
              float* destination = products + (point * kTilesPerTask + group + r) * kBlockWidth;
              simd::store(destination, acc[r][0]);
              simd::store(destination + simd::kLanes, acc[r][1]);
            }
          }
        }
        // Y = A^T M A per tile, then bias and activation on the pixels inside the output.
        const int64_t first_channel = block * kBlockWidth;
        const int64_t width = std::min(kBlockWidth, out_channels - first_channel);
        const float* bias_block = padded_bias != nullptr ? padded_bias + first_channel : nullptr;
        for (int64_t t = 0; t < tile_count; ++t) {
          float8 low[kPoints], high[kPoints];
          for (int point = 0; point < kPoints; ++point) {
            const float* source = products + (point * kTilesPerTask + t) * kBlockWidth;
            low[point] = simd::load(source);
            high[point] = simd::load(source + simd::kLanes);
          }
          float8 y_low[2][2], y_high[2][2];
          transform_output(low, y_low);
          transform_output(high, y_high);
          for (int i = 0; i < 2 && top[t] + i < p.output_height; ++i)
            for (int j = 0; j < 2 && left[t] + j < p.output_width; ++j) {
              float* destination =
                  output + ((image[t] * p.output_height + top[t] + i) * p.output_width + left[t] + j) * out_channels +
                  first_channel;
              store_block(destination, width, y_low[i][j], y_high[i][j], bias_block, p.activation);
            }
        }
      }
    }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
