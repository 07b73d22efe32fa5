// Reference MaxPooling2D: the formula of ops/pooling.h as plain loops.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/reference/reference.h"

namespace fastcnn::kernels::reference {
namespace {

// The window offsets [begin, end) of output position `out` that fall inside the input: the loops
// visit only those (the same positions, in the same order, as testing every offset), so a window
// far larger than the input ('same' padding allows any size) costs no more than the input.
struct Span {
  int64_t begin, end;
};
inline Span inside(int64_t out, int64_t stride, int64_t pad, int64_t window, int64_t input) {
  const int64_t start = out * stride - pad;  // input index of window offset 0
  return {std::max<int64_t>(0, -start), std::min<int64_t>(window, input - start)};
}

// The input index of the first maximum of output position (n, oh, ow, c), row-major over the window.
int64_t window_argmax(const Pool2DParams& p, const float* input, int64_t n, int64_t oh, int64_t ow,
                      int64_t c) {
  int64_t best_index = -1;
  float best = -std::numeric_limits<float>::infinity();
  const Span rows = inside(oh, p.stride_height, p.pad_top, p.pool_height, p.input_height);
  const Span columns = inside(ow, p.stride_width, p.pad_left, p.pool_width, p.input_width);
  for (int64_t ph = rows.begin; ph < rows.end; ++ph) {
    const int64_t ih = oh * p.stride_height - p.pad_top + ph;
    if (ih < 0 || ih >= p.input_height) continue;
    for (int64_t pw = columns.begin; pw < columns.end; ++pw) {
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
          const int64_t argmax = window_argmax(p, input, n, oh, ow, c);
          output[out] = input[argmax];
          if (p.window_positions == nullptr) continue;
          const int64_t pixel = argmax / p.channels;
          const int64_t ih = pixel / p.input_width % p.input_height, iw = pixel % p.input_width;
          const int64_t row = ih - (oh * p.stride_height - p.pad_top), column = iw - (ow * p.stride_width - p.pad_left);
          const bool passes = !p.relu_input || input[argmax] > 0.0f;
          p.window_positions[out] = passes ? static_cast<uint8_t>(row * p.pool_width + column) : kNoWindowPosition;
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
          const Span rows = inside(oh, p.stride_height, p.pad_top, p.pool_height, p.input_height);
          const Span columns = inside(ow, p.stride_width, p.pad_left, p.pool_width, p.input_width);
          for (int64_t ph = rows.begin; ph < rows.end; ++ph)
            for (int64_t pw = columns.begin; pw < columns.end; ++pw) {
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
        const Span rows = inside(oh, p.stride_height, p.pad_top, p.pool_height, p.input_height);
        const Span columns = inside(ow, p.stride_width, p.pad_left, p.pool_width, p.input_width);
        for (int64_t ph = rows.begin; ph < rows.end; ++ph)
          for (int64_t pw = columns.begin; pw < columns.end; ++pw) {
            const int64_t ih = oh * p.stride_height - p.pad_top + ph;
            const int64_t iw = ow * p.stride_width - p.pad_left + pw;
            if (ih >= 0 && ih < p.input_height && iw >= 0 && iw < p.input_width) ++count;
          }
        for (int64_t c = 0; c < p.channels; ++c) {
          const float share = output_gradient[((n * p.output_height + oh) * p.output_width + ow) * p.channels + c] /
                              static_cast<float>(count);
          for (int64_t ph = rows.begin; ph < rows.end; ++ph)
            for (int64_t pw = columns.begin; pw < columns.end; ++pw) {
              const int64_t ih = oh * p.stride_height - p.pad_top + ph;
              const int64_t iw = ow * p.stride_width - p.pad_left + pw;
              if (ih < 0 || ih >= p.input_height || iw < 0 || iw >= p.input_width) continue;
              input_gradient[((n * p.input_height + ih) * p.input_width + iw) * p.channels + c] += share;
            }
        }
      }
}

// Conv2D + MaxPooling2D: literally the reference convolution into a buffer, then the reference
// pooling's first maximum of each window and its position in the window (when window_index is not null).
void conv2d_max_pool2d_forward(const Conv2DParams& c, const Pool2DParams& p, const float* input,
                               const float* kernel, const float* bias, float* output, uint8_t* window_index) {
  std::vector<float> convolution(static_cast<size_t>(c.output_size()));
  conv2d_forward(c, input, kernel, bias, convolution.data());
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow)
        for (int64_t ch = 0; ch < p.channels; ++ch) {
          const int64_t out = ((n * p.output_height + oh) * p.output_width + ow) * p.channels + ch;
          const int64_t argmax = window_argmax(p, convolution.data(), n, oh, ow, ch);
          const int64_t pixel = argmax / p.channels;
          const int64_t iw = pixel % p.input_width, ih = (pixel / p.input_width) % p.input_height;
          output[out] = convolution[static_cast<size_t>(argmax)];
          if (window_index != nullptr) window_index[out] = static_cast<uint8_t>((ih - oh * p.stride_height) * p.pool_width + (iw - ow * p.stride_width));
        }
}

// The convolution's output gradient, rebuilt from the windows' maxima, into the reference
// kernel gradient.
void conv2d_max_pool2d_backward_kernel(const Conv2DParams& c, const Pool2DParams& p, const float* input,
                                       const float* output, const uint8_t* window_index,
                                       const float* output_gradient, float* kernel_gradient, float* bias_gradient) {
  std::vector<float> gradient(static_cast<size_t>(c.output_size()), 0.0f);
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow)
        for (int64_t ch = 0; ch < p.channels; ++ch) {
          const int64_t out = ((n * p.output_height + oh) * p.output_width + ow) * p.channels + ch;
          if (c.activation == Activation::relu && !(output[out] > 0.0f)) continue;
          const int64_t ih = oh * p.stride_height + window_index[out] / p.pool_width;
          const int64_t iw = ow * p.stride_width + window_index[out] % p.pool_width;
          gradient[static_cast<size_t>(((n * p.input_height + ih) * p.input_width + iw) * p.channels + ch)] =
              output_gradient[out];
        }
  conv2d_backward_kernel(c, input, gradient.data(), kernel_gradient, bias_gradient);
}

}  // namespace fastcnn::kernels::reference
