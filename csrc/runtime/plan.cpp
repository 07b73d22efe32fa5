// The planner: what each pass of a built network computes where, derived from the graph alone and
// recomputed when what it depends on changes (trainable flags, regularizers, the fusion switch).
// Each fusion is a named pass that applies only where a tensor has a single consumer, is not a
// model output and carries no activity penalty (single_consumer); the executor (network.cpp)
// reads the plan and never decides a fusion itself.
//
//   convolution_max_pool      a Conv2D computes the MaxPooling2D that reads it (one kernel; the
//                             convolution's own output is never stored): a first layer (at most 4
//                             input channels) in every pass, training where it needs no input
//                             gradient; a Winograd-shaped one with 2x2 pooling in inference passes
//                             only (Layer::fuses_max_pool_in_inference), also where it folds a
//                             BatchNormalization (and activation) that the pooling reads
//   relu_derivative_hand_off  a fused ReLU's derivative is applied by its consumer (max pooling,
//                             BatchNormalization), which sees the ReLU's output anyway
//   batch_norm_folding        inference passes: a linear Conv2D, DepthwiseConv2D, SeparableConv2D or
//                             Dense read by a BatchNormalization computes it with folded kernels
//                             and bias (Layer::folds_batch_norm), and also an elementwise activation
//                             layer reading that (ReLU, ReLU6, Activation), in its epilogue; training
//                             passes too where the BatchNormalization is frozen (it runs on its
//                             moving statistics) and no gradient is needed there (a fine-tuned
//                             network's frozen part)
//   batch_norm_after_activation  inference passes: a Conv2D (groups=1) whose kernel's epilogue
//                             computes its activation (relu, relu6, ...) read only by a
//                             BatchNormalization — or a linear one read only by an elementwise
//                             activation layer (ReLU, ReLU6, Activation) read only by one — applies
//                             that BatchNormalization's scale and shift per channel after the
//                             activation in the same epilogue (the BatchNormalization's output is
//                             the only one stored); its kernel and bias stay its own: with the
//                             activation between, nothing folds into them
//   residual_add              inference passes of a folded Conv2D (groups=1) whose
//                             BatchNormalization only an Add of two equal shapes reads: the
//                             convolution's epilogue adds the Add's other input (computed by an
//                             earlier node) before the activation after the Add, if any, so the
//                             BatchNormalization's and the Add's outputs are never stored
//   output_activation         training passes: a BatchNormalization or an elementwise merge (a
//                             residual Add, ...; Layer::accepts_output_activation) computes the
//                             ReLU (relu or relu6: a ReLU layer or Activation) that only reads it,
//                             storing only the activated output, and its backward applies the
//                             ReLU's derivative (the BatchNormalization at its recomputed
//                             pre-activation, the merge from the activated output) (the ReLU runs
//                             neither pass; both tensors share a gradient slot)
//   batch_norm_max_pool       training passes: a MaxPooling2D whose windows tile its input
//                             without overlap or padding, reading only a BatchNormalization on batch
//                             statistics (or the ReLU that one computes, output_activation) that
//                             only it reads, runs inside it (Layer::computes_max_pool_in_training):
//                             the forward writes the pooled output and each window's first
//                             maximum (a byte per output) instead of the normalized tensor, and the
//                             backward takes the pooled gradient and routes it there; the pooling
//                             runs neither pass, and neither the normalized tensor nor its
//                             full-size gradient is stored (the two share a gradient slot); on with
//                             the max pooling fusions (set_max_pool_fusion)
//   softmax_cross_entropy     a softmax output's loss reads the logits and its gradient is the
//                             logits' (softmax(z) - t), skipping the softmax backward pass
//   sigmoid_binary_cross_entropy  likewise a sigmoid output's binary cross-entropy (sigmoid(z) - t)
//   training_winograd_tile    training passes of a network where no layer selects a maximum (max
//                             pooling, Maximum/Minimum merges): 3x3 Winograd forward and
//                             input-gradient passes take F(4x4, 3x3) as inference does, since
//                             what keeps training on F(2x2, 3x3) elsewhere is such a choice
//                             between nearly equal values, which F(4x4)'s larger rounding would
//                             make differently from TensorFlow more often (see
//                             Conv2DParams::large_winograd_tile)
//   gradient_slots            a gradient buffer per tensor, reused by liveness in backward order
//   activation_buffers        inference passes: an activation buffer per tensor, reused by
//                             liveness in forward order (training keeps every tensor for backward)
#include <algorithm>

