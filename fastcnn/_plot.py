"""``plot_history``: training curves from ``fit``'s History, drawn with matplotlib (optional:
``pip install fastcnn[plot]``)."""

import os


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("fastcnn.utils.plot_history draws with matplotlib, which is not installed. "
                          "Install it with: pip install fastcnn[plot]") from None


def plot_history(history, path=None, metrics=None):
    """Plots the loss and accuracy curves of a training run, one panel per metric, training and
    validation (``val_*``) values against the epoch.

    Args:
        history: the History that ``model.fit`` returns, or its ``.history`` dict
            (``{'loss': [...], 'val_loss': [...], 'accuracy': [...], ...}``).
        path: if given, the figure is saved there as a PNG (written with matplotlib's
            non-interactive Agg canvas, so it works without a display and leaves pyplot's state
            alone); if None, the figure is made with pyplot, for ``plt.show()`` or a notebook.
        metrics: names to plot, e.g. ``['loss']``; default: every training metric in the
            history, loss first. Each panel also shows ``val_<name>`` when recorded.

    Returns:
        the matplotlib ``Figure``.
    """
    _matplotlib()
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError("`history` must be the History returned by fit() or its `.history` dict. "
                        f"Received: {type(history).__name__}")
    available = [key for key in logs if not key.startswith("val_")]
    if metrics is None:
        metrics = sorted(available, key=lambda key: (key != "loss", available.index(key)))
    elif isinstance(metrics, str):
        metrics = [metrics]
    metrics = list(metrics)
    unknown = [name for name in metrics if name not in logs]
    if unknown:
        raise ValueError(f"`metrics` names values the history does not hold: {unknown}. The history holds: "
                         f"{sorted(logs)}")
    if not metrics:
        raise ValueError("The history holds no metrics to plot (was fit run for at least one epoch?). "
                         f"Received: {logs!r}")
    if path is not None:
        # Agg directly: no GUI backend is started and the figure is not kept by pyplot.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(5 * len(metrics), 4), layout="constrained")
        FigureCanvasAgg(figure)
    else:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=(5 * len(metrics), 4), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, name in zip(axes, metrics):
        epochs = len(logs[name])
        for key, label, style in ((name, "training", "-o"), (f"val_{name}", "validation", "-s")):
            values = logs.get(key)
            if values:
                # fit(validation_freq=k) validates at epochs k, 2k, ...: fewer values, spaced k apart.
                spacing = epochs // len(values) if len(values) < epochs and epochs % len(values) == 0 else 1
                ax.plot([spacing * (i + 1) for i in range(len(values))], [float(v) for v in values], style,
                        label=label, markersize=3)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if path is not None:
        figure.savefig(os.fspath(path), format="png", dpi=100)
    return figure
