// The kernel interface: one function-pointer table per implementation tier, all with the same
// signatures. `reference` is naive loops (the executable spec), `generic`, `avx2` and `avx512` are
// the optimised source compiled for plain x86-64 / any CPU, for AVX2+FMA and for AVX-512
// (F, BW, VL, DQ; 16-lane vectors). The runtime picks one
// table once (dispatch.cpp); tests run every table on the same inputs and compare.
//
// Contracts common to all kernels: pointers are dense NHWC float32 buffers of the sizes the params
// imply; outputs are overwritten (never accumulated into) unless the params ask for it
// (Conv2DParams::accumulate_input_gradient); input and output never alias unless a kernel says so;
// sizes were validated by ops/ (kernels only assert).
#pragma once

#include <cstdint>
#include <vector>

#include "ops/activation.h"
#include "ops/batch_norm.h"
#include "ops/conv2d.h"
#include "ops/dense.h"
#include "ops/depthwise_conv2d.h"
#include "ops/grouped_conv2d.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/merge.h"
#include "ops/noise.h"
#include "ops/parametric_activation.h"
#include "ops/normalization.h"
#include "ops/optimizer.h"
#include "ops/pooling.h"
#include "ops/upsampling.h"
#include "ops/quantized.h"

namespace fastcnn::kernels {

struct KernelTable {
  const char* name;

  // output = act(conv(input, kernel) + bias); bias may be null when !params.use_bias.
  void (*conv2d_forward)(const Conv2DParams& params, const float* input, const float* kernel,
                         const float* bias, float* output);
  // input_gradient = d(loss)/d(input) given d(loss)/d(pre-activation output).
  void (*conv2d_backward_input)(const Conv2DParams& params, const float* output_gradient,
                                const float* kernel, float* input_gradient);
  // kernel_gradient (and bias_gradient when not null) given d(loss)/d(pre-activation output).
  void (*conv2d_backward_kernel)(const Conv2DParams& params, const float* input,
                                 const float* output_gradient, float* kernel_gradient,
                                 float* bias_gradient);

  void (*dense_forward)(const DenseParams& params, const float* input, const float* kernel,
                        const float* bias, float* output);
  void (*dense_backward_input)(const DenseParams& params, const float* output_gradient,
                               const float* kernel, float* input_gradient);
  void (*dense_backward_kernel)(const DenseParams& params, const float* input,
                                const float* output_gradient, float* kernel_gradient,
                                float* bias_gradient);

  void (*max_pool2d_forward)(const Pool2DParams& params, const float* input, float* output);
  void (*max_pool2d_backward)(const Pool2DParams& params, const float* input,
                              const float* output_gradient, float* input_gradient);

  // Over `rows` rows of `columns` values (softmax normalises each row). In place allowed.
  void (*activation_forward)(Activation activation, int64_t rows, int64_t columns,
                             const float* input, float* output);
  // input_gradient from the activation's input (needed, non-null, only where
  // needs_pre_activation(activation)), its output and output_gradient. In place allowed
  // (input_gradient == output_gradient).
  void (*activation_backward)(Activation activation, int64_t rows, int64_t columns,
                              const float* input, const float* output,
                              const float* output_gradient, float* input_gradient);

  // mean and biased variance per channel.
  void (*batch_norm_statistics)(const BatchNormParams& params, const float* input, float* mean,
                                float* variance);
  // gamma / beta may be null (scale / center off: 1 / 0).
  void (*batch_norm_forward)(const BatchNormParams& params, const float* input, const float* mean,
                             const float* variance, const float* gamma, const float* beta,
                             float* output);
  // Gradients through batch statistics; gamma / gamma_gradient / beta_gradient may be null.
  void (*batch_norm_backward)(const BatchNormParams& params, const float* input, const float* mean,
                              const float* variance, const float* gamma,
                              const float* output_gradient, float* input_gradient,
                              float* gamma_gradient, float* beta_gradient);

  // Average pooling (padding excluded from each window's count, as TensorFlow's AvgPool).
  void (*average_pool2d_forward)(const Pool2DParams& params, const float* input, float* output);
  void (*average_pool2d_backward)(const Pool2DParams& params, const float* output_gradient,
                                  float* input_gradient);
  void (*zero_padding2d_forward)(const ZeroPadding2DParams& params, const float* input, float* output);
  void (*zero_padding2d_backward)(const ZeroPadding2DParams& params, const float* output_gradient,
                                  float* input_gradient);
  void (*relu_forward)(const ReluParams& params, const float* input, float* output);
  void (*relu_backward)(const ReluParams& params, const float* input, const float* output_gradient,
                        float* input_gradient);
  void (*rescaling)(const RescalingParams& params, const float* input, float* output);

