"""``python -m fastcnn train DIR``, ``predict MODEL IMAGES...`` and ``evaluate MODEL DIR``: an image
classifier for a folder of labelled photos without writing a script, built on the public API a
script would use (image_dataset_from_directory's indexing, Keras layers, fit with EarlyStopping,
model.save), so it is also a worked example.

Exit codes: 0 done, 1 the work failed (an unreadable model file, no decodable image), 2 a usage error
(argparse's: a missing folder, a folder with fewer than two classes, bad options).
"""

import argparse
import json
import os
import sys
import tempfile
import zipfile

import numpy as np

CLASS_NAMES_FILE = "assets/class_names.json"  # inside the .keras archive, where Keras keeps assets


class CommandError(Exception):
    """A failure reported as `fastcnn <command>: error: <message>` with exit code 1."""


# ---- shared ----

def _image_files(paths):
    """Image files named by `paths` (files, or folders walked in sorted order), Keras's extensions."""
    from fastcnn._image_dataset import ALLOWLIST_FORMATS

    found = []
    for path in paths:
        if os.path.isdir(path):
            for root, _, files in sorted(os.walk(path), key=lambda entry: entry[0]):
                found += [os.path.join(root, name) for name in sorted(files) if name.lower().endswith(ALLOWLIST_FORMATS)]
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found


def _labelled_folder(directory, parser):
    """(file paths, labels, class names) of a folder with one subfolder per class, as
    image_dataset_from_directory indexes it; argparse errors (exit 2) for what a user must fix."""
    from fastcnn._image_dataset import ALLOWLIST_FORMATS, index_directory

    if not os.path.isdir(directory):
        parser.error(f"{directory!r} is not a folder (expected one subfolder of images per class)")
    paths, labels, class_names = index_directory(directory, "inferred", ALLOWLIST_FORMATS, shuffle=False,
                                                 verbose=False)
    counts = np.bincount(labels, minlength=len(class_names)) if len(labels) else np.zeros(len(class_names), int)
    populated = [name for name, count in zip(class_names, counts) if count]
    if len(populated) < 2:
        parser.error(f"{directory!r} holds images of {len(populated)} class(es) ({', '.join(populated) or 'none'}); "
                     "a classifier needs at least two subfolders of images, one per class")
    return paths, labels, class_names


def _stratified_split(labels, fraction, seed):
    """(training indices, validation indices): `fraction` of every class held out (at least one
    image of a class with two or more), both shuffled with `seed`."""
    rng = np.random.default_rng(seed)
    training, validation = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held = min(len(members) - 1, max(1, round(fraction * len(members)))) if fraction > 0 else 0
        validation += members[:held].tolist()
        training += members[held:].tolist()
    return rng.permutation(training), rng.permutation(validation)


def _dataset(paths, labels, class_names, image_size, batch_size, shuffle, seed):
    from fastcnn._image_dataset import ImageDataset

    return ImageDataset(paths, labels, "int", class_names, (image_size, image_size), 3, "bilinear", False, False,
                        batch_size, shuffle, seed)


