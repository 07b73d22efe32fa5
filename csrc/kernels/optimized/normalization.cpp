// Optimised LayerNormalization, GroupNormalization and Normalization (ops/normalization.h).
//
// A group (o, k) of the (outer, reduced_outer, kept, reduced_inner) view is strided, but for fixed
// (o, a) the kept * reduced_inner elements x[o, a, :, :] are one contiguous row. Every loop below
// runs along such rows (unit stride, which the compiler vectorises): the statistics accumulate a
// row-wide vector of double sums down the reduced_outer rows, then add each group's reduced_inner
// entries; the affine and gradient passes expand the per-group values into row-wide vectors once
// per o. gamma and beta are expanded once per call into rows indexed like the data (gamma_row).
// Samples o are split into chunks fixed by the problem size; the parameter gradients are summed per
// chunk and the chunks added in order, so every result is the same on any number of threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/optimized/optimized.h"
#include "kernels/optimized/simd.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

// About this many elements per chunk of samples o (at least one sample).
constexpr int64_t kElementsPerChunk = 8192;

// Sum of values[0, count) with four interleaved accumulators (a fixed order: deterministic).
inline double sum_of(const double* values, int64_t count) {
  double partial[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t i = 0;
  for (; i + 4 <= count; i += 4) {
    for (int l = 0; l < 4; ++l) partial[l] += values[i + l];
  }
  for (; i < count; ++i) partial[0] += values[i];
  return (partial[0] + partial[1]) + (partial[2] + partial[3]);
}

using simd::double4;
using simd::float4;

inline double4 widen(const float* source) {
  float4 value;
  std::memcpy(&value, source, sizeof value);
  return simd::widen(value);
}
inline double total(double4 lanes) { return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]); }

// sum x and sum x^2 over one contiguous run of a group (a group that is one run: reduced_outer 1,
// e.g. LayerNormalization over the channels), eight values a step in two pairs of double vectors;
// a fixed order, so deterministic.
inline void run_sums(const float* x, int64_t count, double& sum, double& squares) {
  double4 sum_a = {}, sum_b = {}, squares_a = {}, squares_b = {};
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const double4 a = widen(x + i), b = widen(x + i + 4);
    sum_a += a;
    sum_b += b;
    squares_a += a * a;
    squares_b += b * b;
  }
  double tail_sum = 0.0, tail_squares = 0.0;
  for (; i < count; ++i) {
    tail_sum += x[i];
    tail_squares += static_cast<double>(x[i]) * x[i];
  }
  sum = total(sum_a + sum_b) + tail_sum;
  squares = total(squares_a + squares_b) + tail_squares;
}

// sum dyg and sum dyg * z over one run (dyg = dy * gamma, z = (x - shift) * scale), as run_sums.
inline void run_gradient_sums(const float* x, const float* dy, const float* gamma, int64_t count, float shift,
                              float scale, double& sum_dyg, double& sum_dyg_z) {
  double4 dyg_a = {}, dyg_b = {}, dyg_z_a = {}, dyg_z_b = {};
  const double centre = shift, factor = scale;
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const double4 g_a = widen(dy + i) * widen(gamma + i), g_b = widen(dy + i + 4) * widen(gamma + i + 4);
    dyg_a += g_a;
    dyg_b += g_b;
    dyg_z_a += g_a * ((widen(x + i) - centre) * factor);
    dyg_z_b += g_b * ((widen(x + i + 4) - centre) * factor);
  }
  double tail_dyg = 0.0, tail_dyg_z = 0.0;
  for (; i < count; ++i) {
    const double g = static_cast<double>(dy[i]) * gamma[i];
    tail_dyg += g;
    tail_dyg_z += g * ((x[i] - centre) * factor);
  }
  sum_dyg = total(dyg_a + dyg_b) + tail_dyg;
  sum_dyg_z = total(dyg_z_a + dyg_z_b) + tail_dyg_z;
}

// The shape of the rows: row_length = kept * reduced_inner; gamma rows, one per a when gamma
// depends on a (LayerNormalization over several runs) else one.
struct Rows {
  explicit Rows(const LayerNormParams& p)
      : length(p.kept * p.reduced_inner),
        affine_rows(p.gamma_stride_outer != 0 ? p.reduced_outer : 1),
        samples_per_chunk(std::max<int64_t>(1, kElementsPerChunk / std::max<int64_t>(1, p.reduced_outer * length))),
        chunks((p.outer + samples_per_chunk - 1) / samples_per_chunk) {}
  int64_t length, affine_rows, samples_per_chunk, chunks;
};

