#include "runtime/network.h"

#include "ops/checked.h"
#include "parallel.h"

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


namespace {

// "[a, b, ...]": a list of tensor ids as Python prints it, for messages.
std::string ids_text(const std::vector<int64_t>& ids) {
  std::string text = "[";
  for (size_t i = 0; i < ids.size(); ++i) text += (i > 0 ? ", " : "") + std::to_string(ids[i]);
  return text + "]";
}

}  // namespace

void Network::require_built() const {
  if (!built_) throw std::logic_error("network is not built");
}

int64_t Network::add_input(const SampleShape& shape) {
  if (built_) throw std::logic_error("cannot add an input to a network that is already built");
  if (!layers_.empty()) {
    throw std::logic_error("declare every input before the first node. Received: add_input after " +
                           std::to_string(layers_.size()) + " nodes");
  }
  if (shape.height <= 0 || shape.width <= 0 || shape.channels <= 0) {
    throw std::invalid_argument("input shape dimensions must be positive. Received: (" + std::to_string(shape.height) +
                                ", " + std::to_string(shape.width) + ", " + std::to_string(shape.channels) + ")");
  }
  checked_product({shape.height, shape.width, shape.channels}, "the input's size");
  input_shapes_.push_back(shape);
  return -static_cast<int64_t>(input_shapes_.size());
}

int64_t Network::add(std::unique_ptr<Layer> layer) {
  if (built_) throw std::logic_error("cannot add a layer to a network that is already built");
  layer->index = static_cast<int64_t>(layers_.size());
  layers_.push_back(std::move(layer));
  nodes_.emplace_back();
  regularization_.emplace_back();
  return static_cast<int64_t>(layers_.size()) - 1;
}

void Network::connect(int64_t node, const std::vector<int64_t>& inputs, int64_t shares_with) {
  if (built_) throw std::logic_error("cannot connect a node of a network that is already built");
  if (node < 0 || node >= static_cast<int64_t>(layers_.size())) {
    throw std::out_of_range("`node` must be in [0, " + std::to_string(layers_.size()) +
                            ") for this network. Received: node=" + std::to_string(node));
  }
  for (int64_t id : inputs) {
    // Inputs are earlier tensors only: the node order is a topological order, cycles impossible.
    if (id >= node || id < -static_cast<int64_t>(input_shapes_.size())) {
      throw std::invalid_argument("node " + std::to_string(node) + " reads tensor " + std::to_string(id) +
                                  ", which is not an earlier node's output or a declared input (" +
                                  std::to_string(input_shapes_.size()) + " declared). Received: inputs=" +
                                  ids_text(inputs));
    }
  }
  if (shares_with >= node || shares_with < -1) {
    throw std::invalid_argument("node " + std::to_string(node) + " can share the parameters of an earlier node "
                                "only. Received: shares_with=" + std::to_string(shares_with));
  }
  const int64_t requested = shares_with;
  if (shares_with >= 0 && nodes_[static_cast<size_t>(shares_with)].shares_with >= 0) {
    shares_with = nodes_[static_cast<size_t>(shares_with)].shares_with;
  }
  if (shares_with >= 0 && layers_[static_cast<size_t>(shares_with)]->kind() != layers_[static_cast<size_t>(node)]->kind()) {
    throw std::invalid_argument("node " + std::to_string(node) + " (" + layers_[static_cast<size_t>(node)]->kind() +
                                ") cannot share the parameters of a " + layers_[static_cast<size_t>(shares_with)]->kind() +
                                ". Received: shares_with=" + std::to_string(requested));
  }
  nodes_[static_cast<size_t>(node)].inputs = inputs;
  nodes_[static_cast<size_t>(node)].shares_with = shares_with;
}

void Network::set_outputs(const std::vector<int64_t>& outputs) {
  if (built_) throw std::logic_error("cannot change the outputs of a network that is already built");
  if (outputs.empty()) throw std::invalid_argument("a model needs at least one output. Received: outputs=[]");
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i] < 0 || outputs[i] >= static_cast<int64_t>(layers_.size())) {
      throw std::invalid_argument("output " + std::to_string(i) + " is tensor " + std::to_string(outputs[i]) +
                                  ", which is not a node's output (model inputs cannot be outputs). Received: "
                                  "outputs=" + ids_text(outputs));
    }
    for (size_t j = 0; j < i; ++j) {
      if (outputs[j] == outputs[i]) {
        throw std::invalid_argument("tensor " + std::to_string(outputs[i]) + " is listed twice among the outputs. "
                                    "Received: outputs=" + ids_text(outputs));
      }
    }
  }
  outputs_ = outputs;
}

int64_t Network::parameter_owner(int64_t node) const {
  const int64_t shares = nodes_.at(static_cast<size_t>(node)).shares_with;
  return shares >= 0 ? shares : node;
}

std::vector<const float*> Network::last_outputs() const {
  std::vector<const float*> result;
  for (int64_t id : outputs_) result.push_back(values_.empty() ? nullptr : values_[tensor_index(id)]);
  return result;
}

bool Network::is_output(int64_t id) const {
  return std::find(outputs_.begin(), outputs_.end(), id) != outputs_.end();
}

void Network::build(const SampleShape& input_shape) {
  if (built_) throw std::logic_error("network is already built");
  if (input_shapes_.empty()) {
    if (input_shape.height <= 0 || input_shape.width <= 0 || input_shape.channels <= 0) {
      throw std::invalid_argument("input shape dimensions must be positive");
    }
    input_shapes_.push_back(input_shape);  // the chain's input, declared at build
    try {
      build();
    } catch (...) {
      input_shapes_.clear();  // a failed build declares nothing: the next build(shape) starts afresh
      throw;
    }
    return;
  }
  build();
}

