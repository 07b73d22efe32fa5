// Overflow-checked 64-bit size arithmetic, done before anything is allocated. Sizes come from
// users (shapes, layer arguments, batch sizes): a product that wraps around would allocate a
// small buffer that a kernel then overruns (TensorFlow's CVE-2021-41197), so every element count
// is formed here and refused, with a message naming it, when it cannot be represented.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace fastcnn {

// Element counts above 2^50 (4 PiB of float32) are refused outright: no machine holds them, and
// it leaves 2^13 of headroom for sums of a few such counts to stay far from int64 overflow.
constexpr int64_t kMaxElementCount = int64_t(1) << 50;

// a * b, or std::invalid_argument naming `what` when a factor is negative or the product
// exceeds kMaxElementCount.
inline int64_t checked_multiply(int64_t a, int64_t b, const std::string& what) {
  if (a < 0 || b < 0) {
    throw std::invalid_argument(what + " has a negative dimension. Received: " + std::to_string(a < 0 ? a : b));
  }
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product) || product > kMaxElementCount) {
    throw std::invalid_argument(what + " is too large: its element count exceeds 2^50. Received: " +
                                std::to_string(a) + " * " + std::to_string(b));
  }
  return product;
}

// The product of `factors` (dimensions of one array), checked as checked_multiply.
inline int64_t checked_product(std::initializer_list<int64_t> factors, const std::string& what) {
  int64_t product = 1;
  for (int64_t factor : factors) product = checked_multiply(product, factor, what);
  return product;
}

// a + b for non-negative sizes, refused beyond kMaxElementCount.
inline int64_t checked_add(int64_t a, int64_t b, const std::string& what) {
  int64_t sum = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &sum) || sum > kMaxElementCount) {
    throw std::invalid_argument(what + " is too large: its element count exceeds 2^50. Received: " +
                                std::to_string(a) + " + " + std::to_string(b));
  }
  return sum;
}

// Raised (as Python's MemoryError, which pybind11 maps std::bad_alloc to) for a request larger
// than the machine's physical memory: Linux overcommits, so such an allocation would succeed and
// the process be killed later, when the pages are first written.
class AllocationTooLarge : public std::bad_alloc {
 public:
  explicit AllocationTooLarge(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

inline int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return INT64_MAX;
  int64_t bytes = 0;
  if (__builtin_mul_overflow(int64_t(pages), int64_t(page_size), &bytes)) return INT64_MAX;
  return bytes;
}

// Refuses `count` elements of `element_size` bytes when they exceed the physical memory.
inline void require_allocatable(int64_t count, size_t element_size, const std::string& what) {
  int64_t bytes = 0;
  const int64_t physical = physical_memory_bytes();
  if (count < 0 || __builtin_mul_overflow(count, int64_t(element_size), &bytes) || bytes > physical) {
    throw AllocationTooLarge("Unable to allocate " + what + ": " + std::to_string(count) + " elements of " +
                             std::to_string(element_size) + " bytes exceed this machine's physical memory (" +
                             std::to_string(physical) + " bytes)");
  }
}

}  // namespace fastcnn
