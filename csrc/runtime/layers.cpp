#include "runtime/layers.h"

#include "ops/checked.h"

#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

namespace fastcnn::runtime {
namespace {


// Layers whose kernels fuse an elementwise activation, with softmax applied apart. Shared by
// Conv2D and Dense: forward writes logits then softmax when needed; backward turns the output
// gradient into the pre-activation gradient in place.
class ActivatedLayer : public Layer {
 public:
  explicit ActivatedLayer(Activation activation) : activation_(activation) {}
  Activation activation() const override { return activation_; }
  bool keeps_pre_activation() const override { return keeps_pre_activation_of(activation_); }
  bool outputs_relu() const override { return activation_ == Activation::relu; }

 protected:
  // Activations computable from the output are fused into the kernel's epilogue; the others
  // (softmax, gelu, swish, softplus) run after it, from the kept pre-activation.
  Activation fused_activation() const { return epilogue_activation(activation_); }
  float* kernel_output(float* pre_activation, float* output) const {
    return keeps_pre_activation() ? pre_activation : output;
  }
  void finish_forward(const StepContext& context, int64_t rows, const float* pre_activation,
                      float* output) const {
    if (keeps_pre_activation()) {
      context.kernels.activation_forward(activation_, rows, output_shape.channels, pre_activation, output);
    }
  }
  void start_backward(const StepContext& context, int64_t rows, const float* pre_activation,
                      const float* output, float* output_gradient, bool gradient_is_pre_activation) const {
    if (!gradient_is_pre_activation && activation_ != Activation::linear) {
      context.kernels.activation_backward(activation_, rows, output_shape.channels, pre_activation,
                                          output, output_gradient, output_gradient);
    }
  }

  // Inference keeps the packed kernel of the layer's matrix-multiply convolution between calls.
  template <typename Params>
  void use_kernel_cache(const StepContext& context, Params& params) {
    params.kernel_cache = &kernel_cache_;
    params.weights_version = context.weights_version;
  }

  Activation activation_;
  PackedKernelCache kernel_cache_;
};

class Conv2DLayer final : public ActivatedLayer {
 public:
  Conv2DLayer(int64_t filters, int64_t kernel_height, int64_t kernel_width, int64_t stride_height,
              int64_t stride_width, int64_t dilation_height, int64_t dilation_width,
              Padding padding, bool use_bias, Activation activation, int64_t groups)
      : ActivatedLayer(activation),
        groups_(groups),
        filters_(filters),
        kernel_height_(kernel_height),
        kernel_width_(kernel_width),
        stride_height_(stride_height),
        stride_width_(stride_width),
        dilation_height_(dilation_height),
        dilation_width_(dilation_width),
        padding_(padding),
        use_bias_(use_bias) {}

  std::string kind() const override { return "Conv2D"; }

  SampleShape configure(const SampleShape& input) override {
    // Grouped: `groups` independent convolutions over contiguous channel groups (ops/grouped_conv2d.h).
    grouped_ = make_grouped_conv2d_params(0, input.height, input.width, input.channels, filters_, groups_,
                                          kernel_height_, kernel_width_, stride_height_, stride_width_,
                                          dilation_height_, dilation_width_, padding_, use_bias_, fused_activation());
    params_ = grouped_.conv;
    return {params_.output_height, params_.output_width, filters_};
  }

  std::vector<std::vector<int64_t>> parameter_shapes() const override {
    std::vector<std::vector<int64_t>> shapes{
        {kernel_height_, kernel_width_, input_shape.channels / groups_, filters_}};
    if (use_bias_) shapes.push_back({filters_});
    return shapes;
  }

  void forward(const StepContext& context, int64_t batch, const float* input,
               float* pre_activation, float* output) override {
    const GroupedConv2DParams params = forward_params(context, batch);
    run_forward(context, params, input, kernel_output(pre_activation, output));
    finish_forward(context, batch * params.conv.output_height * params.conv.output_width, pre_activation, output);
  }

  bool folds_batch_norm() const override { return activation_ == Activation::linear; }
  bool folds_residual_add() const override { return groups_ == 1; }
  bool adds_input_gradient() const override { return groups_ == 1; }
  int64_t kernel_floats() const override { return grouped_.kernel_size(); }
  void forward_folded(const StepContext& context, int64_t batch, const float* input, const float* kernels,
                      const float* bias, Activation activation, const float* residual, float* output) override {
    GroupedConv2DParams params = grouped_;
    params.conv.batch = batch;
    params.conv.use_bias = true;
    params.conv.activation = activation;
    params.conv.residual = residual;
    use_kernel_cache(context, params.conv);
    Pool2DParams pool;
    params.conv.max_pool = pooled(batch, pool);
    context.kernels.grouped_conv2d_forward(params, input, kernels, bias, output);
  }

  bool applies_batch_norm_after_activation() const override { return groups_ == 1 && !keeps_pre_activation(); }
  void forward_then_affine(const StepContext& context, int64_t batch, const float* input, Activation activation,
                           const float* scale, const float* shift, float* output) override {
    // forward's call, the affine added: the same kernel path, so the same bits before the affine.
    GroupedConv2DParams params = forward_params(context, batch);
    params.conv.activation = activation;
    params.conv.output_scale = scale;
    params.conv.output_shift = shift;
    Pool2DParams pool;
    params.conv.max_pool = pooled(batch, pool);
    run_forward(context, params, input, output);
  }

  // Fused with a following max pooling when the pair qualifies and this layer reads at most 4
  // channels per pixel (an image's first layer): there storing the convolution's output, pooling
  // it and routing its gradient back cost more memory traffic than the convolution's arithmetic.
  bool fuses_max_pool(const Layer& next) const override {
    const Pool2DParams* pool = next.max_pool_params();
    return pool != nullptr && groups_ == 1 && params_.input_channels <= 4 && conv2d_max_pool2d_fusable(params_, *pool);
  }
  bool fuses_max_pool_in_inference(const Layer& next) const override {
    const Pool2DParams* pool = next.max_pool_params();
    return pool != nullptr && groups_ == 1 && conv2d_winograd_max_pool2d_fusable(params_, *pool);
  }

  void forward_max_pool(const StepContext& context, int64_t batch, const float* input, const Layer& pool,
                        float* pool_output) override {
    Conv2DParams params = forward_params(context, batch).conv;  // the Winograd tile and packed-kernel cache too
    Pool2DParams pool_params = *pool.max_pool_params();
    pool_params.batch = batch;
    const float* kernel = context.parameters + parameter_offset;
    const float* bias = use_bias_ ? kernel + params.kernel_size() : nullptr;
    // The windows' positions of the maxima are for the backward pass: training passes only. Grows to
    // the largest training batch seen, then no allocation.
    if (context.training && window_index_.size() < static_cast<size_t>(pool_params.output_size())) {
      window_index_.resize(static_cast<size_t>(pool_params.output_size()));
    }
    context.kernels.conv2d_max_pool2d_forward(params, pool_params, input, kernel, bias, pool_output,
                                              context.training ? window_index_.data() : nullptr);
  }

  void backward_max_pool(const StepContext& context, int64_t batch, const float* input, const Layer& pool,
                         const float* pool_output, const float* pool_output_gradient) override {
    if (!trainable || context.gradients == nullptr) return;
    Conv2DParams params = params_;
    params.batch = batch;
    Pool2DParams pool_params = *pool.max_pool_params();
    pool_params.batch = batch;
    float* kernel_gradient = context.gradients + gradient_offset;
    float* bias_gradient = use_bias_ ? kernel_gradient + params.kernel_size() : nullptr;
    context.kernels.conv2d_max_pool2d_backward_kernel(params, pool_params, input, pool_output, window_index_.data(),
                                                      pool_output_gradient, kernel_gradient, bias_gradient);
  }