void Network::build() {
  if (built_) throw std::logic_error("network is already built");
  if (layers_.empty()) throw std::invalid_argument("a model needs at least one layer");
  if (input_shapes_.empty()) throw std::invalid_argument("a model needs at least one input");
  const size_t node_count = layers_.size();
  // A build that fails (a layer refuses its input shapes, the parameters exceed the memory) leaves
  // the graph as it was declared: the chain inputs and default outputs filled in below are undone,
  // so that the network can be corrected (a layer added, an input rewired) and built again.
  struct Undo {
    Network& network;
    std::vector<Node> nodes;
    std::vector<int64_t> outputs;
    bool armed = true;
    ~Undo() {
      if (!armed) return;
      network.nodes_ = std::move(nodes);
      network.outputs_ = std::move(outputs);
    }
  } undo{*this, nodes_, outputs_};
  // Chain nodes read the previous tensor.
  for (size_t i = 0; i < node_count; ++i) {
    if (nodes_[i].inputs.empty()) nodes_[i].inputs = {i == 0 ? int64_t{-1} : static_cast<int64_t>(i) - 1};
  }
  if (outputs_.empty()) outputs_ = {static_cast<int64_t>(node_count) - 1};
  output_losses_.assign(outputs_.size(), OutputLoss{default_from_logits_, 1.0f});
  consumers_.assign(input_shapes_.size() + node_count, {});
  int64_t offset = 0, extra = 0;
  for (size_t i = 0; i < node_count; ++i) {
    Layer& layer = *layers_[i];
    const Node& node = nodes_[i];
    std::vector<SampleShape> shapes;
    for (size_t slot = 0; slot < node.inputs.size(); ++slot) {
      shapes.push_back(tensor_shape(node.inputs[slot]));
      consumers_[tensor_index(node.inputs[slot])].emplace_back(i, slot);
    }
    layer.input_shapes = shapes;
    layer.input_shape = shapes[0];
    SampleShape shape;
    try {
      shape = layer.configure_inputs(shapes);
      checked_product({shape.height, shape.width, shape.channels}, "the layer's output");
    } catch (const std::invalid_argument& error) {
      throw std::invalid_argument("Layer #" + std::to_string(layer.index) + " (" + layer.kind() + "): " + error.what());
    }
    layer.output_shape = shape;
    if (node.shares_with >= 0) {
      const Layer& owner = *layers_[static_cast<size_t>(node.shares_with)];
      if (owner.parameter_shapes() != layer.parameter_shapes()) {
        auto describe = [](const SampleShape& sample) {
          return "(None, " + std::to_string(sample.height) + ", " + std::to_string(sample.width) + ", " +
                 std::to_string(sample.channels) + ")";
        };
        throw std::invalid_argument("Layer #" + std::to_string(layer.index) + " (" + layer.kind() +
                                    ") shares the weights of layer #" + std::to_string(owner.index) +
                                    " but its inputs need weights of other shapes. Received: input_shape=" +
                                    describe(layer.input_shape) + ", layer #" + std::to_string(owner.index) +
                                    "'s input_shape=" + describe(owner.input_shape));
      }
      layer.parameter_offset = owner.parameter_offset;
      layer.gradient_offset = -1;  // placed after the parameters, below
      extra = checked_add(extra, layer.parameter_count(), "the model's parameter count");
    } else {
      layer.parameter_offset = offset;
      layer.gradient_offset = offset;
      offset = checked_add(offset, layer.parameter_count(), "the model's parameter count");
    }
  }
  // A sharing node's parameter gradients go after the parameters' own, summed in after backward.
  int64_t cursor = offset;
  for (auto& layer : layers_) {
    if (layer->gradient_offset < 0) {
      layer->gradient_offset = cursor;
      cursor += layer->parameter_count();
    }
  }
  require_allocatable(checked_add(checked_multiply(2, offset, "the model's parameters"), extra, "the model's parameters"),
                      sizeof(float), "the model's parameters and their gradients");
  parameters_.assign(static_cast<size_t>(offset), 0.0f);
  gradients_.assign(static_cast<size_t>(offset + extra), 0.0f);
  shared_parameters_.assign(node_count, false);
  for (size_t i = 0; i < node_count; ++i) {
    if (nodes_[i].shares_with >= 0) {
      shared_parameters_[i] = true;
      shared_parameters_[static_cast<size_t>(nodes_[i].shares_with)] = true;
    }
  }
  undo.armed = false;
  built_ = true;
  update_plan();
  update_trainable_variables();
}

SampleShape Network::output_shape(size_t output) const {
  if (!built_ || output >= outputs_.size()) return input_shape();
  return layers_[static_cast<size_t>(outputs_[output])]->output_shape;
}

int64_t Network::workspace_per_sample() const {
  const char* what = "the workspace per sample";
  int64_t total = 1;  // the loss
  for (const SampleShape& shape : input_shapes_) total = checked_add(total, shape.size(), what);
  total = checked_add(total, training_activations_per_sample(), what);
  return checked_add(total, inference_activations_per_sample(), what);
}

int64_t Network::training_activations_per_sample() const {
  const char* what = "the workspace per sample";
  int64_t total = 0, largest = 0;
  for (const SampleShape& shape : input_shapes_) largest = std::max(largest, shape.size());
  for (const auto& layer : layers_) {
    const int64_t size = layer->output_shape.size();
    largest = std::max(largest, size);
    total = checked_add(total, checked_multiply(2, size, what), what);
    total = checked_add(total, layer->scratch_per_sample(), what);
  }
  return checked_add(total, checked_multiply(std::max<int64_t>(slot_count_, 2), largest, what), what);
}

int64_t Network::inference_activations_per_sample() const {
  int64_t total = largest_scratch_per_sample();
  for (int64_t size : inference_buffer_sizes_) total = checked_add(total, size, "the workspace per sample");
  return total;
}

int64_t Network::largest_scratch_per_sample() const {
  int64_t largest = 0;
  for (const auto& layer : layers_) largest = std::max(largest, layer->scratch_per_sample());
  return largest;
}

void Network::set_trainable(int64_t layer_index, bool trainable) {
  if (layer_index < 0 || layer_index >= static_cast<int64_t>(layers_.size())) {
    throw std::out_of_range("layer index " + std::to_string(layer_index) + " out of range");
  }
  std::lock_guard<std::mutex> lock(step_mutex_);
  layers_[static_cast<size_t>(layer_index)]->trainable = trainable;
  if (built_) {
    update_plan();
    update_trainable_variables();
  }
}

