"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum (elementwise, with Keras's
broadcasting of trailing dimensions) and Concatenate, with their functional forms
(``layers.add([a, b])``, ...). Formulas and gradients: csrc/ops/merge.h."""

from fastcnn.layers.base import Layer


def _describe(shapes):
    return [(None,) + tuple(shape) for shape in shapes]


class _ListInputLayer(Layer):
    """A layer called on a list of tensors, with no weights: building only checks the shapes (a
    shared one may be called on other shapes); the first call's shapes are its input_shape, as
    Keras records them."""

    _built_at_construction = True
    _takes_input_list = True

    def _output_sample_shape_for(self, samples):
        raise NotImplementedError

    def _build_for(self, samples):
        samples = [tuple(shape) for shape in samples]
        output = self._output_sample_shape_for(samples)
        self.built = True
        if self._input_sample_shape is None:
            self._input_sample_shape = tuple(samples)
            self._output_sample_shape = output
        return output

    def compute_output_shape(self, input_shape):
        return (None,) + self._output_sample_shape_for([tuple(shape)[1:] for shape in input_shape])

    @property
    def input_shape(self):
        if self._input_sample_shape is None:
            raise AttributeError(f"Layer {self.name!r} has not been built yet, so it has no input_shape")
        return _describe(self._input_sample_shape)

    def get_build_config(self):
        if self._input_sample_shape is None:
            return None
        return {"input_shape": _describe(self._input_sample_shape)}


class Merge(_ListInputLayer):
    """Base of the elementwise merges: several inputs of broadcastable shapes, one output."""

    _kind = None  # the runtime's merge kind

    def _check_inputs(self, samples):
        if not isinstance(samples, (list, tuple)) or not samples or not isinstance(samples[0], (list, tuple)):
            raise ValueError(f"A merge layer should be called on a list of inputs. Received: input_shape={samples} "
                             "(not a list of shapes)")

    def _output_sample_shape_for(self, samples):
        """Keras's _compute_elemwise_op_output_shape over the inputs: trailing dimensions equal or 1."""
        self._check_inputs(samples)
        output = tuple(samples[0])
        for shape in samples[1:]:
            shape = tuple(shape)
            longer, shorter = (output, shape) if len(output) >= len(shape) else (shape, output)
            merged = list(longer[:len(longer) - len(shorter)])
            for a, b in zip(longer[len(longer) - len(shorter):], shorter):
                if a == 1:
                    merged.append(b)
                elif b == 1 or a == b:
                    merged.append(a)
                else:
                    raise ValueError("Inputs have incompatible shapes. Received shapes "
                                     f"{(None,) + output} and {(None,) + shape}")
            output = tuple(merged)
        return output

    def _add_to_network(self, network):
        network.add_merge(self._kind)


class Add(Merge):
    """Sums its inputs: ``Add()([x1, x2])`` or ``layers.add([x1, x2])``."""

    _kind = "add"


class Subtract(Merge):
    """x1 - x2 for exactly two inputs."""

    _kind = "subtract"

    def _check_inputs(self, samples):
        super()._check_inputs(samples)
        if len(samples) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. Received: "
                             f"input_shape={_describe(samples)}")


class Multiply(Merge):
    """The elementwise product of its inputs (a (1, 1, C) gate times an (H, W, C) map broadcasts)."""

    _kind = "multiply"


class Average(Merge):
    _kind = "average"


class Maximum(Merge):
    _kind = "maximum"


class Minimum(Merge):
    _kind = "minimum"


class Concatenate(_ListInputLayer):
    """Joins its inputs along `axis` (default -1, the channels); the other dimensions must match."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"`axis` must be an integer. Received: axis={axis!r}")
        self.axis = axis

    def _sample_axis(self, samples):
        rank = len(samples[0]) + 1  # with the batch dimension
        axis = self.axis + rank if self.axis < 0 else self.axis
        if not 1 <= axis < rank:
            raise ValueError(f"Concatenate's `axis` must name a sample axis of inputs of rank {rank}. Received: "
                             f"axis={self.axis}")
        return axis - 1

    def _output_sample_shape_for(self, samples):
        if not isinstance(samples, (list, tuple)) or not samples or not isinstance(samples[0], (list, tuple)):
            raise ValueError("A `Concatenate` layer should be called on a list of at least 1 input. "
                             f"Received: input_shape={samples}")
        samples = [tuple(shape) for shape in samples]
        if len({len(shape) for shape in samples}) != 1:
            raise ValueError("A `Concatenate` layer requires inputs with matching shapes except for the "
                             f"concatenation axis. Received: input_shape={_describe(samples)}")
        axis = self._sample_axis(samples)
        for shape in samples[1:]:
            if any(a != b for index, (a, b) in enumerate(zip(shape, samples[0])) if index != axis):
                raise ValueError("A `Concatenate` layer requires inputs with matching shapes except for the "
                                 f"concatenation axis. Received: input_shape={_describe(samples)}")
        output = list(samples[0])
        output[axis] = sum(shape[axis] for shape in samples)
        return tuple(output)

    def _add_to_network(self, network):
        samples = self._input_sample_shape
        # The runtime's (height, width, channels) pads a sample shape with leading 1s.
        network.add_concatenate(3 - len(samples[0]) + self._sample_axis(samples))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
