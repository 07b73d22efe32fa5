"""Optimizer state as Keras 3's `optimizer.variables` (fastcnn/models/_optimizer_state.py) and its
`optimizer/vars` group in weights files (fastcnn/models/_weights_file.py).

For every optimizer and option, a fastcnn model and a Keras model start from the same weights and
train on the same batches (shuffle=False); then
- our state arrays equal Keras's variables: names, order, shapes, dtypes, values (<= 1e-4 relative);
- Keras's state (and weights) set into a fresh fastcnn model, and ours into a fresh Keras model,
  continue training exactly as the originals do (weights <= 1e-4), where a control model given
  the weights alone does not;
- a fastcnn run saved mid-training to a file and restored into a fresh model ends bitwise equal to
  the uninterrupted run.
Keras runs eagerly (``run_eagerly=True``), as in test_parity_training.py.
"""

import os
import re
import warnings

import numpy as np
import pytest

import fastcnn
from fastcnn import optimizers
from fastcnn import _optimizer_state
from fastcnn.models import _weights_file
from conftest import relative_error

h5py = pytest.importorskip("h5py")

SHAPE = (8, 8, 2)
CLASSES = 5
MODEL_NAME = "net"


def _seed(tf, seed=7):
    warnings.filterwarnings("ignore", message=".*input_shape.*", category=UserWarning)
    tf.keras.utils.set_random_seed(int(os.environ.get("FASTCNN_PARITY_SEED", seed)))


def _cnn(lib):
    """Explicit model and layer names, so that Keras's slot names (which embed them) are the same
    in both libraries whatever else the session has created."""
    L = lib.layers
    return lib.models.Sequential([
        L.Conv2D(4, (3, 3), activation="relu", input_shape=SHAPE, name="conv_a"),
        L.Conv2D(3, (3, 3), activation="tanh", name="conv_b"),
        L.Flatten(name="flat"),
        L.Dense(CLASSES, activation="softmax", name="head"),
    ], name=MODEL_NAME)


def _bn_model(lib):
    """No bias before the normalization: its true gradient is exactly zero, so its value and its
    slots would be rounding noise in both libraries, not comparable."""
    L = lib.layers
    return lib.models.Sequential([
        L.Conv2D(4, (3, 3), input_shape=SHAPE, use_bias=False, name="conv_a"),
        L.BatchNormalization(name="norm"),
        L.Activation("relu", name="relu"),
        L.Flatten(name="flat"),
        L.Dense(CLASSES, activation="softmax", name="head"),
    ], name=MODEL_NAME)


def _data(n=64, seed=3):
    generator = np.random.default_rng(seed)
    return generator.random((n,) + SHAPE).astype(np.float32), generator.integers(0, CLASSES, n)


def _keras_model(tf, builder, weights, freeze, make_optimizer):
    model = builder(tf.keras)
    model.set_weights(weights)
    for index in freeze:
        model.layers[index].trainable = False
    model.compile(optimizer=make_optimizer(tf.keras.optimizers), loss="sparse_categorical_crossentropy",
                  run_eagerly=True)
    return model


def _fastcnn_model(builder, weights, freeze, make_optimizer):
    model = builder(fastcnn)
    model.set_weights(weights)
    for index in freeze:
        model.layers[index].trainable = False
    model.compile(optimizer=make_optimizer(optimizers), loss="sparse_categorical_crossentropy")
    return model


def _fit(model, x, y, epochs=1):
    model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)


def _assert_weights_match(model, keras_model, bound=1e-4):
    for variable, a, e in zip(model.weights, model.get_weights(), keras_model.get_weights(), strict=True):
        assert relative_error(a, e) <= bound, variable.path


