// Declarations of the optimised kernels. Compiled once per instruction set with FASTCNN_ISA set
// to the namespace name (generic, avx2, avx512); signatures as in kernels.h.
#pragma once

#include "kernels/kernels.h"
#include "kernels/optimized/simd.h"

#ifndef FASTCNN_ISA
#error "FASTCNN_ISA must name the instruction-set namespace (generic, avx2 or avx512)"
#endif

namespace fastcnn::kernels::FASTCNN_ISA {

#include "kernels/declarations.inc"

// Max pooling's rule for a later window position: it wins over the best so far when strictly
// greater, or NaN over a non-NaN best, so that the first maximum (row-major) is kept and NaN
// propagates. Lanes where `candidate` wins.
inline simd::maskv max_pool_wins(simd::floatv candidate, simd::floatv best) {
  return (candidate > best) | ((candidate != candidate) & (best == best));
}

// Winograd forward convolution (conv2d_winograd.cpp): for 3x3 kernels with unit
// stride and dilation and enough channels on both sides to amortise its transforms.
bool winograd_applicable(const Conv2DParams& params);
// fewest_points: F(4x4, 3x3) or F(2x2, 3x3), whichever computes fewer transformed points;
// two_by_two: F(2x2, 3x3) always (the input gradient: see conv2d_winograd.cpp).
enum class WinogradTile { fewest_points, two_by_two };
// With params.max_pool, each output tile is pooled as it is stored (the convolution's own output
// never written).
void conv2d_forward_winograd(const Conv2DParams& params, const float* input, const float* kernel,
                             const float* bias, float* output, WinogradTile tile = WinogradTile::fewest_points);
void conv2d_backward_kernel_winograd(const Conv2DParams& params, const float* input,
                                     const float* output_gradient, float* kernel_gradient);

// Stride-2 layers whose kernel rearranges to 3x3 over a space-to-depth input (5x5 kernels) run as
// that stride-1 layer, on Winograd (conv2d_space_to_depth.cpp); same signatures as the kernels'.
bool space_to_depth_applicable(const Conv2DParams& params);
bool space_to_depth_kernel_gradient_applicable(const Conv2DParams& params);  // also fewer channel products
Conv2DParams space_to_depth_params(const Conv2DParams& params);
void conv2d_forward_space_to_depth(const Conv2DParams& params, const float* input, const float* kernel,
                                   const float* bias, float* output);
void conv2d_backward_input_space_to_depth(const Conv2DParams& params, const float* output_gradient,
                                          const float* kernel, float* input_gradient);
void conv2d_backward_kernel_space_to_depth(const Conv2DParams& params, const float* input,
                                           const float* output_gradient, float* kernel_gradient,
                                           float* bias_gradient);

// FLOPs of a pure-FMA loop on every thread of a parallel region (the peak probe).
double fma_peak_probe(int64_t iterations);

// Applies an elementwise activation to `count` contiguous values in place (epilogue helper).
void activate_in_place(Activation activation, float* values, int64_t count);

// The forward kernel's packed kernel (`size` floats in `layout`): the cache's when it holds this
// kernel's packing at this weights version (Conv2DParams::kernel_cache), else packed now by
// pack(destination) into the cache, or into `scratch` when there is none.
// Element: float, or int32_t for the int8 kernels' packings (PackedKernelCache::integer_data).
template <typename Element, typename Pack>
const Element* packed_kernel(const Conv2DParams& p, const void* kernel, int64_t layout, int64_t size,
                             std::vector<Element>& scratch, Pack pack) {
  PackedKernelCache* cache = p.weights_version != 0 ? p.kernel_cache : nullptr;
  if (cache != nullptr && cache->kernel == kernel && cache->version == p.weights_version && cache->layout == layout &&
      static_cast<int64_t>(cache_storage(*cache, scratch.data()).size()) == size) {
    return cache_storage(*cache, scratch.data()).data();
  }
  std::vector<Element>& target = cache != nullptr ? cache_storage(*cache, scratch.data()) : scratch;
  target.resize(static_cast<size_t>(size));
  pack(target.data());
  if (cache != nullptr) {
    cache->kernel = kernel;
    cache->version = p.weights_version;
    cache->layout = layout;
  }
  return target.data();
}

// Kernel epilogues apply relu and relu6 on the vector before the store; the other activations run
// on the stored values (activate_in_place). Comparisons keep NaN lanes NaN, as the scalar formulas.
inline bool activates_on_vector(Activation activation) {
  return activation == Activation::linear || activation == Activation::relu || activation == Activation::relu6;
}
template <typename Vector>
inline Vector activate_on_vector(Vector value, Activation activation) {
  if (activation != Activation::relu && activation != Activation::relu6) return value;
  value = simd::max_zero(value);
  if (activation == Activation::relu6) value = simd::lower_to(Vector{} + 6.0f, value);
  return value;
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
