// Activations that layers fuse into their output (Keras 3 definitions). Most have a derivative
// that follows from the output alone; gelu, swish and softplus need the input (the layer then keeps
// its pre-activation), and softmax keeps its logits for the fused cross-entropy:
//   relu:         y = max(x, 0)                       dy/dx = [y > 0]
//   relu6:        y = min(max(x, 0), 6)               dy/dx = [0 < y < 6]
//   leaky_relu:   y = x > 0 ? x : 0.2 x               dy/dx = y > 0 ? 1 : 0.2
//   elu:          y = x > 0 ? x : e^x - 1             dy/dx = y > 0 ? 1 : y + 1
//   selu:         y = s (x > 0 ? x : a (e^x - 1)), s = 1.0507009873554805, a = 1.6732632423543772
//                                                     dy/dx = y > 0 ? s : y + s a
//   sigmoid:      y = 1 / (1 + e^-x)                  dy/dx = y (1 - y)
//   hard_sigmoid: y = clip(x / 6 + 0.5, 0, 1)         dy/dx = [0 < y < 1] / 6
//   tanh:         y = tanh(x)                         dy/dx = 1 - y^2
//   softplus:     y = log(1 + e^x)                    dy/dx = sigmoid(x)
//   swish (silu): y = x sigmoid(x)                    dy/dx = s (1 + x (1 - s)), s = sigmoid(x)
//   gelu:         y = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2   dy/dx = Phi(x) + x phi(x)
//   softmax:      y_i = e^x_i / sum_j e^x_j over the channels; dx = y * (g - sum_j g_j y_j)
//   hard_silu (hard_swish): y = x h, h = relu6(x + 3) / 6   dy/dx = h + x [0 < x + 3 < 6] / 6
//   mish:         y = x tanh(softplus(x))             dy/dx = t + x (1 - t^2) sigmoid(x), t = tanh(softplus(x))
//   log_softmax:  y_i = x_i - max x - log sum_j e^(x_j - max x) over the channels; dx = g - e^y sum_j g_j
//   exponential:  y = e^x                             dy/dx = y
//   softsign:     y = x / (1 + |x|)                   dy/dx = 1 / (1 + |x|)^2
#pragma once

#include <string>

namespace fastcnn {

enum class Activation {
  linear, relu, sigmoid, tanh, softmax, relu6, leaky_relu, elu, selu, hard_sigmoid, softplus, swish, gelu,
  hard_silu, mish, log_softmax, exponential, softsign
};

// Parses a Keras activation name; throws std::invalid_argument naming the value.
Activation parse_activation(const std::string& name);
const char* activation_name(Activation activation);
// Elementwise activations can be applied in a kernel's epilogue; softmax and log_softmax need a whole row.
inline bool is_elementwise(Activation activation) {
  return activation != Activation::softmax && activation != Activation::log_softmax;
}
// Activations whose backward pass needs their input, not only their output.
// Output activations whose cross-entropy loss reads the logits (the network fuses the two):
// a layer ending in one keeps its pre-activation.
inline bool keeps_logits(Activation activation) {
  return activation == Activation::softmax || activation == Activation::sigmoid;
}

inline bool needs_pre_activation(Activation activation) {
  return !is_elementwise(activation) || activation == Activation::softplus || activation == Activation::swish ||
         activation == Activation::gelu || activation == Activation::hard_silu || activation == Activation::mish ||
         activation == Activation::softsign;
}

// A layer ending in `activation` (Conv2D, Dense, their int8 forms) keeps its pre-activation when
// its backward pass or the fused cross-entropy reads it; its kernel epilogue then computes the
// linear output and the activation runs after it, from the kept values.
inline bool keeps_pre_activation_of(Activation activation) {
  return needs_pre_activation(activation) || keeps_logits(activation);
}
inline Activation epilogue_activation(Activation activation) {
  return keeps_pre_activation_of(activation) ? Activation::linear : activation;
}

}  // namespace fastcnn
