"""Every entry point of ``fastcnn._core`` checks its arguments before touching memory.

One parametrized case per check, each asserting the exception type and that the message names the
value received (the shape, dtype, number or index). tests/test_bad_input.py covers the public API
and the shape-consistency checks of the ops; this file covers the rest of the binding: argument
conversion (None, non-numeric, complex, float indices, integer narrowing), 64-bit size arithmetic
and allocation limits, and the ``_core.Network`` methods (layer builders, state order, indices).
"""

import re

import numpy as np
import pytest

from fastcnn import _core

ops = _core.ops

X = np.zeros((2, 5, 5, 3), np.float32)
K = np.zeros((3, 3, 3, 4), np.float32)
D_X = np.zeros((2, 5), np.float32)
D_K = np.zeros((5, 3), np.float32)
IMAGES = np.zeros((2, 4, 4, 3), np.float32)
IDENTITY = np.array([1, 0, 0, 0, 1, 0, 0, 0], np.float32)
HUGE_VIEW = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (2**40, 5, 5, 3), (0, 0, 0, 0))


def small_network(build=True, optimizer=None):
    """Flatten -> Dense(3, softmax) on (2, 2, 1) samples: 15 parameters."""
    network = _core.Network()
    network.add_flatten()
    network.add_dense(3, True, "softmax")
    if build:
        network.build((2, 2, 1))
    if optimizer is not None:
        network.configure_optimizer(optimizer)
    return network


XN = np.zeros((4, 2, 2, 1), np.float32)
LABELS = np.array([0, 1, 2, 0], np.int32)
INDICES = np.arange(4)


def train(network=None, x=XN, labels=LABELS, probabilities=None, indices=INDICES, sample_weights=None):
    network = network if network is not None else small_network(optimizer="sgd")
    return network.train_step(x, labels, probabilities, indices, 0.1, 1, sample_weights)


def add_conv(network, filters=2, kernel=(1, 1), strides=(1, 1), dilation=(1, 1), padding="valid"):
    network.add_conv2d(filters, kernel, strides, dilation, padding, True, "linear")


def build_with(add, shape=(4, 4, 1)):
    network = _core.Network()
    add(network)
    network.build(shape)
    return network


# ---------------------------------------------------------------------------------------------
# argument conversion: each array argument names itself when it is not an array of numbers
# ---------------------------------------------------------------------------------------------

CONVERSION_CASES = [
    # (id, call, exception, regex naming the received value)
    ("conv-input-none", lambda: ops.conv2d_forward(None, K), TypeError, r"`input` .*Received: input=None"),
    ("conv-kernel-none", lambda: ops.conv2d_forward(X, None), TypeError, r"`kernel` .*Received: kernel=None"),
    ("conv-bi-gradient-none", lambda: ops.conv2d_backward_input(None, K, X.shape), TypeError,
     r"Received: output_gradient=None"),
    ("conv-bk-input-none", lambda: ops.conv2d_backward_kernel(None, X, (3, 3)), TypeError, r"Received: input=None"),
    ("dense-kernel-none", lambda: ops.dense_forward(D_X, None), TypeError, r"Received: kernel=None"),
    ("dense-bi-gradient-none", lambda: ops.dense_backward_input(None, D_K), TypeError,
     r"Received: output_gradient=None"),
    ("dense-bk-input-none", lambda: ops.dense_backward_kernel(None, D_X), TypeError, r"Received: input=None"),
    ("pool-input-none", lambda: ops.max_pool2d_forward(None, (2, 2), (2, 2)), TypeError, r"Received: input=None"),
    ("pool-backward-gradient-none", lambda: ops.max_pool2d_backward(X, None, (2, 2), (2, 2)), TypeError,
     r"Received: output_gradient=None"),
    # None used to become a 0-d nan array, and dropout returned it.
    ("dropout-input-none", lambda: ops.dropout_forward(None, 0.5, 1), TypeError, r"Received: input=None"),
    ("dropout-backward-none", lambda: ops.dropout_backward(None, 0.5, 1), TypeError,
     r"Received: output_gradient=None"),
    ("activation-input-none", lambda: ops.activation_forward("relu", None), TypeError, r"Received: input=None"),
    ("activation-backward-gradient-none", lambda: ops.activation_backward("relu", D_X, None), TypeError,
     r"Received: output_gradient=None"),
    ("bn-statistics-none", lambda: ops.batch_norm_statistics(None), TypeError, r"Received: input=None"),
    ("bn-mean-none", lambda: ops.batch_norm_forward(D_X, None, np.ones(5)), TypeError, r"Received: mean=None"),
    ("bn-backward-gradient-none", lambda: ops.batch_norm_backward(D_X, np.zeros(5), np.ones(5), None, None),
     TypeError, r"Received: output_gradient=None"),
    ("cross-entropy-targets-none", lambda: ops.loss(np.zeros((2, 3)), None), TypeError,
     r"Received: targets=None"),
    ("transform-none", lambda: ops.projective_transform(IMAGES, None), TypeError, r"Received: transforms=None"),
    ("resize-images-none", lambda: ops.resize(None, (2, 2)), TypeError, r"Received: images=None"),
    ("flip-flags-none", lambda: ops.flip(IMAGES, None), TypeError, r"Received: flags=None"),
    ("contrast-factors-none", lambda: ops.contrast(IMAGES, None, (0, 1)), TypeError, r"Received: factors=None"),
    ("brightness-backward-gradient-none", lambda: ops.brightness_backward(IMAGES, 0.1, None, (0, 1)), TypeError,
     r"Received: output_gradient=None"),
    # complex numbers used to lose their imaginary part silently
    ("activation-complex", lambda: ops.activation_forward("relu", np.array([1 + 2j, 3])), TypeError,
     r"Received: input\.dtype=complex128"),
    ("dense-string", lambda: ops.dense_forward(D_X, np.full((5, 3), "x")), TypeError,
     r"Received: kernel\.dtype=<U1"),
    ("conv-ragged-list", lambda: ops.conv2d_forward([[1.0], [1.0, 2.0]], K), TypeError,
     r"Received: input of type list"),
    ("cross-entropy-object-targets", lambda: ops.loss(np.zeros((1, 3)), np.array([object()])), TypeError,
     r"Received: targets\.dtype=object"),
    # integer arguments refuse floats rather than truncating them, and values that would wrap
    ("flip-float-flags", lambda: ops.flip(IMAGES, np.array([1.0, 0.0])), TypeError,
     r"`flags` must hold integers\. Received: flags\.dtype=float64"),
    ("flip-flag-256", lambda: ops.flip(IMAGES, np.array([256, 0])), ValueError, r"Received: 256\b"),
    ("flip-flag-negative", lambda: ops.flip(IMAGES, np.array([-1, 0])), ValueError, r"Received: -1\b"),
    ("resize-float-origins", lambda: ops.resize(IMAGES, (2, 2), window_size=(2, 2),
                                                window_origins=np.zeros((2, 2))), TypeError,
     r"Received: window_origins\.dtype=float64"),
    ("resize-uint64-origins", lambda: ops.resize(IMAGES, (2, 2), window_size=(2, 2),
                                                 window_origins=np.full((2, 2), 2**63, np.uint64)), ValueError,
     r"`window_origins` values must fit in int64\. Received: 9223372036854775808"),
    ("cross-entropy-label-wraps-int32", lambda: ops.loss(np.zeros((1, 3)), np.array([2**32 + 1])),
     ValueError, r"label 4294967297 is outside \[0, 3\)"),
    ("cross-entropy-fractional-label", lambda: ops.loss(np.zeros((1, 3)), np.array([1.5])), ValueError,
     r"Received: targets\[0\]=1\.5"),
    ("cross-entropy-bool-labels", lambda: ops.loss(np.zeros((1, 3)), np.array([True])), TypeError,
     r"Received: targets\.dtype=bool"),
    ("cross-entropy-zero-classes", lambda: ops.loss(np.zeros((2, 0)), np.zeros((2, 0))), ValueError,
     r"Received: predictions\.shape=\(2, 0\)"),
    # a zero-stride view of 4 bytes standing for 12 TiB: its contiguous copy is refused before allocation
    ("conv-huge-view-copy", lambda: ops.conv2d_forward(HUGE_VIEW, K), MemoryError,
     r"converted copy of `input`: 82463372083200 elements"),
]


