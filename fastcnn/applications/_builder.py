"""What every application builder does around its layers: the input tensor, the model's inputs,
the pooling head of a headless model."""

from fastcnn import layers
from fastcnn.layers.node import KerasTensor


def image_input(input_shape, input_tensor):
    """The builder's input tensor: `input_tensor` (a symbolic tensor such as `keras.Input(...)`'s
    output) or a new Input of `input_shape`. fastcnn builds models with every dimension known,
    so a headless model without `input_shape` (Keras's (None, None, 3)) is refused."""
    if input_tensor is not None:
        if not isinstance(input_tensor, KerasTensor):
            raise ValueError("fastcnn's applications take a symbolic `input_tensor` (the output of "
                             f"`keras.Input(...)` or of a layer). Received: input_tensor={input_tensor!r}")
        return input_tensor
    if None in input_shape:
        raise ValueError("fastcnn needs every input dimension known: pass `input_shape`, e.g. "
                         f"input_shape=(224, 224, 3). Received: input_shape={input_shape}")
    return layers.Input(shape=input_shape)


def source_inputs(tensor):
    """The Input tensors that `tensor` derives from, in order of discovery (Keras's
    operation_utils.get_source_inputs)."""
    found, seen, stack = [], set(), [tensor]
    while stack:
        current = stack.pop()
        node = current.node
        if node.is_input:
            if id(current) not in seen:
                seen.add(id(current))
                found.append(current)
            continue
        stack.extend(reversed(node.input_tensors))
    return found[0] if len(found) == 1 else found


def model_inputs(input_tensor, image):
    return source_inputs(input_tensor) if input_tensor is not None else image


def pooling_head(x, pooling, average_name=None, max_name=None):
    """A headless model's optional global pooling: "avg", "max" or None."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=average_name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=max_name)(x)
    return x