  void backward(const StepContext& context, int64_t batch, const float* input,
                const float* pre_activation, const float* output, float* output_gradient,
                bool gradient_is_pre_activation, float* input_gradient) override {
    GroupedConv2DParams params = grouped_;
    params.conv.batch = batch;
    params.conv.large_winograd_tile = context.large_winograd_tile_in_training;  // the input gradient's tile
    params.conv.accumulate_input_gradient = context.accumulate_input_gradient;
    start_backward(context, batch * params.conv.output_height * params.conv.output_width, pre_activation, output,
                   output_gradient, gradient_is_pre_activation);
    if (trainable && context.gradients != nullptr) {
      float* kernel_gradient = context.gradients + gradient_offset;
      float* bias_gradient = use_bias_ ? kernel_gradient + params.kernel_size() : nullptr;
      context.kernels.grouped_conv2d_backward_kernel(params, input, output_gradient, kernel_gradient, bias_gradient);
    }
    if (input_gradient != nullptr) {
      context.kernels.grouped_conv2d_backward_input(params, output_gradient, context.parameters + parameter_offset,
                                                    input_gradient);
    }
  }

 private:
  int64_t groups_;
  int64_t filters_, kernel_height_, kernel_width_, stride_height_, stride_width_,
      dilation_height_, dilation_width_;
  Padding padding_;
  bool use_bias_;

  // inference_max_pool for `batch` samples, in `pool` (null where none is set).
  const Pool2DParams* pooled(int64_t batch, Pool2DParams& pool) const {
    if (inference_max_pool == nullptr) return nullptr;
    pool = *inference_max_pool;
    pool.batch = batch;
    return &pool;
  }
  // The forward pass's geometry for `batch` samples, its Winograd tile and the packed-kernel cache.
  GroupedConv2DParams forward_params(const StepContext& context, int64_t batch) {
    GroupedConv2DParams params = grouped_;
    params.conv.batch = batch;
    params.conv.large_winograd_tile = !context.training || context.large_winograd_tile_in_training;
    use_kernel_cache(context, params.conv);
    return params;
  }
  // The forward kernel on the layer's own kernel and bias.
  void run_forward(const StepContext& context, const GroupedConv2DParams& params, const float* input, float* output) {
    const float* kernel = context.parameters + parameter_offset;
    const float* bias = use_bias_ ? kernel + params.kernel_size() : nullptr;
    context.kernels.grouped_conv2d_forward(params, input, kernel, bias, output);
  }
  GroupedConv2DParams grouped_;
  Conv2DParams params_;  // the whole layer's geometry (grouped_.conv)
  // Each pooled output's window position of its maximum, from the last fused forward pass.
  std::vector<uint8_t> window_index_;
};

// DepthwiseConv2D: each input channel convolved with its own depth_multiplier filters (Keras's
// kernel (kh, kw, channels, depth_multiplier); output channel c * depth_multiplier + m).
class DepthwiseConv2DLayer final : public ActivatedLayer {
 public:
  DepthwiseConv2DLayer(int64_t depth_multiplier, int64_t kernel_height, int64_t kernel_width, int64_t stride_height,
                       int64_t stride_width, int64_t dilation_height, int64_t dilation_width, Padding padding,
                       bool use_bias, Activation activation)
      : ActivatedLayer(activation),
        depth_multiplier_(depth_multiplier),
        kernel_height_(kernel_height),
        kernel_width_(kernel_width),
        stride_height_(stride_height),
        stride_width_(stride_width),
        dilation_height_(dilation_height),
        dilation_width_(dilation_width),
        padding_(padding),
        use_bias_(use_bias) {}

  std::string kind() const override { return "DepthwiseConv2D"; }

  SampleShape configure(const SampleShape& input) override {
    params_ = make_depthwise_conv2d_params(0, input.height, input.width, input.channels, depth_multiplier_,
                                           kernel_height_, kernel_width_, stride_height_, stride_width_,
                                           dilation_height_, dilation_width_, padding_, use_bias_, fused_activation());
    return {params_.output_height, params_.output_width, params_.output_channels()};
  }

  std::vector<std::vector<int64_t>> parameter_shapes() const override {
    std::vector<std::vector<int64_t>> shapes{{kernel_height_, kernel_width_, input_shape.channels, depth_multiplier_}};
    if (use_bias_) shapes.push_back({input_shape.channels * depth_multiplier_});
    return shapes;
  }

  void forward(const StepContext& context, int64_t batch, const float* input,
               float* pre_activation, float* output) override {
    DepthwiseConv2DParams params = params_;
    params.batch = batch;
    const float* kernel = context.parameters + parameter_offset;
    const float* bias = use_bias_ ? kernel + params.kernel_size() : nullptr;
    context.kernels.depthwise_conv2d_forward(params, input, kernel, bias, kernel_output(pre_activation, output));
    finish_forward(context, batch * params.output_height * params.output_width, pre_activation, output);
  }

  bool folds_batch_norm() const override { return activation_ == Activation::linear; }
  int64_t kernel_floats() const override { return params_.kernel_size(); }
  void forward_folded(const StepContext& context, int64_t batch, const float* input, const float* kernels,
                      const float* bias, Activation activation, const float* residual, float* output) override {
    DepthwiseConv2DParams params = params_;
    params.batch = batch;
    params.use_bias = true;
    params.activation = activation;
    context.kernels.depthwise_conv2d_forward(params, input, kernels, bias, output);
  }

  void backward(const StepContext& context, int64_t batch, const float* input,
                const float* pre_activation, const float* output, float* output_gradient,
                bool gradient_is_pre_activation, float* input_gradient) override {
    DepthwiseConv2DParams params = params_;
    params.batch = batch;
    start_backward(context, batch * params.output_height * params.output_width, pre_activation, output,
                   output_gradient, gradient_is_pre_activation);
    if (trainable && context.gradients != nullptr) {
      float* kernel_gradient = context.gradients + gradient_offset;
      float* bias_gradient = use_bias_ ? kernel_gradient + params.kernel_size() : nullptr;
      context.kernels.depthwise_conv2d_backward_kernel(params, input, output_gradient, kernel_gradient, bias_gradient);
    }
    if (input_gradient != nullptr) {
      context.kernels.depthwise_conv2d_backward_input(params, output_gradient, context.parameters + parameter_offset,
                                                      input_gradient);
    }
  }

 private:
  int64_t depth_multiplier_, kernel_height_, kernel_width_, stride_height_, stride_width_, dilation_height_,
      dilation_width_;
  Padding padding_;
  bool use_bias_;
  DepthwiseConv2DParams params_;
};

// Keras's LayerScale (ConvNeXt's layer): y = x * gamma, one trainable factor per channel. It is a
// 1x1 depthwise convolution without bias whose kernel (1, 1, C, 1) is gamma (C,) laid out alike, so
// it runs the depthwise kernels: forward, dgamma[c] = sum dy * x over positions and samples,
// dx = dy * gamma.
class LayerScaleLayer final : public Layer {
 public:
  std::string kind() const override { return "LayerScale"; }

  SampleShape configure(const SampleShape& input) override {
    params_ = make_depthwise_conv2d_params(0, input.height, input.width, input.channels, 1, 1, 1, 1, 1, 1, 1,
                                           Padding::valid, false, Activation::linear);
    return input;
  }

  std::vector<std::vector<int64_t>> parameter_shapes() const override { return {{input_shape.channels}}; }

  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    DepthwiseConv2DParams params = params_;
    params.batch = batch;
    context.kernels.depthwise_conv2d_forward(params, input, context.parameters + parameter_offset, nullptr, output);
  }

  void backward(const StepContext& context, int64_t batch, const float* input, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    DepthwiseConv2DParams params = params_;
    params.batch = batch;
    if (trainable && context.gradients != nullptr) {
      context.kernels.depthwise_conv2d_backward_kernel(params, input, output_gradient,
                                                       context.gradients + gradient_offset, nullptr);
    }
    if (input_gradient != nullptr) {
      context.kernels.depthwise_conv2d_backward_input(params, output_gradient, context.parameters + parameter_offset,
                                                      input_gradient);
    }
  }

 private:
  DepthwiseConv2DParams params_;
};

// SeparableConv2D: the depthwise kernels (no bias, no activation) write the layer's scratch, a
// 1x1 convolution (the conv2d kernels) maps it to `filters` channels with bias and activation.
// Backward: the pointwise kernel's gradient reads the scratch, which then receives the depthwise
// output's gradient (its values are no longer needed), from which the depthwise kernel's and the
// input's gradients follow.
class SeparableConv2DLayer final : public ActivatedLayer {
 public:
  SeparableConv2DLayer(int64_t filters, int64_t depth_multiplier, int64_t kernel_height, int64_t kernel_width,
                       int64_t stride_height, int64_t stride_width, int64_t dilation_height, int64_t dilation_width,
                       Padding padding, bool use_bias, Activation activation)
      : ActivatedLayer(activation),
        filters_(filters),
        depth_multiplier_(depth_multiplier),
        kernel_height_(kernel_height),
        kernel_width_(kernel_width),
        stride_height_(stride_height),
        stride_width_(stride_width),
        dilation_height_(dilation_height),
        dilation_width_(dilation_width),
        padding_(padding),
        use_bias_(use_bias) {}

