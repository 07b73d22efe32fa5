// Optimised optimizer update: ops/optimizer.h's formulas on whole vectors, the last partial vector
// through masked loads and stores (simd.h), in parallel chunks. Memory-bound (Adam reads 4 and
// writes 3 floats per parameter). This file is compiled with -ffp-contract=off (CMakeLists.txt):
// without FMA contraction every tier rounds each operation as the reference does, so all tiers
// give the reference's bits (tests/test_kernels_optimizer.py checks that they are equal).
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/optimized/optimized.h"
#include "kernels/optimized/simd.h"
#include "ops/optimizer.h"
#include "parallel.h"

namespace fastcnn::kernels::FASTCNN_ISA {
namespace {

using simd::floatv;

// Chunks of 8192 parameters (one parallel task each): 32 KiB per buffer, large enough to amortise
// the scheduling, small enough that two threads share a 1.2 M-parameter model evenly.
constexpr int64_t kChunk = 8192;

// Which buffers a kind of update touches, fixed per call.
struct Touched {
  bool first, second, third, gradients;
};

// Loads `count` lanes (all kLanes when full) of the buffers in use, updates them, stores them back.
// Always inlined into update_range, where the kind is a constant and the options loop-invariant (a
// call per vector, as GCC otherwise chose, made plain SGD 3x slower than the scalar loop).
template <bool Full>
__attribute__((always_inline)) inline void update_vector(const OptimizerUpdateParams& p, const Touched& touched, int64_t i, int64_t count,
                          float* parameters, float* gradients, float* first_slot, float* second_slot,
                          float* third_slot) {
  const auto load = [&](const float* source) {
    return Full ? simd::load(source + i) : simd::load_partial(source + i, count);
  };
  const auto store = [&](float* destination, floatv value) {
    if (Full) {
      simd::store(destination + i, value);
    } else {
      simd::store_partial(destination + i, value, count);
    }
  };
  floatv w = load(parameters), g = load(gradients);
  floatv first = {}, second = {}, third = {};
  if (touched.first) first = load(first_slot);
  if (touched.second) second = load(second_slot);
  if (touched.third) third = load(third_slot);
  update_element(p, simd::square_root, w, g, first, second, third);
  store(parameters, w);
  if (touched.gradients) store(gradients, g);
  if (touched.first) store(first_slot, first);
  if (touched.second) store(second_slot, second);
  if (touched.third) store(third_slot, third);
}

// One kind of update over [begin, end): `Kind` a template parameter so that each loop holds only
// its rule's arithmetic, and without Adjust (no clipping, no weight decay: the usual case) those
// steps' fields set to their neutral values, so that the compiler drops their branches; the
// remaining options are loop-invariant branches on local copies.
template <OptimizerKind Kind, bool Adjust>
void update_range(OptimizerUpdateParams p, const Touched touched, int64_t begin, int64_t end, float* parameters,
                  float* gradients, float* first_slot, float* second_slot, float* third_slot) {
  p.kind = Kind;
  if (!Adjust) {
    p.gradient_scale = 1.0f;
    p.clipvalue = 0.0f;
    p.decay = 0.0f;
  }
  int64_t i = begin;
  for (; i + simd::kLanes <= end; i += simd::kLanes) {
    update_vector<true>(p, touched, i, simd::kLanes, parameters, gradients, first_slot, second_slot, third_slot);
  }
  if (i < end) {
    update_vector<false>(p, touched, i, end - i, parameters, gradients, first_slot, second_slot, third_slot);
  }
}

}  // namespace

void optimizer_update(const OptimizerUpdateParams& params, float* parameters, float* gradients, float* first_slot,
                      float* second_slot, float* third_slot) {
  const OptimizerUpdateParams p = params;
  const Touched touched{optimizer_uses_first_slot(p), optimizer_uses_second_slot(p), optimizer_uses_third_slot(p),
                        optimizer_clips(p)};
  const int64_t chunks = (p.count + kChunk - 1) / kChunk;
  // Whether the update clips or decays (as update_element tests it).
  const bool adjust = p.gradient_scale != 1.0f || p.clipvalue > 0.0f || p.decay > 0.0f;
  parallel::parallel_for(chunks, [&](int64_t chunk) {
    const int64_t begin = chunk * kChunk, end = std::min(p.count, begin + kChunk);
    const auto run = [&](auto kind) {
      constexpr OptimizerKind Kind = decltype(kind)::value;
      if (adjust) {
        update_range<Kind, true>(p, touched, begin, end, parameters, gradients, first_slot, second_slot, third_slot);
      } else {
        update_range<Kind, false>(p, touched, begin, end, parameters, gradients, first_slot, second_slot, third_slot);
      }
    };
    switch (p.kind) {
      case OptimizerKind::sgd: run(std::integral_constant<OptimizerKind, OptimizerKind::sgd>{}); break;
      case OptimizerKind::adam: run(std::integral_constant<OptimizerKind, OptimizerKind::adam>{}); break;
      case OptimizerKind::rmsprop: run(std::integral_constant<OptimizerKind, OptimizerKind::rmsprop>{}); break;
      case OptimizerKind::adagrad: run(std::integral_constant<OptimizerKind, OptimizerKind::adagrad>{}); break;
      case OptimizerKind::nadam: run(std::integral_constant<OptimizerKind, OptimizerKind::nadam>{}); break;
    }
  });
}

}  // namespace fastcnn::kernels::FASTCNN_ISA
