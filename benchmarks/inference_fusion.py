"""One inference fusion on and off, side by side in one process: two copies of a model with the same
weights, the fusion switched off in one, predict in alternation call by call, so that the machine's
drift hits both alike (on shared machines it moves timings by tens of percent between runs).
Printed per model, batch and thread count: each copy's median and best milliseconds per call, the
median over pairs of the ratio off / on, the ratio of the best times, and the fused copy's median
speed as % of the machine's FMA peak on that thread count (benchmarks/peak.py, the widest kernel
set's vectors; the model's direct-convolution FLOPs, so Winograd layers can pass 100%).

Switches (the Network's, each covering every pair of its kind in the model):
  max_pool_fusion        a Conv2D computing the MaxPooling2D after it: a first layer's pair, and in
                         inference a Winograd-shaped convolution's (seed Examples 1-3)
  batch_norm_folding     BatchNormalization folded into the layer before it, or applied in its
                         epilogue after the activation
  residual_add_fusion    a residual Add in the convolution's epilogue

    python benchmarks/inference_fusion.py --switch max_pool_fusion --models ex3_b32 [--pairs 60] [--threads 2,1]
"""

import argparse
import statistics
import time

import numpy as np

import fastcnn
from benchmark_models import MODELS, build, model_flops
from peak import measure_peak

SWITCHES = {
    "max_pool_fusion": "set_max_pool_fusion",
    "batch_norm_folding": "set_batch_norm_folding",
    "residual_add_fusion": "set_residual_add_fusion",
}


def _milliseconds(model, x):
    start = time.perf_counter()
    model.predict(x, batch_size=len(x), verbose=0)
    return 1e3 * (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--switch", choices=sorted(SWITCHES), default="max_pool_fusion")
    parser.add_argument("--models", default="ex1_b128,ex2_b256,ex3_b32")
    parser.add_argument("--threads", default="2,1")
    parser.add_argument("--pairs", type=int, default=60, help="alternating predict calls per model and thread count")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"fastcnn kernels: {fastcnn.config.kernel_set()}, switch: {args.switch}")
    print(f"{'model':<18} {'threads':>7} {'on ms (best)':>15} {'off ms (best)':>15} {'median ratio':>12} "
          f"{'best ratio':>10} {'on % peak':>9}")
    previous = fastcnn.config.get_num_threads()
    try:
        for name in args.models.split(","):
            architecture, batch, shape = MODELS[name]
            on, off = build(fastcnn, architecture, shape), build(fastcnn, architecture, shape)
            off.set_weights(on.get_weights())
            getattr(off._network, SWITCHES[args.switch])(False)
            x = rng.standard_normal((batch,) + shape).astype(np.float32)
            for threads in (int(t) for t in args.threads.split(",")):
                fastcnn.config.set_num_threads(threads)
                for model in (on, off):
                    model.predict(x, batch_size=batch, verbose=0)  # warm-up: workspace, packed and folded weights
                times = {"on": [], "off": []}
                for pair in range(args.pairs):
                    for key in ("on", "off") if pair % 2 == 0 else ("off", "on"):
                        times[key].append(_milliseconds(on if key == "on" else off, x))
                ratios = [b / a for a, b in zip(times["on"], times["off"])]
                gflops = model_flops(architecture, shape)[1] * batch / statistics.median(times["on"]) / 1e6
                peak = measure_peak()
                print(f"{name:<18} {threads:>7} {statistics.median(times['on']):>7.2f} ({min(times['on']):>5.2f}) "
                      f"{statistics.median(times['off']):>7.2f} ({min(times['off']):>5.2f}) "
                      f"{statistics.median(ratios):>11.3f}x {min(times['off']) / min(times['on']):>9.3f}x "
                      f"{100 * gflops / peak:>8.0f}%")
    finally:
        fastcnn.config.set_num_threads(previous)


if __name__ == "__main__":
    main()
