"""Process-wide settings: threads and the kernel set, and what a bug report needs."""

import os
import platform

from fastcnn import _core


def get_num_threads():
    """Threads the kernels use (OpenMP; ``OMP_NUM_THREADS`` sets the default)."""
    return _core.get_num_threads()


def set_num_threads(count):
    """Sets the threads every later kernel uses (also ``fastcnn.set_num_threads``).

    fastcnn's kernels never call numpy's BLAS, so its OpenMP threads and OpenBLAS's do not nest.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f"`count` must be a positive integer. Received: count={count!r}")
    _core.set_num_threads(count)


def kernel_set():
    """The kernel implementation in use: 'avx2', 'generic' or 'reference'.

    Chosen from the CPU at import; ``FASTCNN_KERNELS=generic`` (or ``reference``) forces another.
    """
    return _core.kernel_set()


def set_kernel_set(name):
    if name not in _core.available_kernels():
        raise ValueError(
            f"Unknown or unavailable kernel set. Expected one of {_core.available_kernels()}. Received: name={name!r}"
        )
    _core.select_kernels(name)


def show_config():
    """Prints the version, kernel set, threads and platform."""
    import fastcnn

    lines = [
        f"fastcnn {fastcnn.__version__}",
        f"kernels: {kernel_set()} (available: {', '.join(_core.available_kernels())})",
        f"threads: {get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})",
        f"python: {platform.python_version()} on {platform.machine()} {platform.system()}",
    ]
    print("\n".join(lines))
