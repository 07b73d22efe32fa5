#include "runtime/optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "parallel.h"

namespace fastcnn::runtime {
namespace {

constexpr int64_t kChunk = 8192;

template <typename Body>
void for_range_chunks(int64_t begin, int64_t end, Body&& body) {
  const int64_t chunks = (end - begin + kChunk - 1) / kChunk;
  parallel::parallel_for(chunks, [&](int64_t chunk) {
    const int64_t first = begin + chunk * kChunk;
    body(first, std::min(end, first + kChunk));
  });
}

}  // namespace

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

void scale_range(float* values, int64_t begin, int64_t end, float factor) {
  for (int64_t i = begin; i < end; ++i) values[i] *= factor;
}

}  // namespace

void Optimizer::apply(float learning_rate, float* parameters, float* gradients,
                      const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  const float lr = learning_rate;
  const OptimizerConfig& c = config_;
  if (c.clipnorm > 0.0f) {
    for (const auto& [begin, end] : ranges) {
      const float norm = static_cast<float>(std::sqrt(squared_norm(gradients, begin, end)));
      scale_range(gradients, begin, end, c.clipnorm / std::max(norm, c.clipnorm));
    }
  } else if (c.global_clipnorm > 0.0f) {
    double total = 0.0;
    for (const auto& [begin, end] : ranges) total += squared_norm(gradients, begin, end);
    const float norm = static_cast<float>(std::sqrt(total));
    // scale = clip * min(1 / norm, 1 / clip), as tf.clip_by_global_norm.
    const float factor = c.global_clipnorm * std::min(1.0f / norm, 1.0f / c.global_clipnorm);
    for (const auto& [begin, end] : ranges) scale_range(gradients, begin, end, factor);
  } else if (c.clipvalue > 0.0f) {
    for (const auto& [begin, end] : ranges)
      for (int64_t i = begin; i < end; ++i) gradients[i] = std::min(std::max(gradients[i], -c.clipvalue), c.clipvalue);
  }
  if (c.weight_decay > 0.0f) {
    const float decay = c.weight_decay * lr;
    for (const auto& [begin, end] : ranges)
      for (int64_t i = begin; i < end; ++i) parameters[i] -= parameters[i] * decay;
  }
  if (c.kind == "sgd") {
    float* m = first_moment.data();
    for (const auto& [begin, end] : ranges) {
      for_range_chunks(begin, end, [&](int64_t first, int64_t last) {
        if (c.momentum == 0.0f) {
          for (int64_t i = first; i < last; ++i) parameters[i] -= lr * gradients[i];
        } else if (c.nesterov) {
          for (int64_t i = first; i < last; ++i) {
            m[i] = c.momentum * m[i] - lr * gradients[i];
            parameters[i] += c.momentum * m[i] - lr * gradients[i];
          }
        } else {
          for (int64_t i = first; i < last; ++i) {
            m[i] = c.momentum * m[i] - lr * gradients[i];
            parameters[i] += m[i];
          }
        }
      });
    }
  } else if (c.kind == "rmsprop") {
    float* m = first_moment.data();
    float* v = second_moment.data();
    float* average = third_slot.data();
    for (const auto& [begin, end] : ranges) {
      for_range_chunks(begin, end, [&](int64_t first, int64_t last) {
        for (int64_t i = first; i < last; ++i) {
          const float g = gradients[i];
          v[i] = c.rho * v[i] + (1.0f - c.rho) * g * g;
          float denominator = v[i] + c.epsilon;
          if (c.centered) {
            average[i] = c.rho * average[i] + (1.0f - c.rho) * g;
            denominator = v[i] - average[i] * average[i] + c.epsilon;
          }
          const float increment = lr * g / std::sqrt(denominator);
          if (c.momentum > 0.0f) {
            m[i] = c.momentum * m[i] + increment;
            parameters[i] -= m[i];
          } else {
            parameters[i] -= increment;
          }
        }
      });
    }
  } else if (c.kind == "adagrad") {
    float* accumulator = second_moment.data();
    for (const auto& [begin, end] : ranges) {
      for_range_chunks(begin, end, [&](int64_t first, int64_t last) {
        for (int64_t i = first; i < last; ++i) {
          accumulator[i] += gradients[i] * gradients[i];
          parameters[i] -= lr * gradients[i] / std::sqrt(accumulator[i] + c.epsilon);
        }
      });
    }
  } else if (c.kind == "nadam") {
    const float step = static_cast<float>(iterations + 1);
    const float u_t = c.beta_1 * (1.0f - 0.5f * std::pow(0.96f, step));
    const float u_next = c.beta_1 * (1.0f - 0.5f * std::pow(0.96f, step + 1.0f));
    nadam_u_product = static_cast<float>(nadam_u_product) * u_t;
    const float u_product = static_cast<float>(nadam_u_product);
    const float u_product_next = u_product * u_next;
    const float beta_2_power = std::pow(c.beta_2, step);
    float* m = first_moment.data();
    float* v = second_moment.data();
    for (const auto& [begin, end] : ranges) {
      for_range_chunks(begin, end, [&](int64_t first, int64_t last) {
        for (int64_t i = first; i < last; ++i) {
          const float g = gradients[i];
          m[i] += (g - m[i]) * (1.0f - c.beta_1);
          v[i] += (g * g - v[i]) * (1.0f - c.beta_2);
          const float m_hat = u_next * m[i] / (1.0f - u_product_next) + (1.0f - u_t) * g / (1.0f - u_product);
          const float v_hat = v[i] / (1.0f - beta_2_power);
          parameters[i] -= m_hat * lr / (std::sqrt(v_hat) + c.epsilon);
        }
      });
    }
  } else {
    // Powers in float32, as Keras computes them: beta ** t with t = iterations + 1.
    const float step = static_cast<float>(iterations + 1);
    const float beta_1_power = std::pow(c.beta_1, step);
    const float beta_2_power = std::pow(c.beta_2, step);
    const float alpha = lr * std::sqrt(1.0f - beta_2_power) / (1.0f - beta_1_power);
    float* m = first_moment.data();
    float* v = second_moment.data();
    float* v_hat = third_slot.data();
    for (const auto& [begin, end] : ranges) {
      for_range_chunks(begin, end, [&](int64_t first, int64_t last) {
        for (int64_t i = first; i < last; ++i) {
          const float g = gradients[i];
          m[i] += (g - m[i]) * (1.0f - c.beta_1);
          v[i] += (g * g - v[i]) * (1.0f - c.beta_2);
          float denominator_source = v[i];
          if (c.amsgrad) {
            v_hat[i] = std::max(v_hat[i], v[i]);
            denominator_source = v_hat[i];
          }
          parameters[i] -= (m[i] * alpha) / (std::sqrt(denominator_source) + c.epsilon);
        }
      });
    }
  }
  ++iterations;
}

}  // namespace fastcnn::runtime