def _assert_state_matches_keras(model, keras_model, bound=1e-4):
    """Names, order, shapes, dtypes and values of our arrays against Keras's variables."""
    ours = _optimizer_state.optimizer_state_arrays(model)
    names = _optimizer_state.optimizer_state_names(model)
    theirs = keras_model.optimizer.variables
    # Nadam's u_product has no name of its own in Keras: "variable", numbered per process
    # ("variable_1", ...) like every unnamed Keras variable.
    assert names == [re.sub(r"^variable_\d+$", "variable", v.name) for v in theirs]
    assert [v.name for v in model.optimizer.variables] == names
    assert [a.shape for a in ours] == [tuple(v.shape) for v in theirs]
    assert [str(a.dtype) for a in ours] == [str(v.dtype) for v in theirs]
    for name, a, v in zip(names, ours, theirs):
        assert relative_error(a, v.numpy()) <= bound, name


OPTIMIZERS = {
    "sgd": lambda o: o.SGD(learning_rate=0.1),
    "sgd_momentum": lambda o: o.SGD(learning_rate=0.05, momentum=0.9),
    "sgd_nesterov": lambda o: o.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    "adam": lambda o: o.Adam(learning_rate=0.01, epsilon=1e-3),
    "adam_amsgrad": lambda o: o.Adam(learning_rate=0.01, amsgrad=True, epsilon=1e-3),
    "adamw": lambda o: o.AdamW(learning_rate=0.01, weight_decay=0.05, epsilon=1e-3),
    "rmsprop": lambda o: o.RMSprop(learning_rate=0.005),
    "rmsprop_momentum": lambda o: o.RMSprop(learning_rate=0.005, momentum=0.5),
    "rmsprop_centered": lambda o: o.RMSprop(learning_rate=0.005, centered=True),
    "rmsprop_centered_momentum": lambda o: o.RMSprop(learning_rate=0.005, rho=0.8, momentum=0.5, centered=True),
    "adagrad": lambda o: o.Adagrad(learning_rate=0.1, initial_accumulator_value=0.5, epsilon=1e-5),
    "nadam": lambda o: o.Nadam(learning_rate=0.01, epsilon=1e-3),
    # No `learning_rate` variable with a schedule; the step count drives the rate.
    "adam_schedule": lambda o: o.Adam(learning_rate=o.schedules.ExponentialDecay(0.02, 2, 0.5), epsilon=1e-3),
}

# Keras's slot names per optimizer, for one weight (the first kernel), in Keras's order.
EXPECTED_SLOTS = {
    "sgd": [], "sgd_momentum": ["momentum"], "sgd_nesterov": ["momentum"],
    "adam": ["momentum", "velocity"], "adam_amsgrad": ["momentum", "velocity", "velocity_hat"],
    "adamw": ["momentum", "velocity"], "rmsprop": ["velocity"], "rmsprop_momentum": ["velocity", "momentum"],
    "rmsprop_centered": ["velocity", "average_gradient"],
    "rmsprop_centered_momentum": ["velocity", "momentum", "average_gradient"],
    "adagrad": ["accumulator"], "nadam": ["momentum", "velocity"], "adam_schedule": ["momentum", "velocity"],
}