void Network::set_trainable_flags(const std::vector<bool>& flags) {
  if (flags.size() != layers_.size()) {
    throw std::invalid_argument("set_trainable_flags needs one flag per layer (" + std::to_string(layers_.size()) +
                                "). Received: " + std::to_string(flags.size()));
  }
  std::lock_guard<std::mutex> lock(step_mutex_);
  for (size_t i = 0; i < flags.size(); ++i) layers_[i]->trainable = flags[i];
  if (built_) {
    update_plan();
    update_trainable_variables();
  }
}

void Network::set_max_pool_fusion(bool enabled) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  max_pool_fusion_enabled_ = enabled;
  if (built_) update_plan();
}

void Network::set_batch_norm_folding(bool enabled) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  batch_norm_folding_enabled_ = enabled;
  if (built_) update_plan();
}

void Network::set_residual_add_fusion(bool enabled) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  residual_add_fusion_enabled_ = enabled;
  if (built_) update_plan();
}

void Network::set_gradient_accumulation(bool enabled) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  gradient_accumulation_enabled_ = enabled;
  if (built_) update_plan();
}

void Network::set_output_activation_fusion(bool enabled) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  output_activation_enabled_ = enabled;
  if (built_) update_plan();
}

std::vector<int64_t> Network::fused_max_pool_layers(bool training) const {
  std::vector<int64_t> result;
  for (size_t i = 0; i < fused_pool_.size(); ++i) {
    if (pair_fused(i, training ? Fusion::where_no_input_gradient : Fusion::everywhere)) {
      result.push_back(static_cast<int64_t>(i));
    }
  }
  return result;
}

void Network::set_regularization(int64_t layer_index, const Regularization& regularization) {
  if (layer_index < 0 || layer_index >= static_cast<int64_t>(layers_.size())) {
    throw std::out_of_range("layer index " + std::to_string(layer_index) + " out of range");
  }
  const float factors[] = {regularization.kernel_l1,        regularization.kernel_l2,
                           regularization.bias_l1,          regularization.bias_l2,
                           regularization.activity_l1,      regularization.activity_l2,
                           regularization.second_kernel_l1, regularization.second_kernel_l2};
  for (float factor : factors) {
    if (!(factor >= 0.0f) || !std::isfinite(factor)) {
      throw std::invalid_argument("regularization factors must be finite and non-negative");
    }
  }
  const Layer& layer = *layers_[static_cast<size_t>(layer_index)];
  const size_t kernels = static_cast<size_t>(layer.kernel_arrays());
  const size_t arrays = built_ ? layer.parameter_shapes().size() : kernels + 1;
  if ((regularization.kernel_l1 != 0.0f || regularization.kernel_l2 != 0.0f) && arrays < 1) {
    throw std::invalid_argument("layer " + layer.kind() + " has no kernel to regularize");
  }
  if ((regularization.bias_l1 != 0.0f || regularization.bias_l2 != 0.0f) && arrays < kernels + 1) {
    throw std::invalid_argument("layer " + layer.kind() + " has no bias to regularize");
  }
  if ((regularization.second_kernel_l1 != 0.0f || regularization.second_kernel_l2 != 0.0f) && kernels < 2) {
    throw std::invalid_argument("layer " + layer.kind() + " has no second kernel to regularize");
  }
  std::lock_guard<std::mutex> lock(step_mutex_);
  regularization_[static_cast<size_t>(layer_index)] = regularization;
  if (built_) update_plan();  // an activity penalty stops the fusions on the tensor it reads
}

void Network::configure_loss(bool from_logits) {
  for (auto& loss : output_losses_) loss.from_logits = from_logits;
  default_from_logits_ = from_logits;
}

void Network::configure_output_loss(int64_t output, bool from_logits, float weight, LossKind kind,
                                    const LossOptions& options) {
  require_built();
  if (output < 0 || output >= static_cast<int64_t>(outputs_.size())) {
    throw std::out_of_range("`output` must be in [0, " + std::to_string(outputs_.size()) +
                            ") for this network. Received: output=" + std::to_string(output));
  }
  if (!std::isfinite(weight) || weight < 0.0f) {
    throw std::invalid_argument("loss weights must be finite and non-negative. Received: " + std::to_string(weight));
  }
  check_loss_options(options);
  output_losses_[static_cast<size_t>(output)] = {from_logits, weight, kind, options};
}

double Network::activity_penalty(int64_t batch, int64_t loss_batch) {
  double penalty = 0.0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Regularization& regularization = regularization_[i];
    if (!regularization.on_activity()) continue;
    penalty += penalty_sum(values_[tensor_index(static_cast<int64_t>(i))], batch * layers_[i]->output_shape.size(),
                           regularization.activity_l1, regularization.activity_l2, penalty_partials_);
  }
  return loss_batch > 0 ? penalty / static_cast<double>(loss_batch) : 0.0;
}

