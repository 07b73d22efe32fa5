// Optimised BatchNormalization. Per-channel sums are taken over fixed chunks of rows (partial sums
// in double, computed in parallel) and then added chunk by chunk in order, so the statistics do not
// depend on the number of threads. The apply and gradient passes are row-parallel with channels
// innermost (vectorised).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/optimized/max_pool_window.h"
#include "kernels/optimized/optimized.h"
#include "kernels/optimized/prefetch.h"
#include "kernels/optimized/simd.h"
#include "parallel.h"
#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

constexpr int64_t kRowsPerChunk = 512;
// Rows per step inside a chunk: 16 KiB of one tensor, so that a gradient routed from a max
// pooling's (batch_norm_backward) is written and read back in L1.
inline int64_t rows_per_step(int64_t channels) { return std::max<int64_t>(8, 4096 / std::max<int64_t>(channels, 1)); }

// The passes below stream their tensors row by row and request each row kPrefetchBytes ahead
// of reading it (prefetch.h).

// The sums run in double lanes: 8 per zmm register on avx512, 4 per ymm (or SSE pair) elsewhere.
// Each channel's sum is its own chain of double additions in row order, so the lane count never
// changes a result.
#if defined(__AVX512F__)
constexpr int64_t kDoubleLanes = 8;
#else
constexpr int64_t kDoubleLanes = 4;
#endif
typedef double doublev __attribute__((vector_size(kDoubleLanes * sizeof(double))));
typedef float floath __attribute__((vector_size(kDoubleLanes * sizeof(float))));

// The first `count` floats (count in [1, kDoubleLanes]), the other lanes zero; memory past
// `count` is never read (masked loads on the x86 tiers; the generic tier copies).
inline floath load_floats(const float* source, int64_t count) {
  floath value = {};
  if (count == kDoubleLanes) {  // every vector but a row's last: no mask, no variable-length copy
    std::memcpy(&value, source, sizeof value);
    return value;
  }
#if defined(__AVX512F__)
  value = reinterpret_cast<floath>(_mm256_maskz_loadu_ps(static_cast<__mmask8>((1u << count) - 1u), source));
#elif defined(__AVX2__)
  const __m128i lane = _mm_setr_epi32(0, 1, 2, 3);
  value = reinterpret_cast<floath>(_mm_maskload_ps(source, _mm_cmplt_epi32(lane, _mm_set1_epi32(static_cast<int>(count)))));
#else
  std::memcpy(&value, source, static_cast<size_t>(count) * sizeof(float));
#endif
  return value;
}

// Widening to double by the instruction (simd::widen says why; 8 lanes on avx512).
inline doublev to_double(floath value) {
#if defined(__AVX512F__)
  // The zero-masked form: the plain intrinsic's undefined pass-through trips GCC 12's
  // -Wmaybe-uninitialized; with every lane selected it is the same instruction.
  return reinterpret_cast<doublev>(_mm512_maskz_cvtps_pd(static_cast<__mmask8>(0xFF), reinterpret_cast<__m256>(value)));
#else
  return simd::widen(value);
#endif
}

// The forward's pre-activation y = x * scale + shift: one expression for the forward and both
// backward passes, so that the backward's recomputed y (and the fused ReLU's mask) is bitwise the
// forward's (with -ffp-contract=fast every call site contracts it to one FMA, which rounds the
// same at any vector width).
template <typename Vector>
inline Vector batch_norm_affine(Vector x, Vector scale, Vector shift) {
  return x * scale + shift;
}
inline doublev load_double(const double* source) {
  doublev value;
  std::memcpy(&value, source, sizeof value);
  return value;
}
// The first `count` doubles (count in [1, kDoubleLanes]), the other lanes zero; memory past `count`
// is never read.
inline doublev load_double_lanes(const double* source, int64_t count) {
  if (count == kDoubleLanes) return load_double(source);
#if defined(__AVX512F__)
  return reinterpret_cast<doublev>(_mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << count) - 1u), source));
