// The config tier: picks one kernel table per process from the CPU's features (never from the
// build machine's), with FASTCNN_KERNELS as an override for tests and bug reports.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/kernels.h"

namespace fastcnn::kernels {
namespace {

bool cpu_has_avx2() {
#if defined(FASTCNN_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

const KernelTable* lookup(const std::string& name) {
  if (name == "reference") return &reference::table();
  if (name == "generic") return &generic::table();
#ifdef FASTCNN_HAVE_AVX2
  if (name == "avx2") {
    if (!cpu_has_avx2()) throw std::invalid_argument("kernels 'avx2' need a CPU with AVX2 and FMA");
    return &avx2::table();
  }
#endif
  throw std::invalid_argument("Unknown kernel set: '" + name +
                              "'. Expected one of: reference, generic, avx2 (where supported).");
}

const KernelTable* initial_table() {
  if (const char* forced = std::getenv("FASTCNN_KERNELS"); forced != nullptr && *forced != '\0') {
    return lookup(forced);
  }
  return cpu_has_avx2() ? lookup("avx2") : lookup("generic");
}

const KernelTable*& current() {
  static const KernelTable* table = initial_table();
  return table;
}

}  // namespace

const KernelTable& active() { return *current(); }

void select(const char* name) { current() = lookup(name); }

const KernelTable& by_name(const char* name) { return *lookup(name); }

const char* const* available_names(int* count) {
  static const char* const with_avx2[] = {"reference", "generic", "avx2"};
  static const char* const without_avx2[] = {"reference", "generic"};
  if (cpu_has_avx2()) {
    *count = 3;
    return with_avx2;
  }
  *count = 2;
  return without_avx2;
}

#ifndef FASTCNN_HAVE_AVX2
namespace avx2 {
const KernelTable& table() { return generic::table(); }
double fma_peak_probe(int64_t iterations) { return generic::fma_peak_probe(iterations); }
}  // namespace avx2
#endif

}  // namespace fastcnn::kernels
