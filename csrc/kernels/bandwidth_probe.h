// A STREAM-like memory bandwidth probe: the yardstick for memory-bound kernels (depthwise
// convolution, pooling, activations), which are judged in GB/s against it, as the FMA-bound ones
// are judged against fma_peak_probe.
#pragma once

#include <cstdint>

namespace fastcnn::kernels {

// STREAM's triad a[i] = b[i] + s * c[i] over three arrays of `elements` floats each, on every
// thread of a parallel region (static split, each thread its own contiguous part, first touched by
// that thread), `repeats` times after one warm-up pass; returns the best pass's bytes per second,
// counting 3 * 4 * elements bytes per pass (two reads, one write) as STREAM does.
double memory_bandwidth_probe(int64_t elements, int64_t repeats);

}  // namespace fastcnn::kernels