#else
  doublev value = {};
  std::memcpy(&value, source, static_cast<size_t>(count) * sizeof(double));
  return value;
#endif
}
inline void store_double(double* destination, doublev value, int64_t count) {
#if defined(__AVX512F__)
  _mm512_mask_storeu_pd(destination, static_cast<__mmask8>((1u << count) - 1u), reinterpret_cast<__m512d>(value));
#elif defined(__AVX2__)
  const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
  _mm256_maskstore_pd(destination, _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), lane), reinterpret_cast<__m256d>(value));
#else
  std::memcpy(destination, &value, static_cast<size_t>(count) * sizeof(double));
#endif
}

// term's Terms values for channels c .. c + width - 1 of the vectors at x + offset (and y +
// offset; lanes past width are zero), y taken through the output activation's derivative where
// there is one (channel_sums), with the forward's factors for these channels in scale_lanes and
// shift_lanes.
template <int Terms, typename Term>
inline void vector_terms(const float* x, const float* y, int64_t offset, int64_t c, int64_t width, Term& term,
                         Activation activation, floath scale_lanes, floath shift_lanes, doublev* values) {
  const floath x_floats = load_floats(x + offset, width);
  floath y_floats = y != nullptr ? load_floats(y + offset, width) : floath{};
  if (activation != Activation::linear) {
    const floath pre_activation = batch_norm_affine(x_floats, scale_lanes, shift_lanes);
    const floath zero = {}, six = zero + 6.0f;
    const auto inside = activation == Activation::relu6 ? (pre_activation > zero) & (pre_activation < six)
                                                        : pre_activation > zero;
    y_floats = inside != 0 ? y_floats : zero;
  }
  term(to_double(x_floats), to_double(y_floats), c, values);
}

// The sums of one group of up to kGroupVectors channel vectors (channels first .. first +
// kDoubleLanes * Vectors, the last vector `last_width` wide) over rows [begin, end), added on to
// sums[k * channels + c] (the same chain of additions continued: a stored double reloads
// exactly). The group's Terms x Vectors accumulators stay in registers while whole rows stream by:
// independent chains of additions (a single vector's chain would wait on the adder's latency
// every row), each channel still summed in row order.
template <int Terms, int Vectors, bool LastWhole, typename Term>
void group_sums(int64_t begin, int64_t end, int64_t channels, int64_t first, int64_t last_width, const float* x,
                const float* y, Term& term, Activation activation, const float* scale, const float* shift,
                double* sums) {
  auto width_of = [last_width](int v) { return LastWhole || v < Vectors - 1 ? kDoubleLanes : last_width; };
  floath scale_lanes[Vectors] = {}, shift_lanes[Vectors] = {};
  if (activation != Activation::linear) {
    for (int v = 0; v < Vectors; ++v) {
      scale_lanes[v] = load_floats(scale + first + v * kDoubleLanes, kDoubleLanes);
      shift_lanes[v] = load_floats(shift + first + v * kDoubleLanes, kDoubleLanes);
    }
  }
  doublev acc[Terms][Vectors];
  for (int k = 0; k < Terms; ++k)
    for (int v = 0; v < Vectors; ++v) {
      acc[k][v] = load_double_lanes(sums + k * channels + first + v * kDoubleLanes, width_of(v));
    }
  const int64_t ahead = prefetch_rows(channels);
  const int64_t group_floats = (Vectors - 1) * kDoubleLanes + width_of(Vectors - 1);
  for (int64_t r = begin; r < end; ++r) {
    prefetch_floats(x, (r + ahead) * channels + first, group_floats);
    if (y != nullptr) prefetch_floats(y, (r + ahead) * channels + first, group_floats);
    for (int v = 0; v < Vectors; ++v) {
      const int64_t c = first + v * kDoubleLanes;
      doublev values[Terms];
      vector_terms<Terms>(x, y, r * channels + c, c, width_of(v), term, activation, scale_lanes[v], shift_lanes[v],
                          values);
      for (int k = 0; k < Terms; ++k) acc[k][v] += values[k];
    }
  }
  for (int k = 0; k < Terms; ++k)
    for (int v = 0; v < Vectors; ++v) store_double(sums + k * channels + first + v * kDoubleLanes, acc[k][v], width_of(v));
}

