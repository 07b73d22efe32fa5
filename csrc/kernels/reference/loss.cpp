// The losses (ops/loss.h). O(batch * classes): one implementation serves every kernel table.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
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

// Binary cross-entropy (ops/loss.h): targets per unit, the loss the mean over the units.
void binary_cross_entropy(const LossParams& p, const float* predictions, const float* targets, float* losses,
                          float* input_gradient) {
  const int64_t units = p.classes;
  const float scale = p.gradient_scale / static_cast<float>(units);
  for (int64_t n = 0; n < p.batch; ++n) {
    float loss = 0.0f;
    for (int64_t j = 0; j < units; ++j) {
      const float z = predictions[n * units + j];
      const float t = targets[n * units + j];
      float gradient;
      if (p.from_logits) {
        // TensorFlow's sigmoid_cross_entropy_with_logits: stable for either sign of z.
        loss += std::max(z, 0.0f) - z * t + std::log1p(std::exp(-std::fabs(z)));
        const float sigmoid = z >= 0.0f ? 1.0f / (1.0f + std::exp(-z)) : std::exp(z) / (1.0f + std::exp(z));
        gradient = sigmoid - t;
      } else {
        const float q = std::min(std::max(z, kLossEpsilon), 1.0f - kLossEpsilon);
        loss -= t * std::log(q) + (1.0f - t) * std::log(1.0f - q);
        gradient = q == z ? (q - t) / (q * (1.0f - q)) : 0.0f;
      }
      if (input_gradient != nullptr) input_gradient[n * units + j] = scale * gradient;
    }
    losses[n] = loss / static_cast<float>(units);
  }
}

// The regression and distribution losses (ops/loss.h): targets per unit.
void elementwise_loss(const LossParams& p, const float* predictions, const float* targets, float* losses,
                      float* input_gradient) {
  const int64_t units = p.classes;
  const float mean_scale = p.gradient_scale / static_cast<float>(units);
  for (int64_t n = 0; n < p.batch; ++n) {
    const float* row = predictions + n * units;
    const float* target = targets + n * units;
    float* gradient = input_gradient != nullptr ? input_gradient + n * units : nullptr;
    float loss = 0.0f;
    switch (p.kind) {
      case LossKind::mean_squared_error:
        for (int64_t j = 0; j < units; ++j) {
          const float error = row[j] - target[j];
          loss += error * error;
          if (gradient != nullptr) gradient[j] = mean_scale * 2.0f * error;
        }
        loss /= static_cast<float>(units);
        break;
      case LossKind::mean_absolute_error:
        for (int64_t j = 0; j < units; ++j) {
          const float error = row[j] - target[j];
          loss += std::fabs(error);
          const float sign = error > 0.0f ? 1.0f : (error < 0.0f ? -1.0f : 0.0f);
          if (gradient != nullptr) gradient[j] = mean_scale * sign;
        }
        loss /= static_cast<float>(units);
        break;
      case LossKind::huber: {
        const float delta = p.options.huber_delta;
        for (int64_t j = 0; j < units; ++j) {
          const float error = row[j] - target[j];
          const float magnitude = std::fabs(error);
          const bool quadratic = magnitude <= delta;
          loss += quadratic ? 0.5f * error * error : delta * magnitude - 0.5f * delta * delta;
          const float sign = error > 0.0f ? 1.0f : (error < 0.0f ? -1.0f : 0.0f);
          if (gradient != nullptr) gradient[j] = mean_scale * (quadratic ? error : delta * sign);
        }
        loss /= static_cast<float>(units);
        break;
      }
      case LossKind::kl_divergence:
        for (int64_t j = 0; j < units; ++j) {
          const float clipped_target = std::min(std::max(target[j], kLossEpsilon), 1.0f);
          const float clipped = std::min(std::max(row[j], kLossEpsilon), 1.0f);
          loss += clipped_target * std::log(clipped_target / clipped);
          if (gradient != nullptr) gradient[j] = clipped == row[j] ? -p.gradient_scale * clipped_target / row[j] : 0.0f;
        }
        break;
      case LossKind::categorical_hinge: {
        float positive = 0.0f, negative = -std::numeric_limits<float>::infinity();
        int64_t strongest = 0;
        for (int64_t j = 0; j < units; ++j) {
          positive += target[j] * row[j];
          const float wrong = (1.0f - target[j]) * row[j];
          if (wrong > negative) {
            negative = wrong;
            strongest = j;
          }
        }
        loss = std::max(negative - positive + 1.0f, 0.0f);
        if (gradient != nullptr) {
          for (int64_t j = 0; j < units; ++j) {
            gradient[j] = loss > 0.0f
                              ? p.gradient_scale * ((j == strongest ? 1.0f - target[j] : 0.0f) - target[j])
                              : 0.0f;
          }
        }
        break;
      }
      default:
        break;
    }
    losses[n] = loss;
  }
}

