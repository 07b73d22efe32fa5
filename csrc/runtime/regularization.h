// Keras's L1/L2 penalties (regularizers.L1, L2, L1L2) on a layer's kernel, bias and output.
//
//   penalty(x)     = l1 * sum|x| + l2 * sum x^2
//   d penalty / dx = l1 * sign(x) + 2 * l2 * x          (sign(0) = 0, as TensorFlow's)
//
// Kernel and bias penalties join the loss of every step (training and evaluation) while their
// layer is trainable, and their gradients join the weights' before the optimizer (so clipping
// sees them, as in Keras). An activity penalty is taken on the layer's output and divided by the
// batch size, as Keras's Layer.__call__ does; its gradient joins the output's gradient.
#pragma once

#include <cstdint>
#include <vector>

namespace fastcnn::runtime {

struct Regularization {
  float kernel_l1 = 0.0f, kernel_l2 = 0.0f;
  float bias_l1 = 0.0f, bias_l2 = 0.0f;
  float activity_l1 = 0.0f, activity_l2 = 0.0f;
  // A layer's second kernel (Layer::kernel_arrays() == 2: SeparableConv2D's pointwise kernel).
  float second_kernel_l1 = 0.0f, second_kernel_l2 = 0.0f;

  bool on_weights() const {
    return kernel_l1 != 0.0f || kernel_l2 != 0.0f || bias_l1 != 0.0f || bias_l2 != 0.0f || second_kernel_l1 != 0.0f ||
           second_kernel_l2 != 0.0f;
  }
  bool on_activity() const { return activity_l1 != 0.0f || activity_l2 != 0.0f; }
};

// l1 * sum|x| + l2 * sum x^2 over count values, summed in double over fixed blocks in a fixed
// order: the result does not depend on the thread count. partials is scratch (resized here).
double penalty_sum(const float* values, int64_t count, float l1, float l2, std::vector<double>& partials);

// gradient[i] += l1_scale * sign(values[i]) + l2_scale * values[i], in parallel.
void add_penalty_gradient(const float* values, float* gradient, int64_t count, float l1_scale,
                          float l2_scale);

}  // namespace fastcnn::runtime