// The same sums over every channel, row by row, the accumulators in memory (L1): each row is read
// once, in address order. For rows wider than two groups this is the faster form: a group's pass
// reads one or two cache lines of every row, a stride the hardware prefetchers do not run ahead
// on, so the passes waited on memory latency (on Zen 3, a 64 x 32 x 32 x 96 input's sums took
// 2.8-3.1 ms in group passes and 1.6-1.7 ms row by row, against 1.6 ms for 16 channels in one
// group; a scratch benchmark, not committed). Each channel is still summed in row order, on from
// sums as group_sums does, so the results are bitwise the group passes'.
template <int Terms, typename Term>
void row_sums(int64_t begin, int64_t end, int64_t channels, const float* x, const float* y, Term& term,
              Activation activation, const float* scale, const float* shift, double* sums) {
  const int64_t whole = channels / kDoubleLanes * kDoubleLanes;
  const int64_t padded = whole + (whole < channels ? kDoubleLanes : 0);
  // Whole cache lines: a vector that straddles two lines costs two accesses each load and store.
  constexpr int64_t kLineDoubles = 64 / sizeof(double);
  std::vector<double> acc(static_cast<size_t>(Terms * padded + kLineDoubles), 0.0);
  double* const accumulators = acc.data() + (kLineDoubles - reinterpret_cast<uintptr_t>(acc.data()) / sizeof(double) % kLineDoubles) % kLineDoubles;
  for (int k = 0; k < Terms; ++k)
    std::memcpy(accumulators + k * padded, sums + k * channels, static_cast<size_t>(channels) * sizeof(double));
  const auto add_vector = [&](int64_t r, int64_t c, int64_t width) {
    floath scale_lanes = {}, shift_lanes = {};
    if (activation != Activation::linear) {
      scale_lanes = load_floats(scale + c, kDoubleLanes);
      shift_lanes = load_floats(shift + c, kDoubleLanes);
    }
    doublev values[Terms];
    vector_terms<Terms>(x, y, r * channels + c, c, width, term, activation, scale_lanes, shift_lanes, values);
    for (int k = 0; k < Terms; ++k) {
      double* const slot = accumulators + k * padded + c;
      const doublev sum = load_double(slot) + values[k];
      std::memcpy(slot, &sum, sizeof sum);
    }
  };
  const int64_t ahead = prefetch_rows(channels);
  for (int64_t r = begin; r < end; ++r) {
    prefetch_floats(x, (r + ahead) * channels, channels);
    if (y != nullptr) prefetch_floats(y, (r + ahead) * channels, channels);
    for (int64_t c = 0; c < whole; c += kDoubleLanes) add_vector(r, c, kDoubleLanes);
    if (whole < channels) add_vector(r, whole, channels - whole);
  }
  for (int k = 0; k < Terms; ++k)
    std::memcpy(sums + k * channels, accumulators + k * padded, static_cast<size_t>(channels) * sizeof(double));
}

constexpr int64_t kGroupVectors = 4;

