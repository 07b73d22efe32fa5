// _core.ops: single kernels on numpy arrays (NHWC float32), for tests and for users who want one op:
// each entry point checks its arrays against the op's parameters, converts them once, releases the
// GIL and calls the kernel table named by `kernels` ("active", "reference", "generic", "avx2").
#include <algorithm>
#include <cmath>
#include <limits>

#include "bindings/arrays.h"
#include "kernels/bandwidth_probe.h"

namespace fastcnn::bindings {
namespace {

// ---- ops: single kernels, for tests and for users who want one op on arrays ----

// A convolution's input (batch, h, w, in), kernel (kh, kw, in, out) and optional bias, converted
// and their ranks and shared sizes checked (the bias's length once the params exist).
struct ConvArrays {
  FloatArray input, kernel;
  std::optional<FloatArray> bias;
};
ConvArrays conv_arrays(py::object input_argument, py::object kernel_argument, py::object bias_argument) {
  ConvArrays arrays{float_array(input_argument, "input"), float_array(kernel_argument, "kernel"),
                    optional_float_array(bias_argument, "bias")};
  require_rank(arrays.kernel, 4, "kernel");
  require_rank(arrays.input, 4, "input");
  require_dimension(arrays.kernel, 2, arrays.input.shape(3), "kernel", "input channels");
  return arrays;
}

// An array laid out as a convolution's `side` ("input" or "output"): (batch, side height, side
// width, side channels).
void require_image_shape(const FloatArray& array, const char* name, const std::string& side, int64_t batch,
                         int64_t height, int64_t width, int64_t channels) {
  require_rank(array, 4, name);
  require_dimension(array, 0, batch, name, "batch");
  require_dimension(array, 1, height, name, (side + " height").c_str());
  require_dimension(array, 2, width, name, (side + " width").c_str());
  require_dimension(array, 3, channels, name, (side + " channels").c_str());
}
// An output gradient, or a residual added to the output.
void require_output_shape(const FloatArray& array, const char* name, int64_t batch, int64_t height, int64_t width,
                          int64_t channels) {
  require_image_shape(array, name, "output", batch, height, width, channels);
}

FloatArray conv2d_forward(py::object input_argument, py::object kernel_argument, py::object bias_argument,
                          Pair strides, const std::string& padding, Pair dilation, const std::string& activation,
                          const std::string& kernels, bool large_winograd_tile, py::object residual_argument,
                          py::object output_scale_argument, py::object output_shift_argument) {
  const auto [input, kernel, bias] = conv_arrays(input_argument, kernel_argument, bias_argument);
  const Activation act = activation_named(activation);
  if (!is_elementwise(act)) throw py::value_error("conv2d_forward fuses elementwise activations only");
  Conv2DParams params = conv_params_for(input, kernel.shape(3), {kernel.shape(0), kernel.shape(1)},
                                        strides, padding, dilation, bias.has_value(), act);
  params.large_winograd_tile = large_winograd_tile;
  if (bias) {
    require_rank(*bias, 1, "bias");
    require_dimension(*bias, 0, params.output_channels, "bias", "output channels");
  }
  const std::optional<FloatArray> residual = optional_float_array(residual_argument, "residual");
  if (residual) {
    require_output_shape(*residual, "residual", params.batch, params.output_height, params.output_width,
                         params.output_channels);
    params.residual = residual->data();
  }
  const std::optional<FloatArray> output_scale = optional_float_array(output_scale_argument, "output_scale");
  const std::optional<FloatArray> output_shift = optional_float_array(output_shift_argument, "output_shift");
  if (output_scale.has_value() != output_shift.has_value()) {
    throw py::value_error(std::string("output_scale and output_shift go together. Received: ") +
                          (output_scale ? "output_scale" : "output_shift") + " only");
  }
  if (output_scale) {
    require_rank(*output_scale, 1, "output_scale");
    require_dimension(*output_scale, 0, params.output_channels, "output_scale", "output channels");
    require_rank(*output_shift, 1, "output_shift");
    require_dimension(*output_shift, 0, params.output_channels, "output_shift", "output channels");
    params.output_scale = output_scale->data();
    params.output_shift = output_shift->data();
  }
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array({params.batch, params.output_height, params.output_width, params.output_channels});
  const float* bias_data = bias ? bias->data() : nullptr;
  {
    py::gil_scoped_release release;
    table.conv2d_forward(params, input.data(), kernel.data(), bias_data, output.mutable_data());
  }
  return output;
}

FloatArray conv2d_backward_input(py::object output_gradient_argument, py::object kernel_argument,
                                 std::tuple<int64_t, int64_t, int64_t, int64_t> input_shape,
                                 Pair strides, const std::string& padding, Pair dilation,
                                 const std::string& kernels, bool large_winograd_tile, py::object add_to) {
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const FloatArray kernel = float_array(kernel_argument, "kernel");
  require_rank(kernel, 4, "kernel");
  require_rank(output_gradient, 4, "output_gradient");
  const auto [batch, height, width, channels] = input_shape;
  Conv2DParams params = make_conv2d_params(
      batch, height, width, channels, kernel.shape(3), kernel.shape(0), kernel.shape(1),
      strides.first, strides.second, dilation.first, dilation.second,
      parse_padding(padding.c_str()), false, Activation::linear);
  require_dimension(kernel, 2, channels, "kernel", "input channels");
  require_output_shape(output_gradient, "output_gradient", params.batch, params.output_height, params.output_width,
                       params.output_channels);
  params.large_winograd_tile = large_winograd_tile;
  const auto& table = table_named(kernels);
  FloatArray input_gradient = new_float_array({batch, height, width, channels});
  if (!add_to.is_none()) {  // the kernel adds its gradient to these values (a copy: add_to is not changed)
    const FloatArray old_values = float_array(add_to, "add_to");
    require_image_shape(old_values, "add_to", "input", batch, height, width, channels);
    std::copy(old_values.data(), old_values.data() + old_values.size(), input_gradient.mutable_data());
    params.accumulate_input_gradient = true;
  }
  {
    py::gil_scoped_release release;
    table.conv2d_backward_input(params, output_gradient.data(), kernel.data(), input_gradient.mutable_data());
  }
  return input_gradient;
}

std::pair<FloatArray, std::optional<FloatArray>> conv2d_backward_kernel(
    py::object input_argument, py::object output_gradient_argument, Pair kernel_size, Pair strides,
    const std::string& padding, Pair dilation, bool use_bias, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  require_rank(output_gradient, 4, "output_gradient");
  const Conv2DParams params = conv_params_for(input, output_gradient.shape(3), kernel_size, strides,
                                              padding, dilation, use_bias, Activation::linear);
  require_dimension(output_gradient, 0, params.batch, "output_gradient", "batch");
  require_dimension(output_gradient, 1, params.output_height, "output_gradient", "output height");
  require_dimension(output_gradient, 2, params.output_width, "output_gradient", "output width");
  const auto& table = table_named(kernels);
  FloatArray kernel_gradient = new_float_array({params.kernel_height, params.kernel_width,
                                            params.input_channels, params.output_channels});
  std::optional<FloatArray> bias_gradient;
  if (use_bias) bias_gradient = new_float_array({params.output_channels});
  float* bias_data = use_bias ? bias_gradient->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    table.conv2d_backward_kernel(params, input.data(), output_gradient.data(),
                                 kernel_gradient.mutable_data(), bias_data);
  }
  return {kernel_gradient, bias_gradient};
}

DenseParams dense_params_for(const FloatArray& input, const FloatArray& kernel, bool use_bias,
                             Activation activation) {
  require_rank(input, 2, "input");
  require_rank(kernel, 2, "kernel");
  require_dimension(kernel, 0, input.shape(1), "kernel", "input units");
  return make_dense_params(input.shape(0), input.shape(1), kernel.shape(1), use_bias, activation);
}

FloatArray dense_forward(py::object input_argument, py::object kernel_argument, py::object bias_argument,
                         const std::string& activation, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray kernel = float_array(kernel_argument, "kernel");
  const std::optional<FloatArray> bias = optional_float_array(bias_argument, "bias");
  const Activation act = activation_named(activation);
  if (!is_elementwise(act)) throw py::value_error("dense_forward fuses elementwise activations only");
  const DenseParams params = dense_params_for(input, kernel, bias.has_value(), act);
  if (bias) {
    require_rank(*bias, 1, "bias");
    require_dimension(*bias, 0, params.output_units, "bias", "units");
  }
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array({params.batch, params.output_units});
  const float* bias_data = bias ? bias->data() : nullptr;
  {
    py::gil_scoped_release release;
    table.dense_forward(params, input.data(), kernel.data(), bias_data, output.mutable_data());
  }
  return output;
}

FloatArray dense_backward_input(py::object output_gradient_argument, py::object kernel_argument,
                                const std::string& kernels) {
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const FloatArray kernel = float_array(kernel_argument, "kernel");
  require_rank(output_gradient, 2, "output_gradient");
  require_rank(kernel, 2, "kernel");
  require_dimension(output_gradient, 1, kernel.shape(1), "output_gradient", "units");
  const DenseParams params = make_dense_params(output_gradient.shape(0), kernel.shape(0),
                                               kernel.shape(1), false, Activation::linear);
  const auto& table = table_named(kernels);
  FloatArray input_gradient = new_float_array({params.batch, params.input_units});
  {
    py::gil_scoped_release release;
    table.dense_backward_input(params, output_gradient.data(), kernel.data(), input_gradient.mutable_data());
  }
  return input_gradient;
}

std::pair<FloatArray, std::optional<FloatArray>> dense_backward_kernel(
    py::object input_argument, py::object output_gradient_argument, bool use_bias,
    const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  require_rank(input, 2, "input");
  require_rank(output_gradient, 2, "output_gradient");
  require_dimension(output_gradient, 0, input.shape(0), "output_gradient", "batch");
  const DenseParams params = make_dense_params(input.shape(0), input.shape(1),
                                               output_gradient.shape(1), use_bias, Activation::linear);
  const auto& table = table_named(kernels);
  FloatArray kernel_gradient = new_float_array({params.input_units, params.output_units});
  std::optional<FloatArray> bias_gradient;
  if (use_bias) bias_gradient = new_float_array({params.output_units});
  float* bias_data = use_bias ? bias_gradient->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    table.dense_backward_kernel(params, input.data(), output_gradient.data(),
                                kernel_gradient.mutable_data(), bias_data);
  }
  return {kernel_gradient, bias_gradient};
}