double Network::weight_penalty(bool add_gradients) {
  double penalty = 0.0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = *layers_[i];
    const Regularization& regularization = regularization_[i];
    // Keras penalises trainable weights only (once per layer, however often it is called): a
    // frozen layer's penalty is a constant it drops.
    if (nodes_[i].shares_with >= 0) continue;
    if (!regularization.on_weights() || !layer.trainable || layer.trainable_parameter_count() == 0) continue;
    const std::vector<std::vector<int64_t>> shapes = layer.parameter_shapes();
    int64_t offset = layer.parameter_offset;
    // The kernels (kernel_arrays() of them: the second has its own factors), then the bias.
    const size_t kernels = static_cast<size_t>(layer.kernel_arrays());
    for (size_t array = 0; array < shapes.size() && array <= kernels; ++array) {
      int64_t count = 1;
      for (int64_t dimension : shapes[array]) count *= dimension;
      float l1 = regularization.bias_l1, l2 = regularization.bias_l2;
      if (array == 0) {
        l1 = regularization.kernel_l1;
        l2 = regularization.kernel_l2;
      } else if (array < kernels) {
        l1 = regularization.second_kernel_l1;
        l2 = regularization.second_kernel_l2;
      }
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

void Network::add_output_activity_gradient(size_t node, int64_t batch, int64_t loss_batch, bool gradient_is_logits,
                                           float* gradient) {
  const Regularization& regularization = regularization_[node];
  if (!regularization.on_activity() || batch <= 0) return;
  // The penalty is divided by the batch size, so its gradient is scaled by 1 / batch; TensorFlow
  // forms (1 / batch) * l and multiplies by 2 y for the square.
  const float inverse_batch = 1.0f / static_cast<float>(loss_batch);
  const float l1_scale = inverse_batch * regularization.activity_l1;
  const float l2_scale = 2.0f * (inverse_batch * regularization.activity_l2);
  const float* output = values_[tensor_index(static_cast<int64_t>(node))];
  const int64_t classes = layers_[node]->output_shape.size();
  if (!gradient_is_logits) {
    add_penalty_gradient(output, gradient, batch * classes, l1_scale, l2_scale);
    return;
  }
  if (layers_[node]->activation() == Activation::sigmoid) {
    // Through sigmoid y = sigmoid(z): dz += g * y (1 - y), g = d penalty / dy.
    for (int64_t i = 0; i < batch * classes; ++i) {
      const float y = output[i];
      const float sign = y > 0.0f ? 1.0f : (y < 0.0f ? -1.0f : 0.0f);
      gradient[i] += (l1_scale * sign + l2_scale * y) * y * (1.0f - y);
    }
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

void Network::ensure_batch_buffers(int64_t batch) {
  if (batch <= batch_capacity_) return;
  int64_t total = batch;  // the per-sample losses
  for (const SampleShape& shape : input_shapes_) total += batch * shape.size();
  batch_arena_.assign(static_cast<size_t>(total));
  float* cursor = batch_arena_.data();
  gathered_.assign(input_shapes_.size(), nullptr);
  for (size_t k = 0; k < input_shapes_.size(); ++k) {
    gathered_[k] = cursor;
    cursor += batch * input_shapes_[k].size();
  }
  losses_ = cursor;
  batch_capacity_ = batch;
}

void Network::ensure_training_workspace(int64_t batch) {
  ensure_batch_buffers(batch);
  values_.assign(input_shapes_.size() + layers_.size(), nullptr);
  pre_activation_values_.assign(layers_.size(), nullptr);
  if (batch <= training_capacity_ && training_plan_version_ == plan_version_) return;
  batch = std::max(batch, training_capacity_);
  // Layout for `batch` samples: per node its output (unless a reshape) and pre-activation (if
  // kept), then the gradient slots (each as large as the largest tensor).
  int64_t largest = 0, total = 0;
  for (const SampleShape& shape : input_shapes_) largest = std::max(largest, shape.size());
  for (const auto& layer : layers_) {
    const int64_t size = layer->output_shape.size();
    largest = std::max(largest, size);
    if (!layer->is_reshape()) total += batch * size;
    if (layer->keeps_pre_activation()) total += batch * size;
    total += batch * layer->scratch_per_sample();
  }
  total += slot_count_ * batch * largest;
  arena_.assign(static_cast<size_t>(total));
  float* cursor = arena_.data();
  auto take = [&cursor](int64_t count) {
    float* start = cursor;
    cursor += count;
    return start;
  };
  node_outputs_.assign(layers_.size(), nullptr);
  pre_activations_.assign(layers_.size(), nullptr);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int64_t size = layers_[i]->output_shape.size();
    if (!layers_[i]->is_reshape()) node_outputs_[i] = take(batch * size);
    if (layers_[i]->keeps_pre_activation()) pre_activations_[i] = take(batch * size);
  }
  training_scratch_.assign(layers_.size(), nullptr);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int64_t scratch = layers_[i]->scratch_per_sample();
    if (scratch > 0) training_scratch_[i] = take(batch * scratch);
  }
  slot_stride_ = batch * largest;
  gradient_slots_ = take(slot_count_ * slot_stride_);
  training_capacity_ = batch;
  training_plan_version_ = plan_version_;
}

void Network::ensure_inference_workspace(int64_t batch) {
  ensure_batch_buffers(batch);
  values_.assign(input_shapes_.size() + layers_.size(), nullptr);
  pre_activation_values_.assign(layers_.size(), nullptr);
  if (batch <= inference_capacity_ && inference_plan_version_ == plan_version_) return;
  batch = std::max(batch, inference_capacity_);
  int64_t total = 0;
  std::vector<int64_t> starts;
  for (int64_t size : inference_buffer_sizes_) {
    starts.push_back(total);
    total += batch * size;
  }
  const int64_t scratch_start = total;
  total += batch * largest_scratch_per_sample();
  inference_arena_.assign(static_cast<size_t>(total));
  inference_scratch_ = largest_scratch_per_sample() > 0 ? inference_arena_.data() + scratch_start : nullptr;
  auto buffer = [&](int64_t index) {
    return index < 0 ? nullptr : inference_arena_.data() + starts[static_cast<size_t>(index)];
  };
  inference_outputs_.assign(layers_.size(), nullptr);
  inference_pre_activations_.assign(layers_.size(), nullptr);
  for (size_t i = 0; i < layers_.size(); ++i) {
    inference_outputs_[i] = buffer(inference_output_buffer_[i]);
    inference_pre_activations_[i] = buffer(inference_pre_activation_buffer_[i]);
  }
  inference_capacity_ = batch;
  inference_plan_version_ = plan_version_;
}

void Network::gather(const std::vector<const float*>& x, const int64_t* indices, int64_t batch) {
  for (size_t k = 0; k < input_shapes_.size(); ++k) {
    const int64_t size = input_shapes_[k].size();
    for (int64_t i = 0; i < batch; ++i) {
      std::memcpy(gathered_[k] + i * size, x[k] + indices[i] * size, static_cast<size_t>(size) * sizeof(float));
    }
  }
}

void Network::forward(const kernels::KernelTable& kernels, const std::vector<const float*>& inputs, int64_t batch,
                      bool training, uint64_t seed, Fusion fusion, Buffers buffers, PhaseTimer* timer,
                      int64_t first_sample) {
  StepContext context{kernels, training, seed, parameters_.data(), nullptr, first_sample};
  context.large_winograd_tile_in_training = large_winograd_tile_in_training_;
  last_batch_ = batch;
  // Training passes update BatchNormalization's moving statistics; inference folds them in (and
  // so do training passes through a frozen part, refolded as every training pass bumps the version).
  if (training) {
    ++parameters_version_;
    if (any_folded_in_training_) refresh_folded_parameters();
  } else {
    refresh_folded_parameters();
    context.weights_version = parameters_version_.load();
  }
  const std::vector<float*>& outputs = buffers == Buffers::training ? node_outputs_ : inference_outputs_;
  const std::vector<float*>& pre_activations =
      buffers == Buffers::training ? pre_activations_ : inference_pre_activations_;
  for (size_t k = 0; k < input_shapes_.size(); ++k) values_[k] = inputs[k];
  std::vector<bool>& done = done_;
  done.assign(layers_.size(), false);
  std::vector<const float*>& node_inputs = node_inputs_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (done[i]) {  // a max pooling its convolution computed, or a node folded into a layer before it
      if (timer != nullptr) timer->lap(1 + i);
      continue;
    }
    Layer& layer = *layers_[i];
    const size_t out = tensor_index(static_cast<int64_t>(i));
    // (A folded layer computes its pooling in its folded pass below.)
    if (pool_fused_in_pass(i, training, fusion) && !batch_norm_folded(i, training)) {
      // This node writes its consumer's (the max pooling's) output; its own stays unwritten.
      const size_t pool = static_cast<size_t>(fused_pool_[i]);
      layer.forward_max_pool(context, batch, values_[tensor_index(nodes_[i].inputs[0])], *layers_[pool], outputs[pool]);
      values_[tensor_index(static_cast<int64_t>(pool))] = outputs[pool];
      done[pool] = true;
      if (timer != nullptr) timer->lap(1 + i);
      continue;
    }
    if (fusion != Fusion::none && batch_norm_folded(i, training)) {
      // This node computes its BatchNormalization (and the activation after it) with folded
      // kernels and bias; the outputs between are never stored.
      // With its max pooling (inference): the pooling's output is the one written.
      const bool pooled = pool_fused_in_pass(i, training, fusion);
      const size_t last = pooled ? static_cast<size_t>(fused_pool_[i]) : folded_last(i);
      layer.inference_max_pool = pooled ? layers_[last]->max_pool_params() : nullptr;
      const float* folded = folded_parameters_.data() + folded_offset_[i];
      if (layer.scratch_per_sample() > 0) {
        context.scratch = buffers == Buffers::training ? training_scratch_[i] : inference_scratch_;
      }
      const float* input = values_[tensor_index(nodes_[i].inputs[0])];
      if (folded_after_activation_[i]) {
        layer.forward_then_affine(context, batch, input, folded_activation_[i], folded,
                                  folded + layer.output_shape.channels, outputs[last]);
      } else {
        const float* residual = folded_add_node_[i] >= 0 ? values_[tensor_index(folded_residual_[i])] : nullptr;
        layer.forward_folded(context, batch, input, folded, folded + layer.kernel_floats(), folded_activation_[i],
                             residual, outputs[last]);
      }
      context.scratch = nullptr;
      layer.inference_max_pool = nullptr;
      values_[tensor_index(static_cast<int64_t>(last))] = outputs[last];
      if (pooled) done[last] = true;
      done[static_cast<size_t>(folded_batch_norm_[i])] = true;
      if (folded_add_node_[i] >= 0) done[static_cast<size_t>(folded_add_node_[i])] = true;
      if (folded_activation_node_[i] >= 0) done[static_cast<size_t>(folded_activation_node_[i])] = true;
      if (timer != nullptr) timer->lap(1 + i);
      continue;
    }
    node_inputs.clear();
    for (int64_t id : nodes_[i].inputs) node_inputs.push_back(values_[tensor_index(id)]);
    const bool fuses_activation = output_activation_fused(i, training, fusion);
    layer.output_activation = fuses_activation ? output_activation_[i] : Activation::linear;
    if (training && fusion != Fusion::none && computes_pool_[i] >= 0) {
      // A BatchNormalization that computes its max pooling (and the ReLU between, if fused):
      // only the pooled output (and the window positions, in its scratch) is written.
      const size_t pool = static_cast<size_t>(computes_pool_[i]);
      context.scratch = training_scratch_[i];
      layer.forward_max_pool(context, batch, node_inputs[0], *layers_[pool], outputs[pool]);
      context.scratch = nullptr;
      values_[tensor_index(static_cast<int64_t>(pool))] = outputs[pool];
      done[pool] = true;
      if (fuses_activation) done[static_cast<size_t>(output_activation_node_[i])] = true;
      if (timer != nullptr) timer->lap(1 + i);
      continue;
    }
    // Outside training the executor runs only on the inference buffers, planned with this aliasing.
    if (layer.is_reshape() || (!training && layer.aliases_input_in_inference())) {
      values_[out] = node_inputs[0];
    } else {
      if (layer.scratch_per_sample() > 0) {
        context.scratch = buffers == Buffers::training ? training_scratch_[i] : inference_scratch_;
      }
      layer.forward_inputs(context, batch, node_inputs, pre_activations[i], outputs[i]);
      context.scratch = nullptr;
      values_[out] = outputs[i];
      pre_activation_values_[i] = pre_activations[i];
    }
    if (fuses_activation) {
      // The ReLU's output is this node's (activated) output; the ReLU itself does not run.
      const size_t activation_node = static_cast<size_t>(output_activation_node_[i]);
      values_[tensor_index(static_cast<int64_t>(activation_node))] = outputs[i];
      done[activation_node] = true;
    }
    if (timer != nullptr) timer->lap(1 + i);
  }
}

namespace {

// The index of a row's largest value, numpy's argmax: the first of equal values, and the first
// NaN where there is one.
int64_t first_argmax(const float* row, int64_t count) {
  int64_t best = 0;
  for (int64_t j = 1; j < count && !std::isnan(row[best]); ++j) {
    if (row[j] > row[best] || std::isnan(row[j])) best = j;
  }
  return best;
}

}  // namespace

StepResult Network::losses_and_gradients(const std::vector<Targets>& targets, const int64_t* indices, int64_t batch,
                                         int64_t loss_batch, bool gradients) {
  StepResult result;
  result.output_loss_sums.assign(outputs_.size(), 0.0);
  last_argmax_matches_.assign(outputs_.size(), 0);
  for (size_t k = 0; k < outputs_.size(); ++k) {
    const int64_t id = outputs_[k];
    const size_t node = static_cast<size_t>(id);
    const int64_t classes = layers_[node]->output_shape.size();
    const float* output = values_[tensor_index(id)];
    const bool fused = fused_output_activation(k);
    const int64_t slot_index = gradient_slot_[tensor_index(id)];
    float* gradient = gradients && slot_index >= 0 ? slot(slot_index) : nullptr;
    const int32_t* labels = nullptr;
    const float* probabilities = nullptr;
    if (targets[k].labels != nullptr) {
      batch_labels_.resize(static_cast<size_t>(batch));
      for (int64_t i = 0; i < batch; ++i) batch_labels_[i] = targets[k].labels[indices[i]];
      labels = batch_labels_.data();
    } else {
      batch_probabilities_.resize(static_cast<size_t>(batch * classes));
      for (int64_t i = 0; i < batch; ++i) {
        std::memcpy(batch_probabilities_.data() + i * classes, targets[k].probabilities + indices[i] * classes,
                    static_cast<size_t>(classes) * sizeof(float));
      }
      probabilities = batch_probabilities_.data();
    }
    int64_t matches = 0;
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t target = labels != nullptr ? labels[i] : first_argmax(probabilities + i * classes, classes);
      matches += first_argmax(output + i * classes, classes) == target;
    }
    last_argmax_matches_[k] = matches;
    LossParams params;
    params.kind = output_losses_[k].kind;
    params.options = output_losses_[k].options;
    params.batch = batch;
    params.classes = classes;
    params.from_logits = output_losses_[k].from_logits || fused;
    const float weight = output_losses_[k].weight;
    params.gradient_scale = loss_batch > 0 ? weight / static_cast<float>(loss_batch) : 0.0f;
    kernels::loss(params, fused ? pre_activation_values_[node] : output, labels, probabilities, losses_, gradient);
    if (targets[k].sample_weights != nullptr) {
      for (int64_t i = 0; i < batch; ++i) {
        const float sample_weight = targets[k].sample_weights[indices[i]];
        losses_[i] *= sample_weight;
        if (gradient != nullptr) {
          for (int64_t j = 0; j < classes; ++j) gradient[i * classes + j] *= sample_weight;
        }
      }
    }
    double loss_sum = 0.0;
    for (int64_t i = 0; i < batch; ++i) loss_sum += losses_[i];
    result.output_loss_sums[k] = loss_sum;
    result.loss_sum += weight == 1.0f ? loss_sum : static_cast<double>(weight) * loss_sum;
  }
  return result;
}

