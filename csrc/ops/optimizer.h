// One optimizer update over a contiguous run of parameters (a variable, or adjacent variables with
// the same gradient scale): Keras 3's update rules (runtime/optimizer.h lists them), with the
// per-step scalars (learning rate, bias corrections, the clip norm's factor) computed once by the
// runtime (runtime/optimizer.cpp) and the per-element work done by the kernel tiers.
//
// Per element, in this order (as Keras's base optimizer: clip, then decay, then the update):
//   g = g * gradient_scale  (clipnorm / global_clipnorm factor; skipped when it is exactly 1)
//   g = min(max(g, -clipvalue), clipvalue)  (when clipvalue > 0)
//   w = w - w * decay  (decay = weight_decay * learning_rate, when > 0)
//   then the rule of `kind`; the clipped g is written back to the gradient buffer.
// update_element below is the one copy of those formulas: the reference kernel runs it on floats,
// the optimised tiers on vectors of floats, in the same operation order, so that (with FMA
// contraction off in that file) every tier gives the same bits.
#pragma once

#include <cstdint>

namespace fastcnn {

enum class OptimizerKind { sgd, adam, rmsprop, adagrad, nadam };

struct OptimizerUpdateParams {
  OptimizerKind kind = OptimizerKind::sgd;
  int64_t count = 0;
  float learning_rate = 0.0f;
  float gradient_scale = 1.0f;  // clipnorm / global_clipnorm factor; 1: none
  float clipvalue = 0.0f;       // 0: none
  float decay = 0.0f;           // weight_decay * learning_rate; 0: none
  float momentum = 0.0f;        // sgd, rmsprop
  bool nesterov = false;        // sgd
  float rho = 0.9f;             // rmsprop
  bool centered = false;        // rmsprop
  float epsilon = 1e-7f;        // adam, nadam, rmsprop, adagrad
  float beta_1 = 0.9f, beta_2 = 0.999f;  // adam, nadam
  bool amsgrad = false;         // adam
  float alpha = 0.0f;           // adam: lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
  // nadam: u_t, u_{t+1}, the running products 1 - u_1...u_t and 1 - u_1...u_{t+1}, 1 - beta_2^t.
  float u_t = 0.0f, u_next = 0.0f;
  float one_minus_u_product = 1.0f, one_minus_u_product_next = 1.0f, one_minus_beta_2_power = 1.0f;
};

// Which slot buffers an update reads and writes (the others may be null):
// first: momentum (sgd, rmsprop with momentum > 0) or the first moment (adam, nadam);
// second: the second moment (adam, nadam), rmsprop's velocity, adagrad's accumulator;
// third: adam's amsgrad maximum or centered rmsprop's average gradient.
inline bool optimizer_uses_first_slot(const OptimizerUpdateParams& p) {
  return p.kind == OptimizerKind::adam || p.kind == OptimizerKind::nadam ||
         ((p.kind == OptimizerKind::sgd || p.kind == OptimizerKind::rmsprop) && p.momentum > 0.0f);
}
inline bool optimizer_uses_second_slot(const OptimizerUpdateParams& p) { return p.kind != OptimizerKind::sgd; }
inline bool optimizer_uses_third_slot(const OptimizerUpdateParams& p) {
  return (p.kind == OptimizerKind::adam && p.amsgrad) || (p.kind == OptimizerKind::rmsprop && p.centered);
}
// The gradient buffer is written back only when clipping may have changed it.
inline bool optimizer_clips(const OptimizerUpdateParams& p) {
  return p.gradient_scale != 1.0f || p.clipvalue > 0.0f;
}

// The update of one element (Value = float) or one vector of elements (Value = a GCC vector of
// floats: scalars broadcast, comparisons and ?: act per lane). `square_root` is sqrt for Value
// (correctly rounded in every tier, as IEEE requires). Comparisons are written as std::max /
// std::min evaluate them (std::max(a, b) = a < b ? b : a), so NaN goes where it went before.
template <typename Value, typename SquareRoot>
__attribute__((always_inline)) inline void update_element(const OptimizerUpdateParams& p, SquareRoot square_root, Value& w, Value& g, Value& first,
                           Value& second, Value& third) {
  if (p.gradient_scale != 1.0f) g = g * p.gradient_scale;
  if (p.clipvalue > 0.0f) {
    const Value low = g < -p.clipvalue ? -p.clipvalue : g;  // std::max(g, -clipvalue)
    g = p.clipvalue < low ? p.clipvalue : low;               // std::min(low, clipvalue)
  }
  if (p.decay > 0.0f) w = w - w * p.decay;
  switch (p.kind) {
    case OptimizerKind::sgd:
      if (p.momentum == 0.0f) {
        w = w - p.learning_rate * g;
      } else if (p.nesterov) {
        first = p.momentum * first - p.learning_rate * g;
        w = w + (p.momentum * first - p.learning_rate * g);
      } else {
        first = p.momentum * first - p.learning_rate * g;
        w = w + first;
      }
      return;
    case OptimizerKind::rmsprop: {
      second = p.rho * second + (1.0f - p.rho) * g * g;
      Value denominator = second + p.epsilon;
      if (p.centered) {
        third = p.rho * third + (1.0f - p.rho) * g;
        denominator = second - third * third + p.epsilon;
      }
      const Value increment = p.learning_rate * g / square_root(denominator);
      if (p.momentum > 0.0f) {
        first = p.momentum * first + increment;
        w = w - first;
      } else {
        w = w - increment;
      }
      return;
    }
    case OptimizerKind::adagrad:
      second = second + g * g;
      w = w - p.learning_rate * g / square_root(second + p.epsilon);
      return;
    case OptimizerKind::nadam: {
      first = first + (g - first) * (1.0f - p.beta_1);
      second = second + (g * g - second) * (1.0f - p.beta_2);
      const Value m_hat =
          p.u_next * first / p.one_minus_u_product_next + (1.0f - p.u_t) * g / p.one_minus_u_product;
      const Value v_hat = second / p.one_minus_beta_2_power;
      w = w - m_hat * p.learning_rate / (square_root(v_hat) + p.epsilon);
      return;
    }
    case OptimizerKind::adam: {
      first = first + (g - first) * (1.0f - p.beta_1);
      second = second + (g * g - second) * (1.0f - p.beta_2);
      Value denominator_source = second;
      if (p.amsgrad) {
        third = third < second ? second : third;  // std::max(v_hat, v)
        denominator_source = third;
      }
      w = w - first * p.alpha / (square_root(denominator_source) + p.epsilon);
      return;
    }
  }
}

}  // namespace fastcnn
