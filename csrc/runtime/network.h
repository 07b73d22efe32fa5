// The compiled model: a directed acyclic graph of nodes (each a layer with its input tensors and
// one output tensor), one flat parameter buffer (Keras order), one workspace arena sized for the
// largest batch seen, a loss per output and an optimizer. A training step (gather the batch,
// forward, losses, backward, optimizer update) is one call with no allocation in steady state.
//
// Tensors are named by ids: node i's output is tensor i (i >= 0), model input k is tensor -1 - k.
// Nodes are added in topological order (a node reads only earlier tensors), so the graph cannot
// have a cycle. A node added without explicit inputs reads the previous node's output (the
// first, model input 0): a Sequential model is the chain of its layers.
#pragma once

#include <cstdint>
#include <atomic>
#include <climits>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/huge_page_buffer.h"
#include "runtime/layers.h"
#include "runtime/optimizer.h"
#include "runtime/regularization.h"

namespace fastcnn::runtime {

// Training targets for a whole data set: class labels (one per sample) or probability rows
// (classes per sample). Exactly one is non-null.
struct Targets {
  const int32_t* labels = nullptr;
  const float* probabilities = nullptr;
  // Optional per-sample loss weights (one per sample of the data set): Keras's sample_weight /
  // class_weight. The batch loss stays sum(w_i * loss_i) / batch; accuracy is unweighted.
  const float* sample_weights = nullptr;
};

class PhaseTimer;  // network.cpp: the optional per-phase timing of train_step

struct StepResult {
  // Sum over the batch of per-sample losses (each output's weighted by its loss weight), plus
  // batch * the step's regularization penalty (so loss_sum / batch is Keras's reported loss: the
  // weighted mean losses plus the penalties).
  double loss_sum = 0.0;
  // Per output: the unweighted sum of per-sample losses (the metrics are Python's, from the outputs).
  std::vector<double> output_loss_sums;
};

// A model output's loss (ops/loss.h), its weight in the total loss (Keras's loss_weights).
struct OutputLoss {
  bool from_logits = false;
  float weight = 1.0f;
  LossKind kind = LossKind::categorical_crossentropy;
  LossOptions options;
};

class Network {
 public:
  // Declares model input k (returns its tensor id, -1 - k); before any node is added.
  int64_t add_input(const SampleShape& shape);
  // Adds a node; returns its output tensor id. inputs: tensor ids (empty: the chain's previous
  // tensor); shares_with: an earlier node whose parameters this node uses (-1: its own).
  int64_t add(std::unique_ptr<Layer> layer);
  void connect(int64_t node, const std::vector<int64_t>& inputs, int64_t shares_with);
  // The model outputs (tensor ids); default: the last node's output.
  void set_outputs(const std::vector<int64_t>& outputs);
  // Configures every node for its input shapes and allocates the parameters (zeros). With no
  // declared input, `input_shape` declares input 0.
  void build(const SampleShape& input_shape);
  void build();
  bool built() const { return built_; }

  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  size_t input_count() const { return input_shapes_.size(); }
  size_t output_count() const { return outputs_.size(); }
  SampleShape input_shape() const { return input_shapes_.empty() ? SampleShape{} : input_shapes_[0]; }
  const std::vector<SampleShape>& input_shapes() const { return input_shapes_; }
  SampleShape output_shape() const { return output_shape(0); }
  SampleShape output_shape(size_t output) const;
  const std::vector<int64_t>& outputs() const { return outputs_; }
  // The node whose parameters node i uses (i itself unless it shares another's).
  int64_t parameter_owner(int64_t node) const;
  float* parameters() { return parameters_.data(); }
  int64_t parameter_count() const { return static_cast<int64_t>(parameters_.size()); }
  // Floats the workspaces hold per sample (inputs, losses; training's activations and gradient
  // slots; inference's activation buffers); throws std::overflow_error when that does not fit in
  // 64 bits.
  int64_t workspace_per_sample() const;
  // Floats per sample of the activations an inference pass holds (buffers reused by liveness)
  // and a training pass holds (every tensor, for backward).
  int64_t inference_activations_per_sample() const;
  // Samples per slice of predict: enough that a slice's activation bytes cover the weight bytes
  // (read once per slice), else as many as keep the activations within 8 MiB; at most 64.
  int64_t predict_slice() const;
  int64_t training_activations_per_sample() const;