  std::string kind() const override { return "SeparableConv2D"; }

  SampleShape configure(const SampleShape& input) override {
    depthwise_ = make_depthwise_conv2d_params(0, input.height, input.width, input.channels, depth_multiplier_,
                                              kernel_height_, kernel_width_, stride_height_, stride_width_,
                                              dilation_height_, dilation_width_, padding_, false, Activation::linear);
    const int64_t middle_channels = checked_multiply(input.channels, depth_multiplier_, "the depthwise channels");
    pointwise_ = make_conv2d_params(0, depthwise_.output_height, depthwise_.output_width, middle_channels, filters_, 1,
                                    1, 1, 1, 1, 1, Padding::valid, use_bias_, fused_activation());
    scratch_ = checked_product({depthwise_.output_height, depthwise_.output_width, middle_channels},
                               "the depthwise output");
    return {pointwise_.output_height, pointwise_.output_width, filters_};
  }

  std::vector<std::vector<int64_t>> parameter_shapes() const override {
    std::vector<std::vector<int64_t>> shapes{{kernel_height_, kernel_width_, input_shape.channels, depth_multiplier_},
                                             {1, 1, input_shape.channels * depth_multiplier_, filters_}};
    if (use_bias_) shapes.push_back({filters_});
    return shapes;
  }
  int64_t kernel_arrays() const override { return 2; }
  int64_t scratch_per_sample() const override { return scratch_; }

  void forward(const StepContext& context, int64_t batch, const float* input,
               float* pre_activation, float* output) override {
    Parts parts = parts_of(context.parameters + parameter_offset, batch);
    use_kernel_cache(context, parts.pointwise);
    context.kernels.depthwise_conv2d_forward(parts.depthwise, input, parts.depthwise_kernel, nullptr, context.scratch);
    context.kernels.conv2d_forward(parts.pointwise, context.scratch, parts.pointwise_kernel, parts.bias,
                                   kernel_output(pre_activation, output));
    finish_forward(context, batch * pointwise_.output_height * pointwise_.output_width, pre_activation, output);
  }

  bool folds_batch_norm() const override { return activation_ == Activation::linear; }
  int64_t kernel_floats() const override { return depthwise_.kernel_size() + pointwise_.kernel_size(); }
  int64_t scaled_kernel_begin() const override { return depthwise_.kernel_size(); }
  void forward_folded(const StepContext& context, int64_t batch, const float* input, const float* kernels,
                      const float* bias, Activation activation, const float* residual, float* output) override {
    Parts parts = parts_of(nullptr, batch);
    parts.pointwise.use_bias = true;
    parts.pointwise.activation = activation;
    use_kernel_cache(context, parts.pointwise);
    context.kernels.depthwise_conv2d_forward(parts.depthwise, input, kernels, nullptr, context.scratch);
    context.kernels.conv2d_forward(parts.pointwise, context.scratch, kernels + depthwise_.kernel_size(), bias, output);
  }

  void backward(const StepContext& context, int64_t batch, const float* input,
                const float* pre_activation, const float* output, float* output_gradient,
                bool gradient_is_pre_activation, float* input_gradient) override {
    const Parts parts = parts_of(context.parameters + parameter_offset, batch);
    start_backward(context, batch * pointwise_.output_height * pointwise_.output_width, pre_activation, output,
                   output_gradient, gradient_is_pre_activation);
    const bool parameter_gradients = trainable && context.gradients != nullptr;
    const Parts gradients = parts_of(parameter_gradients ? context.gradients + gradient_offset : nullptr, batch);
    if (parameter_gradients) {
      context.kernels.conv2d_backward_kernel(parts.pointwise, context.scratch, output_gradient,
                                             gradients.pointwise_kernel, gradients.bias);
    }
    if (!parameter_gradients && input_gradient == nullptr) return;
    float* middle_gradient = context.scratch;
    context.kernels.conv2d_backward_input(parts.pointwise, output_gradient, parts.pointwise_kernel, middle_gradient);
    if (parameter_gradients) {
      context.kernels.depthwise_conv2d_backward_kernel(parts.depthwise, input, middle_gradient,
                                                       gradients.depthwise_kernel, nullptr);
    }
    if (input_gradient != nullptr) {
      context.kernels.depthwise_conv2d_backward_input(parts.depthwise, middle_gradient, parts.depthwise_kernel,
                                                      input_gradient);
    }
  }

 private:
  // The two convolutions for `batch` samples and where their arrays lie in a parameter-shaped
  // buffer (the parameters or their gradients; null gives null arrays).
  struct Parts {
    DepthwiseConv2DParams depthwise;
    Conv2DParams pointwise;
    float* depthwise_kernel;
    float* pointwise_kernel;
    float* bias;
  };
  Parts parts_of(float* base, int64_t batch) const {
    Parts parts{depthwise_, pointwise_, nullptr, nullptr, nullptr};
    parts.depthwise.batch = batch;
    parts.pointwise.batch = batch;
    if (base != nullptr) {
      parts.depthwise_kernel = base;
      parts.pointwise_kernel = base + depthwise_.kernel_size();
      parts.bias = use_bias_ ? parts.pointwise_kernel + pointwise_.kernel_size() : nullptr;
    }
    return parts;
  }

  int64_t filters_, depth_multiplier_, kernel_height_, kernel_width_, stride_height_, stride_width_,
      dilation_height_, dilation_width_;
  Padding padding_;
  bool use_bias_;
  DepthwiseConv2DParams depthwise_;
  Conv2DParams pointwise_;
  int64_t scratch_ = 0;
};

// Dense acts on the last axis: an input of shape (h, w, c) is h*w rows of c units, as in Keras.
class DenseLayer final : public ActivatedLayer {
 public:
  DenseLayer(int64_t units, bool use_bias, Activation activation)
      : ActivatedLayer(activation), units_(units), use_bias_(use_bias) {}

  std::string kind() const override { return "Dense"; }

  SampleShape configure(const SampleShape& input) override {
    params_ = make_dense_params(0, input.channels, units_, use_bias_, fused_activation());
    return {input.height, input.width, units_};
  }

  std::vector<std::vector<int64_t>> parameter_shapes() const override {
    std::vector<std::vector<int64_t>> shapes{{input_shape.channels, units_}};
    if (use_bias_) shapes.push_back({units_});
    return shapes;
  }

  void forward(const StepContext& context, int64_t batch, const float* input,
               float* pre_activation, float* output) override {
    DenseParams params = rows_params(batch);
    use_kernel_cache(context, params);
    const float* kernel = context.parameters + parameter_offset;
    const float* bias = use_bias_ ? kernel + params.input_units * units_ : nullptr;
    context.kernels.dense_forward(params, input, kernel, bias, kernel_output(pre_activation, output));
    finish_forward(context, params.batch, pre_activation, output);
  }

  bool folds_batch_norm() const override { return activation_ == Activation::linear; }
  int64_t kernel_floats() const override { return params_.input_units * units_; }
  void forward_folded(const StepContext& context, int64_t batch, const float* input, const float* kernels,
                      const float* bias, Activation activation, const float* residual, float* output) override {
    DenseParams params = rows_params(batch);
    params.use_bias = true;
    params.activation = activation;
    use_kernel_cache(context, params);
    context.kernels.dense_forward(params, input, kernels, bias, output);
  }

  void backward(const StepContext& context, int64_t batch, const float* input,
                const float* pre_activation, const float* output, float* output_gradient,
                bool gradient_is_pre_activation, float* input_gradient) override {
    DenseParams params = rows_params(batch);
    start_backward(context, params.batch, pre_activation, output, output_gradient, gradient_is_pre_activation);
    if (trainable && context.gradients != nullptr) {
      float* kernel_gradient = context.gradients + gradient_offset;
      float* bias_gradient = use_bias_ ? kernel_gradient + params.input_units * units_ : nullptr;
      context.kernels.dense_backward_kernel(params, input, output_gradient, kernel_gradient,
                                            bias_gradient);
    }
    if (input_gradient != nullptr) {
      context.kernels.dense_backward_input(params, output_gradient,
                                           context.parameters + parameter_offset, input_gradient);
    }
  }

