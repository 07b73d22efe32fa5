// Optimised activations and dropout (memory-bound: parallel chunks, vectorisable loops), and the
// kernel table of this instruction set.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/optimized/optimized.h"
#include "kernels/optimized/simd.h"
#include "ops/activation_math.h"
#include "ops/noise.h"
#include "ops/parametric_activation.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

constexpr int64_t kChunk = 16384;

template <typename Body>
void for_chunks(int64_t count, Body&& body) {
  parallel::parallel_for((count + kChunk - 1) / kChunk, [&](int64_t chunk) {
    const int64_t begin = chunk * kChunk;
    body(begin, std::min(count, begin + kChunk));
  });
}

// One activation over a run of values, its switch resolved at compile time so that the loop of
// plain arithmetic and comparisons (hard_silu, softsign) vectorises.
template <Activation kActivation>
void activate_run(float* values, int64_t count) {
  for (int64_t i = 0; i < count; ++i) values[i] = activate(kActivation, values[i]);
}

template <Activation kActivation>
void gradient_run(const float* x, const float* y, const float* g, float* dx, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) dx[i] = activation_gradient(kActivation, x[i], y[i], g[i]);
}

// y = max(x, 0) (NaN stays NaN: simd::max_zero) over [begin, end) in one pass: two vectors per
// iteration, the last partial vector masked (memory-bound: the point is one read and one write per
// element, with no scalar tail).
inline void relu_range(const float* input, float* output, int64_t begin, int64_t end) {
  int64_t i = begin;
  for (; i + 2 * simd::kLanes <= end; i += 2 * simd::kLanes) {
    const simd::floatv low = simd::load(input + i), high = simd::load(input + i + simd::kLanes);
    simd::store(output + i, simd::max_zero(low));
    simd::store(output + i + simd::kLanes, simd::max_zero(high));
  }
  for (; i < end; i += simd::kLanes) {
    const int64_t width = std::min<int64_t>(simd::kLanes, end - i);
    simd::store_lanes(output + i, simd::max_zero(simd::load_lanes(input + i, width)), width);
  }
}

// Over [begin, end), as relu_range: dx = y > 0 ? dy : 0 (the relu activation's derivative,
// activation_gradient), or with Multiply dx = dy * (x > 0 ? 1 : 0) (the ReLU layer's,
// parametric_relu_gradient: -0 for a negative dy, NaN for a NaN or infinite dy, as TensorFlow's
// ReluGrad). `sign_source` is the relu's output or input (the same sign test). In place allowed.
template <bool Multiply>
inline void relu_gradient_range(const float* sign_source, const float* output_gradient, float* input_gradient,
                                int64_t begin, int64_t end) {
  const simd::floatv zero = {}, one = simd::broadcast(1.0f);
  for (int64_t i = begin; i < end; i += simd::kLanes) {
    const int64_t width = std::min<int64_t>(simd::kLanes, end - i);
    const simd::floatv y = simd::load_lanes(sign_source + i, width);
    const simd::floatv g = simd::load_lanes(output_gradient + i, width);
    simd::store_lanes(input_gradient + i, Multiply ? g * (y > zero ? one : zero) : (y > zero ? g : zero), width);
  }
}

// The ReLU layer's parameters at their defaults: plain relu.
inline bool relu_is_plain(const ReluParams& p) {
  return p.negative_slope == 0.0f && p.threshold == 0.0f && p.max_value == std::numeric_limits<float>::infinity();
}

// Over `count` values in place, in vectors (the last one masked): values = f(values).
template <typename Function>
inline void map_in_place(float* values, int64_t count, Function&& f) {
  for (int64_t i = 0; i < count; i += simd::kLanes) {
    const int64_t width = std::min<int64_t>(simd::kLanes, count - i);
    simd::store_lanes(values + i, f(simd::load_lanes(values + i, width)), width);
  }
}

}  // namespace