Pool2DParams pool_params_for(const FloatArray& input, Pair pool_size, Pair strides,
                             const std::string& padding) {
  require_rank(input, 4, "input");
  return make_pool2d_params(input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                            pool_size.first, pool_size.second, strides.first, strides.second,
                            parse_padding(padding.c_str()));
}

py::object max_pool2d_forward(py::object input_argument, Pair pool_size, Pair strides, const std::string& padding,
                              const std::string& kernels, bool positions, bool relu_input) {
  const FloatArray input = float_array(input_argument, "input");
  Pool2DParams params = pool_params_for(input, pool_size, strides, padding);
  if (relu_input && !positions) {
    throw py::value_error("`relu_input` is read only with positions=True (it marks the positions whose gradient is "
                          "zero). Received: positions=False");
  }
  if (positions && params.pool_height * params.pool_width >= kNoWindowPosition) {
    throw py::value_error("positions=True needs windows of at most " + std::to_string(kNoWindowPosition - 1) +
                          " positions. Received: pool_size=" + pair_text(pool_size));
  }
  params.relu_input = relu_input;
  const auto& table = table_named(kernels);
  const std::vector<py::ssize_t> shape{params.batch, params.output_height, params.output_width, params.channels};
  FloatArray output = new_float_array(shape);
  std::optional<FlagArray> window_positions;
  if (positions) {
    window_positions.emplace(shape);
    params.window_positions = window_positions->mutable_data();
  }
  {
    py::gil_scoped_release release;
    table.max_pool2d_forward(params, input.data(), output.mutable_data());
  }
  if (positions) return py::make_tuple(output, *window_positions);
  return std::move(output);
}

FloatArray max_pool2d_backward(py::object input_argument, py::object output_gradient_argument,
                               Pair pool_size, Pair strides, const std::string& padding,
                               const std::string& kernels, bool relu_input) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  Pool2DParams params = pool_params_for(input, pool_size, strides, padding);
  params.relu_input = relu_input;
  require_rank(output_gradient, 4, "output_gradient");
  require_dimension(output_gradient, 0, params.batch, "output_gradient", "batch");
  require_dimension(output_gradient, 1, params.output_height, "output_gradient", "output height");
  require_dimension(output_gradient, 2, params.output_width, "output_gradient", "output width");
  require_dimension(output_gradient, 3, params.channels, "output_gradient", "channels");
  const auto& table = table_named(kernels);
  FloatArray input_gradient = new_float_array({params.batch, params.input_height, params.input_width, params.channels});
  {
    py::gil_scoped_release release;
    table.max_pool2d_backward(params, input.data(), output_gradient.data(), input_gradient.mutable_data());
  }
  return input_gradient;
}

FloatArray average_pool2d_forward(py::object input_argument, Pair pool_size, Pair strides,
                                  const std::string& padding, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const Pool2DParams params = pool_params_for(input, pool_size, strides, padding);
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array({params.batch, params.output_height, params.output_width, params.channels});
  {
    py::gil_scoped_release release;
    table.average_pool2d_forward(params, input.data(), output.mutable_data());
  }
  return output;
}

// `input` gives the shape of the result (its values are not read).
FloatArray average_pool2d_backward(py::object input_argument, py::object output_gradient_argument, Pair pool_size,
                                   Pair strides, const std::string& padding, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const Pool2DParams params = pool_params_for(input, pool_size, strides, padding);
  require_rank(output_gradient, 4, "output_gradient");
  require_dimension(output_gradient, 0, params.batch, "output_gradient", "batch");
  require_dimension(output_gradient, 1, params.output_height, "output_gradient", "output height");
  require_dimension(output_gradient, 2, params.output_width, "output_gradient", "output width");
  require_dimension(output_gradient, 3, params.channels, "output_gradient", "channels");
  const auto& table = table_named(kernels);
  FloatArray input_gradient = new_float_array({params.batch, params.input_height, params.input_width, params.channels});
  {
    py::gil_scoped_release release;
    table.average_pool2d_backward(params, output_gradient.data(), input_gradient.mutable_data());
  }
  return input_gradient;
}

// The ReLU layer's kernels (ops/elementwise.h's parametric relu) over arrays of any shape.
ReluParams relu_params_for(const py::array& input, float max_value, float negative_slope, float threshold) {
  ReluParams params;
  params.count = input.size();
  params.max_value = max_value;
  params.negative_slope = negative_slope;
  params.threshold = threshold;
  return params;
}

FloatArray relu_forward(py::object input_argument, float max_value, float negative_slope, float threshold,
                        const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const ReluParams params = relu_params_for(input, max_value, negative_slope, threshold);
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array_like(input, "output");
  {
    py::gil_scoped_release release;
    table.relu_forward(params, input.data(), output.mutable_data());
  }
  return output;
}

FloatArray relu_backward(py::object input_argument, py::object output_gradient_argument, float max_value,
                         float negative_slope, float threshold, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  if (input.request().shape != output_gradient.request().shape) {
    throw py::value_error("`output_gradient` must have the shape of `input`. Received: input.shape=" +
                          shape_text(input) + ", output_gradient.shape=" + shape_text(output_gradient));
  }
  const ReluParams params = relu_params_for(input, max_value, negative_slope, threshold);
  const auto& table = table_named(kernels);
  FloatArray input_gradient = new_float_array_like(input, "input_gradient");
  {
    py::gil_scoped_release release;
    table.relu_backward(params, input.data(), output_gradient.data(), input_gradient.mutable_data());
  }
  return input_gradient;
}

// Activations act on the last axis of an array of any rank >= 1.
std::pair<int64_t, int64_t> rows_and_columns(const py::array& array, const char* name) {
  if (array.ndim() < 1) throw py::value_error(std::string("`") + name + "` must have rank >= 1. Received a scalar");
  const int64_t columns = array.shape(array.ndim() - 1);
  return {columns == 0 ? 0 : array.size() / columns, columns};
}

FloatArray activation_forward(const std::string& activation, py::object input_argument,
                              const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const Activation act = activation_named(activation);
  const auto [rows, columns] = rows_and_columns(input, "input");
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array_like(input, "output");
  {
    py::gil_scoped_release release;
    table.activation_forward(act, rows, columns, input.data(), output.mutable_data());
  }
  return output;
}

FloatArray activation_backward(const std::string& activation, py::object output_argument,
                               py::object output_gradient_argument, const std::string& kernels,
                               py::object input_argument) {
  const FloatArray output = float_array(output_argument, "output");
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const std::optional<FloatArray> input = optional_float_array(input_argument, "input");
  const Activation act = activation_named(activation);
  if (needs_pre_activation(act) && is_elementwise(act) && !input) {
    throw py::value_error("activation '" + activation + "' needs its `input` for the backward pass");
  }
  if (input && input->request().shape != output.request().shape) {
    throw py::value_error("`input` must have the shape of `output`. Received: input.shape=" +
                          shape_text(*input) + ", output.shape=" + shape_text(output));
  }
  const float* input_data = input ? input->data() : nullptr;
  if (!output.request().shape.empty() && output.request().shape != output_gradient.request().shape) {
    throw py::value_error("`output_gradient` must have the shape of `output`. Received: output.shape=" +
                          shape_text(output) + ", output_gradient.shape=" + shape_text(output_gradient));
  }
  const auto [rows, columns] = rows_and_columns(output, "output");
  const auto& table = table_named(kernels);
  FloatArray input_gradient = new_float_array_like(output, "input_gradient");
  {
    py::gil_scoped_release release;
    table.activation_backward(act, rows, columns, input_data, output.data(), output_gradient.data(),
                              input_gradient.mutable_data());
  }
  return input_gradient;
}

DropoutParams dropout_params_for(const py::array& array, float rate, uint64_t seed) {
  if (!(rate >= 0.0f && rate < 1.0f)) {
    throw py::value_error("`rate` must be in [0, 1). Received: rate=" + std::to_string(rate));
  }
  DropoutParams params;
  params.count = array.size();
  params.rate = rate;
  params.seed = seed;
  return params;
}

