"""Thread control and process life: fastcnn.set_num_threads / get_num_threads, OMP_NUM_THREADS as
the default, and fork safety (libgomp's thread pool does not survive fork; a child must still
predict and train)."""

import os
import subprocess
import sys
import textwrap

import pytest

import fastcnn


def test_top_level_thread_control_round_trips():
    previous = fastcnn.get_num_threads()
    try:
        fastcnn.set_num_threads(1)
        assert fastcnn.get_num_threads() == 1
        assert fastcnn.config.get_num_threads() == 1
        fastcnn.set_num_threads(3)
        assert fastcnn.get_num_threads() == 3
    finally:
        fastcnn.set_num_threads(previous)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True, None])
def test_set_num_threads_rejects_non_positive_integers(bad):
    with pytest.raises(ValueError, match="Received: count="):
        fastcnn.set_num_threads(bad)


def _run_python(code, env_update=None, timeout=120):
    env = {**os.environ, **(env_update or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=os.path.dirname(__file__))


def test_omp_num_threads_sets_the_default():
    result = _run_python("import fastcnn; print(fastcnn.get_num_threads())", {"OMP_NUM_THREADS": "3"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_fork_after_fit_child_predicts_and_trains():
    """fit in the parent (OpenMP's pool is running), then fork: the child predicts the parent's
    numbers and trains a step; a hang is caught by the timeout."""
    code = """
        import os, sys
        import numpy as np
        import fastcnn
        from fastcnn import layers, models
        fastcnn.set_num_threads(2)
        model = models.Sequential([
            layers.Conv2D(8, (3, 3), activation="relu", input_shape=(12, 12, 1)),
            layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.random((64, 12, 12, 1)).astype(np.float32)
        y = rng.integers(0, 10, 64)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        expected = model.predict(x, verbose=0)
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                got = model.predict(x, verbose=0)
                if not np.array_equal(got, expected):
                    status = 3
                history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
                if not np.isfinite(history.history["loss"][0]):
                    status = 4
            except BaseException:
                status = 5
            os._exit(status)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status))
        # The parent keeps working after the fork too.
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        print("parent ok")
    """
    result = _run_python(code, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "child exit 0" in result.stdout, result.stdout + result.stderr
    assert "parent ok" in result.stdout


def _openmp_spin_count_read(env_update):
    """(GOMP_SPINCOUNT as libgomp read it when fastcnn loaded it, GOMP_SPINCOUNT left in
    os.environ after the import)."""
    import re

    env = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_update, OMP_DISPLAY_ENV="verbose")
    script = "import os, fastcnn; fastcnn.show_config(); print(os.environ.get('GOMP_SPINCOUNT'))"
    result = subprocess.run([sys.executable, "-c", script],
                            capture_output=True, text=True, env=env, timeout=120, cwd=os.path.dirname(__file__))
    assert result.returncode == 0, result.stderr
    read = re.search(r"GOMP_SPINCOUNT = '(\d+)'", result.stderr + result.stdout)
    assert read, result.stderr
    shown = re.search(r"GOMP_SPINCOUNT=(.*?)\)$", result.stdout, re.MULTILINE)
    assert shown, result.stdout
    return read.group(1), result.stdout.strip().splitlines()[-1], shown.group(1)


def test_openmp_threads_spin_briefly_unless_the_user_chose_otherwise():
    """fastcnn loads libgomp with 1,000 spins before a waiting thread sleeps (not libgomp's 300,000:
    on cores shared with other processes the spinning took 2-4x off every step) and removes the
    variable again, so child processes do not inherit it; a user's own settings stand."""
    assert _openmp_spin_count_read({}) == ("1000", "None", "1000 (set by fastcnn)")
    assert _openmp_spin_count_read({"GOMP_SPINCOUNT": "5000"}) == ("5000", "5000", "5000")
    spin, left, shown = _openmp_spin_count_read({"OMP_WAIT_POLICY": "active"})
    assert spin != "1000" and left == "None" and shown == "unset"
