"""Callbacks against Keras 3's own: the same scripted logs drive keras.callbacks.X on a Keras model and
fastcnn.callbacks.X on a fastcnn model, and the stopping epoch, restored weights, learning rates,
printed messages, warnings, CSV bytes and checkpoint files must agree. Then the same callbacks
through fit, and the hook order and log keys of fit/evaluate/predict against Keras's fit."""

import os
import warnings

import numpy as np
import pytest

from fastcnn import callbacks, layers, models, optimizers


def _fastcnn_model(lr=0.01):
    model = models.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizers.SGD(learning_rate=lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _keras_model(keras, lr=0.01):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(learning_rate=lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    # Keras infers mode='auto' for a metric from the model's built metrics.
    model.evaluate(np.zeros((2, 4)), np.zeros(2), verbose=0)
    return model


def _mark(model, epoch):
    """Every weight = epoch + 1, so the weights a callback restores or saves tell their epoch."""
    model.set_weights([np.full(np.shape(w), epoch + 1.0, dtype=np.float32) for w in model.get_weights()])


def _marker(weights):
    values = {float(v) for w in weights for v in np.ravel(w)}
    assert len(values) == 1, values
    return values.pop()


def _epoch_logs(monitored, monitor="val_loss"):
    """Epoch logs as fit makes them (sorted keys), with `monitor` following the script."""
    logs = []
    for epoch, value in enumerate(monitored):
        entry = {"accuracy": 0.5 + 0.01 * epoch, "loss": 1.0 - 0.01 * epoch,
                 "val_accuracy": 0.4 + 0.01 * epoch, "val_loss": 1.1 - 0.01 * epoch}
        if value is not None:
            entry[monitor] = float(value)
        else:
            entry.pop(monitor, None)
        logs.append(dict(sorted(entry.items())))
    return logs


def _drive_epochs(callback, model, epoch_logs):
    """Calls the hooks fit would for these epoch logs, weights marked per epoch; returns the logs
    as the callbacks left them (one per epoch run)."""
    callback.set_model(model)
    callback.set_params({"verbose": 0, "epochs": len(epoch_logs), "steps": 1})
    model.stop_training = False
    callback.on_train_begin({})
    seen = []
    for epoch, logs in enumerate(epoch_logs):
        _mark(model, epoch)
        callback.on_epoch_begin(epoch, {})
        logs = dict(logs)
        callback.on_epoch_end(epoch, logs)
        seen.append(logs)
        if model.stop_training:
            break
    callback.on_train_end(dict(seen[-1]) if seen else {})
    return seen


def _side_by_side(keras, capsys, ours, theirs, drive, lr=0.01):
    """Runs drive(callback, model) for fastcnn's callback on a fastcnn model and Keras's on a Keras
    model; returns each side's result, printed text and warning messages."""
    results = {}
    for key, callback, model in (("ours", ours, _fastcnn_model(lr)), ("theirs", theirs, _keras_model(keras, lr))):
        capsys.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = drive(callback, model)
        # (Keras's own numpy DeprecationWarnings are not the callbacks' messages)
        messages = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
        results[key] = (result, capsys.readouterr().out, messages, model)
    return results["ours"], results["theirs"]


# --------------------------------------------------------------------------------------------
# EarlyStopping
# --------------------------------------------------------------------------------------------

EARLY_STOPPING_CASES = [
    ({}, [1.0, 0.9, 0.95, 0.8]),
    ({"patience": 2}, [1.0, 0.9, 0.91, 0.92, 0.93, 0.5]),
    ({"patience": 2, "restore_best_weights": True, "verbose": 1}, [1.0, 0.9, 0.91, 0.92, 0.93, 0.5]),
    ({"patience": 1, "min_delta": 0.05, "restore_best_weights": True, "verbose": 1}, [1.0, 0.97, 0.96, 0.9, 0.89, 0.88]),
    ({"patience": 1, "min_delta": -0.05, "verbose": 1}, [1.0, 0.97, 0.96, 0.9, 0.89, 0.88]),  # |min_delta|
    ({"monitor": "val_accuracy", "patience": 1, "restore_best_weights": True, "verbose": 1},
     [0.5, 0.6, 0.6, 0.55, 0.7]),
    ({"monitor": "accuracy", "mode": "min", "patience": 0}, [0.5, 0.4, 0.45, 0.3]),
    ({"monitor": "loss", "mode": "max", "patience": 1}, [0.5, 0.6, 0.55, 0.5, 0.7]),
    ({"baseline": 0.5, "patience": 2, "restore_best_weights": True, "verbose": 1}, [0.9, 0.8, 0.7, 0.6, 0.4]),
    ({"baseline": 0.85, "patience": 2, "restore_best_weights": True, "verbose": 1}, [0.9, 0.8, 0.84, 0.83, 0.9]),
    ({"start_from_epoch": 2, "restore_best_weights": True, "verbose": 1}, [1.0, 2.0, 3.0, 2.5, 2.6, 2.7]),
    ({"restore_best_weights": True, "patience": 5, "verbose": 1}, [1.0, 0.5, 0.7, 0.8]),  # ends without stopping
    ({"restore_best_weights": True, "patience": 1, "verbose": 1}, [float("nan"), 1.0, float("nan"), 1.2, 0.9]),
    ({"mode": "min", "monitor": "val_los", "restore_best_weights": True}, [1.0, 0.9, 0.8]),  # never logged
    ({"patience": 1, "restore_best_weights": True}, [1.0, None, 0.9, None, 1.1, 1.2]),  # validation_freq=2
    ({"mode": "sideways", "patience": 0, "verbose": 1}, [1.0, 1.1]),  # unknown mode: warning, then auto
]


def _random_early_stopping_cases(count=24):
    rng = np.random.default_rng(5)
    cases = []
    for _ in range(count):
        kwargs = {"patience": int(rng.integers(0, 4)), "min_delta": float(rng.choice([0.0, 0.01, 0.05])),
                  "restore_best_weights": bool(rng.integers(0, 2)), "start_from_epoch": int(rng.integers(0, 3)),
                  "verbose": 1}
        if rng.random() < 0.3:
            kwargs["baseline"] = float(rng.uniform(0.6, 1.0))
        # a noisy decrease that flattens out: improvements, plateaus and relapses
        values = 1.0 + np.cumsum(rng.normal(-0.02, 0.04, size=int(rng.integers(3, 12))))
        cases.append((kwargs, [round(float(v), 3) for v in values]))
    return cases


@pytest.mark.parametrize("kwargs,script", EARLY_STOPPING_CASES + _random_early_stopping_cases())
def test_early_stopping_matches_keras(keras, capsys, kwargs, script):
    monitor = kwargs.get("monitor", "val_loss")
    logs = _epoch_logs(script, "val_loss" if monitor == "val_los" else monitor)

    def drive(callback, model):
        seen = _drive_epochs(callback, model, logs)
        return (len(seen), _marker(model.get_weights()), callback.stopped_epoch, callback.best,
                callback.best_epoch, callback.wait)

    with warnings.catch_warnings(record=True) as construction:
        warnings.simplefilter("always")
        ours, theirs = callbacks.EarlyStopping(**kwargs), keras.callbacks.EarlyStopping(**kwargs)
    assert len(construction) == 2 * (kwargs.get("mode", "auto") == "sideways")
    if construction:
        assert str(construction[0].message) == str(construction[1].message)
    (ours_result, ours_out, ours_warnings, _), (theirs_result, theirs_out, theirs_warnings, _) = \
        _side_by_side(keras, capsys, ours, theirs, drive)
    # epochs run, the epoch whose weights the model ends with, and the callback's state
    np.testing.assert_equal(ours_result, theirs_result)
    assert ours_out == theirs_out
    assert ours_warnings == theirs_warnings


def test_early_stopping_restores_the_best_epoch_when_training_ends_without_stopping(keras, capsys):
    """Keras 3 restores the best weights at the end of training even when patience never ran out."""
    (result, out, _, _), _ = _side_by_side(
        keras, capsys, callbacks.EarlyStopping(patience=10, restore_best_weights=True, verbose=1),
        keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True, verbose=1),
        lambda callback, model: (len(_drive_epochs(callback, model, _epoch_logs([3.0, 1.0, 2.0, 2.5]))),
                                 _marker(model.get_weights())))
    assert result == (4, 2.0)  # ran all 4 epochs, ends with epoch 2's weights (marker = epoch + 1)
    assert out == "Restoring model weights from the end of the best epoch: 2.\n"


def test_early_stopping_auto_mode_needs_a_known_direction(keras, capsys):
    logs = _epoch_logs([0.1, 0.2], "learning_rate")
    errors = []
    for callback, model in ((callbacks.EarlyStopping(monitor="learning_rate"), _fastcnn_model()),
                            (keras.callbacks.EarlyStopping(monitor="learning_rate"), _keras_model(keras))):
        with pytest.raises(ValueError) as error:
            _drive_epochs(callback, model, logs)
        errors.append(str(error.value))
    assert errors[0] == errors[1]
    assert "monitor=learning_rate" in errors[0] and "mode='max'" in errors[0]


# --------------------------------------------------------------------------------------------
# ReduceLROnPlateau and LearningRateScheduler
# --------------------------------------------------------------------------------------------

def _lr_trace(callback, model, epoch_logs):
    seen = _drive_epochs(callback, model, epoch_logs)
    return ([logs.get("learning_rate") for logs in seen], float(np.float32(model.optimizer.learning_rate)),
            getattr(callback, "wait", None), getattr(callback, "cooldown_counter", None))


REDUCE_LR_CASES = [
    ({}, [1.0] * 15, 0.01),
    ({"factor": 0.5, "patience": 1, "verbose": 1}, [1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8], 0.01),
    ({"factor": 0.5, "patience": 1, "cooldown": 2, "min_lr": 1e-3, "verbose": 1}, [1.0] * 12, 0.01),
    ({"factor": 0.2, "patience": 0, "min_delta": 0.1, "verbose": 1}, [1.0, 0.95, 0.85, 0.84, 0.5], 0.1),
    ({"monitor": "val_accuracy", "patience": 1, "factor": 0.5, "verbose": 1}, [0.5, 0.6, 0.6, 0.6, 0.7, 0.7], 0.3),
    ({"monitor": "loss", "mode": "max", "patience": 0, "verbose": 1}, [0.5, 0.4, 0.45, 0.6], 0.3),
    # min_lr rounds up in float32 (0.1 -> 0.10000000149): once the rate is there, Keras's float32
    # comparison does not "reduce" it again (a float64 one would, printing a message each time)
    ({"factor": 0.5, "patience": 0, "min_lr": 0.1, "verbose": 1}, [1.0] * 7, 1.0),
    ({"factor": 0.0, "patience": 1, "verbose": 1}, [1.0] * 5, 0.05),  # down to 0, as Keras allows
    ({"mode": "min", "monitor": "val_los"}, [1.0, 0.9], 0.01),  # never logged: warning, learning_rate logged
]


@pytest.mark.parametrize("kwargs,script,lr", REDUCE_LR_CASES)
def test_reduce_lr_on_plateau_matches_keras(keras, capsys, kwargs, script, lr):
    monitor = kwargs.get("monitor", "val_loss")
    logs = _epoch_logs(script, "val_loss" if monitor == "val_los" else monitor)
    ours, theirs = _side_by_side(keras, capsys, callbacks.ReduceLROnPlateau(**kwargs),
                                 keras.callbacks.ReduceLROnPlateau(**kwargs),
                                 lambda callback, model: _lr_trace(callback, model, logs), lr=lr)
    assert ours[0] == theirs[0]  # learning_rate logged per epoch (float32 values), final rate, counters
    assert ours[1] == theirs[1]  # printed messages
    assert ours[2] == theirs[2]  # warnings


def test_reduce_lr_on_plateau_reduces_the_rate_training_uses():
    model = _fastcnn_model(lr=0.1)
    callback = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, mode="max")
    seen = _drive_epochs(callback, model, _epoch_logs([1.0, 0.9, 0.8], "loss"))
    assert [logs["learning_rate"] for logs in seen] == [float(np.float32(v)) for v in (0.1, 0.1, 0.05)]
    assert model.optimizer.learning_rate == pytest.approx(0.025)