void activate_in_place(Activation activation, float* values, int64_t count) {
  switch (activation) {
    case Activation::linear:
    case Activation::softmax:
    case Activation::log_softmax:
      return;
    case Activation::relu:
      // x < 0 ? 0 : x keeps NaN as NaN, as max(x, 0) does in TensorFlow.
      for (int64_t i = 0; i < count; ++i) values[i] = values[i] < 0.0f ? 0.0f : values[i];
      return;
    case Activation::sigmoid:  // activation_math.h's formulas on simd::exponential
      map_in_place(values, count, [](simd::floatv x) { return simd::sigmoid(x); });
      return;
    case Activation::swish:
      map_in_place(values, count, [](simd::floatv x) { return x * simd::sigmoid(x); });
      return;
    case Activation::gelu:  // 0.5 x (1 + erf(x / sqrt 2))
      map_in_place(values, count, [](simd::floatv x) {
        return simd::broadcast(0.5f) * x *
               (simd::broadcast(1.0f) + simd::error_function(x * simd::broadcast(0.70710678118654752f)));
      });
      return;
    case Activation::hard_silu:
      activate_run<Activation::hard_silu>(values, count);
      return;
    case Activation::softsign:
      activate_run<Activation::softsign>(values, count);
      return;
    default:
      for (int64_t i = 0; i < count; ++i) values[i] = activate(activation, values[i]);
      return;
  }
}

void activation_forward(Activation activation, int64_t rows, int64_t columns, const float* input,
                        float* output) {
  if (activation == Activation::log_softmax) {
    parallel::parallel_for(rows, [&](int64_t r) { log_softmax_row(input + r * columns, output + r * columns, columns); });
    return;
  }
  if (activation == Activation::relu) {
    for_chunks(rows * columns, [&](int64_t begin, int64_t end) { relu_range(input, output, begin, end); });
    return;
  }
  if (activation != Activation::softmax) {
    for_chunks(rows * columns, [&](int64_t begin, int64_t end) {
      if (output != input) std::copy(input + begin, input + end, output + begin);
      activate_in_place(activation, output + begin, end - begin);
    });
    return;
  }
  // softmax(x)_j = e^(x_j - max x) / sum_k e^(x_k - max x)
  parallel::parallel_for(rows, [&](int64_t r) {
    const float* x = input + r * columns;
    float* y = output + r * columns;
    const float maximum = *std::max_element(x, x + columns);
    float sum = 0.0f;
    for (int64_t j = 0; j < columns; ++j) {
      y[j] = std::exp(x[j] - maximum);
      sum += y[j];
    }
    for (int64_t j = 0; j < columns; ++j) y[j] /= sum;
  });
}

