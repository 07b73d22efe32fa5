// Optimised grouped Conv2D: each group is a dense Conv2D of Ci/g -> Co/g channels, run by this
// tier's conv2d_* kernels on contiguous copies of its channels. The copies cost one pass over the
// input and output (memory-bound, parallel), against the group's convolution work of
// kh*kw*(Ci/g)*(Co/g) multiply-adds per pixel; with one input channel per group the layer is a
// depthwise convolution (the same kernel memory) and goes to depthwise_conv2d_* instead, and
// narrow groups (narrow_groups.h) run on the depthwise engines.
// Each group's convolution is bitwise independent of the thread count, and so is every copy.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/optimized/narrow_groups.h"
#include "kernels/optimized/optimized.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

constexpr int64_t kPixelsPerTask = 256;

// destination[g][pixel][0, width) = source[pixel][g*width, (g+1)*width).
void split_groups(const float* source, int64_t pixels, int64_t groups, int64_t width, float* destination) {
  parallel::parallel_for((pixels + kPixelsPerTask - 1) / kPixelsPerTask, [&](int64_t task) {
    const int64_t end = std::min(pixels, (task + 1) * kPixelsPerTask);
    for (int64_t group = 0; group < groups; ++group) {
      for (int64_t pixel = task * kPixelsPerTask; pixel < end; ++pixel) {
        const float* from = source + (pixel * groups + group) * width;
        std::copy(from, from + width, destination + (group * pixels + pixel) * width);
      }
    }
  });
}

// The inverse: destination[pixel][g*width, (g+1)*width) = source[g][pixel][0, width).
void join_groups(const float* source, int64_t pixels, int64_t groups, int64_t width, float* destination) {
  parallel::parallel_for((pixels + kPixelsPerTask - 1) / kPixelsPerTask, [&](int64_t task) {
    const int64_t end = std::min(pixels, (task + 1) * kPixelsPerTask);
    for (int64_t pixel = task * kPixelsPerTask; pixel < end; ++pixel) {
      for (int64_t group = 0; group < groups; ++group) {
        const float* from = source + (group * pixels + pixel) * width;
        std::copy(from, from + width, destination + (pixel * groups + group) * width);
      }
    }
  });
}

// One group's dense Conv2D. A stride along an axis with one output position never steps: it is
// set to 1 (the same layer), which keeps the dense kernels' stride * channels products small
// however large the stride received.
Conv2DParams dense_group(const GroupedConv2DParams& p) {
  Conv2DParams group = p.group_params();
  if (group.output_height == 1) group.stride_height = 1;
  if (group.output_width == 1) group.stride_width = 1;
  return group;
}

// Per-call copies owned by the calling thread (they only grow: no allocation in steady state).
struct GroupBuffers {
  std::vector<float> input, output, kernel;
};
GroupBuffers& group_buffers() {
  thread_local GroupBuffers buffers;
  return buffers;
}

}  // namespace

void grouped_conv2d_forward(const GroupedConv2DParams& p, const float* input, const float* kernel, const float* bias,
                            float* output) {
  if (p.groups == 1) return conv2d_forward(dense_group(p), input, kernel, bias, output);
  if (p.conv.residual != nullptr || p.conv.output_scale != nullptr || p.conv.max_pool != nullptr) {
    throw std::invalid_argument(std::string(p.conv.residual != nullptr       ? "a residual"
                                            : p.conv.output_scale != nullptr ? "an output affine"
                                                                             : "max pooling") +
                                " in the convolution's epilogue needs groups=1. Received: groups=" +
                                std::to_string(p.groups));
  }
  if (p.group_input_channels() == 1) return depthwise_conv2d_forward(p.as_depthwise(), input, kernel, bias, output);
  if (narrow_groups_applicable(p)) return grouped_conv2d_forward_narrow(p, input, kernel, bias, output);
  const Conv2DParams group = dense_group(p);
  const Conv2DParams& conv = p.conv;
  const int64_t input_pixels = conv.batch * conv.input_height * conv.input_width;
  const int64_t output_pixels = conv.batch * conv.output_height * conv.output_width;
  const int64_t kernel_rows = conv.kernel_height * conv.kernel_width * group.input_channels;
  GroupBuffers& buffers = group_buffers();
  buffers.input.resize(static_cast<size_t>(p.input_size()));
  buffers.output.resize(static_cast<size_t>(p.output_size()));
  buffers.kernel.resize(static_cast<size_t>(p.kernel_size()));
  split_groups(input, input_pixels, p.groups, group.input_channels, buffers.input.data());
  split_groups(kernel, kernel_rows, p.groups, group.output_channels, buffers.kernel.data());
  // Each group's kernel is a slice of this call's scratch: one layer cache cannot hold them all.
  Conv2DParams uncached = group;
  uncached.kernel_cache = nullptr;
  for (int64_t g = 0; g < p.groups; ++g) {
    conv2d_forward(uncached, buffers.input.data() + g * group.input_size(),
                   buffers.kernel.data() + g * group.kernel_size(),
                   bias != nullptr ? bias + g * group.output_channels : nullptr,
                   buffers.output.data() + g * group.output_size());
  }
  join_groups(buffers.output.data(), output_pixels, p.groups, group.output_channels, output);
}

