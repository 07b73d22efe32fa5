"""fastcnn: Keras-compatible convolutional neural networks, trained by C++17/OpenMP kernels.

Change ``from tensorflow.keras import layers, models`` to ``from fastcnn import layers, models``.
"""

from fastcnn._version import __version__


def _installed_core():
    """The compiled module of the installed fastcnn, for a source checkout on sys.path.

    After `pip install .`, running `python -m fastcnn` in the repository root imports this
    uncompiled folder (the current directory comes first on sys.path); its pure-Python modules
    are the ones just installed, so it borrows the installed copy's compiled `_core`.
    """
    import importlib.metadata
    import importlib.util
    import sys

    try:
        distribution = importlib.metadata.distribution("fastcnn")
    except importlib.metadata.PackageNotFoundError:
        return None
    if distribution.version != __version__:
        return None
    for file in distribution.files or []:
        if file.parent.name == "fastcnn" and file.name.startswith("_core.") and file.suffix in (".so", ".pyd"):
            spec = importlib.util.spec_from_file_location("fastcnn._core", distribution.locate_file(file))
            module = importlib.util.module_from_spec(spec)
            sys.modules["fastcnn._core"] = module
            spec.loader.exec_module(module)
            return module
    return None


from fastcnn import _openmp_environment  # noqa: E402

_openmp_environment.short_openmp_spin()
try:
    from fastcnn import _core  # noqa: F401  (the compiled kernels and training runtime)
except ImportError as error:
    _core = _installed_core()
    if _core is None:
        import os as _os

        raise ImportError(
            "fastcnn's compiled extension (fastcnn._core) could not be imported from "
            f"{_os.path.dirname(__file__)}, and no installed fastcnn {__version__} provides one. "
            "Install the package (pip install .). Cause: " + str(error)
        ) from error

finally:
    _openmp_environment.restore_after_load()

from fastcnn.config import get_num_threads, set_num_threads, show_config  # noqa: E402,F401

# The kernel set is chosen on first use; choosing it here makes a FASTCNN_KERNELS that names a set
# this CPU cannot run (or no set) fail the import with a ValueError naming it, not a later call.
_core.kernel_set()

__all__ = [
    "activations",
    "applications",
    "callbacks",
    "config",
    "constraints",
    "data",
    "datasets",
    "distributed",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "regularizers",
    "saving",
    "utils",
    "Input",
    "Model",
    "Sequential",
    "get_num_threads",
    "set_num_threads",
    "show_config",
    "__version__",
]

# Submodules are imported on first use (PEP 562), as numpy and scipy do: `import fastcnn` loads the
# compiled runtime and the thread settings only, and `from fastcnn import layers, models`,
# `fastcnn.layers.Dense` or `import fastcnn.utils` import what they name (and what that needs).
# A script that builds and trains a model pays for layers and models (about 12 ms here) but not for
# the data sets, the config (de)serializers, the utilities or the callbacks until it uses them.
_LAZY_SUBMODULES = ("activations", "applications", "callbacks", "constraints", "data", "datasets", "distributed",
                    "initializers", "layers", "losses", "metrics", "models", "ops", "optimizers", "regularizers",
                    "saving", "utils")


def __getattr__(name):
    import importlib

    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"fastcnn.{name}")
    if name in ("Sequential", "Model"):
        return getattr(importlib.import_module("fastcnn.models"), name)
    if name == "Input":
        return importlib.import_module("fastcnn.layers").Input
    raise AttributeError(f"module 'fastcnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES) | {"Input", "Model", "Sequential"})
