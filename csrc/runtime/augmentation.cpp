#include "runtime/augmentation.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/image.h"
#include "ops/dropout.h"

namespace fastcnn::runtime {
namespace {

// Per-sample uniform numbers: stream k of sample n is element n * kStreams + k of the call's hash
// sequence (ops/dropout.h), independent of threads and of the other samples.
constexpr int64_t kStreams = 4;
inline float uniform(DropoutKey key, int64_t sample, int64_t stream) {
  return dropout_uniform(key, static_cast<uint64_t>(sample * kStreams + stream));
}
// Keras's random.uniform(minval, maxval): u * (maxval - minval) + minval (exactly minval when the
// bounds are equal, so a fixed factor gives a fixed transform).
inline float uniform_between(DropoutKey key, int64_t sample, int64_t stream, float lower, float upper) {
  return uniform(key, sample, stream) * (upper - lower) + lower;
}

// The seed of one training call, as Dropout's: the layer's own stream (its seed and a count of its
// training calls), or the step's seed mixed with the layer's index.
uint64_t call_seed(int64_t own_seed, uint64_t& training_calls, const StepContext& context, int64_t index) {
  return own_seed >= 0 ? static_cast<uint64_t>(own_seed) * 0x9E3779B97F4A7C15ull + training_calls++
                       : context.seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(index + 1));
}

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kMaxImageSide = int64_t(1) << 24;

void require_image(const SampleShape& input) {
  if (input.height < 1 || input.width < 1 || input.channels < 1) {
    throw std::invalid_argument("expects images (height, width, channels). Received a sample shape (" +
                                std::to_string(input.height) + ", " + std::to_string(input.width) + ", " +
                                std::to_string(input.channels) + ")");
  }
  // Sample positions are float32 and aspect ratios products of two sides: 2^24 pixels per axis
  // keeps both exact and every product within int64.
  if (input.height > kMaxImageSide || input.width > kMaxImageSide) {
    throw std::invalid_argument("takes images of up to 2^24 pixels per axis. Received a sample shape (" +
                                std::to_string(input.height) + ", " + std::to_string(input.width) + ", " +
                                std::to_string(input.channels) + ")");
  }
}

// Layers that transform only in training steps and pass their input through otherwise.
class RandomLayer : public Layer {
 public:
  explicit RandomLayer(int64_t seed) : own_seed_(seed) {}
  bool passes_input_in_inference() const override { return true; }
  SampleShape configure(const SampleShape& input) override {
    require_image(input);
    return input;
  }

  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    transformed_ = context.training;
    if (!transformed_) {
      context.kernels.activation_forward(Activation::linear, 1, batch * input_shape.size(), input, output);
      return;
    }
    draw(dropout_key(call_seed(own_seed_, training_calls_, context, index)), batch);
    transform(batch, input, output);
  }

  void backward(const StepContext& context, int64_t batch, const float* input, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient == nullptr) return;
    if (!transformed_) {
      context.kernels.activation_forward(Activation::linear, 1, batch * input_shape.size(), output_gradient,
                                         input_gradient);
      return;
    }
    transform_backward(batch, input, output_gradient, input_gradient);
  }

 protected:
  // Draws the per-sample parameters of this call (kept for the backward pass).
  virtual void draw(DropoutKey key, int64_t batch) = 0;
  virtual void transform(int64_t batch, const float* input, float* output) = 0;
  virtual void transform_backward(int64_t batch, const float* input, const float* output_gradient,
                                  float* input_gradient) = 0;
  ImageParams image_params(int64_t batch, float low = 0.0f, float high = 0.0f) const {
    return {batch, input_shape.height, input_shape.width, input_shape.channels, low, high};
  }

 private:
  int64_t own_seed_;
  uint64_t training_calls_ = 0;
  bool transformed_ = false;
};

