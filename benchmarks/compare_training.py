"""Side-by-side training and inference throughput: fastcnn vs TensorFlow, Keras 3 on JAX and PyTorch
(eager, and channels_last + torch.compile), each peer only if installed.

Each framework runs in its own process on the same synthetic data with the same thread count;
rounds are interleaved so that drift on a shared machine hits every framework alike. Every process
trains with Adam after warm-up steps (which also cover XLA / torch.compile compilation) and times
`fit`-equivalent training and `predict`-equivalent inference. Prints samples/s per framework
(medians over rounds) and the ratio fastcnn / best peer, and writes the table to
benchmarks/results/compare_training.md (not with --no-write).

    python benchmarks/compare_training.py [--rounds 3] [--steps 30] [--threads 2] [--models ex1_b32,...]
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

MODELS = {
    # name: (architecture, batch size, input shape)
    "ex1_b32": ("example1", 32, (28, 28, 1)),
    "ex1_b128": ("example1", 128, (28, 28, 1)),
    "ex2_b32": ("example2", 32, (28, 28, 1)),
    "ex3_b32": ("example3", 32, (64, 64, 3)),
    "ex2_b256": ("example2", 256, (28, 28, 1)),  # the larger-batch case
    "resnet20_b64": ("resnet20", 64, (32, 32, 3)),
    "cifar5x5_b64": ("cifar5x5", 64, (32, 32, 3)),
}

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


def conv(shape, filters, kernel, strides=1, padding="same"):
    """A convolution on an input of `shape` (height, width, channels): its output shape and its cost
    as (output values, multiply-adds per output value)."""
    height, width, channels = shape
    if padding == "same":
        height, width = -(-height // strides), -(-width // strides)
    else:
        height, width = (height - kernel) // strides + 1, (width - kernel) // strides + 1
    return (height, width, filters), (height * width * filters, kernel * kernel * channels)


def layer_costs(architecture, shape):
    """The convolution and dense layers of `architecture` on inputs of `shape`, in order, each as
    (output values, multiply-adds per output value); the first entry is the layer that reads the input."""
    costs = []

    def add_conv(shape, filters, kernel, strides=1, padding="same"):
        shape, cost = conv(shape, filters, kernel, strides, padding)
        costs.append(cost)
        return shape

    if architecture == "example3":
        for filters, pool in ((32, False), (32, True), (64, False), (64, True)):
            shape = add_conv(shape, filters, 3)
            if pool:
                shape = (shape[0] // 2, shape[1] // 2, shape[2])
    elif architecture in ("example1", "example2"):
        for filters in (32, 64):
            shape = add_conv(shape, filters, 3, padding="valid")
            shape = (shape[0] // 2, shape[1] // 2, shape[2])
    elif architecture == "resnet20":
        shape = add_conv(shape, 16, 3)  # the stem
        for stage, filters in enumerate((16, 32, 64)):
            for block in range(3):
                strides = 2 if stage > 0 and block == 0 else 1
                if strides == 2:
                    add_conv(shape, filters, 1, strides)  # the projection shortcut, on the block's input
                branch = add_conv(shape, filters, 3, strides)
                shape = add_conv(branch, filters, 3)
        shape = (1, 1, shape[2])  # GlobalAveragePooling2D
    elif architecture == "cifar5x5":
        for filters, kernel, strides in ((32, 5, 2), (64, 5, 2), (128, 3, 1)):
            shape = add_conv(shape, filters, kernel, strides)
        shape = (1, 1, shape[2])  # GlobalAveragePooling2D
    else:
        raise ValueError(f"unknown architecture {architecture!r}")
    costs.append((10, shape[0] * shape[1] * shape[2]))  # the Dense layer
    return costs


def model_flops(architecture, shape):
    """(training, inference) FLOPs per sample of a model, counted as direct convolution and dense
    products (2 per multiply-add); training = forward + both backward passes, less the first
    layer's input gradient, which no step computes. Batch normalization, pooling, activations and
    additions are not counted. Winograd does fewer real FLOPs for the 3x3 stride-1 layers, so its
    `% of peak` can pass 100%: it is the speed of an ideal direct kernel."""
    costs = layer_costs(architecture, shape)
    forward = sum(2.0 * outputs * macs for outputs, macs in costs)
    first = 2.0 * costs[0][0] * costs[0][1]
    return 3 * forward - first, forward


WORKER = textwrap.dedent('''
    import json, os, sys, time
    import numpy as np
    framework, architecture, batch, shape, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps,) + tuple(shape)).astype(np.float32)
    y = rng.integers(0, 10, batch * steps)

    def build_resnet20(keras, input_shape):
        """ResNet-20 v1 (He et al. 2016) as in the Keras CIFAR-10 ResNet example, functional API."""
        layers = keras.layers

        def conv_bn(x, filters, kernel_size=3, strides=1, relu=True):
            x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same")(x)
            x = layers.BatchNormalization()(x)
            return layers.Activation("relu")(x) if relu else x

        inputs = keras.Input(shape=input_shape)
        x = conv_bn(inputs, 16)
        for stage, filters in enumerate((16, 32, 64)):
            for block in range(3):
                strides = 2 if stage > 0 and block == 0 else 1
                y = conv_bn(x, filters, strides=strides)
                y = conv_bn(y, filters, relu=False)
                shortcut = conv_bn(x, filters, kernel_size=1, strides=strides, relu=False) if strides > 1 else x
                x = layers.add([y, shortcut])
                x = layers.Activation("relu")(x)
        x = layers.GlobalAveragePooling2D()(x)
        outputs = layers.Dense(10, activation="softmax")(x)
        return keras.Model(inputs, outputs)

    def build(keras, input_shape):
        """The model for a Keras-API framework: `keras` is fastcnn, tf.keras or Keras 3 on JAX."""
        layers, models = keras.layers, keras.models
        if architecture == "resnet20":
            return build_resnet20(keras, input_shape)
        if architecture == "cifar5x5":
            return models.Sequential([
                layers.Conv2D(32, (5, 5), strides=2, padding="same", activation="relu", input_shape=input_shape),
                layers.Conv2D(64, (5, 5), strides=2, padding="same", activation="relu"),
                layers.Conv2D(128, (3, 3), padding="same", activation="relu"),
                layers.GlobalAveragePooling2D(), layers.Dense(10, activation="softmax")])
        if architecture == "example3":
            return models.Sequential([
                layers.Conv2D(32, (3, 3), padding="same", activation="relu", input_shape=input_shape),
                layers.BatchNormalization(), layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
                layers.BatchNormalization(), layers.MaxPooling2D((2, 2)),
                layers.Conv2D(64, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
                layers.Conv2D(64, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
                layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax")])
        stack = [layers.Conv2D(32, (3, 3), activation="relu", input_shape=input_shape), layers.MaxPooling2D((2, 2)),
                 layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)), layers.Flatten()]
        if architecture == "example2":
            stack.append(layers.Dropout(0.5))
        stack.append(layers.Dense(10, activation="softmax"))
        return models.Sequential(stack)

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

        if architecture == "resnet20":
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
        start = time.perf_counter(); train(steps); train_rate = batch * steps / (time.perf_counter() - start)
        infer(2)  # warm-up; for pytorch-compiled, also the compilation of the inference graph
        start = time.perf_counter(); infer(steps); infer_rate = batch * steps / (time.perf_counter() - start)
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
    model = build(keras, tuple(shape))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:batch * 3], y[:batch * 3], batch_size=batch, epochs=1, verbose=0)  # warm-up (and XLA compilation)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    train = batch * steps / (time.perf_counter() - start)
    model.predict(x[:batch * 2], batch_size=batch, verbose=0)
    start = time.perf_counter()
    model.predict(x, batch_size=batch, verbose=0)
    infer = batch * steps / (time.perf_counter() - start)
    print(json.dumps({"train": train, "infer": infer}))
''')


def measure_peak(threads):
    """The machine's FMA peak in GFLOP/s on `threads` threads, measured now (fastcnn's probe)."""
    # The widest kernel set's probe (available_kernels lists them narrowest first), whatever
    # FASTCNN_KERNELS selects for the frameworks.
    code = ("from fastcnn import _core; _core.set_num_threads(%d); "
            "print(_core.measure_peak_gflops(0.5, _core.available_kernels()[-1]))" % threads)
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


def run(framework, model, steps, threads):
    architecture, batch, shape = MODELS[model]
    env = child_environment(framework, threads)
    cpus = env.pop("FASTCNN_BENCH_CPUS", None)
    preexec = (lambda: os.sched_setaffinity(0, [int(c) for c in cpus.split(",")])) if cpus else None
    result = subprocess.run([sys.executable, "-c", WORKER, framework, architecture, str(batch), json.dumps(shape),
                             str(steps)], capture_output=True, text=True, env=env, cwd=os.path.expanduser("~"),
                            preexec_fn=preexec)
    if result.returncode != 0:
        raise RuntimeError(f"{framework} {model} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
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
                measured = run(framework, model, args.steps, args.threads)
                if "skipped" in measured:
                    skipped[(model, framework)] = measured["skipped"]
                    print(f"note: {model}: {FRAMEWORKS[framework][0]} skipped: {measured['skipped']}", flush=True)
                    continue
                for key in ("train", "infer"):
                    results[(model, framework)][key].append(measured[key])
                print(f"round {round_index + 1} {model:12s} {FRAMEWORKS[framework][0]:16s} "
                      f"train {measured['train']:8.1f}/s infer {measured['infer']:9.1f}/s", flush=True)
        peaks.append(measure_peak(args.threads))
    peak = statistics.median(peaks)
    lines = [f"Measured FMA peak: {peak:.0f} GFLOP/s on {args.threads} threads (median of {len(peaks)} probes, one "
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
        f"`python benchmarks/compare_training.py --rounds {args.rounds} --steps {args.steps}`: medians of "
        f"{args.rounds} interleaved rounds, {args.steps} steps each, {args.threads} threads.\n\n{table}\n")


if __name__ == "__main__":
    main()
