"""What data augmentation costs in a training step.

Trains the seed's Example 3 network (64x64x3 inputs, batch 32) with RandomFlip, RandomRotation
and RandomZoom in front, through the public `fit`, with the compiled network's per-phase timers on,
and prints the augmentation layers' share of the step. Also times the three layers alone (a
network holding only them, in training mode) against the whole step, as a cross-check.

    python benchmarks/augmentation.py [--steps 40] [--threads 2] [--interpolation bilinear]
"""

import argparse
import time

import numpy as np

import fastcnn
from fastcnn import _core, layers, models

AUGMENTATION = ("RandomFlip", "RandomRotation", "RandomZoom")


def augmentation_layers(interpolation):
    return [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1, interpolation=interpolation),
            layers.RandomZoom(0.1, interpolation=interpolation)]


def example3(front):
    return models.Sequential([layers.Input((64, 64, 3))] + front + [
        layers.Conv2D(32, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
        layers.Conv2D(32, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax")])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--interpolation", default="bilinear", choices=["bilinear", "nearest"])
    args = parser.parse_args()
    fastcnn.config.set_num_threads(args.threads)
    batch = 32
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch * args.steps, 64, 64, 3)).astype(np.float32)
    y = rng.integers(0, 10, len(x))

    model = example3(augmentation_layers(args.interpolation))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:batch * 3], y[:batch * 3], batch_size=batch, epochs=1, verbose=0)  # warm up
    network = model._network
    network.set_profiling(True)
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    phases = dict(network.profile())
    network.set_profiling(False)
    step = phases["train_step total"] / args.steps
    augmentation = sum(seconds for name, seconds in phases.items()
                       if name.split(" ")[0] in AUGMENTATION) / args.steps

    # The three layers alone on the same batches, in training mode (a network of just them).
    alone = _core.Network()
    for layer in augmentation_layers(args.interpolation):
        layer._add_to_network(alone)
    alone.build((64, 64, 3))
    alone.forward_training(x[:batch], 1)
    start = time.perf_counter()
    for i in range(args.steps):
        alone.forward_training(x[i * batch:(i + 1) * batch], i + 2)
    standalone = (time.perf_counter() - start) / args.steps

    print(f"Example 3 + RandomFlip/RandomRotation/RandomZoom ({args.interpolation}), batch {batch}, "
          f"{args.threads} threads, kernels {fastcnn.config.kernel_set()}, {args.steps} steps")
    print(f"  training step (compiled, whole):        {step * 1e3:8.2f} ms")
    print(f"  augmentation layers inside the step:    {augmentation * 1e3:8.3f} ms  ({100 * augmentation / step:.2f}% of the step)")
    print(f"  the three layers alone (forward_training): {standalone * 1e3:6.3f} ms  ({100 * standalone / step:.2f}% of the step)")


if __name__ == "__main__":
    main()