void grouped_conv2d_backward_input(const GroupedConv2DParams& p, const float* output_gradient, const float* kernel,
                                   float* input_gradient) {
  if (p.groups == 1) return conv2d_backward_input(dense_group(p), output_gradient, kernel, input_gradient);
  if (p.conv.accumulate_input_gradient) {  // the groups' paths overwrite: into scratch, then added
    GroupedConv2DParams overwrite = p;
    overwrite.conv.accumulate_input_gradient = false;
    thread_local std::vector<float> own;
    add_result_computed_apart(input_gradient, p.input_size(), own, [&](float* result) {
      grouped_conv2d_backward_input(overwrite, output_gradient, kernel, result);
    });
    return;
  }
  if (p.group_input_channels() == 1) {
    return depthwise_conv2d_backward_input(p.as_depthwise(), output_gradient, kernel, input_gradient);
  }
  if (narrow_groups_applicable(p)) return grouped_conv2d_backward_input_narrow(p, output_gradient, kernel, input_gradient);
  const Conv2DParams group = dense_group(p);
  const Conv2DParams& conv = p.conv;
  const int64_t input_pixels = conv.batch * conv.input_height * conv.input_width;
  const int64_t output_pixels = conv.batch * conv.output_height * conv.output_width;
  const int64_t kernel_rows = conv.kernel_height * conv.kernel_width * group.input_channels;
  GroupBuffers& buffers = group_buffers();
  buffers.input.resize(static_cast<size_t>(p.input_size()));
  buffers.output.resize(static_cast<size_t>(p.output_size()));
  buffers.kernel.resize(static_cast<size_t>(p.kernel_size()));
  split_groups(output_gradient, output_pixels, p.groups, group.output_channels, buffers.output.data());
  split_groups(kernel, kernel_rows, p.groups, group.output_channels, buffers.kernel.data());
  for (int64_t g = 0; g < p.groups; ++g) {
    conv2d_backward_input(group, buffers.output.data() + g * group.output_size(),
                          buffers.kernel.data() + g * group.kernel_size(),
                          buffers.input.data() + g * group.input_size());
  }
  join_groups(buffers.input.data(), input_pixels, p.groups, group.input_channels, input_gradient);
}

void grouped_conv2d_backward_kernel(const GroupedConv2DParams& p, const float* input, const float* output_gradient,
                                    float* kernel_gradient, float* bias_gradient) {
  if (p.groups == 1) {
    return conv2d_backward_kernel(dense_group(p), input, output_gradient, kernel_gradient, bias_gradient);
  }
  if (p.group_input_channels() == 1) {
    return depthwise_conv2d_backward_kernel(p.as_depthwise(), input, output_gradient, kernel_gradient, bias_gradient);
  }
  if (narrow_groups_applicable(p)) {
    return grouped_conv2d_backward_kernel_narrow(p, input, output_gradient, kernel_gradient, bias_gradient);
  }
  const Conv2DParams group = dense_group(p);
  const Conv2DParams& conv = p.conv;
  const int64_t input_pixels = conv.batch * conv.input_height * conv.input_width;
  const int64_t output_pixels = conv.batch * conv.output_height * conv.output_width;
  const int64_t kernel_rows = conv.kernel_height * conv.kernel_width * group.input_channels;
  GroupBuffers& buffers = group_buffers();
  buffers.input.resize(static_cast<size_t>(p.input_size()));
  buffers.output.resize(static_cast<size_t>(p.output_size()));
  buffers.kernel.resize(static_cast<size_t>(p.kernel_size()));
  split_groups(input, input_pixels, p.groups, group.input_channels, buffers.input.data());
  split_groups(output_gradient, output_pixels, p.groups, group.output_channels, buffers.output.data());
  for (int64_t g = 0; g < p.groups; ++g) {
    conv2d_backward_kernel(group, buffers.input.data() + g * group.input_size(),
                           buffers.output.data() + g * group.output_size(),
                           buffers.kernel.data() + g * group.kernel_size(),
                           bias_gradient != nullptr ? bias_gradient + g * group.output_channels : nullptr);
  }
  join_groups(buffers.kernel.data(), kernel_rows, p.groups, group.output_channels, kernel_gradient);
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
