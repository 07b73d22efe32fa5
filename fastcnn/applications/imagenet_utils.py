"""Keras's ``keras.applications.imagenet_utils``: ``preprocess_input`` (modes caffe, tf, torch),
``decode_predictions``, and the input-shape rules every application builder shares
(``obtain_input_shape``, ``correct_pad``, ``validate_activation``)."""

import json
import warnings

import numpy as np

from fastcnn.applications import _weights

CLASS_INDEX = None
CLASS_INDEX_FILE = "imagenet_class_index.json"
CLASS_INDEX_PATH = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"

# ImageNet's per-channel statistics, as Keras uses them.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


def preprocess_input(x, data_format=None, mode="caffe"):
    """Preprocesses a batch of images with values in [0, 255] (3D or 4D, 3 colour channels).

    mode "caffe": RGB to BGR, then each channel minus ImageNet's mean, without scaling;
    "tf": scaled to [-1, 1] (x / 127.5 - 1); "torch": scaled to [0, 1], then each channel
    normalised by ImageNet's mean and standard deviation. A float numpy array is modified in
    place as Keras does (pass `numpy.copy(x)` to keep it); other inputs are converted to float32.
    """
    if mode not in {"caffe", "tf", "torch"}:
        raise ValueError(f"Expected mode to be one of `caffe`, `tf` or `torch`. Received: mode={mode}")
    if data_format is None:
        data_format = "channels_last"
    elif data_format not in {"channels_first", "channels_last"}:
        raise ValueError("Expected data_format to be one of `channels_first` or `channels_last`. "
                         f"Received: data_format={data_format}")
    if not isinstance(x, np.ndarray):
        x = np.array(x, dtype=np.float32)
    return _preprocess_numpy_input(x, data_format, mode)


def _preprocess_numpy_input(x, data_format, mode):
    if not issubclass(x.dtype.type, np.floating):
        x = x.astype(np.float32, copy=False)
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    if mode == "torch":
        x /= 255.0
        mean, std = TORCH_MEAN, TORCH_STD
    else:
        if data_format == "channels_first":
            x = x[::-1, ...] if x.ndim == 3 else x[:, ::-1, ...]
        else:
            x = x[..., ::-1]
        mean, std = CAFFE_MEAN_BGR, None
    for channel in range(3):
        if data_format == "channels_first":
            index = (channel,) if x.ndim == 3 else (slice(None), channel)
        else:
            index = (Ellipsis, channel)
        x[index] -= mean[channel]
        if std is not None:
            x[index] /= std[channel]
    return x


def decode_predictions(preds, top=5):
    """The `top` classes of each row of ImageNet predictions (shape (samples, 1000)) as
    (class_name, class_description, score) tuples, best first. Reads Keras's
    `imagenet_class_index.json` from Keras's cache folder (see fastcnn.applications)."""
    global CLASS_INDEX
    preds = np.asarray(preds)
    if len(preds.shape) != 2 or preds.shape[1] != 1000:
        raise ValueError("`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape "
                         f"(samples, 1000)). Received array with shape: {preds.shape}")
    if CLASS_INDEX is None:
        path = _weights.cached_file(CLASS_INDEX_FILE, CLASS_INDEX_PATH, what="The ImageNet class index")
        try:
            with open(path, encoding="utf8") as file:
                CLASS_INDEX = json.load(file)
        except (OSError, ValueError) as error:
            raise ValueError(f"Cannot read the ImageNet class index {path}: {error}") from None
    results = []
    for pred in preds:
        top_indices = pred.argsort()[-top:][::-1]
        result = [tuple(CLASS_INDEX[str(i)]) + (pred[i],) for i in top_indices]
        result.sort(key=lambda entry: entry[2], reverse=True)
        results.append(result)
    return results


def obtain_input_shape(input_shape, default_size, min_size, data_format, require_flatten, weights=None):
    """Keras's input-shape rule of the application builders: the default (default_size,
    default_size, 3), or `input_shape` checked (3 channels with ImageNet weights, at least
    min_size × min_size; with ImageNet weights and a flattening top, exactly the default)."""
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        if data_format == "channels_first":
            if input_shape[0] not in {1, 3}:
                warnings.warn("This model usually expects 1 or 3 input channels. However, it was passed an "
                              f"input_shape with {input_shape[0]} input channels.", stacklevel=2)
            default_shape = (input_shape[0], default_size, default_size)
        else:
            if input_shape[-1] not in {1, 3}:
                warnings.warn("This model usually expects 1 or 3 input channels. However, it was passed an "
                              f"input_shape with {input_shape[-1]} input channels.", stacklevel=2)
            default_shape = (default_size, default_size, input_shape[-1])
    elif data_format == "channels_first":
        default_shape = (3, default_size, default_size)
    else:
        default_shape = (default_size, default_size, 3)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError("When setting `include_top=True` and loading `imagenet` weights, `input_shape` "
                             f"should be {default_shape}.  Received: input_shape={input_shape}")
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError("`input_shape` must be a tuple of three integers.")
        if data_format == "channels_first":
            channels, rows, cols = input_shape
        else:
            rows, cols, channels = input_shape
        if channels != 3 and weights == "imagenet":
            raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
        if (rows is not None and rows < min_size) or (cols is not None and cols < min_size):
            raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: "
                             f"input_shape={input_shape}")
    elif require_flatten:
        input_shape = default_shape
    elif data_format == "channels_first":
        input_shape = (3, None, None)
    else:
        input_shape = (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError("If `include_top` is True, you should specify a static `input_shape`. "
                         f"Received: input_shape={input_shape}")
    return input_shape


def correct_pad(inputs, kernel_size):
    """The ((top, bottom), (left, right)) zero padding of a strided 'valid' convolution that
    centres its windows as TensorFlow's 'same' does (channels_last)."""
    input_size = inputs.shape[1:3]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    if input_size[0] is None:
        adjust = (1, 1)
    else:
        adjust = (1 - input_size[0] % 2, 1 - input_size[1] % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


def validate_activation(classifier_activation, weights):
    """With pretrained weights the classifier's activation may only be None or "softmax"."""
    if weights is None:
        return
    if classifier_activation not in (None, "softmax", "linear"):
        raise ValueError("Only `None` and `softmax` activations are allowed for the `classifier_activation` "
                         "argument when using pretrained weights, with `include_top=True`; Received: "
                         f"classifier_activation={classifier_activation}")