FloatArray dropout_forward(py::object input_argument, float rate, uint64_t seed,
                           const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const DropoutParams params = dropout_params_for(input, rate, seed);
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array_like(input, "output");
  {
    py::gil_scoped_release release;
    table.dropout_forward(params, input.data(), output.mutable_data());
  }
  return output;
}

FloatArray dropout_backward(py::object output_gradient_argument, float rate, uint64_t seed,
                            const std::string& kernels) {
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const DropoutParams params = dropout_params_for(output_gradient, rate, seed);
  const auto& table = table_named(kernels);
  FloatArray input_gradient = new_float_array_like(output_gradient, "input_gradient");
  {
    py::gil_scoped_release release;
    table.dropout_backward(params, output_gradient.data(), input_gradient.mutable_data());
  }
  return input_gradient;
}

// BatchNormalization over the last axis of an array of rank >= 1 (rows = all other axes).
BatchNormParams batch_norm_params_for(const py::array& input, float epsilon) {
  const auto [rows, columns] = rows_and_columns(input, "input");
  if (!(epsilon > 0.0f)) throw py::value_error("`epsilon` must be positive. Received: epsilon=" + std::to_string(epsilon));
  return {rows, columns, epsilon};
}

void require_channel_vector(const std::optional<FloatArray>& array, int64_t channels, const char* name) {
  if (!array) return;
  require_rank(*array, 1, name);
  require_dimension(*array, 0, channels, name, "channels");
}

std::pair<FloatArray, FloatArray> batch_norm_statistics(py::object input_argument, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const BatchNormParams params = batch_norm_params_for(input, 1e-3f);
  const auto& table = table_named(kernels);
  FloatArray mean = new_float_array({params.channels}), variance = new_float_array({params.channels});
  {
    py::gil_scoped_release release;
    table.batch_norm_statistics(params, input.data(), mean.mutable_data(), variance.mutable_data());
  }
  return {mean, variance};
}

// A fused output activation (ops/batch_norm.h, ops/merge.h): linear, relu or relu6; `owner` names
// the layer kind in the error.
Activation fused_output_activation(const std::string& name, const char* owner) {
  const Activation activation = activation_named(name);
  if (activation != Activation::linear && activation != Activation::relu && activation != Activation::relu6) {
    throw py::value_error(std::string(owner) + "'s fused activation must be 'linear', 'relu' or 'relu6'. Received: " +
                          name);
  }
  return activation;
}

// The 'valid' max pooling a BatchNormalization computes (pool_size, strides default pool_size),
// checked against BatchNormParams::max_pool's conditions.
Pool2DParams batch_norm_max_pool_for(const FloatArray& input, Pair pool_size, std::optional<Pair> strides) {
  require_rank(input, 4, "input");
  const Pool2DParams pool = pool_params_for(input, pool_size, strides.value_or(pool_size), "valid");
  if (!batch_norm_computes_max_pool(pool)) {
    throw py::value_error("A BatchNormalization computes max pooling with windows of fewer than 255 positions that "
                          "do not overlap (strides >= pool_size). Received: pool_size=" + pair_text(pool_size) +
                          ", strides=" + pair_text(strides.value_or(pool_size)) +
                          " on input.shape=" + shape_text(input));
  }
  return pool;
}

py::object batch_norm_forward(py::object input_argument, py::object mean_argument, py::object variance_argument,
                              py::object gamma_argument, py::object beta_argument, float epsilon,
                              const std::string& kernels, const std::string& activation, std::optional<Pair> pool_size,
                              std::optional<Pair> pool_strides, bool pool_relu_input) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray mean = float_array(mean_argument, "mean");
  const FloatArray variance = float_array(variance_argument, "variance");
  const std::optional<FloatArray> gamma = optional_float_array(gamma_argument, "gamma");
  const std::optional<FloatArray> beta = optional_float_array(beta_argument, "beta");
  BatchNormParams params = batch_norm_params_for(input, epsilon);
  params.output_activation = fused_output_activation(activation, "A BatchNormalization");
  require_channel_vector(mean, params.channels, "mean");
  require_channel_vector(variance, params.channels, "variance");
  require_channel_vector(gamma, params.channels, "gamma");
  require_channel_vector(beta, params.channels, "beta");
  if (!pool_size && (pool_strides || pool_relu_input)) {
    throw py::value_error("`pool_strides` and `pool_relu_input` are read only with `pool_size`. Received: "
                          "pool_size=None");
  }
  // With pool_size: the output's max pooling and its window positions instead of the output.
  Pool2DParams pool;
  std::optional<FlagArray> positions;
  std::vector<py::ssize_t> output_shape(input.shape(), input.shape() + input.ndim());
  if (pool_size) {
    pool = batch_norm_max_pool_for(input, *pool_size, pool_strides);
    pool.relu_input = pool_relu_input;
    output_shape = {pool.batch, pool.output_height, pool.output_width, pool.channels};
    positions.emplace(output_shape);
    pool.window_positions = positions->mutable_data();
    params.max_pool = &pool;
  }
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array(output_shape);
  const float* gamma_data = gamma ? gamma->data() : nullptr;
  const float* beta_data = beta ? beta->data() : nullptr;
  {
    py::gil_scoped_release release;
    table.batch_norm_forward(params, input.data(), mean.data(), variance.data(), gamma_data, beta_data,
                             output.mutable_data());
  }
  if (positions) return py::make_tuple(output, *positions);
  return std::move(output);
}

std::tuple<FloatArray, FloatArray, FloatArray> batch_norm_backward(
    py::object input_argument, py::object mean_argument, py::object variance_argument, py::object gamma_argument,
    py::object output_gradient_argument, float epsilon, const std::string& kernels, bool relu_input,
    const std::string& activation, py::object beta_argument, std::optional<Pair> pool_size,
    std::optional<Pair> pool_strides, py::object window_positions_argument) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray mean = float_array(mean_argument, "mean");
  const FloatArray variance = float_array(variance_argument, "variance");
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const std::optional<FloatArray> gamma = optional_float_array(gamma_argument, "gamma");
  BatchNormParams params = batch_norm_params_for(input, epsilon);
  params.relu_input = relu_input;
  params.output_activation = fused_output_activation(activation, "A BatchNormalization");
  // With an output activation the forward's beta too: the kernel recomputes the pre-activation.
  const std::optional<FloatArray> beta = optional_float_array(beta_argument, "beta");
  if (beta && params.output_activation == Activation::linear) {
    throw py::value_error("`beta` is read only with activation='relu' or 'relu6' (to recompute the forward's "
                          "pre-activation). Received: activation='" + activation + "'");
  }
  params.beta = beta ? beta->data() : nullptr;
  require_channel_vector(mean, params.channels, "mean");
  require_channel_vector(variance, params.channels, "variance");
  require_channel_vector(gamma, params.channels, "gamma");
  require_channel_vector(beta, params.channels, "beta");
  // With pool_size: output_gradient is a 'valid' max pooling's output gradient, routed by the
  // forward's window positions.
  Pool2DParams pool;
  FlagArray window_positions;
  if (pool_size) {
    pool = batch_norm_max_pool_for(input, *pool_size, pool_strides);
    const std::vector<py::ssize_t> pooled_shape{pool.batch, pool.output_height, pool.output_width, pool.channels};
    if (output_gradient.request().shape != pooled_shape) {
      throw py::value_error("`output_gradient` must have the pooled output's shape " + shape_text(pooled_shape) +
                            ". Received: output_gradient.shape=" + shape_text(output_gradient));
    }
    const bool bytes =
        py::isinstance<py::array>(window_positions_argument) &&
        py::reinterpret_borrow<py::array>(window_positions_argument).dtype().is(py::dtype::of<uint8_t>());
    if (!bytes) {
      throw py::type_error("`window_positions` must be the uint8 array batch_norm_forward(..., pool_size=...) "
                           "returns. Received: " +
                           (py::isinstance<py::array>(window_positions_argument)
                                ? "an array of dtype " + std::string(py::str(window_positions_argument.attr("dtype")))
                                : type_name(window_positions_argument)));
    }
    window_positions = FlagArray::ensure(window_positions_argument);  // C order (a copy where it is not)
    if (window_positions.request().shape != pooled_shape) {
      throw py::value_error("`window_positions` must have the pooled output's shape " + shape_text(pooled_shape) +
                            ". Received: window_positions.shape=" + shape_text(window_positions));
    }
    const int64_t window = pool.pool_height * pool.pool_width;
    const uint8_t* positions = window_positions.data();
    for (py::ssize_t k = 0; k < window_positions.size(); ++k) {
      if (positions[k] >= window && positions[k] != kNoWindowPosition) {
        throw py::value_error("`window_positions` values must lie in [0, " + std::to_string(window) + ") or be " +
                              std::to_string(kNoWindowPosition) + ". Received: " + std::to_string(positions[k]));
      }
    }
    pool.window_positions = window_positions.mutable_data();
    params.max_pool = &pool;
  } else if (pool_strides || !window_positions_argument.is_none()) {
    throw py::value_error("`pool_strides` and `window_positions` are read only with `pool_size`. Received: "
                          "pool_size=None");
  } else if (input.request().shape != output_gradient.request().shape) {
    throw py::value_error("`output_gradient` must have the shape of `input`. Received: input.shape=" +
                          shape_text(input) + ", output_gradient.shape=" + shape_text(output_gradient));
  }
  const auto& table = table_named(kernels);
  FloatArray input_gradient = new_float_array_like(input, "input_gradient");
  FloatArray gamma_gradient = new_float_array({params.channels}), beta_gradient = new_float_array({params.channels});
  const float* gamma_data = gamma ? gamma->data() : nullptr;
  {
    py::gil_scoped_release release;
    table.batch_norm_backward(params, input.data(), mean.data(), variance.data(), gamma_data,
                              output_gradient.data(), input_gradient.mutable_data(),
                              gamma_gradient.mutable_data(), beta_gradient.mutable_data());
  }
  return {input_gradient, gamma_gradient, beta_gradient};
}