class RandomFlipLayer final : public RandomLayer {
 public:
  RandomFlipLayer(bool horizontal, bool vertical, int64_t seed)
      : RandomLayer(seed),
        flags_(static_cast<uint8_t>((horizontal ? kFlipHorizontal : 0) | (vertical ? kFlipVertical : 0))) {
    if (flags_ == 0) throw std::invalid_argument("RandomFlip needs a horizontal or a vertical flip");
  }
  std::string kind() const override { return "RandomFlip"; }

 protected:
  void draw(DropoutKey key, int64_t batch) override {
    sample_flags_.resize(static_cast<size_t>(batch));
    // Keras: flip where uniform() <= 0.5.
    for (int64_t n = 0; n < batch; ++n) sample_flags_[n] = uniform(key, n, 0) <= 0.5f ? flags_ : 0;
  }
  void transform(int64_t batch, const float* input, float* output) override {
    kernels::flip(image_params(batch), sample_flags_.data(), input, output);
  }
  void transform_backward(int64_t batch, const float*, const float* output_gradient, float* input_gradient) override {
    kernels::flip(image_params(batch), sample_flags_.data(), output_gradient, input_gradient);
  }

 private:
  uint8_t flags_;
  std::vector<uint8_t> sample_flags_;
};

// Rotation, translation and zoom: a per-sample 3x3 matrix (Keras's convention: output point to
// input point) and one projective-transform gather.
class RandomWarpLayer : public RandomLayer {
 public:
  RandomWarpLayer(FillMode fill_mode, Interpolation interpolation, float fill_value, int64_t seed)
      : RandomLayer(seed), fill_mode_(fill_mode), interpolation_(interpolation), fill_value_(fill_value) {}

  SampleShape configure(const SampleShape& input) override {
    require_image(input);
    validate(ProjectiveTransformParams{0, input.height, input.width, input.channels, interpolation_, fill_mode_,
                                       fill_value_});
    return input;
  }

 protected:
  // The transform (a0 a1 a2 b0 b1 b2 c0 c1) of sample n.
  virtual void matrix(DropoutKey key, int64_t n, float* t) const = 0;

  void draw(DropoutKey key, int64_t batch) override {
    transforms_.resize(static_cast<size_t>(batch * 8));
    for (int64_t n = 0; n < batch; ++n) matrix(key, n, transforms_.data() + n * 8);
  }
  void transform(int64_t batch, const float* input, float* output) override {
    kernels::projective_transform_forward(params(batch), transforms_.data(), input, output);
  }
  void transform_backward(int64_t batch, const float*, const float* output_gradient, float* input_gradient) override {
    kernels::projective_transform_backward(params(batch), transforms_.data(), output_gradient, input_gradient);
  }

 private:
  ProjectiveTransformParams params(int64_t batch) const {
    return {batch, input_shape.height, input_shape.width, input_shape.channels, interpolation_, fill_mode_, fill_value_};
  }
  FillMode fill_mode_;
  Interpolation interpolation_;
  float fill_value_;
  std::vector<float> transforms_;
};

void require_ordered(float lower, float upper, const char* what) {
  if (!(lower <= upper) || !std::isfinite(lower) || !std::isfinite(upper)) {
    throw std::invalid_argument(std::string(what) + " bounds must be finite with lower <= upper. Received: (" +
                                std::to_string(lower) + ", " + std::to_string(upper) + ")");
  }
}

class RandomRotationLayer final : public RandomWarpLayer {
 public:
  RandomRotationLayer(float lower, float upper, FillMode fill_mode, Interpolation interpolation, float fill_value,
                      int64_t seed)
      : RandomWarpLayer(fill_mode, interpolation, fill_value, seed), lower_(lower), upper_(upper) {
    require_ordered(lower, upper, "RandomRotation angle");
  }
  std::string kind() const override { return "RandomRotation"; }

