// The layers of a compiled model: each knows its shapes, its slice of the flat parameter buffer
// and how to run its kernels forward and backward for one batch. They hold no activations: the
// Network's workspace owns every buffer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "tensor.h"

namespace fastcnn::runtime {

// What a step hands every layer.
struct StepContext {
  const kernels::KernelTable& kernels;
  bool training = false;
  uint64_t seed = 0;  // fresh for every training step; layers mix in their index
  float* parameters = nullptr;  // mutable: BatchNormalization updates its moving statistics
  float* gradients = nullptr;   // null in inference
  // Position of this batch's first sample in the global batch of a data-parallel step (0 in a
  // single process): Dropout starts its mask there, so N ranks draw the masks one process would.
  int64_t first_sample = 0;
  // This node's scratch (Layer::scratch_per_sample() * batch floats, null when it needs none),
  // from the Network's workspace: in training kept from the node's forward pass to its backward
  // pass; in inference valid only during the forward call (one buffer shared by every node).
  float* scratch = nullptr;
  // Inference: the parameters' version (Network's counter), under which a layer's kernels may
  // keep their packed weights between calls (PackedKernelCache); 0 in training.
  uint64_t weights_version = 0;
  // Training: whether 3x3 Winograd forward and input-gradient passes may take the larger F(4x4, 3x3)
  // tile, as inference does (Conv2DParams::large_winograd_tile): in networks where no layer selects
  // a maximum (the plan's training_winograd_tile).
  bool large_winograd_tile_in_training = false;
  // Backward: add this node's input gradient to the values already in input_gradient (another
  // reader of the tensor wrote them) instead of overwriting them; set only for a layer that
  // adds_input_gradient (plan.cpp pass_gradient_slots).
  bool accumulate_input_gradient = false;
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string kind() const = 0;

  // Checks this layer against the shape it receives and returns its output shape; throws
  // std::invalid_argument naming the layer and the values received.
  virtual SampleShape configure(const SampleShape& input) = 0;
  // Parameter shapes in Keras's order (e.g. kernel (kh, kw, in, out) then bias (out,)).
  virtual std::vector<std::vector<int64_t>> parameter_shapes() const { return {}; }
  // Floats per sample of intermediate values the layer computes between its kernels
  // (SeparableConv2D's depthwise output), handed to it as StepContext::scratch.
  virtual int64_t scratch_per_sample() const { return 0; }
  // Kernel-like parameter arrays before the bias: L1/L2 "kernel" factors apply to the first,
  // the second kernel's (SeparableConv2D's pointwise kernel) to the second, the bias's to the next.
  virtual int64_t kernel_arrays() const { return 1; }
  // A reshape (Flatten) moves no data: its output and input gradient alias its input and output
  // gradient.
  virtual bool is_reshape() const { return false; }
  // Dropout, the noise layers and the random augmentation layers pass their input through
  // unchanged outside training.
  virtual bool passes_input_in_inference() const { return false; }
  // Inference passes alias such a layer's output to its input, as a reshape's: no copy, no buffer.
  bool aliases_input_in_inference() const { return is_reshape() || passes_input_in_inference(); }
  // Layers ending in softmax keep the logits: the fused softmax + cross-entropy loss reads them.
  virtual bool keeps_pre_activation() const { return false; }
  virtual Activation activation() const { return Activation::linear; }

  virtual void forward(const StepContext& context, int64_t batch, const float* input,
                       float* pre_activation, float* output) = 0;
  // output_gradient is d(loss)/d(output), or d(loss)/d(pre-activation) when
  // gradient_is_pre_activation; the layer may overwrite it. input_gradient null: not needed.
  // pre_activation is the buffer forward filled when keeps_pre_activation(), else null.
  virtual void backward(const StepContext& context, int64_t batch, const float* input,
                        const float* pre_activation, const float* output, float* output_gradient,
                        bool gradient_is_pre_activation, float* input_gradient) = 0;

  // ReLU fusion across layers: a layer whose output is a fused ReLU's (outputs_relu) hands its
  // backward to a next layer that can apply the ReLU's derivative in its own input-gradient pass
  // (accepts_relu_input: max pooling, BatchNormalization); the Network sets relu_input on that
  // layer at build, and the first then receives its gradient already masked.
  virtual bool outputs_relu() const { return false; }
  virtual bool accepts_relu_input() const { return false; }
  bool relu_input = false;

