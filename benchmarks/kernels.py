"""Per-kernel throughput at the seed examples' layer shapes (batch 32), 1 and 2 threads.

Convolutions and dense layers report GFLOP/s (2 * multiply-adds) and % of the machine's peak:
a pure-FMA probe (fastcnn._core.measure_peak_gflops, same thread count) run with the widest
vectors this machine has (avx512's zmm where the CPU and OS support them, else avx2's ymm), so
a narrower tier's % shows what it leaves unused. Pooling, BatchNormalization and activations
report GB/s of memory touched. Convolutions count the FLOPs of a direct convolution; the 3x3
layers with at least 16 channels on both sides (all but the first layers) run Winograd, so their
`% of peak` can pass 100%: F(4x4, 3x3) in inference's forward pass and the kernel gradient (4x
fewer multiply-adds, less at image edges), F(2x2, 3x3) in a training step's forward pass and the
input gradient (2.25x fewer). Example 1's first layer and its max pooling also run as one fused
kernel (forward, and the kernel gradient from the pooled gradient), as training and inference run
them. Results go to stdout and to benchmarks/results/kernels.md.

Several kernel sets (--kernels avx2,avx512) are measured side by side in one run: each case's
repetitions alternate between the sets (timings drift on a shared machine; alternating exposes
every set to the same drift), and a last column gives the time ratio first set / last set (above
1: the last set is faster).

    python benchmarks/kernels.py [--repeats 20] [--kernels avx2,avx512]
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


def best_times(make_function, tiers, repeats):
    """The best time of `repeats` calls per tier, the tiers' calls alternating."""
    functions = {tier: make_function(tier) for tier in tiers}
    for function in functions.values():
        function()  # warm up: scratch buffers, packed weights, threads
    best = {tier: float("inf") for tier in tiers}
    for _ in range(repeats):
        for tier, function in functions.items():
            start = time.perf_counter()
            function()
            best[tier] = min(best[tier], time.perf_counter() - start)
    return best