StepResult Network::train_step(const std::vector<const float*>& x, const std::vector<Targets>& targets,
                               const int64_t* indices, int64_t batch, float learning_rate, uint64_t seed) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  require_built();
  if (!optimizer_configured_) throw std::logic_error("network has no optimizer");
  if (batch <= 0) return {};
  // Profile slots: gather, forward per node, loss, backward per node, optimizer, whole step.
  const size_t optimizer_slot = 2 + 2 * layers_.size(), step_slot = optimizer_slot + 1;
  PhaseTimer timer(profile_seconds_), step_timer(profile_seconds_);
  double penalty = 0.0;
  StepResult result = forward_backward(x, targets, indices, batch, batch, 0, seed, timer, {}, penalty);
  // Penalties on the weights before this update, their gradients joining the data's.
  penalty += weight_penalty(true);
  result.loss_sum += static_cast<double>(batch) * penalty;
  optimizer_.apply(learning_rate, parameters_.data(), gradients_.data(), trainable_variables_);
  ++parameters_version_;
  timer.lap(optimizer_slot);
  step_timer.lap(step_slot);
  return result;
}

StepResult Network::compute_gradients(const std::vector<const float*>& x, const std::vector<Targets>& targets,
                                      const int64_t* indices, int64_t batch, int64_t loss_batch, int64_t first_sample,
                                      uint64_t seed, const std::function<void(int64_t)>& on_layer_gradient) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  require_built();
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
  require_built();
  if (!optimizer_configured_) throw std::logic_error("network has no optimizer");
  const double penalty = weight_penalty(true);
  optimizer_.apply(learning_rate, parameters_.data(), gradients_.data(), trainable_variables_);
  ++parameters_version_;
  return penalty;
}

