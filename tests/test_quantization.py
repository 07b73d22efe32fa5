"""Post-training int8 quantization (fastcnn/models/_quantization.py, Model.quantize): the quantized model
against a NumPy simulation of the same arithmetic, its accuracy against float32 on the embedded
MNIST split and the shapes data, the same predictions on every kernel tier, and the errors for bad
inputs and for what a quantized model does not support."""

import numpy as np
import pytest

import fastcnn
from fastcnn import _core, layers

TIERS = _core.available_kernels()


def quantize_like_the_runtime(x, scale):
    inverse = np.float32(1.0) / np.float32(scale)
    return np.rint(np.clip(np.asarray(x, np.float32) * inverse, -127, 127))


def weight_scales(kernel):
    maxima = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0)
    return np.where(maxima > 0, maxima / 127.0, 1.0).astype(np.float32)


def small_model(activation="relu", dense_activation="softmax"):
    model = fastcnn.Sequential([
        layers.Input((9, 8, 3)),
        layers.Conv2D(6, 3, strides=2, padding="same", activation=activation),
        layers.Conv2D(5, 1, use_bias=False, activation="gelu"),   # 1x1, kept pre-activation
        layers.Dense(7, activation="tanh"),                       # Dense on (h, w, c): rows per position
        layers.Flatten(),
        layers.Dense(4, activation=dense_activation),
    ])
    rng = np.random.default_rng(7)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.4 for w in model.get_weights()])
    return model


def simulate(model, x, calibration):
    """The int8 model's arithmetic in NumPy: per layer, input and weights quantized and multiplied
    back (the int32 sums times both scales equal the float product of the dequantized values)."""
    from test_kernels import numpy_conv_forward

    def activate(name, value):
        return {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "linear": lambda v: v,
                "gelu": lambda v: fastcnn.activations.gelu(v.astype(np.float32)).astype(np.float64),
                "softmax": lambda v: np.exp(v - v.max(-1, keepdims=True)) / np.exp(v - v.max(-1, keepdims=True)).sum(
                    -1, keepdims=True)}[name](value)

    def run(values, quantized_scales):
        maxima = []
        for layer in model.layers:
            if isinstance(layer, layers.Flatten):
                values = values.reshape(values.shape[0], -1)
                continue
            maxima.append(np.abs(values).max())
            weights = layer.get_weights()
            kernel = weights[0].astype(np.float64)
            bias = weights[1] if layer.use_bias else None
            if quantized_scales is not None:
                input_scale = quantized_scales[len(maxima) - 1]
                values = quantize_like_the_runtime(values, input_scale) * input_scale
                scales = weight_scales(weights[0])
                kernel = np.rint(np.clip(kernel / scales, -127, 127)) * scales
            if isinstance(layer, layers.Conv2D):
                values = numpy_conv_forward(values, kernel, bias, layer.strides, layer.padding, layer.dilation_rate)
            else:
                values = values @ kernel + (bias if bias is not None else 0)
            values = activate(layer.activation, values)
        return values, maxima

    _, maxima = run(calibration.astype(np.float64), None)
    return run(x.astype(np.float64), [m / 127.0 for m in maxima])[0]


def test_quantized_model_matches_the_int8_arithmetic_and_differs_from_float(rng):
    model = small_model()
    calibration = rng.standard_normal((40, 9, 8, 3)).astype(np.float32)
    x = rng.standard_normal((13, 9, 8, 3)).astype(np.float32)
    float_predictions = model.predict(x, verbose=0)
    model.quantize("int8", calibration_data=calibration)
    predictions = model.predict(x, verbose=0)
    expected = simulate(model, x, calibration)
    np.testing.assert_allclose(predictions, expected, atol=2e-3)
    # Quantization changed something (the int8 path ran), but not much.
    assert np.abs(predictions - float_predictions).max() > 1e-5
    assert np.abs(predictions - float_predictions).max() < 0.05
    # get_weights still gives the float weights.
    assert all(w.dtype == np.float32 for w in model.get_weights())


def test_quantized_predictions_agree_on_every_tier(rng):
    model = small_model()
    calibration = rng.standard_normal((30, 9, 8, 3)).astype(np.float32)
    x = rng.standard_normal((70, 9, 8, 3)).astype(np.float32)   # more than one 64-sample slice
    model.quantize("int8", calibration_data=calibration)
    active = fastcnn.config.kernel_set()
    try:
        results = {}
        for tier in TIERS:
            _core.select_kernels(tier)
            results[tier] = model.predict(x, verbose=0)
    finally:
        _core.select_kernels(active)
    for tier, result in results.items():
        # The int32 sums are exact on every tier; only the float epilogues round differently.
        np.testing.assert_allclose(result, results["reference"], rtol=1e-5, atol=1e-6, err_msg=tier)


