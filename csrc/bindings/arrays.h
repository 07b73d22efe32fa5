// The binding files' shared part: numpy arrays converted per argument and checked (rank, sizes,
// dtype), with ValueError / TypeError messages naming the argument and what was received, and
// the registration functions of each binding file. Only csrc/bindings/ includes pybind11.
#pragma once

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

namespace fastcnn::bindings {

namespace py = pybind11;

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using LabelArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using Pair = std::pair<int64_t, int64_t>;
using Float2 = std::pair<float, float>;

// A shape as Python prints a tuple: (2, 3), (4,), ().
inline std::string shape_text(const std::vector<py::ssize_t>& shape) {
  const py::ssize_t rank = static_cast<py::ssize_t>(shape.size());
  std::ostringstream text;
  text << "(";
  for (py::ssize_t i = 0; i < rank; ++i) {
    text << shape[static_cast<size_t>(i)];
    if (rank == 1 || i + 1 < rank) text << (i + 1 < rank ? ", " : ",");
  }
  text << ")";
  return text.str();
}
inline std::string shape_text(const py::array& array) {
  return shape_text(std::vector<py::ssize_t>(array.shape(), array.shape() + array.ndim()));
}
inline std::string pair_text(const Pair& pair) {
  return "(" + std::to_string(pair.first) + ", " + std::to_string(pair.second) + ")";
}

inline void require_rank(const py::array& array, py::ssize_t rank, const char* name) {
  if (array.ndim() != rank) {
    throw py::value_error(std::string("`") + name + "` must have rank " + std::to_string(rank) +
                          ". Received: " + name + ".shape=" + shape_text(array));
  }
}

inline void require_dimension(const py::array& array, py::ssize_t axis, int64_t expected, const char* name,
                       const char* meaning) {
  if (array.shape(axis) != expected) {
    throw py::value_error(std::string("`") + name + "` axis " + std::to_string(axis) + " (" +
                          meaning + ") must be " + std::to_string(expected) + ". Received: " +
                          name + ".shape=" + shape_text(array));
  }
}

inline std::string type_name(py::handle value) { return py::str(py::type::handle_of(value).attr("__name__")); }

// Any array-like of booleans, integers or floats as an ndarray of its own dtype; None, strings,
// objects, complex numbers and ragged sequences are refused naming the argument.
inline py::array numeric_array(py::handle value, const char* name) {
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
inline Target converted(const py::array& array, const char* name) {
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
inline FloatArray float_array(py::handle value, const char* name) {
  if (FloatArray::check_(value)) return py::reinterpret_borrow<FloatArray>(value);
  return converted<FloatArray>(numeric_array(value, name), name);
}

inline std::optional<FloatArray> optional_float_array(py::handle value, const char* name) {
  if (value.is_none()) return std::nullopt;
  return float_array(value, name);
}

// A C-contiguous int64 array of an integer argument (indices, origins, flags). Floats are refused
// rather than truncated, and uint64 values beyond int64 rather than wrapped.
inline IndexArray integer_array(py::handle value, const char* name) {
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

inline std::optional<IndexArray> optional_integer_array(py::handle value, const char* name) {
  if (value.is_none()) return std::nullopt;
  return integer_array(value, name);
}

// Class labels as int64: integers, or floats that are whole numbers (as Keras's sparse losses
// accept them); a float such as 1.5 or nan is refused rather than truncated.
inline IndexArray class_indices(const py::array& array, const char* name) {
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
inline FloatArray new_float_array(std::vector<py::ssize_t> shape, const char* what = "the result") {
  int64_t count = 1;
  for (py::ssize_t dimension : shape) count = checked_multiply(count, dimension, what);
  require_allocatable(count, sizeof(float), what);
  return FloatArray(std::move(shape));
}

// Whether the two arrays' byte ranges overlap (an empty array overlaps nothing).
inline bool shares_memory(const py::array& first, const py::array& second) {
  const auto* first_begin = static_cast<const char*>(first.data());
  const auto* second_begin = static_cast<const char*>(second.data());
  return first.nbytes() > 0 && second.nbytes() > 0 && first_begin < second_begin + second.nbytes() &&
         second_begin < first_begin + first.nbytes();
}

// The result array: a new one, or `out` when given (a C-contiguous, writeable float32 array of
// exactly `shape` that shares no memory with `inputs`), so that a caller timing the kernel, or
// reusing a buffer, does not pay for a fresh allocation's page faults on every call.
// `name` is the argument's name in messages.
inline FloatArray result_array(py::handle out, const std::vector<py::ssize_t>& shape,
                               const std::vector<const py::array*>& inputs, const std::string& name = "out") {
  if (out.is_none()) return new_float_array(shape);
  if (!py::isinstance<py::array>(out)) {
    throw py::type_error("`" + name + "` must be a numpy array. Received: " + name + " of type " + type_name(out));
  }
  py::array array = py::reinterpret_borrow<py::array>(out);
  const bool fits = array.dtype().is(py::dtype::of<float>()) && (array.flags() & py::array::c_style) &&
                    array.writeable() &&
                    std::vector<py::ssize_t>(array.shape(), array.shape() + array.ndim()) == shape;
  if (!fits) {
    std::string expected = "(";
    for (size_t i = 0; i < shape.size(); ++i) expected += std::to_string(shape[i]) + (i + 1 < shape.size() ? ", " : ")");
    throw py::value_error("`" + name + "` must be a writeable C-contiguous float32 array of shape " + expected +
                          ". Received: " + name + ".shape=" + shape_text(array) + ", " + name + ".dtype=" +
                          std::string(py::str(array.dtype())));
  }
  for (const py::array* input : inputs) {
    if (shares_memory(array, *input)) throw py::value_error("`" + name + "` must not share memory with an input");
  }
  return py::reinterpret_borrow<FloatArray>(array);
}

inline FloatArray new_float_array_like(const py::array& like, const char* what) {
  return new_float_array(std::vector<py::ssize_t>(like.shape(), like.shape() + like.ndim()), what);
}

inline std::vector<const float*> data_of(const std::vector<FloatArray>& arrays) {
  std::vector<const float*> result;
  for (const FloatArray& array : arrays) result.push_back(array.data());
  return result;
}

inline const kernels::KernelTable& table_named(const std::string& name) {
  return name == "active" ? kernels::active() : kernels::by_name(name.c_str());
}

inline Activation activation_named(const std::string& name) { return parse_activation(name); }


inline Conv2DParams conv_params_for(const FloatArray& input, int64_t output_channels, Pair kernel_size,
                             Pair strides, const std::string& padding, Pair dilation,
                             bool use_bias, Activation activation) {
  require_rank(input, 4, "input");
  return make_conv2d_params(input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                            output_channels, kernel_size.first, kernel_size.second, strides.first,
                            strides.second, dilation.first, dilation.second,
                            parse_padding(padding.c_str()), use_bias, activation);
}

// Keras's merge layer names ('add', 'subtract', ...) as the runtime's kinds.
inline MergeKind merge_kind_named(const std::string& kind) {
  static const std::pair<const char*, MergeKind> kinds[] = {
      {"add", MergeKind::add},         {"subtract", MergeKind::subtract}, {"multiply", MergeKind::multiply},
      {"average", MergeKind::average}, {"maximum", MergeKind::maximum},   {"minimum", MergeKind::minimum},
      {"divide", MergeKind::divide}};
  for (const auto& [name, value] : kinds) {
    if (kind == name) return value;
  }
  throw py::value_error("merge kind must be one of add, subtract, multiply, average, maximum, minimum, divide. "
                        "Received: kind=" + kind);
}

using FlagArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// Each binding file registers its entry points.
void bind_ops(py::module_& ops);        // ops.cpp: single kernels on arrays
void bind_image_ops(py::module_& ops);  // image_ops.cpp: image preprocessing kernels
void bind_network(py::module_& m);      // network.cpp: the compiled model
void bind_quantization(py::module_& m, py::module_& ops);  // quantization.cpp: int8 inference

}  // namespace fastcnn::bindings