def _round_trip_against_keras(tf, make_optimizer, builder=_cnn, freeze=()):
    """Trains a fastcnn/Keras pair one epoch, checks the states agree, crosses them into fresh
    models of the other library, trains all a second epoch and checks each crossed model against
    the original it came from. Returns the pair for further checks."""
    _seed(tf)
    initial = builder(tf.keras).get_weights()
    model = _fastcnn_model(builder, initial, freeze, make_optimizer)
    keras_model = _keras_model(tf, builder, initial, freeze, make_optimizer)
    x1, y1 = _data(seed=3)
    x2, y2 = _data(seed=4)
    _fit(keras_model, x1, y1)
    _fit(model, x1, y1)
    _assert_weights_match(model, keras_model)
    _assert_state_matches_keras(model, keras_model)

    # Keras -> fastcnn: a fresh compiled model gets Keras's weights and optimizer state.
    from_keras = _fastcnn_model(builder, keras_model.get_weights(), freeze, make_optimizer)
    _optimizer_state.set_optimizer_state_arrays(from_keras, [v.numpy() for v in keras_model.optimizer.variables])
    _assert_state_matches_keras(from_keras, keras_model, bound=0.0)
    # fastcnn -> Keras: a fresh Keras model, its optimizer built as load_model builds it.
    to_keras = _keras_model(tf, builder, model.get_weights(), freeze, make_optimizer)
    to_keras.optimizer.build(to_keras.trainable_variables)
    for variable, array in zip(to_keras.optimizer.variables, _optimizer_state.optimizer_state_arrays(model),
                               strict=True):
        variable.assign(array)
    # A control with the weights alone: the state is what makes the crossed runs continue alike.
    control = _fastcnn_model(builder, keras_model.get_weights(), freeze, make_optimizer)

    for each in (keras_model, model, from_keras, to_keras, control):
        _fit(each, x2, y2)
    _assert_weights_match(from_keras, keras_model)
    _assert_weights_match(model, to_keras)
    _assert_weights_match(model, keras_model)
    _assert_state_matches_keras(from_keras, keras_model)
    _assert_state_matches_keras(model, to_keras)
    assert int(to_keras.optimizer.iterations) == from_keras.optimizer.iterations == 8
    differs = max(relative_error(a, e) for a, e in zip(control.get_weights(), keras_model.get_weights()))
    return model, keras_model, differs


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_state_equals_keras_and_crosses_both_ways(tf, name):
    model, keras_model, control_error = _round_trip_against_keras(tf, OPTIMIZERS[name])
    names = _optimizer_state.optimizer_state_names(model)
    base = ["iteration"] + ([] if name == "adam_schedule" else ["learning_rate"])
    assert names[:len(base)] == base
    # The first kernel's slots, each in its own group or interleaved, in Keras's order.
    prefix = f"{MODEL_NAME}_conv_a_kernel_"
    first_kernel = [n[len(prefix):] for n in names if n.startswith(prefix)]
    assert first_kernel == EXPECTED_SLOTS[name]
    assert len(names) == len(base) + 6 * len(EXPECTED_SLOTS[name]) + (name == "nadam")
    # summary()'s Optimizer params: the values of these variables, as Keras counts them.
    trainable = sum(np.size(w.numpy()) for w in model.trainable_weights)
    assert model.optimizer.count_variables(trainable) == sum(np.size(a) for a in
                                                             _optimizer_state.optimizer_state_arrays(model))
    if EXPECTED_SLOTS[name] or name == "adam_schedule":
        # Without the state the continuation differs from Keras's (so the checks above could fail).
        assert control_error > 1e-3


@pytest.mark.parametrize("builder,freeze", [(_cnn, (0,)), (_bn_model, (1,)), (_bn_model, ())])
def test_frozen_layers_have_no_slots_as_in_keras(tf, builder, freeze):
    make = lambda o: o.Adam(learning_rate=0.01, amsgrad=True, epsilon=1e-3)  # noqa: E731
    model, keras_model, _ = _round_trip_against_keras(tf, make, builder, freeze)
    names = _optimizer_state.optimizer_state_names(model)
    frozen = [model.layers[i].name for i in freeze]
    assert not any(f"_{layer}_" in n for n in names for layer in frozen)
    if builder is _bn_model and not freeze:
        # gamma and beta are trainable, the moving statistics are not.
        assert f"{MODEL_NAME}_norm_gamma_momentum" in names and f"{MODEL_NAME}_norm_beta_velocity" in names
        assert not any("moving" in n for n in names)


def test_whole_model_frozen_keeps_only_iteration_and_learning_rate(tf):
    model = _cnn(fastcnn)
    model.trainable = False
    model.compile(optimizer=optimizers.Adam(), loss="sparse_categorical_crossentropy")
    assert _optimizer_state.optimizer_state_names(model) == ["iteration", "learning_rate"]


# --------------------------------------------------------------------------------------------
# resuming exactly
# --------------------------------------------------------------------------------------------

def _save_checkpoint(model, path):
    _weights_file.save_weights(model, path)
    with h5py.File(path, "a") as file:
        _weights_file.save_optimizer_variables(file, model)


