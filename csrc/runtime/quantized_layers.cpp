// Int8 Conv2D and Dense inference layers (runtime/quantized_layers.h).
#include "runtime/quantized_layers.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ops/quantized.h"

namespace fastcnn::runtime {
namespace {

class Int8ConvolutionLayer final : public Int8Layer {
 public:
  // dense: a Dense layer (units = filters, on the last axis of its input), else a Conv2D.
  Int8ConvolutionLayer(bool dense, int64_t filters, int64_t kernel_height, int64_t kernel_width,
                       int64_t stride_height, int64_t stride_width, int64_t dilation_height, int64_t dilation_width,
                       Padding padding, bool use_bias, Activation activation)
      : dense_(dense), filters_(filters), kernel_height_(kernel_height), kernel_width_(kernel_width),
        stride_height_(stride_height), stride_width_(stride_width), dilation_height_(dilation_height),
        dilation_width_(dilation_width), padding_(padding), use_bias_(use_bias), activation_(activation) {}

  std::string kind() const override { return dense_ ? "Dense" : "Conv2D"; }
  Activation activation() const override { return activation_; }
  bool keeps_pre_activation() const override { return keeps_pre_activation_of(activation_); }

  SampleShape configure(const SampleShape& input) override {
    if (dense_) {
      params_ = dense_as_conv2d(make_dense_params(1, input.channels, filters_, use_bias_, fused_activation()));
      check_int8_depth(params_);
      return {input.height, input.width, filters_};
    }
    params_ = make_conv2d_params(1, input.height, input.width, input.channels, filters_, kernel_height_,
                                 kernel_width_, stride_height_, stride_width_, dilation_height_, dilation_width_,
                                 padding_, use_bias_, fused_activation());
    check_int8_depth(params_);
    return {params_.output_height, params_.output_width, filters_};
  }

  std::vector<std::vector<int64_t>> parameter_shapes() const override {
    std::vector<std::vector<int64_t>> shapes;
    if (dense_) {
      shapes.push_back({input_shape.channels, filters_});
    } else {
      shapes.push_back({kernel_height_, kernel_width_, input_shape.channels, filters_});
    }
    if (use_bias_) shapes.push_back({filters_});
    return shapes;
  }

  void quantize_weights(const float* parameters) override {
    const float* kernel = parameters + parameter_offset;
    const int64_t depth = int8_depth(params_), columns = filters_;
    weight_scales_.assign(static_cast<size_t>(columns), 0.0f);
    for (int64_t k = 0; k < depth; ++k)
      for (int64_t c = 0; c < columns; ++c) {
        weight_scales_[c] = std::max(weight_scales_[c], std::fabs(kernel[k * columns + c]));
      }
    for (float& scale : weight_scales_) {
      if (!std::isfinite(scale)) {
        throw std::invalid_argument("Cannot quantize layer #" + std::to_string(index) + " (" + kind() +
                                    "): its kernel holds a non-finite value.");
      }
      scale = scale > 0.0f ? scale / 127.0f : 1.0f;  // an all-zero column: any scale gives zeros
    }
    weights_.resize(static_cast<size_t>(depth * columns));
    for (int64_t k = 0; k < depth; ++k)
      for (int64_t c = 0; c < columns; ++c) {
        const float scaled = kernel[k * columns + c] / weight_scales_[c];
        weights_[k * columns + c] = static_cast<int8_t>(std::nearbyint(std::min(std::max(scaled, -127.0f), 127.0f)));
      }
    ++weights_version_;  // the packed copy in kernel_cache_ (the optimised tiers') is stale
    update_column_scales();
  }

  float calibrated_maximum() const override { return calibrated_maximum_; }

  void set_input_scale(float scale) override {
    if (!(scale > 0.0f) || !std::isfinite(scale)) {
      throw std::invalid_argument("The input scale of layer #" + std::to_string(index) + " (" + kind() +
                                  ") must be positive and finite. Received: " + std::to_string(scale));
    }
    input_scale_ = scale;
    update_column_scales();
  }
  float input_scale() const override { return input_scale_; }
  const std::vector<float>& weight_scales() const override { return weight_scales_; }