  // Activation fusion after a layer (plan.cpp output_activation, training passes): a layer that
  // accepts_output_activation (BatchNormalization, the elementwise merges) computes the relu or
  // relu6 of the ReLU layer that only reads it, storing only the activated output; its backward
  // then receives that output's gradient and applies the activation's derivative itself. The Network sets
  // output_activation before each forward (linear where the pass does not fuse).
  virtual bool accepts_output_activation() const { return false; }
  Activation output_activation = Activation::linear;

  // BatchNormalization + MaxPooling2D in training (plan.cpp batch_norm_max_pool): a layer that
  // computes_max_pool_in_training(pool) (a BatchNormalization on batch statistics) computes the
  // max pooling that only reads its output (or the ReLU it computes) in training passes:
  // forward_max_pool writes the pooled output and each window's first-maximum position (into its
  // scratch), and its backward pass takes the pooled output's gradient and routes it by those
  // positions (BatchNormParams::max_pool). The pooling runs neither pass; the layer's own output
  // and the full-size gradient between the two are never stored. The plan sets
  // max_pool_in_training (null: none).
  virtual bool computes_max_pool_in_training(const Layer& pool) const { return false; }
  const Layer* max_pool_in_training = nullptr;

  // Conv2D + MaxPooling2D fusion (kernels.h conv2d_max_pool2d_*): a layer that fuses_max_pool(next)
  // can compute the next layer's (a max pooling's) output itself, without storing its own, and its
  // parameter gradients from that output's gradient when its own input gradient is not needed.
  // The Network decides where the pair runs fused (update_fusion and each step).
  virtual const Pool2DParams* max_pool_params() const { return nullptr; }  // a max-pooling layer's geometry
  // Whether this layer's output picks one of several inputs by comparing them (max pooling, a
  // Maximum or Minimum merge): its gradient follows that choice, which rounding can flip.
  virtual bool selects_a_maximum() const { return max_pool_params() != nullptr; }
  virtual bool fuses_max_pool(const Layer& next) const { return false; }
  // The same pair in inference passes only: a Conv2D the optimised tiers run as Winograd, pooling
  // its output tiles as they are stored (Conv2DParams::max_pool), through forward_max_pool, or,
  // folded with a BatchNormalization (and activation) whose output the pooling reads, through
  // forward_folded / forward_then_affine while the Network sets inference_max_pool (the pooling's
  // geometry, any batch; null otherwise): their output is then the pooling's.
  virtual bool fuses_max_pool_in_inference(const Layer& next) const { return false; }
  const Pool2DParams* inference_max_pool = nullptr;
  virtual void forward_max_pool(const StepContext& context, int64_t batch, const float* input, const Layer& pool,
                                float* pool_output) {}
  virtual void backward_max_pool(const StepContext& context, int64_t batch, const float* input, const Layer& pool,
                                 const float* pool_output, const float* pool_output_gradient) {}

