"""Per-kernel throughput at the seed examples' layer shapes (batch 32), 1 and 2 threads.

Convolutions and dense layers report GFLOP/s (2 * multiply-adds) and % of the machine's peak:
the best of three pure-FMA probes (peak.py: fastcnn._core.measure_peak_gflops, same thread count)
run with the widest vectors this machine has (avx512's zmm where the CPU and OS support them, else
avx2's ymm), so a narrower tier's % shows what it leaves unused. Pooling, BatchNormalization and activations
report GB/s of memory touched. Convolutions count the FLOPs of a direct convolution; the 3x3
layers with at least 16 channels on both sides (all but the first layers) run Winograd, so their
`% of peak` can pass 100%: F(4x4, 3x3) in inference's forward pass and the kernel gradient (4x
fewer multiply-adds, less at image edges), F(2x2, 3x3) in a training step's forward pass and the
input gradient (2.25x fewer). Example 1's first layer and its max pooling also run as one fused
kernel (forward, and the kernel gradient from the pooled gradient), as training and inference run
them. Results go to stdout and to benchmarks/results/kernels.md.

Depthwise convolutions (MobileNetV2's shapes) are memory-bound (about 2 FLOPs per byte): their rows
report GB/s of the tensors read and written (input and output; output gradient and input gradient;
input and output gradient) and % of the memory bandwidth measured on this machine by a STREAM
triad (fastcnn._core.ops.memory_bandwidth_probe, same thread count). Their results go into
preallocated arrays (out=), so the time is the kernel's, not a fresh array's page faults. Grouped
convolutions (ResNeXt's 32 groups, and groups=2) and a separable block (depthwise 3x3 then 1x1)
report GFLOP/s and % of the FMA peak.

Several kernel sets (--kernels avx2,avx512) are measured side by side in one run: each case's
repetitions alternate between the sets (timings drift on a shared machine; alternating exposes
every set to the same drift), and a last column gives the time ratio first set / last set (above
1: the last set is faster).

The dense section (--section dense) times Dense layers of few outputs (GEMV-shaped: 1600 -> 10 and
128 -> 10, batch 32 and 128) and a wide one (1024 -> 512), forward, input gradient and kernel
gradient; the elementwise section ReLU (the ReLU layer's relu_forward / relu_backward and the
relu activation's forward / backward), BatchNormalization's apply pass and average pooling over
feature maps whose channel counts leave a partial vector (GB/s of memory touched).

    python benchmarks/kernels.py [--repeats 20] [--kernels avx2,avx512] [--section all|conv|depthwise|dense|elementwise]
"""

import argparse
import pathlib
import time

import numpy as np

from fastcnn import _core
from peak import measure_peak, widest_kernels

CONVOLUTIONS = [
    # name, (height, width, in channels), out channels, padding
    ("ex1 conv1 28x28x1->32", (28, 28, 1), 32, "valid"),
    ("ex1 conv2 13x13x32->64", (13, 13, 32), 64, "valid"),
    ("ex3 conv1 64x64x3->32", (64, 64, 3), 32, "same"),
    ("ex3 conv2 64x64x32->32", (64, 64, 32), 32, "same"),
    ("ex3 conv3 32x32x32->64", (32, 32, 32), 64, "same"),
    ("ex3 conv4 32x32x64->64", (32, 32, 64), 64, "same"),
]

DEPTHWISE = [
    # name, (height, width, channels), depth multiplier, stride
    ("mbv2 dw 112x112x32", (112, 112, 32), 1, 1),
    ("mbv2 dw 56x56x144", (56, 56, 144), 1, 1),
    ("mbv2 dw 56x56x144 s2", (56, 56, 144), 1, 2),
    ("mbv2 dw 14x14x384", (14, 14, 384), 1, 1),
    ("dw 28x28x64 dm2", (28, 28, 64), 2, 1),
]