// totals[k][c] = sum over rows r of term_k(x[r, c], y[r, c]) for k < Terms, in double. Rows go in
// fixed chunks (partial sums in parallel, then added chunk by chunk in order), so the result does
// not depend on the number of threads; within a chunk, rows of up to two groups of kGroupVectors
// vectors of kDoubleLanes are summed group by group (group_sums), wider rows row by row
// (row_sums), the last vector masked. term(x, y, c) returns the Terms doublev values for channels
// c..c+kDoubleLanes-1. With an output activation (relu, relu6), y is a gradient taken through it:
// y where the forward's pre-activation x * scale + shift lies strictly inside the activation's
// linear part, else 0 (ops/batch_norm.h).
// Each chunk goes in steps of rows_per_step rows (sums carried from step to step, so the same
// chains of additions); y_rows(begin, end) returns a step's rows of y (row begin first; null: no y).
template <int Terms, typename Term, typename YRows>
void channel_sums(int64_t rows, int64_t channels, const float* input, YRows&& y_rows, Term&& term,
                  std::vector<double> (&totals)[Terms], Activation activation = Activation::linear,
                  const float* scale = nullptr, const float* shift = nullptr) {
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  std::vector<double> partial(static_cast<size_t>(chunks * Terms * channels), 0.0);
  parallel::parallel_for(chunks, [&](int64_t chunk) {
    double* sums = partial.data() + chunk * Terms * channels;
    const int64_t chunk_end = std::min(rows, (chunk + 1) * kRowsPerChunk), step_rows = rows_per_step(channels);
    for (int64_t first_row = chunk * kRowsPerChunk; first_row < chunk_end; first_row += step_rows) {
      const int64_t end = std::min(chunk_end, first_row + step_rows) - first_row;
      constexpr int64_t begin = 0;  // the rows below count from the step's first
      const float* x = input + first_row * channels;
      const float* y = y_rows(first_row, first_row + end);
      if (channels > 2 * kGroupVectors * kDoubleLanes) {
        row_sums<Terms>(begin, end, channels, x, y, term, activation, scale, shift, sums);
        continue;
      }
      for (int64_t first = 0; first < channels; first += kGroupVectors * kDoubleLanes) {
        const int64_t width = std::min(kGroupVectors * kDoubleLanes, channels - first);
        const int64_t vectors = (width + kDoubleLanes - 1) / kDoubleLanes;
        const int64_t last_width = width - (vectors - 1) * kDoubleLanes;
        const auto group = [&](auto vectors_constant, auto last_whole_constant) {
          group_sums<Terms, decltype(vectors_constant)::value, decltype(last_whole_constant)::value>(
              begin, end, channels, first, last_width, x, y, term, activation, scale, shift, sums);
        };
        // Whole last vectors (the common channel counts) take plain loads only: a masked load in the
        // loop keeps the compiler from holding the accumulators in registers across rows.
        const auto sized = [&](auto vectors_constant) {
          if (last_width == kDoubleLanes) {
            group(vectors_constant, std::true_type{});
          } else {
            group(vectors_constant, std::false_type{});
          }
        };
        static_assert(kGroupVectors == 4, "one case per group size");
        switch (vectors) {
          case 1: sized(std::integral_constant<int, 1>{}); break;
          case 2: sized(std::integral_constant<int, 2>{}); break;
          case 3: sized(std::integral_constant<int, 3>{}); break;
          default: sized(std::integral_constant<int, 4>{});
        }
      }
    }
  });
  for (int k = 0; k < Terms; ++k) totals[k].assign(static_cast<size_t>(channels), 0.0);
  for (int64_t chunk = 0; chunk < chunks; ++chunk)
    for (int k = 0; k < Terms; ++k)
      for (int64_t c = 0; c < channels; ++c) totals[k][c] += partial[(chunk * Terms + k) * channels + c];
}

// The `width` window positions at `bytes` as lanes (Pool2DParams::window_positions).
inline simd::maskv load_positions(const uint8_t* bytes, int64_t width) {
  if (width == simd::kLanes) return simd::widen_bytes(bytes);
  uint8_t lanes[simd::kLanes] = {};
  std::copy(bytes, bytes + width, lanes);
  return simd::widen_bytes(lanes);
}