 protected:
  // Keras's _compute_affine_matrix with no translation, shear or scale, in its float32 order:
  // a0 = cos, a1 = -sin, a2 = cx - cx a0 - cy a1, b0 = sin, b1 = cos, b2 = cy - cx b0 - cy b1.
  void matrix(DropoutKey key, int64_t n, float* t) const override {
    const float degrees = uniform_between(key, n, 0, lower_, upper_);
    const float radians = degrees * static_cast<float>(kPi / 180.0);
    const float cx = 0.5f * (static_cast<float>(input_shape.width) - 1.0f);
    const float cy = 0.5f * (static_cast<float>(input_shape.height) - 1.0f);
    const float cos_theta = std::cos(radians), sin_theta = std::sin(radians);
    t[0] = cos_theta;
    t[1] = -sin_theta;
    t[2] = cx - cx * t[0] - cy * t[1];
    t[3] = sin_theta;
    t[4] = cos_theta;
    t[5] = cy - cx * t[3] - cy * t[4];
    t[6] = t[7] = 0.0f;
  }

 private:
  float lower_, upper_;
};

class RandomTranslationLayer final : public RandomWarpLayer {
 public:
  RandomTranslationLayer(float height_lower, float height_upper, float width_lower, float width_upper,
                         FillMode fill_mode, Interpolation interpolation, float fill_value, int64_t seed)
      : RandomWarpLayer(fill_mode, interpolation, fill_value, seed),
        height_lower_(height_lower), height_upper_(height_upper), width_lower_(width_lower), width_upper_(width_upper) {
    require_ordered(height_lower, height_upper, "RandomTranslation height_factor");
    require_ordered(width_lower, width_upper, "RandomTranslation width_factor");
  }
  std::string kind() const override { return "RandomTranslation"; }

 protected:
  // Shifts of (fraction * size) pixels; the matrix maps output (x, y) to input (x - dx, y - dy).
  void matrix(DropoutKey key, int64_t n, float* t) const override {
    const float dy = uniform_between(key, n, 0, height_lower_, height_upper_) * static_cast<float>(input_shape.height);
    const float dx = uniform_between(key, n, 1, width_lower_, width_upper_) * static_cast<float>(input_shape.width);
    const float m[8] = {1.0f, 0.0f, -dx, 0.0f, 1.0f, -dy, 0.0f, 0.0f};
    std::copy(m, m + 8, t);
  }

 private:
  float height_lower_, height_upper_, width_lower_, width_upper_;
};

class RandomZoomLayer final : public RandomWarpLayer {
 public:
  RandomZoomLayer(float height_lower, float height_upper, bool separate_width, float width_lower, float width_upper,
                  FillMode fill_mode, Interpolation interpolation, float fill_value, int64_t seed)
      : RandomWarpLayer(fill_mode, interpolation, fill_value, seed),
        height_lower_(height_lower), height_upper_(height_upper), separate_width_(separate_width),
        width_lower_(width_lower), width_upper_(width_upper) {
    require_ordered(height_lower, height_upper, "RandomZoom height scale");
    if (separate_width) require_ordered(width_lower, width_upper, "RandomZoom width scale");
  }
  std::string kind() const override { return "RandomZoom"; }

 protected:
  // Scale about the centre: x_in = zx x + (w - 1) / 2 (1 - zx), likewise y (Keras's _get_zoom_matrix).
  void matrix(DropoutKey key, int64_t n, float* t) const override {
    const float zy = uniform_between(key, n, 0, height_lower_, height_upper_);
    const float zx = separate_width_ ? uniform_between(key, n, 1, width_lower_, width_upper_) : zy;
    const float x_offset = ((static_cast<float>(input_shape.width) - 1.0f) / 2.0f) * (1.0f - zx);
    const float y_offset = ((static_cast<float>(input_shape.height) - 1.0f) / 2.0f) * (1.0f - zy);
    const float m[8] = {zx, 0.0f, x_offset, 0.0f, zy, y_offset, 0.0f, 0.0f};
    std::copy(m, m + 8, t);
  }

 private:
  float height_lower_, height_upper_;
  bool separate_width_;
  float width_lower_, width_upper_;
};

