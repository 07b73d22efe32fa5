"""Data-parallel scaling of fastcnn.distributed: samples/s with N ranks against N x one rank.

    python benchmarks/distributed_scaling.py [--ranks 1,2] [--batch 32] [--steps 40] [--rounds 3]
                                             [--threads-per-rank 1] [--model ex1|ex3]

Launches `mpirun -np N` for each N (weak scaling: every rank trains `--batch` samples per step, so
the global batch is N x batch) and reports the median samples/s of the rounds (which interleave the configurations), and the scaling
efficiency  samples/s(N) / (N x samples/s(1)), each rank having the same cores (threads-per-rank).
For N > 1 it also runs with overlap on (each layer's gradients allreduced while the earlier layers'
backward passes run) and reports both, and the time a step spends in the exchange, measured as the
step time with N ranks minus the one-rank step time. A last line compares one rank using every
thread of the run against N single-threaded ranks (threads versus processes on one machine).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap

WORKER = textwrap.dedent('''
    import json, sys, time
    import numpy as np
    from fastcnn import distributed, layers, models
    from fastcnn.utils import set_random_seed
    model_name, overlap = sys.argv[1], sys.argv[5] == "1"
    batch, steps, rounds = (int(value) for value in sys.argv[2:5])
    strategy = distributed.MPIStrategy(overlap=overlap, timeout=600)
    shape = (28, 28, 1) if model_name == "ex1" else (64, 64, 3)
    rng = np.random.default_rng(strategy.rank)
    x = rng.random((batch * steps,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch * steps)
    set_random_seed(0)
    if model_name == "ex1":
        stack = [layers.Input(shape), layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
                 layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
                 layers.Dense(10, activation="softmax")]
    else:
        stack = [layers.Input(shape)]
        for filters in (32, 64):  # seed Example 3: two conv-BN pairs, then pooling, per width
            for _ in range(2):
                stack += [layers.Conv2D(filters, 3, padding="same", activation="relu"), layers.BatchNormalization()]
            stack.append(layers.MaxPooling2D(2))
        stack += [layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax")]
    model = models.Sequential(stack)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    strategy.fit(model, x[:batch * 3], y[:batch * 3], batch_size=batch, epochs=1, verbose=0)  # warm-up
    rates = []
    for _ in range(rounds):  # 1 when launched by main(): its rounds interleave the configurations
        strategy.barrier()
        started = time.perf_counter()
        strategy.fit(model, x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        elapsed = max(strategy.comm.allgather(time.perf_counter() - started))
        rates.append(batch * steps * strategy.size / elapsed)
    # The exchange alone: the gradient allreduce of fit (in place, the whole buffer), timed apart
    # from the computation so that a busy machine's waits do not blur it.
    from mpi4py import MPI
    gradients = model._network.flat_gradients()
    strategy.barrier()
    started = time.perf_counter()
    for _ in range(200):
        strategy.comm.Allreduce(MPI.IN_PLACE, gradients, MPI.SUM)
    allreduce_ms = 1000.0 * max(strategy.comm.allgather(time.perf_counter() - started)) / 200
    if strategy.rank == 0:
        print("RESULT " + json.dumps({"rates": rates, "parameters": model.count_params(),
                                      "allreduce_ms": allreduce_ms}), flush=True)
''')


def run(ranks, threads, args, overlap):
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        sys.exit("mpirun not found: apt-get install openmpi-bin libopenmpi-dev (see .ci/mpi_step.sh)")
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
    command = [mpirun, "-np", str(ranks), "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
               sys.executable, "-c", WORKER, args.model, str(args.batch), str(args.steps), "1",
               "1" if overlap else "0"]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=1800)
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    sys.exit(f"mpirun -np {ranks} failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", default="1,2", help="comma-separated rank counts, 1 first (default 1,2)")
    parser.add_argument("--batch", type=int, default=32, help="samples per rank per step (default 32)")
    parser.add_argument("--steps", type=int, default=40, help="steps per timed round (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the median is reported (default 3)")
    parser.add_argument("--threads-per-rank", type=int, default=1, help="OMP_NUM_THREADS of each rank (default 1)")
    parser.add_argument("--model", choices=("ex1", "ex3"), default="ex1", help="seed Example 1 or 3 (default ex1)")
    args = parser.parse_args()
    counts = [int(value) for value in args.ranks.split(",")]
    if not counts or counts[0] != 1 or any(count < 1 for count in counts):
        parser.error(f"--ranks must start with 1 and hold positive counts. Received: {args.ranks!r}")

    print(f"model {args.model}, {args.batch} samples per rank per step, {args.steps} steps x {args.rounds} rounds, "
          f"{args.threads_per_rank} thread(s) per rank, {os.cpu_count()} CPUs, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, load average {os.getloadavg()[0]:.1f}")
    # (ranks, threads per rank, overlap); the largest count also runs as one rank with all its threads.
    configurations = [(count, args.threads_per_rank, overlap) for count in counts
                      for overlap in ((False,) if count == 1 else (False, True))]
    largest = counts[-1]
    if largest > 1:
        configurations.append((1, largest * args.threads_per_rank, False))
    # Rounds interleave the configurations, so that a change in the machine's other load between
    # rounds touches every configuration alike; each round is one mpirun timing one pass.
    results = {configuration: [] for configuration in configurations}
    for _ in range(args.rounds):
        for configuration in configurations:
            count, threads, overlap = configuration
            results[configuration].append(run(count, threads, args, overlap))
    single = statistics.median(r["rates"][0] for r in results[(1, args.threads_per_rank, False)])
    for configuration in configurations[:-1] if largest > 1 else configurations:
        count, _, overlap = configuration
        rates = [r["rates"][0] for r in results[configuration]]
        rate = statistics.median(rates)
        efficiency = rate / (count * single)
        # Step time beyond one rank's: the exchange plus waiting for the slower rank.
        beyond_ms = 1000.0 * (args.batch * count / rate - args.batch / single)
        allreduce_ms = statistics.median(r["allreduce_ms"] for r in results[configuration])
        print(f"N={count} overlap={'on ' if overlap else 'off'}  {rate:9.1f} samples/s  efficiency "
              f"{100 * efficiency:5.1f}%  step beyond one rank's: {beyond_ms:+.2f} ms  allreduce of the "
              f"gradients alone: {allreduce_ms:.3f} ms  (rounds {', '.join(f'{r:.0f}' for r in rates)}; "
              f"{results[configuration][0]['parameters']:,} parameters)", flush=True)
    if largest > 1:
        threads = largest * args.threads_per_rank
        rate = statistics.median(r["rates"][0] for r in results[configurations[-1]])
        best = max(statistics.median(r["rates"][0] for r in results[c]) for c in configurations if c[0] == largest)
        print(f"one rank with {threads} threads: {rate:.1f} samples/s at batch {args.batch} vs {largest} ranks x "
              f"{args.threads_per_rank} thread(s): {best:.1f} samples/s at global batch {args.batch * largest}")


if __name__ == "__main__":
    main()
