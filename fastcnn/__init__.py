"""fastcnn: Keras-compatible convolutional neural networks, trained by C++17/OpenMP kernels.

Change ``from tensorflow.keras import layers, models`` to ``from fastcnn import layers, models``.
"""

try:
    from fastcnn import _core  # noqa: F401  (the compiled kernels and training runtime)
except ImportError as error:  # pragma: no cover - only without a build
    import os as _os

    raise ImportError(
        "fastcnn's compiled extension (fastcnn._core) could not be imported from "
        f"{_os.path.dirname(__file__)}. If that is the source checkout, install the package "
        "(pip install .) and run from another directory, or run pytest, which imports the "
        f"installed copy. Cause: {error}"
    ) from error
from fastcnn import (  # noqa: F401
    activations,
    callbacks,
    config,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    utils,
)
from fastcnn.config import show_config  # noqa: F401
from fastcnn.models import Sequential  # noqa: F401

__version__ = "0.1.0"

__all__ = [
    "activations",
    "callbacks",
    "config",
    "datasets",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "utils",
    "Sequential",
    "show_config",
    "__version__",
]