 private:
  DenseParams rows_params(int64_t batch) const {
    DenseParams params = params_;
    params.batch = batch * input_shape.height * input_shape.width;
    return params;
  }

  int64_t units_;
  bool use_bias_;
  DenseParams params_;
};

// Max or average pooling; a global pooling layer is one window over the whole image.
class Pool2DLayer final : public Layer {
 public:
  Pool2DLayer(bool average, bool global, int64_t pool_height, int64_t pool_width,
              int64_t stride_height, int64_t stride_width, Padding padding)
      : average_(average),
        global_(global),
        pool_height_(pool_height),
        pool_width_(pool_width),
        stride_height_(stride_height),
        stride_width_(stride_width),
        padding_(padding) {}

  std::string kind() const override {
    if (global_) return average_ ? "GlobalAveragePooling2D" : "GlobalMaxPooling2D";
    return average_ ? "AveragePooling2D" : "MaxPooling2D";
  }

  SampleShape configure(const SampleShape& input) override {
    if (global_) {
      params_ = make_pool2d_params(0, input.height, input.width, input.channels, input.height, input.width,
                                   input.height, input.width, Padding::valid);
    } else {
      params_ = make_pool2d_params(0, input.height, input.width, input.channels, pool_height_,
                                   pool_width_, stride_height_, stride_width_, padding_);
    }
    return {params_.output_height, params_.output_width, input.channels};
  }

  void forward(const StepContext& context, int64_t batch, const float* input, float*,
               float* output) override {
    Pool2DParams params = params_;
    params.batch = batch;
    if (average_) {
      context.kernels.average_pool2d_forward(params, input, output);
    } else {
      context.kernels.max_pool2d_forward(params, input, output);
    }
  }

  bool accepts_relu_input() const override { return !average_; }
  const Pool2DParams* max_pool_params() const override { return average_ ? nullptr : &params_; }

  void backward(const StepContext& context, int64_t batch, const float* input, const float*,
                const float*, float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient == nullptr) return;
    Pool2DParams params = params_;
    params.batch = batch;
    params.relu_input = relu_input;
    if (average_) {
      context.kernels.average_pool2d_backward(params, output_gradient, input_gradient);
    } else {
      context.kernels.max_pool2d_backward(params, input, output_gradient, input_gradient);
    }
  }

 private:
  bool average_, global_;
  int64_t pool_height_, pool_width_, stride_height_, stride_width_;
  Padding padding_;
  Pool2DParams params_;
};

// Flatten and Reshape move no data (NHWC memory order is Keras's row-major order).
class ReshapeLayer final : public Layer {
 public:
  // A target of (0, 0, 0) flattens.
  ReshapeLayer(std::string kind, SampleShape target) : kind_(std::move(kind)), target_(target) {}
  std::string kind() const override { return kind_; }
  SampleShape configure(const SampleShape& input) override {
    if (target_.size() == 0) return {1, 1, input.size()};
    checked_product({target_.height, target_.width, target_.channels}, "the Reshape target");
    if (target_.size() != input.size()) {
      throw std::invalid_argument("cannot reshape " + std::to_string(input.size()) + " values per sample into " +
                                  std::to_string(target_.size()));
    }
    return target_;
  }
  bool is_reshape() const override { return true; }
  void forward(const StepContext&, int64_t, const float*, float*, float*) override {}
  void backward(const StepContext&, int64_t, const float*, const float*, const float*, float*, bool,
                float*) override {}

 private:
  std::string kind_;
  SampleShape target_;
};

class ZeroPadding2DLayer final : public Layer {
 public:
  ZeroPadding2DLayer(int64_t top, int64_t bottom, int64_t left, int64_t right)
      : top_(top), bottom_(bottom), left_(left), right_(right) {
    if (top < 0 || bottom < 0 || left < 0 || right < 0) {
      throw std::invalid_argument("`padding` values must be >= 0. Received: padding=((" + std::to_string(top) +
                                  ", " + std::to_string(bottom) + "), (" + std::to_string(left) + ", " +
                                  std::to_string(right) + "))");
    }
  }
  std::string kind() const override { return "ZeroPadding2D"; }
  SampleShape configure(const SampleShape& input) override {
    input_ = input;
    return {checked_add(checked_add(input.height, top_, "the padded height"), bottom_, "the padded height"),
            checked_add(checked_add(input.width, left_, "the padded width"), right_, "the padded width"),
            input.channels};
  }
  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    context.kernels.zero_padding2d_forward(params(batch), input, output);
  }
  void backward(const StepContext& context, int64_t batch, const float*, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient != nullptr) context.kernels.zero_padding2d_backward(params(batch), output_gradient, input_gradient);
  }

 private:
  ZeroPadding2DParams params(int64_t batch) const {
    return {batch, input_.height, input_.width, input_.channels, top_, bottom_, left_, right_};
  }
  int64_t top_, bottom_, left_, right_;
  SampleShape input_;
};

// Cropping is ZeroPadding2D's gradient and its gradient is ZeroPadding2D: the zero-padding kernels
// with the cropped image as the "unpadded" one.
class Cropping2DLayer final : public Layer {
 public:
  Cropping2DLayer(int64_t top, int64_t bottom, int64_t left, int64_t right)
      : top_(top), bottom_(bottom), left_(left), right_(right) {
    if (top < 0 || bottom < 0 || left < 0 || right < 0) {
      throw std::invalid_argument("`cropping` cannot be negative. Received: cropping=" + cropping());
    }
  }
  std::string kind() const override { return "Cropping2D"; }
  SampleShape configure(const SampleShape& input) override {
    const int64_t rows = checked_add(top_, bottom_, "the cropped rows");
    const int64_t columns = checked_add(left_, right_, "the cropped columns");
    if (rows >= input.height || columns >= input.width) {
      throw std::invalid_argument("Values in `cropping` argument should be smaller than the corresponding spatial "
                                  "dimension of the input. Received: input_shape=(None, " +
                                  std::to_string(input.height) + ", " + std::to_string(input.width) + ", " +
                                  std::to_string(input.channels) + "), cropping=" + cropping());
    }
    cropped_ = {input.height - rows, input.width - columns, input.channels};
    return cropped_;
  }
  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    context.kernels.zero_padding2d_backward(params(batch), input, output);
  }
  void backward(const StepContext& context, int64_t batch, const float*, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient != nullptr) context.kernels.zero_padding2d_forward(params(batch), output_gradient, input_gradient);
  }

 private:
  std::string cropping() const {
    return "((" + std::to_string(top_) + ", " + std::to_string(bottom_) + "), (" + std::to_string(left_) + ", " +
           std::to_string(right_) + "))";
  }
  ZeroPadding2DParams params(int64_t batch) const {
    return {batch, cropped_.height, cropped_.width, cropped_.channels, top_, bottom_, left_, right_};
  }
  int64_t top_, bottom_, left_, right_;
  SampleShape cropped_;
};

class UpSampling2DLayer final : public Layer {
 public:
  UpSampling2DLayer(int64_t size_height, int64_t size_width, bool bilinear) {
    if (size_height <= 0 || size_width <= 0) {
      throw std::invalid_argument("UpSampling2D's `size` must be positive. Received: size=(" +
                                  std::to_string(size_height) + ", " + std::to_string(size_width) + ")");
    }
    params_.size_height = size_height;
    params_.size_width = size_width;
    params_.bilinear = bilinear;
  }
  std::string kind() const override { return "UpSampling2D"; }
  SampleShape configure(const SampleShape& input) override {
    params_.input_height = input.height;
    params_.input_width = input.width;
    params_.channels = input.channels;
    const SampleShape output{checked_multiply(input.height, params_.size_height, "the upsampled height"),
                             checked_multiply(input.width, params_.size_width, "the upsampled width"), input.channels};
    checked_product({output.height, output.width, output.channels}, "the upsampled image");
    return output;
  }
  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    UpSampling2DParams params = params_;
    params.batch = batch;
    context.kernels.upsampling2d_forward(params, input, output);
  }
  void backward(const StepContext& context, int64_t batch, const float*, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient == nullptr) return;
    UpSampling2DParams params = params_;
    params.batch = batch;
    context.kernels.upsampling2d_backward(params, output_gradient, input_gradient);
  }

 private:
  UpSampling2DParams params_;
};