void activation_backward(Activation activation, int64_t rows, int64_t columns, const float* input,
                         const float* output, const float* output_gradient, float* input_gradient) {
  if (activation == Activation::log_softmax) {
    parallel::parallel_for(rows, [&](int64_t r) {
      log_softmax_gradient_row(output + r * columns, output_gradient + r * columns, input_gradient + r * columns,
                               columns);
    });
    return;
  }
  if (activation == Activation::softmax) {
    // dx_j = y_j * (g_j - sum_k g_k y_k)
    parallel::parallel_for(rows, [&](int64_t r) {
      const float* y = output + r * columns;
      const float* g = output_gradient + r * columns;
      float* dx = input_gradient + r * columns;
      float dot = 0.0f;
      for (int64_t j = 0; j < columns; ++j) dot += g[j] * y[j];
      for (int64_t j = 0; j < columns; ++j) dx[j] = y[j] * (g[j] - dot);
    });
    return;
  }
  for_chunks(rows * columns, [&](int64_t begin, int64_t end) {
    const float* y = output;
    const float* g = output_gradient;
    float* dx = input_gradient;
    switch (activation) {
      case Activation::linear:
        if (dx != g) std::copy(g + begin, g + end, dx + begin);
        break;
      case Activation::relu:
        relu_gradient_range<false>(y, g, dx, begin, end);
        break;
      case Activation::sigmoid:  // g y (1 - y), as activation_gradient
        for (int64_t i = begin; i < end; i += simd::kLanes) {
          const int64_t width = std::min<int64_t>(simd::kLanes, end - i);
          const simd::floatv out = simd::load_lanes(y + i, width);
          simd::store_lanes(dx + i, simd::load_lanes(g + i, width) * out * (simd::broadcast(1.0f) - out), width);
        }
        break;
      case Activation::swish:  // g s (1 + x (1 - s)), s = sigmoid(x), as activation_gradient
        for (int64_t i = begin; i < end; i += simd::kLanes) {
          const int64_t width = std::min<int64_t>(simd::kLanes, end - i);
          const simd::floatv x = simd::load_lanes(input + i, width), one = simd::broadcast(1.0f);
          const simd::floatv s = simd::sigmoid(x);
          simd::store_lanes(dx + i, simd::load_lanes(g + i, width) * s * (one + x * (one - s)), width);
        }
        break;
      case Activation::gelu:  // g (cdf + x pdf), cdf = (1 + erf(x / sqrt 2)) / 2, pdf = e^(-x^2 / 2) / sqrt(2 pi)
        for (int64_t i = begin; i < end; i += simd::kLanes) {
          const int64_t width = std::min<int64_t>(simd::kLanes, end - i);
          const simd::floatv x = simd::load_lanes(input + i, width), half = simd::broadcast(0.5f);
          const simd::floatv cdf =
              half * (simd::broadcast(1.0f) + simd::error_function(x * simd::broadcast(0.70710678118654752f)));
          const simd::floatv pdf = simd::broadcast(0.39894228040143268f) * simd::exponential(-half * x * x);
          simd::store_lanes(dx + i, simd::load_lanes(g + i, width) * (cdf + x * pdf), width);
        }
        break;
      case Activation::hard_silu:  // both read the input (needs_pre_activation), so it is not null
        gradient_run<Activation::hard_silu>(input, y, g, dx, begin, end);
        break;
      case Activation::softsign:
        gradient_run<Activation::softsign>(input, y, g, dx, begin, end);
        break;
      default:
        for (int64_t i = begin; i < end; ++i) {
          dx[i] = activation_gradient(activation, input != nullptr ? input[i] : 0.0f, y[i], g[i]);
        }
        break;
    }
  });
}

// Over [begin, end) in vectors, the last one masked: out = f(a) or f(a, b) lane by lane (the
// ReLU layer's clipped and leaky forms, whose scalar formulas are branches that mispredict on
// data of mixed signs: 8x slower than the vector form was measured on ReLU(6.0)).
template <typename Function>
inline void map_range(const float* a, float* out, int64_t begin, int64_t end, Function&& f) {
  for (int64_t i = begin; i < end; i += simd::kLanes) {
    const int64_t width = std::min<int64_t>(simd::kLanes, end - i);
    simd::store_lanes(out + i, f(simd::load_lanes(a + i, width)), width);
  }
}

template <typename Function>
inline void map_range(const float* a, const float* b, float* out, int64_t begin, int64_t end, Function&& f) {
  for (int64_t i = begin; i < end; i += simd::kLanes) {
    const int64_t width = std::min<int64_t>(simd::kLanes, end - i);
    simd::store_lanes(out + i, f(simd::load_lanes(a + i, width), simd::load_lanes(b + i, width)), width);
  }
}

// ReLU(max_value=m) with m >= 0 and no slope or threshold (ReLU(6.0), relu6): the parametric
// formulas of ops/elementwise.h lane by lane. y = x < 0 ? 0 : (x > m ? m : x) (NaN stays NaN);
// dy/dx = [0 < x < 6] for relu6 (TensorFlow's Relu6Grad), [0 < x <= m] otherwise (clip passes
// its bound); the gradient is dy times it (NaN and -0 as the scalar form).
inline bool relu_is_clipped(const ReluParams& p) {
  return p.negative_slope == 0.0f && p.threshold == 0.0f && p.max_value >= 0.0f &&
         p.max_value != std::numeric_limits<float>::infinity();
}

