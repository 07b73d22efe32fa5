// Stride-2 convolutions as stride-1 3x3 convolutions over a space-to-depth input, so that they take
// Winograd (4x fewer multiply-adds with F(4x4, 3x3)) instead of the direct kernel.
//
// Write input row i = 2a + phase (phase 0 or 1). Output row o of a stride-2 layer reads input rows
// i = 2o - pad_top + kh, kh in [0, k); in the space-to-depth image (row a holds rows 2a and 2a + 1
// of the input, their channels side by side) those are rows a = o - pad' + da with
// pad' = ceil(pad_top / 2) and da in [0, k'), k' = floor((k - 1 + (pad_top mod 2)) / 2) + 1. A 5x5
// kernel gives k' = 3 for either parity of the padding (Keras's 'same' and 'valid' alike): the layer
// becomes a 3x3 stride-1 convolution with 4x the input channels, whose kernel holds
// W'[da][db][(ph * 2 + pw) * C + c] = W[kh][kw][c] with kh = 2 * (da - pad') + ph + pad_top (zero
// where kh falls outside [0, k)). It does (3 * 2)^2 / 5^2 = 1.44x the direct multiply-adds before
// Winograd divides them by 2.25 (F(2x2)) or 4 (F(4x4)).
// Gradients follow the same map: the input gradient is the rearranged layer's, put back from
// depth to space; the kernel gradient is the rearranged layer's, read at the taps that exist.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/optimized/optimized.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

constexpr int64_t kPhases = 2;  // the stride rearranged: 2 x 2 phases

// Rows (or columns) of the rearranged kernel for a stride-2 kernel of `kernel` taps whose first
// output reads from `pad` before the input: see the formula above.
int64_t rearranged_taps(int64_t kernel, int64_t pad) { return (kernel - 1 + pad % 2) / 2 + 1; }
int64_t rearranged_pad(int64_t pad) { return (pad + 1) / 2; }

// The original tap that rearranged tap `rearranged` at `phase` stands for, or -1 (a zero weight).
int64_t original_tap(int64_t rearranged, int64_t phase, int64_t pad, int64_t kernel) {
  const int64_t tap = 2 * (rearranged - rearranged_pad(pad)) + phase + pad;
  return tap >= 0 && tap < kernel ? tap : -1;
}

struct Buffers {
  std::vector<float> input, kernel, gradient;
};
Buffers& buffers() {
  thread_local Buffers scratch;
  return scratch;
}

// input'[n][a][b][(ph * 2 + pw) * C + c] = input[n][2a + ph][2b + pw][c], zero past the last row
// or column of an odd-sized input.
void rearrange_input(const Conv2DParams& p, const Conv2DParams& q, const float* input, float* rearranged) {
  const int64_t channels = p.input_channels;
  parallel::parallel_for(q.batch * q.input_height, [&](int64_t image_row) {
    const int64_t n = image_row / q.input_height, a = image_row % q.input_height;
    float* target = rearranged + image_row * q.input_width * q.input_channels;
    for (int64_t b = 0; b < q.input_width; ++b) {
      for (int64_t ph = 0; ph < kPhases; ++ph) {
        for (int64_t pw = 0; pw < kPhases; ++pw) {
          float* destination = target + (b * kPhases * kPhases + ph * kPhases + pw) * channels;
          const int64_t row = kPhases * a + ph, column = kPhases * b + pw;
          if (row < p.input_height && column < p.input_width) {
            const float* source = input + ((n * p.input_height + row) * p.input_width + column) * channels;
            std::copy(source, source + channels, destination);
          } else {
            std::fill(destination, destination + channels, 0.0f);
          }
        }
      }
    }
  });
}

// The inverse map for the input gradient: gradient[n][2a + ph][2b + pw][c] = gradient'[n][a][b][...]
// (added to the old values where p accumulates).
void restore_input_gradient(const Conv2DParams& p, const Conv2DParams& q, const float* rearranged,
                            float* input_gradient) {
  const int64_t channels = p.input_channels;
  parallel::parallel_for(p.batch * p.input_height, [&](int64_t image_row) {
    const int64_t n = image_row / p.input_height, row = image_row % p.input_height;
    const int64_t a = row / kPhases, ph = row % kPhases;
    const float* source_row = rearranged + (n * q.input_height + a) * q.input_width * q.input_channels;
    float* target = input_gradient + image_row * p.input_width * channels;
    for (int64_t column = 0; column < p.input_width; ++column) {
      const float* source =
          source_row + ((column / kPhases) * kPhases * kPhases + ph * kPhases + column % kPhases) * channels;
      float* destination = target + column * channels;
      if (p.accumulate_input_gradient) {
        for (int64_t c = 0; c < channels; ++c) destination[c] += source[c];
      } else {
        std::copy(source, source + channels, destination);
      }
    }
  });
}

// For every rearranged tap (da, db) and phase (ph, pw), calls visit(rearranged offset, original
// offset or -1) with offsets of a C x Co block in the [taps][C-or-4C][Co] kernel layouts.
template <typename Visit>
void for_each_kernel_block(const Conv2DParams& p, const Conv2DParams& q, Visit visit) {
  const int64_t block = p.input_channels * p.output_channels;
  for (int64_t da = 0; da < q.kernel_height; ++da)
    for (int64_t db = 0; db < q.kernel_width; ++db)
      for (int64_t ph = 0; ph < kPhases; ++ph)
        for (int64_t pw = 0; pw < kPhases; ++pw) {
          const int64_t kh = original_tap(da, ph, p.pad_top, p.kernel_height);
          const int64_t kw = original_tap(db, pw, p.pad_left, p.kernel_width);
          const int64_t rearranged = ((da * q.kernel_width + db) * kPhases * kPhases + ph * kPhases + pw) * block;
          visit(rearranged, kh < 0 || kw < 0 ? -1 : (kh * p.kernel_width + kw) * block);
        }
}

