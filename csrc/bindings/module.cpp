// The only code that includes pybind11. Every entry point checks its arrays (rank, shapes
// consistent with each other and with the op's parameters, index ranges) and raises ValueError /
// TypeError naming what it received, converts to contiguous float32 once, then releases the GIL
// and calls C++ that trusts its inputs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/image.h"
#include "kernels/kernels.h"
#include "ops/checked.h"
#include "parallel.h"
#include "runtime/augmentation.h"
#include "runtime/network.h"

namespace py = pybind11;
using namespace fastcnn;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using LabelArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using Pair = std::pair<int64_t, int64_t>;
using Float2 = std::pair<float, float>;

std::string shape_text(const py::array& array) {
  std::ostringstream text;
  text << "(";
  for (py::ssize_t i = 0; i < array.ndim(); ++i) {
    text << array.shape(i);
    if (array.ndim() == 1 || i + 1 < array.ndim()) text << (i + 1 < array.ndim() ? ", " : ",");
  }
  text << ")";
  return text.str();
}

void require_rank(const py::array& array, py::ssize_t rank, const char* name) {
  if (array.ndim() != rank) {
    throw py::value_error(std::string("`") + name + "` must have rank " + std::to_string(rank) +
                          ". Received: " + name + ".shape=" + shape_text(array));
  }
}

void require_dimension(const py::array& array, py::ssize_t axis, int64_t expected, const char* name,
                       const char* meaning) {
  if (array.shape(axis) != expected) {
    throw py::value_error(std::string("`") + name + "` axis " + std::to_string(axis) + " (" +
                          meaning + ") must be " + std::to_string(expected) + ". Received: " +
                          name + ".shape=" + shape_text(array));
  }
}

std::string type_name(py::handle value) { return py::str(py::type::handle_of(value).attr("__name__")); }

// Any array-like of booleans, integers or floats as an ndarray of its own dtype; None, strings,
// objects, complex numbers and ragged sequences are refused naming the argument.
py::array numeric_array(py::handle value, const char* name) {
  if (value.is_none()) {
    throw py::type_error(std::string("`") + name + "` must be an array of numbers. Received: " + name + "=None");
  }
  py::array array = py::array::ensure(value);
  if (!array) {
    throw py::type_error(std::string("`") + name + "` must be an array of numbers (a numpy array or a " +
                         "rectangular nested sequence). Received: " + name + " of type " + type_name(value));
  }
  const char kind = array.dtype().kind();
  if (kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f') {
    throw py::type_error(std::string("`") + name + "` must hold booleans, integers or floats. Received: " + name +
                         ".dtype=" + std::string(py::str(array.dtype())));
  }
  return array;
}

// `array` converted to a C-contiguous Target array: the copy's size is checked against the machine's
// memory first (a zero-stride view of a few bytes can stand for terabytes).
template <typename Target>
Target converted(const py::array& array, const char* name) {
  require_allocatable(array.size(), sizeof(typename Target::value_type), std::string("a converted copy of `") + name + "`");
  Target result = Target::ensure(array);
  if (!result) {
    throw py::type_error(std::string("`") + name + "` could not be converted to a contiguous array of " +
                         std::string(py::str(py::dtype::of<typename Target::value_type>())) + ". Received: " + name +
                         ".dtype=" + std::string(py::str(array.dtype())) + ", " + name + ".shape=" + shape_text(array));
  }
  return result;
}

// A C-contiguous float32 array: the argument itself when it already is one, else a converted copy
// (float64, integers, booleans, Fortran order, strided views and read-only arrays all give the
// result of their contiguous float32 copy).
FloatArray float_array(py::handle value, const char* name) {
  if (FloatArray::check_(value)) return py::reinterpret_borrow<FloatArray>(value);
  return converted<FloatArray>(numeric_array(value, name), name);
}

std::optional<FloatArray> optional_float_array(py::handle value, const char* name) {
  if (value.is_none()) return std::nullopt;
  return float_array(value, name);
}

// A C-contiguous int64 array of an integer argument (indices, origins, flags). Floats are refused
// rather than truncated, and uint64 values beyond int64 rather than wrapped.
IndexArray integer_array(py::handle value, const char* name) {
  const py::array array = numeric_array(value, name);
  const char kind = array.dtype().kind();
  if (kind != 'i' && kind != 'u') {
    throw py::type_error(std::string("`") + name + "` must hold integers. Received: " + name + ".dtype=" +
                         std::string(py::str(array.dtype())));
  }
  if (kind == 'u' && array.dtype().itemsize() == 8) {
    const auto wide = converted<py::array_t<uint64_t, py::array::c_style | py::array::forcecast>>(array, name);
    for (py::ssize_t i = 0; i < wide.size(); ++i) {
      if (wide.data()[i] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        throw py::value_error(std::string("`") + name + "` values must fit in int64. Received: " +
                              std::to_string(wide.data()[i]));
      }
    }
  }
  return converted<IndexArray>(array, name);
}

std::optional<IndexArray> optional_integer_array(py::handle value, const char* name) {
  if (value.is_none()) return std::nullopt;
  return integer_array(value, name);
}

// Class labels as int64: integers, or floats that are whole numbers (as Keras's sparse losses
// accept them); a float such as 1.5 or nan is refused rather than truncated.
IndexArray class_indices(const py::array& array, const char* name) {
  if (array.dtype().kind() == 'f') {
    const FloatArray values = converted<FloatArray>(array, name);
    for (py::ssize_t i = 0; i < values.size(); ++i) {
      const float value = values.data()[i];
      if (!std::isfinite(value) || std::trunc(value) != value) {
        throw py::value_error("label " + std::to_string(value) + " is not an integer class index. Received: " +
                              name + "[" + std::to_string(i) + "]=" + std::to_string(value));
      }
      if (std::fabs(value) > 9.0e18f) {
        throw py::value_error("label " + std::to_string(value) + " is outside the int64 range");
      }
    }
    return converted<IndexArray>(values, name);
  }
  if (array.dtype().kind() == 'b') {
    throw py::type_error(std::string("`") + name + "` must hold integer class indices. Received: " + name +
                         ".dtype=bool");
  }
  return integer_array(array, name);
}

// A new float32 array, its element count formed with overflow checks and compared with the
// machine's memory before numpy allocates it.
FloatArray new_float_array(std::vector<py::ssize_t> shape, const char* what = "the result") {
  int64_t count = 1;
  for (py::ssize_t dimension : shape) count = checked_multiply(count, dimension, what);
  require_allocatable(count, sizeof(float), what);
  return FloatArray(std::move(shape));
}

FloatArray new_float_array_like(const py::array& like, const char* what) {
  return new_float_array(std::vector<py::ssize_t>(like.shape(), like.shape() + like.ndim()), what);
}

std::vector<const float*> data_of(const std::vector<FloatArray>& arrays) {
  std::vector<const float*> result;
  for (const FloatArray& array : arrays) result.push_back(array.data());
  return result;
}

const kernels::KernelTable& table_named(const std::string& name) {
  return name == "active" ? kernels::active() : kernels::by_name(name.c_str());
}

Activation activation_named(const std::string& name) { return parse_activation(name); }


Conv2DParams conv_params_for(const FloatArray& input, int64_t output_channels, Pair kernel_size,
                             Pair strides, const std::string& padding, Pair dilation,
                             bool use_bias, Activation activation) {
  require_rank(input, 4, "input");
  return make_conv2d_params(input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                            output_channels, kernel_size.first, kernel_size.second, strides.first,
                            strides.second, dilation.first, dilation.second,
                            parse_padding(padding.c_str()), use_bias, activation);
}

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

