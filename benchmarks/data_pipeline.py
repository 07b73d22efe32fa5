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
On 2 cores the decoding threads take their CPU time from the training step, so the folder trains
at about 1 / (1/memory + 1/decode) images/s: within 10% of memory where decoding is at least 9x
faster than training.

`--photos` writes image_pipeline_peers.py's photo-like 500x375 JPEGs instead of smooth squares;
`--model xception` trains the network of Keras's "Image classification from scratch" example
(the PetImages recipe, 180x180) instead of a three-convolution one.

    python benchmarks/data_pipeline.py [--images 2000] [--source-size 256] [--image-size 128] [--rounds 3]
    python benchmarks/data_pipeline.py --photos --image-size 180 --model xception --images 256 --rounds 2
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


def small_network(image_size, classes):
    return fastcnn.Sequential([
        layers.Input((image_size, image_size, 3)), layers.Rescaling(1 / 255),
        layers.Conv2D(32, 3, strides=2, activation="relu"), layers.Conv2D(64, 3, strides=2, activation="relu"),
        layers.Conv2D(64, 3, strides=2, activation="relu"), layers.GlobalAveragePooling2D(), layers.Dense(classes)])


def xception_network(image_size, classes):
    """make_model of Keras's "Image classification from scratch" example (keras.io), unchanged."""
    inputs = layers.Input((image_size, image_size, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(128, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous_block_activation = x
    for size in [256, 512, 728]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])
        previous_block_activation = x
    x = layers.SeparableConv2D(1024, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(classes)(x)
    return fastcnn.Model(inputs, outputs)


def build(image_size, model_name, classes):
    model = (xception_network if model_name == "xception" else small_network)(image_size, classes)
    model.compile("adam", fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--source-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", action="store_true", help="500x375 photo-like JPEGs in 2 classes")
    parser.add_argument("--model", choices=["small", "xception"], default="small")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.photos:
            from image_pipeline_peers import write_photos

            write_photos(folder, args.images)
            source, classes = "500x375", 2
        else:
            write_images(folder, args.images, args.source_size)
            source, classes = f"{args.source_size}x{args.source_size}", 10
        dataset = utils.image_dataset_from_directory(folder, image_size=(args.image_size, args.image_size),
                                                     batch_size=args.batch_size, shuffle=False, verbose=False)
        scaled = utils.image_dataset_from_directory(folder, image_size=(args.image_size, args.image_size),
                                                    batch_size=args.batch_size, shuffle=False, verbose=False,
                                                    jpeg_dct_scaling=True)
        x, y = dataset.as_numpy()
        model = build(args.image_size, args.model, classes)
        model.fit(x[:args.batch_size * 3], y[:args.batch_size * 3], batch_size=args.batch_size, verbose=0)
        rates = {"decode": [], "folder": [], "memory": [], "decode scaled": [], "folder scaled": []}
        for _ in range(args.rounds):
            for suffix, pipeline in (("", dataset), (" scaled", scaled)):
                start = time.perf_counter()
                for _ in pipeline:
                    pass
                rates["decode" + suffix].append(args.images / (time.perf_counter() - start))
                start = time.perf_counter()
                model.fit(pipeline, epochs=1, verbose=0)
                rates["folder" + suffix].append(args.images / (time.perf_counter() - start))
            start = time.perf_counter()
            model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
            rates["memory"].append(args.images / (time.perf_counter() - start))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"{args.images} JPEGs {source} -> {args.image_size}x{args.image_size}, {args.model} network, "
          f"batch {args.batch_size}, {fastcnn.get_num_threads()} threads, medians of {args.rounds} rounds:")
    for name, value in medians.items():
        print(f"  {name:13s} {value:8.0f} images/s")
    print(f"  folder / memory: {medians['folder'] / medians['memory']:.2f}; "
          f"with jpeg_dct_scaling: {medians['folder scaled'] / medians['memory']:.2f}")


if __name__ == "__main__":
    main()