SCHEDULES = [
    ("two arguments", lambda epoch, lr: lr * 0.5 if epoch else lr),
    ("one argument", lambda epoch: 0.1 / (epoch + 1)),
    ("numpy float32", lambda epoch, lr: np.float32(lr * 0.9)),
    ("to zero", lambda epoch, lr: 0.0 if epoch >= 2 else lr),
]


@pytest.mark.parametrize("name,schedule", SCHEDULES, ids=[name for name, _ in SCHEDULES])
@pytest.mark.parametrize("verbose", [0, 1])
def test_learning_rate_scheduler_matches_keras(keras, capsys, name, schedule, verbose):
    logs = _epoch_logs([1.0, 0.9, 0.8, 0.7])
    ours, theirs = _side_by_side(keras, capsys, callbacks.LearningRateScheduler(schedule, verbose=verbose),
                                 keras.callbacks.LearningRateScheduler(schedule, verbose=verbose),
                                 lambda callback, model: _lr_trace(callback, model, logs)[:2], lr=0.05)
    assert ours[0] == theirs[0]
    assert ours[1] == theirs[1]
    assert ours[2] == theirs[2] == []


def test_learning_rate_scheduler_refuses_a_non_float_like_keras(keras):
    messages = []
    for callback, model in ((callbacks.LearningRateScheduler(lambda epoch: 1), _fastcnn_model()),
                            (keras.callbacks.LearningRateScheduler(lambda epoch: 1), _keras_model(keras))):
        with pytest.raises(ValueError) as error:
            _drive_epochs(callback, model, _epoch_logs([1.0]))
        messages.append(str(error.value))
    assert messages[0] == messages[1] == "The output of the `schedule` function should be a float. Got: 1"


