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
  if (config.kind != "sgd" && config.kind != "adam" && config.kind != "rmsprop") {
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
  const bool adam = config.kind == "adam";
  const bool rmsprop = config.kind == "rmsprop";
  first_moment.assign(adam || config.momentum > 0.0f ? size : 0, 0.0f);
  second_moment.assign(adam || rmsprop ? size : 0, 0.0f);
  third_slot.assign((adam && config.amsgrad) || (rmsprop && config.centered) ? size : 0, 0.0f);
}

void Optimizer::apply(float learning_rate, float* parameters, const float* gradients,
                      const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  const float lr = learning_rate;
  const OptimizerConfig& c = config_;
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