// Contrast and brightness: one number per sample, output clipped to the value range.
class RandomColorLayer final : public RandomLayer {
 public:
  RandomColorLayer(bool contrast, float lower, float upper, float scale, float value_low, float value_high,
                   int64_t seed)
      : RandomLayer(seed), contrast_(contrast), lower_(lower), upper_(upper), scale_(scale),
        value_low_(value_low), value_high_(value_high) {
    require_ordered(lower, upper, contrast ? "RandomContrast factor" : "RandomBrightness factor");
    if (!(value_low <= value_high)) {
      throw std::invalid_argument("`value_range` must be (low, high) with low <= high. Received: (" +
                                  std::to_string(value_low) + ", " + std::to_string(value_high) + ")");
    }
  }
  std::string kind() const override { return contrast_ ? "RandomContrast" : "RandomBrightness"; }

 protected:
  void draw(DropoutKey key, int64_t batch) override {
    values_.resize(static_cast<size_t>(batch));
    for (int64_t n = 0; n < batch; ++n) {
      const float value = uniform_between(key, n, 0, lower_, upper_);
      values_[n] = contrast_ ? value : value * scale_;  // brightness: delta = factor * range width
    }
  }
  void transform(int64_t batch, const float* input, float* output) override {
    if (contrast_) {
      kernels::contrast_forward(image_params(batch, value_low_, value_high_), values_.data(), input, output);
    } else {
      kernels::brightness_forward(image_params(batch, value_low_, value_high_), values_.data(), input, output);
    }
  }
  void transform_backward(int64_t batch, const float* input, const float* output_gradient,
                          float* input_gradient) override {
    const ImageParams params = image_params(batch, value_low_, value_high_);
    if (contrast_) {
      kernels::contrast_backward(params, values_.data(), input, output_gradient, input_gradient);
    } else {
      kernels::brightness_backward(params, values_.data(), input, output_gradient, input_gradient);
    }
  }

 private:
  bool contrast_;
  float lower_, upper_, scale_, value_low_, value_high_;
  std::vector<float> values_;
};

// The largest centred window with the target's aspect ratio (keras.utils.smart_resize and
// Resizing(crop_to_aspect_ratio=True)); float32_math: TensorFlow's float32 arithmetic (Resizing)
// rather than Python's double (smart_resize, CenterCrop, RandomCrop).
Window aspect_crop_window(int64_t height, int64_t width, int64_t target_height, int64_t target_width,
                          bool float32_math) {
  auto ratio = [float32_math](int64_t numerator, int64_t denominator) -> int64_t {
    return float32_math ? static_cast<int64_t>(static_cast<float>(numerator) / static_cast<float>(denominator))
                        : static_cast<int64_t>(static_cast<double>(numerator) / static_cast<double>(denominator));
  };
  Window window;
  window.height = std::max<int64_t>(std::min(height, ratio(width * target_height, target_width)), 1);
  window.width = std::max<int64_t>(std::min(width, ratio(height * target_width, target_height)), 1);
  window.top = (height - window.height) / 2;
  window.left = (width - window.width) / 2;
  return window;
}

// Resizing(pad_to_aspect_ratio=True): pad the short side evenly with fill_value (the same number
// of rows or columns on both sides, as Keras's TensorFlow backend), then resize.
Window aspect_pad_window(int64_t height, int64_t width, int64_t target_height, int64_t target_width) {
  const int64_t pad_height = std::max(
      height, static_cast<int64_t>(static_cast<float>(width * target_height) / static_cast<float>(target_width)));
  const int64_t pad_width = std::max(
      width, static_cast<int64_t>(static_cast<float>(height * target_width) / static_cast<float>(target_height)));
  const int64_t top = (pad_height - height) / 2, left = (pad_width - width) / 2;
  return {-top, -left, height + 2 * top, width + 2 * left};
}