// Keras's Identity: no data moves (the Network aliases a reshape's output to its input).
class IdentityLayer final : public Layer {
 public:
  std::string kind() const override { return "Identity"; }
  SampleShape configure(const SampleShape& input) override { return input; }
  bool is_reshape() const override { return true; }
  void forward(const StepContext&, int64_t, const float*, float*, float*) override {}
  void backward(const StepContext&, int64_t, const float*, const float*, const float*, float*, bool,
                float*) override {}
};

// Keras's ReLU layer (max_value, negative_slope, threshold) and LeakyReLU.
class ReluLayer final : public Layer {
 public:
  ReluLayer(std::string kind, float max_value, float negative_slope, float threshold)
      : kind_(std::move(kind)) {
    params_.max_value = max_value;
    params_.negative_slope = negative_slope;
    params_.threshold = threshold;
  }
  std::string kind() const override { return kind_; }
  SampleShape configure(const SampleShape& input) override { return input; }
  bool as_epilogue_activation(Activation& activation) const override {
    if (params_.negative_slope != 0.0f || params_.threshold != 0.0f) return false;
    if (params_.max_value == std::numeric_limits<float>::infinity()) {
      activation = Activation::relu;
    } else if (params_.max_value == 6.0f) {
      activation = Activation::relu6;
    } else {
      return false;
    }
    return true;
  }
  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    ReluParams params = params_;
    params.count = batch * input_shape.size();
    context.kernels.relu_forward(params, input, output);
  }
  void backward(const StepContext& context, int64_t batch, const float* input, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient == nullptr) return;
    ReluParams params = params_;
    params.count = batch * input_shape.size();
    context.kernels.relu_backward(params, input, output_gradient, input_gradient);
  }

 private:
  std::string kind_;
  ReluParams params_;
};

// y = x * scale + offset, each one value for every channel or one per channel (Keras broadcasts a
// list over the last axis); a single value runs the scalar kernel path.
class RescalingLayer final : public Layer {
 public:
  RescalingLayer(std::vector<float> scale, std::vector<float> offset)
      : scale_(std::move(scale)), offset_(std::move(offset)) {
    if (scale_.empty() || offset_.empty()) {
      throw std::invalid_argument("Rescaling needs at least one scale and one offset. Received: " +
                                  std::to_string(scale_.size()) + " scales, " + std::to_string(offset_.size()) +
                                  " offsets");
    }
  }
  std::string kind() const override { return "Rescaling"; }
  SampleShape configure(const SampleShape& input) override {
    for (const auto& [name, values] : {std::pair{"scale", &scale_}, std::pair{"offset", &offset_}}) {
      if (values->size() != 1 && static_cast<int64_t>(values->size()) != input.channels) {
        throw std::invalid_argument(std::string("Rescaling's `") + name + "` has " + std::to_string(values->size()) +
                                    " values; it must have 1 or one per channel of the input (" +
                                    std::to_string(input.channels) + ")");
      }
    }
    per_channel_ = scale_.size() > 1 || offset_.size() > 1;
    if (per_channel_) {
      channel_scale_.assign(static_cast<size_t>(input.channels), scale_[0]);
      channel_offset_.assign(static_cast<size_t>(input.channels), offset_[0]);
      if (scale_.size() > 1) channel_scale_ = scale_;
      if (offset_.size() > 1) channel_offset_ = offset_;
    }
    return input;
  }
  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    context.kernels.rescaling(params(batch, true), input, output);
  }
  void backward(const StepContext& context, int64_t batch, const float*, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient != nullptr) context.kernels.rescaling(params(batch, false), output_gradient, input_gradient);
  }

 private:
  // Forward: x * scale + offset; backward: dy * scale.
  RescalingParams params(int64_t batch, bool with_offset) const {
    RescalingParams params{batch * input_shape.size(), scale_[0], with_offset ? offset_[0] : 0.0f};
    if (per_channel_) {
      params.channels = input_shape.channels;
      params.channel_scale = channel_scale_.data();
      params.channel_offset = with_offset ? channel_offset_.data() : nullptr;
    }
    return params;
  }
  std::vector<float> scale_, offset_, channel_scale_, channel_offset_;
  bool per_channel_ = false;
};

// Masks come from the step's seed mixed with the layer index, or, when the layer has its own seed,
// from that seed and a count of its training calls (reproducible whatever else draws randomness).
class DropoutLayer final : public Layer {
 public:
  DropoutLayer(float rate, int64_t seed) : rate_(rate), own_seed_(seed) {
    if (!(rate >= 0.0f && rate < 1.0f)) {
      throw std::invalid_argument("Invalid value received for argument `rate`. Expected a float "
                                  "value between 0 and 1. Received: rate=" + std::to_string(rate));
    }
  }
  std::string kind() const override { return "Dropout"; }
  bool passes_input_in_inference() const override { return true; }
  SampleShape configure(const SampleShape& input) override { return input; }

  void forward(const StepContext& context, int64_t batch, const float* input, float*,
               float* output) override {
    const int64_t count = batch * input_shape.size();
    last_dropped_ = context.training && rate_ > 0.0f;
    if (last_dropped_) {
      last_seed_ = own_seed_ >= 0
                       ? static_cast<uint64_t>(own_seed_) * 0x9E3779B97F4A7C15ull + training_calls_++
                       : context.seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(index + 1));
      last_first_index_ = static_cast<uint64_t>(context.first_sample * input_shape.size());
      context.kernels.dropout_forward({count, rate_, last_seed_, last_first_index_}, input, output);
    } else {
      context.kernels.activation_forward(Activation::linear, 1, count, input, output);
    }
  }

  void backward(const StepContext& context, int64_t batch, const float*, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient == nullptr) return;
    const int64_t count = batch * input_shape.size();
    if (last_dropped_) {
      context.kernels.dropout_backward({count, rate_, last_seed_, last_first_index_}, output_gradient, input_gradient);
    } else {
      context.kernels.activation_forward(Activation::linear, 1, count, output_gradient, input_gradient);
    }
  }

 private:
  float rate_;
  int64_t own_seed_;
  uint64_t training_calls_ = 0;
  uint64_t last_seed_ = 0;
  uint64_t last_first_index_ = 0;
  bool last_dropped_ = false;  // the last forward applied a mask (training mode), so backward does too
};

// Keras's ELU layer (its own alpha; the activation "elu" is alpha = 1).
class EluLayer final : public Layer {
 public:
  explicit EluLayer(float alpha) : alpha_(alpha) {}
  std::string kind() const override { return "ELU"; }
  SampleShape configure(const SampleShape& input) override { return input; }
  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    context.kernels.elu_forward({batch * input_shape.size(), alpha_}, input, output);
  }
  void backward(const StepContext& context, int64_t batch, const float* input, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient != nullptr) {
      context.kernels.elu_backward({batch * input_shape.size(), alpha_}, input, output_gradient, input_gradient);
    }
  }

 private:
  float alpha_;
};

// Keras's PReLU: one trainable alpha per position of the input with the shared axes collapsed.
// alpha_shape is Keras's (the sample's rank); the kernels see it as (height, width, channels).
class PReluLayer final : public Layer {
 public:
  PReluLayer(std::vector<int64_t> alpha_shape, bool shared_height, bool shared_width, bool shared_channels)
      : alpha_shape_(std::move(alpha_shape)) {
    params_.shared_height = shared_height;
    params_.shared_width = shared_width;
    params_.shared_channels = shared_channels;
  }
  std::string kind() const override { return "PReLU"; }
  SampleShape configure(const SampleShape& input) override {
    params_.height = input.height;
    params_.width = input.width;
    params_.channels = input.channels;
    int64_t alpha_size = 1;
    for (const int64_t dimension : alpha_shape_) alpha_size *= dimension;
    if (alpha_size != params_.alpha_height() * params_.alpha_width() * params_.alpha_channels()) {
      throw std::invalid_argument("PReLU: alpha of " + std::to_string(alpha_size) +
                                  " values does not fit an input of shape (" + std::to_string(input.height) + ", " +
                                  std::to_string(input.width) + ", " + std::to_string(input.channels) +
                                  ") with these shared axes");
    }
    return input;
  }
  std::vector<std::vector<int64_t>> parameter_shapes() const override { return {alpha_shape_}; }

  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    PReluParams params = params_;
    params.batch = batch;
    context.kernels.prelu_forward(params, input, context.parameters + parameter_offset, output);
  }
  void backward(const StepContext& context, int64_t batch, const float* input, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    PReluParams params = params_;
    params.batch = batch;
    float* alpha_gradient = trainable && context.gradients != nullptr ? context.gradients + gradient_offset : nullptr;
    if (alpha_gradient == nullptr && input_gradient == nullptr) return;
    context.kernels.prelu_backward(params, input, context.parameters + parameter_offset, output_gradient,
                                   input_gradient, alpha_gradient);
  }

 private:
  std::vector<int64_t> alpha_shape_;
  PReluParams params_;
};

