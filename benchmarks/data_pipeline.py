"""Training from a folder of JPEGs against training on the same images in memory.

Writes `--images` JPEG files (`--source-size` pixels square, 10 classes) to a temporary folder, then,
interleaved over `--rounds`:

- decode: how many files per second image_dataset_from_directory's pool decodes and resizes alone
  (one pass over the dataset, no model);
- folder: one epoch of `fit` on `image_dataset_from_directory(folder)` (decoding on threads while
  the step trains);
- memory: one epoch of `fit` on the same images already decoded (`ds.as_numpy()`), same batches;
- decode scaled, folder scaled: the same two with `jpeg_dct_scaling=True` (JPEGs decoded at 1/2,
  1/4 or 1/8 of their size where that still covers the target: pixels near, not equal to, Keras's).

Prints images/s of each and the folder / memory ratios: 1.0 means decoding keeps up with training.

    python benchmarks/data_pipeline.py [--images 2000] [--source-size 256] [--image-size 128] [--rounds 3]
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import fastcnn
from fastcnn import layers, utils


def write_images(folder, count, size, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for index in range(count):
        label = index % 10
        os.makedirs(os.path.join(folder, f"class_{label}"), exist_ok=True)
        # Smooth images (JPEG's usual content), a class-dependent tint.
        base = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((size, size), Image.Resampling.BILINEAR)
        tinted = np.clip(np.asarray(image, dtype=np.int16) + label * 8, 0, 255).astype(np.uint8)
        Image.fromarray(tinted).save(os.path.join(folder, f"class_{label}", f"{index}.jpg"), quality=90)


def build(image_size):
    model = fastcnn.Sequential([
        layers.Input((image_size, image_size, 3)), layers.Rescaling(1 / 255),
        layers.Conv2D(32, 3, strides=2, activation="relu"), layers.Conv2D(64, 3, strides=2, activation="relu"),
        layers.Conv2D(64, 3, strides=2, activation="relu"), layers.GlobalAveragePooling2D(), layers.Dense(10)])
    model.compile("adam", fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--source-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_images(folder, args.images, args.source_size)
        dataset = utils.image_dataset_from_directory(folder, image_size=(args.image_size, args.image_size),
                                                     batch_size=args.batch_size, shuffle=False, verbose=False)
        scaled = utils.image_dataset_from_directory(folder, image_size=(args.image_size, args.image_size),
                                                    batch_size=args.batch_size, shuffle=False, verbose=False,
                                                    jpeg_dct_scaling=True)
        x, y = dataset.as_numpy()
        model = build(args.image_size)
        model.fit(x[:args.batch_size * 3], y[:args.batch_size * 3], batch_size=args.batch_size, verbose=0)
        rates = {"decode": [], "folder": [], "memory": [], "decode scaled": [], "folder scaled": []}
        for _ in range(args.rounds):
            for suffix, source in (("", dataset), (" scaled", scaled)):
                start = time.perf_counter()
                for _ in source:
                    pass
                rates["decode" + suffix].append(args.images / (time.perf_counter() - start))
                start = time.perf_counter()
                model.fit(source, epochs=1, verbose=0)
                rates["folder" + suffix].append(args.images / (time.perf_counter() - start))
            start = time.perf_counter()
            model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
            rates["memory"].append(args.images / (time.perf_counter() - start))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"{args.images} JPEGs {args.source_size}x{args.source_size} -> {args.image_size}x{args.image_size}, "
          f"batch {args.batch_size}, {fastcnn.get_num_threads()} threads, medians of {args.rounds} rounds:")
    for name, value in medians.items():
        print(f"  {name:13s} {value:8.0f} images/s")
    print(f"  folder / memory: {medians['folder'] / medians['memory']:.2f}; "
          f"with jpeg_dct_scaling: {medians['folder scaled'] / medians['memory']:.2f}")


if __name__ == "__main__":
    main()
