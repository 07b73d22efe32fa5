"""Shared by the fastcnn.applications parity tests: build a family in Keras (weights=None), give
its BatchNormalization layers distinct statistics, save its weights (Keras 3 `.weights.h5` and
legacy `.h5`), load them into fastcnn's builder with `weights=path`, and compare layers, weights
and predictions."""

import re

import numpy as np
import pytest
from conftest import relative_error

from fastcnn import applications

h5py = pytest.importorskip("h5py")


def keras_message(call):
    """The message of the ValueError that `call` raises."""
    with pytest.raises(ValueError) as error:
        call()
    return str(error.value)


# Layers Keras names by a global counter (global_average_pooling2d_3, ...): compared by kind.
AUTO_NAMED = re.compile(r"^(input_layer|global_average_pooling2d|global_max_pooling2d|max_pooling2d|zero_padding2d|"
                        r"conv2d|batch_normalization|add|re_lu|activation|multiply|rescaling|normalization|dropout|"
                        r"flatten|subtract|true_divide|negative|layer_normalization)(_\d+)?$")


def _same_name(ours, theirs):
    if ours == theirs:
        return True
    a, b = AUTO_NAMED.match(ours), AUTO_NAMED.match(theirs)
    return bool(a and b and a.group(1) == b.group(1))


def _parameters(weights):
    return sum(int(np.prod(tuple(w.shape))) for w in weights)


def perturb_statistics(model, seed):
    """Keras's initial BatchNormalization (gamma 1, beta 0, mean 0, variance 1) hides the order
    of its four weights, and an unadapted Normalization (mean 0, variance 1) whether its weights
    load; distinct values test both."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for variable in layer.weights:
            shape = tuple(variable.shape)
            if variable.path.endswith("variance"):
                variable.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
            elif variable.path.endswith(("gamma",)):
                variable.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
            elif variable.path.endswith(("beta", "mean", "bias")):
                variable.assign(rng.normal(0.0, 0.1, shape).astype("float32"))
        if type(layer).__name__ == "Normalization":
            layer.finalize_state()  # Keras's Normalization computes with copies made from its variables


def save_legacy(model, path):
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


def compare_with_keras(keras, name, module, arguments, tmp_path, formats=("weights.h5", "h5"), builders=None):
    """`builders`: (Keras's, fastcnn's) builder functions, else `name` in `module` of
    keras.applications and fastcnn.applications."""
    if builders is None:
        # Keras's public keras.applications.mobilenet_v3 and convnext modules leave the builders out.
        builders = (getattr(getattr(keras.applications, module), name, None) or getattr(keras.applications, name),
                    getattr(getattr(applications, module), name))
    theirs = builders[0](weights=None, **arguments)
    perturb_statistics(theirs, 5)
    images = np.random.default_rng(2).uniform(-1, 1, (2,) + arguments["input_shape"]).astype("float32")
    expected = np.asarray(theirs(images, training=False))  # an eager call: predict would trace for ~10 s
    for suffix in formats:
        path = str(tmp_path / f"{name}.{suffix}")
        if suffix == "weights.h5":
            theirs.save_weights(path)
        else:
            save_legacy(theirs, path)
        ours = builders[1](weights=path, **arguments)
        assert ours.name == theirs.name
        assert len(ours.layers) == len(theirs.layers)
        # The arithmetic on symbolic tensors (MobileNetV3's hard sigmoid, ConvNeXt's residual +):
        # operations that are not layers, in the same places of the graph.
        assert len(ours.operations) == len(theirs.operations)
        for mine, other in zip(ours.operations, theirs.operations):
            assert type(mine).__name__ == type(other).__name__ and _same_name(mine.name, other.name), (mine, other)
        for mine, other in zip(ours.layers, theirs.layers):
            assert type(mine).__name__ == type(other).__name__ and _same_name(mine.name, other.name), (mine, other)
        assert ours.count_params() == theirs.count_params()
        assert _parameters(ours.trainable_weights) == _parameters(theirs.trainable_weights)
        assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
        assert ours.output_shape == theirs.output_shape
        actual = ours.predict(images, verbose=0)
        assert relative_error(actual, expected) <= 1e-4, (suffix, relative_error(actual, expected))
