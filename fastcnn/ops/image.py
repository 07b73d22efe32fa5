"""``keras.ops.image`` on numpy: resize (TensorFlow's resize, as image_dataset_from_directory
uses), crop_images and pad_images; channels_last images of rank 3 (one) or 4 (a batch)."""

import numpy as np

from fastcnn import _image_resize


def _images(images, data_format, what):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"fastcnn's {what} takes channels_last images. Received: data_format={data_format!r}")
    array = np.asarray(images)
    if array.ndim not in (3, 4):
        raise ValueError("Invalid images rank: expected rank 3 (single image) or rank 4 (batch of images). "
                         f"Received: images.shape={array.shape}")
    return array


def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None):
    """Images resized to size = (height, width) as tf.image.resize (half-pixel centres), float32;
    crop_to_aspect_ratio and pad_to_aspect_ratio (padding with `fill_value` first, see
    fastcnn._image_resize.pad_to_aspect_ratio) as Keras."""
    array = _images(images, data_format, "resize")
    if antialias:
        raise ValueError("fastcnn's resize does not antialias. Received: antialias=True")
    if fill_mode != "constant":
        raise ValueError("Invalid value for argument `fill_mode`. Only `'constant'` is supported. "
                         f"Received: fill_mode={fill_mode}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can be `True`.")
    if len(size) != 2:
        raise ValueError(f"Expected `size` to be a tuple of 2 integers. Received: size={size}")
    if interpolation not in _image_resize.INTERPOLATIONS:
        raise ValueError(f"Invalid value for argument `interpolation`. Expected of one {_image_resize.INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation}")
    size = tuple(size)

    def one(image):
        image = image.astype(np.float32)
        if crop_to_aspect_ratio:
            return _image_resize.resize_with_crop(image, size, interpolation)
        if pad_to_aspect_ratio:
            image = _image_resize.pad_to_aspect_ratio(image, size, fill_value)
        return _image_resize.resize(image, size, interpolation)

    batch = array if array.ndim == 4 else array[None]
    resized = np.stack([one(image) for image in batch])
    return resized if array.ndim == 4 else resized[0]


def _margins(first, second, target, size, names):
    """(first, second) margins along one axis from two of (first, second, target)."""
    given = [value is not None for value in (first, second, target)]
    if sum(given) != 2:
        raise ValueError(f"Exactly two of {names[0]}, {names[1]} and {names[2]} must be given. Received: "
                         f"{names[0]}={first}, {names[1]}={second}, {names[2]}={target}")
    if first is None:
        first = target - second - size if names[0].endswith("padding") else size - target - second
    if second is None:
        second = target - first - size if names[0].endswith("padding") else size - target - first
    for value, name in ((first, names[0]), (second, names[1])):
        if value < 0:
            raise ValueError(f"{name} must be >= 0. Received: {name}={value}")
    return first, second


def _margins_2d(array, top, left, bottom, right, target_height, target_width, verb):
    """(top, bottom, left, right) of pad_images / crop_images from their arguments (`verb` names them)."""
    height, width = array.shape[-3], array.shape[-2]
    top, bottom = _margins(top, bottom, target_height, height, (f"top_{verb}", f"bottom_{verb}", "target_height"))
    left, right = _margins(left, right, target_width, width, (f"left_{verb}", f"right_{verb}", "target_width"))
    return top, bottom, left, right


def pad_images(images, top_padding=None, left_padding=None, bottom_padding=None, right_padding=None,
               target_height=None, target_width=None, data_format=None):
    """Images padded with zeros: two of top/bottom/target_height and two of left/right/target_width."""
    array = _images(images, data_format, "pad_images")
    top, bottom, left, right = _margins_2d(array, top_padding, left_padding, bottom_padding, right_padding,
                                           target_height, target_width, "padding")
    pad = [(top, bottom), (left, right), (0, 0)]
    return np.pad(array, ([(0, 0)] if array.ndim == 4 else []) + pad)


def crop_images(images, top_cropping=None, left_cropping=None, bottom_cropping=None, right_cropping=None,
                target_height=None, target_width=None, data_format=None):
    """Images cropped: two of top/bottom/target_height and two of left/right/target_width."""
    array = _images(images, data_format, "crop_images")
    top, bottom, left, right = _margins_2d(array, top_cropping, left_cropping, bottom_cropping, right_cropping,
                                           target_height, target_width, "cropping")
    height, width = array.shape[-3], array.shape[-2]
    if top + bottom > height or left + right > width:
        raise ValueError(f"The cropping ({top}, {bottom}, {left}, {right}) removes more than the image "
                         f"({height}x{width}).")
    return array[..., top:height - bottom, left:width - right, :]
