// Optimised int8 inference kernels (ops/quantized.h).
//
// The convolution is a matrix product accumulators (rows x columns) = A (rows x depth) * W (depth x
// columns), rows = batch * output_height * output_width, depth = kernel_height * kernel_width *
// input_channels: each thread gathers a tile of A's rows (im2col, zero outside the image) and runs
// a register-blocked micro-kernel of up to 4 rows x 16 columns over it.
//
// The AVX2 product: both operands are sign-extended to int16 and multiplied with vpmaddwd, which
// sums adjacent pairs of int16 products into int32 lanes: each lane gets a[k] w[k][c] + a[k+1]
// w[k+1][c]. That is exact for every int8 value: a product is at most 128 * 128 = 2^14 and a pair
// 2^15, far inside int32 (vpmaddwd saturates only for the pair (-32768, -32768), which int8 values
// never form). The faster-looking vpmaddubsw (unsigned 8-bit x signed 8-bit, 32 products per
// instruction) adds its pairs into int16 with saturation: 255 * 127 * 2 overflows, so it is exact
// only with unsigned (offset) activations and weights cut to 7 bits, which costs accuracy. Hence
// A and W are held as int16 pairs here: W packed once per call (column blocks of 8, depth padded
// to even with zeros), A sign-extended while gathered. vpmaddwd does 16 multiply-adds per
// instruction, the same count as a float32 FMA on 8 lanes, so on AVX2 int8 can gain only through
// smaller tensors between layers, and loses to float32 layers that run Winograd (fewer
// multiply-adds; measured: benchmarks/results/quantization.md). The generic tier runs the scalar
// micro-kernel below.
//
// The avx512 tier, on a CPU with AVX-512 VNNI (checked at run time: Skylake-X has the tier's F, BW,
// VL and DQ without it, and runs the AVX2 path above compiled again), uses vpdpbusd: each of its
// 16 int32 lanes adds 4 products of an unsigned byte and a signed byte, 64 multiply-adds per
// instruction, 4x vpmaddwd. The activations are signed, so they enter as u = a + 128 (0..255) and
// each column's compensation 128 * sum_k w[k][c], computed when the weights are packed, is
// subtracted (the accumulators start at its negation): sum_k (a + 128) w = sum_k a w + 128 sum_k w.
// Bounds: one instruction adds
// at most 4 * 255 * 128 = 130560 in magnitude to a lane, so the running sum of (a + 128) w can pass
// 2^31 once depth > 2^31 / (255 * 128) = 65793; vpdpbusd (not the saturating vpdpbusds) and the
// subtraction wrap modulo 2^32, and the true result sum_k a w fits int32 (check_int8_depth), so
// the wrapped arithmetic still gives it exactly. The compensation itself is at most
// 128 * 128 * kInt8MaxDepth < 2^31. Padding: positions outside the image are a = 0, u = 128, and
// count in the compensation like any other; the depth is padded to a multiple of 4 with zero
// weights, whose products are 0 whatever the activation byte there.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "kernels/optimized/optimized.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

constexpr int64_t kBlockColumns = 8;  // int32 lanes of one ymm register
// 4 rows x 2 blocks = 8 accumulators, 2 weight registers and the input broadcasts: within the 16
// ymm registers (6 rows, 12 accumulators, made GCC keep some on the stack).
constexpr int kMicroRows = 4;
constexpr int64_t kTileRows = 24;     // rows gathered per task (6 micro-tiles)

// W (depth x columns, int8) as int16 pairs: block b, pair p holds, for its 8 columns c,
// (W[2p][8b + c], W[2p + 1][8b + c]); zero beyond depth and columns.
std::vector<int16_t> pack_weights(const int8_t* kernel, int64_t depth, int64_t columns, int64_t pairs,
                                  int64_t blocks) {
  std::vector<int16_t> packed(static_cast<size_t>(blocks * pairs * 2 * kBlockColumns), 0);
  for (int64_t k = 0; k < depth; ++k)
    for (int64_t c = 0; c < columns; ++c) {
      const int64_t block = c / kBlockColumns, lane = c % kBlockColumns;
      packed[static_cast<size_t>(((block * pairs + k / 2) * kBlockColumns + lane) * 2 + k % 2)] =
          kernel[k * columns + c];
    }
  return packed;
}

