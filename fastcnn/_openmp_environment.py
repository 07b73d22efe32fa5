"""The OpenMP settings fastcnn chooses before libgomp loads with the compiled module."""

import os

# Whether `import fastcnn` set GOMP_SPINCOUNT for the load (config.show_config reports it).
spin_count_set_by_fastcnn = False


def short_openmp_spin():
    """OpenMP's (libgomp's) threads wait for the next parallel region by spinning GOMP_SPINCOUNT
    times (300,000 by default: milliseconds) before they sleep, and every layer runs one or more
    regions. Where other processes share the cores, that spinning takes the core from the thread
    the region waits for: 2-4x slower steps (benchmarks/thread_wait_policy.py). 1,000 spins cost
    2-5% on an idle machine and are 1.5-2x faster beside busy processes. libgomp reads its
    settings once, when it loads with the compiled module; they are left as they are when the
    user set either. Returns whether it was set; `restore_after_load` removes it again, so that
    child processes do not inherit it."""
    global spin_count_set_by_fastcnn
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return False
    os.environ["GOMP_SPINCOUNT"] = "1000"
    spin_count_set_by_fastcnn = True
    return True


def restore_after_load():
    """Removes the GOMP_SPINCOUNT that `short_openmp_spin` set (libgomp has read it by now)."""
    if spin_count_set_by_fastcnn:
        os.environ.pop("GOMP_SPINCOUNT", None)