StepResult Network::forward_backward(const std::vector<const float*>& x, const std::vector<Targets>& targets,
                                     const int64_t* indices, int64_t batch, int64_t loss_batch, int64_t first_sample,
                                     uint64_t seed, PhaseTimer& timer,
                                     const std::function<void(int64_t)>& on_layer_gradient, double& penalty) {
  const kernels::KernelTable& kernels = kernels::active();
  const size_t node_count = layers_.size();
  const size_t loss_slot = 1 + node_count, backward_slot = loss_slot + 1;
  ensure_training_workspace(batch);
  gather(x, indices, batch);
  timer.lap(0);
  std::vector<const float*> inputs(gathered_.begin(), gathered_.end());
  forward(kernels, inputs, batch, true, seed, Fusion::where_no_input_gradient, Buffers::training, &timer, first_sample);

  StepResult result = losses_and_gradients(targets, indices, batch, loss_batch, true);
  penalty = activity_penalty(batch, loss_batch);
  for (size_t k = 0; k < outputs_.size(); ++k) {
    const int64_t slot_index = gradient_slot_[tensor_index(outputs_[k])];
    if (slot_index >= 0) {
      add_output_activity_gradient(static_cast<size_t>(outputs_[k]), batch, loss_batch, fused_output_activation(k),
                                   slot(slot_index));
    }
  }
  timer.lap(loss_slot);

  StepContext context{kernels, true, seed, parameters_.data(), gradients_.data(), first_sample};
  context.large_winograd_tile_in_training = large_winograd_tile_in_training_;  // the input gradients' tile
  std::vector<bool>& notified = notified_;
  notified.assign(node_count, false);
  auto notify = [&](size_t node) {
    if (on_layer_gradient && !notified[node]) on_layer_gradient(static_cast<int64_t>(node));
    notified[node] = true;
  };
  // A node sharing parameters (or shared) has final gradients only after the sums below.
  const std::vector<bool>& shares = shared_parameters_;
  std::vector<bool>& skip = done_;
  skip.assign(node_count, false);
  std::vector<const float*>& node_inputs = node_inputs_;
  std::vector<float*>& input_gradients = input_gradients_;
  for (size_t i = node_count; i-- > 0;) {
    const int64_t id = static_cast<int64_t>(i);
    const size_t out = tensor_index(id);
    if (skip[i] || !needs_gradient_[out]) continue;
    if (activation_fused_into_[i] >= 0 || pool_computed_by_[i] >= 0) {
      // A ReLU its BatchNormalization computed: that node's backward takes this gradient (the
      // plan gives both tensors one gradient slot) and applies the ReLU's derivative. Likewise a
      // max pooling its BatchNormalization computed, which routes the pooled gradient.
      timer.lap(backward_slot + i);
      continue;
    }
    Layer& layer = *layers_[i];
    float* gradient = slot(gradient_slot_[out]);
    const auto& consumers = consumers_[out];
    if (consumers.empty() && !is_output(id)) {
      std::memset(gradient, 0, sizeof(float) * static_cast<size_t>(batch * layer.output_shape.size()));
    }
    // An activity penalty's gradient joins the output's (a model output's joined after the loss).
    const Regularization& regularization = regularization_[i];
    if (!is_output(id) && regularization.on_activity()) {
      const float inverse_batch = 1.0f / static_cast<float>(loss_batch);
      add_penalty_gradient(values_[out], gradient, batch * layer.output_shape.size(),
                           inverse_batch * regularization.activity_l1,
                           2.0f * (inverse_batch * regularization.activity_l2));
    }
    // A max pooling its convolution computed (the convolution needs no input gradient): the
    // convolution's parameter gradients come from the pooled gradient.
    int64_t fused_convolution = pool_fused_by_[i];
    if (fused_convolution >= 0 && !fused_in_training_[static_cast<size_t>(fused_convolution)]) fused_convolution = -1;
    if (fused_convolution >= 0) {
      const size_t convolution = static_cast<size_t>(fused_convolution);
      layers_[convolution]->backward_max_pool(context, batch,
                                              values_[tensor_index(nodes_[convolution].inputs[0])], layer, values_[out],
                                              gradient);
      skip[convolution] = true;
      timer.lap(backward_slot + convolution);  // profiled as the convolution's backward pass
      notify(i);
      if (!shares[convolution]) notify(convolution);
      continue;
    }
    // The gradient arrives as the pre-activation's when the loss fused softmax into it, or when
    // the only consumer already applied this node's ReLU derivative (relu_input).
    bool gradient_is_pre_activation = false;
    for (size_t k = 0; k < outputs_.size(); ++k) {
      if (outputs_[k] == id && fused_output_activation(k)) gradient_is_pre_activation = true;
    }
    if (consumers.size() == 1 && !is_output(id) && layers_[consumers[0].first]->relu_input) {
      gradient_is_pre_activation = true;
    }
    node_inputs.clear();
    input_gradients.clear();
    for (size_t input = 0; input < nodes_[i].inputs.size(); ++input) {
      const size_t tensor = tensor_index(nodes_[i].inputs[input]);
      node_inputs.push_back(values_[tensor]);
      if (!needs_gradient_[tensor]) {
        input_gradients.push_back(nullptr);
      } else if (scratch_slot_[i][input] >= 0) {
        input_gradients.push_back(slot(scratch_slot_[i][input]));
      } else {
        input_gradients.push_back(slot(gradient_slot_[tensor]));
      }
    }
    if (layer.is_reshape()) {
      // The gradient passes through; copied only where the input's slot is not this one's.
      if (input_gradients[0] != nullptr && input_gradients[0] != gradient) {
        std::memcpy(input_gradients[0], gradient, sizeof(float) * static_cast<size_t>(batch * layer.output_shape.size()));
      }
    } else {
      context.scratch = training_scratch_[i];
      context.accumulate_input_gradient = adds_input_gradient_[i];
      layer.backward_inputs(context, batch, node_inputs, pre_activations_[i], node_outputs_[i],
                            gradient, gradient_is_pre_activation, input_gradients);
      context.scratch = nullptr;
      context.accumulate_input_gradient = false;
    }
    // Scratch gradients join their tensor's (a tensor read by several nodes, or twice by one).
    for (size_t input = 0; input < nodes_[i].inputs.size(); ++input) {
      if (scratch_slot_[i][input] < 0) continue;
      const size_t tensor = tensor_index(nodes_[i].inputs[input]);
      const int64_t count = batch * tensor_shape(nodes_[i].inputs[input]).size();
      float* target = slot(gradient_slot_[tensor]);
      const float* source = slot(scratch_slot_[i][input]);
      parallel::parallel_for((count + 16383) / 16384, [&](int64_t chunk) {
        const int64_t end = std::min(count, (chunk + 1) * 16384);
        for (int64_t k = chunk * 16384; k < end; ++k) target[k] += source[k];
      });
    }
    timer.lap(backward_slot + i);
    if (!shares[i]) notify(i);
  }
  // Shared layers: every call's parameter gradients summed into the owner's, in node order.
  for (size_t i = 0; i < node_count; ++i) {
    const int64_t owner = nodes_[i].shares_with;
    if (owner < 0 || !needs_gradient_[tensor_index(static_cast<int64_t>(i))]) continue;
    const Layer& layer = *layers_[i];
    if (!layer.trainable) continue;
    float* target = gradients_.data() + layer.parameter_offset;
    const float* source = gradients_.data() + layer.gradient_offset;
    const int64_t count = layer.trainable_parameter_count();
    for (int64_t k = 0; k < count; ++k) target[k] += source[k];
  }
  for (size_t i = node_count; i-- > 0;) notify(i);
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
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = *layers_[i];
    if (!layer.trainable || nodes_[i].shares_with >= 0) continue;
    int64_t begin = layer.parameter_offset;
    const int64_t end = layer.parameter_offset + layer.trainable_parameter_count();
    for (const auto& shape : layer.parameter_shapes()) {
      if (begin >= end) break;
      int64_t count = 1;
      for (int64_t dimension : shape) count *= dimension;
      variables.emplace_back(begin, begin + count);
      begin += count;
    }
  }
}

