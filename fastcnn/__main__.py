"""``python -m fastcnn``: trains the seed article's Example 2 network on the embedded MNIST subset
(or, with ``--example 3``, Example 3 on the generated colour shapes) and reports its test accuracy
and the wall time (import included). ``--plot history.png`` also evaluates the test set after every
epoch and writes the loss and accuracy curves there (needs matplotlib: pip install fastcnn[plot]).

``python -m fastcnn train DIR``, ``predict MODEL IMAGE_OR_DIR...`` and ``evaluate MODEL DIR``: an
image classifier for a folder of labelled photos (fastcnn/_commands.py; ``--help`` on each)."""

import time

_START = time.perf_counter()

import argparse  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

import fastcnn  # noqa: E402
from fastcnn import datasets, layers, models, utils  # noqa: E402


def example2_model():
    """The seed article's Example 2: two conv/pool blocks, dropout 0.5, softmax over 10 digits."""
    return models.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])


def example3_model():
    """The seed article's Example 3: four 'same' convolutions with BatchNormalization, 64x64x3 input."""
    return models.Sequential([
        layers.Conv2D(32, (3, 3), padding="same", activation="relu", input_shape=(64, 64, 3)),
        layers.BatchNormalization(),
        layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])


def load_example(example, args):
    if example == 2:
        (x_train, y_train), (x_test, y_test) = datasets.mnist.load_embedded()
        description = "MNIST subset"
        x_train, x_test = x_train[..., None], x_test[..., None]
    else:
        (x_train, y_train), (x_test, y_test) = datasets.shapes.load_data(
            num_train=args.train_samples, num_test=args.test_samples, seed=args.seed)
        description = "generated colour shapes"
    x_train = x_train.astype(np.float32) / 255.0
    x_test = x_test.astype(np.float32) / 255.0
    return (x_train, y_train), (x_test, y_test), description


def main(argv=None):
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments and arguments[0] in ("train", "predict", "evaluate"):
        from fastcnn import _commands

        return _commands.main(arguments)
    parser = argparse.ArgumentParser(prog="python -m fastcnn", description=__doc__)
    parser.add_argument("--example", type=int, default=2, choices=(2, 3),
                        help="the seed article's example to train: 2 (MNIST, default) or 3 (64x64 colour shapes)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 10 for example 2, 4 for 3)")
    parser.add_argument("--train-samples", type=int, default=4000, help="example 3: generated training images (default 4000)")
    parser.add_argument("--test-samples", type=int, default=1000, help="example 3: generated test images (default 1000)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras verbosity (default 1)")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="write the loss and accuracy curves (training and test, per epoch) to this PNG file")
    args = parser.parse_args(argv)

    epochs = args.epochs if args.epochs is not None else (10 if args.example == 2 else 4)
    if epochs <= 0 or args.batch_size <= 0:
        parser.error("--epochs and --batch-size must be positive")
    utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test), description = load_example(args.example, args)
    print(f"fastcnn {fastcnn.__version__}: {fastcnn.config.kernel_set()} kernels, "
          f"{fastcnn.config.get_num_threads()} threads; example {args.example} on {description}, "
          f"{len(x_train)} train / {len(x_test)} test")

    model = example2_model() if args.example == 2 else example3_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    # With --plot the test set is also evaluated after each epoch, as validation data: evaluation
    # draws no random numbers, so training and the final accuracy are the same as without it.
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=epochs, verbose=args.verbose,
                        validation_data=(x_test, y_test) if args.plot else None)
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss: {test_loss:.4f}")
    print(f"test accuracy: {test_accuracy:.4f}")
    if args.plot:
        utils.plot_history(history, args.plot)
        print(f"training curves (validation = the test set): {args.plot}")
    print(f"wall time: {time.perf_counter() - _START:.1f} s (import included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