def _confusion(truth, predicted, classes):
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def _report(truth, probabilities, class_names):
    """The printed summary: accuracy, per-class precision/recall/F1, and the confusion matrix."""
    predicted = np.argmax(probabilities, axis=1)
    matrix = _confusion(truth, predicted, len(class_names))
    lines = [f"accuracy: {np.mean(predicted == truth):.4f} ({int(np.sum(predicted == truth))}/{len(truth)} images)", "",
             f"{'class':24s} {'precision':>9s} {'recall':>7s} {'f1':>7s} {'images':>7s}"]
    for index, name in enumerate(class_names):
        true_positive = matrix[index, index]
        precision = true_positive / max(matrix[:, index].sum(), 1)
        recall = true_positive / max(matrix[index].sum(), 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        lines.append(f"{name[:24]:24s} {precision:9.3f} {recall:7.3f} {f1:7.3f} {int(matrix[index].sum()):7d}")
    width = max(6, max(len(name) for name in class_names))
    lines += ["", "confusion matrix (rows: true class, columns: predicted)",
              " " * (width + 1) + " ".join(f"{name[:width]:>{width}s}" for name in class_names)]
    for index, name in enumerate(class_names):
        lines.append(f"{name[:width]:>{width}s} " + " ".join(f"{value:>{width}d}" for value in matrix[index]))
    return "\n".join(lines), matrix


def _plot_confusion(matrix, class_names, path):
    """The confusion matrix as a PNG, on matplotlib's Agg canvas (no display needed)."""
    from fastcnn._plot import _matplotlib

    _matplotlib()  # the clear ImportError when matplotlib is missing
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = 1.5 + 0.6 * len(class_names)
    figure = Figure(figsize=(size, size), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for row in range(len(class_names)):
        for column in range(len(class_names)):
            axes.text(column, row, str(matrix[row, column]), ha="center", va="center")
    figure.savefig(path)


def _save_with_class_names(model, output, class_names):
    """model.save to `output`, with the class names inside the archive, replaced in one rename."""
    folder = os.path.dirname(os.path.abspath(output))
    handle, temporary = tempfile.mkstemp(suffix=".keras", dir=folder)
    os.close(handle)
    try:
        model.save(temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(CLASS_NAMES_FILE, json.dumps(list(class_names)))
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _load(model_path):
    """(model, class names) from a .keras file; class names "0", "1", ... when it has none."""
    from fastcnn import saving

    try:
        model = saving.load_model(model_path)
    except (ValueError, OSError, TypeError) as error:
        raise CommandError(f"{model_path!r} is not a fastcnn or Keras model file: {error}") from error
    class_names = None
    try:
        with zipfile.ZipFile(model_path) as archive:
            if CLASS_NAMES_FILE in archive.namelist():
                class_names = [str(name) for name in json.loads(archive.read(CLASS_NAMES_FILE))]
    except (zipfile.BadZipFile, ValueError):
        class_names = None
    units = model.output_shape[-1]
    if class_names is None or len(class_names) != units:
        class_names = [str(index) for index in range(units)]
    return model, class_names


def _input_size(model):
    shape = model.input_shape
    if len(shape) != 4 or shape[3] != 3:
        raise CommandError(f"the model takes inputs of shape {shape}; these commands feed RGB images "
                           "(batch, height, width, 3)")
    return shape[1], shape[2]


# ---- train ----

def small_model(image_size, classes):
    """A small CNN with augmentation, for training from scratch on a few thousand images."""
    from fastcnn import Sequential, layers

    stack = [layers.Input((image_size, image_size, 3)), layers.Rescaling(1.0 / 255),
             layers.RandomFlip("horizontal"), layers.RandomRotation(0.05), layers.RandomZoom(0.1)]
    # BatchNormalization with momentum 0.9, not Keras's 0.99: a few thousand images give a few hundred
    # steps, and at 0.99 the moving variance stays near its initial 1 for ~700 steps while the
    # batches' is ~0.01, so inference (EarlyStopping restores an early epoch) would see activations
    # several times too small. Measured: validation accuracy 0.25 (chance) at 0.99 on 2,000 photos.
    for filters in (32, 64, 128):
        stack += [layers.Conv2D(filters, 3, padding="same", use_bias=False), layers.BatchNormalization(momentum=0.9),
                  layers.ReLU(), layers.MaxPooling2D()]
    stack += [layers.Conv2D(128, 3, padding="same", activation="relu"), layers.GlobalAveragePooling2D(),
              layers.Dropout(0.3), layers.Dense(classes, activation="softmax")]
    return Sequential(stack, name="fastcnn_small")


def transfer_model(image_size, classes, weights):
    """MobileNetV2 (the weights file, or Keras's ImageNet file) frozen under a new head, as in the
    Keras transfer-learning guide; returns (model, base)."""
    from fastcnn import Input, Model, Sequential, applications, layers

    base = applications.MobileNetV2(input_shape=(image_size, image_size, 3), include_top=False, weights=weights)
    base.trainable = False
    inputs = Input((image_size, image_size, 3))
    x = Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.05)], name="augmentation")(inputs)
    x = layers.Rescaling(1.0 / 127.5, offset=-1)(x)  # MobileNetV2's preprocess_input: pixels to [-1, 1]
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return Model(inputs, layers.Dense(classes, activation="softmax")(x), name="fastcnn_mobilenetv2"), base


def _imagenet_available(image_size):
    """Whether Keras's MobileNetV2 ImageNet file for this size is in Keras's cache folder."""
    from fastcnn.applications import _weights

    size = image_size if image_size in (96, 128, 160, 192, 224) else 224
    name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5"
    return os.path.isfile(os.path.join(_weights.cache_folder(_weights.CACHE_SUBDIR), name))