def test_learning_rate_zero_is_accepted_and_freezes_the_weights(rng):
    """Keras accepts a learning rate of 0 (a scheduler may end there); the step then changes no weight."""
    for cls in (optimizers.SGD, optimizers.Adam, optimizers.AdamW, optimizers.RMSprop):
        assert cls(learning_rate=0.0).learning_rate == 0.0
    model = models.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizers.AdamW(learning_rate=0.0), "sparse_categorical_crossentropy")
    before = model.get_weights()
    model.fit(rng.normal(size=(16, 4)), rng.integers(0, 3, size=16), epochs=2, verbose=0)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert model.optimizer.iterations == 2


def test_setting_a_float_over_a_schedule_is_refused_like_keras(keras):
    schedule = optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    ours = optimizers.SGD(learning_rate=schedule)
    theirs = keras.optimizers.SGD(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))
    messages = []
    for optimizer in (ours, theirs):
        with pytest.raises(TypeError) as error:
            optimizer.learning_rate = 0.01
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert ours._learning_rate is schedule  # unchanged
    ours.learning_rate = optimizers.schedules.ExponentialDecay(0.2, decay_steps=10, decay_rate=0.5)
    assert ours.learning_rate == pytest.approx(0.2)


# --------------------------------------------------------------------------------------------
# TerminateOnNaN
# --------------------------------------------------------------------------------------------

def _drive_batches(callback, model, losses):
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin({})
    callback.on_epoch_begin(0, {})
    for batch, loss in enumerate(losses):
        callback.on_train_batch_begin(batch, logs={})
        callback.on_train_batch_end(batch, logs={"accuracy": 0.5, "loss": loss})
        if model.stop_training:
            return batch
    return None


@pytest.mark.parametrize("losses", [[0.5, 0.4, 0.3], [0.5, float("nan"), 0.3], [float("inf"), 0.2],
                                    [0.5, 0.4, float("-inf")]])
def test_terminate_on_nan_matches_keras(keras, capsys, losses):
    ours, theirs = _side_by_side(keras, capsys, callbacks.TerminateOnNaN(), keras.callbacks.TerminateOnNaN(),
                                 lambda callback, model: _drive_batches(callback, model, losses))
    assert ours[:3] == theirs[:3]