// Dropout(noise_shape=), SpatialDropout2D, GaussianNoise and GaussianDropout (ops/noise.h): noise only
// in training, drawn as Dropout draws its masks (the step's seed mixed with the layer index, or the
// layer's own seed and a count of its training calls) and from the global sample index, so that
// data-parallel ranks together draw what one process would.
class NoiseLayer final : public Layer {
 public:
  NoiseLayer(std::string kind, NoiseParams params, int64_t seed)
      : kind_(std::move(kind)), params_(params), own_seed_(seed) {}
  std::string kind() const override { return kind_; }
  SampleShape configure(const SampleShape& input) override { return input; }
  bool passes_input_in_inference() const override { return true; }

  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    last_noisy_ = context.training && (params_.kind == NoiseKind::gaussian_noise ? params_.stddev > 0.0f
                                                                                 : params_.rate > 0.0f);
    if (!last_noisy_) {
      context.kernels.activation_forward(Activation::linear, 1, batch * input_shape.size(), input, output);
      return;
    }
    last_seed_ = own_seed_ >= 0 ? static_cast<uint64_t>(own_seed_) * 0x9E3779B97F4A7C15ull + training_calls_++
                                : context.seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(index + 1));
    last_first_sample_ = context.first_sample;
    context.kernels.noise_forward(params(batch), input, output);
  }

  void backward(const StepContext& context, int64_t batch, const float*, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient == nullptr) return;
    if (last_noisy_) {
      context.kernels.noise_backward(params(batch), output_gradient, input_gradient);
    } else {
      context.kernels.activation_forward(Activation::linear, 1, batch * input_shape.size(), output_gradient,
                                         input_gradient);
    }
  }

 private:
  NoiseParams params(int64_t batch) const {
    NoiseParams params = params_;
    params.batch = batch;
    params.height = input_shape.height;
    params.width = input_shape.width;
    params.channels = input_shape.channels;
    params.seed = last_seed_;
    params.first_sample = last_first_sample_;
    return params;
  }
  std::string kind_;
  NoiseParams params_;
  int64_t own_seed_;
  uint64_t training_calls_ = 0;
  uint64_t last_seed_ = 0;
  int64_t last_first_sample_ = 0;
  bool last_noisy_ = false;  // the last forward applied noise (training mode), so backward does too
};

// BatchNormalization over channels. Parameter slice: [gamma], [beta], moving_mean, moving_variance.
class BatchNormLayer final : public Layer {
 public:
  BatchNormLayer(float momentum, float epsilon, bool center, bool scale)
      : momentum_(momentum), epsilon_(epsilon), center_(center), scale_(scale) {
    if (!(momentum >= 0.0f && momentum <= 1.0f)) {
      throw std::invalid_argument("`momentum` must be in [0, 1]. Received: momentum=" + std::to_string(momentum));
    }
    if (!(epsilon > 0.0f)) {
      throw std::invalid_argument("`epsilon` must be positive. Received: epsilon=" + std::to_string(epsilon));
    }
  }
  std::string kind() const override { return "BatchNormalization"; }

  SampleShape configure(const SampleShape& input) override {
    channels_ = input.channels;
    mean_.assign(static_cast<size_t>(channels_), 0.0f);
    variance_.assign(static_cast<size_t>(channels_), 0.0f);
    zeros_.assign(static_cast<size_t>(channels_), 0.0f);
    return input;
  }

  std::vector<std::vector<int64_t>> parameter_shapes() const override {
    std::vector<std::vector<int64_t>> shapes;
    const int64_t count = (scale_ ? 1 : 0) + (center_ ? 1 : 0) + 2;
    for (int64_t i = 0; i < count; ++i) shapes.push_back({channels_});
    return shapes;
  }
  int64_t trainable_parameter_count() const override {
    return ((scale_ ? 1 : 0) + (center_ ? 1 : 0)) * channels_;
  }

  void forward(const StepContext& context, int64_t batch, const float* input, float*,
               float* output) override {
    normalize(context, batch, input, output, nullptr);
  }

  // The pooling geometry of forward_max_pool and of the backward pass after it, positions at `positions`.
  static Pool2DParams training_max_pool(const Layer& pool, int64_t batch, float* positions) {
    Pool2DParams pooling = *pool.max_pool_params();
    pooling.batch = batch;
    pooling.relu_input = pool.relu_input;
    pooling.window_positions = reinterpret_cast<uint8_t*>(positions);
    return pooling;
  }

  // The forward pass: output = act(BN(input)), or its max pooling (max_pool, training only).
  void normalize(const StepContext& context, int64_t batch, const float* input, float* output,
                 const Pool2DParams* max_pool) {
    BatchNormParams params{batch * input_shape.height * input_shape.width, channels_, epsilon_};
    params.output_activation = output_activation;
    params.max_pool = max_pool;
    float* base = context.parameters + parameter_offset;
    const float* gamma = scale_ ? base : nullptr;
    const float* beta = center_ ? base + (scale_ ? channels_ : 0) : nullptr;
    float* moving_mean = base + trainable_parameter_count();
    float* moving_variance = moving_mean + channels_;
    // Batch statistics only while training a trainable layer (a frozen one runs in inference mode).
    used_batch_statistics_ = context.training && trainable && params.rows > 0;
    if (used_batch_statistics_) {
      context.kernels.batch_norm_statistics(params, input, mean_.data(), variance_.data());
      for (int64_t c = 0; c < channels_; ++c) {
        moving_mean[c] = moving_mean[c] * momentum_ + mean_[c] * (1.0f - momentum_);
        moving_variance[c] = moving_variance[c] * momentum_ + variance_[c] * (1.0f - momentum_);
      }
      context.kernels.batch_norm_forward(params, input, mean_.data(), variance_.data(), gamma, beta, output);
    } else {
      context.kernels.batch_norm_forward(params, input, moving_mean, moving_variance, gamma, beta, output);
    }
  }

  bool accepts_relu_input() const override { return true; }
  bool accepts_output_activation() const override { return true; }
  // Only on batch statistics (a trainable layer: a frozen one's backward is a per-channel scale).
  bool computes_max_pool_in_training(const Layer& pool) const override {
    return trainable && pool.max_pool_params() != nullptr && batch_norm_computes_max_pool(*pool.max_pool_params());
  }
  // With max_pool_in_training: the pooled output's window positions, a byte each.
  int64_t scratch_per_sample() const override {
    return max_pool_in_training != nullptr ? (max_pool_in_training->output_shape.size() + 3) / 4 : 0;
  }
  void forward_max_pool(const StepContext& context, int64_t batch, const float* input, const Layer& pool,
                        float* pool_output) override {
    if (!(context.training && trainable)) throw std::logic_error("a BatchNormalization pools only in training passes");
    Pool2DParams pooling = training_max_pool(pool, batch, context.scratch);
    normalize(context, batch, input, pool_output, &pooling);
  }

  bool batch_norm_factors(const float* parameters, float* scale, float* shift) const override {
    const float* base = parameters + parameter_offset;
    const float* gamma = scale_ ? base : nullptr;
    const float* beta = center_ ? base + (scale_ ? channels_ : 0) : nullptr;
    const float* moving_mean = base + trainable_parameter_count();
    const float* moving_variance = moving_mean + channels_;
    for (int64_t c = 0; c < channels_; ++c) {
      batch_norm_scale_shift(gamma, beta, moving_mean, moving_variance, epsilon_, c, scale[c], shift[c]);
    }
    return true;
  }