def _load_checkpoint(model, path):
    _weights_file.load_weights(model, path)
    with h5py.File(path, "r") as file:
        assert _weights_file.load_optimizer_variables(file, model) is True


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_resume_from_file_is_bitwise_uninterrupted(tmp_path, name):
    fastcnn.utils.set_random_seed(11)
    initial = _cnn(fastcnn).get_weights()
    x, y = _data(seed=5)
    uninterrupted = _fastcnn_model(_cnn, initial, (), OPTIMIZERS[name])
    _fit(uninterrupted, x, y, epochs=3)

    first = _fastcnn_model(_cnn, initial, (), OPTIMIZERS[name])
    _fit(first, x, y, epochs=1)
    path = tmp_path / "checkpoint.weights.h5"
    _save_checkpoint(first, path)
    resumed = _fastcnn_model(_cnn, _cnn(fastcnn).get_weights(), (), OPTIMIZERS[name])  # other weights
    _load_checkpoint(resumed, path)
    assert resumed.optimizer.iterations == 4
    _fit(resumed, x, y, epochs=2)
    for variable, a, e in zip(resumed.weights, resumed.get_weights(), uninterrupted.get_weights(), strict=True):
        np.testing.assert_array_equal(a, e, err_msg=variable.path)
    for a, e in zip(_optimizer_state.optimizer_state_arrays(resumed),
                    _optimizer_state.optimizer_state_arrays(uninterrupted), strict=True):
        np.testing.assert_array_equal(a, e)


def test_saved_learning_rate_is_restored(tmp_path):
    """A rate changed during training (a callback's work) travels in `learning_rate`, as in Keras;
    a rate that rounds to the same float32 keeps the configured Python float."""
    x, y = _data()
    model = _fastcnn_model(_cnn, _cnn(fastcnn).get_weights(), (), lambda o: o.RMSprop(learning_rate=0.01))
    _fit(model, x, y)
    model.optimizer.learning_rate = 0.003
    path = tmp_path / "lr.weights.h5"
    _save_checkpoint(model, path)
    fresh = _fastcnn_model(_cnn, model.get_weights(), (), lambda o: o.RMSprop(learning_rate=0.01))
    _load_checkpoint(fresh, path)
    assert fresh.optimizer.learning_rate == float(np.float32(0.003))
    same = _fastcnn_model(_cnn, model.get_weights(), (), lambda o: o.RMSprop(learning_rate=0.003))
    _load_checkpoint(same, path)
    assert same.optimizer.learning_rate == 0.003
    assert same.optimizer.get_config()["learning_rate"] == float(np.float32(0.003))  # Keras's float32 config


# --------------------------------------------------------------------------------------------
# files: Keras's layout, both ways
# --------------------------------------------------------------------------------------------

def _describe_group(group):
    return {key: (str(group[key].dtype), group[key].shape) for key in group}


