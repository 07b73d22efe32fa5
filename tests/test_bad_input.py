"""Bad inputs raise a clear ValueError or TypeError naming the argument and/or the value received,
never a crash: layer hyperparameters, model building, compile, fit/evaluate/predict data and
arguments, set_weights, and the `_core.ops` entry points with inconsistent shapes."""

import re

import numpy as np
import pytest

from fastcnn import Sequential, _core, layers, losses

ops = _core.ops
INPUT_SHAPE = (28, 28, 1)
CLASSES = 10


def make_model(input_shape=INPUT_SHAPE, compiled=True, loss="sparse_categorical_crossentropy"):
    model = Sequential([
        layers.Input(input_shape),
        layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(CLASSES, activation="softmax"),
    ])
    if compiled:
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model


def data(samples=6, shape=INPUT_SHAPE):
    rng = np.random.default_rng(0)
    return rng.random((samples,) + shape).astype(np.float32), np.arange(samples) % CLASSES


# ---------------------------------------------------------------------------------------------
# layer hyperparameters
# ---------------------------------------------------------------------------------------------

LAYER_ARGUMENTS = [
    # (id, factory, exception, regex)
    ("conv-filters-0", lambda: layers.Conv2D(0, 3), ValueError, r"filters.*filters=0\b"),
    ("conv-filters-neg", lambda: layers.Conv2D(-1, 3), ValueError, r"filters.*filters=-1\b"),
    ("conv-filters-str", lambda: layers.Conv2D("a", 3), ValueError, r"filters.*filters='a'"),
    ("conv-filters-float", lambda: layers.Conv2D(2.5, 3), ValueError, r"filters.*filters=2\.5"),
    ("conv-kernel-0", lambda: layers.Conv2D(2, 0), ValueError, r"kernel_size.*kernel_size=0\b"),
    ("conv-kernel-1tuple", lambda: layers.Conv2D(2, (3,)), ValueError, r"kernel_size.*kernel_size=\(3,\)"),
    ("conv-kernel-3-0", lambda: layers.Conv2D(2, (3, 0)), ValueError, r"kernel_size.*kernel_size=\(3, 0\)"),
    ("conv-kernel-3tuple", lambda: layers.Conv2D(2, (3, 3, 3)), ValueError, r"kernel_size=\(3, 3, 3\)"),
    ("conv-kernel-str", lambda: layers.Conv2D(2, (3, "a")), ValueError, r"kernel_size=\(3, 'a'\)"),
    ("conv-kernel-none", lambda: layers.Conv2D(2, None), ValueError, r"kernel_size=None"),
    ("conv-strides-0", lambda: layers.Conv2D(2, 3, strides=0), ValueError, r"strides.*strides=0\b"),
    ("conv-strides-1-0", lambda: layers.Conv2D(2, 3, strides=(1, 0)), ValueError, r"strides=\(1, 0\)"),
    ("conv-dilation-0", lambda: layers.Conv2D(2, 3, dilation_rate=0), ValueError, r"dilation_rate=0\b"),
    ("conv-padding-foo", lambda: layers.Conv2D(2, 3, padding="foo"), ValueError, r"padding.*padding='foo'"),
    ("conv-activation-bogus", lambda: layers.Conv2D(2, 3, activation="bogus"), ValueError, r"activation.*'bogus'"),
    ("conv-use-bias-str", lambda: layers.Conv2D(2, 3, use_bias="yes"), TypeError, r"use_bias.*'yes'"),
    ("dense-units-0", lambda: layers.Dense(0), ValueError, r"units.*units=0\b"),
    ("dense-units-neg", lambda: layers.Dense(-3), ValueError, r"units.*units=-3\b"),
    ("dense-units-str", lambda: layers.Dense("a"), ValueError, r"units.*units='a'"),
    ("dense-activation-bogus", lambda: layers.Dense(2, activation="bogus"), ValueError, r"activation.*'bogus'"),
    ("dropout-rate-neg", lambda: layers.Dropout(-0.1), ValueError, r"rate.*rate=-0\.1\b"),
    ("dropout-rate-1", lambda: layers.Dropout(1.0), ValueError, r"rate.*rate=1\.0\b"),
    ("dropout-rate-1.5", lambda: layers.Dropout(1.5), ValueError, r"rate.*rate=1\.5\b"),
    ("dropout-rate-str", lambda: layers.Dropout("a"), ValueError, r"rate.*rate='a'"),
    ("dropout-rate-nan", lambda: layers.Dropout(float("nan")), ValueError, r"rate.*rate=nan"),
    ("pool-size-0", lambda: layers.MaxPooling2D(0), ValueError, r"pool_size.*pool_size=0\b"),
    ("pool-size-neg", lambda: layers.MaxPooling2D(-1), ValueError, r"pool_size.*pool_size=-1\b"),
    ("pool-size-1tuple", lambda: layers.MaxPooling2D((2,)), ValueError, r"pool_size.*pool_size=\(2,\)"),
    ("pool-strides-0", lambda: layers.MaxPooling2D(2, strides=0), ValueError, r"strides.*strides=0\b"),
    ("pool-padding-full", lambda: layers.MaxPooling2D(2, padding="full"), ValueError, r"padding.*'full'"),
    ("activation-bogus", lambda: layers.Activation("bogus"), ValueError, r"'bogus'"),
    ("input-zero-dim", lambda: layers.Input((28, 0, 1)), ValueError, r"shape=\(28, 0, 1\)"),
    ("input-none-dim", lambda: layers.Input((None, 28, 1)), ValueError, r"None"),
]