// Rows [first, first + count) of A (each the input patch of one output position), sign-extended,
// into `destination` (row stride 2 * pairs; the odd last value zero). The output position advances
// by increments (no division per row), and the copies are plain loops, not memset / memcpy calls:
// with few input channels (a first layer's 1 or 3) a call per pixel costs more than the copy.
void gather_rows(const Conv2DParams& p, const int8_t* input, int64_t first, int64_t count, int64_t pairs,
                 int16_t* destination) {
  int64_t ow = first % p.output_width;
  int64_t oh = (first / p.output_width) % p.output_height;
  int64_t n = first / (p.output_width * p.output_height);
  const int64_t channels = p.input_channels;
  for (int64_t r = 0; r < count; ++r) {
    int16_t* out = destination + r * 2 * pairs;
    for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
      const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
      const bool row_inside = ih >= 0 && ih < p.input_height;
      for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
        const int64_t iw = ow * p.stride_width - p.pad_left + kw * p.dilation_width;
        if (row_inside && iw >= 0 && iw < p.input_width) {
          const int8_t* source = input + ((n * p.input_height + ih) * p.input_width + iw) * channels;
          for (int64_t ci = 0; ci < channels; ++ci) out[ci] = source[ci];
        } else {
          for (int64_t ci = 0; ci < channels; ++ci) out[ci] = 0;
        }
        out += channels;
      }
    }
    if (2 * pairs > int8_depth(p)) *out = 0;
    if (++ow == p.output_width) {
      ow = 0;
      if (++oh == p.output_height) {
        oh = 0;
        ++n;
      }
    }
  }
}

// accumulators[r][b * 8 + c] for Rows rows of A (a, row stride a_stride) and Blocks column blocks
// from `block` on; `valid_columns` of them are stored.
template <int Rows, int Blocks>
void micro_kernel(const int16_t* a, int64_t a_stride, const int16_t* packed, int64_t pairs, int64_t block,
                  int32_t* out, int64_t out_stride, int64_t valid_columns) {
#if defined(__AVX2__)
  // The loops over rows and blocks are unrolled completely, so that the accumulators live in
  // registers (without the pragmas GCC kept them on the stack: a load and a store per product).
  __m256i sums[Rows][Blocks];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 2
    for (int b = 0; b < Blocks; ++b) sums[r][b] = _mm256_setzero_si256();
  const int16_t* weights = packed + block * pairs * 2 * kBlockColumns;
  const int64_t block_stride = pairs * 2 * kBlockColumns;
  for (int64_t p = 0; p < pairs; ++p) {
    __m256i w[Blocks];
#pragma GCC unroll 2
    for (int b = 0; b < Blocks; ++b) {
      w[b] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(weights + b * block_stride + p * 2 * kBlockColumns));
    }
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + r * a_stride + 2 * p, sizeof pair);
      const __m256i x = _mm256_set1_epi32(pair);
#pragma GCC unroll 2
      for (int b = 0; b < Blocks; ++b) sums[r][b] = _mm256_add_epi32(sums[r][b], _mm256_madd_epi16(x, w[b]));
    }
  }
  for (int r = 0; r < Rows; ++r) {
    if (valid_columns == Blocks * kBlockColumns) {
      for (int b = 0; b < Blocks; ++b) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + r * out_stride + b * kBlockColumns), sums[r][b]);
      }
    } else {
      int32_t row[Blocks * kBlockColumns];
      for (int b = 0; b < Blocks; ++b) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + b * kBlockColumns), sums[r][b]);
      }
      std::memcpy(out + r * out_stride, row, static_cast<size_t>(valid_columns) * sizeof(int32_t));
    }
  }