  void set_trainable(int64_t layer_index, bool trainable);
  // Every node's flag at once (one plan update).
  void set_trainable_flags(const std::vector<bool>& flags);
  // L1/L2 penalties on layer_index's kernel and bias (its first two parameter arrays) and output.
  void set_regularization(int64_t layer_index, const Regularization& regularization);
  void configure_loss(bool from_logits);
  void configure_output_loss(int64_t output, bool from_logits, float weight,
                             LossKind kind = LossKind::categorical_crossentropy, const LossOptions& options = {});
  void configure_optimizer(const OptimizerConfig& config);
  Optimizer& optimizer() { return optimizer_; }

  // One optimizer step on samples x_k[indices[0..batch)] of every input k (each x_k holds whole
  // samples back to back); targets: one per output.
  StepResult train_step(const std::vector<const float*>& x, const std::vector<Targets>& targets,
                        const int64_t* indices, int64_t batch, float learning_rate, uint64_t seed);

  // Data-parallel training (fastcnn/distributed.py) splits train_step around the gradient
  // exchange. compute_gradients runs forward, loss and backward on this process's `batch` samples
  // into the gradient buffer, with the loss averaged over `loss_batch` samples (the global batch:
  // every rank's batch together), so the sum of every rank's gradients is the global batch's mean
  // gradient; `first_sample` is this batch's position in the global batch (Dropout's masks).
  // on_layer_gradient, when set, is called from the step's thread with a layer's index as soon
  // as that layer's parameter gradients are final (backward order), to start their exchange while
  // earlier layers still compute. The result's loss_sum is this batch's losses plus loss_batch
  // times its share of the activity penalties (summing over ranks gives the global batch's).
  // compute_gradients(batch, loss_batch = batch, first_sample = 0) then apply_gradients updates
  // the weights exactly as train_step(batch) does.
  StepResult compute_gradients(const std::vector<const float*>& x, const std::vector<Targets>& targets,
                               const int64_t* indices, int64_t batch, int64_t loss_batch, int64_t first_sample,
                               uint64_t seed, const std::function<void(int64_t)>& on_layer_gradient = {});
  // Adds the weight penalties' gradients to the (exchanged) gradient buffer and applies the
  // optimizer; returns the weight penalty (part of the step's loss, counted once).
  double apply_gradients(float learning_rate);
  // The gradient buffer, laid out like the parameters (valid for the trainable ranges after
  // compute_gradients).
  float* gradients() { return gradients_.data(); }

  // The model outputs of the last pass (a train step, gradient computation or test step):
  // last_batch() * output_shape(k).size() floats each, valid until the next pass. The metrics
  // read them.
  std::vector<const float*> last_outputs() const;
  int64_t last_batch() const { return last_batch_; }
  // Per output, of the last train, gradient or test step: the samples whose output's largest
  // value (the first of equal ones; NaN counts as largest, as numpy's argmax) sits at the target's
  // class: the label, or the largest entry of the target row. Keras's sparse / categorical
  // accuracy counts, taken in the step while the outputs are in cache (the metrics then add a
  // number instead of running numpy over the outputs after the step).
  const std::vector<int64_t>& last_argmax_matches() const { return last_argmax_matches_; }
  // Whether training passes let 3x3 Winograd forward passes take F(4x4, 3x3) (the plan's
  // training_winograd_tile).
  bool large_winograd_tile_in_training() const { return large_winograd_tile_in_training_; }

