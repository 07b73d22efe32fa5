"""``image_dataset_from_directory``: Keras 3's file indexing, labels, split and messages, with a
numpy-only ``fastcnn.data.Dataset`` in place of a ``tf.data.Dataset``.

Files are listed exactly as Keras lists them (``keras/src/utils/dataset_utils.py``): class
subfolders in sorted order (or the order of `class_names`), files found by a sorted recursive walk
of each, paths shuffled with ``np.random.RandomState(seed)`` before the validation split, so the
same seed gives the same `file_paths` and the same split as Keras. Images are decoded when their
batch is requested (JPEGs by simplejpeg with TensorFlow's decoder settings, the rest and the
fallback by Pillow: ``pip install fastcnn[images]`` installs both) and resized with
``fastcnn._image_resize``, which follows ``tf.image.resize``.
"""

import itertools
import math
import numbers
import os
import sys
import time
import warnings

import numpy as np

from fastcnn import _image_resize
from fastcnn.data._dataset import Dataset, _parallel_map, autotuned_workers

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


def _pil_image():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "fastcnn.utils.image_dataset_from_directory reads images with Pillow, which is not installed. "
            "Install it with: pip install fastcnn[images]"
        ) from None
    return Image


def _simplejpeg():
    """The simplejpeg module (libjpeg-turbo) when installed, else None."""
    global _SIMPLEJPEG
    if _SIMPLEJPEG is False:
        try:
            import simplejpeg
        except ImportError:
            simplejpeg = None
        _SIMPLEJPEG = simplejpeg
    return _SIMPLEJPEG


_SIMPLEJPEG = False  # not looked up yet


# libjpeg decodes at 1/2, 1/4 or 1/8 of the size in its inverse DCT (the faster paths among its
# M/8 scales): the reductions `jpeg_dct_scaling` chooses from, largest first.
_DCT_REDUCTIONS = (8, 4, 2)


def _dct_reduction(height, width, largest_reduction):
    """The largest of libjpeg's fast reductions within `largest_reduction(height, width)`, or 1."""
    allowed = largest_reduction(height, width)
    return next((factor for factor in _DCT_REDUCTIONS if factor <= allowed), 1)


