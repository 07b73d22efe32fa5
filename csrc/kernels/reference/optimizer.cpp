// Reference optimizer update: ops/optimizer.h's formulas, one element at a time.
#include <cmath>
#include <cstdint>

#include "kernels/reference/reference.h"
#include "ops/optimizer.h"
#include "parallel.h"

namespace fastcnn::kernels::reference {

void optimizer_update(const OptimizerUpdateParams& params, float* parameters, float* gradients, float* first_slot,
                      float* second_slot, float* third_slot) {
  const OptimizerUpdateParams p = params;
  // Denormals flushed to zero, as in every optimised tier's parallel workers (and TensorFlow's).
  parallel::ScopedFlushDenormals flush_denormals;
  const auto square_root = [](float x) { return std::sqrt(x); };
  float unused = 0.0f;
  for (int64_t i = 0; i < p.count; ++i) {
    float& first = first_slot != nullptr ? first_slot[i] : unused;
    float& second = second_slot != nullptr ? second_slot[i] : unused;
    float& third = third_slot != nullptr ? third_slot[i] : unused;
    update_element(p, square_root, parameters[i], gradients[i], first, second, third);
  }
}

}  // namespace fastcnn::kernels::reference