void rearrange_kernel(const Conv2DParams& p, const Conv2DParams& q, const float* kernel, float* rearranged) {
  const int64_t block = p.input_channels * p.output_channels;
  for_each_kernel_block(p, q, [&](int64_t target, int64_t source) {
    if (source < 0) {
      std::fill(rearranged + target, rearranged + target + block, 0.0f);
    } else {
      std::copy(kernel + source, kernel + source + block, rearranged + target);
    }
  });
}

}  // namespace

bool space_to_depth_applicable(const Conv2DParams& p) {
  if (p.stride_height != kPhases || p.stride_width != kPhases || p.dilation_height != 1 || p.dilation_width != 1 ||
      p.pad_top < 0 || p.pad_left < 0)
    return false;
  if (rearranged_taps(p.kernel_height, p.pad_top) != 3 || rearranged_taps(p.kernel_width, p.pad_left) != 3)
    return false;
  // Only where the rearranged layer takes Winograd; 3x3 stride-2 kernels also give 3 rearranged
  // taps for odd padding, but at 36 / 9 = 4x their multiply-adds: worth it for 5x5 kernels only.
  if (p.kernel_height < 5 || p.kernel_width < 5) return false;
  return winograd_applicable(space_to_depth_params(p));
}

bool space_to_depth_kernel_gradient_applicable(const Conv2DParams& p) {
  // Winograd's kernel gradient sums each chunk of tiles into points x (4 C) x Co partial sums
  // (conv2d_winograd.cpp, about 16 chunks a call), memory traffic the direct kernel gradient
  // (near the FMA peak on these layers) does not have: 64 -> 64 channels (16384 products) ran at
  // 0.5-0.8x the direct one's speed on one day and 1.1-1.2x on another, 32 -> 64 (8192) at
  // 0.85-1.35x as the host's memory bandwidth varied and at 1.3x in four later pairs, 16 -> 32
  // (2048) at 1.1-1.35x (Zen 4, 2 threads).
  constexpr int64_t kMostChannelProducts = 8192;
  return space_to_depth_applicable(p) &&
         p.input_channels * kPhases * kPhases * p.output_channels <= kMostChannelProducts;
}

Conv2DParams space_to_depth_params(const Conv2DParams& p) {
  Conv2DParams q = p;
  q.input_height = (p.input_height + kPhases - 1) / kPhases;
  q.input_width = (p.input_width + kPhases - 1) / kPhases;
  q.input_channels = p.input_channels * kPhases * kPhases;
  q.kernel_height = rearranged_taps(p.kernel_height, p.pad_top);
  q.kernel_width = rearranged_taps(p.kernel_width, p.pad_left);
  q.stride_height = q.stride_width = 1;
  q.pad_top = rearranged_pad(p.pad_top);
  q.pad_left = rearranged_pad(p.pad_left);
  q.accumulate_input_gradient = false;  // the rearranged gradient goes to scratch, then is put back
  return q;
}

void conv2d_forward_space_to_depth(const Conv2DParams& p, const float* input, const float* kernel,
                                   const float* bias, float* output) {
  const Conv2DParams q = space_to_depth_params(p);
  Buffers& scratch = buffers();
  scratch.input.resize(static_cast<size_t>(q.input_size()));
  scratch.kernel.resize(static_cast<size_t>(q.kernel_size()));
  rearrange_input(p, q, input, scratch.input.data());
  rearrange_kernel(p, q, kernel, scratch.kernel.data());
  conv2d_forward(q, scratch.input.data(), scratch.kernel.data(), bias, output);
}

void conv2d_backward_input_space_to_depth(const Conv2DParams& p, const float* output_gradient,
                                          const float* kernel, float* input_gradient) {
  const Conv2DParams q = space_to_depth_params(p);
  Buffers& scratch = buffers();
  scratch.kernel.resize(static_cast<size_t>(q.kernel_size()));
  scratch.gradient.resize(static_cast<size_t>(q.input_size()));
  rearrange_kernel(p, q, kernel, scratch.kernel.data());
  conv2d_backward_input(q, output_gradient, scratch.kernel.data(), scratch.gradient.data());
  restore_input_gradient(p, q, scratch.gradient.data(), input_gradient);
}

void conv2d_backward_kernel_space_to_depth(const Conv2DParams& p, const float* input, const float* output_gradient,
                                           float* kernel_gradient, float* bias_gradient) {
  const Conv2DParams q = space_to_depth_params(p);
  Buffers& scratch = buffers();
  scratch.input.resize(static_cast<size_t>(q.input_size()));
  scratch.kernel.resize(static_cast<size_t>(q.kernel_size()));
  rearrange_input(p, q, input, scratch.input.data());
  conv2d_backward_kernel(q, scratch.input.data(), output_gradient, scratch.kernel.data(), bias_gradient);
  const int64_t block = p.input_channels * p.output_channels;
  for_each_kernel_block(p, q, [&](int64_t rearranged, int64_t original) {
    if (original >= 0) {
      std::copy(scratch.kernel.data() + rearranged, scratch.kernel.data() + rearranged + block,
                kernel_gradient + original);
    }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
