// Grouped convolution with narrow groups (fewer than 16 channels per group on either side, e.g.
// ResNeXt's 4 -> 4), run on the depthwise engines (depthwise_conv2d.cpp) with vectors across the
// output channels of several groups at once, instead of one dense convolution per group, whose
// 16-channel micro-kernel tiles such groups would leave mostly idle. Signatures as kernels.h's
// grouped_conv2d_*; valid only where narrow_groups_applicable() holds.
#pragma once

#include "kernels/kernels.h"

#ifndef FASTCNN_ISA
#error "FASTCNN_ISA must name the instruction-set namespace"
#endif

namespace fastcnn::kernels::FASTCNN_ISA {

// groups > 1, both group widths below 16, and every vector's lanes read inside one loaded vector.
bool narrow_groups_applicable(const GroupedConv2DParams& params);
void grouped_conv2d_forward_narrow(const GroupedConv2DParams& params, const float* input, const float* kernel,
                                   const float* bias, float* output);
void grouped_conv2d_backward_input_narrow(const GroupedConv2DParams& params, const float* output_gradient,
                                          const float* kernel, float* input_gradient);
void grouped_conv2d_backward_kernel_narrow(const GroupedConv2DParams& params, const float* input,
                                           const float* output_gradient, float* kernel_gradient,
                                           float* bias_gradient);

}  // namespace fastcnn::kernels::FASTCNN_ISA