@pytest.mark.parametrize("factory,exception,pattern",
                         [case[1:] for case in LAYER_ARGUMENTS], ids=[case[0] for case in LAYER_ARGUMENTS])
def test_layer_hyperparameters(factory, exception, pattern):
    with pytest.raises(exception, match=pattern):
        factory()


# ---------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer_factory,pattern", [
    (lambda: layers.Conv2D(2, 5), r"kernel.*\(5, 5\).*larger than the input.*padding='valid'"),
    (lambda: layers.Conv2D(2, (1, 7)), r"larger than the input.*padding='valid'"),
    (lambda: layers.Conv2D(2, 3, dilation_rate=3), r"dilation \(3, 3\).*larger than the input"),
    (lambda: layers.MaxPooling2D(5), r"pool_size=\(5, 5\).*larger than the input"),
], ids=["conv-5x5", "conv-1x7", "conv-dilated", "pool-5x5"])
def test_window_larger_than_input_with_valid_padding_at_build(layer_factory, pattern):
    # declared Input: raised while the Sequential is constructed
    with pytest.raises(ValueError, match=pattern):
        Sequential([layers.Input((4, 6, 1)), layer_factory()])
    # explicit build
    with pytest.raises(ValueError, match=pattern):
        Sequential([layer_factory()]).build((None, 4, 6, 1))
    # lazily built from the first data
    with pytest.raises(ValueError, match=pattern):
        Sequential([layer_factory(), layers.Flatten(), layers.Dense(3)]).predict(np.zeros((2, 4, 6, 1)), verbose=0)


def test_conv_on_input_without_channel_axis_at_build():
    with pytest.raises(ValueError, match=r"expected ndim=4, found ndim=3.*\(None, 28, 28\)"):
        Sequential([layers.Input((28, 28)), layers.Conv2D(4, 3)])


def test_model_whose_output_is_not_a_vector_cannot_fit():
    model = Sequential([layers.Input((8, 8, 1)), layers.Conv2D(4, 3), layers.Dense(CLASSES)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"\(None, 6, 6, 10\).*Flatten"):
        model.fit(np.zeros((2, 8, 8, 1)), np.zeros(2, int), verbose=0)


def test_empty_model_predict():
    with pytest.raises(ValueError, match=r"no layers"):
        Sequential().predict(np.zeros((2, 3)), verbose=0)


def test_failed_lazy_build_does_not_poison_the_model():
    """A bad first input raises ValueError; the model must still accept good input afterwards
    (as Keras's Conv2D, built for 1 input channel, takes any spatial size)."""
    model = Sequential([layers.Conv2D(2, 3), layers.MaxPooling2D(5), layers.Flatten(), layers.Dense(3)])
    with pytest.raises(ValueError, match=r"pool_size=\(5, 5\).*larger than the input"):
        model.predict(np.zeros((2, 6, 6, 1)), verbose=0)
    assert model.predict(np.zeros((2, 12, 12, 1)), verbose=0).shape == (2, 3)


# ---------------------------------------------------------------------------------------------
# compile
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(optimizer="adamw_bogus", loss="sparse_categorical_crossentropy"), r"optimizer.*'adamw_bogus'"),
    (dict(optimizer=None, loss="sparse_categorical_crossentropy"), r"optimizer.*None"),
    (dict(optimizer=5, loss="sparse_categorical_crossentropy"), r"optimizer.*\b5\b"),
    (dict(optimizer="adam", loss="mse_bogus"), r"loss.*'mse_bogus'"),
    (dict(optimizer="adam"), r"loss"),
    (dict(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["bogus"]), r"metric.*'bogus'"),
], ids=["optimizer-name", "optimizer-none", "optimizer-int", "loss-name", "loss-missing", "metric-name"])
def test_compile_unknown_names(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_model(compiled=False).compile(**kwargs)


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "test_on_batch"])
def test_training_or_evaluating_before_compile(method):
    """Keras 3 raises ValueError("You must call `compile()` before using the model.")."""
    model = make_model(compiled=False)
    x, y = data()
    call = {"fit": lambda: model.fit(x, y, verbose=0), "evaluate": lambda: model.evaluate(x, y, verbose=0),
            "train_on_batch": lambda: model.train_on_batch(x, y),
            "test_on_batch": lambda: model.test_on_batch(x, y)}[method]
    with pytest.raises(ValueError, match=r"compile\(\)"):
        call()


