// Cross-entropy (ops/loss.h). O(batch * classes): one implementation serves every kernel table.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/kernels.h"

namespace fastcnn::kernels {
namespace {

// The target row t for sample n: from a label (one-hot) or a probability row.
inline float target_at(const int32_t* labels, const float* target_probabilities, int64_t classes,
                       int64_t n, int64_t j) {
  if (labels != nullptr) return labels[n] == j ? 1.0f : 0.0f;
  return target_probabilities[n * classes + j];
}

}  // namespace

void cross_entropy(const CrossEntropyParams& p, const float* predictions, const int32_t* labels,
                   const float* target_probabilities, float* losses, float* input_gradient) {
  const int64_t classes = p.classes;
  std::vector<float> scratch(static_cast<size_t>(classes));
  for (int64_t n = 0; n < p.batch; ++n) {
    const float* row = predictions + n * classes;
    float target_sum = 0.0f;
    for (int64_t j = 0; j < classes; ++j) target_sum += target_at(labels, target_probabilities, classes, n, j);
    if (p.from_logits) {
      // loss = sum_j t_j (logsumexp(z) - z_j); gradient = softmax(z) * sum_j t_j - t
      const float maximum = *std::max_element(row, row + classes);
      float exp_sum = 0.0f;
      for (int64_t j = 0; j < classes; ++j) {
        scratch[j] = std::exp(row[j] - maximum);
        exp_sum += scratch[j];
      }
      const float log_sum_exp = maximum + std::log(exp_sum);
      float loss = 0.0f;
      for (int64_t j = 0; j < classes; ++j) {
        const float t = target_at(labels, target_probabilities, classes, n, j);
        if (t != 0.0f) loss += t * (log_sum_exp - row[j]);
      }
      losses[n] = loss;
      if (input_gradient != nullptr) {
        for (int64_t j = 0; j < classes; ++j) {
          const float t = target_at(labels, target_probabilities, classes, n, j);
          input_gradient[n * classes + j] =
              p.gradient_scale * (scratch[j] / exp_sum * target_sum - t);
        }
      }
    } else {
      // q = clip(p / sum p, eps, 1 - eps); loss = -sum_j t_j log q_j
      float sum = 0.0f;
      for (int64_t j = 0; j < classes; ++j) sum += row[j];
      float loss = 0.0f;
      float weighted = 0.0f;  // sum_j (dloss/dq_j) q_j, for the gradient through the normalisation
      for (int64_t j = 0; j < classes; ++j) {
        const float t = target_at(labels, target_probabilities, classes, n, j);
        const float q = row[j] / sum;
        const float clipped = std::min(std::max(q, kCrossEntropyEpsilon), 1.0f - kCrossEntropyEpsilon);
        if (t != 0.0f) loss -= t * std::log(clipped);
        // dloss/dq_j = -t_j / q_j inside the clip range, 0 where the clip is active.
        scratch[j] = (q == clipped && t != 0.0f) ? -t / q : 0.0f;
        weighted += scratch[j] * q;
      }
      losses[n] = loss;
      if (input_gradient != nullptr) {
        // dq_j/dp_k = (delta_jk - q_j) / sum  =>  dloss/dp_k = (dloss/dq_k - weighted) / sum
        for (int64_t j = 0; j < classes; ++j) {
          input_gradient[n * classes + j] = p.gradient_scale * (scratch[j] - weighted) / sum;
        }
      }
    }
  }
}

}  // namespace fastcnn::kernels
