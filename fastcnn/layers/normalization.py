"""Normalization (Keras's preprocessing layer): ``(x - mean) / max(sqrt(variance), 1e-7)``, or with
``invert=True`` ``mean + x * max(sqrt(variance), 1e-7)``, with a mean and variance per position of
the kept axes (``axis``, default -1: per channel; ``axis=None``: one of each).

The statistics come from the constructor (``mean=``, ``variance=``: constants, no weights) or from
``adapt(data)`` (numpy arrays, ``fastcnn.data.Dataset`` (a dataset of unbatched vectors is batched
by 128, as Keras does), ``fastcnn.utils.PyDataset``, image datasets and other iterables of batches,
``(x, y)`` batches taking x), stored in Keras's non-trainable weights mean, variance and
count. No weight trains; the input gradient flows through to earlier layers."""

import numpy as np

from fastcnn import _core
from fastcnn._py_dataset import PyDataset
from fastcnn.layers import _arguments as arguments
from fastcnn.layers.base import Layer
from fastcnn.layers.layer_normalization import _runtime_axis


def _statistics_values(value, name):
    """A constant mean or variance as a float64 array (a number or nested lists of numbers)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a number or an array of numbers. Received: {name}={value!r}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must hold finite numbers. Received: {name}={value!r}")
    return array


def _first_of(batch):
    """The inputs of a batch: x of an (x, y) or (x, y, sample_weight) tuple (Keras's _extract_batch)."""
    return batch[0] if isinstance(batch, tuple) else batch


class Normalization(Layer):
    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif arguments.is_integer(axis):
            axis = (int(axis),)
        elif isinstance(axis, (list, tuple)) and all(arguments.is_integer(a) for a in axis):
            axis = tuple(int(a) for a in axis)
        else:
            raise ValueError(f"`axis` must be an integer, a tuple of integers or None. Received: axis={axis!r}")
        self.axis = axis
        self.invert = arguments.boolean(invert, "invert")
        if (mean is not None) != (variance is not None):
            raise ValueError("When setting values directly, both `mean` and `variance` must be set. "
                             f"Received: mean={mean} and variance={variance}")
        if mean is not None:
            mean_values = _statistics_values(mean, "mean")
            variance_values = _statistics_values(variance, "variance")
            if mean_values.shape != variance_values.shape:
                raise ValueError("When setting values directly, `mean` and `variance` must have the same shape. "
                                 f"Received: mean shape {mean_values.shape} and variance shape {variance_values.shape}")
            if mean_values.ndim > len(self.axis):
                raise ValueError(f"The rank of `mean` must be less than or equal to the number of axes "
                                 f"({len(self.axis)}). Received: mean shape {mean_values.shape} for axis {self.axis}")
        self.input_mean = mean
        self.input_variance = variance
        self.mean = None
        self.variance = None
        self.count = None
        self._constants = None

    def _keep_axes(self, input_shape):
        """The kept axes as positions (sorted), with Keras's range check; the batch axis refused."""
        rank = len(input_shape)
        if any(a < -rank or a >= rank for a in self.axis):
            raise ValueError(f"All `axis` values must be in the range [-ndim, ndim). Received inputs with ndim={rank}, "
                             f"while axis={self.axis}")
        keep = tuple(sorted(a % rank for a in self.axis))
        if 0 in keep:
            raise ValueError(f"Layer {self.name!r}: fastcnn's Normalization keeps sample axes only; the batch axis (0) "
                             f"cannot be kept. Received: axis={self.axis} for inputs of shape {tuple(input_shape)}")
        if len(set(keep)) != len(keep):
            raise ValueError(f"Layer {self.name!r}: each axis may be kept once. Received: axis={self.axis}")
        return keep

    def build(self, input_shape):
        rank = len(input_shape)
        keep = self._keep_axes(input_shape)
        kept_shape = tuple(input_shape[d] for d in keep)
        self._runtime_keep = tuple(any(_runtime_axis(d, rank) == position for d in keep) for position in range(3))
        if self.input_mean is None:
            self.mean = self.add_weight(kept_shape, "zeros", "mean", trainable=False)
            self.variance = self.add_weight(kept_shape, "ones", "variance", trainable=False)
            self.count = self.add_weight((), "zeros", "count", trainable=False)
            self.count.file_dtype = np.int64  # Keras's count is an integer variable
        else:
            self._constants = tuple(self._broadcast_constant(value, name, input_shape, keep)
                                    for value, name in ((self.input_mean, "mean"), (self.input_variance, "variance")))
        self.built = True

    def _broadcast_constant(self, value, name, input_shape, keep):
        """A constant as Keras broadcasts it: a scalar everywhere, else aligned with the last kept
        axes; returned flat over the kept positions (memory order)."""
        values = _statistics_values(value, name)
        kept_shape = tuple(input_shape[d] for d in keep)
        aligned = values.reshape((1,) * (len(kept_shape) - values.ndim) + values.shape)
        try:
            return np.broadcast_to(aligned, kept_shape).astype(np.float32).ravel()
        except ValueError:
            raise ValueError(f"Layer {self.name!r}: `{name}` of shape {values.shape} cannot broadcast to the kept "
                             f"axes' shape {kept_shape} (axis={self.axis}, inputs of shape {tuple(input_shape)})") \
                from None

    def _reset_build(self):
        super()._reset_build()
        self.mean = self.variance = self.count = None
        self._constants = None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def _add_to_network(self, network):
        mean, variance = self._constants if self._constants is not None else ([], [])
        network.add_normalization(self._runtime_keep, self.invert, list(mean), list(variance))

    # ---- adapt ----

    def adapt(self, data):
        """Computes the mean and (biased) variance of `data` per position of the kept axes, as Keras:
        a numpy array at once, an iterable of batches (PyDataset, an image dataset, a list or a
        generator of arrays or (x, y) tuples) batch by batch, combined by their counts."""
        if self.input_mean is not None:
            raise ValueError(f"Layer {self.name!r} was given `mean` and `variance`; adapt() computes them for a layer "
                             "built without.")
        if hasattr(data, "element_spec") and hasattr(data, "batch"):  # a fastcnn.data.Dataset, as tf.data's
            spec = data.element_spec
            if len((spec[0] if isinstance(spec, tuple) else spec).shape) == 1:
                data = data.batch(128)  # Keras batches a dataset of unbatched vectors by 128
        if isinstance(data, np.ndarray):
            batches = [data]
        elif isinstance(data, PyDataset):
            batches = (_first_of(data[index]) for index in range(len(data)))
        elif hasattr(data, "__iter__") and not isinstance(data, (str, bytes, dict)):
            batches = (_first_of(batch) for batch in data)
        else:
            raise TypeError(f"Unsupported data type: {type(data)}. `adapt` supports `np.ndarray`, "
                            "`fastcnn.utils.PyDataset`, and iterables of batches (e.g. list, generator).")
        total_mean = total_variance = None
        total_count = 0
        for batch in batches:
            batch = np.asarray(batch)
            if batch.dtype.kind not in "iuf" or batch.ndim < 1:
                raise ValueError(f"adapt() takes batches of numbers. Received an array of shape {batch.shape} and "
                                 f"dtype {batch.dtype}")
            self._build_for_adapt(batch.shape)
            batch_mean, batch_variance, batch_count = self._batch_statistics(batch)
            if batch_count == 0:
                continue
            total_count += batch_count
            if total_mean is None:
                total_mean, total_variance = batch_mean, batch_variance
                continue
            # Keras's combination (the lack-of-fit sum of squares).
            batch_weight = batch_count / total_count
            existing_weight = 1.0 - batch_weight
            new_mean = total_mean * existing_weight + batch_mean * batch_weight
            total_variance = ((total_variance + (total_mean - new_mean) ** 2) * existing_weight
                              + (batch_variance + (batch_mean - new_mean) ** 2) * batch_weight)
            total_mean = new_mean
        if total_mean is None:
            raise ValueError("adapt() received no data (an empty array or no batches). Received: "
                             f"{type(data).__name__}")
        self.mean.assign(total_mean.reshape(self.mean.shape))
        self.variance.assign(total_variance.reshape(self.variance.shape))

    def _build_for_adapt(self, shape):
        if not self.built:
            if self._input_sample_shape is None and len(shape) >= 2:
                self._build_for(tuple(shape[1:]))
            else:
                self.build(tuple(shape))
            return
        keep = self._keep_axes(shape)
        built_shape = (None,) + tuple(self._input_sample_shape) if self._input_sample_shape is not None else None
        if built_shape is None or len(shape) != len(built_shape) or any(shape[d] != built_shape[d] for d in keep):
            raise ValueError(f"The layer was built with input_shape={built_shape}, but adapt() is being called with "
                             f"data with an incompatible shape, data.shape={tuple(shape)}")

    def _batch_statistics(self, batch):
        """(mean, variance, count) over the reduced axes of one batch, by the batch-norm statistics
        kernel (sums in double) over rows of the kept positions."""
        keep = self._keep_axes(batch.shape)
        reduce = tuple(d for d in range(batch.ndim) if d not in keep)
        rows = int(np.prod([batch.shape[d] for d in reduce], dtype=np.int64))
        if rows == 0:
            return None, None, 0
        columns = np.transpose(batch, reduce + keep).reshape(rows, -1)
        mean, variance = _core.ops.batch_norm_statistics(np.ascontiguousarray(columns, dtype=np.float32))
        return mean.astype(np.float64), variance.astype(np.float64), rows

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "invert": self.invert,
                "mean": _config_value(self.input_mean), "variance": _config_value(self.input_variance)}


def _config_value(value):
    """Keras's np.array(value).tolist(): None stays None, numbers stay numbers, arrays become lists."""
    return np.array(value).tolist()
