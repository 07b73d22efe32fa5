// Optimised UpSampling2D (ops/upsampling.h): parallel over rows, channels innermost and contiguous.
// The backward kernels gather: each task owns one input-gradient row and adds the output
// gradients that reach it in the reference's order (output row, then column, then the four
// bilinear corners), so every tier sums each element's terms in the same order.
#include <algorithm>
#include <cstdint>

#include "kernels/optimized/optimized.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

inline void add_scaled(float* __restrict target, const float* __restrict source, float weight, int64_t count) {
  for (int64_t k = 0; k < count; ++k) target[k] += source[k] * weight;
}

}  // namespace

void upsampling2d_forward(const UpSampling2DParams& p, const float* input, float* output) {
  const int64_t height = p.output_height(), width = p.output_width(), c = p.channels;
  const int64_t input_row = p.input_width * c;
  parallel::parallel_for(p.batch * height, [&](int64_t row) {
    const int64_t n = row / height, y = row % height;
    float* out = output + row * width * c;
    if (!p.bilinear) {
      const float* in = input + (n * p.input_height + y / p.size_height) * input_row;
      for (int64_t j = 0; j < p.input_width; ++j) {
        for (int64_t dx = 0; dx < p.size_width; ++dx) std::copy(in + j * c, in + (j + 1) * c, out + (j * p.size_width + dx) * c);
      }
      return;
    }
    const LinearTap ty = half_pixel_tap(y, p.input_height, height);
    const float* top_row = input + (n * p.input_height + ty.lower) * input_row;
    const float* bottom_row = input + (n * p.input_height + ty.upper) * input_row;
    for (int64_t x = 0; x < width; ++x) {
      const LinearTap tx = half_pixel_tap(x, p.input_width, width);
      const float* top_left = top_row + tx.lower * c;
      const float* top_right = top_row + tx.upper * c;
      const float* bottom_left = bottom_row + tx.lower * c;
      const float* bottom_right = bottom_row + tx.upper * c;
      float* result = out + x * c;
      for (int64_t k = 0; k < c; ++k) {
        const float top = top_left[k] + (top_right[k] - top_left[k]) * tx.lerp;
        const float bottom = bottom_left[k] + (bottom_right[k] - bottom_left[k]) * tx.lerp;
        result[k] = top + (bottom - top) * ty.lerp;
      }
    }
  });
}

void upsampling2d_backward(const UpSampling2DParams& p, const float* output_gradient, float* input_gradient) {
  const int64_t height = p.output_height(), width = p.output_width(), c = p.channels;
  const int64_t output_row = width * c;
  parallel::parallel_for(p.batch * p.input_height, [&](int64_t row) {
    const int64_t n = row / p.input_height, i = row % p.input_height;
    float* result = input_gradient + row * p.input_width * c;
    std::fill(result, result + p.input_width * c, 0.0f);
    if (!p.bilinear) {
      for (int64_t dy = 0; dy < p.size_height; ++dy) {
        const float* gradient = output_gradient + (n * height + i * p.size_height + dy) * output_row;
        for (int64_t j = 0; j < p.input_width; ++j) {
          for (int64_t dx = 0; dx < p.size_width; ++dx) add_scaled(result + j * c, gradient + (j * p.size_width + dx) * c, 1.0f, c);
        }
      }
      return;
    }
    // Output rows whose lower or upper input row is i lie in [(i - 1) size, (i + 2) size); one
    // more factor on each side covers the float rounding of the positions.
    const int64_t first = std::max<int64_t>(0, (i - 2) * p.size_height);
    const int64_t last = std::min<int64_t>(height, (i + 3) * p.size_height);
    for (int64_t y = first; y < last; ++y) {
      const LinearTap ty = half_pixel_tap(y, p.input_height, height);
      const bool from_top = ty.lower == i, from_bottom = ty.upper == i;
      if (!from_top && !from_bottom) continue;
      const float inverse_y = 1.0f - ty.lerp;
      const float* gradient = output_gradient + (n * height + y) * output_row;
      for (int64_t x = 0; x < width; ++x) {
        const LinearTap tx = half_pixel_tap(x, p.input_width, width);
        const float inverse_x = 1.0f - tx.lerp;
        const float* g = gradient + x * c;
        float* left = result + tx.lower * c;
        float* right = result + tx.upper * c;
        // The reference's corner order: (g * wy) * wx for top-left, top-right, bottom-left, bottom-right.
        if (from_top) {
          for (int64_t k = 0; k < c; ++k) left[k] += g[k] * inverse_y * inverse_x;
          for (int64_t k = 0; k < c; ++k) right[k] += g[k] * inverse_y * tx.lerp;
        }
        if (from_bottom) {
          for (int64_t k = 0; k < c; ++k) left[k] += g[k] * ty.lerp * inverse_x;
          for (int64_t k = 0; k < c; ++k) right[k] += g[k] * ty.lerp * tx.lerp;
        }
      }
    }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