// Rows [begin, end) of the gradient a max pooling's backward would hand this layer
// (BatchNormParams::max_pool), at routed[(r - begin) * channels + c]: each window's
// gradient at the first maximum its forward recorded, zero at its other positions and at rows and
// columns no window covers.
void route_pooled_gradient(const Pool2DParams& pool, int64_t channels, int64_t begin, int64_t end,
                           const float* pooled, float* routed) {
  const int64_t image_height = pool.input_height, image_width = pool.input_width;
  // Row r's image and its window (oh, ow) with the offset inside it, stepped from the divisions at
  // the start (a division per row cost as much as the row's work).
  const int64_t first_pixel = begin % (image_height * image_width);
  int64_t image = begin / (image_height * image_width), iw = first_pixel % image_width;
  int64_t oh = first_pixel / image_width / pool.stride_height;
  int64_t row_offset = first_pixel / image_width % pool.stride_height;
  int64_t ow = iw / pool.stride_width, column_offset = iw % pool.stride_width;
  for (int64_t r = begin; r < end; ++r) {
    if (r > begin && ++column_offset == pool.stride_width) column_offset = 0, ++ow;
    if (r > begin && ++iw == image_width) {
      iw = 0, ow = 0, column_offset = 0;
      if (++row_offset == pool.stride_height) row_offset = 0, ++oh;
      if (oh * pool.stride_height + row_offset == image_height) oh = 0, row_offset = 0, ++image;
    }
    float* const row = routed + (r - begin) * channels;
    if (oh >= pool.output_height || ow >= pool.output_width || row_offset >= pool.pool_height ||
        column_offset >= pool.pool_width) {
      std::fill(row, row + channels, 0.0f);
      continue;
    }
    const simd::maskv position =
        simd::broadcast_int(static_cast<int32_t>(row_offset * pool.pool_width + column_offset));
    const int64_t window = ((image * pool.output_height + oh) * pool.output_width + ow) * channels;
    const float* gradient = pooled + window;
    const uint8_t* positions = pool.window_positions + window;
    for (int64_t c = 0; c < channels; c += simd::kLanes) {
      const int64_t width = std::min<int64_t>(simd::kLanes, channels - c);
      const simd::maskv here = load_positions(positions + c, width) == position;
      simd::store_lanes(row + c, here ? simd::load_lanes(gradient + c, width) : simd::floatv{}, width);
    }
  }
}

template <typename Body>
void for_row_chunks(int64_t rows, Body&& body) {
  parallel::parallel_for((rows + kRowsPerChunk - 1) / kRowsPerChunk, [&](int64_t chunk) {
    body(chunk * kRowsPerChunk, std::min(rows, (chunk + 1) * kRowsPerChunk));
  });
}

}  // namespace

void batch_norm_statistics(const BatchNormParams& p, const float* input, float* mean,
                           float* variance) {
  // One pass (the input is read from memory once): sums of x and x^2 in double, then
  // variance = (sum x^2 - (sum x)^2 / N) / N. Double keeps the cancellation harmless unless
  // |mean| / std exceeds ~1e5, far beyond activations (the reference takes two passes).
  const int64_t channels = p.channels;
  std::vector<double> sums[2];
  channel_sums<2>(
      p.rows, channels, input, [](int64_t, int64_t) -> const float* { return nullptr; },
      [](doublev x, doublev, int64_t, doublev* values) {
        values[0] = x;
        values[1] = x * x;
      },
      sums);
  const double count = static_cast<double>(p.rows);
  for (int64_t c = 0; c < channels; ++c) {
    const double average = p.rows > 0 ? sums[0][c] / count : 0.0;
    const double spread = p.rows > 0 ? (sums[1][c] - sums[0][c] * average) / count : 0.0;
    mean[c] = static_cast<float>(average);
    variance[c] = static_cast<float>(std::max(spread, 0.0));
  }
}

