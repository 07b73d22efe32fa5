"""The merge kernels (csrc/ops/merge.h) through ``fastcnn._core.ops``: Add, Subtract, Multiply,
Average, Maximum and Minimum with per-sample broadcasting, and Concatenate.

Two independent checks for every case:

* every optimised tier against the reference kernel, bitwise: the optimised kernels fold the
  inputs left to right and sum each broadcast input's gradient in the reference's order, (y, x, c)
  row-major within a sample, so they must give the very same floats (NaN compared as NaN);
* the reference against numpy: the forward formula is the same float32 operations in the same
  order, so bitwise too; gradients bitwise where an input is not broadcast, and to float32 rounding
  where one sums over the positions it was broadcast to (numpy's sum is pairwise); and finite
  differences of the forward kernel along a random direction.

The edge cases: 1-4 inputs; (1, 1, C) gates, (H, 1, 1) columns, (1, W, C) rows, one scalar per
sample, the first input broadcast, both broadcast; channel counts below and above the 8- and 16-float
vector widths and odd ones; batches of 0 and 1; NaN, infinities and signed zeros (Maximum and Minimum
propagate NaN, ties go to the first input, in the value and in the gradient); denormals (zeros in
the optimised tiers' parallel regions); 1 and 2 threads bitwise equal; Concatenate along height,
width and channels with pieces of any extent (0 included).
"""

import contextlib
import zlib

import numpy as np
import pytest

import fastcnn
from fastcnn import _core

ops = _core.ops

TIERS = list(_core.available_kernels())  # "reference" first, then the optimised ones
OPTIMISED = [tier for tier in TIERS if tier != "reference"]
KINDS = ["add", "subtract", "multiply", "average", "maximum", "minimum", "divide"]
TWO_INPUT_KINDS = ("subtract", "divide")  # x0 - x1, x0 / x1 (divide: Keras's x / y on symbolic tensors)

# Per-sample shapes (height, width, channels) of the inputs.
SHAPES = {
    "one-input": [(3, 4, 5)],
    "same-c1": [(3, 3, 1), (3, 3, 1)],
    "same-c7": [(3, 2, 7), (3, 2, 7)],
    "same-c8": [(2, 3, 8), (2, 3, 8)],
    "same-c9": [(2, 2, 9), (2, 2, 9)],
    "same-c15": [(1, 2, 15), (1, 2, 15)],
    "same-c16": [(2, 3, 16), (2, 3, 16)],
    "same-c17": [(1, 3, 17), (1, 3, 17)],
    "same-c33": [(2, 1, 33), (2, 1, 33)],
    "gate-1x1xC": [(4, 3, 9), (1, 1, 9)],
    "gate-first": [(1, 1, 16), (3, 4, 16)],
    "column-Hx1x1": [(4, 3, 6), (4, 1, 1)],
    "row-1xWxC": [(4, 3, 6), (1, 3, 6)],
    "scalar-per-sample": [(3, 2, 17), (1, 1, 1)],
    "scalar-first": [(1, 1, 1), (2, 2, 5)],
    "channels-broadcast": [(3, 3, 1), (3, 3, 8)],
    "both-broadcast": [(4, 1, 1), (1, 3, 8)],
    "all-scalars": [(1, 1, 1), (1, 1, 1)],
    "zero-width": [(2, 0, 3), (2, 1, 3)],
    "three-mixed": [(2, 3, 8), (1, 1, 8), (2, 1, 1)],
    "four-same": [(2, 2, 5)] * 4,
    "four-mixed": [(2, 2, 15), (1, 2, 15), (2, 1, 1), (1, 1, 1)],
}
BATCHES = [0, 1, 3]


def merge_cases():
    """(kind, shape id): every kind on every shape case (subtract and divide only on two inputs)."""
    return [(kind, name) for kind in KINDS for name, shapes in SHAPES.items()
            if kind not in TWO_INPUT_KINDS or len(shapes) == 2]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def threads(count):
    previous = fastcnn.get_num_threads()
    fastcnn.set_num_threads(count)
    try:
        yield
    finally:
        fastcnn.set_num_threads(previous)


