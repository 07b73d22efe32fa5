// _core.Network: the compiled model (runtime/network.h). Builder methods, the step entry points
// (their arrays checked against the network's inputs and outputs, the workspace bounded before it is
// allocated, the GIL released for the step), parameter and optimizer-slot views.
#include <cstring>

#include "bindings/arrays.h"

namespace fastcnn::bindings {
namespace {

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
// into (batch, height, width, channels) arrays of the network's output shapes: one array for a
// single-output network, else a list. The arrays are new, or `out`'s (None; for one output an
// array, else a list of one array or None per output; result_array's checks), which lets
// Model.predict have the batches written into its result directly, not copied there. `slice`
// bounds the samples the runtime's workspace holds at once (predict runs in slices).
template <typename Pass>
py::object run_forward(runtime::Network& network, py::handle x_argument, const char* method, int64_t slice,
                       Pass&& pass, py::handle out = py::none()) {
  require_built(network, method);
  const std::vector<FloatArray> x = network_inputs(network, x_argument);
  const int64_t batch = x[0].shape(0);
  require_workspace(network, std::min<int64_t>(batch, slice));
  const size_t output_count = network.output_count();
  std::vector<py::object> out_arrays(output_count, py::none());
  if (output_count == 1) {
    out_arrays[0] = py::reinterpret_borrow<py::object>(out);
  } else if (!out.is_none()) {
    if (!py::isinstance<py::list>(out) && !py::isinstance<py::tuple>(out)) {
      throw py::type_error("this network has " + std::to_string(output_count) + " outputs: pass `out` as a list "
                           "with one entry (an array or None) per output. Received: out of type " + type_name(out));
    }
    const py::sequence sequence = py::reinterpret_borrow<py::sequence>(out);
    if (sequence.size() != output_count) {
      throw py::value_error("`out` needs one entry per output (" + std::to_string(output_count) +
                            "). Received: " + std::to_string(sequence.size()) + " entries");
    }
    for (size_t k = 0; k < output_count; ++k) out_arrays[k] = sequence[k];
  }
  std::vector<const py::array*> x_arrays;
  for (const FloatArray& array : x) x_arrays.push_back(&array);
  std::vector<FloatArray> outputs;
  std::vector<float*> output_data;
  for (size_t k = 0; k < output_count; ++k) {
    const SampleShape shape = network.output_shape(k);
    const std::string name = output_count == 1 ? "out" : "out[" + std::to_string(k) + "]";
    const std::vector<py::ssize_t> output_shape{batch, shape.height, shape.width, shape.channels};
    outputs.push_back(out_arrays[k].is_none() ? new_float_array(output_shape, "the predictions")
                                              : result_array(out_arrays[k], output_shape, x_arrays, name));
    for (size_t j = 0; j < k; ++j) {
      if (shares_memory(outputs[j], outputs[k])) {
        throw py::value_error("`out[" + std::to_string(j) + "]` and `out[" + std::to_string(k) + "]` share memory");
      }
    }
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

// (loss_sum, [per-output unweighted loss sums]).
py::tuple step_result(const runtime::Network& network, const runtime::StepResult& result) {
  std::vector<double> losses = result.output_loss_sums;
  losses.resize(network.output_count(), 0.0);  // an empty step (batch 0) reports zeros
  return py::make_tuple(result.loss_sum, losses);
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

runtime::AspectMode aspect_mode_named(const std::string& aspect) {
  if (aspect == "stretch") return runtime::AspectMode::stretch;
  if (aspect == "crop") return runtime::AspectMode::crop;
  if (aspect == "pad") return runtime::AspectMode::pad;
  throw py::value_error("`aspect` must be 'stretch', 'crop' or 'pad'. Received: " + aspect);
}

}  // namespace

void bind_network(py::module_& m) {
  m.def("resize_inference_window",
        [](const std::string& kind, int64_t input_height, int64_t input_width, int64_t height, int64_t width,
           const std::string& aspect) {
          runtime::WindowKind window_kind;
          if (kind == "Resizing") {
            window_kind = runtime::WindowKind::resizing;
          } else if (kind == "CenterCrop") {
            window_kind = runtime::WindowKind::center_crop;
          } else if (kind == "RandomCrop") {
            window_kind = runtime::WindowKind::random_crop;
          } else {
            throw py::value_error("`kind` must be 'Resizing', 'CenterCrop' or 'RandomCrop'. Received: " + kind);
          }
          if (input_height <= 0 || input_width <= 0 || height <= 0 || width <= 0) {
            throw py::value_error("Image sides must be positive. Received: input " + std::to_string(input_height) +
                                  "x" + std::to_string(input_width) + ", target " + std::to_string(height) + "x" +
                                  std::to_string(width));
          }
          const runtime::Window window = runtime::inference_resize_window(window_kind, input_height, input_width, height,
                                                                          width, aspect_mode_named(aspect));
          return py::make_tuple(window.top, window.left, window.height, window.width);
        },
        py::arg("kind"), py::arg("input_height"), py::arg("input_width"), py::arg("height"), py::arg("width"),
        py::arg("aspect") = "stretch",
        "(top, left, height, width) of the input window that Resizing (by `aspect`: 'stretch', 'crop' or "
        "'pad'), CenterCrop or RandomCrop resizes to height x width in inference; it reaches outside the "
        "input where Resizing pads.");

  py::class_<runtime::Network>(m, "Network")
      .def(py::init<>())
      .def("add_conv2d",
           [](runtime::Network& network, int64_t filters, Pair kernel_size, Pair strides, Pair dilation,
              const std::string& padding, bool use_bias, const std::string& activation, int64_t groups) {
             return network.add(runtime::make_conv2d(filters, kernel_size.first, kernel_size.second, strides.first,
                                              strides.second, dilation.first, dilation.second,
                                              parse_padding(padding.c_str()), use_bias,
                                              parse_activation(activation), groups));
           },
           py::arg("filters"), py::arg("kernel_size"), py::arg("strides"), py::arg("dilation"), py::arg("padding"),
           py::arg("use_bias"), py::arg("activation"), py::arg("groups") = 1)
      .def("add_depthwise_conv2d",
           [](runtime::Network& network, int64_t depth_multiplier, Pair kernel_size, Pair strides, Pair dilation,
              const std::string& padding, bool use_bias, const std::string& activation) {
             return network.add(runtime::make_depthwise_conv2d(depth_multiplier, kernel_size.first, kernel_size.second,
                                                              strides.first, strides.second, dilation.first,
                                                              dilation.second, parse_padding(padding.c_str()),
                                                              use_bias, parse_activation(activation)));
           },
           py::arg("depth_multiplier"), py::arg("kernel_size"), py::arg("strides"), py::arg("dilation"),
           py::arg("padding"), py::arg("use_bias"), py::arg("activation"))
      .def("add_separable_conv2d",
           [](runtime::Network& network, int64_t filters, int64_t depth_multiplier, Pair kernel_size, Pair strides,
              Pair dilation, const std::string& padding, bool use_bias, const std::string& activation) {
             return network.add(runtime::make_separable_conv2d(
                 filters, depth_multiplier, kernel_size.first, kernel_size.second, strides.first, strides.second,
                 dilation.first, dilation.second, parse_padding(padding.c_str()), use_bias,
                 parse_activation(activation)));
           },
           py::arg("filters"), py::arg("depth_multiplier"), py::arg("kernel_size"), py::arg("strides"),
           py::arg("dilation"), py::arg("padding"), py::arg("use_bias"), py::arg("activation"))
      .def("add_cropping2d",
           [](runtime::Network& network, int64_t top, int64_t bottom, int64_t left, int64_t right) {
             return network.add(runtime::make_cropping2d(top, bottom, left, right));
           },
           py::arg("top"), py::arg("bottom"), py::arg("left"), py::arg("right"))
      .def("add_upsampling2d",
           [](runtime::Network& network, Pair size, const std::string& interpolation) {
             if (interpolation != "nearest" && interpolation != "bilinear") {
               throw py::value_error("UpSampling2D's `interpolation` must be 'nearest' or 'bilinear'. Received: "
                                     "interpolation=" + interpolation);
             }
             return network.add(runtime::make_upsampling2d(size.first, size.second, interpolation == "bilinear"));
           },
           py::arg("size"), py::arg("interpolation"))
      .def("add_identity", [](runtime::Network& network) { return network.add(runtime::make_identity()); })
      .def("add_channel_rescaling",
           [](runtime::Network& network, std::vector<float> scale, std::vector<float> offset) {
             return network.add(runtime::make_channel_rescaling(std::move(scale), std::move(offset)));
           },
           py::arg("scale"), py::arg("offset"),
           "Rescaling with `scale` and `offset` lists, each of one value or one per input channel.")
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
      .def("add_layer_scale", [](runtime::Network& network) { return network.add(runtime::make_layer_scale()); },
           "Keras's LayerScale: y = x * gamma with one trainable gamma per channel.")
      .def("add_flatten", [](runtime::Network& network) { return network.add(runtime::make_flatten()); })
      .def("add_batch_norm",
           [](runtime::Network& network, float momentum, float epsilon, bool center, bool scale) {
             return network.add(runtime::make_batch_norm(momentum, epsilon, center, scale));
           },
           py::arg("momentum"), py::arg("epsilon"), py::arg("center"), py::arg("scale"))
      .def("add_layer_norm",
           [](runtime::Network& network, std::tuple<bool, bool, bool> normalized_axes, float epsilon, bool has_gamma,
              bool has_beta, bool rms_scaling) {
             const auto [height, width, channels] = normalized_axes;
             return network.add(runtime::make_layer_norm(height, width, channels, epsilon, has_gamma, has_beta,
                                                         rms_scaling));
           },
           py::arg("normalized_axes"), py::arg("epsilon"), py::arg("has_gamma"), py::arg("has_beta"),
           py::arg("rms_scaling"))
      .def("add_group_norm",
           [](runtime::Network& network, int64_t groups, float epsilon, bool has_gamma, bool has_beta) {
             return network.add(runtime::make_group_norm(groups, epsilon, has_gamma, has_beta));
           },
           py::arg("groups"), py::arg("epsilon"), py::arg("has_gamma"), py::arg("has_beta"))
      .def("add_normalization",
           [](runtime::Network& network, std::tuple<bool, bool, bool> kept_axes, bool invert, std::vector<float> mean,
              std::vector<float> variance) {
             const auto [height, width, channels] = kept_axes;
             return network.add(runtime::make_normalization(height, width, channels, invert, std::move(mean),
                                                            std::move(variance)));
           },
           py::arg("kept_axes"), py::arg("invert"), py::arg("mean"), py::arg("variance"))
      .def("add_dropout", [](runtime::Network& network, float rate, int64_t seed) {
        return network.add(runtime::make_dropout(rate, seed));
      }, py::arg("rate"), py::arg("seed") = -1)
      .def("add_activation", [](runtime::Network& network, const std::string& activation) {
        return network.add(runtime::make_activation(parse_activation(activation)));
      })
      .def("add_elu", [](runtime::Network& network, float alpha) { return network.add(runtime::make_elu(alpha)); },
           py::arg("alpha"))
      .def("add_prelu",
           [](runtime::Network& network, const std::vector<int64_t>& alpha_shape, bool shared_height,
              bool shared_width, bool shared_channels) {
             return network.add(runtime::make_prelu(alpha_shape, shared_height, shared_width, shared_channels));
           },
           py::arg("alpha_shape"), py::arg("shared_height"), py::arg("shared_width"), py::arg("shared_channels"))
      .def("add_noise",
           [](runtime::Network& network, const std::string& kind, float rate, float stddev,
              std::tuple<bool, bool, bool, bool> shared, int64_t seed) {
             // kind: the Keras layer's name; its noise follows from it.
             NoiseParams params;
             if (kind == "GaussianNoise") {
               params.kind = NoiseKind::gaussian_noise;
             } else if (kind == "GaussianDropout") {
               params.kind = NoiseKind::gaussian_dropout;
             } else if (kind == "Dropout" || kind == "SpatialDropout2D") {
               params.kind = NoiseKind::broadcast_dropout;
             } else {
               throw py::value_error("noise layer kind must be Dropout, SpatialDropout2D, GaussianNoise or "
                                     "GaussianDropout. Received: kind=" + kind);
             }
             params.rate = rate;
             params.stddev = stddev;
             std::tie(params.shared_batch, params.shared_height, params.shared_width, params.shared_channels) = shared;
             return network.add(runtime::make_noise(kind, params, seed));
           },
           py::arg("kind"), py::arg("rate") = 0.0f, py::arg("stddev") = 0.0f,
           py::arg("shared") = std::make_tuple(false, false, false, false), py::arg("seed") = -1)
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
             return network.add(runtime::make_resizing(height, width, parse_interpolation(interpolation),
                                                       aspect_mode_named(aspect), fill_value));
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
           [](runtime::Network& network, int64_t output, bool from_logits, float weight, const std::string& kind,
              float huber_delta, float focal_gamma, float focal_alpha, bool apply_class_balancing) {
             require_built(network, "configure_output_loss");
             network.configure_output_loss(output, from_logits, weight, parse_loss_kind(kind.c_str()),
                                           {huber_delta, focal_gamma, focal_alpha, apply_class_balancing});
           },
           py::arg("output"), py::arg("from_logits"), py::arg("weight") = 1.0f,
           py::arg("kind") = "categorical_crossentropy", py::arg("huber_delta") = 1.0f, py::arg("focal_gamma") = 2.0f,
           py::arg("focal_alpha") = 0.25f, py::arg("apply_class_balancing") = false)
      .def_property_readonly("parameter_count", &runtime::Network::parameter_count)
      // Per layer, numpy views of its parameters inside the network's buffer (no copies): the
      // arrays keep the network alive.
      .def("parameter_views",
           [](py::object self) {
             auto& network = self.cast<runtime::Network&>();
             require_built(network, "parameter_views");
             network.parameters_changed();  // the caller may write through the views
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
              float bias_l2, float activity_l1, float activity_l2, float second_kernel_l1, float second_kernel_l2) {
             require_layer_index(network, layer_index);
             const std::pair<const char*, float> factors[] = {
                 {"kernel_l1", kernel_l1}, {"kernel_l2", kernel_l2},     {"bias_l1", bias_l1},
                 {"bias_l2", bias_l2},     {"activity_l1", activity_l1}, {"activity_l2", activity_l2},
                 {"second_kernel_l1", second_kernel_l1}, {"second_kernel_l2", second_kernel_l2}};
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
             regularization.second_kernel_l1 = second_kernel_l1;
             regularization.second_kernel_l2 = second_kernel_l2;
             network.set_regularization(layer_index, regularization);
           },
           py::arg("layer_index"), py::arg("kernel_l1") = 0.0f, py::arg("kernel_l2") = 0.0f,
           py::arg("bias_l1") = 0.0f, py::arg("bias_l2") = 0.0f, py::arg("activity_l1") = 0.0f,
           py::arg("activity_l2") = 0.0f, py::arg("second_kernel_l1") = 0.0f, py::arg("second_kernel_l2") = 0.0f,
           "Keras's L1/L2 penalties on a layer's kernel, bias and output, and on a second kernel (SeparableConv2D's "
           "pointwise kernel) (see runtime/regularization.h).")
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
           "Returns (loss_sum, [per-output loss sums]) without the weight penalties (see apply_gradients).")
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
             network.parameters_changed();  // the caller may write through the view
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
      .def("set_batch_norm_folding", &runtime::Network::set_batch_norm_folding, py::arg("enabled"),
           "Inference folds each BatchNormalization into the convolution or Dense layer before it "
           "(default on); off runs every layer alone.")
      .def("set_residual_add_fusion", &runtime::Network::set_residual_add_fusion, py::arg("enabled"),
           "Inference computes an Add reading a folded BatchNormalization (and the activation after "
           "it) in the convolution's epilogue (default on); off runs the Add alone.")
      .def("set_gradient_accumulation", &runtime::Network::set_gradient_accumulation, py::arg("enabled"),
           "Training: a convolution (groups=1) whose input other layers also read adds its input "
           "gradient to theirs in its kernel (default on); off writes it to scratch and adds it after.")
      .def("set_output_activation_fusion", &runtime::Network::set_output_activation_fusion,
           py::arg("enabled"),
           "Training passes compute the ReLU that only reads a BatchNormalization or an elementwise "
           "merge (Add, ...) in that layer's own passes (default on); off runs both layers alone.")
      .def("parameters_changed", &runtime::Network::parameters_changed,
           "Call after writing the parameters through a view: inference refolds BatchNormalization.")
      .def("fused_max_pool_layers", &runtime::Network::fused_max_pool_layers, py::arg("training") = false,
           "Indices of the layers that compute the max pooling after them: in inference, or with "
           "training=True in a training step.")
      .def_property_readonly(
          "large_winograd_tile_in_training",
          [](runtime::Network& network) {
            require_built(network, "large_winograd_tile_in_training");
            return network.large_winograd_tile_in_training();
          },
          "Whether training steps run 3x3 Winograd forward passes with F(4x4, 3x3), as inference does: in "
          "networks where no layer selects a maximum (max pooling, Maximum/Minimum); F(2x2, 3x3) otherwise.")
      .def("fusion_passes",
           [](const runtime::Network& network) {
             require_built(network, "fusion_passes");
             py::dict passes;
             for (const auto& [name, nodes] : network.fusion_passes()) passes[py::str(name)] = nodes;
             return passes;
           },
           "{pass name: [node indices it applies to]} for the plan's fusion passes.")
      .def("step_argmax_matches",
           [](runtime::Network& network) {
             require_built(network, "step_argmax_matches");
             std::vector<int64_t> matches = network.last_argmax_matches();
             matches.resize(network.output_count(), 0);  // before any step: zeros
             return matches;
           },
           "Per output, of the last train step, gradient computation or test step: the samples whose "
           "output's argmax (numpy's: the first largest, a NaN first) is the target's class (the label, "
           "or the target row's argmax).")
      .def("step_outputs",
           [](runtime::Network& network) {
             require_built(network, "step_outputs");
             py::list result;
             const std::vector<const float*> outputs = network.last_outputs();
             for (size_t k = 0; k < outputs.size(); ++k) {
               const int64_t size = network.output_shape(k).size();
               py::array_t<float> array({static_cast<py::ssize_t>(network.last_batch()), static_cast<py::ssize_t>(size)});
               if (outputs[k] != nullptr && network.last_batch() > 0) {
                 std::memcpy(array.mutable_data(), outputs[k], sizeof(float) * static_cast<size_t>(network.last_batch() * size));
               }
               result.append(array);
             }
             return result;
           },
           "Copies of the model outputs of the last train step, gradient computation or test step, "
           "(batch, output size) each.")
      .def("predict_slice",
           [](const runtime::Network& network) {
             require_built(network, "predict_slice");
             return network.predict_slice();
           },
           "Samples predict runs per slice of a large batch (Network::predict_slice).")
      .def("activations_per_sample",
           [](const runtime::Network& network) {
             require_built(network, "activations_per_sample");
             return py::dict(py::arg("training") = network.training_activations_per_sample(),
                             py::arg("inference") = network.inference_activations_per_sample());
           },
           "Floats per sample of activations a training pass and an inference pass hold.")
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
      .def("predict", [](runtime::Network& network, py::object x, py::object out) {
        // predict's workspace holds at most predict_slice() samples at a time (known once built).
        require_built(network, "predict");
        return run_forward(network, x, "predict", network.predict_slice(),
                           [&](const std::vector<const float*>& inputs, int64_t batch, const std::vector<float*>& outputs) {
                             network.predict(inputs, batch, outputs);
                           }, out);
      }, py::arg("x"), py::arg("out") = py::none(),
      "Inference on x; `out`: arrays to write the outputs into (see run_forward), else new ones.");
}

}  // namespace fastcnn::bindings
