"""Side-by-side training and inference throughput: fastcnn vs TensorFlow and PyTorch (if installed).

Each framework runs in its own process on the same synthetic data with the same thread count;
rounds are interleaved so that drift on a shared machine hits every framework alike. Prints
samples/s per framework (medians over rounds) and the ratio fastcnn / best peer, and writes the
table to benchmarks/results/compare_training.md.

    python benchmarks/compare_training.py [--rounds 3] [--steps 30] [--threads 2] [--models ex1_b32,...]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import textwrap

MODELS = {
    # name: (seed example, batch size, input shape)
    "ex1_b32": ("example1", 32, (28, 28, 1)),
    "ex1_b128": ("example1", 128, (28, 28, 1)),
    "ex2_b32": ("example2", 32, (28, 28, 1)),
    "ex3_b32": ("example3", 32, (64, 64, 3)),
    "ex2_b256": ("example2", 256, (28, 28, 1)),  # the larger-batch case
}


def model_flops(example, shape):
    """(training, inference) FLOPs per sample of a seed example, counted as direct convolution and
    dense products (2 per multiply-add); training = forward + both backward passes, less the first
    layer's input gradient, which no step computes. Winograd does fewer real FLOPs for the 3x3
    stride-1 layers, so its `% of peak` can pass 100%: it is the speed of an ideal direct kernel."""
    height, width, channels = shape
    layers = []  # (output pixels, multiply-adds per output pixel)
    if example == "example3":
        for filters, pool in ((32, False), (32, True), (64, False), (64, True)):
            layers.append((height * width * filters, 9 * channels))
            channels = filters
            if pool:
                height, width = height // 2, width // 2
    else:
        for filters in (32, 64):
            height, width = height - 2, width - 2
            layers.append((height * width * filters, 9 * channels))
            channels = filters
            height, width = height // 2, width // 2
    layers.append((10, height * width * channels))  # the Dense layer
    forward = sum(2.0 * pixels * macs for pixels, macs in layers)
    first = 2.0 * layers[0][0] * layers[0][1]
    return 3 * forward - first, forward

WORKER = textwrap.dedent('''
    import json, os, sys, time
    import numpy as np
    framework, example, batch, shape, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps,) + tuple(shape)).astype(np.float32)
    y = rng.integers(0, 10, batch * steps)

    def build(layers, models, input_shape):
        if example == "example3":
            return models.Sequential([
                layers.Conv2D(32, (3, 3), padding="same", activation="relu", input_shape=input_shape),
                layers.BatchNormalization(), layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
                layers.BatchNormalization(), layers.MaxPooling2D((2, 2)),
                layers.Conv2D(64, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
                layers.Conv2D(64, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
                layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax")])
        stack = [layers.Conv2D(32, (3, 3), activation="relu", input_shape=input_shape), layers.MaxPooling2D((2, 2)),
                 layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)), layers.Flatten()]
        if example == "example2":
            stack.append(layers.Dropout(0.5))
        stack.append(layers.Dense(10, activation="softmax"))
        return models.Sequential(stack)

    if framework == "pytorch":
        import torch
        from torch import nn
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        height, width, channels = shape
        if example == "example3":
            def block(cin, cout):
                return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(cout, momentum=0.01, eps=1e-3)]
            net = nn.Sequential(*block(channels, 32), *block(32, 32), nn.MaxPool2d(2), *block(32, 64), *block(64, 64),
                                nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(64 * (height // 4) * (width // 4), 10))
        else:
            size = ((height - 2) // 2 - 2) // 2
            net = nn.Sequential(nn.Conv2d(channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                                nn.MaxPool2d(2), nn.Flatten(), *([nn.Dropout(0.5)] if example == "example2" else []),
                                nn.Linear(64 * size * size, 10))
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
        loss_function = nn.CrossEntropyLoss()
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # PyTorch is NCHW
        yt = torch.from_numpy(y.astype(np.int64))

        def train(count):
            net.train()
            for step in range(count):
                batch_x, batch_y = xt[step * batch:(step + 1) * batch], yt[step * batch:(step + 1) * batch]
                optimizer.zero_grad()
                loss_function(net(batch_x), batch_y).backward()
                optimizer.step()

        def infer(count):
            net.eval()
            with torch.no_grad():
                for step in range(count):
                    torch.softmax(net(xt[step * batch:(step + 1) * batch]), dim=1)

        train(3)
        start = time.perf_counter(); train(steps); train_rate = batch * steps / (time.perf_counter() - start)
        infer(2)
        start = time.perf_counter(); infer(steps); infer_rate = batch * steps / (time.perf_counter() - start)
        print(json.dumps({"train": train_rate, "infer": infer_rate}))
        sys.exit(0)
    if framework == "fastcnn":
        import fastcnn
        from fastcnn import layers, models
        fastcnn.config.set_num_threads(threads)
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import warnings; warnings.filterwarnings("ignore")
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from tensorflow.keras import layers, models
    model = build(layers, models, tuple(shape))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:batch * 3], y[:batch * 3], batch_size=batch, epochs=1, verbose=0)  # warm-up
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
    code = "from fastcnn import _core; _core.set_num_threads(%d); print(_core.measure_peak_gflops(0.5))" % threads
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=os.path.expanduser("~"))
    return float(result.stdout.strip())


def run(framework, model, steps, threads):
    example, batch, shape = MODELS[model]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run([sys.executable, "-c", WORKER, framework, example, str(batch), json.dumps(shape), str(steps)],
                            capture_output=True, text=True, env=env, cwd=os.path.expanduser("~"))
    if result.returncode != 0:
        raise RuntimeError(f"{framework} {model} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--frameworks", default=None,
                        help="comma-separated; default fastcnn,tensorflow plus pytorch when torch is installed "
                             "(pip install torch==2.13.0)")
    args = parser.parse_args()
    if args.frameworks is None:
        import importlib.util

        args.frameworks = "fastcnn,tensorflow" + (",pytorch" if importlib.util.find_spec("torch") else "")
    frameworks = args.frameworks.split(",")
    results = {(m, f): {"train": [], "infer": []} for m in args.models.split(",") for f in frameworks}
    peaks = []
    for round_index in range(args.rounds):
        for model in args.models.split(","):
            for framework in frameworks:  # interleaved: every framework once per round
                measured = run(framework, model, args.steps, args.threads)
                for key in ("train", "infer"):
                    results[(model, framework)][key].append(measured[key])
                print(f"round {round_index + 1} {model:9s} {framework:10s} train {measured['train']:8.1f}/s "
                      f"infer {measured['infer']:9.1f}/s", flush=True)
        peaks.append(measure_peak(args.threads))
    peak = statistics.median(peaks)
    lines = [f"Measured FMA peak: {peak:.0f} GFLOP/s on {args.threads} threads (median of {len(peaks)} probes, one "
             "per round). `% of peak`: the framework's samples/s times the model's direct-convolution FLOPs "
             "per sample, over that peak.", "",
             "| model | batch | framework | train samples/s | infer samples/s | train % of peak | infer % of peak |",
             "|---|---|---|---|---|---|---|"]
    for model in args.models.split(","):
        example, batch, shape = MODELS[model]
        train_flops, infer_flops = model_flops(example, shape)
        for framework in frameworks:
            r = results[(model, framework)]
            train, infer = statistics.median(r["train"]), statistics.median(r["infer"])
            lines.append(f"| {model} | {batch} | {framework} | {train:.0f} | {infer:.0f} | "
                         f"{100 * train * train_flops / 1e9 / peak:.0f}% | {100 * infer * infer_flops / 1e9 / peak:.0f}% |")
        ours = results[(model, "fastcnn")]
        peers = [f for f in frameworks if f != "fastcnn"]
        if peers:
            best_train = max(statistics.median(results[(model, f)]["train"]) for f in peers)
            best_infer = max(statistics.median(results[(model, f)]["infer"]) for f in peers)
            lines.append(f"| {model} | | **fastcnn / best peer** | **{statistics.median(ours['train']) / best_train:.2f}x** | "
                         f"**{statistics.median(ours['infer']) / best_infer:.2f}x** | | |")
    table = "\n".join(lines)
    print(table)
    out = pathlib.Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "compare_training.md").write_text(
        f"`python benchmarks/compare_training.py --rounds {args.rounds} --steps {args.steps}`: medians of "
        f"{args.rounds} interleaved rounds, {args.steps} steps each, {args.threads} threads.\n\n{table}\n")


if __name__ == "__main__":
    main()