void relu_forward(const ReluParams& p, const float* input, float* output) {
  if (relu_is_plain(p)) {
    for_chunks(p.count, [&](int64_t begin, int64_t end) { relu_range(input, output, begin, end); });
    return;
  }
  const simd::floatv zero = {};
  if (relu_is_clipped(p)) {
    const simd::floatv top = simd::broadcast(p.max_value);
    for_chunks(p.count, [&](int64_t begin, int64_t end) {
      map_range(input, output, begin, end, [&](simd::floatv x) { return x < zero ? zero : (x > top ? top : x); });
    });
    return;
  }
  if (relu_is_leaky(p)) {
    const simd::floatv slope = simd::broadcast(p.negative_slope);
    for_chunks(p.count, [&](int64_t begin, int64_t end) {
      map_range(input, output, begin, end, [&](simd::floatv x) { return x > zero ? x : slope * x; });
    });
    return;
  }
  for_chunks(p.count, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) output[i] = parametric_relu(p, input[i]);
  });
}

void relu_backward(const ReluParams& p, const float* input, const float* output_gradient,
                   float* input_gradient) {
  if (relu_is_plain(p)) {
    for_chunks(p.count, [&](int64_t begin, int64_t end) {
      relu_gradient_range<true>(input, output_gradient, input_gradient, begin, end);
    });
    return;
  }
  const simd::floatv zero = {}, one = simd::broadcast(1.0f);
  if (relu_is_clipped(p)) {
    const simd::floatv top = simd::broadcast(p.max_value);
    const bool relu6 = relu_is_relu6(p);
    for_chunks(p.count, [&](int64_t begin, int64_t end) {
      map_range(input, output_gradient, input_gradient, begin, end, [&](simd::floatv x, simd::floatv g) {
        const auto inside = relu6 ? (x > zero) & (x < top) : (x > zero) & (x <= top);
        return g * (inside ? one : zero);
      });
    });
    return;
  }
  if (relu_is_leaky(p)) {
    const simd::floatv slope = simd::broadcast(p.negative_slope);
    for_chunks(p.count, [&](int64_t begin, int64_t end) {
      map_range(input, output_gradient, input_gradient, begin, end,
                [&](simd::floatv x, simd::floatv g) { return x > zero ? g : slope * g; });
    });
    return;
  }
  for_chunks(p.count, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) input_gradient[i] = parametric_relu_gradient(p, input[i], output_gradient[i]);
  });
}

void rescaling(const RescalingParams& p, const float* input, float* output) {
  if (p.channel_scale == nullptr) {
    for_chunks(p.count, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) output[i] = input[i] * p.scale + p.offset;
    });
    return;
  }
  // Per channel: whole pixels (rows of `channels` values) per chunk, the channel loop contiguous.
  const int64_t channels = p.channels, pixels = p.count / channels;
  const int64_t pixels_per_chunk = std::max<int64_t>(1, kChunk / channels);
  parallel::parallel_for((pixels + pixels_per_chunk - 1) / pixels_per_chunk, [&](int64_t chunk) {
    const int64_t end = std::min(pixels, (chunk + 1) * pixels_per_chunk);
    for (int64_t pixel = chunk * pixels_per_chunk; pixel < end; ++pixel) {
      const float* in = input + pixel * channels;
      float* out = output + pixel * channels;
      if (p.channel_offset != nullptr) {
        for (int64_t c = 0; c < channels; ++c) out[c] = in[c] * p.channel_scale[c] + p.channel_offset[c];
      } else {
        for (int64_t c = 0; c < channels; ++c) out[c] = in[c] * p.channel_scale[c];
      }
    }
  });
}

// Row by row: zeros for the padding, one contiguous copy for the input's row.
void zero_padding2d_forward(const ZeroPadding2DParams& p, const float* input, float* output) {
  const int64_t height = p.output_height(), width = p.output_width(), c = p.channels;
  parallel::parallel_for(p.batch * height, [&](int64_t row) {
    const int64_t n = row / height, h = row % height, ih = h - p.top;
    float* out = output + row * width * c;
    if (ih < 0 || ih >= p.input_height) {
      std::fill(out, out + width * c, 0.0f);
      return;
    }
    std::fill(out, out + p.left * c, 0.0f);
    const float* in = input + (n * p.input_height + ih) * p.input_width * c;
    std::copy(in, in + p.input_width * c, out + p.left * c);
    std::fill(out + (p.left + p.input_width) * c, out + width * c, 0.0f);
  });
}