@pytest.mark.parametrize("name", ["nadam", "rmsprop_centered_momentum", "adam_schedule", "sgd"])
def test_optimizer_group_moves_between_fastcnn_and_keras_files(tf, tmp_path, name):
    _seed(tf)
    initial = _cnn(tf.keras).get_weights()
    x, y = _data()
    keras_model = _keras_model(tf, _cnn, initial, (), OPTIMIZERS[name])
    model = _fastcnn_model(_cnn, initial, (), OPTIMIZERS[name])
    _fit(keras_model, x, y)
    _fit(model, x, y)

    keras_path, our_path = tmp_path / "keras.weights.h5", tmp_path / "ours.weights.h5"
    keras_model.save_weights(keras_path)
    _save_checkpoint(model, our_path)
    with h5py.File(keras_path, "r") as theirs, h5py.File(our_path, "r") as ours:
        # The same datasets, dtypes and shapes; the group named after the optimizer.
        assert _describe_group(ours["optimizer/vars"]) == _describe_group(theirs["optimizer/vars"])
        assert ours["optimizer/vars"].attrs["name"] == model.optimizer.name
        assert list(ours["optimizer"].keys()) == ["vars"]
        keras_arrays = _weights_file.read_optimizer_variables(theirs)
    for array, variable in zip(keras_arrays, keras_model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(array, variable.numpy())

    # Keras's file into fastcnn (weights and optimizer), then Keras's load_weights on our file.
    from_keras = _fastcnn_model(_cnn, initial, (), OPTIMIZERS[name])
    _load_checkpoint(from_keras, keras_path)
    for a, variable in zip(_optimizer_state.optimizer_state_arrays(from_keras), keras_model.optimizer.variables,
                           strict=True):
        np.testing.assert_array_equal(a, variable.numpy())
    to_keras = _keras_model(tf, _cnn, initial, (), OPTIMIZERS[name])
    to_keras.optimizer.build(to_keras.trainable_variables)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when it skips the optimizer's variables
        to_keras.load_weights(our_path)
    for a, variable in zip(_optimizer_state.optimizer_state_arrays(model), to_keras.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a, variable.numpy())


def test_never_built_keras_optimizer_state_loads_as_fresh(tf, tmp_path):
    """Keras saves only `iteration` (and `learning_rate`) for a model compiled but never trained."""
    _seed(tf)
    keras_model = _keras_model(tf, _cnn, _cnn(tf.keras).get_weights(), (), lambda o: o.Adam(learning_rate=0.02))
    path = tmp_path / "untrained.weights.h5"
    keras_model.save_weights(path)
    model = _fastcnn_model(_cnn, keras_model.get_weights(), (), lambda o: o.Adam(learning_rate=0.001))
    _fit(model, *_data())  # some state, which loading the fresh one replaces
    with h5py.File(path, "r") as file:
        assert len(file["optimizer/vars"]) == 2
        assert _weights_file.load_optimizer_variables(file, model)
    arrays = _optimizer_state.optimizer_state_arrays(model)
    assert arrays[0] == 0 and model.optimizer.learning_rate == float(np.float32(0.02))
    assert all(not np.any(a) for a in arrays[2:])
    # ...but not as a trained state: a step count without slots is refused.
    with pytest.raises(ValueError, match="never built.*iteration=3"):
        _optimizer_state.set_optimizer_state_arrays(model, [np.int64(3), np.float32(0.02)])


def test_missing_and_malformed_optimizer_groups(tmp_path):
    model = _fastcnn_model(_cnn, _cnn(fastcnn).get_weights(), (), OPTIMIZERS["adam"])
    path = tmp_path / "plain.weights.h5"
    model.save_weights(path)  # save_weights itself writes no optimizer state (unchanged)
    before = _optimizer_state.optimizer_state_arrays(model)
    with h5py.File(path, "r") as file:
        assert _weights_file.read_optimizer_variables(file) is None
        with pytest.raises(ValueError, match="has 14 variables whereas the saved optimizer has 0"):
            _weights_file.load_optimizer_variables(file, model)
        with pytest.warns(UserWarning, match=r"Skipping variable loading for optimizer 'adam(_\d+)?'"):
            assert _weights_file.load_optimizer_variables(file, model, skip_mismatch=True) is False
        with pytest.raises(ValueError, match="skip_mismatch"):
            _weights_file.load_optimizer_variables(file, model, skip_mismatch="yes")
    with h5py.File(path, "a") as file:
        _weights_file.save_optimizer_variables(file, model)
        with pytest.raises(ValueError, match="already has an 'optimizer' entry"):
            _weights_file.save_optimizer_variables(file, model)
        del file["optimizer/vars/13"]
        file["optimizer/vars/x"] = np.zeros(3, np.float32)
    with h5py.File(path, "r") as file:
        with pytest.raises(ValueError, match=r"datasets named 0 to 13.*'x'"):
            _weights_file.load_optimizer_variables(file, model)
    with h5py.File(path, "a") as file:
        del file["optimizer/vars/x"]
    with h5py.File(path, "r") as file:  # 13 of 14: a count mismatch naming the expected variables
        with pytest.raises(ValueError, match=r"has 14 variables but 13 arrays.*'iteration', 'learning_rate'"):
            _weights_file.load_optimizer_variables(file, model)
        with pytest.warns(UserWarning, match="has 14 variables but 13"):
            assert not _weights_file.load_optimizer_variables(file, model, skip_mismatch=True)
    with h5py.File(path, "a") as file:
        file["optimizer/vars/13"] = np.array([b"text"])
    with h5py.File(path, "r") as file:
        with pytest.raises(ValueError, match="must hold numbers"):
            _weights_file.load_optimizer_variables(file, model)
    for a, b in zip(before, _optimizer_state.optimizer_state_arrays(model), strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------
# optimizer.variables handles
# --------------------------------------------------------------------------------------------

def test_variables_handles_read_and_assign_the_live_state():
    optimizer = optimizers.SGD(learning_rate=0.1, momentum=0.9)
    assert [v.name for v in optimizer.variables] == ["iteration", "learning_rate"]  # not compiled yet
    model = _cnn(fastcnn)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    variables = optimizer.variables
    assert [v.name for v in variables][:3] == ["iteration", "learning_rate", f"{MODEL_NAME}_conv_a_kernel_momentum"]
    # Keras's path: the optimizer's name (Keras's defaults: sgd, sgd_1, ...) / the variable's.
    assert variables[2].path == f"{optimizer.name}/{MODEL_NAME}_conv_a_kernel_momentum"
    assert optimizer.name.startswith("sgd")
    assert variables[2].shape == (3, 3, 2, 4) and variables[2].dtype == "float32"
    assert variables[0].dtype == "int64" and variables[0].numpy() == 0
    _fit(model, *_data())
    momentum = variables[2].numpy()
    assert np.any(momentum) and variables[0].numpy() == 4
    momentum[...] = 0  # a copy: the optimizer is unchanged
    assert np.any(variables[2].numpy())
    variables[2].assign(np.full((3, 3, 2, 4), 0.25))
    np.testing.assert_array_equal(_optimizer_state.optimizer_state_arrays(model)[2], 0.25)
    variables[0].assign(7)
    assert optimizer.iterations == 7
    variables[1].assign(np.float32(0.5))
    assert optimizer.learning_rate == 0.5
    with pytest.raises(ValueError, match=r"'net_conv_a_kernel_momentum'.*shape \(3, 3, 2, 4\).*\(3, 3, 2\)"):
        variables[2].assign(np.zeros((3, 3, 2)))
    model.compile(optimizer=optimizers.SGD(momentum=0.5), loss="sparse_categorical_crossentropy")
    with pytest.raises(RuntimeError, match="rebuilt or recompiled"):
        variables[2].numpy()
    # Before the compiled model is built (lazily, from the first data): iteration and learning_rate.
    lazy = fastcnn.models.Sequential([fastcnn.layers.Dense(3)], name="lazy")
    lazy.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert [v.name for v in lazy.optimizer.variables] == ["iteration", "learning_rate"]
    assert _optimizer_state.optimizer_state_names(lazy) == ["iteration", "learning_rate"]
    _optimizer_state.set_optimizer_state_arrays(lazy, [0, np.float32(0.25)])
    assert lazy.optimizer.learning_rate == 0.25
    with pytest.raises(ValueError, match="not built yet.*iteration=2"):
        _optimizer_state.set_optimizer_state_arrays(lazy, [2, np.float32(0.25)])


# --------------------------------------------------------------------------------------------
# bad inputs: a clear error naming what was received, and nothing changed
# --------------------------------------------------------------------------------------------

def _trained(name="adam_amsgrad"):
    model = _fastcnn_model(_cnn, _cnn(fastcnn).get_weights(), (), OPTIMIZERS[name])
    _fit(model, *_data())
    return model


def _replaced(arrays, index, value):
    arrays = list(arrays)
    arrays[index] = value
    return arrays


@pytest.mark.parametrize("index,value,error,message", [
    (2, np.zeros((3, 3, 2, 5), np.float32), ValueError,
     r"variable 2 \('net_conv_a_kernel_momentum'\) has shape \(3, 3, 2, 4\) but the received array has shape "
     r"\(3, 3, 2, 5\)"),
    (0, np.float64(4.0), TypeError, r"variable 0 \('iteration'\) must be an integer array.*float64"),
    (0, np.int64(-1), ValueError, r"'iteration'.*>= 0. Received: -1"),
    (0, np.zeros(1, np.int64), ValueError, r"'iteration'.*shape \(\) but .* shape \(1,\)"),
    (1, np.float32(-0.1), ValueError, r"'learning_rate'.*>= 0"),
    (1, np.int64(1), TypeError, r"'learning_rate'.*float32 or float64.*int64"),
    (3, np.full((3, 3, 2, 4), np.nan, np.float32), ValueError, r"'net_conv_a_kernel_velocity'.*finite.*nan"),
    (4, np.full(4, np.inf), ValueError, r"'net_conv_a_bias_momentum'.*finite"),
    (4, np.full(4, 1e300), ValueError, r"'net_conv_a_bias_momentum'.*float32's range.*1e\+300"),
    (3, np.full((3, 3, 2, 4), -1.0), ValueError, r"'net_conv_a_kernel_velocity'.*cannot be negative.*-1.0"),
    (-1, np.full(5, -1.0), ValueError, r"'net_head_bias_velocity_hat'.*cannot be negative"),
    (2, np.array([["a"]]), ValueError, r"'net_conv_a_kernel_momentum'.*shape"),
    (2, np.full((3, 3, 2, 4), "a"), TypeError, r"'net_conv_a_kernel_momentum'.*float32 or float64.*<U1"),
    (2, object(), ValueError, r"'net_conv_a_kernel_momentum'.*shape \(3, 3, 2, 4\).*shape \(\)"),
])
def test_bad_arrays_raise_naming_the_variable_and_change_nothing(index, value, error, message):
    model = _trained()
    before = _optimizer_state.optimizer_state_arrays(model)
    rate = model.optimizer.learning_rate
    # A valid change first, so "nothing changed" shows that checking precedes writing.
    arrays = _replaced([np.int64(99)] + before[1:], index, value)
    with pytest.raises(error, match=message):
        _optimizer_state.set_optimizer_state_arrays(model, arrays)
    for a, b in zip(before, _optimizer_state.optimizer_state_arrays(model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.learning_rate == rate


def test_bad_calls(tmp_path):
    model = _trained()
    arrays = _optimizer_state.optimizer_state_arrays(model)
    with pytest.raises(ValueError, match=r"'adam(_\d+)?' of model 'net' has 20 variables but 19 arrays were received.*"
                                         r"\['iteration', 'learning_rate', 'net_conv_a_kernel_momentum'"):
        _optimizer_state.set_optimizer_state_arrays(model, arrays[:-1])
    with pytest.raises(TypeError, match="must be a list of arrays. Received: ndarray"):
        _optimizer_state.set_optimizer_state_arrays(model, arrays[2])
    with pytest.raises(TypeError, match="must be a list of arrays. Received: int"):
        _optimizer_state.set_optimizer_state_arrays(model, 3)
    uncompiled = _cnn(fastcnn)
    with pytest.raises(ValueError, match="'net' has no optimizer state: it is not compiled"):
        _optimizer_state.optimizer_state_arrays(uncompiled)
    with pytest.raises(ValueError, match="not compiled"):
        _optimizer_state.set_optimizer_state_arrays(uncompiled, arrays)
    with pytest.raises(ValueError, match="not compiled"):
        with h5py.File(tmp_path / "uncompiled.weights.h5", "w") as file:
            _weights_file.save_optimizer_variables(file, uncompiled)
    with pytest.raises(TypeError, match="Expected a fastcnn model. Received: 'model'"):
        _optimizer_state.optimizer_state_arrays("model")
    # A schedule has no learning_rate variable: Keras's float-rate state does not fit it.
    scheduled = _trained("adam_schedule")
    with pytest.raises(ValueError, match=r"has 13 variables but 14 arrays.*schedule"):
        _optimizer_state.set_optimizer_state_arrays(scheduled,
                                                    _optimizer_state.optimizer_state_arrays(_trained("adam")))


def test_runtime_slot_views_check_their_arguments():
    model = _trained("sgd_momentum")
    network = model._network
    with pytest.raises(ValueError, match="Unknown optimizer slot 'fourth'"):
        network.optimizer_slot_views("fourth")
    with pytest.raises(ValueError, match="no 'second_moment' buffer"):
        network.optimizer_slot_views("second_moment")
    with pytest.raises(ValueError, match="iterations must be >= 0. Received: -3"):
        network.optimizer_iterations = -3
