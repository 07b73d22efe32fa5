"""The optimizer update kernel of every tier against the reference kernel, bitwise.

The optimised tiers run ops/optimizer.h's formulas on whole vectors (8 or 16 lanes) with masked
loads and stores for the last partial vector, in parallel chunks of 8192 parameters. Their source
is compiled without FMA contraction and every operation (including the square root and the
divisions) is correctly rounded in IEEE float32, in the reference's order, so the results must be
equal bit for bit, NaN included (tolerance zero). Sizes 1..70 cover every remainder of both
vector widths several times over, with and without a full vector before it; the larger sizes cross
the parallel chunks' boundaries.
"""

import numpy as np
import pytest

from fastcnn import _core

ops = _core.ops

TIERS = [name for name in _core.available_kernels() if name != "reference"]
SIZES = list(range(1, 71)) + [8191, 8192, 8193, 2 * 8192 + 13, 100_003]
STEPS = 3

pytestmark = pytest.mark.skipif(not TIERS, reason="no optimised kernel tier on this CPU")


def adam_options(step, learning_rate, beta_1=0.9, beta_2=0.999):
    """Adam's per-step factor as runtime/optimizer.cpp computes it (float32 powers)."""
    f = np.float32
    t = f(step + 1)
    beta_1_power, beta_2_power = f(beta_1) ** t, f(beta_2) ** t
    alpha = f(learning_rate) * np.sqrt(f(1) - beta_2_power) / (f(1) - beta_1_power)
    return {"alpha": float(alpha), "beta_1": beta_1, "beta_2": beta_2}


def nadam_options(step, beta_1=0.9, beta_2=0.999):
    f = np.float32
    t = f(step + 1)
    u_product = f(1)
    for s in range(1, step + 2):
        u_product = u_product * f(beta_1) * (f(1) - f(0.5) * f(0.96) ** f(s))
    u_t = f(beta_1) * (f(1) - f(0.5) * f(0.96) ** t)
    u_next = f(beta_1) * (f(1) - f(0.5) * f(0.96) ** (t + f(1)))
    return {"u_t": float(u_t), "u_next": float(u_next), "one_minus_u_product": float(f(1) - u_product),
            "one_minus_u_product_next": float(f(1) - u_product * u_next),
            "one_minus_beta_2_power": float(f(1) - f(beta_2) ** t), "beta_1": beta_1, "beta_2": beta_2}


# kind, options (learning rate 0.01 unless given), slots the update uses
CASES = {
    "sgd": ("sgd", {}),
    "sgd momentum": ("sgd", {"momentum": 0.9}),
    "sgd nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
    "sgd clipvalue decay": ("sgd", {"momentum": 0.5, "clipvalue": 0.3, "decay": 0.004}),
    "sgd clipnorm scale": ("sgd", {"gradient_scale": 0.37}),
    "adam": ("adam", {"epsilon": 1e-7}),
    "adam amsgrad": ("adam", {"amsgrad": True, "epsilon": 1e-7}),
    "adamw clipvalue": ("adam", {"decay": 0.004 * 0.01, "clipvalue": 0.5, "epsilon": 1e-7}),
    "adam global clip scale": ("adam", {"gradient_scale": 0.8, "epsilon": 1e-7}),
    "rmsprop": ("rmsprop", {"rho": 0.9, "epsilon": 1e-7}),
    "rmsprop centered": ("rmsprop", {"rho": 0.9, "centered": True, "epsilon": 1e-7}),
    "rmsprop momentum": ("rmsprop", {"rho": 0.8, "momentum": 0.5, "epsilon": 1e-7}),
    "rmsprop centered momentum decay": ("rmsprop", {"rho": 0.9, "centered": True, "momentum": 0.9,
                                                    "decay": 1e-3, "epsilon": 1e-6}),
    "adagrad": ("adagrad", {"epsilon": 1e-7}),
    "adagrad clipvalue": ("adagrad", {"epsilon": 1e-7, "clipvalue": 0.2}),
    "nadam": ("nadam", {"epsilon": 1e-7}),
    "nadam decay scale": ("nadam", {"epsilon": 1e-7, "decay": 1e-4, "gradient_scale": 0.6}),
}


def step_options(kind, options, step):
    result = {"learning_rate": 0.01, **options}
    if kind == "adam":
        result.update(adam_options(step, result["learning_rate"]))
    elif kind == "nadam":
        result.update(nadam_options(step))
    return result