def test_terminate_on_nan_raise_error_matches_keras(keras):
    messages = []
    for callback, model in ((callbacks.TerminateOnNaN(raise_error=True), _fastcnn_model()),
                            (keras.callbacks.TerminateOnNaN(raise_error=True), _keras_model(keras))):
        with pytest.raises(RuntimeError) as error:
            _drive_batches(callback, model, [0.5, float("nan")])
        messages.append(str(error.value))
    assert messages[0] == messages[1] == ("NaN or Inf loss encountered at batch 1. Loss value: nan. "
                                          "Terminating training immediately.")


# --------------------------------------------------------------------------------------------
# CSVLogger
# --------------------------------------------------------------------------------------------

CSV_RUNS = [
    ("with validation", {}, [_epoch_logs([1.0, 0.9, 0.8])]),
    ("no validation", {}, [[{"accuracy": 0.5, "loss": 1.25}, {"accuracy": 0.75, "loss": 0.5}]]),
    ("validation every 2nd epoch", {}, [_epoch_logs([1.0, None, 0.8])]),
    ("separator", {"separator": ";"}, [_epoch_logs([1.0, 0.9])]),
    ("learning rate and odd values", {},
     [[dict(sorted({**logs, "learning_rate": 0.0010000000474974513}.items())) for logs in _epoch_logs([1e-9, 123456.789])]]),
    ("append", {"append": True}, [_epoch_logs([1.0, 0.9]), _epoch_logs([0.8, 0.7])]),
    ("overwrite", {"append": False}, [_epoch_logs([1.0, 0.9]), _epoch_logs([0.8])]),
]


@pytest.mark.parametrize("name,kwargs,runs", CSV_RUNS, ids=[run[0] for run in CSV_RUNS])
def test_csv_logger_writes_the_same_bytes_as_keras(keras, capsys, tmp_path, name, kwargs, runs):
    files = {}
    for key, module, model in (("ours", callbacks, _fastcnn_model()),
                               ("theirs", keras.callbacks, _keras_model(keras))):
        path = tmp_path / f"{key}.csv"
        for epoch_logs in runs:
            _drive_epochs(module.CSVLogger(str(path), **kwargs), model, epoch_logs)
        files[key] = path.read_bytes()
    assert files["ours"] == files["theirs"]
    assert files["ours"].startswith(b"epoch")


# --------------------------------------------------------------------------------------------
# ModelCheckpoint
# --------------------------------------------------------------------------------------------

def _file_markers(directory):
    """{relative file name: epoch marker of the weights inside} for every weights file written."""
    import h5py

    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with h5py.File(path, "r") as file:
                found[os.path.relpath(path, directory)] = _marker(
                    [file["layers/dense/vars"][key][()] for key in sorted(file["layers/dense/vars"])])
    return found


CHECKPOINT_CASES = [
    ("every epoch", "ckpt/ep{epoch:02d}.weights.h5", {}, [1.0, 0.9, 1.2]),
    ("one file", "last.weights.h5", {"verbose": 1}, [1.0, 0.9, 1.2]),
    ("logs in name", "run/{epoch}-{val_loss:.3f}-{accuracy:.2f}.weights.h5", {"verbose": 1}, [1.0, 0.9]),
    ("best only", "best/ep{epoch}.weights.h5", {"save_best_only": True, "verbose": 1}, [1.0, 0.9, 1.2, 0.95, 0.5]),
    ("best only one file", "best.weights.h5", {"save_best_only": True, "verbose": 1}, [1.0, 0.9, 1.2, 0.5, 0.7]),
    ("best max", "b{epoch}.weights.h5", {"save_best_only": True, "monitor": "val_accuracy", "verbose": 1},
     [0.5, 0.6, 0.6, 0.4, 0.7]),
    ("threshold", "t{epoch}.weights.h5", {"save_best_only": True, "initial_value_threshold": 0.85, "verbose": 1},
     [1.0, 0.9, 0.8, 0.84, 0.7]),
    ("missing monitor", "m{epoch}.weights.h5", {"save_best_only": True, "monitor": "val_los", "mode": "min"},
     [1.0, 0.9]),
]


