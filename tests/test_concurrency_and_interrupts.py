"""Threads and interrupts: the GIL is released inside every kernel and training step, threads
sharing a model see whole steps only, and Ctrl-C during fit lands between steps and leaves a model
that predicts, saves and trains on."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastcnn
from fastcnn import callbacks, constraints, layers, models, utils
from fastcnn._core import ops

# ---- the GIL is released inside kernels and steps ----


def _main_thread_progress_inside(run_calls):
    """Runs `run_calls(window, windows)` in a worker thread, where `window(call)` times one call
    into fastcnn (or the worker appends (start, end) times to `windows` itself), while this thread
    counts loop turns. The switch interval is raised to 30 s, so a thread holding
    the GIL keeps it until it releases it itself: turns counted inside a call's time are possible
    only if that call released the GIL. Returns (turns inside calls, number of calls)."""
    windows = []

    def window(call):
        start = time.perf_counter()
        call()
        windows.append((start, time.perf_counter()))

    stamps = []
    failure = []

    def worker():
        try:
            run_calls(window, windows)
        except BaseException as error:  # reported below, in the test's thread
            failure.append(error)

    previous_interval = sys.getswitchinterval()
    previous_threads = fastcnn.get_num_threads()
    fastcnn.set_num_threads(1)  # the kernel takes one core; this thread has the other
    sys.setswitchinterval(30.0)
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        while thread.is_alive():
            stamps.append(time.perf_counter())
            time.sleep(0)  # lets the worker take the GIL back whenever it wants it
        thread.join()
    finally:
        sys.setswitchinterval(previous_interval)
        fastcnn.set_num_threads(previous_threads)
    if failure:
        raise failure[0]
    stamps = np.array(stamps)
    inside = sum(int(np.count_nonzero((stamps > start) & (stamps < end))) for start, end in windows)
    return inside, len(windows)


def _random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


KERNEL_CALLS = {
    "conv2d_forward": lambda: ops.conv2d_forward(_random((8, 48, 48, 32)), _random((3, 3, 32, 64), 1)),
    "conv2d_backward_input": lambda: ops.conv2d_backward_input(_random((8, 46, 46, 64)), _random((3, 3, 32, 64), 1),
                                                               (8, 48, 48, 32)),
    "conv2d_backward_kernel": lambda: ops.conv2d_backward_kernel(_random((8, 48, 48, 32)), _random((8, 46, 46, 64), 1),
                                                                 (3, 3)),
    "dense_forward": lambda: ops.dense_forward(_random((512, 2048)), _random((2048, 512), 1)),
    "dense_backward_kernel": lambda: ops.dense_backward_kernel(_random((512, 2048)), _random((512, 512), 1)),
    "max_pool2d_forward": lambda: ops.max_pool2d_forward(_random((16, 96, 96, 32)), (2, 2), (2, 2)),
    "batch_norm_forward": lambda: ops.batch_norm_forward(_random((16, 96, 96, 32)), np.zeros(32, np.float32),
                                                         np.ones(32, np.float32)),
    "activation_forward": lambda: ops.activation_forward("relu", _random((16, 96, 96, 32))),
    "projective_transform": lambda: ops.projective_transform(
        _random((16, 96, 96, 8)), np.tile(np.array([[1, 0.1, 0, 0.1, 1, 0, 0, 0]], np.float32), (16, 1))),
}


@pytest.mark.parametrize("name", sorted(KERNEL_CALLS))
def test_kernels_release_the_gil(name):
    call = KERNEL_CALLS[name]

    def run_calls(window, windows):
        for _ in range(3):
            window(call)

    inside, calls = _main_thread_progress_inside(run_calls)
    assert calls == 3
    assert inside >= 30, f"{name}: the main thread ran only {inside} loop turns during 3 calls"


def _conv_model(input_shape=(32, 32, 3), units=10, constraint=None, seed=0):
    utils.set_random_seed(seed)
    model = models.Sequential([
        layers.Input(input_shape),
        layers.Conv2D(16, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(units, activation="softmax", kernel_constraint=constraint),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_training_steps_evaluation_and_predict_release_the_gil():
    model = _conv_model()
    x = _random((256, 32, 32, 3))
    y = np.arange(256) % 10

    class StepWindows(callbacks.Callback):
        """Times each training batch: the step (one C++ call) and its bookkeeping."""

        def __init__(self, windows):
            super().__init__()
            self.windows, self.start = windows, None

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.windows.append((self.start, time.perf_counter()))

    def run_calls(window, windows):
        model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[StepWindows(windows)])
        window(lambda: model.evaluate(x, y, batch_size=256, verbose=0))
        window(lambda: model.predict(x, batch_size=256, verbose=0))

    inside, calls = _main_thread_progress_inside(run_calls)
    assert calls == 4 + 2  # 4 training steps, evaluate, predict
    assert inside >= 30, f"the main thread ran {inside} loop turns during 4 training steps, evaluate and predict"


def test_concurrent_predicts_give_the_serial_result():
    model = _conv_model()
    x = _random((300, 32, 32, 3))
    expected = model.predict(x, batch_size=50, verbose=0)
    results, failures = [], []

    def predict_many():
        try:
            for _ in range(4):
                results.append(model.predict(x, batch_size=50, verbose=0))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=predict_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures
    assert len(results) == 16
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_fit_concurrent_with_predict_sees_whole_steps_and_trains_as_alone():
    """While one thread fits, others predict: every prediction is the model's output after a whole
    number of steps (constraint applied), and the trained weights are bitwise those of fit alone."""
    x = _random((192, 32, 32, 3))
    y = np.arange(192) % 10
    probe = _random((40, 32, 32, 3), 5)

    alone = _conv_model(constraint=constraints.MaxNorm(0.5))
    utils.set_random_seed(7)
    alone.fit(x, y, batch_size=16, epochs=2, verbose=0)

    model = _conv_model(constraint=constraints.MaxNorm(0.5))
    snapshots = [model.get_weights()]

    class Snapshot(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            snapshots.append(model.get_weights())

    predictions, failures = [], []
    done = threading.Event()

    def predict_while_fitting():
        try:
            while not done.is_set():
                predictions.append(model.predict(probe, batch_size=40, verbose=0))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=predict_while_fitting) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        utils.set_random_seed(7)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[Snapshot()])
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=300)
    assert not failures, failures
    assert predictions
    for got, want in zip(model.get_weights(), alone.get_weights()):
        np.testing.assert_array_equal(got, want)

    checker = _conv_model(constraint=constraints.MaxNorm(0.5))
    allowed = []
    for weights in snapshots:
        checker.set_weights(weights)
        allowed.append(checker.predict(probe, batch_size=40, verbose=0))
    for prediction in predictions:
        assert any(np.array_equal(prediction, candidate) for candidate in allowed), \
            "a prediction made during fit matches no whole-step state of the model"


# ---- Ctrl-C during fit ----

INTERRUPTED_FIT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import fastcnn
    from fastcnn import callbacks, constraints, layers, models, utils

    GENERATOR = sys.argv[1] == "generator"

    def build():
        utils.set_random_seed(0)
        model = models.Sequential([
            layers.Input((24, 24, 1)),
            layers.Conv2D(16, (3, 3), activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(10, activation="softmax", kernel_constraint=constraints.MaxNorm(0.5)),
        ])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    rng = np.random.default_rng(0)
    x = rng.random((256, 24, 24, 1)).astype(np.float32)
    y = rng.integers(0, 10, 256)

    def batches():
        while True:
            for start in range(0, 256, 32):
                yield x[start:start + 32], y[start:start + 32]

    def fit(model, epochs, extra):
        if GENERATOR:
            return model.fit(batches(), steps_per_epoch=8, epochs=epochs, verbose=0, callbacks=extra)
        return model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=extra)

    class Started(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == 20:
                print("started", flush=True)

    model = build()
    try:
        fit(model, 100000, [Started()])
        print("fit ended without an interrupt", flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)

    steps = int(model.optimizer.iterations)
    weights = model.get_weights()
    assert all(np.isfinite(w).all() for w in weights), "non-finite weights after the interrupt"

    # The same run stopped after exactly `steps` steps must give bitwise the interrupted weights.
    class StopAt(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == steps:
                self.model.stop_training = True

    replay = build()
    fit(replay, 100000, [StopAt()])
    assert int(replay.optimizer.iterations) == steps
    for got, want in zip(weights, replay.get_weights()):
        assert np.array_equal(got, want), "interrupted weights are not those of a whole number of steps"

    # Still usable: predicts, saves, loads and trains on.
    assert np.isfinite(model.predict(x[:8], verbose=0)).all()
    path = os.path.join(sys.argv[2], "interrupted.weights.h5")
    model.save_weights(path)
    again = build()
    again.load_weights(path)
    for got, want in zip(again.get_weights(), model.get_weights()):
        assert np.array_equal(got, want)
    history = fit(model, 1, [])
    assert np.isfinite(history.history["loss"][0])
    print("consistent after", steps, "steps", flush=True)
""")


