#include "runtime/network.h"

#include "ops/checked.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace fastcnn::runtime {
// Adds the time since the last lap to seconds[slot] when profiling (seconds non-empty).
class PhaseTimer {
 public:
  explicit PhaseTimer(std::vector<double>& seconds) : seconds_(seconds), last_(now()) {}
  void lap(size_t slot) {
    if (seconds_.empty()) return;
    const auto current = now();
    seconds_[slot] += std::chrono::duration<double>(current - last_).count();
    last_ = current;
  }

 private:
  static std::chrono::steady_clock::time_point now() { return std::chrono::steady_clock::now(); }
  std::vector<double>& seconds_;
  std::chrono::steady_clock::time_point last_;
};

void Network::add(std::unique_ptr<Layer> layer) {
  if (built_) throw std::logic_error("cannot add a layer to a network that is already built");
  layer->index = static_cast<int64_t>(layers_.size());
  layers_.push_back(std::move(layer));
  regularization_.emplace_back();
}

void Network::build(const SampleShape& input_shape) {
  if (built_) throw std::logic_error("network is already built");
  if (layers_.empty()) throw std::invalid_argument("a model needs at least one layer");
  if (input_shape.height <= 0 || input_shape.width <= 0 || input_shape.channels <= 0) {
    throw std::invalid_argument("input shape dimensions must be positive");
  }
  input_shape_ = input_shape;
  SampleShape shape = input_shape;
  int64_t offset = 0;
  for (auto& layer : layers_) {
    layer->input_shape = shape;
    try {
      shape = layer->configure(shape);
      checked_product({shape.height, shape.width, shape.channels}, "the layer's output");
    } catch (const std::invalid_argument& error) {
      throw std::invalid_argument("Layer #" + std::to_string(layer->index) + " (" + layer->kind() +
                                  "): " + error.what());
    }
    layer->output_shape = shape;
    layer->parameter_offset = offset;
    offset = checked_add(offset, layer->parameter_count(), "the model's parameter count");
  }
  require_allocatable(2 * offset, sizeof(float), "the model's parameters and their gradients");
  parameters_.assign(static_cast<size_t>(offset), 0.0f);
  gradients_.assign(static_cast<size_t>(offset), 0.0f);
  update_fusion();
  built_ = true;
  update_trainable_variables();
}

SampleShape Network::output_shape() const {
  return layers_.empty() ? input_shape_ : layers_.back()->output_shape;
}

void Network::set_trainable(int64_t layer_index, bool trainable) {
  if (layer_index < 0 || layer_index >= static_cast<int64_t>(layers_.size())) {
    throw std::out_of_range("layer index " + std::to_string(layer_index) + " out of range");
  }
  layers_[static_cast<size_t>(layer_index)]->trainable = trainable;
  update_trainable_variables();
}

void Network::update_fusion() {
  // A fused ReLU followed by a layer that can apply its derivative: one memory pass less per step.
  // Not when the ReLU's layer has an activity penalty: its gradient joins the output's, before
  // the ReLU's derivative.
  for (size_t i = 1; i < layers_.size(); ++i) {
    layers_[i]->relu_input = layers_[i - 1]->outputs_relu() && layers_[i]->accepts_relu_input() &&
                             !regularization_[i - 1].on_activity();
  }
  // A convolution computing the max pooling after it never stores its own output: not when an
  // activity penalty reads that output.
  max_pool_fusion_.assign(layers_.size(), false);
  for (size_t i = 0; i + 1 < layers_.size(); ++i) {
    max_pool_fusion_[i] = layers_[i]->fuses_max_pool(*layers_[i + 1]) && !regularization_[i].on_activity();
  }
}

void Network::set_max_pool_fusion(bool enabled) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  max_pool_fusion_enabled_ = enabled;
}

std::vector<int64_t> Network::fused_max_pool_layers() const {
  std::vector<int64_t> result;
  for (size_t i = 0; i < max_pool_fusion_.size(); ++i) {
    if (fused_pair(i, INT64_MAX)) result.push_back(static_cast<int64_t>(i));
  }
  return result;
}