// A loss (ops/loss.h) of predictions (batch, classes): categorical cross-entropy takes labels
// (batch,) in [0, classes) or probability rows (batch, classes); the other kinds targets per unit
// (batch, classes).
std::pair<FloatArray, FloatArray> loss(py::object predictions_argument, py::object targets_argument,
                                       bool from_logits, const std::string& kind, float huber_delta,
                                       float focal_gamma, float focal_alpha, bool apply_class_balancing) {
  const LossKind loss_kind = parse_loss_kind(kind.c_str());
  const LossOptions options{huber_delta, focal_gamma, focal_alpha, apply_class_balancing};
  check_loss_options(options);
  const FloatArray predictions = float_array(predictions_argument, "predictions");
  const py::array targets = numeric_array(targets_argument, "targets");
  require_rank(predictions, 2, "predictions");
  const int64_t batch = predictions.shape(0);
  const int64_t classes = predictions.shape(1);
  if (classes <= 0) {
    throw py::value_error("`predictions` needs at least one class. Received: predictions.shape=" +
                          shape_text(predictions));
  }
  LossParams params;
  params.batch = batch;
  params.classes = classes;
  params.from_logits = from_logits;
  params.gradient_scale = batch > 0 ? 1.0f / static_cast<float>(batch) : 0.0f;
  params.kind = loss_kind;
  params.options = options;
  const bool categorical = params.kind == LossKind::categorical_crossentropy ||
                           params.kind == LossKind::categorical_focal_crossentropy;
  if (targets.ndim() == 1 && categorical) {
    // Class indices: checked in 64 bits before narrowing to int32, so no value wraps into range.
    const IndexArray labels = class_indices(targets, "targets");
    require_dimension(labels, 0, batch, "targets", "batch");
    for (int64_t i = 0; i < batch; ++i) {
      if (labels.data()[i] < 0 || labels.data()[i] >= classes) {
        throw py::value_error("label " + std::to_string(labels.data()[i]) + " is outside [0, " +
                              std::to_string(classes) + ")");
      }
    }
    const LabelArray narrow = converted<LabelArray>(labels, "targets");
    FloatArray losses = new_float_array({batch}, "losses");
    FloatArray gradient = new_float_array({batch, classes}, "gradient");
    {
      py::gil_scoped_release release;
      kernels::loss(params, predictions.data(), narrow.data(), nullptr, losses.mutable_data(),
                             gradient.mutable_data());
    }
    return {losses, gradient};
  }
  const FloatArray probabilities = converted<FloatArray>(targets, "targets");
  require_rank(probabilities, 2, "targets");
  require_dimension(probabilities, 0, batch, "targets", "batch");
  require_dimension(probabilities, 1, classes, "targets", "classes");
  FloatArray losses = new_float_array({batch}, "losses");
  FloatArray gradient = new_float_array({batch, classes}, "gradient");
  {
    py::gil_scoped_release release;
    kernels::loss(params, predictions.data(), nullptr, probabilities.data(), losses.mutable_data(),
                           gradient.mutable_data());
  }
  return {losses, gradient};
}


// ---- Conv2D + MaxPooling2D as one kernel (kernels.h conv2d_max_pool2d_*) ----

// The pair's params, checked: the pooling must fit conv2d_max_pool2d_fusable.
std::pair<Conv2DParams, Pool2DParams> conv_max_pool_params_for(const FloatArray& input, int64_t output_channels,
                                                              Pair kernel_size, Pair strides, const std::string& padding,
                                                              Pair dilation, bool use_bias, const std::string& activation,
                                                              Pair pool_size) {
  const Activation act = activation_named(activation);
  const Conv2DParams conv =
      conv_params_for(input, output_channels, kernel_size, strides, padding, dilation, use_bias, act);
  const Pool2DParams pool = make_pool2d_params(conv.batch, conv.output_height, conv.output_width, conv.output_channels,
                                               pool_size.first, pool_size.second, pool_size.first, pool_size.second,
                                               Padding::valid);
  if (!conv2d_max_pool2d_fusable(conv, pool)) {
    throw py::value_error("conv2d_max_pool2d needs activation 'relu' or 'linear' and a pool window of at most " +
                          std::to_string(kMaxFusedPoolWindow) + " positions. Received: activation=" + activation +
                          ", pool_size=" + pair_text(pool_size));
  }
  return {conv, pool};
}

std::pair<FloatArray, std::optional<FlagArray>> conv2d_max_pool2d_forward(
    py::object input_argument, py::object kernel_argument, py::object bias_argument, Pair strides,
    const std::string& padding, Pair dilation, const std::string& activation, Pair pool_size,
    const std::string& kernels, bool window_positions) {
  const auto [input, kernel, bias] = conv_arrays(input_argument, kernel_argument, bias_argument);
  const auto [conv, pool] = conv_max_pool_params_for(input, kernel.shape(3), {kernel.shape(0), kernel.shape(1)},
                                                     strides, padding, dilation, bias.has_value(), activation, pool_size);
  if (bias) {
    require_rank(*bias, 1, "bias");
    require_dimension(*bias, 0, conv.output_channels, "bias", "output channels");
  }
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array({pool.batch, pool.output_height, pool.output_width, pool.channels});
  std::optional<FlagArray> window_index;
  if (window_positions) {
    window_index.emplace(std::vector<py::ssize_t>{pool.batch, pool.output_height, pool.output_width, pool.channels});
  }
  const float* bias_data = bias ? bias->data() : nullptr;
  uint8_t* index_data = window_index ? window_index->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    table.conv2d_max_pool2d_forward(conv, pool, input.data(), kernel.data(), bias_data, output.mutable_data(),
                                    index_data);
  }
  return {output, window_index};
}

std::pair<FloatArray, std::optional<FloatArray>> conv2d_max_pool2d_backward_kernel(
    py::object input_argument, py::object output_argument, py::object window_index_argument,
    py::object output_gradient_argument, Pair kernel_size, Pair strides, const std::string& padding, Pair dilation,
    const std::string& activation, Pair pool_size, bool use_bias, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray output = float_array(output_argument, "output");
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  // The forward's own uint8 array is used as it is; other integer arrays are range-checked in 64 bits.
  const bool bytes = FlagArray::check_(window_index_argument);
  const py::array index_array = bytes ? py::reinterpret_borrow<py::array>(window_index_argument)
                                      : py::array(integer_array(window_index_argument, "window_index"));
  require_rank(output_gradient, 4, "output_gradient");
  const auto [conv, pool] = conv_max_pool_params_for(input, output_gradient.shape(3), kernel_size, strides, padding,
                                                     dilation, use_bias, activation, pool_size);
  for (const auto& [array, name] : {std::pair<const py::array*, const char*>{&output, "output"},
                                    {&output_gradient, "output_gradient"}, {&index_array, "window_index"}}) {
    require_rank(*array, 4, name);
    require_dimension(*array, 0, pool.batch, name, "batch");
    require_dimension(*array, 1, pool.output_height, name, "pooled height");
    require_dimension(*array, 2, pool.output_width, name, "pooled width");
    require_dimension(*array, 3, pool.channels, name, "channels");
  }
  const int64_t window = pool.pool_height * pool.pool_width;
  // One pass for the extremes (a loop the compiler vectorises), then, only when one is out of
  // range, the first value out of range for the message.
  auto check_range = [window](const auto* values, py::ssize_t count) {
    if (count == 0) return;
    auto smallest = values[0], largest = values[0];
    for (py::ssize_t i = 1; i < count; ++i) {
      smallest = std::min(smallest, values[i]);
      largest = std::max(largest, values[i]);
    }
    if (smallest >= 0 && largest < window) return;
    const auto* first = std::find_if(values, values + count, [window](int64_t value) { return value < 0 || value >= window; });
    throw py::value_error("`window_index` values must lie in [0, " + std::to_string(window) +
                          ") (positions in the pool window). Received: " + std::to_string(static_cast<int64_t>(*first)));
  };
  FlagArray window_index;
  if (bytes) {
    window_index = py::reinterpret_borrow<FlagArray>(window_index_argument);
    check_range(window_index.data(), window_index.size());
  } else {
    const IndexArray wide_index = py::reinterpret_borrow<IndexArray>(index_array);
    check_range(wide_index.data(), wide_index.size());
    // In range, so the narrowing to the kernel's bytes is exact.
    window_index = converted<FlagArray>(wide_index, "window_index");
  }
  const auto& table = table_named(kernels);
  FloatArray kernel_gradient =
      new_float_array({conv.kernel_height, conv.kernel_width, conv.input_channels, conv.output_channels});
  std::optional<FloatArray> bias_gradient;
  if (use_bias) bias_gradient = new_float_array({conv.output_channels});
  float* bias_data = use_bias ? bias_gradient->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    table.conv2d_max_pool2d_backward_kernel(conv, pool, input.data(), output.data(), window_index.data(),
                                            output_gradient.data(), kernel_gradient.mutable_data(), bias_data);
  }
  return {kernel_gradient, bias_gradient};
}


