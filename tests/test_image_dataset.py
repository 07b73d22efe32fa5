"""image_dataset_from_directory against Keras 3's: listing, labels, order, split, messages and
pixels; the resize (compiled for bilinear and nearest, numpy for the rest) against tf.image.resize;
bad inputs and files."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from fastcnn import _image_resize, utils

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

CLASSES = {"cats": 5, "dogs": 4, "birds": 3}


def _write(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path)


@pytest.fixture
def folder(tmp_path):
    """Three classes of PNGs of varied sizes and modes (RGB, L, RGBA, palette, 16-bit grey), a
    nested subfolder, and files that must be ignored."""
    rng = np.random.default_rng(7)
    root = tmp_path / "images"
    modes = ["RGB", "L", "RGBA", "P", "RGB"]
    for class_index, (name, count) in enumerate(CLASSES.items()):
        for i in range(count):
            height, width = rng.integers(5, 23, size=2)
            channels = 4 if modes[i % 5] == "RGBA" else 3
            array = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
            mode = modes[i % 5]
            sub = "nested" if i == count - 1 else ""
            _write(root / name / sub / f"img_{i}.png", array, None if mode in ("RGB", "RGBA") else mode)
    _write(root / "cats" / "deep16.PNG", rng.integers(0, 65536, (9, 11), dtype=np.uint16))
    (root / "dogs" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    _write(root / ".hidden" / "x.png", np.zeros((4, 4, 3), np.uint8))
    return root


def _keras_arrays(dataset):
    xs, ys = [], []
    for element in dataset:
        if isinstance(element, tuple):
            xs.append(element[0].numpy())
            ys.append(element[1].numpy())
        else:
            xs.append(element.numpy())
    return np.concatenate(xs), (np.concatenate(ys) if ys else None)


def _ours_arrays(dataset):
    xs, ys = [], []
    for element in dataset:
        if isinstance(element, tuple):
            xs.append(element[0])
            ys.append(element[1])
        else:
            xs.append(element)
    return np.concatenate(xs), (np.concatenate(ys) if ys else None)


@pytest.mark.parametrize("color_mode, tolerance", [("rgb", 1e-3), ("rgba", 1e-3), ("grayscale", 1.0 + 1e-3)])
@pytest.mark.parametrize("label_mode", ["int", "categorical", None])
def test_matches_keras_unshuffled(tf, folder, color_mode, tolerance, label_mode):
    kwargs = dict(image_size=(8, 13), batch_size=4, shuffle=False, color_mode=color_mode, label_mode=label_mode)
    ours = utils.image_dataset_from_directory(str(folder), verbose=False, **kwargs)
    theirs = tf.keras.utils.image_dataset_from_directory(str(folder), verbose=False, **kwargs)
    assert ours.class_names == theirs.class_names == (None if label_mode is None else ["birds", "cats", "dogs"])
    assert ours.file_paths == list(theirs.file_paths)
    assert len(ours) == len(theirs) == 4
    x_ours, y_ours = _ours_arrays(ours)
    x_theirs, y_theirs = _keras_arrays(theirs)
    assert x_ours.dtype == np.float32 and x_ours.shape == x_theirs.shape
    # Greyscale: Pillow's and libpng's RGB->grey weights round differently, by at most one level.
    np.testing.assert_allclose(x_ours, x_theirs, atol=tolerance, rtol=0)
    if label_mode is None:
        assert y_ours is None and y_theirs is None
    else:
        assert y_ours.dtype == y_theirs.dtype and y_ours.shape == y_theirs.shape
        np.testing.assert_array_equal(y_ours, y_theirs)
    x_all = ours.as_numpy()[0] if label_mode else ours.as_numpy()
    np.testing.assert_array_equal(x_all, x_ours)


def test_binary_labels_match_keras(tf, folder):
    kwargs = dict(image_size=(6, 6), batch_size=3, shuffle=False, label_mode="binary", class_names=["dogs", "cats"])
    ours = utils.image_dataset_from_directory(str(folder), verbose=False, **kwargs)
    theirs = tf.keras.utils.image_dataset_from_directory(str(folder), verbose=False, **kwargs)
    assert ours.class_names == ["dogs", "cats"]
    _, y_ours = _ours_arrays(ours)
    _, y_theirs = _keras_arrays(theirs)
    assert y_ours.dtype == np.float32 and y_ours.shape == (10, 1)
    np.testing.assert_array_equal(y_ours, y_theirs)


@pytest.mark.parametrize("subset", ["training", "validation", "both"])
def test_split_and_file_order_match_keras_with_seed(tf, folder, subset, capsys):
    kwargs = dict(image_size=(5, 5), validation_split=0.3, subset=subset, seed=123)
    ours = utils.image_dataset_from_directory(str(folder), **kwargs)
    printed_ours = capsys.readouterr().out
    theirs = tf.keras.utils.image_dataset_from_directory(str(folder), **kwargs)
    printed_theirs = capsys.readouterr().out
    assert printed_ours == printed_theirs
    assert "Found 13 files belonging to 3 classes.\n" in printed_ours
    if subset == "both":
        assert [d.file_paths for d in ours] == [list(d.file_paths) for d in theirs]
        assert [len(d.file_paths) for d in ours] == [10, 3]
        assert "Using 10 files for training.\nUsing 3 files for validation.\n" in printed_ours
    else:
        assert ours.file_paths == list(theirs.file_paths)
    # The labels follow the shuffled paths: each file's label is its class folder.
    for dataset in ours if subset == "both" else [ours]:
        _, labels = dataset.as_numpy()
        expected = [dataset.class_names.index(pathlib.Path(p).relative_to(folder).parts[0]) for p in dataset.file_paths]
        np.testing.assert_array_equal(labels, expected)


def test_shuffled_iteration_reshuffles_each_epoch_and_follows_the_seed(folder):
    def epoch_labels_and_sums(dataset):
        return [tuple(float(x.sum()) for x in batch[0]) for batch in dataset]

    first = utils.image_dataset_from_directory(str(folder), image_size=(4, 4), batch_size=5, seed=3, verbose=False)
    again = utils.image_dataset_from_directory(str(folder), image_size=(4, 4), batch_size=5, seed=3, verbose=False)
    epoch1, epoch2 = epoch_labels_and_sums(first), epoch_labels_and_sums(first)
    assert epoch1 != epoch2                                      # a new order each epoch
    assert sorted(sum(epoch1, ())) == sorted(sum(epoch2, ()))   # the same images
    assert epoch_labels_and_sums(again) == epoch1               # the same seed, the same orders
    images, labels = first.as_numpy()
    batches = list(first)
    seen = {float(x.sum()): int(y) for batch in batches for x, y in zip(*batch)}
    assert seen == {float(x.sum()): int(y) for x, y in zip(images, labels)}  # images keep their labels


def test_unbatched_and_explicit_and_no_labels(tf, folder, capsys):
    files = 13
    ds = utils.image_dataset_from_directory(str(folder), batch_size=None, image_size=(3, 4), shuffle=False,
                                            verbose=False)
    assert len(ds) == files
    image, label = next(iter(ds))
    assert image.shape == (3, 4, 3) and label.shape == ()
    # Explicit or no labels: every allowed file under the folder, the hidden folder's included (Keras).
    labels = [i % 2 for i in range(files + 1)]
    ours = utils.image_dataset_from_directory(str(folder), labels=labels, image_size=(3, 3), shuffle=False)
    theirs = tf.keras.utils.image_dataset_from_directory(str(folder), labels=labels, image_size=(3, 3),
                                                         shuffle=False)
    out = capsys.readouterr().out
    assert out.count("Found 14 files belonging to 2 classes.") == 2
    assert ours.class_names == theirs.class_names == ["0", "1"]
    assert ours.file_paths == list(theirs.file_paths)
    np.testing.assert_array_equal(_ours_arrays(ours)[1], _keras_arrays(theirs)[1])
    bare = utils.image_dataset_from_directory(str(folder), labels=None, image_size=(3, 3))
    assert capsys.readouterr().out == "Found 14 files.\n"
    assert bare.class_names is None and next(iter(bare)).shape == (14, 3, 3, 3)


@pytest.mark.parametrize("options", [
    dict(crop_to_aspect_ratio=True), dict(pad_to_aspect_ratio=True), dict(interpolation="nearest"),
    dict(interpolation="bicubic"), dict(interpolation="area"), dict(interpolation="lanczos3"),
    dict(interpolation="gaussian"), dict(interpolation="mitchellcubic"), dict(interpolation="lanczos5"),
])
def test_resize_options_match_keras(tf, folder, options):
    kwargs = dict(image_size=(9, 7), batch_size=16, shuffle=False, verbose=False, **options)
    x_ours, _ = _ours_arrays(utils.image_dataset_from_directory(str(folder), **kwargs))
    x_theirs, _ = _keras_arrays(tf.keras.utils.image_dataset_from_directory(str(folder), **kwargs))
    np.testing.assert_allclose(x_ours, x_theirs, atol=2e-3, rtol=0)


@pytest.mark.parametrize("image_size", [(3, 17), (17, 3), (12, 12), (20, 31)])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "bicubic", "area"])
def test_padding_to_the_aspect_ratio_matches_keras_on_the_same_files(tf, folder, image_size, interpolation):
    # Keras runs tf.image.resize_with_pad(image, height, width, method=interpolation) on each file.
    kwargs = dict(image_size=image_size, batch_size=16, shuffle=False, verbose=False, pad_to_aspect_ratio=True,
                  interpolation=interpolation)
    x_ours, _ = _ours_arrays(utils.image_dataset_from_directory(str(folder), **kwargs))
    x_theirs, _ = _keras_arrays(tf.keras.utils.image_dataset_from_directory(str(folder), **kwargs))
    assert x_ours.shape == x_theirs.shape
    np.testing.assert_allclose(x_ours, x_theirs, atol=2e-3, rtol=0)


SIZES = [((7, 9), (4, 5)), ((7, 9), (13, 20)), ((5, 5), (5, 5)), ((31, 17), (8, 8)), ((3, 40), (6, 9)),
         ((1, 1), (3, 4)), ((10, 3), (3, 10)), ((64, 48), (17, 23))]


@pytest.mark.parametrize("interpolation", _image_resize.INTERPOLATIONS)
def test_resize_matches_tf_image_resize(tf, interpolation):
    rng = np.random.default_rng(5)
    for source, target in SIZES:
        image = rng.integers(0, 256, source + (3,)).astype(np.float32)
        expected = tf.image.resize(image, target, method=interpolation).numpy()
        actual = _image_resize.resize(image, target, interpolation)
        assert actual.shape == expected.shape and actual.dtype == np.float32
        if interpolation in ("bilinear", "nearest"):  # the compiled kernel: TensorFlow's arithmetic
            np.testing.assert_array_equal(actual, expected, err_msg=f"{source} -> {target}")
        else:  # float32 rounding of sums of up to 10 weighted terms of magnitude 255
            np.testing.assert_allclose(actual, expected, atol=1e-3, rtol=0, err_msg=f"{source} -> {target}")


def test_crop_and_pad_match_tf(tf):
    rng = np.random.default_rng(6)
    for source, target in SIZES:
        image = rng.integers(0, 256, source + (2,)).astype(np.float32)
        if min(target[0] * source[1] / source[0], target[1] * source[0] / source[1]) >= 1:  # TF needs >= 1 pixel
            np.testing.assert_allclose(_image_resize.resize_with_pad(image, target),
                                       tf.image.resize_with_pad(image, *target).numpy(), atol=1e-3, rtol=0)
        expected = tf.keras.preprocessing.image.smart_resize(image, target)
        np.testing.assert_allclose(_image_resize.resize_with_crop(image, target), np.asarray(expected),
                                   atol=1e-3, rtol=0)


def test_other_formats_decode_like_tensorflow(tf, tmp_path):
    rng = np.random.default_rng(8)
    array = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    for extension in ("bmp", "gif", "jpg"):
        _write(tmp_path / "a" / f"image.{extension}", array)
    ours = utils.image_dataset_from_directory(str(tmp_path), image_size=(10, 12), shuffle=False, verbose=False)
    theirs = tf.keras.utils.image_dataset_from_directory(str(tmp_path), image_size=(10, 12), shuffle=False,
                                                         verbose=False)
    x_ours, x_theirs = ours.as_numpy()[0], _keras_arrays(theirs)[0]
    assert ours.file_paths == list(theirs.file_paths)
    np.testing.assert_array_equal(x_ours[:2], x_theirs[:2])        # bmp, gif: lossless, same pixels
    np.testing.assert_array_equal(x_ours[2], x_theirs[2])           # jpg: TensorFlow's decoder settings


def test_corrupt_file_is_skipped_with_a_warning_naming_it(folder):
    bad = folder / "dogs" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not really a jpeg")
    ds = utils.image_dataset_from_directory(str(folder), image_size=(4, 4), shuffle=False, batch_size=20,
                                            verbose=False)
    with pytest.warns(UserWarning, match=r"Skipping an image that cannot be decoded: Could not decode the image "
                                         r"file '.*broken\.jpg'"):
        images, labels = next(iter(ds))
    assert len(images) == len(labels) == len(ds.file_paths) - 1
    expected = [ds.class_names.index(os.path.relpath(path, folder).split(os.sep)[0]) for path in ds.file_paths
                if not path.endswith("broken.jpg")]
    np.testing.assert_array_equal(labels, expected)
    for _ in ds:  # warned once per dataset: a second epoch is quiet (warnings are errors in this suite)
        pass


def test_a_loading_failure_other_than_decoding_names_the_file_and_ends_the_pool(folder, monkeypatch):
    import threading

    from fastcnn import _image_dataset

    original = _image_dataset.load_image

    def load(path, num_channels, largest_reduction=None):
        if path.endswith("img_2.png") and "cats" in path:
            raise MemoryError("no memory for this image")
        return original(path, num_channels, largest_reduction)

    monkeypatch.setattr(_image_dataset, "load_image", load)
    before = set(threading.enumerate())
    ds = utils.image_dataset_from_directory(str(folder), image_size=(4, 4), batch_size=2, verbose=False)
    for consume in (lambda: list(ds.prefetch(2)), ds.as_numpy):
        with pytest.raises(MemoryError, match=r"^no memory for this image \(while loading the image file "
                                              r"'.*cats.img_2\.png'\)$"):
            consume()
        assert set(threading.enumerate()) <= before  # the decoding pool (and prefetcher) have ended


class _Terminal:
    """A stand-in for a terminal's stderr: collects what is written, says it is a TTY."""

    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_a_long_scan_shows_its_progress_on_a_terminal_only(folder, monkeypatch, capsys):
    from fastcnn import _image_dataset

    monkeypatch.setattr(_image_dataset, "PROGRESS_AFTER_FILES", 4)  # "long": more than 4 files
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    utils.image_dataset_from_directory(str(folder), image_size=(4, 4))
    assert capsys.readouterr().out == "Found 13 files belonging to 3 classes.\n"  # Keras's line, unchanged
    lines = terminal.text.split("\r")
    assert any(f"Indexing {folder}: " in line and "files found so far" in line for line in lines), terminal.text
    assert terminal.text.endswith("\r") and not lines[-2].strip()  # the progress line erased at the end

    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    utils.image_dataset_from_directory(str(folder), image_size=(4, 4), verbose=False)
    assert quiet.text == "" and capsys.readouterr().out == ""

    pipe = _Terminal()
    pipe.isatty = lambda: False  # a log file or a pipe: Keras's output alone
    monkeypatch.setattr(sys, "stderr", pipe)
    utils.image_dataset_from_directory(str(folder), image_size=(4, 4))
    assert pipe.text == "" and capsys.readouterr().out == "Found 13 files belonging to 3 classes.\n"


