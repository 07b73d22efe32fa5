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


namespace {

// dM = A dY A^T (4x4) from one 2x2 output-gradient tile, for 8 channels.
inline void transform_gradient_tile(const float* const* pixels, int64_t c, float* tile_values, int64_t point_stride) {
  using simd::float8;
  float8 y[2][2];
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) y[a][b] = simd::load(pixels[a * 2 + b] + c);
  float8 t[4][2];  // A dY
  for (int b = 0; b < 2; ++b) {
    t[0][b] = y[0][b];
    t[1][b] = y[0][b] + y[1][b];
    t[2][b] = y[0][b] - y[1][b];
    t[3][b] = -y[1][b];
  }
  for (int i = 0; i < 4; ++i) {
    const float8 m[4] = {t[i][0], t[i][0] + t[i][1], t[i][0] - t[i][1], -t[i][1]};  // (A dY) A^T
    for (int j = 0; j < 4; ++j) simd::store(tile_values + (i * 4 + j) * point_stride + c, m[j]);
  }
}

// gradient[i][0..16) += sum over tiles t of values[t][i] * products[t][0..16), i < Channels.
template <int Channels>
inline void accumulate_point_block(const float* values, int64_t value_stride, const float* products,
                                   int64_t product_stride, int64_t tile_count, float* gradient,
                                   int64_t gradient_stride) {
  using simd::float8;
  float8 acc[Channels][2];
  for (int i = 0; i < Channels; ++i) {
    acc[i][0] = simd::load(gradient + i * gradient_stride);
    acc[i][1] = simd::load(gradient + i * gradient_stride + simd::kLanes);
  }
  for (int64_t t = 0; t < tile_count; ++t) {
    const float8 g0 = simd::load(products + t * product_stride);
    const float8 g1 = simd::load(products + t * product_stride + simd::kLanes);
    for (int i = 0; i < Channels; ++i) {
      const float8 b = simd::broadcast(values[t * value_stride + i]);
      acc[i][0] += b * g0;
      acc[i][1] += b * g1;
    }
  }
  for (int i = 0; i < Channels; ++i) {
    simd::store(gradient + i * gradient_stride, acc[i][0]);
    simd::store(gradient + i * gradient_stride + simd::kLanes, acc[i][1]);
  }
}

