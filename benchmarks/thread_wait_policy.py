"""How long OpenMP's threads spin before they sleep, on an idle machine and on one whose cores
other processes share.

Between two parallel regions (every layer runs one or more), a libgomp thread that has finished
its share spins up to GOMP_SPINCOUNT times before it sleeps on a futex. libgomp's default is
300,000 spins (milliseconds); fastcnn sets a shorter default when it is imported (fastcnn/__init__.py),
unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set already. This runs each measurement in a fresh
process per setting, interleaved over rounds, optionally with `--load N` busy processes running
beside it (N spinning Python processes: a shared machine), and prints the median of each.

    python benchmarks/thread_wait_policy.py [--rounds 3] [--load 0] [--settings 300000,10000,1000,passive]
"""

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys

MEASURE = r"""
import json, sys, time
import numpy as np
import fastcnn
sys.path.insert(0, {benchmarks!r})
import benchmark_models

results = {{}}
rng = np.random.default_rng(0)
# Training: seed Example 1 at batch 32 (short steps: many regions per second).
model = benchmark_models.build(fastcnn, "example1", (28, 28, 1))
model.compile("adam", "sparse_categorical_crossentropy")
x = rng.random((32 * 40, 28, 28, 1)).astype(np.float32)
y = rng.integers(0, 10, 32 * 40)
model.fit(x[:96], y[:96], batch_size=32, verbose=0)
start = time.perf_counter()
model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
results["Example 1 fit, batch 32 (samples/s)"] = len(x) / (time.perf_counter() - start)
# Inference: the MobileNetV2-style network, batch 64, and EfficientNetB0 at 224x224, batch 8.
for name, build, shape, batch, calls in (
        ("MobileNetV2-style predict, batch 64 (samples/s)",
         lambda: benchmark_models.build(fastcnn, "mobilenetv2", (32, 32, 3)), (32, 32, 3), 64, 10),
        ("EfficientNetB0 predict, batch 8 (samples/s)",
         lambda: fastcnn.applications.EfficientNetB0(weights=None), (224, 224, 3), 8, 3)):
    model = build()
    images = rng.random((batch,) + shape).astype(np.float32)
    model.predict_on_batch(images)
    start = time.perf_counter()
    for _ in range(calls):
        model.predict_on_batch(images)
    results[name] = batch * calls / (time.perf_counter() - start)
print(json.dumps(results))
"""


def busy():
    while True:
        pass


def environment(setting):
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if setting == "passive":
        env["OMP_WAIT_POLICY"] = "passive"
    else:
        env["GOMP_SPINCOUNT"] = setting
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=0, help="busy processes running beside the measurement")
    parser.add_argument("--settings", default="300000,10000,1000,passive",
                        help="GOMP_SPINCOUNT values, or 'passive' (OMP_WAIT_POLICY=passive); 300000 is libgomp's "
                             "own default")
    args = parser.parse_args()
    settings = args.settings.split(",")
    script = MEASURE.format(benchmarks=os.path.dirname(os.path.abspath(__file__)))
    loaders = [multiprocessing.Process(target=busy, daemon=True) for _ in range(args.load)]
    for process in loaders:
        process.start()
    samples = {setting: [] for setting in settings}
    try:
        for _ in range(args.rounds):
            for setting in settings:
                output = subprocess.run([sys.executable, "-c", script], env=environment(setting), check=True,
                                        capture_output=True, text=True).stdout
                samples[setting].append(json.loads(output.strip().splitlines()[-1]))
    finally:
        for process in loaders:
            process.terminate()
    names = list(samples[settings[0]][0])
    print(f"{os.cpu_count()} CPUs, {args.load} busy processes beside, median of {args.rounds} interleaved rounds, "
          f"2 threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    print(f"{'':52s}" + "".join(f"{'spin ' + s if s != 'passive' else 'passive':>14s}" for s in settings))
    for name in names:
        medians = [statistics.median(sample[name] for sample in samples[setting]) for setting in settings]
        print(f"{name:52s}" + "".join(f"{value:14.0f}" for value in medians))


if __name__ == "__main__":
    main()
