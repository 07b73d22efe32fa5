// Optimised MaxPooling2D: parallel over image rows (forward) or images (backward, so that each
// thread owns the input-gradient rows it scatters into), channels innermost and contiguous.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/optimized/max_pool_window.h"
#include "kernels/optimized/optimized.h"
#include "kernels/optimized/simd.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

// A candidate wins when strictly greater, or when it is NaN and the best is not (NaN propagates).
inline bool wins(float candidate, float best) {
  return candidate > best || (candidate != candidate && best == best);
}

// Channels [first, first + width) of one window (width <= simd::kLanes): dx = dy at the first maximum of each
// channel, 0 at the window's other positions. Needs windows that do not overlap (each input pixel
// written by one window only). With relu_input a maximum that is not > 0 passes nothing.
inline void max_pool_window_backward(const Pool2DParams& p, const PoolWindow& w, const float* image,
                                     const float* dy, float* gradient, int64_t width) {
  const int64_t channels = p.channels;
  const WindowMaximum best = window_maximum<true>(p, w, [&](int64_t ih, int64_t iw) {
    return simd::load_lanes(image + (ih * p.input_width + iw) * channels, width);
  });
  const simd::floatv zero = {};
  simd::floatv gradient_value = simd::load_lanes(dy, width);
  if (p.relu_input) gradient_value = best.value > zero ? gradient_value : zero;
  for (int64_t ih = w.row_begin; ih < w.row_end; ++ih)
    for (int64_t iw = w.column_begin; iw < w.column_end; ++iw) {
      const simd::maskv here = best.position == simd::broadcast_int(window_position(p, w, ih, iw));
      simd::store_lanes(gradient + (ih * p.input_width + iw) * channels, here ? gradient_value : zero, width);
    }
}

}  // namespace

void max_pool2d_forward(const Pool2DParams& p, const float* input, float* output) {
  const int64_t channels = p.channels;
  parallel::parallel_for(p.batch * p.output_height, [&](int64_t image_row) {
    const float* image = input + image_row / p.output_height * p.input_height * p.input_width * channels;
    max_pool_output_row(p, image_row, output, [&](int64_t ih, int64_t iw, int64_t c, int64_t width) {
      return simd::load_lanes(image + (ih * p.input_width + iw) * channels + c, width);
    });
  });
}

void max_pool2d_backward(const Pool2DParams& p, const float* input, const float* output_gradient,
                         float* input_gradient) {
  const int64_t channels = p.channels;
  const int64_t image_size = p.input_height * p.input_width * channels;
  if (p.stride_height >= p.pool_height && p.stride_width >= p.pool_width) {
    // Windows do not overlap (the usual pool == stride): each band of input rows
    // [oh*stride - pad, (oh+1)*stride - pad) belongs to output row oh alone, so every pixel is
    // written once — dy at its window's first maximum, zero elsewhere — with no scatter and no
    // separate clearing pass.
    parallel::parallel_for(p.batch * p.output_height, [&](int64_t image_row) {
      const int64_t n = image_row / p.output_height;
      const int64_t oh = image_row % p.output_height;
      const float* image = input + n * image_size;
      float* gradient = input_gradient + n * image_size;
      const int64_t row_size = p.input_width * channels;
      auto clamp_row = [&](int64_t row) { return std::min(std::max<int64_t>(row, 0), p.input_height); };
      const int64_t band_begin = oh == 0 ? 0 : clamp_row(oh * p.stride_height - p.pad_top);
      const int64_t band_end =
          oh + 1 == p.output_height ? p.input_height : clamp_row((oh + 1) * p.stride_height - p.pad_top);
      const PoolWindow first_window = pool_window_of(p, oh, 0);
      for (int64_t ih = band_begin; ih < band_end; ++ih) {
        if (ih < first_window.row_begin || ih >= first_window.row_end) {
          std::fill(gradient + ih * row_size, gradient + (ih + 1) * row_size, 0.0f);
          continue;
        }
        // Columns between and after the windows of this row.
        int64_t next_column = 0;
        for (int64_t ow = 0; ow <= p.output_width; ++ow) {
          const int64_t column_end = ow < p.output_width ? pool_window_of(p, oh, ow).column_begin : p.input_width;
          std::fill(gradient + ih * row_size + next_column * channels,
                    gradient + ih * row_size + column_end * channels, 0.0f);
          if (ow < p.output_width) next_column = pool_window_of(p, oh, ow).column_end;
        }
      }
      for (int64_t ow = 0; ow < p.output_width; ++ow) {
        const PoolWindow w = pool_window_of(p, oh, ow);
        const float* dy = output_gradient + (image_row * p.output_width + ow) * channels;
        for (int64_t c = 0; c < channels; c += simd::kLanes) {
          max_pool_window_backward(p, w, image + c, dy + c, gradient + c,
                                   std::min<int64_t>(simd::kLanes, channels - c));
        }
      }
    });
    return;
  }
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
        const PoolWindow w = pool_window_of(p, oh, ow);
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
        if (p.relu_input) {
          for (int64_t c = 0; c < channels; ++c) gradient[best_at[c]] += best_value[c] > 0.0f ? dy[c] : 0.0f;
        } else {
          for (int64_t c = 0; c < channels; ++c) gradient[best_at[c]] += dy[c];
        }
      }
  });
}

void average_pool2d_forward(const Pool2DParams& p, const float* input, float* output) {
  using simd::floatv;
  const int64_t channels = p.channels;
  parallel::parallel_for(p.batch * p.output_height, [&](int64_t image_row) {
    const int64_t n = image_row / p.output_height;
    const int64_t oh = image_row % p.output_height;
    for (int64_t ow = 0; ow < p.output_width; ++ow) {
      const PoolWindow w = pool_window_of(p, oh, ow);
      float* out = output + (image_row * p.output_width + ow) * channels;
      const floatv inverse =
          simd::broadcast(1.0f / static_cast<float>((w.row_end - w.row_begin) * (w.column_end - w.column_begin)));
      // simd::kLanes channels at a time (the last ones masked): the window's sum in a register,
      // from zero in window order, then times 1 / count.
      for (int64_t c = 0; c < channels; c += simd::kLanes) {
        const int64_t width = std::min<int64_t>(simd::kLanes, channels - c);
        floatv sum = {};
        for (int64_t ih = w.row_begin; ih < w.row_end; ++ih)
          for (int64_t iw = w.column_begin; iw < w.column_end; ++iw) {
            sum += simd::load_lanes(input + ((n * p.input_height + ih) * p.input_width + iw) * channels + c, width);
          }
        simd::store_lanes(out + c, sum * inverse, width);
      }
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
        const PoolWindow w = pool_window_of(p, oh, ow);
        const simd::floatv inverse =
            simd::broadcast(1.0f / static_cast<float>((w.row_end - w.row_begin) * (w.column_end - w.column_begin)));
        const float* dy = output_gradient + ((n * p.output_height + oh) * p.output_width + ow) * channels;
        for (int64_t c = 0; c < channels; c += simd::kLanes) {
          const int64_t width = std::min<int64_t>(simd::kLanes, channels - c);
          const simd::floatv dy_lanes = simd::load_lanes(dy + c, width);
          for (int64_t ih = w.row_begin; ih < w.row_end; ++ih)
            for (int64_t iw = w.column_begin; iw < w.column_end; ++iw) {
              float* dx = gradient + (ih * p.input_width + iw) * channels + c;
              simd::store_lanes(dx, simd::load_lanes(dx, width) + dy_lanes * inverse, width);
            }
        }
      }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
