// The (outer, reduced_outer, kept, reduced_inner) view of LayerNormalization and GroupNormalization
// (ops/normalization.h) and their checks.
#include <cmath>
#include <stdexcept>
#include <string>

#include "ops/checked.h"
#include "ops/normalization.h"

namespace fastcnn {
namespace {

void check_epsilon(float epsilon) {
  if (!(epsilon > 0.0f) || !std::isfinite(epsilon)) {
    throw std::invalid_argument("`epsilon` must be a positive number. Received: epsilon=" + std::to_string(epsilon));
  }
}

}  // namespace

LayerNormParams make_layer_norm_params(int64_t batch, const SampleShape& shape, bool normalize_height,
                                       bool normalize_width, bool normalize_channels, float epsilon, bool centered) {
  check_epsilon(epsilon);
  if (!normalize_height && !normalize_width && !normalize_channels) {
    throw std::invalid_argument("LayerNormalization needs at least one sample axis to normalize over");
  }
  checked_product({batch, shape.height, shape.width, shape.channels}, "the LayerNormalization input");
  // The sample's axes in memory order: leading kept axes join the batch (outer), then a run of
  // normalized axes (reduced_outer), kept axes (kept) and normalized axes (reduced_inner); with
  // three axes every pattern fits. gamma spans the normalized axes: g = a * reduced_inner + b.
  const int64_t sizes[3] = {shape.height, shape.width, shape.channels};
  const bool normalized[3] = {normalize_height, normalize_width, normalize_channels};
  LayerNormParams params;
  params.outer = batch;
  params.epsilon = epsilon;
  params.centered = centered;
  int axis = 0;
  for (; axis < 3 && !normalized[axis]; ++axis) params.outer *= sizes[axis];
  for (; axis < 3 && normalized[axis]; ++axis) params.reduced_outer *= sizes[axis];
  for (; axis < 3 && !normalized[axis]; ++axis) params.kept *= sizes[axis];
  for (; axis < 3 && normalized[axis]; ++axis) params.reduced_inner *= sizes[axis];
  if (params.kept == 1) {  // the normalized elements of a group are contiguous: one run
    params.reduced_inner *= params.reduced_outer;
    params.reduced_outer = 1;
  }
  params.gamma_stride_outer = params.reduced_inner;
  params.gamma_stride_kept = 0;
  return params;
}

LayerNormParams make_group_norm_params(int64_t batch, const SampleShape& shape, int64_t groups, float epsilon) {
  check_epsilon(epsilon);
  const int64_t channels = shape.channels;
  if (groups <= 0) {
    throw std::invalid_argument("Received an invalid value for argument `groups`, expected a positive integer. "
                                "Received: groups=" + std::to_string(groups));
  }
  if (channels < groups) {
    throw std::invalid_argument("Number of groups (" + std::to_string(groups) +
                                ") cannot be more than the number of channels (" + std::to_string(channels) + ").");
  }
  if (channels % groups != 0) {
    throw std::invalid_argument("Number of groups (" + std::to_string(groups) +
                                ") must be a multiple of the number of channels (" + std::to_string(channels) + ").");
  }
  checked_product({batch, shape.height, shape.width, channels}, "the GroupNormalization input");
  LayerNormParams params;
  params.outer = batch;
  params.reduced_outer = shape.height * shape.width;
  params.kept = groups;
  params.reduced_inner = channels / groups;
  params.gamma_stride_outer = 0;
  params.gamma_stride_kept = params.reduced_inner;
  params.epsilon = epsilon;
  return params;
}

}  // namespace fastcnn
