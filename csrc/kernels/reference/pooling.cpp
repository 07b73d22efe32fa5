// Reference MaxPooling2D: the formula of ops/pooling.h as plain loops.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/reference/reference.h"

namespace fastcnn::kernels::reference {
namespace {

// The input index of the first maximum of output position (n, oh, ow, c), row-major over the window.
int64_t window_argmax(const Pool2DParams& p, const float* input, int64_t n, int64_t oh, int64_t ow,
                      int64_t c) {
  int64_t best_index = -1;
  float best = -std::numeric_limits<float>::infinity();
  for (int64_t ph = 0; ph < p.pool_height; ++ph) {
    const int64_t ih = oh * p.stride_height - p.pad_top + ph;
    if (ih < 0 || ih >= p.input_height) continue;
    for (int64_t pw = 0; pw < p.pool_width; ++pw) {
      const int64_t iw = ow * p.stride_width - p.pad_left + pw;
      if (iw < 0 || iw >= p.input_width) continue;
      const int64_t index = ((n * p.input_height + ih) * p.input_width + iw) * p.channels + c;
      // NaN propagates: a NaN in the window is the maximum, as in TensorFlow.
      if (best_index < 0 || input[index] > best || (input[index] != input[index] && best == best)) {
        best = input[index];
        best_index = index;
      }
    }
  }
  return best_index;
}

}  // namespace

void max_pool2d_forward(const Pool2DParams& p, const float* input, float* output) {
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow)
        for (int64_t c = 0; c < p.channels; ++c) {
          const int64_t out = ((n * p.output_height + oh) * p.output_width + ow) * p.channels + c;
          output[out] = input[window_argmax(p, input, n, oh, ow, c)];
        }
}

void max_pool2d_backward(const Pool2DParams& p, const float* input, const float* output_gradient,
                         float* input_gradient) {
  std::fill(input_gradient, input_gradient + p.input_size(), 0.0f);
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow)
        for (int64_t c = 0; c < p.channels; ++c) {
          const int64_t out = ((n * p.output_height + oh) * p.output_width + ow) * p.channels + c;
          const int64_t argmax = window_argmax(p, input, n, oh, ow, c);
          if (p.relu_input && !(input[argmax] > 0.0f)) continue;  // the ReLU's derivative is 0 there
          input_gradient[argmax] += output_gradient[out];
        }
}

// output = mean of the window's positions inside the input (padding not counted).
void average_pool2d_forward(const Pool2DParams& p, const float* input, float* output) {
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow)
        for (int64_t c = 0; c < p.channels; ++c) {
          float sum = 0.0f;
          int64_t count = 0;
          for (int64_t ph = 0; ph < p.pool_height; ++ph)
            for (int64_t pw = 0; pw < p.pool_width; ++pw) {
              const int64_t ih = oh * p.stride_height - p.pad_top + ph;
              const int64_t iw = ow * p.stride_width - p.pad_left + pw;
              if (ih < 0 || ih >= p.input_height || iw < 0 || iw >= p.input_width) continue;
              sum += input[((n * p.input_height + ih) * p.input_width + iw) * p.channels + c];
              ++count;
            }
          output[((n * p.output_height + oh) * p.output_width + ow) * p.channels + c] = sum / static_cast<float>(count);
        }
}

// Each output's gradient is shared equally by the positions its window averaged.
void average_pool2d_backward(const Pool2DParams& p, const float* output_gradient,
                             float* input_gradient) {
  std::fill(input_gradient, input_gradient + p.input_size(), 0.0f);
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow) {
        int64_t count = 0;
        for (int64_t ph = 0; ph < p.pool_height; ++ph)
          for (int64_t pw = 0; pw < p.pool_width; ++pw) {
            const int64_t ih = oh * p.stride_height - p.pad_top + ph;
            const int64_t iw = ow * p.stride_width - p.pad_left + pw;
            if (ih >= 0 && ih < p.input_height && iw >= 0 && iw < p.input_width) ++count;
          }
        for (int64_t c = 0; c < p.channels; ++c) {
          const float share = output_gradient[((n * p.output_height + oh) * p.output_width + ow) * p.channels + c] /
                              static_cast<float>(count);
          for (int64_t ph = 0; ph < p.pool_height; ++ph)
            for (int64_t pw = 0; pw < p.pool_width; ++pw) {
              const int64_t ih = oh * p.stride_height - p.pad_top + ph;
              const int64_t iw = ow * p.stride_width - p.pad_left + pw;
              if (ih < 0 || ih >= p.input_height || iw < 0 || iw >= p.input_width) continue;
              input_gradient[((n * p.input_height + ih) * p.input_width + iw) * p.channels + c] += share;
            }
        }
      }
}

}  // namespace fastcnn::kernels::reference