@pytest.fixture(autouse=True)
def one_thread():
    """Every test on one thread but the 1 vs 2 threads tests (which show that results do not depend
    on it): on these tiny arrays a team of threads spends its time spinning in OpenMP's barriers,
    five times the file's run time when other processes share the cores."""
    with threads(1):
        yield


def assert_same(actual, expected, what):
    """Bitwise equal (the sign of zero included), NaN where the other has NaN (whatever its payload)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == np.float32 and actual.shape == expected.shape, \
        f"{what}: {actual.dtype} {actual.shape} != {expected.dtype} {expected.shape}"
    expected = expected.astype(np.float32)
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(actual), nan), f"{what}: NaN positions differ"
    different = actual.view(np.uint32)[~nan] != expected.view(np.uint32)[~nan]
    assert not different.any(), (f"{what}: {int(different.sum())} values differ, first "
                                 f"{actual[~nan][different][:3]} != {expected[~nan][different][:3]}")


def sample_values(rng, shape):
    """Half standard normal values, half from a small grid with +0 and -0: ties for Maximum and
    Minimum, exact and inexact arithmetic for the others."""
    normal = rng.standard_normal(shape).astype(np.float32)
    grid = rng.choice(np.array([-1.0, -0.5, -0.0, 0.0, 0.5, 1.0], np.float32), shape)
    return np.where(rng.random(shape) < 0.5, normal, grid).astype(np.float32)


def make_inputs(rng, batch, shapes):
    return [sample_values(rng, (batch,) + tuple(shape)) for shape in shapes]


@np.errstate(invalid="ignore", over="ignore", divide="ignore")  # inf - inf, 0 * inf, x / 0: as in the kernels
def numpy_merge(kind, xs):
    """ops/merge.h's forward formula in float32: the inputs folded left to right, broadcast per sample."""
    result = np.broadcast_to(xs[0], np.broadcast_shapes(*[x.shape for x in xs])).astype(np.float32)
    for x in xs[1:]:
        if kind in ("add", "average"):
            result = result + x
        elif kind == "subtract":
            result = result - x
        elif kind == "multiply":
            result = result * x
        elif kind == "divide":
            result = result / x
        elif kind == "maximum":  # TensorFlow's: the earlier value unless the later is larger; NaN propagates
            result = np.where((result >= x) | np.isnan(result), result, x)
        else:
            result = np.where((result <= x) | np.isnan(result), result, x)
    if kind == "average":
        result = result / np.float32(len(xs))
    return result.astype(np.float32)


def chosen_input(kind, xs, shape):
    """Per output element, the index of the input a Maximum / Minimum takes its value from: the
    first extreme (ties to the earliest), the first NaN."""
    best = np.broadcast_to(xs[0], shape).astype(np.float32)
    chosen = np.zeros(shape, np.int64)
    for i, x in enumerate(xs[1:], start=1):
        keep = ((best >= x) if kind == "maximum" else (best <= x)) | np.isnan(best)
        best = np.where(keep, best, x)
        chosen = np.where(keep, chosen, i)
    return chosen


@np.errstate(invalid="ignore", over="ignore", divide="ignore")  # inf - inf, 0 * inf, x / 0: as in the kernels
def numpy_merge_gradients(kind, xs, dy):
    """Each input's gradient: the per-position term of ops/merge.h in float32 (as the kernels form
    it), summed in float64 over the positions a broadcast input was broadcast to."""
    shape = dy.shape
    count = len(xs)
    chosen = chosen_input(kind, xs, shape) if kind in ("maximum", "minimum") else None
    gradients = []
    for i, x in enumerate(xs):
        if kind == "add":
            term = dy
        elif kind == "subtract":
            term = dy if i == 0 else -dy
        elif kind == "average":
            term = dy / np.float32(count)
        elif kind == "multiply":
            term = dy
            for j, other in enumerate(xs):
                if j != i:
                    term = term * other
        elif kind == "divide":  # TensorFlow's RealDiv gradient, in its order of operations
            term = dy / xs[1] if i == 0 else dy * ((-xs[0] / xs[1]) / xs[1])
        else:
            term = np.where(chosen == i, dy, np.float32(0))
        term = np.broadcast_to(term, shape)
        axes = tuple(axis for axis in range(1, 4) if x.shape[axis] == 1 and shape[axis] != 1)
        if axes:
            gradients.append(term.astype(np.float64).sum(axis=axes, keepdims=True))
        else:
            gradients.append(term.astype(np.float32))
    return gradients, [x.shape[1:] != shape[1:] for x in xs]


