// Int8 Conv2D, DepthwiseConv2D and Dense inference layers (runtime/quantized_layers.h).
#include "runtime/quantized_layers.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ops/quantized.h"

namespace fastcnn::runtime {
namespace {

enum class Int8Kind { conv2d, dense, depthwise };

class Int8ConvolutionLayer final : public Int8Layer {
 public:
  // filters: a Conv2D's filters, a Dense layer's units (on the last axis of its input), a
  // DepthwiseConv2D's depth_multiplier.
  Int8ConvolutionLayer(Int8Kind kind, int64_t filters, int64_t kernel_height, int64_t kernel_width,
                       int64_t stride_height, int64_t stride_width, int64_t dilation_height, int64_t dilation_width,
                       Padding padding, bool use_bias, Activation activation)
      : kind_(kind), filters_(filters), kernel_height_(kernel_height), kernel_width_(kernel_width),
        stride_height_(stride_height), stride_width_(stride_width), dilation_height_(dilation_height),
        dilation_width_(dilation_width), padding_(padding), use_bias_(use_bias), activation_(activation) {}

  std::string kind() const override {
    return kind_ == Int8Kind::dense ? "Dense" : kind_ == Int8Kind::conv2d ? "Conv2D" : "DepthwiseConv2D";
  }
  Activation activation() const override { return activation_; }
  bool keeps_pre_activation() const override { return keeps_pre_activation_of(activation_); }

  SampleShape configure(const SampleShape& input) override {
    if (kind_ == Int8Kind::depthwise) {
      depthwise_ = make_depthwise_conv2d_params(1, input.height, input.width, input.channels, filters_, kernel_height_,
                                                kernel_width_, stride_height_, stride_width_, dilation_height_,
                                                dilation_width_, padding_, use_bias_, fused_activation());
      check_int8_depth(depthwise_);
      depth_ = int8_depth(depthwise_);
      columns_ = depthwise_.output_channels();
      return {depthwise_.output_height, depthwise_.output_width, columns_};
    }
    if (kind_ == Int8Kind::dense) {
      params_ = dense_as_conv2d(make_dense_params(1, input.channels, filters_, use_bias_, fused_activation()));
    } else {
      params_ = make_conv2d_params(1, input.height, input.width, input.channels, filters_, kernel_height_,
                                   kernel_width_, stride_height_, stride_width_, dilation_height_, dilation_width_,
                                   padding_, use_bias_, fused_activation());
    }
    check_int8_depth(params_);
    depth_ = int8_depth(params_);
    columns_ = filters_;
    if (kind_ == Int8Kind::dense) return {input.height, input.width, filters_};
    return {params_.output_height, params_.output_width, filters_};
  }

  std::vector<std::vector<int64_t>> parameter_shapes() const override {
    std::vector<std::vector<int64_t>> shapes;
    if (kind_ == Int8Kind::dense) {
      shapes.push_back({input_shape.channels, filters_});
    } else {
      shapes.push_back({kernel_height_, kernel_width_, input_shape.channels, filters_});
    }
    if (use_bias_) shapes.push_back({columns_});
    return shapes;
  }

  void quantize_weights(const float* parameters) override {
    quantize_kernel(parameters + parameter_offset);
    quantized_version_ = 0;  // quantized from the parameters outside a pass: matches no pass's version
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
    refuse_training(context);
    const float* kernel = context.parameters + parameter_offset;
    const float* bias = use_bias_ ? kernel + depth_ * columns_ : nullptr;
    compute(context, batch, input, kernel, bias, fused_activation(), keeps_pre_activation() ? pre_activation : output);
    if (keeps_pre_activation()) {
      context.kernels.activation_forward(activation_, rows(batch), columns_, pre_activation, output);
    }
  }

  // BatchNormalization folding (Layer::folds_batch_norm, runtime/plan.cpp): in inference passes the
  // network hands this layer its kernel with the BatchNormalization folded in, which it quantizes
  // in place of its own: the int8 weights are those of the folded kernel, as float32 inference
  // computes it.
  bool folds_batch_norm() const override { return activation_ == Activation::linear; }
  int64_t kernel_floats() const override { return depth_ * columns_; }
  void forward_folded(const StepContext& context, int64_t batch, const float* input, const float* kernels,
                      const float* bias, Activation activation, const float* residual, float* output) override {
    refuse_training(context);
    compute(context, batch, input, kernels, bias, activation, output);
  }

