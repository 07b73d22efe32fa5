// Template definitions for parallel.h that need the OpenMP runtime's thread queries.
#pragma once

#include <omp.h>

namespace fastcnn::parallel {

template <typename Body>
void parallel_region(Body&& body) {
  if (in_parallel() || forked_child()) {
    ScopedFlushDenormals flush_denormals;  // the same arithmetic as on a worker
    body(0, 1);
    return;
  }
  FirstException first_exception;
#pragma omp parallel
  {
    ScopedFlushDenormals flush_denormals;
    first_exception.guard([&] { body(static_cast<int>(omp_get_thread_num()), static_cast<int>(omp_get_num_threads())); });
  }
  first_exception.rethrow_first();
}

}  // namespace fastcnn::parallel
