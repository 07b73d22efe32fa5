"""Side-by-side training and inference throughput: fastcnn vs TensorFlow, Keras 3 on JAX and PyTorch
(eager, and channels_last + torch.compile), each peer only if installed.

Each framework runs in its own process on the same synthetic data with the same thread count;
rounds are interleaved so that drift on a shared machine hits every framework alike. Every process
trains with Adam after warm-up steps (which also cover XLA / torch.compile compilation) and times
`fit`-equivalent training and `predict`-equivalent inference, each as passes over --steps batches
repeated until --min-seconds have elapsed (one pass of a fast model can take milliseconds). Prints samples/s per framework
(medians over rounds) and the ratio fastcnn / best peer, and writes the table to
benchmarks/results/compare_training.md (not with --no-write).

    python benchmarks/compare_training.py [--rounds 3] [--steps 30] [--min-seconds 2] [--threads 2] [--models ex1_b32,...]
                                          [--frameworks fastcnn,tensorflow,...] [--no-write]
                                          [--baseline DIR]

--baseline DIR adds "fastcnn (baseline)": another fastcnn build installed into DIR (for example
`git worktree add /tmp/base <commit> && pip install --no-deps --no-build-isolation --target
/tmp/base-install /tmp/base`), run with DIR first on PYTHONPATH, interleaved with the others, and
a "fastcnn / baseline" row: a before/after comparison of a change in one run.

Frameworks (--frameworks; a peer that is not installed is skipped with a note):
  fastcnn           this package
  tensorflow        TensorFlow's Keras (tf.keras, KERAS_BACKEND=tensorflow)   pip install tensorflow-cpu==2.21.*
  keras-jax         Keras 3 on the JAX backend (KERAS_BACKEND=jax)             pip install keras "jax[cpu]"
  pytorch           PyTorch eager, NCHW                                        pip install torch==2.13.0
  pytorch-compiled  PyTorch, channels_last model and inputs, torch.compile(model) (inductor; needs a C++ compiler)

Models (--models):
  ex1_b32, ex1_b128, ex2_b32, ex2_b256   seed Examples 1 and 2 (MNIST-size CNNs, 28x28x1)
  ex3_b32                                seed Example 3 (64x64x3, BatchNormalization)
  resnet20_b64                           ResNet-20 v1 for 32x32x3, 10 classes (Keras CIFAR-10 ResNet example; fastcnn
                                         and the Keras frameworks build it from one functional-API builder:
                                         keras.Input, layers.add, keras.Model)
  mobilenetv2_b64                        32x32x3 MobileNetV2-style: Conv2D(32, 3) stem, 9 inverted residual blocks
                                         (1x1 expand x6, ReLU6, DepthwiseConv2D 3x3, 1x1 project, residual add),
                                         1x1 Conv2D(256), GlobalAveragePooling2D, Dense(10); BatchNormalization
                                         after every convolution
  cifar5x5_b64                           32x32x3: Conv2D(32, 5, strides=2) -> Conv2D(64, 5, strides=2) ->
                                         Conv2D(128, 3) (all 'same', relu) -> GlobalAveragePooling2D -> Dense(10)
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import textwrap

from benchmark_models import MODELS, model_flops


# CLI name: (column label, modules the worker imports, install hint)
FRAMEWORKS = {
    "fastcnn": ("fastcnn", ("fastcnn",), "pip install ."),
    "fastcnn-baseline": ("fastcnn (baseline)", ("fastcnn",), "--baseline DIR"),
    "tensorflow": ("TensorFlow", ("tensorflow",), "pip install tensorflow-cpu==2.21.*"),
    "keras-jax": ("Keras-JAX", ("keras", "jax"), 'pip install keras "jax[cpu]"'),
    "pytorch": ("PyTorch eager", ("torch",), "pip install torch==2.13.0"),
    "pytorch-compiled": ("PyTorch compiled", ("torch",), "pip install torch==2.13.0"),
}


def missing_requirement(framework):
    """Why `framework` cannot run here (a sentence), or None when it can."""
    label, modules, hint = FRAMEWORKS[framework]
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{label} skipped: {module} is not installed ({hint})"
    if framework == "keras-jax":
        try:
            version = importlib.metadata.version("keras")
        except importlib.metadata.PackageNotFoundError:
            version = "3"  # no distribution metadata: let the worker's backend check decide
        if int(version.split(".")[0]) < 3:
            return f"{label} skipped: keras {version} has no JAX backend (Keras 3 needed: {hint})"
    return None


WORKER = textwrap.dedent('''
    import json, os, sys, time
    import numpy as np
    framework, architecture, batch, shape, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
    sys.path.insert(0, sys.argv[6])  # the benchmarks folder
    min_seconds = float(sys.argv[7])

    def samples_per_second(run_pass):
        """Samples/s of whole passes over the `steps` batches, repeated until `min_seconds` have elapsed:
        a fast framework's single pass can last a few milliseconds, where scheduler noise decides."""
        passes, start = 0, time.perf_counter()
        while True:
            run_pass()
            passes += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                return passes * batch * steps / elapsed

    from benchmark_models import MOBILENETV2_BLOCKS as BLOCKS, build
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps,) + tuple(shape)).astype(np.float32)
    y = rng.integers(0, 10, batch * steps)

    if framework in ("pytorch", "pytorch-compiled"):
        import torch
        from torch import nn
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        height, width, channels = shape

        def batch_norm(features):  # Keras's defaults: momentum 0.99 (PyTorch counts 1 - that), epsilon 1e-3
            return nn.BatchNorm2d(features, momentum=0.01, eps=1e-3)

        class BasicBlock(nn.Module):
            def __init__(self, cin, cout, stride):
                super().__init__()
                self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1), batch_norm(cout)
                self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1), batch_norm(cout)
                self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride), batch_norm(cout)) if stride > 1
                                 else nn.Identity())

            def forward(self, x):
                y = torch.relu(self.bn1(self.conv1(x)))
                y = self.bn2(self.conv2(y))
                return torch.relu(y + self.shortcut(x))

        class InvertedResidual(nn.Module):
            def __init__(self, cin, cout, expansion, stride):
                super().__init__()
                hidden = cin * expansion
                expand = [nn.Conv2d(cin, hidden, 1, bias=False), batch_norm(hidden), nn.ReLU6()] if expansion != 1 else []
                self.body = nn.Sequential(*expand, nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                                          batch_norm(hidden), nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False),
                                          batch_norm(cout))
                self.residual = stride == 1 and cin == cout

            def forward(self, x):
                return x + self.body(x) if self.residual else self.body(x)

        if architecture == "mobilenetv2":
            blocks, cin = [], 32
            for expansion, filters, repeats, first_stride in BLOCKS:
                for repeat in range(repeats):
                    blocks.append(InvertedResidual(cin, filters, expansion, first_stride if repeat == 0 else 1))
                    cin = filters
            net = nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1, bias=False), batch_norm(32), nn.ReLU6(), *blocks,
                                nn.Conv2d(cin, 256, 1, bias=False), batch_norm(256), nn.ReLU6(),
                                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))
        elif architecture == "resnet20":
            blocks, cin = [], 16
            for stage, filters in enumerate((16, 32, 64)):
                for block in range(3):
                    blocks.append(BasicBlock(cin, filters, 2 if stage > 0 and block == 0 else 1))
                    cin = filters
            net = nn.Sequential(nn.Conv2d(channels, 16, 3, padding=1), batch_norm(16), nn.ReLU(), *blocks,
                                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
        elif architecture == "cifar5x5":
            net = nn.Sequential(nn.Conv2d(channels, 32, 5, 2, 2), nn.ReLU(), nn.Conv2d(32, 64, 5, 2, 2), nn.ReLU(),
                                nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                nn.Linear(128, 10))
        elif architecture == "example3":
            def block(cin, cout):
                return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(cout, momentum=0.01, eps=1e-3)]
            net = nn.Sequential(*block(channels, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64), *block(64, 64),
                                nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * (height // 4) * (width // 4), 10))
        else:
            size = ((height - 2) // 2 - 2) // 2
            net = nn.Sequential(nn.Conv2d(channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                                nn.MaxPool2d(2), nn.Flatten(), *([nn.Dropout(0.5)] if architecture == "example2" else []),
                                nn.Linear(64 * size * size, 10))
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
        loss_function = nn.CrossEntropyLoss()
        yt = torch.from_numpy(y.astype(np.int64))
        if framework == "pytorch-compiled":
            # NHWC data seen as NCHW with channels_last strides: the memory layout the model now expects.
            xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
            net = net.to(memory_format=torch.channels_last)
            model = torch.compile(net)
        else:
            xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # PyTorch is NCHW
            model = net

        def train(count):
            model.train()
            for step in range(count):
                batch_x, batch_y = xt[step * batch:(step + 1) * batch], yt[step * batch:(step + 1) * batch]
                optimizer.zero_grad()
                loss_function(model(batch_x), batch_y).backward()
                optimizer.step()

        def infer(count):
            model.eval()
            with torch.no_grad():
                for step in range(count):
                    torch.softmax(model(xt[step * batch:(step + 1) * batch]), dim=1)

        train(3)  # warm-up; for pytorch-compiled, also the compilation of the training graphs
        train_rate = samples_per_second(lambda: train(steps))
        infer(2)  # warm-up; for pytorch-compiled, also the compilation of the inference graph
        infer_rate = samples_per_second(lambda: infer(steps))
        print(json.dumps({"train": train_rate, "infer": infer_rate}))
        sys.exit(0)
    if framework in ("fastcnn", "fastcnn-baseline"):
        import fastcnn as keras
        keras.config.set_num_threads(threads)
        if framework == "fastcnn-baseline" and not keras.__file__.startswith(os.environ["FASTCNN_BENCH_BASELINE"]):
            raise RuntimeError(f"the baseline imported fastcnn from {keras.__file__}")
    elif framework == "keras-jax":
        os.environ["KERAS_BACKEND"] = "jax"  # the parent sets it too; it must precede `import keras`
        import warnings; warnings.filterwarnings("ignore")
        import keras
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import warnings; warnings.filterwarnings("ignore")
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        keras = tf.keras
    if framework not in ("fastcnn", "fastcnn-baseline") and keras.backend.backend() != framework.replace("keras-", ""):
        raise RuntimeError(f"{framework}: Keras runs on the {keras.backend.backend()} backend")
    model = build(keras, architecture, tuple(shape))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:batch * 3], y[:batch * 3], batch_size=batch, epochs=1, verbose=0)  # warm-up (and XLA compilation)
    train = samples_per_second(lambda: model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0))
    model.predict(x[:batch * 2], batch_size=batch, verbose=0)
    infer = samples_per_second(lambda: model.predict(x, batch_size=batch, verbose=0))
    print(json.dumps({"train": train, "infer": infer}))
''')


def machine_peak(threads):
    """The machine's FMA peak in GFLOP/s on `threads` threads, measured now (fastcnn's probe)."""
    # The widest kernel set's probe (peak.py), whatever FASTCNN_KERNELS selects for the frameworks.
    code = ("import sys; sys.path.insert(0, %r); from fastcnn import _core; from peak import measure_peak; "
            "_core.set_num_threads(%d); print(measure_peak())" % (str(pathlib.Path(__file__).resolve().parent), threads))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=os.path.expanduser("~"))
    return float(result.stdout.strip())


def child_environment(framework, threads):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if framework == "fastcnn-baseline":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ["FASTCNN_BENCH_BASELINE"],
                                                          os.environ.get("PYTHONPATH")]))
    elif framework == "tensorflow":
        env["KERAS_BACKEND"] = "tensorflow"  # tf.keras is Keras 3, which would follow a KERAS_BACKEND=jax here
    elif framework == "keras-jax":
        env["KERAS_BACKEND"] = "jax"
        # XLA's CPU thread pools size themselves from the CPUs the process may run on and have no
        # thread-count setting: with fewer threads than CPUs, the child is pinned to `threads` of them.
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if 0 < threads < len(allowed):
            env["FASTCNN_BENCH_CPUS"] = ",".join(map(str, allowed[:threads]))
    return env


def run(framework, model, steps, threads, min_seconds):
    architecture, batch, shape = MODELS[model]
    env = child_environment(framework, threads)
    cpus = env.pop("FASTCNN_BENCH_CPUS", None)
    preexec = (lambda: os.sched_setaffinity(0, [int(c) for c in cpus.split(",")])) if cpus else None
    result = subprocess.run([sys.executable, "-c", WORKER, framework, architecture, str(batch), json.dumps(shape),
                             str(steps), str(pathlib.Path(__file__).resolve().parent), str(min_seconds)],
                            capture_output=True, text=True, env=env, cwd=os.path.expanduser("~"),
                            preexec_fn=preexec)
    if result.returncode != 0:
        raise RuntimeError(f"{framework} {model} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--min-seconds", type=float, default=2.0,
                        help="each timing repeats its pass of --steps batches until this many seconds have elapsed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}")
    parser.add_argument("--frameworks", default=",".join(f for f in FRAMEWORKS if f != "fastcnn-baseline"),
                        help=f"comma-separated, of: {', '.join(FRAMEWORKS)} (default: all; those not installed are "
                             "skipped with a note)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="a directory holding another fastcnn install (pip install --target DIR), measured as "
                             "'fastcnn (baseline)' beside this one")
    parser.add_argument("--no-write", action="store_true",
                        help="print the table only; leave benchmarks/results/compare_training.md as it is")
    args = parser.parse_args()
    models = args.models.split(",")
    for model in models:
        if model not in MODELS:
            parser.error(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    frameworks = []
    requested = args.frameworks.split(",")
    if args.baseline:
        if not (pathlib.Path(args.baseline) / "fastcnn").is_dir():
            parser.error(f"--baseline {args.baseline!r} holds no fastcnn package (pip install --target DIR ...)")
        os.environ["FASTCNN_BENCH_BASELINE"] = str(pathlib.Path(args.baseline).resolve())
        requested.append("fastcnn-baseline")
    for framework in requested:
        if framework not in FRAMEWORKS:
            parser.error(f"unknown framework {framework!r}; choose from {', '.join(FRAMEWORKS)}")
        if framework == "fastcnn-baseline" and not args.baseline:
            parser.error("fastcnn-baseline is measured with --baseline DIR")
        reason = missing_requirement(framework)
        if reason:
            print(f"note: {reason}", flush=True)
        else:
            frameworks.append(framework)
    results = {(m, f): {"train": [], "infer": []} for m in models for f in frameworks}
    skipped = {}  # (model, framework): reason the worker gave
    peaks = []
    for round_index in range(args.rounds):
        for model in models:
            for framework in frameworks:  # interleaved: every framework once per round
                if (model, framework) in skipped:
                    continue
                measured = run(framework, model, args.steps, args.threads, args.min_seconds)
                if "skipped" in measured:
                    skipped[(model, framework)] = measured["skipped"]
                    print(f"note: {model}: {FRAMEWORKS[framework][0]} skipped: {measured['skipped']}", flush=True)
                    continue
                for key in ("train", "infer"):
                    results[(model, framework)][key].append(measured[key])
                print(f"round {round_index + 1} {model:12s} {FRAMEWORKS[framework][0]:16s} "
                      f"train {measured['train']:8.1f}/s infer {measured['infer']:9.1f}/s", flush=True)
        peaks.append(machine_peak(args.threads))
    peak = max(peaks)
    lines = [f"Measured FMA peak: {peak:.0f} GFLOP/s on {args.threads} threads (best of {3 * len(peaks)} probes, three "
             "per round). `% of peak`: the framework's samples/s times the model's direct-convolution FLOPs "
             "per sample, over that peak.", "",
             "| model | batch | framework | train samples/s | infer samples/s | train % of peak | infer % of peak |",
             "|---|---|---|---|---|---|---|"]
    for model in models:
        architecture, batch, shape = MODELS[model]
        train_flops, infer_flops = model_flops(architecture, shape)
        medians = {}
        for framework in frameworks:
            label = FRAMEWORKS[framework][0]
            if (model, framework) in skipped:
                lines.append(f"| {model} | {batch} | {label} | skipped | skipped | | |")
                continue
            r = results[(model, framework)]
            train, infer = statistics.median(r["train"]), statistics.median(r["infer"])
            medians[framework] = train, infer
            lines.append(f"| {model} | {batch} | {label} | {train:.0f} | {infer:.0f} | "
                         f"{100 * train * train_flops / 1e9 / peak:.0f}% | {100 * infer * infer_flops / 1e9 / peak:.0f}% |")
        if "fastcnn" in medians and "fastcnn-baseline" in medians:
            base_train, base_infer = medians.pop("fastcnn-baseline")
            lines.append(f"| {model} | | **fastcnn / baseline** | **{medians['fastcnn'][0] / base_train:.2f}x** | "
                         f"**{medians['fastcnn'][1] / base_infer:.2f}x** | | |")
        peers = [f for f in medians if f != "fastcnn"]
        if "fastcnn" in medians and peers:
            best_train = max(medians[f][0] for f in peers)
            best_infer = max(medians[f][1] for f in peers)
            lines.append(f"| {model} | | **fastcnn / best peer** | **{medians['fastcnn'][0] / best_train:.2f}x** | "
                         f"**{medians['fastcnn'][1] / best_infer:.2f}x** | | |")
    notes = [f"{model}, {FRAMEWORKS[framework][0]}: {reason}" for (model, framework), reason in skipped.items()]
    table = "\n".join(lines + ([""] + ["Skipped: " + note for note in notes] if notes else []))
    print(table)
    if args.no_write:
        return
    out = pathlib.Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "compare_training.md").write_text(
        f"`python benchmarks/compare_training.py --rounds {args.rounds} --steps {args.steps} --min-seconds "
        f"{args.min_seconds:g}`: medians of {args.rounds} interleaved rounds; each timing repeats passes of "
        f"{args.steps} steps until {args.min_seconds:g} s have elapsed; {args.threads} threads.\n\n{table}\n")


if __name__ == "__main__":
    main()
