// Optimised MaxPooling2D: parallel over image rows (forward) or images (backward, so that each
// thread owns the input-gradient rows it scatters into), channels innermost and contiguous.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/optimized/optimized.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

// Window bounds of output (oh, ow), clipped to the input.
struct Window {
  int64_t row_begin, row_end, column_begin, column_end;
};
inline Window window_of(const Pool2DParams& p, int64_t oh, int64_t ow) {
  const int64_t top = oh * p.stride_height - p.pad_top;
  const int64_t left = ow * p.stride_width - p.pad_left;
  return {std::max<int64_t>(top, 0), std::min(top + p.pool_height, p.input_height),
          std::max<int64_t>(left, 0), std::min(left + p.pool_width, p.input_width)};
}

// A candidate wins when strictly greater, or when it is NaN and the best is not (NaN propagates).
inline bool wins(float candidate, float best) {
  return candidate > best || (candidate != candidate && best == best);
}

}  // namespace

void max_pool2d_forward(const Pool2DParams& p, const float* input, float* output) {
  const int64_t channels = p.channels;
  parallel::parallel_for(p.batch * p.output_height, [&](int64_t image_row) {
    const int64_t n = image_row / p.output_height;
    const int64_t oh = image_row % p.output_height;
    for (int64_t ow = 0; ow < p.output_width; ++ow) {
      const Window w = window_of(p, oh, ow);
      float* out = output + (image_row * p.output_width + ow) * channels;
      const float* first = input + ((n * p.input_height + w.row_begin) * p.input_width + w.column_begin) * channels;
      std::copy(first, first + channels, out);
      for (int64_t ih = w.row_begin; ih < w.row_end; ++ih)
        for (int64_t iw = w.column_begin; iw < w.column_end; ++iw) {
          const float* in = input + ((n * p.input_height + ih) * p.input_width + iw) * channels;
          for (int64_t c = 0; c < channels; ++c) out[c] = wins(in[c], out[c]) ? in[c] : out[c];
        }
    }
  });
}

void max_pool2d_backward(const Pool2DParams& p, const float* input, const float* output_gradient,
                         float* input_gradient) {
  const int64_t channels = p.channels;
  const int64_t image_size = p.input_height * p.input_width * channels;
  parallel::parallel_for(p.batch, [&](int64_t n) {
    // Per output pixel: the window's first maximum for every channel at once (channels innermost,
    // so the comparisons vectorise), then one scatter of the output gradient.
    thread_local std::vector<float> best;
    thread_local std::vector<int64_t> best_index;
    best.resize(static_cast<size_t>(channels));
    best_index.resize(static_cast<size_t>(channels));
    // Plain pointers: every use of a thread_local from a shared library is a TLS lookup.
    float* best_value = best.data();
    int64_t* best_at = best_index.data();
    float* gradient = input_gradient + n * image_size;
    std::fill(gradient, gradient + image_size, 0.0f);
    const float* image = input + n * image_size;
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow) {
        const Window w = window_of(p, oh, ow);
        const int64_t first = (w.row_begin * p.input_width + w.column_begin) * channels;
        for (int64_t c = 0; c < channels; ++c) {
          best_value[c] = image[first + c];
          best_at[c] = first + c;
        }
        for (int64_t ih = w.row_begin; ih < w.row_end; ++ih)
          for (int64_t iw = w.column_begin; iw < w.column_end; ++iw) {
            const int64_t offset = (ih * p.input_width + iw) * channels;
            if (offset == first) continue;
            const float* values = image + offset;
            for (int64_t c = 0; c < channels; ++c) {
              const bool better = wins(values[c], best_value[c]);
              best_value[c] = better ? values[c] : best_value[c];
              best_at[c] = better ? offset + c : best_at[c];
            }
          }
        const float* dy = output_gradient + ((n * p.output_height + oh) * p.output_width + ow) * channels;
        for (int64_t c = 0; c < channels; ++c) gradient[best_at[c]] += dy[c];
      }
  });
}

void average_pool2d_forward(const Pool2DParams& p, const float* input, float* output) {
  const int64_t channels = p.channels;
  parallel::parallel_for(p.batch * p.output_height, [&](int64_t image_row) {
    const int64_t n = image_row / p.output_height;
    const int64_t oh = image_row % p.output_height;
    for (int64_t ow = 0; ow < p.output_width; ++ow) {
      const Window w = window_of(p, oh, ow);
      float* out = output + (image_row * p.output_width + ow) * channels;
      std::fill(out, out + channels, 0.0f);
      for (int64_t ih = w.row_begin; ih < w.row_end; ++ih)
        for (int64_t iw = w.column_begin; iw < w.column_end; ++iw) {
          const float* in = input + ((n * p.input_height + ih) * p.input_width + iw) * channels;
          for (int64_t c = 0; c < channels; ++c) out[c] += in[c];
        }
      const float inverse = 1.0f / static_cast<float>((w.row_end - w.row_begin) * (w.column_end - w.column_begin));
      for (int64_t c = 0; c < channels; ++c) out[c] *= inverse;
    }
  });
}

void average_pool2d_backward(const Pool2DParams& p, const float* output_gradient,
                             float* input_gradient) {
  const int64_t channels = p.channels;
  const int64_t image_size = p.input_height * p.input_width * channels;
  parallel::parallel_for(p.batch, [&](int64_t n) {
    float* gradient = input_gradient + n * image_size;
    std::fill(gradient, gradient + image_size, 0.0f);
    for (int64_t oh = 0; oh < p.output_height; ++oh)
      for (int64_t ow = 0; ow < p.output_width; ++ow) {
        const Window w = window_of(p, oh, ow);
        const float inverse = 1.0f / static_cast<float>((w.row_end - w.row_begin) * (w.column_end - w.column_begin));
        const float* dy = output_gradient + ((n * p.output_height + oh) * p.output_width + ow) * channels;
        for (int64_t ih = w.row_begin; ih < w.row_end; ++ih)
          for (int64_t iw = w.column_begin; iw < w.column_end; ++iw) {
            float* dx = gradient + (ih * p.input_width + iw) * channels;
            for (int64_t c = 0; c < channels; ++c) dx[c] += dy[c] * inverse;
          }
      }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