  void backward(const StepContext& context, int64_t batch, const float* input, const float* pre_activation,
                const float* output, float* output_gradient, bool gradient_is_pre_activation,
                float* input_gradient) override {
    refuse_training(context);
  }

 private:
  Activation fused_activation() const { return epilogue_activation(activation_); }
  // Output positions of a batch (Dense: every input position, as the float Dense layer).
  int64_t rows(int64_t batch) const {
    return batch * (kind_ == Int8Kind::depthwise ? depthwise_.output_height * depthwise_.output_width
                    : kind_ == Int8Kind::dense   ? input_shape.height * input_shape.width
                                                 : params_.output_height * params_.output_width);
  }
  void refuse_training(const StepContext& context) const {
    if (context.training) {
      throw std::logic_error("Layer #" + std::to_string(index) + " (" + kind() +
                             ") is quantized to int8: a quantized model runs inference only.");
    }
  }

  // Per output channel (column of the depth x columns kernel): scale = max |w| / 127, w_q = round(w / scale).
  void quantize_kernel(const float* kernel) {
    weight_scales_.assign(static_cast<size_t>(columns_), 0.0f);
    for (int64_t k = 0; k < depth_; ++k)
      for (int64_t c = 0; c < columns_; ++c) {
        weight_scales_[c] = std::max(weight_scales_[c], std::fabs(kernel[k * columns_ + c]));
      }
    for (float& scale : weight_scales_) {
      if (!std::isfinite(scale)) {
        throw std::invalid_argument("Cannot quantize layer #" + std::to_string(index) + " (" + kind() +
                                    "): its kernel holds a non-finite value.");
      }
      scale = scale > 0.0f ? scale / 127.0f : 1.0f;  // an all-zero column: any scale gives zeros
    }
    weights_.resize(static_cast<size_t>(depth_ * columns_));
    for (int64_t k = 0; k < depth_; ++k)
      for (int64_t c = 0; c < columns_; ++c) {
        const float scaled = kernel[k * columns_ + c] / weight_scales_[c];
        weights_[k * columns_ + c] = static_cast<int8_t>(std::nearbyint(std::min(std::max(scaled, -127.0f), 127.0f)));
      }
    quantized_from_ = kernel;
    ++weights_version_;  // the packed copy in kernel_cache_ (the optimised tiers') is stale
    update_column_scales();
  }
  void update_column_scales() {
    column_scales_.resize(weight_scales_.size());
    for (size_t c = 0; c < weight_scales_.size(); ++c) column_scales_[c] = input_scale_ * weight_scales_[c];
  }