void batch_norm_forward(const BatchNormParams& p, const float* input, const float* mean,
                        const float* variance, const float* gamma, const float* beta, float* output) {
  const int64_t channels = p.channels;
  std::vector<float> scale(static_cast<size_t>(channels)), shift(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) batch_norm_scale_shift(gamma, beta, mean, variance, p.epsilon, c, scale[c], shift[c]);
  const float* s = scale.data();
  const float* t = shift.data();
  if (p.max_pool != nullptr) {
    // The pooled output only: each window's maximum of act(x * scale + shift), computed where it
    // is compared (the same expression as below, so the same values), and its position.
    const Pool2DParams& pool = *p.max_pool;
    const int64_t image_size = pool.input_height * pool.input_width;
    parallel::parallel_for(pool.batch * pool.output_height, [&](int64_t image_row) {
      const float* image = input + image_row / pool.output_height * image_size * channels;
      max_pool_output_row(pool, image_row, output, [&](int64_t ih, int64_t iw, int64_t c, int64_t width) {
        const simd::floatv x = simd::load_lanes(image + (ih * pool.input_width + iw) * channels + c, width);
        const simd::floatv value = batch_norm_affine(x, simd::load_lanes(s + c, width), simd::load_lanes(t + c, width));
        return activate_on_vector(value, p.output_activation);
      });
    });
    return;
  }
  const int64_t ahead = prefetch_rows(channels);
  for_row_chunks(p.rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      prefetch_floats(input, (r + ahead) * channels, channels);
      prefetch_floats(output, (r + ahead) * channels, channels, true);
      const float* x = input + r * channels;
      float* y = output + r * channels;
      for (int64_t c = 0; c < channels; c += simd::kLanes) {  // the last channels masked
        const int64_t width = std::min<int64_t>(simd::kLanes, channels - c);
        const simd::floatv value =
            batch_norm_affine(simd::load_lanes(x + c, width), simd::load_lanes(s + c, width), simd::load_lanes(t + c, width));
        simd::store_lanes(y + c, activate_on_vector(value, p.output_activation), width);
      }
    }
  });
}

