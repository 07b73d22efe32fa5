// Software prefetch for the streaming passes (memory-bound kernels). In a training step most
// tensors come from memory — the caches hold the last layers' work, not the one a pass reads — and
// the hardware prefetchers alone keep too few lines in flight: reading 25 MB the caches do not hold
// took 0.65 ms on 2 threads, 0.56-0.61 ms with 1-4 KiB of software prefetch, and a pass reading
// one such tensor and writing another 1.72 -> 1.45 ms (Intel Xeon, avx512; a scratch benchmark,
// not committed). A prefetch only asks for a line: results do not change, and an address past the
// end of an array does not fault.
#pragma once

#include <algorithm>
#include <cstdint>

namespace fastcnn::kernels {

// How far ahead of its reads a pass requests data.
constexpr int64_t kPrefetchBytes = 2048;

// Requests `floats` floats of `array` from float `first` on: for reading, or for writing (`write`).
// The address is formed in integers: it may lie past the array's end, where pointer arithmetic may
// not go.
inline void prefetch_floats(const float* array, int64_t first, int64_t floats, bool write = false) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(array) + static_cast<uintptr_t>(first * int64_t{sizeof(float)});
  for (int64_t byte = 0; byte < floats * int64_t{sizeof(float)}; byte += 64) {
    const void* address = reinterpret_cast<const void*>(begin + static_cast<uintptr_t>(byte));
    if (write) {
      __builtin_prefetch(address, 1);
    } else {
      __builtin_prefetch(address);
    }
  }
}

// Rows of row_floats floats that make up kPrefetchBytes, at least one: the distance in rows of a
// pass that walks rows.
inline int64_t prefetch_rows(int64_t row_floats) {
  return std::max<int64_t>(1, kPrefetchBytes / std::max<int64_t>(1, row_floats * int64_t{sizeof(float)}));
}

// Floats that make up kPrefetchBytes: the distance of a pass that walks a flat array.
constexpr int64_t kPrefetchFloats = kPrefetchBytes / static_cast<int64_t>(sizeof(float));

}  // namespace fastcnn::kernels
