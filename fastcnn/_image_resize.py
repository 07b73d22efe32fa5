"""Image resizing for ``image_dataset_from_directory``, as ``tf.image.resize`` (antialias=False) does it.

Every method is separable: an output row (or column) is a weighted sum of a few input rows, so
one axis is resized at a time with a table of `taps` input indices and weights per output index,
applied as `taps` vectorised gathers. The tables follow TensorFlow's kernels:

- ``bilinear``: half-pixel centres, ``src = (dst + 0.5) * in / out - 0.5``; the two neighbours
  ``floor(src)`` and ``ceil(src)`` are clamped to the image, weights ``1 - frac`` and ``frac``.
- ``nearest``: ``src = min(floor((dst + 0.5) * in / out), in - 1)``.
- ``bicubic``: Keys' cubic (a = -0.5) at the four neighbours of the half-pixel-centred ``src``,
  read from TensorFlow's 1025-entry table (the fraction ``src - floor(src)`` rounded to 1/1024);
  taps outside the image get weight 0 and the rest are renormalised to sum to 1.
- ``area``: each output pixel averages the input interval ``[dst * in/out, (dst + 1) * in/out)``,
  partially covered pixels weighted by their covered fraction.
- ``lanczos3``, ``lanczos5``, ``gaussian``, ``mitchellcubic``: TensorFlow's ScaleAndTranslate
  kernels without antialiasing: taps ``j`` with ``|j + 0.5 - (dst + 0.5) * in/out| <= radius``
  inside the image, weight ``kernel(j + 0.5 - sample)``, renormalised to sum to 1.

Index arithmetic is done in float32, as TensorFlow does it, so rounding at exact ties picks the
same pixels. Weights are applied in float32; the results agree with TensorFlow's to float32
rounding (tests/test_image_dataset.py compares all eight methods). ``bilinear`` (the default) and
``nearest`` run in the compiled resize kernel instead (``fastcnn._core.ops.resize``, the Resizing
layer's: TensorFlow's own interpolation arithmetic, so its values bit for bit, in half the time).
"""

import functools

import numpy as np

from fastcnn import _core

INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")
_COMPILED = ("bilinear", "nearest")  # methods the compiled kernel computes


def _keys_cubic(x, a=-0.5):
    x = np.abs(x)
    return np.where(x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))


def _lanczos(radius):
    def kernel(x):
        x = np.abs(x)
        # sinc(x) * sinc(x / radius), with sinc(0) = 1; np.sinc is sin(pi x) / (pi x).
        return np.where(x < radius, np.sinc(x) * np.sinc(x / radius), 0.0)
    return kernel, float(radius)


def _gaussian(x):
    # TensorFlow's GaussianKernelFunc: sigma 0.5, radius 1.5 (3 sigma).
    sigma = 0.5
    x = np.abs(x)
    return np.where(x < 3.0 * sigma, np.exp(-x * x / (2.0 * sigma * sigma)), 0.0)


def _mitchell_cubic(x):
    # Mitchell-Netravali with B = C = 1/3, as TensorFlow's MitchellCubicKernelFunc writes it out.
    x = np.abs(x)
    return np.where(x >= 2.0, 0.0,
                    np.where(x >= 1.0, (((-7.0 / 18.0) * x + 2.0) * x - 10.0 / 3.0) * x + 16.0 / 9.0,
                             (((7.0 / 6.0) * x - 2.0) * x) * x + 8.0 / 9.0))


_SPAN_KERNELS = {
    "lanczos3": _lanczos(3),
    "lanczos5": _lanczos(5),
    "gaussian": (_gaussian, 1.5),
    "mitchellcubic": (_mitchell_cubic, 2.0),
}

_CUBIC_TABLE_SIZE = 1024


