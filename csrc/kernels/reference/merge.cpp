// Reference merge kernels: one output element at a time, inputs read through broadcast_offset.
#include <cstring>
#include <vector>

#include "kernels/reference/reference.h"
#include "ops/activation_math.h"

namespace fastcnn::kernels::reference {

void merge_forward(const MergeParams& params, const float* const* inputs, float* output) {
  const SampleShape& out = params.output;
  const size_t count = params.inputs.size();
  for (int64_t n = 0; n < params.batch; ++n) {
    for (int64_t y = 0; y < out.height; ++y) {
      for (int64_t x = 0; x < out.width; ++x) {
        for (int64_t c = 0; c < out.channels; ++c) {
          auto value = [&](size_t i) {
            return inputs[i][n * params.inputs[i].size() + broadcast_offset(params.inputs[i], y, x, c)];
          };
          float result = value(0);
          for (size_t i = 1; i < count; ++i) {
            const float v = value(i);
            switch (params.kind) {
              case MergeKind::add:
              case MergeKind::average: result = result + v; break;
              case MergeKind::subtract: result = result - v; break;
              case MergeKind::multiply: result = result * v; break;
              case MergeKind::divide: result = result / v; break;
              // NaN propagates as in TensorFlow's maximum / minimum.
              case MergeKind::maximum: result = (result >= v || result != result) ? result : v; break;
              case MergeKind::minimum: result = (result <= v || result != result) ? result : v; break;
            }
          }
          if (params.kind == MergeKind::average) result = result / static_cast<float>(count);
          output[((n * out.height + y) * out.width + x) * out.channels + c] = activate(params.output_activation, result);
        }
      }
    }
  }
}

void merge_backward(const MergeParams& params, const float* const* inputs, const float* output,
                    const float* output_gradient, float* const* input_gradients) {
  const SampleShape& out = params.output;
  const size_t count = params.inputs.size();
  // A broadcast input's gradient is a sum over the positions it was broadcast to, from zero; any
  // other input's is its one term, written as it is (a -0 stays -0, as dx = dy says).
  std::vector<bool> summed(count, false);
  for (size_t i = 0; i < count; ++i) {
    const SampleShape& shape = params.inputs[i];
    summed[i] = shape.height != out.height || shape.width != out.width || shape.channels != out.channels;
    if (input_gradients[i] != nullptr && summed[i]) {
      std::memset(input_gradients[i], 0, sizeof(float) * static_cast<size_t>(params.batch * shape.size()));
    }
  }
  for (int64_t n = 0; n < params.batch; ++n) {
    for (int64_t y = 0; y < out.height; ++y) {
      for (int64_t x = 0; x < out.width; ++x) {
        for (int64_t c = 0; c < out.channels; ++c) {
          const int64_t at = ((n * out.height + y) * out.width + x) * out.channels + c;
          const float dy = params.output_activation == Activation::linear
                               ? output_gradient[at]
                               : activation_gradient(params.output_activation, 0.0f, output[at], output_gradient[at]);
          auto index = [&](size_t i) { return n * params.inputs[i].size() + broadcast_offset(params.inputs[i], y, x, c); };
          // The input that gives a maximum / minimum its value: the first one (ties to the earliest).
          size_t chosen = 0;
          if (params.kind == MergeKind::maximum || params.kind == MergeKind::minimum) {
            float best = inputs[0][index(0)];
            for (size_t i = 1; i < count; ++i) {
              const float v = inputs[i][index(i)];
              const bool keep = params.kind == MergeKind::maximum ? (best >= v || best != best) : (best <= v || best != best);
              if (!keep) {
                best = v;
                chosen = i;
              }
            }
          }
          for (size_t i = 0; i < count; ++i) {
            if (input_gradients[i] == nullptr) continue;
            float g = dy;
            switch (params.kind) {
              case MergeKind::add: break;
              case MergeKind::subtract: g = i == 0 ? dy : -dy; break;
              case MergeKind::average: g = dy / static_cast<float>(count); break;
              case MergeKind::multiply:
                for (size_t j = 0; j < count; ++j) {
                  if (j != i) g = g * inputs[j][index(j)];
                }
                break;
              case MergeKind::divide: {
                const float numerator = inputs[0][index(0)];
                const float denominator = inputs[1][index(1)];
                g = i == 0 ? dy / denominator : dy * ((-numerator / denominator) / denominator);
                break;
              }
              case MergeKind::maximum:
              case MergeKind::minimum: g = chosen == i ? dy : 0.0f; break;
            }
            if (summed[i]) {
              input_gradients[i][index(i)] += g;
            } else {
              input_gradients[i][index(i)] = g;
            }
          }
        }
      }
    }
  }
}

void concatenate_forward(const ConcatenateParams& params, const float* const* inputs, float* output) {
  const int64_t total = params.output_inner();
  for (int64_t o = 0; o < params.outer; ++o) {
    int64_t at = 0;
    for (size_t i = 0; i < params.inner.size(); ++i) {
      for (int64_t k = 0; k < params.inner[i]; ++k) output[o * total + at + k] = inputs[i][o * params.inner[i] + k];
      at += params.inner[i];
    }
  }
}

void concatenate_backward(const ConcatenateParams& params, const float* output_gradient, float* const* input_gradients) {
  const int64_t total = params.output_inner();
  for (int64_t o = 0; o < params.outer; ++o) {
    int64_t at = 0;
    for (size_t i = 0; i < params.inner.size(); ++i) {
      if (input_gradients[i] != nullptr) {
        for (int64_t k = 0; k < params.inner[i]; ++k) {
          input_gradients[i][o * params.inner[i] + k] = output_gradient[o * total + at + k];
        }
      }
      at += params.inner[i];
    }
  }
}

}  // namespace fastcnn::kernels::reference
