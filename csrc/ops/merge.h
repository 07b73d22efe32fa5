// Merge ops: several tensors of one batch into one (Keras's Add, Subtract, Multiply, Average,
// Maximum, Minimum and Concatenate layers).
//   Elementwise merges broadcast as numpy does, per sample: every input dimension equals the
//   output's or is 1 (a (1, 1, C) squeeze-excite gate times an (H, W, C) map).
//     add:      y = x0 + x1 + ...              dx_i = dy
//     subtract: y = x0 - x1                    dx_0 = dy, dx_1 = -dy
//     divide:   y = x0 / x1                    dx_0 = dy / x1, dx_1 = dy * ((-x0 / x1) / x1)
//               (TensorFlow's RealDiv gradient, in its order of operations; Keras's x / y on
//               symbolic tensors, there is no Divide layer)
//     multiply: y = (x0 * x1) * ...            dx_i = dy * prod_{j != i} x_j
//     average:  y = (x0 + x1 + ...) / n        dx_i = dy / n
//     maximum:  y = max(max(x0, x1), ...)      dx_i = dy where x_i is the first maximum
//     minimum:  as maximum, with the first minimum (TensorFlow's x >= y / x <= y masks)
//   A broadcast input's gradient sums dy over the positions it was broadcast to.
//   output_activation (relu or relu6; runtime/plan.cpp output_activation): the ReLU layer that
//   only reads the merge, computed by it: y = act(merge(x0, x1, ...)); the backward's dy is then
//   the activated output's, taken through act's derivative from that output first
//   (activation_gradient in ops/activation_math.h: [y > 0], [0 < y < 6]).
//   Concatenate: per `outer` index (the dimensions before the axis, batch included), input i's
//   block of inner[i] values follows input i-1's: y[o] = [x0[o], x1[o], ...].
#pragma once

#include <cstdint>
#include <vector>

#include "ops/activation.h"
#include "tensor.h"

namespace fastcnn {

enum class MergeKind { add, subtract, multiply, average, maximum, minimum, divide };

struct MergeParams {
  MergeKind kind = MergeKind::add;
  int64_t batch = 0;
  SampleShape output;
  std::vector<SampleShape> inputs;  // each dimension equal to output's or 1
  Activation output_activation = Activation::linear;  // linear, relu or relu6
};

struct ConcatenateParams {
  int64_t outer = 0;                // batch * the sample dimensions before the axis
  std::vector<int64_t> inner;       // per input: its extent along the axis * the dimensions after
  int64_t output_inner() const {
    int64_t total = 0;
    for (int64_t value : inner) total += value;
    return total;
  }
};

// The broadcast output shape of an elementwise merge; throws std::invalid_argument naming the
// shapes when a dimension differs and neither is 1.
SampleShape merge_output_shape(const std::vector<SampleShape>& inputs);

// The output shape of Concatenate along sample `axis` (0 height, 1 width, 2 channels): the inputs'
// extents along the axis summed, every other dimension equal in all inputs; throws
// std::invalid_argument naming the shapes (Keras's message) or the axis.
SampleShape concatenate_output_shape(const std::vector<SampleShape>& inputs, int64_t axis);

// Concatenate's params for `batch` samples along sample `axis` of inputs that
// concatenate_output_shape accepted.
ConcatenateParams make_concatenate_params(int64_t batch, const std::vector<SampleShape>& inputs, int64_t axis);

// Element `position` of an output sample (y, x, c) read from input `shape` (dimensions of 1 repeat).
inline int64_t broadcast_offset(const SampleShape& shape, int64_t y, int64_t x, int64_t c) {
  return ((shape.height == 1 ? 0 : y) * shape.width + (shape.width == 1 ? 0 : x)) * shape.channels +
         (shape.channels == 1 ? 0 : c);
}

}  // namespace fastcnn
