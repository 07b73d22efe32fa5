"""Import time and installed size of fastcnn, numpy alone and (when installed) TensorFlow.

    python benchmarks/install_footprint.py [--runs 7]

Each import is timed in a fresh interpreter (`time.perf_counter()` around the import statement,
interpreter start-up excluded); the median of --runs is printed. Installed size is the sum of the
files the installed distribution lists (importlib.metadata), its bundled libraries included.
Run it outside the repository root, or the uncompiled source folder shadows the installed package.
"""

import argparse
import importlib.metadata
import os
import statistics
import subprocess
import sys

PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_seconds(module, runs, env=None):
    times = []
    for _ in range(runs):
        result = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True,
                                cwd=os.path.expanduser("~"), env=env, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"import {module} failed: {result.stderr.strip()[-2000:]}")
        times.append(float(result.stdout.strip().splitlines()[-1]))
    return statistics.median(times), min(times), max(times)


def installed_bytes(distribution_name):
    try:
        distribution = importlib.metadata.distribution(distribution_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    total = 0
    for file in distribution.files or []:
        path = distribution.locate_file(file)
        if os.path.isfile(path):
            total += os.path.getsize(path)
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per module (median printed)")
    args = parser.parse_args()

    tensorflow = next((name for name in ("tensorflow-cpu", "tensorflow") if installed_bytes(name) is not None), None)
    rows = [("numpy", "numpy", "numpy"), ("fastcnn", "fastcnn", "fastcnn")]
    if tensorflow:
        rows.append(("tensorflow", "tensorflow", tensorflow))
    quiet_tf = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, median (min-max)")
    medians = {}
    for label, module, distribution in rows:
        median, low, high = import_seconds(module, args.runs, quiet_tf)
        medians[label] = median
        size = installed_bytes(distribution)
        size_text = f"{size / 1e6:8.1f} MB installed ({distribution})" if size is not None else "size unknown"
        print(f"import {label:<11} {median:6.3f} s ({low:.3f}-{high:.3f})   {size_text}")
    print(f"fastcnn's own share (fastcnn - numpy): {medians['fastcnn'] - medians['numpy']:.3f} s")


if __name__ == "__main__":
    main()
