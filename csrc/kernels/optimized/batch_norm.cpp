// Optimised BatchNormalization. Per-channel sums are taken over fixed chunks of rows (partial sums
// in double, computed in parallel) and then added chunk by chunk in order, so the statistics do not
// depend on the number of threads. The apply and gradient passes are row-parallel with channels
// innermost (vectorised).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/optimized/optimized.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

constexpr int64_t kRowsPerChunk = 512;

// totals[k][c] = sum over rows of term(k, row, c) for k < Terms, chunked and reduced in order.
template <int Terms, typename Term>
void channel_sums(int64_t rows, int64_t channels, Term&& term, std::vector<double> (&totals)[Terms]) {
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  std::vector<double> partial(static_cast<size_t>(chunks * Terms * channels), 0.0);
  parallel::parallel_for(chunks, [&](int64_t chunk) {
    double* sums = partial.data() + chunk * Terms * channels;
    const int64_t end = std::min(rows, (chunk + 1) * kRowsPerChunk);
    for (int64_t r = chunk * kRowsPerChunk; r < end; ++r)
      for (int k = 0; k < Terms; ++k)
        for (int64_t c = 0; c < channels; ++c) sums[k * channels + c] += term(k, r, c);
  });
  for (int k = 0; k < Terms; ++k) totals[k].assign(static_cast<size_t>(channels), 0.0);
  for (int64_t chunk = 0; chunk < chunks; ++chunk)
    for (int k = 0; k < Terms; ++k)
      for (int64_t c = 0; c < channels; ++c) totals[k][c] += partial[(chunk * Terms + k) * channels + c];
}

template <typename Body>
void for_row_chunks(int64_t rows, Body&& body) {
  parallel::parallel_for((rows + kRowsPerChunk - 1) / kRowsPerChunk, [&](int64_t chunk) {
    body(chunk * kRowsPerChunk, std::min(rows, (chunk + 1) * kRowsPerChunk));
  });
}

}  // namespace

void batch_norm_statistics(const BatchNormParams& p, const float* input, float* mean,
                           float* variance) {
  const int64_t channels = p.channels;
  std::vector<double> sums[1];
  channel_sums<1>(p.rows, channels, [&](int, int64_t r, int64_t c) { return static_cast<double>(input[r * channels + c]); }, sums);
  std::vector<double> average(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) average[c] = p.rows > 0 ? sums[0][c] / static_cast<double>(p.rows) : 0.0;
  std::vector<double> squares[1];
  channel_sums<1>(p.rows, channels, [&](int, int64_t r, int64_t c) {
    const double difference = input[r * channels + c] - average[c];
    return difference * difference;
  }, squares);
  for (int64_t c = 0; c < channels; ++c) {
    mean[c] = static_cast<float>(average[c]);
    variance[c] = p.rows > 0 ? static_cast<float>(squares[0][c] / static_cast<double>(p.rows)) : 0.0f;
  }
}

void batch_norm_forward(const BatchNormParams& p, const float* input, const float* mean,
                        const float* variance, const float* gamma, const float* beta, float* output) {
  const int64_t channels = p.channels;
  std::vector<float> scale(static_cast<size_t>(channels)), shift(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    scale[c] = (gamma != nullptr ? gamma[c] : 1.0f) / std::sqrt(variance[c] + p.epsilon);
    shift[c] = (beta != nullptr ? beta[c] : 0.0f) - mean[c] * scale[c];
  }
  const float* s = scale.data();
  const float* t = shift.data();
  for_row_chunks(p.rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* x = input + r * channels;
      float* y = output + r * channels;
      for (int64_t c = 0; c < channels; ++c) y[c] = x[c] * s[c] + t[c];
    }
  });
}

void batch_norm_backward(const BatchNormParams& p, const float* input, const float* mean,
                         const float* variance, const float* gamma, const float* output_gradient,
                         float* input_gradient, float* gamma_gradient, float* beta_gradient) {
  const int64_t channels = p.channels;
  std::vector<double> inverse_std(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) inverse_std[c] = 1.0 / std::sqrt(static_cast<double>(variance[c]) + p.epsilon);
  std::vector<double> sums[2];
  channel_sums<2>(p.rows, channels, [&](int k, int64_t r, int64_t c) {
    const double dy = output_gradient[r * channels + c];
    return k == 0 ? dy : dy * (input[r * channels + c] - mean[c]) * inverse_std[c];
  }, sums);
  for (int64_t c = 0; c < channels; ++c) {
    if (beta_gradient != nullptr) beta_gradient[c] = static_cast<float>(sums[0][c]);
    if (gamma_gradient != nullptr) gamma_gradient[c] = static_cast<float>(sums[1][c]);
  }
  if (input_gradient == nullptr || p.rows == 0) return;
  // dx = a * (dy - mean_dy - x_hat * mean_dy_xhat) per channel, a = gamma * inv_std,
  // x_hat = (x - mean) * inv_std (written so that a single row gives exactly zero).
  const double count = static_cast<double>(p.rows);
  std::vector<float> a(static_cast<size_t>(channels)), mean_dy(static_cast<size_t>(channels)),
      mean_dy_xhat(static_cast<size_t>(channels)), m(static_cast<size_t>(channels)), inv(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    a[c] = static_cast<float>((gamma != nullptr ? gamma[c] : 1.0) * inverse_std[c]);
    mean_dy[c] = static_cast<float>(sums[0][c] / count);
    mean_dy_xhat[c] = static_cast<float>(sums[1][c] / count);
    m[c] = mean[c];
    inv[c] = static_cast<float>(inverse_std[c]);
  }
  for_row_chunks(p.rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* x = input + r * channels;
      const float* dy = output_gradient + r * channels;
      float* dx = input_gradient + r * channels;
      for (int64_t c = 0; c < channels; ++c) {
        dx[c] = a[c] * (dy[c] - mean_dy[c] - (x[c] - m[c]) * inv[c] * mean_dy_xhat[c]);
      }
    }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
