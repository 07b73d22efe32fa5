"""What `Model.predict` costs beyond the network's own pass, for models whose outputs are large next
to their compute (a feature map taken from inside a network, a decoder's image): predict's
milliseconds per call beside the runtime's pass into preallocated arrays (`Network.predict(x,
out=...)`, the kernels' time and nothing else), in alternation call by call so that the machine's
drift hits both alike. Printed per model: the median and best of each, and predict's share of time
outside the runtime's pass (median over pairs of 1 - pass / predict).

    python benchmarks/predict_outputs.py [--pairs 40] [--batch 64]
"""

import argparse
import statistics
import time

import numpy as np

import fastcnn as keras
from fastcnn import layers


def feature_map(input_shape):
    """An inverted residual block's 1x1 expansion (16 -> 96 channels), its output the model's."""
    return keras.Sequential([keras.Input(input_shape), layers.Conv2D(96, 1, use_bias=False), layers.ReLU(6.0)])


def decoder(input_shape):
    """Two 2x upsamplings with 3x3 convolutions: a small decoder writing 64x64x3 images."""
    return keras.Sequential([keras.Input(input_shape), layers.UpSampling2D(), layers.Conv2D(16, 3, padding="same", activation="relu"),
                             layers.UpSampling2D(), layers.Conv2D(3, 3, padding="same", activation="sigmoid")])


MODELS = {"1x1 expansion 32x32x16 -> 96": (feature_map, (32, 32, 16)),
          "decoder 16x16x16 -> 64x64x3": (decoder, (16, 16, 16))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"| model | batch | predict ms median / best | runtime pass ms median / best | outside the pass |")
    print("|---|---|---|---|---|")
    for name, (build, input_shape) in MODELS.items():
        model = build(input_shape)
        x = rng.standard_normal((args.batch,) + input_shape).astype(np.float32)
        model.predict(x, batch_size=args.batch, verbose=0)
        network = model._network
        out = np.empty((args.batch,) + tuple(network.output_shape), np.float32)
        network.predict(x, out=out)
        predict_times, pass_times = [], []
        for _ in range(args.pairs):
            start = time.perf_counter()
            model.predict(x, batch_size=args.batch, verbose=0)
            predict_times.append(1e3 * (time.perf_counter() - start))
            start = time.perf_counter()
            network.predict(x, out=out)
            pass_times.append(1e3 * (time.perf_counter() - start))
        outside = statistics.median(1 - p / q for p, q in zip(pass_times, predict_times))
        print(f"| {name} | {args.batch} | {statistics.median(predict_times):.2f} / {min(predict_times):.2f} | "
              f"{statistics.median(pass_times):.2f} / {min(pass_times):.2f} | {100 * outside:.0f}% |")


if __name__ == "__main__":
    main()