def merge_on_every_tier(kind, xs, dy):
    """{tier: (forward output, [input gradients])}."""
    return {tier: (ops.merge_forward(kind, xs, kernels=tier), ops.merge_backward(kind, xs, dy, kernels=tier))
            for tier in TIERS}


def check_merge(kind, xs, rng):
    """Every tier against the reference, and the reference against numpy."""
    expected = numpy_merge(kind, xs)
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    results = merge_on_every_tier(kind, xs, dy)
    output, gradients = results["reference"]
    assert_same(output, expected, f"reference {kind} against numpy")
    numpy_gradients, broadcast = numpy_merge_gradients(kind, xs, dy)
    for i, (gradient, numpy_gradient) in enumerate(zip(gradients, numpy_gradients)):
        assert gradient.shape == xs[i].shape
        if broadcast[i]:
            number = ~np.isnan(numpy_gradient)
            assert np.array_equal(np.isnan(gradient), ~number), f"{kind} input {i}: NaN positions differ"
            np.testing.assert_allclose(gradient[number], numpy_gradient[number], rtol=1e-5, atol=1e-5,
                                       err_msg=f"reference {kind} gradient of broadcast input {i} against numpy")
        else:
            assert_same(gradient, numpy_gradient, f"reference {kind} gradient of input {i} against numpy")
    for tier in OPTIMISED:
        tier_output, tier_gradients = results[tier]
        assert_same(tier_output, output, f"{tier} {kind} forward")
        for i, (gradient, reference) in enumerate(zip(tier_gradients, gradients)):
            assert_same(gradient, reference, f"{tier} {kind} gradient of input {i}")
    return results


# ---------------------------------------------------------------------------------------------
# elementwise merges
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("kind,case", merge_cases(), ids=[f"{kind}-{name}" for kind, name in merge_cases()])
def test_merge_every_tier_matches_reference_and_numpy(kind, case, batch):
    rng = np.random.default_rng(zlib.crc32(f"{kind} {case} {batch}".encode()))
    check_merge(kind, make_inputs(rng, batch, SHAPES[case]), rng)


SPECIAL_SHAPES = ["same-c17", "gate-1x1xC", "gate-first", "scalar-per-sample", "three-mixed", "four-mixed"]


