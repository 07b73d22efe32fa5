// LayerNormalization, GroupNormalization and Keras's Normalization (preprocessing) over NHWC data.
//
// Layer and group normalization see their data as a row-major array (outer, reduced_outer, kept,
// reduced_inner). For each (o, k) the statistics run over the reduced_outer * reduced_inner = M
// elements x[o, a, k, b]:
//   mean = (1/M) sum x;  variance = (1/M) sum (x - mean)^2 (biased);  s = 1 / sqrt(variance + epsilon)
//   z = (x - mean) * s   (centered; Keras's deprecated rms_scaling: z = x * s, the variance still centred)
//   y = z * gamma[g] + beta[g],  g = a * gamma_stride_outer + k * gamma_stride_kept + b
//   (computed as (x - mean) * (s * gamma) + beta, mean 0 for rms: a group whose values are all equal
//   gives exactly beta, as Keras's x * (s * gamma) + (beta - mean * s * gamma) does without FMA)
// Backward, with dyg = dy * gamma[g] and x_hat = (x - mean) * s:
//   dx = s * (dyg - mean(dyg) - x_hat * mean(dyg * z))     (rms: no mean(dyg) term)
//   d gamma[g] = sum dy * z;  d beta[g] = sum dy            (over every element mapped to g)
// LayerNormalization(axis): gamma spans the normalized axes, gamma_stride_outer = reduced_inner,
// gamma_stride_kept = 0. GroupNormalization(groups): gamma per channel, outer = batch,
// reduced_outer = height * width, kept = groups, reduced_inner = channels / groups,
// gamma_stride_outer = 0, gamma_stride_kept = reduced_inner.
//
// Normalization (Keras's preprocessing layer), per element with j its index over the kept axes:
//   y = (x - mean[j]) / d[j],  d[j] = max(sqrt(variance[j]), epsilon)   (epsilon: Keras's 1e-7)
//   invert: y = mean[j] + x * d[j]
// mean null stands for zeros: the backward pass is the same kernel, dx = dy / d (invert: dy * d).
#pragma once

#include <cstdint>

#include "tensor.h"

namespace fastcnn {

struct LayerNormParams {
  int64_t outer = 0;
  int64_t reduced_outer = 1;
  int64_t kept = 1;
  int64_t reduced_inner = 1;
  int64_t gamma_stride_outer = 0;
  int64_t gamma_stride_kept = 0;
  float epsilon = 1e-3f;
  bool centered = true;  // false: rms_scaling

  int64_t group_size() const { return reduced_outer * reduced_inner; }
  int64_t statistics_size() const { return outer * kept; }  // one mean and one 1/std per (o, k)
  int64_t element_count() const { return outer * reduced_outer * kept * reduced_inner; }
  // Length of gamma and beta: one past the largest index g.
  int64_t affine_size() const {
    return (reduced_outer - 1) * gamma_stride_outer + (kept - 1) * gamma_stride_kept + reduced_inner;
  }
};

// LayerNormalization over the sample axes flagged (at least one) of `batch` samples of `shape`;
// throws std::invalid_argument when no axis is flagged or epsilon is not positive.
LayerNormParams make_layer_norm_params(int64_t batch, const SampleShape& shape, bool normalize_height,
                                       bool normalize_width, bool normalize_channels, float epsilon, bool centered);
// GroupNormalization over the channel axis; throws std::invalid_argument with Keras's messages
// when groups exceeds or does not divide the channels.
LayerNormParams make_group_norm_params(int64_t batch, const SampleShape& shape, int64_t groups, float epsilon);

struct NormalizationParams {
  int64_t batch = 0;
  SampleShape shape;
  bool keep_height = false, keep_width = false, keep_channels = true;
  float epsilon = 1e-7f;
  bool invert = false;

  int64_t kept_size() const {
    return (keep_height ? shape.height : 1) * (keep_width ? shape.width : 1) * (keep_channels ? shape.channels : 1);
  }
  // j of the element at (y, x, c) of any sample.
  int64_t kept_index(int64_t y, int64_t x, int64_t c) const {
    return ((keep_height ? y : 0) * (keep_width ? shape.width : 1) + (keep_width ? x : 0)) *
               (keep_channels ? shape.channels : 1) + (keep_channels ? c : 0);
  }
};

}  // namespace fastcnn