  // destination = activation(layer(input; kernel) + bias): in float32 while calibrating (recording
  // the largest |input|), else in int8 with weights quantized from `kernel` (again when the kernel
  // or the parameters' version changed: the folded kernel lies elsewhere than the layer's own).
  void compute(const StepContext& context, int64_t batch, const float* input, const float* kernel, const float* bias,
               Activation activation, float* destination) {
    if (kernel != quantized_from_ || context.weights_version != quantized_version_) {
      quantize_kernel(kernel);
      quantized_version_ = context.weights_version;
    }
    Conv2DParams params = params_;
    DepthwiseConv2DParams depthwise = depthwise_;
    if (kind_ == Int8Kind::dense) {  // batch * height * width rows: the width of dense_as_conv2d's 1 x rows image
      params.input_width = params.output_width = batch * input_shape.height * input_shape.width;
    } else {
      params.batch = depthwise.batch = batch;
    }
    params.use_bias = depthwise.use_bias = bias != nullptr;
    params.activation = depthwise.activation = activation;
    const int64_t input_size = batch * input_shape.size();
    if (input_scale_ == 0.0f) {
      for (int64_t i = 0; i < input_size; ++i) {
        // A NaN input makes the maximum NaN, for good (std::max would skip it): calibration reports it.
        const float magnitude = std::fabs(input[i]);
        if (!(magnitude <= calibrated_maximum_) && !std::isnan(calibrated_maximum_)) calibrated_maximum_ = magnitude;
      }
      if (kind_ == Int8Kind::depthwise) {
        context.kernels.depthwise_conv2d_forward(depthwise, input, kernel, bias, destination);
      } else {
        context.kernels.conv2d_forward(params, input, kernel, bias, destination);
      }
      return;
    }
    quantized_input_.resize(static_cast<size_t>(input_size));
    context.kernels.quantize_int8(input_size, input, 1.0f / input_scale_, quantized_input_.data());
    if (kind_ != Int8Kind::depthwise) {
      params.kernel_cache = &kernel_cache_;
      params.weights_version = weights_version_;
      context.kernels.conv2d_int8_dequantize_forward(params, quantized_input_.data(), weights_.data(),
                                                     column_scales_.data(), bias, destination);
      return;
    }
    accumulators_.resize(static_cast<size_t>(rows(batch) * columns_));
    context.kernels.depthwise_conv2d_int8_forward(depthwise, quantized_input_.data(), weights_.data(),
                                                  accumulators_.data());
    DequantizeParams epilogue;
    epilogue.rows = rows(batch);
    epilogue.columns = columns_;
    epilogue.activation = activation;
    context.kernels.dequantize_int32(epilogue, accumulators_.data(), column_scales_.data(), bias, destination);
  }

  Int8Kind kind_;
  int64_t filters_, kernel_height_, kernel_width_, stride_height_, stride_width_, dilation_height_, dilation_width_;
  Padding padding_;
  bool use_bias_;
  Activation activation_;
  Conv2DParams params_;                   // Conv2D, Dense: batch 1 (Dense: a 1 x 1 image of one row)
  DepthwiseConv2DParams depthwise_;       // DepthwiseConv2D: batch 1
  int64_t depth_ = 0, columns_ = 0;       // the kernel as a depth x columns matrix
  std::vector<int8_t> weights_;
  const float* quantized_from_ = nullptr;  // the float kernel weights_ holds, at quantized_version_
  uint64_t quantized_version_ = 0;
  uint64_t weights_version_ = 0;          // incremented by each quantization (kernel_cache_'s key)
  PackedKernelCache kernel_cache_;
  std::vector<float> weight_scales_, column_scales_;
  float input_scale_ = 0.0f, calibrated_maximum_ = 0.0f;
  // Per-pass buffers, grown to the largest batch (a network runs one pass at a time).
  std::vector<int8_t> quantized_input_;
  std::vector<int32_t> accumulators_;  // DepthwiseConv2D's sums
};

}  // namespace

std::unique_ptr<Int8Layer> make_int8_conv2d(int64_t filters, int64_t kernel_height, int64_t kernel_width,
                                            int64_t stride_height, int64_t stride_width, int64_t dilation_height,
                                            int64_t dilation_width, Padding padding, bool use_bias,
                                            Activation activation) {
  return std::make_unique<Int8ConvolutionLayer>(Int8Kind::conv2d, filters, kernel_height, kernel_width, stride_height,
                                                stride_width, dilation_height, dilation_width, padding, use_bias,
                                                activation);
}

std::unique_ptr<Int8Layer> make_int8_dense(int64_t units, bool use_bias, Activation activation) {
  return std::make_unique<Int8ConvolutionLayer>(Int8Kind::dense, units, 1, 1, 1, 1, 1, 1, Padding::valid, use_bias, activation);
}

std::unique_ptr<Int8Layer> make_int8_depthwise_conv2d(int64_t depth_multiplier, int64_t kernel_height,
                                                      int64_t kernel_width, int64_t stride_height,
                                                      int64_t stride_width, int64_t dilation_height,
                                                      int64_t dilation_width, Padding padding, bool use_bias,
                                                      Activation activation) {
  return std::make_unique<Int8ConvolutionLayer>(Int8Kind::depthwise, depth_multiplier, kernel_height, kernel_width,
                                                stride_height, stride_width, dilation_height, dilation_width, padding,
                                                use_bias, activation);
}

}  // namespace fastcnn::runtime