  void backward(const StepContext& context, int64_t batch, const float* input, const float*,
                const float* output, float* output_gradient, bool, float* input_gradient) override {
    BatchNormParams params{batch * input_shape.height * input_shape.width, channels_, epsilon_};
    params.relu_input = relu_input;
    const float* base = context.parameters + parameter_offset;
    const float* gamma = scale_ ? base : nullptr;
    Pool2DParams pooling;
    if (max_pool_in_training != nullptr) {
      // output_gradient is the pooled output's (computes_max_pool_in_training).
      if (!used_batch_statistics_) {
        throw std::logic_error("a pooled gradient reached a BatchNormalization on moving statistics");
      }
      pooling = training_max_pool(*max_pool_in_training, batch, context.scratch);
      params.max_pool = &pooling;
    }
    if (used_batch_statistics_) {
      // With a fused activation output_gradient is the activated values'; the kernel recomputes
      // the pre-activation from the input, gamma and beta.
      params.output_activation = output_activation;
      params.beta = center_ ? base + (scale_ ? channels_ : 0) : nullptr;
      float* gradient_base = context.gradients != nullptr ? context.gradients + gradient_offset : nullptr;
      float* gamma_gradient = gradient_base != nullptr && scale_ ? gradient_base : nullptr;
      float* beta_gradient = gradient_base != nullptr && center_ ? gradient_base + (scale_ ? channels_ : 0) : nullptr;
      context.kernels.batch_norm_backward(params, input, mean_.data(), variance_.data(), gamma,
                                          output_gradient, input_gradient, gamma_gradient, beta_gradient);
    } else if (input_gradient != nullptr) {
      if (output_activation != Activation::linear) {  // the fused activation's derivative first, in place
        context.kernels.activation_backward(output_activation, params.rows, channels_, nullptr, output,
                                            output_gradient, output_gradient);
      }
      // Moving statistics are constants: dx = dy * gamma / sqrt(moving_variance + epsilon).
      const float* moving_variance = base + trainable_parameter_count() + channels_;
      context.kernels.batch_norm_forward(params, output_gradient, zeros_.data(), moving_variance, gamma,
                                         nullptr, input_gradient);
      if (relu_input) {  // the ReLU's derivative: its output (this layer's input) > 0
        context.kernels.activation_backward(Activation::relu, params.rows, channels_, nullptr, input,
                                            input_gradient, input_gradient);
      }
    }
  }

 private:
  float momentum_, epsilon_;
  bool center_, scale_;
  int64_t channels_ = 0;
  bool used_batch_statistics_ = false;
  std::vector<float> mean_, variance_, zeros_;
};

class ActivationLayer final : public ActivatedLayer {
 public:
  explicit ActivationLayer(Activation activation) : ActivatedLayer(activation) {}
  std::string kind() const override { return "Activation"; }
  // The layer's input already is its pre-activation; softmax and sigmoid keep a copy, for the loss.
  bool keeps_pre_activation() const override { return keeps_logits(activation_); }
  SampleShape configure(const SampleShape& input) override { return input; }
  bool as_epilogue_activation(Activation& activation) const override {
    if (!is_elementwise(activation_) || keeps_pre_activation()) return false;
    activation = activation_;
    return true;
  }

  void forward(const StepContext& context, int64_t batch, const float* input,
               float* pre_activation, float* output) override {
    const int64_t rows = batch * input_shape.height * input_shape.width;
    // The layer's input is its pre-activation; it is copied only where the fused softmax or
    // sigmoid + cross-entropy loss reads the logits from the pre-activation buffer.
    if (pre_activation != nullptr) {
      context.kernels.activation_forward(Activation::linear, rows, input_shape.channels, input,
                                         pre_activation);
    }
    context.kernels.activation_forward(activation_, rows, input_shape.channels, input, output);
  }

  void backward(const StepContext& context, int64_t batch, const float* input, const float*,
                const float* output, float* output_gradient, bool gradient_is_pre_activation,
                float* input_gradient) override {
    if (input_gradient == nullptr) return;
    const int64_t rows = batch * input_shape.height * input_shape.width;
    start_backward(context, rows, input, output, output_gradient, gradient_is_pre_activation);
    context.kernels.activation_forward(Activation::linear, rows, input_shape.channels,
                                       output_gradient, input_gradient);
  }
};

// The layers that take several inputs; the one-input forms are never called on them.
class MultiInputLayer : public Layer {
 public:
  bool takes_several_inputs() const override { return true; }
  SampleShape configure(const SampleShape& input) override { return configure_inputs({input}); }
  void forward(const StepContext& context, int64_t batch, const float* input, float* pre_activation,
               float* output) override {
    forward_inputs(context, batch, {input}, pre_activation, output);
  }
  void backward(const StepContext& context, int64_t batch, const float* input, const float* pre_activation,
                const float* output, float* output_gradient, bool gradient_is_pre_activation,
                float* input_gradient) override {
    backward_inputs(context, batch, {input}, pre_activation, output, output_gradient, gradient_is_pre_activation,
                    {input_gradient});
  }
};

const char* merge_kind_name(MergeKind kind) {
  switch (kind) {
    case MergeKind::add: return "Add";
    case MergeKind::subtract: return "Subtract";
    case MergeKind::multiply: return "Multiply";
    case MergeKind::average: return "Average";
    case MergeKind::maximum: return "Maximum";
    case MergeKind::minimum: return "Minimum";
    case MergeKind::divide: return "TrueDivide";
  }
  return "Merge";
}

class MergeLayer final : public MultiInputLayer {
 public:
  explicit MergeLayer(MergeKind kind) : kind_(kind) {}
  std::string kind() const override { return merge_kind_name(kind_); }
  bool selects_a_maximum() const override { return kind_ == MergeKind::maximum || kind_ == MergeKind::minimum; }
  bool accepts_output_activation() const override { return true; }

  SampleShape configure_inputs(const std::vector<SampleShape>& inputs) override {
    if ((kind_ == MergeKind::subtract || kind_ == MergeKind::divide) && inputs.size() != 2) {
      throw std::invalid_argument(std::string("A `") + merge_kind_name(kind_) +
                                  "` layer should be called on exactly 2 inputs. Received: " +
                                  std::to_string(inputs.size()) + " inputs");
    }
    if (inputs.empty()) throw std::invalid_argument("A merge layer should be called on at least 1 input");
    params_.kind = kind_;
    params_.inputs = inputs;
    params_.output = merge_output_shape(inputs);
    return params_.output;
  }

  void forward_inputs(const StepContext& context, int64_t batch, const std::vector<const float*>& inputs, float*,
                      float* output) override {
    MergeParams params = params_;
    params.batch = batch;
    params.output_activation = output_activation;
    context.kernels.merge_forward(params, inputs.data(), output);
  }

  // With a fused activation output_gradient is the activated output's (output).
  void backward_inputs(const StepContext& context, int64_t batch, const std::vector<const float*>& inputs,
                       const float*, const float* output, float* output_gradient, bool,
                       const std::vector<float*>& input_gradients) override {
    MergeParams params = params_;
    params.batch = batch;
    params.output_activation = output_activation;
    context.kernels.merge_backward(params, inputs.data(), output, output_gradient, input_gradients.data());
  }

 private:
  MergeKind kind_;
  MergeParams params_;
};

class ConcatenateLayer final : public MultiInputLayer {
 public:
  explicit ConcatenateLayer(int64_t axis) : axis_(axis) {
    if (axis < 0 || axis > 2) {
      throw std::invalid_argument("Concatenate's sample axis must be 0 (height), 1 (width) or 2 (channels). "
                                  "Received: axis=" + std::to_string(axis));
    }
  }
  std::string kind() const override { return "Concatenate"; }

  SampleShape configure_inputs(const std::vector<SampleShape>& inputs) override {
    const SampleShape output = concatenate_output_shape(inputs, axis_);
    params_ = make_concatenate_params(1, inputs, axis_);  // params_.outer: per sample
    return output;
  }

  void forward_inputs(const StepContext& context, int64_t batch, const std::vector<const float*>& inputs, float*,
                      float* output) override {
    ConcatenateParams params = params_;
    params.outer = batch * params_.outer;
    context.kernels.concatenate_forward(params, inputs.data(), output);
  }

