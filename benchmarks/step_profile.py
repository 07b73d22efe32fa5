"""Where a training step's time goes: each layer's forward and backward, loss, optimizer, and the
time outside the compiled step (Python, fit's loop, progress, dispatch).

Trains a benchmark model (benchmark_models.py) on synthetic data through the public `fit`, with the compiled network's
per-phase timers on, and prints milliseconds per step and % of the step for every phase; the
conv layers' phases also show GFLOP/s and % of the machine's measured FMA peak.

    python benchmarks/step_profile.py [--model ex1_b32] [--steps 50] [--threads 2]
    python benchmarks/step_profile.py --model ex3_b32 --scaling   # 1 vs 2 threads, and the peak's own ratio
    python benchmarks/step_profile.py --predict --model mobilenetv2_b64   # predict's time per layer and kind
    python benchmarks/step_profile.py --predict --application EfficientNetB0 --batch 8
"""

import collections

import argparse
import time

import numpy as np

import fastcnn
from fastcnn import _core, layers

import benchmark_models
from peak import measure_peak

# The side-by-side benchmark's models, and Example 3 at a larger batch.
MODELS = {**benchmark_models.MODELS, "ex3_b128": ("example3", 128, (64, 64, 3))}


def conv_flops(model, batch):
    """{network layer index: 2 x multiply-adds of one forward pass} for every Conv2D and
    DepthwiseConv2D (each backward pass costs the same again; the first layer skips the
    input-gradient pass)."""
    flops = {}
    # model._node_layers: the layer of each compiled network node (the profile's "#index").
    for index, layer in enumerate(model._node_layers):
        if isinstance(layer, layers.Conv2D):
            kernel_height, kernel_width, channels, _ = layer.kernel.shape
            _, height, width, filters = layer.output_shape
            # Conv2D: each output sums kh x kw x (in / groups) products (kernel (kh, kw, in/groups,
            # out)); DepthwiseConv2D: kh x kw (kernel (kh, kw, in, multiplier)).
            products = kernel_height * kernel_width * (1 if isinstance(layer, layers.DepthwiseConv2D) else channels)
            flops[index] = 2.0 * batch * height * width * filters * products
    return flops


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ex1_b32", choices=sorted(MODELS))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-fusion", action="store_true",
                        help="run a first Conv2D and its MaxPooling2D as two layers (to measure the fusion)")
    parser.add_argument("--metrics", default="accuracy",
                        help="compile's metrics, comma-separated Keras names (the time they take is part of "
                             "'outside the compiled step'); '' for none")
    parser.add_argument("--predict", action="store_true",
                        help="profile predict (inference) instead of fit: each layer's forward time, and the "
                             "totals by layer kind")
    parser.add_argument("--application", default=None,
                        help="with --predict: a fastcnn.applications model at its default input size "
                             "(random weights) instead of --model")
    parser.add_argument("--batch", type=int, default=None, help="with --predict: the batch (default: the model's)")
    parser.add_argument("--scaling", action="store_true",
                        help="only compare 1 and 2 threads (fit's samples/s and the compiled step's best time) "
                             "with the FMA peak's own 2/1 ratio")
    parser.add_argument("--rounds", type=int, default=4,
                        help="with --scaling: interleaved rounds of 1 and 2 threads; each reports its best")
    args = parser.parse_args()
    if args.scaling:
        scaling(args)
        return
    if args.predict:
        profile_predict(args)
        return
    fastcnn.config.set_num_threads(args.threads)
    model, x, y = warmed_up_model(args.model, args.steps, [m for m in args.metrics.split(",") if m])
    batch = MODELS[args.model][1]
    network = model._network
    network.set_max_pool_fusion(not args.no_fusion)
    # Setting the fusion re-plans the network, and the next step lays out its workspace afresh
    # (tens of milliseconds on the larger models): one more warm-up step keeps that out of the profile.
    model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)
    network.set_profiling(True)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    wall = time.perf_counter() - start
    phases = network.profile()
    network.set_profiling(False)
    peak = measure_peak()

    flops_by_layer = conv_flops(model, batch)
    # A convolution that computes the max pooling after it (fused) in a training step is timed
    # with it: its rows hold both layers' time, and the pooling's rows stay empty. (A Winograd
    # convolution's pair is fused in inference only.)
    fused = set(network.fused_max_pool_layers(training=True))

    step_ms = 1e3 * wall / args.steps
    print(f"{args.model}: {args.steps} steps of batch {batch}, {args.threads} threads, kernels "
          f"{_core.kernel_set()}, measured peak {peak:.0f} GFLOP/s, metrics {args.metrics or 'none'}")
    print(f"fit: {step_ms:.2f} ms/step = {batch * args.steps / wall:.0f} samples/s\n")
    print(f"{'phase':32s} {'ms/step':>8s} {'% step':>7s} {'GFLOP/s':>8s} {'% peak':>7s}")
    inside = 0.0
    for name, seconds in phases:
        ms = 1e3 * seconds / args.steps
        if name == "train_step total":
            inside = seconds
            continue
        extra = ""
        layer_index = int(name.split("#")[1].split()[0]) if "#" in name else None
        if layer_index in flops_by_layer and seconds > 0:
            gflops = flops_by_layer[layer_index] * (2 if name.endswith("backward") and layer_index > 0 else 1) \
                / (seconds / args.steps) / 1e9
            extra = f" {gflops:8.1f} {100 * gflops / peak:6.0f}%"
        if layer_index in fused:
            name = name.replace(" forward", " + pool forward").replace(" backward", " + pool backward")
        elif layer_index is not None and layer_index - 1 in fused:
            name = name.replace(" forward", " (fused)").replace(" backward", " (fused)")
        print(f"{name:32s} {ms:8.3f} {100 * seconds / wall:6.1f}%{extra}")
    outside = wall - inside
    print(f"{'outside the compiled step':32s} {1e3 * outside / args.steps:8.3f} {100 * outside / wall:6.1f}%")
    total_flops = sum(flops_by_layer.values()) * 3 - flops_by_layer.get(0, 0.0)
    print(f"\nconvolutions: {total_flops / 1e9:.3f} GFLOP per step; whole step at "
          f"{total_flops / (wall / args.steps) / 1e9:.1f} GFLOP/s = {100 * total_flops / (wall / args.steps) / 1e9 / peak:.0f}% of peak")


