#include "kernels/bandwidth_probe.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "parallel.h"

namespace fastcnn::kernels {

double memory_bandwidth_probe(int64_t elements, int64_t repeats) {
  if (elements <= 0) return 0.0;
  // Uninitialised storage: each thread writes its own part first, so its pages are its own.
  std::unique_ptr<float[]> a(new float[elements]), b(new float[elements]), c(new float[elements]);
  float* pa = a.get();
  float* pb = b.get();
  float* pc = c.get();
  auto pass = [&](bool initialise) {
    parallel::parallel_region([&](int thread, int threads) {
      const int64_t begin = elements * thread / threads, end = elements * (thread + 1) / threads;
      if (initialise) {
        std::fill(pb + begin, pb + end, 1.0f);
        std::fill(pc + begin, pc + end, 2.0f);
      }
      const float scale = 3.0f;
      for (int64_t i = begin; i < end; ++i) pa[i] = pb[i] + scale * pc[i];
    });
  };
  pass(true);
  double best = 0.0;
  for (int64_t r = 0; r < std::max<int64_t>(repeats, 1); ++r) {
    const auto start = std::chrono::steady_clock::now();
    pass(false);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds > 0.0) best = std::max(best, 3.0 * sizeof(float) * static_cast<double>(elements) / seconds);
  }
  return best;
}

}  // namespace fastcnn::kernels
