"""Decoding + resizing + augmenting JPEGs: fastcnn against TensorFlow's and torchvision's loaders.

Writes `--images` photo-like JPEGs (500x375, 2 classes) to a temporary folder, then measures, on 2
CPUs (the process is pinned to 2 of them, so every AUTOTUNE picks 2 threads), how many images per
second each pipeline delivers to a consumer that does nothing:

- fastcnn: ``fastcnn.utils.image_dataset_from_directory(folder, image_size=(180, 180))``, then
  ``.map(flip + rotation, num_parallel_calls=AUTOTUNE)`` (fastcnn's RandomFlip and
  RandomRotation layers called on each batch) and ``.prefetch(AUTOTUNE)``;
- tensorflow: ``tf.keras.utils.image_dataset_from_directory`` with the same arguments, then
  ``.map`` of Keras's RandomFlip and RandomRotation (``num_parallel_calls=AUTOTUNE``) and
  ``.prefetch(AUTOTUNE)``;
- torchvision: ``ImageFolder`` with ``Resize((180, 180))``, ``RandomHorizontalFlip``,
  ``RandomRotation(36)`` (Keras's factor 0.1 of a turn) and ``ToTensor``, through
  ``DataLoader(batch_size=32, num_workers=2)``; run by `--peer-python` (a Python with torch and
  torchvision, e.g. /work/venvs/tv/bin/python) in a subprocess, skipped with a message without it.

Each pass reads the whole folder once (batches of 32); one warm-up pass each, then `--rounds`
rounds in which the three run one after the other (interleaved, so a busy machine slows all alike);
prints the median images/s of each and fastcnn's rate divided by each peer's.

    python benchmarks/image_pipeline_peers.py [--images 1000] [--rounds 2] \\
        [--peer-python /work/venvs/tv/bin/python]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

IMAGE_SIZE = (180, 180)
BATCH_SIZE = 32
ROTATION_FACTOR = 0.1  # Keras: a fraction of a full turn; 0.1 * 360 = 36 degrees
CPUS = 2

# The torchvision pass, run by the peer interpreter: prints its images/s for each requested pass.
TORCHVISION_SCRIPT = r"""
import json, sys, time
import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

folder, passes, height, width, batch, degrees, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
torch.set_num_threads(1)
transform = transforms.Compose([transforms.Resize((height, width)), transforms.RandomHorizontalFlip(),
                                transforms.RandomRotation(degrees), transforms.ToTensor()])
dataset = datasets.ImageFolder(folder, transform=transform)
loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=False)
rates = []
for _ in range(passes):
    start = time.perf_counter()
    count = 0
    for images, labels in loader:
        count += len(images)
    rates.append(count / (time.perf_counter() - start))
print(json.dumps({"version": f"torch {torch.__version__}, torchvision {torchvision.__version__}", "rates": rates}))
"""


def pin_to_cpus(count):
    """Restricts this process (and the threads and processes it starts) to `count` CPUs."""
    try:
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, available[:count])
        return len(available[:count])
    except AttributeError:  # not Linux: leave the process as it is
        return os.cpu_count()


def write_photos(folder, count, seed=0):
    """`count` 500x375 JPEGs in two class folders: smooth colour fields with edges and fine
    grain, which compress (about 40-60 KB at quality 90) like photographs do, unlike noise."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    for index in range(count):
        label = index % 2
        os.makedirs(os.path.join(folder, f"class_{label}"), exist_ok=True)
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((500, 375), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, 450)), int(rng.integers(0, 330))
            box = [x0, y0, x0 + int(rng.integers(20, 200)), y0 + int(rng.integers(20, 150))]
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if label else draw.rectangle)(box, fill=colour)
        image = image.filter(ImageFilter.GaussianBlur(1.5))
        grain = rng.normal(0, 6, (375, 500, 3))
        pixels = np.clip(np.asarray(image, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"class_{label}", f"{index:05d}.jpg"), quality=90)


def fastcnn_pipeline(folder):
    import fastcnn
    from fastcnn import data, layers, utils

    augment = fastcnn.Sequential([layers.Input(IMAGE_SIZE + (3,)), layers.RandomFlip("horizontal"),
                                  layers.RandomRotation(ROTATION_FACTOR)])
    dataset = utils.image_dataset_from_directory(folder, image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, seed=0,
                                                 verbose=False)
    return (dataset.map(lambda images, labels: (augment(images, training=True), labels),
                        num_parallel_calls=data.AUTOTUNE)
            .prefetch(data.AUTOTUNE))


def tensorflow_pipeline(folder):
    import tensorflow as tf

    augment = tf.keras.Sequential([tf.keras.layers.RandomFlip("horizontal"),
                                   tf.keras.layers.RandomRotation(ROTATION_FACTOR)])
    dataset = tf.keras.utils.image_dataset_from_directory(folder, image_size=IMAGE_SIZE, batch_size=BATCH_SIZE,
                                                          seed=0, verbose=False)
    return (dataset.map(lambda images, labels: (augment(images, training=True), labels),
                        num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def images_per_second(dataset):
    start = time.perf_counter()
    count = 0
    for images, _ in dataset:
        count += len(images)
    return count / (time.perf_counter() - start)


def torchvision_rates(peer_python, folder, passes):
    command = [peer_python, "-c", TORCHVISION_SCRIPT, folder, str(passes), str(IMAGE_SIZE[0]), str(IMAGE_SIZE[1]),
               str(BATCH_SIZE), str(ROTATION_FACTOR * 360), str(CPUS)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"The torchvision pass failed ({peer_python}):\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--peer-python", default=None,
                        help="a Python interpreter with torch and torchvision installed (for the torchvision pass)")
    args = parser.parse_args()
    cpus = pin_to_cpus(CPUS)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(CPUS)
    tf.config.threading.set_intra_op_parallelism_threads(CPUS)
    peer = args.peer_python
    if peer is not None and not os.path.exists(peer):
        print(f"--peer-python {peer} does not exist: the torchvision pass is skipped.")
        peer = None
    elif peer is None:
        print("No --peer-python given: the torchvision pass is skipped (give a Python with torch and torchvision).")
    with tempfile.TemporaryDirectory() as folder:
        write_photos(folder, args.images)
        pipelines = {"fastcnn": fastcnn_pipeline(folder), "tensorflow": tensorflow_pipeline(folder)}
        rates = {name: [] for name in pipelines}
        for name, dataset in pipelines.items():
            images_per_second(dataset)  # warm-up: file cache, thread pools, TF's graph tracing
        torch_version = None
        if peer is not None:
            rates["torchvision"] = []
            torch_version = torchvision_rates(peer, folder, 1)["version"]  # warm-up
        for _ in range(args.rounds):
            for name, dataset in pipelines.items():
                rates[name].append(images_per_second(dataset))
            if peer is not None:
                rates["torchvision"] += torchvision_rates(peer, folder, 1)["rates"]
    import fastcnn

    print(f"{args.images} JPEGs 500x375 -> {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, flip + rotation, batches of "
          f"{BATCH_SIZE}, {cpus} CPUs, median of {args.rounds} interleaved rounds")
    versions = {"fastcnn": fastcnn.__version__, "tensorflow": tf.__version__, "torchvision": torch_version}
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, median in medians.items():
        rounds = ", ".join(f"{value:.0f}" for value in rates[name])
        ratio = "" if name == "fastcnn" else f"; fastcnn / {name} = {medians['fastcnn'] / median:.2f}"
        print(f"  {name:<12} {median:8.0f} images/s  (rounds: {rounds}{ratio}; version {versions[name]})")


if __name__ == "__main__":
    main()
