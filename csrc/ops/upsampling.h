// UpSampling2D (Keras): each image enlarged by integer factors (size_height, size_width).
//   nearest:  output[n, y, x, c] = input[n, y / size_height, x / size_width, c]   (Keras's ops.repeat
//             along both axes); the input gradient sums each size_height x size_width block.
//   bilinear: TensorFlow's ResizeBilinear with half_pixel_centers = true, which Keras's
//             ops.image.resize (tf.image.resize, antialias off) runs. Along an axis of `in` input
//             and `out` output positions, output index o reads
//               p = (o + 0.5) * (in / out) - 0.5       (float arithmetic, in / out a float)
//               lower = max(floor(p), 0),  upper = min(ceil(p), in - 1),  lerp = p - floor(p);
//             then top = tl + (tr - tl) * x_lerp, bottom = bl + (br - bl) * x_lerp,
//                  output = top + (bottom - top) * y_lerp.
//             The input gradient is TensorFlow's ResizeBilinearGrad: output position (y, x), in
//             row-major order, adds g (1 - y_lerp) (1 - x_lerp) to (lower_y, lower_x), then
//             g (1 - y_lerp) x_lerp to (lower_y, upper_x), g y_lerp (1 - x_lerp) to (upper_y, lower_x)
//             and g y_lerp x_lerp to (upper_y, upper_x).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace fastcnn {

struct UpSampling2DParams {
  int64_t batch = 0, input_height = 0, input_width = 0, channels = 0;
  int64_t size_height = 1, size_width = 1;
  bool bilinear = false;

  int64_t output_height() const { return input_height * size_height; }
  int64_t output_width() const { return input_width * size_width; }
  int64_t input_size() const { return batch * input_height * input_width * channels; }
  int64_t output_size() const { return batch * output_height() * output_width() * channels; }
};

// The two input positions output index `index` interpolates and its weight of the upper one.
struct LinearTap {
  int64_t lower = 0, upper = 0;
  float lerp = 0.0f;
};

// TensorFlow's compute_interpolation_weights with its HalfPixelScaler (the formula above).
inline LinearTap half_pixel_tap(int64_t index, int64_t input_size, int64_t output_size) {
  const float scale = static_cast<float>(input_size) / static_cast<float>(output_size);
  const float position = (static_cast<float>(index) + 0.5f) * scale - 0.5f;
  const float below = std::floor(position);
  LinearTap tap;
  tap.lower = std::max(static_cast<int64_t>(below), int64_t{0});
  tap.upper = std::min(static_cast<int64_t>(std::ceil(position)), input_size - 1);
  tap.lerp = position - below;
  return tap;
}

}  // namespace fastcnn
