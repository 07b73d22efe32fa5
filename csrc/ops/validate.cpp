// Shape and hyperparameter checks for every op, done once before any kernel runs. Each message
// names the argument and the value received, the way Keras words its errors.
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ops/activation.h"
#include "ops/checked.h"
#include "ops/conv2d.h"
#include "ops/dense.h"
#include "ops/loss.h"
#include "ops/merge.h"
#include "ops/pooling.h"

namespace fastcnn {
namespace {

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

void require_positive(const char* name, int64_t value) {
  if (value <= 0) {
    fail(std::string("`") + name + "` must be a positive integer. Received: " + name + "=" +
         std::to_string(value));
  }
}

struct WindowGeometry {
  int64_t output = 0;
  int64_t pad_before = 0;
};

// The window's extent (kernel - 1) * dilation + 1, checked: both factors are user-controlled.
int64_t effective_window(int64_t kernel, int64_t dilation, const char* axis, const char* what) {
  int64_t span = 0;
  if (__builtin_mul_overflow(kernel - 1, dilation, &span) || span >= kMaxElementCount) {
    fail(std::string(what) + " window along " + axis + " is too large: (size - 1) * dilation exceeds 2^50. "
         "Received: size=" + std::to_string(kernel) + ", dilation=" + std::to_string(dilation));
  }
  return span + 1;
}

WindowGeometry window_geometry(int64_t input, int64_t effective_kernel, int64_t stride,
                               Padding padding, const char* axis, const char* what) {
  WindowGeometry geometry;
  if (padding == Padding::valid) {
    if (effective_kernel > input) {
      fail(std::string(what) + " window of " + std::to_string(effective_kernel) + " along " + axis +
           " is larger than the input (" + std::to_string(input) +
           ") with padding='valid'; use padding='same' or a smaller window.");
    }
    geometry.output = (input - effective_kernel) / stride + 1;
  } else {
    // ceil(input / stride), written so that no intermediate exceeds input (stride may be huge).
    geometry.output = (input - 1) / stride + 1;
    // (output - 1) * stride <= input - 1 and effective_kernel <= 2^50: no term can overflow.
    const int64_t total = (geometry.output - 1) * stride + effective_kernel - input;
    geometry.pad_before = total > 0 ? total / 2 : 0;
  }
  return geometry;
}

}  // namespace

Activation parse_activation(const std::string& name) {
  if (name == "linear" || name.empty()) return Activation::linear;
  if (name == "relu") return Activation::relu;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  if (name == "softmax") return Activation::softmax;
  if (name == "relu6") return Activation::relu6;
  if (name == "leaky_relu") return Activation::leaky_relu;
  if (name == "elu") return Activation::elu;
  if (name == "selu") return Activation::selu;
  if (name == "hard_sigmoid") return Activation::hard_sigmoid;
  if (name == "softplus") return Activation::softplus;
  if (name == "swish" || name == "silu") return Activation::swish;
  if (name == "gelu") return Activation::gelu;
  if (name == "hard_silu" || name == "hard_swish") return Activation::hard_silu;
  if (name == "mish") return Activation::mish;
  if (name == "log_softmax") return Activation::log_softmax;
  if (name == "exponential") return Activation::exponential;
  if (name == "softsign") return Activation::softsign;
  fail("Unknown activation: '" + name + "'. Supported: linear, relu, relu6, leaky_relu, elu, selu, "
       "sigmoid, hard_sigmoid, tanh, softplus, swish, silu, gelu, softmax, hard_silu, hard_swish, mish, "
       "log_softmax, exponential, softsign.");
}

const char* activation_name(Activation activation) {
  switch (activation) {
    case Activation::linear: return "linear";
    case Activation::relu: return "relu";
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
    case Activation::softmax: return "softmax";
    case Activation::relu6: return "relu6";
    case Activation::leaky_relu: return "leaky_relu";
    case Activation::elu: return "elu";
    case Activation::selu: return "selu";
    case Activation::hard_sigmoid: return "hard_sigmoid";
    case Activation::softplus: return "softplus";
    case Activation::swish: return "swish";
    case Activation::gelu: return "gelu";
    case Activation::hard_silu: return "hard_silu";
    case Activation::mish: return "mish";
    case Activation::log_softmax: return "log_softmax";
    case Activation::exponential: return "exponential";
    case Activation::softsign: return "softsign";
  }
  return "unknown";
}

Padding parse_padding(const char* name) {
  const std::string value(name);
  if (value == "valid") return Padding::valid;
  if (value == "same") return Padding::same;
  fail("`padding` must be 'valid' or 'same'. Received: padding=" + value);
}

Conv2DParams make_conv2d_params(int64_t batch, int64_t input_height, int64_t input_width,
                                int64_t input_channels, int64_t output_channels,
                                int64_t kernel_height, int64_t kernel_width, int64_t stride_height,
                                int64_t stride_width, int64_t dilation_height,
                                int64_t dilation_width, Padding padding, bool use_bias,
                                Activation activation) {
  if (batch < 0) fail("batch size must be >= 0. Received: batch=" + std::to_string(batch));
  require_positive("input_height", input_height);
  require_positive("input_width", input_width);
  require_positive("input_channels", input_channels);
  require_positive("filters", output_channels);
  require_positive("kernel_height", kernel_height);
  require_positive("kernel_width", kernel_width);
  require_positive("stride_height", stride_height);
  require_positive("stride_width", stride_width);
  require_positive("dilation_height", dilation_height);
  require_positive("dilation_width", dilation_width);
  if (!is_elementwise(activation)) fail("Conv2D kernels fuse elementwise activations only");
  Conv2DParams params;
  params.batch = batch;
  params.input_height = input_height;
  params.input_width = input_width;
  params.input_channels = input_channels;
  params.output_channels = output_channels;
  params.kernel_height = kernel_height;
  params.kernel_width = kernel_width;
  params.stride_height = stride_height;
  params.stride_width = stride_width;
  params.dilation_height = dilation_height;
  params.dilation_width = dilation_width;
  params.use_bias = use_bias;
  params.activation = activation;
  const auto rows = window_geometry(
      input_height, effective_window(kernel_height, dilation_height, "height", "Conv2D kernel"), stride_height,
      padding, "height", "Conv2D kernel");
  const auto columns = window_geometry(
      input_width, effective_window(kernel_width, dilation_width, "width", "Conv2D kernel"), stride_width,
      padding, "width", "Conv2D kernel");
  params.output_height = rows.output;
  params.output_width = columns.output;
  params.pad_top = rows.pad_before;
  params.pad_left = columns.pad_before;
  checked_product({batch, input_height, input_width, input_channels}, "Conv2D input");
  checked_product({batch, params.output_height, params.output_width, output_channels},
                  "Conv2D output");
  checked_product({kernel_height, kernel_width, input_channels, output_channels}, "Conv2D kernel");
  return params;
}

DenseParams make_dense_params(int64_t batch, int64_t input_units, int64_t output_units,
                              bool use_bias, Activation activation) {
  if (batch < 0) fail("batch size must be >= 0. Received: batch=" + std::to_string(batch));
  require_positive("input_units", input_units);
  require_positive("units", output_units);
  if (!is_elementwise(activation)) fail("Dense kernels fuse elementwise activations only");
  checked_product({batch, input_units}, "Dense input");
  checked_product({input_units, output_units}, "Dense kernel");
  checked_product({batch, output_units}, "Dense output");
  DenseParams params;
  params.batch = batch;
  params.input_units = input_units;
  params.output_units = output_units;
  params.use_bias = use_bias;
  params.activation = activation;
  return params;
}

Conv2DParams dense_as_conv2d(const DenseParams& dense) {
  Conv2DParams params;
  params.batch = 1;
  params.input_height = 1;
  params.input_width = dense.batch;
  params.input_channels = dense.input_units;
  params.output_height = 1;
  params.output_width = dense.batch;
  params.output_channels = dense.output_units;
  params.kernel_height = 1;
  params.kernel_width = 1;
  params.use_bias = dense.use_bias;
  params.activation = dense.activation;
  params.kernel_cache = dense.kernel_cache;
  params.weights_version = dense.weights_version;
  return params;
}

Pool2DParams make_pool2d_params(int64_t batch, int64_t input_height, int64_t input_width,
                                int64_t channels, int64_t pool_height, int64_t pool_width,
                                int64_t stride_height, int64_t stride_width, Padding padding) {
  if (batch < 0) fail("batch size must be >= 0. Received: batch=" + std::to_string(batch));
  require_positive("input_height", input_height);
  require_positive("input_width", input_width);
  require_positive("channels", channels);
  require_positive("pool_height", pool_height);
  require_positive("pool_width", pool_width);
  require_positive("stride_height", stride_height);
  require_positive("stride_width", stride_width);
  Pool2DParams params;
  params.batch = batch;
  params.input_height = input_height;
  params.input_width = input_width;
  params.channels = channels;
  params.pool_height = pool_height;
  params.pool_width = pool_width;
  params.stride_height = stride_height;
  params.stride_width = stride_width;
  const auto rows =
      window_geometry(input_height, pool_height, stride_height, padding, "height", "Pooling");
  const auto columns =
      window_geometry(input_width, pool_width, stride_width, padding, "width", "Pooling");
  params.output_height = rows.output;
  params.output_width = columns.output;
  params.pad_top = rows.pad_before;
  params.pad_left = columns.pad_before;
  checked_product({batch, input_height, input_width, channels}, "Pooling input");
  checked_product({batch, params.output_height, params.output_width, channels}, "Pooling output");
  checked_product({pool_height, pool_width}, "Pooling window");
  return params;
}

bool conv2d_winograd_shape(const Conv2DParams& p) {
  return p.kernel_height == 3 && p.kernel_width == 3 && p.stride_height == 1 && p.stride_width == 1 &&
         p.dilation_height == 1 && p.dilation_width == 1 && p.input_channels >= 16 && p.output_channels >= 16;
}

namespace {

// The pooling windows tile the convolution's output without overlap or padding, every window
// inside it (rows and columns past the last window dropped).
bool windows_tile_the_output(const Conv2DParams& conv, const Pool2DParams& pool) {
  return pool.input_height == conv.output_height && pool.input_width == conv.output_width &&
         pool.channels == conv.output_channels && pool.stride_height == pool.pool_height &&
         pool.stride_width == pool.pool_width && pool.pad_top == 0 && pool.pad_left == 0 &&
         pool.output_height * pool.pool_height <= pool.input_height &&  // every window inside ('same' may pad
         pool.output_width * pool.pool_width <= pool.input_width;       // the bottom/right ones only)
}

}  // namespace

bool conv2d_winograd_max_pool2d_fusable(const Conv2DParams& conv, const Pool2DParams& pool) {
  return windows_tile_the_output(conv, pool) && conv2d_winograd_shape(conv) && pool.pool_height == 2 &&
         pool.pool_width == 2 && conv.residual == nullptr;
}

bool conv2d_max_pool2d_fusable(const Conv2DParams& conv, const Pool2DParams& pool) {
  return windows_tile_the_output(conv, pool) && pool.pool_height * pool.pool_width <= kMaxFusedPoolWindow &&
         (conv.activation == Activation::relu || conv.activation == Activation::linear);
}

}  // namespace fastcnn