// ---- merge ops (ops/merge.h): several NHWC arrays of one batch into one ----


SampleShape sample_shape_of(const py::array& array) { return {array.shape(1), array.shape(2), array.shape(3)}; }

// `inputs`: a list or tuple of at least one (batch, height, width, channels) array, every one with
// the first one's batch, each converted to contiguous float32.
std::vector<FloatArray> merge_inputs(py::handle inputs_argument) {
  if (!py::isinstance<py::list>(inputs_argument) && !py::isinstance<py::tuple>(inputs_argument)) {
    throw py::type_error("`inputs` must be a list or tuple of arrays. Received: inputs of type " +
                         type_name(inputs_argument));
  }
  const py::sequence sequence = py::reinterpret_borrow<py::sequence>(inputs_argument);
  if (sequence.size() == 0) throw py::value_error("`inputs` needs at least one array. Received: inputs=[]");
  std::vector<FloatArray> arrays;
  for (size_t i = 0; i < sequence.size(); ++i) {
    const std::string name = "inputs[" + std::to_string(i) + "]";
    FloatArray array = float_array(sequence[i], name.c_str());
    require_rank(array, 4, name.c_str());
    if (i > 0) require_dimension(array, 0, arrays[0].shape(0), name.c_str(), "batch");
    arrays.push_back(std::move(array));
  }
  return arrays;
}

// The elementwise merge's params: Subtract and divide take exactly two inputs, and every dimension of every
// input equals the broadcast output's or is 1 (merge_output_shape names the shapes otherwise).
MergeParams merge_params_for(const std::string& kind, const std::vector<FloatArray>& arrays) {
  MergeParams params;
  params.kind = merge_kind_named(kind);
  if ((params.kind == MergeKind::subtract || params.kind == MergeKind::divide) && arrays.size() != 2) {
    throw py::value_error(kind + " takes exactly 2 inputs. Received: " + std::to_string(arrays.size()) + " inputs");
  }
  params.batch = arrays[0].shape(0);
  for (const FloatArray& array : arrays) params.inputs.push_back(sample_shape_of(array));
  params.output = merge_output_shape(params.inputs);
  return params;
}

// needs_gradient: None (every input) or one boolean per input; the kernels skip the others.
std::vector<bool> gradient_mask(const std::optional<std::vector<bool>>& needs_gradient, size_t count) {
  if (!needs_gradient) return std::vector<bool>(count, true);
  if (needs_gradient->size() != count) {
    throw py::value_error("`needs_gradient` needs one flag per input (" + std::to_string(count) +
                          "). Received: " + std::to_string(needs_gradient->size()) + " flags");
  }
  return *needs_gradient;
}

FloatArray merge_forward(const std::string& kind, py::object inputs_argument, const std::string& activation,
                         const std::string& kernels) {
  const std::vector<FloatArray> inputs = merge_inputs(inputs_argument);
  MergeParams params = merge_params_for(kind, inputs);
  params.output_activation = fused_output_activation(activation, "A merge");
  const auto& table = table_named(kernels);
  const SampleShape& out = params.output;
  FloatArray output = new_float_array({params.batch, out.height, out.width, out.channels});
  const std::vector<const float*> input_data = data_of(inputs);
  {
    py::gil_scoped_release release;
    table.merge_forward(params, input_data.data(), output.mutable_data());
  }
  return output;
}

// One gradient per input (its shape), None where needs_gradient says so: a broadcast input's sums
// output_gradient over the positions it was broadcast to.
py::list merge_backward(const std::string& kind, py::object inputs_argument, py::object output_gradient_argument,
                        const std::optional<std::vector<bool>>& needs_gradient, py::object output_argument,
                        const std::string& activation, const std::string& kernels) {
  const std::vector<FloatArray> inputs = merge_inputs(inputs_argument);
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  MergeParams params = merge_params_for(kind, inputs);
  params.output_activation = fused_output_activation(activation, "A merge");
  const std::vector<bool> mask = gradient_mask(needs_gradient, inputs.size());
  const auto require_output_shape = [&](const FloatArray& array, const char* name) {
    require_rank(array, 4, name);
    require_dimension(array, 0, params.batch, name, "batch");
    require_dimension(array, 1, params.output.height, name, "output height");
    require_dimension(array, 2, params.output.width, name, "output width");
    require_dimension(array, 3, params.output.channels, name, "output channels");
  };
  require_output_shape(output_gradient, "output_gradient");
  // The activated forward output gives the activation's derivative; read only with one.
  std::optional<FloatArray> output;
  if (params.output_activation != Activation::linear) {
    if (output_argument.is_none()) {
      throw py::value_error("merge_backward with activation='" + activation +
                            "' needs the forward's activated `output`. Received: output=None");
    }
    output = float_array(output_argument, "output");
    require_output_shape(*output, "output");
  } else if (!output_argument.is_none()) {
    throw py::value_error("`output` is read only with activation='relu' or 'relu6'. Received: activation='" +
                          activation + "'");
  }
  const auto& table = table_named(kernels);
  std::vector<std::optional<FloatArray>> gradients(inputs.size());
  std::vector<float*> gradient_data(inputs.size(), nullptr);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!mask[i]) continue;
    gradients[i] = new_float_array_like(inputs[i], "an input gradient");
    gradient_data[i] = gradients[i]->mutable_data();
  }
  const std::vector<const float*> input_data = data_of(inputs);
  {
    py::gil_scoped_release release;
    table.merge_backward(params, input_data.data(), output ? output->data() : nullptr, output_gradient.data(),
                         gradient_data.data());
  }
  py::list result;
  for (const auto& gradient : gradients) result.append(gradient ? py::object(*gradient) : py::object(py::none()));
  return result;
}

FloatArray concatenate_forward(py::object inputs_argument, int64_t axis, const std::string& kernels) {
  const std::vector<FloatArray> inputs = merge_inputs(inputs_argument);
  std::vector<SampleShape> shapes;
  for (const FloatArray& array : inputs) shapes.push_back(sample_shape_of(array));
  const SampleShape out = concatenate_output_shape(shapes, axis);
  const ConcatenateParams params = make_concatenate_params(inputs[0].shape(0), shapes, axis);
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array({inputs[0].shape(0), out.height, out.width, out.channels});
  const std::vector<const float*> input_data = data_of(inputs);
  {
    py::gil_scoped_release release;
    table.concatenate_forward(params, input_data.data(), output.mutable_data());
  }
  return output;
}

// output_gradient split along sample `axis` into pieces of `sizes` (the inputs' extents there).
py::list concatenate_backward(py::object output_gradient_argument, const std::vector<int64_t>& sizes, int64_t axis,
                              const std::optional<std::vector<bool>>& needs_gradient, const std::string& kernels) {
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  require_rank(output_gradient, 4, "output_gradient");
  if (axis < 0 || axis > 2) {
    throw py::value_error("Concatenate's sample axis must be 0 (height), 1 (width) or 2 (channels). Received: axis=" +
                          std::to_string(axis));
  }
  if (sizes.empty()) throw py::value_error("`sizes` needs one extent per input. Received: sizes=[]");
  int64_t total = 0;
  std::vector<SampleShape> shapes;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 0) {
      throw py::value_error("`sizes` must be non-negative. Received: sizes[" + std::to_string(i) +
                            "]=" + std::to_string(sizes[i]));
    }
    total = checked_add(total, sizes[i], "the sum of `sizes`");
    SampleShape shape = sample_shape_of(output_gradient);
    (axis == 0 ? shape.height : axis == 1 ? shape.width : shape.channels) = sizes[i];
    shapes.push_back(shape);
  }
  if (output_gradient.shape(1 + axis) != total) {
    std::string listed;
    for (size_t i = 0; i < sizes.size(); ++i) listed += (i > 0 ? ", " : "") + std::to_string(sizes[i]);
    throw py::value_error("`sizes` must sum to output_gradient's extent along axis " + std::to_string(axis) + " (" +
                          std::to_string(output_gradient.shape(1 + axis)) + "). Received: sizes=[" + listed +
                          "], output_gradient.shape=" + shape_text(output_gradient));
  }
  const std::vector<bool> mask = gradient_mask(needs_gradient, sizes.size());
  const ConcatenateParams params = make_concatenate_params(output_gradient.shape(0), shapes, axis);
  const auto& table = table_named(kernels);
  std::vector<std::optional<FloatArray>> gradients(sizes.size());
  std::vector<float*> gradient_data(sizes.size(), nullptr);
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (!mask[i]) continue;
    gradients[i] = new_float_array({output_gradient.shape(0), shapes[i].height, shapes[i].width, shapes[i].channels},
                                   "an input gradient");
    gradient_data[i] = gradients[i]->mutable_data();
  }
  {
    py::gil_scoped_release release;
    table.concatenate_backward(params, output_gradient.data(), gradient_data.data());
  }
  py::list result;
  for (const auto& gradient : gradients) result.append(gradient ? py::object(*gradient) : py::object(py::none()));
  return result;
}


// ---- DepthwiseConv2D and grouped Conv2D (kernels.h depthwise_conv2d_*, grouped_conv2d_*) ----