def profile_predict(args):
    fastcnn.config.set_num_threads(args.threads)
    if args.application:
        model = getattr(fastcnn.applications, args.application)(weights=None)
        batch = args.batch or 8
    else:
        architecture, default_batch, input_shape = MODELS[args.model]
        model = benchmark_models.build(fastcnn, architecture, input_shape)
        batch = args.batch or default_batch
    x = np.random.default_rng(0).random((batch,) + tuple(model.input_shape[1:])).astype(np.float32)
    model.predict(x, batch_size=batch, verbose=0)  # builds the inference plan and packs the kernels
    network = model._network
    network.set_profiling(True)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.predict(x, batch_size=batch, verbose=0)
    wall = time.perf_counter() - start
    phases = [(name, seconds) for name, seconds in network.profile() if name.endswith(" forward") and seconds > 0]
    network.set_profiling(False)
    inside = sum(seconds for _, seconds in phases)
    print(f"{args.application or args.model}: predict on batch {batch}, {args.steps} calls, {args.threads} threads, "
          f"kernels {_core.kernel_set()}: {1e3 * wall / args.steps:.2f} ms/call = {batch * args.steps / wall:.0f} "
          f"samples/s; {100 * (wall - inside) / wall:.1f}% outside the layers\n")
    by_kind = collections.defaultdict(float)
    for name, seconds in phases:
        by_kind[name.split(" #")[0]] += seconds
    print(f"{'layer kind':32s} {'ms/call':>8s} {'% call':>7s}")
    for kind, seconds in sorted(by_kind.items(), key=lambda item: -item[1]):
        print(f"{kind:32s} {1e3 * seconds / args.steps:8.3f} {100 * seconds / wall:6.1f}%")
    print(f"\n{'slowest layers':32s} {'ms/call':>8s} {'% call':>7s}")
    for name, seconds in sorted(phases, key=lambda item: -item[1])[:15]:
        print(f"{name.replace(' forward', ''):32s} {1e3 * seconds / args.steps:8.3f} {100 * seconds / wall:6.1f}%")


def warmed_up_model(name, steps, metrics=("accuracy",)):
    """The compiled benchmark model, `steps` batches of synthetic data, and three warm-up steps done."""
    architecture, batch, input_shape = MODELS[name]
    model = benchmark_models.build(fastcnn, architecture, input_shape)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=list(metrics))
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps,) + input_shape).astype(np.float32)
    y = rng.integers(0, 10, batch * steps)
    model.fit(x[:batch * 3], y[:batch * 3], batch_size=batch, epochs=1, verbose=0)
    return model, x, y


def samples_per_second(name, steps):
    model, x, y = warmed_up_model(name, steps)
    batch = MODELS[name][1]
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    return batch * steps / (time.perf_counter() - start)


def step_seconds(name, steps):
    """The compiled training step's best time over `steps` single steps on one batch (train_on_batch,
    the network's own step timer): on a shared machine other work only ever slows a step down, so
    the best is the step's own speed."""
    model, x, y = warmed_up_model(name, 1)
    network = model._network
    best = float("inf")
    for _ in range(steps):
        network.set_profiling(True)  # clears the sums: each profile holds this one step
        model.train_on_batch(x, y)
        best = min(best, dict(network.profile())["train_step total"])
        network.set_profiling(False)
    return best


def scaling(args):
    rates, steps, peaks = {}, {}, {}
    for threads in (1, 2) * args.rounds:  # interleaved, best of the rounds each
        fastcnn.config.set_num_threads(threads)
        rates[threads] = max(rates.get(threads, 0.0), samples_per_second(args.model, args.steps))
        steps[threads] = min(steps.get(threads, float("inf")), step_seconds(args.model, args.steps))
        peaks[threads] = max(peaks.get(threads, 0.0), measure_peak())
    print(f"{args.model}: fit {rates[1]:.0f} samples/s on 1 thread, {rates[2]:.0f} on 2: "
          f"{rates[2] / rates[1]:.2f}x; the compiled step, best of {args.rounds} x {args.steps}: "
          f"{1e3 * steps[1]:.3f} -> {1e3 * steps[2]:.3f} ms, {steps[1] / steps[2]:.2f}x "
          f"(the FMA peak itself: {peaks[1]:.0f} -> {peaks[2]:.0f} GFLOP/s, {peaks[2] / peaks[1]:.2f}x: one busy "
          f"core runs at a higher clock)")


if __name__ == "__main__":
    main()
