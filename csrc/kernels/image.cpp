// Image preprocessing / augmentation kernels: formulas in ops/image.h. Coordinates are computed in
// float32 in TensorFlow's order of operations, so results match its kernels to rounding.
#include "kernels/image.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ops/upsampling.h"
#include "parallel.h"

namespace fastcnn::kernels {
namespace {

// ---- projective transform ----

// fill_mode's map of a coordinate into [0, length - 1] (ImageProjectiveTransformV3's
// MapCoordinate). Written with trunc in float instead of casts to int64: the same values for
// every finite coordinate (the products are exact before one rounding), and no undefined
// conversion of huge ones. Non-finite coordinates never reach here.
template <FillMode Mode>
inline float map_coordinate(float coordinate, int64_t length) {
  const float size = static_cast<float>(length);
  float in = coordinate;
  if constexpr (Mode == FillMode::reflect) {
    // Reflect [abcd] to [dcba|abcd|dcba] (period 2 * length, mirrored about the edge pixels).
    if (in < 0.0f) {
      if (length <= 1) {
        in = 0.0f;
      } else {
        const float period = 2.0f * size;
        in = period * std::trunc(-in / period) + in;  // now in (-period, 0]
        in = in < -size ? in + period : -in - 1.0f;
      }
    } else if (in > size - 1.0f) {
      if (length <= 1) {
        in = 0.0f;
      } else {
        const float period = 2.0f * size;
        in -= period * std::trunc(in / period);
        if (in >= size) in = period - in - 1.0f;
      }
    }
  } else if constexpr (Mode == FillMode::wrap) {
    // Wrap [abcd] to [abcd|abcd|abcd]; TensorFlow (after scipy) divides by length - 1 here.
    if (in < 0.0f) {
      if (length <= 1) {
        in = 0.0f;
      } else {
        in += size * (std::trunc(-in / (size - 1.0f)) + 1.0f);
      }
    } else if (in > size - 1.0f) {
      if (length <= 1) {
        in = 0.0f;
      } else {
        in -= size * std::trunc(in / (size - 1.0f));
      }
    }
  } else if constexpr (Mode == FillMode::constant) {
    return in;  // points outside read fill_value
  }
  // Clamp (for reflect/wrap: 3.5 with length 4 would round to 4 in nearest interpolation).
  return std::min(std::max(in, 0.0f), size - 1.0f);
}

// Where one output pixel reads: up to 2 rows x 2 columns with weights; index -1 means outside the
// image (the read gives fill_value). all_fill: the whole pixel is fill_value.
struct Taps {
  bool all_fill = false;
  int64_t row[2] = {-1, -1}, column[2] = {-1, -1};
  float row_weight[2] = {0.0f, 0.0f}, column_weight[2] = {0.0f, 0.0f};
};

// An in-image index for a float position already rounded to an integer, else -1.
inline int64_t index_or_outside(float position, int64_t length) {
  return position >= 0.0f && position < static_cast<float>(length) ? static_cast<int64_t>(position) : -1;
}

// std::floor and std::round (halves away from zero) for |value| < 2^31, through an integer
// conversion: the same values, without the library calls a baseline x86-64 build makes for them.
inline float fast_floor(float value) {
  const float truncated = static_cast<float>(static_cast<int32_t>(value));
  return truncated > value ? truncated - 1.0f : truncated;
}
inline float fast_round(float value) {
  const float truncated = static_cast<float>(static_cast<int32_t>(value));
  const float fraction = value - truncated;  // exact
  return fraction >= 0.5f ? truncated + 1.0f : fraction <= -0.5f ? truncated - 1.0f : truncated;
}

template <FillMode Mode, Interpolation Interp>
inline Taps taps_for(const float* t, int64_t output_x, int64_t output_y, int64_t height, int64_t width) {
  Taps taps;
  const float x = static_cast<float>(output_x), y = static_cast<float>(output_y);
  const float projection = t[6] * x + t[7] * y + 1.0f;
  if (projection == 0.0f) {
    taps.all_fill = true;  // a point at infinity lies outside the image
    return taps;
  }
  float input_x = t[0] * x + t[1] * y + t[2];
  float input_y = t[3] * x + t[4] * y + t[5];
  if (projection != 1.0f) {  // (an affine transform's projection is exactly 1)
    input_x /= projection;
    input_y /= projection;
  }
  // A point beyond one pixel outside reads only fill_value in constant mode (this also keeps
  // non-finite and huge coordinates away from the integer conversions below).
  const bool far_outside = !(input_x > -2.0f && input_x < static_cast<float>(width) + 1.0f &&
                             input_y > -2.0f && input_y < static_cast<float>(height) + 1.0f);
  if (Mode == FillMode::constant ? far_outside : !(std::isfinite(input_x) && std::isfinite(input_y))) {
    taps.all_fill = true;
    return taps;
  }
  const float mapped_x = map_coordinate<Mode>(input_x, width);
  const float mapped_y = map_coordinate<Mode>(input_y, height);
  if constexpr (Interp == Interpolation::nearest) {
    taps.row[0] = index_or_outside(fast_round(mapped_y), height);
    taps.column[0] = index_or_outside(fast_round(mapped_x), width);
    taps.row_weight[0] = taps.column_weight[0] = 1.0f;
  } else {
    const float y_floor = fast_floor(mapped_y), x_floor = fast_floor(mapped_x);
    const float y_ceil = y_floor + 1.0f, x_ceil = x_floor + 1.0f;
    taps.row[0] = index_or_outside(y_floor, height);
    taps.row[1] = index_or_outside(y_ceil, height);
    taps.column[0] = index_or_outside(x_floor, width);
    taps.column[1] = index_or_outside(x_ceil, width);
    taps.row_weight[0] = y_ceil - mapped_y;
    taps.row_weight[1] = mapped_y - y_floor;
    taps.column_weight[0] = x_ceil - mapped_x;
    taps.column_weight[1] = mapped_x - x_floor;
  }
  return taps;
}

template <FillMode Mode, Interpolation Interp>
void transform_forward(const ProjectiveTransformParams& p, const float* transforms, const float* input,
                       float* output) {
  const int64_t channels = p.channels, row_size = p.width * channels;
  const int64_t image_size = p.height * row_size;
  parallel::parallel_for(p.batch * p.height, [&](int64_t task) {
    const int64_t n = task / p.height, output_y = task % p.height;
    const float* t = transforms + n * 8;
    const float* image = input + n * image_size;
    float* out = output + n * image_size + output_y * row_size;
    const float fill = p.fill_value;
    for (int64_t output_x = 0; output_x < p.width; ++output_x, out += channels) {
      const Taps taps = taps_for<Mode, Interp>(t, output_x, output_y, p.height, p.width);
      if (taps.all_fill) {
        std::fill(out, out + channels, fill);
        continue;
      }
      auto pixel = [&](int row, int column) -> const float* {
        return taps.row[row] < 0 || taps.column[column] < 0
                   ? nullptr
                   : image + taps.row[row] * row_size + taps.column[column] * channels;
      };
      if constexpr (Interp == Interpolation::nearest) {
        const float* source = pixel(0, 0);
        if (source == nullptr) {
          std::fill(out, out + channels, fill);
        } else {
          std::copy(source, source + channels, out);
        }
      } else {
        const float* p00 = pixel(0, 0);
        const float* p01 = pixel(0, 1);
        const float* p10 = pixel(1, 0);
        const float* p11 = pixel(1, 1);
        const float wx0 = taps.column_weight[0], wx1 = taps.column_weight[1];
        const float wy0 = taps.row_weight[0], wy1 = taps.row_weight[1];
        if (p00 && p01 && p10 && p11) {  // the common case: all four inside
          for (int64_t c = 0; c < channels; ++c) {
            const float top = wx0 * p00[c] + wx1 * p01[c];
            const float bottom = wx0 * p10[c] + wx1 * p11[c];
            out[c] = wy0 * top + wy1 * bottom;
          }
          continue;
        }
        for (int64_t c = 0; c < channels; ++c) {
          const float v00 = p00 ? p00[c] : fill, v01 = p01 ? p01[c] : fill;
          const float v10 = p10 ? p10[c] : fill, v11 = p11 ? p11[c] : fill;
          // TensorFlow's order: blend along x on both rows, then along y.
          const float top = wx0 * v00 + wx1 * v01;
          const float bottom = wx0 * v10 + wx1 * v11;
          out[c] = wy0 * top + wy1 * bottom;
        }
      }
    }
  });
}

template <FillMode Mode, Interpolation Interp>
void transform_backward(const ProjectiveTransformParams& p, const float* transforms,
                        const float* output_gradient, float* input_gradient) {
  const int64_t channels = p.channels, row_size = p.width * channels;
  const int64_t image_size = p.height * row_size;
  // One sample per task: the scatter adds only into that sample's gradient.
  parallel::parallel_for(p.batch, [&](int64_t n) {
    const float* t = transforms + n * 8;
    float* gradient = input_gradient + n * image_size;
    std::fill(gradient, gradient + image_size, 0.0f);
    const float* dy = output_gradient + n * image_size;
    for (int64_t output_y = 0; output_y < p.height; ++output_y) {
      for (int64_t output_x = 0; output_x < p.width; ++output_x, dy += channels) {
        const Taps taps = taps_for<Mode, Interp>(t, output_x, output_y, p.height, p.width);
        if (taps.all_fill) continue;
        const int taps_per_axis = Interp == Interpolation::nearest ? 1 : 2;
        for (int i = 0; i < taps_per_axis; ++i) {
          if (taps.row[i] < 0) continue;
          for (int j = 0; j < taps_per_axis; ++j) {
            if (taps.column[j] < 0) continue;
            const float weight = taps.row_weight[i] * taps.column_weight[j];
            float* target = gradient + taps.row[i] * row_size + taps.column[j] * channels;
            for (int64_t c = 0; c < channels; ++c) target[c] += weight * dy[c];
          }
        }
      }
    }
  });
}

// Calls Kernel<Mode, Interp>::run with the template arguments of the runtime values.
template <template <FillMode, Interpolation> class Kernel, typename... Args>
void dispatch(FillMode mode, Interpolation interpolation, Args&&... args) {
  auto with_mode = [&](auto mode_constant) {
    constexpr FillMode M = decltype(mode_constant)::value;
    if (interpolation == Interpolation::nearest) {
      Kernel<M, Interpolation::nearest>::run(args...);
    } else {
      Kernel<M, Interpolation::bilinear>::run(args...);
    }
  };
  switch (mode) {
    case FillMode::reflect: return with_mode(std::integral_constant<FillMode, FillMode::reflect>{});
    case FillMode::wrap: return with_mode(std::integral_constant<FillMode, FillMode::wrap>{});
    case FillMode::constant: return with_mode(std::integral_constant<FillMode, FillMode::constant>{});
    case FillMode::nearest: return with_mode(std::integral_constant<FillMode, FillMode::nearest>{});
  }
}

template <FillMode M, Interpolation I>
struct ForwardKernel {
  static void run(const ProjectiveTransformParams& p, const float* t, const float* x, float* y) {
    transform_forward<M, I>(p, t, x, y);
  }
};
template <FillMode M, Interpolation I>
struct BackwardKernel {
  static void run(const ProjectiveTransformParams& p, const float* t, const float* dy, float* dx) {
    transform_backward<M, I>(p, t, dy, dx);
  }
};

// ---- resize ----

// One output coordinate's source along an axis, relative to the window: rows lower and upper
// blended with weight lerp (bilinear), or lower alone (nearest).
struct AxisTap {
  int64_t lower = 0, upper = 0;
  float lerp = 0.0f;
};

std::vector<AxisTap> axis_taps(int64_t window, int64_t output, Interpolation interpolation) {
  std::vector<AxisTap> taps(static_cast<size_t>(output));
  const float scale = static_cast<float>(window) / static_cast<float>(output);
  for (int64_t i = 0; i < output; ++i) {
    AxisTap& tap = taps[static_cast<size_t>(i)];
    if (interpolation == Interpolation::nearest) {
      // Half-pixel centres: floor((i + 0.5) * scale), within [0, window - 1].
      const float in = std::floor((static_cast<float>(i) + 0.5f) * scale);
      tap.lower = tap.upper = std::max<int64_t>(0, std::min<int64_t>(static_cast<int64_t>(in), window - 1));
    } else {
      const LinearTap bilinear = half_pixel_tap(i, window, output);  // TensorFlow's, as UpSampling2D's
      tap.lower = bilinear.lower;
      tap.upper = bilinear.upper;
      tap.lerp = bilinear.lerp;
    }
  }
  return taps;
}

struct ResizeTaps {
  std::vector<AxisTap> rows, columns;
};

ResizeTaps resize_taps(const ResizeParams& p) {
  return {axis_taps(p.window_height, p.output_height, p.interpolation),
          axis_taps(p.window_width, p.output_width, p.interpolation)};
}

}  // namespace

void projective_transform_forward(const ProjectiveTransformParams& params, const float* transforms,
                                  const float* input, float* output) {
  assert(input != output);
  dispatch<ForwardKernel>(params.fill_mode, params.interpolation, params, transforms, input, output);
}

void projective_transform_backward(const ProjectiveTransformParams& params, const float* transforms,
                                   const float* output_gradient, float* input_gradient) {
  dispatch<BackwardKernel>(params.fill_mode, params.interpolation, params, transforms, output_gradient,
                           input_gradient);
}

namespace {

// One output row of a bilinear resize whose two source rows lie inside the input: no fill, no
// bounds checks. column_offsets holds each output column's (lower, upper) element offsets within
// a source row. Channels is the channel count, or 0 for a count known at run time. The
// arithmetic is tf.image.resize's compute_lerp, in the general path's order.
template <typename Input, int Channels>
void bilinear_row_inside(const Input* top_row, const Input* bottom_row, const int64_t* column_offsets,
                         const float* column_lerps, float row_lerp, int64_t output_width, int64_t runtime_channels,
                         float* out) {
  const int64_t channels = Channels > 0 ? Channels : runtime_channels;
  for (int64_t x = 0; x < output_width; ++x, out += channels) {
    const int64_t lower = column_offsets[2 * x], upper = column_offsets[2 * x + 1];
    const float lerp = column_lerps[x];
    for (int64_t c = 0; c < channels; ++c) {
      const float tl = static_cast<float>(top_row[lower + c]), tr = static_cast<float>(top_row[upper + c]);
      const float bl = static_cast<float>(bottom_row[lower + c]), br = static_cast<float>(bottom_row[upper + c]);
      const float upper_value = tl + (tr - tl) * lerp;
      const float lower_value = bl + (br - bl) * lerp;
      out[c] = upper_value + (lower_value - upper_value) * row_lerp;
    }
  }
}

template <typename Input>
void resize_forward_typed(const ResizeParams& p, const int64_t* window_origins, const Input* input, float* output) {
  const int64_t channels = p.channels, input_row = p.input_width * channels;
  const int64_t input_size = p.input_height * input_row;
  const int64_t output_row = p.output_width * channels, output_size = p.output_height * output_row;
  const bool copy = p.window_height == p.output_height && p.window_width == p.output_width;
  const ResizeTaps taps = copy ? ResizeTaps{} : resize_taps(p);
  // Column taps as element offsets within a window row, for rows that need no bounds checks.
  std::vector<int64_t> column_offsets(copy ? 0 : static_cast<size_t>(2 * p.output_width));
  std::vector<float> column_lerps(copy ? 0 : static_cast<size_t>(p.output_width));
  for (size_t x = 0; x < column_lerps.size(); ++x) {
    column_offsets[2 * x] = taps.columns[x].lower * channels;
    column_offsets[2 * x + 1] = taps.columns[x].upper * channels;
    column_lerps[x] = taps.columns[x].lerp;
  }
  parallel::parallel_for(p.batch * p.output_height, [&](int64_t task) {
    const int64_t n = task / p.output_height, y = task % p.output_height;
    const int64_t top = window_origins ? window_origins[2 * n] : 0;
    const int64_t left = window_origins ? window_origins[2 * n + 1] : 0;
    const Input* image = input + n * input_size;
    float* out = output + n * output_size + y * output_row;
    // A pixel of the window (window coordinates), or null where the window leaves the input.
    auto pixel = [&](int64_t row, int64_t column) -> const Input* {
      const int64_t r = top + row, c = left + column;
      return r < 0 || r >= p.input_height || c < 0 || c >= p.input_width ? nullptr
                                                                          : image + r * input_row + c * channels;
    };
    const float fill = p.fill_value;
    auto load = [](const Input* source, int64_t c) { return static_cast<float>(source[c]); };
    const bool columns_inside = left >= 0 && left + p.window_width <= p.input_width;
    if (copy) {  // a crop: output pixel (y, x) is window pixel (y, x)
      if (columns_inside && top + y >= 0 && top + y < p.input_height) {
        const Input* source = pixel(y, 0);
        for (int64_t i = 0; i < output_row; ++i) out[i] = load(source, i);
        return;
      }
      for (int64_t x = 0; x < p.output_width; ++x) {
        const Input* source = pixel(y, x);
        for (int64_t c = 0; c < channels; ++c) out[x * channels + c] = source ? load(source, c) : fill;
      }
      return;
    }
    const AxisTap& row = taps.rows[static_cast<size_t>(y)];
    const bool rows_inside = top + row.lower >= 0 && top + row.lower < p.input_height && top + row.upper >= 0 &&
                             top + row.upper < p.input_height;
    if (p.interpolation == Interpolation::bilinear && columns_inside && rows_inside) {
      const Input* top_row = pixel(row.lower, 0);
      const Input* bottom_row = pixel(row.upper, 0);
      const int64_t* offsets = column_offsets.data();
      const float* lerps = column_lerps.data();
      switch (channels) {
        case 1: return bilinear_row_inside<Input, 1>(top_row, bottom_row, offsets, lerps, row.lerp, p.output_width, 1, out);
        case 3: return bilinear_row_inside<Input, 3>(top_row, bottom_row, offsets, lerps, row.lerp, p.output_width, 3, out);
        case 4: return bilinear_row_inside<Input, 4>(top_row, bottom_row, offsets, lerps, row.lerp, p.output_width, 4, out);
        default:
          return bilinear_row_inside<Input, 0>(top_row, bottom_row, offsets, lerps, row.lerp, p.output_width, channels,
                                               out);
      }
    }
    for (int64_t x = 0; x < p.output_width; ++x) {
      const AxisTap& column = taps.columns[static_cast<size_t>(x)];
      float* o = out + x * channels;
      if (p.interpolation == Interpolation::nearest) {
        const Input* source = pixel(row.lower, column.lower);
        for (int64_t c = 0; c < channels; ++c) o[c] = source ? load(source, c) : fill;
        continue;
      }
      const Input* top_left = pixel(row.lower, column.lower);
      const Input* top_right = pixel(row.lower, column.upper);
      const Input* bottom_left = pixel(row.upper, column.lower);
      const Input* bottom_right = pixel(row.upper, column.upper);
      for (int64_t c = 0; c < channels; ++c) {
        const float tl = top_left ? load(top_left, c) : fill, tr = top_right ? load(top_right, c) : fill;
        const float bl = bottom_left ? load(bottom_left, c) : fill, br = bottom_right ? load(bottom_right, c) : fill;
        // tf.image.resize's compute_lerp.
        const float upper = tl + (tr - tl) * column.lerp;
        const float lower = bl + (br - bl) * column.lerp;
        o[c] = upper + (lower - upper) * row.lerp;
      }
    }
  });
}

}  // namespace

void resize_forward(const ResizeParams& p, const int64_t* window_origins, const float* input, float* output) {
  resize_forward_typed(p, window_origins, input, output);
}

void resize_forward(const ResizeParams& p, const int64_t* window_origins, const uint8_t* input, float* output) {
  resize_forward_typed(p, window_origins, input, output);
}

void resize_backward(const ResizeParams& p, const int64_t* window_origins, const float* output_gradient,
                     float* input_gradient) {
  const int64_t channels = p.channels, input_row = p.input_width * channels;
  const int64_t input_size = p.input_height * input_row;
  const int64_t output_size = p.output_height * p.output_width * channels;
  const bool copy = p.window_height == p.output_height && p.window_width == p.output_width;
  const ResizeTaps taps = copy ? ResizeTaps{} : resize_taps(p);
  parallel::parallel_for(p.batch, [&](int64_t n) {
    const int64_t top = window_origins ? window_origins[2 * n] : 0;
    const int64_t left = window_origins ? window_origins[2 * n + 1] : 0;
    float* gradient = input_gradient + n * input_size;
    std::fill(gradient, gradient + input_size, 0.0f);
    const float* dy = output_gradient + n * output_size;
    // Adds weight * dy to window pixel (row, column) when it lies inside the input.
    auto add = [&](int64_t row, int64_t column, float weight, const float* values) {
      const int64_t r = top + row, c = left + column;
      if (r < 0 || r >= p.input_height || c < 0 || c >= p.input_width) return;
      float* target = gradient + r * input_row + c * channels;
      for (int64_t k = 0; k < channels; ++k) target[k] += weight * values[k];
    };
    for (int64_t y = 0; y < p.output_height; ++y) {
      for (int64_t x = 0; x < p.output_width; ++x, dy += channels) {
        if (copy) {
          add(y, x, 1.0f, dy);
          continue;
        }
        const AxisTap& row = taps.rows[static_cast<size_t>(y)];
        const AxisTap& column = taps.columns[static_cast<size_t>(x)];
        if (p.interpolation == Interpolation::nearest) {
          add(row.lower, column.lower, 1.0f, dy);
          continue;
        }
        add(row.lower, column.lower, (1.0f - row.lerp) * (1.0f - column.lerp), dy);
        add(row.lower, column.upper, (1.0f - row.lerp) * column.lerp, dy);
        add(row.upper, column.lower, row.lerp * (1.0f - column.lerp), dy);
        add(row.upper, column.upper, row.lerp * column.lerp, dy);
      }
    }
  });
}

void flip(const ImageParams& p, const uint8_t* flags, const float* input, float* output) {
  assert(input != output);
  const int64_t channels = p.channels, row_size = p.width * channels, image_size = p.height * row_size;
  parallel::parallel_for(p.batch * p.height, [&](int64_t task) {
    const int64_t n = task / p.height, y = task % p.height;
    const bool horizontal = (flags[n] & kFlipHorizontal) != 0;
    const bool vertical = (flags[n] & kFlipVertical) != 0;
    const float* source = input + n * image_size + (vertical ? p.height - 1 - y : y) * row_size;
    float* out = output + n * image_size + y * row_size;
    if (!horizontal) {
      std::memcpy(out, source, static_cast<size_t>(row_size) * sizeof(float));
      return;
    }
    for (int64_t x = 0; x < p.width; ++x) {
      const float* pixel = source + (p.width - 1 - x) * channels;
      std::copy(pixel, pixel + channels, out + x * channels);
    }
  });
}

namespace {

// The mean of channel c of one sample, accumulated in double (one rounding to float at the end).
float channel_mean(const float* image, int64_t pixels, int64_t channels, int64_t c) {
  double sum = 0.0;
  for (int64_t i = 0; i < pixels; ++i) sum += image[i * channels + c];
  return static_cast<float>(sum / static_cast<double>(pixels));
}

// Keras clips with tf.clip_by_value: min(max(x, low), high).
inline float clip(float value, float low, float high) { return std::min(std::max(value, low), high); }
inline bool within(float value, float low, float high) { return value >= low && value <= high; }

}  // namespace

void contrast_forward(const ImageParams& p, const float* factors, const float* input, float* output) {
  const int64_t pixels = p.height * p.width, channels = p.channels, image_size = pixels * channels;
  parallel::parallel_for(p.batch, [&](int64_t n) {
    const float* image = input + n * image_size;
    float* out = output + n * image_size;
    const float factor = factors[n];
    for (int64_t c = 0; c < channels; ++c) {
      const float mean = channel_mean(image, pixels, channels, c);
      for (int64_t i = 0; i < pixels; ++i) {
        const int64_t k = i * channels + c;
        out[k] = clip((image[k] - mean) * factor + mean, p.value_low, p.value_high);
      }
    }
  });
}

void contrast_backward(const ImageParams& p, const float* factors, const float* input,
                       const float* output_gradient, float* input_gradient) {
  const int64_t pixels = p.height * p.width, channels = p.channels, image_size = pixels * channels;
  parallel::parallel_for(p.batch, [&](int64_t n) {
    const float* image = input + n * image_size;
    const float* dy = output_gradient + n * image_size;
    float* dx = input_gradient + n * image_size;
    const float factor = factors[n];
    // g = dy where the unclipped value lies in [low, high] (else 0); dx = f g + (1 - f) mean(g).
    for (int64_t c = 0; c < channels; ++c) {
      const float mean = channel_mean(image, pixels, channels, c);
      double masked_sum = 0.0;
      for (int64_t i = 0; i < pixels; ++i) {
        const int64_t k = i * channels + c;
        const float g = within((image[k] - mean) * factor + mean, p.value_low, p.value_high) ? dy[k] : 0.0f;
        dx[k] = factor * g;
        masked_sum += g;
      }
      const float shift = static_cast<float>((1.0 - factor) * masked_sum / static_cast<double>(pixels));
      for (int64_t i = 0; i < pixels; ++i) dx[i * channels + c] += shift;
    }
  });
}

void brightness_forward(const ImageParams& p, const float* deltas, const float* input, float* output) {
  const int64_t image_size = p.height * p.width * p.channels;
  parallel::parallel_for(p.batch, [&](int64_t n) {
    const float delta = deltas[n];
    const float* image = input + n * image_size;
    float* out = output + n * image_size;
    for (int64_t k = 0; k < image_size; ++k) out[k] = clip(image[k] + delta, p.value_low, p.value_high);
  });
}

void brightness_backward(const ImageParams& p, const float* deltas, const float* input,
                         const float* output_gradient, float* input_gradient) {
  const int64_t image_size = p.height * p.width * p.channels;
  parallel::parallel_for(p.batch, [&](int64_t n) {
    const float delta = deltas[n];
    const float* image = input + n * image_size;
    const float* dy = output_gradient + n * image_size;
    float* dx = input_gradient + n * image_size;
    for (int64_t k = 0; k < image_size; ++k) {
      dx[k] = within(image[k] + delta, p.value_low, p.value_high) ? dy[k] : 0.0f;
    }
  });
}

}  // namespace fastcnn::kernels