def _decode_jpeg_fast(path, num_channels, largest_reduction=None):
    """A JPEG decoded by simplejpeg (libjpeg-turbo) with TensorFlow's decoder settings (the fast
    integer DCT, fancy upsampling, libjpeg's own greyscale conversion: tf.io.decode_jpeg's pixels
    bit for bit), or None where simplejpeg is not installed or declines the file (CMYK, unusual
    subsampling, a recoverable error), so that Pillow decodes it. `largest_reduction`, a function
    of the image's (height, width), allows decoding at 1/2, 1/4 or 1/8 of the size."""
    simplejpeg = _simplejpeg()
    if simplejpeg is None or not path.lower().endswith((".jpg", ".jpeg")):
        return None
    try:
        with open(path, "rb") as file:
            data = file.read()
        if not simplejpeg.is_jpeg(data):
            return None
        minimum = {}
        if largest_reduction is not None:
            height, width = simplejpeg.decode_jpeg_header(data)[:2]
            factor = _dct_reduction(height, width, largest_reduction)
            if factor > 1:
                # libjpeg's output at scale M/8 is ceil(size * M / 8): asking for at least the
                # 1/factor size picks that scale.
                minimum = {"min_height": -(-height // factor), "min_width": -(-width // factor)}
        array = simplejpeg.decode_jpeg(data, colorspace="GRAY" if num_channels == 1 else "RGB", fastdct=True,
                                       **minimum)
    except (ValueError, OSError):
        return None
    if array.ndim == 2:
        array = array[:, :, None]
    if num_channels == 4:
        array = np.concatenate([array, np.full(array.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return array


def load_image(path, num_channels, largest_reduction=None):
    """Decodes one file to a (height, width, num_channels) uint8 array, converting colours as
    TensorFlow's decoders do: alpha dropped for RGB, added opaque for RGBA, 16-bit samples reduced
    to their high byte, an animated GIF's first frame. JPEGs go through simplejpeg where it is
    installed (`pip install fastcnn[images]` installs it), the rest through Pillow.

    `largest_reduction`: None, or a function of the image's (height, width) giving the largest
    factor by which a JPEG may be decoded smaller (libjpeg's DCT scaling, 1/2, 1/4 or 1/8)."""
    fast = _decode_jpeg_fast(path, num_channels, largest_reduction)
    if fast is not None:
        return fast
    Image = _pil_image()
    try:
        with Image.open(path) as image:
            image.seek(0)
            if largest_reduction is not None and image.format == "JPEG":
                factor = _dct_reduction(image.height, image.width, largest_reduction)
                if factor > 1:
                    # draft() takes the scale min(width // requested width, height // requested
                    # height), rounded down to 8, 4 or 2.
                    image.draft(image.mode, (max(1, image.width // factor), max(1, image.height // factor)))
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit greyscale PNG: libpng (inside TensorFlow) keeps each sample's high byte.
                image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8), mode="L")
            mode = {1: "L", 3: "RGB", 4: "RGBA"}[num_channels]
            if image.mode != mode:
                image = image.convert(mode)
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as error:
        # Pillow raises UnidentifiedImageError (an OSError) for unknown content, OSError for
        # truncated files and ValueError/SyntaxError for some malformed headers.
        raise ValueError(f"Could not decode the image file {path!r} ({type(error).__name__}: {error}). "
                         f"It is listed because its name ends in one of {ALLOWLIST_FORMATS}; remove or "
                         "replace it.") from error
    if array.ndim == 2:
        array = array[:, :, None]
    return array


class ImageDataset(Dataset):
    """Batches of images (and labels) read from files, as `image_dataset_from_directory` returns:
    a `fastcnn.data.Dataset`, so `map`, `prefetch`, `cache`, `take`, ... apply as on tf.data.

    - iterate it (``for images, labels in dataset``) or pass it to ``fit``/``evaluate``/``predict``:
      each element is a float32 batch of shape (batch, height, width, channels) with pixel values
      in [0, 255], paired with its labels unless ``label_mode=None`` (then the images alone);
    - ``len(dataset)``: the number of batches (of images when ``batch_size=None``);
    - ``class_names``, ``file_paths``: as Keras sets them;
    - ``shuffle=True``: every iteration (every epoch) visits the files in a new random order drawn
      from `seed`, as a ``tf.data`` shuffle with ``reshuffle_each_iteration=True`` does (a full
      permutation rather than Keras's buffer of ``8 * batch_size``);
    - ``as_numpy()``: all images and labels as two numpy arrays, in `file_paths` order.

    Files are decoded and resized when their batch is requested, on a pool of threads (one per
    CPU) that works up to two batches ahead of the consumer, so decoding overlaps training. A file
    that cannot be decoded is left out of its batch with a warning naming it (once per dataset);
    any other failure while loading a file (out of memory, an error inside a decoder library) stops the
    iteration: its exception, naming the file, reaches the consumer after the pool's threads end.
    """

    def __init__(self, file_paths, labels, label_mode, class_names, image_size, num_channels, interpolation,
                 crop_to_aspect_ratio, pad_to_aspect_ratio, batch_size, shuffle, seed, jpeg_dct_scaling=False):
        self.file_paths = list(file_paths)
        self.class_names = class_names
        self.batch_size = batch_size
        self.image_size = tuple(image_size)
        self.label_mode = label_mode
        self._labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self._num_classes = len(class_names) if class_names else 0
        self._num_channels = num_channels
        self._interpolation = interpolation
        self._crop = crop_to_aspect_ratio
        self._pad = pad_to_aspect_ratio
        self._jpeg_dct_scaling = jpeg_dct_scaling
        self._shuffle = shuffle
        # One generator for the dataset's life: each iteration draws the next permutation from it.
        self._rng = np.random.default_rng(seed) if shuffle else None
        self._warned = set()  # files already reported as undecodable

    def _cardinality(self):
        if self.batch_size is None:
            return len(self.file_paths)
        return math.ceil(len(self.file_paths) / self.batch_size)

    def _varying_batch(self):
        return self.batch_size is not None

    def __repr__(self):
        return (f"<ImageDataset: {len(self.file_paths)} files, {len(self.class_names or [])} classes, "
                f"batch_size={self.batch_size}, image_size={self.image_size}>")

    def _load(self, path):
        image = load_image(path, self._num_channels, self._largest_reduction if self._jpeg_dct_scaling else None)
        # uint8: the compiled resizes read it as it is.
        if self._crop:
            return _image_resize.resize_with_crop(image, self.image_size, self._interpolation)
        if self._pad:
            return _image_resize.resize_with_pad(image, self.image_size, self._interpolation)
        return _image_resize.resize(image, self.image_size, self._interpolation)

    def _largest_reduction(self, height, width):
        """How much smaller an image of (height, width) may be decoded while the part that is
        resized keeps at least the target's pixels on both axes. A centred crop with the target's
        aspect ratio shrinks by min(height / target_height, width / target_width), as the whole
        image does; padding fits the image inside the target, by the larger of the two."""
        target_height, target_width = self.image_size
        ratios = (height / target_height, width / target_width)
        return max(ratios) if self._pad else min(ratios)

    def _load_or_error(self, index):
        """(index, image) or (index, the ValueError that names the file)."""
        try:
            return index, self._load(self.file_paths[index])
        except ValueError as error:
            return index, error

    def _loading_context(self, position, index):
        """Names the file of a failure other than an undecodable file (which is skipped)."""
        return f"while loading the image file {self.file_paths[index]!r}"

    def _encode_labels(self, labels):
        if self.label_mode == "int":
            return labels.astype(np.int32)
        if self.label_mode == "binary":
            return labels.astype(np.float32)[..., None]
        one_hot = np.zeros(labels.shape + (self._num_classes,), dtype=np.float32)
        np.put_along_axis(one_hot, labels[..., None], 1.0, axis=-1)
        return one_hot

    def _element(self, loaded):
        """A batch from (index, image or error) pairs: the undecodable files left out, with a warning."""
        indices, images = [], []
        for index, image in loaded:
            if isinstance(image, Exception):
                if index not in self._warned:
                    self._warned.add(index)
                    warnings.warn(f"Skipping an image that cannot be decoded: {image}", stacklevel=4)
                continue
            indices.append(index)
            images.append(image)
        stacked = np.stack(images) if images else np.zeros((0,) + self.image_size + (self._num_channels,),
                                                           dtype=np.float32)
        if self.label_mode is None:
            return stacked
        return stacked, self._encode_labels(self._labels[np.asarray(indices, dtype=np.int64)])

    def _iterate(self):
        count = len(self.file_paths)
        order = self._rng.permutation(count) if self._shuffle else np.arange(count)
        batch = self.batch_size or 1
        workers = autotuned_workers()
        loaded = _parallel_map(self._load_or_error, iter(order.tolist()), workers, window=max(2 * workers, 2 * batch),
                               context=self._loading_context)
        while True:
            chunk = list(itertools.islice(loaded, batch))
            if not chunk:
                return
            element = self._element(chunk)
            images = element if self.label_mode is None else element[0]
            if not len(images):
                continue  # every file of this batch was undecodable
            if self.batch_size is None:
                yield images[0] if self.label_mode is None else (images[0], element[1][0])
            else:
                yield element

    def as_numpy(self):
        """All images as one float32 array (files, height, width, channels) in `file_paths` order,
        with their labels encoded per `label_mode` (or the images alone if ``label_mode=None``).
        Decodes every file at once (undecodable ones left out, with a warning): for data that fits
        in memory."""
        workers = autotuned_workers()
        return self._element(list(_parallel_map(self._load_or_error, iter(range(len(self.file_paths))), workers,
                                                context=self._loading_context)))


def _check_validation_split_arg(validation_split, subset, shuffle, seed):
    """Keras's check_validation_split_arg, same messages."""
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1, received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f'`subset` must be either "training", "validation" or "both", received: {subset}')
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide a `seed` argument, "
                         "to make sure that there is no overlap between the training and validation subset.")


# A scan that has found this many files, or run this long, shows its progress (on a terminal).
PROGRESS_AFTER_FILES = 10_000
PROGRESS_AFTER_SECONDS = 1.0
_PROGRESS_INTERVAL_SECONDS = 0.2


class _IndexingProgress:
    """A one-line count of the files found so far, written to stderr over itself while a long
    scan runs and erased when it ends: only where `verbose` is set and stderr is a terminal, so
    that logs, pipes and notebooks get Keras's output alone ("Found N files ...")."""

    def __init__(self, directory, verbose):
        stream = sys.stderr
        isatty = getattr(stream, "isatty", None)
        self._stream = stream if verbose and stream is not None and isatty is not None and isatty() else None
        self._directory = directory
        self._start = time.monotonic()
        self._shown_at = None
        self._width = 0
        self.count = 0

    def add(self, found):
        self.count += found
        if self._stream is None:
            return
        now = time.monotonic()
        if self._shown_at is None:
            if self.count < PROGRESS_AFTER_FILES and now - self._start < PROGRESS_AFTER_SECONDS:
                return
        elif now - self._shown_at < _PROGRESS_INTERVAL_SECONDS:
            return
        self._shown_at = now
        line = f"Indexing {self._directory}: {self.count} files found so far"
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = max(self._width, len(line))

    def close(self):
        if self._shown_at is not None:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()


def _iter_valid_files(directory, follow_links, formats, progress):
    # The whole walk is read before sorting it; `progress` counts the files as folders are read.
    entries = []
    for root, _, files in os.walk(directory, followlinks=follow_links):
        entries.append((root, [name for name in files if name.lower().endswith(formats)]))
        progress.add(len(entries[-1][1]))
    for root, files in sorted(entries, key=lambda entry: entry[0]):
        for name in sorted(files):
            yield root, name


def _index_subdirectory(directory, class_index, follow_links, formats, progress):
    """Relative paths (``subdir/…/file``) of the allowed files under `directory`, sorted walk order."""
    dirname = os.path.basename(directory)
    filenames = []
    for root, name in _iter_valid_files(directory, follow_links, formats, progress):
        filenames.append(os.path.join(dirname, os.path.relpath(os.path.join(root, name), directory)))
    return filenames, [class_index] * len(filenames)


def index_directory(directory, labels, formats, class_names=None, shuffle=True, seed=None, follow_links=False,
                    verbose=True):
    """Keras's ``dataset_utils.index_directory``: (file_paths, labels, class_names)."""
    if not os.path.isdir(directory):
        raise ValueError(f"`directory` must be an existing directory. Received: directory={directory!r}")
    if labels == "inferred":
        subdirs = [name for name in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, name)) and not name.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError("The `class_names` passed did not match the names of the subdirectories of the "
                                 f"target directory. Expected: {subdirs} (or a subset of it), but received: "
                                 f"class_names={class_names}")
            subdirs = list(class_names)  # the given order defines the labels
    else:
        # Explicit labels or none: every file under `directory`, its folder structure ignored.
        subdirs = [""]
        if class_names is not None:
            if labels is None:
                raise ValueError("When `labels=None` (no labels), argument `class_names` cannot be specified.")
            raise ValueError("When argument `labels` is specified, argument `class_names` cannot be specified "
                             "(the `class_names` will be the sorted list of labels).")
    class_names = subdirs
    filenames = []
    label_list = []
    progress = _IndexingProgress(directory, verbose)
    try:
        for index, subdir in enumerate(subdirs):
            partial_filenames, partial_labels = _index_subdirectory(
                os.path.join(directory, subdir), index, follow_links, formats, progress)
            filenames += partial_filenames
            label_list += partial_labels
    finally:
        progress.close()

    if labels == "inferred":
        labels = np.array(label_list, dtype=np.int32)
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(filenames):
            raise ValueError("Expected the lengths of `labels` to match the number of files in the target "
                             f"directory. len(labels) is {len(labels)} while we found {len(filenames)} files in "
                             f"directory {directory}.")
        class_names = [str(label) for label in sorted(set(labels))]
        labels = np.array(labels)
    if verbose:
        if labels is None:
            print(f"Found {len(filenames)} files.")
        else:
            print(f"Found {len(filenames)} files belonging to {len(class_names)} classes.")
    file_paths = [os.path.join(directory, name) for name in filenames]
    if shuffle:
        # Two generators from the same seed apply the same permutation to paths and labels.
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(file_paths)
        if labels is not None:
            np.random.RandomState(seed).shuffle(labels)
    return file_paths, labels, class_names


def _split(samples, labels, validation_split, subset):
    """Keras's get_training_or_validation_split: the last ``int(validation_split * n)`` samples
    are the validation subset; prints how many files each subset uses."""
    if not validation_split:
        return samples, labels
    num_val_samples = int(validation_split * len(samples))
    # Keras slices samples[:-k] and samples[-k:], which for k = 0 would give no training files and
    # all files for validation; slicing at n - k gives the intended (all, none) instead.
    split_at = len(samples) - num_val_samples
    if subset == "training":
        print(f"Using {split_at} files for training.")
        return samples[:split_at], None if labels is None else labels[:split_at]
    print(f"Using {num_val_samples} files for validation.")
    return samples[split_at:], None if labels is None else labels[split_at:]


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None, color_mode="rgb",
                                 batch_size=32, image_size=(256, 256), shuffle=True, seed=None, validation_split=None,
                                 subset=None, interpolation="bilinear", follow_links=False,
                                 crop_to_aspect_ratio=False, pad_to_aspect_ratio=False, data_format=None,
                                 verbose=True, jpeg_dct_scaling=False):
    """Generates a dataset from image files in a directory, as ``keras.utils.image_dataset_from_directory``.

    With ``directory/class_a/*.png`` and ``directory/class_b/*.jpg``, ``labels='inferred'`` labels
    the images of `class_a` 0 and those of `class_b` 1. Supported formats: .bmp .gif .jpeg .jpg .png
    (an animated GIF gives its first frame). Needs Pillow: ``pip install fastcnn[images]``.

    Args (Keras's names and defaults):
        directory: the folder holding the images (in class subfolders if ``labels='inferred'``).
        labels: ``'inferred'`` (from the subfolder names), None (no labels), or a list/tuple of
            integer labels, one per file in the sorted order of their paths.
        label_mode: ``'int'`` (int32, shape (batch,)), ``'categorical'`` (one-hot float32, shape
            (batch, classes)), ``'binary'`` (float32 0/1, shape (batch, 1); exactly 2 classes) or
            None (images only).
        class_names: with ``labels='inferred'``, the subfolders to use and their label order.
        color_mode: ``'grayscale'``, ``'rgb'`` or ``'rgba'`` (1, 3 or 4 channels).
        batch_size: images per batch (32), or None for single images.
        image_size: (height, width) every image is resized to (an int means a square).
        shuffle: visit the files in random order, reshuffled every epoch; False: sorted order.
        seed: seeds the order of the files (and hence the split) and the reshuffling.
        validation_split: fraction (0, 1) of the files kept for validation (the last ones after
            shuffling); needs `subset` and, when shuffling, a `seed`.
        subset: ``'training'``, ``'validation'`` or ``'both'`` (returns the two datasets).
        interpolation: ``'bilinear'``, ``'nearest'``, ``'bicubic'``, ``'area'``, ``'lanczos3'``,
            ``'lanczos5'``, ``'gaussian'`` or ``'mitchellcubic'``, as ``tf.image.resize``.
        follow_links: whether to visit subfolders that are symbolic links.
        crop_to_aspect_ratio: resize the largest centred crop with the target's aspect ratio.
        pad_to_aspect_ratio: resize to fit inside `image_size` and pad with zeros instead.
        data_format: None or ``'channels_last'`` (fastcnn's only layout).
        verbose: print how many files and classes were found (and, where stderr is a terminal, a
            running count of the files found while a scan of over 10,000 files or 1 s goes on).
        jpeg_dct_scaling: fastcnn's own option, off by default. True decodes each JPEG at 1/2,
            1/4 or 1/8 of its size (libjpeg's DCT scaling, the largest reduction that still
            leaves at least `image_size` to resize), which makes decoding 2-4x cheaper where the
            files are at least twice the target size. The pixels are then close to, not equal
            to, Keras's (which decodes at full size and resizes); off, JPEGs decode to
            TensorFlow's pixels bit for bit.

    Returns:
        an `ImageDataset` (see its documentation), or a list of two with ``subset='both'``.
    """
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple)):
            raise ValueError(
                "`labels` argument should be a list/tuple of integer labels, of the same size as the number of "
                "image files in the target directory. If you wish to infer the labels from the subdirectory names "
                'in the target directory, pass `labels="inferred"`. If you wish to get a dataset that only '
                f"contains images (no labels), pass `labels=None`. Received: labels={labels}")
        if class_names:
            raise ValueError('You can only pass `class_names` if `labels="inferred"`. Received: '
                             f"labels={labels}, and class_names={class_names}")
        if not all(isinstance(label, numbers.Integral) and not isinstance(label, bool) and label >= 0
                   for label in labels):
            raise ValueError(f"`labels` must hold non-negative integers. Received: labels={labels}")
    if label_mode not in {"int", "categorical", "binary", None}:
        raise ValueError('`label_mode` argument must be one of "int", "categorical", "binary", or None. '
                         f"Received: label_mode={label_mode}")
    if labels is None or label_mode is None:
        labels = None
        label_mode = None
    channels_by_mode = {"rgb": 3, "rgba": 4, "grayscale": 1}
    if color_mode not in channels_by_mode:
        raise ValueError(f'`color_mode` must be one of {{"rgb", "rgba", "grayscale"}}. Received: color_mode={color_mode}')
    num_channels = channels_by_mode[color_mode]
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    elif not isinstance(image_size, (list, tuple)) or not len(image_size) == 2:
        raise ValueError(f"Invalid `image_size` value. Expected a tuple of 2 integers. Received: image_size={image_size}")
    if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in image_size):
        raise ValueError(f"`image_size` must hold 2 positive integers. Received: image_size={image_size}")
    image_size = (int(image_size[0]), int(image_size[1]))
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                                   or batch_size <= 0):
        raise ValueError(f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size!r}")
    if not isinstance(interpolation, str) or interpolation.lower() not in _image_resize.INTERPOLATIONS:
        raise ValueError(f"Argument `interpolation` should be one of {_image_resize.INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation}")
    interpolation = interpolation.lower()
    if data_format not in (None, "channels_last"):
        raise ValueError("fastcnn stores images channels-last only: `data_format` must be None or "
                         f"'channels_last'. Received: data_format={data_format!r}")
    if not isinstance(jpeg_dct_scaling, bool):
        raise ValueError(f"`jpeg_dct_scaling` must be True or False. Received: jpeg_dct_scaling={jpeg_dct_scaling!r}")
    if pad_to_aspect_ratio and crop_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be set to `True`.")
    _check_validation_split_arg(validation_split, subset, shuffle, seed)
    _pil_image()  # fail now, not at the first batch, when Pillow is missing

    if seed is None:
        seed = np.random.randint(1e6)
    image_paths, labels, class_names = index_directory(
        directory, labels, formats=ALLOWLIST_FORMATS, class_names=class_names, shuffle=shuffle, seed=seed,
        follow_links=follow_links, verbose=verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 class_names. '
                         f"Received: class_names={class_names}")
    if label_mode == "categorical" and labels is not None and len(labels) and max(labels) >= len(class_names):
        raise ValueError(f"`label_mode='categorical'` needs labels in [0, {len(class_names)}) (one per class "
                         f"name). Received a label of {max(labels)}; class_names={class_names}")

    def make(paths, subset_labels, subset_shuffle):
        return ImageDataset(paths, subset_labels, label_mode, class_names, image_size, num_channels, interpolation,
                            crop_to_aspect_ratio, pad_to_aspect_ratio, batch_size, subset_shuffle, seed,
                            jpeg_dct_scaling=jpeg_dct_scaling)

    if subset == "both":
        train_paths, train_labels = _split(image_paths, labels, validation_split, "training")
        val_paths, val_labels = _split(image_paths, labels, validation_split, "validation")
        if not train_paths:
            raise ValueError(f"No training images found in directory {directory}. Allowed formats: {ALLOWLIST_FORMATS}")
        if not val_paths:
            raise ValueError(f"No validation images found in directory {directory}. "
                             f"Allowed formats: {ALLOWLIST_FORMATS}")
        # As in Keras, the validation half is never shuffled.
        return [make(train_paths, train_labels, shuffle), make(val_paths, val_labels, False)]
    image_paths, labels = _split(image_paths, labels, validation_split, subset)
    if not image_paths:
        raise ValueError(f"No images found in directory {directory}. Allowed formats: {ALLOWLIST_FORMATS}")
    return make(image_paths, labels, shuffle)
