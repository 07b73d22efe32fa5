// The shapes kernels and the runtime agree on. Kernels see raw float pointers plus a params
// struct (ops/); tensors are always dense NHWC float32, batch first, channels innermost.
#pragma once

#include <cstdint>

namespace fastcnn {

// The shape of one sample: (height, width, channels). A vector of `units` is (1, 1, units),
// which makes Flatten a pure reinterpretation: NHWC memory order is Keras's (h, w, c) order.
struct SampleShape {
  int64_t height = 1;
  int64_t width = 1;
  int64_t channels = 1;
  int64_t size() const { return height * width * channels; }
  bool operator==(const SampleShape& other) const {
    return height == other.height && width == other.width && channels == other.channels;
  }
};

}  // namespace fastcnn