// table[r * length + j] = values[g] for the element j of a row a = r (or any a when one row), or
// `fallback` where values is null.
std::vector<float> affine_table(const LayerNormParams& p, const Rows& rows, const float* values, float fallback) {
  std::vector<float> table(static_cast<size_t>(rows.affine_rows * rows.length), fallback);
  if (values == nullptr) return table;
  for (int64_t r = 0; r < rows.affine_rows; ++r) {
    for (int64_t k = 0; k < p.kept; ++k) {
      const float* source = values + r * p.gamma_stride_outer + k * p.gamma_stride_kept;
      std::copy(source, source + p.reduced_inner, table.begin() + r * rows.length + k * p.reduced_inner);
    }
  }
  return table;
}

// Per group k of sample o, row-wide: value[k] repeated over the group's reduced_inner entries.
inline void expand(const LayerNormParams& p, const float* per_group, float* row) {
  for (int64_t k = 0; k < p.kept; ++k) std::fill(row + k * p.reduced_inner, row + (k + 1) * p.reduced_inner, per_group[k]);
}

}  // namespace

void layer_norm_forward(const LayerNormParams& p, const float* input, const float* gamma, const float* beta,
                        float* output, float* mean, float* inverse_std) {
  if (p.element_count() == 0) return;
  const Rows rows(p);
  const std::vector<float> gamma_rows = affine_table(p, rows, gamma, 1.0f);
  const std::vector<float> beta_rows = affine_table(p, rows, beta, 0.0f);
  const double count = static_cast<double>(p.group_size());
  const int64_t length = rows.length;
  parallel::parallel_for(rows.chunks, [&](int64_t chunk) {
    std::vector<double> sums(static_cast<size_t>(length)), squares(static_cast<size_t>(length));
    std::vector<float> shift_row(static_cast<size_t>(length)), scale_row(static_cast<size_t>(length));
    const int64_t end = std::min(p.outer, (chunk + 1) * rows.samples_per_chunk);
    for (int64_t o = chunk * rows.samples_per_chunk; o < end; ++o) {
      const float* x_sample = input + o * p.reduced_outer * length;
      float* group_mean = mean + o * p.kept;
      float* group_scale = inverse_std + o * p.kept;
      for (int64_t k = 0; k < p.kept; ++k) {
        double sum = 0.0, square = 0.0;
        if (p.reduced_outer == 1) {  // the group is one contiguous run
          run_sums(x_sample + k * p.reduced_inner, p.reduced_inner, sum, square);
        } else {
          if (k == 0) {  // row-wide sums down the reduced_outer rows, once per sample
            std::fill(sums.begin(), sums.end(), 0.0);
            std::fill(squares.begin(), squares.end(), 0.0);
            for (int64_t a = 0; a < p.reduced_outer; ++a) {
              const float* x = x_sample + a * length;
              double* row_sum = sums.data();
              double* row_square = squares.data();
              for (int64_t j = 0; j < length; ++j) {
                const double value = x[j];
                row_sum[j] += value;
                row_square[j] += value * value;
              }
            }
          }
          sum = sum_of(sums.data() + k * p.reduced_inner, p.reduced_inner);
          square = sum_of(squares.data() + k * p.reduced_inner, p.reduced_inner);
        }
        // variance = E[x^2] - mean^2 in double: exact enough unless |mean| / std exceeds ~1e5.
        const double average = sum / count;
        const double spread = std::max(square / count - average * average, 0.0);
        group_mean[k] = static_cast<float>(average);
        group_scale[k] = static_cast<float>(1.0 / std::sqrt(spread + p.epsilon));
      }
      expand(p, group_scale, scale_row.data());
      if (p.centered) {
        expand(p, group_mean, shift_row.data());
      } else {
        std::fill(shift_row.begin(), shift_row.end(), 0.0f);
      }
      const float* s = scale_row.data();
      const float* m = shift_row.data();
      for (int64_t a = 0; a < p.reduced_outer; ++a) {
        const int64_t r = rows.affine_rows > 1 ? a : 0;
        const float* g = gamma_rows.data() + r * length;
        const float* t = beta_rows.data() + r * length;
        const float* x = x_sample + a * length;
        float* y = output + (o * p.reduced_outer + a) * length;
        for (int64_t j = 0; j < length; ++j) {
          const float scale = s[j] * g[j];
          y[j] = (x[j] - m[j]) * scale + t[j];
        }
      }
    }
  });
}

