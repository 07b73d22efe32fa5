// Reference Conv2D: the formula of ops/conv2d.h as plain loops, one output element at a time.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/reference/reference.h"
#include "ops/activation_math.h"

namespace fastcnn::kernels::reference {
namespace {

// Index of input[n, h, w, c] and friends in dense NHWC / HWIO layouts.
inline int64_t nhwc(int64_t n, int64_t h, int64_t w, int64_t c, int64_t height, int64_t width,
                    int64_t channels) {
  return ((n * height + h) * width + w) * channels + c;
}

}  // namespace

void conv2d_forward(const Conv2DParams& p, const float* input, const float* kernel,
                    const float* bias, float* output) {
  if (convolve_then_max_pool(p, output, [&](const Conv2DParams& convolution, float* result) {
        conv2d_forward(convolution, input, kernel, bias, result);
      })) {
    return;
  }
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow)
        for (int64_t co = 0; co < p.output_channels; ++co) {
          float sum = p.use_bias ? bias[co] : 0.0f;
          for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
            const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
            if (ih < 0 || ih >= p.input_height) continue;
            for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
              const int64_t iw = ow * p.stride_width - p.pad_left + kw * p.dilation_width;
              if (iw < 0 || iw >= p.input_width) continue;
              for (int64_t ci = 0; ci < p.input_channels; ++ci) {
                sum += input[nhwc(n, ih, iw, ci, p.input_height, p.input_width, p.input_channels)] *
                       kernel[nhwc(kh, kw, ci, co, p.kernel_width, p.input_channels,
                                   p.output_channels)];
              }
            }
          }
          const int64_t index = nhwc(n, oh, ow, co, p.output_height, p.output_width, p.output_channels);
          output[index] = conv2d_epilogue(p, sum, index, co);
        }
}

// d input[n, ih, iw, ci] = sum over (oh, ow, kh, kw) that read it of
//                          d output[n, oh, ow, co] * kernel[kh, kw, ci, co].
void conv2d_backward_input(const Conv2DParams& p, const float* output_gradient,
                           const float* kernel, float* input_gradient) {
  if (p.accumulate_input_gradient) {  // the gradient's own sum first, then added to the old values
    Conv2DParams overwrite = p;
    overwrite.accumulate_input_gradient = false;
    std::vector<float> own;
    add_result_computed_apart(input_gradient, p.input_size(), own, [&](float* result) {
      conv2d_backward_input(overwrite, output_gradient, kernel, result);
    });
    return;
  }
  std::fill(input_gradient, input_gradient + p.input_size(), 0.0f);
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow)
        for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
          const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
          if (ih < 0 || ih >= p.input_height) continue;
          for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
            const int64_t iw = ow * p.stride_width - p.pad_left + kw * p.dilation_width;
            if (iw < 0 || iw >= p.input_width) continue;
            for (int64_t ci = 0; ci < p.input_channels; ++ci) {
              float sum = 0.0f;
              for (int64_t co = 0; co < p.output_channels; ++co) {
                sum += output_gradient[nhwc(n, oh, ow, co, p.output_height, p.output_width,
                                            p.output_channels)] *
                       kernel[nhwc(kh, kw, ci, co, p.kernel_width, p.input_channels,
                                   p.output_channels)];
              }
              input_gradient[nhwc(n, ih, iw, ci, p.input_height, p.input_width,
                                  p.input_channels)] += sum;
            }
          }
        }
}

// d kernel[kh, kw, ci, co] = sum over (n, oh, ow) of input[n, ih, iw, ci] * d output[n, oh, ow, co];
// d bias[co] = sum over (n, oh, ow) of d output[n, oh, ow, co].
void conv2d_backward_kernel(const Conv2DParams& p, const float* input,
                            const float* output_gradient, float* kernel_gradient,
                            float* bias_gradient) {
  std::fill(kernel_gradient, kernel_gradient + p.kernel_size(), 0.0f);
  if (bias_gradient != nullptr) std::fill(bias_gradient, bias_gradient + p.output_channels, 0.0f);
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow) {
        const float* gradient_row =
            output_gradient +
            nhwc(n, oh, ow, 0, p.output_height, p.output_width, p.output_channels);
        if (bias_gradient != nullptr) {
          for (int64_t co = 0; co < p.output_channels; ++co) bias_gradient[co] += gradient_row[co];
        }
        for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
          const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
          if (ih < 0 || ih >= p.input_height) continue;
          for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
            const int64_t iw = ow * p.stride_width - p.pad_left + kw * p.dilation_width;
            if (iw < 0 || iw >= p.input_width) continue;
            for (int64_t ci = 0; ci < p.input_channels; ++ci) {
              const float x =
                  input[nhwc(n, ih, iw, ci, p.input_height, p.input_width, p.input_channels)];
              float* kernel_row = kernel_gradient + nhwc(kh, kw, ci, 0, p.kernel_width,
                                                         p.input_channels, p.output_channels);
              for (int64_t co = 0; co < p.output_channels; ++co) kernel_row[co] += x * gradient_row[co];
            }
          }
        }
      }
}

}  // namespace fastcnn::kernels::reference
