// The compiled model: a chain of layers, one flat parameter buffer (Keras order), one workspace
// arena sized for the largest batch seen, a loss and an optimizer. A training step (gather the
// batch, forward, loss, backward, optimizer update) is one call with no allocation in steady state.
#pragma once

#include <cstdint>
#include <climits>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "kernels/kernels.h"
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
  // Sum over the batch of per-sample losses, plus batch * the step's regularization penalty (so
  // loss_sum / batch is Keras's reported loss: the mean loss plus the penalties).
  double loss_sum = 0.0;
  int64_t correct = 0;     // samples whose argmax prediction matches the target's
};

class Network {
 public:
  void add(std::unique_ptr<Layer> layer);
  // Configures every layer for this sample shape and allocates the parameters (zeros).
  void build(const SampleShape& input_shape);
  bool built() const { return built_; }

  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  SampleShape input_shape() const { return input_shape_; }
  SampleShape output_shape() const;
  float* parameters() { return parameters_.data(); }
  int64_t parameter_count() const { return static_cast<int64_t>(parameters_.size()); }

  void set_trainable(int64_t layer_index, bool trainable);
  // L1/L2 penalties on layer_index's kernel and bias (its first two parameter arrays) and output.
  void set_regularization(int64_t layer_index, const Regularization& regularization);
  void configure_loss(bool from_logits) { from_logits_ = from_logits; }
  void configure_optimizer(const OptimizerConfig& config);
  Optimizer& optimizer() { return optimizer_; }

  // One optimizer step on samples x[indices[0..batch)] (x holds whole samples back to back).
  StepResult train_step(const float* x, const Targets& targets, const int64_t* indices,
                        int64_t batch, float learning_rate, uint64_t seed);

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
  StepResult compute_gradients(const float* x, const Targets& targets, const int64_t* indices,
                               int64_t batch, int64_t loss_batch, int64_t first_sample, uint64_t seed,
                               const std::function<void(int64_t)>& on_layer_gradient = {});
  // Adds the weight penalties' gradients to the (exchanged) gradient buffer and applies the
  // optimizer; returns the weight penalty (part of the step's loss, counted once).
  double apply_gradients(float learning_rate);
  // The gradient buffer, laid out like the parameters (valid for the trainable ranges after
  // compute_gradients).
  float* gradients() { return gradients_.data(); }

  // Loss and accuracy in inference mode, no update.
  StepResult test_step(const float* x, const Targets& targets, const int64_t* indices,
                       int64_t batch);
  // Inference on `batch` contiguous samples; output holds batch * output_shape().size().
  void predict(const float* x, int64_t batch, float* output);
  // One forward pass in training mode with no loss or update (random layers active, as a Keras
  // layer called with training=True); `seed` plays the step's seed.
  void forward_training(const float* x, int64_t batch, uint64_t seed, float* output);
  // The same pass, returning a copy of every layer's output (batch * layer output size each):
  // fit(check_numerics=True) scans them for the first layer that produces a non-finite value.
  std::vector<std::vector<float>> forward_training_layer_outputs(const float* x, int64_t batch, uint64_t seed);

  // Per-phase wall time of train_step (gather, each layer's forward and backward, loss,
  // optimizer, and the whole step), summed over the steps since profiling was switched on.
  // Off by default; for benchmarks/step_profile.py. Switching it on or off clears the sums.
  void set_profiling(bool enabled);

  // Conv2D + MaxPooling2D fusion (Layer::fuses_max_pool), on by default; off runs every layer
  // alone (tests and benchmarks compare the two). fused_max_pool_layers lists the convolutions
  // whose next layer they compute: in inference always, in training where the convolution needs
  // no input gradient (the first trainable layer, or one before it).
  void set_max_pool_fusion(bool enabled);
  std::vector<int64_t> fused_max_pool_layers() const;
  std::vector<std::pair<std::string, double>> profile() const;

 private:
  void ensure_workspace(int64_t batch);
  // Recomputes trainable_variables_: (begin, end) in the parameter buffer of every weight array
  // the optimizer updates. Runs at build and when a layer's trainable flag changes, not per step.
  void update_trainable_variables();
  void gather(const float* x, const int64_t* indices, int64_t batch);
  // timer (may be null): laps into profile slot 1 + layer index after each layer.
  // Conv2D + MaxPooling2D pairs whose convolution index is <= fuse_through run fused (-1: none).
  const float* forward(const kernels::KernelTable& kernels, const float* input, int64_t batch,
                       bool training, uint64_t seed, PhaseTimer* timer = nullptr, int64_t first_sample = 0,
                       int64_t fuse_through = INT64_MAX);
  // Whether layer i and the max pooling after it run as one in a pass with this fuse_through.
  bool fused_pair(size_t i, int64_t fuse_through) const {
    return max_pool_fusion_enabled_ && i < max_pool_fusion_.size() && max_pool_fusion_[i] &&
           static_cast<int64_t>(i) <= fuse_through;
  }
  // The loss gradient is scaled by 1 / loss_batch (the batch itself outside data parallelism).
  StepResult loss_and_gradient(const Targets& targets, const int64_t* indices, int64_t batch,
                               int64_t loss_batch, float* gradient);
  // Body of train_step and compute_gradients, under step_mutex_; activity_penalty receives the
  // activity penalties divided by loss_batch.
  StepResult forward_backward(const float* x, const Targets& targets, const int64_t* indices, int64_t batch,
                              int64_t loss_batch, int64_t first_sample, uint64_t seed, PhaseTimer& timer,
                              const std::function<void(int64_t)>& on_layer_gradient, double& activity_penalty);
  // Decides which layers apply the previous layer's ReLU derivative (see Layer::relu_input).
  void update_fusion();
  // Activity penalties of the last forward's `batch` outputs, divided by loss_batch.
  double activity_penalty(int64_t batch, int64_t loss_batch);
  // Kernel and bias penalties of the trainable layers; adds their gradients when add_gradients.
  double weight_penalty(bool add_gradients);
  // Adds the last layer's activity-penalty gradient to the loss gradient (through the softmax
  // when the loss gradient is the logits').
  void add_output_activity_gradient(int64_t batch, int64_t loss_batch, bool gradient_is_logits, float* gradient);

  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<bool> max_pool_fusion_;  // per layer: it can compute the next (max pooling) layer's output
  bool max_pool_fusion_enabled_ = true;
  SampleShape input_shape_;
  bool built_ = false;
  bool from_logits_ = false;
  std::vector<float> parameters_, gradients_;
  Optimizer optimizer_;
  bool optimizer_configured_ = false;
  std::vector<std::pair<int64_t, int64_t>> trainable_variables_;
  std::vector<Regularization> regularization_;  // one per layer
  std::vector<double> penalty_partials_;

  // Workspace: every buffer of a step, carved out of one arena for `capacity_` samples.
  int64_t capacity_ = 0;
  std::vector<float> arena_;
  float* input_ = nullptr;
  std::vector<float*> outputs_, pre_activations_;
  float* gradient_a_ = nullptr;
  float* gradient_b_ = nullptr;
  float* losses_ = nullptr;
  std::vector<int32_t> batch_labels_;
  std::vector<float> batch_probabilities_;

  // Profile: seconds per phase, in the order of profile_names_ (empty when profiling is off).
  std::vector<std::string> profile_names_;
  std::vector<double> profile_seconds_;

  // One step at a time per network: concurrent callers (threads sharing a model) serialise here.
  std::mutex step_mutex_;
};

}  // namespace fastcnn::runtime
