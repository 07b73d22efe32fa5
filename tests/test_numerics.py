"""NaN and infinity: non-finite inputs propagate without a crash (per sample in inference),
TerminateOnNaN stops training, and fit(check_numerics=True) names the first place a non-finite
value appears and leaves the model as it was before that step."""

import numpy as np
import pytest

from fastcnn import callbacks, layers, models, optimizers, utils


def _model(optimizer="adam", dropout=False):
    utils.set_random_seed(0)
    stack = [
        layers.Input((12, 12, 1)),
        layers.Conv2D(8, (3, 3), activation="relu", name="conv"),
        layers.MaxPooling2D((2, 2), name="pool"),
        layers.Flatten(name="flatten"),
    ]
    if dropout:
        stack.append(layers.Dropout(0.5, name="dropout"))
    stack.append(layers.Dense(4, activation="softmax", name="classifier"))
    model = models.Sequential(stack)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(samples=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((samples, 12, 12, 1)).astype(np.float32), rng.integers(0, 4, samples)


def _state(model):
    return [w.copy() for w in model.get_weights()], int(model.optimizer.iterations)


def _assert_state(model, state):
    weights, iterations = state
    assert int(model.optimizer.iterations) == iterations
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_propagate_per_sample_in_predict_and_evaluate(value):
    model = _model()
    x, y = _data(8)
    clean = model.predict(x, verbose=0)
    x[3, 5, 5, 0] = value
    x[6] = value
    got = model.predict(x, verbose=0)
    others = [0, 1, 2, 4, 5, 7]
    np.testing.assert_array_equal(got[others], clean[others])
    assert not np.isfinite(got[6]).all()
    loss, _ = model.evaluate(x, y, verbose=0)
    assert np.isnan(loss) or np.isinf(loss)


def test_nan_inputs_in_fit_end_in_a_nan_loss_and_terminate_on_nan_stops(capsys):
    model = _model()
    x, y = _data()
    x[40] = np.nan  # in the third batch of 16
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN()])
    assert np.isnan(history.history["loss"][0])
    assert len(history.history["loss"]) == 1
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
    assert model.stop_training


def test_check_numerics_names_the_input_batch_and_undoes_the_step():
    model = _model()
    x, y = _data()
    x[40, 0, 0, 0] = np.nan
    model.fit(x[:32], y[:32], batch_size=16, epochs=1, shuffle=False, verbose=0)
    before = _state(model)
    with pytest.raises(FloatingPointError) as error:
        model.fit(x[32:], y[32:], batch_size=16, epochs=1, shuffle=False, verbose=0, check_numerics=True)
    message = str(error.value)
    assert "the input batch holds non-finite values (1 NaN and 0 infinite of 2304 values)" in message
    assert "epoch 1, batch 0 (optimizer step 3)" in message
    assert "The step was not applied" in message
    _assert_state(model, before)


def test_check_numerics_names_the_first_layer_whose_output_overflows():
    model = _model()
    x, y = _data()
    kernel, bias = model.get_layer("conv").get_weights()
    # Finite weights whose sums overflow: nine terms of about 3e38 * 0.5 each exceed float32's 3.4e38.
    model.get_layer("conv").set_weights([np.full_like(kernel, 3e38), bias])
    before = _state(model)
    with pytest.raises(FloatingPointError, match=r"layer 'conv' \(Conv2D\) produced non-finite values in its output"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, check_numerics=True)
    _assert_state(model, before)


def test_check_numerics_names_weights_that_were_already_non_finite():
    model = _model()
    x, y = _data()
    kernel, bias = model.get_layer("classifier").get_weights()
    kernel[0, 0] = np.inf
    model.get_layer("classifier").set_weights([kernel, bias])
    with pytest.raises(FloatingPointError,
                       match=r"layer 'classifier' \(Dense\) already had non-finite weights \(0 NaN and 1 infinite"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, check_numerics=True)


def test_check_numerics_names_an_update_that_overflows_and_restores_optimizer_state():
    # Finite forward pass and loss, but a learning rate so large that the update overflows.
    model = _model(optimizer=optimizers.SGD(learning_rate=1e38, momentum=0.9))
    x, y = _data()
    model.fit(x[:16], y[:16], batch_size=16, epochs=1, verbose=0)  # finite: |w| grows to ~1e37 at most
    before = _state(model)
    with pytest.raises(FloatingPointError) as error:
        model.fit(x, y, batch_size=16, epochs=5, verbose=0, check_numerics=True)
    message = str(error.value)
    assert "non-finite" in message
    failed_step = int(message.split("optimizer step ")[1].split(")")[0])
    assert int(model.optimizer.iterations) == failed_step - 1
    assert all(np.isfinite(w).all() for w in model.get_weights())
    if failed_step == before[1] + 1:
        _assert_state(model, before)


def test_check_numerics_with_dropout_replays_the_steps_masks():
    """The diagnostic pass uses the failing step's seed: Dropout draws the same masks, so a layer
    after Dropout is named correctly and training stays bitwise as without the check."""
    x, y = _data()
    plain = _model(dropout=True)
    utils.set_random_seed(3)
    plain.fit(x, y, batch_size=16, epochs=2, verbose=0)
    checked = _model(dropout=True)
    utils.set_random_seed(3)
    checked.fit(x, y, batch_size=16, epochs=2, verbose=0, check_numerics=True)
    for got, want in zip(checked.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_check_numerics_on_a_generator_fit():
    model = _model()
    x, y = _data()
    x[20] = np.inf

    def batches():
        for start in range(0, 64, 16):
            yield x[start:start + 16], y[start:start + 16]

    with pytest.raises(FloatingPointError, match=r"the input batch holds non-finite values .* epoch 1, batch 1 "):
        model.fit(batches(), epochs=1, shuffle=False, verbose=0, check_numerics=True)
    assert int(model.optimizer.iterations) == 1


def test_check_numerics_must_be_a_bool():
    model = _model()
    x, y = _data()
    with pytest.raises(ValueError, match=r"`check_numerics` must be True or False. Received: check_numerics='yes'"):
        model.fit(x, y, verbose=0, check_numerics="yes")
