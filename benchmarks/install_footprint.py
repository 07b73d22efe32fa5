"""Import time and installed size of fastcnn, numpy alone and (when installed) TensorFlow.

    python benchmarks/install_footprint.py [--runs 7]

Each import is timed in a fresh interpreter, two ways: `time.perf_counter()` around the import
statement (interpreter start-up excluded), and the cumulative time `python -X importtime` reports
for the module (which adds its own bookkeeping, so it reads a little higher); the median of --runs
of each is printed. Installed size is the sum of the
files the installed distribution lists (importlib.metadata), its bundled libraries included.
Run it outside the repository root, or the uncompiled source folder shadows the installed package.
"""

import argparse
import importlib.metadata
import os
import statistics
import subprocess
import sys

PROBE = "import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"


def import_seconds(statement, runs, env=None):
    times = []
    for _ in range(runs):
        result = subprocess.run([sys.executable, "-c", PROBE.format(statement=statement)], capture_output=True,
                                text=True, cwd=os.path.expanduser("~"), env=env, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"{statement} failed: {result.stderr.strip()[-2000:]}")
        times.append(float(result.stdout.strip().splitlines()[-1]))
    return statistics.median(times), min(times), max(times)


def importtime_seconds(statement, module, runs, env=None):
    """Median over runs of the cumulative seconds `python -X importtime` reports for the top-level
    imports `statement` makes, from `module`'s package on."""
    times = []
    for _ in range(runs):
        result = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True,
                                text=True, cwd=os.path.expanduser("~"), env=env, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"{statement} failed: {result.stderr.strip()[-2000:]}")
        # Lines read "import time: <self us> | <cumulative us> | <module name, indented by depth>".
        # Unindented lines are imports made directly at top level, so each is counted once; those
        # before the statement's first module are the interpreter's start-up (site, encodings).
        total, started = 0, False
        for line in result.stderr.splitlines():
            fields = line.split("|")
            if not line.startswith("import time:") or len(fields) != 3 or fields[2].startswith("  "):
                continue
            started = started or fields[2].strip() == module.split(".")[0]
            if started:
                total += int(fields[1])
        times.append(total / 1e6)
    return statistics.median(times)


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
    # (label, statement timed, module -X importtime reports, distribution sized)
    rows = [("import numpy", "import numpy", "numpy", "numpy"),
            ("import fastcnn", "import fastcnn", "fastcnn", "fastcnn"),
            # What a training script runs: submodules are imported on first use, and layers and models
            # bring in numpy and the model-building code.
            ("from fastcnn import layers, models", "from fastcnn import layers, models", "fastcnn.models", "fastcnn")]
    if tensorflow:
        rows.append(("import tensorflow", "import tensorflow", "tensorflow", tensorflow))
    quiet_tf = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, median (min-max)")
    medians = {}
    for label, statement, module, distribution in rows:
        median, low, high = import_seconds(statement, args.runs, quiet_tf)
        importtime = importtime_seconds(statement, module, args.runs, quiet_tf)
        medians[label] = median
        size = installed_bytes(distribution)
        size_text = f"{size / 1e6:7.1f} MB installed ({distribution})" if size is not None else "size unknown"
        print(f"{label:<35} {median:6.3f} s ({low:.3f}-{high:.3f})  -X importtime {importtime:6.3f} s"
              f"  {size_text}")
    share = medians["from fastcnn import layers, models"] - medians["import numpy"]
    print(f"fastcnn's own share of a training script's imports (layers and models - numpy): {share:.3f} s")


if __name__ == "__main__":
    main()
