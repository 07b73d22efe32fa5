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
#include <vector>

#include "kernels/optimized/optimized.h"
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
      std::fill(sums.begin(), sums.end(), 0.0);
      std::fill(squares.begin(), squares.end(), 0.0);
      double* sum = sums.data();
      double* square = squares.data();
      for (int64_t a = 0; a < p.reduced_outer; ++a) {
        const float* x = x_sample + a * length;
        for (int64_t j = 0; j < length; ++j) {
          const double value = x[j];
          sum[j] += value;
          square[j] += value * value;
        }
      }
      float* group_mean = mean + o * p.kept;
      float* group_scale = inverse_std + o * p.kept;
      for (int64_t k = 0; k < p.kept; ++k) {
        // variance = E[x^2] - mean^2 in double: exact enough unless |mean| / std exceeds ~1e5.
        const double average = sum_of(sum + k * p.reduced_inner, p.reduced_inner) / count;
        const double spread = std::max(sum_of(square + k * p.reduced_inner, p.reduced_inner) / count - average * average, 0.0);
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
      std::fill(sums_dyg.begin(), sums_dyg.end(), 0.0);
      std::fill(sums_dyg_z.begin(), sums_dyg_z.end(), 0.0);
      const float* s = scale_row.data();
      const float* m = mean_row.data();
      const float* shift = shift_row.data();
      double* sum_dyg = sums_dyg.data();
      double* sum_dyg_z = sums_dyg_z.data();
      for (int64_t a = 0; a < p.reduced_outer; ++a) {
        const int64_t r = rows.affine_rows > 1 ? a : 0;
        const float* g = gamma_rows.data() + r * length;
        const float* x = input + sample_offset + a * length;
        const float* dy = output_gradient + sample_offset + a * length;
        for (int64_t j = 0; j < length; ++j) {
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
        group_first[k] = p.centered ? static_cast<float>(sum_of(sum_dyg + k * p.reduced_inner, p.reduced_inner) / count) : 0.0f;
        group_second[k] = static_cast<float>(sum_of(sum_dyg_z + k * p.reduced_inner, p.reduced_inner) / count);
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