  // BatchNormalization folding (plan.cpp batch_norm_folding, inference only). A layer with a linear
  // output (folds_batch_norm: Conv2D, DepthwiseConv2D, SeparableConv2D, Dense) whose output
  // channel is the fastest axis of its last kernel array computes, for the BatchNormalization that
  // reads it and an elementwise activation after that,
  //   activation(x * (W * s) + (b - moving_mean) * s + beta),  s = gamma / sqrt(moving_variance + epsilon)
  // with kernels = its kernel arrays (kernel_floats() floats, laid out as in its parameter slice,
  // the last one scaled per output channel) and bias = the folded bias (one per output channel).
  // A layer that folds_residual_add (Conv2D with groups=1) also adds a tensor of its output's shape
  // before the activation (plan.cpp residual_add: an Add reading the BatchNormalization):
  //   activation(x * (W * s) + (b - moving_mean) * s + beta + residual)
  // forward_folded's residual is null where the plan folds no Add.
  virtual bool folds_batch_norm() const { return false; }
  virtual bool folds_residual_add() const { return false; }
  virtual int64_t kernel_floats() const { return 0; }
  // Floats at the start of the last kernel array within the kernel arrays (0 for one array).
  virtual int64_t scaled_kernel_begin() const { return 0; }
  virtual void forward_folded(const StepContext& context, int64_t batch, const float* input, const float* kernels,
                              const float* bias, Activation activation, const float* residual, float* output) {}
  // BatchNormalization after the activation (plan.cpp batch_norm_after_activation, inference
  // only): a layer that applies_batch_norm_after_activation (Conv2D with groups=1 whose own
  // activation, if any, its kernel's epilogue computes) computes, for the BatchNormalization
  // reading its activated output,
  //   activation(x * W + b) * s + (beta - moving_mean * s)
  // with its own kernel and bias, the per-channel scale and shift applied in the same epilogue;
  // `activation` is its own, or that of the activation layer between it and the BatchNormalization.
  virtual bool applies_batch_norm_after_activation() const { return false; }
  virtual void forward_then_affine(const StepContext& context, int64_t batch, const float* input, Activation activation,
                                   const float* scale, const float* shift, float* output) {}
  // A BatchNormalization's folding factors from its parameters: scale s and shift
  // beta - moving_mean * s per channel (other layers: false).
  virtual bool batch_norm_factors(const float* parameters, float* scale, float* shift) const { return false; }
  // The elementwise activation this layer applies to its input alone, when it is one that a
  // kernel epilogue can apply (a ReLU layer, an Activation layer); false otherwise.
  virtual bool as_epilogue_activation(Activation& activation) const { return false; }

  // Whether backward can add its input gradient to the values in input_gradient
  // (StepContext::accumulate_input_gradient), which saves a tensor read by several layers the
  // scratch copy and the pass that adds it in. Single-input layers only.
  virtual bool adds_input_gradient() const { return false; }

  // Merge layers take several inputs: they override these; a single-input layer gets them from
  // configure / forward / backward. input_gradients entries may be null (not needed).
  virtual bool takes_several_inputs() const { return false; }
  virtual SampleShape configure_inputs(const std::vector<SampleShape>& inputs);
  virtual void forward_inputs(const StepContext& context, int64_t batch, const std::vector<const float*>& inputs,
                              float* pre_activation, float* output) {
    forward(context, batch, inputs[0], pre_activation, output);
  }
  virtual void backward_inputs(const StepContext& context, int64_t batch, const std::vector<const float*>& inputs,
                               const float* pre_activation, const float* output, float* output_gradient,
                               bool gradient_is_pre_activation, const std::vector<float*>& input_gradients) {
    backward(context, batch, inputs[0], pre_activation, output, output_gradient, gradient_is_pre_activation,
             input_gradients[0]);
  }

  int64_t parameter_count() const;
  // Trainable parameters come first in a layer's slice; the rest (BatchNormalization's moving
  // statistics) are updated by the layer itself, never by the optimizer.
  virtual int64_t trainable_parameter_count() const { return parameter_count(); }

