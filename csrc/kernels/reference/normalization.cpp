// Reference LayerNormalization, GroupNormalization and Normalization: the formulas of
// ops/normalization.h, one (o, k) group at a time, sums in double precision (two passes for the
// variance).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/reference/reference.h"

namespace fastcnn::kernels::reference {
namespace {

// Calls visit(element offset, gamma index) for every element of group (o, k), in (a, b) order.
template <typename Visit>
void for_group(const LayerNormParams& p, int64_t o, int64_t k, Visit&& visit) {
  for (int64_t a = 0; a < p.reduced_outer; ++a) {
    for (int64_t b = 0; b < p.reduced_inner; ++b) {
      const int64_t offset = ((o * p.reduced_outer + a) * p.kept + k) * p.reduced_inner + b;
      visit(offset, a * p.gamma_stride_outer + k * p.gamma_stride_kept + b);
    }
  }
}

}  // namespace

void layer_norm_forward(const LayerNormParams& p, const float* input, const float* gamma, const float* beta,
                        float* output, float* mean, float* inverse_std) {
  const double count = static_cast<double>(p.group_size());
  for (int64_t o = 0; o < p.outer; ++o) {
    for (int64_t k = 0; k < p.kept; ++k) {
      double sum = 0.0;
      for_group(p, o, k, [&](int64_t i, int64_t) { sum += input[i]; });
      const double average = sum / count;
      double squares = 0.0;
      for_group(p, o, k, [&](int64_t i, int64_t) { squares += (input[i] - average) * (input[i] - average); });
      const float m = static_cast<float>(average);
      const float s = static_cast<float>(1.0 / std::sqrt(squares / count + p.epsilon));
      mean[o * p.kept + k] = m;
      inverse_std[o * p.kept + k] = s;
      const float shift = p.centered ? m : 0.0f;
      for_group(p, o, k, [&](int64_t i, int64_t g) {
        const float scale = s * (gamma != nullptr ? gamma[g] : 1.0f);
        output[i] = (input[i] - shift) * scale + (beta != nullptr ? beta[g] : 0.0f);
      });
    }
  }
}

void layer_norm_backward(const LayerNormParams& p, const float* input, const float* mean, const float* inverse_std,
                         const float* gamma, const float* output_gradient, float* input_gradient,
                         float* gamma_gradient, float* beta_gradient) {
  const double count = static_cast<double>(p.group_size());
  const int64_t affine = p.affine_size();
  if (gamma_gradient != nullptr) std::fill(gamma_gradient, gamma_gradient + affine, 0.0f);
  if (beta_gradient != nullptr) std::fill(beta_gradient, beta_gradient + affine, 0.0f);
  std::vector<double> gamma_sums(static_cast<size_t>(affine), 0.0), beta_sums(static_cast<size_t>(affine), 0.0);
  for (int64_t o = 0; o < p.outer; ++o) {
    for (int64_t k = 0; k < p.kept; ++k) {
      const double m = mean[o * p.kept + k], s = inverse_std[o * p.kept + k];
      const double shift = p.centered ? m : 0.0;
      double sum_dyg = 0.0, sum_dyg_z = 0.0;
      for_group(p, o, k, [&](int64_t i, int64_t g) {
        const double dy = output_gradient[i];
        const double z = (input[i] - shift) * s;
        const double dyg = dy * (gamma != nullptr ? gamma[g] : 1.0);
        sum_dyg += dyg;
        sum_dyg_z += dyg * z;
        gamma_sums[g] += dy * z;
        beta_sums[g] += dy;
      });
      if (input_gradient == nullptr) continue;
      const double mean_dyg = p.centered ? sum_dyg / count : 0.0, mean_dyg_z = sum_dyg_z / count;
      for_group(p, o, k, [&](int64_t i, int64_t g) {
        const double dyg = output_gradient[i] * (gamma != nullptr ? gamma[g] : 1.0);
        const double x_hat = (input[i] - m) * s;
        input_gradient[i] = static_cast<float>(s * (dyg - mean_dyg - x_hat * mean_dyg_z));
      });
    }
  }
  for (int64_t g = 0; g < affine; ++g) {
    if (gamma_gradient != nullptr) gamma_gradient[g] = static_cast<float>(gamma_sums[g]);
    if (beta_gradient != nullptr) beta_gradient[g] = static_cast<float>(beta_sums[g]);
  }
}

void normalization_forward(const NormalizationParams& p, const float* input, const float* mean,
                           const float* variance, float* output) {
  const SampleShape& shape = p.shape;
  for (int64_t n = 0; n < p.batch; ++n) {
    for (int64_t y = 0; y < shape.height; ++y) {
      for (int64_t x = 0; x < shape.width; ++x) {
        for (int64_t c = 0; c < shape.channels; ++c) {
          const int64_t i = ((n * shape.height + y) * shape.width + x) * shape.channels + c;
          const int64_t j = p.kept_index(y, x, c);
          const float deviation = std::max(std::sqrt(variance[j]), p.epsilon);
          const float centre = mean != nullptr ? mean[j] : 0.0f;
          output[i] = p.invert ? centre + input[i] * deviation : (input[i] - centre) / deviation;
        }
      }
    }
  }
}

}  // namespace fastcnn::kernels::reference
