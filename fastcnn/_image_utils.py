"""Keras's image helpers (``keras.utils.load_img``, ``img_to_array``, ``array_to_img``,
``save_img``) with their arguments, conversions and messages; Pillow is imported when they run."""

import io
import os
import pathlib
import warnings

import numpy as np


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("Could not import PIL.Image. fastcnn's image helpers need Pillow: "
                          "pip install fastcnn[images]") from None
    return Image


def _interpolations(Image):
    resampling = Image.Resampling
    return {"nearest": resampling.NEAREST, "bilinear": resampling.BILINEAR, "bicubic": resampling.BICUBIC,
            "hamming": resampling.HAMMING, "box": resampling.BOX, "lanczos": resampling.LANCZOS}


def _check_data_format(data_format):
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError("The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                         f"Received: data_format={data_format}")
    return data_format or "channels_last"


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """A PIL image from a file path (str, bytes, pathlib.Path) or an io.BytesIO, converted to
    `color_mode` ("grayscale", "rgb", "rgba") and resized to target_size = (height, width) with
    `interpolation`; keep_aspect_ratio resizes the largest centred crop of the target's aspect."""
    Image = _pil()
    if isinstance(path, io.BytesIO):
        image = Image.open(path)
    elif isinstance(path, (pathlib.Path, bytes, str)):
        if isinstance(path, pathlib.Path):
            path = str(path.resolve())
        with open(path, "rb") as file:
            image = Image.open(io.BytesIO(file.read()))
    else:
        raise TypeError(f"path should be path-like or io.BytesIO, not {type(path)}")
    if color_mode == "grayscale":
        if image.mode not in ("L", "I;16", "I"):
            image = image.convert("L")
    elif color_mode == "rgba":
        if image.mode != "RGBA":
            image = image.convert("RGBA")
    elif color_mode == "rgb":
        if image.mode != "RGB":
            image = image.convert("RGB")
    else:
        raise ValueError('color_mode must be "grayscale", "rgb", or "rgba"')
    if target_size is None:
        return image
    size = (target_size[1], target_size[0])  # PIL's (width, height)
    if image.size == size:
        return image
    methods = _interpolations(Image)
    if interpolation not in methods:
        raise ValueError(f"Invalid interpolation method {interpolation} specified. Supported methods are "
                         f"{', '.join(methods)}")
    if not keep_aspect_ratio:
        return image.resize(size, methods[interpolation])
    width, height = image.size
    target_width, target_height = size
    crop_height = min(height, (width * target_height) // target_width)
    crop_width = min(width, (height * target_width) // target_height)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return image.resize(size, methods[interpolation], box=[left, top, left + crop_width, top + crop_height])


def img_to_array(img, data_format=None, dtype=None):
    """A PIL image (or anything numpy converts) as a float32 array (height, width, channels)."""
    data_format = _check_data_format(data_format)
    array = np.asarray(img, dtype=dtype or "float32")
    if array.ndim == 3:
        return array.transpose(2, 0, 1) if data_format == "channels_first" else array
    if array.ndim == 2:
        return array[None] if data_format == "channels_first" else array[:, :, None]
    raise ValueError(f"Unsupported image shape: {array.shape}")


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A PIL image from a (height, width, 1|3|4) array; `scale` maps the array's range onto 0-255."""
    data_format = _check_data_format(data_format)
    Image = _pil()
    array = np.array(x, dtype=dtype or "float32")
    if array.ndim != 3:
        raise ValueError(f"Expected image array to have rank 3 (single image). Got array with shape: {array.shape}")
    if data_format == "channels_first":
        array = array.transpose(1, 2, 0)
    if scale:
        array = array - np.min(array)
        maximum = np.max(array)
        if maximum != 0:
            array /= maximum
        array *= 255
    channels = array.shape[2]
    if channels == 4:
        return Image.fromarray(array.astype("uint8"), "RGBA")
    if channels == 3:
        return Image.fromarray(array.astype("uint8"), "RGB")
    if channels == 1:
        if np.max(array) > 255:
            return Image.fromarray(array[:, :, 0].astype("int32"), "I")  # 32-bit greyscale
        return Image.fromarray(array[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"Unsupported channel number: {channels}")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Writes an image array to a file; the format from `file_format` or the path's suffix (an RGBA
    image written as JPEG loses its alpha channel, with a warning)."""
    if file_format is None and isinstance(path, (str, pathlib.Path, os.PathLike)):
        file_format = pathlib.Path(path).suffix[1:].lower()
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"
    image = array_to_img(x, data_format=data_format, scale=scale)
    if image.mode == "RGBA" and file_format == "jpeg":
        warnings.warn("The JPEG format does not support RGBA images, converting to RGB.", stacklevel=2)
        image = image.convert("RGB")
    image.save(path, format=file_format, **kwargs)
