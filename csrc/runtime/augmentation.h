// The image preprocessing and augmentation layers of a compiled model (Keras's RandomFlip,
// RandomRotation, RandomTranslation, RandomZoom, RandomContrast, RandomBrightness, RandomCrop,
// Resizing, CenterCrop). Random layers transform only in training steps (identity otherwise;
// RandomCrop centre-crops and resizes); they draw each sample's parameters from a counter-based
// hash of (call seed, sample), so results do not depend on the thread count. The call seed is the
// step's seed mixed with the layer index, or, when the layer has its own seed (>= 0), that seed
// and a count of the layer's training calls, as Dropout. Every layer has a backward pass (the
// transpose of its transform), so they may stand anywhere in a model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ops/image.h"
#include "runtime/layers.h"

namespace fastcnn::runtime {

// Flip each sample with probability 1/2: horizontal (columns), vertical (rows), or both at once
// (Keras 3 draws one decision per sample for "horizontal_and_vertical").
std::unique_ptr<Layer> make_random_flip(bool horizontal, bool vertical, int64_t seed);

// Angle uniform in [lower_degrees, upper_degrees], about the image centre ((w - 1) / 2, (h - 1) / 2).
std::unique_ptr<Layer> make_random_rotation(float lower_degrees, float upper_degrees, FillMode fill_mode,
                                            Interpolation interpolation, float fill_value, int64_t seed);
// Shifts uniform in [lower, upper] fractions of the height / width.
std::unique_ptr<Layer> make_random_translation(float height_lower, float height_upper, float width_lower,
                                               float width_upper, FillMode fill_mode,
                                               Interpolation interpolation, float fill_value, int64_t seed);
// Input-over-output scales uniform in [lower, upper] (1 + Keras's factors; > 1 zooms out); with
// !separate_width the width uses the height's scale.
std::unique_ptr<Layer> make_random_zoom(float height_lower, float height_upper, bool separate_width,
                                        float width_lower, float width_upper, FillMode fill_mode,
                                        Interpolation interpolation, float fill_value, int64_t seed);

// Contrast factor uniform in [lower, upper]; output clipped to [value_low, value_high].
std::unique_ptr<Layer> make_random_contrast(float lower, float upper, float value_low, float value_high,
                                            int64_t seed);
// Delta uniform in [lower, upper] times scale (Keras: factor times the value range's width).
std::unique_ptr<Layer> make_random_brightness(float lower, float upper, float scale, float value_low,
                                              float value_high, int64_t seed);

// How Resizing treats an aspect-ratio change.
enum class AspectMode { stretch, crop, pad };
std::unique_ptr<Layer> make_resizing(int64_t height, int64_t width, Interpolation interpolation,
                                     AspectMode aspect_mode, float fill_value);
std::unique_ptr<Layer> make_center_crop(int64_t height, int64_t width);
std::unique_ptr<Layer> make_random_crop(int64_t height, int64_t width, int64_t seed);

// A window of the input resized to the output size (it may reach outside the input: padding).
struct Window {
  int64_t top = 0, left = 0, height = 0, width = 0;
};
enum class WindowKind { resizing, center_crop, random_crop };
// The window of a height x width input that Resizing (by its aspect mode), CenterCrop or
// RandomCrop resizes to target_height x target_width in inference.
Window inference_resize_window(WindowKind kind, int64_t height, int64_t width, int64_t target_height,
                               int64_t target_width, AspectMode aspect_mode);

}  // namespace fastcnn::runtime
