"""fastcnn.ops (numpy) against keras.ops on the same inputs: values, shapes and dtypes."""

import numpy as np
import pytest

from fastcnn import ops

X = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
LABELS = np.array([[0, 2], [1, 3]])

CASES = [
    ("convert_to_tensor", lambda o: o.convert_to_tensor([[1.5, 2.0], [3.0, 4.0]])),
    ("convert_to_tensor_int", lambda o: o.convert_to_tensor([1, 2, 3])),
    ("convert_to_tensor_dtype", lambda o: o.convert_to_tensor(X, dtype="float16")),
    ("cast", lambda o: o.cast(X, "int32")),
    ("one_hot", lambda o: o.one_hot(LABELS, 4)),
    ("one_hot_axis", lambda o: o.one_hot(np.array([0, 3, 1]), 4, axis=0)),
    ("sigmoid", lambda o: o.sigmoid(X)),
    ("softmax", lambda o: o.softmax(X)),
    ("softmax_axis", lambda o: o.softmax(X, axis=1)),
    ("argmax", lambda o: o.argmax(X, axis=-1)),
    ("argmax_keepdims", lambda o: o.argmax(X, axis=1, keepdims=True)),
    ("expand_dims", lambda o: o.expand_dims(X, 1)),
    ("squeeze", lambda o: o.squeeze(X[:, :1], axis=1)),
    ("stack", lambda o: o.stack([X, X + 1], axis=1)),
    ("concatenate", lambda o: o.concatenate([X, X], axis=-1)),
    ("clip", lambda o: o.clip(X, -0.5, 0.5)),
    ("mean", lambda o: o.mean(X, axis=(0, 2))),
    ("mean_int", lambda o: o.mean(LABELS)),
    ("sum", lambda o: o.sum(X, axis=1, keepdims=True)),
    ("sum_int", lambda o: o.sum(LABELS)),
    ("max", lambda o: o.max(X, axis=0)),
    ("resize", lambda o: o.image.resize(X[None, :, :, :3] * 10, (7, 3))),
    ("resize_nearest", lambda o: o.image.resize(X[:, :, :2], (5, 9), interpolation="nearest")),
    ("resize_crop", lambda o: o.image.resize(X[None, :, :, :3], (2, 6), crop_to_aspect_ratio=True)),
    ("pad_images", lambda o: o.image.pad_images(X, top_padding=1, bottom_padding=2, left_padding=0,
                                                target_width=7)),
    ("crop_images", lambda o: o.image.crop_images(X[None], top_cropping=1, target_height=1, left_cropping=1,
                                                  right_cropping=2)),
]


@pytest.mark.parametrize("name, call", CASES, ids=[case[0] for case in CASES])
def test_ops_equal_keras(keras, name, call):
    ours = call(ops)
    theirs = keras.ops.convert_to_numpy(call(keras.ops))
    assert isinstance(ours, np.ndarray)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ops.convert_to_numpy(ours), ours)


def test_ops_errors_name_what_is_wrong():
    with pytest.raises(AttributeError, match="fastcnn.ops has no 'einsum'"):
        ops.einsum("ij->ji", X[0])
    with pytest.raises(ValueError, match="Only `'constant'` is supported. Received: fill_mode=reflect"):
        ops.image.resize(X[None], (2, 6), pad_to_aspect_ratio=True, fill_mode="reflect")
    with pytest.raises(ValueError, match="Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio`"):
        ops.image.resize(X[None], (2, 6), pad_to_aspect_ratio=True, crop_to_aspect_ratio=True)
    with pytest.raises(ValueError, match="Invalid images rank"):
        ops.image.resize(X[0], (2, 2))
    with pytest.raises(ValueError, match="Exactly two of top_padding, bottom_padding and target_height"):
        ops.image.pad_images(X, top_padding=1, left_padding=0, right_padding=0)
    with pytest.raises(ValueError, match="top_padding must be >= 0"):
        ops.image.pad_images(X, bottom_padding=1, target_height=2, left_padding=0, right_padding=0)


# (source height, width) -> (target height, width): taller and wider targets, odd and even
# margins, a margin that rounds to 0, an unchanged aspect ratio, downscaling and upscaling.
PAD_SIZES = [((4, 6), (6, 4)), ((6, 4), (4, 6)), ((5, 5), (3, 8)), ((5, 5), (8, 3)), ((7, 3), (7, 4)),
             ((3, 7), (4, 4)), ((6, 9), (4, 6)), ((2, 11), (9, 9)), ((13, 5), (6, 17)), ((1, 1), (2, 3))]


@pytest.mark.parametrize("source, target", PAD_SIZES, ids=[f"{s}->{t}" for s, t in PAD_SIZES])
@pytest.mark.parametrize("interpolation, fill_value", [("bilinear", 0.0), ("nearest", 7.5), ("bicubic", -2.0)])
def test_resize_padded_to_the_aspect_ratio_equals_keras(keras, source, target, interpolation, fill_value):
    images = np.random.default_rng(3).uniform(0, 255, (2,) + source + (3,)).astype(np.float32)
    for batch in (images, images[0]):  # a batch and a single image
        ours = ops.image.resize(batch, target, interpolation=interpolation, pad_to_aspect_ratio=True,
                                fill_value=fill_value)
        theirs = keras.ops.convert_to_numpy(keras.ops.image.resize(
            batch, target, interpolation=interpolation, pad_to_aspect_ratio=True, fill_value=fill_value))
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)
