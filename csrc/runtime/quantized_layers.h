// Int8 inference layers (ops/quantized.h): a Conv2D (groups 1), DepthwiseConv2D or Dense node of a built Network
// replaced by one that reads the same parameters (Network::replace_layer), so the float weights
// stay where get_weights and the saving code find them.
//
// Life cycle: quantize_weights() takes the float kernel from the parameter buffer (per output
// channel: scale = max |w| / 127, w_q = round(w / scale)); where inference folds a
// BatchNormalization into the layer (runtime/plan.cpp), the folded kernel is quantized instead, in
// the first pass (the calibration pass). Until an input scale is set the layer
// is calibrating: it computes in float32 exactly as the layer it replaced and records the largest
// |input| it sees; set_input_scale() (from that maximum, or a saved value) switches it to int8.
// Training through it is refused: a quantized model runs inference only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/layers.h"

namespace fastcnn::runtime {

class Int8Layer : public Layer {
 public:
  // Quantizes the kernel of this node's parameters (parameter_offset set): call after
  // Network::replace_layer.
  virtual void quantize_weights(const float* parameters) = 0;
  // Largest |input| seen while calibrating (0 before any).
  virtual float calibrated_maximum() const = 0;
  // The activation scale (> 0, finite): from now on the layer computes in int8.
  virtual void set_input_scale(float scale) = 0;
  // 0 while calibrating.
  virtual float input_scale() const = 0;
  virtual const std::vector<float>& weight_scales() const = 0;
};

std::unique_ptr<Int8Layer> make_int8_conv2d(int64_t filters, int64_t kernel_height, int64_t kernel_width,
                                            int64_t stride_height, int64_t stride_width, int64_t dilation_height,
                                            int64_t dilation_width, Padding padding, bool use_bias,
                                            Activation activation);
std::unique_ptr<Int8Layer> make_int8_dense(int64_t units, bool use_bias, Activation activation);
std::unique_ptr<Int8Layer> make_int8_depthwise_conv2d(int64_t depth_multiplier, int64_t kernel_height,
                                                      int64_t kernel_width, int64_t stride_height,
                                                      int64_t stride_width, int64_t dilation_height,
                                                      int64_t dilation_width, Padding padding, bool use_bias,
                                                      Activation activation);

}  // namespace fastcnn::runtime
