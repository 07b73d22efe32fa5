// Int8 inference bindings (ops/quantized.h, runtime/quantized_layers.h): the three kernels on
// arrays (for the tier tests) in _core.ops, and the functions fastcnn/models/_quantization.py uses to
// quantize a built network's nodes.
#include <string>

#include "bindings/arrays.h"
#include "runtime/quantized_layers.h"

namespace fastcnn::bindings {
namespace {

using Int8Array = py::array_t<int8_t, py::array::c_style>;
using Int32Array = py::array_t<int32_t, py::array::c_style>;

// An integer argument of exactly dtype T, C-contiguous: no conversion (a float array would need a
// scale; an int16 one would wrap in int8).
template <typename T>
py::array_t<T, py::array::c_style> exact_array(py::handle value, const char* name) {
  const py::array array = numeric_array(value, name);
  if (!array.dtype().is(py::dtype::of<T>())) {
    throw py::type_error(std::string("`") + name + "` must be an " + std::string(py::str(py::dtype::of<T>())) +
                         " array. Received: " + name + ".dtype=" + std::string(py::str(array.dtype())));
  }
  return py::array_t<T, py::array::c_style>::ensure(array);
}
Int8Array int8_array(py::handle value, const char* name) { return exact_array<int8_t>(value, name); }
Int32Array int32_array(py::handle value, const char* name) { return exact_array<int32_t>(value, name); }

Int8Array quantize_int8(py::object input_argument, float scale, const std::string& kernels) {
  const FloatArray input = float_array(input_argument, "input");
  if (!(scale > 0.0f) || !std::isfinite(scale)) {
    throw py::value_error("`scale` must be positive and finite. Received: scale=" + std::to_string(scale));
  }
  const auto& table = table_named(kernels);
  Int8Array output(std::vector<py::ssize_t>(input.shape(), input.shape() + input.ndim()));
  {
    py::gil_scoped_release release;
    table.quantize_int8(input.size(), input.data(), 1.0f / scale, output.mutable_data());
  }
  return output;
}

Int32Array conv2d_int8_forward(py::object input_argument, py::object kernel_argument, Pair strides,
                               const std::string& padding, Pair dilation, const std::string& kernels) {
  const Int8Array input = int8_array(input_argument, "input");
  const Int8Array kernel = int8_array(kernel_argument, "kernel");
  require_rank(input, 4, "input");
  require_rank(kernel, 4, "kernel");
  require_dimension(kernel, 2, input.shape(3), "kernel", "input channels");
  const Conv2DParams params = make_conv2d_params(
      input.shape(0), input.shape(1), input.shape(2), input.shape(3), kernel.shape(3), kernel.shape(0),
      kernel.shape(1), strides.first, strides.second, dilation.first, dilation.second,
      parse_padding(padding.c_str()), false, Activation::linear);
  check_int8_depth(params);
  const auto& table = table_named(kernels);
  Int32Array accumulators({params.batch, params.output_height, params.output_width, params.output_channels});
  {
    py::gil_scoped_release release;
    table.conv2d_int8_forward(params, input.data(), kernel.data(), accumulators.mutable_data());
  }
  return accumulators;
}

FloatArray conv2d_int8_dequantize_forward(py::object input_argument, py::object kernel_argument,
                                          py::object column_scales_argument, py::object bias_argument, Pair strides,
                                          const std::string& padding, Pair dilation, const std::string& activation,
                                          const std::string& kernels) {
  const Int8Array input = int8_array(input_argument, "input");
  const Int8Array kernel = int8_array(kernel_argument, "kernel");
  const FloatArray column_scales = float_array(column_scales_argument, "column_scales");
  const std::optional<FloatArray> bias = optional_float_array(bias_argument, "bias");
  require_rank(input, 4, "input");
  require_rank(kernel, 4, "kernel");
  require_dimension(kernel, 2, input.shape(3), "kernel", "input channels");
  require_rank(column_scales, 1, "column_scales");
  require_dimension(column_scales, 0, kernel.shape(3), "column_scales", "output channels");
  if (bias) {
    require_rank(*bias, 1, "bias");
    require_dimension(*bias, 0, kernel.shape(3), "bias", "output channels");
  }
  const Activation fused = activation_named(activation);
  if (!is_elementwise(fused)) throw py::value_error("conv2d_int8_dequantize_forward fuses elementwise activations only");
  const Conv2DParams params = make_conv2d_params(
      input.shape(0), input.shape(1), input.shape(2), input.shape(3), kernel.shape(3), kernel.shape(0),
      kernel.shape(1), strides.first, strides.second, dilation.first, dilation.second,
      parse_padding(padding.c_str()), bias.has_value(), fused);
  check_int8_depth(params);
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array({params.batch, params.output_height, params.output_width, params.output_channels});
  {
    py::gil_scoped_release release;
    table.conv2d_int8_dequantize_forward(params, input.data(), kernel.data(), column_scales.data(),
                                         bias ? bias->data() : nullptr, output.mutable_data());
  }
  return output;
}

Int32Array depthwise_conv2d_int8_forward(py::object input_argument, py::object kernel_argument, Pair strides,
                                         const std::string& padding, Pair dilation, const std::string& kernels) {
  const Int8Array input = int8_array(input_argument, "input");
  const Int8Array kernel = int8_array(kernel_argument, "kernel");
  require_rank(input, 4, "input");
  require_rank(kernel, 4, "kernel");
  require_dimension(kernel, 2, input.shape(3), "kernel", "input channels");
  const DepthwiseConv2DParams params = make_depthwise_conv2d_params(
      input.shape(0), input.shape(1), input.shape(2), input.shape(3), kernel.shape(3), kernel.shape(0),
      kernel.shape(1), strides.first, strides.second, dilation.first, dilation.second,
      parse_padding(padding.c_str()), false, Activation::linear);
  check_int8_depth(params);
  const auto& table = table_named(kernels);
  Int32Array accumulators({params.batch, params.output_height, params.output_width, params.output_channels()});
  {
    py::gil_scoped_release release;
    table.depthwise_conv2d_int8_forward(params, input.data(), kernel.data(), accumulators.mutable_data());
  }
  return accumulators;
}

FloatArray dequantize_int32(py::object accumulators_argument, py::object column_scales_argument,
                            py::object bias_argument, const std::string& activation, const std::string& kernels) {
  const Int32Array accumulators = int32_array(accumulators_argument, "accumulators");
  const FloatArray column_scales = float_array(column_scales_argument, "column_scales");
  const std::optional<FloatArray> bias = optional_float_array(bias_argument, "bias");
  require_rank(accumulators, 2, "accumulators");
  require_rank(column_scales, 1, "column_scales");
  require_dimension(column_scales, 0, accumulators.shape(1), "column_scales", "columns");
  if (bias) {
    require_rank(*bias, 1, "bias");
    require_dimension(*bias, 0, accumulators.shape(1), "bias", "columns");
  }
  DequantizeParams params;
  params.rows = accumulators.shape(0);
  params.columns = accumulators.shape(1);
  params.activation = activation_named(activation);
  if (!is_elementwise(params.activation)) throw py::value_error("dequantize_int32 fuses elementwise activations only");
  const auto& table = table_named(kernels);
  FloatArray output = new_float_array({params.rows, params.columns});
  {
    py::gil_scoped_release release;
    table.dequantize_int32(params, accumulators.data(), column_scales.data(), bias ? bias->data() : nullptr,
                           output.mutable_data());
  }
  return output;
}

runtime::Int8Layer& int8_node(runtime::Network& network, int64_t node) {
  if (node < 0 || node >= static_cast<int64_t>(network.layers().size())) {
    throw py::index_error("node must be in [0, " + std::to_string(network.layers().size()) +
                          "). Received: " + std::to_string(node));
  }
  auto* layer = dynamic_cast<runtime::Int8Layer*>(network.layers()[static_cast<size_t>(node)].get());
  if (layer == nullptr) throw py::value_error("node " + std::to_string(node) + " is not quantized");
  return *layer;
}

}  // namespace

void bind_quantization(py::module_& m, py::module_& ops) {
  ops.def("quantize_int8", &quantize_int8, py::arg("input"), py::arg("scale"), py::arg("kernels") = "active",
          "clamp(round_half_even(input / scale), -127, 127) as int8.");
  ops.def("conv2d_int8_forward", &conv2d_int8_forward, py::arg("input"), py::arg("kernel"),
          py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid", py::arg("dilation") = Pair{1, 1},
          py::arg("kernels") = "active", "The int32 sums of an int8 convolution (no bias, no activation).");
  ops.def("conv2d_int8_dequantize_forward", &conv2d_int8_dequantize_forward, py::arg("input"), py::arg("kernel"),
          py::arg("column_scales"), py::arg("bias") = py::none(), py::arg("strides") = Pair{1, 1},
          py::arg("padding") = "valid", py::arg("dilation") = Pair{1, 1}, py::arg("activation") = "linear",
          py::arg("kernels") = "active",
          "act(conv2d_int8_forward(input, kernel) * column_scales + bias) as float32, in one kernel call.");
  ops.def("depthwise_conv2d_int8_forward", &depthwise_conv2d_int8_forward, py::arg("input"), py::arg("kernel"),
          py::arg("strides") = Pair{1, 1}, py::arg("padding") = "valid", py::arg("dilation") = Pair{1, 1},
          py::arg("kernels") = "active",
          "The int32 sums of an int8 depthwise convolution, kernel (kh, kw, channels, depth_multiplier).");
  ops.def("dequantize_int32", &dequantize_int32, py::arg("accumulators"), py::arg("column_scales"),
          py::arg("bias") = py::none(), py::arg("activation") = "linear", py::arg("kernels") = "active",
          "act(accumulators * column_scales + bias) as float32.");
  m.def("quantize_int8_node",
        [](runtime::Network& network, int64_t node, const std::string& kind, int64_t filters, Pair kernel_size,
           Pair strides, Pair dilation, const std::string& padding, bool use_bias, const std::string& activation) {
          if (!network.built()) throw py::value_error("quantize_int8_node: the network is not built");
          std::unique_ptr<runtime::Int8Layer> layer;
          if (kind == "conv2d") {
            layer = runtime::make_int8_conv2d(filters, kernel_size.first, kernel_size.second, strides.first,
                                              strides.second, dilation.first, dilation.second,
                                              parse_padding(padding.c_str()), use_bias, activation_named(activation));
          } else if (kind == "dense") {
            layer = runtime::make_int8_dense(filters, use_bias, activation_named(activation));
          } else if (kind == "depthwise") {  // filters: the depth_multiplier
            layer = runtime::make_int8_depthwise_conv2d(filters, kernel_size.first, kernel_size.second, strides.first,
                                                        strides.second, dilation.first, dilation.second,
                                                        parse_padding(padding.c_str()), use_bias,
                                                        activation_named(activation));
          } else {
            throw py::value_error("kind must be 'conv2d', 'depthwise' or 'dense'. Received: kind=" + kind);
          }
          runtime::Int8Layer& quantized = *layer;
          network.replace_layer(node, std::move(layer));
          quantized.quantize_weights(network.parameters());
        },
        py::arg("network"), py::arg("node"), py::arg("kind"), py::arg("filters"), py::arg("kernel_size"),
        py::arg("strides"), py::arg("dilation"), py::arg("padding"), py::arg("use_bias"), py::arg("activation"),
        "Replaces a built network's Conv2D, DepthwiseConv2D or Dense node with its int8 twin, calibrating until an input "
        "scale is set.");
  m.def("restore_float_node",
        [](runtime::Network& network, int64_t node, const std::string& kind, int64_t filters, Pair kernel_size,
           Pair strides, Pair dilation, const std::string& padding, bool use_bias, const std::string& activation) {
          int8_node(network, node);  // only an int8 node goes back
          if (kind == "conv2d") {
            network.replace_layer(node, runtime::make_conv2d(filters, kernel_size.first, kernel_size.second,
                                                             strides.first, strides.second, dilation.first,
                                                             dilation.second, parse_padding(padding.c_str()),
                                                             use_bias, activation_named(activation)));
          } else if (kind == "depthwise") {
            network.replace_layer(node, runtime::make_depthwise_conv2d(filters, kernel_size.first, kernel_size.second,
                                                                       strides.first, strides.second, dilation.first,
                                                                       dilation.second, parse_padding(padding.c_str()),
                                                                       use_bias, activation_named(activation)));
          } else {
            network.replace_layer(node, runtime::make_dense(filters, use_bias, activation_named(activation)));
          }
        },
        py::arg("network"), py::arg("node"), py::arg("kind"), py::arg("filters"), py::arg("kernel_size"),
        py::arg("strides"), py::arg("dilation"), py::arg("padding"), py::arg("use_bias"), py::arg("activation"),
        "Puts back the float32 layer of an int8 node (quantize_int8_node's arguments).");
  m.def("int8_node_state",
        [](runtime::Network& network, int64_t node) {
          const runtime::Int8Layer& layer = int8_node(network, node);
          return py::make_tuple(layer.calibrated_maximum(), layer.input_scale(), layer.weight_scales());
        },
        py::arg("network"), py::arg("node"), "(largest |input| seen calibrating, input scale, weight scales).");
  m.def("set_int8_input_scale",
        [](runtime::Network& network, int64_t node, float scale) { int8_node(network, node).set_input_scale(scale); },
        py::arg("network"), py::arg("node"), py::arg("scale"));
}

}  // namespace fastcnn::bindings