@pytest.mark.parametrize("name,pattern,kwargs,script", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_model_checkpoint_writes_what_keras_writes(keras, capsys, tmp_path, name, pattern, kwargs, script):
    monitor = kwargs.get("monitor", "val_loss")
    logs = _epoch_logs(script, "val_loss" if monitor == "val_los" else monitor)
    directories = {"ours": tmp_path / "ours", "theirs": tmp_path / "theirs"}
    made = {key: module.ModelCheckpoint(str(directories[key] / pattern), save_weights_only=True, **kwargs)
            for key, module in (("ours", callbacks), ("theirs", keras.callbacks))}
    ours, theirs = _side_by_side(keras, capsys, made["ours"], made["theirs"],
                                 lambda callback, model: len(_drive_epochs(callback, model, logs)))
    assert _file_markers(directories["ours"]) == _file_markers(directories["theirs"])  # names and contents
    assert _file_markers(directories["ours"])
    assert ours[1].replace(str(directories["ours"]), "DIR") == theirs[1].replace(str(directories["theirs"]), "DIR")
    assert ours[2] == theirs[2]
    assert made["ours"].best == made["theirs"].best


@pytest.mark.parametrize("save_freq", [1, 3, 5])
def test_model_checkpoint_integer_save_freq_matches_keras(keras, capsys, tmp_path, save_freq):
    """save_freq=N saves every N training batches, counted across epochs, named with {batch}."""
    def drive(callback, model):
        callback.set_model(model)
        callback.on_train_begin({})
        for epoch in range(3):
            callback.on_epoch_begin(epoch, {})
            for batch in range(4):
                _mark(model, epoch * 10 + batch)
                callback.on_train_batch_begin(batch, logs={})
                callback.on_train_batch_end(batch, logs={"accuracy": 0.5, "loss": 1.0 / (batch + 1)})
            callback.on_epoch_end(epoch, _epoch_logs([1.0])[0])
        callback.on_train_end({})

    directories = {"ours": tmp_path / "ours", "theirs": tmp_path / "theirs"}
    made = {key: module.ModelCheckpoint(str(directories[key] / "e{epoch}b{batch}-{loss:.2f}.weights.h5"),
                                        save_weights_only=True, save_freq=save_freq, verbose=1)
            for key, module in (("ours", callbacks), ("theirs", keras.callbacks))}
    ours, theirs = _side_by_side(keras, capsys, made["ours"], made["theirs"], drive)
    written = _file_markers(directories["ours"])
    assert written == _file_markers(directories["theirs"])
    assert len(written) == 12 // save_freq
    assert ours[1].replace(str(directories["ours"]), "DIR") == theirs[1].replace(str(directories["theirs"]), "DIR")


def test_model_checkpoint_into_an_existing_directory_raises_like_keras(keras, tmp_path):
    (tmp_path / "taken.weights.h5").mkdir()
    messages = []
    for module, model in ((callbacks, _fastcnn_model()), (keras.callbacks, _keras_model(keras))):
        callback = module.ModelCheckpoint(str(tmp_path / "taken.weights.h5"), save_weights_only=True)
        with pytest.raises(IOError) as error:
            _drive_epochs(callback, model, _epoch_logs([1.0]))
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "non-directory filepath" in messages[0]
    assert os.listdir(tmp_path) == ["taken.weights.h5"]  # no temporary file left behind


def test_model_checkpoint_unknown_format_key_raises_like_keras(keras, tmp_path):
    messages = []
    for module, model in ((callbacks, _fastcnn_model()), (keras.callbacks, _keras_model(keras))):
        callback = module.ModelCheckpoint(str(tmp_path / "{val_f1}.weights.h5"), save_weights_only=True)
        with pytest.raises(KeyError) as error:
            _drive_epochs(callback, model, _epoch_logs([1.0]))
        messages.append(str(error.value))
    assert messages[0] == messages[1]


def test_model_checkpoint_argument_errors_match_keras(keras):
    for args, kwargs in ((("model.h5",), {"save_weights_only": True}),
                         (("model.keras",), {"save_weights_only": True}),
                         (("m.weights.h5",), {"save_weights_only": True, "save_freq": "batch"})):
        with pytest.raises(ValueError) as ours:
            callbacks.ModelCheckpoint(*args, **kwargs)
        with pytest.raises(ValueError) as theirs:
            keras.callbacks.ModelCheckpoint(*args, **kwargs)
        assert str(ours.value) == str(theirs.value)


def test_model_checkpoint_whole_model_writes_loadable_keras_files(tmp_path):
    """save_weights_only=False: every epoch a `.keras` file (model.save) that load_model reads back
    with that epoch's weights and optimizer state."""
    model = _fastcnn_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((16,) + tuple(model.input_shape[1:])).astype(np.float32)
    y = np.arange(16) % model.output_shape[-1]
    weights = []
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[
        callbacks.ModelCheckpoint(str(tmp_path / "m{epoch}.keras"), monitor="loss"),
        callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: weights.append(model.get_weights()))])
    for epoch in (1, 2):
        loaded = models.load_model(tmp_path / f"m{epoch}.keras")
        for a, b in zip(loaded.get_weights(), weights[epoch - 1]):
            np.testing.assert_array_equal(a, b)
        assert loaded.optimizer.iterations == 2 * epoch


@pytest.mark.parametrize("filepath,match", [
    ("model.h5", r"`\.keras` format only, not the legacy `\.h5` model format.*filepath=model\.h5"),
    ("model.weights", r"^The filepath provided must end in `\.keras` \(Keras model format\)\. "
                      r"Received: filepath=model\.weights$"),
])
def test_model_checkpoint_whole_model_extensions(filepath, match):
    with pytest.raises(ValueError, match=match):
        callbacks.ModelCheckpoint(filepath)


def test_learning_rate_scheduler_on_a_schedule_optimizer_raises_like_keras(keras):
    messages = []
    for module, model in ((callbacks, _fastcnn_model()), (keras.callbacks, _keras_model(keras))):
        schedule_module = optimizers.schedules if module is callbacks else keras.optimizers.schedules
        sgd = (optimizers.SGD if module is callbacks else keras.optimizers.SGD)(
            learning_rate=schedule_module.ExponentialDecay(0.1, 10, 0.5))
        model.compile(sgd, "sparse_categorical_crossentropy")
        with pytest.raises(TypeError) as error:
            _drive_epochs(module.LearningRateScheduler(lambda epoch, lr: lr / 2), model, _epoch_logs([1.0]))
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "is not settable" in messages[0]


# --------------------------------------------------------------------------------------------
# through fit: the same callbacks driving real training, against Keras's fit
# --------------------------------------------------------------------------------------------