// Binary focal cross-entropy (ops/loss.h): targets per unit, the loss the mean over the units.
void binary_focal_cross_entropy(const LossParams& p, const float* predictions, const float* targets, float* losses,
                                float* input_gradient) {
  const int64_t units = p.classes;
  const float scale = p.gradient_scale / static_cast<float>(units);
  const float gamma = p.options.focal_gamma;
  const float alpha = p.options.focal_alpha;
  for (int64_t n = 0; n < p.batch; ++n) {
    float loss = 0.0f;
    for (int64_t j = 0; j < units; ++j) {
      const float value = predictions[n * units + j];
      const float t = targets[n * units + j];
      float probability, cross_entropy, cross_entropy_derivative;  // derivative by value (z or p)
      if (p.from_logits) {
        probability = value >= 0.0f ? 1.0f / (1.0f + std::exp(-value)) : std::exp(value) / (1.0f + std::exp(value));
        cross_entropy = std::max(value, 0.0f) - value * t + std::log1p(std::exp(-std::fabs(value)));
        cross_entropy_derivative = probability - t;
      } else {
        probability = value;
        const float q = std::min(std::max(value, kLossEpsilon), 1.0f - kLossEpsilon);
        cross_entropy = -(t * std::log(q) + (1.0f - t) * std::log(1.0f - q));
        cross_entropy_derivative = q == value ? (q - t) / (q * (1.0f - q)) : 0.0f;
      }
      const float miss = 1.0f - (t * probability + (1.0f - t) * (1.0f - probability));  // 1 - p_t
      const float focal = std::pow(miss, gamma);
      // df/dp = -gamma (1 - p_t)^(gamma - 1) (2t - 1); zero when gamma is 0 (f is constant).
      const float focal_derivative = gamma == 0.0f ? 0.0f : -gamma * std::pow(miss, gamma - 1.0f) * (2.0f * t - 1.0f);
      const float weight = p.options.apply_class_balancing ? t * alpha + (1.0f - t) * (1.0f - alpha) : 1.0f;
      loss += weight * focal * cross_entropy;
      if (input_gradient != nullptr) {
        const float probability_derivative = p.from_logits ? probability * (1.0f - probability) : 1.0f;
        input_gradient[n * units + j] =
            scale * weight * (focal_derivative * probability_derivative * cross_entropy +
                              focal * cross_entropy_derivative);
      }
    }
    losses[n] = loss / static_cast<float>(units);
  }
}