def test_functional_model_with_a_shared_dense_layer(rng):
    inputs = layers.Input((6,))
    shared = layers.Dense(6, activation="relu")
    outputs = layers.Dense(3)(shared(shared(inputs)))
    model = fastcnn.Model(inputs, outputs)
    x = rng.standard_normal((20, 6)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    model.quantize("int8", calibration_data=x)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=0.05 * np.abs(expected).max())


def test_batch_normalization_is_folded_into_the_int8_layer_before_it(rng):
    # Float32 inference folds each BatchNormalization into the Conv2D, DepthwiseConv2D or Dense before
    # it (W * s, (b - moving_mean) * s + beta with s = gamma / sqrt(moving_variance + epsilon)); the
    # int8 layers quantize those folded kernels: their weight scales are the folded kernels'.
    model = fastcnn.Sequential([
        layers.Input((8, 8, 3)),
        layers.Conv2D(6, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2),
        layers.BatchNormalization(epsilon=0.01),
        layers.Flatten(),
        layers.Dense(5),
        layers.BatchNormalization(),
        layers.Dense(3),
    ])
    new_weights = []
    for layer in model.layers:
        for position, weight in enumerate(layer.get_weights()):
            if isinstance(layer, layers.BatchNormalization) and position == 3:  # the moving variance
                new_weights.append(rng.uniform(0.5, 2, weight.shape).astype(np.float32))
            else:
                new_weights.append((rng.standard_normal(weight.shape) * 0.5).astype(np.float32))
    model.set_weights(new_weights)
    x = rng.standard_normal((16, 8, 8, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    float_weights = [layer.get_weights() for layer in model.layers]
    model.quantize("int8", calibration_data=x)
    predictions = model.predict(x, verbose=0)
    assert np.abs(predictions - expected).max() < 0.03 * np.abs(expected).max()
    assert np.abs(predictions - expected).max() > 0
    folded_pairs = {0: 1, 3: 4, 6: 7}  # layer index: its BatchNormalization
    names = [layer.name for layer in model.layers]
    for index, batch_norm in folded_pairs.items():
        node = next(node for node in model._quantization.weight_scales
                    if model._node_layers[node].name == names[index])
        gamma, _, _, variance = float_weights[batch_norm]
        factor = gamma / np.sqrt(variance + model.layers[batch_norm].epsilon)
        # The kernel as depth x output channels (a DepthwiseConv2D's channel c, multiplier m: column c * dm + m).
        folded = float_weights[index][0].reshape(-1, factor.size) * factor
        np.testing.assert_allclose(model._quantization.weight_scales[node], weight_scales(folded), rtol=1e-5,
                                   err_msg=names[index])
    unfolded = model._quantization.weight_scales[
        next(node for node in model._quantization.weight_scales if model._node_layers[node].name == names[8])]
    np.testing.assert_allclose(unfolded, weight_scales(float_weights[8][0]), rtol=1e-6)  # no BatchNormalization


def test_evaluate_and_call_work_after_quantization(rng):
    model = small_model()
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.standard_normal((16, 9, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    model.quantize("int8", calibration_data=x)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    np.testing.assert_allclose(model(x), model.predict(x, verbose=0), rtol=1e-6)


# ---- accuracy against float32 ----

def train_and_compare(model, x_train, y_train, x_test, y_test, epochs, optimizer="adam"):
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0)
    float_accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    model.quantize("int8", calibration_data=x_train[:500])
    int8_accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    return float_accuracy, int8_accuracy


def test_mnist_int8_accuracy_within_half_a_point_of_float32():
    fastcnn.utils.set_random_seed(3)
    (x_train, y_train), (x_test, y_test) = fastcnn.datasets.mnist.load_embedded()
    x_train = (x_train[..., None] / 255.0).astype(np.float32)
    x_test = (x_test[..., None] / 255.0).astype(np.float32)
    model = fastcnn.Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(8, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    float_accuracy, int8_accuracy = train_and_compare(model, x_train, y_train, x_test, y_test, epochs=3)
    assert float_accuracy > 0.85  # trained (90-92% over seeds): the comparison means something
    assert abs(int8_accuracy - float_accuracy) <= 0.005, (float_accuracy, int8_accuracy)


def test_mobilenet_style_int8_accuracy_within_four_points_of_float32():
    # Depthwise-separable blocks (DepthwiseConv2D, BatchNormalization, ReLU6, 1x1 Conv2D, ...): every
    # DepthwiseConv2D and Conv2D int8 with its BatchNormalization folded in. Momentum 0.9: the
    # moving statistics settle within the few hundred steps of this small training set.
    # Int8 changes 1-4.5% of this model's predictions (a 3x3 depthwise sum has 9 terms, so the
    # input's rounding averages out less than in a convolution's hundreds; 0.2-0.4% in the plain CNN
    # above), and accuracy moves by the net of those flips: over 22 trainings (seeds, the avx2 and
    # generic tiers) from -2.7 to +1.4 points, -0.4 on average (docs/deployment.md). Counted over
    # all 5,000 embedded images, not the 1,000 test images alone, the net's noise is sqrt(5)x smaller
    # relative to its size; the bounds hold at the worst training seen with a margin, and a broken
    # int8 path (a wrong scale, a lost bias) changes far more. The arithmetic itself is checked
    # exactly against a NumPy simulation above.
    fastcnn.utils.set_random_seed(4)
    (x_train, y_train), (x_test, y_test) = fastcnn.datasets.mnist.load_embedded()
    x_train = (x_train[..., None] / 255.0).astype(np.float32)
    x_test = (x_test[..., None] / 255.0).astype(np.float32)

    def separable_block(filters, strides):
        return [layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False),
                layers.BatchNormalization(momentum=0.9), layers.ReLU(6.0),
                layers.Conv2D(filters, 1, use_bias=False), layers.BatchNormalization(momentum=0.9), layers.ReLU(6.0)]

    model = fastcnn.Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False),
        layers.BatchNormalization(momentum=0.9),
        layers.ReLU(6.0),
        *separable_block(16, 1),
        *separable_block(32, 2),
        layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2),
        layers.BatchNormalization(momentum=0.9),
        layers.ReLU(6.0),
        layers.GlobalAveragePooling2D(),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=fastcnn.optimizers.Adam(0.005), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, batch_size=64, epochs=6, verbose=0)
    x_all, y_all = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    float_predictions = model.predict(x_all, verbose=0).argmax(axis=1)
    model.quantize("int8", calibration_data=x_train[:500])
    int8_predictions = model.predict(x_all, verbose=0).argmax(axis=1)
    quantized_kinds = sorted(type(model._node_layers[node]).__name__ for node in model._quantization.input_scales)
    assert quantized_kinds == ["Conv2D"] * 3 + ["Dense"] + ["DepthwiseConv2D"] * 3
    float_accuracy, int8_accuracy = np.mean(float_predictions == y_all), np.mean(int8_predictions == y_all)
    changed = np.mean(float_predictions != int8_predictions)
    assert float_accuracy > 0.8, float_accuracy  # trained (83-94% over seeds): the comparison means something
    assert changed <= 0.07, (changed, float_accuracy, int8_accuracy)
    assert abs(int8_accuracy - float_accuracy) <= 0.04, (float_accuracy, int8_accuracy)