#include "runtime/network.h"

namespace fastcnn::runtime {

int64_t Network::single_consumer(int64_t node) const {
  const auto& consumers = consumers_[tensor_index(node)];
  if (consumers.size() != 1 || is_output(node) || regularization_[static_cast<size_t>(node)].on_activity()) return -1;
  return static_cast<int64_t>(consumers[0].first);
}

void Network::pass_convolution_max_pool() {
  const size_t node_count = layers_.size();
  fused_pool_.assign(node_count, -1);
  pool_fused_by_.assign(node_count, -1);
  pool_fused_in_inference_only_.assign(node_count, false);
  for (size_t i = 0; i < node_count; ++i) {
    // A folded layer's inference pass writes its last folded node (the BatchNormalization or the
    // activation after it): the pooling must read that. (Not with a residual in the epilogue.)
    const bool folded = batch_norm_folded(i, false);
    if (folded && folded_add_node_[i] >= 0) continue;
    const int64_t next = single_consumer(static_cast<int64_t>(folded ? folded_last(i) : i));
    if (next < 0) continue;
    const Layer& pool = *layers_[static_cast<size_t>(next)];
    const bool in_every_pass = !folded && layers_[i]->fuses_max_pool(pool);
    if (in_every_pass || layers_[i]->fuses_max_pool_in_inference(pool)) {
      fused_pool_[i] = next;
      pool_fused_by_[static_cast<size_t>(next)] = static_cast<int64_t>(i);
      pool_fused_in_inference_only_[i] = !in_every_pass;
    }
  }
  // In training the fused kernel gives no input gradient: only where the convolution needs none.
  fused_in_training_.assign(node_count, false);
  for (size_t i = 0; i < node_count; ++i) fused_in_training_[i] = pair_fused(i, Fusion::where_no_input_gradient);
}

void Network::pass_relu_derivative_hand_off() {
  for (auto& layer : layers_) layer->relu_input = false;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int64_t consumer = single_consumer(static_cast<int64_t>(i));
    if (consumer < 0) continue;
    Layer& next = *layers_[static_cast<size_t>(consumer)];
    if (layers_[i]->outputs_relu() && next.accepts_relu_input() && !next.takes_several_inputs()) next.relu_input = true;
  }
}