#else
  int32_t sums[Rows][Blocks * kBlockColumns] = {};
  for (int b = 0; b < Blocks; ++b) {
    const int16_t* weights = packed + (block + b) * pairs * 2 * kBlockColumns;
    for (int64_t p = 0; p < pairs; ++p)
      for (int r = 0; r < Rows; ++r) {
        const int32_t a0 = a[r * a_stride + 2 * p], a1 = a[r * a_stride + 2 * p + 1];
        for (int64_t c = 0; c < kBlockColumns; ++c) {
          sums[r][b * kBlockColumns + c] += a0 * weights[(p * kBlockColumns + c) * 2] +
                                            a1 * weights[(p * kBlockColumns + c) * 2 + 1];
        }
      }
  }
  for (int r = 0; r < Rows; ++r) {
    std::memcpy(out + r * out_stride, sums[r], static_cast<size_t>(valid_columns) * sizeof(int32_t));
  }
#endif
}

template <int Blocks>
void micro_kernel_rows(int rows, const int16_t* a, int64_t a_stride, const int16_t* packed, int64_t pairs,
                       int64_t block, int32_t* out, int64_t out_stride, int64_t valid_columns) {
  switch (rows) {
    case 4: micro_kernel<4, Blocks>(a, a_stride, packed, pairs, block, out, out_stride, valid_columns); return;
    case 3: micro_kernel<3, Blocks>(a, a_stride, packed, pairs, block, out, out_stride, valid_columns); return;
    case 2: micro_kernel<2, Blocks>(a, a_stride, packed, pairs, block, out, out_stride, valid_columns); return;
    default: micro_kernel<1, Blocks>(a, a_stride, packed, pairs, block, out, out_stride, valid_columns); return;
  }
}


#if defined(__AVX512F__)
// ---- AVX-512 VNNI ----
namespace vnni {

constexpr int64_t kLanes = 16;   // int32 lanes (columns) of one zmm register
// 5 rows x 4 blocks: 20 accumulators, 4 weight vectors and the broadcast in the 32 zmm registers.
// (With 6 rows, 29 registers, GCC 12 stored two accumulators to the stack on every step.)
constexpr int kMaxRows = 5;
constexpr int kMaxBlocks = 4;
constexpr int64_t kTileRows = 40;  // rows gathered per task (8 micro-tiles)
constexpr int64_t kLayout = 3001;  // PackedKernelCache layout id of this packing

bool cpu_has_vnni() {
  static const bool supported = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") != 0;
  }();
  return supported;
}

// The packing, in int32 words: block b (16 columns), quad q: word (b * quads + q) * 16 + lane holds
// the bytes W[4q + j][16b + lane], j = 0..3 (zero beyond depth and columns); then, from word
// blocks * quads * 16 on, each column's compensation negated, -128 * sum_k W[k][c] (zero past the last).
int64_t packed_words(int64_t quads, int64_t blocks) { return blocks * kLanes * (quads + 1); }

void pack_weights(const int8_t* kernel, int64_t depth, int64_t columns, int64_t quads, int64_t blocks,
                  int32_t* packed) {
  auto* bytes = reinterpret_cast<int8_t*>(packed);  // byte access to the int32 words (char aliasing rule)
  std::memset(packed, 0, static_cast<size_t>(packed_words(quads, blocks)) * sizeof(int32_t));
  int32_t* negated_compensation = packed + blocks * quads * kLanes;
  for (int64_t c = 0; c < columns; ++c) {
    const int64_t block = c / kLanes, lane = c % kLanes;
    int64_t sum = 0;
    for (int64_t k = 0; k < depth; ++k) {
      const int8_t w = kernel[k * columns + c];
      bytes[((block * quads + k / 4) * kLanes + lane) * 4 + k % 4] = w;
      sum += w;
    }
    negated_compensation[c] = static_cast<int32_t>(-128 * sum);
  }
}

