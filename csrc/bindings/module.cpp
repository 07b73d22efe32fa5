// The extension module fastcnn._core: kernel-set and thread control here; the single ops, the image
// ops and the compiled model are registered by their own files (bindings/ops.cpp, image_ops.cpp,
// network.cpp). Every entry point checks its arrays (rank, shapes consistent with each other and with
// the op's parameters, index ranges) and raises ValueError / TypeError naming what it received,
// converts to contiguous float32 once, then releases the GIL and calls C++ that trusts its inputs.
#include "bindings/arrays.h"

namespace py = pybind11;
using namespace fastcnn;
using namespace fastcnn::bindings;

namespace {

#ifdef FASTCNN_SANITIZE
// Deliberately faulty, compiled into the sanitizer build only (CMake's FASTCNN_SANITIZE):
// scripts/sanitize.sh calls it in a child process and requires AddressSanitizer's or
// UndefinedBehaviorSanitizer's report and a failed exit, which proves that the instrumentation
// and the preloaded runtime are live before the test suite's silence is taken as a clean bill.
// The volatile operands stop the compiler from seeing the fault and folding it away.
int64_t sanitizer_canary(const std::string& kind) {
  if (kind == "heap-buffer-overflow") {
    std::vector<int32_t> values(4, 1);
    volatile std::size_t index = values.size();
    return values.data()[index];  // reads 4 bytes just past the heap block
  }
  if (kind == "signed-overflow") {
    volatile int32_t largest = std::numeric_limits<int32_t>::max();
    volatile int32_t one = 1;
    return largest + one;  // int32 overflow: undefined behaviour
  }
  throw py::value_error("`kind` must be 'heap-buffer-overflow' or 'signed-overflow'. Received: kind=" + kind);
}
#endif

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastcnn's compiled kernels and training runtime (private: use the fastcnn package)";

  m.def("kernel_set", [] { return std::string(kernels::active().name); },
        "Name of the kernel set in use: reference, generic, avx2 or avx512.");
  m.def("select_kernels", [](const std::string& name) { kernels::select(name.c_str()); },
        py::arg("name"), "Switch the kernel set used by every model in this process.");
  m.def("available_kernels", [] {
    int count = 0;
    const char* const* names = kernels::available_names(&count);
    std::vector<std::string> result(names, names + count);
    return result;
  });
  m.def("measure_peak_gflops",
        [](double seconds, const std::string& kernel_set) {
          if (!(seconds > 0.0 && seconds <= 60.0)) {
            throw py::value_error("`seconds` must be in (0, 60]. Received: seconds=" + std::to_string(seconds));
          }
          const std::string tier = kernel_set == "active" ? kernels::active().name : kernel_set;
          kernels::by_name(tier.c_str());  // an unknown or unsupported name raises ValueError here
          auto probe = [tier](int64_t iterations) { return kernels::fma_peak_probe(tier.c_str(), iterations); };
          py::gil_scoped_release release;
          probe(1 << 16);  // warm up: wake the threads and the vector units
          // Grow the loop until one run lasts `seconds`, then keep the best of three such runs
          // (a run that shared a core with another process would understate the peak).
          int64_t iterations = 1 << 20;
          auto run = [&]() {
            const auto start = std::chrono::steady_clock::now();
            const double flops = probe(iterations);
            const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            return std::make_pair(flops / elapsed / 1e9, elapsed);
          };
          auto [best, elapsed] = run();
          while (elapsed < seconds && iterations < (int64_t(1) << 40)) {
            iterations *= 2;
            std::tie(best, elapsed) = run();
          }
          for (int repeat = 0; repeat < 2; ++repeat) best = std::max(best, run().first);
          return best;
        },
        py::arg("seconds") = 0.3, py::arg("kernels") = "active",
        "GFLOP/s of a pure-FMA loop on all threads with the vectors of a kernel set ('active' or a name; "
        "the widest set the machine runs gives its peak).");
  m.def("get_num_threads", &parallel::max_threads);
  m.def("set_num_threads", [](int64_t count) {
    // libgomp starts every thread asked for, and a failed pthread_create there is fatal: bound the
    // count well above any useful oversubscription of this machine's cores.
    const int64_t limit = std::max<int64_t>(1024, 8 * static_cast<int64_t>(std::thread::hardware_concurrency()));
    if (count <= 0 || count > limit) {
      throw py::value_error("thread count must be positive and at most " + std::to_string(limit) +
                            ". Received: " + std::to_string(count));
    }
    parallel::set_max_threads(static_cast<int>(count));
  }, py::arg("count"));

#ifdef FASTCNN_SANITIZE
  m.def("_sanitizer_canary", &sanitizer_canary, py::arg("kind"),
        "Sanitizer build only: commits a heap out-of-bounds read or a signed overflow on purpose.");
#endif

  py::module_ ops = m.def_submodule("ops", "Single kernels on numpy arrays (NHWC float32).");
  bind_ops(ops);
  bind_image_ops(ops);
  bind_network(m);
  bind_quantization(m, ops);
}
