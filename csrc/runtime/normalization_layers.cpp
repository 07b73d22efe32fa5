// LayerNormalization, GroupNormalization and Normalization as runtime layers (ops/normalization.h).
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "runtime/layers.h"

namespace fastcnn::runtime {
namespace {

// Layer and group normalization: per-sample statistics (the same in training and inference).
// Parameter slice: [gamma], [beta], each params.affine_size() long, in Keras's shapes.
class LayerNormLayer final : public Layer {
 public:
  using MakeParams = std::function<LayerNormParams(int64_t batch, const SampleShape& shape)>;
  using AffineShape = std::function<std::vector<int64_t>(const SampleShape& shape)>;

  LayerNormLayer(std::string kind, MakeParams make_params, AffineShape affine_shape, bool has_gamma, bool has_beta)
      : kind_(std::move(kind)),
        make_params_(std::move(make_params)),
        affine_shape_(std::move(affine_shape)),
        has_gamma_(has_gamma),
        has_beta_(has_beta) {}

  std::string kind() const override { return kind_; }

  SampleShape configure(const SampleShape& input) override {
    params_ = make_params_(1, input);  // checks the shape (e.g. groups against channels)
    return input;
  }

  std::vector<std::vector<int64_t>> parameter_shapes() const override {
    std::vector<std::vector<int64_t>> shapes;
    const int64_t count = (has_gamma_ ? 1 : 0) + (has_beta_ ? 1 : 0);
    for (int64_t i = 0; i < count; ++i) shapes.push_back(affine_shape_(input_shape));
    return shapes;
  }

  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    const LayerNormParams params = for_batch(batch);
    // Grows to the largest batch seen, then no allocation.
    if (mean_.size() < static_cast<size_t>(params.statistics_size())) {
      mean_.resize(static_cast<size_t>(params.statistics_size()));
      inverse_std_.resize(static_cast<size_t>(params.statistics_size()));
    }
    const float* gamma = has_gamma_ ? context.parameters + parameter_offset : nullptr;
    const float* beta = has_beta_ ? context.parameters + parameter_offset + (has_gamma_ ? params.affine_size() : 0)
                                  : nullptr;
    context.kernels.layer_norm_forward(params, input, gamma, beta, output, mean_.data(), inverse_std_.data());
  }

  void backward(const StepContext& context, int64_t batch, const float* input, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    const LayerNormParams params = for_batch(batch);
    const float* gamma = has_gamma_ ? context.parameters + parameter_offset : nullptr;
    float* gamma_gradient = nullptr;
    float* beta_gradient = nullptr;
    if (trainable && context.gradients != nullptr) {
      float* base = context.gradients + gradient_offset;
      gamma_gradient = has_gamma_ ? base : nullptr;
      beta_gradient = has_beta_ ? base + (has_gamma_ ? params.affine_size() : 0) : nullptr;
    }
    if (input_gradient == nullptr && gamma_gradient == nullptr && beta_gradient == nullptr) return;
    context.kernels.layer_norm_backward(params, input, mean_.data(), inverse_std_.data(), gamma, output_gradient,
                                        input_gradient, gamma_gradient, beta_gradient);
  }

 private:
  LayerNormParams for_batch(int64_t batch) const {
    LayerNormParams params = params_;
    params.outer = params_.outer * batch;  // params_ was made for one sample
    return params;
  }

  std::string kind_;
  MakeParams make_params_;
  AffineShape affine_shape_;
  bool has_gamma_, has_beta_;
  LayerNormParams params_;
  std::vector<float> mean_, inverse_std_;
};

// Keras's Normalization. Parameter slice (adaptable: no constants given): mean, variance (the
// kept axes' shape) and count (a scalar Keras keeps and never reads); with constants, none.
class NormalizationLayer final : public Layer {
 public:
  NormalizationLayer(bool keep_height, bool keep_width, bool keep_channels, bool invert, std::vector<float> mean,
                     std::vector<float> variance)
      : mean_(std::move(mean)), variance_(std::move(variance)) {
    params_.keep_height = keep_height;
    params_.keep_width = keep_width;
    params_.keep_channels = keep_channels;
    params_.invert = invert;
    if (mean_.size() != variance_.size()) {
      throw std::invalid_argument("Normalization's `mean` and `variance` must have the same size. Received: " +
                                  std::to_string(mean_.size()) + " and " + std::to_string(variance_.size()) +
                                  " values");
    }
  }
  std::string kind() const override { return "Normalization"; }

