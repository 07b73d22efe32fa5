// Argument and size checks of the image ops (ops/image.h), each message naming the value received.
#include "ops/image.h"

#include "ops/checked.h"

#include <stdexcept>
#include <string>

namespace fastcnn {
namespace {

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument(message); }

void require_positive(const char* name, int64_t value) {
  if (value <= 0) {
    fail(std::string("`") + name + "` must be a positive integer. Received: " + name + "=" + std::to_string(value));
  }
}

void require_non_negative(const char* name, int64_t value) {
  if (value < 0) fail(std::string("`") + name + "` must be >= 0. Received: " + name + "=" + std::to_string(value));
}

void require_countable(std::initializer_list<int64_t> factors, const char* what) { checked_product(factors, what); }

}  // namespace

FillMode parse_fill_mode(const std::string& name) {
  if (name == "reflect") return FillMode::reflect;
  if (name == "wrap") return FillMode::wrap;
  if (name == "constant") return FillMode::constant;
  if (name == "nearest") return FillMode::nearest;
  fail("Unknown `fill_mode` " + name + ". Expected one of ('reflect', 'wrap', 'constant', 'nearest').");
}

Interpolation parse_interpolation(const std::string& name) {
  if (name == "bilinear") return Interpolation::bilinear;
  if (name == "nearest") return Interpolation::nearest;
  fail("Unknown `interpolation` " + name + ". Expected one of ('bilinear', 'nearest').");
}

void validate(const ProjectiveTransformParams& p) {
  require_non_negative("batch", p.batch);
  require_positive("height", p.height);
  require_positive("width", p.width);
  require_positive("channels", p.channels);
  require_countable({p.batch, p.height, p.width, p.channels}, "the image batch");
  // Sample points are float32: beyond 2^24 pixels an axis has positions they cannot address.
  if (p.height > (int64_t(1) << 24) || p.width > (int64_t(1) << 24)) {
    fail("projective transforms take images of up to 2^24 pixels per axis. Received: height=" +
         std::to_string(p.height) + ", width=" + std::to_string(p.width));
  }
}

void validate(const ResizeParams& p) {
  require_non_negative("batch", p.batch);
  require_positive("input height", p.input_height);
  require_positive("input width", p.input_width);
  require_positive("channels", p.channels);
  require_positive("output height", p.output_height);
  require_positive("output width", p.output_width);
  require_positive("window height", p.window_height);
  require_positive("window width", p.window_width);
  require_countable({p.batch, p.input_height, p.input_width, p.channels}, "the input batch");
  require_countable({p.batch, p.output_height, p.output_width, p.channels}, "the output batch");
  // Tap positions are float32 multiples of window / output, converted back to int64: windows are
  // bounded like the window origins (+-2^40) so that every conversion is in range.
  if (p.window_height > (int64_t(1) << 40) || p.window_width > (int64_t(1) << 40)) {
    fail("`window_size` values must be at most 2^40. Received: window_size=(" + std::to_string(p.window_height) +
         ", " + std::to_string(p.window_width) + ")");
  }
}

void validate(const ImageParams& p) {
  require_non_negative("batch", p.batch);
  require_positive("height", p.height);
  require_positive("width", p.width);
  require_positive("channels", p.channels);
  require_countable({p.batch, p.height, p.width, p.channels}, "the image batch");
  if (!(p.value_low <= p.value_high)) {
    fail("`value_range` must be (low, high) with low <= high. Received: value_range=(" +
         std::to_string(p.value_low) + ", " + std::to_string(p.value_high) + ")");
  }
}

}  // namespace fastcnn