void layer_norm_backward(const LayerNormParams& p, const float* input, const float* mean, const float* inverse_std,
                         const float* gamma, const float* output_gradient, float* input_gradient,
                         float* gamma_gradient, float* beta_gradient) {
  const int64_t affine = p.affine_size();
  if (gamma_gradient != nullptr) std::fill(gamma_gradient, gamma_gradient + affine, 0.0f);
  if (beta_gradient != nullptr) std::fill(beta_gradient, beta_gradient + affine, 0.0f);
  if (p.element_count() == 0) return;
  const Rows rows(p);
  const int64_t length = rows.length;
  const int64_t table_size = rows.affine_rows * length;
  const std::vector<float> gamma_rows = affine_table(p, rows, gamma, 1.0f);
  const bool parameters = gamma_gradient != nullptr || beta_gradient != nullptr;
  // Per chunk: sums of dy * z and dy per gamma-row entry.
  std::vector<double> partial(parameters ? static_cast<size_t>(rows.chunks * 2 * table_size) : 0, 0.0);
  const double count = static_cast<double>(p.group_size());
  parallel::parallel_for(rows.chunks, [&](int64_t chunk) {
    std::vector<double> sums_dyg(static_cast<size_t>(length)), sums_dyg_z(static_cast<size_t>(length));
    std::vector<float> scale_row(static_cast<size_t>(length)), mean_row(static_cast<size_t>(length)),
        shift_row(static_cast<size_t>(length)), first_row(static_cast<size_t>(length)),
        second_row(static_cast<size_t>(length)), group_first(static_cast<size_t>(p.kept)),
        group_second(static_cast<size_t>(p.kept));
    double* gamma_sums = parameters ? partial.data() + chunk * 2 * table_size : nullptr;
    double* beta_sums = parameters ? gamma_sums + table_size : nullptr;
    const int64_t end = std::min(p.outer, (chunk + 1) * rows.samples_per_chunk);
    for (int64_t o = chunk * rows.samples_per_chunk; o < end; ++o) {
      const int64_t sample_offset = o * p.reduced_outer * length;
      expand(p, inverse_std + o * p.kept, scale_row.data());
      expand(p, mean + o * p.kept, mean_row.data());
      if (p.centered) {
        shift_row = mean_row;
      } else {
        std::fill(shift_row.begin(), shift_row.end(), 0.0f);
      }
      const float* s = scale_row.data();
      const float* m = mean_row.data();
      const float* shift = shift_row.data();
      const bool one_run = p.reduced_outer == 1;  // each group one contiguous run: sums per group below
      if (!one_run) {
        std::fill(sums_dyg.begin(), sums_dyg.end(), 0.0);
        std::fill(sums_dyg_z.begin(), sums_dyg_z.end(), 0.0);
      }
      double* sum_dyg = sums_dyg.data();
      double* sum_dyg_z = sums_dyg_z.data();
      for (int64_t a = 0; a < p.reduced_outer; ++a) {
        const int64_t r = rows.affine_rows > 1 ? a : 0;
        const float* g = gamma_rows.data() + r * length;
        const float* x = input + sample_offset + a * length;
        const float* dy = output_gradient + sample_offset + a * length;
        for (int64_t j = 0; !one_run && j < length; ++j) {
          const double z = static_cast<double>(x[j] - shift[j]) * s[j];
          const double dyg = static_cast<double>(dy[j]) * g[j];
          sum_dyg[j] += dyg;
          sum_dyg_z[j] += dyg * z;
        }
        if (parameters) {
          double* gamma_sum = gamma_sums + r * length;
          double* beta_sum = beta_sums + r * length;
          for (int64_t j = 0; j < length; ++j) {
            const double z = static_cast<double>(x[j] - shift[j]) * s[j];
            gamma_sum[j] += static_cast<double>(dy[j]) * z;
            beta_sum[j] += dy[j];
          }
        }
      }
      if (input_gradient == nullptr) continue;
      // dx = s * (dyg - first - x_hat * second), first = mean(dyg) (0 for rms), second = mean(dyg * z).
      for (int64_t k = 0; k < p.kept; ++k) {
        double group_dyg = 0.0, group_dyg_z = 0.0;
        if (one_run) {
          const int64_t begin = k * p.reduced_inner;
          run_gradient_sums(input + sample_offset + begin, output_gradient + sample_offset + begin,
                            gamma_rows.data() + begin, p.reduced_inner, shift[begin], s[begin], group_dyg, group_dyg_z);
        } else {
          group_dyg = sum_of(sum_dyg + k * p.reduced_inner, p.reduced_inner);
          group_dyg_z = sum_of(sum_dyg_z + k * p.reduced_inner, p.reduced_inner);
        }
        group_first[k] = p.centered ? static_cast<float>(group_dyg / count) : 0.0f;
        group_second[k] = static_cast<float>(group_dyg_z / count);
      }
      expand(p, group_first.data(), first_row.data());
      expand(p, group_second.data(), second_row.data());
      const float* first = first_row.data();
      const float* second = second_row.data();
      for (int64_t a = 0; a < p.reduced_outer; ++a) {
        const int64_t r = rows.affine_rows > 1 ? a : 0;
        const float* g = gamma_rows.data() + r * length;
        const float* x = input + sample_offset + a * length;
        const float* dy = output_gradient + sample_offset + a * length;
        float* dx = input_gradient + sample_offset + a * length;
        for (int64_t j = 0; j < length; ++j) {
          const float x_hat = (x[j] - m[j]) * s[j];
          dx[j] = s[j] * (dy[j] * g[j] - first[j] - x_hat * second[j]);
        }
      }
    }
  });
  if (!parameters) return;
  // Chunks in order, then each gamma-row entry into its gamma index g (several j share one g in
  // LayerNormalization: the kept positions).
  std::vector<double> gamma_total(static_cast<size_t>(affine), 0.0), beta_total(static_cast<size_t>(affine), 0.0);
  for (int64_t chunk = 0; chunk < rows.chunks; ++chunk) {
    const double* gamma_sums = partial.data() + chunk * 2 * table_size;
    const double* beta_sums = gamma_sums + table_size;
    for (int64_t r = 0; r < rows.affine_rows; ++r) {
      for (int64_t k = 0; k < p.kept; ++k) {
        const int64_t base = r * p.gamma_stride_outer + k * p.gamma_stride_kept;
        const int64_t entry = r * length + k * p.reduced_inner;
        for (int64_t b = 0; b < p.reduced_inner; ++b) {
          gamma_total[base + b] += gamma_sums[entry + b];
          beta_total[base + b] += beta_sums[entry + b];
        }
      }
    }
  }
  for (int64_t g = 0; g < affine; ++g) {
    if (gamma_gradient != nullptr) gamma_gradient[g] = static_cast<float>(gamma_total[g]);
    if (beta_gradient != nullptr) beta_gradient[g] = static_cast<float>(beta_total[g]);
  }
}

