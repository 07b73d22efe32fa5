// Image preprocessing / augmentation kernels (formulas in ops/image.h). One OpenMP implementation
// serves every kernel table: they are gathers and per-pixel arithmetic, a small part of a step,
// with no per-tier fast path (tests check them against TensorFlow and against numpy models).
// Pointers are dense NHWC float32 (resize also reads uint8); outputs are overwritten; input and
// output never alias.
#pragma once

#include <cstdint>

#include "ops/image.h"

namespace fastcnn::kernels {

// transforms: batch x 8 floats (a0 a1 a2 b0 b1 b2 c0 c1), output -> input coordinates.
void projective_transform_forward(const ProjectiveTransformParams& params, const float* transforms,
                                  const float* input, float* output);
// The transpose of the forward gather (fill values carry no gradient).
void projective_transform_backward(const ProjectiveTransformParams& params, const float* transforms,
                                   const float* output_gradient, float* input_gradient);

// window_origins: batch x 2 (top, left) in input pixels, or null for (0, 0) for every sample.
void resize_forward(const ResizeParams& params, const int64_t* window_origins, const float* input,
                    float* output);
// The same from 8-bit pixels (decoded images): each sample converted to float32 exactly first.
void resize_forward(const ResizeParams& params, const int64_t* window_origins, const uint8_t* input,
                    float* output);
void resize_backward(const ResizeParams& params, const int64_t* window_origins,
                     const float* output_gradient, float* input_gradient);

// flags: batch FlipFlags. Its own backward (a flip is its own transpose).
void flip(const ImageParams& params, const uint8_t* flags, const float* input, float* output);

// factors: batch contrast factors.
void contrast_forward(const ImageParams& params, const float* factors, const float* input, float* output);
void contrast_backward(const ImageParams& params, const float* factors, const float* input,
                       const float* output_gradient, float* input_gradient);

// deltas: batch values added to every pixel of a sample.
void brightness_forward(const ImageParams& params, const float* deltas, const float* input, float* output);
void brightness_backward(const ImageParams& params, const float* deltas, const float* input,
                         const float* output_gradient, float* input_gradient);

}  // namespace fastcnn::kernels