@pytest.mark.slow
def test_shapes_int8_accuracy_within_half_a_point_of_float32():
    fastcnn.utils.set_random_seed(5)
    (x_train, y_train), (x_test, y_test) = fastcnn.datasets.shapes.load_data(num_train=3000, num_test=1000,
                                                                            image_size=32)
    x_train = (x_train / 255.0).astype(np.float32)
    x_test = (x_test / 255.0).astype(np.float32)
    model = fastcnn.Sequential([
        layers.Input((32, 32, 3)),
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(10, activation="softmax"),
    ])
    float_accuracy, int8_accuracy = train_and_compare(model, x_train, y_train, x_test, y_test, epochs=6,
                                                      optimizer=fastcnn.optimizers.Adam(0.005))
    assert float_accuracy > 0.5
    assert abs(int8_accuracy - float_accuracy) <= 0.005, (float_accuracy, int8_accuracy)


# ---- bad inputs and what a quantized model refuses ----

def test_bad_arguments_raise_naming_what_was_received(rng):
    unbuilt = fastcnn.Sequential([layers.Dense(3)])
    with pytest.raises(ValueError, match="Cannot quantize a model that isn't yet built"):
        unbuilt.quantize("int8", calibration_data=np.zeros((2, 4), np.float32))
    model = small_model()
    x = rng.standard_normal((8, 9, 8, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="Invalid quantization mode.*Received: mode=int16"):
        model.quantize("int16", calibration_data=x)
    with pytest.raises(ValueError, match="Received: mode=8"):
        model.quantize(8, calibration_data=x)
    with pytest.raises(ValueError, match="Received: mode=None"):
        model.quantize(calibration_data=x)
    with pytest.raises(NotImplementedError, match="'int8' only. Received: mode=float8"):
        model.quantize("float8", calibration_data=x)
    with pytest.raises(NotImplementedError, match="takes no `config`"):
        model.quantize("int8", config={"weight": "int8"}, calibration_data=x)
    with pytest.raises(ValueError, match="`filters` argument must be"):
        model.quantize("int8", filters=3, calibration_data=x)
    with pytest.raises(ValueError, match="that matches filters='nothing'"):
        model.quantize("int8", filters="nothing", calibration_data=x)
    with pytest.raises(ValueError, match="calibration_data=None"):
        model.quantize("int8")
    with pytest.raises(ValueError, match=r"expected shape=\(None, 9, 8, 3\), found shape=\(None, 8, 9, 3\)"):
        model.quantize("int8", calibration_data=np.zeros((4, 8, 9, 3), np.float32))
    with pytest.raises(ValueError, match="at least one sample"):
        model.quantize("int8", calibration_data=np.zeros((0, 9, 8, 3), np.float32))
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to Sequential.*'percentile'"):
        model.quantize("int8", calibration_data=x, percentile=99.9)
    # None of the refused calls left anything quantized: the model still trains.
    model.compile(loss="sparse_categorical_crossentropy")
    model.fit(x, rng.integers(0, 4, 8), verbose=0)
    model.quantize("int8", calibration_data=x)
    with pytest.raises(ValueError, match="already quantized with mode 'int8'. Received: mode=int8"):
        model.quantize("int8", calibration_data=x)


def test_non_finite_calibration_data_leaves_the_float_model(rng):
    model = small_model()
    x = rng.standard_normal((8, 9, 8, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    for value in (np.inf, np.nan):
        bad = x.copy()
        bad[3, 2, 1, 0] = value
        with pytest.raises(ValueError, match="non-finite value from `calibration_data`"):
            model.quantize("int8", calibration_data=bad)
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    model.compile(loss="sparse_categorical_crossentropy")
    model.fit(x, rng.integers(0, 4, 8), verbose=0)  # float layers again: training works


def test_filters_choose_the_layers_as_in_keras(rng):
    # Layers of small_model: 0 Conv2D, 1 Conv2D, 2 Dense, 3 Flatten, 4 Dense.
    x = rng.standard_normal((8, 9, 8, 3)).astype(np.float32)
    cases = [(lambda names: None, {0, 1, 2, 4}), (lambda names: "conv", {0, 1}),
             (lambda names: [f"^{names[4]}$", f"^{names[0]}$"], {0, 4}),
             (lambda names: lambda layer: isinstance(layer, layers.Dense), {2, 4})]
    for make_filters, expected in cases:
        model = small_model()
        names = [layer.name for layer in model.layers]
        model.quantize("int8", filters=make_filters(names), calibration_data=x)
        quantized = {names.index(model._node_layers[node].name) for node in model._quantization.input_scales}
        assert quantized == expected, names


def test_model_without_quantizable_layers():
    model = fastcnn.Sequential([layers.Input((4, 4, 2)), layers.SeparableConv2D(3, 3), layers.Flatten()])
    with pytest.raises(ValueError, match="no layer fastcnn quantizes"):
        model.quantize("int8", calibration_data=np.ones((2, 4, 4, 2), np.float32))


def test_quantized_model_refuses_training_saving_and_new_weights(rng, tmp_path):
    model = small_model()
    model.compile(loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((8, 9, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 8)
    model.quantize("int8", calibration_data=x)
    refused = {
        "fit": lambda: model.fit(x, y, verbose=0),
        "train_on_batch": lambda: model.train_on_batch(x, y),
        "save": lambda: model.save(tmp_path / "model.keras"),
        "save_weights": lambda: model.save_weights(tmp_path / "model.weights.h5"),
        "load_weights": lambda: model.load_weights(tmp_path / "model.weights.h5"),
        "set_weights": lambda: model.set_weights(model.get_weights()),
        "export": lambda: model.export(tmp_path / "model.onnx", format="onnx"),
        "calling it with training=True": lambda: model(x, training=True),
    }
    for what, call in refused.items():
        with pytest.raises(NotImplementedError, match=f"quantized to int8.*{what} is not supported"):
            call()
    assert not (tmp_path / "model.keras").exists()


def test_deployment_docs_example_runs_as_printed(tmp_path, monkeypatch, capsys):
    from test_readme import readme_block, run_block

    run_block(readme_block('model.quantize("int8", calibration_data=x_train[:500])', "docs/deployment.md"), tmp_path,
              monkeypatch)
    printed = capsys.readouterr().out.split("\n")
    float_accuracy = float(printed[0].split()[-1])
    int8_accuracy = float(printed[1].split()[-1])
    assert printed[0].startswith("float32 accuracy") and printed[1].startswith("int8 accuracy")
    assert float_accuracy > 0.85 and abs(int8_accuracy - float_accuracy) <= 0.01