void Network::pass_batch_norm_folding() {
  const size_t node_count = layers_.size();
  folded_batch_norm_.assign(node_count, -1);
  folded_activation_node_.assign(node_count, -1);
  folded_activation_.assign(node_count, Activation::linear);
  folded_add_node_.assign(node_count, -1);
  folded_residual_.assign(node_count, 0);
  folded_offset_.assign(node_count, -1);
  folded_into_.assign(node_count, -1);
  folded_in_training_.assign(node_count, false);
  folded_after_activation_.assign(node_count, false);
  int64_t floats = 0;
  for (size_t i = 0; i < node_count && batch_norm_folding_enabled_; ++i) {
    const Layer& layer = *layers_[i];
    int64_t batch_norm = single_consumer(static_cast<int64_t>(i));
    // A linear layer, an activation layer, then the BatchNormalization: batch_norm_after_activation
    // with that activation.
    int64_t activation_node = -1;
    Activation activation = layer.activation();
    if (batch_norm >= 0 && activation == Activation::linear && layer.applies_batch_norm_after_activation() &&
        !layers_[static_cast<size_t>(batch_norm)]->takes_several_inputs() &&
        layers_[static_cast<size_t>(batch_norm)]->as_epilogue_activation(activation)) {
      activation_node = batch_norm;
      batch_norm = single_consumer(activation_node);
    }
    if (batch_norm < 0 || layers_[static_cast<size_t>(batch_norm)]->kind() != "BatchNormalization") continue;
    if (!layer.folds_batch_norm() || activation_node >= 0) {
      // batch_norm_after_activation: the BatchNormalization's scale and shift, nothing after it.
      if (!layer.applies_batch_norm_after_activation()) continue;
      folded_batch_norm_[i] = batch_norm;
      folded_into_[static_cast<size_t>(batch_norm)] = static_cast<int64_t>(i);
      folded_activation_[i] = activation;
      if (activation_node >= 0) {
        folded_activation_node_[i] = activation_node;
        folded_into_[static_cast<size_t>(activation_node)] = static_cast<int64_t>(i);
      }
      folded_after_activation_[i] = true;
      folded_offset_[i] = floats;
      floats += 2 * layer.output_shape.channels;
      continue;
    }
    folded_batch_norm_[i] = batch_norm;
    folded_into_[static_cast<size_t>(batch_norm)] = static_cast<int64_t>(i);
    int64_t next = single_consumer(batch_norm);
    int64_t residual = 0;
    if (next >= 0 && residual_add_fusion_enabled_ && layer.folds_residual_add() &&
        residual_of_add(static_cast<size_t>(next), batch_norm, static_cast<int64_t>(i), residual)) {
      folded_add_node_[i] = next;
      folded_residual_[i] = residual;
      folded_into_[static_cast<size_t>(next)] = static_cast<int64_t>(i);
      next = single_consumer(next);
    }
    activation = Activation::linear;
    if (next >= 0 && !layers_[static_cast<size_t>(next)]->takes_several_inputs() &&
        layers_[static_cast<size_t>(next)]->as_epilogue_activation(activation)) {
      folded_activation_node_[i] = next;
      folded_activation_[i] = activation;
      folded_into_[static_cast<size_t>(next)] = static_cast<int64_t>(i);
    }
    const int64_t last = static_cast<int64_t>(folded_last(i));
    folded_in_training_[i] = !layers_[static_cast<size_t>(batch_norm)]->trainable && !needs_gradient_[tensor_index(last)];
    folded_offset_[i] = floats;
    floats += layer.kernel_floats() + layer.output_shape.channels;
  }
  any_folded_in_training_ = std::find(folded_in_training_.begin(), folded_in_training_.end(), true) !=
                            folded_in_training_.end();
  folded_parameters_.assign(static_cast<size_t>(floats), 0.0f);
  folded_version_ = 0;  // refold before the next inference pass
}

bool Network::residual_of_add(size_t add, int64_t operand, int64_t before, int64_t& residual) const {
  const std::vector<int64_t>& inputs = nodes_[add].inputs;
  if (layers_[add]->kind() != "Add" || inputs.size() != 2 || inputs[0] == inputs[1]) return false;
  residual = inputs[0] == operand ? inputs[1] : inputs[0];
  // Nodes run in index order, each at or after the node that computes it; network inputs (ids
  // below 0) are there from the start. No broadcasting: the epilogue reads the residual as it
  // writes the output.
  return residual < before && tensor_shape(residual) == tensor_shape(operand);
}

void Network::pass_output_activation() {
  const size_t node_count = layers_.size();
  output_activation_node_.assign(node_count, -1);
  activation_fused_into_.assign(node_count, -1);
  output_activation_.assign(node_count, Activation::linear);
  for (size_t i = 0; i < node_count && output_activation_enabled_; ++i) {
    if (!layers_[i]->accepts_output_activation()) continue;
    const int64_t next = single_consumer(static_cast<int64_t>(i));
    if (next < 0) continue;
    const Layer& activation_layer = *layers_[static_cast<size_t>(next)];
    Activation activation = Activation::linear;
    // An activity penalty on the ReLU's output adds its gradient in the ReLU's own backward, and
    // so does the zero gradient of an output nothing reads.
    const bool read = !consumers_[tensor_index(next)].empty() || is_output(next);
    if (activation_layer.takes_several_inputs() || !activation_layer.as_epilogue_activation(activation) ||
        (activation != Activation::relu && activation != Activation::relu6) ||
        regularization_[static_cast<size_t>(next)].on_activity() || !read) {
      continue;
    }
    output_activation_node_[i] = next;
    output_activation_[i] = activation;
    activation_fused_into_[static_cast<size_t>(next)] = static_cast<int64_t>(i);
  }
}

