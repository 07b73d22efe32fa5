"""Time of one optimizer update of a 1.2 M-parameter model, per optimizer configuration.

The model is seed Example 3's convolution stack with a Dense(70) layer before its classifier
(1.21 M parameters, 1.15 M of them in that Dense kernel). After one training step has filled the
gradient buffer, the compiled network's `apply_gradients` (the optimizer update alone: clipping,
weight decay and the rule, over every trainable variable) is timed; the best of `--repeats` calls
is printed per configuration, in milliseconds and GB/s of the buffers it reads and writes.

    python benchmarks/optimizer_update.py [--repeats 30] [--threads 2]

To compare two builds side by side, run this script alternately under each (for example with
PYTHONPATH pointing at a copy of the other build's installed `fastcnn` folder).
"""

import argparse
import time

import numpy as np

import fastcnn
from fastcnn import _core, layers, models, optimizers

# name, optimizer factory, floats read + written per parameter (parameters, gradient, slots)
CONFIGURATIONS = [
    ("sgd", lambda: optimizers.SGD(0.01), 3),
    ("sgd momentum nesterov", lambda: optimizers.SGD(0.01, momentum=0.9, nesterov=True), 5),
    ("adam", lambda: optimizers.Adam(1e-3), 7),
    ("adam amsgrad", lambda: optimizers.Adam(1e-3, amsgrad=True), 9),
    ("adamw clipnorm", lambda: optimizers.AdamW(1e-3, weight_decay=0.004, clipnorm=1.0), 8),
    ("nadam", lambda: optimizers.Nadam(1e-3), 7),
    ("rmsprop centered", lambda: optimizers.RMSprop(1e-3, centered=True), 7),
    ("adagrad clipvalue", lambda: optimizers.Adagrad(1e-2, clipvalue=0.5), 6),
]


def build():
    return models.Sequential([
        layers.Conv2D(32, (3, 3), padding="same", activation="relu", input_shape=(64, 64, 3)),
        layers.BatchNormalization(), layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"), layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dense(70, activation="relu"),
        layers.Dense(10, activation="softmax")])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    fastcnn.config.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.random((8, 64, 64, 3)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    model = build()
    parameters = model.count_params()
    print(f"{parameters} parameters, kernels {_core.kernel_set()}, {args.threads} threads, "
          f"best of {args.repeats}")
    for name, make_optimizer, floats_per_parameter in CONFIGURATIONS:
        model.compile(optimizer=make_optimizer(), loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        network = model._network
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            network.apply_gradients(1e-9)
            best = min(best, time.perf_counter() - start)
        gigabytes = 4.0 * floats_per_parameter * parameters / 1e9
        print(f"{name:24s} {best * 1e3:7.3f} ms  {gigabytes / best:6.1f} GB/s", flush=True)


if __name__ == "__main__":
    main()
