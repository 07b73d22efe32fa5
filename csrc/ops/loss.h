// The losses of a model output, over the last axis of each sample (Keras 3's formulas):
// Cross-entropy, categorical (Keras's categorical_crossentropy and sparse_categorical_crossentropy;
// targets class indices or probability rows):
//   from logits z:        loss = sum_j t_j (logsumexp(z) - z_j), with logsumexp taken after
//                         subtracting max(z);  dloss/dz = softmax(z) * sum_j t_j - t
//   from probabilities p: q = clip(p / sum p, eps, 1 - eps), loss = -sum_j t_j log q_j (Keras's
//                         formula with eps = 1e-7); the gradient is taken through the
//                         normalisation, and is zero where the clip is active.
// Cross-entropy, binary (every unit an independent probability), the mean over the k units:
//   from logits z:        l = max(z, 0) - z t + log(1 + exp(-|z|));  dl/dz = (sigmoid(z) - t) / k
//   from probabilities p: q = clip(p, eps, 1 - eps), l = -(t log q + (1 - t) log(1 - q));
//                         dl/dp = (q - t) / (q (1 - q)) / k inside the clip range, 0 where it is active.
// Regression and distribution losses (targets per unit):
//   mean_squared_error    mean_j (p_j - t_j)^2                     d/dp_j = 2 (p_j - t_j) / k
//   mean_absolute_error   mean_j |p_j - t_j|                       d/dp_j = sign(p_j - t_j) / k
//   huber (delta)         mean_j (e^2 / 2 where |e| <= delta, else delta |e| - delta^2 / 2), e = p - t
//                                                                  d/dp_j = (e or delta sign(e)) / k
//   kl_divergence         sum_j T_j log(T_j / P_j), T = clip(t, eps, 1), P = clip(p, eps, 1)
//                                                                  d/dp_j = -T_j / p_j inside the clip, else 0
//   categorical_hinge     max(max_j (1 - t_j) p_j - sum_j t_j p_j + 1, 0)
//                                                                  d/dp_j = [j = argmax (1 - t) p](1 - t_j) - t_j
//                                                                  where the loss is positive, else 0
// Focal cross-entropies (Keras's binary_focal_crossentropy and categorical_focal_crossentropy):
//   binary_focal          mean_j w_j f_j b_j, with p = sigmoid(z) from logits, else p;
//                         b = binary cross-entropy as above (from the logits where there are logits,
//                         as Keras reads a sigmoid's logits); p_t = t p + (1 - t)(1 - p);
//                         f = (1 - p_t)^gamma; w = t alpha + (1 - t)(1 - alpha) with class balancing,
//                         else 1.  d/dp = w (f' b + f db/dp), f' = -gamma (1 - p_t)^(gamma - 1) (2t - 1);
//                         from logits, d/dz = w (f' p (1 - p) b + f (p - t)).
//   categorical_focal     sum_j alpha (1 - q_j)^gamma (-t_j log q_j), p = softmax(z) from logits, else p;
//                         q = clip(p / sum p, eps, 1 - eps); d/dq_j = alpha (gamma (1 - q_j)^(gamma - 1) t_j log q_j
//                         - (1 - q_j)^gamma t_j / q_j) inside the clip, 0 where it is active; then through the
//                         normalisation as the cross-entropy, and through softmax from logits.
// Per-sample losses are written to `losses`; the gradient of mean(losses) (scaled by
// `gradient_scale`, 1/batch for Keras's sum_over_batch_size) to `input_gradient` when not null.
#pragma once

#include <cstdint>

namespace fastcnn {

enum class LossKind {
  categorical_crossentropy,
  binary_crossentropy,
  mean_squared_error,
  mean_absolute_error,
  huber,
  kl_divergence,
  categorical_hinge,
  binary_focal_crossentropy,
  categorical_focal_crossentropy,
};

// The kind named as Keras names its loss function ("binary_crossentropy", ...); throws
// std::invalid_argument naming the received name for any other.
LossKind parse_loss_kind(const char* name);

// The loss functions' own arguments (Keras's defaults).
struct LossOptions {
  float huber_delta = 1.0f;
  float focal_gamma = 2.0f;
  float focal_alpha = 0.25f;
  bool apply_class_balancing = false;  // binary focal only
};

// Throws std::invalid_argument naming the value when an option is out of its range: the Huber
// delta finite and positive, gamma finite and non-negative, alpha finite.
void check_loss_options(const LossOptions& options);

struct LossParams {
  LossKind kind = LossKind::categorical_crossentropy;
  int64_t batch = 0;
  int64_t classes = 0;  // units per sample
  bool from_logits = false;  // the cross-entropies only
  LossOptions options;
  float gradient_scale = 1.0f;
};

constexpr float kLossEpsilon = 1e-7f;

}  // namespace fastcnn