void Network::pass_batch_norm_max_pool() {
  const size_t node_count = layers_.size();
  pool_computed_by_.assign(node_count, -1);
  computes_pool_.assign(node_count, -1);
  for (auto& layer : layers_) layer->max_pool_in_training = nullptr;
  for (size_t pool = 0; pool < node_count && max_pool_fusion_enabled_; ++pool) {
    const Layer& pooling = *layers_[pool];
    const int64_t source = nodes_[pool].inputs[0];
    if (pooling.max_pool_params() == nullptr || pooling.takes_several_inputs() || source < 0) continue;
    if (single_consumer(source) != static_cast<int64_t>(pool)) continue;
    // The pooling reads the BatchNormalization, or the ReLU it computes (which only reads it).
    const size_t producer = static_cast<size_t>(activation_fused_into_[static_cast<size_t>(source)] >= 0
                                                    ? activation_fused_into_[static_cast<size_t>(source)]
                                                    : source);
    // Not a pooling a convolution computes in training; the pooling's own backward would add an
    // activity penalty's gradient, or clear an unread output's.
    const int64_t id = static_cast<int64_t>(pool);
    const bool computed_by_convolution =
        pool_fused_by_[pool] >= 0 && fused_in_training_[static_cast<size_t>(pool_fused_by_[pool])];
    const bool read = !consumers_[tensor_index(id)].empty() || is_output(id);
    if (computed_by_convolution || regularization_[pool].on_activity() || !read ||
        !layers_[producer]->computes_max_pool_in_training(pooling)) {
      continue;
    }
    computes_pool_[producer] = static_cast<int64_t>(pool);
    pool_computed_by_[pool] = static_cast<int64_t>(producer);
    layers_[producer]->max_pool_in_training = &pooling;
  }
}

void Network::refresh_folded_parameters() {
  const uint64_t version = parameters_version_.load();
  if (folded_version_ == version) return;
  std::vector<float> scale, shift;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (folded_batch_norm_[i] < 0) continue;
    const Layer& layer = *layers_[i];
    const int64_t channels = layer.output_shape.channels;
    const Layer& batch_norm = *layers_[static_cast<size_t>(folded_batch_norm_[i])];
    if (folded_after_activation_[i]) {  // the scale, then the shift
      float* factors = folded_parameters_.data() + folded_offset_[i];
      batch_norm.batch_norm_factors(parameters_.data(), factors, factors + channels);
      continue;
    }
    scale.resize(static_cast<size_t>(channels));
    shift.resize(static_cast<size_t>(channels));
    batch_norm.batch_norm_factors(parameters_.data(), scale.data(), shift.data());
    // Kernels: the layer's own arrays, the last one scaled per output channel (its fastest axis).
    const float* kernels = parameters_.data() + layer.parameter_offset;
    float* folded = folded_parameters_.data() + folded_offset_[i];
    const int64_t kernel_floats = layer.kernel_floats(), scaled_begin = layer.scaled_kernel_begin();
    std::copy(kernels, kernels + scaled_begin, folded);
    for (int64_t k = scaled_begin; k < kernel_floats; ++k) {
      folded[k] = kernels[k] * scale[static_cast<size_t>((k - scaled_begin) % channels)];
    }
    // Bias: (b - moving_mean) * s + beta = b * s + shift; b = 0 without a bias (then no bias array
    // follows the kernels).
    const bool has_bias = layer.parameter_count() > kernel_floats;
    float* bias = folded + kernel_floats;
    for (int64_t c = 0; c < channels; ++c) {
      bias[c] = (has_bias ? kernels[kernel_floats + c] * scale[static_cast<size_t>(c)] : 0.0f) +
                shift[static_cast<size_t>(c)];
    }
  }
  folded_version_ = version;
}