// destination[i] = source[i] + 128 (as bytes: the sign bit flipped) for i < count, and
// fill_offset_zero writes 128 (a = 0): 64 bytes per masked AVX-512 BW load / store, so that the
// few bytes of a first layer's taps (1 or 3 channels) cost one instruction each, not a loop.
inline void copy_offset(const int8_t* source, uint8_t* destination, int64_t count) {
  const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
  for (; count > 0; count -= 64, source += 64, destination += 64) {
    const __mmask64 mask = count >= 64 ? ~__mmask64{0} : (__mmask64{1} << count) - 1;
    _mm512_mask_storeu_epi8(destination, mask, _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, source), sign));
  }
}
inline void fill_offset_zero(uint8_t* destination, int64_t count) {
  const __m512i offset_zero = _mm512_set1_epi8(static_cast<char>(0x80));
  for (; count > 0; count -= 64, destination += 64) {
    const __mmask64 mask = count >= 64 ? ~__mmask64{0} : (__mmask64{1} << count) - 1;
    _mm512_mask_storeu_epi8(destination, mask, offset_zero);
  }
}

// Rows [first, first + count) of A as bytes a + 128 (row stride 4 * quads; 128 outside the image
// and in the depth padding). The output position advances by increments, as in gather_rows above.
void gather_rows(const Conv2DParams& p, const int8_t* input, int64_t first, int64_t count, int64_t quads,
                 uint8_t* destination) {
  int64_t ow = first % p.output_width;
  int64_t oh = (first / p.output_width) % p.output_height;
  int64_t n = first / (p.output_width * p.output_height);
  const int64_t channels = p.input_channels, depth = int8_depth(p);
  for (int64_t r = 0; r < count; ++r) {
    uint8_t* out = destination + r * 4 * quads;
    const int64_t first_iw = ow * p.stride_width - p.pad_left;
    // With unit dilation a window row inside the image is one contiguous run of kernel_width *
    // channels bytes: one copy instead of one per tap.
    const bool window_row_contiguous =
        p.dilation_width == 1 && first_iw >= 0 && first_iw + p.kernel_width <= p.input_width;
    for (int64_t kh = 0; kh < p.kernel_height; ++kh) {
      const int64_t ih = oh * p.stride_height - p.pad_top + kh * p.dilation_height;
      const bool row_inside = ih >= 0 && ih < p.input_height;
      if (row_inside && window_row_contiguous) {
        const int8_t* source = input + ((n * p.input_height + ih) * p.input_width + first_iw) * channels;
        const int64_t run = p.kernel_width * channels;
        copy_offset(source, out, run);
        out += run;
        continue;
      }
      for (int64_t kw = 0; kw < p.kernel_width; ++kw) {
        const int64_t iw = ow * p.stride_width - p.pad_left + kw * p.dilation_width;
        if (row_inside && iw >= 0 && iw < p.input_width) {
          copy_offset(input + ((n * p.input_height + ih) * p.input_width + iw) * channels, out, channels);
        } else {
          fill_offset_zero(out, channels);
        }
        out += channels;
      }
    }
    fill_offset_zero(out, 4 * quads - depth);
    if (++ow == p.output_width) {
      ow = 0;
      if (++oh == p.output_height) {
        oh = 0;
        ++n;
      }
    }
  }
}

// Where the VNNI kernel puts its sums: the int32 accumulators, or (dequantize) the float32 values
// act(sum * column_scales[c] + bias[c]) of dequantize_int32, computed on the registers.
struct VnniOutput {
  int32_t* accumulators = nullptr;
  float* values = nullptr;
  const float* column_scales = nullptr;
  const float* bias = nullptr;  // may be null
  Activation activation = Activation::linear;
};

