// Reference grouped Conv2D: the formula of ops/grouped_conv2d.h as plain loops. Output channel co
// belongs to group g = co / (Co/g) and reads input channels g * (Ci/g) + i, i < Ci/g, through
// kernel[kh, kw, i, co].
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/reference/reference.h"
#include "ops/activation_math.h"

namespace fastcnn::kernels::reference {
namespace {

inline int64_t nhwc(int64_t n, int64_t h, int64_t w, int64_t c, int64_t height, int64_t width, int64_t channels) {
  return ((n * height + h) * width + w) * channels + c;
}

}  // namespace

void grouped_conv2d_forward(const GroupedConv2DParams& gp, const float* input, const float* kernel,
                            const float* bias, float* output) {
  if (convolve_then_max_pool(gp.conv, output, [&](const Conv2DParams& convolution, float* result) {
        GroupedConv2DParams convolution_only = gp;
        convolution_only.conv = convolution;
        grouped_conv2d_forward(convolution_only, input, kernel, bias, result);
      })) {
    return;
  }
  const Conv2DParams& p = gp.conv;
  const int64_t group_in = gp.group_input_channels(), group_out = gp.group_output_channels();
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow)
        for (int64_t co = 0; co < p.output_channels; ++co) {
          const int64_t first_input_channel = (co / group_out) * group_in;
          float sum = p.use_bias ? bias[co] : 0.0f;
          for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
            const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
            if (ih < 0 || ih >= p.input_height) continue;
            for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
              const int64_t iw = ow * p.stride_width - p.pad_left + kw * p.dilation_width;
              if (iw < 0 || iw >= p.input_width) continue;
              for (int64_t i = 0; i < group_in; ++i) {
                sum += input[nhwc(n, ih, iw, first_input_channel + i, p.input_height, p.input_width,
                                  p.input_channels)] *
                       kernel[nhwc(kh, kw, i, co, p.kernel_width, group_in, p.output_channels)];
              }
            }
          }
          const int64_t index = nhwc(n, oh, ow, co, p.output_height, p.output_width, p.output_channels);
          output[index] = conv2d_epilogue(p, sum, index, co);
        }
}

// d input[n, ih, iw, g*Ci/g + i] = sum over (oh, ow, kh, kw) that read it and co of group g of
//                                  d output[n, oh, ow, co] * kernel[kh, kw, i, co].
void grouped_conv2d_backward_input(const GroupedConv2DParams& gp, const float* output_gradient,
                                   const float* kernel, float* input_gradient) {
  const Conv2DParams& p = gp.conv;
  if (p.accumulate_input_gradient) {  // the gradient's own sum first, then added to the old values
    GroupedConv2DParams overwrite = gp;
    overwrite.conv.accumulate_input_gradient = false;
    std::vector<float> own;
    add_result_computed_apart(input_gradient, p.input_size(), own, [&](float* result) {
      grouped_conv2d_backward_input(overwrite, output_gradient, kernel, result);
    });
    return;
  }
  const int64_t group_in = gp.group_input_channels(), group_out = gp.group_output_channels();
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
              const int64_t group = ci / group_in, i = ci % group_in;
              float sum = 0.0f;
              for (int64_t co = group * group_out; co < (group + 1) * group_out; ++co) {
                sum += output_gradient[nhwc(n, oh, ow, co, p.output_height, p.output_width, p.output_channels)] *
                       kernel[nhwc(kh, kw, i, co, p.kernel_width, group_in, p.output_channels)];
              }
              input_gradient[nhwc(n, ih, iw, ci, p.input_height, p.input_width, p.input_channels)] += sum;
            }
          }
        }
}

// d kernel[kh, kw, i, co] = sum over (n, oh, ow) of input[n, ih, iw, g*Ci/g + i] * d output[n, oh, ow, co],
// g = co / (Co/g); d bias[co] = sum over (n, oh, ow) of d output[n, oh, ow, co].
void grouped_conv2d_backward_kernel(const GroupedConv2DParams& gp, const float* input,
                                    const float* output_gradient, float* kernel_gradient, float* bias_gradient) {
  const Conv2DParams& p = gp.conv;
  const int64_t group_in = gp.group_input_channels(), group_out = gp.group_output_channels();
  std::fill(kernel_gradient, kernel_gradient + gp.kernel_size(), 0.0f);
  if (bias_gradient != nullptr) std::fill(bias_gradient, bias_gradient + p.output_channels, 0.0f);
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow) {
        const float* gradient_row =
            output_gradient + nhwc(n, oh, ow, 0, p.output_height, p.output_width, p.output_channels);
        if (bias_gradient != nullptr) {
          for (int64_t co = 0; co < p.output_channels; ++co) bias_gradient[co] += gradient_row[co];
        }
        for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
          const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
          if (ih < 0 || ih >= p.input_height) continue;
          for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
            const int64_t iw = ow * p.stride_width - p.pad_left + kw * p.dilation_width;
            if (iw < 0 || iw >= p.input_width) continue;
            for (int64_t co = 0; co < p.output_channels; ++co) {
              const int64_t first_input_channel = (co / group_out) * group_in;
              for (int64_t i = 0; i < group_in; ++i) {
                kernel_gradient[nhwc(kh, kw, i, co, p.kernel_width, group_in, p.output_channels)] +=
                    input[nhwc(n, ih, iw, first_input_channel + i, p.input_height, p.input_width,
                               p.input_channels)] *
                    gradient_row[co];
              }
            }
          }
        }
      }
}

}  // namespace fastcnn::kernels::reference