bool Network::fused_output_activation(size_t output) const {
  // Not when other nodes read the output too: their gradients are the probabilities'.
  const int64_t id = outputs_[output];
  const Layer& layer = *layers_[static_cast<size_t>(id)];
  const LossKind kind = output_losses_[output].kind;
  // Keras reads a sigmoid's logits for binary focal cross-entropy too (its cross-entropy term).
  const bool binary = kind == LossKind::binary_crossentropy || kind == LossKind::binary_focal_crossentropy;
  if (kind != LossKind::categorical_crossentropy && !binary) return false;
  const Activation expected = binary ? Activation::sigmoid : Activation::softmax;
  return !output_losses_[output].from_logits && layer.activation() == expected && layer.keeps_pre_activation() &&
         consumers_[tensor_index(id)].empty();
}

bool Network::pair_fused(size_t convolution, Fusion fusion) const {
  if (!max_pool_fusion_enabled_ || convolution >= fused_pool_.size() || fused_pool_[convolution] < 0) return false;
  switch (fusion) {
    case Fusion::none: return false;
    case Fusion::everywhere: return true;
    case Fusion::where_no_input_gradient:
      return !pool_fused_in_inference_only_[convolution] && !needs_gradient_[tensor_index(nodes_[convolution].inputs[0])];
  }
  return false;
}

void Network::pass_needs_gradient() {
  // A tensor needs a gradient when a trainable parameter lies on a path into it.
  needs_gradient_.assign(input_shapes_.size() + layers_.size(), false);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = *layers_[i];
    bool needs = layer.trainable && layer.trainable_parameter_count() > 0;
    for (int64_t id : nodes_[i].inputs) needs = needs || needs_gradient_[tensor_index(id)];
    needs_gradient_[tensor_index(static_cast<int64_t>(i))] = needs;
  }
}

namespace {

// Buffers reused by liveness: take() returns the free buffer with the smallest index (a fixed
// choice, so the plan depends on the graph only), release() frees one.
class BufferPool {
 public:
  int64_t take() {
    if (free_.empty()) return count_++;
    const auto smallest = std::min_element(free_.begin(), free_.end());
    const int64_t value = *smallest;
    free_.erase(smallest);
    return value;
  }
  void release(int64_t buffer) { free_.push_back(buffer); }
  int64_t count() const { return count_; }

 private:
  std::vector<int64_t> free_;
  int64_t count_ = 0;
};

}  // namespace

void Network::pass_gradient_slots() {
  // In backward order: a tensor's slot is taken by its first consumer there (or the loss) and
  // freed after its producer's backward; a consumer that finds the slot already taken adds its
  // gradient to the slot's values in its own kernel where it can (Layer::adds_input_gradient),
  // else writes into a scratch slot that is added in.
  const size_t node_count = layers_.size();
  gradient_slot_.assign(input_shapes_.size() + node_count, -1);
  scratch_slot_.assign(node_count, {});
  adds_input_gradient_.assign(node_count, false);
  BufferPool slots;
  for (int64_t id : outputs_) {
    if (needs_gradient_[tensor_index(id)]) gradient_slot_[tensor_index(id)] = slots.take();
  }
  for (size_t i = node_count; i-- > 0;) {
    const size_t out = tensor_index(static_cast<int64_t>(i));
    scratch_slot_[i].assign(nodes_[i].inputs.size(), -1);
    if (!needs_gradient_[out]) continue;
    if (fused_in_training_[i]) continue;  // its pool's backward did its work
    if (gradient_slot_[out] < 0) gradient_slot_[out] = slots.take();  // an unused output: zero gradient
    const bool pool_of_fused = pool_fused_by_[i] >= 0 && fused_in_training_[static_cast<size_t>(pool_fused_by_[i])];
    bool passes_slot = false;
    if (!pool_of_fused) {
      for (size_t input = 0; input < nodes_[i].inputs.size(); ++input) {
        const int64_t id = nodes_[i].inputs[input];
        const size_t tensor = tensor_index(id);
        if (!needs_gradient_[tensor]) continue;
        bool targeted_here = false;
        for (size_t earlier = 0; earlier < input; ++earlier) targeted_here = targeted_here || nodes_[i].inputs[earlier] == id;
        const bool passes_gradient =
            layers_[i]->is_reshape() || activation_fused_into_[i] >= 0 || pool_computed_by_[i] >= 0;
        if (passes_gradient && consumers_[tensor].size() == 1 && !is_output(id)) {
          // A reshape's gradient is its output's; so is the gradient a fused ReLU hands back, and a
          // max pooling's that its BatchNormalization computes.
          gradient_slot_[tensor] = gradient_slot_[out];
          passes_slot = true;
        } else if (gradient_slot_[tensor] < 0 && !targeted_here) {
          gradient_slot_[tensor] = slots.take();
        } else if (gradient_accumulation_enabled_ && layers_[i]->adds_input_gradient() &&
                   nodes_[i].inputs.size() == 1) {
          adds_input_gradient_[i] = true;
        } else {
          scratch_slot_[i][input] = slots.take();
        }
      }
      for (int64_t scratch : scratch_slot_[i]) {
        if (scratch >= 0) slots.release(scratch);
      }
    }
    if (!passes_slot) slots.release(gradient_slot_[out]);
  }
  slot_count_ = slots.count();
}