def _tiny_data(rng, n=24):
    x = rng.normal(size=(n, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    return x, y


def _tiny_fastcnn(lr=0.05):
    model = models.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3, activation="relu"),
                               layers.BatchNormalization(), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizers.SGD(learning_rate=lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _tiny_keras(keras, lr=0.05):
    keras.utils.set_random_seed(0)  # fit shuffles, and the session runs TensorFlow with op determinism
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(learning_rate=lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _script(base, values, key="val_loss"):
    """A callback that overwrites logs[key] at epoch end with scripted values; the callbacks after
    it in the list see them (fit shares one logs dict among its callbacks, in Keras too)."""
    class Script(base):
        def on_epoch_end(self, epoch, logs=None):
            logs[key] = values[epoch]

    return Script()


def _weights_recorder(base):
    class Recorder(base):
        def on_train_begin(self, logs=None):
            self.weights = []

        def on_epoch_end(self, epoch, logs=None):
            self.weights.append([np.array(w) for w in self.model.get_weights()])

    return Recorder()


def test_fit_early_stopping_restores_the_best_epoch_like_keras(keras, rng, capsys):
    x, y = _tiny_data(rng)
    script = [1.0, 0.8, 0.9, 0.85, 0.95, 0.5]
    runs = {}
    for key, module, model in (("ours", callbacks, _tiny_fastcnn()), ("theirs", keras.callbacks, _tiny_keras(keras))):
        recorder = _weights_recorder(module.Callback)
        stopper = module.EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
        history = model.fit(x, y, batch_size=8, epochs=6, validation_split=0.25, verbose=0,
                            callbacks=[_script(module.Callback, script), stopper, recorder])
        runs[key] = (history.epoch, stopper.best_epoch, capsys.readouterr().out)
        for restored, best in zip(model.get_weights(), recorder.weights[stopper.best_epoch]):
            np.testing.assert_array_equal(restored, best)
        assert not np.array_equal(recorder.weights[-1][0], recorder.weights[stopper.best_epoch][0])
    assert runs["ours"] == runs["theirs"]
    assert runs["ours"][:2] == ([0, 1, 2, 3], 1)


def test_fit_reduce_lr_and_scheduler_log_the_same_learning_rates_as_keras(keras, rng):
    x, y = _tiny_data(rng)
    script = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]
    histories = {}
    for key, module, model in (("ours", callbacks, _tiny_fastcnn(0.1)), ("theirs", keras.callbacks, _tiny_keras(keras, 0.1))):
        history = model.fit(x, y, batch_size=8, epochs=7, validation_split=0.25, verbose=0, callbacks=[
            module.LearningRateScheduler(lambda epoch, lr: lr * 0.9 if epoch % 3 == 2 else lr),
            _script(module.Callback, script),
            module.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=1, min_lr=0.02),
        ])
        histories[key] = history.history
    assert sorted(histories["ours"]) == sorted(histories["theirs"])
    assert histories["ours"]["learning_rate"] == histories["theirs"]["learning_rate"]
    assert len(set(histories["ours"]["learning_rate"])) >= 3


def test_fit_uses_the_scheduled_learning_rate(rng):
    """A learning rate of 0 from the scheduler at epoch 1 leaves that epoch's weights unchanged
    (bar BatchNormalization's moving statistics, which are not trained)."""
    x, y = _tiny_data(rng)
    model = _tiny_fastcnn()
    recorder = _weights_recorder(callbacks.Callback)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch: 0.0 if epoch == 1 else 0.05), recorder])
    trained = [i for i, w in enumerate(model.weights) if w.trainable]
    for i in trained:
        np.testing.assert_array_equal(recorder.weights[0][i], recorder.weights[1][i])
        assert not np.array_equal(recorder.weights[1][i], recorder.weights[2][i])


def test_fit_terminate_on_nan_stops_after_the_batch_like_keras(keras, rng, capsys):
    x, y = _tiny_data(rng)
    x[9, 2, 2, 0] = np.nan  # the second batch of 8 (no shuffling) has a NaN loss
    runs = {}
    for key, module, model in (("ours", callbacks, _tiny_fastcnn()), ("theirs", keras.callbacks, _tiny_keras(keras))):
        history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
                            callbacks=[module.TerminateOnNaN()])
        runs[key] = (history.epoch, int(model.optimizer.iterations), capsys.readouterr().out)
    assert runs["ours"] == runs["theirs"] == ([0], 2, "Batch 1: Invalid loss, terminating training\n")


def test_fit_csv_logger_rows_match_history_and_keras_layout(keras, rng, tmp_path):
    x, y = _tiny_data(rng)
    files = {}
    for key, module, model in (("ours", callbacks, _tiny_fastcnn()), ("theirs", keras.callbacks, _tiny_keras(keras))):
        path = tmp_path / f"{key}.csv"
        history = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.25, verbose=0,
                            callbacks=[module.ReduceLROnPlateau(patience=1), module.CSVLogger(str(path))])
        files[key] = path.read_text().splitlines()
        if key == "ours":
            rows = [line.split(",") for line in files[key][1:]]
            header = files[key][0].split(",")
            for column, name in enumerate(header[1:], start=1):
                assert [row[column] for row in rows] == [str(v) for v in history.history[name]]
            assert [row[0] for row in rows] == ["0", "1", "2"]
    assert files["ours"][0] == files["theirs"][0] == "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss"
    assert len(files["ours"]) == len(files["theirs"]) == 4