def _bicubic_taps(in_size, out_size):
    """TensorFlow's resize_bicubic (half_pixel_centers=True): tabulated Keys weights."""
    scale = np.float32(in_size) / np.float32(out_size)
    source = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    base = np.floor(source)
    offset = np.rint((source - base) * np.float32(_CUBIC_TABLE_SIZE)).astype(np.int64)
    table = np.arange(_CUBIC_TABLE_SIZE + 1, dtype=np.float32) / np.float32(_CUBIC_TABLE_SIZE)
    near, far = _keys_cubic(table).astype(np.float32), _keys_cubic(table + 1).astype(np.float32)
    weights = np.stack([far[offset], near[offset], near[_CUBIC_TABLE_SIZE - offset],
                        far[_CUBIC_TABLE_SIZE - offset]], axis=1).astype(np.float64)
    index = base.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
    weights = np.where((index >= 0) & (index < in_size), weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.where(np.abs(total) >= 1000 * np.finfo(np.float32).tiny, weights / np.where(total == 0, 1, total), 0)
    return np.clip(index, 0, in_size - 1), weights


def _span_taps(in_size, out_size, kernel, radius):
    """Taps of TensorFlow's ScaleAndTranslate (no antialias, no translation) along one axis."""
    inv_scale = np.float32(in_size) / np.float32(out_size)
    sample = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * inv_scale
    start = np.ceil(sample - np.float32(radius) - np.float32(0.5)).astype(np.int64)
    count = int(2 * radius) + 2
    index = start[:, None] + np.arange(count)[None, :]
    weights = kernel((index + 0.5) - sample[:, None].astype(np.float64))
    weights = np.where((index >= 0) & (index < in_size), weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.where(np.abs(total) >= 1000 * np.finfo(np.float32).tiny, weights / np.where(total == 0, 1, total), 0)
    return np.clip(index, 0, in_size - 1), weights


def _bilinear_taps(in_size, out_size):
    scale = np.float32(in_size) / np.float32(out_size)
    source = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    lower = np.floor(source)
    fraction = (source - lower).astype(np.float64)
    low_index = np.clip(lower.astype(np.int64), 0, in_size - 1)
    high_index = np.clip(np.ceil(source).astype(np.int64), 0, in_size - 1)
    return np.stack([low_index, high_index], axis=1), np.stack([1.0 - fraction, fraction], axis=1)


def _nearest_taps(in_size, out_size):
    scale = np.float32(in_size) / np.float32(out_size)
    source = np.floor((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale).astype(np.int64)
    return np.minimum(source, in_size - 1)[:, None], np.ones((out_size, 1))


def _area_taps(in_size, out_size):
    scale = in_size / out_size
    start = np.arange(out_size) * scale
    end = start + scale
    count = int(np.ceil(scale)) + 1
    index = np.floor(start).astype(np.int64)[:, None] + np.arange(count)[None, :]
    covered = np.minimum(index + 1, end[:, None]) - np.maximum(index, start[:, None])
    weights = np.where((covered > 0) & (index < in_size), covered, 0.0) / scale
    return np.clip(index, 0, in_size - 1), weights


def _taps(in_size, out_size, interpolation):
    if interpolation == "bilinear":
        return _bilinear_taps(in_size, out_size)
    if interpolation == "nearest":
        return _nearest_taps(in_size, out_size)
    if interpolation == "area":
        return _area_taps(in_size, out_size)
    if interpolation == "bicubic":
        return _bicubic_taps(in_size, out_size)
    kernel, radius = _SPAN_KERNELS[interpolation]
    return _span_taps(in_size, out_size, kernel, radius)


@functools.lru_cache(maxsize=256)
def _float32_taps(in_size, out_size, interpolation):
    """_taps with float32 weights, kept for reuse (read-only): a folder of same-sized photos
    resizes every image with the same tables, which cost as much to build as to apply."""
    index, weights = _taps(in_size, out_size, interpolation)
    weights = weights.astype(np.float32)
    index.setflags(write=False)
    weights.setflags(write=False)
    return index, weights


def _resize_axis(image, size, axis, interpolation):
    index, weights = _float32_taps(image.shape[axis], size, interpolation)
    shape = [1] * image.ndim
    shape[axis] = size
    result = np.zeros(image.shape[:axis] + (size,) + image.shape[axis + 1:], dtype=np.float32)
    for tap in range(index.shape[1]):
        result += np.take(image, index[:, tap], axis=axis) * weights[:, tap].reshape(shape)
    return result


def resize(image, size, interpolation="bilinear", window=None):
    """Resizes an (height, width, channels) image to `size` = (height, width); float32 result.
    `window` = (top, left, height, width) resizes that part of the image alone. A uint8 image
    (a decoded file) goes to the compiled kernel as it is, which converts each pixel it reads."""
    height, width = size
    image = np.asarray(image)
    if interpolation in _COMPILED:
        if image.dtype != np.uint8:
            image = np.asarray(image, dtype=np.float32)
        window_arguments = {} if window is None else {
            "window_size": tuple(window[2:]), "window_origins": np.array([window[:2]], dtype=np.int64)}
        return _core.ops.resize(image[np.newaxis], (height, width), interpolation, **window_arguments)[0]
    if window is not None:
        top, left, window_height, window_width = window
        image = image[top:top + window_height, left:left + window_width]
    image = np.asarray(image, dtype=np.float32)
    # Interpolating methods reproduce an axis of unchanged size exactly; the span kernels
    # (lanczos, gaussian, mitchellcubic) smooth it even then, as TensorFlow's do.
    smoothing = interpolation in _SPAN_KERNELS
    if image.shape[0] != height or smoothing:
        image = _resize_axis(image, height, 0, interpolation)
    if image.shape[1] != width or smoothing:
        image = _resize_axis(image, width, 1, interpolation)
    return image


def resize_with_crop(image, size, interpolation="bilinear"):
    """``keras.utils.image_utils.smart_resize``: crops the centred window with the target's aspect
    ratio (the largest one inside the image), then resizes it. The crop box uses the float32
    arithmetic Keras runs inside tf.data: ``crop_h = int(float32(w * target_h) / target_w)``."""
    height, width = image.shape[:2]
    target_height, target_width = size
    crop_height = int(np.float32(width * target_height) / np.float32(target_width))
    crop_height = max(min(height, crop_height), 1)
    crop_width = int(np.float32(height * target_width) / np.float32(target_height))
    crop_width = max(min(width, crop_width), 1)
    top = int(np.float32(height - crop_height) / np.float32(2))
    left = int(np.float32(width - crop_width) / np.float32(2))
    return resize(image, size, interpolation, window=(top, left, crop_height, crop_width))


def _framed(image, top, bottom, left, right, fill_value):
    """`image` (height, width, channels) inside a frame of `fill_value`: `top` rows above, `bottom`
    below, `left` and `right` columns beside it; float32."""
    return np.pad(np.asarray(image, dtype=np.float32), ((top, bottom), (left, right), (0, 0)),
                  constant_values=np.float32(fill_value))


def resize_with_pad(image, size, interpolation="bilinear"):
    """``tf.image.resize_with_pad`` (what ``image_dataset_from_directory(pad_to_aspect_ratio=True)``
    runs): resizes to fit inside `size` keeping the aspect ratio, then pads with zeros to `size`,
    the margin before the image ``floor((target - resized_float) / 2)`` (the odd pixel goes to the
    bottom/right)."""
    height, width = image.shape[:2]
    target_height, target_width = size
    ratio = max(np.float32(width) / np.float32(target_width), np.float32(height) / np.float32(target_height))
    resized_height_float = np.float32(height) / ratio
    resized_width_float = np.float32(width) / ratio
    # TensorFlow fails on a zero-sized intermediate image (a 1 x 100 image padded into 100 x 1);
    # one row or column is kept instead.
    resized_size = (max(1, int(np.floor(resized_height_float))), max(1, int(np.floor(resized_width_float))))
    resized = resize(image, resized_size, interpolation)
    top = max(0, int(np.floor((np.float32(target_height) - resized_height_float) / np.float32(2))))
    left = max(0, int(np.floor((np.float32(target_width) - resized_width_float) / np.float32(2))))
    return _framed(resized, top, target_height - top - resized.shape[0], left, target_width - left - resized.shape[1],
                   0.0)


def pad_to_aspect_ratio(image, size, fill_value=0.0):
    """The image ``keras.ops.image.resize(pad_to_aspect_ratio=True)`` (and the Resizing layer)
    then resizes to `size`: padded, before any resizing, to about the target's aspect ratio with
    `fill_value`, the same margin on both sides of the short axis (so an odd difference is left
    out, and the resize stretches the rest). In Keras's float32 arithmetic:
    ``pad_height = max(height, int(float32(width * target_height) / target_width))``, margin
    ``int(float32(pad_height - height) / 2)`` above and below; likewise for the width."""
    height, width = image.shape[:2]
    target_height, target_width = size
    pad_height = max(height, int(np.float32(width * target_height) / np.float32(target_width)))
    pad_width = max(width, int(np.float32(height * target_width) / np.float32(target_height)))
    vertical = int(np.float32(pad_height - height) / np.float32(2))
    horizontal = int(np.float32(pad_width - width) / np.float32(2))
    return _framed(image, vertical, vertical, horizontal, horizontal, fill_value)