void Network::pass_activation_buffers() {
  // Inference passes run every fusion (Fusion::everywhere) and read a tensor only while its
  // consumers run, so its buffer is free once the last one has: a chain of layers needs two
  // buffers (and one for a kept pre-activation), a residual network a few more. A reshape's
  // output is its input's buffer, as is a Dropout's or a noise or random augmentation layer's
  // (Layer::aliases_input_in_inference). Kept to the end: model outputs and their
  // pre-activations (the loss reads them), and tensors under an activity penalty (evaluate adds
  // it after the pass).
  const size_t node_count = layers_.size();
  inference_output_buffer_.assign(node_count, -1);
  inference_pre_activation_buffer_.assign(node_count, -1);
  // storage[t]: the node whose buffer holds node t's output (t itself, or an aliasing layer's source).
  std::vector<int64_t> storage(node_count, -1), last_use(node_count, -1);
  std::vector<bool> kept(node_count, false);
  for (size_t i = 0; i < node_count; ++i) {
    const int64_t source = nodes_[i].inputs[0];
    storage[i] = layers_[i]->aliases_input_in_inference() && source >= 0 ? storage[static_cast<size_t>(source)]
                                                                           : static_cast<int64_t>(i);
    if (is_output(static_cast<int64_t>(i)) || regularization_[i].on_activity()) kept[static_cast<size_t>(storage[i])] = true;
  }
  // A fused convolution's pass writes its pool's output, a folded layer's the last node it folds:
  // their reads happen at the convolution.
  std::vector<size_t> runs_at(node_count);
  for (size_t i = 0; i < node_count; ++i) {
    runs_at[i] = i;
    if (pool_fused_by_[i] >= 0 && pair_fused(static_cast<size_t>(pool_fused_by_[i]), Fusion::everywhere)) {
      runs_at[i] = static_cast<size_t>(pool_fused_by_[i]);
    }
    if (folded_into_[i] >= 0) runs_at[i] = static_cast<size_t>(folded_into_[i]);
  }
  for (size_t i = 0; i < node_count; ++i) {
    for (int64_t id : nodes_[i].inputs) {
      if (id < 0) continue;
      const size_t holder = static_cast<size_t>(storage[static_cast<size_t>(id)]);
      last_use[holder] = std::max<int64_t>(last_use[holder], static_cast<int64_t>(runs_at[i]));
    }
  }
  std::vector<std::vector<int64_t>> release_after(node_count);
  BufferPool buffers;
  std::vector<int64_t> sizes;
  auto place = [&](int64_t size) {
    const int64_t buffer = buffers.take();
    if (buffer >= static_cast<int64_t>(sizes.size())) sizes.push_back(0);
    sizes[static_cast<size_t>(buffer)] = std::max(sizes[static_cast<size_t>(buffer)], size);
    return buffer;
  };
  for (size_t i = 0; i < node_count; ++i) {
    // A fused pool is placed with its convolution; a reshape's output is its input's buffer, and so
    // is that of a layer that passes its input through in inference.
    if (runs_at[i] == i && !layers_[i]->aliases_input_in_inference()) {
      // The node's outputs are placed before its inputs are released: a kernel never reads and
      // writes one buffer.
      const size_t writes = pair_fused(i, Fusion::everywhere)     ? static_cast<size_t>(fused_pool_[i])
                            : batch_norm_folded(i, false) ? folded_last(i)
                                                          : i;
      const Layer& layer = *layers_[writes];
      const int64_t output = place(layer.output_shape.size());
      inference_output_buffer_[writes] = output;
      if (writes == i && layer.keeps_pre_activation()) {
        inference_pre_activation_buffer_[i] = place(layer.output_shape.size());
        // Read by this node only, unless the loss reads a model output's logits.
        if (!is_output(static_cast<int64_t>(i))) release_after[i].push_back(inference_pre_activation_buffer_[i]);
      }
      if (!kept[writes]) release_after[static_cast<size_t>(std::max<int64_t>(last_use[writes], i))].push_back(output);
    }
    for (int64_t buffer : release_after[i]) buffers.release(buffer);
  }
  inference_buffer_sizes_ = sizes;
}