void Network::set_regularization(int64_t layer_index, const Regularization& regularization) {
  if (layer_index < 0 || layer_index >= static_cast<int64_t>(layers_.size())) {
    throw std::out_of_range("layer index " + std::to_string(layer_index) + " out of range");
  }
  const float factors[] = {regularization.kernel_l1, regularization.kernel_l2, regularization.bias_l1,
                           regularization.bias_l2, regularization.activity_l1, regularization.activity_l2};
  for (float factor : factors) {
    if (!(factor >= 0.0f) || !std::isfinite(factor)) {
      throw std::invalid_argument("regularization factors must be finite and non-negative");
    }
  }
  const Layer& layer = *layers_[static_cast<size_t>(layer_index)];
  const size_t arrays = built_ ? layer.parameter_shapes().size() : 2;
  if ((regularization.kernel_l1 != 0.0f || regularization.kernel_l2 != 0.0f) && arrays < 1) {
    throw std::invalid_argument("layer " + layer.kind() + " has no kernel to regularize");
  }
  if ((regularization.bias_l1 != 0.0f || regularization.bias_l2 != 0.0f) && arrays < 2) {
    throw std::invalid_argument("layer " + layer.kind() + " has no bias to regularize");
  }
  regularization_[static_cast<size_t>(layer_index)] = regularization;
  if (built_) update_fusion();
}

double Network::activity_penalty(int64_t batch, int64_t loss_batch) {
  double penalty = 0.0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Regularization& regularization = regularization_[i];
    if (!regularization.on_activity()) continue;
    penalty += penalty_sum(outputs_[i], batch * layers_[i]->output_shape.size(), regularization.activity_l1,
                           regularization.activity_l2, penalty_partials_);
  }
  return loss_batch > 0 ? penalty / static_cast<double>(loss_batch) : 0.0;
}

double Network::weight_penalty(bool add_gradients) {
  double penalty = 0.0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = *layers_[i];
    const Regularization& regularization = regularization_[i];
    // Keras penalises trainable weights only: a frozen layer's penalty is a constant it drops.
    if (!regularization.on_weights() || !layer.trainable || layer.trainable_parameter_count() == 0) continue;
    const std::vector<std::vector<int64_t>> shapes = layer.parameter_shapes();
    int64_t offset = layer.parameter_offset;
    for (size_t array = 0; array < shapes.size() && array < 2; ++array) {
      int64_t count = 1;
      for (int64_t dimension : shapes[array]) count *= dimension;
      const float l1 = array == 0 ? regularization.kernel_l1 : regularization.bias_l1;
      const float l2 = array == 0 ? regularization.kernel_l2 : regularization.bias_l2;
      if (l1 != 0.0f || l2 != 0.0f) {
        penalty += penalty_sum(parameters_.data() + offset, count, l1, l2, penalty_partials_);
        // d/dw (l2 * sum w^2) = 2 * l2 * w; doubling is exact, so this is TensorFlow's l2 * (2 w).
        if (add_gradients) {
          add_penalty_gradient(parameters_.data() + offset, gradients_.data() + offset, count, l1, 2.0f * l2);
        }
      }
      offset += count;
    }
  }
  return penalty;
}

void Network::add_output_activity_gradient(int64_t batch, int64_t loss_batch, bool gradient_is_logits,
                                           float* gradient) {
  const Regularization& regularization = regularization_.back();
  if (!regularization.on_activity() || batch <= 0) return;
  // The penalty is divided by the batch size, so its gradient is scaled by 1 / batch; TensorFlow
  // forms (1 / batch) * l and multiplies by 2 y for the square.
  const float inverse_batch = 1.0f / static_cast<float>(loss_batch);
  const float l1_scale = inverse_batch * regularization.activity_l1;
  const float l2_scale = 2.0f * (inverse_batch * regularization.activity_l2);
  const float* output = outputs_.back();
  const int64_t classes = layers_.back()->output_shape.size();
  if (!gradient_is_logits) {
    add_penalty_gradient(output, gradient, batch * classes, l1_scale, l2_scale);
    return;
  }
  // Through softmax y = softmax(z): dz_j += y_j * (g_j - sum_k g_k y_k), g = d penalty / dy.
  std::vector<float> row_gradient(static_cast<size_t>(classes));
  for (int64_t sample = 0; sample < batch; ++sample) {
    const float* y = output + sample * classes;
    double dot = 0.0;
    for (int64_t j = 0; j < classes; ++j) {
      const float sign = y[j] > 0.0f ? 1.0f : (y[j] < 0.0f ? -1.0f : 0.0f);
      row_gradient[j] = l1_scale * sign + l2_scale * y[j];
      dot += static_cast<double>(row_gradient[j]) * y[j];
    }
    for (int64_t j = 0; j < classes; ++j) {
      gradient[sample * classes + j] += y[j] * (row_gradient[j] - static_cast<float>(dot));
    }
  }
}