# ---------------------------------------------------------------------------------------------
# data given to fit / evaluate / predict
# ---------------------------------------------------------------------------------------------

WRONG_X = [
    ("rank-3", np.zeros((4, 28, 28), np.float32), r"expected shape=\(None, 28, 28, 1\), found shape=\(None, 28, 28\)"),
    ("3-channels", np.zeros((4, 28, 28, 3), np.float32), r"expected shape=\(None, 28, 28, 1\), found shape=\(None, 28, 28, 3\)"),
    ("height-27", np.zeros((4, 27, 28, 1), np.float32), r"found shape=\(None, 27, 28, 1\)"),
    ("rank-5", np.zeros((4, 28, 28, 1, 1), np.float32), r"found shape=\(None, 28, 28, 1, 1\)"),
    ("rank-1", np.zeros(28, np.float32), r"x.*rank >= 2.*\(28,\)"),
]


@pytest.mark.parametrize("x,pattern", [case[1:] for case in WRONG_X], ids=[case[0] for case in WRONG_X])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_wrong_input_rank_shape_or_channels(method, x, pattern):
    model = make_model()
    y = np.zeros(len(x), int)
    call = {"fit": lambda: model.fit(x, y, verbose=0), "evaluate": lambda: model.evaluate(x, y, verbose=0),
            "predict": lambda: model.predict(x, verbose=0)}[method]
    with pytest.raises(ValueError, match=pattern):
        call()


def test_wrong_validation_data_shape():
    x, y = data()
    with pytest.raises(ValueError, match=r"found shape=\(None, 28, 28, 3\)"):
        make_model().fit(x, y, validation_data=(np.zeros((2, 28, 28, 3)), y[:2]), verbose=0)
    with pytest.raises(ValueError, match=r"'y_val' sizes: 2"):
        make_model().fit(x, y, validation_data=(x, y[:2]), verbose=0)


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch"])
def test_x_y_length_mismatch(method):
    model = make_model()
    x, y = data(6)
    call = {"fit": lambda: model.fit(x, y[:5], verbose=0), "evaluate": lambda: model.evaluate(x, y[:5], verbose=0),
            "train_on_batch": lambda: model.train_on_batch(x, y[:5])}[method]
    with pytest.raises(ValueError, match=r"(?s)'x' sizes: 6.*'y' sizes: 5"):
        call()


@pytest.mark.parametrize("bad_label", [10, -1, 2**33])
@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "validation"])
def test_labels_outside_class_range(method, bad_label):
    model = make_model()
    x, y = data(4)
    bad = y.astype(np.int64).copy()
    bad[2] = bad_label
    call = {"fit": lambda: model.fit(x, bad, verbose=0), "evaluate": lambda: model.evaluate(x, bad, verbose=0),
            "train_on_batch": lambda: model.train_on_batch(x, bad),
            "validation": lambda: model.fit(x, y, validation_data=(x, bad), verbose=0)}[method]
    with pytest.raises(ValueError, match=rf"label value of {bad_label}\b.*\[0, {CLASSES}\)"):
        call()