// The dequantizing epilogue of the VNNI micro-kernel on its tile of sums (rows x blocks * 16, in
// L1): output.values = act(sum * column_scales + bias) with relu / relu6 as a clamp to [lower,
// upper] (no NaN: the sums are integers). Apart from the micro-kernel and not inlined into it:
// computed on its registers directly, this epilogue made GCC 12 store accumulators to the stack
// inside the multiply-add loop.
__attribute__((noinline)) void dequantize_tile(const int32_t* tile, int rows, int blocks, const VnniOutput& output,
                                               int64_t row, int64_t columns, int64_t first_column,
                                               __mmask16 last_mask) {
  const bool relu = output.activation == Activation::relu || output.activation == Activation::relu6;
  const __m512 lower = _mm512_set1_ps(relu ? 0.0f : -std::numeric_limits<float>::infinity());
  const __m512 upper =
      _mm512_set1_ps(output.activation == Activation::relu6 ? 6.0f : std::numeric_limits<float>::infinity());
  for (int b = 0; b < blocks; ++b) {
    const __mmask16 mask = b == blocks - 1 ? last_mask : static_cast<__mmask16>(0xFFFF);
    const __m512 scale = _mm512_maskz_loadu_ps(mask, output.column_scales + first_column + b * kLanes);
    const __m512 bias = output.bias != nullptr ? _mm512_maskz_loadu_ps(mask, output.bias + first_column + b * kLanes)
                                               : _mm512_setzero_ps();
    for (int r = 0; r < rows; ++r) {
      const __m512 sum = _mm512_cvtepi32_ps(_mm512_load_si512(tile + (r * blocks + b) * kLanes));
      const __m512 value = _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(sum, scale, bias), lower), upper);
      _mm512_mask_storeu_ps(output.values + (row + r) * columns + first_column + b * kLanes, mask, value);
    }
  }
}

// Rows of the output for Rows rows of A (a, row stride 4 * quads) and Blocks column blocks from
// `block` on, from output row `row` on; the last block stores `last_lanes` lanes. The loops over
// rows and blocks are unrolled completely so that the accumulators stay in registers. They start
// at minus the compensation, so the sums leave the loop final. (Subtracting it after the loop, or
// storing under a mask chosen per block, made GCC keep the accumulators on the stack as well: a
// store per vpdpbusd.) Dequantize: the epilogue of dequantize_int32 with relu / relu6 on the
// vector (activates_on_vector); the driver applies other activations to the stored rows.
template <int Rows, int Blocks, bool Dequantize>
__attribute__((target("avx512vnni"))) void micro_kernel(const uint8_t* a, const int32_t* packed, int64_t quads,
                                                        int64_t blocks, int64_t block, const VnniOutput& output,
                                                        int64_t row, int64_t columns, int64_t last_lanes) {
  const int64_t a_stride = 4 * quads;
  const int32_t* negated_compensation = packed + blocks * quads * kLanes + block * kLanes;
  __m512i sums[Rows][Blocks];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < Blocks; ++b) sums[r][b] = _mm512_loadu_si512(negated_compensation + b * kLanes);
  const int32_t* weights = packed + block * quads * kLanes;
  const int64_t block_stride = quads * kLanes;
  for (int64_t q = 0; q < quads; ++q) {
    __m512i w[Blocks];
#pragma GCC unroll 4
    for (int b = 0; b < Blocks; ++b) w[b] = _mm512_loadu_si512(weights + b * block_stride + q * kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      int32_t quad;
      std::memcpy(&quad, a + r * a_stride + 4 * q, sizeof quad);
      const __m512i x = _mm512_set1_epi32(quad);
#pragma GCC unroll 4
      for (int b = 0; b < Blocks; ++b) sums[r][b] = _mm512_dpbusd_epi32(sums[r][b], x, w[b]);
    }
  }
  const auto last_mask = static_cast<__mmask16>((1u << last_lanes) - 1u);
  const int64_t first_column = block * kLanes;
  if constexpr (Dequantize) {
    alignas(64) int32_t tile[Rows * Blocks * kLanes];
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 4
      for (int b = 0; b < Blocks; ++b) _mm512_store_si512(tile + (r * Blocks + b) * kLanes, sums[r][b]);
    dequantize_tile(tile, Rows, Blocks, output, row, columns, first_column, last_mask);
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      int32_t* destination = output.accumulators + (row + r) * columns + first_column;
#pragma GCC unroll 4
      for (int b = 0; b < Blocks - 1; ++b) _mm512_storeu_si512(destination + b * kLanes, sums[r][b]);
      _mm512_mask_storeu_epi32(destination + (Blocks - 1) * kLanes, last_mask, sums[r][Blocks - 1]);
    }
  }
}

