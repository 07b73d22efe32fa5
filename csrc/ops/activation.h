// Activations that layers fuse into their output. All of them have a derivative that can be
// computed from the activation's output alone, so layers keep only their output:
//   relu:    y = max(x, 0)            dy/dx = [y > 0]
//   sigmoid: y = 1 / (1 + e^-x)       dy/dx = y (1 - y)
//   tanh:    y = tanh(x)              dy/dx = 1 - y^2
//   softmax: y_i = e^x_i / sum_j e^x_j over the channels; dx = y * (g - sum_j g_j y_j)
#pragma once

#include <string>

namespace fastcnn {

enum class Activation { linear, relu, sigmoid, tanh, softmax };

// Parses a Keras activation name; throws std::invalid_argument naming the value.
Activation parse_activation(const std::string& name);
const char* activation_name(Activation activation);
// Elementwise activations can be applied in a kernel's epilogue; softmax needs a whole row.
inline bool is_elementwise(Activation activation) { return activation != Activation::softmax; }

}  // namespace fastcnn