def test_labels_out_of_range_leave_weights_untouched():
    model = make_model()
    before = model.get_weights()
    x, _ = data(4)
    with pytest.raises(ValueError):
        model.fit(x, np.array([0, 1, 10, 2]), verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("labels,value", [
    (np.array([0, 0.5, 2, 3]), r"0\.5"),
    (np.array([0, 1, 2, 2.25]), r"2\.25"),
], ids=["0.5", "2.25"])
def test_non_integer_sparse_labels(labels, value):
    """The message says the labels must be integers and quotes the offending value."""
    x, _ = data(4)
    with pytest.raises(ValueError, match=rf"(?s)integer.*{value}"):
        make_model().fit(x, labels, verbose=0)
    with pytest.raises(ValueError, match=rf"(?s)integer.*{value}"):
        losses.sparse_categorical_crossentropy(labels, np.full((4, CLASSES), 0.1, np.float32))


def test_non_finite_sparse_labels():
    x, _ = data(4)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match=r"integer"):
            make_model().fit(x, np.array([0, bad, 2, 3]), verbose=0)


def test_label_array_of_wrong_rank_or_width():
    x, _ = data(4)
    with pytest.raises(ValueError, match=r"\(batch,\) or \(batch, 1\).*y\.shape=\(4, 2\)"):
        make_model().fit(x, np.zeros((4, 2), int), verbose=0)
    with pytest.raises(ValueError, match=r"shape \(batch, 10\).*y\.shape=\(4, 5\)"):
        make_model(loss="categorical_crossentropy").fit(x, np.eye(5)[:4], verbose=0)
    with pytest.raises(ValueError, match=r"shape \(batch, 10\).*y\.shape=\(4,\)"):
        make_model(loss="categorical_crossentropy").fit(x, np.arange(4), verbose=0)


