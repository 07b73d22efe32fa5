#include "parallel.h"

#include <omp.h>
#include <pthread.h>

#include <atomic>
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define FASTCNN_HAVE_MXCSR 1
#endif

namespace fastcnn::parallel {

namespace {

// Set in the child of a fork(): the parent's OpenMP threads do not exist there, and libgomp
// entering a parallel region would wait for them forever.
std::atomic<bool> in_forked_child{false};
[[maybe_unused]] const int fork_handler_registered = pthread_atfork(nullptr, nullptr, [] { in_forked_child.store(true); });

}  // namespace

bool forked_child() { return in_forked_child.load(std::memory_order_relaxed); }

int max_threads() { return forked_child() ? 1 : omp_get_max_threads(); }

void set_max_threads(int count) { omp_set_num_threads(count); }

// omp_get_level, not omp_in_parallel: a region of one thread is inactive, and omp_in_parallel
// would send a kernel called inside it into a nested region of its own, started on every call.
bool in_parallel() { return omp_get_level() > 0; }

// MXCSR bits: 0x8000 flush-to-zero, 0x0040 denormals-are-zero.
ScopedFlushDenormals::ScopedFlushDenormals() : saved_state_(0) {
#ifdef FASTCNN_HAVE_MXCSR
  saved_state_ = _mm_getcsr();
  _mm_setcsr(saved_state_ | 0x8040u);
#endif
}

ScopedFlushDenormals::~ScopedFlushDenormals() {
#ifdef FASTCNN_HAVE_MXCSR
  _mm_setcsr(saved_state_);
#endif
}

}  // namespace fastcnn::parallel