void Network::configure_optimizer(const OptimizerConfig& config) {
  optimizer_.configure(config, parameter_count());
  optimizer_configured_ = true;
}

void Network::ensure_workspace(int64_t batch) {
  if (batch <= capacity_) return;
  // Layout for `batch` samples: input, then per layer its output (unless a reshape) and logits
  // (if kept), then two gradient buffers as large as the largest activation, then losses.
  const int64_t input_size = input_shape_.size();
  int64_t total = batch * input_size;
  int64_t largest = input_size;
  for (const auto& layer : layers_) {
    const int64_t size = layer->output_shape.size();
    largest = std::max(largest, size);
    if (!layer->is_reshape()) total += batch * size;
    if (layer->keeps_pre_activation()) total += batch * size;
  }
  total += 2 * batch * largest + batch;
  arena_.assign(static_cast<size_t>(total), 0.0f);
  float* cursor = arena_.data();
  auto take = [&cursor](int64_t count) {
    float* start = cursor;
    cursor += count;
    return start;
  };
  input_ = take(batch * input_size);
  outputs_.assign(layers_.size(), nullptr);
  pre_activations_.assign(layers_.size(), nullptr);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int64_t size = layers_[i]->output_shape.size();
    if (!layers_[i]->is_reshape()) outputs_[i] = take(batch * size);
    if (layers_[i]->keeps_pre_activation()) pre_activations_[i] = take(batch * size);
  }
  gradient_a_ = take(batch * largest);
  gradient_b_ = take(batch * largest);
  losses_ = take(batch);
  capacity_ = batch;
}

void Network::gather(const float* x, const int64_t* indices, int64_t batch) {
  const int64_t size = input_shape_.size();
  for (int64_t i = 0; i < batch; ++i) {
    std::memcpy(input_ + i * size, x + indices[i] * size, static_cast<size_t>(size) * sizeof(float));
  }
}

const float* Network::forward(const kernels::KernelTable& kernels, const float* input,
                              int64_t batch, bool training, uint64_t seed, PhaseTimer* timer,
                              int64_t first_sample, int64_t fuse_through) {
  StepContext context{kernels, training, seed, parameters_.data(), nullptr, first_sample};
  const float* current = input;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& layer = *layers_[i];
    if (fused_pair(i, fuse_through)) {
      // This layer writes the next one's (the max pooling's) output; its own stays unwritten.
      layer.forward_max_pool(context, batch, current, *layers_[i + 1], outputs_[i + 1]);
      if (timer != nullptr) timer->lap(1 + i);
      ++i;
      if (timer != nullptr) timer->lap(1 + i);
      current = outputs_[i];
      continue;
    }
    if (layer.is_reshape()) {
      outputs_[i] = const_cast<float*>(current);
    } else {
      layer.forward(context, batch, current, pre_activations_[i], outputs_[i]);
    }
    if (timer != nullptr) timer->lap(1 + i);
    current = outputs_[i];
  }
  return current;
}