def test_fit_model_checkpoint_files_hold_each_epochs_weights_and_load_into_keras(keras, rng, tmp_path):
    x, y = _tiny_data(rng)
    model = _tiny_fastcnn()
    recorder = _weights_recorder(callbacks.Callback)
    best = callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), save_best_only=True, monitor="val_loss",
                                     save_weights_only=True)
    every = callbacks.ModelCheckpoint(str(tmp_path / "all" / "{epoch:02d}-{val_loss:.4f}.weights.h5"),
                                      save_weights_only=True)
    history = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.25, verbose=0,
                        callbacks=[recorder, best, every])
    names = sorted(os.listdir(tmp_path / "all"))
    assert names == [f"{epoch + 1:02d}-{loss:.4f}.weights.h5" for epoch, loss in enumerate(history.history["val_loss"])]
    best_epoch = int(np.argmin(history.history["val_loss"]))
    twin = _tiny_keras(keras)
    for epoch, name in enumerate(names):
        reloaded = _tiny_fastcnn()
        reloaded.load_weights(tmp_path / "all" / name)
        for saved, recorded in zip(reloaded.get_weights(), recorder.weights[epoch]):
            np.testing.assert_array_equal(saved, recorded)
    twin.load_weights(str(tmp_path / "best.weights.h5"))
    for theirs, recorded in zip(twin.get_weights(), recorder.weights[best_epoch]):
        np.testing.assert_array_equal(theirs, recorded)


def test_fit_warns_when_early_stopping_monitor_is_missing(rng):
    x, y = _tiny_data(rng)
    with pytest.warns(UserWarning, match=r"Early stopping conditioned on metric `val_loss` which is not available\. "
                                         r"Available metrics are: accuracy,loss"):
        history = _tiny_fastcnn().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callbacks.EarlyStopping()])
    assert history.epoch == [0, 1]


# --------------------------------------------------------------------------------------------
# hook order and logs, fit / evaluate / predict, against Keras
# --------------------------------------------------------------------------------------------

def _full_recorder(base, aliases=False):
    """Records (hook, index, sorted log keys) for every hook; with aliases=True it leaves
    on_train_batch_* to the base class, which must call on_batch_begin/on_batch_end."""
    events = []

    def record(name):
        def hook(self, *args, **kwargs):
            logs = kwargs.get("logs", args[-1] if args and isinstance(args[-1], (dict, type(None))) else None)
            index = args[0] if args and isinstance(args[0], int) else None
            events.append((name, index, tuple(sorted(logs or {}))))
        return hook

    names = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
             "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
             "on_predict_batch_begin", "on_predict_batch_end"]
    names += ["on_batch_begin", "on_batch_end"] if aliases else ["on_train_batch_begin", "on_train_batch_end"]
    recorder = type("Recorder", (base,), {name: record(name) for name in names})()
    recorder.events = events
    return recorder


def test_hook_order_and_log_keys_match_keras_fit_evaluate_predict(keras, rng):
    x, y = _tiny_data(rng, n=20)
    x_val, y_val = _tiny_data(rng, n=10)
    results = {}
    for key, module, model in (("ours", callbacks, _tiny_fastcnn()), ("theirs", keras.callbacks, _tiny_keras(keras))):
        plain, aliases = _full_recorder(module.Callback), _full_recorder(module.Callback, aliases=True)
        stopper = module.EarlyStopping(monitor="loss", patience=50)
        history = model.fit(x, y, batch_size=8, epochs=3, validation_data=(x_val, y_val), validation_freq=2,
                            verbose=0, callbacks=[plain, stopper, aliases])
        model.evaluate(x_val, y_val, batch_size=4, verbose=0, callbacks=[plain, aliases])
        model.predict(x_val, batch_size=4, verbose=0, callbacks=[plain, aliases])
        results[key] = (plain.events, aliases.events, sorted(history.history), history.params)
    ours, theirs = results["ours"], results["theirs"]
    assert ours[0] == theirs[0]
    assert ours[1] == theirs[1]
    assert ours[2] == theirs[2] == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert ours[3] == theirs[3] == {"verbose": 0, "epochs": 3, "steps": 3}
    assert ("on_epoch_end", 1, ("accuracy", "loss", "val_accuracy", "val_loss")) in ours[0]
    assert ("on_batch_end", 2, ("accuracy", "loss")) in ours[1]
    assert ("on_predict_batch_end", 2, ("outputs",)) in ours[0]


def test_predict_batch_end_gets_the_batch_outputs(rng):
    x, _ = _tiny_data(rng, n=10)
    model = _tiny_fastcnn()
    seen = []
    model.predict(x, batch_size=4, verbose=0,
                  callbacks=[callbacks.LambdaCallback(on_predict_batch_end=lambda batch, logs: seen.append(logs["outputs"].copy()))])
    assert [batch.shape for batch in seen] == [(4, 3), (4, 3), (2, 3)]
    np.testing.assert_array_equal(np.concatenate(seen), model.predict(x, batch_size=4, verbose=0))


def test_callback_list_order_and_reuse_match_keras(keras):
    """User callbacks first, then History, then ProgbarLogger (so the bar's epoch line prints
    after the callbacks' own messages); a ready CallbackList passes through fit unchanged."""
    def kinds(module, user):
        made = module.CallbackList(user, add_history=True, add_progbar=True, verbose=1, epochs=1, steps=1)
        return [type(c).__name__ for c in made.callbacks]

    assert kinds(callbacks, [callbacks.TerminateOnNaN(), [callbacks.CSVLogger("unused.csv")]]) == \
        kinds(keras.callbacks, [keras.callbacks.TerminateOnNaN(), [keras.callbacks.CSVLogger("unused.csv")]]) == \
        ["TerminateOnNaN", "CSVLogger", "History", "ProgbarLogger"]
    user_history = callbacks.History()
    assert callbacks.CallbackList([user_history], add_history=True).callbacks == [user_history]