// The kernel (kh, kw, channels, depth_multiplier) of a depthwise convolution of `channels` channels.
void require_depthwise_kernel(const FloatArray& kernel, int64_t channels) {
  require_rank(kernel, 4, "kernel");
  require_dimension(kernel, 2, channels, "kernel", "input channels");
}

FloatArray depthwise_conv2d_forward(py::object input_argument, py::object kernel_argument, py::object bias_argument,
                                    Pair strides, const std::string& padding, Pair dilation,
                                    const std::string& activation, const std::string& kernels, py::object out) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray kernel = float_array(kernel_argument, "kernel");
  const std::optional<FloatArray> bias = optional_float_array(bias_argument, "bias");
  require_rank(input, 4, "input");
  require_depthwise_kernel(kernel, input.shape(3));
  const DepthwiseConv2DParams params = make_depthwise_conv2d_params(
      input.shape(0), input.shape(1), input.shape(2), input.shape(3), kernel.shape(3), kernel.shape(0),
      kernel.shape(1), strides.first, strides.second, dilation.first, dilation.second,
      parse_padding(padding.c_str()), bias.has_value(), activation_named(activation));
  if (bias) {
    require_rank(*bias, 1, "bias");
    require_dimension(*bias, 0, params.output_channels(), "bias", "channels * depth_multiplier");
  }
  const auto& table = table_named(kernels);
  FloatArray output = result_array(
      out, {params.batch, params.output_height, params.output_width, params.output_channels()}, {&input, &kernel});
  const float* bias_data = bias ? bias->data() : nullptr;
  {
    py::gil_scoped_release release;
    table.depthwise_conv2d_forward(params, input.data(), kernel.data(), bias_data, output.mutable_data());
  }
  return output;
}

FloatArray depthwise_conv2d_backward_input(py::object output_gradient_argument, py::object kernel_argument,
                                           std::tuple<int64_t, int64_t, int64_t, int64_t> input_shape, Pair strides,
                                           const std::string& padding, Pair dilation, const std::string& kernels,
                                           py::object out) {
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const FloatArray kernel = float_array(kernel_argument, "kernel");
  const auto [batch, height, width, channels] = input_shape;
  require_rank(kernel, 4, "kernel");
  const DepthwiseConv2DParams params = make_depthwise_conv2d_params(
      batch, height, width, channels, kernel.shape(3), kernel.shape(0), kernel.shape(1), strides.first,
      strides.second, dilation.first, dilation.second, parse_padding(padding.c_str()), false, Activation::linear);
  require_depthwise_kernel(kernel, channels);
  require_output_shape(output_gradient, "output_gradient", batch, params.output_height, params.output_width,
                                params.output_channels());
  const auto& table = table_named(kernels);
  FloatArray input_gradient = result_array(out, {batch, height, width, channels}, {&output_gradient, &kernel});
  {
    py::gil_scoped_release release;
    table.depthwise_conv2d_backward_input(params, output_gradient.data(), kernel.data(),
                                          input_gradient.mutable_data());
  }
  return input_gradient;
}

std::pair<FloatArray, std::optional<FloatArray>> depthwise_conv2d_backward_kernel(
    py::object input_argument, py::object output_gradient_argument, Pair kernel_size, int64_t depth_multiplier,
    Pair strides, const std::string& padding, Pair dilation, bool use_bias, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  require_rank(input, 4, "input");
  const DepthwiseConv2DParams params = make_depthwise_conv2d_params(
      input.shape(0), input.shape(1), input.shape(2), input.shape(3), depth_multiplier, kernel_size.first,
      kernel_size.second, strides.first, strides.second, dilation.first, dilation.second,
      parse_padding(padding.c_str()), use_bias, Activation::linear);
  require_output_shape(output_gradient, "output_gradient", params.batch, params.output_height, params.output_width,
                                params.output_channels());
  const auto& table = table_named(kernels);
  FloatArray kernel_gradient =
      new_float_array({params.kernel_height, params.kernel_width, params.channels, params.depth_multiplier});
  std::optional<FloatArray> bias_gradient;
  if (use_bias) bias_gradient = new_float_array({params.output_channels()});
  float* bias_data = use_bias ? bias_gradient->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    table.depthwise_conv2d_backward_kernel(params, input.data(), output_gradient.data(),
                                           kernel_gradient.mutable_data(), bias_data);
  }
  return {kernel_gradient, bias_gradient};
}

// The kernel (kh, kw, input_channels / groups, filters) of a grouped convolution.
void require_grouped_kernel(const FloatArray& kernel, int64_t input_channels, int64_t groups) {
  require_rank(kernel, 4, "kernel");
  if (groups > 0 && input_channels % groups == 0) {
    require_dimension(kernel, 2, input_channels / groups, "kernel", "input channels / groups");
  }
}

FloatArray grouped_conv2d_forward(py::object input_argument, py::object kernel_argument, py::object bias_argument,
                                  int64_t groups, Pair strides, const std::string& padding, Pair dilation,
                                  const std::string& activation, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray kernel = float_array(kernel_argument, "kernel");
  const std::optional<FloatArray> bias = optional_float_array(bias_argument, "bias");
  require_rank(input, 4, "input");
  require_rank(kernel, 4, "kernel");
  const Activation act = activation_named(activation);
  if (!is_elementwise(act)) throw py::value_error("grouped_conv2d_forward fuses elementwise activations only");
  const GroupedConv2DParams params = make_grouped_conv2d_params(
      input.shape(0), input.shape(1), input.shape(2), input.shape(3), kernel.shape(3), groups, kernel.shape(0),
      kernel.shape(1), strides.first, strides.second, dilation.first, dilation.second,
      parse_padding(padding.c_str()), bias.has_value(), act);
  require_grouped_kernel(kernel, input.shape(3), groups);
  if (bias) {
    require_rank(*bias, 1, "bias");
    require_dimension(*bias, 0, params.conv.output_channels, "bias", "output channels");
  }
  const auto& table = table_named(kernels);
  const Conv2DParams& conv = params.conv;
  FloatArray output = new_float_array({conv.batch, conv.output_height, conv.output_width, conv.output_channels});
  const float* bias_data = bias ? bias->data() : nullptr;
  {
    py::gil_scoped_release release;
    table.grouped_conv2d_forward(params, input.data(), kernel.data(), bias_data, output.mutable_data());
  }
  return output;
}

FloatArray grouped_conv2d_backward_input(py::object output_gradient_argument, py::object kernel_argument,
                                         std::tuple<int64_t, int64_t, int64_t, int64_t> input_shape, int64_t groups,
                                         Pair strides, const std::string& padding, Pair dilation,
                                         const std::string& kernels) {
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const FloatArray kernel = float_array(kernel_argument, "kernel");
  const auto [batch, height, width, channels] = input_shape;
  require_rank(kernel, 4, "kernel");
  GroupedConv2DParams params = make_grouped_conv2d_params(
      batch, height, width, channels, kernel.shape(3), groups, kernel.shape(0), kernel.shape(1), strides.first,
      strides.second, dilation.first, dilation.second, parse_padding(padding.c_str()), false, Activation::linear);
  params.conv.large_winograd_tile = false;  // as conv2d_backward_input's default
  require_grouped_kernel(kernel, channels, groups);
  require_output_shape(output_gradient, "output_gradient", batch, params.conv.output_height, params.conv.output_width,
                                params.conv.output_channels);
  const auto& table = table_named(kernels);
  FloatArray input_gradient = new_float_array({batch, height, width, channels});
  {
    py::gil_scoped_release release;
    table.grouped_conv2d_backward_input(params, output_gradient.data(), kernel.data(), input_gradient.mutable_data());
  }
  return input_gradient;
}

std::pair<FloatArray, std::optional<FloatArray>> grouped_conv2d_backward_kernel(
    py::object input_argument, py::object output_gradient_argument, Pair kernel_size, int64_t groups, Pair strides,
    const std::string& padding, Pair dilation, bool use_bias, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  require_rank(input, 4, "input");
  require_rank(output_gradient, 4, "output_gradient");
  const GroupedConv2DParams params = make_grouped_conv2d_params(
      input.shape(0), input.shape(1), input.shape(2), input.shape(3), output_gradient.shape(3), groups,
      kernel_size.first, kernel_size.second, strides.first, strides.second, dilation.first, dilation.second,
      parse_padding(padding.c_str()), use_bias, Activation::linear);
  const Conv2DParams& conv = params.conv;
  require_output_shape(output_gradient, "output_gradient", conv.batch, conv.output_height, conv.output_width,
                                conv.output_channels);
  const auto& table = table_named(kernels);
  FloatArray kernel_gradient = new_float_array(
      {conv.kernel_height, conv.kernel_width, params.group_input_channels(), conv.output_channels});
  std::optional<FloatArray> bias_gradient;
  if (use_bias) bias_gradient = new_float_array({conv.output_channels});
  float* bias_data = use_bias ? bias_gradient->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    table.grouped_conv2d_backward_kernel(params, input.data(), output_gradient.data(),
                                         kernel_gradient.mutable_data(), bias_data);
  }
  return {kernel_gradient, bias_gradient};
}