void normalization_forward(const NormalizationParams& p, const float* input, const float* mean,
                           const float* variance, float* output) {
  const SampleShape& shape = p.shape;
  const int64_t kept = p.kept_size();
  std::vector<float> deviation(static_cast<size_t>(kept)), centre(static_cast<size_t>(kept), 0.0f);
  for (int64_t j = 0; j < kept; ++j) {
    deviation[j] = std::max(std::sqrt(variance[j]), p.epsilon);
    if (mean != nullptr) centre[j] = mean[j];
  }
  const float* d = deviation.data();
  const float* m = centre.data();
  const int64_t rows = p.batch * shape.height * shape.width;
  const int64_t channels = shape.channels;
  const int64_t rows_per_chunk = std::max<int64_t>(1, kElementsPerChunk / std::max<int64_t>(1, channels));
  parallel::parallel_for((rows + rows_per_chunk - 1) / rows_per_chunk, [&](int64_t chunk) {
    const int64_t end = std::min(rows, (chunk + 1) * rows_per_chunk);
    for (int64_t row = chunk * rows_per_chunk; row < end; ++row) {
      const int64_t pixel = row % (shape.height * shape.width);
      const int64_t base = p.kept_index(pixel / shape.width, pixel % shape.width, 0);
      const float* x = input + row * channels;
      float* y = output + row * channels;
      if (p.keep_channels) {
        const float* row_d = d + base;
        const float* row_m = m + base;
        if (p.invert) {
          for (int64_t c = 0; c < channels; ++c) y[c] = row_m[c] + x[c] * row_d[c];
        } else {
          for (int64_t c = 0; c < channels; ++c) y[c] = (x[c] - row_m[c]) / row_d[c];
        }
      } else {
        const float row_d = d[base], row_m = m[base];
        if (p.invert) {
          for (int64_t c = 0; c < channels; ++c) y[c] = row_m + x[c] * row_d;
        } else {
          for (int64_t c = 0; c < channels; ++c) y[c] = (x[c] - row_m) / row_d;
        }
      }
    }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