StepResult Network::loss_and_gradient(const Targets& targets, const int64_t* indices,
                                      int64_t batch, int64_t loss_batch, float* gradient) {
  const Layer& last = *layers_.back();
  const int64_t classes = last.output_shape.size();
  const float* output = outputs_.back();
  // Softmax output + cross-entropy: the loss reads the logits (as Keras does for a softmax
  // output) and its gradient is the logits' gradient, softmax(z) - t, skipping softmax backward.
  const bool fused_softmax = !from_logits_ && last.activation() == Activation::softmax &&
                             last.keeps_pre_activation();
  const int32_t* labels = nullptr;
  const float* probabilities = nullptr;
  if (targets.labels != nullptr) {
    batch_labels_.resize(static_cast<size_t>(batch));
    for (int64_t i = 0; i < batch; ++i) batch_labels_[i] = targets.labels[indices[i]];
    labels = batch_labels_.data();
  } else {
    batch_probabilities_.resize(static_cast<size_t>(batch * classes));
    for (int64_t i = 0; i < batch; ++i) {
      std::memcpy(batch_probabilities_.data() + i * classes, targets.probabilities + indices[i] * classes,
                  static_cast<size_t>(classes) * sizeof(float));
    }
    probabilities = batch_probabilities_.data();
  }
  CrossEntropyParams params;
  params.batch = batch;
  params.classes = classes;
  params.from_logits = from_logits_ || fused_softmax;
  params.gradient_scale = loss_batch > 0 ? 1.0f / static_cast<float>(loss_batch) : 0.0f;
  kernels::cross_entropy(params, fused_softmax ? pre_activations_.back() : output, labels,
                         probabilities, losses_, gradient);
  if (targets.sample_weights != nullptr) {
    for (int64_t i = 0; i < batch; ++i) {
      const float weight = targets.sample_weights[indices[i]];
      losses_[i] *= weight;
      if (gradient != nullptr) {
        for (int64_t j = 0; j < classes; ++j) gradient[i * classes + j] *= weight;
      }
    }
  }
  StepResult result;
  for (int64_t i = 0; i < batch; ++i) {
    result.loss_sum += losses_[i];
    // Accuracy: the first maximum of the prediction against the label (or the target's argmax).
    const float* row = output + i * classes;
    const int64_t predicted = std::max_element(row, row + classes) - row;
    int64_t expected;
    if (labels != nullptr) {
      expected = labels[i];
    } else {
      const float* target = probabilities + i * classes;
      expected = std::max_element(target, target + classes) - target;
    }
    result.correct += predicted == expected ? 1 : 0;
  }
  return result;
}

StepResult Network::train_step(const float* x, const Targets& targets, const int64_t* indices,
                               int64_t batch, float learning_rate, uint64_t seed) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  if (!built_) throw std::logic_error("network is not built");
  if (!optimizer_configured_) throw std::logic_error("network has no optimizer");
  if (batch <= 0) return {};
  // Profile slots: gather, forward per layer, loss, backward per layer, optimizer, whole step.
  const size_t optimizer_slot = 2 + 2 * layers_.size(), step_slot = optimizer_slot + 1;
  PhaseTimer timer(profile_seconds_), step_timer(profile_seconds_);
  double penalty = 0.0;
  StepResult result = forward_backward(x, targets, indices, batch, batch, 0, seed, timer, {}, penalty);
  // Penalties on the weights before this update, their gradients joining the data's.
  penalty += weight_penalty(true);
  result.loss_sum += static_cast<double>(batch) * penalty;
  optimizer_.apply(learning_rate, parameters_.data(), gradients_.data(), trainable_variables_);
  timer.lap(optimizer_slot);
  step_timer.lap(step_slot);
  return result;
}

StepResult Network::compute_gradients(const float* x, const Targets& targets, const int64_t* indices,
                                      int64_t batch, int64_t loss_batch, int64_t first_sample, uint64_t seed,
                                      const std::function<void(int64_t)>& on_layer_gradient) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  if (!built_) throw std::logic_error("network is not built");
  if (batch < 0 || loss_batch < batch || first_sample < 0 || first_sample > loss_batch - batch) {
    throw std::invalid_argument("compute_gradients needs 0 <= batch <= loss_batch and 0 <= first_sample <= "
                                "loss_batch - batch. Received: batch=" + std::to_string(batch) + ", loss_batch=" +
                                std::to_string(loss_batch) + ", first_sample=" + std::to_string(first_sample));
  }
  if (batch == 0) {
    // A rank whose data ran out still joins the exchange: with zero gradients, its share is nothing.
    std::fill(gradients_.begin(), gradients_.end(), 0.0f);
    if (on_layer_gradient) {
      for (size_t i = layers_.size(); i-- > 0;) on_layer_gradient(static_cast<int64_t>(i));
    }
    return {};
  }
  PhaseTimer timer(profile_seconds_);
  double penalty = 0.0;
  StepResult result = forward_backward(x, targets, indices, batch, loss_batch, first_sample, seed, timer,
                                       on_layer_gradient, penalty);
  result.loss_sum += static_cast<double>(loss_batch) * penalty;
  return result;
}