template <int Blocks, bool Dequantize>
void micro_kernel_rows(int rows, const uint8_t* a, const int32_t* packed, int64_t quads, int64_t blocks,
                       int64_t block, const VnniOutput& output, int64_t row, int64_t columns, int64_t last_lanes) {
  switch (rows) {
    case 5: micro_kernel<5, Blocks, Dequantize>(a, packed, quads, blocks, block, output, row, columns, last_lanes); return;
    case 4: micro_kernel<4, Blocks, Dequantize>(a, packed, quads, blocks, block, output, row, columns, last_lanes); return;
    case 3: micro_kernel<3, Blocks, Dequantize>(a, packed, quads, blocks, block, output, row, columns, last_lanes); return;
    case 2: micro_kernel<2, Blocks, Dequantize>(a, packed, quads, blocks, block, output, row, columns, last_lanes); return;
    default: micro_kernel<1, Blocks, Dequantize>(a, packed, quads, blocks, block, output, row, columns, last_lanes); return;
  }
}

template <bool Dequantize>
void micro_kernel_blocks(int64_t group_blocks, int rows, const uint8_t* a, const int32_t* packed, int64_t quads,
                         int64_t blocks, int64_t block, const VnniOutput& output, int64_t row, int64_t columns,
                         int64_t last_lanes) {
  switch (group_blocks) {
    case 4: micro_kernel_rows<4, Dequantize>(rows, a, packed, quads, blocks, block, output, row, columns, last_lanes); return;
    case 3: micro_kernel_rows<3, Dequantize>(rows, a, packed, quads, blocks, block, output, row, columns, last_lanes); return;
    case 2: micro_kernel_rows<2, Dequantize>(rows, a, packed, quads, blocks, block, output, row, columns, last_lanes); return;
    default: micro_kernel_rows<1, Dequantize>(rows, a, packed, quads, blocks, block, output, row, columns, last_lanes); return;
  }
}

// The convolution into `output` (its values dequantized when output.values is set).
void conv2d_forward(const Conv2DParams& params, const int8_t* input, const int8_t* kernel, const VnniOutput& output) {
  const int64_t depth = int8_depth(params);
  const int64_t columns = params.output_channels;
  const int64_t quads = (depth + 3) / 4;
  const int64_t blocks = (columns + kLanes - 1) / kLanes;
  const int64_t rows = params.batch * params.output_height * params.output_width;
  const bool dequantize = output.values != nullptr;
  std::vector<int32_t> scratch;
  const int32_t* packed = packed_kernel(params, kernel, kLayout, packed_words(quads, blocks), scratch,
                                        [&](int32_t* destination) {
                                          pack_weights(kernel, depth, columns, quads, blocks, destination);
                                        });
  parallel::parallel_for((rows + kTileRows - 1) / kTileRows, [&](int64_t tile) {
    thread_local std::vector<uint8_t> gathered;
    gathered.resize(static_cast<size_t>(kTileRows * 4 * quads));
    const int64_t first = tile * kTileRows;
    const int64_t count = std::min(kTileRows, rows - first);
    gather_rows(params, input, first, count, quads, gathered.data());
    for (int64_t block = 0; block < blocks; block += kMaxBlocks) {
      const int64_t group_blocks = std::min<int64_t>(kMaxBlocks, blocks - block);
      const int64_t last_lanes = std::min(kLanes, columns - (block + group_blocks - 1) * kLanes);
      for (int64_t r = 0; r < count; r += kMaxRows) {
        const int micro_rows = static_cast<int>(std::min<int64_t>(kMaxRows, count - r));
        const uint8_t* a = gathered.data() + r * 4 * quads;
        if (dequantize) {
          micro_kernel_blocks<true>(group_blocks, micro_rows, a, packed, quads, blocks, block, output, first + r,
                                    columns, last_lanes);
        } else {
          micro_kernel_blocks<false>(group_blocks, micro_rows, a, packed, quads, blocks, block, output, first + r,
                                     columns, last_lanes);
        }
      }
    }
    if (dequantize && !activates_on_vector(output.activation)) {
      activate_in_place(output.activation, output.values + first * columns, count * columns);
    }
  });
}

}  // namespace vnni
#endif

}  // namespace