  void (*dropout_forward)(const DropoutParams& params, const float* input, float* output);
  // In place allowed.
  void (*dropout_backward)(const DropoutParams& params, const float* output_gradient,
                           float* input_gradient);
  // ELU(alpha) layer (ops/parametric_activation.h); the backward pass reads the input.
  void (*elu_forward)(const EluParams& params, const float* input, float* output);
  void (*elu_backward)(const EluParams& params, const float* input, const float* output_gradient,
                       float* input_gradient);
  // PReLU: alpha broadcast over the shared axes. input_gradient and alpha_gradient may each be null
  // (not needed); alpha_gradient is overwritten with the sum over the batch and the shared axes.
  void (*prelu_forward)(const PReluParams& params, const float* input, const float* alpha, float* output);
  void (*prelu_backward)(const PReluParams& params, const float* input, const float* alpha,
                         const float* output_gradient, float* input_gradient, float* alpha_gradient);
  // Training-time noise (ops/noise.h): the backward pass recomputes the factors from the seed.
  void (*noise_forward)(const NoiseParams& params, const float* input, float* output);
  void (*noise_backward)(const NoiseParams& params, const float* output_gradient, float* input_gradient);

  // Conv2D then MaxPooling2D in one pass, for a pair that ops/pooling.h's
  // conv2d_max_pool2d_fusable accepts (pool.batch == conv.batch): output = max_pool(act(conv +
  // bias)), the convolution's output never stored. window_index (one byte per output element)
  // receives the row-major position in its window of the first maximum (the one max pooling's
  // gradient goes to); null (inference passes, which need no gradient): not written, and the
  // optimised tiers run a pair that conv2d_winograd_max_pool2d_fusable accepts as the Winograd
  // convolution of conv2d_forward with each output tile pooled as it is stored (bitwise
  // conv2d_forward then max_pool2d_forward).
  void (*conv2d_max_pool2d_forward)(const Conv2DParams& conv, const Pool2DParams& pool, const float* input,
                                    const float* kernel, const float* bias, float* output, uint8_t* window_index);
  // That convolution's kernel_gradient (and bias_gradient when not null) from the pooled output's
  // gradient: d(loss)/d(conv output) is output_gradient at each window's first maximum (times the
  // ReLU's derivative there, output > 0, when conv.activation is relu) and zero elsewhere.
  void (*conv2d_max_pool2d_backward_kernel)(const Conv2DParams& conv, const Pool2DParams& pool, const float* input,
                                            const float* output, const uint8_t* window_index,
                                            const float* output_gradient, float* kernel_gradient,
                                            float* bias_gradient);

  // Elementwise merges with broadcasting and Concatenate (ops/merge.h). input_gradients entries
  // may be null (that input needs no gradient); they are written, not accumulated. output (the
  // forward's, activated) is read only with an output activation.
  void (*merge_forward)(const MergeParams& params, const float* const* inputs, float* output);
  void (*merge_backward)(const MergeParams& params, const float* const* inputs, const float* output,
                         const float* output_gradient, float* const* input_gradients);
  void (*concatenate_forward)(const ConcatenateParams& params, const float* const* inputs, float* output);
  void (*concatenate_backward)(const ConcatenateParams& params, const float* output_gradient,
                               float* const* input_gradients);

  // DepthwiseConv2D (ops/depthwise_conv2d.h), with the contracts of the conv2d_* entries:
  // output = act(depthwise(input, kernel) + bias), bias (channels * depth_multiplier) may be null
  // when !params.use_bias; the backward kernels take d(loss)/d(pre-activation output).
  void (*depthwise_conv2d_forward)(const DepthwiseConv2DParams& params, const float* input, const float* kernel,
                                   const float* bias, float* output);
  void (*depthwise_conv2d_backward_input)(const DepthwiseConv2DParams& params, const float* output_gradient,
                                          const float* kernel, float* input_gradient);
  void (*depthwise_conv2d_backward_kernel)(const DepthwiseConv2DParams& params, const float* input,
                                           const float* output_gradient, float* kernel_gradient,
                                           float* bias_gradient);
  // Conv2D(groups=g) (ops/grouped_conv2d.h): kernel (kh, kw, Ci/g, Co); otherwise as conv2d_*.
  void (*grouped_conv2d_forward)(const GroupedConv2DParams& params, const float* input, const float* kernel,
                                 const float* bias, float* output);
  void (*grouped_conv2d_backward_input)(const GroupedConv2DParams& params, const float* output_gradient,
                                        const float* kernel, float* input_gradient);
  void (*grouped_conv2d_backward_kernel)(const GroupedConv2DParams& params, const float* input,
                                         const float* output_gradient, float* kernel_gradient,
                                         float* bias_gradient);
  // UpSampling2D (ops/upsampling.h): nearest or TensorFlow's half-pixel bilinear; the backward
  // kernel writes the whole input gradient.
  void (*upsampling2d_forward)(const UpSampling2DParams& params, const float* input, float* output);
  void (*upsampling2d_backward)(const UpSampling2DParams& params, const float* output_gradient,
                                float* input_gradient);