def widest_tier():
    """The tier with the widest vectors this machine runs (available_kernels lists them narrowest first)."""
    return [name for name in _core.available_kernels() if name != "reference"][-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--kernels", default=_core.kernel_set(), help="a kernel set, or several separated by commas")
    args = parser.parse_args()
    tiers = args.kernels.split(",")
    for tier in tiers:
        if tier not in _core.available_kernels():
            parser.error(f"--kernels: {tier!r} is not one of this machine's kernel sets {_core.available_kernels()}")
    peak_tier = widest_tier()
    rng = np.random.default_rng(0)
    header = "| kernel | threads |" + "".join(f" {t} ms | {t} GFLOP/s or GB/s | {t} % of peak |" for t in tiers)
    if len(tiers) > 1:
        header += f" time {tiers[0]} / {tiers[-1]} |"
    rows = [header, "|" + "---|" * (header.count("|") - 1)]

    def add_row(name, threads, seconds, amount, unit, peak):
        row = f"| {name} | {threads} |"
        for tier in tiers:
            rate = amount / seconds[tier] / 1e9
            percent = f"{100 * rate / peak:.0f}%" if unit == "GFLOP/s" else ""
            row += f" {seconds[tier] * 1e3:.3f} | {rate:.1f} {unit} | {percent} |"
        if len(tiers) > 1:
            row += f" {seconds[tiers[0]] / seconds[tiers[-1]]:.2f} |"
        rows.append(row)
        print(row, flush=True)

    original_threads = _core.get_num_threads()
    peaks_seen = []
    for threads in (1, 2):
        _core.set_num_threads(threads)
        probes = {tier: _core.measure_peak_gflops(0.5, tier) for tier in dict.fromkeys(tiers + [peak_tier])}
        peak = probes[peak_tier]
        peaks_seen.append(f"{threads} thread{'s' if threads > 1 else ''}: " +
                          ", ".join(f"{tier} {gflops:.1f}" for tier, gflops in probes.items()) + " GFLOP/s")
        for tier, gflops in probes.items():
            row = f"| FMA peak probe ({tier}{', the peak' if tier == peak_tier else ''}) | {threads} |"
            row += "".join(f" | {gflops:.1f} GFLOP/s | {100 * gflops / peak:.0f}% |" for _ in tiers)
            rows.append(row + (" |" if len(tiers) > 1 else ""))
            print(rows[-1], flush=True)
        for name, (height, width, channels), filters, padding in CONVOLUTIONS:
            x = rng.standard_normal((args.batch, height, width, channels)).astype(np.float32)
            kernel = rng.standard_normal((3, 3, channels, filters)).astype(np.float32)
            bias = np.zeros(filters, np.float32)
            y = _core.ops.conv2d_forward(x, kernel, bias, padding=padding, activation="relu", kernels=tiers[0])
            dy = rng.standard_normal(y.shape).astype(np.float32)
            flops = 2.0 * y.size * 9 * channels
            cases = {
                "forward": lambda tier: lambda: _core.ops.conv2d_forward(
                    x, kernel, bias, padding=padding, activation="relu", kernels=tier),
                "training forward": lambda tier: lambda: _core.ops.conv2d_forward(
                    x, kernel, bias, padding=padding, activation="relu", kernels=tier, large_winograd_tile=False),
                "input gradient": lambda tier: lambda: _core.ops.conv2d_backward_input(
                    dy, kernel, x.shape, padding=padding, kernels=tier),
                "kernel gradient": lambda tier: lambda: _core.ops.conv2d_backward_kernel(
                    x, dy, (3, 3), padding=padding, kernels=tier),
            }
            for case, make in cases.items():
                add_row(f"{name} {case}", threads, best_times(make, tiers, args.repeats), flops, "GFLOP/s", peak)
        # Example 1's first convolution with its 2x2 max pooling, fused: the convolution's FLOPs.
        x = rng.standard_normal((args.batch, 28, 28, 1)).astype(np.float32)
        kernel = rng.standard_normal((3, 3, 1, 32)).astype(np.float32)
        bias = np.zeros(32, np.float32)
        pooled, window_index = _core.ops.conv2d_max_pool2d_forward(x, kernel, bias, kernels=tiers[0])
        pooled_gradient = rng.standard_normal(pooled.shape).astype(np.float32)
        flops = 2.0 * args.batch * 26 * 26 * 32 * 9
        fused = {
            "forward": lambda tier: lambda: _core.ops.conv2d_max_pool2d_forward(x, kernel, bias, kernels=tier),
            "kernel gradient": lambda tier: lambda: _core.ops.conv2d_max_pool2d_backward_kernel(
                x, pooled, window_index, pooled_gradient, (3, 3), kernels=tier),
        }
        for case, make in fused.items():
            add_row(f"ex1 conv1 + max pool (fused) {case}", threads, best_times(make, tiers, args.repeats), flops,
                    "GFLOP/s", peak)
        x = rng.standard_normal((args.batch, 1600)).astype(np.float32)
        kernel = rng.standard_normal((1600, 10)).astype(np.float32)
        add_row("dense 1600->10 forward", threads,
                best_times(lambda tier: lambda: _core.ops.dense_forward(x, kernel, None, kernels=tier), tiers, args.repeats),
                2.0 * x.shape[0] * 1600 * 10, "GFLOP/s", peak)
        feature_map = rng.standard_normal((args.batch, 64, 64, 32)).astype(np.float32)
        memory = {
            "max pool 2x2 forward (64x64x32)": (
                lambda tier: lambda: _core.ops.max_pool2d_forward(feature_map, (2, 2), (2, 2), kernels=tier),
                feature_map.nbytes * 1.25),
            "BN statistics (64x64x32)": (
                lambda tier: lambda: _core.ops.batch_norm_statistics(feature_map, tier), feature_map.nbytes * 2),
            "relu forward (64x64x32)": (
                lambda tier: lambda: _core.ops.activation_forward("relu", feature_map, tier), feature_map.nbytes * 2),
        }
        for name, (make, touched) in memory.items():
            add_row(name, threads, best_times(make, tiers, args.repeats), touched, "GB/s", peak)
    _core.set_num_threads(original_threads)
    table = "\n".join(rows)
    out = pathlib.Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "kernels.md").write_text(
        f"Kernels: {', '.join(tiers)}, batch {args.batch}, best of {args.repeats}"
        f"{' (alternating)' if len(tiers) > 1 else ''}. Peak: the {peak_tier} FMA probe "
        f"({'; '.join(peaks_seen)}).\n\n{table}\n")


if __name__ == "__main__":
    main()