double Network::apply_gradients(float learning_rate) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  if (!built_) throw std::logic_error("network is not built");
  if (!optimizer_configured_) throw std::logic_error("network has no optimizer");
  const double penalty = weight_penalty(true);
  optimizer_.apply(learning_rate, parameters_.data(), gradients_.data(), trainable_variables_);
  return penalty;
}

StepResult Network::forward_backward(const float* x, const Targets& targets, const int64_t* indices,
                                     int64_t batch, int64_t loss_batch, int64_t first_sample, uint64_t seed,
                                     PhaseTimer& timer, const std::function<void(int64_t)>& on_layer_gradient,
                                     double& penalty) {
  const kernels::KernelTable& kernels = kernels::active();
  const size_t layer_count = layers_.size();
  const size_t loss_slot = 1 + layer_count, backward_slot = loss_slot + 1;
  ensure_workspace(batch);
  gather(x, indices, batch);
  timer.lap(0);
  // The earliest layer that needs an input gradient: nothing before the first trainable layer.
  size_t first_needed = layers_.size();
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i]->trainable && layers_[i]->trainable_parameter_count() > 0) {
      first_needed = i;
      break;
    }
  }
  // A fused convolution gives no input gradient: only those up to the first trainable layer fuse.
  const int64_t fuse_through = static_cast<int64_t>(first_needed);
  forward(kernels, input_, batch, true, seed, &timer, first_sample, fuse_through);

  const Layer& last = *layers_.back();
  const bool fused_softmax = !from_logits_ && last.activation() == Activation::softmax &&
                             last.keeps_pre_activation();
  float* gradient = gradient_a_;
  float* other = gradient_b_;
  StepResult result = loss_and_gradient(targets, indices, batch, loss_batch, gradient);
  penalty = activity_penalty(batch, loss_batch);
  add_output_activity_gradient(batch, loss_batch, fused_softmax, gradient);
  timer.lap(loss_slot);

  StepContext context{kernels, true, seed, parameters_.data(), gradients_.data(), first_sample};
  for (size_t i = layers_.size(); i-- > first_needed;) {
    Layer& layer = *layers_[i];
    const float* layer_input = i == 0 ? input_ : outputs_[i - 1];
    if (layer.is_reshape()) {
      if (on_layer_gradient) on_layer_gradient(static_cast<int64_t>(i));
      continue;  // gradient passes through unchanged
    }
    float* input_gradient = i > first_needed ? other : nullptr;
    // The gradient arrives as the pre-activation's when the loss fused softmax into it, or when the
    // next layer already applied this layer's ReLU derivative (relu_input).
    const bool last = i + 1 == layers_.size();
    const bool gradient_is_pre_activation = last ? fused_softmax : layers_[i + 1]->relu_input;
    // An activity penalty's gradient joins the output's (update_fusion keeps it unmasked here).
    const Regularization& regularization = regularization_[i];
    if (!last && regularization.on_activity()) {
      const float inverse_batch = 1.0f / static_cast<float>(loss_batch);
      add_penalty_gradient(outputs_[i], gradient, batch * layer.output_shape.size(),
                           inverse_batch * regularization.activity_l1,
                           2.0f * (inverse_batch * regularization.activity_l2));
    }
    if (i >= 1 && fused_pair(i - 1, fuse_through)) {
      // A max pooling the convolution before it computed (i - 1 == first_needed): the
      // convolution's parameter gradients come from the pooled gradient, and nothing before it
      // needs one.
      Layer& convolution = *layers_[i - 1];
      convolution.backward_max_pool(context, batch, i == 1 ? input_ : outputs_[i - 2], layer, outputs_[i], gradient);
      timer.lap(backward_slot + i - 1);  // profiled as the convolution's backward pass
      if (on_layer_gradient) {
        on_layer_gradient(static_cast<int64_t>(i));
        on_layer_gradient(static_cast<int64_t>(i - 1));
      }
      --i;
      continue;
    }
    layer.backward(context, batch, layer_input, pre_activations_[i], outputs_[i], gradient,
                   gradient_is_pre_activation, input_gradient);
    if (input_gradient != nullptr) std::swap(gradient, other);
    timer.lap(backward_slot + i);
    if (on_layer_gradient) on_layer_gradient(static_cast<int64_t>(i));
  }
  // Layers before the first trainable one have no gradients to wait for.
  if (on_layer_gradient) {
    for (size_t i = first_needed; i-- > 0;) on_layer_gradient(static_cast<int64_t>(i));
  }
  return result;
}