  void backward_inputs(const StepContext& context, int64_t batch, const std::vector<const float*>&, const float*,
                       const float*, float* output_gradient, bool, const std::vector<float*>& input_gradients) override {
    ConcatenateParams params = params_;
    params.outer = batch * params_.outer;
    context.kernels.concatenate_backward(params, output_gradient, input_gradients.data());
  }

 private:
  int64_t axis_;
  ConcatenateParams params_;
};

}  // namespace

SampleShape Layer::configure_inputs(const std::vector<SampleShape>& inputs) {
  if (inputs.size() != 1) {
    throw std::invalid_argument("a " + kind() + " layer takes one input. Received: " + std::to_string(inputs.size()) +
                                " inputs");
  }
  return configure(inputs[0]);
}

std::unique_ptr<Layer> make_merge(MergeKind kind) { return std::make_unique<MergeLayer>(kind); }
std::unique_ptr<Layer> make_concatenate(int64_t axis) { return std::make_unique<ConcatenateLayer>(axis); }

int64_t Layer::parameter_count() const {
  int64_t total = 0;
  for (const auto& shape : parameter_shapes()) {
    int64_t count = 1;
    for (int64_t dimension : shape) count *= dimension;
    total += count;
  }
  return total;
}

std::unique_ptr<Layer> make_conv2d(int64_t filters, int64_t kernel_height, int64_t kernel_width,
                                   int64_t stride_height, int64_t stride_width,
                                   int64_t dilation_height, int64_t dilation_width,
                                   Padding padding, bool use_bias, Activation activation, int64_t groups) {
  if (groups <= 0) throw std::invalid_argument("groups must be positive. Received: groups=" + std::to_string(groups));
  return std::make_unique<Conv2DLayer>(filters, kernel_height, kernel_width, stride_height,
                                       stride_width, dilation_height, dilation_width, padding,
                                       use_bias, activation, groups);
}
std::unique_ptr<Layer> make_depthwise_conv2d(int64_t depth_multiplier, int64_t kernel_height, int64_t kernel_width,
                                             int64_t stride_height, int64_t stride_width, int64_t dilation_height,
                                             int64_t dilation_width, Padding padding, bool use_bias,
                                             Activation activation) {
  if (depth_multiplier <= 0) {
    throw std::invalid_argument("depth_multiplier must be positive. Received: depth_multiplier=" +
                                std::to_string(depth_multiplier));
  }
  return std::make_unique<DepthwiseConv2DLayer>(depth_multiplier, kernel_height, kernel_width, stride_height,
                                                stride_width, dilation_height, dilation_width, padding, use_bias,
                                                activation);
}
std::unique_ptr<Layer> make_dense(int64_t units, bool use_bias, Activation activation) {
  return std::make_unique<DenseLayer>(units, use_bias, activation);
}
std::unique_ptr<Layer> make_pool2d(bool average, bool global, int64_t pool_height, int64_t pool_width,
                                   int64_t stride_height, int64_t stride_width, Padding padding) {
  return std::make_unique<Pool2DLayer>(average, global, pool_height, pool_width, stride_height,
                                       stride_width, padding);
}
std::unique_ptr<Layer> make_flatten() { return std::make_unique<ReshapeLayer>("Flatten", SampleShape{0, 0, 0}); }
std::unique_ptr<Layer> make_reshape(const SampleShape& target) {
  if (target.height <= 0 || target.width <= 0 || target.channels <= 0) {
    throw std::invalid_argument("Reshape target dimensions must be positive. Received: target_shape=(" +
                                std::to_string(target.height) + ", " + std::to_string(target.width) + ", " +
                                std::to_string(target.channels) + ")");
  }
  checked_product({target.height, target.width, target.channels}, "the Reshape target");
  return std::make_unique<ReshapeLayer>("Reshape", target);
}
std::unique_ptr<Layer> make_zero_padding2d(int64_t top, int64_t bottom, int64_t left, int64_t right) {
  return std::make_unique<ZeroPadding2DLayer>(top, bottom, left, right);
}
std::unique_ptr<Layer> make_relu(const std::string& kind, float max_value, float negative_slope, float threshold) {
  return std::make_unique<ReluLayer>(kind, max_value, negative_slope, threshold);
}
std::unique_ptr<Layer> make_layer_scale() { return std::make_unique<LayerScaleLayer>(); }
std::unique_ptr<Layer> make_rescaling(float scale, float offset) {
  return std::make_unique<RescalingLayer>(std::vector<float>{scale}, std::vector<float>{offset});
}
std::unique_ptr<Layer> make_channel_rescaling(std::vector<float> scale, std::vector<float> offset) {
  return std::make_unique<RescalingLayer>(std::move(scale), std::move(offset));
}
std::unique_ptr<Layer> make_separable_conv2d(int64_t filters, int64_t depth_multiplier, int64_t kernel_height,
                                             int64_t kernel_width, int64_t stride_height, int64_t stride_width,
                                             int64_t dilation_height, int64_t dilation_width, Padding padding,
                                             bool use_bias, Activation activation) {
  if (depth_multiplier <= 0) {
    throw std::invalid_argument("Invalid value for argument `depth_multiplier`. Expected a strictly positive value. "
                                "Received depth_multiplier=" + std::to_string(depth_multiplier) + ".");
  }
  if (filters <= 0) {
    throw std::invalid_argument("Invalid value for argument `filters`. Expected a strictly positive value. "
                                "Received filters=" + std::to_string(filters) + ".");
  }
  return std::make_unique<SeparableConv2DLayer>(filters, depth_multiplier, kernel_height, kernel_width, stride_height,
                                                stride_width, dilation_height, dilation_width, padding, use_bias,
                                                activation);
}
std::unique_ptr<Layer> make_cropping2d(int64_t top, int64_t bottom, int64_t left, int64_t right) {
  return std::make_unique<Cropping2DLayer>(top, bottom, left, right);
}
std::unique_ptr<Layer> make_upsampling2d(int64_t size_height, int64_t size_width, bool bilinear) {
  return std::make_unique<UpSampling2DLayer>(size_height, size_width, bilinear);
}
std::unique_ptr<Layer> make_identity() { return std::make_unique<IdentityLayer>(); }
std::unique_ptr<Layer> make_batch_norm(float momentum, float epsilon, bool center, bool scale) {
  return std::make_unique<BatchNormLayer>(momentum, epsilon, center, scale);
}
std::unique_ptr<Layer> make_dropout(float rate, int64_t seed) {
  return std::make_unique<DropoutLayer>(rate, seed);
}
std::unique_ptr<Layer> make_elu(float alpha) {
  if (!std::isfinite(alpha)) throw std::invalid_argument("ELU: `alpha` must be a finite number. Received: alpha=" + std::to_string(alpha));
  return std::make_unique<EluLayer>(alpha);
}
std::unique_ptr<Layer> make_prelu(const std::vector<int64_t>& alpha_shape, bool shared_height, bool shared_width,
                                  bool shared_channels) {
  int64_t size = 1;
  for (const int64_t dimension : alpha_shape) {
    if (dimension <= 0) throw std::invalid_argument("PReLU: alpha dimensions must be positive. Received: " + std::to_string(dimension));
    size = checked_multiply(size, dimension, "the PReLU alpha");
  }
  return std::make_unique<PReluLayer>(alpha_shape, shared_height, shared_width, shared_channels);
}
std::unique_ptr<Layer> make_noise(const std::string& kind, const NoiseParams& params, int64_t seed) {
  if (params.kind != NoiseKind::gaussian_noise && !(params.rate >= 0.0f && params.rate < 1.0f)) {
    throw std::invalid_argument(kind + ": `rate` must be in [0, 1). Received: rate=" + std::to_string(params.rate));
  }
  if (params.kind == NoiseKind::gaussian_noise && !(params.stddev >= 0.0f && std::isfinite(params.stddev))) {
    throw std::invalid_argument(kind + ": `stddev` must be a finite number >= 0. Received: stddev=" +
                                std::to_string(params.stddev));
  }
  return std::make_unique<NoiseLayer>(kind, params, seed);
}
std::unique_ptr<Layer> make_activation(Activation activation) {
  return std::make_unique<ActivationLayer>(activation);
}

}  // namespace fastcnn::runtime
