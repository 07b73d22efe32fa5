"""Inference with BatchNormalization folded into the convolutions before it (and, after an
activation, applied in the convolution's epilogue) against the same model with every layer run
alone, interleaved in one run (timings on shared machines drift: compare the ratio). Models: the
benchmark networks with BatchNormalization (benchmark_models.py: seed Example 3 normalizes after
the activation, the others before it) and, with --applications, Keras's MobileNetV2 and ResNet50
at 224x224 (random weights).

    python benchmarks/batch_norm_folding.py --rounds 3
    python benchmarks/batch_norm_folding.py --applications --batch 8
"""

import argparse
import statistics
import time

import numpy as np

import fastcnn
from benchmark_models import MODELS, build


def _models(args):
    for name in args.models.split(","):
        architecture, batch, shape = MODELS[name]
        yield name, build(fastcnn, architecture, shape), batch, shape
    if args.applications:
        for name in ("MobileNetV2", "ResNet50"):
            model = getattr(fastcnn.applications, name)(weights=None, input_shape=(224, 224, 3))
            yield f"{name}_224_b{args.batch}", model, args.batch, (224, 224, 3)


def _seconds_per_batch(model, x, repeats):
    model.predict(x, batch_size=len(x), verbose=0)  # warm-up: workspace and folded weights
    start = time.perf_counter()
    for _ in range(repeats):
        model.predict(x, batch_size=len(x), verbose=0)
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mobilenetv2_b64,resnet20_b64,ex3_b32")
    parser.add_argument("--applications", action="store_true", help="also MobileNetV2 and ResNet50 at 224x224")
    parser.add_argument("--batch", type=int, default=8, help="batch of the 224x224 applications")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="timed predict calls per round and setting")
    args = parser.parse_args()
    print(f"fastcnn kernels: {fastcnn.config.kernel_set()}, threads: {fastcnn.config.get_num_threads()}")
    print(f"{'model':<24} {'folded':>6} {'after act.':>10} {'unfolded ms':>12} {'folded ms':>10} {'speedup':>8}")
    rng = np.random.default_rng(0)
    for name, model, batch, shape in _models(args):
        model.compile("sgd", "sparse_categorical_crossentropy")
        x = rng.standard_normal((batch,) + shape).astype(np.float32)
        model.predict(x[:1], verbose=0)  # builds the compiled network
        network = model._network
        passes = network.fusion_passes()
        folded_count = len(passes["batch_norm_folding"])  # before an activation: into the weights
        after_count = len(passes["batch_norm_after_activation"])  # after one: in the epilogue
        times = {True: [], False: []}
        for _ in range(args.rounds):
            for folding in (False, True):
                network.set_batch_norm_folding(folding)
                times[folding].append(_seconds_per_batch(model, x, args.repeats))
        unfolded, folded = statistics.median(times[False]), statistics.median(times[True])
        print(f"{name:<24} {folded_count:>6} {after_count:>10} {unfolded * 1e3:>12.2f} {folded * 1e3:>10.2f} "
              f"{unfolded / folded:>7.2f}x")


if __name__ == "__main__":
    main()