void quantize_int8(int64_t count, const float* input, float inverse_scale, int8_t* output) {
  constexpr int64_t kChunk = 1 << 14;
  parallel::parallel_for((count + kChunk - 1) / kChunk, [&](int64_t chunk) {
    int64_t i = chunk * kChunk;
    const int64_t end = std::min(count, i + kChunk);
#if defined(__AVX2__)
    const __m256 scale = _mm256_set1_ps(inverse_scale);
    const __m256 low = _mm256_set1_ps(-127.0f), high = _mm256_set1_ps(127.0f);
    for (; i + 8 <= end; i += 8) {
      const __m256 scaled = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(input + i), scale), low), high);
      const __m256i rounded = _mm256_cvtps_epi32(scaled);  // MXCSR's mode: round half to even
      const __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(rounded), _mm256_extracti128_si256(rounded, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(output + i), _mm_packs_epi16(words, words));
    }
#endif
    for (; i < end; ++i) {
      const float scaled = std::min(std::max(input[i] * inverse_scale, -127.0f), 127.0f);
      output[i] = static_cast<int8_t>(std::nearbyint(scaled));
    }
  });
}

void conv2d_int8_forward(const Conv2DParams& params, const int8_t* input, const int8_t* kernel,
                         int32_t* accumulators) {
#if defined(__AVX512F__)
  if (vnni::cpu_has_vnni()) {
    vnni::VnniOutput output;
    output.accumulators = accumulators;
    vnni::conv2d_forward(params, input, kernel, output);
    return;
  }
#endif
  const int64_t depth = params.kernel_height * params.kernel_width * params.input_channels;
  const int64_t columns = params.output_channels;
  const int64_t pairs = (depth + 1) / 2;
  const int64_t blocks = (columns + kBlockColumns - 1) / kBlockColumns;
  const int64_t rows = params.batch * params.output_height * params.output_width;
  const std::vector<int16_t> packed = pack_weights(kernel, depth, columns, pairs, blocks);
  const int64_t a_stride = 2 * pairs;
  parallel::parallel_for((rows + kTileRows - 1) / kTileRows, [&](int64_t tile) {
    thread_local std::vector<int16_t> gathered;
    gathered.resize(static_cast<size_t>(kTileRows * a_stride));
    const int64_t first = tile * kTileRows;
    const int64_t count = std::min(kTileRows, rows - first);
    gather_rows(params, input, first, count, pairs, gathered.data());
    for (int64_t block = 0; block < blocks; block += 2) {
      const int64_t valid_columns = std::min(2 * kBlockColumns, columns - block * kBlockColumns);
      for (int64_t r = 0; r < count; r += kMicroRows) {
        const int micro_rows = static_cast<int>(std::min<int64_t>(kMicroRows, count - r));
        int32_t* out = accumulators + (first + r) * columns + block * kBlockColumns;
        const int16_t* a = gathered.data() + r * a_stride;
        if (valid_columns > kBlockColumns) {
          micro_kernel_rows<2>(micro_rows, a, a_stride, packed.data(), pairs, block, out, columns, valid_columns);
        } else {
          micro_kernel_rows<1>(micro_rows, a, a_stride, packed.data(), pairs, block, out, columns, valid_columns);
        }
      }
    }
  });
}

