// Cross-entropy over the last axis, the loss behind Keras's categorical_crossentropy and
// sparse_categorical_crossentropy. Targets are either class indices (labels) or probability rows.
//   from logits z:        loss = sum_j t_j (logsumexp(z) - z_j), with logsumexp taken after
//                         subtracting max(z);  dloss/dz = softmax(z) * sum_j t_j - t
//   from probabilities p: q = clip(p / sum p, eps, 1 - eps), loss = -sum_j t_j log q_j (Keras's
//                         formula with eps = 1e-7); the gradient is taken through the
//                         normalisation, and is zero where the clip is active.
// Per-sample losses are written to `losses`; the gradient of mean(losses) (scaled by
// `gradient_scale`, 1/batch for Keras's sum_over_batch_size) to `input_gradient` when not null.
#pragma once

#include <cstdint>

namespace fastcnn {

struct CrossEntropyParams {
  int64_t batch = 0;
  int64_t classes = 0;
  bool from_logits = false;
  float gradient_scale = 1.0f;
};

constexpr float kCrossEntropyEpsilon = 1e-7f;

}  // namespace fastcnn