StepResult Network::test_step(const std::vector<const float*>& x, const std::vector<Targets>& targets,
                              const int64_t* indices, int64_t batch) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  require_built();
  if (batch <= 0) return {};
  ensure_inference_workspace(batch);
  gather(x, indices, batch);
  std::vector<const float*> inputs(gathered_.begin(), gathered_.end());
  forward(kernels::active(), inputs, batch, false, 0, Fusion::everywhere, Buffers::inference);
  StepResult result = losses_and_gradients(targets, indices, batch, batch, false);
  // Keras's evaluation loss includes the regularization penalties too.
  result.loss_sum += static_cast<double>(batch) * (activity_penalty(batch, batch) + weight_penalty(false));
  return result;
}

int64_t Network::predict_slice() const {
  // Each slice streams every weight once and its activations through the caches: small slices
  // keep the activations in the last-level cache, but a slice must cover as many activation bytes
  // as weight bytes, or re-reading the weights per slice costs more than the activations it keeps
  // in cache. The cache budget is a constant, 8 MiB of activations: half of the 16 MiB L3 that
  // Zen 2's four cores share (what the OS reports in a virtual machine can be the whole socket's).
  constexpr int64_t kMostSamples = 64;
  constexpr int64_t kCacheFloats = (int64_t{8} << 20) / static_cast<int64_t>(sizeof(float));
  const int64_t activations = std::max<int64_t>(1, inference_activations_per_sample());  // floats per sample
  const int64_t weights = static_cast<int64_t>(parameters_.size());
  const int64_t fits_in_cache = kCacheFloats / activations;
  const int64_t covers_weights = (weights + activations - 1) / activations;
  return std::clamp<int64_t>(std::max(fits_in_cache, covers_weights), 1, kMostSamples);
}

