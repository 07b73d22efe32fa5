#include "runtime/regularization.h"

#include <algorithm>
#include <cmath>

#include "parallel.h"

namespace fastcnn::runtime {
namespace {
// Values per block: large enough to amortise the parallel region, small enough to split the
// activations of one layer over both cores.
constexpr int64_t kBlock = 16384;

inline float sign_of(float value) { return value > 0.0f ? 1.0f : (value < 0.0f ? -1.0f : 0.0f); }
}  // namespace

double penalty_sum(const float* values, int64_t count, float l1, float l2, std::vector<double>& partials) {
  if (count <= 0) return 0.0;
  const int64_t blocks = (count + kBlock - 1) / kBlock;
  partials.assign(static_cast<size_t>(blocks), 0.0);
  parallel::parallel_for(blocks, [&](int64_t block) {
    const int64_t begin = block * kBlock, end = std::min(count, begin + kBlock);
    double absolute = 0.0, squares = 0.0;
    for (int64_t i = begin; i < end; ++i) {
      const double value = values[i];
      absolute += std::fabs(value);
      squares += value * value;
    }
    partials[static_cast<size_t>(block)] = static_cast<double>(l1) * absolute + static_cast<double>(l2) * squares;
  });
  double total = 0.0;
  for (double partial : partials) total += partial;
  return total;
}

void add_penalty_gradient(const float* values, float* gradient, int64_t count, float l1_scale,
                          float l2_scale) {
  if (count <= 0) return;
  const int64_t blocks = (count + kBlock - 1) / kBlock;
  parallel::parallel_for(blocks, [&](int64_t block) {
    const int64_t begin = block * kBlock, end = std::min(count, begin + kBlock);
    if (l1_scale != 0.0f) {
      for (int64_t i = begin; i < end; ++i) gradient[i] += l1_scale * sign_of(values[i]) + l2_scale * values[i];
    } else {
      for (int64_t i = begin; i < end; ++i) gradient[i] += l2_scale * values[i];
    }
  });
}

}  // namespace fastcnn::runtime
