"""keras.utils' image helpers (load_img, img_to_array, array_to_img, save_img) and split_dataset
against Keras's own on the same files and arrays."""

import io

import numpy as np
import pytest

from fastcnn import utils
from fastcnn.data import Dataset


@pytest.fixture
def picture(tmp_path, rng):
    from PIL import Image

    path = tmp_path / "picture.png"
    Image.fromarray(rng.integers(0, 256, (30, 45, 4), dtype=np.uint8), "RGBA").save(path)
    return path


@pytest.mark.parametrize("arguments", [
    {}, {"color_mode": "grayscale"}, {"color_mode": "rgba"},
    {"target_size": (20, 16)}, {"target_size": (20, 16), "interpolation": "bilinear"},
    {"target_size": (12, 40), "interpolation": "bicubic", "keep_aspect_ratio": True},
    {"target_size": (30, 10), "interpolation": "lanczos", "keep_aspect_ratio": True},
])
def test_load_img_and_img_to_array_equal_keras(keras, picture, arguments):
    ours, theirs = utils.load_img(picture, **arguments), keras.utils.load_img(picture, **arguments)
    assert ours.mode == theirs.mode and ours.size == theirs.size
    array = utils.img_to_array(ours)
    np.testing.assert_array_equal(array, keras.utils.img_to_array(theirs))
    assert array.dtype == np.float32 and array.ndim == 3
    np.testing.assert_array_equal(utils.img_to_array(ours, data_format="channels_first"),
                                  keras.utils.img_to_array(theirs, data_format="channels_first"))
    from_bytes = utils.load_img(io.BytesIO(picture.read_bytes()), **arguments)
    np.testing.assert_array_equal(np.asarray(from_bytes), np.asarray(theirs))


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("scale", [True, False])
def test_array_to_img_and_save_img_equal_keras(keras, tmp_path, rng, channels, scale):
    array = rng.random((9, 7, channels)).astype(np.float32) * (1.0 if scale else 255.0)
    ours, theirs = utils.array_to_img(array, scale=scale), keras.utils.array_to_img(array, scale=scale)
    assert ours.mode == theirs.mode
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    utils.save_img(tmp_path / "ours.png", array, scale=scale)
    keras.utils.save_img(tmp_path / "theirs.png", array, scale=scale)
    np.testing.assert_array_equal(np.asarray(utils.load_img(tmp_path / "ours.png", color_mode="rgba")),
                                  np.asarray(utils.load_img(tmp_path / "theirs.png", color_mode="rgba")))
    if channels == 4:
        with pytest.warns(UserWarning, match="The JPEG format does not support RGBA images"):
            utils.save_img(tmp_path / "ours.jpg", array, scale=scale)


def test_image_helpers_refuse_bad_arguments(picture):
    with pytest.raises(ValueError, match='color_mode must be "grayscale", "rgb", or "rgba"'):
        utils.load_img(picture, color_mode="hsv")
    with pytest.raises(ValueError, match="Invalid interpolation method cubic specified"):
        utils.load_img(picture, target_size=(3, 3), interpolation="cubic")
    with pytest.raises(TypeError, match="path should be path-like or io.BytesIO"):
        utils.load_img(42)
    with pytest.raises(ValueError, match=r"Expected image array to have rank 3 \(single image\)"):
        utils.array_to_img(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="Unsupported channel number: 2"):
        utils.array_to_img(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("sizes", [dict(left_size=0.8), dict(right_size=3), dict(left_size=4, right_size=0.25)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_split_dataset_equals_keras(keras, sizes, shuffle):
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.arange(20)
    ours = utils.split_dataset((x, y), shuffle=shuffle, seed=5, **sizes)
    theirs = keras.utils.split_dataset((x, y), shuffle=shuffle, seed=5, **sizes)
    for mine, expected in zip(ours, theirs):
        mine, expected = list(mine), [tuple(np.asarray(t) for t in e) for e in expected]
        assert len(mine) == len(expected)
        for (xa, ya), (xb, yb) in zip(mine, expected):
            np.testing.assert_array_equal(xa, xb)
            assert int(ya) == int(yb)


def test_split_dataset_keeps_a_datasets_batches_and_checks_sizes():
    left, right = utils.split_dataset(Dataset.from_tensor_slices(np.arange(10)).batch(3), left_size=0.6)
    assert [list(b) for b in left] == [[0, 1, 2], [3, 4, 5]] and [list(b) for b in right] == [[6, 7, 8], [9]]
    for sizes, match in ((dict(), "At least one of the `left_size` or `right_size` must be specified"),
                         (dict(left_size=1.5), r"`left_size` should be either a positive integer smaller than 10"),
                         (dict(left_size=0.7, right_size=0.5), "The sum of `left_size` and `right_size` is greater"),
                         (dict(left_size="half"), "Invalid `left_size` Type")):
        with pytest.raises((ValueError, TypeError), match=match):
            utils.split_dataset(np.arange(10), **sizes)
