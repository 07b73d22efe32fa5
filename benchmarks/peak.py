"""The machine's fp32 FMA peak as the benchmarks report it: GFLOP/s of fastcnn's pure-FMA probe
(`fastcnn._core.measure_peak_gflops`) on the current thread count, with the vectors of the widest
kernel set the machine runs (avx512's zmm where the CPU and OS support them, else avx2's ymm).

On a shared machine other work can only slow a probe down, never speed it up, so the peak is the
best of several probes: single two-thread probes on one Intel host read 169, 263, 337 and 346
GFLOP/s within a minute.
"""

from fastcnn import _core


def widest_kernels():
    """The widest kernel set this machine runs (available_kernels lists them narrowest first)."""
    return _core.available_kernels()[-1]


def measure_peak(kernels=None, probes=3, seconds=0.3):
    """Best of `probes` FMA probes of `seconds` each, GFLOP/s, on the current thread count."""
    kernels = kernels or widest_kernels()
    return max(_core.measure_peak_gflops(seconds, kernels) for _ in range(probes))
