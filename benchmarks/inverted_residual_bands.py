"""Inference with inverted residual blocks in row bands (plan.cpp inverted_residual_bands: expand,
depthwise and project per band of an image's rows, the tensors between in the thread's cache)
against the same model layer by layer. Two copies of the model with the same weights, one with
the bands switched off, predict in alternation, call by call, so that the machine's drift hits
both alike; printed: each one's median and best milliseconds per call, the median over pairs of
the ratio layer-by-layer / banded, and the ratio of the best times.

    python benchmarks/inverted_residual_bands.py [--pairs 200] [--threads 1,2] [--batches 64,1]
    python benchmarks/inverted_residual_bands.py --applications --batches 8
"""

import argparse
import statistics
import time

import numpy as np

import fastcnn
from benchmark_models import MODELS, build


def _models(args):
    for name in args.models.split(","):
        architecture, _, shape = MODELS[name]
        yield name, (lambda architecture=architecture, shape=shape: build(fastcnn, architecture, shape)), shape
    if args.applications:
        yield ("MobileNetV2_224",
               lambda: fastcnn.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)), (224, 224, 3))


def _milliseconds(model, x):
    start = time.perf_counter()
    model.predict(x, batch_size=len(x), verbose=0)
    return 1e3 * (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mobilenetv2_b64")
    parser.add_argument("--applications", action="store_true", help="also Keras's MobileNetV2 at 224x224")
    parser.add_argument("--batches", default="64,1")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--pairs", type=int, default=200, help="alternating predict calls per setting")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"fastcnn kernels: {fastcnn.config.kernel_set()}")
    print(f"{'model':<18} {'batch':>5} {'threads':>7} {'banded ms (best)':>17} {'unbanded ms (best)':>19} "
          f"{'median ratio':>12} {'best ratio':>10}")
    previous = fastcnn.config.get_num_threads()
    try:
        for name, make, shape in _models(args):
            banded, unbanded = make(), make()
            unbanded.set_weights(banded.get_weights())
            for model in (banded, unbanded):
                model.compile("sgd", "mse")
                model.predict(np.zeros((1,) + shape, np.float32), verbose=0)  # builds the compiled network
            unbanded._network.set_inverted_residual_bands(False)
            chained = len(banded._network.fusion_passes()["inverted_residual_bands"])
            for batch in (int(b) for b in args.batches.split(",")):
                x = rng.standard_normal((batch,) + shape).astype(np.float32)
                for threads in (int(t) for t in args.threads.split(",")):
                    fastcnn.config.set_num_threads(threads)
                    for model in (banded, unbanded):
                        model.predict(x, batch_size=batch, verbose=0)  # warm-up: workspace, folded weights
                    times = {"banded": [], "unbanded": []}
                    for pair in range(args.pairs):
                        order = ("banded", "unbanded") if pair % 2 == 0 else ("unbanded", "banded")
                        for key in order:
                            times[key].append(_milliseconds(banded if key == "banded" else unbanded, x))
                    ratios = [u / b for u, b in zip(times["unbanded"], times["banded"])]
                    print(f"{name:<18} {batch:>5} {threads:>7} "
                          f"{statistics.median(times['banded']):>9.2f} ({min(times['banded']):>5.2f}) "
                          f"{statistics.median(times['unbanded']):>11.2f} ({min(times['unbanded']):>5.2f}) "
                          f"{statistics.median(ratios):>11.3f}x {min(times['unbanded']) / min(times['banded']):>9.3f}x")
            print(f"({name}: {chained} layers in band chains)")
    finally:
        fastcnn.config.set_num_threads(previous)


if __name__ == "__main__":
    main()