@pytest.mark.parametrize("call,exception,pattern", [case[1:] for case in CONVERSION_CASES],
                         ids=[case[0] for case in CONVERSION_CASES])
def test_argument_conversion_is_checked(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


def _variants(array):
    """The same values as float64, Fortran order, a strided view, read-only, and nested lists."""
    doubled = np.repeat(array, 2, axis=-1)
    read_only = array.copy()
    read_only.flags.writeable = False
    return {
        "float64": array.astype(np.float64),
        "fortran": np.asfortranarray(array),
        "strided-view": doubled[..., ::2],
        "read-only": read_only,
        "list": array.tolist(),
    }


@pytest.mark.parametrize("variant", ["float64", "fortran", "strided-view", "read-only", "list"])
def test_non_contiguous_and_other_dtypes_give_the_contiguous_float32_result(variant):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    expected = ops.conv2d_forward(x, kernel, kernels="reference")
    np.testing.assert_array_equal(ops.conv2d_forward(_variants(x)[variant], kernel, kernels="reference"), expected)
    np.testing.assert_array_equal(ops.conv2d_forward(x, _variants(kernel)[variant], kernels="reference"), expected)
    network = small_network(optimizer="sgd")
    xn = rng.standard_normal((4, 2, 2, 1)).astype(np.float32)
    np.testing.assert_array_equal(network.predict(_variants(xn)[variant]), network.predict(xn))


def test_integer_and_boolean_arrays_convert_to_float32():
    as_int = np.arange(10).reshape(2, 5)
    np.testing.assert_array_equal(ops.activation_forward("linear", as_int), as_int.astype(np.float32))
    np.testing.assert_array_equal(ops.activation_forward("linear", as_int > 4), (as_int > 4).astype(np.float32))


def test_labels_and_indices_of_other_integer_types_are_accepted():
    """int64/uint8 labels and int32 indices convert exactly (range checked before narrowing)."""
    base = train(small_network(optimizer="sgd"))
    other = train(small_network(optimizer="sgd"), labels=LABELS.astype(np.uint8), indices=INDICES.astype(np.int32))
    assert base == other


# ---------------------------------------------------------------------------------------------
# 64-bit size arithmetic and allocation limits
# ---------------------------------------------------------------------------------------------

SIZE_CASES = [
    ("conv-dilation-overflows-int64", lambda: ops.conv2d_forward(X, K, dilation=(2**62, 1), padding="same"),
     ValueError, r"\(size - 1\) \* dilation exceeds 2\^50\. Received: size=3, dilation=4611686018427387904"),
    ("conv-bk-kernel-size-overflow", lambda: ops.conv2d_backward_kernel(X, X, (2**62, 1), padding="same"),
     ValueError, r"Received: size=4611686018427387904"),
    ("conv-bi-input-shape-overflow",
     lambda: ops.conv2d_backward_input(np.zeros((1, 1, 1, 4), np.float32), K, (2**40, 2**40, 1, 3),
                                       strides=(2**62, 2**62), padding="same"),
     ValueError, r"too large: its element count exceeds 2\^50\. Received: 1099511627776 \* 1099511627776"),
    ("conv-bi-input-beyond-memory",
     lambda: ops.conv2d_backward_input(np.zeros((1, 1, 1, 4), np.float32), K, (1, 2**23, 2**23, 3),
                                       strides=(2**62, 2**62), padding="same"),
     MemoryError, r"Unable to allocate .*211106232532992 elements of 4 bytes"),
    ("pool-window-overflow", lambda: ops.max_pool2d_forward(X, (2**40, 2**40), (1, 1), padding="same"),
     ValueError, r"Pooling window is too large.*Received: 1099511627776 \* 1099511627776"),
    ("resize-output-overflow", lambda: ops.resize(IMAGES, (2**40, 2**40)), ValueError,
     r"the output batch is too large.*Received: 2199023255552 \* 1099511627776"),
    ("resize-output-beyond-memory", lambda: ops.resize(IMAGES, (2**22, 2**22)), MemoryError,
     r"Unable to allocate .*105553116266496 elements"),
    ("resize-window-beyond-2^40", lambda: ops.resize(IMAGES, (2, 2), window_size=(2**41, 2)), ValueError,
     r"Received: window_size=\(2199023255552, 2\)"),
    ("reshape-target-overflow", lambda: _core.Network().add_reshape((2**32, 2**32, 1)), ValueError,
     r"Reshape target is too large.*Received: 4294967296 \* 4294967296"),
    ("zero-padding-overflow",
     lambda: build_with(lambda n: n.add_zero_padding2d(2**62, 2**62, 0, 0), (1, 1, 1)), ValueError,
     r"Layer #0 \(ZeroPadding2D\): the padded height is too large.*Received: 1 \+ 4611686018427387904"),
    ("layer-output-overflow",
     lambda: build_with(lambda n: n.add_dense(2**40, True, "linear"), (2**10, 2**10, 1)), ValueError,
     r"Layer #0 \(Dense\): the layer's output is too large.*Received: 1048576 \* 1099511627776"),
    ("parameters-beyond-memory",
     lambda: build_with(lambda n: (n.add_flatten(), n.add_dense(2**33, True, "linear")), (1, 1, 4)), MemoryError,
     r"model's parameters and their gradients: 85899345920 elements"),
    ("predict-workspace-beyond-memory",
     lambda: build_with(lambda n: n.add_dense(2**24, True, "linear"), (2**10, 2**10, 1)).predict(
         np.zeros((1, 2**10, 2**10, 1), np.float32)),
     MemoryError, r"workspace for a batch of 1 samples"),
]


@pytest.mark.parametrize("call,exception,pattern", [case[1:] for case in SIZE_CASES],
                         ids=[case[0] for case in SIZE_CASES])
def test_sizes_are_checked_in_64_bits_before_allocation(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


def test_huge_stride_with_same_padding_is_valid():
    """ceil(input / stride) is formed without input + stride - 1 (which overflowed for stride 2^63 - 1)."""
    out = ops.conv2d_forward(np.ones((1, 5, 5, 3), np.float32), np.ones((3, 3, 3, 4), np.float32),
                             strides=(2**63 - 1, 2**63 - 1), padding="same")
    assert out.shape == (1, 1, 1, 4)
    np.testing.assert_array_equal(out, np.full((1, 1, 1, 4), 27.0, np.float32))


# ---------------------------------------------------------------------------------------------
# _core.Network: layer builders (checked when added, or at build with the layer named)
# ---------------------------------------------------------------------------------------------

BUILDER_CASES = [
    ("conv-filters-0", lambda: build_with(lambda n: add_conv(n, filters=0)), r"Layer #0 \(Conv2D\).*filters=0\b"),
    ("conv-kernel-negative", lambda: build_with(lambda n: add_conv(n, kernel=(-3, 1))), r"kernel_height=-3\b"),
    ("conv-stride-0", lambda: build_with(lambda n: add_conv(n, strides=(1, 0))), r"stride_width=0\b"),
    ("conv-dilation-negative", lambda: build_with(lambda n: add_conv(n, dilation=(-2, 1))),
     r"dilation_height=-2\b"),
    ("conv-padding-bogus", lambda: add_conv(_core.Network(), padding="full"), r"Received: padding=full"),
    ("conv-activation-bogus",
     lambda: _core.Network().add_conv2d(2, (1, 1), (1, 1), (1, 1), "valid", True, "bogus"), r"'bogus'"),
    ("conv-window-larger-than-input", lambda: build_with(lambda n: add_conv(n, kernel=(9, 1))),
     r"window of 9 along height is larger than the input \(4\)"),
    ("dense-units-0", lambda: build_with(lambda n: n.add_dense(0, True, "linear")), r"units=0\b"),
    ("dense-units-negative", lambda: build_with(lambda n: n.add_dense(-5, True, "linear")), r"units=-5\b"),
    ("pool-kind-bogus", lambda: _core.Network().add_pool2d("min", False, (2, 2), (2, 2)),
     r"Received: kind=min"),
    ("pool-size-0", lambda: build_with(lambda n: n.add_pool2d("max", False, (0, 2), (1, 1))), r"pool_height=0\b"),
    ("pool-stride-negative", lambda: build_with(lambda n: n.add_pool2d("average", False, (2, 2), (-1, 1))),
     r"stride_height=-1\b"),
    ("reshape-zero", lambda: _core.Network().add_reshape((0, 4, 1)), r"Received: target_shape=\(0, 4, 1\)"),
    ("reshape-mismatch", lambda: build_with(lambda n: n.add_reshape((3, 1, 1))),
     r"cannot reshape 16 values per sample into 3"),
    ("zero-padding-negative", lambda: _core.Network().add_zero_padding2d(0, -1, 0, 0),
     r"Received: padding=\(\(0, -1\), \(0, 0\)\)"),
    ("relu-max-value-negative", lambda: _core.Network().add_relu("ReLU", -1.0, 0.0, 0.0),
     r"Received: max_value=-1\.0"),
    ("relu-max-value-nan", lambda: _core.Network().add_relu("ReLU", float("nan"), 0.0, 0.0),
     r"Received: max_value=nan"),
    ("relu-slope-nan", lambda: _core.Network().add_relu("ReLU", None, float("nan"), 0.0),
     r"Received: negative_slope=nan"),
    ("relu-threshold-inf", lambda: _core.Network().add_relu("ReLU", None, 0.0, float("inf")),
     r"Received: threshold=inf"),
    ("batch-norm-momentum-nan", lambda: _core.Network().add_batch_norm(float("nan"), 1e-3, True, True),
     r"Received: momentum=nan"),
    ("batch-norm-epsilon-0", lambda: _core.Network().add_batch_norm(0.99, 0.0, True, True),
     r"Received: epsilon=0\.0"),
    ("dropout-rate-nan", lambda: _core.Network().add_dropout(float("nan")), r"Received: rate=nan"),
    ("dropout-rate-1", lambda: _core.Network().add_dropout(1.0), r"Received: rate=1\.0"),
    ("activation-bogus", lambda: _core.Network().add_activation("bogus"), r"'bogus'"),
    ("elu-alpha-nan", lambda: _core.Network().add_elu(float("nan")), r"Received: alpha=nan"),
    ("prelu-alpha-zero", lambda: _core.Network().add_prelu([4, 0, 3], False, False, False), r"Received: 0\b"),
    ("prelu-alpha-mismatch", lambda: build_with(lambda n: n.add_prelu([4, 4, 3], False, False, False)),
     r"alpha of 48 values does not fit an input of shape \(4, 4, 1\)"),
    ("noise-kind-bogus", lambda: _core.Network().add_noise("Bogus", rate=0.5), r"Received: kind=Bogus"),
    ("noise-rate-1", lambda: _core.Network().add_noise("SpatialDropout2D", rate=1.0), r"Received: rate=1\.0"),
    ("noise-rate-nan", lambda: _core.Network().add_noise("GaussianDropout", rate=float("nan")), r"Received: rate=nan"),
    ("noise-stddev-negative", lambda: _core.Network().add_noise("GaussianNoise", stddev=-1.0),
     r"Received: stddev=-1\.0"),
    ("noise-stddev-inf", lambda: _core.Network().add_noise("GaussianNoise", stddev=float("inf")),
     r"Received: stddev=inf"),
    ("random-flip-neither", lambda: _core.Network().add_random_flip(False, False), r"RandomFlip needs"),
    ("random-rotation-inf", lambda: _core.Network().add_random_rotation(0.0, float("inf"), "reflect", "bilinear", 0.0),
     r"Received: \(0\.0+, inf\)"),
    ("random-rotation-fill-bogus", lambda: _core.Network().add_random_rotation(0.0, 1.0, "mirror", "bilinear", 0.0),
     r"`fill_mode` mirror"),
    ("random-translation-nan",
     lambda: _core.Network().add_random_translation((float("nan"), 0.1), (0.0, 0.1), "reflect", "bilinear", 0.0),
     r"Received: \(nan, 0\.1"),
    ("random-zoom-inverted",
     lambda: _core.Network().add_random_zoom((0.5, -0.5), None, "reflect", "bilinear", 0.0), r"Received: \(0\.5"),
    ("random-contrast-inverted", lambda: _core.Network().add_random_contrast((0.5, 0.1), (0.0, 1.0)),
     r"Received: \(0\.5"),
    ("random-brightness-range", lambda: _core.Network().add_random_brightness((0.0, 0.1), 1.0, (1.0, 0.0)),
     r"Received: \(1\.0+, 0\.0+\)"),
    ("resizing-height-0", lambda: _core.Network().add_resizing(0, 4), r"Received: height=0, width=4"),
    ("resizing-height-huge", lambda: _core.Network().add_resizing(2**30, 4), r"Received: height=1073741824"),
    ("resizing-aspect-bogus", lambda: _core.Network().add_resizing(4, 4, aspect="squash"), r"Received: squash"),
    ("resizing-interpolation-bogus", lambda: _core.Network().add_resizing(4, 4, interpolation="cubic"),
     r"`interpolation` cubic"),
    ("center-crop-negative", lambda: _core.Network().add_center_crop(-1, 4), r"Received: height=-1"),
    ("random-crop-0", lambda: _core.Network().add_random_crop(4, 0), r"width=0\b"),
    ("image-layer-on-huge-side", lambda: build_with(lambda n: n.add_center_crop(2, 2), (2**25, 1, 1)),
     r"up to 2\^24 pixels per axis. Received a sample shape \(33554432, 1, 1\)"),
    ("build-zero-width", lambda: build_with(lambda n: n.add_flatten(), (4, 0, 1)),
     r"Received: input_shape=\(4, 0, 1\)"),
    ("build-empty", lambda: _core.Network().build((4, 4, 1)), r"at least one layer"),
]


@pytest.mark.parametrize("call,pattern", [case[1:] for case in BUILDER_CASES],
                         ids=[case[0] for case in BUILDER_CASES])
def test_layer_builder_arguments_are_checked(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


# ---------------------------------------------------------------------------------------------
# _core.Network: state order, layer indices, optimizer and step arguments
# ---------------------------------------------------------------------------------------------

def _configure_then_build():
    network = small_network(build=False, optimizer="adam")
    network.build((2, 2, 1))
    return network


NETWORK_CASES = [
    ("train-before-build", lambda: train(small_network(build=False)), ValueError,
     r"not built: call build\(input_shape\) before train_step\. Received: a network with 2 layers"),
    ("test-before-build", lambda: small_network(build=False).test_step(XN, LABELS, None, INDICES), ValueError,
     r"before test_step\. Received: a network with 2 layers"),
    ("predict-before-build", lambda: small_network(build=False).predict(XN), ValueError, r"before predict"),
    ("forward-training-before-build", lambda: small_network(build=False).forward_training(XN, 1), ValueError,
     r"before forward_training"),
    ("output-shape-before-build", lambda: small_network(build=False).output_shape, ValueError,
     r"before output_shape"),
    ("parameter-views-before-build", lambda: small_network(build=False).parameter_views(), ValueError,
     r"before parameter_views"),
    ("slot-views-before-build", lambda: small_network(build=False, optimizer="adam").optimizer_slot_views(
        "first_moment"), ValueError, r"before optimizer_slot_views"),
    # configure_optimizer on an unbuilt network sized the slots for 0 parameters: train_step used to
    # write past them (a segfault)
    ("train-optimizer-configured-before-build", lambda: train(_configure_then_build()), ValueError,
     r"Received: optimizer slots of 0 values for 15 parameters"),
    ("apply-gradients-optimizer-configured-before-build",
     lambda: _configure_then_build().apply_gradients(0.1), ValueError, r"optimizer slots of 0 values for 15"),
    ("apply-gradients-before-build", lambda: small_network(build=False).apply_gradients(0.1), ValueError,
     r"before apply_gradients"),
    ("compute-gradients-index", lambda: small_network(optimizer="sgd").compute_gradients(
        XN, LABELS, None, np.array([5]), 1, 0, 1), ValueError, r"Received: indices\[0\]=5\b"),
    ("compute-gradients-float-labels", lambda: small_network(optimizer="sgd").compute_gradients(
        XN, LABELS.astype(np.float64), None, INDICES, 4, 0, 1), TypeError, r"Received: labels\.dtype=float64"),
    ("compute-gradients-first-sample", lambda: small_network(optimizer="sgd").compute_gradients(
        XN, LABELS, None, INDICES, 4, 1, 1), ValueError, r"Received: len\(indices\)=4, loss_batch=4, first_sample=1"),
    ("flat-parameters-before-build", lambda: small_network(build=False).flat_parameters(), ValueError,
     r"before flat_parameters"),
    ("flat-gradients-before-build", lambda: small_network(build=False).flat_gradients(), ValueError,
     r"before flat_gradients"),
    ("layer-outputs-x-none", lambda: small_network().forward_training_layer_outputs(None, 1), TypeError,
     r"Received: x=None"),
    ("layer-outputs-x-shape", lambda: small_network().forward_training_layer_outputs(np.zeros((1, 2, 3, 1)), 1),
     ValueError, r"Received: x\.shape=\(1, 2, 3, 1\)"),
    ("train-without-optimizer", lambda: train(small_network()), RuntimeError, r"network has no optimizer"),
    ("build-twice", lambda: small_network().build((2, 2, 1)), RuntimeError, r"already built"),
    ("add-after-build", lambda: small_network().add_flatten(), RuntimeError, r"already built"),
    ("slot-name-bogus", lambda: small_network(optimizer="adam").optimizer_slot_views("velocity"), ValueError,
     r"Unknown optimizer slot 'velocity'"),
    ("slot-absent-for-plain-sgd", lambda: small_network(optimizer="sgd").optimizer_slot_views("first_moment"),
     ValueError, r"no 'first_moment' buffer for this network \(size 0, parameters 15\)"),
    ("set-trainable-index-negative", lambda: small_network().set_trainable(-1, False), ValueError,
     r"Received: layer_index=-1\b"),
    ("set-trainable-index-past-end", lambda: small_network().set_trainable(2, False), ValueError,
     r"must be in \[0, 2\) for this network\. Received: layer_index=2\b"),
    ("set-regularization-index", lambda: small_network().set_regularization(7, kernel_l2=0.1), ValueError,
     r"Received: layer_index=7\b"),
    ("set-regularization-nan", lambda: small_network().set_regularization(1, kernel_l2=float("nan")), ValueError,
     r"Received: kernel_l2=nan"),
    ("set-regularization-negative", lambda: small_network().set_regularization(1, activity_l1=-0.5), ValueError,
     r"Received: activity_l1=-0\.5"),
    ("optimizer-kind-bogus", lambda: small_network(optimizer="adamw"), ValueError, r"'adamw'"),
    ("optimizer-momentum-nan", lambda: small_network().configure_optimizer("sgd", momentum=float("nan")),
     ValueError, r"Received: momentum=nan"),
    ("optimizer-epsilon-0", lambda: small_network().configure_optimizer("adam", epsilon=0.0), ValueError,
     r"Received: epsilon=0\.0"),
    ("optimizer-rho-2", lambda: small_network().configure_optimizer("rmsprop", rho=2.0), ValueError,
     r"Received: rho=2\.0"),
    ("optimizer-two-clips", lambda: small_network().configure_optimizer("sgd", clipnorm=1.0, clipvalue=1.0),
     ValueError, r"Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"),
    ("iterations-negative", lambda: setattr(small_network(optimizer="sgd"), "optimizer_iterations", -3), ValueError,
     r"Received: -3\b"),
    ("nadam-u-product-nan", lambda: setattr(small_network(optimizer="nadam"), "optimizer_nadam_u_product",
                                            float("nan")), ValueError, r"Received: nan"),
    ("x-rank", lambda: train(x=XN[0]), ValueError, r"`x` must have rank 4\. Received: x\.shape=\(2, 2, 1\)"),
    ("x-channels", lambda: train(x=np.zeros((4, 2, 2, 3))), ValueError, r"Received: x\.shape=\(4, 2, 2, 3\)"),
    ("x-none", lambda: train(x=None), TypeError, r"Received: x=None"),
    ("predict-x-height", lambda: small_network().predict(np.zeros((1, 3, 2, 1))), ValueError,
     r"Received: x\.shape=\(1, 3, 2, 1\)"),
    ("index-past-end", lambda: train(indices=np.array([0, 4])), ValueError, r"Received: indices\[1\]=4\b"),
    ("index-negative", lambda: train(indices=np.array([-1])), ValueError, r"Received: indices\[0\]=-1\b"),
    ("indices-rank-2", lambda: train(indices=np.zeros((2, 2), np.int64)), ValueError,
     r"Received: indices\.shape=\(2, 2\)"),
    # float indices used to be truncated (0.7 -> 0) without a word
    ("indices-float", lambda: train(indices=np.array([0.7, 1.9])), TypeError, r"Received: indices\.dtype=float64"),
    ("indices-uint64-huge", lambda: train(indices=np.array([2**64 - 1], np.uint64)), ValueError,
     r"Received: 18446744073709551615"),
    ("labels-and-probabilities", lambda: train(probabilities=np.zeros((4, 3))), ValueError,
     r"Received: labels=an array, probabilities=an array"),
    ("neither-labels-nor-probabilities", lambda: train(labels=None), ValueError,
     r"Received: labels=None, probabilities=None"),
    ("label-out-of-range", lambda: train(labels=np.array([0, 1, 3, 0], np.int32)), ValueError,
     r"label value of 3 which is outside the valid range of \[0, 3\)"),
    # int64 labels used to be narrowed to int32 first: 2^32 + 1 became 1
    ("label-wraps-int32", lambda: train(labels=np.array([0, 2**32 + 1, 0, 0])), ValueError,
     r"label value of 4294967297"),
    ("labels-float", lambda: train(labels=LABELS.astype(np.float32)), TypeError, r"Received: labels\.dtype=float32"),
    ("labels-length", lambda: train(labels=LABELS[:3]), ValueError, r"Received: labels\.shape=\(3,\)"),
    ("labels-rank", lambda: train(labels=LABELS.reshape(2, 2)), ValueError, r"Received: labels\.shape=\(2, 2\)"),
    ("probabilities-classes", lambda: train(labels=None, probabilities=np.zeros((4, 2))), ValueError,
     r"Received: probabilities\.shape=\(4, 2\)"),
    ("sample-weights-nan", lambda: train(sample_weights=np.array([1, np.nan, 1, 1])), ValueError,
     r"must be finite\. Received: nan"),
    ("sample-weights-length", lambda: train(sample_weights=np.ones(5)), ValueError,
     r"Received: sample_weights\.shape=\(5,\)"),
    ("train-workspace-beyond-memory",
     lambda: train(build_with(lambda n: (n.add_flatten(), n.add_dense(2**12, True, "linear"),
                                         n.add_dense(3, True, "softmax")), (2, 2, 1)),
                   indices=np.zeros(2**22, np.int64)),
     MemoryError, r"workspace for a batch of 4194304 samples"),
    ("set-num-threads-huge", lambda: _core.set_num_threads(10**7), ValueError, r"Received: 10000000\b"),
    ("set-num-threads-negative", lambda: _core.set_num_threads(-2), ValueError, r"Received: -2\b"),
    ("measure-peak-seconds-nan", lambda: _core.measure_peak_gflops(float("nan")), ValueError, r"`seconds`"),
]


@pytest.mark.parametrize("call,exception,pattern", [case[1:] for case in NETWORK_CASES],
                         ids=[case[0] for case in NETWORK_CASES])
def test_network_methods_are_checked(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


# ---------------------------------------------------------------------------------------------
# _core.Network as a graph: inputs, connections, shared weights, outputs and their losses
# ---------------------------------------------------------------------------------------------


def two_dense():
    """Dense(3) -> Dense(3), no input declared, unbuilt: nodes 0 and 1."""
    network = _core.Network()
    network.add_dense(3, True, "linear")
    network.add_dense(3, True, "linear")
    return network


def declared(*shapes, layers=()):
    """A network with the given inputs declared, then one node per name in `layers` (unconnected)."""
    network = _core.Network()
    for shape in shapes:
        network.add_input(shape)
    for layer in layers:
        if layer == "flatten":
            network.add_flatten()
        elif layer == "dense":
            network.add_dense(3, True, "linear")
        elif layer.startswith("concatenate"):
            network.add_concatenate(int(layer[-1]))
        else:
            network.add_merge(layer)
    return network


def wired(network, *connections, outputs=None):
    """connect(node, inputs[, shares_with]) for each connection, then build()."""
    for connection in connections:
        network.connect(*connection)
    if outputs is not None:
        network.set_outputs(outputs)
    network.build()
    return network


def two_input_network():
    """Inputs (2, 2, 1) and (2, 2, 1) -> Add -> Flatten -> Dense(3), built, with SGD."""
    network = wired(declared((2, 2, 1), (2, 2, 1), layers=["add", "flatten", "dense"]), (0, [-1, -2]))
    network.configure_optimizer("sgd")
    return network


def two_output_network(build=True):
    """Input (2, 2, 1) -> Flatten -> Dense(3, softmax) (output 0) and Dense(2, softmax) (output 1)."""
    network = _core.Network()
    network.add_input((2, 2, 1))
    flatten = network.add_flatten()
    first = network.add_dense(3, True, "softmax")
    second = network.add_dense(2, True, "softmax")
    network.connect(second, [flatten])
    network.set_outputs([first, second])
    if build:
        network.build()
        network.configure_optimizer("sgd")
    return network


LABELS_2 = np.array([0, 1, 1, 0], np.int32)  # for the two-class output

GRAPH_CASES = [
    # connect: inputs are earlier nodes' outputs (ids 0 ... node - 1) or declared inputs (-1 ... -k)
    ("connect-to-later-node", lambda: two_dense().connect(0, [1]), ValueError,
     r"node 0 reads tensor 1, which is not an earlier node's output.*Received: inputs=\[1\]"),
    ("connect-to-itself", lambda: two_dense().connect(1, [1]), ValueError, r"Received: inputs=\[1\]"),
    ("connect-to-undeclared-input", lambda: declared((2, 2, 1), layers=["flatten"]).connect(0, [-2]), ValueError,
     r"reads tensor -2.*\(1 declared\)\. Received: inputs=\[-2\]"),
    ("connect-to-input-none-declared", lambda: two_dense().connect(1, [-1]), ValueError,
     r"\(0 declared\)\. Received: inputs=\[-1\]"),
    ("connect-node-past-end", lambda: two_dense().connect(2, [0]), IndexError,
     r"`node` must be in \[0, 2\) for this network\. Received: node=2\b"),
    ("connect-node-negative", lambda: two_dense().connect(-1, []), IndexError, r"Received: node=-1\b"),
    ("shares-with-later-node", lambda: two_dense().connect(0, [], 1), ValueError,
     r"earlier node only\. Received: shares_with=1\b"),
    ("shares-with-itself", lambda: two_dense().connect(1, [0], 1), ValueError, r"Received: shares_with=1\b"),
    ("shares-with-below-minus-1", lambda: two_dense().connect(1, [0], -2), ValueError, r"Received: shares_with=-2\b"),
    ("shares-with-other-kind", lambda: declared((2, 2, 1), layers=["flatten", "dense"]).connect(1, [0], 0),
     ValueError, r"node 1 \(Dense\) cannot share the parameters of a Flatten\. Received: shares_with=0\b"),
    ("shares-weights-of-other-shapes",
     lambda: wired(declared((2, 2, 1), (3, 1, 1), layers=["flatten", "dense", "flatten", "dense"]),
                   (0, [-1]), (1, [0]), (2, [-2]), (3, [2], 1), outputs=[1, 3]),
     ValueError, r"Layer #3 \(Dense\) shares the weights of layer #1 .*Received: input_shape=\(None, 1, 1, 3\), "
                 r"layer #1's input_shape=\(None, 1, 1, 4\)"),
    # set_outputs: node outputs only, each once
    ("outputs-duplicate", lambda: two_dense().set_outputs([1, 0, 1]), ValueError,
     r"tensor 1 is listed twice among the outputs\. Received: outputs=\[1, 0, 1\]"),
    ("outputs-model-input", lambda: declared((2, 2, 1), layers=["flatten"]).set_outputs([-1]), ValueError,
     r"output 0 is tensor -1.*Received: outputs=\[-1\]"),
    ("outputs-past-end", lambda: two_dense().set_outputs([0, 2]), ValueError, r"Received: outputs=\[0, 2\]"),
    ("outputs-empty", lambda: two_dense().set_outputs([]), ValueError, r"Received: outputs=\[\]"),
    # inputs come first, and build's form follows them
    ("add-input-after-layer", lambda: two_dense().add_input((2, 2, 1)), RuntimeError,
     r"declare every input before the first node\. Received: add_input after 2 nodes"),
    ("add-input-zero-dimension", lambda: _core.Network().add_input((2, 0, 1)), ValueError,
     r"Received: \(2, 0, 1\)"),
    ("build-shape-with-declared-inputs", lambda: declared((2, 2, 1), layers=["flatten"]).build((2, 2, 1)),
     ValueError, r"call build\(\) without input_shape\. Received: input_shape=\(2, 2, 1\)"),
    ("build-no-shape-no-inputs", lambda: two_dense().build(), ValueError, r"Received: input_shape=None"),
    # several inputs: a list of one array per input, all with the same number of samples
    ("multi-input-single-array", lambda: two_input_network().predict(XN), TypeError,
     r"takes 2 inputs: pass a list of 2 arrays\. Received: x of type ndarray"),
    ("multi-input-list-too-short", lambda: two_input_network().predict([XN]), ValueError,
     r"takes 2 inputs\. Received: a list of 1 arrays"),
    ("multi-input-list-too-long", lambda: two_input_network().predict((XN, XN, XN)), ValueError,
     r"Received: a list of 3 arrays"),
    ("multi-input-sample-counts", lambda: two_input_network().predict([XN, XN[:3]]), ValueError,
     r"`x\[1\]` axis 0 \(samples\) must be 4\. Received: x\[1\]\.shape=\(3, 2, 2, 1\)"),
    ("multi-input-train-sample-counts", lambda: train(two_input_network(), x=[XN[:3], XN]), ValueError,
     r"`x\[1\]` axis 0 \(samples\) must be 3\. Received: x\[1\]\.shape=\(4, 2, 2, 1\)"),
    ("multi-input-second-shape", lambda: two_input_network().predict([XN, np.zeros((4, 2, 2, 3))]), ValueError,
     r"Received: x\[1\]\.shape=\(4, 2, 2, 3\)"),
    ("multi-input-second-none", lambda: two_input_network().forward_training([XN, None], 1), TypeError,
     r"Received: x\[1\]=None"),
    # several outputs: labels / probabilities as lists with one entry per output
    ("multi-output-labels-not-list", lambda: train(two_output_network(), labels=LABELS), TypeError,
     r"pass `labels` as a list with one entry .* per output\. Received: labels of type ndarray"),
    ("multi-output-labels-too-short", lambda: train(two_output_network(), labels=[LABELS]), ValueError,
     r"`labels` needs one entry per output \(2\)\. Received: 1 entries"),
    ("multi-output-labels-too-long", lambda: two_output_network().test_step(XN, [LABELS, LABELS_2, LABELS], None,
                                                                             INDICES), ValueError,
     r"Received: 3 entries"),
    ("multi-output-second-label-range", lambda: train(two_output_network(), labels=[LABELS, LABELS]), ValueError,
     r"label value of 2 which is outside the valid range of \[0, 2\)"),
    ("multi-output-neither-target", lambda: train(two_output_network(), labels=[LABELS, None]), ValueError,
     r"Received: labels\[1\]=None, probabilities\[1\]=None"),
    ("multi-output-probabilities-classes",
     lambda: train(two_output_network(), labels=[LABELS, None], probabilities=[None, np.zeros((4, 3))]), ValueError,
     r"Received: probabilities\[1\]\.shape=\(4, 3\)"),
    ("multi-output-compute-gradients-labels", lambda: two_output_network().compute_gradients(
        XN, (LABELS,), None, INDICES, 4, 0, 1), ValueError, r"Received: 1 entries"),
    # configure_output_loss and set_trainable_flags
    ("output-loss-index-past-end", lambda: two_output_network().configure_output_loss(2, False, 1.0), IndexError,
     r"`output` must be in \[0, 2\) for this network\. Received: output=2\b"),
    ("output-loss-index-negative", lambda: two_output_network().configure_output_loss(-1, False, 1.0), IndexError,
     r"Received: output=-1\b"),
    ("output-loss-weight-negative", lambda: two_output_network().configure_output_loss(1, False, -0.5), ValueError,
     r"finite and non-negative\. Received: -0\.5"),
    ("output-loss-weight-nan", lambda: two_output_network().configure_output_loss(0, True, float("nan")), ValueError,
     r"Received: nan"),
    ("output-loss-weight-inf", lambda: two_output_network().configure_output_loss(0, True, float("inf")), ValueError,
     r"Received: inf"),
    ("output-loss-before-build", lambda: two_output_network(build=False).configure_output_loss(0, False), ValueError,
     r"before configure_output_loss"),
    ("trainable-flags-too-few", lambda: two_output_network().set_trainable_flags([True]), ValueError,
     r"one flag per layer \(3\)\. Received: 1\b"),
    ("trainable-flags-too-many", lambda: two_dense().set_trainable_flags([True, False, True]), ValueError,
     r"one flag per layer \(2\)\. Received: 3\b"),
    ("parameter-owner-index", lambda: two_output_network().parameter_owner(3), ValueError,
     r"Received: layer_index=3\b"),
    # merge layers: shapes checked at build, with the layer named
    ("merge-incompatible-shapes", lambda: wired(declared((4, 4, 3), (4, 4, 2), layers=["add"]), (0, [-1, -2])),
     ValueError, r"Layer #0 \(Add\): Inputs have incompatible shapes\. "
                 r"Received shapes \(None, 4, 4, 3\) and \(None, 4, 4, 2\)"),
    ("merge-incompatible-after-broadcast",
     lambda: wired(declared((1, 1, 3), (4, 4, 1), (2, 4, 1), layers=["multiply"]), (0, [-1, -2, -3])),
     ValueError, r"Received shapes \(None, 4, 4, 3\) and \(None, 2, 4, 1\)"),
    ("subtract-three-inputs", lambda: wired(declared((2, 2, 1), layers=["subtract"]), (0, [-1, -1, -1])),
     ValueError, r"Layer #0 \(Subtract\): .*exactly 2 inputs\. Received: 3 inputs"),
    ("concatenate-mismatch", lambda: wired(declared((4, 4, 3), (4, 5, 3), layers=["concatenate2"]), (0, [-1, -2])),
     ValueError, r"Layer #0 \(Concatenate\): .*except for the concatenation axis\. "
                 r"Received: input_shape=\[\(None, 4, 4, 3\), \(None, 4, 5, 3\)\]"),
    ("concatenate-axis-3", lambda: _core.Network().add_concatenate(3), ValueError, r"Received: axis=3\b"),
    ("concatenate-axis-negative", lambda: _core.Network().add_concatenate(-1), ValueError, r"Received: axis=-1\b"),
    ("merge-kind-bogus", lambda: _core.Network().add_merge("mean"), ValueError, r"Received: kind=mean"),
    ("dense-given-two-inputs", lambda: wired(declared((2, 2, 1), (2, 2, 1), layers=["dense"]), (0, [-1, -2])),
     ValueError, r"Layer #0 \(Dense\): a Dense layer takes one input\. Received: 2 inputs"),
]


@pytest.mark.parametrize("call,exception,pattern", [case[1:] for case in GRAPH_CASES],
                         ids=[case[0] for case in GRAPH_CASES])
def test_graph_methods_are_checked(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


def test_a_failed_build_can_be_corrected_and_built_again():
    """A refused build declares nothing: build(shape) used to keep the refused input shape, so that
    every later build(shape) was refused as a network with declared inputs."""
    network = _core.Network()
    network.add_conv2d(2, (5, 5), (1, 1), (1, 1), "valid", True, "linear")
    with pytest.raises(ValueError, match=r"larger than the input \(3\)"):
        network.build((3, 3, 1))
    assert network.input_count == 0
    network.build((8, 8, 1))
    assert network.output_shape == (4, 4, 2)
    # A graph whose merge is refused: rewired, it builds; the chain inputs build() filled in are undone.
    graph = declared((4, 4, 3), (4, 4, 2), layers=["add", "flatten"])
    graph.connect(0, [-1, -2])
    with pytest.raises(ValueError, match="incompatible shapes"):
        graph.build()
    graph.connect(0, [-1, -1])
    graph.build()
    assert graph.output_shape == (1, 1, 48)


# ---------------------------------------------------------------------------------------------
# _core.ops merge ops: the list of arrays, their broadcast or concatenated shapes, the gradients
# ---------------------------------------------------------------------------------------------

M = np.zeros((2, 3, 4, 5), np.float32)
GATE = np.zeros((2, 1, 1, 5), np.float32)

MERGE_OP_CASES = [
    ("inputs-array", lambda: ops.merge_forward("add", M), TypeError,
     r"`inputs` must be a list or tuple of arrays\. Received: inputs of type ndarray"),
    ("inputs-none", lambda: ops.merge_forward("add", None), TypeError, r"Received: inputs of type NoneType"),
    ("inputs-empty", lambda: ops.merge_forward("maximum", []), ValueError, r"Received: inputs=\[\]"),
    ("input-none", lambda: ops.merge_forward("add", [M, None]), TypeError, r"Received: inputs\[1\]=None"),
    ("input-strings", lambda: ops.merge_forward("add", [M, np.full(M.shape, "x")]), TypeError,
     r"Received: inputs\[1\]\.dtype=<U1"),
    ("input-rank-3", lambda: ops.merge_forward("add", [M, M[0]]), ValueError,
     r"`inputs\[1\]` must have rank 4\. Received: inputs\[1\]\.shape=\(3, 4, 5\)"),
    ("input-batch", lambda: ops.merge_forward("add", [M, M[:1]]), ValueError,
     r"`inputs\[1\]` axis 0 \(batch\) must be 2\. Received: inputs\[1\]\.shape=\(1, 3, 4, 5\)"),
    ("batch-not-broadcast", lambda: ops.merge_forward("add", [M[:1], M]), ValueError,
     r"axis 0 \(batch\) must be 1\. Received: inputs\[1\]\.shape=\(2, 3, 4, 5\)"),
    ("shapes-incompatible", lambda: ops.merge_forward("multiply", [M, M[:, :2]]), ValueError,
     r"Inputs have incompatible shapes\. Received shapes \(None, 3, 4, 5\) and \(None, 2, 4, 5\)"),
    ("kind-bogus", lambda: ops.merge_forward("mean", [M, M]), ValueError, r"Received: kind=mean"),
    ("subtract-three", lambda: ops.merge_forward("subtract", [M, M, M]), ValueError,
     r"subtract takes exactly 2 inputs\. Received: 3 inputs"),
    ("tier-bogus", lambda: ops.merge_forward("add", [M], kernels="fast"), ValueError, r"Unknown kernel set: 'fast'"),
    ("backward-gradient-none", lambda: ops.merge_backward("add", [M, GATE], None), TypeError,
     r"Received: output_gradient=None"),
    ("backward-gradient-shape", lambda: ops.merge_backward("add", [M, GATE], GATE), ValueError,
     r"`output_gradient` axis 1 \(output height\) must be 3\. Received: output_gradient\.shape=\(2, 1, 1, 5\)"),
    ("backward-gradient-batch", lambda: ops.merge_backward("add", [M, GATE], M[:1]), ValueError,
     r"axis 0 \(batch\) must be 2\. Received: output_gradient\.shape=\(1, 3, 4, 5\)"),
    ("backward-mask-length", lambda: ops.merge_backward("add", [M, GATE], M, needs_gradient=[True]), ValueError,
     r"one flag per input \(2\)\. Received: 1 flags"),
    ("activation-tanh", lambda: ops.merge_forward("add", [M, M], activation="tanh"), ValueError,
     r"A merge's fused activation must be 'linear', 'relu' or 'relu6'\. Received: tanh"),
    ("activation-bogus", lambda: ops.merge_backward("add", [M, M], M, output=M, activation="rellu"), ValueError,
     r"rellu"),
    ("backward-activation-without-output", lambda: ops.merge_backward("add", [M, M], M, activation="relu"), ValueError,
     r"needs the forward's activated `output`\. Received: output=None"),
    ("backward-output-without-activation", lambda: ops.merge_backward("add", [M, M], M, output=M), ValueError,
     r"`output` is read only with activation='relu' or 'relu6'\. Received: activation='linear'"),
    ("backward-output-shape", lambda: ops.merge_backward("add", [M, GATE], M, output=GATE, activation="relu6"),
     ValueError, r"`output` axis 1 \(output height\) must be 3\. Received: output\.shape=\(2, 1, 1, 5\)"),
    ("concatenate-inputs-array", lambda: ops.concatenate_forward(M, 2), TypeError, r"Received: inputs of type ndarray"),
    ("concatenate-mismatch", lambda: ops.concatenate_forward([M, M[:, :2]], 2), ValueError,
     r"Received: input_shape=\[\(None, 3, 4, 5\), \(None, 2, 4, 5\)\]"),
    ("concatenate-batch", lambda: ops.concatenate_forward([M, M[:1]], 0), ValueError,
     r"Received: inputs\[1\]\.shape=\(1, 3, 4, 5\)"),
    ("concatenate-axis-3", lambda: ops.concatenate_forward([M, M], 3), ValueError, r"Received: axis=3\b"),
    ("concatenate-backward-axis", lambda: ops.concatenate_backward(M, [2, 2], -1), ValueError, r"Received: axis=-1\b"),
    ("concatenate-backward-sizes-sum", lambda: ops.concatenate_backward(M, [2, 4], 2), ValueError,
     r"`sizes` must sum to output_gradient's extent along axis 2 \(5\)\. Received: sizes=\[2, 4\], "
     r"output_gradient\.shape=\(2, 3, 4, 5\)"),
    ("concatenate-backward-sizes-negative", lambda: ops.concatenate_backward(M, [7, -2], 2), ValueError,
     r"Received: sizes\[1\]=-2\b"),
    ("concatenate-backward-sizes-empty", lambda: ops.concatenate_backward(M, [], 2), ValueError,
     r"Received: sizes=\[\]"),
    ("concatenate-backward-sizes-overflow", lambda: ops.concatenate_backward(M, [2**62, 2**62], 2), ValueError,
     r"exceeds 2\^50"),
    ("concatenate-backward-rank", lambda: ops.concatenate_backward(M[0], [2, 2], 2), ValueError,
     r"Received: output_gradient\.shape=\(3, 4, 5\)"),
    ("concatenate-backward-mask", lambda: ops.concatenate_backward(M, [2, 3], 2, needs_gradient=[True] * 3),
     ValueError, r"Received: 3 flags"),
]


@pytest.mark.parametrize("call,exception,pattern", [case[1:] for case in MERGE_OP_CASES],
                         ids=[case[0] for case in MERGE_OP_CASES])
def test_merge_ops_are_checked(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


def test_refused_steps_leave_the_network_usable():
    """A refused train_step changes nothing: the next valid step gives the result of a fresh network."""
    network = small_network(optimizer="sgd")
    for bad in (dict(x=XN[0]), dict(indices=np.array([0, 4])), dict(indices=np.array([0.7])),
                dict(labels=np.array([0, 2**32 + 1, 0, 0])), dict(sample_weights=np.array([1, np.nan, 1, 1]))):
        with pytest.raises((ValueError, TypeError)):
            train(network, **bad)
    assert train(network) == train(small_network(optimizer="sgd"))


def test_every_kernel_tier_name_is_checked():
    for call in (lambda: ops.dense_forward(D_X, D_K, kernels="fast"),
                 lambda: ops.max_pool2d_forward(X, (2, 2), (2, 2), kernels="fast"),
                 lambda: ops.batch_norm_statistics(D_X, kernels="fast"),
                 lambda: ops.dropout_forward(D_X, 0.5, 1, kernels="fast"),
                 lambda: ops.merge_backward("add", [X], X, kernels="fast"),
                 lambda: ops.concatenate_forward([X], 2, kernels="fast"),
                 lambda: ops.concatenate_backward(X, [3], 2, kernels="fast")):
        with pytest.raises(ValueError, match=re.escape("Unknown kernel set: 'fast'")):
            call()