void Network::pass_training_winograd_tile() {
  large_winograd_tile_in_training_ =
      std::none_of(layers_.begin(), layers_.end(), [](const auto& layer) { return layer->selects_a_maximum(); });
}

void Network::update_plan() {
  ++plan_version_;
  pass_needs_gradient();
  pass_batch_norm_folding();
  pass_convolution_max_pool();  // after the folding: a folded layer's pooling reads its last folded node
  pass_relu_derivative_hand_off();
  pass_output_activation();
  pass_batch_norm_max_pool();  // after the ReLU fusion and hand-off it reads
  pass_training_winograd_tile();
  pass_gradient_slots();
  pass_activation_buffers();
}

std::vector<std::pair<std::string, std::vector<int64_t>>> Network::fusion_passes() const {
  std::vector<int64_t> convolutions, relu_hand_offs, softmax_outputs, sigmoid_outputs, folded, activations,
      folded_in_training, residual_adds, gradient_additions, after_activation, batch_norm_pools;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (pair_fused(i, Fusion::everywhere)) convolutions.push_back(static_cast<int64_t>(i));
    if (batch_norm_folded(i, true)) folded_in_training.push_back(static_cast<int64_t>(i));
    if (output_activation_node_[i] >= 0) activations.push_back(static_cast<int64_t>(i));
    if (batch_norm_folded(i, false)) (folded_after_activation_[i] ? after_activation : folded).push_back(static_cast<int64_t>(i));
    if (batch_norm_folded(i, false) && folded_add_node_[i] >= 0) residual_adds.push_back(static_cast<int64_t>(i));
    if (layers_[i]->relu_input) relu_hand_offs.push_back(static_cast<int64_t>(i));
    if (adds_input_gradient_[i]) gradient_additions.push_back(static_cast<int64_t>(i));
    if (computes_pool_[i] >= 0) batch_norm_pools.push_back(static_cast<int64_t>(i));
  }
  for (size_t k = 0; k < outputs_.size(); ++k) {
    if (!fused_output_activation(k)) continue;
    const bool sigmoid = layers_[static_cast<size_t>(outputs_[k])]->activation() == Activation::sigmoid;
    (sigmoid ? sigmoid_outputs : softmax_outputs).push_back(outputs_[k]);
  }
  return {{"convolution_max_pool", convolutions},
          {"relu_derivative_hand_off", relu_hand_offs},
          {"batch_norm_folding", folded},
          {"batch_norm_folding_in_training", folded_in_training},
          {"batch_norm_after_activation", after_activation},
          {"residual_add", residual_adds},
          {"output_activation", activations},
          {"batch_norm_max_pool", batch_norm_pools},
          {"softmax_cross_entropy", softmax_outputs},
          {"sigmoid_binary_cross_entropy", sigmoid_outputs},
          {"input_gradient_accumulation", gradient_additions}};
}

}  // namespace fastcnn::runtime