void zero_padding2d_backward(const ZeroPadding2DParams& p, const float* output_gradient,
                             float* input_gradient) {
  const int64_t height = p.output_height(), width = p.output_width(), c = p.channels;
  parallel::parallel_for(p.batch * p.input_height, [&](int64_t row) {
    const int64_t n = row / p.input_height, ih = row % p.input_height;
    const float* in = output_gradient + ((n * height + ih + p.top) * width + p.left) * c;
    std::copy(in, in + p.input_width * c, input_gradient + row * p.input_width * c);
  });
}

void dropout_forward(const DropoutParams& p, const float* input, float* output) {
  using simd::floatv;
  using simd::uintv;
  const float scale = 1.0f / (1.0f - p.rate);
  const DropoutKey key = dropout_key(p);
  const float rate = p.rate;
  for_chunks(p.count, [=](int64_t begin, int64_t end) {
    // dropout_uniform(key, i) kLanes lanes at a time: hash32 in 32-bit vector arithmetic.
    const uintv lane = simd::lane_indices();
    const floatv rate_lanes = simd::broadcast(rate), scale_lanes = simd::broadcast(scale), zero = {};
    auto kept = [&](int64_t i, floatv values) {
      uintv x = (static_cast<uint32_t>(i) + lane) * key.multiplier + key.offset;
      x ^= x >> 16;
      x *= 0x7feb352du;
      x ^= x >> 15;
      x *= 0x846ca68bu;
      x ^= x >> 16;
      const floatv uniform = __builtin_convertvector(x >> 8, floatv) * (1.0f / 16777216.0f);
      return uniform >= rate_lanes ? values * scale_lanes : zero;
    };
    int64_t i = begin;
    for (; i + simd::kLanes <= end; i += simd::kLanes) simd::store(output + i, kept(i, simd::load(input + i)));
    // The last partial vector through masked moves (the hash of lanes past `end` is discarded).
    if (i < end) simd::store_partial(output + i, kept(i, simd::load_partial(input + i, end - i)), end - i);
  });
}

void dropout_backward(const DropoutParams& p, const float* output_gradient,
                      float* input_gradient) {
  dropout_forward(p, output_gradient, input_gradient);
}

void elu_forward(const EluParams& p, const float* input, float* output) {
  for_chunks(p.count, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) output[i] = elu_with_alpha(p, input[i]);
  });
}

void elu_backward(const EluParams& p, const float* input, const float* output_gradient, float* input_gradient) {
  for_chunks(p.count, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) input_gradient[i] = elu_with_alpha_gradient(p, input[i], output_gradient[i]);
  });
}

// Pixel rows of `channels` values, each against its alpha row (one alpha when channels are shared).
void prelu_forward(const PReluParams& p, const float* input, const float* alpha, float* output) {
  const int64_t c = p.channels;
  parallel::parallel_for(p.batch * p.height * p.width, [&](int64_t row) {
    const int64_t w = row % p.width, h = (row / p.width) % p.height;
    const float* a = alpha + p.alpha_index(h, w, 0);
    const float* x = input + row * c;
    float* y = output + row * c;
    if (p.shared_channels) {
      for (int64_t j = 0; j < c; ++j) y[j] = prelu(x[j], a[0]);
    } else {
      for (int64_t j = 0; j < c; ++j) y[j] = prelu(x[j], a[j]);
    }
  });
}