GROUPED = [
    # name, (height, width, in channels), out channels, groups
    ("resnext 28x28x128->128 g32", (28, 28, 128), 128, 32),
    ("grouped 32x32x64->64 g2", (32, 32, 64), 64, 2),
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


def _one_tier_time(function, repeats):
    """The best time of `repeats` calls of a function already bound to its kernel set."""
    return best_times(lambda tier: function, ["bound"], repeats)["bound"]


def depthwise_rows(args, rng, threads, peak, tier):
    """Depthwise (GB/s, % of the triad bandwidth), grouped and separable convolutions (GFLOP/s), on
    the kernel set `tier`."""
    ops = _core.ops
    bandwidth = ops.memory_bandwidth_probe(384, 5)
    rows = [f"| STREAM triad probe | {threads} | | {bandwidth:.1f} GB/s | 100% |"]
    for name, (height, width, channels), multiplier, stride in DEPTHWISE:
        x = rng.standard_normal((args.batch, height, width, channels)).astype(np.float32)
        kernel = rng.standard_normal((3, 3, channels, multiplier)).astype(np.float32)
        bias = np.zeros(channels * multiplier, np.float32)
        geometry = dict(strides=(stride, stride), padding="same")
        y = ops.depthwise_conv2d_forward(x, kernel, bias, activation="relu6", kernels=tier, **geometry)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = np.empty_like(x)
        touched = x.nbytes + y.nbytes  # each pass reads one of the two tensors and writes or reads the other
        cases = {
            "forward (bias + relu6)": lambda: ops.depthwise_conv2d_forward(
                x, kernel, bias, activation="relu6", kernels=tier, out=y, **geometry),
            "input gradient": lambda: ops.depthwise_conv2d_backward_input(
                dy, kernel, x.shape, kernels=tier, out=dx, **geometry),
            "kernel gradient": lambda: ops.depthwise_conv2d_backward_kernel(
                x, dy, (3, 3), multiplier, kernels=tier, **geometry),
        }
        for case, function in cases.items():
            seconds = _one_tier_time(function, args.repeats)
            rate = touched / seconds / 1e9
            rows.append(f"| {name} {case} | {threads} | {seconds * 1e3:.2f} | {rate:.1f} GB/s | "
                        f"{100 * rate / bandwidth:.0f}% |")
    for name, (height, width, channels), filters, groups in GROUPED:
        x = rng.standard_normal((args.batch, height, width, channels)).astype(np.float32)
        kernel = rng.standard_normal((3, 3, channels // groups, filters)).astype(np.float32)
        bias = np.zeros(filters, np.float32)
        y = ops.grouped_conv2d_forward(x, kernel, bias, groups, padding="same", kernels=tier)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        flops = 2.0 * y.size * 9 * channels // groups
        cases = {
            "forward": lambda: ops.grouped_conv2d_forward(x, kernel, bias, groups, padding="same", activation="relu",
                                                          kernels=tier),
            "input gradient": lambda: ops.grouped_conv2d_backward_input(dy, kernel, x.shape, groups, padding="same",
                                                                        kernels=tier),
            "kernel gradient": lambda: ops.grouped_conv2d_backward_kernel(x, dy, (3, 3), groups, padding="same",
                                                                          kernels=tier),
        }
        for case, function in cases.items():
            seconds = _one_tier_time(function, args.repeats)
            rate = flops / seconds / 1e9
            rows.append(f"| {name} {case} | {threads} | {seconds * 1e3:.2f} | {rate:.1f} GFLOP/s | "
                        f"{100 * rate / peak:.0f}% |")
    # SeparableConv2D's forward pass at MobileNet's 56x56x144 -> 32: depthwise 3x3, then 1x1.
    x = rng.standard_normal((args.batch, 56, 56, 144)).astype(np.float32)
    depthwise = rng.standard_normal((3, 3, 144, 1)).astype(np.float32)
    pointwise = rng.standard_normal((1, 1, 144, 32)).astype(np.float32)
    bias = np.zeros(32, np.float32)
    middle = ops.depthwise_conv2d_forward(x, depthwise, None, padding="same", kernels=tier)
    flops = 2.0 * middle.size * 9 + 2.0 * middle.size * 32

    def separable():
        ops.depthwise_conv2d_forward(x, depthwise, None, padding="same", kernels=tier, out=middle)
        return ops.conv2d_forward(middle, pointwise, bias, activation="relu", kernels=tier)

    seconds = _one_tier_time(separable, args.repeats)
    rate = flops / seconds / 1e9
    rows.append(f"| separable 56x56x144->32 forward | {threads} | {seconds * 1e3:.2f} | {rate:.1f} GFLOP/s | "
                f"{100 * rate / peak:.0f}% |")
    return rows


DENSE = [
    # name, inputs, units, batch
    ("dense 1600->10 b32", 1600, 10, 32),
    ("dense 1600->10 b128", 1600, 10, 128),
    ("dense 128->10 b32", 128, 10, 32),
    ("dense 128->10 b128", 128, 10, 128),
    ("dense 1024->512 b128", 1024, 512, 128),
]


def dense_rows(args, rng):
    """(name, function of a tier, FLOPs, unit) for each Dense shape and pass."""
    for name, inputs, units, batch in DENSE:
        x = rng.standard_normal((batch, inputs)).astype(np.float32)
        kernel = rng.standard_normal((inputs, units)).astype(np.float32)
        bias = rng.standard_normal(units).astype(np.float32)
        dy = rng.standard_normal((batch, units)).astype(np.float32)
        flops = 2.0 * batch * inputs * units
        yield (f"{name} forward", lambda tier, x=x, kernel=kernel, bias=bias: lambda: _core.ops.dense_forward(
            x, kernel, bias, kernels=tier), flops, "GFLOP/s")
        yield (f"{name} input gradient", lambda tier, dy=dy, kernel=kernel: lambda: _core.ops.dense_backward_input(
            dy, kernel, kernels=tier), flops, "GFLOP/s")
        yield (f"{name} kernel gradient", lambda tier, x=x, dy=dy: lambda: _core.ops.dense_backward_kernel(
            x, dy, kernels=tier), flops, "GFLOP/s")


def elementwise_rows(args, rng):
    """(name, function of a tier, bytes touched, unit) for the memory-bound elementwise kernels."""
    feature_map = rng.standard_normal((args.batch, 64, 64, 32)).astype(np.float32)
    gradient = rng.standard_normal(feature_map.shape).astype(np.float32)
    relu = _core.ops.relu_forward(feature_map)
    touched = feature_map.nbytes
    yield ("relu layer forward (64x64x32)", lambda tier: lambda: _core.ops.relu_forward(feature_map, kernels=tier),
           2 * touched, "GB/s")
    yield ("relu layer backward (64x64x32)", lambda tier: lambda: _core.ops.relu_backward(
        feature_map, gradient, kernels=tier), 3 * touched, "GB/s")
    yield ("relu activation forward (64x64x32)", lambda tier: lambda: _core.ops.activation_forward(
        "relu", feature_map, tier), 2 * touched, "GB/s")
    yield ("relu activation backward (64x64x32)", lambda tier: lambda: _core.ops.activation_backward(
        "relu", relu, gradient, kernels=tier), 3 * touched, "GB/s")
    for channels in (20, 40):
        x = rng.standard_normal((args.batch, 32, 32, channels)).astype(np.float32)
        mean, variance = _core.ops.batch_norm_statistics(x)
        gamma = rng.standard_normal(channels).astype(np.float32)
        yield (f"BN apply (32x32x{channels})", lambda tier, x=x, mean=mean, variance=variance, gamma=gamma:
               lambda: _core.ops.batch_norm_forward(x, mean, variance, gamma, gamma, kernels=tier), 2 * x.nbytes, "GB/s")
        yield (f"average pool 2x2 forward (32x32x{channels})", lambda tier, x=x: lambda: _core.ops.average_pool2d_forward(
            x, (2, 2), (2, 2), kernels=tier), 1.25 * x.nbytes, "GB/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--kernels", default=_core.kernel_set(), help="a kernel set, or several separated by commas")
    parser.add_argument("--section", choices=["all", "conv", "depthwise", "dense", "elementwise"], default="all")
    args = parser.parse_args()
    tiers = args.kernels.split(",")
    for tier in tiers:
        if tier not in _core.available_kernels():
            parser.error(f"--kernels: {tier!r} is not one of this machine's kernel sets {_core.available_kernels()}")
    peak_tier = widest_kernels()
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
        probes = {tier: measure_peak(tier) for tier in dict.fromkeys(tiers + [peak_tier])}
        peak = probes[peak_tier]
        peaks_seen.append(f"{threads} thread{'s' if threads > 1 else ''}: " +
                          ", ".join(f"{tier} {gflops:.1f}" for tier, gflops in probes.items()) + " GFLOP/s")
        for tier, gflops in probes.items():
            row = f"| FMA peak probe ({tier}{', the peak' if tier == peak_tier else ''}) | {threads} |"
            row += "".join(f" | {gflops:.1f} GFLOP/s | {100 * gflops / peak:.0f}% |" for _ in tiers)
            rows.append(row + (" |" if len(tiers) > 1 else ""))
            print(rows[-1], flush=True)
        if args.section in ("all", "depthwise"):
            rows.extend(depthwise_rows(args, rng, threads, peak, tiers[-1]))
        if args.section == "depthwise":
            continue
        if args.section in ("dense", "elementwise"):
            section_rows = dense_rows if args.section == "dense" else elementwise_rows
            for name, make, amount, unit in section_rows(args, rng):
                add_row(name, threads, best_times(make, tiers, args.repeats), amount, unit, peak)
            continue
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
            "inference forward": lambda tier: lambda: _core.ops.conv2d_max_pool2d_forward(
                x, kernel, bias, activation="relu", kernels=tier, window_positions=False),
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
    file_name = "kernels.md" if args.section == "all" else f"kernels_{args.section}.md"
    (out / file_name).write_text(
        f"Kernels: {', '.join(tiers)}, batch {args.batch}, best of {args.repeats}"
        f"{' (alternating)' if len(tiers) > 1 else ''}. Peak: the {peak_tier} FMA probe "
        f"({'; '.join(peaks_seen)}).\n\n{table}\n")


if __name__ == "__main__":
    main()
