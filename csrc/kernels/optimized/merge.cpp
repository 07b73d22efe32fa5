// Optimised merge kernels (memory-bound): samples in parallel, contiguous vectorisable loops where
// no input broadcasts, channel rows where one does. Each gradient element is summed in the
// reference's order ((y, x) row-major within its sample), so results match it bitwise and do not
// depend on the thread count (denormals aside: parallel regions flush them to zero, parallel.h).
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/optimized/optimized.h"
#include "kernels/optimized/prefetch.h"
#include "ops/activation_math.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

bool same_shape(const SampleShape& a, const SampleShape& b) {
  return a.height == b.height && a.width == b.width && a.channels == b.channels;
}

inline float combine(MergeKind kind, float result, float v) {
  switch (kind) {
    case MergeKind::add:
    case MergeKind::average: return result + v;
    case MergeKind::subtract: return result - v;
    case MergeKind::multiply: return result * v;
    case MergeKind::divide: return result / v;
    case MergeKind::maximum: return (result >= v || result != result) ? result : v;
    case MergeKind::minimum: return (result <= v || result != result) ? result : v;
  }
  return result;
}

template <MergeKind kKind>
inline float combine_as(float result, float v) {
  return combine(kKind, result, v);
}

// dx = dy through a fused output activation's derivative at the activated output y
// (activation_gradient, ops/activation_math.h, its switch resolved at compile time so that the loop
// vectorises), written to `first` and, where not null, to `second` in the same pass.
template <Activation kActivation>
void activation_gradient_run(const float* y, const float* dy, int64_t count, float* __restrict first,
                             float* __restrict second) {
  if (second == nullptr) {
    for (int64_t k = 0; k < count; ++k) first[k] = activation_gradient(kActivation, 0.0f, y[k], dy[k]);
    return;
  }
  for (int64_t k = 0; k < count; ++k) first[k] = second[k] = activation_gradient(kActivation, 0.0f, y[k], dy[k]);
}
inline void activation_gradient_run(Activation activation, const float* y, const float* dy, int64_t count,
                                    float* first, float* second = nullptr) {
  if (activation == Activation::relu6) {
    activation_gradient_run<Activation::relu6>(y, dy, count, first, second);
  } else {
    activation_gradient_run<Activation::relu>(y, dy, count, first, second);
  }
}

// Two inputs whose channels are both full (the other dimensions may broadcast: a residual Add, a
// squeeze-and-excitation Multiply by (1, 1, C)): one pass, reading each input and writing the output
// once (the output activation applied to each row while it is in L1), over the batch's output rows
// in parallel (so a batch of one still uses every thread), in channel runs the compiler vectorises.
// The same operations as the general path, in its order: bitwise its results.
template <MergeKind kKind>
void merge_two_full_channels(const MergeParams& params, const float* first, const float* second, float* output) {
  const SampleShape &out = params.output, &a = params.inputs[0], &b = params.inputs[1];
  parallel::parallel_for(params.batch * out.height, [&](int64_t row) {
    const int64_t n = row / out.height, y = row % out.height;
    const float* a_sample = first + n * a.size();
    const float* b_sample = second + n * b.size();
    float* y_row = output + n * out.size() + y * out.width * out.channels;
    // Inputs of the output's shape (a residual Add's) are read ahead (prefetch.h).
    const int64_t ahead = prefetch_rows(out.channels);  // in pixels
    const bool a_full = same_shape(a, out), b_full = same_shape(b, out);
    for (int64_t x = 0; x < out.width; ++x) {
      const float* __restrict a_run = a_sample + broadcast_offset(a, y, x, 0);
      const float* __restrict b_run = b_sample + broadcast_offset(b, y, x, 0);
      float* __restrict y_run = y_row + x * out.channels;
      if (a_full) prefetch_floats(a_run, ahead * out.channels, out.channels);
      if (b_full) prefetch_floats(b_run, ahead * out.channels, out.channels);
      prefetch_floats(y_run, ahead * out.channels, out.channels, true);
      for (int64_t c = 0; c < out.channels; ++c) {
        const float value = combine_as<kKind>(a_run[c], b_run[c]);
        y_run[c] = kKind == MergeKind::average ? value / 2.0f : value;
      }
    }
    activate_in_place(params.output_activation, y_row, out.width * out.channels);
  });
}

}  // namespace