FloatArray conv2d_forward(py::object input_argument, py::object kernel_argument, py::object bias_argument,
                          Pair strides, const std::string& padding, Pair dilation, const std::string& activation,
                          const std::string& kernels, bool large_winograd_tile) {
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
                                 const std::string& kernels) {
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const FloatArray kernel = float_array(kernel_argument, "kernel");
  require_rank(kernel, 4, "kernel");
  require_rank(output_gradient, 4, "output_gradient");
  const auto [batch, height, width, channels] = input_shape;
  const Conv2DParams params = make_conv2d_params(
      batch, height, width, channels, kernel.shape(3), kernel.shape(0), kernel.shape(1),
      strides.first, strides.second, dilation.first, dilation.second,
      parse_padding(padding.c_str()), false, Activation::linear);
  require_dimension(kernel, 2, channels, "kernel", "input channels");
  require_dimension(output_gradient, 0, params.batch, "output_gradient", "batch");
  require_dimension(output_gradient, 1, params.output_height, "output_gradient", "output height");
  require_dimension(output_gradient, 2, params.output_width, "output_gradient", "output width");
  require_dimension(output_gradient, 3, params.output_channels, "output_gradient", "output channels");
  const auto& table = table_named(kernels);
  FloatArray input_gradient = new_float_array({batch, height, width, channels});
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

FloatArray max_pool2d_forward(py::object input_argument, Pair pool_size, Pair strides,
                              const std::string& padding, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const Pool2DParams params = pool_params_for(input, pool_size, strides, padding);
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array({params.batch, params.output_height, params.output_width, params.channels});
  {
    py::gil_scoped_release release;
    table.max_pool2d_forward(params, input.data(), output.mutable_data());
  }
  return output;
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
  if (needs_pre_activation(act) && act != Activation::softmax && !input) {
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

FloatArray batch_norm_forward(py::object input_argument, py::object mean_argument, py::object variance_argument,
                              py::object gamma_argument, py::object beta_argument, float epsilon,
                              const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray mean = float_array(mean_argument, "mean");
  const FloatArray variance = float_array(variance_argument, "variance");
  const std::optional<FloatArray> gamma = optional_float_array(gamma_argument, "gamma");
  const std::optional<FloatArray> beta = optional_float_array(beta_argument, "beta");
  const BatchNormParams params = batch_norm_params_for(input, epsilon);
  require_channel_vector(mean, params.channels, "mean");
  require_channel_vector(variance, params.channels, "variance");
  require_channel_vector(gamma, params.channels, "gamma");
  require_channel_vector(beta, params.channels, "beta");
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array_like(input, "output");
  const float* gamma_data = gamma ? gamma->data() : nullptr;
  const float* beta_data = beta ? beta->data() : nullptr;
  {
    py::gil_scoped_release release;
    table.batch_norm_forward(params, input.data(), mean.data(), variance.data(), gamma_data, beta_data,
                             output.mutable_data());
  }
  return output;
}

std::tuple<FloatArray, FloatArray, FloatArray> batch_norm_backward(
    py::object input_argument, py::object mean_argument, py::object variance_argument, py::object gamma_argument,
    py::object output_gradient_argument, float epsilon, const std::string& kernels, bool relu_input) {
  const FloatArray input = float_array(input_argument, "input");
  const FloatArray mean = float_array(mean_argument, "mean");
  const FloatArray variance = float_array(variance_argument, "variance");
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const std::optional<FloatArray> gamma = optional_float_array(gamma_argument, "gamma");
  BatchNormParams params = batch_norm_params_for(input, epsilon);
  params.relu_input = relu_input;
  require_channel_vector(mean, params.channels, "mean");
  require_channel_vector(variance, params.channels, "variance");
  require_channel_vector(gamma, params.channels, "gamma");
  if (input.request().shape != output_gradient.request().shape) {
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

// Labels (batch,) in [0, classes) or probability rows (batch, classes).
std::pair<FloatArray, FloatArray> cross_entropy(py::object predictions_argument, py::object targets_argument,
                                                bool from_logits) {
  const FloatArray predictions = float_array(predictions_argument, "predictions");
  const py::array targets = numeric_array(targets_argument, "targets");
  require_rank(predictions, 2, "predictions");
  const int64_t batch = predictions.shape(0);
  const int64_t classes = predictions.shape(1);
  if (classes <= 0) {
    throw py::value_error("`predictions` needs at least one class. Received: predictions.shape=" +
                          shape_text(predictions));
  }
  CrossEntropyParams params;
  params.batch = batch;
  params.classes = classes;
  params.from_logits = from_logits;
  params.gradient_scale = batch > 0 ? 1.0f / static_cast<float>(batch) : 0.0f;
  if (targets.ndim() == 1) {
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
      kernels::cross_entropy(params, predictions.data(), narrow.data(), nullptr, losses.mutable_data(),
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
    kernels::cross_entropy(params, predictions.data(), nullptr, probabilities.data(), losses.mutable_data(),
                           gradient.mutable_data());
  }
  return {losses, gradient};
}

// ---- image preprocessing ops (ops/image.h) ----

using OriginArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using FlagArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

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
                          ", pool_size=(" + std::to_string(pool_size.first) + ", " + std::to_string(pool_size.second) + ")");
  }
  return {conv, pool};
}

std::pair<FloatArray, FlagArray> conv2d_max_pool2d_forward(py::object input_argument, py::object kernel_argument,
                                                          py::object bias_argument, Pair strides,
                                                          const std::string& padding, Pair dilation,
                                                          const std::string& activation, Pair pool_size,
                                                          const std::string& kernels) {
  const auto [input, kernel, bias] = conv_arrays(input_argument, kernel_argument, bias_argument);
  const auto [conv, pool] = conv_max_pool_params_for(input, kernel.shape(3), {kernel.shape(0), kernel.shape(1)},
                                                     strides, padding, dilation, bias.has_value(), activation, pool_size);
  if (bias) {
    require_rank(*bias, 1, "bias");
    require_dimension(*bias, 0, conv.output_channels, "bias", "output channels");
  }
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array({pool.batch, pool.output_height, pool.output_width, pool.channels});
  FlagArray window_index(std::vector<py::ssize_t>{pool.batch, pool.output_height, pool.output_width, pool.channels});
  const float* bias_data = bias ? bias->data() : nullptr;
  {
    py::gil_scoped_release release;
    table.conv2d_max_pool2d_forward(conv, pool, input.data(), kernel.data(), bias_data, output.mutable_data(),
                                    window_index.mutable_data());
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
  auto check_range = [window](int64_t value) {
    if (value < 0 || value >= window) {
      throw py::value_error("`window_index` values must lie in [0, " + std::to_string(window) +
                            ") (positions in the pool window). Received: " + std::to_string(value));
    }
  };
  FlagArray window_index;
  if (bytes) {
    window_index = py::reinterpret_borrow<FlagArray>(window_index_argument);
    for (py::ssize_t i = 0; i < window_index.size(); ++i) check_range(window_index.data()[i]);
  } else {
    const IndexArray wide_index = py::reinterpret_borrow<IndexArray>(index_array);
    for (py::ssize_t i = 0; i < wide_index.size(); ++i) check_range(wide_index.data()[i]);
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

// A per-sample vector of `batch` values (a scalar or length-1 array is broadcast).
FloatArray per_sample(const FloatArray& values, int64_t batch, const char* name) {
  if (values.ndim() > 1) {
    throw py::value_error(std::string("`") + name + "` must be a number or one per sample. Received: " + name +
                          ".shape=" + shape_text(values));
  }
  if (values.size() == batch) return values;
  if (values.size() != 1) {
    throw py::value_error(std::string("`") + name + "` must hold 1 or " + std::to_string(batch) +
                          " values (one per sample). Received: " + name + ".shape=" + shape_text(values));
  }
  FloatArray result = new_float_array({batch});
  for (int64_t i = 0; i < batch; ++i) result.mutable_data()[i] = values.data()[0];
  return result;
}

ProjectiveTransformParams transform_params_for(const FloatArray& images, FloatArray& transforms,
                                               const std::string& interpolation, const std::string& fill_mode,
                                               float fill_value) {
  require_rank(images, 4, "images");
  ProjectiveTransformParams params{images.shape(0), images.shape(1), images.shape(2), images.shape(3),
                                   parse_interpolation(interpolation), parse_fill_mode(fill_mode), fill_value};
  validate(params);
  // (8,) or (1, 8) apply to every sample, as in TensorFlow.
  if (transforms.ndim() == 1) transforms = FloatArray(transforms.reshape({py::ssize_t(1), transforms.shape(0)}));
  require_rank(transforms, 2, "transforms");
  require_dimension(transforms, 1, 8, "transforms", "a0 a1 a2 b0 b1 b2 c0 c1");
  if (transforms.shape(0) == 1 && params.batch != 1) {
    FloatArray repeated = new_float_array({params.batch, 8});
    for (int64_t n = 0; n < params.batch; ++n) {
      std::copy(transforms.data(), transforms.data() + 8, repeated.mutable_data() + n * 8);
    }
    transforms = repeated;
  }
  require_dimension(transforms, 0, params.batch, "transforms", "batch");
  return params;
}

FloatArray projective_transform(py::object images_argument, py::object transforms_argument,
                                const std::string& interpolation, const std::string& fill_mode, float fill_value) {
  const FloatArray images = float_array(images_argument, "images");
  FloatArray transforms = float_array(transforms_argument, "transforms");
  const auto params = transform_params_for(images, transforms, interpolation, fill_mode, fill_value);
  FloatArray output = new_float_array_like(images, "output");
  {
    py::gil_scoped_release release;
    kernels::projective_transform_forward(params, transforms.data(), images.data(), output.mutable_data());
  }
  return output;
}

FloatArray projective_transform_backward(py::object output_gradient_argument, py::object transforms_argument,
                                         const std::string& interpolation, const std::string& fill_mode) {
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  FloatArray transforms = float_array(transforms_argument, "transforms");
  const auto params = transform_params_for(output_gradient, transforms, interpolation, fill_mode, 0.0f);
  FloatArray input_gradient = new_float_array_like(output_gradient, "input_gradient");
  {
    py::gil_scoped_release release;
    kernels::projective_transform_backward(params, transforms.data(), output_gradient.data(),
                                           input_gradient.mutable_data());
  }
  return input_gradient;
}

// window_size defaults to the whole input, window_origins (batch, 2) to (0, 0).
ResizeParams resize_params_for(int64_t batch, int64_t height, int64_t width, int64_t channels, Pair size,
                               const std::string& interpolation, std::optional<Pair> window_size,
                               const std::optional<OriginArray>& window_origins, float fill_value) {
  ResizeParams params;
  params.batch = batch;
  params.input_height = height;
  params.input_width = width;
  params.channels = channels;
  params.output_height = size.first;
  params.output_width = size.second;
  params.window_height = window_size ? window_size->first : height;
  params.window_width = window_size ? window_size->second : width;
  params.interpolation = parse_interpolation(interpolation);
  params.fill_value = fill_value;
  validate(params);
  if (window_origins) {
    require_rank(*window_origins, 2, "window_origins");
    require_dimension(*window_origins, 0, batch, "window_origins", "batch");
    require_dimension(*window_origins, 1, 2, "window_origins", "top, left");
    for (int64_t i = 0; i < 2 * batch; ++i) {
      const int64_t origin = window_origins->data()[i];
      if (origin < -(int64_t(1) << 40) || origin > (int64_t(1) << 40)) {
        throw py::value_error("`window_origins` values must lie within +-2^40. Received: " + std::to_string(origin));
      }
    }
  }
  return params;
}

FloatArray resize(py::object images_argument, Pair size, const std::string& interpolation,
                  std::optional<Pair> window_size, py::object window_origins_argument, float fill_value) {
  const FloatArray images = float_array(images_argument, "images");
  const std::optional<OriginArray> window_origins = optional_integer_array(window_origins_argument, "window_origins");
  require_rank(images, 4, "images");
  const auto params = resize_params_for(images.shape(0), images.shape(1), images.shape(2), images.shape(3), size,
                                        interpolation, window_size, window_origins, fill_value);
  FloatArray output = new_float_array({params.batch, params.output_height, params.output_width, params.channels});
  const int64_t* origins = window_origins ? window_origins->data() : nullptr;
  {
    py::gil_scoped_release release;
    kernels::resize_forward(params, origins, images.data(), output.mutable_data());
  }
  return output;
}

FloatArray resize_backward(py::object output_gradient_argument, Pair input_size, const std::string& interpolation,
                           std::optional<Pair> window_size, py::object window_origins_argument) {
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const std::optional<OriginArray> window_origins = optional_integer_array(window_origins_argument, "window_origins");
  require_rank(output_gradient, 4, "output_gradient");
  const auto params = resize_params_for(output_gradient.shape(0), input_size.first, input_size.second,
                                        output_gradient.shape(3), {output_gradient.shape(1), output_gradient.shape(2)},
                                        interpolation, window_size, window_origins, 0.0f);
  FloatArray input_gradient = new_float_array({params.batch, params.input_height, params.input_width, params.channels});
  const int64_t* origins = window_origins ? window_origins->data() : nullptr;
  {
    py::gil_scoped_release release;
    kernels::resize_backward(params, origins, output_gradient.data(), input_gradient.mutable_data());
  }
  return input_gradient;
}

ImageParams image_params_for(const FloatArray& images, Float2 value_range) {
  require_rank(images, 4, "images");
  ImageParams params{images.shape(0), images.shape(1), images.shape(2), images.shape(3), value_range.first,
                     value_range.second};
  validate(params);
  return params;
}

FloatArray flip_images(py::object images_argument, py::object flags_argument) {
  const FloatArray images = float_array(images_argument, "images");
  const OriginArray flags = integer_array(flags_argument, "flags");
  const ImageParams params = image_params_for(images, {0.0f, 0.0f});
  require_rank(flags, 1, "flags");
  require_dimension(flags, 0, params.batch, "flags", "batch");
  for (int64_t n = 0; n < params.batch; ++n) {
    if (flags.data()[n] < 0 || flags.data()[n] > (kFlipHorizontal | kFlipVertical)) {
      throw py::value_error("`flags` values must be 0-3 (1: horizontal, 2: vertical). Received: " +
                            std::to_string(flags.data()[n]));
    }
  }
  // In range [0, 3], so the narrowing to the kernel's bytes is exact.
  const FlagArray narrow_flags = converted<FlagArray>(flags, "flags");
  FloatArray output = new_float_array_like(images, "output");
  {
    py::gil_scoped_release release;
    kernels::flip(params, narrow_flags.data(), images.data(), output.mutable_data());
  }
  return output;
}

using ColorForward = void (*)(const ImageParams&, const float*, const float*, float*);
using ColorBackward = void (*)(const ImageParams&, const float*, const float*, const float*, float*);

FloatArray color_forward(ColorForward kernel, py::object images_argument, py::object values_argument,
                         Float2 value_range, const char* name) {
  const FloatArray images = float_array(images_argument, "images");
  const FloatArray values = float_array(values_argument, name);
  const ImageParams params = image_params_for(images, value_range);
  const FloatArray per = per_sample(values, params.batch, name);
  FloatArray output = new_float_array_like(images, "output");
  {
    py::gil_scoped_release release;
    kernel(params, per.data(), images.data(), output.mutable_data());
  }
  return output;
}

FloatArray color_backward(ColorBackward kernel, py::object images_argument, py::object values_argument,
                          py::object output_gradient_argument, Float2 value_range, const char* name) {
  const FloatArray images = float_array(images_argument, "images");
  const FloatArray values = float_array(values_argument, name);
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const ImageParams params = image_params_for(images, value_range);
  const FloatArray per = per_sample(values, params.batch, name);
  if (images.request().shape != output_gradient.request().shape) {
    throw py::value_error("`output_gradient` must have the shape of `images`. Received: images.shape=" +
                          shape_text(images) + ", output_gradient.shape=" + shape_text(output_gradient));
  }
  FloatArray input_gradient = new_float_array_like(images, "input_gradient");
  {
    py::gil_scoped_release release;
    kernel(params, per.data(), images.data(), output_gradient.data(), input_gradient.mutable_data());
  }
  return input_gradient;
}

// ---- merge ops (ops/merge.h): several NHWC arrays of one batch into one ----

MergeKind merge_kind_named(const std::string& kind) {
  static const std::pair<const char*, MergeKind> kinds[] = {
      {"add", MergeKind::add},         {"subtract", MergeKind::subtract}, {"multiply", MergeKind::multiply},
      {"average", MergeKind::average}, {"maximum", MergeKind::maximum},   {"minimum", MergeKind::minimum}};
  for (const auto& [name, value] : kinds) {
    if (kind == name) return value;
  }
  throw py::value_error("merge kind must be one of add, subtract, multiply, average, maximum, minimum. "
                        "Received: kind=" + kind);
}

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

// The elementwise merge's params: Subtract takes exactly two inputs, and every dimension of every
// input equals the broadcast output's or is 1 (merge_output_shape names the shapes otherwise).
MergeParams merge_params_for(const std::string& kind, const std::vector<FloatArray>& arrays) {
  MergeParams params;
  params.kind = merge_kind_named(kind);
  if (params.kind == MergeKind::subtract && arrays.size() != 2) {
    throw py::value_error("subtract takes exactly 2 inputs. Received: " + std::to_string(arrays.size()) + " inputs");
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

FloatArray merge_forward(const std::string& kind, py::object inputs_argument, const std::string& kernels) {
  const std::vector<FloatArray> inputs = merge_inputs(inputs_argument);
  const MergeParams params = merge_params_for(kind, inputs);
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
                        const std::optional<std::vector<bool>>& needs_gradient, const std::string& kernels) {
  const std::vector<FloatArray> inputs = merge_inputs(inputs_argument);
  const FloatArray output_gradient = float_array(output_gradient_argument, "output_gradient");
  const MergeParams params = merge_params_for(kind, inputs);
  const std::vector<bool> mask = gradient_mask(needs_gradient, inputs.size());
  require_rank(output_gradient, 4, "output_gradient");
  require_dimension(output_gradient, 0, params.batch, "output_gradient", "batch");
  require_dimension(output_gradient, 1, params.output.height, "output_gradient", "output height");
  require_dimension(output_gradient, 2, params.output.width, "output_gradient", "output width");
  require_dimension(output_gradient, 3, params.output.channels, "output_gradient", "output channels");
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
    table.merge_backward(params, input_data.data(), output_gradient.data(), gradient_data.data());
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

// ---- the compiled model ----

// The converted arrays of one step (kept alive for the call) and the pointers the runtime reads.
struct StepArrays {
  std::vector<FloatArray> x;           // one per model input
  std::vector<const float*> x_data;
  std::vector<std::optional<LabelArray>> labels;          // one per model output
  std::vector<std::optional<FloatArray>> probabilities;
  std::optional<FloatArray> sample_weights;
  IndexArray indices;
  std::vector<runtime::Targets> targets;
  int64_t batch = 0;
};

void require_layer_index(const runtime::Network& network, int64_t layer_index) {
  const int64_t count = static_cast<int64_t>(network.layers().size());
  if (layer_index < 0 || layer_index >= count) {
    throw py::value_error("`layer_index` must be in [0, " + std::to_string(count) +
                          ") for this network. Received: layer_index=" + std::to_string(layer_index));
  }
}

void require_built(const runtime::Network& network, const char* method) {
  if (!network.built()) {
    throw py::value_error(std::string("the network is not built: call build(input_shape) before ") + method +
                          ". Received: a network with " + std::to_string(network.layers().size()) +
                          " layers and no input shape");
  }
}

// One array per model input, each (samples, height, width, channels) matching its input and all
// with the same number of samples. A network with several inputs takes a list or tuple of arrays.
std::vector<FloatArray> network_inputs(const runtime::Network& network, py::handle x_argument) {
  const size_t count = network.input_count();
  std::vector<py::object> items;
  if (count > 1) {
    if (!py::isinstance<py::list>(x_argument) && !py::isinstance<py::tuple>(x_argument)) {
      throw py::type_error("this network takes " + std::to_string(count) + " inputs: pass a list of " +
                           std::to_string(count) + " arrays. Received: x of type " + type_name(x_argument));
    }
    const py::sequence sequence = py::reinterpret_borrow<py::sequence>(x_argument);
    if (sequence.size() != count) {
      throw py::value_error("this network takes " + std::to_string(count) + " inputs. Received: a list of " +
                            std::to_string(sequence.size()) + " arrays");
    }
    for (size_t k = 0; k < count; ++k) items.push_back(sequence[k]);
  } else {
    items.push_back(py::reinterpret_borrow<py::object>(x_argument));
  }
  std::vector<FloatArray> result;
  for (size_t k = 0; k < count; ++k) {
    const std::string name = count > 1 ? "x[" + std::to_string(k) + "]" : std::string("x");
    FloatArray x = float_array(items[k], name.c_str());
    const SampleShape input = network.input_shapes()[k];
    require_rank(x, 4, name.c_str());
    require_dimension(x, 1, input.height, name.c_str(), "height");
    require_dimension(x, 2, input.width, name.c_str(), "width");
    require_dimension(x, 3, input.channels, name.c_str(), "channels");
    if (k > 0) require_dimension(x, 0, result[0].shape(0), name.c_str(), "samples");
    result.push_back(std::move(x));
  }
  return result;
}

// The runtime's workspace for `batch` samples (network.cpp, ensure_workspace), formed with
// overflow checks and compared with the machine's memory before the runtime allocates.
void require_workspace(const runtime::Network& network, int64_t batch) {
  const std::string what = "the workspace for a batch of " + std::to_string(batch) + " samples";
  require_allocatable(checked_multiply(batch, network.workspace_per_sample(), what), sizeof(float), what);
}

// The optimizer's slot buffers must span the parameters: configure_optimizer on an unbuilt network
// sized them for zero parameters, and an update would write past them.
void require_optimizer_ready(runtime::Network& network) {
  runtime::Optimizer& optimizer = network.optimizer();
  const runtime::OptimizerConfig& config = optimizer.config();
  const bool adam = config.kind == "adam" || config.kind == "nadam";
  const bool rmsprop = config.kind == "rmsprop";
  const size_t parameters = static_cast<size_t>(network.parameter_count());
  const std::pair<const std::vector<float>*, bool> slots[] = {
      {&optimizer.first_moment, adam || config.momentum > 0.0f},
      {&optimizer.second_moment, adam || rmsprop || config.kind == "adagrad"},
      {&optimizer.third_slot, (adam && config.amsgrad) || (rmsprop && config.centered)}};
  for (const auto& [slot, needed] : slots) {
    if (needed && slot->size() != parameters) {
      throw py::value_error("the optimizer's state does not match the network: call configure_optimizer after "
                            "build. Received: optimizer slots of " + std::to_string(slot->size()) +
                            " values for " + std::to_string(parameters) + " parameters");
    }
  }
}

// Output `output`'s targets: class labels or probability rows (exactly one of the two), checked
// against that output's size; `suffix` names the output in messages ("" for a single output).
void check_targets(runtime::Network& network, size_t output, py::handle labels_argument,
                   py::handle probabilities_argument, const std::string& suffix, int64_t samples,
                   const int64_t* index, int64_t batch, StepArrays& arrays) {
  const int64_t classes = network.output_shape(output).size();
  const std::string labels_name = "labels" + suffix, probabilities_name = "probabilities" + suffix;
  runtime::Targets& targets = arrays.targets[output];
  if (labels_argument.is_none() == probabilities_argument.is_none()) {
    throw py::value_error("pass exactly one of `" + labels_name + "` and `" + probabilities_name + "`. Received: " +
                          labels_name + "=" + (labels_argument.is_none() ? "None" : "an array") + ", " +
                          probabilities_name + "=" + (probabilities_argument.is_none() ? "None" : "an array"));
  }
  if (!labels_argument.is_none()) {
    const py::array raw = numeric_array(labels_argument, labels_name.c_str());
    if (raw.dtype().kind() != 'i' && raw.dtype().kind() != 'u') {
      throw py::type_error("`" + labels_name + "` must hold integer class indices. Received: " + labels_name +
                           ".dtype=" + std::string(py::str(raw.dtype())));
    }
    require_rank(raw, 1, labels_name.c_str());
    require_dimension(raw, 0, samples, labels_name.c_str(), "samples");
    std::optional<LabelArray>& labels = arrays.labels[output];
    if (LabelArray::check_(raw)) {
      labels = py::reinterpret_borrow<LabelArray>(raw);
    } else {
      // Narrowed to int32 only after every value is checked in 64 bits (no value wraps into range).
      const IndexArray wide = integer_array(raw, labels_name.c_str());
      for (py::ssize_t i = 0; i < wide.size(); ++i) {
        if (wide.data()[i] < 0 || wide.data()[i] >= classes) {
          throw py::value_error("Received a label value of " + std::to_string(wide.data()[i]) +
                                " which is outside the valid range of [0, " + std::to_string(classes) + ")");
        }
      }
      labels = converted<LabelArray>(wide, labels_name.c_str());
    }
    for (int64_t i = 0; i < batch; ++i) {
      const int32_t label = labels->data()[index[i]];
      if (label < 0 || label >= classes) {
        throw py::value_error("Received a label value of " + std::to_string(label) +
                              " which is outside the valid range of [0, " + std::to_string(classes) + ")");
      }
    }
    targets.labels = labels->data();
  } else {
    std::optional<FloatArray>& probabilities = arrays.probabilities[output];
    probabilities = float_array(probabilities_argument, probabilities_name.c_str());
    require_rank(*probabilities, 2, probabilities_name.c_str());
    require_dimension(*probabilities, 0, samples, probabilities_name.c_str(), "samples");
    require_dimension(*probabilities, 1, classes, probabilities_name.c_str(), "classes");
    targets.probabilities = probabilities->data();
  }
}

// Checks x against the network's inputs, indices against x, and the batch's labels or probability
// rows against each output's size. A network with several outputs takes `labels` and
// `probabilities` as lists with one entry (an array or None) per output.
StepArrays check_step(runtime::Network& network, py::handle x_argument, py::handle labels_argument,
                      py::handle probabilities_argument, py::handle indices_argument,
                      py::handle sample_weights_argument, const char* method) {
  require_built(network, method);
  StepArrays arrays;
  arrays.x = network_inputs(network, x_argument);
  arrays.x_data = data_of(arrays.x);
  arrays.indices = integer_array(indices_argument, "indices");
  require_rank(arrays.indices, 1, "indices");
  const int64_t samples = arrays.x[0].shape(0);
  const int64_t batch = arrays.indices.shape(0);
  const int64_t* index = arrays.indices.data();
  for (int64_t i = 0; i < batch; ++i) {
    if (index[i] < 0 || index[i] >= samples) {
      throw py::value_error("sample index " + std::to_string(index[i]) + " is outside [0, " +
                            std::to_string(samples) + "). Received: indices[" + std::to_string(i) +
                            "]=" + std::to_string(index[i]));
    }
  }
  arrays.batch = batch;
  const size_t outputs = network.output_count();
  arrays.labels.resize(outputs);
  arrays.probabilities.resize(outputs);
  arrays.targets.resize(outputs);
  if (outputs == 1) {
    check_targets(network, 0, labels_argument, probabilities_argument, "", samples, index, batch, arrays);
  } else {
    auto per_output = [&](py::handle argument, const char* name) {
      if (argument.is_none()) return std::vector<py::object>(outputs, py::none());
      if (!py::isinstance<py::list>(argument) && !py::isinstance<py::tuple>(argument)) {
        throw py::type_error(std::string("this network has ") + std::to_string(outputs) + " outputs: pass `" + name +
                             "` as a list with one entry (an array or None) per output. Received: " + name +
                             " of type " + type_name(argument));
      }
      const py::sequence sequence = py::reinterpret_borrow<py::sequence>(argument);
      if (sequence.size() != outputs) {
        throw py::value_error(std::string("`") + name + "` needs one entry per output (" + std::to_string(outputs) +
                              "). Received: " + std::to_string(sequence.size()) + " entries");
      }
      std::vector<py::object> items;
      for (size_t k = 0; k < outputs; ++k) items.push_back(sequence[k]);
      return items;
    };
    const std::vector<py::object> labels = per_output(labels_argument, "labels");
    const std::vector<py::object> probabilities = per_output(probabilities_argument, "probabilities");
    for (size_t k = 0; k < outputs; ++k) {
      check_targets(network, k, labels[k], probabilities[k], "[" + std::to_string(k) + "]", samples, index, batch,
                    arrays);
    }
  }
  arrays.sample_weights = optional_float_array(sample_weights_argument, "sample_weights");
  if (arrays.sample_weights) {
    require_rank(*arrays.sample_weights, 1, "sample_weights");
    require_dimension(*arrays.sample_weights, 0, samples, "sample_weights", "samples");
    for (int64_t i = 0; i < batch; ++i) {
      const float weight = arrays.sample_weights->data()[index[i]];
      if (!std::isfinite(weight)) {
        throw py::value_error("sample weights must be finite. Received: " + std::to_string(weight));
      }
    }
    for (runtime::Targets& targets : arrays.targets) targets.sample_weights = arrays.sample_weights->data();
  }
  require_workspace(network, batch);
  return arrays;
}

// Checks x against the network's inputs and runs `pass(inputs, batch, outputs)` without the GIL
// into new (batch, height, width, channels) arrays of the network's output shapes: one array for
// a single-output network, else a list. `slice` bounds the samples the runtime's workspace holds
// at once (predict runs in slices).
template <typename Pass>
py::object run_forward(runtime::Network& network, py::handle x_argument, const char* method, int64_t slice,
                       Pass&& pass) {
  require_built(network, method);
  const std::vector<FloatArray> x = network_inputs(network, x_argument);
  const int64_t batch = x[0].shape(0);
  require_workspace(network, std::min<int64_t>(batch, slice));
  std::vector<FloatArray> outputs;
  std::vector<float*> output_data;
  for (size_t k = 0; k < network.output_count(); ++k) {
    const SampleShape shape = network.output_shape(k);
    outputs.push_back(new_float_array({batch, shape.height, shape.width, shape.channels}, "the predictions"));
    output_data.push_back(outputs.back().mutable_data());
  }
  {
    py::gil_scoped_release release;
    pass(data_of(x), batch, output_data);
  }
  if (outputs.size() == 1) return outputs[0];
  py::list result;
  for (const FloatArray& output : outputs) result.append(output);
  return result;
}

// (loss_sum, correct) for a single-output network; several outputs add the per-output unweighted
// loss sums and correct counts: (loss_sum, correct, [loss sums], [correct counts]).
py::tuple step_result(const runtime::Network& network, const runtime::StepResult& result) {
  if (network.output_count() <= 1) return py::make_tuple(result.loss_sum, result.correct);
  std::vector<double> losses = result.output_loss_sums;
  std::vector<int64_t> correct = result.output_correct;
  losses.resize(network.output_count(), 0.0);
  correct.resize(network.output_count(), 0);
  return py::make_tuple(result.loss_sum, result.correct, losses, correct);
}

py::array view_of(py::object owner, float* data, const std::vector<int64_t>& shape) {
  std::vector<py::ssize_t> dimensions(shape.begin(), shape.end());
  return py::array_t<float>(dimensions, data, owner);
}

// Per layer, numpy views of the arrays of a buffer laid out like the network's parameters (the
// parameters themselves, or an optimizer slot); the arrays keep `owner` (the network) alive.
py::list layer_views(py::object owner, runtime::Network& network, float* base) {
  py::list result;
  for (const auto& layer : network.layers()) {
    py::list views;
    float* cursor = base + layer->parameter_offset;  // a node sharing weights: the owner's
    for (const auto& shape : layer->parameter_shapes()) {
      views.append(view_of(owner, cursor, shape));
      int64_t count = 1;
      for (int64_t dimension : shape) count *= dimension;
      cursor += count;
    }
    result.append(views);
  }
  return result;
}

#ifdef FASTCNN_SANITIZE
// Deliberately faulty, compiled into the sanitizer build only (CMake's FASTCNN_SANITIZE):
// scripts/sanitize.sh calls it in a child process and requires AddressSanitizer's or
// UndefinedBehaviorSanitizer's report and a failed exit, which proves that the instrumentation
// and the preloaded runtime are live before the test suite's silence is taken as a clean bill.
// The volatile operands stop the compiler from seeing the fault and folding it away.
int64_t sanitizer_canary(const std::string& kind) {
  if (kind == "heap-buffer-overflow") {
    std::vector<int32_t> values(4, 1);
    volatile std::size_t index = values.size();
    return values.data()[index];  // reads 4 bytes just past the heap block
  }
  if (kind == "signed-overflow") {
    volatile int32_t largest = std::numeric_limits<int32_t>::max();
    volatile int32_t one = 1;
    return largest + one;  // int32 overflow: undefined behaviour
  }
  throw py::value_error("`kind` must be 'heap-buffer-overflow' or 'signed-overflow'. Received: kind=" + kind);
}
#endif

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastcnn's compiled kernels and training runtime (private: use the fastcnn package)";

  m.def("kernel_set", [] { return std::string(kernels::active().name); },
        "Name of the kernel set in use: reference, generic or avx2.");
  m.def("select_kernels", [](const std::string& name) { kernels::select(name.c_str()); },
        py::arg("name"), "Switch the kernel set used by every model in this process.");
  m.def("available_kernels", [] {
    int count = 0;
    const char* const* names = kernels::available_names(&count);
    std::vector<std::string> result(names, names + count);
    return result;
  });
  m.def("measure_peak_gflops",
        [](double seconds) {
          if (!(seconds > 0.0 && seconds <= 60.0)) {
            throw py::value_error("`seconds` must be in (0, 60]. Received: seconds=" + std::to_string(seconds));
          }
          const bool avx2 = std::string(kernels::active().name) == "avx2";
          auto probe = avx2 ? &kernels::avx2::fma_peak_probe : &kernels::generic::fma_peak_probe;
          py::gil_scoped_release release;
          probe(1 << 16);  // warm up: wake the threads and the vector units
          // Grow the loop until one run lasts `seconds`, then keep the best of three such runs
          // (a run that shared a core with another process would understate the peak).
          int64_t iterations = 1 << 20;
          auto run = [&]() {
            const auto start = std::chrono::steady_clock::now();
            const double flops = probe(iterations);
            const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            return std::make_pair(flops / elapsed / 1e9, elapsed);
          };
          auto [best, elapsed] = run();
          while (elapsed < seconds && iterations < (int64_t(1) << 40)) {
            iterations *= 2;
            std::tie(best, elapsed) = run();
          }
          for (int repeat = 0; repeat < 2; ++repeat) best = std::max(best, run().first);
          return best;
        },
        py::arg("seconds") = 0.3,
        "GFLOP/s of a pure-FMA loop on all threads with the active instruction set (the machine's peak).");
  m.def("get_num_threads", &parallel::max_threads);
  m.def("set_num_threads", [](int64_t count) {
    // libgomp starts every thread asked for, and a failed pthread_create there is fatal: bound the
    // count well above any useful oversubscription of this machine's cores.
    const int64_t limit = std::max<int64_t>(1024, 8 * static_cast<int64_t>(std::thread::hardware_concurrency()));
    if (count <= 0 || count > limit) {
      throw py::value_error("thread count must be positive and at most " + std::to_string(limit) +
                            ". Received: " + std::to_string(count));
    }
    parallel::set_max_threads(static_cast<int>(count));
  }, py::arg("count"));

#ifdef FASTCNN_SANITIZE
  m.def("_sanitizer_canary", &sanitizer_canary, py::arg("kind"),
        "Sanitizer build only: commits a heap out-of-bounds read or a signed overflow on purpose.");
#endif

  py::module_ ops = m.def_submodule("ops", "Single kernels on numpy arrays (NHWC float32).");
  ops.def("conv2d_forward", &conv2d_forward, py::arg("input"), py::arg("kernel"), py::arg("bias") = py::none(),
          py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid", py::arg("dilation") = Pair{1, 1},
          py::arg("activation") = "linear", py::arg("kernels") = "active", py::arg("large_winograd_tile") = true,
          "large_winograd_tile=False: a 3x3 Winograd layer runs F(2x2, 3x3), as a training step's forward pass does.");
  ops.def("conv2d_backward_input", &conv2d_backward_input, py::arg("output_gradient"), py::arg("kernel"),
          py::arg("input_shape"), py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid",
          py::arg("dilation") = Pair{1, 1}, py::arg("kernels") = "active");
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
          py::arg("strides"), py::arg("padding") = "valid", py::arg("kernels") = "active");
  ops.def("max_pool2d_backward", &max_pool2d_backward, py::arg("input"), py::arg("output_gradient"),
          py::arg("pool_size"), py::arg("strides"), py::arg("padding") = "valid", py::arg("kernels") = "active",
          py::arg("relu_input") = false);
  ops.def("conv2d_max_pool2d_forward", &conv2d_max_pool2d_forward, py::arg("input"), py::arg("kernel"),
          py::arg("bias") = py::none(), py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid",
          py::arg("dilation") = Pair{1, 1}, py::arg("activation") = "relu", py::arg("pool_size") = Pair{2, 2},
          py::arg("kernels") = "active",
          "Conv2D then MaxPooling2D (strides = pool_size, 'valid') in one pass: (pooled output, each "
          "output's window position of its maximum as uint8).");
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
          py::arg("kernels") = "active");
  ops.def("batch_norm_backward", &batch_norm_backward, py::arg("input"), py::arg("mean"), py::arg("variance"),
          py::arg("gamma"), py::arg("output_gradient"), py::arg("epsilon") = 1e-3f, py::arg("kernels") = "active",
          py::arg("relu_input") = false);
  ops.def("cross_entropy", &cross_entropy, py::arg("predictions"), py::arg("targets"),
          py::arg("from_logits") = false);

  ops.def("projective_transform", &projective_transform, py::arg("images"), py::arg("transforms"),
          py::arg("interpolation") = "bilinear", py::arg("fill_mode") = "reflect", py::arg("fill_value") = 0.0f,
          "TensorFlow's ImageProjectiveTransformV3 (keras.ops.image.affine_transform) on NHWC images.");
  ops.def("projective_transform_backward", &projective_transform_backward, py::arg("output_gradient"),
          py::arg("transforms"), py::arg("interpolation") = "bilinear", py::arg("fill_mode") = "reflect");
  ops.def("resize", &resize, py::arg("images"), py::arg("size"), py::arg("interpolation") = "bilinear",
          py::arg("window_size") = py::none(), py::arg("window_origins") = py::none(), py::arg("fill_value") = 0.0f,
          "tf.image.resize (half-pixel centres, no antialias) of a window of each image.");
  ops.def("resize_backward", &resize_backward, py::arg("output_gradient"), py::arg("input_size"),
          py::arg("interpolation") = "bilinear", py::arg("window_size") = py::none(),
          py::arg("window_origins") = py::none());
  ops.def("flip", &flip_images, py::arg("images"), py::arg("flags"),
          "Per-sample flips: flags 1 reverses the columns, 2 the rows, 3 both.");
  ops.def("contrast", [](py::object images, py::object factors, Float2 value_range) {
            return color_forward(&kernels::contrast_forward, images, factors, value_range, "factors");
          }, py::arg("images"), py::arg("factors"), py::arg("value_range"));
  ops.def("contrast_backward", [](py::object images, py::object factors, py::object output_gradient,
                                  Float2 value_range) {
            return color_backward(&kernels::contrast_backward, images, factors, output_gradient, value_range, "factors");
          }, py::arg("images"), py::arg("factors"), py::arg("output_gradient"), py::arg("value_range"));
  ops.def("brightness", [](py::object images, py::object deltas, Float2 value_range) {
            return color_forward(&kernels::brightness_forward, images, deltas, value_range, "deltas");
          }, py::arg("images"), py::arg("deltas"), py::arg("value_range"));
  ops.def("brightness_backward", [](py::object images, py::object deltas, py::object output_gradient,
                                    Float2 value_range) {
            return color_backward(&kernels::brightness_backward, images, deltas, output_gradient, value_range, "deltas");
          }, py::arg("images"), py::arg("deltas"), py::arg("output_gradient"), py::arg("value_range"));

  ops.def("merge_forward", &merge_forward, py::arg("kind"), py::arg("inputs"), py::arg("kernels") = "active",
          "Keras's Add, Subtract, Multiply, Average, Maximum or Minimum (kind 'add', ...) of a list of NHWC arrays "
          "of one batch, broadcast per sample where a dimension is 1.");
  ops.def("merge_backward", &merge_backward, py::arg("kind"), py::arg("inputs"), py::arg("output_gradient"),
          py::arg("needs_gradient") = py::none(), py::arg("kernels") = "active",
          "Each input's gradient (None where needs_gradient is False); a broadcast input's is summed over the "
          "positions it was broadcast to.");
  ops.def("concatenate_forward", &concatenate_forward, py::arg("inputs"), py::arg("axis"),
          py::arg("kernels") = "active", "Concatenate along sample axis 0 (height), 1 (width) or 2 (channels).");
  ops.def("concatenate_backward", &concatenate_backward, py::arg("output_gradient"), py::arg("sizes"),
          py::arg("axis"), py::arg("needs_gradient") = py::none(), py::arg("kernels") = "active",
          "output_gradient split along sample `axis` into the inputs' extents `sizes`.");

  py::class_<runtime::Network>(m, "Network")
      .def(py::init<>())
      .def("add_conv2d",
           [](runtime::Network& network, int64_t filters, Pair kernel_size, Pair strides, Pair dilation,
              const std::string& padding, bool use_bias, const std::string& activation) {
             return network.add(runtime::make_conv2d(filters, kernel_size.first, kernel_size.second, strides.first,
                                              strides.second, dilation.first, dilation.second,
                                              parse_padding(padding.c_str()), use_bias,
                                              parse_activation(activation)));
           })
      .def("add_dense",
           [](runtime::Network& network, int64_t units, bool use_bias, const std::string& activation) {
             return network.add(runtime::make_dense(units, use_bias, parse_activation(activation)));
           })
      .def("add_pool2d",
           [](runtime::Network& network, const std::string& kind, bool global, Pair pool_size, Pair strides,
              const std::string& padding) {
             if (kind != "max" && kind != "average") {
               throw py::value_error("pooling kind must be 'max' or 'average'. Received: kind=" + kind);
             }
             return network.add(runtime::make_pool2d(kind == "average", global, pool_size.first, pool_size.second,
                                              strides.first, strides.second, parse_padding(padding.c_str())));
           },
           py::arg("kind"), py::arg("global_pooling"), py::arg("pool_size") = Pair{1, 1},
           py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid")
      .def("add_reshape",
           [](runtime::Network& network, std::tuple<int64_t, int64_t, int64_t> target) {
             return network.add(runtime::make_reshape({std::get<0>(target), std::get<1>(target), std::get<2>(target)}));
           })
      .def("add_zero_padding2d",
           [](runtime::Network& network, int64_t top, int64_t bottom, int64_t left, int64_t right) {
             return network.add(runtime::make_zero_padding2d(top, bottom, left, right));
           })
      .def("add_relu",
           [](runtime::Network& network, const std::string& kind, std::optional<float> max_value,
              float negative_slope, float threshold) {
             if (max_value && !(*max_value >= 0.0f)) {
               throw py::value_error("`max_value` must be >= 0 or None. Received: max_value=" +
                                     std::to_string(*max_value));
             }
             if (!(negative_slope >= 0.0f) || !std::isfinite(negative_slope)) {
               throw py::value_error("`negative_slope` must be a finite number >= 0. Received: negative_slope=" +
                                     std::to_string(negative_slope));
             }
             if (!(threshold >= 0.0f) || !std::isfinite(threshold)) {
               throw py::value_error("`threshold` must be a finite number >= 0. Received: threshold=" +
                                     std::to_string(threshold));
             }
             return network.add(runtime::make_relu(kind, max_value ? *max_value : std::numeric_limits<float>::infinity(),
                                            negative_slope, threshold));
           })
      .def("add_rescaling", [](runtime::Network& network, float scale, float offset) {
        return network.add(runtime::make_rescaling(scale, offset));
      })
      .def("add_flatten", [](runtime::Network& network) { return network.add(runtime::make_flatten()); })
      .def("add_batch_norm",
           [](runtime::Network& network, float momentum, float epsilon, bool center, bool scale) {
             return network.add(runtime::make_batch_norm(momentum, epsilon, center, scale));
           },
           py::arg("momentum"), py::arg("epsilon"), py::arg("center"), py::arg("scale"))
      .def("add_dropout", [](runtime::Network& network, float rate, int64_t seed) {
        return network.add(runtime::make_dropout(rate, seed));
      }, py::arg("rate"), py::arg("seed") = -1)
      .def("add_activation", [](runtime::Network& network, const std::string& activation) {
        return network.add(runtime::make_activation(parse_activation(activation)));
      })
      .def("add_random_flip",
           [](runtime::Network& network, bool horizontal, bool vertical, int64_t seed) {
             return network.add(runtime::make_random_flip(horizontal, vertical, seed));
           },
           py::arg("horizontal"), py::arg("vertical"), py::arg("seed") = -1)
      .def("add_random_rotation",
           [](runtime::Network& network, float lower_degrees, float upper_degrees, const std::string& fill_mode,
              const std::string& interpolation, float fill_value, int64_t seed) {
             return network.add(runtime::make_random_rotation(lower_degrees, upper_degrees, parse_fill_mode(fill_mode),
                                                       parse_interpolation(interpolation), fill_value, seed));
           },
           py::arg("lower_degrees"), py::arg("upper_degrees"), py::arg("fill_mode"), py::arg("interpolation"),
           py::arg("fill_value"), py::arg("seed") = -1)
      .def("add_random_translation",
           [](runtime::Network& network, Float2 height, Float2 width, const std::string& fill_mode,
              const std::string& interpolation, float fill_value, int64_t seed) {
             return network.add(runtime::make_random_translation(height.first, height.second, width.first, width.second,
                                                          parse_fill_mode(fill_mode),
                                                          parse_interpolation(interpolation), fill_value, seed));
           },
           py::arg("height_range"), py::arg("width_range"), py::arg("fill_mode"), py::arg("interpolation"),
           py::arg("fill_value"), py::arg("seed") = -1)
      .def("add_random_zoom",
           [](runtime::Network& network, Float2 height_scale, std::optional<Float2> width_scale,
              const std::string& fill_mode, const std::string& interpolation, float fill_value, int64_t seed) {
             const Float2 width = width_scale.value_or(height_scale);
             return network.add(runtime::make_random_zoom(height_scale.first, height_scale.second, width_scale.has_value(),
                                                   width.first, width.second, parse_fill_mode(fill_mode),
                                                   parse_interpolation(interpolation), fill_value, seed));
           },
           py::arg("height_scale"), py::arg("width_scale"), py::arg("fill_mode"), py::arg("interpolation"),
           py::arg("fill_value"), py::arg("seed") = -1)
      .def("add_random_contrast",
           [](runtime::Network& network, Float2 factor_range, Float2 value_range, int64_t seed) {
             return network.add(runtime::make_random_contrast(factor_range.first, factor_range.second, value_range.first,
                                                       value_range.second, seed));
           },
           py::arg("factor_range"), py::arg("value_range"), py::arg("seed") = -1)
      .def("add_random_brightness",
           [](runtime::Network& network, Float2 factor_range, float scale, Float2 value_range, int64_t seed) {
             return network.add(runtime::make_random_brightness(factor_range.first, factor_range.second, scale,
                                                         value_range.first, value_range.second, seed));
           },
           py::arg("factor_range"), py::arg("scale"), py::arg("value_range"), py::arg("seed") = -1)
      .def("add_resizing",
           [](runtime::Network& network, int64_t height, int64_t width, const std::string& interpolation,
              const std::string& aspect, float fill_value) {
             runtime::AspectMode mode;
             if (aspect == "stretch") {
               mode = runtime::AspectMode::stretch;
             } else if (aspect == "crop") {
               mode = runtime::AspectMode::crop;
             } else if (aspect == "pad") {
               mode = runtime::AspectMode::pad;
             } else {
               throw py::value_error("`aspect` must be 'stretch', 'crop' or 'pad'. Received: " + aspect);
             }
             return network.add(runtime::make_resizing(height, width, parse_interpolation(interpolation), mode, fill_value));
           },
           py::arg("height"), py::arg("width"), py::arg("interpolation") = "bilinear", py::arg("aspect") = "stretch",
           py::arg("fill_value") = 0.0f)
      .def("add_center_crop", [](runtime::Network& network, int64_t height, int64_t width) {
        return network.add(runtime::make_center_crop(height, width));
      }, py::arg("height"), py::arg("width"))
      .def("add_random_crop", [](runtime::Network& network, int64_t height, int64_t width, int64_t seed) {
        return network.add(runtime::make_random_crop(height, width, seed));
      }, py::arg("height"), py::arg("width"), py::arg("seed") = -1)
      .def("add_merge",
           [](runtime::Network& network, const std::string& kind) {
             return network.add(runtime::make_merge(merge_kind_named(kind)));
           },
           py::arg("kind"))
      .def("add_concatenate",
           [](runtime::Network& network, int64_t axis) { return network.add(runtime::make_concatenate(axis)); },
           py::arg("axis"), "Concatenate along sample axis 0 (height), 1 (width) or 2 (channels).")
      .def("add_input",
           [](runtime::Network& network, std::tuple<int64_t, int64_t, int64_t> shape) {
             const auto [height, width, channels] = shape;
             return network.add_input({height, width, channels});
           },
           py::arg("shape"), "Declares the next model input (before any layer); returns its tensor id, -1 - k.")
      .def("connect", &runtime::Network::connect, py::arg("node"), py::arg("inputs"), py::arg("shares_with") = -1,
           "The node's input tensor ids (node i's output is tensor i, input k is -1 - k) and the earlier node whose "
           "weights it uses (-1: its own).")
      .def("set_outputs", &runtime::Network::set_outputs, py::arg("outputs"), "The model's output tensor ids.")
      .def("build",
           [](runtime::Network& network, std::optional<std::tuple<int64_t, int64_t, int64_t>> shape) {
             if (network.built()) throw std::logic_error("network is already built");
             if (!shape) {
               if (network.input_count() == 0) {
                 throw py::value_error("build() needs input_shape for a network without declared inputs. Received: "
                                     "input_shape=None");
               }
               network.build();
               return;
             }
             const auto [height, width, channels] = *shape;
             if (height <= 0 || width <= 0 || channels <= 0) {
               throw py::value_error("input shape dimensions must be positive. Received: input_shape=(" +
                                     std::to_string(height) + ", " + std::to_string(width) + ", " +
                                     std::to_string(channels) + ")");
             }
             checked_product({height, width, channels}, "the input shape");
             if (network.input_count() > 0) {
               throw py::value_error("this network declared its inputs: call build() without input_shape. Received: "
                                     "input_shape=(" + std::to_string(height) + ", " + std::to_string(width) + ", " +
                                     std::to_string(channels) + ")");
             }
             network.build({height, width, channels});
           },
           py::arg("input_shape") = py::none())
      .def_property_readonly("output_shape", [](runtime::Network& network) {
        require_built(network, "output_shape");  // the layers' shapes are only known once built
        const SampleShape shape = network.output_shape();
        return py::make_tuple(shape.height, shape.width, shape.channels);
      })
      .def_property_readonly("output_shapes", [](runtime::Network& network) {
        require_built(network, "output_shapes");
        py::list result;
        for (size_t k = 0; k < network.output_count(); ++k) {
          const SampleShape shape = network.output_shape(k);
          result.append(py::make_tuple(shape.height, shape.width, shape.channels));
        }
        return result;
      })
      .def_property_readonly("input_count", &runtime::Network::input_count)
      .def_property_readonly("output_count", &runtime::Network::output_count)
      .def("parameter_owner",
           [](runtime::Network& network, int64_t node) {
             require_layer_index(network, node);
             return network.parameter_owner(node);
           },
           py::arg("layer_index"))
      .def("configure_output_loss",
           [](runtime::Network& network, int64_t output, bool from_logits, float weight) {
             require_built(network, "configure_output_loss");
             network.configure_output_loss(output, from_logits, weight);
           },
           py::arg("output"), py::arg("from_logits"), py::arg("weight") = 1.0f)
      .def_property_readonly("parameter_count", &runtime::Network::parameter_count)
      // Per layer, numpy views of its parameters inside the network's buffer (no copies): the
      // arrays keep the network alive.
      .def("parameter_views",
           [](py::object self) {
             auto& network = self.cast<runtime::Network&>();
             require_built(network, "parameter_views");
             return layer_views(self, network, network.parameters());
           })
      .def("set_trainable",
           [](runtime::Network& network, int64_t layer_index, bool trainable) {
             require_layer_index(network, layer_index);
             network.set_trainable(layer_index, trainable);
           },
           py::arg("layer_index"), py::arg("trainable"))
      .def("set_trainable_flags", &runtime::Network::set_trainable_flags, py::arg("flags"),
           "Every layer's trainable flag at once (one list entry per layer).")
      .def("set_regularization",
           [](runtime::Network& network, int64_t layer_index, float kernel_l1, float kernel_l2, float bias_l1,
              float bias_l2, float activity_l1, float activity_l2) {
             require_layer_index(network, layer_index);
             const std::pair<const char*, float> factors[] = {
                 {"kernel_l1", kernel_l1}, {"kernel_l2", kernel_l2},     {"bias_l1", bias_l1},
                 {"bias_l2", bias_l2},     {"activity_l1", activity_l1}, {"activity_l2", activity_l2}};
             for (const auto& [name, factor] : factors) {
               if (!(factor >= 0.0f) || !std::isfinite(factor)) {
                 throw py::value_error(std::string("regularization factors must be finite and non-negative. Received: ") +
                                       name + "=" + std::to_string(factor));
               }
             }
             runtime::Regularization regularization;
             regularization.kernel_l1 = kernel_l1;
             regularization.kernel_l2 = kernel_l2;
             regularization.bias_l1 = bias_l1;
             regularization.bias_l2 = bias_l2;
             regularization.activity_l1 = activity_l1;
             regularization.activity_l2 = activity_l2;
             network.set_regularization(layer_index, regularization);
           },
           py::arg("layer_index"), py::arg("kernel_l1") = 0.0f, py::arg("kernel_l2") = 0.0f,
           py::arg("bias_l1") = 0.0f, py::arg("bias_l2") = 0.0f, py::arg("activity_l1") = 0.0f,
           py::arg("activity_l2") = 0.0f,
           "Keras's L1/L2 penalties on a layer's kernel, bias and output (see runtime/regularization.h).")
      .def("configure_loss", &runtime::Network::configure_loss, py::arg("from_logits"))
      .def("configure_optimizer",
           [](runtime::Network& network, const std::string& kind, float momentum, bool nesterov,
              float beta_1, float beta_2, float epsilon, bool amsgrad, float rho, bool centered,
              float initial_accumulator_value, float weight_decay, float clipnorm, float global_clipnorm,
              float clipvalue) {
             runtime::OptimizerConfig config;
             config.kind = kind;
             config.momentum = momentum;
             config.nesterov = nesterov;
             config.beta_1 = beta_1;
             config.beta_2 = beta_2;
             config.epsilon = epsilon;
             config.amsgrad = amsgrad;
             config.rho = rho;
             config.centered = centered;
             config.initial_accumulator_value = initial_accumulator_value;
             config.weight_decay = weight_decay;
             config.clipnorm = clipnorm;
             config.global_clipnorm = global_clipnorm;
             config.clipvalue = clipvalue;
             network.configure_optimizer(config);
           },
           py::arg("kind"), py::arg("momentum") = 0.0f, py::arg("nesterov") = false, py::arg("beta_1") = 0.9f,
           py::arg("beta_2") = 0.999f, py::arg("epsilon") = 1e-7f, py::arg("amsgrad") = false,
           py::arg("rho") = 0.9f, py::arg("centered") = false, py::arg("initial_accumulator_value") = 0.1f,
           py::arg("weight_decay") = 0.0f, py::arg("clipnorm") = 0.0f, py::arg("global_clipnorm") = 0.0f,
           py::arg("clipvalue") = 0.0f)
      .def_property(
          "optimizer_iterations", [](runtime::Network& network) { return network.optimizer().iterations; },
          [](runtime::Network& network, int64_t value) {
            if (value < 0) throw py::value_error("optimizer iterations must be >= 0. Received: " + std::to_string(value));
            network.optimizer().iterations = value;
          })
      // Per layer, numpy views of one optimizer slot buffer ("first_moment", "second_moment" or
      // "third_slot", flat over the parameter buffer: see runtime/optimizer.h), laid out exactly as
      // parameter_views, so a weight's slot is the view at the weight's own position. The views
      // keep the network alive but not the buffer: configure_optimizer (a recompile) replaces it,
      // so Python takes them, copies or writes, and drops them at once (never handed to users).
      .def("optimizer_slot_views",
           [](py::object self, const std::string& slot) {
             auto& network = self.cast<runtime::Network&>();
             require_built(network, "optimizer_slot_views");
             runtime::Optimizer& optimizer = network.optimizer();
             std::vector<float>* buffer = nullptr;
             if (slot == "first_moment") {
               buffer = &optimizer.first_moment;
             } else if (slot == "second_moment") {
               buffer = &optimizer.second_moment;
             } else if (slot == "third_slot") {
               buffer = &optimizer.third_slot;
             } else {
               throw py::value_error("Unknown optimizer slot '" + slot +
                                     "'; expected 'first_moment', 'second_moment' or 'third_slot'");
             }
             if (static_cast<int64_t>(buffer->size()) != network.parameter_count()) {
               throw py::value_error("The optimizer has no '" + slot + "' buffer for this network (size " +
                                     std::to_string(buffer->size()) + ", parameters " +
                                     std::to_string(network.parameter_count()) + ")");
             }
             return layer_views(self, network, buffer->data());
           },
           py::arg("slot"))
      .def_property(
          "optimizer_nadam_u_product", [](runtime::Network& network) { return network.optimizer().nadam_u_product; },
          [](runtime::Network& network, double value) {
            // A product of u_t = beta_1 * (1 - 0.5 * 0.96^(0.004 t)) factors: a nan or inf would
            // turn every later Nadam update into nan.
            if (!std::isfinite(value)) {
              throw py::value_error("`nadam_u_product` must be finite. Received: " + std::to_string(value));
            }
            network.optimizer().nadam_u_product = value;
          },
          "Nadam's running product of u_t (Keras's `u_product` variable); 1.0 before the first step.")
      .def("train_step",
           [](runtime::Network& network, py::object x, py::object labels, py::object probabilities,
              py::object indices, float learning_rate, uint64_t seed, py::object sample_weights) {
             const StepArrays arrays =
                 check_step(network, x, labels, probabilities, indices, sample_weights, "train_step");
             require_optimizer_ready(network);
             runtime::StepResult result;
             {
               py::gil_scoped_release release;
               result = network.train_step(arrays.x_data, arrays.targets, arrays.indices.data(), arrays.batch,
                                           learning_rate, seed);
             }
             return step_result(network, result);
           },
           py::arg("x"), py::arg("labels"), py::arg("probabilities"), py::arg("indices"),
           py::arg("learning_rate"), py::arg("seed"), py::arg("sample_weights") = py::none())
      // Data parallelism (fastcnn/distributed.py): train_step split around the gradient exchange.
      .def("compute_gradients",
           [](runtime::Network& network, py::object x, py::object labels, py::object probabilities,
              py::object indices, int64_t loss_batch, int64_t first_sample, uint64_t seed,
              py::object sample_weights, std::optional<py::function> on_layer_gradient) {
             const StepArrays arrays =
                 check_step(network, x, labels, probabilities, indices, sample_weights, "compute_gradients");
             if (arrays.batch > loss_batch || first_sample < 0 || first_sample > loss_batch - arrays.batch) {
               throw py::value_error("compute_gradients needs len(indices) <= loss_batch and 0 <= first_sample <= "
                                     "loss_batch - len(indices). Received: len(indices)=" +
                                     std::to_string(arrays.batch) + ", loss_batch=" + std::to_string(loss_batch) +
                                     ", first_sample=" + std::to_string(first_sample));
             }
             // The callback runs on the step's thread, which holds no GIL during the step.
             std::function<void(int64_t)> callback;
             if (on_layer_gradient) {
               callback = [&on_layer_gradient](int64_t layer_index) {
                 py::gil_scoped_acquire acquire;
                 (*on_layer_gradient)(layer_index);
               };
             }
             runtime::StepResult result;
             {
               py::gil_scoped_release release;
               result = network.compute_gradients(arrays.x_data, arrays.targets, arrays.indices.data(),
                                                  arrays.batch, loss_batch, first_sample, seed, callback);
             }
             return step_result(network, result);
           },
           py::arg("x"), py::arg("labels"), py::arg("probabilities"), py::arg("indices"), py::arg("loss_batch"),
           py::arg("first_sample"), py::arg("seed"), py::arg("sample_weights") = py::none(),
           py::arg("on_layer_gradient") = py::none(),
           "Forward and backward of this rank's samples into the gradient buffer, the loss averaged over "
           "loss_batch samples; on_layer_gradient(layer_index) is called as each layer's gradients are final. "
           "Returns (loss_sum, correct) without the weight penalties (see apply_gradients).")
      .def("apply_gradients",
           [](runtime::Network& network, float learning_rate) {
             require_built(network, "apply_gradients");
             require_optimizer_ready(network);
             py::gil_scoped_release release;
             return network.apply_gradients(learning_rate);
           },
           py::arg("learning_rate"),
           "Adds the weight penalties' gradients to the gradient buffer and applies the optimizer; returns "
           "the weight penalty.")
      // Flat numpy views of the whole parameter and gradient buffers (they keep the network alive).
      .def("flat_parameters",
           [](py::object self) {
             auto& network = self.cast<runtime::Network&>();
             require_built(network, "flat_parameters");
             return view_of(self, network.parameters(), {network.parameter_count()});
           })
      .def("flat_gradients",
           [](py::object self) {
             auto& network = self.cast<runtime::Network&>();
             require_built(network, "flat_gradients");
             return view_of(self, network.gradients(), {network.parameter_count()});
           })
      // Per layer (offset, trainable_count, count, trainable) in the flat buffers: the optimizer
      // updates [offset, offset + trainable_count) of a trainable layer; the rest of its slice
      // (BatchNormalization's moving statistics) is state the layer updates itself.
      .def("layer_parameter_ranges",
           [](runtime::Network& network) {
             // A node sharing another's weights owns none of its own: (offset, 0, 0, trainable).
             py::list result;
             for (const auto& layer : network.layers()) {
               const bool owner = network.parameter_owner(layer->index) == layer->index;
               result.append(py::make_tuple(layer->parameter_offset, owner ? layer->trainable_parameter_count() : 0,
                                            owner ? layer->parameter_count() : 0, layer->trainable));
             }
             return result;
           })
      .def("test_step",
           [](runtime::Network& network, py::object x, py::object labels, py::object probabilities,
              py::object indices, py::object sample_weights) {
             const StepArrays arrays =
                 check_step(network, x, labels, probabilities, indices, sample_weights, "test_step");
             runtime::StepResult result;
             {
               py::gil_scoped_release release;
               result = network.test_step(arrays.x_data, arrays.targets, arrays.indices.data(), arrays.batch);
             }
             return step_result(network, result);
           },
           py::arg("x"), py::arg("labels"), py::arg("probabilities"), py::arg("indices"),
           py::arg("sample_weights") = py::none())
      .def("set_max_pool_fusion", &runtime::Network::set_max_pool_fusion, py::arg("enabled"),
           "Conv2D + MaxPooling2D pairs run as one kernel (default on); off runs every layer alone.")
      .def("fused_max_pool_layers", &runtime::Network::fused_max_pool_layers,
           "Indices of the layers that compute the max pooling after them.")
      .def("set_profiling", &runtime::Network::set_profiling, py::arg("enabled"),
           "Times each phase of train_step from now on (clears earlier sums); off by default.")
      .def("profile", &runtime::Network::profile,
           "[(phase, seconds summed over the profiled train steps)], empty when profiling is off.")
      .def("forward_training",
           [](runtime::Network& network, py::object x, uint64_t seed) {
             return run_forward(network, x, "forward_training", std::numeric_limits<int64_t>::max(),
                                [&](const std::vector<const float*>& inputs, int64_t batch,
                                    const std::vector<float*>& outputs) {
                                  network.forward_training(inputs, batch, seed, outputs);
                                });
           },
           py::arg("x"), py::arg("seed"),
           "A forward pass in training mode (random layers active) without loss or update.")
      .def("forward_training_layer_outputs",
           [](runtime::Network& network, py::object x_argument, uint64_t seed) {
             require_built(network, "forward_training_layer_outputs");
             const std::vector<FloatArray> x = network_inputs(network, x_argument);
             const int64_t batch = x[0].shape(0);
             // The copies below hold batch * sum(layer outputs) floats: within the workspace bound.
             require_workspace(network, batch);
             std::vector<std::vector<float>> outputs;
             {
               py::gil_scoped_release release;
               outputs = network.forward_training_layer_outputs(data_of(x), batch, seed);
             }
             py::list result;
             for (size_t i = 0; i < outputs.size(); ++i) {
               const SampleShape shape = network.layers()[i]->output_shape;
               FloatArray array = new_float_array({batch, shape.height, shape.width, shape.channels},
                                                  "a layer's outputs");
               std::copy(outputs[i].begin(), outputs[i].end(), array.mutable_data());
               result.append(array);
             }
             return result;
           },
           py::arg("x"), py::arg("seed"),
           "Every layer's output of one training-mode forward pass (for fit's check_numerics).")
      .def("predict", [](runtime::Network& network, py::object x) {
        // predict's workspace holds 64 samples at a time (network.cpp, kPredictSlice).
        return run_forward(network, x, "predict", 64,
                           [&](const std::vector<const float*>& inputs, int64_t batch, const std::vector<float*>& outputs) {
                             network.predict(inputs, batch, outputs);
                           });
      }, py::arg("x"));
}