// One optimizer update (ops/optimizer.h) on copies of the arrays; `options` sets the params'
// fields by name (learning_rate, gradient_scale, clipvalue, decay, momentum, nesterov, rho,
// centered, epsilon, beta_1, beta_2, amsgrad, alpha, u_t, u_next, one_minus_u_product,
// one_minus_u_product_next, one_minus_beta_2_power). Returns (parameters, gradients, first_slot,
// second_slot, third_slot), None for a slot the update does not use.
py::tuple optimizer_update(const std::string& kind, py::object parameters_argument, py::object gradients_argument,
                           py::object first_argument, py::object second_argument, py::object third_argument,
                           const py::dict& options, const std::string& kernels) {
  OptimizerUpdateParams params;
  if (kind == "sgd") {
    params.kind = OptimizerKind::sgd;
  } else if (kind == "adam") {
    params.kind = OptimizerKind::adam;
  } else if (kind == "rmsprop") {
    params.kind = OptimizerKind::rmsprop;
  } else if (kind == "adagrad") {
    params.kind = OptimizerKind::adagrad;
  } else if (kind == "nadam") {
    params.kind = OptimizerKind::nadam;
  } else {
    throw py::value_error("Unknown optimizer kind: '" + kind + "'");
  }
  const std::pair<const char*, float*> numbers[] = {
      {"learning_rate", &params.learning_rate}, {"gradient_scale", &params.gradient_scale},
      {"clipvalue", &params.clipvalue}, {"decay", &params.decay}, {"momentum", &params.momentum},
      {"rho", &params.rho}, {"epsilon", &params.epsilon}, {"beta_1", &params.beta_1}, {"beta_2", &params.beta_2},
      {"alpha", &params.alpha}, {"u_t", &params.u_t}, {"u_next", &params.u_next},
      {"one_minus_u_product", &params.one_minus_u_product},
      {"one_minus_u_product_next", &params.one_minus_u_product_next},
      {"one_minus_beta_2_power", &params.one_minus_beta_2_power}};
  const std::pair<const char*, bool*> flags[] = {
      {"nesterov", &params.nesterov}, {"centered", &params.centered}, {"amsgrad", &params.amsgrad}};
  for (const auto& [key, value] : options) {
    const std::string name = py::str(key);
    bool known = false;
    if (!py::isinstance<py::float_>(value) && !py::isinstance<py::int_>(value)) {  // bool is an int
      throw py::type_error("optimizer_update option '" + name + "' must be a number or a bool. Received: " +
                           std::string(py::repr(value)));
    }
    for (const auto& [field, target] : numbers) {
      if (name == field) {
        *target = value.cast<float>();
        known = true;
      }
    }
    for (const auto& [field, target] : flags) {
      if (name == field) {
        *target = value.cast<bool>();
        known = true;
      }
    }
    if (!known) throw py::value_error("Unknown optimizer_update option: '" + name + "'");
  }
  // Copies, so that the caller's arrays are left as they were.
  FloatArray parameters = py::reinterpret_steal<FloatArray>(
      py::array(float_array(parameters_argument, "parameters")).attr("copy")().release());
  require_rank(parameters, 1, "parameters");
  params.count = parameters.shape(0);
  auto copy_of = [&](py::object argument, const char* name, bool needed) -> std::optional<FloatArray> {
    if (!needed) return std::nullopt;
    if (argument.is_none()) {
      throw py::value_error(std::string("optimizer '") + kind + "' with these options needs `" + name +
                            "`. Received: None");
    }
    FloatArray array = py::reinterpret_steal<FloatArray>(py::array(float_array(argument, name)).attr("copy")().release());
    require_rank(array, 1, name);
    require_dimension(array, 0, params.count, name, "length");
    return array;
  };
  std::optional<FloatArray> gradients = copy_of(gradients_argument, "gradients", true);
  std::optional<FloatArray> first = copy_of(first_argument, "first_slot", optimizer_uses_first_slot(params));
  std::optional<FloatArray> second = copy_of(second_argument, "second_slot", optimizer_uses_second_slot(params));
  std::optional<FloatArray> third = copy_of(third_argument, "third_slot", optimizer_uses_third_slot(params));
  const auto& table = table_named(kernels);
  auto data = [](std::optional<FloatArray>& array) { return array ? array->mutable_data() : nullptr; };
  {
    py::gil_scoped_release release;
    table.optimizer_update(params, parameters.mutable_data(), gradients->mutable_data(), data(first), data(second),
                           data(third));
  }
  auto result = [](std::optional<FloatArray>& array) -> py::object {
    return array ? py::object(*array) : py::object(py::none());
  };
  return py::make_tuple(parameters, *gradients, result(first), result(second), result(third));
}

}  // namespace

