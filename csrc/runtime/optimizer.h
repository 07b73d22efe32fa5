// Optimizers as one fused pass over the flat parameter buffer, with Keras 3's update rules
// (t = iterations + 1); the per-step scalars are computed here, the per-element update by the
// kernel set's optimizer_update (ops/optimizer.h; vectorised in the optimised tiers):
//   SGD:      m = momentum*m - lr*g;  w += m   (nesterov: w += momentum*m - lr*g);  plain: w -= lr*g
//   Adam:     m += (g - m)(1 - beta_1);  v += (g^2 - v)(1 - beta_2);  (amsgrad: v_hat = max(v_hat, v))
//             w -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)
//   RMSprop:  v = rho*v + (1 - rho) g^2;  (centered: a = rho*a + (1 - rho) g, d = v - a^2 + eps,
//             else d = v + eps);  step = lr * g / sqrt(d);  momentum: m = momentum*m + step, w -= m;
//             else w -= step
//   Adagrad:  a += g^2;  w -= lr * g / sqrt(a + epsilon)   (a starts at initial_accumulator_value)
//   Nadam:    u_t = beta_1 (1 - 0.5 * 0.96^t), u_product *= u_t (once per step);
//             m += (g - m)(1 - beta_1);  v += (g^2 - v)(1 - beta_2)
//             m_hat = u_{t+1} m / (1 - u_product u_{t+1}) + (1 - u_t) g / (1 - u_product)
//             w -= lr * m_hat / (sqrt(v / (1 - beta_2^t)) + epsilon)
// Before the update, as Keras's base optimizer does: gradients are clipped (clipnorm: each variable
// scaled by clipnorm / max(|g|, clipnorm); global_clipnorm: all by global_clipnorm / max(|G|,
// global_clipnorm); clipvalue: each value to [-clipvalue, clipvalue]), then weight decay
// w -= w * weight_decay * lr (AdamW is Adam with weight decay).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastcnn::runtime {

struct OptimizerConfig {
  std::string kind = "sgd";  // "sgd", "adam", "rmsprop", "adagrad" or "nadam"
  float momentum = 0.0f;
  bool nesterov = false;
  float beta_1 = 0.9f;
  float beta_2 = 0.999f;
  float epsilon = 1e-7f;
  bool amsgrad = false;
  float rho = 0.9f;
  bool centered = false;
  float initial_accumulator_value = 0.1f;
  float weight_decay = 0.0f;     // 0: none
  float clipnorm = 0.0f;         // 0: none (at most one of the three clips is set)
  float global_clipnorm = 0.0f;
  float clipvalue = 0.0f;
};

class Optimizer {
 public:
  // Validates the configuration (std::invalid_argument naming the value) and resets the state.
  void configure(const OptimizerConfig& config, int64_t parameter_count);
  // One update of every variable parameters[begin, end) listed (one range per weight array, as
  // clipnorm acts per variable); gradients may be modified (clipped). Increments iterations once.
  void apply(float learning_rate, float* parameters, float* gradients,
             const std::vector<std::pair<int64_t, int64_t>>& variables);

  int64_t iterations = 0;
  const OptimizerConfig& config() const { return config_; }
  // Slot variables, flat like the parameters; empty where the configuration has none:
  // momentum or Adam's first moment; Adam's second moment or RMSprop's velocity; Adam's amsgrad
  // maximum or centered RMSprop's average gradient.
  std::vector<float> first_moment, second_moment, third_slot;
  double nadam_u_product = 1.0;  // Nadam's running product of u_t

 private:
  OptimizerConfig config_;
  std::vector<float> variable_scales_;  // apply's clip factor per variable (kept: no allocation per step)
};

}  // namespace fastcnn::runtime
