// Optimizers as one fused, vectorised pass over the flat parameter buffer, with Keras 3's update
// rules (t = iterations + 1):
//   SGD:      m = momentum*m - lr*g;  w += m   (nesterov: w += momentum*m - lr*g);  plain: w -= lr*g
//   Adam:     m += (g - m)(1 - beta_1);  v += (g^2 - v)(1 - beta_2);  (amsgrad: v_hat = max(v_hat, v))
//             w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)
//   RMSprop:  v = rho*v + (1 - rho) g^2;  (centered: a = rho*a + (1 - rho) g, d = v - a^2 + eps,
//             else d = v + eps);  step = lr * g / sqrt(d);  momentum: m = momentum*m + step, w -= m;
//             else w -= step
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastcnn::runtime {

struct OptimizerConfig {
  std::string kind = "sgd";  // "sgd", "adam" or "rmsprop"
  float momentum = 0.0f;
  bool nesterov = false;
  float beta_1 = 0.9f;
  float beta_2 = 0.999f;
  float epsilon = 1e-7f;
  bool amsgrad = false;
  float rho = 0.9f;
  bool centered = false;
};

class Optimizer {
 public:
  // Validates the configuration (std::invalid_argument naming the value) and resets the state.
  void configure(const OptimizerConfig& config, int64_t parameter_count);
  // One update of parameters[begin, end) for each range; increments iterations once.
  void apply(float learning_rate, float* parameters, const float* gradients,
             const std::vector<std::pair<int64_t, int64_t>>& ranges);

  int64_t iterations = 0;
  const OptimizerConfig& config() const { return config_; }
  // Slot variables, flat like the parameters; empty where the configuration has none:
  // momentum or Adam's first moment; Adam's second moment or RMSprop's velocity; Adam's amsgrad
  // maximum or centered RMSprop's average gradient.
  std::vector<float> first_moment, second_moment, third_slot;

 private:
  OptimizerConfig config_;
};

}  // namespace fastcnn::runtime
