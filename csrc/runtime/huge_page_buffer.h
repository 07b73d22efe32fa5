// A zero-filled float buffer for the network's workspaces (activations, gradients), which the
// training and inference passes stream through once per step: tens to hundreds of MB, more than
// the caches hold. From 16 MiB it is 2 MiB aligned and, on Linux, advised for transparent huge
// pages before it is first touched (the kernel's default is "madvise": plain allocations get 4 KiB pages). One
// TLB entry then covers 512 times as much of a tensor: a MobileNetV2-style training step at batch
// 64 took 0.69-1.04 (median 0.88; faster in 12 of 14 interleaved pairs) of its time with 4 KiB
// pages (Zen 4, 2 cores, benchmarks/step_profile.py with THP "madvise" against "never"). Where the advice is
// refused the buffer works the same with small pages.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fastcnn::runtime {

class HugePageBuffer {
 public:
  // Replaces the contents with `count` zeros (the old memory is released first).
  void assign(size_t count) {
    memory_.reset();
    size_ = 0;
    if (count == 0) return;
    // Huge pages from 16 MiB: below that a workspace is mostly cache-resident and rounding it up
    // to whole 2 MiB pages would only cost memory.
    constexpr size_t kHugePage = size_t{2} << 20, kHugeFrom = size_t{16} << 20, kCacheLine = 64;
    const size_t wanted = count * sizeof(float);
    const size_t alignment = wanted >= kHugeFrom ? kHugePage : kCacheLine;
    const size_t bytes = (wanted + alignment - 1) / alignment * alignment;  // aligned_alloc's rule
    void* memory = std::aligned_alloc(alignment, bytes);
    if (memory == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (alignment == kHugePage) madvise(memory, bytes, MADV_HUGEPAGE);  // advice: refused is fine
#endif
    std::memset(memory, 0, bytes);
    memory_.reset(static_cast<float*>(memory));
    size_ = count;
  }
  float* data() { return memory_.get(); }
  const float* data() const { return memory_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(float* memory) const { std::free(memory); }
  };
  std::unique_ptr<float, Free> memory_;
  size_t size_ = 0;
};

}  // namespace fastcnn::runtime
