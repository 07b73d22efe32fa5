// MaxPooling2D: output[n, oh, ow, c] = max over the window rows
// oh*stride_h - pad_top + [0, pool_h) and columns ow*stride_w - pad_left + [0, pool_w) that lie
// inside the input (padding never wins). Its gradient goes to the first maximum of the window in
// row-major order, as TensorFlow's MaxPoolGrad routes it.
#pragma once

#include <cstdint>

#include "ops/conv2d.h"

namespace fastcnn {

struct Pool2DParams {
  int64_t batch = 0;
  int64_t input_height = 0, input_width = 0, channels = 0;
  int64_t output_height = 0, output_width = 0;
  int64_t pool_height = 0, pool_width = 0;
  int64_t stride_height = 0, stride_width = 0;
  int64_t pad_top = 0, pad_left = 0;
  // Max pooling backward only: the input is a ReLU's output, and the input gradient carries the
  // ReLU's derivative too (zero where the input is not > 0), sparing the ReLU its own pass.
  bool relu_input = false;
  // Max pooling forward: where not null, also each output's first maximum as its row-major offset
  // in the pool_height x pool_width window (laid out as the output), or kNoWindowPosition where
  // relu_input and that maximum is not > 0 (its gradient is zero). Windows of at most 255
  // positions. BatchNormalization's backward routes a pooled gradient by them
  // (BatchNormParams::max_pool).
  uint8_t* window_positions = nullptr;

  int64_t input_size() const { return batch * input_height * input_width * channels; }
  int64_t output_size() const { return batch * output_height * output_width * channels; }
};

constexpr uint8_t kNoWindowPosition = 255;

// Output size and padding as for Conv2D with kernel = pool window.
Pool2DParams make_pool2d_params(int64_t batch, int64_t input_height, int64_t input_width,
                                int64_t channels, int64_t pool_height, int64_t pool_width,
                                int64_t stride_height, int64_t stride_width, Padding padding);

// A Conv2D whose output goes straight into a MaxPooling2D can run as one kernel
// (kernels.h, conv2d_max_pool2d_*) that never stores the convolution's output: when the pooling
// windows tile that output without overlap or padding (stride = pool size, every window inside; rows and
// columns past the last window are dropped, as 'valid' pooling does), a window holds at most 256
// positions (its first maximum's position is one byte), and the convolution's fused activation is
// ReLU or none (the ReLU's derivative at the maximum is read from the pooled output).
constexpr int64_t kMaxFusedPoolWindow = 256;
bool conv2d_max_pool2d_fusable(const Conv2DParams& conv, const Pool2DParams& pool);
// In inference (Conv2DParams::max_pool) a Winograd-shaped convolution (conv2d_winograd_shape),
// with any epilogue activation and output affine but no residual, computes 2x2, stride-2 max
// pooling of its output (windows inside it, as above): its output tiles (4x4 or 2x2 pixels from
// even rows and columns) each hold whole windows, pooled as the tile is stored.
bool conv2d_winograd_max_pool2d_fusable(const Conv2DParams& conv, const Pool2DParams& pool);

}  // namespace fastcnn
