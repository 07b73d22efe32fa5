"""Per-kernel throughput at the seed examples' layer shapes (batch 32), 1 and 2 threads.

Convolutions and dense layers report GFLOP/s (2 * multiply-adds) and % of the peak measured on
this machine by a pure-FMA probe (fastcnn._core.measure_peak_gflops, same thread count); pooling,
BatchNormalization and activations report GB/s of memory touched. Convolutions count the FLOPs of
a direct convolution; the 3x3 layers with at least 16 channels on both sides (all but the first
layers) run Winograd, so their `% of peak` can pass 100%: F(4x4, 3x3) in inference's forward pass
and the kernel gradient (4x fewer multiply-adds, less at image edges), F(2x2, 3x3) in a training
step's forward pass and the input gradient (2.25x fewer). Example 1's first layer and its max pooling also run as one
fused kernel (forward, and the kernel gradient from the pooled gradient), as training and
inference run them. Results go to stdout and to benchmarks/results/kernels.md.

    python benchmarks/kernels.py [--repeats 20] [--kernels avx2]
"""

import argparse
import pathlib
import time

import numpy as np

from fastcnn import _core

CONVOLUTIONS = [
    # name, (height, width, in channels), out channels, padding
    ("ex1 conv1 28x28x1->32", (28, 28, 1), 32, "valid"),
    ("ex1 conv2 13x13x32->64", (13, 13, 32), 64, "valid"),
    ("ex3 conv1 64x64x3->32", (64, 64, 3), 32, "same"),
    ("ex3 conv2 64x64x32->32", (64, 64, 32), 32, "same"),
    ("ex3 conv3 32x32x32->64", (32, 32, 32), 64, "same"),
    ("ex3 conv4 32x32x64->64", (32, 32, 64), 64, "same"),
]


def best_time(function, repeats):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--kernels", default=_core.kernel_set())
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = ["| kernel | threads | time (ms) | GFLOP/s or GB/s | % of peak |", "|---|---|---|---|---|"]
    original_threads = _core.get_num_threads()
    for threads in (1, 2):
        _core.set_num_threads(threads)
        peak = _core.measure_peak_gflops(0.5)
        rows.append(f"| FMA peak probe | {threads} | | {peak:.1f} GFLOP/s | 100% |")
        for name, (height, width, channels), filters, padding in CONVOLUTIONS:
            x = rng.standard_normal((args.batch, height, width, channels)).astype(np.float32)
            kernel = rng.standard_normal((3, 3, channels, filters)).astype(np.float32)
            bias = np.zeros(filters, np.float32)
            y = _core.ops.conv2d_forward(x, kernel, bias, padding=padding, activation="relu", kernels=args.kernels)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            flops = 2.0 * y.size * 9 * channels
            cases = {
                "forward": lambda: _core.ops.conv2d_forward(x, kernel, bias, padding=padding, activation="relu", kernels=args.kernels),
                "training forward": lambda: _core.ops.conv2d_forward(x, kernel, bias, padding=padding, activation="relu",
                                                                     kernels=args.kernels, large_winograd_tile=False),
                "input gradient": lambda: _core.ops.conv2d_backward_input(dy, kernel, x.shape, padding=padding, kernels=args.kernels),
                "kernel gradient": lambda: _core.ops.conv2d_backward_kernel(x, dy, (3, 3), padding=padding, kernels=args.kernels),
            }
            for case, function in cases.items():
                seconds = best_time(function, args.repeats)
                rate = flops / seconds / 1e9
                rows.append(f"| {name} {case} | {threads} | {seconds * 1e3:.2f} | {rate:.1f} GFLOP/s | {100 * rate / peak:.0f}% |")
        # Example 1's first convolution with its 2x2 max pooling, fused: the convolution's FLOPs.
        x = rng.standard_normal((args.batch, 28, 28, 1)).astype(np.float32)
        kernel = rng.standard_normal((3, 3, 1, 32)).astype(np.float32)
        bias = np.zeros(32, np.float32)
        pooled, window_index = _core.ops.conv2d_max_pool2d_forward(x, kernel, bias, kernels=args.kernels)
        pooled_gradient = rng.standard_normal(pooled.shape).astype(np.float32)
        flops = 2.0 * args.batch * 26 * 26 * 32 * 9
        fused = {
            "forward": lambda: _core.ops.conv2d_max_pool2d_forward(x, kernel, bias, kernels=args.kernels),
            "kernel gradient": lambda: _core.ops.conv2d_max_pool2d_backward_kernel(
                x, pooled, window_index, pooled_gradient, (3, 3), kernels=args.kernels),
        }
        for case, function in fused.items():
            seconds = best_time(function, args.repeats)
            rate = flops / seconds / 1e9
            rows.append(f"| ex1 conv1 + max pool (fused) {case} | {threads} | {seconds * 1e3:.2f} | {rate:.1f} GFLOP/s | "
                        f"{100 * rate / peak:.0f}% |")
        x = rng.standard_normal((args.batch, 1600)).astype(np.float32)
        kernel = rng.standard_normal((1600, 10)).astype(np.float32)
        seconds = best_time(lambda: _core.ops.dense_forward(x, kernel, None, kernels=args.kernels), args.repeats)
        rate = 2.0 * x.shape[0] * 1600 * 10 / seconds / 1e9
        rows.append(f"| dense 1600->10 forward | {threads} | {seconds * 1e3:.3f} | {rate:.1f} GFLOP/s | {100 * rate / peak:.0f}% |")
        feature_map = rng.standard_normal((args.batch, 64, 64, 32)).astype(np.float32)
        memory = {
            "max pool 2x2 forward (64x64x32)": (lambda: _core.ops.max_pool2d_forward(feature_map, (2, 2), (2, 2), kernels=args.kernels),
                                                feature_map.nbytes * 1.25),
            "BN statistics (64x64x32)": (lambda: _core.ops.batch_norm_statistics(feature_map, args.kernels), feature_map.nbytes * 2),
            "relu forward (64x64x32)": (lambda: _core.ops.activation_forward("relu", feature_map, args.kernels), feature_map.nbytes * 2),
        }
        for name, (function, touched) in memory.items():
            seconds = best_time(function, args.repeats)
            rows.append(f"| {name} | {threads} | {seconds * 1e3:.2f} | {touched / seconds / 1e9:.1f} GB/s | |")
    _core.set_num_threads(original_threads)
    table = "\n".join(rows)
    print(table)
    out = pathlib.Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "kernels.md").write_text(f"Kernels: {args.kernels}, batch {args.batch}, best of {args.repeats}.\n\n{table}\n")


if __name__ == "__main__":
    main()