  SampleShape input_shape, output_shape;  // input_shape: the first input's
  std::vector<SampleShape> input_shapes;
  int64_t parameter_offset = 0;
  // Where backward writes this layer's parameter gradients: parameter_offset, or for a layer
  // sharing another's parameters (a Keras layer called twice) a region of its own beyond the
  // parameters, summed into the owner's after the backward pass.
  int64_t gradient_offset = 0;
  int64_t index = 0;
  bool trainable = true;
};

// groups: Conv2D(groups=) (1: an ordinary convolution).
std::unique_ptr<Layer> make_conv2d(int64_t filters, int64_t kernel_height, int64_t kernel_width,
                                   int64_t stride_height, int64_t stride_width,
                                   int64_t dilation_height, int64_t dilation_width,
                                   Padding padding, bool use_bias, Activation activation, int64_t groups = 1);
std::unique_ptr<Layer> make_depthwise_conv2d(int64_t depth_multiplier, int64_t kernel_height, int64_t kernel_width,
                                             int64_t stride_height, int64_t stride_width, int64_t dilation_height,
                                             int64_t dilation_width, Padding padding, bool use_bias,
                                             Activation activation);
// Keras's SeparableConv2D: the depthwise convolution (no bias) into the layer's scratch, then a
// 1x1 convolution to `filters` channels with bias and activation. Parameters: depthwise kernel
// (kh, kw, in, depth_multiplier), pointwise kernel (1, 1, in * depth_multiplier, filters), bias.
std::unique_ptr<Layer> make_separable_conv2d(int64_t filters, int64_t depth_multiplier, int64_t kernel_height,
                                             int64_t kernel_width, int64_t stride_height, int64_t stride_width,
                                             int64_t dilation_height, int64_t dilation_width, Padding padding,
                                             bool use_bias, Activation activation);
std::unique_ptr<Layer> make_dense(int64_t units, bool use_bias, Activation activation);
// Max or average pooling; global = one window over the whole image (sizes ignored).
std::unique_ptr<Layer> make_pool2d(bool average, bool global, int64_t pool_height, int64_t pool_width,
                                   int64_t stride_height, int64_t stride_width, Padding padding);
std::unique_ptr<Layer> make_flatten();
std::unique_ptr<Layer> make_reshape(const SampleShape& target);
std::unique_ptr<Layer> make_zero_padding2d(int64_t top, int64_t bottom, int64_t left, int64_t right);
// Keras's Cropping2D: removes rows and columns from each side (none may be negative; at least
// one row and one column must remain).
std::unique_ptr<Layer> make_cropping2d(int64_t top, int64_t bottom, int64_t left, int64_t right);
// Keras's UpSampling2D (ops/upsampling.h).
std::unique_ptr<Layer> make_upsampling2d(int64_t size_height, int64_t size_width, bool bilinear);
// Keras's Identity: its output aliases its input (as a reshape's).
std::unique_ptr<Layer> make_identity();
// Rescaling with per-channel scale and offset: each of size 1 (every channel) or the input's
// channel count.
std::unique_ptr<Layer> make_channel_rescaling(std::vector<float> scale, std::vector<float> offset);
std::unique_ptr<Layer> make_relu(const std::string& kind, float max_value, float negative_slope, float threshold);
std::unique_ptr<Layer> make_rescaling(float scale, float offset);
// Keras's LayerScale (keras.applications.convnext): y = x * gamma, gamma (channels,) trainable.
std::unique_ptr<Layer> make_layer_scale();
std::unique_ptr<Layer> make_batch_norm(float momentum, float epsilon, bool center, bool scale);
// seed < 0: masks follow the step's seed; else the layer's own stream.
std::unique_ptr<Layer> make_dropout(float rate, int64_t seed);
std::unique_ptr<Layer> make_activation(Activation activation);
std::unique_ptr<Layer> make_elu(float alpha);
// alpha_shape: Keras's alpha shape; the shared flags say which of (height, width, channels) it spans as 1.
std::unique_ptr<Layer> make_prelu(const std::vector<int64_t>& alpha_shape, bool shared_height, bool shared_width,
                                  bool shared_channels);
// params' kind, rate or stddev and shared dimensions (the sizes come from the input); seed as make_dropout.
std::unique_ptr<Layer> make_noise(const std::string& kind, const NoiseParams& params, int64_t seed);
// Keras's Add, Subtract, Multiply, Average, Maximum, Minimum (ops/merge.h).
std::unique_ptr<Layer> make_merge(MergeKind kind);
// Concatenate along a sample axis: 0 height, 1 width, 2 channels.
std::unique_ptr<Layer> make_concatenate(int64_t axis);
// LayerNormalization over the flagged sample axes (has_gamma: Keras's scale or rms_scaling;
// has_beta: center and not rms_scaling), GroupNormalization over the channels, and Keras's
// Normalization keeping the flagged axes (mean / variance: constants for the kept positions, or
// both empty for an adaptable layer whose mean, variance and count are parameters).
// normalization_layers.cpp.
std::unique_ptr<Layer> make_layer_norm(bool normalize_height, bool normalize_width, bool normalize_channels,
                                       float epsilon, bool has_gamma, bool has_beta, bool rms_scaling);
std::unique_ptr<Layer> make_group_norm(int64_t groups, float epsilon, bool has_gamma, bool has_beta);
std::unique_ptr<Layer> make_normalization(bool keep_height, bool keep_width, bool keep_channels, bool invert,
                                          std::vector<float> mean, std::vector<float> variance);

}  // namespace fastcnn::runtime
