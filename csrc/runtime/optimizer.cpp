#include "runtime/optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/kernels.h"

namespace fastcnn::runtime {

void Optimizer::configure(const OptimizerConfig& config, int64_t parameter_count) {
  if (config.kind != "sgd" && config.kind != "adam" && config.kind != "rmsprop" && config.kind != "adagrad" &&
      config.kind != "nadam") {
    throw std::invalid_argument("Unknown optimizer kind: '" + config.kind + "'");
  }
  if (!(config.momentum >= 0.0f && config.momentum <= 1.0f)) {
    throw std::invalid_argument("`momentum` must be a float between [0, 1]. Received: momentum=" +
                                std::to_string(config.momentum));
  }
  if (!(config.epsilon > 0.0f)) {
    throw std::invalid_argument("`epsilon` must be positive. Received: epsilon=" +
                                std::to_string(config.epsilon));
  }
  config_ = config;
  iterations = 0;
  const size_t size = static_cast<size_t>(parameter_count);
  if (!(config.rho >= 0.0f && config.rho <= 1.0f)) {
    throw std::invalid_argument("`rho` must be a float between [0, 1]. Received: rho=" +
                                std::to_string(config.rho));
  }
  const int clips = (config.clipnorm > 0.0f) + (config.global_clipnorm > 0.0f) + (config.clipvalue > 0.0f);
  if (clips > 1) {
    throw std::invalid_argument("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set.");
  }
  const bool adam = config.kind == "adam" || config.kind == "nadam";
  const bool rmsprop = config.kind == "rmsprop";
  first_moment.assign(adam || config.momentum > 0.0f ? size : 0, 0.0f);
  second_moment.assign(adam || rmsprop ? size : 0, 0.0f);
  if (config.kind == "adagrad") second_moment.assign(size, config.initial_accumulator_value);
  third_slot.assign((adam && config.amsgrad) || (rmsprop && config.centered) ? size : 0, 0.0f);
  nadam_u_product = 1.0;
}

namespace {

double squared_norm(const float* values, int64_t begin, int64_t end) {
  double sum = 0.0;
  for (int64_t i = begin; i < end; ++i) sum += static_cast<double>(values[i]) * values[i];
  return sum;
}

}  // namespace

void Optimizer::apply(float learning_rate, float* parameters, float* gradients,
                      const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  const OptimizerConfig& c = config_;
  OptimizerUpdateParams p;
  p.kind = c.kind == "sgd"       ? OptimizerKind::sgd
           : c.kind == "adam"    ? OptimizerKind::adam
           : c.kind == "rmsprop" ? OptimizerKind::rmsprop
           : c.kind == "adagrad" ? OptimizerKind::adagrad
                                 : OptimizerKind::nadam;
  p.learning_rate = learning_rate;
  p.clipvalue = c.clipvalue;
  p.decay = c.weight_decay > 0.0f ? c.weight_decay * learning_rate : 0.0f;
  p.momentum = c.momentum;
  p.nesterov = c.nesterov;
  p.rho = c.rho;
  p.centered = c.centered;
  p.epsilon = c.epsilon;
  p.beta_1 = c.beta_1;
  p.beta_2 = c.beta_2;
  p.amsgrad = c.amsgrad;
  // Powers in float32, as Keras computes them: beta ** t with t = iterations + 1.
  const float step = static_cast<float>(iterations + 1);
  if (p.kind == OptimizerKind::adam) {
    const float beta_1_power = std::pow(c.beta_1, step);
    const float beta_2_power = std::pow(c.beta_2, step);
    p.alpha = learning_rate * std::sqrt(1.0f - beta_2_power) / (1.0f - beta_1_power);
  } else if (p.kind == OptimizerKind::nadam) {
    p.u_t = c.beta_1 * (1.0f - 0.5f * std::pow(0.96f, step));
    p.u_next = c.beta_1 * (1.0f - 0.5f * std::pow(0.96f, step + 1.0f));
    nadam_u_product = static_cast<float>(nadam_u_product) * p.u_t;
    const float u_product = static_cast<float>(nadam_u_product);
    p.one_minus_u_product = 1.0f - u_product;
    p.one_minus_u_product_next = 1.0f - u_product * p.u_next;
    p.one_minus_beta_2_power = 1.0f - std::pow(c.beta_2, step);
  }
  // The clip norm's factor per variable (1: none).
  std::vector<float>& scales = variable_scales_;
  scales.assign(ranges.size(), 1.0f);
  if (c.clipnorm > 0.0f) {
    for (size_t k = 0; k < ranges.size(); ++k) {
      const float norm = static_cast<float>(std::sqrt(squared_norm(gradients, ranges[k].first, ranges[k].second)));
      scales[k] = c.clipnorm / std::max(norm, c.clipnorm);
    }
  } else if (c.global_clipnorm > 0.0f) {
    double total = 0.0;
    for (const auto& [begin, end] : ranges) total += squared_norm(gradients, begin, end);
    const float norm = static_cast<float>(std::sqrt(total));
    // scale = clip * min(1 / norm, 1 / clip), as tf.clip_by_global_norm.
    std::fill(scales.begin(), scales.end(), c.global_clipnorm * std::min(1.0f / norm, 1.0f / c.global_clipnorm));
  }
  // One kernel call per run of adjacent variables with the same factor (the trainable variables
  // usually tile the parameter buffer: one call, one parallel region, for the whole model).
  const kernels::KernelTable& kernels = kernels::active();
  float* first = first_moment.empty() ? nullptr : first_moment.data();
  float* second = second_moment.empty() ? nullptr : second_moment.data();
  float* third = third_slot.empty() ? nullptr : third_slot.data();
  for (size_t k = 0; k < ranges.size();) {
    const int64_t begin = ranges[k].first;
    int64_t end = ranges[k].second;
    size_t next = k + 1;
    while (next < ranges.size() && ranges[next].first == end && scales[next] == scales[k]) end = ranges[next++].second;
    p.gradient_scale = scales[k];
    p.count = end - begin;
    if (p.count > 0) {
      kernels.optimizer_update(p, parameters + begin, gradients + begin, first != nullptr ? first + begin : nullptr,
                               second != nullptr ? second + begin : nullptr, third != nullptr ? third + begin : nullptr);
    }
    k = next;
  }
  ++iterations;
}

}  // namespace fastcnn::runtime