  void forward(const StepContext& context, int64_t batch, const float* input, float* pre_activation,
               float* output) override {
    if (context.training) {
      throw std::logic_error("Layer #" + std::to_string(index) + " (" + kind() +
                             ") is quantized to int8: a quantized model runs inference only.");
    }
    Conv2DParams params = params_;
    if (dense_) {  // batch * height * width rows: the width of dense_as_conv2d's 1 x rows image
      params.input_width = params.output_width = batch * input_shape.height * input_shape.width;
    } else {
      params.batch = batch;
    }
    const int64_t rows = params.batch * params.output_height * params.output_width;
    const float* kernel = context.parameters + parameter_offset;
    const float* bias = use_bias_ ? kernel + int8_depth(params_) * filters_ : nullptr;
    float* destination = keeps_pre_activation() ? pre_activation : output;
    if (input_scale_ == 0.0f) {
      const int64_t count = batch * input_shape.size();
      for (int64_t i = 0; i < count; ++i) {
        // A NaN input makes the maximum NaN, for good (std::max would skip it): calibration reports it.
        const float magnitude = std::fabs(input[i]);
        if (!(magnitude <= calibrated_maximum_) && !std::isnan(calibrated_maximum_)) calibrated_maximum_ = magnitude;
      }
      context.kernels.conv2d_forward(params, input, kernel, bias, destination);
    } else {
      quantized_input_.resize(static_cast<size_t>(params.input_size()));
      accumulators_.resize(static_cast<size_t>(params.output_size()));
      context.kernels.quantize_int8(params.input_size(), input, 1.0f / input_scale_, quantized_input_.data());
      params.kernel_cache = &kernel_cache_;
      params.weights_version = weights_version_;
      context.kernels.conv2d_int8_forward(params, quantized_input_.data(), weights_.data(), accumulators_.data());
      DequantizeParams epilogue;
      epilogue.rows = rows;
      epilogue.columns = filters_;
      epilogue.activation = fused_activation();
      context.kernels.dequantize_int32(epilogue, accumulators_.data(), column_scales_.data(), bias, destination);
    }
    if (keeps_pre_activation()) {
      context.kernels.activation_forward(activation_, rows, filters_, pre_activation, output);
    }
  }

  void backward(const StepContext& context, int64_t batch, const float* input, const float* pre_activation,
                const float* output, float* output_gradient, bool gradient_is_pre_activation,
                float* input_gradient) override {
    throw std::logic_error("Layer #" + std::to_string(index) + " (" + kind() +
                           ") is quantized to int8: a quantized model runs inference only.");
  }

 private:
  Activation fused_activation() const { return epilogue_activation(activation_); }
  void update_column_scales() {
    column_scales_.resize(weight_scales_.size());
    for (size_t c = 0; c < weight_scales_.size(); ++c) column_scales_[c] = input_scale_ * weight_scales_[c];
  }

  bool dense_;
  int64_t filters_, kernel_height_, kernel_width_, stride_height_, stride_width_, dilation_height_, dilation_width_;
  Padding padding_;
  bool use_bias_;
  Activation activation_;
  Conv2DParams params_;  // batch 1 (Dense: a 1 x 1 image of one row)
  std::vector<int8_t> weights_;
  uint64_t weights_version_ = 0;  // incremented by each quantize_weights
  PackedKernelCache kernel_cache_;
  std::vector<float> weight_scales_, column_scales_;
  float input_scale_ = 0.0f, calibrated_maximum_ = 0.0f;
  // Per-pass buffers, grown to the largest batch (a network runs one pass at a time).
  std::vector<int8_t> quantized_input_;
  std::vector<int32_t> accumulators_;
};

}  // namespace

std::unique_ptr<Int8Layer> make_int8_conv2d(int64_t filters, int64_t kernel_height, int64_t kernel_width,
                                            int64_t stride_height, int64_t stride_width, int64_t dilation_height,
                                            int64_t dilation_width, Padding padding, bool use_bias,
                                            Activation activation) {
  return std::make_unique<Int8ConvolutionLayer>(false, filters, kernel_height, kernel_width, stride_height,
                                                stride_width, dilation_height, dilation_width, padding, use_bias,
                                                activation);
}

std::unique_ptr<Int8Layer> make_int8_dense(int64_t units, bool use_bias, Activation activation) {
  return std::make_unique<Int8ConvolutionLayer>(true, units, 1, 1, 1, 1, 1, 1, Padding::valid, use_bias, activation);
}

}  // namespace fastcnn::runtime