// Categorical focal cross-entropy (ops/loss.h): probability rows (or logits) against target rows.
void categorical_focal_cross_entropy(const LossParams& p, const float* predictions, const int32_t* labels,
                                     const float* target_probabilities, float* losses, float* input_gradient) {
  const int64_t classes = p.classes;
  const float gamma = p.options.focal_gamma;
  const float alpha = p.options.focal_alpha;
  std::vector<float> probabilities(static_cast<size_t>(classes)), gradient(static_cast<size_t>(classes));
  for (int64_t n = 0; n < p.batch; ++n) {
    const float* row = predictions + n * classes;
    if (p.from_logits) {
      const float maximum = *std::max_element(row, row + classes);
      float exp_sum = 0.0f;
      for (int64_t j = 0; j < classes; ++j) {
        probabilities[j] = std::exp(row[j] - maximum);
        exp_sum += probabilities[j];
      }
      for (int64_t j = 0; j < classes; ++j) probabilities[j] /= exp_sum;
    } else {
      std::copy(row, row + classes, probabilities.begin());
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < classes; ++j) sum += probabilities[j];
    float loss = 0.0f;
    float weighted = 0.0f;  // sum_j (dloss/dq_j) q_j, for the gradient through the normalisation
    for (int64_t j = 0; j < classes; ++j) {
      const float t = target_at(labels, target_probabilities, classes, n, j);
      const float q = probabilities[j] / sum;
      const float clipped = std::min(std::max(q, kLossEpsilon), 1.0f - kLossEpsilon);
      const float log_q = std::log(clipped);
      const float modulation = std::pow(1.0f - clipped, gamma);
      loss -= alpha * modulation * t * log_q;
      float derivative = 0.0f;
      if (q == clipped && t != 0.0f) {
        const float modulation_derivative = gamma == 0.0f ? 0.0f : -gamma * std::pow(1.0f - clipped, gamma - 1.0f);
        derivative = -alpha * (modulation_derivative * t * log_q + modulation * t / q);
      }
      gradient[j] = derivative;
      weighted += derivative * q;
    }
    losses[n] = loss;
    if (input_gradient == nullptr) continue;
    // dq_j/dp_k = (delta_jk - q_j) / sum  =>  dloss/dp_k = (dloss/dq_k - weighted) / sum
    for (int64_t j = 0; j < classes; ++j) gradient[j] = (gradient[j] - weighted) / sum;
    float* result = input_gradient + n * classes;
    if (p.from_logits) {
      // Through softmax: dloss/dz_k = p_k (g_k - sum_j p_j g_j).
      float dot = 0.0f;
      for (int64_t j = 0; j < classes; ++j) dot += probabilities[j] * gradient[j];
      for (int64_t j = 0; j < classes; ++j) result[j] = p.gradient_scale * probabilities[j] * (gradient[j] - dot);
    } else {
      for (int64_t j = 0; j < classes; ++j) result[j] = p.gradient_scale * gradient[j];
    }
  }
}

}  // namespace

void loss(const LossParams& p, const float* predictions, const int32_t* labels, const float* target_probabilities,
          float* losses, float* input_gradient) {
  if (p.kind == LossKind::binary_crossentropy) {
    binary_cross_entropy(p, predictions, target_probabilities, losses, input_gradient);
    return;
  }
  if (p.kind == LossKind::binary_focal_crossentropy) {
    binary_focal_cross_entropy(p, predictions, target_probabilities, losses, input_gradient);
    return;
  }
  if (p.kind == LossKind::categorical_focal_crossentropy) {
    categorical_focal_cross_entropy(p, predictions, labels, target_probabilities, losses, input_gradient);
    return;
  }
  if (p.kind != LossKind::categorical_crossentropy) {
    elementwise_loss(p, predictions, target_probabilities, losses, input_gradient);
    return;
  }
  if (!p.from_logits) {
    // From probabilities, categorical cross-entropy is the focal form with gamma 0 and alpha 1:
    // -sum_j t_j log q_j, q = clip(p / sum p), the gradient through the normalisation.
    LossParams plain = p;
    plain.options.focal_gamma = 0.0f;
    plain.options.focal_alpha = 1.0f;
    categorical_focal_cross_entropy(plain, predictions, labels, target_probabilities, losses, input_gradient);
    return;
  }
  const int64_t classes = p.classes;
  std::vector<float> scratch(static_cast<size_t>(classes));
  for (int64_t n = 0; n < p.batch; ++n) {
    const float* row = predictions + n * classes;
    float target_sum = 0.0f;
    for (int64_t j = 0; j < classes; ++j) target_sum += target_at(labels, target_probabilities, classes, n, j);
    // From logits: loss = sum_j t_j (logsumexp(z) - z_j); gradient = softmax(z) * sum_j t_j - t
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
        input_gradient[n * classes + j] = p.gradient_scale * (scratch[j] / exp_sum * target_sum - t);
      }
    }
  }
}

}  // namespace fastcnn::kernels