  // Loss and accuracy in inference mode, no update.
  StepResult test_step(const std::vector<const float*>& x, const std::vector<Targets>& targets,
                       const int64_t* indices, int64_t batch);
  // Inference on `batch` contiguous samples of every input; outputs[k] holds batch *
  // output_shape(k).size().
  void predict(const std::vector<const float*>& x, int64_t batch, const std::vector<float*>& outputs);
  // One forward pass in training mode with no loss or update (random layers active, as a Keras
  // layer called with training=True); `seed` plays the step's seed.
  void forward_training(const std::vector<const float*>& x, int64_t batch, uint64_t seed,
                        const std::vector<float*>& outputs);
  // The same pass, returning a copy of every node's output (batch * output size each), unfused:
  // fit(check_numerics=True) scans them for the first layer that produces a non-finite value.
  std::vector<std::vector<float>> forward_training_layer_outputs(const std::vector<const float*>& x, int64_t batch,
                                                                 uint64_t seed);

  // Per-phase wall time of train_step (gather, each node's forward and backward, loss,
  // optimizer, and the whole step), summed over the steps since profiling was switched on.
  // Off by default; for benchmarks/step_profile.py. Switching it on or off clears the sums.
  void set_profiling(bool enabled);

  // Conv2D + MaxPooling2D fusion (Layer::fuses_max_pool), on by default; off runs every layer
  // alone (tests and benchmarks compare the two). fused_max_pool_layers lists the convolutions
  // that compute their (only) consumer's max pooling in inference, or with `training` in a
  // training step: a first layer's pair where the convolution needs no input gradient, a
  // Winograd-shaped one never.
  void set_max_pool_fusion(bool enabled);
  std::vector<int64_t> fused_max_pool_layers(bool training = false) const;
  // The plan's fusion passes by name (plan.cpp), each with the nodes it applies to in inference:
  // convolution_max_pool (the convolutions), relu_derivative_hand_off (the consumers that apply
  // a ReLU's derivative), batch_norm_folding (the folding layers), output_activation (the
  // BatchNormalizations and elementwise merges computing a ReLU in training), softmax_cross_entropy and
  // sigmoid_binary_cross_entropy (the output tensors).
  std::vector<std::pair<std::string, std::vector<int64_t>>> fusion_passes() const;
  std::vector<std::pair<std::string, double>> profile() const;

  // BatchNormalization folding in inference passes (plan.cpp batch_norm_folding), on by default;
  // off runs every layer alone (tests and benchmarks compare the two).
  void set_batch_norm_folding(bool enabled);
  // BatchNormalization + ReLU and merge (Add, ...) + ReLU fusion in training passes (plan.cpp
  // output_activation), on by default; off runs both layers alone.
  void set_output_activation_fusion(bool enabled);
  // Residual Add folding in inference passes (plan.cpp residual_add), on by default; off runs the
  // Add (and the activation after it) alone.
  void set_residual_add_fusion(bool enabled);
  void set_gradient_accumulation(bool enabled);
  // The parameters were written from outside a step (Python assigning weights, restoring a
  // checkpoint, a broadcast): inference refolds before its next pass. Handing out writable views
  // counts as a write.
  void parameters_changed() { ++parameters_version_; }

  // ---- Int8 inference (runtime/quantized_layers.h) ----
  // Replaces node `node`'s layer (after build) with `layer`, which must accept the same input and
  // give the same output and parameter shapes (it reads the node's parameters), and re-plans.
  // Throws std::invalid_argument naming the node and what differs.
  void replace_layer(int64_t node, std::unique_ptr<Layer> layer);

 private:
  struct Node {
    std::vector<int64_t> inputs;  // tensor ids
    int64_t shares_with = -1;
  };
  // Which Conv2D + MaxPooling2D pairs run fused in a pass.
  enum class Fusion { none, everywhere, where_no_input_gradient };
  // Where a pass keeps node outputs: one buffer per node (training: backward reads them; also
  // every layer's output for check_numerics) or the inference buffers reused by liveness.
  enum class Buffers { training, inference };