def initial_state(kind, size, rng):
    parameters = rng.standard_normal(size).astype(np.float32)
    first = (0.1 * rng.standard_normal(size)).astype(np.float32)
    second = np.abs(0.01 * rng.standard_normal(size)).astype(np.float32)
    if kind == "adagrad":
        second += np.float32(0.1)  # initial_accumulator_value
    third = (0.01 * rng.standard_normal(size)).astype(np.float32)
    if kind == "adam":
        third = np.maximum(np.abs(third), second * 0.5).astype(np.float32)
    return parameters, first, second, third


def gradients_for(size, rng, step):
    gradients = rng.standard_normal(size).astype(np.float32)
    if size > 8:  # values at the edges of float32: zero, a denormal, tiny, huge
        gradients[1] = 0.0
        gradients[2] = np.float32(1e-40)
        gradients[5] = np.float32(1e-20 * (step + 1))
        gradients[7] = np.float32(3e3)
    return gradients


def run_steps(tier, kind, options, size, seed):
    rng = np.random.default_rng(seed)
    parameters, first, second, third = initial_state(kind, size, rng)
    history = []
    for step in range(STEPS):
        gradients = gradients_for(size, rng, step)
        out = ops.optimizer_update(kind, parameters, gradients, first, second, third,
                                   step_options(kind, options, step), kernels=tier)
        parameters = out[0]
        first, second, third = (slot if slot is not None else old for slot, old in zip(out[2:], (first, second, third)))
        history.append(out)
    return history


def assert_same_bits(actual, expected, what):
    assert (actual is None) == (expected is None), what
    if expected is None:
        return
    assert actual.shape == expected.shape, what
    same = (actual.view(np.uint32) == expected.view(np.uint32)) | (np.isnan(actual) & np.isnan(expected))
    if not same.all():
        index = int(np.flatnonzero(~same)[0])
        raise AssertionError(f"{what}: element {index} of {actual.size}: {actual[index]!r} != {expected[index]!r}")


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("case", list(CASES))
def test_optimizer_update_matches_reference_bitwise(tier, case):
    kind, options = CASES[case]
    names = ("parameters", "gradients", "first_slot", "second_slot", "third_slot")
    for size in SIZES:
        expected = run_steps("reference", kind, options, size, seed=size)
        actual = run_steps(tier, kind, options, size, seed=size)
        for step, (got, want) in enumerate(zip(actual, expected)):
            for name, a, e in zip(names, got, want):
                assert_same_bits(a, e, f"{tier} {case} size {size} step {step} {name}")


@pytest.mark.parametrize("tier", TIERS)
def test_optimizer_update_special_values(tier):
    """NaN and infinite gradients, parameters and clip bounds go where the reference sends them."""
    values = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e30, 5.0, -5.0, 1.0] * 4, np.float32)
    rng = np.random.default_rng(7)
    for kind, options in CASES.values():
        for size in (len(values), 17, 33):
            gradients = np.resize(values, size)
            parameters = rng.permutation(np.resize(values, size)).astype(np.float32)
            state = [np.abs(rng.standard_normal(size)).astype(np.float32) for _ in range(3)]
            settings = step_options(kind, options, 0)
            want = ops.optimizer_update(kind, parameters, gradients, *state, settings, kernels="reference")
            got = ops.optimizer_update(kind, parameters, gradients, *state, settings, kernels=tier)
            for name, a, e in zip(("parameters", "gradients", "first", "second", "third"), got, want):
                assert_same_bits(a, e, f"{tier} {kind} {options} size {size} {name}")


def test_optimizer_update_leaves_its_arguments_and_reports_bad_input():
    parameters = np.ones(5, np.float32)
    gradients = np.full(5, 0.5, np.float32)
    new_parameters, new_gradients, first, second, third = ops.optimizer_update(
        "sgd", parameters, gradients, options={"learning_rate": 0.1})
    np.testing.assert_array_equal(new_parameters, np.float32(1) - np.float32(0.1) * np.float32(0.5))
    np.testing.assert_array_equal(parameters, 1.0)
    assert first is None and second is None and third is None
    with pytest.raises(ValueError, match="first_slot"):
        ops.optimizer_update("adam", parameters, gradients)
    with pytest.raises(ValueError, match="'lamb'"):
        ops.optimizer_update("lamb", parameters, gradients)
    with pytest.raises(ValueError, match="'beta_3'"):
        ops.optimizer_update("sgd", parameters, gradients, options={"beta_3": 0.5})
    with pytest.raises(ValueError, match="length"):
        ops.optimizer_update("sgd", parameters, gradients[:4])
