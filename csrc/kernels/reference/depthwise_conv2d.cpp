// Reference DepthwiseConv2D and grouped Conv2D: the formulas of ops/depthwise_conv2d.h and
// ops/grouped_conv2d.h as plain loops, one output element at a time.
#include <algorithm>
#include <cstdint>

#include "kernels/reference/reference.h"
#include "ops/activation_math.h"

namespace fastcnn::kernels::reference {
namespace {

inline int64_t nhwc(int64_t n, int64_t h, int64_t w, int64_t c, int64_t height, int64_t width, int64_t channels) {
  return ((n * height + h) * width + w) * channels + c;
}

}  // namespace

// output[n, oh, ow, c*dm + m] = act(bias[c*dm + m] + sum_{kh, kw} input[n, ih, iw, c] * kernel[kh, kw, c, m])
void depthwise_conv2d_forward(const DepthwiseConv2DParams& p, const float* input, const float* kernel,
                              const float* bias, float* output) {
  const int64_t dm = p.depth_multiplier, out_channels = p.output_channels();
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow)
        for (int64_t c = 0; c < p.channels; ++c)
          for (int64_t m = 0; m < dm; ++m) {
            const int64_t o = c * dm + m;
            float sum = p.use_bias ? bias[o] : 0.0f;
            for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
              const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
              if (ih < 0 || ih >= p.input_height) continue;
              for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
                const int64_t iw = ow * p.stride_width - p.pad_left + kw * p.dilation_width;
                if (iw < 0 || iw >= p.input_width) continue;
                sum += input[nhwc(n, ih, iw, c, p.input_height, p.input_width, p.channels)] *
                       kernel[(kh * p.kernel_width + kw) * out_channels + o];
              }
            }
            output[nhwc(n, oh, ow, o, p.output_height, p.output_width, out_channels)] = activate(p.activation, sum);
          }
}

// d input[n, ih, iw, c] = sum over (oh, ow, kh, kw) that read it, and m, of
//                         d output[n, oh, ow, c*dm + m] * kernel[kh, kw, c, m].
void depthwise_conv2d_backward_input(const DepthwiseConv2DParams& p, const float* output_gradient,
                                     const float* kernel, float* input_gradient) {
  const int64_t dm = p.depth_multiplier, out_channels = p.output_channels();
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
            for (int64_t c = 0; c < p.channels; ++c) {
              float sum = 0.0f;
              for (int64_t m = 0; m < dm; ++m) {
                const int64_t o = c * dm + m;
                sum += output_gradient[nhwc(n, oh, ow, o, p.output_height, p.output_width, out_channels)] *
                       kernel[(kh * p.kernel_width + kw) * out_channels + o];
              }
              input_gradient[nhwc(n, ih, iw, c, p.input_height, p.input_width, p.channels)] += sum;
            }
          }
        }
}

// d kernel[kh, kw, c, m] = sum over (n, oh, ow) of input[n, ih, iw, c] * d output[n, oh, ow, c*dm + m];
// d bias[o] = sum over (n, oh, ow) of d output[n, oh, ow, o].
void depthwise_conv2d_backward_kernel(const DepthwiseConv2DParams& p, const float* input,
                                      const float* output_gradient, float* kernel_gradient, float* bias_gradient) {
  const int64_t dm = p.depth_multiplier, out_channels = p.output_channels();
  std::fill(kernel_gradient, kernel_gradient + p.kernel_size(), 0.0f);
  if (bias_gradient != nullptr) std::fill(bias_gradient, bias_gradient + out_channels, 0.0f);
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow) {
        const float* gradient_row = output_gradient + nhwc(n, oh, ow, 0, p.output_height, p.output_width, out_channels);
        if (bias_gradient != nullptr) {
          for (int64_t o = 0; o < out_channels; ++o) bias_gradient[o] += gradient_row[o];
        }
        for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
          const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
          if (ih < 0 || ih >= p.input_height) continue;
          for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
            const int64_t iw = ow * p.stride_width - p.pad_left + kw * p.dilation_width;
            if (iw < 0 || iw >= p.input_width) continue;
            float* kernel_row = kernel_gradient + (kh * p.kernel_width + kw) * out_channels;
            for (int64_t o = 0; o < out_channels; ++o) {
              kernel_row[o] += input[nhwc(n, ih, iw, o / dm, p.input_height, p.input_width, p.channels)] *
                               gradient_row[o];
            }
          }
        }
      }
}

}  // namespace fastcnn::kernels::reference