  // LayerNormalization and GroupNormalization (ops/normalization.h). The forward pass also writes,
  // per (o, k) (params.statistics_size() each), the mean and 1 / sqrt(variance + epsilon) the
  // backward pass reads. gamma / beta may be null (scale / center off: 1 / 0); so may
  // input_gradient, gamma_gradient and beta_gradient (not needed).
  void (*layer_norm_forward)(const LayerNormParams& params, const float* input, const float* gamma,
                             const float* beta, float* output, float* mean, float* inverse_std);
  void (*layer_norm_backward)(const LayerNormParams& params, const float* input, const float* mean,
                              const float* inverse_std, const float* gamma, const float* output_gradient,
                              float* input_gradient, float* gamma_gradient, float* beta_gradient);
  // Keras's Normalization (ops/normalization.h); mean null stands for zeros. In place allowed.
  void (*normalization_forward)(const NormalizationParams& params, const float* input, const float* mean,
                                const float* variance, float* output);

  // One optimizer step over params.count contiguous parameters (ops/optimizer.h): parameters and
  // the slot buffers the update uses are updated in place (the others may be null); gradients
  // receive the clipped gradient where the update clips.
  void (*optimizer_update)(const OptimizerUpdateParams& params, float* parameters, float* gradients,
                           float* first_slot, float* second_slot, float* third_slot);

  // ---- Int8 inference (ops/quantized.h) ----
  // output[i] = clamp(round_half_even(input[i] * inverse_scale), -127, 127).
  void (*quantize_int8)(int64_t count, const float* input, float inverse_scale, int8_t* output);
  // accumulators (batch, output_height, output_width, output_channels) = the convolution of the
  // int8 input with the int8 kernel (Keras layout), summed exactly in int32; params' use_bias and
  // activation are ignored. The depth must pass check_int8_depth. With params.kernel_cache and a
  // nonzero params.weights_version the optimised tiers keep their packed kernel there between calls.
  void (*conv2d_int8_forward)(const Conv2DParams& params, const int8_t* input, const int8_t* kernel,
                              int32_t* accumulators);
  // conv2d_int8_forward then dequantize_int32 (columns output_channels, params.activation, which
  // must be elementwise) in one call: output = act(sums * column_scales + bias), bias may be null.
  // The avx512 tier on a VNNI CPU dequantizes on the registers, never storing the int32 sums.
  void (*conv2d_int8_dequantize_forward)(const Conv2DParams& params, const int8_t* input, const int8_t* kernel,
                                         const float* column_scales, const float* bias, float* output);
  // accumulators (batch, output_height, output_width, channels * depth_multiplier) = the depthwise
  // convolution of the int8 input with the int8 kernel (Keras layout), exact in int32; params'
  // use_bias and activation are ignored. The depth (kernel_height * kernel_width) must pass
  // check_int8_depth.
  void (*depthwise_conv2d_int8_forward)(const DepthwiseConv2DParams& params, const int8_t* input,
                                        const int8_t* kernel, int32_t* accumulators);
  // output = act(accumulators * column_scales[column] + bias[column]); bias may be null.
  void (*dequantize_int32)(const DequantizeParams& params, const int32_t* accumulators, const float* column_scales,
                           const float* bias, float* output);
};

// A model output's loss (ops/loss.h): one implementation, shared by every table (it is
// O(batch*classes)). Exactly one of labels (batch; categorical cross-entropy only) and
// target_probabilities (batch x classes: the targets per unit) is non-null.
void loss(const LossParams& params, const float* predictions, const int32_t* labels,
          const float* target_probabilities, float* losses, float* input_gradient);

namespace reference { const KernelTable& table(); }
namespace generic { const KernelTable& table(); double fma_peak_probe(int64_t iterations); }
namespace avx2 { const KernelTable& table(); double fma_peak_probe(int64_t iterations); }
namespace avx512 { const KernelTable& table(); double fma_peak_probe(int64_t iterations); }

// The table in use: chosen on first call from the CPU and OS (avx512 where both support AVX-512,
// else avx2 where they support AVX2 and FMA, else generic), overridable with the environment
// variable FASTCNN_KERNELS=reference|generic|avx2|avx512.
const KernelTable& active();
// Switch tables at run time ("reference", "generic", "avx2", "avx512"); throws
// std::invalid_argument for an unknown name or one this CPU/build cannot run.
void select(const char* name);
// Names of the tables this build and CPU can run.
const char* const* available_names(int* count);
// A table by name (for tests comparing tiers); throws like select().
const KernelTable& by_name(const char* name);
// FLOPs of the pure-FMA peak probe of the tier `name` (its vector width), `iterations` rounds on
// every thread; throws like select(). "reference" runs the generic probe.
double fma_peak_probe(const char* name, int64_t iterations);

// Accumulating (Conv2DParams::accumulate_input_gradient) where a kernel's paths overwrite:
// compute(result) writes the `count` floats into scratch, then values[i] += result[i], one
// addition per element (bitwise old + result, as the kernels that add in their epilogue).
template <typename Compute>
void add_result_computed_apart(float* values, int64_t count, std::vector<float>& scratch, Compute compute) {
  scratch.resize(static_cast<size_t>(count));
  compute(scratch.data());
  for (int64_t i = 0; i < count; ++i) values[i] += scratch[static_cast<size_t>(i)];
}

}  // namespace fastcnn::kernels