def test_a_short_scan_shows_no_progress(folder, monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    utils.image_dataset_from_directory(str(folder), image_size=(4, 4))
    assert terminal.text == ""
    assert capsys.readouterr().out == "Found 13 files belonging to 3 classes.\n"


@pytest.mark.parametrize("kwargs, message", [
    (dict(label_mode="sparse"), "`label_mode` argument must be one of"),
    (dict(color_mode="hsv"), '`color_mode` must be one of {"rgb", "rgba", "grayscale"}. Received: color_mode=hsv'),
    (dict(labels="folders"), "`labels` argument should be a list/tuple of integer labels"),
    (dict(labels=[0, 1], class_names=["a"]), "You can only pass `class_names` if `labels=\"inferred\"`"),
    (dict(labels=[0, 1]), "Expected the lengths of `labels` to match the number of files"),
    (dict(validation_split=0.2, subset="training"), "you must provide a `seed` argument"),
    (dict(validation_split=0.2), "If `subset` is set, `validation_split` must be set, and inversely."),
    (dict(validation_split=1.5, subset="training", seed=1), "`validation_split` must be between 0 and 1"),
    (dict(validation_split=0.2, subset="train", seed=1), '`subset` must be either "training", "validation" or "both"'),
    (dict(image_size=(3, 4, 5)), "Invalid `image_size` value. Expected a tuple of 2 integers."),
    (dict(interpolation="cubic"), "Argument `interpolation` should be one of"),
    (dict(label_mode="binary"), 'When passing `label_mode="binary"`, there must be exactly 2 class_names.'),
    (dict(class_names=["cats", "cows"]), "The `class_names` passed did not match the names of the subdirectories"),
    (dict(crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), "Only one of `pad_to_aspect_ratio`"),
    (dict(batch_size=0), "`batch_size` must be a positive integer or None. Received: batch_size=0"),
    (dict(data_format="channels_first"), "channels-last only"),
])
def test_bad_arguments_raise_keras_errors(folder, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("{", r"\{").replace("}", r"\}").replace(".", r"\.")):
        utils.image_dataset_from_directory(str(folder), verbose=False, **kwargs)


def test_missing_or_empty_directory(tmp_path):
    with pytest.raises(ValueError, match="must be an existing directory"):
        utils.image_dataset_from_directory(str(tmp_path / "nowhere"))
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match=r"No images found in directory .* Allowed formats: \('\.bmp'"):
        utils.image_dataset_from_directory(str(tmp_path), verbose=False)