inline void accumulate_point_block_any(int64_t channels, const float* values, int64_t value_stride,
                                       const float* products, int64_t product_stride, int64_t tile_count,
                                       float* gradient, int64_t gradient_stride) {
  switch (channels) {
    case 1: accumulate_point_block<1>(values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
    case 2: accumulate_point_block<2>(values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
    case 3: accumulate_point_block<3>(values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
    case 4: accumulate_point_block<4>(values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
    case 5: accumulate_point_block<5>(values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
    default: accumulate_point_block<6>(values, value_stride, products, product_stride, tile_count, gradient, gradient_stride); break;
  }
}

constexpr int64_t kTilesPerStep = 24;  // tiles transformed at once: V and dM stay in L2

struct KernelGradientScratch {
  std::vector<float> chunk_sums, zeros;
};

}  // namespace

// dW for a 3x3, stride-1 convolution through the same transforms: with V = B^T d B of each input
// patch and dM = A dY A^T of each output-gradient tile, dU[point] = sum over tiles of
// V[point]^T dM[point] (16 GEMMs reducing over tiles, 16 multiply-adds per tile and channel pair
// instead of 36), then dW = G^T dU G. Tiles are summed in fixed chunks (sized by the problem), each
// from zero by one thread, and the chunks are added in order: bitwise the same for any thread count.
void conv2d_backward_kernel_winograd(const Conv2DParams& p, const float* input, const float* output_gradient,
                                     float* kernel_gradient) {
  thread_local KernelGradientScratch buffers;
  const int64_t in_channels = p.input_channels, out_channels = p.output_channels;
  const int64_t blocks = ceil_div(out_channels, kBlockWidth);
  const int64_t padded_out = blocks * kBlockWidth;
  const int64_t channel_tiles = ceil_div(in_channels, kTilePixels);
  const int64_t tile_rows = ceil_div(p.output_height, 2), tile_columns = ceil_div(p.output_width, 2);
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
      std::fill(sums, sums + chunk_size, 0.0f);
      const int64_t last_tile = std::min(tiles, (chunk + 1) * tiles_per_chunk);
      for (int64_t first_tile = chunk * tiles_per_chunk; first_tile < last_tile; first_tile += kTilesPerStep) {
        const int64_t tile_count = std::min(kTilesPerStep, last_tile - first_tile);
        for (int64_t t = 0; t < tile_count; ++t) {
          const int64_t tile = first_tile + t;
          const int64_t image = tile / (tile_rows * tile_columns);
          const int64_t top = 2 * ((tile / tile_columns) % tile_rows);
          const int64_t left = 2 * (tile % tile_columns);
          const float* patch[kPoints];
          for (int i = 0; i < 4; ++i) {
            const int64_t ih = top - p.pad_top + i;
            for (int j = 0; j < 4; ++j) {
              const int64_t iw = left - p.pad_left + j;
              const bool inside = ih >= 0 && ih < p.input_height && iw >= 0 && iw < p.input_width;
              patch[i * 4 + j] =
                  inside ? input + ((image * p.input_height + ih) * p.input_width + iw) * in_channels : zeros;
            }
          }
          for (int64_t c = 0; c < in_channels; c += simd::kLanes) {
            transform_input_tile(patch, c, std::min<int64_t>(simd::kLanes, in_channels - c),
                                 input_tiles + t * in_channels, input_point_stride);
          }
          // The tile's 2x2 output gradient (zeros past the output's edge), padded to whole blocks.
          const float* pixels[4];
          for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
              const bool inside = top + a < p.output_height && left + b < p.output_width;
              pixels[a * 2 + b] = inside ? output_gradient +
                                               ((image * p.output_height + top + a) * p.output_width + left + b) *
                                                   out_channels
                                         : zeros;
            }
          float* tile_gradient = gradient_tiles + t * padded_out;
          if (out_channels == padded_out) {
            for (int64_t c = 0; c < out_channels; c += simd::kLanes) {
              transform_gradient_tile(pixels, c, tile_gradient, gradient_point_stride);
            }
          } else {
            // Channels past out_channels read as zeros: each 8-lane group through a local copy.
            for (int64_t c = 0; c < padded_out; c += simd::kLanes) {
              const int64_t width = std::max<int64_t>(0, std::min<int64_t>(simd::kLanes, out_channels - c));
              const float* partial_pixels[4];
              float lanes[4][simd::kLanes];
              for (int k = 0; k < 4; ++k) {
                simd::store(lanes[k], simd::load_partial(pixels[k] + c, width));
                partial_pixels[k] = lanes[k];
              }
              transform_gradient_tile(partial_pixels, 0, tile_gradient + c, gradient_point_stride);
            }
          }
        }
        for (int point = 0; point < kPoints; ++point) {
          for (int64_t channel_tile = 0; channel_tile < channel_tiles; ++channel_tile) {
            const int64_t first_channel = channel_tile * kTilePixels;
            const int64_t channels = std::min(kTilePixels, in_channels - first_channel);
            for (int64_t block = 0; block < blocks; ++block) {
              accumulate_point_block_any(
                  channels, input_tiles + point * input_point_stride + first_channel, in_channels,
                  gradient_tiles + point * gradient_point_stride + block * kBlockWidth, padded_out, tile_count,
                  sums + (point * in_channels + first_channel) * padded_out + block * kBlockWidth, padded_out);
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
  // dW[kh][kw][ci][co] = (G^T dU G)[kh][kw].
  parallel::parallel_for(in_channels, [&](int64_t ci) {
    for (int64_t co = 0; co < out_channels; ++co) {
      float u[4][4];
      for (int point = 0; point < kPoints; ++point) u[point / 4][point % 4] = chunk_sums[(point * in_channels + ci) * padded_out + co];
      float s[3][4];  // G^T dU
      for (int j = 0; j < 4; ++j) {
        s[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
        s[1][j] = 0.5f * (u[1][j] - u[2][j]);
        s[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
      }
      for (int a = 0; a < 3; ++a) {
        const float w[3] = {s[a][0] + 0.5f * (s[a][1] + s[a][2]), 0.5f * (s[a][1] - s[a][2]),
                            0.5f * (s[a][1] + s[a][2]) + s[a][3]};  // (G^T dU) G
        for (int b = 0; b < 3; ++b) kernel_gradient[((a * 3 + b) * in_channels + ci) * out_channels + co] = w[b];
      }
    }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