@pytest.mark.parametrize("case", SPECIAL_SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_nan_infinities_and_signed_zeros(kind, case):
    """Inputs drawn from NaN, +-inf, +-0 and a few finite values: every tier bitwise the reference,
    the reference the numpy formulas (inf - inf, 0 * inf give NaN as IEEE says)."""
    shapes = SHAPES[case][:2] if kind in TWO_INPUT_KINDS else SHAPES[case]
    rng = np.random.default_rng(7)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -2.5, 3.0], np.float32)
    xs = [rng.choice(specials, (2,) + shape) for shape in shapes]
    check_merge(kind, xs, rng)


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("kind", ["maximum", "minimum"])
def test_maximum_and_minimum_propagate_nan_and_give_ties_to_the_first_input(kind, tier):
    nan = np.float32(np.nan)
    # Position by position: (x0, x1) and the input whose value (and gradient) the result takes.
    pairs = [(1.0, 1.0, 0), (0.0, -0.0, 0), (-0.0, 0.0, 0), (nan, 1.0, 0), (1.0, nan, 1), (nan, nan, 0),
             (np.inf, np.inf, 0), (-np.inf, -np.inf, 0), (nan, np.inf, 0), (-np.inf, nan, 1)]
    x0 = np.array([p[0] for p in pairs], np.float32).reshape(1, 1, len(pairs), 1)
    x1 = np.array([p[1] for p in pairs], np.float32).reshape(1, 1, len(pairs), 1)
    expected_source = np.array([p[2] for p in pairs])
    output = ops.merge_forward(kind, [x0, x1], kernels=tier).ravel()
    expected = np.where(expected_source == 0, x0.ravel(), x1.ravel())
    assert_same(output, expected, f"{tier} {kind}")  # the first's +0 or -0 on a tie, NaN wherever one is NaN
    assert np.isnan(output).tolist() == (np.isnan(x0) | np.isnan(x1)).ravel().tolist()
    dy = np.arange(1, len(pairs) + 1, dtype=np.float32).reshape(x0.shape)
    first_gradient, second_gradient = ops.merge_backward(kind, [x0, x1], dy, kernels=tier)
    np.testing.assert_array_equal(first_gradient.ravel(), np.where(expected_source == 0, dy.ravel(), 0))
    np.testing.assert_array_equal(second_gradient.ravel(), np.where(expected_source == 1, dy.ravel(), 0))
    # Three inputs, per channel: the 2nd and 3rd tie above the 1st (the 2nd's); a NaN in the 3rd
    # wins over both; all three tie (the 1st's).
    sign = np.float32(1 if kind == "maximum" else -1)
    first, second, third = (sign * np.array(values, np.float32).reshape(1, 1, 1, 3)
                            for values in ([0.0, 0.0, 1.0], [2.0, 2.0, 1.0], [2.0, nan, 1.0]))
    gradients = ops.merge_backward(kind, [first, second, third], np.ones((1, 1, 1, 3), np.float32), kernels=tier)
    np.testing.assert_array_equal(np.stack([gradient.ravel() for gradient in gradients]),
                                  [[0, 0, 1], [1, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize("kind", KINDS)
def test_denormals_are_zeros_in_the_optimised_tiers(kind):
    """The optimised kernels run in parallel regions, whose workers flush denormals to zero (inputs
    and results, as TensorFlow's thread pools do: csrc/parallel.h); the reference does not. So
    with denormals about, a tier agrees with the reference on the inputs flushed to zero, up to the
    results' own flushing (a Maximum may keep a denormal input's bits where it compared as zero)."""
    rng = np.random.default_rng(13)
    tiny = np.finfo(np.float32).tiny  # the smallest normal float32
    values = np.array([1e-40, -1e-40, 1e-39, 1e-20, -1e-20, 0.0, -0.0, 1.0, tiny], np.float32)
    shapes = SHAPES["gate-1x1xC"]
    xs = [rng.choice(values, (2,) + shape) for shape in shapes]

    def flushed(array):
        # Denormals become zeros of their sign, as the CPU's denormals-are-zero mode reads them
        # (the sign shows in a division: 1 / -1e-40 is -inf there).
        return np.where(np.abs(array) < tiny, np.copysign(np.float32(0), array), array)

    expected = flushed(ops.merge_forward(kind, [flushed(x) for x in xs], kernels="reference"))
    dy = rng.choice(values, expected.shape)
    expected_gradients = [flushed(gradient) for gradient in
                          ops.merge_backward(kind, [flushed(x) for x in xs], flushed(dy), kernels="reference")]
    for tier in OPTIMISED:
        np.testing.assert_array_equal(flushed(ops.merge_forward(kind, xs, kernels=tier)), expected)
        for gradient, reference in zip(ops.merge_backward(kind, xs, dy, kernels=tier), expected_gradients):
            np.testing.assert_array_equal(flushed(gradient), reference)


FINITE_DIFFERENCE_SHAPES = ["same-c9", "gate-1x1xC", "gate-first", "column-Hx1x1", "row-1xWxC",
                            "scalar-per-sample", "both-broadcast", "three-mixed", "four-mixed"]


@pytest.mark.parametrize("case", FINITE_DIFFERENCE_SHAPES)
@pytest.mark.parametrize("kind", KINDS)
def test_input_gradients_match_finite_differences(kind, case):
    """d/dt sum(dy * merge(x_i + t v)) by central differences of the forward kernel, against
    sum(gradient_i * v). The inputs are distinct multiples of 1/4 and the step 1/16, so x +- t v is
    exact in float32 and never reorders a Maximum or Minimum (the loss is linear in t there)."""
    shapes = SHAPES[case][:2] if kind in TWO_INPUT_KINDS else SHAPES[case]
    rng = np.random.default_rng(11)
    sizes = [2 * int(np.prod(shape)) for shape in shapes]
    grid = (rng.permutation(sum(sizes)) - sum(sizes) // 2).astype(np.float32) / 4
    if kind == "multiply":
        grid = grid / max(1.0, float(np.max(np.abs(grid))))  # products of moderate magnitude
    pieces = np.split(grid, np.cumsum(sizes)[:-1])
    xs = [piece.reshape((2,) + shape) for piece, shape in zip(pieces, shapes)]
    if kind == "divide":
        # Numerators of moderate size and denominators at least 8 away from the pole at 0: the
        # central difference's error (step² x0 / x1⁴) stays far below the tolerance.
        xs[0] = xs[0] / max(1.0, float(np.max(np.abs(xs[0]))))
        xs[1] = np.where(xs[1] >= 0, xs[1] + 8, xs[1] - 8).astype(np.float32)
    output = ops.merge_forward(kind, xs, kernels="reference")
    dy = rng.standard_normal(output.shape).astype(np.float32)
    step = np.float32(1 / 16)

    def loss(inputs):
        return float(np.sum(dy.astype(np.float64) * ops.merge_forward(kind, inputs, kernels="reference")))

    for tier in TIERS:
        gradients = ops.merge_backward(kind, xs, dy, kernels=tier)
        for i, x in enumerate(xs):
            direction = rng.choice(np.array([-1.0, 1.0], np.float32), x.shape)
            plus = [x + step * direction if j == i else other for j, other in enumerate(xs)]
            minus = [x - step * direction if j == i else other for j, other in enumerate(xs)]
            numeric = (loss(plus) - loss(minus)) / (2 * float(step))
            analytic = float(np.sum(gradients[i].astype(np.float64) * direction))
            assert numeric == pytest.approx(analytic, rel=1e-4, abs=1e-4), f"{tier} {kind} input {i}"


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("kind", KINDS)
def test_one_and_two_threads_are_bitwise_equal(kind, tier):
    rng = np.random.default_rng(5)
    cases = ["same-c17", "gate-1x1xC", "gate-first", "three-mixed"] if kind not in TWO_INPUT_KINDS else \
        ["same-c17", "gate-1x1xC", "gate-first"]
    for case in cases:
        xs = make_inputs(rng, 7, SHAPES[case])
        dy = rng.standard_normal(numpy_merge(kind, xs).shape).astype(np.float32)
        runs = []
        for count in (1, 2):
            with threads(count):
                runs.append((ops.merge_forward(kind, xs, kernels=tier),
                             ops.merge_backward(kind, xs, dy, kernels=tier)))
        assert_same(runs[1][0], runs[0][0], f"{tier} {kind} {case} forward, 2 threads")
        for i, (two, one) in enumerate(zip(runs[1][1], runs[0][1])):
            assert_same(two, one, f"{tier} {kind} {case} gradient {i}, 2 threads")


# The output activation (ops/merge.h): a ReLU layer that only reads the merge, computed by it in
# training (runtime/plan.cpp output_activation). Values land on the clip points (0, 6, -0) and
# beyond, with NaN and infinities.
ACTIVATION_CASES = ["same-c16", "same-c17", "same-c33", "gate-1x1xC", "gate-first", "three-mixed", "four-same"]


def clip_values(rng, shape):
    """sample_values scaled onto the clip points: 0, +-0, 6, -6, values either side, NaN, infinities."""
    values = sample_values(rng, shape) * np.float32(6.0)
    special = rng.choice(np.array([np.nan, np.inf, -np.inf, 6.0, -0.0, 3.0, 7.0], np.float32), shape)
    return np.where(rng.random(shape) < 0.1, special, values).astype(np.float32)


@np.errstate(invalid="ignore")
def numpy_activation(activation, values):
    """relu / relu6 with activate's comparisons (NaN stays NaN, -0 stays -0)."""
    result = np.where(values < 0, np.float32(0), values)
    if activation == "relu6":
        result = np.where(result > 6, np.float32(6), result)
    return result.astype(np.float32)


@np.errstate(invalid="ignore")
def numpy_activation_gradient(activation, output, gradient):
    inside = (output > 0) & ((output < 6) if activation == "relu6" else True)
    return np.where(inside, gradient, np.float32(0)).astype(np.float32)


ACTIVATION_MERGES = [(kind, case) for kind in ("add", "subtract", "multiply", "average", "maximum")
                     for case in ACTIVATION_CASES if kind not in TWO_INPUT_KINDS or len(SHAPES[case]) == 2]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("activation", ["relu", "relu6"])
@pytest.mark.parametrize("kind,case", ACTIVATION_MERGES, ids=[f"{kind}-{case}" for kind, case in ACTIVATION_MERGES])
def test_merge_with_output_activation_is_the_merge_then_the_activation(kind, case, activation, batch):
    """Forward: act(merge(xs)), bitwise on every tier. Backward: with dy the activated output's,
    every tier bitwise the plain merge's backward of dy taken through act's derivative (at the
    activated output, as TensorFlow's ReluGrad / Relu6Grad at the input)."""
    shapes = SHAPES[case]
    rng = np.random.default_rng(zlib.crc32(f"{kind} {case} {activation} {batch}".encode()))
    xs = [clip_values(rng, (batch,) + tuple(shape)) for shape in shapes]
    output = numpy_activation(activation, numpy_merge(kind, xs))
    dy = rng.standard_normal(output.shape).astype(np.float32)
    expected_gradients = ops.merge_backward(kind, xs, numpy_activation_gradient(activation, output, dy),
                                            kernels="reference")
    for tier in TIERS:
        tier_output = ops.merge_forward(kind, xs, activation=activation, kernels=tier)
        assert_same(tier_output, output, f"{tier} {kind} {activation} forward")
        gradients = ops.merge_backward(kind, xs, dy, output=tier_output, activation=activation, kernels=tier)
        for i, (gradient, expected) in enumerate(zip(gradients, expected_gradients)):
            assert_same(gradient, expected, f"{tier} {kind} {activation} gradient of input {i}")


@pytest.mark.parametrize("tier", TIERS)
def test_residual_add_with_relu_on_one_and_two_threads_and_one_gradient_needed(tier):
    """The fused Add + ReLU's one pass writes every input's gradient; with one needed, only that one."""
    rng = np.random.default_rng(11)
    xs = [clip_values(rng, (9, 5, 4, 24)) for _ in range(2)]
    dy = rng.standard_normal(xs[0].shape).astype(np.float32)
    runs = []
    for count in (1, 2, 3):
        with threads(count):
            output = ops.merge_forward("add", xs, activation="relu", kernels=tier)
            runs.append((output, ops.merge_backward("add", xs, dy, output=output, activation="relu", kernels=tier)))
    for count, (output, gradients) in zip((2, 3), runs[1:]):
        assert_same(output, runs[0][0], f"{tier} forward, {count} threads")
        for i, (gradient, one) in enumerate(zip(gradients, runs[0][1])):
            assert_same(gradient, one, f"{tier} gradient {i}, {count} threads")
    partial = ops.merge_backward("add", xs, dy, needs_gradient=[False, True], output=runs[0][0], activation="relu",
                                 kernels=tier)
    assert partial[0] is None
    assert_same(partial[1], runs[0][1][1], f"{tier} the one gradient needed")


@pytest.mark.parametrize("tier", TIERS)
def test_gradients_not_needed_are_skipped(tier):
    """needs_gradient=False gives None there (the kernel's null pointer) and leaves the others as they were."""
    rng = np.random.default_rng(3)
    xs = make_inputs(rng, 2, SHAPES["four-mixed"])
    dy = rng.standard_normal((2, 2, 2, 15)).astype(np.float32)
    for kind in ("add", "multiply", "maximum"):
        full = ops.merge_backward(kind, xs, dy, kernels=tier)
        mask = [False, True, False, True]
        partial = ops.merge_backward(kind, xs, dy, needs_gradient=mask, kernels=tier)
        for needed, gradient, reference in zip(mask, partial, full):
            if needed:
                assert_same(gradient, reference, f"{tier} {kind}")
            else:
                assert gradient is None


def test_inputs_of_other_dtypes_and_layouts_give_the_float32_result():
    rng = np.random.default_rng(9)
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    b = rng.standard_normal((2, 1, 1, 5)).astype(np.float32)
    expected = ops.merge_forward("multiply", [a, b])
    doubled = np.repeat(a, 2, axis=-1)
    for variant in (a.astype(np.float64), np.asfortranarray(a), doubled[..., ::2], a.tolist()):
        assert_same(ops.merge_forward("multiply", (variant, b)), expected, "converted input")


# ---------------------------------------------------------------------------------------------
# Concatenate
# ---------------------------------------------------------------------------------------------

# Per case: the inputs' extents along the axis, and the sample shape they share otherwise.
CONCATENATE_CASES = {
    "one-input": ([3], (2, 3, 5)),
    "two-c8": ([8, 8], (2, 3, 8)),
    "c3-c8-c17": ([3, 8, 17], (2, 2, 16)),
    "with-empty-piece": ([4, 0, 2], (3, 2, 9)),
    "four-c1": ([1, 1, 1, 1], (1, 2, 7)),
    "four-mixed": ([16, 1, 5, 33], (1, 1, 1)),
}


def concatenate_shapes(axis, sizes, shape):
    result = []
    for size in sizes:
        piece = list(shape)
        piece[axis] = size
        result.append(tuple(piece))
    return result


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("case", list(CONCATENATE_CASES))
@pytest.mark.parametrize("axis", [0, 1, 2], ids=["height", "width", "channels"])
def test_concatenate_every_tier_matches_reference_and_numpy(axis, case, batch):
    sizes, shape = CONCATENATE_CASES[case]
    rng = np.random.default_rng(axis * 100 + batch)
    xs = make_inputs(rng, batch, concatenate_shapes(axis, sizes, shape))
    expected = np.concatenate(xs, axis=1 + axis)
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    expected_gradients = np.split(dy, np.cumsum(sizes)[:-1], axis=1 + axis)
    for tier in TIERS:
        assert_same(ops.concatenate_forward(xs, axis, kernels=tier), expected, f"{tier} forward")
        gradients = ops.concatenate_backward(dy, sizes, axis, kernels=tier)
        assert len(gradients) == len(sizes)
        for i, (gradient, reference) in enumerate(zip(gradients, expected_gradients)):
            assert_same(gradient, reference, f"{tier} gradient of input {i}")
        mask = [i % 2 == 1 for i in range(len(sizes))]
        partial = ops.concatenate_backward(dy, sizes, axis, needs_gradient=mask, kernels=tier)
        for needed, gradient, reference in zip(mask, partial, expected_gradients):
            assert (gradient is None) if not needed else np.array_equal(gradient, reference)


@pytest.mark.parametrize("tier", TIERS)
def test_concatenate_one_and_two_threads_are_bitwise_equal(tier):
    rng = np.random.default_rng(2)
    for axis in range(3):
        xs = make_inputs(rng, 5, concatenate_shapes(axis, [3, 8, 17], (2, 3, 9)))
        dy = rng.standard_normal(np.concatenate(xs, axis=1 + axis).shape).astype(np.float32)
        runs = []
        for count in (1, 2):
            with threads(count):
                runs.append((ops.concatenate_forward(xs, axis, kernels=tier),
                             ops.concatenate_backward(dy, [3, 8, 17], axis, kernels=tier)))
        assert_same(runs[1][0], runs[0][0], f"{tier} axis {axis} forward, 2 threads")
        for two, one in zip(runs[1][1], runs[0][1]):
            assert_same(two, one, f"{tier} axis {axis} gradient, 2 threads")
