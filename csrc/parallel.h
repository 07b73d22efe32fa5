// The one place OpenMP lives. Kernels call parallel_for / parallel_region; nothing else
// includes <omp.h>. Every parallel region flushes denormals to zero inside its workers (as
// TensorFlow's thread pools do) and restores the calling thread's floating-point mode after.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

namespace fastcnn::parallel {

int max_threads();
void set_max_threads(int count);
// True when called from inside a parallel region (nested regions run serially).
bool in_parallel();
// True in the child of a fork() made after OpenMP started: it runs every region serially on the
// calling thread (as PyTorch does), since the parent's thread pool did not survive the fork.
bool forked_child();

// Saves MXCSR, sets flush-to-zero / denormals-are-zero, restores on destruction.
class ScopedFlushDenormals {
 public:
  ScopedFlushDenormals();
  ~ScopedFlushDenormals();
  ScopedFlushDenormals(const ScopedFlushDenormals&) = delete;
  ScopedFlushDenormals& operator=(const ScopedFlushDenormals&) = delete;

 private:
  unsigned int saved_state_;
};

// An exception cannot leave an OpenMP region (the runtime would call std::terminate and end the
// process: a std::bad_alloc from a worker's scratch would never reach Python as MemoryError). Each
// worker runs its work through guard(); the first exception is kept, later work is skipped, and
// rethrow_first() rethrows it on the calling thread once the region has ended.
class FirstException {
 public:
  template <typename Work>
  void guard(Work&& work) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      work();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  void rethrow_first() {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr first_;
};

// Calls body(index) for index in [0, count), statically split over the threads: the same
// indices go to the same thread on every call, which keeps per-thread data warm in its cache.
template <typename Body>
void parallel_for(int64_t count, Body&& body) {
  if (count <= 0) return;
  if (count == 1 || in_parallel() || forked_child()) {
    ScopedFlushDenormals flush_denormals;  // the same arithmetic as on a worker
    for (int64_t index = 0; index < count; ++index) body(index);
    return;
  }
  FirstException first_exception;
#pragma omp parallel
  {
    ScopedFlushDenormals flush_denormals;
#pragma omp for schedule(static)
    for (int64_t index = 0; index < count; ++index) first_exception.guard([&] { body(index); });
  }
  first_exception.rethrow_first();
}

// Calls body(thread_index, thread_count) once on every thread of a parallel region.
template <typename Body>
void parallel_region(Body&& body);

}  // namespace fastcnn::parallel

#include "parallel_inl.h"