void merge_forward(const MergeParams& params, const float* const* inputs, float* output) {
  const SampleShape& out = params.output;
  const size_t count = params.inputs.size();
  const int64_t sample = out.size();
  if (count == 2 && params.inputs[0].channels == out.channels && params.inputs[1].channels == out.channels) {
    switch (params.kind) {
      case MergeKind::add: return merge_two_full_channels<MergeKind::add>(params, inputs[0], inputs[1], output);
      case MergeKind::average:
        return merge_two_full_channels<MergeKind::average>(params, inputs[0], inputs[1], output);
      case MergeKind::subtract:
        return merge_two_full_channels<MergeKind::subtract>(params, inputs[0], inputs[1], output);
      case MergeKind::multiply:
        return merge_two_full_channels<MergeKind::multiply>(params, inputs[0], inputs[1], output);
      case MergeKind::divide:
        return merge_two_full_channels<MergeKind::divide>(params, inputs[0], inputs[1], output);
      case MergeKind::maximum:
        return merge_two_full_channels<MergeKind::maximum>(params, inputs[0], inputs[1], output);
      case MergeKind::minimum:
        return merge_two_full_channels<MergeKind::minimum>(params, inputs[0], inputs[1], output);
    }
  }
  parallel::parallel_for(params.batch, [&](int64_t n) {
    float* y_row = output + n * sample;
    const float* first = inputs[0] + n * params.inputs[0].size();
    const bool first_full = same_shape(params.inputs[0], out);
    // Start from input 0 (broadcast when it is smaller), then fold in the others one at a time.
    if (first_full) {
      std::memcpy(y_row, first, sizeof(float) * static_cast<size_t>(sample));
    } else {
      for (int64_t y = 0; y < out.height; ++y)
        for (int64_t x = 0; x < out.width; ++x)
          for (int64_t c = 0; c < out.channels; ++c)
            y_row[(y * out.width + x) * out.channels + c] = first[broadcast_offset(params.inputs[0], y, x, c)];
    }
    for (size_t i = 1; i < count; ++i) {
      const SampleShape& shape = params.inputs[i];
      const float* source = inputs[i] + n * shape.size();
      if (same_shape(shape, out)) {
        switch (params.kind) {
          case MergeKind::add:
          case MergeKind::average:
            for (int64_t k = 0; k < sample; ++k) y_row[k] = y_row[k] + source[k];
            break;
          case MergeKind::subtract:
            for (int64_t k = 0; k < sample; ++k) y_row[k] = y_row[k] - source[k];
            break;
          case MergeKind::multiply:
            for (int64_t k = 0; k < sample; ++k) y_row[k] = y_row[k] * source[k];
            break;
          case MergeKind::divide:
            for (int64_t k = 0; k < sample; ++k) y_row[k] = y_row[k] / source[k];
            break;
          default:
            for (int64_t k = 0; k < sample; ++k) y_row[k] = combine(params.kind, y_row[k], source[k]);
        }
        continue;
      }
      for (int64_t y = 0; y < out.height; ++y) {
        for (int64_t x = 0; x < out.width; ++x) {
          float* row = y_row + (y * out.width + x) * out.channels;
          const float* source_row = source + broadcast_offset(shape, y, x, 0);
          if (shape.channels == 1) {
            const float v = source_row[0];
            for (int64_t c = 0; c < out.channels; ++c) row[c] = combine(params.kind, row[c], v);
          } else {
            for (int64_t c = 0; c < out.channels; ++c) row[c] = combine(params.kind, row[c], source_row[c]);
          }
        }
      }
    }
    if (params.kind == MergeKind::average) {
      for (int64_t k = 0; k < sample; ++k) y_row[k] = y_row[k] / static_cast<float>(count);
    }
    activate_in_place(params.output_activation, y_row, sample);
  });
}

