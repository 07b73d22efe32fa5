"""Image preprocessing and augmentation layers, with Keras 3's arguments, defaults and factor rules.

Random layers (RandomFlip, RandomRotation, RandomTranslation, RandomZoom, RandomContrast,
RandomBrightness, RandomCrop) transform their input in ``fit`` only and pass it through in
``predict`` and ``evaluate`` (RandomCrop centre-crops there, see its docstring); Resizing and
CenterCrop always apply. The pixels are computed by the compiled network (csrc/kernels/image.cpp):
every sample draws its own parameters from a hash of (step seed, layer, sample), so results do not
depend on the thread count, and ``seed=`` makes a layer's draws reproducible. Every layer has a
backward pass, so they may also stand after layers with weights.

Called directly, ``layer(images)`` applies a random transform (training mode, Keras 3's default
for these layers) and ``layer(images, training=False)`` passes the images through; images are
(batch, height, width, channels) or one (height, width, channels) image.
"""

import numbers

import numpy as np

from fastcnn import _core, _random
from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("nearest", "bilinear")
# Keras's Resizing also offers these; fastcnn refuses them by name rather than approximating them.
_KERAS_ONLY_RESIZE_INTERPOLATIONS = ("bicubic", "lanczos3", "lanczos5", "area")


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _plain(value):
    """A Python int or float (numpy scalars become their Python equivalents, as in a JSON config)."""
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _base_factor(factor, bounds, name="factor"):
    """Keras's BaseImagePreprocessingLayer._set_factor: a number f in [low, high] gives
    (max(-|f|, low), |f|); a pair is sorted after checking factor[0] <= high and factor[1] >= low.
    The numbers keep their Python types, as Keras's do, so a config shows (0, 0.2) where Keras's
    does (``low`` is an int bound)."""
    message = (f"The `{name}` argument should be a number (or a list of two numbers) in the range "
               f"[{bounds[0]}, {bounds[1]}]. Received: {name}={factor!r}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_is_number(v) and np.isfinite(v) for v in factor):
            raise ValueError(message)
        if factor[0] > bounds[1] or factor[1] < bounds[0]:
            raise ValueError(message)
        lower, upper = sorted(_plain(v) for v in factor)
        return lower, upper
    if _is_number(factor) and np.isfinite(factor):
        if factor < bounds[0] or factor > bounds[1]:
            raise ValueError(message)
        factor = abs(_plain(factor))
        return max(-factor, bounds[0]), factor
    raise ValueError(message)


def _axis_factor(factor, name, lower_inclusive=True):
    """RandomTranslation / RandomZoom's _set_factor: each value in [-1, 1] (zoom: (-1, 1]); a number
    f gives (-|f|, |f|), a pair is sorted."""
    message = (f"The `factor` argument should be a number (or a list of two numbers) in the range "
               f"[-1.0, 1.0]. Received: {name}={factor!r}")

    def check(value):
        if not (_is_number(value) and np.isfinite(value)):
            raise ValueError(message)
        if value > 1.0 or value < -1.0 or (not lower_inclusive and value == -1.0):
            raise ValueError(message)

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(message)
        check(factor[0])
        check(factor[1])
        lower, upper = sorted(float(v) for v in factor)
        return lower, upper
    check(factor)
    factor = abs(float(factor))
    return -factor, factor


def _choice(value, name, allowed):
    if value not in allowed:
        raise ValueError(f"Unknown `{name}` {value!r}. Expected one of {allowed}. Received: {name}={value!r}")
    return value


def _fill_value(value):
    if not _is_number(value):
        raise ValueError(f"`fill_value` must be a number. Received: fill_value={value!r}")
    return float(value)


def _seed(seed):
    if seed is not None and not arguments.is_integer(seed):
        raise ValueError(f"`seed` must be an integer or None. Received: seed={seed!r}")
    return seed


def _runtime_seed(seed):
    """The runtime's own-seed argument: -1 for none, else the seed folded into [0, 2^63)."""
    return -1 if seed is None else int(seed) % 2**63


class _ImageLayer(Layer):
    """Layers on (height, width, channels) images, channels last."""

    _built_at_construction = True

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = arguments.channels_last(data_format)

    def _check_rank(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected ndim=4 '
                f"(batch, height, width, channels), found ndim={len(input_shape)}. "
                f"Full shape received: {tuple(input_shape)}"
            )

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return tuple(input_shape)

    def _add_to_network(self, network):
        self._add_runtime(network, _runtime_seed(getattr(self, "seed", None)))

    def _add_runtime(self, network, seed):
        raise NotImplementedError

    # Called directly, the random layers transform (Keras 3's call(inputs, training=True)).
    _eager_training_default = True

    def _eager_call(self, inputs, training):
        if training is None:
            training = self._eager_training_default
        x = np.asarray(inputs)
        if x.dtype.kind not in "iubf":
            raise TypeError(f"Layer {self.name!r} takes numeric arrays. Received dtype={x.dtype}")
        if x.ndim == 3:  # one image, as Keras accepts
            return self._eager_call(x[None], training)[0]
        if x.ndim != 4:
            raise ValueError(f"Layer {self.name!r} expects images of rank 3 (one image) or 4 (a batch). "
                             f"Received: inputs.shape={x.shape}")
        if not training or not self._random:
            return super()._eager_call(x, False)
        self._build_for(x.shape[1:])
        network = _core.Network()
        self._add_runtime(network, -1)  # this call's seed comes from forward_training's argument
        network.build(x.shape[1:])
        if self.seed is None:
            seed = _random.draw_seed()
        else:  # reproducible, and a new draw at each call, as Keras's seeded SeedGenerator
            seed = (int(self.seed) * 0x9E3779B97F4A7C15 + self._eager_calls) % 2**64
            self._eager_calls += 1
        return network.forward_training(np.ascontiguousarray(x, dtype=np.float32), seed)

    _random = False

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class _RandomImageLayer(_ImageLayer):
    _random = True

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = _seed(seed)
        self._eager_calls = 0


class RandomFlip(_RandomImageLayer):
    """Flips each image with probability 1/2: ``"horizontal"`` (left-right), ``"vertical"``
    (top-bottom) or ``"horizontal_and_vertical"``, which in Keras 3 flips both ways at once (one
    decision per image)."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.mode = _choice(mode, "mode", ("horizontal", "vertical", "horizontal_and_vertical"))

    def _add_runtime(self, network, seed):
        network.add_random_flip(self.mode != "vertical", self.mode != "horizontal", seed)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed, "mode": self.mode}


class _RandomWarp(_RandomImageLayer):
    def __init__(self, fill_mode, interpolation, seed, fill_value, data_format, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.fill_mode = _choice(fill_mode, "fill_mode", _FILL_MODES)
        self.interpolation = _choice(interpolation, "interpolation", _INTERPOLATIONS)
        self.fill_value = _fill_value(fill_value)

    def _translation_config(self):
        """RandomTranslation's and RandomZoom's config (Keras's key order)."""
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor,
                "fill_mode": self.fill_mode, "interpolation": self.interpolation, "seed": self.seed,
                "fill_value": self.fill_value}


class RandomRotation(_RandomWarp):
    """Rotates each image about its centre by a random angle: ``factor`` is a fraction of 2π, a
    number f for [-f, f] or a pair (low, high); positive angles rotate counter-clockwise."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _base_factor(factor or 0.0, (-1, 1))

    def _add_runtime(self, network, seed):
        # Keras draws degrees in [factor[0] * 360, factor[1] * 360].
        network.add_random_rotation(self.factor[0] * 360.0, self.factor[1] * 360.0, self.fill_mode,
                                    self.interpolation, self.fill_value, seed)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "interpolation": self.interpolation, "seed": self.seed}


class RandomTranslation(_RandomWarp):
    """Shifts each image by random fractions of its height and width: each factor is a number f
    for [-f, f] or a pair (low, high) within [-1, 1]; positive values move the image down / right."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = height_factor
        self.height_lower, self.height_upper = _axis_factor(height_factor, "height_factor")
        self.width_factor = width_factor
        self.width_lower, self.width_upper = _axis_factor(width_factor, "width_factor")

    def _add_runtime(self, network, seed):
        network.add_random_translation((self.height_lower, self.height_upper), (self.width_lower, self.width_upper),
                                       self.fill_mode, self.interpolation, self.fill_value, seed)

    def get_config(self):
        return self._translation_config()


class RandomZoom(_RandomWarp):
    """Zooms each image about its centre: the sampling scale is 1 + a value drawn from the factor
    (a number f for [-f, f] or a pair within (-1, 1]); positive values zoom out, negative zoom in.
    ``width_factor=None`` keeps the aspect ratio (the width uses the height's scale)."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = height_factor
        self.height_lower, self.height_upper = _axis_factor(height_factor, "height_factor", lower_inclusive=False)
        self.width_factor = width_factor
        if width_factor is not None:
            self.width_lower, self.width_upper = _axis_factor(width_factor, "width_factor", lower_inclusive=False)

    def _add_runtime(self, network, seed):
        width = None if self.width_factor is None else (1.0 + self.width_lower, 1.0 + self.width_upper)
        network.add_random_zoom((1.0 + self.height_lower, 1.0 + self.height_upper), width, self.fill_mode,
                                self.interpolation, self.fill_value, seed)

    def get_config(self):
        return self._translation_config()


def _value_range(value_range):
    if (not isinstance(value_range, (tuple, list)) or len(value_range) != 2
            or not all(_is_number(v) and np.isfinite(v) for v in value_range)):
        raise ValueError("The `value_range` argument should be a list of two numbers. "
                         f"Received: value_range={value_range!r}")
    return value_range


class RandomContrast(_RandomImageLayer):
    """Scales each channel's deviation from its mean by a random contrast factor in
    [1 - factor[0], 1 + factor[1]] and clips to ``value_range``. As in Keras 3, a single number f
    gives the factor range (0, f), i.e. contrast in [1, 1 + f]; pass (f, f) for [1 - f, 1 + f]."""

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _base_factor(factor or 0.0, (0, 1))
        self.value_range = _value_range(value_range)
        if value_range[0] > value_range[1]:
            raise ValueError(f"`value_range` must be (low, high) with low <= high. Received: value_range={value_range!r}")

    def _add_runtime(self, network, seed):
        network.add_random_contrast((1.0 - self.factor[0], 1.0 + self.factor[1]),
                                    (float(self.value_range[0]), float(self.value_range[1])), seed)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


class RandomBrightness(_RandomImageLayer):
    """Adds a random delta, factor × (high - low) with factor drawn from [-f, f] or (low, high) within
    [-1, 1], to every pixel of each image, then clips to ``value_range``."""

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _base_factor(factor or 0.0, (-1, 1))
        self.value_range = sorted(_value_range(value_range))

    def _add_runtime(self, network, seed):
        low, high = (float(v) for v in self.value_range)
        network.add_random_brightness(self.factor, high - low, (low, high), seed)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": self.value_range, "seed": self.seed}


class RandomCrop(_RandomImageLayer):
    """Crops each image to (height, width) at a random position in ``fit``.

    In training each image gets its own crop position (Keras 3.15 draws one for the whole batch;
    each image's distribution is the same); an input not larger than the target on both axes is
    cropped and resized as Keras 3.15 does. In inference the largest centred window with the
    target's aspect ratio is resized to (height, width) (``keras.utils.smart_resize``), as
    RandomCrop's documentation describes; Keras 3.15 itself returns the uncropped input there,
    which breaks any model whose later layers expect (height, width)."""

    def __init__(self, height, width, seed=None, data_format=None, name=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, name=name, **kwargs)
        self.height = arguments.positive_integer(height, "height")
        self.width = arguments.positive_integer(width, "width")

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return (input_shape[0], self.height, self.width, input_shape[3])

    def _add_runtime(self, network, seed):
        network.add_random_crop(self.height, self.width, seed)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "seed": self.seed}


class Resizing(_ImageLayer):
    """Resizes images to (height, width) as ``tf.image.resize`` (half-pixel centres, no antialias):
    ``interpolation`` "bilinear" or "nearest"; ``crop_to_aspect_ratio`` first crops the largest
    centred window with the target's aspect ratio, ``pad_to_aspect_ratio`` first pads the short
    side evenly with ``fill_value``."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
                 fill_mode="constant", fill_value=0.0, antialias=False, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height = arguments.positive_integer(height, "height")
        self.width = arguments.positive_integer(width, "width")
        if interpolation in _KERAS_ONLY_RESIZE_INTERPOLATIONS:
            raise ValueError(f"fastcnn's Resizing supports interpolation 'bilinear' and 'nearest'. "
                             f"Received: interpolation={interpolation!r}")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"Invalid value for argument `interpolation`. Expected of one {_INTERPOLATIONS}. "
                             f"Received: interpolation={interpolation!r}")
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = arguments.boolean(crop_to_aspect_ratio, "crop_to_aspect_ratio")
        self.pad_to_aspect_ratio = arguments.boolean(pad_to_aspect_ratio, "pad_to_aspect_ratio")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError("Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can be `True`.")
        if fill_mode != "constant":
            raise ValueError("Invalid value for argument `fill_mode`. Only `'constant'` is supported. "
                             f"Received: fill_mode={fill_mode!r}")
        self.fill_mode = fill_mode
        self.fill_value = _fill_value(fill_value)
        if antialias not in (False, 0):
            raise ValueError(f"fastcnn's Resizing does not support antialiasing. Received: antialias={antialias!r}")
        self.antialias = False

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return (input_shape[0], self.height, self.width, input_shape[3])

    def _aspect_mode(self):
        """How the runtime treats an aspect-ratio change: 'crop', 'pad' or 'stretch'."""
        return "crop" if self.crop_to_aspect_ratio else "pad" if self.pad_to_aspect_ratio else "stretch"

    def _add_runtime(self, network, seed):
        network.add_resizing(self.height, self.width, self.interpolation, self._aspect_mode(), self.fill_value)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation, "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


class CenterCrop(_ImageLayer):
    """Crops the centre (height, width) of each image; an image smaller than that on some axis is
    resized instead, after cropping its largest centred window with the target's aspect ratio
    (``keras.utils.smart_resize``), as Keras does."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height = arguments.positive_integer(height, "height")
        self.width = arguments.positive_integer(width, "width")

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return (input_shape[0], self.height, self.width, input_shape[3])

    def _add_runtime(self, network, seed):
        network.add_center_crop(self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
