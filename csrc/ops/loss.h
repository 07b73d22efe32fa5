// Cross-entropy over the last axis: categorical (Keras's categorical_crossentropy and
// sparse_categorical_crossentropy; targets class indices or probability rows) or binary (Keras's
// binary_crossentropy: every unit an independent probability, targets in [0, 1] per unit).
// Categorical:
//   from logits z:        loss = sum_j t_j (logsumexp(z) - z_j), with logsumexp taken after
//                         subtracting max(z);  dloss/dz = softmax(z) * sum_j t_j - t
//   from probabilities p: q = clip(p / sum p, eps, 1 - eps), loss = -sum_j t_j log q_j (Keras's
//                         formula with eps = 1e-7); the gradient is taken through the
//                         normalisation, and is zero where the clip is active.
// Binary, the mean over the k units of each sample:
//   from logits z:        l = max(z, 0) - z t + log(1 + exp(-|z|));  dl/dz = (sigmoid(z) - t) / k
//   from probabilities p: q = clip(p, eps, 1 - eps), l = -(t log q + (1 - t) log(1 - q));
//                         dl/dp = (q - t) / (q (1 - q)) / k inside the clip range, 0 where it is active.
// Per-sample losses are written to `losses`; the gradient of mean(losses) (scaled by
// `gradient_scale`, 1/batch for Keras's sum_over_batch_size) to `input_gradient` when not null.
#pragma once

#include <cstdint>

namespace fastcnn {

enum class CrossEntropyKind { categorical, binary };

struct CrossEntropyParams {
  CrossEntropyKind kind = CrossEntropyKind::categorical;
  int64_t batch = 0;
  int64_t classes = 0;  // units per sample
  bool from_logits = false;
  float gradient_scale = 1.0f;
};

constexpr float kCrossEntropyEpsilon = 1e-7f;

}  // namespace fastcnn
