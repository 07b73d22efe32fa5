"""``model.summary()`` drawn as Keras 3 draws it (a rich table with heavy header lines):

    Model: "sequential"
    ┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
    ┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
    ┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
    │ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │
    ...
     Total params: 34,826 (136.04 KB)

Column widths follow Keras: line length min(88, terminal columns - 4), split at 45% / 80%, then
reduced evenly (rich's ratio_reduce) until the table with its borders and padding fits.
"""



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


def column_widths(line_length):
    positions = (0.45, 0.80, 1.0)
    widths, current = [], 0
    for position in positions:
        width = int(position * line_length) - current
        widths.append(width)
        current += width
    padded = [w + 2 for w in widths]  # one space of padding each side
    available = line_length - 4  # two outer borders, two separators
    excess = sum(padded) - available
    if excess > 0:
        padded = _ratio_reduce(excess, padded)
    return [w - 2 for w in padded]


def _wrap(text, width):
    """Word-wraps `text` into lines of at most `width` characters (long words are cut)."""
    lines, current = [], ""
    for word in text.split(" "):
        while len(word) > width:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= width:
            current = candidate
        else:
            lines.append(current)
            current = word
    lines.append(current)
    return lines


def render(model_name, rows, trainable_count, non_trainable_count, optimizer_count=None, line_length=None):
    """rows: (name_and_type, output_shape_text, param_text) per layer. Returns the summary text."""
    if line_length is None:
        import shutil  # imported here: shutil pulls in bz2/lzma, 4 ms of `import fastcnn`

        line_length = min(88, shutil.get_terminal_size().columns - 4)
    widths = column_widths(line_length)
    alignments = ("left", "left", "right")

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
                parts.append(" " + (text.rjust(width) if alignment == "right" else text.ljust(width)) + " ")
            out.append(border + border.join(parts) + border)
        return out

    lines = [f'Model: "{model_name}"', horizontal("┏", "━", "┳", "┓")]
    lines += cells(("Layer (type)", "Output Shape", "Param #"), "┃")
    lines.append(horizontal("┡", "━", "╇", "┩"))
    for index, row in enumerate(rows):
        lines += cells(row, "│")
        if index + 1 < len(rows):
            lines.append(horizontal("├", "─", "┼", "┤"))
    lines.append(horizontal("└", "─", "┴", "┘"))
    total = trainable_count + non_trainable_count + (optimizer_count or 0)
    # Every value is 4 bytes but the optimizer's iteration counter, an int64.
    optimizer_bytes = optimizer_count * 4 + 4 if optimizer_count else 0
    total_bytes = (trainable_count + non_trainable_count) * 4 + optimizer_bytes
    lines.append(f" Total params: {total:,} ({readable_size(total_bytes)})")
    lines.append(f" Trainable params: {trainable_count:,} ({readable_size(trainable_count * 4)})")
    lines.append(f" Non-trainable params: {non_trainable_count:,} ({readable_size(non_trainable_count * 4)})")
    if optimizer_count:
        lines.append(f" Optimizer params: {optimizer_count:,} ({readable_size(optimizer_bytes)})")
    return "\n".join(lines) + "\n"