def test_missing_pillow_says_how_to_install(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install fastcnn\[images\]"):
        utils.image_dataset_from_directory(str(folder))


def test_import_fastcnn_loads_neither_pillow_nor_matplotlib(tmp_path):
    code = "import sys, fastcnn, fastcnn.utils; print(sorted(m for m in ('PIL', 'matplotlib') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ""}, check=True)
    assert result.stdout.strip() == "[]"


def _smooth_noisy_image(rng, height, width, channels=3):
    """Gradients with noise: JPEG's usual content, with enough detail that DCT rounding shows."""
    rows, columns = np.mgrid[0:height, 0:width]
    planes = [columns * 255.0 / width, rows * 255.0 / height, (rows + columns) % 256.0][:channels]
    image = np.stack(planes, -1) + rng.normal(0, 20, (height, width, channels))
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("subsampling", [0, 1, 2])  # 4:4:4, 4:2:2 and 4:2:0
def test_simplejpeg_decodes_jpegs_as_tensorflow_does(tf, tmp_path, subsampling):
    pytest.importorskip("simplejpeg")
    from fastcnn import _image_dataset

    rng = np.random.default_rng(3)
    for index, (height, width) in enumerate([(33, 47), (64, 64), (17, 120)]):
        path = str(tmp_path / f"{index}.jpg")
        Image.fromarray(_smooth_noisy_image(rng, height, width)).save(path, quality=85, subsampling=subsampling)
        data = tf.io.read_file(path)
        for channels in (1, 3):
            expected = tf.io.decode_jpeg(data, channels=channels).numpy()
            fast = _image_dataset._decode_jpeg_fast(path, channels)
            assert fast is not None and fast.shape == (height, width, channels)
            np.testing.assert_array_equal(fast, expected, err_msg=f"{height}x{width}, {channels} channels")
            np.testing.assert_array_equal(_image_dataset.load_image(path, channels), expected)
        # TensorFlow decodes no 4-channel JPEG; fastcnn adds an opaque alpha to the RGB pixels.
        rgba = _image_dataset.load_image(path, 4)
        np.testing.assert_array_equal(rgba[..., :3], tf.io.decode_jpeg(data, channels=3).numpy())
        assert (rgba[..., 3] == 255).all()
    grey = str(tmp_path / "grey.jpg")
    Image.fromarray(_smooth_noisy_image(rng, 21, 30)[..., 0]).save(grey, quality=90)
    for channels in (1, 3):
        np.testing.assert_array_equal(_image_dataset.load_image(grey, channels),
                                      tf.io.decode_jpeg(tf.io.read_file(grey), channels=channels).numpy())
    cmyk = str(tmp_path / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "CMYK").save(cmyk)
    cmyk_expected = tf.io.decode_jpeg(tf.io.read_file(cmyk), channels=3).numpy()
    assert np.abs(_image_dataset.load_image(cmyk, 3).astype(int) - cmyk_expected).max() <= 8  # CMYK to RGB: near


@pytest.mark.parametrize("decoder", ["simplejpeg", "pillow"])
def test_jpeg_dct_scaling_decodes_smaller_and_close_to_the_full_decode(tmp_path, monkeypatch, decoder):
    from fastcnn import _image_dataset

    if decoder == "simplejpeg":
        pytest.importorskip("simplejpeg")
    else:
        monkeypatch.setattr(_image_dataset, "_SIMPLEJPEG", None)  # as if simplejpeg were not installed
    rng = np.random.default_rng(5)
    path = str(tmp_path / "big.jpg")
    Image.fromarray(np.asarray(Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize(
        (203, 150), Image.Resampling.BILINEAR))).save(path, quality=95)
    # The largest of 8, 4, 2 within the allowed reduction; libjpeg's sizes are ceil(size / factor).
    for allowed, expected_shape in [(1.9, (150, 203, 3)), (2.0, (75, 102, 3)), (3.99, (75, 102, 3)),
                                    (4.5, (38, 51, 3)), (100, (19, 26, 3))]:
        image = _image_dataset.load_image(path, 3, lambda height, width, allowed=allowed: allowed)
        assert image.shape == expected_shape, (allowed, image.shape)
    assert _image_dataset.load_image(path, 3, lambda height, width: 4.0).dtype == np.uint8
    # Through image_dataset_from_directory: the target's shape, pixels near the full decode's.
    folder = tmp_path / "data"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        Image.open(path).save(folder / name / "x.jpg", quality=95)
    for options in ({}, {"crop_to_aspect_ratio": True}, {"pad_to_aspect_ratio": True}):
        full, reduced = (utils.image_dataset_from_directory(str(folder), image_size=(40, 60), shuffle=False,
                                                            verbose=False, jpeg_dct_scaling=scaling, **options)
                         for scaling in (False, True))
        x_full, x_reduced = full.as_numpy()[0], reduced.as_numpy()[0]
        assert x_reduced.shape == x_full.shape == (2, 40, 60, 3)
        assert np.abs(x_reduced - x_full).mean() < 6, options  # smooth content: a few levels of 255
        assert not np.array_equal(x_reduced, x_full)  # decoded smaller (pixels not Keras's)
    with pytest.raises(ValueError, match="jpeg_dct_scaling"):
        utils.image_dataset_from_directory(str(folder), jpeg_dct_scaling="yes", verbose=False)
    # A PNG is decoded whole whatever the option.
    Image.open(path).save(folder / "a" / "y.png")
    ds = utils.image_dataset_from_directory(str(folder), image_size=(40, 60), shuffle=False, verbose=False,
                                            jpeg_dct_scaling=True)
    png_index = ds.file_paths.index(str(folder / "a" / "y.png"))
    expected = _image_resize.resize(np.asarray(Image.open(path).convert("RGB")), (40, 60))
    np.testing.assert_allclose(ds.as_numpy()[0][png_index], expected, atol=8)
