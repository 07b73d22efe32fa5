"""Inference time of keras.applications models at 224×224, batch 8: fastcnn against Keras 3 on
TensorFlow, in one interleaved run.

Each model is built by both (weights=None, include_top=True, 1000 classes); Keras's weights are
copied into fastcnn's model through a `.weights.h5` file and the outputs are checked to agree
(relative error ≤ 1e-4) before anything is timed. Then for each round, every model runs one batch
in fastcnn (`predict_on_batch`) and one in Keras (`predict_on_batch`, a compiled tf.function after
its first call), alternately, so load on a shared machine falls on both alike. Printed: the
median ms per batch of each, and Keras's time / fastcnn's (above 1: fastcnn is faster).

    python benchmarks/applications_inference.py [--models ResNet50,MobileNetV2,...] [--rounds 5] [--warmup 2]

--models takes any builder of fastcnn.applications (MobileNetV3Large, ConvNeXtTiny, ...).
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

DEFAULT_MODELS = ("ResNet50", "MobileNetV2", "DenseNet121", "Xception", "EfficientNetB0")
# The families whose models rescale [0, 255] inputs themselves; the others take [-1, 1] here.
SELF_RESCALING = ("EfficientNet", "MobileNetV3", "ConvNeXt")
BATCH = 8
SIZE = 224


def build_pair(name, folder):
    """Keras's and fastcnn's `name` with the same weights, and a batch of inputs."""
    import keras

    import fastcnn.applications

    arguments = {"weights": None, "include_top": True, "input_shape": (SIZE, SIZE, 3)}
    theirs = getattr(keras.applications, name)(**arguments)
    path = os.path.join(folder, f"{name}.weights.h5")
    theirs.save_weights(path)
    ours = getattr(fastcnn.applications, name)(**arguments)
    ours.load_weights(path)
    images = np.random.default_rng(0).uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype("float32")
    if not name.startswith(SELF_RESCALING):
        images = images / 127.5 - 1.0
    expected = np.asarray(theirs.predict_on_batch(images))
    actual = np.asarray(ours.predict_on_batch(images))
    error = float(np.max(np.abs(actual - expected)) / max(float(np.max(np.abs(expected))), 1e-30))
    if error > 1e-4:
        raise SystemExit(f"{name}: fastcnn and Keras disagree (relative error {error:.2e}); not timing it")
    return theirs, ours, images


def timed(call):
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    options = parser.parse_args()
    names = [name for name in options.models.split(",") if name]
    pairs = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            pairs[name] = build_pair(name, folder)
    times = {name: ([], []) for name in names}
    for round_index in range(options.warmup + options.rounds):
        for name, (theirs, ours, images) in pairs.items():
            ours_ms = timed(lambda: ours.predict_on_batch(images))
            theirs_ms = timed(lambda: theirs.predict_on_batch(images))
            if round_index >= options.warmup:
                times[name][0].append(ours_ms)
                times[name][1].append(theirs_ms)
    print(f"224x224 inference, batch {BATCH}, median of {options.rounds} interleaved rounds "
          f"({options.warmup} warm-up), os.cpu_count()={os.cpu_count()}")
    print(f"{'model':<16}{'fastcnn ms/batch':>18}{'Keras/TF ms/batch':>19}{'Keras / fastcnn':>17}")
    for name in names:
        ours_ms, theirs_ms = (statistics.median(values) for values in times[name])
        print(f"{name:<16}{ours_ms:>18.1f}{theirs_ms:>19.1f}{theirs_ms / ours_ms:>16.2f}x")


if __name__ == "__main__":
    main()
