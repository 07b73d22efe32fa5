"""Process-wide settings: threads and the kernel set, and what a bug report needs."""

import os
import platform

from fastcnn import _core


def get_num_threads():
    """Threads the kernels use (OpenMP; ``OMP_NUM_THREADS`` sets the default)."""
    return _core.get_num_threads()


def set_num_threads(count):
    """Sets the threads the kernels called from this thread use (also ``fastcnn.set_num_threads``).

    OpenMP keeps the count per calling thread: ``fit`` and ``predict`` run on the caller's, and a
    thread started later begins with ``OMP_NUM_THREADS``'s default (the data pipeline's workers
    set theirs to 1).

    fastcnn's kernels never call numpy's BLAS, so its OpenMP threads and OpenBLAS's do not nest.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f"`count` must be a positive integer. Received: count={count!r}")
    _core.set_num_threads(count)


def kernel_set():
    """The kernel implementation in use: 'avx512', 'avx2', 'generic' or 'reference'.

    Chosen from the CPU at import; ``FASTCNN_KERNELS=generic`` (or ``reference``) forces another.
    """
    return _core.kernel_set()


def set_kernel_set(name):
    if name not in _core.available_kernels():
        raise ValueError(
            f"Unknown or unavailable kernel set. Expected one of {_core.available_kernels()}. Received: name={name!r}"
        )
    _core.select_kernels(name)


def openmp_runtime():
    """The OpenMP runtime library loaded in this process: (path, bundled) or (None, False).

    A wheel from scripts/build_wheel.sh carries its own libgomp (in ``fastcnn.libs``); a source
    build uses the compiler's. Read from /proc/self/maps, so Linux only.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps if line.count(" ") >= 5 and "/lib" in line}
    except OSError:
        return None, False
    for path in sorted(paths):
        name = os.path.basename(path)
        if name.startswith(("libgomp", "libiomp", "libomp")):
            return path, os.path.basename(os.path.dirname(path)) == "fastcnn.libs"
    return None, False


def show_config():
    """Prints the version, kernel set, threads, OpenMP runtime and platform."""
    import numpy

    from fastcnn._openmp_environment import spin_count_set_by_fastcnn
    from fastcnn._version import __version__

    gomp, bundled = openmp_runtime()
    if gomp is None:
        runtime = "unknown (not found in /proc/self/maps)"
    else:
        runtime = f"{os.path.basename(gomp)} ({'bundled with the wheel' if bundled else 'system'}: {gomp})"
    lines = [
        f"fastcnn {__version__} ({os.path.dirname(os.path.abspath(__file__))})",
        f"kernels: {kernel_set()} (available: {', '.join(_core.available_kernels())}; "
        f"FASTCNN_KERNELS={os.environ.get('FASTCNN_KERNELS', 'unset')})",
        f"threads: {get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, GOMP_SPINCOUNT="
        f"{'1000 (set by fastcnn)' if spin_count_set_by_fastcnn else os.environ.get('GOMP_SPINCOUNT', 'unset')})",
        f"openmp: {runtime}",
        f"numpy: {numpy.__version__}",
        f"python: {platform.python_version()} on {platform.machine()} {platform.system()}",
    ]
    print("\n".join(lines))