  size_t tensor_index(int64_t id) const {
    return id < 0 ? static_cast<size_t>(-1 - id) : input_shapes_.size() + static_cast<size_t>(id);
  }
  SampleShape tensor_shape(int64_t id) const {
    return id < 0 ? input_shapes_[static_cast<size_t>(-1 - id)] : layers_[static_cast<size_t>(id)]->output_shape;
  }
  bool is_output(int64_t id) const;
  void ensure_batch_buffers(int64_t batch);
  void ensure_training_workspace(int64_t batch);
  void ensure_inference_workspace(int64_t batch);
  // Recomputes trainable_variables_: (begin, end) in the parameter buffer of every weight array
  // the optimizer updates. Runs at build and when a layer's trainable flag changes, not per step.
  void update_trainable_variables();
  // The plan (plan.cpp): its passes in order. At build and on every change of the trainable
  // flags, the regularization or the fusion switch.
  void update_plan();
  // The node that is `node`'s output's only reader, or -1: also when the output is a model
  // output or carries an activity penalty. Every fusion applies only where this is a node.
  int64_t single_consumer(int64_t node) const;
  void pass_needs_gradient();
  void pass_convolution_max_pool();
  void pass_relu_derivative_hand_off();
  void pass_batch_norm_folding();
  void pass_output_activation();
  void pass_batch_norm_max_pool();
  // Whether node `add` is an Add of `operand` and a tensor of its shape computed before node
  // `before` runs; that tensor's id goes to `residual`.
  bool residual_of_add(size_t add, int64_t operand, int64_t before, int64_t& residual) const;
  void pass_training_winograd_tile();
  // Whether node (a BatchNormalization or an elementwise merge) computes the ReLU after it in this
  // pass (training passes that fuse: the plan's output_activation).
  bool output_activation_fused(size_t node, bool training, Fusion fusion) const {
    return training && fusion != Fusion::none && output_activation_node_[node] >= 0;
  }
  // Whether node runs folded with its BatchNormalization (and activation) in this pass: every
  // inference pass, and training passes where the BatchNormalization is frozen (moving
  // statistics) and nothing there needs a gradient (a fine-tuned network's frozen part).
  bool batch_norm_folded(size_t node, bool training) const {
    return batch_norm_folding_enabled_ && folded_batch_norm_[node] >= 0 && (!training || folded_in_training_[node]);
  }
  // The node whose output a folded node's pass writes (its activation, else its Add, else its
  // BatchNormalization; only the last after batch_norm_after_activation).
  size_t folded_last(size_t node) const {
    if (folded_after_activation_[node]) return static_cast<size_t>(folded_batch_norm_[node]);
    return static_cast<size_t>(folded_activation_node_[node] >= 0 ? folded_activation_node_[node]
                               : folded_add_node_[node] >= 0    ? folded_add_node_[node]
                                                                : folded_batch_norm_[node]);
  }
  // Recomputes the folded kernels and biases when the parameters changed since the last fold.
  void refresh_folded_parameters();
  void pass_gradient_slots();
  void pass_activation_buffers();
  void gather(const std::vector<const float*>& x, const int64_t* indices, int64_t batch);
  bool pair_fused(size_t convolution, Fusion fusion) const;
  // Whether a pass computes node's max pooling with it: pair_fused, but never an inference-only
  // pair in a training pass (forward_training runs every fusion in training mode).
  bool pool_fused_in_pass(size_t node, bool training, Fusion fusion) const {
    return pair_fused(node, fusion) && !(training && pool_fused_in_inference_only_[node]);
  }
  // timer (may be null): laps into profile slot 1 + node index after each node.
  void forward(const kernels::KernelTable& kernels, const std::vector<const float*>& inputs, int64_t batch,
               bool training, uint64_t seed, Fusion fusion, Buffers buffers, PhaseTimer* timer = nullptr,
               int64_t first_sample = 0);
  // Output k's loss reads its logits: a softmax output with categorical cross-entropy or a
  // sigmoid output with binary cross-entropy, not from_logits, read by no other node.
  bool fused_output_activation(size_t output) const;
  // Loss of every output, its gradient (scaled by weight / loss_batch) into the output's gradient
  // slot when `gradients` is true.
  StepResult losses_and_gradients(const std::vector<Targets>& targets, const int64_t* indices, int64_t batch,
                                  int64_t loss_batch, bool gradients);
  StepResult forward_backward(const std::vector<const float*>& x, const std::vector<Targets>& targets,
                              const int64_t* indices, int64_t batch, int64_t loss_batch, int64_t first_sample,
                              uint64_t seed, PhaseTimer& timer,
                              const std::function<void(int64_t)>& on_layer_gradient, double& activity_penalty);
  double activity_penalty(int64_t batch, int64_t loss_batch);
  double weight_penalty(bool add_gradients);
  void add_output_activity_gradient(size_t node, int64_t batch, int64_t loss_batch, bool gradient_is_logits,
                                    float* gradient);
  float* slot(int64_t index) { return gradient_slots_ + index * slot_stride_; }
  void require_built() const;