// Depthwise: each output pixel's int32 row starts at zero and adds, tap by tap (taps outside the
// image skipped), the products of the input pixel's channels with the tap's kernel row. The channel
// loop is plain int8 x int8 -> int32 code, vectorised by the compiler for each tier (sign-extending
// loads and 32-bit multiply-adds: 8 lanes on avx2, 16 on avx512); a depthwise layer has
// kernel_height * kernel_width multiply-adds per output, far fewer than a convolution's, so its
// time goes mostly to moving the data, which int8 makes 4x smaller.
void depthwise_conv2d_int8_forward(const DepthwiseConv2DParams& params, const int8_t* input, const int8_t* kernel,
                                   int32_t* accumulators) {
  const int64_t channels = params.channels, multiplier = params.depth_multiplier;
  const int64_t output_channels = params.output_channels();
  parallel::parallel_for(params.batch * params.output_height, [&](int64_t output_row) {
    const int64_t n = output_row / params.output_height, oh = output_row % params.output_height;
    for (int64_t ow = 0; ow < params.output_width; ++ow) {
      int32_t* __restrict out = accumulators + (output_row * params.output_width + ow) * output_channels;
      for (int64_t co = 0; co < output_channels; ++co) out[co] = 0;
      for (int64_t kh = 0; kh < params.kernel_height; ++kh) {
        const int64_t ih = oh * params.stride_height - params.pad_top + kh * params.dilation_height;
        if (ih < 0 || ih >= params.input_height) continue;
        for (int64_t kw = 0; kw < params.kernel_width; ++kw) {
          const int64_t iw = ow * params.stride_width - params.pad_left + kw * params.dilation_width;
          if (iw < 0 || iw >= params.input_width) continue;
          const int8_t* __restrict source = input + ((n * params.input_height + ih) * params.input_width + iw) * channels;
          const int8_t* __restrict weights = kernel + (kh * params.kernel_width + kw) * output_channels;
          if (multiplier == 1) {
            for (int64_t c = 0; c < channels; ++c) out[c] += int32_t{source[c]} * int32_t{weights[c]};
          } else {
            for (int64_t c = 0; c < channels; ++c) {
              const int32_t value = source[c];
              for (int64_t m = 0; m < multiplier; ++m) out[c * multiplier + m] += value * int32_t{weights[c * multiplier + m]};
            }
          }
        }
      }
    }
  });
}

void conv2d_int8_dequantize_forward(const Conv2DParams& params, const int8_t* input, const int8_t* kernel,
                                    const float* column_scales, const float* bias, float* output) {
#if defined(__AVX512F__)
  if (vnni::cpu_has_vnni()) {
    vnni::VnniOutput destination;
    destination.values = output;
    destination.column_scales = column_scales;
    destination.bias = bias;
    destination.activation = params.activation;
    vnni::conv2d_forward(params, input, kernel, destination);
    return;
  }
#endif
  // Elsewhere the two kernels in turn, through an int32 buffer.
  thread_local std::vector<int32_t> accumulators;
  accumulators.resize(static_cast<size_t>(params.output_size()));
  conv2d_int8_forward(params, input, kernel, accumulators.data());
  DequantizeParams epilogue;
  epilogue.rows = params.batch * params.output_height * params.output_width;
  epilogue.columns = params.output_channels;
  epilogue.activation = params.activation;
  dequantize_int32(epilogue, accumulators.data(), column_scales, bias, output);
}

void dequantize_int32(const DequantizeParams& params, const int32_t* accumulators, const float* column_scales,
                      const float* bias, float* output) {
  constexpr int64_t kChunkValues = 1 << 14;
  const int64_t columns = params.columns;
  const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkValues / std::max<int64_t>(columns, 1));
  parallel::parallel_for((params.rows + rows_per_chunk - 1) / rows_per_chunk, [&](int64_t chunk) {
    const int64_t begin = chunk * rows_per_chunk, end = std::min(params.rows, begin + rows_per_chunk);
    for (int64_t r = begin; r < end; ++r) {
      const int32_t* sums = accumulators + r * columns;
      float* values = output + r * columns;
      if (bias != nullptr) {
        for (int64_t c = 0; c < columns; ++c) values[c] = static_cast<float>(sums[c]) * column_scales[c] + bias[c];
      } else {
        for (int64_t c = 0; c < columns; ++c) values[c] = static_cast<float>(sums[c]) * column_scales[c];
      }
    }
    activate_in_place(params.activation, output + begin * columns, (end - begin) * columns);
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
