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
#pragma once

#include <string>

namespace fastcnn {

enum class Activation {
  linear, relu, sigmoid, tanh, softmax, relu6, leaky_relu, elu, selu, hard_sigmoid, softplus, swish, gelu
};

// Parses a Keras activation name; throws std::invalid_argument naming the value.
Activation parse_activation(const std::string& name);
const char* activation_name(Activation activation);
// Elementwise activations can be applied in a kernel's epilogue; softmax needs a whole row.
inline bool is_elementwise(Activation activation) { return activation != Activation::softmax; }
// Activations whose backward pass needs their input, not only their output.
// Output activations whose cross-entropy loss reads the logits (the network fuses the two):
// a layer ending in one keeps its pre-activation.
inline bool keeps_logits(Activation activation) {
  return activation == Activation::softmax || activation == Activation::sigmoid;
}

inline bool needs_pre_activation(Activation activation) {
  return activation == Activation::softmax || activation == Activation::softplus ||
         activation == Activation::swish || activation == Activation::gelu;
}

}  // namespace fastcnn