void Network::set_profiling(bool enabled) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  profile_names_.clear();
  profile_seconds_.clear();
  if (!enabled) return;
  profile_names_.push_back("gather batch");
  for (const auto& layer : layers_) profile_names_.push_back(layer->kind() + " #" + std::to_string(layer->index) + " forward");
  profile_names_.push_back("loss");
  for (const auto& layer : layers_) profile_names_.push_back(layer->kind() + " #" + std::to_string(layer->index) + " backward");
  profile_names_.push_back("optimizer");
  profile_names_.push_back("train_step total");
  profile_seconds_.assign(profile_names_.size(), 0.0);
}

std::vector<std::pair<std::string, double>> Network::profile() const {
  std::vector<std::pair<std::string, double>> result;
  for (size_t i = 0; i < profile_names_.size(); ++i) result.emplace_back(profile_names_[i], profile_seconds_[i]);
  return result;
}

void Network::update_trainable_variables() {
  std::vector<std::pair<int64_t, int64_t>>& variables = trainable_variables_;
  variables.clear();
  for (const auto& layer : layers_) {
    if (!layer->trainable) continue;
    int64_t begin = layer->parameter_offset;
    const int64_t end = layer->parameter_offset + layer->trainable_parameter_count();
    for (const auto& shape : layer->parameter_shapes()) {
      if (begin >= end) break;
      int64_t count = 1;
      for (int64_t dimension : shape) count *= dimension;
      variables.emplace_back(begin, begin + count);
      begin += count;
    }
  }
}

StepResult Network::test_step(const float* x, const Targets& targets, const int64_t* indices,
                              int64_t batch) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  if (!built_) throw std::logic_error("network is not built");
  if (batch <= 0) return {};
  ensure_workspace(batch);
  gather(x, indices, batch);
  forward(kernels::active(), input_, batch, false, 0);
  StepResult result = loss_and_gradient(targets, indices, batch, batch, nullptr);
  // Keras's evaluation loss includes the regularization penalties too.
  result.loss_sum += static_cast<double>(batch) * (activity_penalty(batch, batch) + weight_penalty(false));
  return result;
}

void Network::predict(const float* x, int64_t batch, float* output) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  if (!built_) throw std::logic_error("network is not built");
  if (batch <= 0) return;
  // Inference treats every sample alone, so a large batch runs in slices whose activations stay in
  // cache (results are bitwise those of one pass: no computation mixes samples).
  constexpr int64_t kPredictSlice = 64;
  const int64_t input_size = input_shape_.size(), output_size = output_shape().size();
  ensure_workspace(std::min(batch, kPredictSlice));
  for (int64_t first = 0; first < batch; first += kPredictSlice) {
    const int64_t count = std::min(kPredictSlice, batch - first);
    const float* result = forward(kernels::active(), x + first * input_size, count, false, 0);
    std::memcpy(output + first * output_size, result, static_cast<size_t>(count * output_size) * sizeof(float));
  }
}

void Network::forward_training(const float* x, int64_t batch, uint64_t seed, float* output) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  if (!built_) throw std::logic_error("network is not built");
  if (batch <= 0) return;
  ensure_workspace(batch);
  const float* result = forward(kernels::active(), x, batch, true, seed);
  std::memcpy(output, result, static_cast<size_t>(batch * output_shape().size()) * sizeof(float));
}

std::vector<std::vector<float>> Network::forward_training_layer_outputs(const float* x, int64_t batch,
                                                                        uint64_t seed) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  if (!built_) throw std::logic_error("network is not built");
  std::vector<std::vector<float>> result(layers_.size());
  if (batch <= 0) return result;
  ensure_workspace(batch);
  forward(kernels::active(), x, batch, true, seed, nullptr, 0, -1);  // every layer's own output
  for (size_t i = 0; i < layers_.size(); ++i) {
    result[i].assign(outputs_[i], outputs_[i] + batch * layers_[i]->output_shape.size());
  }
  return result;
}

}  // namespace fastcnn::runtime