// Resizing, CenterCrop and RandomCrop: they change the image size, and always run (RandomCrop's
// window is random only in training).
class WindowResizeLayer final : public Layer {
 public:
  WindowResizeLayer(WindowKind kind, int64_t height, int64_t width, Interpolation interpolation,
                    AspectMode aspect_mode, float fill_value, int64_t seed)
      : kind_(kind), height_(height), width_(width), interpolation_(interpolation), aspect_mode_(aspect_mode),
        fill_value_(fill_value), own_seed_(seed) {
    if (height <= 0 || width <= 0 || height > kMaxImageSide || width > kMaxImageSide) {
      throw std::invalid_argument("`height` and `width` must be positive integers of at most 2^24. Received: height=" +
                                  std::to_string(height) + ", width=" + std::to_string(width));
    }
  }
  std::string kind() const override {
    switch (kind_) {
      case WindowKind::resizing: return "Resizing";
      case WindowKind::center_crop: return "CenterCrop";
      case WindowKind::random_crop: return "RandomCrop";
    }
    return "Resizing";
  }

  SampleShape configure(const SampleShape& input) override {
    require_image(input);
    const int64_t h = input.height, w = input.width;
    inference_window_ = inference_resize_window(kind_, h, w, height_, width_, aspect_mode_);
    if (kind_ == WindowKind::random_crop) {
      // Training on an input not larger than the target on both axes (Keras 3.15): the slice of
      // the target's size from the smart_resize window's corner, resized to the target.
      const Window corner = inference_window_;
      training_window_ = {corner.top, corner.left, std::min(height_, h - corner.top), std::min(width_, w - corner.left)};
    }
    validate(params(0, inference_window_));
    return {height_, width_, input.channels};
  }

  void forward(const StepContext& context, int64_t batch, const float* input, float*, float* output) override {
    Window window = inference_window_;
    const int64_t* origins = nullptr;
    if (kind_ == WindowKind::random_crop && context.training) {
      const int64_t h = input_shape.height, w = input_shape.width;
      if (h > height_ && w > width_) {
        // One random window of the target size per sample (Keras 3.15 draws one per batch).
        const DropoutKey key = dropout_key(call_seed(own_seed_, training_calls_, context, index));
        origins_.resize(static_cast<size_t>(2 * batch));
        for (int64_t n = 0; n < batch; ++n) {
          // Keras: int(uniform(0, size - target + 1)), uniform over {0, ..., size - target}.
          const int64_t rows = h - height_ + 1, columns = w - width_ + 1;
          origins_[2 * n] = std::min(rows - 1, static_cast<int64_t>(uniform(key, n, 0) * static_cast<float>(rows)));
          origins_[2 * n + 1] =
              std::min(columns - 1, static_cast<int64_t>(uniform(key, n, 1) * static_cast<float>(columns)));
        }
        window = {0, 0, height_, width_};
        origins = origins_.data();
      } else {
        window = training_window_;
      }
    }
    last_window_ = window;
    last_origins_ = origins;
    kernels::resize_forward(params(batch, window), origins ? origins : fixed_origin(batch, window), input, output);
  }

  void backward(const StepContext&, int64_t batch, const float*, const float*, const float*,
                float* output_gradient, bool, float* input_gradient) override {
    if (input_gradient == nullptr) return;
    kernels::resize_backward(params(batch, last_window_),
                             last_origins_ ? last_origins_ : fixed_origin(batch, last_window_), output_gradient,
                             input_gradient);
  }

 private:
  ResizeParams params(int64_t batch, const Window& window) const {
    ResizeParams p;
    p.batch = batch;
    p.input_height = input_shape.height;
    p.input_width = input_shape.width;
    p.channels = input_shape.channels;
    p.output_height = height_;
    p.output_width = width_;
    p.window_height = window.height;
    p.window_width = window.width;
    p.interpolation = interpolation_;
    p.fill_value = fill_value_;
    return p;
  }
  // The same window origin for every sample of the batch.
  const int64_t* fixed_origin(int64_t batch, const Window& window) {
    fixed_origins_.resize(static_cast<size_t>(2 * batch));
    for (int64_t n = 0; n < batch; ++n) {
      fixed_origins_[2 * n] = window.top;
      fixed_origins_[2 * n + 1] = window.left;
    }
    return fixed_origins_.data();
  }

