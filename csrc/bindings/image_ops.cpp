// _core.ops' image preprocessing kernels (ops/image.h): projective transforms, resizing, flips,
// contrast and brightness, each with its backward pass.
#include "bindings/arrays.h"

namespace fastcnn::bindings {
namespace {

// ---- image preprocessing ops (ops/image.h) ----

using OriginArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

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

using ByteArray = py::array_t<uint8_t, py::array::c_style>;

// uint8 images (decoded files) are read as they are, each pixel converted to float32 in the
// kernel: the same values as converting the whole array first, without the float32 copy.
FloatArray resize(py::object images_argument, Pair size, const std::string& interpolation,
                  std::optional<Pair> window_size, py::object window_origins_argument, float fill_value) {
  const bool bytes = ByteArray::check_(images_argument);
  const py::array images = bytes ? py::array(py::reinterpret_borrow<ByteArray>(images_argument))
                                 : py::array(float_array(images_argument, "images"));
  const std::optional<OriginArray> window_origins = optional_integer_array(window_origins_argument, "window_origins");
  require_rank(images, 4, "images");
  const auto params = resize_params_for(images.shape(0), images.shape(1), images.shape(2), images.shape(3), size,
                                        interpolation, window_size, window_origins, fill_value);
  FloatArray output = new_float_array({params.batch, params.output_height, params.output_width, params.channels});
  const int64_t* origins = window_origins ? window_origins->data() : nullptr;
  {
    py::gil_scoped_release release;
    if (bytes) {
      kernels::resize_forward(params, origins, static_cast<const uint8_t*>(images.data()), output.mutable_data());
    } else {
      kernels::resize_forward(params, origins, static_cast<const float*>(images.data()), output.mutable_data());
    }
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


}  // namespace

void bind_image_ops(py::module_& ops) {
  ops.def("projective_transform", &projective_transform, py::arg("images"), py::arg("transforms"),
          py::arg("interpolation") = "bilinear", py::arg("fill_mode") = "reflect", py::arg("fill_value") = 0.0f,
          "TensorFlow's ImageProjectiveTransformV3 (keras.ops.image.affine_transform) on NHWC images.");
  ops.def("projective_transform_backward", &projective_transform_backward, py::arg("output_gradient"),
          py::arg("transforms"), py::arg("interpolation") = "bilinear", py::arg("fill_mode") = "reflect");
  ops.def("resize", &resize, py::arg("images"), py::arg("size"), py::arg("interpolation") = "bilinear",
          py::arg("window_size") = py::none(), py::arg("window_origins") = py::none(), py::arg("fill_value") = 0.0f,
          "tf.image.resize (half-pixel centres, no antialias) of a window of each image; float32 or uint8 images, "
          "a float32 result.");
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
}

}  // namespace fastcnn::bindings