  std::vector<std::unique_ptr<Layer>> layers_;  // one per node
  std::vector<Node> nodes_;
  std::vector<SampleShape> input_shapes_;
  std::vector<int64_t> outputs_;
  std::vector<OutputLoss> output_losses_;
  std::vector<std::vector<std::pair<size_t, size_t>>> consumers_;  // per tensor index: (node, input slot)
  std::vector<int64_t> fused_pool_;    // per node: the max pooling a convolution can compute (-1: none)
  std::vector<int64_t> pool_fused_by_; // per node: the convolution that can compute it (-1: none)
  // Per node: its pair fuses in inference passes only (Layer::fuses_max_pool_in_inference).
  std::vector<bool> pool_fused_in_inference_only_;
  bool max_pool_fusion_enabled_ = true;
  // BatchNormalization folding (per node, -1: none): the BatchNormalization a layer folds, the
  // activation node after it, that activation, and where its folded kernels and bias lie in
  // folded_parameters_ (kernel_floats() then one bias per output channel).
  std::vector<int64_t> folded_batch_norm_, folded_activation_node_, folded_offset_;
  std::vector<Activation> folded_activation_;
  // Residual Add folding (per node, -1: none): the Add reading the folded BatchNormalization, and
  // the Add's other input (a tensor id), which the folded pass adds before the activation.
  std::vector<int64_t> folded_add_node_, folded_residual_;
  bool residual_add_fusion_enabled_ = true;
  bool gradient_accumulation_enabled_ = true;
  std::vector<int64_t> folded_into_;  // per node: the layer whose folded pass computes it (-1: none)
  std::vector<bool> folded_in_training_;  // per node: it also runs folded in training passes
  // Per node: its BatchNormalization runs after its activation (batch_norm_after_activation): its
  // folded_parameters_ are that BatchNormalization's scale then shift, its kernel stays its own.
  std::vector<bool> folded_after_activation_;
  bool any_folded_in_training_ = false;
  bool large_winograd_tile_in_training_ = false;  // see large_winograd_tile_in_training()
  // Training's BatchNormalization + ReLU fusion (per node, -1: none): the ReLU node a
  // BatchNormalization computes, its activation, and for that node the BatchNormalization.
  std::vector<int64_t> output_activation_node_, activation_fused_into_;
  std::vector<Activation> output_activation_;
  bool output_activation_enabled_ = true;
  // Training's BatchNormalization + MaxPooling2D (per node, -1: none; on with the max pooling
  // fusions): the max pooling a BatchNormalization computes, and for that pooling the
  // BatchNormalization.
  std::vector<int64_t> computes_pool_, pool_computed_by_;
  bool batch_norm_folding_enabled_ = true;
  std::vector<float> folded_parameters_;
  // Bumped by every write of the parameters (steps, moving statistics, parameters_changed);
  // folded_version_ is the version folded_parameters_ was computed from.
  std::atomic<uint64_t> parameters_version_{1};
  uint64_t folded_version_ = 0;
  bool default_from_logits_ = false;
  bool built_ = false;
  std::vector<float> parameters_, gradients_;
  Optimizer optimizer_;
  bool optimizer_configured_ = false;
  std::vector<std::pair<int64_t, int64_t>> trainable_variables_;
  std::vector<Regularization> regularization_;  // one per node
  std::vector<double> penalty_partials_;