void Network::predict(const std::vector<const float*>& x, int64_t batch, const std::vector<float*>& outputs) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  require_built();
  if (batch <= 0) return;
  // Inference treats every sample alone, so a large batch runs in slices (results are bitwise
  // those of one pass: no computation mixes samples); the slice size is predict_slice's.
  const int64_t slice = predict_slice();
  ensure_inference_workspace(std::min(batch, slice));
  std::vector<const float*> inputs(x.size());
  // When profiling, each node's forward time goes to its training forward slot (set_profiling).
  PhaseTimer timer(profile_seconds_);
  for (int64_t first = 0; first < batch; first += slice) {
    const int64_t count = std::min(slice, batch - first);
    for (size_t k = 0; k < x.size(); ++k) inputs[k] = x[k] + first * input_shapes_[k].size();
    forward(kernels::active(), inputs, count, false, 0, Fusion::everywhere, Buffers::inference, &timer);
    for (size_t k = 0; k < outputs_.size(); ++k) {
      const int64_t size = layers_[static_cast<size_t>(outputs_[k])]->output_shape.size();
      std::memcpy(outputs[k] + first * size, values_[tensor_index(outputs_[k])],
                  static_cast<size_t>(count * size) * sizeof(float));
    }
  }
}

void Network::forward_training(const std::vector<const float*>& x, int64_t batch, uint64_t seed,
                               const std::vector<float*>& outputs) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  require_built();
  if (batch <= 0) return;
  // Training buffers: the inference plan leaves no buffer for the outputs that BatchNormalization
  // folding skips, and a training pass runs every BatchNormalization.
  ensure_training_workspace(batch);
  forward(kernels::active(), x, batch, true, seed, Fusion::everywhere, Buffers::training);
  for (size_t k = 0; k < outputs_.size(); ++k) {
    const int64_t size = layers_[static_cast<size_t>(outputs_[k])]->output_shape.size();
    std::memcpy(outputs[k], values_[tensor_index(outputs_[k])], static_cast<size_t>(batch * size) * sizeof(float));
  }
}

std::vector<std::vector<float>> Network::forward_training_layer_outputs(const std::vector<const float*>& x,
                                                                        int64_t batch, uint64_t seed) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  require_built();
  std::vector<std::vector<float>> result(layers_.size());
  if (batch <= 0) return result;
  ensure_training_workspace(batch);
  forward(kernels::active(), x, batch, true, seed, Fusion::none, Buffers::training);  // every node's own output
  for (size_t i = 0; i < layers_.size(); ++i) {
    const float* values = values_[tensor_index(static_cast<int64_t>(i))];
    result[i].assign(values, values + batch * layers_[i]->output_shape.size());
  }
  return result;
}

// ---- Int8 inference (runtime/quantized_layers.h) ----

void Network::replace_layer(int64_t node, std::unique_ptr<Layer> layer) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  require_built();
  if (node < 0 || node >= static_cast<int64_t>(layers_.size())) {
    throw std::invalid_argument("replace_layer: node must be in [0, " + std::to_string(layers_.size()) +
                                "). Received: " + std::to_string(node));
  }
  const Layer& old = *layers_[static_cast<size_t>(node)];
  layer->input_shapes = old.input_shapes;
  layer->input_shape = old.input_shape;
  const SampleShape shape = layer->configure_inputs(old.input_shapes);
  auto describe = [](const SampleShape& sample) {
    return "(" + std::to_string(sample.height) + ", " + std::to_string(sample.width) + ", " +
           std::to_string(sample.channels) + ")";
  };
  if (shape.height != old.output_shape.height || shape.width != old.output_shape.width ||
      shape.channels != old.output_shape.channels) {
    throw std::invalid_argument("replace_layer: node " + std::to_string(node) + " (" + old.kind() + ") outputs " +
                                describe(old.output_shape) + "; the replacement " + describe(shape));
  }
  if (layer->parameter_shapes() != old.parameter_shapes()) {
    throw std::invalid_argument("replace_layer: node " + std::to_string(node) + " (" + old.kind() +
                                "): the replacement's parameter shapes differ");
  }
  layer->output_shape = shape;
  layer->parameter_offset = old.parameter_offset;
  layer->gradient_offset = old.gradient_offset;
  layer->index = old.index;
  layer->trainable = old.trainable;
  layers_[static_cast<size_t>(node)] = std::move(layer);
  update_plan();
}

}  // namespace fastcnn::runtime