namespace fastcnn {

SampleShape merge_output_shape(const std::vector<SampleShape>& inputs) {
  if (inputs.empty()) throw std::invalid_argument("a merge needs at least one input");
  auto describe = [](const SampleShape& shape) {
    return "(None, " + std::to_string(shape.height) + ", " + std::to_string(shape.width) + ", " +
           std::to_string(shape.channels) + ")";
  };
  SampleShape output = inputs[0];
  for (size_t i = 1; i < inputs.size(); ++i) {
    const SampleShape& shape = inputs[i];
    int64_t* out_dims[] = {&output.height, &output.width, &output.channels};
    const int64_t in_dims[] = {shape.height, shape.width, shape.channels};
    for (int axis = 0; axis < 3; ++axis) {
      if (*out_dims[axis] == in_dims[axis] || in_dims[axis] == 1) continue;
      if (*out_dims[axis] == 1) {
        *out_dims[axis] = in_dims[axis];
        continue;
      }
      // Keras names the shape broadcast so far and the input that does not fit it.
      throw std::invalid_argument("Inputs have incompatible shapes. Received shapes " + describe(output) + " and " +
                                  describe(shape));
    }
  }
  return output;
}

SampleShape concatenate_output_shape(const std::vector<SampleShape>& inputs, int64_t axis) {
  if (axis < 0 || axis > 2) {
    throw std::invalid_argument("Concatenate's sample axis must be 0 (height), 1 (width) or 2 (channels). Received: axis=" +
                                std::to_string(axis));
  }
  if (inputs.empty()) throw std::invalid_argument("A `Concatenate` layer should be called on at least 1 input");
  auto dimensions = [](const SampleShape& shape) {
    return std::array<int64_t, 3>{shape.height, shape.width, shape.channels};
  };
  const std::array<int64_t, 3> first = dimensions(inputs[0]);
  std::array<int64_t, 3> output = first;
  output[axis] = 0;
  for (const SampleShape& shape : inputs) {
    const std::array<int64_t, 3> d = dimensions(shape);
    for (int64_t other = 0; other < 3; ++other) {
      if (other != axis && d[other] != first[other]) {
        throw std::invalid_argument(
            "A `Concatenate` layer requires inputs with matching shapes except for the concatenation axis. "
            "Received: input_shape=[(None, " + std::to_string(first[0]) + ", " + std::to_string(first[1]) + ", " +
            std::to_string(first[2]) + "), (None, " + std::to_string(d[0]) + ", " + std::to_string(d[1]) + ", " +
            std::to_string(d[2]) + ")]");
      }
    }
    output[axis] = checked_add(output[axis], d[axis], "the concatenated size");
  }
  checked_product({output[0], output[1], output[2]}, "the concatenated sample");
  return {output[0], output[1], output[2]};
}

ConcatenateParams make_concatenate_params(int64_t batch, const std::vector<SampleShape>& inputs, int64_t axis) {
  const SampleShape output = concatenate_output_shape(inputs, axis);
  const int64_t output_dimensions[] = {output.height, output.width, output.channels};
  ConcatenateParams params;
  // y[o] = [x0[o], x1[o], ...] per outer index o: the batch times the dimensions before the axis.
  params.outer = batch;
  for (int64_t before = 0; before < axis; ++before) {
    params.outer = checked_multiply(params.outer, output_dimensions[before], "the concatenated batch");
  }
  for (const SampleShape& shape : inputs) {
    const int64_t dimensions[] = {shape.height, shape.width, shape.channels};
    int64_t inner = 1;
    for (int64_t after = axis; after < 3; ++after) inner *= dimensions[after];
    params.inner.push_back(inner);
  }
  return params;
}

LossKind parse_loss_kind(const char* name) {
  const std::string text = name;
  if (text == "categorical_crossentropy") return LossKind::categorical_crossentropy;
  if (text == "binary_crossentropy") return LossKind::binary_crossentropy;
  if (text == "mean_squared_error") return LossKind::mean_squared_error;
  if (text == "mean_absolute_error") return LossKind::mean_absolute_error;
  if (text == "huber") return LossKind::huber;
  if (text == "kl_divergence") return LossKind::kl_divergence;
  if (text == "categorical_hinge") return LossKind::categorical_hinge;
  if (text == "binary_focal_crossentropy") return LossKind::binary_focal_crossentropy;
  if (text == "categorical_focal_crossentropy") return LossKind::categorical_focal_crossentropy;
  throw std::invalid_argument("unknown loss kind '" + text + "'; expected one of categorical_crossentropy, "
                              "binary_crossentropy, mean_squared_error, mean_absolute_error, huber, "
                              "kl_divergence, categorical_hinge, binary_focal_crossentropy, "
                              "categorical_focal_crossentropy");
}

void check_loss_options(const LossOptions& options) {
  if (!(options.huber_delta > 0.0f) || !std::isfinite(options.huber_delta)) {
    throw std::invalid_argument("the Huber delta must be finite and positive. Received: delta=" +
                                std::to_string(options.huber_delta));
  }
  if (!(options.focal_gamma >= 0.0f) || !std::isfinite(options.focal_gamma)) {
    throw std::invalid_argument("the focal loss's gamma must be finite and non-negative. Received: gamma=" +
                                std::to_string(options.focal_gamma));
  }
  if (!std::isfinite(options.focal_alpha)) {
    throw std::invalid_argument("the focal loss's alpha must be finite. Received: alpha=" +
                                std::to_string(options.focal_alpha));
  }
}

}  // namespace fastcnn