  // The plan (update_plan), bumped version on every change so that workspaces follow it.
  int64_t plan_version_ = 0;
  std::vector<bool> needs_gradient_;             // per tensor index
  std::vector<int64_t> gradient_slot_;           // per tensor index (-1: none)
  std::vector<std::vector<int64_t>> scratch_slot_;  // per node and input: a slot to add from (-1: direct)
  std::vector<bool> adds_input_gradient_;  // per node: its backward adds into its input's taken slot
  std::vector<bool> fused_in_training_;          // per node: conv computing its pool in training
  int64_t slot_count_ = 0;
  std::vector<bool> shared_parameters_;  // per node: it shares parameters or others share its
  std::vector<int64_t> inference_output_buffer_;          // per node (-1: none, a reshape or fused convolution)
  std::vector<int64_t> inference_pre_activation_buffer_;  // per node (-1: none)
  std::vector<int64_t> inference_buffer_sizes_;           // floats per sample of each buffer

  // Per-pass scratch, kept between steps so that a step allocates nothing.
  std::vector<bool> done_, notified_;
  std::vector<const float*> node_inputs_;
  std::vector<float*> input_gradients_;

  // Workspaces, each one arena sized for the largest batch it has served and laid out for the
  // plan version it records. Batch buffers: the gathered inputs and the per-sample losses.
  int64_t batch_capacity_ = 0;
  HugePageBuffer batch_arena_;
  std::vector<float*> gathered_;  // per input
  float* losses_ = nullptr;
  // Training: every node's output and kept pre-activation, and the gradient slots.
  int64_t training_capacity_ = 0, training_plan_version_ = -1;
  HugePageBuffer arena_;
  std::vector<float*> node_outputs_, pre_activations_;  // per node (null for reshapes)
  std::vector<float*> training_scratch_;                // per node (Layer::scratch_per_sample; null: none)
  float* gradient_slots_ = nullptr;
  int64_t slot_stride_ = 0;
  // Inference: the activation buffers (pass_activation_buffers), as per-node pointers.
  int64_t inference_capacity_ = 0, inference_plan_version_ = -1;
  HugePageBuffer inference_arena_;
  std::vector<float*> inference_outputs_, inference_pre_activations_;  // per node
  float* inference_scratch_ = nullptr;  // the largest Layer::scratch_per_sample, shared by every node
  // Floats per sample of the largest layer scratch (inference shares one).
  int64_t largest_scratch_per_sample() const;
  // The current pass: every tensor's values and every node's pre-activation (null: none kept).
  std::vector<const float*> values_;
  std::vector<const float*> pre_activation_values_;
  int64_t last_batch_ = 0;  // samples of the last forward pass
  std::vector<int64_t> last_argmax_matches_;  // see last_argmax_matches()
  std::vector<int32_t> batch_labels_;
  std::vector<float> batch_probabilities_;

  // Profile: seconds per phase, in the order of profile_names_ (empty when profiling is off).
  std::vector<std::string> profile_names_;
  std::vector<double> profile_seconds_;

  // One step at a time per network: concurrent callers (threads sharing a model) serialise here.
  std::mutex step_mutex_;
};

}  // namespace fastcnn::runtime