NON_NUMERIC = [
    ("strings", lambda shape: np.full(shape, "a")),
    ("numeric-strings", lambda shape: np.full(shape, "1.5")),
    ("object-none", lambda shape: np.empty(shape, dtype=object)),
    ("object-dicts", lambda shape: np.array([{} for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape)),
]


@pytest.mark.parametrize("make", [case[1] for case in NON_NUMERIC], ids=[case[0] for case in NON_NUMERIC])
def test_non_numeric_x(make):
    x = make((4,) + INPUT_SHAPE)
    y = np.arange(4)
    for call in (lambda: make_model().fit(x, y, verbose=0), lambda: make_model().predict(x, verbose=0),
                 lambda: make_model().evaluate(x, y, verbose=0)):
        with pytest.raises(TypeError, match=r"`x` must be a numeric array.*dtype"):
            call()


@pytest.mark.parametrize("make", [case[1] for case in NON_NUMERIC], ids=[case[0] for case in NON_NUMERIC])
def test_non_numeric_y(make):
    x, _ = data(4)
    with pytest.raises(TypeError, match=r"`y` must be a numeric array.*dtype"):
        make_model().fit(x, make((4,)), verbose=0)


def test_ragged_x_and_missing_arrays():
    with pytest.raises(TypeError, match=r"`x` must be a numeric array"):
        make_model().predict([[1, 2], [3]], verbose=0)
    x, y = data(4)
    with pytest.raises(ValueError, match=r"`y` is required.*y=None"):
        make_model().fit(x, None, verbose=0)
    with pytest.raises(ValueError, match=r"`x` is required.*x=None"):
        make_model().fit(None, y, verbose=0)


# ---------------------------------------------------------------------------------------------
# fit / predict arguments
# ---------------------------------------------------------------------------------------------

FIT_ARGUMENTS = [
    ("batch_size-0", dict(batch_size=0), r"batch_size.*batch_size=0\b"),
    ("batch_size-neg", dict(batch_size=-1), r"batch_size=-1\b"),
    ("batch_size-float", dict(batch_size=2.5), r"batch_size=2\.5"),
    ("batch_size-str", dict(batch_size="a"), r"batch_size='a'"),
    ("batch_size-bool", dict(batch_size=True), r"batch_size=True"),
    ("epochs-0", dict(epochs=0), r"epochs.*epochs=0\b"),
    ("epochs-neg", dict(epochs=-1), r"epochs=-1\b"),
    ("epochs-float", dict(epochs=1.5), r"epochs=1\.5"),
    ("validation_split-1.5", dict(validation_split=1.5), r"validation_split.*validation_split=1\.5"),
    ("validation_split-1", dict(validation_split=1.0), r"validation_split=1\.0"),
    ("validation_split-neg", dict(validation_split=-0.1), r"validation_split=-0\.1"),
    ("validation_split-str", dict(validation_split="a"), r"validation_split='a'"),
    ("verbose-5", dict(verbose=5), r"verbose=5\b"),
]


@pytest.mark.parametrize("kwargs,pattern", [case[1:] for case in FIT_ARGUMENTS], ids=[case[0] for case in FIT_ARGUMENTS])
def test_fit_arguments(kwargs, pattern):
    x, y = data(4)
    kwargs = {"verbose": 0, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        make_model().fit(x, y, **kwargs)


@pytest.mark.parametrize("method", ["predict", "evaluate"])
def test_batch_size_zero_in_predict_and_evaluate(method):
    model = make_model()
    x, y = data(4)
    with pytest.raises(ValueError, match=r"batch_size.*batch_size=0\b"):
        if method == "predict":
            model.predict(x, batch_size=0, verbose=0)
        else:
            model.evaluate(x, y, batch_size=0, verbose=0)


# ---------------------------------------------------------------------------------------------
# set_weights
# ---------------------------------------------------------------------------------------------


def test_set_weights_wrong_count():
    model = make_model()
    weights = model.get_weights()
    with pytest.raises(ValueError, match=r"length 3, but the model was expecting 4 weights"):
        model.set_weights(weights[:-1])
    with pytest.raises(ValueError, match=r"length 5, but the model was expecting 4 weights"):
        model.set_weights(weights + [weights[-1]])
    with pytest.raises(ValueError, match=r"length 1, but the layer was expecting 2 weights"):
        model.layers[0].set_weights(weights[:1])


def test_set_weights_wrong_shapes_write_nothing():
    model = make_model()
    weights = model.get_weights()
    changed = [w + 1 for w in weights]
    # a good first array followed by a bad one: nothing may be written
    bad = changed[:3] + [np.zeros((CLASSES + 1,), np.float32)]
    with pytest.raises(ValueError, match=r"weight shape \(10,\) is not compatible with provided weight shape \(11,\)"):
        model.set_weights(bad)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    with pytest.raises(ValueError, match=r"\(3, 3, 1, 4\) is not compatible with provided weight shape \(3, 3, 1, 2\)"):
        model.set_weights([weights[0][..., :2]] + weights[1:])
    with pytest.raises(ValueError, match=r"\(4,\) is not compatible with provided weight shape \(3,\)"):
        model.layers[0].set_weights([weights[0], np.zeros(3)])
    with pytest.raises(ValueError, match=r"Target variable shape=\(3, 3, 1, 4\), Received: value\.shape=\(2, 2\)"):
        model.layers[0].kernel.assign(np.zeros((2, 2)))


def test_set_weights_non_numeric():
    model = make_model()
    weights = model.get_weights()
    with pytest.raises(TypeError, match=r"numeric.*dtype=<U1"):
        model.set_weights([np.full(weights[0].shape, "a")] + weights[1:])
    with pytest.raises(TypeError, match=r"numeric.*dtype=object"):
        model.set_weights([np.empty(weights[0].shape, dtype=object)] + weights[1:])


# ---------------------------------------------------------------------------------------------
# eager layer calls
# ---------------------------------------------------------------------------------------------


def test_eager_layer_calls_with_bad_arrays():
    with pytest.raises(ValueError, match=r"expected ndim=4, found ndim=3.*\(None, 5, 5\)"):
        layers.Conv2D(2, 3)(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match=r"larger than the input"):
        layers.Conv2D(2, 7)(np.zeros((2, 5, 5, 1)))
    with pytest.raises(TypeError, match=r"numeric arrays.*dtype=<U1"):
        layers.Conv2D(2, 3)(np.full((2, 5, 5, 1), "a"))
    with pytest.raises(ValueError, match=r"rank >= 2.*shape=\(5,\)"):
        layers.Dense(2)(np.zeros(5))
    with pytest.raises(TypeError, match=r"numeric arrays.*dtype=object"):
        layers.Dropout(0.5)(np.empty((2, 3), dtype=object), training=True)


# ---------------------------------------------------------------------------------------------
# empty batches
# ---------------------------------------------------------------------------------------------


def test_empty_batch_predicts_zero_rows_of_class_scores():
    model = make_model()
    empty = np.zeros((0,) + INPUT_SHAPE, np.float32)
    out = model.predict(empty, verbose=0)
    assert out.shape == (0, CLASSES)
    assert out.dtype == np.float32
    assert model.predict(empty, batch_size=7, verbose=0).shape == (0, CLASSES)
    assert model.predict_on_batch(empty).shape == (0, CLASSES)
    assert model(empty).shape == (0, CLASSES)
    lazy = Sequential([layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(7)])
    assert lazy.predict(np.zeros((0, 8, 8, 1)), verbose=0).shape == (0, 7)


# ---------------------------------------------------------------------------------------------
# _core.ops entry points
# ---------------------------------------------------------------------------------------------

X = np.zeros((2, 5, 5, 3), np.float32)
K = np.zeros((3, 3, 3, 4), np.float32)
DY = np.zeros((2, 3, 3, 4), np.float32)  # conv output gradient for X, K, 'valid'
POOL_DY = np.zeros((2, 2, 2, 3), np.float32)  # pool (2, 2) / (2, 2) 'valid' output gradient for X
D_X = np.zeros((2, 5), np.float32)
D_K = np.zeros((5, 3), np.float32)

OPS_CASES = [
    # (id, call, regex)
    ("conv-kernel-in-channels", lambda: ops.conv2d_forward(X, np.zeros((3, 3, 2, 4), np.float32)),
     r"`kernel` axis 2 \(input channels\) must be 3\. Received: kernel\.shape=\(3, 3, 2, 4\)"),
    ("conv-bias-length", lambda: ops.conv2d_forward(X, K, np.zeros(5, np.float32)),
     r"`bias` axis 0 \(output channels\) must be 4\. Received: bias\.shape=\(5,\)"),
    ("conv-bias-rank", lambda: ops.conv2d_forward(X, K, np.zeros((4, 1), np.float32)),
     r"`bias` must have rank 1\. Received: bias\.shape=\(4, 1\)"),
    ("conv-input-rank", lambda: ops.conv2d_forward(X[0], K), r"`input` must have rank 4\. Received: input\.shape=\(5, 5, 3\)"),
    ("conv-kernel-rank", lambda: ops.conv2d_forward(X, K[0]), r"`kernel` must have rank 4\. Received: kernel\.shape=\(3, 3, 4\)"),
    ("conv-stride-0", lambda: ops.conv2d_forward(X, K, strides=(0, 1)), r"stride_height.*stride_height=0\b"),
    ("conv-dilation-0", lambda: ops.conv2d_forward(X, K, dilation=(1, 0)), r"dilation_width.*dilation_width=0\b"),
    ("conv-kernel-too-large", lambda: ops.conv2d_forward(X, np.zeros((6, 3, 3, 4), np.float32)),
     r"window of 6 along height is larger than the input \(5\) with padding='valid'"),
    ("conv-padding-foo", lambda: ops.conv2d_forward(X, K, padding="foo"), r"padding.*padding=foo"),
    ("conv-activation-bogus", lambda: ops.conv2d_forward(X, K, activation="bogus"), r"activation.*'bogus'"),
    ("conv-activation-softmax", lambda: ops.conv2d_forward(X, K, activation="softmax"), r"elementwise"),
    ("conv-kernels-foo", lambda: ops.conv2d_forward(X, K, kernels="foo"), r"kernel set.*'foo'"),
    ("conv-bi-grad-height", lambda: ops.conv2d_backward_input(np.zeros((2, 4, 3, 4), np.float32), K, X.shape),
     r"`output_gradient` axis 1 \(output height\) must be 3\. Received: output_gradient\.shape=\(2, 4, 3, 4\)"),
    ("conv-bi-grad-channels", lambda: ops.conv2d_backward_input(np.zeros((2, 3, 3, 5), np.float32), K, X.shape),
     r"`output_gradient` axis 3 \(output channels\) must be 4\. Received: output_gradient\.shape=\(2, 3, 3, 5\)"),
    ("conv-bi-grad-batch", lambda: ops.conv2d_backward_input(np.zeros((1, 3, 3, 4), np.float32), K, X.shape),
     r"`output_gradient` axis 0 \(batch\) must be 2\. Received: output_gradient\.shape=\(1, 3, 3, 4\)"),
    ("conv-bi-grad-rank", lambda: ops.conv2d_backward_input(DY[0], K, X.shape),
     r"`output_gradient` must have rank 4\. Received: output_gradient\.shape=\(3, 3, 4\)"),
    ("conv-bi-kernel-in-channels", lambda: ops.conv2d_backward_input(DY, K, (2, 5, 5, 2)),
     r"`kernel` axis 2 \(input channels\) must be 2\. Received: kernel\.shape=\(3, 3, 3, 4\)"),
    ("conv-bi-negative-batch", lambda: ops.conv2d_backward_input(DY, K, (-1, 5, 5, 3)), r"batch=-1\b"),
    ("conv-bi-zero-height", lambda: ops.conv2d_backward_input(DY, K, (2, 0, 5, 3)), r"input_height=0\b"),
    ("conv-bi-huge", lambda: ops.conv2d_backward_input(DY, K, (2**40, 2**20, 5, 3)), r"too large"),
    ("conv-bk-grad-width", lambda: ops.conv2d_backward_kernel(X, np.zeros((2, 3, 2, 4), np.float32), (3, 3)),
     r"`output_gradient` axis 2 \(output width\) must be 3\. Received: output_gradient\.shape=\(2, 3, 2, 4\)"),
    ("conv-bk-grad-batch", lambda: ops.conv2d_backward_kernel(X, np.zeros((3, 3, 3, 4), np.float32), (3, 3)),
     r"`output_gradient` axis 0 \(batch\) must be 2\. Received: output_gradient\.shape=\(3, 3, 3, 4\)"),
    ("conv-bk-grad-rank", lambda: ops.conv2d_backward_kernel(X, DY[0], (3, 3)),
     r"`output_gradient` must have rank 4\. Received: output_gradient\.shape=\(3, 3, 4\)"),
    ("conv-bk-input-rank", lambda: ops.conv2d_backward_kernel(X[0], DY, (3, 3)),
     r"`input` must have rank 4\. Received: input\.shape=\(5, 5, 3\)"),
    ("conv-bk-kernel-size-0", lambda: ops.conv2d_backward_kernel(X, DY, (0, 3)), r"kernel_height=0\b"),
    ("pool-grad-width", lambda: ops.max_pool2d_backward(X, np.zeros((2, 2, 3, 3), np.float32), (2, 2), (2, 2)),
     r"`output_gradient` axis 2 \(output width\) must be 2\. Received: output_gradient\.shape=\(2, 2, 3, 3\)"),
    ("pool-grad-channels", lambda: ops.max_pool2d_backward(X, np.zeros((2, 2, 2, 4), np.float32), (2, 2), (2, 2)),
     r"`output_gradient` axis 3 \(channels\) must be 3\. Received: output_gradient\.shape=\(2, 2, 2, 4\)"),
    ("pool-grad-batch", lambda: ops.max_pool2d_backward(X, np.zeros((1, 2, 2, 3), np.float32), (2, 2), (2, 2)),
     r"`output_gradient` axis 0 \(batch\) must be 2\. Received: output_gradient\.shape=\(1, 2, 2, 3\)"),
    ("pool-grad-rank", lambda: ops.max_pool2d_backward(X, POOL_DY[0], (2, 2), (2, 2)),
     r"`output_gradient` must have rank 4\. Received: output_gradient\.shape=\(2, 2, 3\)"),
    ("pool-input-rank", lambda: ops.max_pool2d_forward(X[0], (2, 2), (2, 2)),
     r"`input` must have rank 4\. Received: input\.shape=\(5, 5, 3\)"),
    ("pool-size-0", lambda: ops.max_pool2d_forward(X, (0, 2), (2, 2)), r"pool_height=0\b"),
    ("pool-stride-0", lambda: ops.max_pool2d_forward(X, (2, 2), (2, 0)), r"stride_width=0\b"),
    ("pool-too-large", lambda: ops.max_pool2d_forward(X, (6, 2), (1, 1)), r"window of 6 along height is larger than the input \(5\)"),
    ("dense-kernel-in-units", lambda: ops.dense_forward(D_X, np.zeros((4, 3), np.float32)),
     r"`kernel` axis 0 \(input units\) must be 5\. Received: kernel\.shape=\(4, 3\)"),
    ("dense-bias-length", lambda: ops.dense_forward(D_X, D_K, np.zeros(4, np.float32)),
     r"`bias` axis 0 \(units\) must be 3\. Received: bias\.shape=\(4,\)"),
    ("dense-input-rank", lambda: ops.dense_forward(D_X[..., None], D_K),
     r"`input` must have rank 2\. Received: input\.shape=\(2, 5, 1\)"),
    ("dense-softmax", lambda: ops.dense_forward(D_X, D_K, activation="softmax"), r"elementwise"),
    ("dense-bi-grad-units", lambda: ops.dense_backward_input(np.zeros((2, 4), np.float32), D_K),
     r"`output_gradient` axis 1 \(units\) must be 3\. Received: output_gradient\.shape=\(2, 4\)"),
    ("dense-bk-grad-batch", lambda: ops.dense_backward_kernel(D_X, np.zeros((3, 3), np.float32)),
     r"`output_gradient` axis 0 \(batch\) must be 2\. Received: output_gradient\.shape=\(3, 3\)"),
    ("activation-bogus", lambda: ops.activation_forward("bogus", D_X), r"activation.*'bogus'"),
    ("activation-scalar", lambda: ops.activation_forward("relu", np.float32(1)), r"`input` must have rank >= 1"),
    ("activation-backward-shape", lambda: ops.activation_backward("relu", D_X, np.zeros((2, 4), np.float32)),
     r"output\.shape=\(2, 5\), output_gradient\.shape=\(2, 4\)"),
    ("dropout-rate-1", lambda: ops.dropout_forward(D_X, 1.0, 0), r"rate.*rate=1\.0"),
    ("dropout-rate-neg", lambda: ops.dropout_backward(D_X, -0.1, 0), r"rate.*rate=-0\.1"),
    ("dropout-rate-nan", lambda: ops.dropout_forward(D_X, float("nan"), 0), r"rate.*rate=nan"),
    ("cross-entropy-label", lambda: ops.loss(np.zeros((2, 3), np.float32), np.array([0, 3])),
     r"label 3 is outside \[0, 3\)"),
    ("cross-entropy-label-neg", lambda: ops.loss(np.zeros((2, 3), np.float32), np.array([0, -1])),
     r"label -1 is outside \[0, 3\)"),
    ("cross-entropy-batch", lambda: ops.loss(np.zeros((2, 3), np.float32), np.array([0, 1, 2])),
     r"`targets` axis 0 \(batch\) must be 2\. Received: targets\.shape=\(3,\)"),
    ("cross-entropy-classes", lambda: ops.loss(np.zeros((2, 3), np.float32), np.zeros((2, 4))),
     r"`targets` axis 1 \(classes\) must be 3\. Received: targets\.shape=\(2, 4\)"),
    ("set-num-threads-0", lambda: _core.set_num_threads(0), r"thread count.*Received: 0\b"),
    ("select-kernels-foo", lambda: _core.select_kernels("foo"), r"kernel set.*'foo'"),
]


@pytest.mark.parametrize("call,pattern", [case[1:] for case in OPS_CASES], ids=[case[0] for case in OPS_CASES])
def test_core_ops_reject_inconsistent_arguments(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("tier", _core.available_kernels())
def test_core_ops_shape_checks_apply_to_every_tier(tier):
    with pytest.raises(ValueError, match=r"input channels"):
        ops.conv2d_forward(X, np.zeros((3, 3, 2, 4), np.float32), kernels=tier)
    with pytest.raises(ValueError, match=r"output height"):
        ops.conv2d_backward_input(np.zeros((2, 4, 3, 4), np.float32), K, X.shape, kernels=tier)
    with pytest.raises(ValueError, match=r"output width"):
        ops.conv2d_backward_kernel(X, np.zeros((2, 3, 2, 4), np.float32), (3, 3), kernels=tier)
    with pytest.raises(ValueError, match=r"output width"):
        ops.max_pool2d_backward(X, np.zeros((2, 2, 3, 3), np.float32), (2, 2), (2, 2), kernels=tier)


@pytest.mark.parametrize("call,pattern", [
    (lambda: ops.conv2d_forward(np.full(X.shape, "a"), K), r"`input` must hold .*Received: input\.dtype=<U1"),
    (lambda: ops.conv2d_forward(np.array([{} for _ in range(X.size)], dtype=object).reshape(X.shape), K),
     r"`input` must hold .*Received: input\.dtype=object"),
], ids=["string-array", "object-array"])
def test_core_ops_reject_non_numeric_arrays_naming_the_argument(call, pattern):
    with pytest.raises(TypeError, match=pattern):
        call()


@pytest.mark.parametrize("call", [
    lambda: ops.conv2d_backward_input(DY, K, (2, 5, 5)),
    lambda: ops.dropout_forward(D_X, 0.5, -1),
    lambda: ops.max_pool2d_forward(X, (2, 2, 2), (2, 2)),
], ids=["input-shape-3-tuple", "negative-seed", "pool-size-3-tuple"])
def test_core_ops_reject_wrong_argument_types(call):
    """pybind11's conversion error names the function and the arguments it was given."""
    with pytest.raises(TypeError, match=r"incompatible function arguments.*(?s:.*)Invoked with"):
        call()


def test_core_ops_still_work_after_errors():
    """Errors leave no state behind: the same ops then run normally."""
    for case in OPS_CASES[:5]:
        with pytest.raises(ValueError):
            case[1]()
    out = ops.conv2d_forward(np.ones((1, 5, 5, 3), np.float32), np.ones((3, 3, 3, 4), np.float32))
    np.testing.assert_array_equal(out, np.full((1, 3, 3, 4), 27.0, np.float32))
    assert re.fullmatch(r"reference|generic|avx2|avx512", _core.kernel_set())