void batch_norm_backward(const BatchNormParams& p, const float* input, const float* mean,
                         const float* variance, const float* gamma, const float* output_gradient,
                         float* input_gradient, float* gamma_gradient, float* beta_gradient) {
  const int64_t channels = p.channels;
  std::vector<double> inverse_std(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) inverse_std[c] = 1.0 / std::sqrt(static_cast<double>(variance[c]) + p.epsilon);
  // The forward's factors (with an output activation: its pre-activation is recomputed), padded
  // to whole vectors of either width.
  const Activation activation = p.output_activation;
  const Pool2DParams* pool = p.max_pool;
  std::vector<float> forward_scale, forward_shift;
  if (activation != Activation::linear) {
    const size_t padded = static_cast<size_t>(channels + std::max<int64_t>(simd::kLanes, kDoubleLanes));
    forward_scale.resize(padded);
    forward_shift.resize(padded);
    for (int64_t c = 0; c < channels; ++c) {
      batch_norm_scale_shift(gamma, p.beta, mean, variance, p.epsilon, c, forward_scale[c], forward_shift[c]);
    }
  }
  // d beta = sum dy; d gamma = sum dy * x_hat = inverse_std * sum dy * (x - mean).
  std::vector<double> centre(static_cast<size_t>(channels + kDoubleLanes));  // whole vectors past the end
  for (int64_t c = 0; c < channels; ++c) centre[c] = mean[c];
  const double* m_c = centre.data();
  // The output gradient's rows of one step: the tensor's, or routed from the pooled gradient into
  // the calling thread's scratch (a step's worth, in L1 while the step's pass reads it).
  const auto gradient_rows = [&, pool](int64_t begin, int64_t end) -> const float* {
    if (pool == nullptr) return output_gradient + begin * channels;
    thread_local std::vector<float> routed;
    const int64_t size = (end - begin) * channels;
    if (static_cast<int64_t>(routed.size()) < size) routed.resize(static_cast<size_t>(size));
    float* const rows = routed.data();
    route_pooled_gradient(*pool, channels, begin, end, output_gradient, rows);
    return rows;
  };
  std::vector<double> sums[2];
  channel_sums<2>(
      p.rows, channels, input, gradient_rows,
      [m_c](doublev x, doublev dy, int64_t c, doublev* values) {
        values[0] = dy;
        values[1] = dy * (x - load_double(m_c + c));
      },
      sums, activation, forward_scale.data(), forward_shift.data());
  for (int64_t c = 0; c < channels; ++c) sums[1][c] *= inverse_std[c];
  for (int64_t c = 0; c < channels; ++c) {
    if (beta_gradient != nullptr) beta_gradient[c] = static_cast<float>(sums[0][c]);
    if (gamma_gradient != nullptr) gamma_gradient[c] = static_cast<float>(sums[1][c]);
  }
  if (input_gradient == nullptr || p.rows == 0) return;
  // dx = a * (dy - mean_dy - x_hat * mean_dy_xhat) per channel, a = gamma * inv_std,
  // x_hat = (x - mean) * inv_std (written so that a single row gives exactly zero).
  const double count = static_cast<double>(p.rows);
  // Per channel: dx = a * (dy - mean_dy - (x - mean) * slope), slope = inv_std * mean_dy_xhat.
  std::vector<float> a(static_cast<size_t>(channels)), mean_dy(static_cast<size_t>(channels)),
      slope(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    a[c] = static_cast<float>((gamma != nullptr ? gamma[c] : 1.0) * inverse_std[c]);
    mean_dy[c] = static_cast<float>(sums[0][c] / count);
    slope[c] = static_cast<float>(inverse_std[c]) * static_cast<float>(sums[1][c] / count);
  }
  const bool relu_input = p.relu_input;
  const float *a_c = a.data(), *mean_dy_c = mean_dy.data(), *mean_c = mean, *slope_c = slope.data();
  const float *scale_c = forward_scale.data(), *shift_c = forward_shift.data();
  const int64_t ahead = prefetch_rows(channels), step_rows = rows_per_step(channels);
  for_row_chunks(p.rows, [=, &gradient_rows](int64_t begin, int64_t end) {
    using simd::floatv;
    const floatv zero = {};
    const floatv six = simd::broadcast(6.0f);
    const float* step_gradient = nullptr;
    int64_t step_begin = begin;
    for (int64_t r = begin; r < end; ++r) {
      if (r == begin || r - step_begin == step_rows) {
        step_begin = r;
        step_gradient = gradient_rows(r, std::min(end, r + step_rows));
      }
      prefetch_floats(input, (r + ahead) * channels, channels);
      if (pool == nullptr) prefetch_floats(output_gradient, (r + ahead) * channels, channels);
      prefetch_floats(input_gradient, (r + ahead) * channels, channels, true);
      const float* x = input + r * channels;
      const float* dy = step_gradient + (r - step_begin) * channels;
      float* dx = input_gradient + r * channels;
      for (int64_t c = 0; c < channels; c += simd::kLanes) {
        const int64_t width = std::min<int64_t>(simd::kLanes, channels - c);
        auto load = [width](const float* source) {
          return width == simd::kLanes ? simd::load(source) : simd::load_partial(source, width);
        };
        const floatv x_lanes = load(x + c);
        floatv gradient = load(dy + c);
        if (activation != Activation::linear) {
          const floatv pre_activation = batch_norm_affine(x_lanes, simd::load(scale_c + c), simd::load(shift_c + c));
          gradient = activation == Activation::relu6
                         ? ((pre_activation > zero) & (pre_activation < six) ? gradient : zero)
                         : (pre_activation > zero ? gradient : zero);
        }
        floatv value = load(a_c + c) * (gradient - load(mean_dy_c + c) - (x_lanes - load(mean_c + c)) * load(slope_c + c));
        if (relu_input) value = x_lanes > zero ? value : zero;  // the ReLU's derivative (NaN input: 0)
        if (width == simd::kLanes) {
          simd::store(dx + c, value);
        } else {
          simd::store_partial(dx + c, value, width);
        }
      }
    }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