  WindowKind kind_;
  int64_t height_, width_;
  Interpolation interpolation_;
  AspectMode aspect_mode_;
  float fill_value_;
  int64_t own_seed_;
  uint64_t training_calls_ = 0;
  Window inference_window_, training_window_, last_window_;
  const int64_t* last_origins_ = nullptr;
  std::vector<int64_t> origins_, fixed_origins_;
};

}  // namespace

Window inference_resize_window(WindowKind kind, int64_t height, int64_t width, int64_t target_height,
                              int64_t target_width, AspectMode aspect_mode) {
  switch (kind) {
    case WindowKind::resizing:
      if (aspect_mode == AspectMode::crop) return aspect_crop_window(height, width, target_height, target_width, true);
      if (aspect_mode == AspectMode::pad) return aspect_pad_window(height, width, target_height, target_width);
      return {0, 0, height, width};
    case WindowKind::center_crop:
      // A plain centre crop when the input is at least the target size, else smart_resize.
      return height >= target_height && width >= target_width
                 ? Window{(height - target_height) / 2, (width - target_width) / 2, target_height, target_width}
                 : aspect_crop_window(height, width, target_height, target_width, false);
    case WindowKind::random_crop:
      // smart_resize, as RandomCrop's documentation describes (Keras 3.15 itself returns the
      // uncropped input there, which no fixed-shape model can use).
      return aspect_crop_window(height, width, target_height, target_width, false);
  }
  return {0, 0, height, width};
}

std::unique_ptr<Layer> make_random_flip(bool horizontal, bool vertical, int64_t seed) {
  return std::make_unique<RandomFlipLayer>(horizontal, vertical, seed);
}
std::unique_ptr<Layer> make_random_rotation(float lower_degrees, float upper_degrees, FillMode fill_mode,
                                            Interpolation interpolation, float fill_value, int64_t seed) {
  return std::make_unique<RandomRotationLayer>(lower_degrees, upper_degrees, fill_mode, interpolation, fill_value,
                                               seed);
}
std::unique_ptr<Layer> make_random_translation(float height_lower, float height_upper, float width_lower,
                                               float width_upper, FillMode fill_mode,
                                               Interpolation interpolation, float fill_value, int64_t seed) {
  return std::make_unique<RandomTranslationLayer>(height_lower, height_upper, width_lower, width_upper, fill_mode,
                                                  interpolation, fill_value, seed);
}
std::unique_ptr<Layer> make_random_zoom(float height_lower, float height_upper, bool separate_width,
                                        float width_lower, float width_upper, FillMode fill_mode,
                                        Interpolation interpolation, float fill_value, int64_t seed) {
  return std::make_unique<RandomZoomLayer>(height_lower, height_upper, separate_width, width_lower, width_upper,
                                           fill_mode, interpolation, fill_value, seed);
}
std::unique_ptr<Layer> make_random_contrast(float lower, float upper, float value_low, float value_high,
                                            int64_t seed) {
  return std::make_unique<RandomColorLayer>(true, lower, upper, 1.0f, value_low, value_high, seed);
}
std::unique_ptr<Layer> make_random_brightness(float lower, float upper, float scale, float value_low,
                                              float value_high, int64_t seed) {
  return std::make_unique<RandomColorLayer>(false, lower, upper, scale, value_low, value_high, seed);
}
std::unique_ptr<Layer> make_resizing(int64_t height, int64_t width, Interpolation interpolation,
                                     AspectMode aspect_mode, float fill_value) {
  return std::make_unique<WindowResizeLayer>(WindowKind::resizing, height, width, interpolation, aspect_mode,
                                             fill_value, -1);
}
std::unique_ptr<Layer> make_center_crop(int64_t height, int64_t width) {
  return std::make_unique<WindowResizeLayer>(WindowKind::center_crop, height, width, Interpolation::bilinear,
                                             AspectMode::stretch, 0.0f, -1);
}
std::unique_ptr<Layer> make_random_crop(int64_t height, int64_t width, int64_t seed) {
  return std::make_unique<WindowResizeLayer>(WindowKind::random_crop, height, width, Interpolation::bilinear,
                                             AspectMode::stretch, 0.0f, seed);
}

}  // namespace fastcnn::runtime