def test_shared_logs_reach_later_callbacks_and_history(rng):
    """ReduceLROnPlateau adds learning_rate to the epoch logs: a callback after it sees it."""
    x, y = _tiny_data(rng)
    keys = []
    tail = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: keys.append(sorted(logs)))
    history = _tiny_fastcnn().fit(x, y, batch_size=8, epochs=2, verbose=0,
                                  callbacks=[callbacks.ReduceLROnPlateau(monitor="loss"), tail])
    assert keys == [["accuracy", "learning_rate", "loss"]] * 2
    assert history.history["learning_rate"] == [float(np.float32(0.05))] * 2


def test_fit_accepts_a_callback_list(rng):
    x, y = _tiny_data(rng)
    model = _tiny_fastcnn()
    history = callbacks.History()
    stopper = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(model, "stop_training", epoch == 1))
    callback_list = callbacks.CallbackList([stopper, history], model=model, verbose=0, epochs=5, steps=3)
    assert model.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=callback_list) is history
    assert history.epoch == [0, 1]


def test_lambda_callback_matches_keras(keras, rng):
    x, y = _tiny_data(rng, n=16)
    runs = {}
    for key, module, model in (("ours", callbacks, _tiny_fastcnn()), ("theirs", keras.callbacks, _tiny_keras(keras))):
        events = []
        callback = module.LambdaCallback(
            on_train_begin=lambda logs: events.append("train_begin"),
            on_epoch_begin=lambda epoch, logs: events.append(f"epoch_begin {epoch}"),
            on_train_batch_end=lambda batch, logs: events.append(f"batch_end {batch} {sorted(logs)}"),
            on_epoch_end=lambda epoch, logs: events.append(f"epoch_end {epoch} {sorted(logs)}"),
            on_train_end=lambda logs: events.append("train_end"),
            on_test_end=lambda logs: events.append(f"test_end {sorted(logs)}"),
        )
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
        model.evaluate(x, y, verbose=0, callbacks=[callback])
        runs[key] = events
    assert runs["ours"] == runs["theirs"]


# --------------------------------------------------------------------------------------------
# bad arguments
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,error,pattern", [
    (lambda: callbacks.EarlyStopping(patience=-1), ValueError, r"`patience`.*patience=-1"),
    (lambda: callbacks.EarlyStopping(patience=1.5), ValueError, r"`patience`.*patience=1\.5"),
    (lambda: callbacks.EarlyStopping(monitor=None), ValueError, r"`monitor`.*monitor=None"),
    (lambda: callbacks.EarlyStopping(min_delta="0.1"), ValueError, r"`min_delta`.*min_delta='0\.1'"),
    (lambda: callbacks.EarlyStopping(baseline="low"), ValueError, r"`baseline`.*baseline='low'"),
    (lambda: callbacks.EarlyStopping(restore_best_weights="yes"), ValueError, r"restore_best_weights='yes'"),
    (lambda: callbacks.EarlyStopping(start_from_epoch=-2), ValueError, r"start_from_epoch=-2"),
    (lambda: callbacks.EarlyStopping(verbose=-1), ValueError, r"verbose=-1"),
    (lambda: callbacks.ReduceLROnPlateau(factor=1.0), ValueError,
     r"^ReduceLROnPlateau does not support a factor >= 1\.0\. Received factor=1\.0$"),
    (lambda: callbacks.ReduceLROnPlateau(factor=-0.5), ValueError, r"`factor`.*factor=-0\.5"),
    (lambda: callbacks.ReduceLROnPlateau(min_lr=-1e-3), ValueError, r"`min_lr`.*min_lr=-0\.001"),
    (lambda: callbacks.ReduceLROnPlateau(cooldown=None), ValueError, r"`cooldown`.*cooldown=None"),
    (lambda: callbacks.ReduceLROnPlateau(epsilon=1e-4), TypeError, r"ReduceLROnPlateau: \{'epsilon': 0\.0001\}"),
    (lambda: callbacks.ModelCheckpoint("x.weights.h5", save_weights_only=True, save_freq=0), ValueError,
     r"save_freq=0"),
    (lambda: callbacks.ModelCheckpoint("x.weights.h5", save_weights_only=True, initial_value_threshold="a"),
     ValueError, r"initial_value_threshold='a'"),
    (lambda: callbacks.ModelCheckpoint(None, save_weights_only=True), TypeError, r"`filepath`.*filepath=None"),
    (lambda: callbacks.LearningRateScheduler(0.1), TypeError, r"`schedule`.*schedule=0\.1"),
    (lambda: callbacks.TerminateOnNaN(raise_error="no"), ValueError, r"raise_error='no'"),
    (lambda: callbacks.CSVLogger("log.csv", separator=",,"), ValueError, r"separator=',,'"),
    (lambda: callbacks.CSVLogger(3), TypeError, r"`filename`.*filename=3"),
    (lambda: callbacks.LambdaCallback(on_epoch_end="print"), TypeError, r"on_epoch_end='print'"),
    (lambda: callbacks.CallbackList(["not a callback"]), TypeError, r"'not a callback'"),
])
def test_bad_arguments_raise_naming_the_value(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_keras_callbacks_are_refused_by_fit_with_a_clear_error(keras, rng):
    x, y = _tiny_data(rng)
    with pytest.raises(TypeError, match=r"fastcnn\.callbacks\.Callback.*EarlyStopping"):
        _tiny_fastcnn().fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.EarlyStopping()])


def test_unknown_mode_warns_like_keras_and_falls_back_to_auto():
    with pytest.warns(UserWarning, match=r"^EarlyStopping mode 'sideways' is unknown, fallback to auto mode\.$"):
        callback = callbacks.EarlyStopping(mode="sideways")
    assert callback.mode == "auto"