def train(args, parser):
    import fastcnn
    from fastcnn import callbacks, optimizers, utils

    paths, labels, class_names = _labelled_folder(args.directory, parser)
    fastcnn.utils.set_random_seed(args.seed)
    training, validation = _stratified_split(labels, args.validation_split, args.seed)
    if not len(validation):
        parser.error("--validation-split leaves no validation images; use a value in (0, 1)")
    print(f"Found {len(paths)} images of {len(class_names)} classes ({', '.join(class_names)}): "
          f"{len(training)} for training, {len(validation)} for validation.")
    take = np.asarray(paths)
    train_ds = _dataset(take[training].tolist(), labels[training], class_names, args.image_size, args.batch_size,
                        True, args.seed)
    val_ds = _dataset(take[validation].tolist(), labels[validation], class_names, args.image_size, args.batch_size,
                      False, args.seed)
    if args.model not in ("auto", "small", "mobilenetv2"):
        parser.error(f"--model {args.model}: choose auto, small or mobilenetv2")
    weights = args.weights
    if weights is None and args.model in ("auto", "mobilenetv2") and _imagenet_available(args.image_size):
        weights = "imagenet"
    transfer = args.model == "mobilenetv2" or (args.model == "auto" and weights is not None)
    if args.model == "small" and weights is not None:
        parser.error("--weights needs a pretrained network: --model mobilenetv2 (or auto)")
    if args.model == "mobilenetv2" and weights is None:
        parser.error("--model mobilenetv2 needs --weights (a MobileNetV2 weights file, or imagenet with Keras's "
                     "ImageNet file in Keras's cache folder)")
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)
    if transfer:
        try:
            model, base = transfer_model(args.image_size, len(class_names), weights)
        except (FileNotFoundError, ValueError) as error:
            raise CommandError(f"could not build MobileNetV2 with weights={weights!r}: {error}") from error
        print(f"Transfer learning: MobileNetV2 ({weights}) frozen, a new head trained, then the top blocks "
              "fine-tuned.")
        model.compile(optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=[stop],
                            verbose=args.verbose)
        # Fine-tuning (the Keras guide): the top of the base trainable, BatchNormalization frozen (it
        # keeps its ImageNet statistics), a learning rate 100x lower.
        base.trainable = True
        fine_tune_from = int(len(base.layers) * 0.8)
        for index, layer in enumerate(base.layers):
            layer.trainable = index >= fine_tune_from and type(layer).__name__ != "BatchNormalization"
        model.compile(optimizers.Adam(1e-5), "sparse_categorical_crossentropy", metrics=["accuracy"])
        fine = model.fit(train_ds, validation_data=val_ds, epochs=max(1, args.epochs // 2),
                         callbacks=[callbacks.EarlyStopping(monitor="val_loss", patience=args.patience,
                                                            restore_best_weights=True)], verbose=args.verbose)
        for key, values in fine.history.items():
            history.history.setdefault(key, []).extend(values)
    else:
        model = small_model(args.image_size, len(class_names))
        model.compile(optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=[stop],
                            verbose=args.verbose)
    truth = np.concatenate([batch_labels for _, batch_labels in val_ds])
    probabilities = model.predict(val_ds, verbose=0)
    text, matrix = _report(truth, probabilities, class_names)
    print("\nValidation (the best epoch's weights):\n" + text)
    _save_with_class_names(model, args.output, class_names)
    print(f"\nSaved the model to {args.output} (load it with fastcnn.saving.load_model or keras.saving.load_model)")
    for path in args.plot or []:
        if "confusion" in os.path.basename(path):
            _plot_confusion(matrix, class_names, path)
        else:
            utils.plot_history(history, path)
        print(f"Wrote {path}")
    return 0


# ---- predict and evaluate ----

def _decoded(paths, size):
    """(decodable paths, images (n, height, width, 3) float32 0-255): decoded on a thread per CPU;
    an undecodable file is skipped with a warning naming it."""
    from fastcnn._image_dataset import ImageDataset

    dataset = ImageDataset(paths, np.arange(len(paths)), "int", [str(i) for i in range(len(paths))], size, 3,
                           "bilinear", False, False, None, False, None)
    images, indices = dataset.as_numpy()
    return [paths[i] for i in indices], images


def predict(args, parser):
    model, class_names = _load(args.model)
    try:
        paths = _image_files(args.images)
    except FileNotFoundError as error:
        parser.error(str(error))
    if not paths:
        raise CommandError("no image files (.bmp .gif .jpeg .jpg .png) among " + " ".join(args.images))
    paths, images = _decoded(paths, _input_size(model))
    if not paths:
        raise CommandError("none of the images could be decoded")
    probabilities = model.predict(images, batch_size=args.batch_size, verbose=0)
    k = max(1, min(args.top_k, len(class_names)))
    results = []
    for path, row in zip(paths, probabilities):
        order = np.argsort(-row, kind="stable")[:k]
        results.append({"path": path, "predictions": [{"class": class_names[i], "probability": float(row[i])}
                                                      for i in order]})
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for result in results:
            ranked = ", ".join(f"{p['class']} {p['probability']:.3f}" for p in result["predictions"])
            print(f"{result['path']}: {ranked}")
    return 0


def evaluate(args, parser):
    model, class_names = _load(args.model)
    paths, labels, folder_classes = _labelled_folder(args.directory, parser)
    unknown = sorted(set(folder_classes) - set(class_names))
    if unknown:
        raise CommandError(f"the folder has classes the model does not know: {', '.join(unknown)} (the model's: "
                           f"{', '.join(class_names)})")
    mapped = np.array([class_names.index(folder_classes[label]) for label in labels])
    kept, images = _decoded(paths, _input_size(model))
    position = {path: index for index, path in enumerate(paths)}
    truth = mapped[[position[path] for path in kept]]
    probabilities = model.predict(images, batch_size=args.batch_size, verbose=0)
    text, matrix = _report(truth, probabilities, class_names)
    print(text)
    if args.plot:
        _plot_confusion(matrix, class_names, args.plot)
        print(f"Wrote {args.plot}")
    return 0


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m fastcnn", description="Image classifiers for folders of photos.")
    commands = parser.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser("train", help="train a classifier on a folder with one subfolder per class",
                                  description="Train an image classifier on DIR (one subfolder of images per "
                                              "class), stopping early on a plateau, and save it.")
    trainer.add_argument("directory", metavar="DIR")
    trainer.add_argument("--output", default="model.keras", help="where to save the model (default model.keras)")
    trainer.add_argument("--image-size", type=int, default=160, help="images are resized to SIZE x SIZE (default 160)")
    trainer.add_argument("--epochs", type=int, default=30, help="at most this many epochs (default 30)")
    trainer.add_argument("--patience", type=int, default=5,
                         help="stop after this many epochs without a better validation loss (default 5)")
    trainer.add_argument("--model", default="auto",
                         help="small (a CNN trained from scratch), mobilenetv2 (transfer learning from pretrained "
                              "weights) or auto (default: mobilenetv2 when --weights is given or Keras's ImageNet "
                              "file is in Keras's cache folder, else small)")
    trainer.add_argument("--weights", default=None,
                         help="MobileNetV2 weights: imagenet (Keras's file in Keras's cache folder) or a path to a "
                              "weights file (.weights.h5 or Keras's legacy .h5, include_top=False)")
    trainer.add_argument("--validation-split", type=float, default=0.2,
                         help="fraction of every class held out for validation (default 0.2)")
    trainer.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    trainer.add_argument("--seed", type=int, default=1337, help="random seed of the split and training (default 1337)")
    trainer.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras verbosity (default 1)")
    trainer.add_argument("--plot", action="append", metavar="PATH",
                         help="write a PNG: the confusion matrix if the name contains 'confusion', else the loss and "
                              "accuracy curves (may be given twice)")
    predictor = commands.add_parser("predict", help="classify images with a saved model",
                                    description="Print the top classes and probabilities of each image.")
    predictor.add_argument("model", metavar="MODEL")
    predictor.add_argument("images", metavar="IMAGE_OR_DIR", nargs="+")
    predictor.add_argument("--top-k", type=int, default=3, help="classes shown per image (default 3)")
    predictor.add_argument("--json", action="store_true", help="print JSON instead of text")
    predictor.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    evaluator = commands.add_parser("evaluate", help="measure a saved model on a labelled folder",
                                    description="Accuracy, per-class precision/recall/F1 and the confusion matrix "
                                                "of MODEL on DIR (one subfolder of images per class).")
    evaluator.add_argument("model", metavar="MODEL")
    evaluator.add_argument("directory", metavar="DIR")
    evaluator.add_argument("--plot", metavar="PATH", help="write the confusion matrix to this PNG file")
    evaluator.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    args = parser.parse_args(argv)
    chosen = {"train": trainer, "predict": predictor, "evaluate": evaluator}[args.command]
    for name in ("epochs", "batch_size", "image_size", "top_k", "patience"):
        if getattr(args, name, 1) <= 0:
            chosen.error(f"--{name.replace('_', '-')} must be positive")
    if args.command == "train" and not 0 < args.validation_split < 1:
        chosen.error(f"--validation-split must be in (0, 1). Received: {args.validation_split}")
    try:
        return {"train": train, "predict": predict, "evaluate": evaluate}[args.command](args, chosen)
    except CommandError as error:
        print(f"{chosen.prog}: error: {error}", file=sys.stderr)
        return 1
