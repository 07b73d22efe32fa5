// Image preprocessing and augmentation ops (Keras's RandomFlip, RandomRotation, RandomTranslation,
// RandomZoom, RandomCrop, RandomContrast, RandomBrightness, Resizing, CenterCrop), NHWC float32.
//
//   projective transform (TensorFlow's ImageProjectiveTransformV3, what keras.ops.image.
//     affine_transform runs): per sample a transform (a0 a1 a2 b0 b1 b2 c0 c1) maps the output
//     pixel (x, y) to the input point ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k),
//     k = c0 x + c1 y + 1 (k == 0: fill_value). fill_mode first maps that point into the image
//     (reflect / wrap as TensorFlow writes them, after scipy.ndimage; nearest clamps; constant
//     leaves it), then nearest reads round(y), round(x) and bilinear blends the pixels at
//     floor and floor + 1 on each axis; a pixel read outside the image is fill_value.
//   resize (tf.image.resize, half-pixel centres, no antialias) of a window of the input: the
//     window (top, left, window_height, window_width) may differ per sample and may reach outside
//     the input (Resizing(pad_to_aspect_ratio=True)): those pixels are fill_value. Window
//     coordinates: bilinear  in = (out + 0.5) * window / output - 0.5, rows floor(in) clamped
//     to >= 0 and ceil(in) clamped to <= window - 1, weight in - floor(in);
//     nearest  in = min(floor((out + 0.5) * window / output), window - 1).
//   flip: per sample, reverse the columns and/or the rows (its own adjoint).
//   contrast: per sample s and channel c, y = clip((x - m) f_s + m, low, high) with m the
//     channel's mean over the image.  dx = [low <= y' <= high] dy f_s + (1 - f_s) mean(mask dy),
//     y' the unclipped value (clip passes its bounds, as tf.clip_by_value's gradient).
//   brightness: y = clip(x + d_s, low, high);  dx = [low <= x + d_s <= high] dy.
// The backward passes of the spatial ops are the transposes of their gathers (a scatter of the
// same taps and weights), run one sample per task so that no two threads add to the same value.
#pragma once

#include <cstdint>
#include <string>

namespace fastcnn {

enum class FillMode { reflect, wrap, constant, nearest };
enum class Interpolation { bilinear, nearest };

// Throw std::invalid_argument naming the value received.
FillMode parse_fill_mode(const std::string& name);
Interpolation parse_interpolation(const std::string& name);

// Output has the input's size (as keras.ops.image.affine_transform).
struct ProjectiveTransformParams {
  int64_t batch = 0, height = 0, width = 0, channels = 0;
  Interpolation interpolation = Interpolation::bilinear;
  FillMode fill_mode = FillMode::reflect;
  float fill_value = 0.0f;
};

struct ResizeParams {
  int64_t batch = 0, input_height = 0, input_width = 0, channels = 0;
  int64_t output_height = 0, output_width = 0;
  int64_t window_height = 0, window_width = 0;  // the region resized, in input pixels
  Interpolation interpolation = Interpolation::bilinear;
  float fill_value = 0.0f;  // for window pixels outside the input
};

// Flip, contrast and brightness: the output has the input's shape; contrast and brightness clip
// their output to [value_low, value_high] (Keras's value_range).
struct ImageParams {
  int64_t batch = 0, height = 0, width = 0, channels = 0;
  float value_low = 0.0f, value_high = 255.0f;
};

// Per-sample flip flags.
enum FlipFlags : uint8_t { kFlipHorizontal = 1, kFlipVertical = 2 };

// Checks sizes (positive, products within int64); throw std::invalid_argument naming the values.
void validate(const ProjectiveTransformParams& params);
void validate(const ResizeParams& params);
void validate(const ImageParams& params);

}  // namespace fastcnn