void merge_backward(const MergeParams& params, const float* const* inputs, const float* output,
                    const float* output_gradient, float* const* input_gradients) {
  const SampleShape& out = params.output;
  const size_t count = params.inputs.size();
  const int64_t sample = out.size();
  const bool activated = params.output_activation != Activation::linear;
  bool every_input_full = true;
  for (const SampleShape& shape : params.inputs) every_input_full = every_input_full && same_shape(shape, out);
  parallel::parallel_for(params.batch, [&](int64_t n) {
    const float* dy = output_gradient + n * sample;
    const float* y_sample = activated ? output + n * sample : nullptr;
    if (activated && params.kind == MergeKind::add && every_input_full) {
      // A residual Add and its ReLU: every input's gradient is dy through the ReLU's derivative,
      // written two gradients per pass (a ReLU layer's backward pass and an Add's copies in one).
      float* pending = nullptr;
      for (size_t i = 0; i < count; ++i) {
        if (input_gradients[i] == nullptr) continue;
        float* dx = input_gradients[i] + n * sample;
        if (pending == nullptr) {
          pending = dx;
        } else {
          activation_gradient_run(params.output_activation, y_sample, dy, sample, pending, dx);
          pending = nullptr;
        }
      }
      if (pending != nullptr) activation_gradient_run(params.output_activation, y_sample, dy, sample, pending);
      return;
    }
    if (activated) {
      // The activation's derivative first, into this thread's buffer; the merge's rules then read it.
      thread_local std::vector<float> activated_gradient;
      activated_gradient.resize(static_cast<size_t>(sample));
      activation_gradient_run(params.output_activation, y_sample, dy, sample, activated_gradient.data());
      dy = activated_gradient.data();
    }
    for (size_t i = 0; i < count; ++i) {
      float* dx = input_gradients[i];
      if (dx == nullptr) continue;
      const SampleShape& shape = params.inputs[i];
      dx += n * shape.size();
      const bool full = same_shape(shape, out);
      if (full && (params.kind == MergeKind::add || (params.kind == MergeKind::subtract && i == 0))) {
        std::memcpy(dx, dy, sizeof(float) * static_cast<size_t>(sample));
        continue;
      }
      if (full && params.kind == MergeKind::subtract) {
        for (int64_t k = 0; k < sample; ++k) dx[k] = -dy[k];
        continue;
      }
      if (!full) std::memset(dx, 0, sizeof(float) * static_cast<size_t>(shape.size()));
      for (int64_t y = 0; y < out.height; ++y) {
        for (int64_t x = 0; x < out.width; ++x) {
          for (int64_t c = 0; c < out.channels; ++c) {
            const int64_t at = (y * out.width + x) * out.channels + c;
            float g = dy[at];
            switch (params.kind) {
              case MergeKind::add: break;
              case MergeKind::subtract: g = i == 0 ? g : -g; break;
              case MergeKind::average: g = g / static_cast<float>(count); break;
              case MergeKind::multiply:
                for (size_t j = 0; j < count; ++j) {
                  if (j != i) g = g * inputs[j][n * params.inputs[j].size() + broadcast_offset(params.inputs[j], y, x, c)];
                }
                break;
              case MergeKind::divide: {
                const float numerator = inputs[0][n * params.inputs[0].size() + broadcast_offset(params.inputs[0], y, x, c)];
                const float denominator =
                    inputs[1][n * params.inputs[1].size() + broadcast_offset(params.inputs[1], y, x, c)];
                g = i == 0 ? g / denominator : g * ((-numerator / denominator) / denominator);
                break;
              }
              case MergeKind::maximum:
              case MergeKind::minimum: {
                size_t chosen = 0;
                float best = inputs[0][n * params.inputs[0].size() + broadcast_offset(params.inputs[0], y, x, c)];
                for (size_t j = 1; j < count; ++j) {
                  const float v = inputs[j][n * params.inputs[j].size() + broadcast_offset(params.inputs[j], y, x, c)];
                  // The earlier value stays unless the later one is strictly better or it is NaN.
                  const bool keep = params.kind == MergeKind::maximum ? (best >= v || best != best)
                                                                      : (best <= v || best != best);
                  if (!keep) {
                    best = v;
                    chosen = j;
                  }
                }
                g = chosen == i ? g : 0.0f;
                break;
              }
            }
            const int64_t target = broadcast_offset(shape, y, x, c);
            if (full) {
              dx[target] = g;
            } else {
              dx[target] += g;
            }
          }
        }
      }
    }
  });
}

void concatenate_forward(const ConcatenateParams& params, const float* const* inputs, float* output) {
  const int64_t total = params.output_inner();
  parallel::parallel_for(params.outer, [&](int64_t o) {
    float* destination = output + o * total;
    for (size_t i = 0; i < params.inner.size(); ++i) {
      std::memcpy(destination, inputs[i] + o * params.inner[i], sizeof(float) * static_cast<size_t>(params.inner[i]));
      destination += params.inner[i];
    }
  });
}

void concatenate_backward(const ConcatenateParams& params, const float* output_gradient, float* const* input_gradients) {
  const int64_t total = params.output_inner();
  parallel::parallel_for(params.outer, [&](int64_t o) {
    const float* source = output_gradient + o * total;
    for (size_t i = 0; i < params.inner.size(); ++i) {
      if (input_gradients[i] != nullptr) {
        std::memcpy(input_gradients[i] + o * params.inner[i], source, sizeof(float) * static_cast<size_t>(params.inner[i]));
      }
      source += params.inner[i];
    }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
