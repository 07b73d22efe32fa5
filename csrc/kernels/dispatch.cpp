// The config tier: picks one kernel table per process from the CPU's features (never from the
// build machine's), with FASTCNN_KERNELS as an override for tests and bug reports.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#if defined(FASTCNN_HAVE_X86_TIERS) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#define FASTCNN_X86_DISPATCH 1
#endif

#include "kernels/kernels.h"

namespace fastcnn::kernels {
namespace {

#ifdef FASTCNN_X86_DISPATCH
// The register state the OS saves on context switches (XCR0), or 0 where XGETBV is unavailable
// (CPUID.1:ECX.OSXSAVE[bit 27] clear). A CPU may have AVX-512 while the OS (or a hypervisor) leaves
// its state off; the instructions then fault, so the CPU's flags alone are not enough.
uint64_t os_saved_state() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) return 0;
  uint32_t low = 0, high = 0;
  __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
  return (static_cast<uint64_t>(high) << 32) | low;
}
// XCR0 bits: 1 SSE (xmm), 2 AVX (upper ymm halves), 5 opmask (k0-k7), 6 ZMM_Hi256 (upper zmm
// halves of zmm0-15), 7 Hi16_ZMM (zmm16-31).
constexpr uint64_t kYmmState = (1u << 1) | (1u << 2);
constexpr uint64_t kZmmState = kYmmState | (1u << 5) | (1u << 6) | (1u << 7);
#endif

// The CPU and OS checks run once per process: CPUID traps to the hypervisor in a virtual machine
// (measured: about 10 us a call here), and by_name() runs them on every call of a kernel by name
// (the tests and benchmarks call every tier that way), where they made a small kernel's call
// several times slower — and avx512's, with two CPUID calls, slower than avx2's.
bool detect_avx2() {
#ifdef FASTCNN_X86_DISPATCH
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         (os_saved_state() & kYmmState) == kYmmState;
#else
  return false;
#endif
}

bool cpu_has_avx2() {
  static const bool supported = detect_avx2();
  return supported;
}

bool detect_avx512() {
#ifdef FASTCNN_X86_DISPATCH
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         (os_saved_state() & kZmmState) == kZmmState;
#else
  return false;
#endif
}

bool cpu_has_avx512() {
  static const bool supported = detect_avx512();
  return supported;
}

const KernelTable* lookup(const std::string& name) {
  if (name == "reference") return &reference::table();
  if (name == "generic") return &generic::table();
#ifdef FASTCNN_X86_DISPATCH
  if (name == "avx2") {
    if (!cpu_has_avx2()) throw std::invalid_argument("kernels 'avx2' need a CPU (and OS) with AVX2 and FMA");
    return &avx2::table();
  }
  if (name == "avx512") {
    if (!cpu_has_avx512()) {
      throw std::invalid_argument(
          "kernels 'avx512' need a CPU with AVX-512 F, BW, VL and DQ and an OS that saves the zmm and mask "
          "registers; this one runs: " + std::string(cpu_has_avx2() ? "reference, generic, avx2" : "reference, generic"));
    }
    return &avx512::table();
  }
#endif
  throw std::invalid_argument("Unknown kernel set: '" + name +
                              "'. Expected one of: reference, generic, avx2, avx512 (where supported).");
}

const KernelTable* initial_table() {
  if (const char* forced = std::getenv("FASTCNN_KERNELS"); forced != nullptr && *forced != '\0') {
    return lookup(forced);
  }
  if (cpu_has_avx512()) return lookup("avx512");
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
  static const char* const names[] = {"reference", "generic", "avx2", "avx512"};
  *count = cpu_has_avx512() ? 4 : cpu_has_avx2() ? 3 : 2;
  return names;
}

double fma_peak_probe(const char* name, int64_t iterations) {
  const std::string tier = by_name(name).name;
#ifdef FASTCNN_X86_DISPATCH
  if (tier == "avx512") return avx512::fma_peak_probe(iterations);
  if (tier == "avx2") return avx2::fma_peak_probe(iterations);
#endif
  return generic::fma_peak_probe(iterations);
}

#ifndef FASTCNN_X86_DISPATCH
namespace avx2 {
const KernelTable& table() { return generic::table(); }
double fma_peak_probe(int64_t iterations) { return generic::fma_peak_probe(iterations); }
}  // namespace avx2
namespace avx512 {
const KernelTable& table() { return generic::table(); }
double fma_peak_probe(int64_t iterations) { return generic::fma_peak_probe(iterations); }
}  // namespace avx512
#endif

}  // namespace fastcnn::kernels