void bind_ops(py::module_& ops) {
  ops.def("average_pool2d_forward", &average_pool2d_forward, py::arg("input"), py::arg("pool_size"),
          py::arg("strides"), py::arg("padding") = "valid", py::arg("kernels") = "active");
  ops.def("average_pool2d_backward", &average_pool2d_backward, py::arg("input"), py::arg("output_gradient"),
          py::arg("pool_size"), py::arg("strides"), py::arg("padding") = "valid", py::arg("kernels") = "active");
  ops.def("relu_forward", &relu_forward, py::arg("input"), py::arg("max_value") = std::numeric_limits<float>::infinity(),
          py::arg("negative_slope") = 0.0f, py::arg("threshold") = 0.0f, py::arg("kernels") = "active",
          "The ReLU layer's kernel (max_value, negative_slope and threshold as Keras's ReLU).");
  ops.def("relu_backward", &relu_backward, py::arg("input"), py::arg("output_gradient"),
          py::arg("max_value") = std::numeric_limits<float>::infinity(), py::arg("negative_slope") = 0.0f,
          py::arg("threshold") = 0.0f, py::arg("kernels") = "active");
  ops.def("optimizer_update", &optimizer_update, py::arg("kind"), py::arg("parameters"), py::arg("gradients"),
          py::arg("first_slot") = py::none(), py::arg("second_slot") = py::none(), py::arg("third_slot") = py::none(),
          py::arg("options") = py::dict(), py::arg("kernels") = "active",
          "One optimizer update (the kernel behind the compiled model's optimizer) on copies of 1-D arrays.");
  ops.def("conv2d_forward", &conv2d_forward, py::arg("input"), py::arg("kernel"), py::arg("bias") = py::none(),
          py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid", py::arg("dilation") = Pair{1, 1},
          py::arg("activation") = "linear", py::arg("kernels") = "active", py::arg("large_winograd_tile") = true,
          py::arg("residual") = py::none(), py::arg("output_scale") = py::none(), py::arg("output_shift") = py::none(),
          "large_winograd_tile=False: a 3x3 Winograd layer runs F(2x2, 3x3), as a training step's forward pass does. "
          "residual: an array of the output's shape, added before the activation (as a following Add layer would). "
          "output_scale, output_shift: per output channel, output = activation(...) * output_scale + output_shift "
          "(as an inference BatchNormalization reading the activated output would).");
  ops.def("conv2d_backward_input", &conv2d_backward_input, py::arg("output_gradient"), py::arg("kernel"),
          py::arg("input_shape"), py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid",
          py::arg("dilation") = Pair{1, 1}, py::arg("kernels") = "active", py::arg("large_winograd_tile") = false,
          py::arg("add_to") = py::none(),
          "large_winograd_tile=True: a 3x3 Winograd layer runs F(4x4, 3x3), as a training step of a network "
          "without max pooling (or a Maximum/Minimum merge) does; the default F(2x2, 3x3) is the others'. "
          "add_to: an array of the input's shape that the kernel adds the gradient to (returns add_to + gradient, "
          "as a tensor read by several layers sums their gradients).");
  ops.def("conv2d_backward_kernel", &conv2d_backward_kernel, py::arg("input"), py::arg("output_gradient"),
          py::arg("kernel_size"), py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid",
          py::arg("dilation") = Pair{1, 1}, py::arg("use_bias") = true, py::arg("kernels") = "active");
  ops.def("dense_forward", &dense_forward, py::arg("input"), py::arg("kernel"), py::arg("bias") = py::none(),
          py::arg("activation") = "linear", py::arg("kernels") = "active");
  ops.def("dense_backward_input", &dense_backward_input, py::arg("output_gradient"), py::arg("kernel"),
          py::arg("kernels") = "active");
  ops.def("dense_backward_kernel", &dense_backward_kernel, py::arg("input"), py::arg("output_gradient"),
          py::arg("use_bias") = true, py::arg("kernels") = "active");
  ops.def("max_pool2d_forward", &max_pool2d_forward, py::arg("input"), py::arg("pool_size"),
          py::arg("strides"), py::arg("padding") = "valid", py::arg("kernels") = "active",
          py::arg("positions") = false, py::arg("relu_input") = false,
          "Max pooling's output; with positions=True (output, window_positions): each output's first "
          "maximum as its row-major offset in the window (uint8; 255 where relu_input and the maximum is "
          "not > 0).");
  ops.def("max_pool2d_backward", &max_pool2d_backward, py::arg("input"), py::arg("output_gradient"),
          py::arg("pool_size"), py::arg("strides"), py::arg("padding") = "valid", py::arg("kernels") = "active",
          py::arg("relu_input") = false);
  ops.def("conv2d_max_pool2d_forward", &conv2d_max_pool2d_forward, py::arg("input"), py::arg("kernel"),
          py::arg("bias") = py::none(), py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid",
          py::arg("dilation") = Pair{1, 1}, py::arg("activation") = "relu", py::arg("pool_size") = Pair{2, 2},
          py::arg("kernels") = "active", py::arg("window_positions") = true,
          "Conv2D then MaxPooling2D (strides = pool_size, 'valid') in one pass: (pooled output, each "
          "output's window position of its maximum as uint8). window_positions=False (inference): "
          "(pooled output, None), and a Winograd-shaped convolution (3x3, stride 1, >= 16 channels "
          "in and out) with 2x2 pooling pools its output tiles as they are stored.");
  ops.def("conv2d_max_pool2d_backward_kernel", &conv2d_max_pool2d_backward_kernel, py::arg("input"),
          py::arg("output"), py::arg("window_index"), py::arg("output_gradient"), py::arg("kernel_size"),
          py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid", py::arg("dilation") = Pair{1, 1},
          py::arg("activation") = "relu", py::arg("pool_size") = Pair{2, 2}, py::arg("use_bias") = true,
          py::arg("kernels") = "active",
          "The fused pair's kernel (and bias) gradient from the pooled output's gradient.");
  ops.def("activation_forward", &activation_forward, py::arg("activation"), py::arg("input"),
          py::arg("kernels") = "active");
  ops.def("activation_backward", &activation_backward, py::arg("activation"), py::arg("output"),
          py::arg("output_gradient"), py::arg("kernels") = "active", py::arg("input") = py::none());
  ops.def("dropout_forward", &dropout_forward, py::arg("input"), py::arg("rate"), py::arg("seed"),
          py::arg("kernels") = "active");
  ops.def("dropout_backward", &dropout_backward, py::arg("output_gradient"), py::arg("rate"),
          py::arg("seed"), py::arg("kernels") = "active");
  ops.def("batch_norm_statistics", &batch_norm_statistics, py::arg("input"), py::arg("kernels") = "active");
  ops.def("batch_norm_forward", &batch_norm_forward, py::arg("input"), py::arg("mean"), py::arg("variance"),
          py::arg("gamma") = py::none(), py::arg("beta") = py::none(), py::arg("epsilon") = 1e-3f,
          py::arg("kernels") = "active", py::arg("activation") = "linear", py::arg("pool_size") = py::none(),
          py::arg("pool_strides") = py::none(), py::arg("pool_relu_input") = false,
          "BatchNormalization's output act(x * scale + shift). With pool_size (pool_strides default "
          "pool_size; windows must not overlap): (pooled, window_positions), the output's 'valid' max "
          "pooling and each window's first maximum (uint8, 255 where pool_relu_input and the maximum is "
          "not > 0), as a training step computes them.");
  ops.def("batch_norm_backward", &batch_norm_backward, py::arg("input"), py::arg("mean"), py::arg("variance"),
          py::arg("gamma"), py::arg("output_gradient"), py::arg("epsilon") = 1e-3f, py::arg("kernels") = "active",
          py::arg("relu_input") = false, py::arg("activation") = "linear", py::arg("beta") = py::none(),
          py::arg("pool_size") = py::none(), py::arg("pool_strides") = py::none(),
          py::arg("window_positions") = py::none(),
          "BatchNormalization's backward pass (batch statistics). pool_size (and pool_strides, default "
          "pool_size; windows must not overlap): output_gradient is the gradient of a 'valid' MaxPooling2D "
          "of this layer's (activated) output, which the kernel routes to the first maximum of each window "
          "that window_positions (from batch_norm_forward(..., pool_size=...)) records.");
  ops.def("loss", &loss, py::arg("predictions"), py::arg("targets"), py::arg("from_logits") = false,
          py::arg("kind") = "categorical_crossentropy", py::arg("huber_delta") = 1.0f, py::arg("focal_gamma") = 2.0f,
          py::arg("focal_alpha") = 0.25f, py::arg("apply_class_balancing") = false,
          "(per-sample losses, gradient of their mean) of a model output's loss (ops/loss.h): kind "
          "categorical_crossentropy, binary_crossentropy, mean_squared_error, mean_absolute_error, huber, "
          "kl_divergence, categorical_hinge, binary_focal_crossentropy or categorical_focal_crossentropy.");


  ops.def("merge_forward", &merge_forward, py::arg("kind"), py::arg("inputs"), py::arg("activation") = "linear",
          py::arg("kernels") = "active",
          "Keras's Add, Subtract, Multiply, Average, Maximum or Minimum (kind 'add', ...) of a list of NHWC arrays "
          "of one batch, broadcast per sample where a dimension is 1; activation 'relu' or 'relu6' applied to the "
          "result (a ReLU layer fused into the merge).");
  ops.def("merge_backward", &merge_backward, py::arg("kind"), py::arg("inputs"), py::arg("output_gradient"),
          py::arg("needs_gradient") = py::none(), py::arg("output") = py::none(), py::arg("activation") = "linear",
          py::arg("kernels") = "active",
          "Each input's gradient (None where needs_gradient is False); a broadcast input's is summed over the "
          "positions it was broadcast to. With activation 'relu' or 'relu6', output_gradient is the activated "
          "output's and `output` (merge_forward's, activated) gives the derivative.");
  ops.def("concatenate_forward", &concatenate_forward, py::arg("inputs"), py::arg("axis"),
          py::arg("kernels") = "active", "Concatenate along sample axis 0 (height), 1 (width) or 2 (channels).");
  ops.def("concatenate_backward", &concatenate_backward, py::arg("output_gradient"), py::arg("sizes"),
          py::arg("axis"), py::arg("needs_gradient") = py::none(), py::arg("kernels") = "active",
          "output_gradient split along sample `axis` into the inputs' extents `sizes`.");
  ops.def(
      "memory_bandwidth_probe",
      [](int64_t megabytes, int64_t repeats) {
        if (megabytes <= 0 || megabytes > 65536) {
          throw py::value_error("`megabytes` must be in [1, 65536]. Received: megabytes=" + std::to_string(megabytes));
        }
        const int64_t elements = megabytes * (int64_t(1) << 20) / int64_t(3 * sizeof(float));
        require_allocatable(3 * elements, sizeof(float), "the bandwidth probe's arrays");
        py::gil_scoped_release release;
        return kernels::memory_bandwidth_probe(elements, repeats) / 1e9;
      },
      py::arg("megabytes") = 384, py::arg("repeats") = 5,
      "STREAM triad a = b + s*c over three arrays of `megabytes` in all, on the current threads: GB/s "
      "(two reads and one write per element), the yardstick of memory-bound kernels.");
  ops.def("depthwise_conv2d_forward", &depthwise_conv2d_forward, py::arg("input"), py::arg("kernel"),
          py::arg("bias") = py::none(), py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid",
          py::arg("dilation") = Pair{1, 1}, py::arg("activation") = "linear", py::arg("kernels") = "active",
          py::arg("out") = py::none(),
          "Keras's DepthwiseConv2D: kernel (kh, kw, channels, depth_multiplier), output channel "
          "c * depth_multiplier + m, bias (channels * depth_multiplier,) and activation fused. `out`: "
          "an existing float32 array to write the result to (returned).");
  ops.def("depthwise_conv2d_backward_input", &depthwise_conv2d_backward_input, py::arg("output_gradient"),
          py::arg("kernel"), py::arg("input_shape"), py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid",
          py::arg("dilation") = Pair{1, 1}, py::arg("kernels") = "active", py::arg("out") = py::none(),
          "The input's gradient from the pre-activation output's gradient (into `out` when given).");
  ops.def("depthwise_conv2d_backward_kernel", &depthwise_conv2d_backward_kernel, py::arg("input"),
          py::arg("output_gradient"), py::arg("kernel_size"), py::arg("depth_multiplier") = 1,
          py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid", py::arg("dilation") = Pair{1, 1},
          py::arg("use_bias") = true, py::arg("kernels") = "active",
          "(kernel gradient (kh, kw, channels, depth_multiplier), bias gradient or None) from the "
          "pre-activation output's gradient.");
  ops.def("grouped_conv2d_forward", &grouped_conv2d_forward, py::arg("input"), py::arg("kernel"),
          py::arg("bias") = py::none(), py::arg("groups") = 1, py::arg("strides") = Pair{1, 1},
          py::arg("padding") = "valid", py::arg("dilation") = Pair{1, 1}, py::arg("activation") = "linear",
          py::arg("kernels") = "active",
          "Keras's Conv2D(groups=groups): kernel (kh, kw, input_channels / groups, filters).");
  ops.def("grouped_conv2d_backward_input", &grouped_conv2d_backward_input, py::arg("output_gradient"),
          py::arg("kernel"), py::arg("input_shape"), py::arg("groups") = 1, py::arg("strides") = Pair{1, 1},
          py::arg("padding") = "valid", py::arg("dilation") = Pair{1, 1}, py::arg("kernels") = "active");
  ops.def("grouped_conv2d_backward_kernel", &grouped_conv2d_backward_kernel, py::arg("input"),
          py::arg("output_gradient"), py::arg("kernel_size"), py::arg("groups") = 1, py::arg("strides") = Pair{1, 1},
          py::arg("padding") = "valid", py::arg("dilation") = Pair{1, 1}, py::arg("use_bias") = true,
          py::arg("kernels") = "active");
}

}  // namespace fastcnn::bindings
