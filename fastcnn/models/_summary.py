"""``model.summary()`` drawn as Keras 3 draws it (a rich table with heavy header lines):

    Model: "sequential"
    ┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
    ┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
    ┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
    │ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │
    ...
     Total params: 34,826 (136.04 KB)

Column widths follow Keras: line length min(88, terminal columns - 4), split at 45% / 80%, then
reduced evenly (rich's ratio_reduce) until the table with its borders and padding fits. A
functional model that is not a plain chain adds the "Connected to" column (line length 108, split
at 30% / 56% / 74%); show_trainable=True adds "Trainable" (12 more columns, positions * 0.9).
"""

import math

import numpy as np



def readable_size(size):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _ratio_reduce(total, widths):
    """Takes `total` columns off `widths`, evenly, rounding half to even as rich does."""
    remaining_ratio = len(widths)
    remaining = total
    result = []
    for width in widths:
        taken = min(width, round(remaining / remaining_ratio))
        result.append(width - taken)
        remaining -= taken
        remaining_ratio -= 1
    return result


def column_widths(line_length, positions=(0.45, 0.80, 1.0)):
    widths, current = [], 0
    for position in positions:
        width = int(position * line_length) - current
        widths.append(width)
        current += width
    padded = [w + 2 for w in widths]  # one space of padding each side
    available = line_length - (len(widths) + 1)  # outer borders and separators
    excess = sum(padded) - available
    if excess > 0:
        padded = _ratio_reduce(excess, padded)
    return [w - 2 for w in padded]


def _wrap(text, width):
    """Word-wraps `text` into lines of at most `width` characters as rich does for Keras's columns
    (overflow "ellipsis"): a word longer than the width gets a line of its own, cut to width - 1
    characters and "…"."""
    lines, current = [], ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
    lines.append(current)
    return [line if len(line) <= width else line[:width - 1] + "…" for line in lines]


def render(model_name, rows, trainable_count, non_trainable_count, optimizer_count=None, line_length=None,
           headers=("Layer (type)", "Output Shape", "Param #"), positions=(0.45, 0.80, 1.0),
           alignments=("left", "left", "right"), default_line_length=88, non_trainable_bytes=None):
    """rows: one tuple of cell texts per layer, as `headers`. non_trainable_bytes: the memory of the
    non-trainable weights where some are wider than float32 (Normalization's int64 count), else
    4 per value. Returns the summary text."""
    if line_length is None:
        import shutil  # imported here: shutil pulls in bz2/lzma, 4 ms of `import fastcnn`

        line_length = min(default_line_length, shutil.get_terminal_size().columns - 4)
    widths = column_widths(line_length, positions)

    def horizontal(left, fill, middle, right):
        return left + middle.join(fill * (w + 2) for w in widths) + right

    def cells(values, border):
        wrapped = [_wrap(value, width) for value, width in zip(values, widths)]
        height = max(len(lines) for lines in wrapped)
        out = []
        for index in range(height):
            parts = []
            for lines, width, alignment in zip(wrapped, widths, alignments):
                text = lines[index] if index < len(lines) else ""
                if alignment == "right":
                    text = text.rjust(width)
                elif alignment == "center":
                    text = text.center(width)
                else:
                    text = text.ljust(width)
                parts.append(" " + text + " ")
            out.append(border + border.join(parts) + border)
        return out

    lines = [f'Model: "{model_name}"', horizontal("┏", "━", "┳", "┓")]
    lines += cells(headers, "┃")
    lines.append(horizontal("┡", "━", "╇", "┩"))
    for index, row in enumerate(rows):
        lines += cells(row, "│")
        if index + 1 < len(rows):
            lines.append(horizontal("├", "─", "┼", "┤"))
    lines.append(horizontal("└", "─", "┴", "┘"))
    total = trainable_count + non_trainable_count + (optimizer_count or 0)
    # Every value is 4 bytes but the optimizer's iteration counter, an int64.
    optimizer_bytes = optimizer_count * 4 + 4 if optimizer_count else 0
    if non_trainable_bytes is None:
        non_trainable_bytes = non_trainable_count * 4
    total_bytes = trainable_count * 4 + non_trainable_bytes + optimizer_bytes
    lines.append(f" Total params: {total:,} ({readable_size(total_bytes)})")
    lines.append(f" Trainable params: {trainable_count:,} ({readable_size(trainable_count * 4)})")
    lines.append(f" Non-trainable params: {non_trainable_count:,} ({readable_size(non_trainable_bytes)})")
    if optimizer_count:
        lines.append(f" Optimizer params: {optimizer_count:,} ({readable_size(optimizer_bytes)})")
    return "\n".join(lines) + "\n"


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _output_shape_text(layer):
    """The output shape of the layer's last call, as Keras's format_layer_shape shows it."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if nodes:
        shapes = [_shape_text(t.shape) for t in nodes[-1].output_tensors]
        return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"
    if getattr(layer, "_output_sample_shape", None) is not None:
        return _shape_text((None,) + tuple(layer._output_sample_shape))
    return "?"


def _params_text(layer):
    return f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"


def _is_chain(model):
    """Keras's sequential_like: no node with several inputs, no two nodes at one depth, no layer
    called twice in the model."""
    nodes = model._nodes
    seen = set()
    for node in nodes:
        if len(node.input_tensors) > 1 or id(node.operation) in seen:
            return False
        seen.add(id(node.operation))
    consumers = {}
    for node in nodes:
        for tensor in node.input_tensors:
            consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    return all(count <= 1 for count in consumers.values()) and len(model._outputs) == 1 and len(model._inputs) == 1


def _connections(layer, nodes):
    """"conv2d[0][0], dense[0][0]": the tensors the layer's calls in this model read."""
    parts = []
    node_ids = {id(node) for node in nodes}
    for node in layer._inbound_nodes:
        if id(node) not in node_ids:
            continue
        for tensor in node.input_tensors:
            operation, node_index, tensor_index = tensor._keras_history
            parts.append(f"{operation.name}[{node_index}][{tensor_index}]")
    return ", ".join(parts) if parts else "-"


def summarize(model, line_length=None, show_trainable=False, optimizer_count=None):
    """Keras's model.summary() text for a Sequential or functional model."""
    functional = hasattr(model, "_nodes")
    layers = model.operations if functional else model.layers  # arithmetic operations have rows too
    chain = not functional or _is_chain(model)
    headers = ["Layer (type)", "Output Shape", "Param #"]
    alignments = ["left", "left", "right"]
    positions = [0.45, 0.80, 1.0]
    default_line_length = 88
    if not chain:
        headers.append("Connected to")
        alignments.append("left")
        positions = [0.3, 0.56, 0.74, 1.0]
        default_line_length = 108
    if show_trainable:
        default_line_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        headers.append("Trainable")
        alignments.append("center")
    nodes = model._nodes if functional else []
    input_nodes = [t.node for t in model._inputs] if functional else []
    rows = []
    for layer in layers:
        row = [f"{layer.name} ({type(layer).__name__})", _output_shape_text(layer), _params_text(layer)]
        if not chain:
            row.append(_connections(layer, nodes + input_nodes))
        if show_trainable:
            row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        rows.append(tuple(row))
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    non_trainable_bytes = sum(math.prod(w.shape) * np.dtype(w.file_dtype).itemsize for w in model.non_trainable_weights)
    return render(model.name, rows, trainable, non_trainable, optimizer_count, line_length, tuple(headers),
                  tuple(positions), tuple(alignments), default_line_length, non_trainable_bytes)