// The input gradient by pixel rows; the alpha gradient by alpha positions and channel blocks, each
// summing its own positions in (sample, row, column) order: bitwise the same on any thread count.
void prelu_backward(const PReluParams& p, const float* input, const float* alpha, const float* output_gradient,
                    float* input_gradient, float* alpha_gradient) {
  const int64_t c = p.channels;
  if (input_gradient != nullptr) {
    parallel::parallel_for(p.batch * p.height * p.width, [&](int64_t row) {
      const int64_t w = row % p.width, h = (row / p.width) % p.height;
      const float* a = alpha + p.alpha_index(h, w, 0);
      const float* x = input + row * c;
      const float* g = output_gradient + row * c;
      float* dx = input_gradient + row * c;
      for (int64_t j = 0; j < c; ++j) dx[j] = prelu_input_gradient(x[j], a[p.shared_channels ? 0 : j], g[j]);
    });
  }
  if (alpha_gradient == nullptr) return;
  constexpr int64_t kBlock = 64;
  const int64_t positions = p.alpha_height() * p.alpha_width();
  const int64_t blocks = p.shared_channels ? 1 : (c + kBlock - 1) / kBlock;
  parallel::parallel_for(positions * blocks, [&](int64_t task) {
    const int64_t position = task / blocks, block = task % blocks;
    const int64_t ah = position / p.alpha_width(), aw = position % p.alpha_width();
    const int64_t begin = p.shared_channels ? 0 : block * kBlock;
    const int64_t end = p.shared_channels ? c : std::min(c, begin + kBlock);
    float sums[kBlock] = {};
    for (int64_t n = 0; n < p.batch; ++n)
      for (int64_t h = p.shared_height ? 0 : ah; h < (p.shared_height ? p.height : ah + 1); ++h)
        for (int64_t w = p.shared_width ? 0 : aw; w < (p.shared_width ? p.width : aw + 1); ++w) {
          const int64_t offset = ((n * p.height + h) * p.width + w) * c;
          const float* x = input + offset;
          const float* g = output_gradient + offset;
          if (p.shared_channels) {
            for (int64_t j = begin; j < end; ++j) sums[0] += prelu_alpha_gradient(x[j], g[j]);
          } else {
            for (int64_t j = begin; j < end; ++j) sums[j - begin] += prelu_alpha_gradient(x[j], g[j]);
          }
        }
    float* destination = alpha_gradient + position * p.alpha_channels();
    if (p.shared_channels) {
      destination[0] = sums[0];
    } else {
      std::copy(sums, sums + (end - begin), destination + begin);
    }
  });
}

// By pixel rows: each element's factor is a hash of its noise position, so the split is free.
void noise_forward(const NoiseParams& p, const float* input, float* output) {
  const DropoutKey key = dropout_key(p.seed);
  const int64_t c = p.channels;
  parallel::parallel_for(p.batch * p.height * p.width, [&](int64_t row) {
    const int64_t w = row % p.width, h = (row / p.width) % p.height, n = row / (p.width * p.height);
    const float* x = input + row * c;
    float* y = output + row * c;
    if (p.shared_channels) {
      const float value = noise_value(p, key, p.noise_index(n, h, w, 0));
      for (int64_t j = 0; j < c; ++j) y[j] = apply_noise(p, x[j], value);
    } else {
      for (int64_t j = 0; j < c; ++j) y[j] = apply_noise(p, x[j], noise_value(p, key, p.noise_index(n, h, w, j)));
    }
  });
}

void noise_backward(const NoiseParams& p, const float* output_gradient, float* input_gradient) {
  if (p.kind == NoiseKind::gaussian_noise) {
    for_chunks(p.count(), [&](int64_t begin, int64_t end) {
      if (input_gradient != output_gradient) std::copy(output_gradient + begin, output_gradient + end, input_gradient + begin);
    });
    return;
  }
  noise_forward(p, output_gradient, input_gradient);
}

#define FASTCNN_STRINGIFY_INNER(name) #name
#define FASTCNN_STRINGIFY(name) FASTCNN_STRINGIFY_INNER(name)
#define FASTCNN_TABLE_NAME FASTCNN_STRINGIFY(FASTCNN_ISA)
#include "kernels/table.inc"
#undef FASTCNN_TABLE_NAME

}  // namespace fastcnn::kernels::FASTCNN_ISA