@pytest.mark.parametrize("source", ["arrays", "generator"])
def test_sigint_during_fit_lands_between_steps_and_leaves_a_whole_model(tmp_path, source):
    script = tmp_path / "interrupted_fit.py"
    script.write_text(INTERRUPTED_FIT)
    # The child starts with SIGINT's default disposition, as under a terminal, whatever this process
    # inherited: a test run started in the background by a shell without job control ignores SIGINT,
    # and Python keeps an inherited SIG_IGN (the child would then never be interrupted).
    child = subprocess.Popen([sys.executable, str(script), source, str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=str(tmp_path),
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = child.stdout.readline()
        assert line.strip() == "started", line + child.stderr.read()
        time.sleep(0.05)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        line = child.stdout.readline()
        assert line.startswith("interrupted"), line + child.stderr.read()
        latency = float(line.split()[1]) - sent
        stdout, stderr = child.communicate(timeout=240)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()  # closes the pipes whichever way the test ended
    assert child.returncode == 0, stdout + stderr
    assert "consistent after" in stdout, stdout + stderr
    # A step of this model takes a few milliseconds; "within about one batch" with room for a
    # loaded machine.
    assert latency < 2.0, f"KeyboardInterrupt came {latency:.2f} s after SIGINT"


def test_interrupt_deferral_restores_the_previous_handler():
    model = _conv_model()
    x = _random((32, 32, 32, 3))
    y = np.arange(32) % 10
    before = signal.getsignal(signal.SIGINT)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model.train_on_batch(x, y)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_users_own_sigint_handler_is_left_alone():
    seen = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        model = _conv_model()
        x = _random((32, 32, 32, 3))
        y = np.arange(32) % 10

        class Interrupt(callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                assert signal.getsignal(signal.SIGINT) is not fastcnn.models._step_guard._defer_during_steps
                os.kill(os.getpid(), signal.SIGINT)

        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[Interrupt()])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [signal.SIGINT, signal.SIGINT]