  SampleShape configure(const SampleShape& input) override {
    params_.shape = input;
    if (!mean_.empty() && static_cast<int64_t>(mean_.size()) != params_.kept_size()) {
      throw std::invalid_argument("Normalization's `mean` and `variance` must hold one value per position of the "
                                  "kept axes (" + std::to_string(params_.kept_size()) + "). Received: " +
                                  std::to_string(mean_.size()) + " values");
    }
    return input;
  }

  std::vector<std::vector<int64_t>> parameter_shapes() const override {
    if (!mean_.empty()) return {};
    std::vector<int64_t> kept;
    if (params_.keep_height) kept.push_back(input_shape.height);
    if (params_.keep_width) kept.push_back(input_shape.width);
    if (params_.keep_channels) kept.push_back(input_shape.channels);
    return {kept, kept, {}};
  }
  int64_t trainable_parameter_count() const override { return 0; }

  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    NormalizationParams params = params_;
    params.batch = batch;
    context.kernels.normalization_forward(params, input, mean(context), variance(context), output);
  }

  // dx = dy / d (invert: dy * d): the forward kernel with a zero mean.
  void backward(const StepContext& context, int64_t batch, const float*, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient == nullptr) return;
    NormalizationParams params = params_;
    params.batch = batch;
    context.kernels.normalization_forward(params, output_gradient, nullptr, variance(context), input_gradient);
  }

 private:
  const float* mean(const StepContext& context) const {
    return mean_.empty() ? context.parameters + parameter_offset : mean_.data();
  }
  const float* variance(const StepContext& context) const {
    return variance_.empty() ? context.parameters + parameter_offset + params_.kept_size() : variance_.data();
  }

  NormalizationParams params_;
  std::vector<float> mean_, variance_;
};

}  // namespace

std::unique_ptr<Layer> make_layer_norm(bool normalize_height, bool normalize_width, bool normalize_channels,
                                       float epsilon, bool has_gamma, bool has_beta, bool rms_scaling) {
  auto make_params = [=](int64_t batch, const SampleShape& shape) {
    return make_layer_norm_params(batch, shape, normalize_height, normalize_width, normalize_channels, epsilon,
                                  !rms_scaling);
  };
  make_params(1, SampleShape{});  // checks the arguments now, before any input is known
  auto affine_shape = [=](const SampleShape& shape) {
    std::vector<int64_t> sizes;
    if (normalize_height) sizes.push_back(shape.height);
    if (normalize_width) sizes.push_back(shape.width);
    if (normalize_channels) sizes.push_back(shape.channels);
    return sizes;
  };
  return std::make_unique<LayerNormLayer>("LayerNormalization", make_params, affine_shape, has_gamma, has_beta);
}

std::unique_ptr<Layer> make_group_norm(int64_t groups, float epsilon, bool has_gamma, bool has_beta) {
  auto make_params = [=](int64_t batch, const SampleShape& shape) {
    return make_group_norm_params(batch, shape, groups, epsilon);
  };
  make_params(1, SampleShape{1, 1, groups > 0 ? groups : 1});  // checks groups and epsilon now
  auto affine_shape = [](const SampleShape& shape) { return std::vector<int64_t>{shape.channels}; };
  return std::make_unique<LayerNormLayer>("GroupNormalization", make_params, affine_shape, has_gamma, has_beta);
}

std::unique_ptr<Layer> make_normalization(bool keep_height, bool keep_width, bool keep_channels, bool invert,
                                          std::vector<float> mean, std::vector<float> variance) {
  return std::make_unique<NormalizationLayer>(keep_height, keep_width, keep_channels, invert, std::move(mean),
                                              std::move(variance));
}

}  // namespace fastcnn::runtime
