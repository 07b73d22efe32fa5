// Reference UpSampling2D: the formulas of ops/upsampling.h, one output position at a time.
#include <algorithm>
#include <cstdint>

#include "kernels/reference/reference.h"

namespace fastcnn::kernels::reference {

void upsampling2d_forward(const UpSampling2DParams& p, const float* input, float* output) {
  const int64_t height = p.output_height(), width = p.output_width(), c = p.channels;
  auto at = [&](int64_t n, int64_t h, int64_t w, int64_t k) {
    return input[((n * p.input_height + h) * p.input_width + w) * c + k];
  };
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x)
        for (int64_t k = 0; k < c; ++k) {
          float value;
          if (!p.bilinear) {
            value = at(n, y / p.size_height, x / p.size_width, k);
          } else {
            const LinearTap ty = half_pixel_tap(y, p.input_height, height);
            const LinearTap tx = half_pixel_tap(x, p.input_width, width);
            const float top_left = at(n, ty.lower, tx.lower, k), top_right = at(n, ty.lower, tx.upper, k);
            const float bottom_left = at(n, ty.upper, tx.lower, k), bottom_right = at(n, ty.upper, tx.upper, k);
            const float top = top_left + (top_right - top_left) * tx.lerp;
            const float bottom = bottom_left + (bottom_right - bottom_left) * tx.lerp;
            value = top + (bottom - top) * ty.lerp;
          }
          output[((n * height + y) * width + x) * c + k] = value;
        }
}

void upsampling2d_backward(const UpSampling2DParams& p, const float* output_gradient, float* input_gradient) {
  const int64_t height = p.output_height(), width = p.output_width(), c = p.channels;
  std::fill(input_gradient, input_gradient + p.input_size(), 0.0f);
  auto at = [&](int64_t n, int64_t h, int64_t w, int64_t k) -> float& {
    return input_gradient[((n * p.input_height + h) * p.input_width + w) * c + k];
  };
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t y = 0; y < height; ++y)
      for (int64_t x = 0; x < width; ++x)
        for (int64_t k = 0; k < c; ++k) {
          const float g = output_gradient[((n * height + y) * width + x) * c + k];
          if (!p.bilinear) {
            at(n, y / p.size_height, x / p.size_width, k) += g;
            continue;
          }
          const LinearTap ty = half_pixel_tap(y, p.input_height, height);
          const LinearTap tx = half_pixel_tap(x, p.input_width, width);
          const float inverse_y = 1.0f - ty.lerp, inverse_x = 1.0f - tx.lerp;
          at(n, ty.lower, tx.lower, k) += g * inverse_y * inverse_x;
          at(n, ty.lower, tx.upper, k) += g * inverse_y * tx.lerp;
          at(n, ty.upper, tx.lower, k) += g * ty.lerp * inverse_x;
          at(n, ty.upper, tx.upper, k) += g * ty.lerp * tx.lerp;
        }
}

}  // namespace fastcnn::kernels::reference
