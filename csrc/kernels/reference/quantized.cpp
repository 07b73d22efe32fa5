// Reference int8 inference kernels: the formulas of ops/quantized.h as plain loops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/reference/reference.h"
#include "ops/activation_math.h"

namespace fastcnn::kernels::reference {

void quantize_int8(int64_t count, const float* input, float inverse_scale, int8_t* output) {
  for (int64_t i = 0; i < count; ++i) {
    // Clamped before rounding, as the vector tiers do; nearbyint rounds half to even (the default
    // rounding mode), as their float-to-int conversions do.
    const float scaled = std::min(std::max(input[i] * inverse_scale, -127.0f), 127.0f);
    output[i] = static_cast<int8_t>(std::nearbyint(scaled));
  }
}

void conv2d_int8_forward(const Conv2DParams& p, const int8_t* input, const int8_t* kernel,
                         int32_t* accumulators) {
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow)
        for (int64_t co = 0; co < p.output_channels; ++co) {
          int32_t sum = 0;
          for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
            const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
            if (ih < 0 || ih >= p.input_height) continue;
            for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
              const int64_t iw = ow * p.stride_width - p.pad_left + kw * p.dilation_width;
              if (iw < 0 || iw >= p.input_width) continue;
              for (int64_t ci = 0; ci < p.input_channels; ++ci) {
                sum += int32_t{input[((n * p.input_height + ih) * p.input_width + iw) * p.input_channels + ci]} *
                       int32_t{kernel[((kh * p.kernel_width + kw) * p.input_channels + ci) * p.output_channels + co]};
              }
            }
          }
          accumulators[((n * p.output_height + oh) * p.output_width + ow) * p.output_channels + co] = sum;
        }
}

void depthwise_conv2d_int8_forward(const DepthwiseConv2DParams& p, const int8_t* input, const int8_t* kernel,
                                   int32_t* accumulators) {
  const int64_t output_channels = p.output_channels();
  for (int64_t n = 0; n < p.batch; ++n)
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow)
        for (int64_t c = 0; c < p.channels; ++c)
          for (int64_t m = 0; m < p.depth_multiplier; ++m) {
            const int64_t co = c * p.depth_multiplier + m;
            int32_t sum = 0;
            for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
              const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
              if (ih < 0 || ih >= p.input_height) continue;
              for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
                const int64_t iw = ow * p.stride_width - p.pad_left + kw * p.dilation_width;
                if (iw < 0 || iw >= p.input_width) continue;
                sum += int32_t{input[((n * p.input_height + ih) * p.input_width + iw) * p.channels + c]} *
                       int32_t{kernel[(kh * p.kernel_width + kw) * output_channels + co]};
              }
            }
            accumulators[((n * p.output_height + oh) * p.output_width + ow) * output_channels + co] = sum;
          }
}

void conv2d_int8_dequantize_forward(const Conv2DParams& p, const int8_t* input, const int8_t* kernel,
                                    const float* column_scales, const float* bias, float* output) {
  std::vector<int32_t> accumulators(static_cast<size_t>(p.output_size()));
  conv2d_int8_forward(p, input, kernel, accumulators.data());
  DequantizeParams epilogue;
  epilogue.rows = p.batch * p.output_height * p.output_width;
  epilogue.columns = p.output_channels;
  epilogue.activation = p.activation;
  dequantize_int32(epilogue, accumulators.data(), column_scales, bias, output);
}

void dequantize_int32(const DequantizeParams& p, const int32_t* accumulators, const float* column_scales,
                      const float* bias, float* output) {
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t c = 0; c < p.columns; ++c) {
      const float value = static_cast<float>(accumulators[r * p.columns + c]) * column_scales[c] +
                          (bias != nullptr ? bias[c] : 0.0f);
      output[r * p.columns + c] = activate(p.activation, value);
    }
}

}  // namespace fastcnn::kernels::reference
