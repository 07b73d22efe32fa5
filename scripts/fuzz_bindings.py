#!/usr/bin/env python3
"""Fuzz harness for the binding entry points of ``fastcnn._core`` (hypothesis-driven).

    python scripts/fuzz_bindings.py --minutes 10        # run for 10 minutes (default 1)
    python scripts/fuzz_bindings.py --seconds 20 --json # a short run, a JSON summary on the last line

Two kinds of cases, drawn by hypothesis with random seeds:

* op calls: every ``_core.ops`` function with random arguments: arrays of random shapes, dtypes
  (float32/64, integers, booleans, complex, strings), layouts (Fortran, strided, read-only, 0-d,
  nested lists, None), integers over the whole int64 range, floats including nan and inf, and
  random names. A call that succeeds with finite, moderate inputs is also run with the reference
  kernels and the results compared (silent garbage shows up as a mismatch).
* Network sequences (a hypothesis RuleBasedStateMachine): layer builders with random, often
  invalid, arguments; the graph methods (add_input, merge and Concatenate nodes reading earlier
  tensors, nodes sharing an earlier node's weights, connect, set_outputs, configure_output_loss,
  set_trainable_flags); build in both forms; set_trainable / set_regularization with any index;
  configure_optimizer; train_step / test_step / predict / forward_training with random arrays
  (a list for several inputs), labels and indices (lists for several outputs); parameter and
  optimizer-slot views; all in random order, from an empty network or a valid one: a chain; a
  two-input, two-output graph with merges, a broadcast gate, a Concatenate and shared weights; or a
  graph drawn at random (inputs, convolutions and dense layers sharing weights, merges with gates,
  Concatenates, poolings, reshapes, 1-2 outputs), which is first trained with well-formed steps.
* op cases include the merge ops (merge_forward / merge_backward / concatenate_forward /
  concatenate_backward) on lists of 0-6 arrays of broadcast or mismatched shapes.

Allowed outcomes: a result, or ValueError, TypeError, IndexError, OverflowError, MemoryError or
RuntimeError (an operation in the wrong state). Anything else is a defect: a crash (the process dies
on a signal), a hang (no progress for --hang-seconds), another exception type, or a mismatch with
the reference kernels.

A segfault kills the process that runs the case, so the cases run in a child process; the parent
(this script without --child) restarts a child after a crash or hang and reports the input that
the child recorded just before running it. The child's address space is limited (--memory-gb) so
that a valid but huge request ends in MemoryError instead of the machine's OOM killer.
Exit status 0 when no defect was found.
"""

import argparse
import faulthandler
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

ALLOWED = (ValueError, TypeError, IndexError, OverflowError, MemoryError, RuntimeError)


# ---------------------------------------------------------------------------------------------
# child: runs cases until its deadline, recording each case before running it
# ---------------------------------------------------------------------------------------------


class Recorder:
    """Writes the case about to run (and the count so far) to a file the parent reads after a crash."""

    def __init__(self, path):
        self.path = path
        self.cases = 0
        self.defects = []
        self.outcomes = {}  # entry point -> [calls that returned, calls refused with an allowed exception]

    def before(self, description):
        self.cases += 1
        with open(self.path, "w") as handle:
            handle.write(json.dumps({"cases": self.cases, "case": description, "defects": self.defects,
                                     "outcomes": self.outcomes}))

    def outcome(self, name, returned):
        self.outcomes.setdefault(name, [0, 0])[0 if returned else 1] += 1

    def defect(self, kind, description, detail):
        # The head and the tail: a traceback's tail holds the exception line, but hypothesis's notes
        # (its falsifying example, printed after that line) can push it out of a tail alone.
        if len(detail) > 4000:
            detail = detail[:2000] + "\n[...]\n" + detail[-2000:]
        self.defects.append({"kind": kind, "case": description, "detail": detail})

    def finish(self):
        with open(self.path, "w") as handle:
            handle.write(json.dumps({"cases": self.cases, "case": None, "defects": self.defects,
                                     "outcomes": self.outcomes, "done": True}))


def run_child(arguments):
    import numpy as np
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

    from fastcnn import _core

    # Python stacks of every thread to stderr on a crash, and on SIGUSR1 (the parent's hang probe).
    faulthandler.enable(all_threads=True)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # Casting huge random values to integers warns at every draw: keep stderr for what matters.
    warnings.simplefilter("ignore", RuntimeWarning)
    limit = int(arguments.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    ops = _core.ops
    recorder = Recorder(arguments.record)
    deadline = time.monotonic() + arguments.seconds
    tiers = list(_core.available_kernels())

    class TimeUp(Exception):
        pass

    def describe(value):
        if isinstance(value, np.ndarray):
            head = np.array2string(value.ravel()[:6], precision=3, threshold=6)
            flags = "" if value.flags.c_contiguous else ", non-contiguous"
            return f"ndarray(shape={value.shape}, dtype={value.dtype}{flags}, first={head})"
        if isinstance(value, list):
            return f"list(len={len(value)})"
        return repr(value)

    def call(name, function, arguments_, keywords=None, compare=None):
        """Runs one case; returns its result or None. `compare`: re-run with the reference kernels."""
        keywords = keywords or {}
        if time.monotonic() > deadline:
            raise TimeUp()
        description = f"{name}(" + ", ".join([describe(a) for a in arguments_] +
                                             [f"{k}={describe(v)}" for k, v in keywords.items()]) + ")"
        recorder.before(description)
        if arguments.inject_crash_after and recorder.cases == arguments.inject_crash_after:
            os.kill(os.getpid(), signal.SIGSEGV)  # the harness's self-test: a crash must be caught and reported
        try:
            result = function(*arguments_, **keywords)
        except ALLOWED as error:
            recorder.outcome(name, False)
            if arguments.verbose:
                print(f"refused {description}: {type(error).__name__}: {str(error)[:300]}", flush=True)
            return None
        except Exception:  # noqa: BLE001 - any other type is the defect being looked for
            recorder.defect("unexpected exception", description, traceback.format_exc())
            return None
        recorder.outcome(name, True)
        if compare is not None:
            try:
                expected = function(*arguments_, **{**keywords, "kernels": "reference"})
                actual_parts = result if isinstance(result, (tuple, list)) else (result,)
                expected_parts = expected if isinstance(expected, (tuple, list)) else (expected,)
                for actual, reference in zip(actual_parts, expected_parts):
                    if actual is None:
                        continue
                    scale = max(1.0, float(np.max(np.abs(reference)))) if np.size(reference) else 1.0
                    np.testing.assert_allclose(actual, reference, rtol=compare, atol=compare * scale)
            except AssertionError as error:
                recorder.defect("mismatch with the reference kernels", description, str(error))
            except ALLOWED:
                recorder.defect("reference kernels refused what the tier accepted", description,
                                traceback.format_exc())
        return result

    # --- strategies ---------------------------------------------------------------------------
    small = st.integers(0, 6)
    any_int = st.one_of(st.integers(-3, 9), st.integers(-(2**63), 2**63 - 1),
                        st.sampled_from([0, -1, 2**31, 2**32, 2**50, 2**62, 2**63 - 1, -(2**63)]))
    any_float = st.one_of(st.floats(-2.0, 2.0), st.floats(allow_nan=True, allow_infinity=True),
                          st.sampled_from([0.0, 1.0, -0.0, float("nan"), float("inf"), 1e-30]))
    names = st.sampled_from(["valid", "same", "relu", "softmax", "linear", "tanh", "bilinear", "nearest", "reflect",
                             "constant", "wrap", "", "bogus", "avx2", "generic", "reference", "active"])

    def mostly(valid, wild):
        """Four parts in five `valid` (so that sequences get far enough to build and train), else `wild`."""
        return st.one_of(valid, valid, valid, valid, wild)

    paddings = mostly(st.sampled_from(["valid", "same"]), names)
    activations = mostly(st.sampled_from(["linear", "relu", "sigmoid", "tanh", "gelu", "elu"]), names)
    interpolations = mostly(st.sampled_from(["bilinear", "nearest"]), names)
    fill_modes = mostly(st.sampled_from(["reflect", "wrap", "constant", "nearest"]), names)

    @st.composite
    def arrays(draw, rank=None, shape=None, clean=False):
        """An array-like argument: mostly a well-formed float array, sometimes anything else; with
        `clean`, a float array of exactly `shape` in one of the layouts the binding converts."""
        if shape is None:
            rank = draw(st.integers(0, 5)) if rank is None else rank
            shape = tuple(draw(small) for _ in range(rank))
        elif shape and not clean and draw(st.integers(0, 5)) == 0:  # one axis in six arrays off by one
            axis = draw(st.integers(0, len(shape) - 1))
            shape = tuple(max(0, s + draw(st.sampled_from([1, -1]))) if i == axis else s for i, s in enumerate(shape))
        seed = draw(st.integers(0, 2**32 - 1))
        scale = draw(st.sampled_from([1.0, 1.0, 1.0, 1e-3, 1e30]))
        values = np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale)  # 0-d stays an array
        kind = draw(st.sampled_from(["float32"] * 24 + ["float64", "int64", "int8", "uint64", "bool", "complex",
                                                        "str", "none", "list", "fortran", "strided", "readonly",
                                                        "nan", "scalar"] if not clean else
                                    ["float32"] * 6 + ["float64", "fortran", "strided", "readonly", "nan"]))
        if kind == "float32":
            return values.astype(np.float32)
        if kind in ("float64", "int64", "int8", "uint64", "bool"):
            return values.astype(kind if kind != "int8" else np.int8) if kind != "uint64" else \
                np.abs(values).astype(np.uint64)
        if kind == "complex":
            return values.astype(np.complex64)
        if kind == "str":
            return values.astype(str)
        if kind == "none":
            return None
        if kind == "list":
            return values.tolist()
        if kind == "fortran":
            return np.asfortranarray(values.astype(np.float32))
        if kind == "strided":
            return np.repeat(values.astype(np.float32), 2, axis=-1)[..., ::2] if values.ndim else values
        if kind == "readonly":
            frozen = values.astype(np.float32)
            frozen.flags.writeable = False
            return frozen
        if kind == "nan":
            poisoned = values.astype(np.float32)
            poisoned.flat[:: max(1, poisoned.size // 3)] = np.nan if poisoned.size else 0
            return poisoned
        return np.float32(values.ravel()[0] if values.size else 0.0)

    def pair(elements=any_int):
        return mostly(st.tuples(st.integers(1, 3), st.integers(1, 3)), st.tuples(elements, elements))

    def moderate(*values):
        """Every array float-like, finite and of moderate size: worth a comparison with the reference."""
        for value in values:
            if value is None:
                continue
            if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
                return False
            if value.size and (not np.all(np.isfinite(value)) or np.max(np.abs(value)) > 1e6):
                return False
        return True

    tier = st.sampled_from(tiers + ["active", "bogus"])

    def window_output(size, window, stride, dilation, padding):
        """TensorFlow's output size along one axis, or a small arbitrary size where the geometry is invalid."""
        effective = (window - 1) * dilation + 1
        if not (0 < window < 2**20 and 0 < stride < 2**20 and 0 < dilation < 2**20):
            return 1
        if padding == "same":
            return -(-size // stride)
        return max((size - effective) // stride + 1, 1)

    # --- op cases -----------------------------------------------------------------------------
    merge_kinds = ["add", "subtract", "multiply", "average", "maximum", "minimum"]

    def array_list(draw, arrays_):
        """The merge ops' `inputs`: mostly a list, sometimes a tuple, one array, None or a list with a scalar."""
        form = draw(st.sampled_from(["list"] * 16 + ["tuple", "tuple", "array", "none", "scalar-inside"]))
        if form == "tuple":
            return tuple(arrays_)
        if form == "array":
            return arrays_[0] if arrays_ else None
        if form == "none":
            return None
        if form == "scalar-inside":
            return arrays_ + [1.0]
        return arrays_

    def merge_case(draw, op, batch, output, kernels):
        """An elementwise merge of 0-6 inputs (mostly 1-4, Subtract mostly 2), each dimension of each
        input the output's or 1 (a gate, a column, a scalar per sample), sometimes another size."""
        kind = draw(mostly(st.sampled_from(merge_kinds), names))
        count = 2 if kind == "subtract" and draw(st.booleans()) else draw(mostly(st.integers(1, 4), st.integers(0, 6)))
        shapes = [tuple(draw(st.sampled_from([size, size, 1, 1] if draw(st.integers(0, 29)) else [size + 1, 0]))
                        for size in output) for _ in range(count)]
        wild = draw(mostly(st.just(-1), st.integers(0, max(count - 1, 0))))  # at most one input drawn wild
        inputs = [draw(arrays(shape=(batch,) + shape, clean=i != wild)) for i, shape in enumerate(shapes)]
        try:
            merged = np.broadcast_shapes(*shapes) if shapes else output
        except ValueError:
            merged = output
        needs = draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=count, max_size=count),
                               st.lists(st.booleans(), max_size=6)))
        positional = (kind, array_list(draw, inputs))
        if op == "merge_forward":
            return op, ops.merge_forward, positional, dict(kernels=kernels), moderate(*inputs)
        gradient = draw(arrays(shape=(batch,) + tuple(merged)))
        return op, ops.merge_backward, positional + (gradient,), dict(needs_gradient=needs, kernels=kernels), \
            moderate(*inputs, gradient)

    def concatenate_case(draw, op, batch, sample, kernels):
        """Concatenate of 0-6 pieces (mostly 1-4) of extent 0-5 along a sample axis (mostly 0-2)."""
        axis = draw(mostly(st.integers(0, 2), st.one_of(st.integers(-2, 4), any_int)))
        count = draw(mostly(st.integers(1, 4), st.integers(0, 6)))
        sizes = [draw(st.integers(0, 5)) for _ in range(count)]
        pieces = []
        for size in sizes:
            shape = list(sample)
            if 0 <= axis <= 2:
                shape[axis] = size
            pieces.append(tuple(shape))
        needs = draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=count, max_size=count),
                               st.lists(st.booleans(), max_size=6)))
        if op == "concatenate_forward":
            wild = draw(mostly(st.just(-1), st.integers(0, max(count - 1, 0))))
            inputs = [draw(arrays(shape=(batch,) + piece, clean=i != wild)) for i, piece in enumerate(pieces)]
            return op, ops.concatenate_forward, (array_list(draw, inputs), axis), dict(kernels=kernels), \
                moderate(*inputs)
        whole = list(sample)
        if 0 <= axis <= 2:
            whole[axis] = sum(sizes)
        gradient = draw(arrays(shape=(batch,) + tuple(whole)))
        wild_sizes = draw(mostly(st.just(sizes), st.lists(any_int, max_size=4)))
        return op, ops.concatenate_backward, (gradient, wild_sizes, axis), dict(needs_gradient=needs, kernels=kernels), \
            moderate(gradient)

    @st.composite
    def op_case(draw):
        op = draw(st.sampled_from(["conv2d_forward", "conv2d_backward_input", "conv2d_backward_kernel",
                                   "dense_forward", "dense_backward_input", "dense_backward_kernel",
                                   "max_pool2d_forward", "max_pool2d_backward", "activation_forward",
                                   "activation_backward", "dropout_forward", "dropout_backward",
                                   "batch_norm_statistics", "batch_norm_forward", "batch_norm_backward",
                                   "loss", "projective_transform", "projective_transform_backward",
                                   "resize", "resize_backward", "flip", "contrast", "contrast_backward",
                                   "brightness", "brightness_backward", "merge_forward", "merge_backward",
                                   "concatenate_forward", "concatenate_backward", "set_num_threads",
                                   "select_kernels", "average_pool2d_forward", "average_pool2d_backward",
                                   "relu_forward", "relu_backward", "optimizer_update"]))
        batch, height, width, channels, filters = (draw(st.integers(0, 3)), draw(st.integers(1, 7)),
                                                   draw(st.integers(1, 7)), draw(st.integers(1, 5)),
                                                   draw(st.integers(1, 5)))
        x = draw(arrays(shape=(batch, height, width, channels)))
        kernels = draw(tier)
        k = draw(st.integers(1, 3))
        kernel = draw(arrays(shape=(k, k, channels, filters)))
        geometry = dict(strides=draw(pair()), padding=draw(paddings),
                        dilation=draw(mostly(st.just((1, 1)), pair())), kernels=kernels)
        # The output size the geometry gives (csrc/ops/validate.cpp), so that gradients can match it.
        out_height = window_output(height, k, geometry["strides"][0], geometry["dilation"][0], geometry["padding"])
        out_width = window_output(width, k, geometry["strides"][1], geometry["dilation"][1], geometry["padding"])
        if op == "conv2d_forward":
            bias = draw(st.one_of(st.none(), arrays(shape=(filters,))))
            return op, ops.conv2d_forward, (x, kernel, bias), dict(geometry, activation=draw(activations)), \
                moderate(x, kernel, bias)
        if op == "conv2d_backward_input":
            gradient = draw(arrays(shape=(batch, out_height, out_width, filters)))
            shape = draw(st.one_of(st.just((batch, height, width, channels)), st.tuples(any_int, any_int, any_int,
                                                                                        any_int)))
            return op, ops.conv2d_backward_input, (gradient, kernel, shape), geometry, moderate(gradient, kernel)
        if op == "conv2d_backward_kernel":
            gradient = draw(arrays(shape=(batch, out_height, out_width, filters)))
            size = draw(st.one_of(st.just((k, k)), pair()))
            return op, ops.conv2d_backward_kernel, (x, gradient, size), dict(geometry, use_bias=draw(st.booleans())), \
                moderate(x, gradient)
        units = draw(st.integers(1, 9))
        dense_x = draw(arrays(shape=(batch, channels)))
        dense_kernel = draw(arrays(shape=(channels, units)))
        if op == "dense_forward":
            bias = draw(st.one_of(st.none(), arrays(shape=(units,))))
            return op, ops.dense_forward, (dense_x, dense_kernel, bias), dict(activation=draw(activations), kernels=kernels), \
                moderate(dense_x, dense_kernel, bias)
        if op == "dense_backward_input":
            gradient = draw(arrays(shape=(batch, units)))
            return op, ops.dense_backward_input, (gradient, dense_kernel), dict(kernels=kernels), \
                moderate(gradient, dense_kernel)
        if op == "dense_backward_kernel":
            gradient = draw(arrays(shape=(batch, units)))
            return op, ops.dense_backward_kernel, (dense_x, gradient), dict(use_bias=draw(st.booleans()),
                                                                            kernels=kernels), \
                moderate(dense_x, gradient)
        pool = dict(pool_size=(k, k), strides=geometry["strides"], padding=geometry["padding"], kernels=kernels)
        if draw(st.integers(0, 4)) == 0:
            pool["pool_size"] = draw(pair())
        if op == "max_pool2d_forward":
            return op, ops.max_pool2d_forward, (x,), pool, moderate(x)
        if op == "max_pool2d_backward":
            pool_height = window_output(height, pool["pool_size"][0], pool["strides"][0], 1, pool["padding"])
            pool_width = window_output(width, pool["pool_size"][1], pool["strides"][1], 1, pool["padding"])
            gradient = draw(arrays(shape=(batch, pool_height, pool_width, channels)))
            return op, ops.max_pool2d_backward, (x, gradient), dict(pool, relu_input=draw(st.booleans())), \
                moderate(x, gradient)
        if op == "average_pool2d_forward":
            return op, ops.average_pool2d_forward, (x,), pool, moderate(x)
        if op == "average_pool2d_backward":
            pool_height = window_output(height, pool["pool_size"][0], pool["strides"][0], 1, pool["padding"])
            pool_width = window_output(width, pool["pool_size"][1], pool["strides"][1], 1, pool["padding"])
            gradient = draw(arrays(shape=(batch, pool_height, pool_width, channels)))
            return op, ops.average_pool2d_backward, (x, gradient), pool, moderate(x, gradient)
        if op in ("merge_forward", "merge_backward"):
            return merge_case(draw, op, batch, (height, width, channels), kernels)
        if op in ("concatenate_forward", "concatenate_backward"):
            return concatenate_case(draw, op, batch, [height, width, channels], kernels)
        any_x = draw(arrays())
        if op in ("relu_forward", "relu_backward"):
            # Parametric settings are drawn wild (no comparison then: rounding differs by FMA contraction).
            settings = draw(st.one_of(st.just({}), st.fixed_dictionaries(
                {"max_value": any_float, "negative_slope": any_float, "threshold": any_float})))
            arguments = (any_x,) if op == "relu_forward" else (
                any_x, draw(arrays(shape=np.shape(any_x) if isinstance(any_x, np.ndarray) else None)))
            return op, getattr(ops, op), arguments, dict(settings, kernels=kernels), not settings and moderate(*arguments)
        if op == "optimizer_update":
            size = draw(st.integers(0, 40))
            slots = [draw(st.one_of(st.none(), arrays(shape=(size,)), arrays())) for _ in range(3)]
            options = draw(st.dictionaries(st.sampled_from(
                ["learning_rate", "gradient_scale", "clipvalue", "decay", "momentum", "nesterov", "rho", "centered",
                 "epsilon", "beta_1", "beta_2", "amsgrad", "alpha", "u_t", "u_next", "one_minus_u_product",
                 "one_minus_u_product_next", "one_minus_beta_2_power", "no_such_option"]),
                st.one_of(any_float, st.booleans(), st.text(max_size=3), st.none()), max_size=6))
            kind = draw(st.sampled_from(["sgd", "adam", "rmsprop", "adagrad", "nadam", "lamb"]))
            return op, ops.optimizer_update, (kind, draw(arrays(shape=(size,))), draw(arrays(shape=(size,))), *slots,
                                              options), dict(kernels=kernels), False
        if op == "activation_forward":
            return op, ops.activation_forward, (draw(activations), any_x), dict(kernels=kernels), moderate(any_x)
        if op == "activation_backward":
            gradient = draw(arrays(shape=np.shape(any_x) if isinstance(any_x, np.ndarray) else None))
            pre = draw(st.one_of(st.none(), arrays(shape=np.shape(any_x) if isinstance(any_x, np.ndarray) else None)))
            return op, ops.activation_backward, (draw(activations), any_x, gradient), dict(kernels=kernels, input=pre), \
                moderate(any_x, gradient, pre)
        if op in ("dropout_forward", "dropout_backward"):
            rate = draw(any_float)
            seed = draw(st.integers(-1, 2**64 - 1))
            return op, getattr(ops, op), (any_x, rate, seed), dict(kernels=kernels), moderate(any_x)
        vector = (channels,)
        mean, variance = draw(arrays(shape=vector)), draw(arrays(shape=vector))
        gamma = draw(st.one_of(st.none(), arrays(shape=vector)))
        if op == "batch_norm_statistics":
            return op, ops.batch_norm_statistics, (x,), dict(kernels=kernels), moderate(x)
        if op == "batch_norm_forward":
            beta = draw(st.one_of(st.none(), arrays(shape=vector)))
            return op, ops.batch_norm_forward, (x, mean, variance, gamma, beta), \
                dict(epsilon=draw(mostly(st.floats(1e-5, 0.1), any_float)), kernels=kernels), False
        if op == "batch_norm_backward":
            gradient = draw(arrays(shape=(batch, height, width, channels)))
            return op, ops.batch_norm_backward, (x, mean, variance, gamma, gradient), \
                dict(epsilon=draw(mostly(st.floats(1e-5, 0.1), any_float)), kernels=kernels, relu_input=draw(st.booleans())), False
        if op == "loss":
            predictions = draw(arrays(shape=(batch, filters)))
            targets = draw(st.one_of(arrays(shape=(batch,)), arrays(shape=(batch, filters)),
                                     st.lists(st.integers(-2, 7), min_size=batch, max_size=batch).map(np.array)))
            kind = draw(st.sampled_from(["categorical_crossentropy", "binary_crossentropy", "mean_squared_error",
                                         "mean_absolute_error", "huber", "kl_divergence", "categorical_hinge",
                                         "no_such_loss"]))
            return op, ops.loss, (predictions, targets), dict(from_logits=draw(st.booleans()), kind=kind,
                                                               huber_delta=draw(mostly(st.floats(0.1, 3.0), any_float))), False
        transforms = draw(st.one_of(arrays(shape=(8,)), arrays(shape=(batch, 8)), arrays()))
        image_names = dict(interpolation=draw(interpolations), fill_mode=draw(fill_modes))
        if op == "projective_transform":
            return op, ops.projective_transform, (x, transforms), dict(image_names, fill_value=draw(any_float)), False
        if op == "projective_transform_backward":
            return op, ops.projective_transform_backward, (x, transforms), image_names, False
        window = draw(st.one_of(st.none(), pair(st.integers(-2, 2**41)), st.tuples(st.integers(1, 9), st.integers(1, 9))))
        origins = draw(st.one_of(st.none(), arrays(shape=(batch, 2)),
                                 st.lists(st.integers(-(2**45), 2**45), min_size=2 * batch, max_size=2 * batch).map(
                                     lambda values: np.array(values, np.int64).reshape(-1, 2))))
        size = draw(st.one_of(pair(st.integers(-2, 40)), pair()))
        if op == "resize":
            return op, ops.resize, (x, size), dict(interpolation=draw(interpolations), window_size=window,
                                                   window_origins=origins, fill_value=draw(any_float)), False
        if op == "resize_backward":
            return op, ops.resize_backward, (x, size), dict(interpolation=draw(interpolations), window_size=window,
                                                            window_origins=origins), False
        if op == "flip":
            flags = draw(mostly(st.lists(st.integers(0, 3), min_size=batch, max_size=batch).map(np.array),
                                st.one_of(arrays(shape=(batch,)), st.lists(st.integers(-2, 300), min_size=batch,
                                                                           max_size=batch).map(np.array))))
            return op, ops.flip, (x, flags), {}, False
        values = draw(st.one_of(arrays(shape=(batch,)), any_float, arrays()))
        value_range = draw(st.tuples(any_float, any_float))
        if op in ("contrast", "brightness"):
            return op, getattr(ops, op), (x, values, value_range), {}, False
        if op in ("contrast_backward", "brightness_backward"):
            gradient = draw(arrays(shape=(batch, height, width, channels)))
            return op, getattr(ops, op), (x, values, gradient, value_range), {}, False
        if op == "set_num_threads":
            return op, _core.set_num_threads, (draw(st.one_of(st.integers(-3, 4), any_int)),), {}, False
        return op, _core.select_kernels, (draw(names),), {}, False

    threads = _core.get_num_threads()
    kernel_set = _core.kernel_set()

    def run_op_cases():
        from hypothesis import given

        # derandomize=False: Hypothesis's CI profile (the CI variable set) would replay the same
        # examples every round, so a fuzz run would test one fixed handful of cases; each defect is
        # reported with its input, so a random run loses nothing.
        @settings(max_examples=200, deadline=None, database=None, phases=[Phase.generate], derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(case=op_case())
        def op_batch(case):
            name, function, positional, keywords, comparable = case
            tolerance = 1e-4 if comparable and keywords.get("kernels") in tiers else None
            call(name, function, positional, keywords, compare=tolerance)
            # set_num_threads / select_kernels change process state: put it back for the next case
            _core.set_num_threads(threads)
            _core.select_kernels(kernel_set)

        op_batch()

    # --- Network sequences --------------------------------------------------------------------
    class NetworkMachine(RuleBasedStateMachine):
        @initialize(template=st.sampled_from(["empty", "mlp", "cnn", "cnn-bn-dropout", "augment", "graph",
                                              "open-graph", "random-graph", "random-graph", "random-graph"]),
                    side=st.integers(4, 8), channels=st.integers(1, 3), classes=st.integers(1, 4),
                    optimizer=st.sampled_from(["sgd", "adam", "rmsprop", "adagrad", "nadam", None]), data=st.data())
        def create(self, template, side, channels, classes, optimizer, data):
            """An empty network (every layer then comes from the rules) or a valid one, built and
            configured, so that the step rules run on real models too."""
            self.network = _core.Network()
            self.shape = None  # the input shape of a network built with build(shape)
            self.inputs = []   # the declared inputs' shapes
            self.layers = []   # per node: the builder's name and arguments (to add a node sharing its weights)
            if template == "empty":
                return
            if template == "open-graph":  # declared inputs and a first node, left for the rules to grow
                self.make("add_input", (side, side, channels))
                self.make("add_input", (side, side, channels))
                self.make("add_conv2d", 2, (3, 3), (1, 1), (1, 1), "same", True, "relu")
                return
            if template == "graph":
                self.graph(side, channels, classes)
            elif template == "random-graph":
                self.random_graph(data, side, classes)
            else:
                if template in ("cnn", "cnn-bn-dropout", "augment"):
                    if template == "augment":
                        self.make("add_random_flip", True, False, 7)
                        self.make("add_random_rotation", -0.1, 0.1, "reflect", "bilinear", 0.0)
                    self.make("add_conv2d", 2, (3, 3), (1, 1), (1, 1), "same", True, "relu")
                    if template == "cnn-bn-dropout":
                        self.make("add_batch_norm", 0.99, 1e-3, True, True)
                        self.make("add_dropout", 0.3)
                    self.make("add_pool2d", "max", False, (2, 2), (2, 2))
                self.make("add_flatten")
                self.make("add_dense", classes, True, "softmax")
                self.network.build((side, side, channels))
                self.shape = (side, side, channels)
            if optimizer is not None:
                self.network.configure_optimizer(optimizer)
            if template == "random-graph":
                self.valid_steps(data, optimizer is not None)

        def valid_steps(self, data, trainable):
            """Well-formed steps on a new graph, so that every drawn graph trains at least once
            (the step rule's arguments are often wild): its backward plan, shared weights and
            fusions run at once."""
            samples = data.draw(st.integers(1, 5))
            xs = [np.random.default_rng(samples).standard_normal((samples,) + shape).astype(np.float32)
                  for shape in self.inputs]
            x = xs if len(xs) > 1 else xs[0]
            classes = [int(np.prod(shape)) for shape in self.network.output_shapes]
            labels = [np.arange(samples, dtype=np.int32) % count for count in classes]
            labels = labels if len(labels) > 1 else labels[0]
            indices = np.array(data.draw(st.lists(st.integers(0, samples - 1), min_size=1, max_size=6)), np.int64)
            self.run("predict", x)
            self.run("forward_training", x, 3)
            self.run("test_step", x, labels, None, indices)
            if trainable:
                self.run("train_step", x, labels, None, indices, 0.01, 5)
                self.run("compute_gradients", x, labels, None, indices, len(indices), 0, 6)
                self.run("apply_gradients", 0.01)

        def make(self, name, *positional):
            """A node of a template (valid by construction), recorded like the rules' nodes."""
            node = getattr(self.network, name)(*positional)
            if name == "add_input":
                self.inputs.append(positional[0])
            else:
                self.layers.append((name, positional, {}))
            return node

        def graph(self, side, channels, classes):
            """Two inputs through one convolution (shared weights), added, gated by a global average
            (a (1, 1, C) broadcast), concatenated with the second branch, pooled; two softmax outputs."""
            first = self.make("add_input", (side, side, channels))
            second = self.make("add_input", (side, side, channels))
            left = self.make("add_conv2d", 2, (3, 3), (1, 1), (1, 1), "same", True, "relu")
            self.network.connect(left, [first], -1)
            right = self.make("add_conv2d", 2, (3, 3), (1, 1), (1, 1), "same", True, "relu")
            self.network.connect(right, [second], left)
            added = self.make("add_merge", "add")
            self.network.connect(added, [left, right], -1)
            gate = self.make("add_pool2d", "average", True, (1, 1), (1, 1))
            self.network.connect(gate, [right], -1)
            gated = self.make("add_merge", "multiply")
            self.network.connect(gated, [added, gate], -1)
            joined = self.make("add_concatenate", 2)
            self.network.connect(joined, [gated, right], -1)
            self.make("add_pool2d", "max", False, (2, 2), (2, 2))
            flat = self.make("add_flatten")
            scores = self.make("add_dense", classes, True, "softmax")
            extra = self.make("add_dense", 2, True, "softmax")
            self.network.connect(extra, [flat], -1)
            self.network.set_outputs([scores, extra])
            self.network.build()

        def random_graph(self, data, side, classes):
            """A valid graph drawn at random: 1-3 inputs, then 2-12 nodes, each a convolution (at times
            sharing an earlier one's weights), a merge of tensors of one shape or with a (1, 1, C) gate
            or a (1, 1, 1) scalar (the same tensor twice at times), a global average (a gate), a
            Concatenate, a 2x2 max pooling (the convolution fusion), a BatchNormalization or a ReLU;
            1-2 softmax heads on any tensors. Tensors left unread and tensors read several times come
            naturally."""
            tensors = []  # (tensor id, (height, width, channels))
            for _ in range(data.draw(st.integers(1, 3))):
                shape = (side, side, data.draw(st.integers(1, 3)))
                tensors.append((self.make("add_input", shape), shape))
            convolutions = []  # (node, filters, kernel, activation, input channels)
            denses = []        # (node, units, activation, input units)

            def pick(condition=lambda shape: True):
                candidates = [entry for entry in tensors if condition(entry[1])]
                return data.draw(st.sampled_from(candidates)) if candidates else None

            for _ in range(data.draw(st.integers(2, 12))):
                step = data.draw(st.sampled_from(["conv", "conv", "merge", "merge", "gate", "concatenate", "pool",
                                                  "batch_norm", "relu", "flatten", "dense"]))
                source, shape = pick(lambda sample: min(sample[:2]) > 1) if step in ("conv", "pool") else pick()
                if source is None:
                    continue
                if step == "conv":
                    same = [entry for entry in convolutions if entry[4] == shape[2]]
                    owner = data.draw(st.sampled_from(same)) if same and data.draw(st.booleans()) else None
                    filters, kernel, activation = owner[1:4] if owner else (
                        data.draw(st.integers(1, 4)), data.draw(st.sampled_from([1, 3])),
                        data.draw(st.sampled_from(["relu", "linear", "tanh"])))
                    node = self.make("add_conv2d", filters, (kernel, kernel), (1, 1), (1, 1), "same", True, activation)
                    self.network.connect(node, [source], owner[0] if owner else -1)
                    convolutions.append((node, filters, kernel, activation, shape[2]))
                    tensors.append((node, shape[:2] + (filters,)))
                elif step == "merge":
                    kind = data.draw(st.sampled_from(merge_kinds))
                    partners = [entry for entry in tensors if entry[1] in (shape, (1, 1, shape[2]), (1, 1, 1))]
                    inputs = [source] + [data.draw(st.sampled_from(partners))[0]
                                         for _ in range(1 if kind == "subtract" else data.draw(st.integers(1, 3)))]
                    node = self.make("add_merge", kind)
                    self.network.connect(node, data.draw(st.permutations(inputs)), -1)
                    merged = tuple(max(dimension) for dimension in zip(*[dict(tensors)[i] for i in inputs]))
                    tensors.append((node, merged))
                elif step == "gate":
                    node = self.make("add_pool2d", "average", True, (1, 1), (1, 1))
                    self.network.connect(node, [source], -1)
                    tensors.append((node, (1, 1, shape[2])))
                elif step == "concatenate":
                    axis = data.draw(st.integers(0, 2))
                    partners = [entry for entry in tensors
                                if all(entry[1][a] == shape[a] for a in range(3) if a != axis)]
                    inputs = [source] + [data.draw(st.sampled_from(partners))[0] for _ in range(data.draw(st.integers(1, 2)))]
                    node = self.make("add_concatenate", axis)
                    self.network.connect(node, inputs, -1)
                    joined = list(shape)
                    joined[axis] = sum(dict(tensors)[i][axis] for i in inputs)
                    tensors.append((node, tuple(joined)))
                elif step == "pool":
                    node = self.make("add_pool2d", "max", False, (2, 2), (2, 2))
                    self.network.connect(node, [source], -1)
                    tensors.append((node, (shape[0] // 2, shape[1] // 2, shape[2])))
                elif step == "flatten":  # a reshape: its gradient slot is its input's
                    node = self.make("add_flatten")
                    self.network.connect(node, [source], -1)
                    tensors.append((node, (1, 1, int(np.prod(shape)))))
                elif step == "dense":
                    size = int(np.prod(shape))
                    same = [entry for entry in denses if entry[3] == size]
                    owner = data.draw(st.sampled_from(same)) if same and data.draw(st.booleans()) else None
                    units, activation = owner[1:3] if owner else (data.draw(st.integers(1, 6)),
                                                                  data.draw(st.sampled_from(["relu", "linear"])))
                    if shape[:2] != (1, 1):
                        flat = self.make("add_flatten")
                        self.network.connect(flat, [source], -1)
                        source = flat
                    node = self.make("add_dense", units, True, activation)
                    self.network.connect(node, [source], owner[0] if owner else -1)
                    denses.append((node, units, activation, size))
                    tensors.append((node, (1, 1, units)))
                elif step == "batch_norm":
                    node = self.make("add_batch_norm", 0.9, 1e-3, True, True)
                    self.network.connect(node, [source], -1)
                    tensors.append((node, shape))
                else:
                    node = self.make("add_relu", "ReLU", None, 0.0, 0.0)
                    self.network.connect(node, [source], -1)
                    tensors.append((node, shape))
            heads = []
            for _ in range(data.draw(st.integers(1, 2))):
                candidates = [entry[0] for entry in tensors if entry[0] >= 0 and entry[0] not in heads]
                if not candidates:
                    continue
                source = data.draw(st.sampled_from(candidates))
                if data.draw(st.integers(0, 4)) == 0:  # any node as an output, a reshape at times
                    heads.append(source)
                    continue
                flat = self.make("add_flatten")
                self.network.connect(flat, [source], -1)
                head = self.make("add_dense", classes, True, "softmax")
                self.network.connect(head, [flat], -1)
                heads.append(head)
            if not heads:
                flat = self.make("add_flatten")
                self.network.connect(flat, [tensors[-1][0]], -1)
                heads.append(flat)
            self.network.set_outputs(heads)
            if data.draw(st.booleans()):  # freeze some layers
                self.network.set_trainable_flags([data.draw(st.integers(0, 3)) > 0 for _ in self.layers])
            self.network.build()

        def run(self, name, *positional, **keywords):
            result = call(f"Network.{name}", getattr(self.network, name), positional, keywords)
            if isinstance(result, int) and name == "add_input":
                self.inputs.append(positional[0])
            elif isinstance(result, int) and name.startswith("add_"):
                self.layers.append((name, positional, keywords))
            return result

        def tensor(self, data, node=None):
            """A tensor id for a node (`node`, default: the next one) to read: mostly an earlier node's
            output or a declared input, sometimes any id."""
            node = len(self.layers) if node is None else node
            valid = st.integers(-len(self.inputs), node - 1) if node + len(self.inputs) > 0 else st.just(-1)
            return data.draw(mostly(valid, st.one_of(st.integers(-4, node + 2), any_int)))

        @rule(height=mostly(st.integers(1, 6), any_int), width=mostly(st.integers(1, 6), st.integers(-1, 0)),
              channels=mostly(st.integers(1, 4), st.just(0)))
        def add_input(self, height, width, channels):
            self.run("add_input", (height, width, channels))

        @rule(kind=mostly(st.sampled_from(merge_kinds), names), count=mostly(st.just(2), st.integers(0, 5)),
              data=st.data())
        def add_merge(self, kind, count, data):
            """A merge node reading `count` earlier tensors (the same one twice at times)."""
            inputs = [self.tensor(data) for _ in range(count)]
            node = self.run("add_merge", kind)
            if node is not None:
                self.run("connect", node, inputs)

        @rule(axis=mostly(st.integers(0, 2), any_int), count=mostly(st.integers(2, 3), st.integers(0, 5)),
              data=st.data())
        def add_concatenate(self, axis, count, data):
            inputs = [self.tensor(data) for _ in range(count)]
            node = self.run("add_concatenate", axis)
            if node is not None:
                self.run("connect", node, inputs)

        @rule(data=st.data())
        def add_shared(self, data):
            """A second call of an earlier layer: a node like it, reading any earlier tensor, sharing its
            weights (sometimes a node of another kind, or an id that is no node)."""
            owner = data.draw(mostly(st.integers(0, max(len(self.layers) - 1, 0)), any_int))
            name, positional, keywords = self.layers[owner] if 0 <= owner < len(self.layers) else \
                ("add_dense", (3, True, "linear"), {})
            if data.draw(st.integers(0, 4)) == 0:
                name, positional, keywords = ("add_dense", (2, False, "relu"), {})
            node = self.run(name, *positional, **keywords)
            if node is not None:
                self.run("connect", node, [self.tensor(data, node)], owner)

        @rule(data=st.data(), count=st.integers(0, 3))
        def rewire(self, data, count):
            """connect with any node, inputs and shares_with."""
            node = data.draw(mostly(st.integers(0, max(len(self.layers) - 1, 0)), any_int))
            inputs = [self.tensor(data, node if 0 <= node < len(self.layers) else None) for _ in range(count)]
            self.run("connect", node, inputs, data.draw(mostly(st.just(-1), any_int)))

        @rule(data=st.data(), count=mostly(st.integers(1, 2), st.integers(0, 4)))
        def set_outputs(self, data, count):
            nodes = st.integers(0, max(len(self.layers) - 1, 0))
            self.run("set_outputs", [data.draw(mostly(nodes, st.integers(-3, 2**40))) for _ in range(count)])

        @rule(index=mostly(st.integers(0, 2), any_int), from_logits=st.booleans(),
              weight=mostly(st.floats(0.0, 2.0), any_float))
        def configure_output_loss(self, index, from_logits, weight):
            self.run("configure_output_loss", index, from_logits, weight)

        @rule(data=st.data())
        def set_trainable_flags(self, data):
            length = data.draw(mostly(st.just(len(self.layers)), st.integers(0, 8)))
            self.run("set_trainable_flags", data.draw(st.lists(st.booleans(), min_size=length, max_size=length)))

        @rule(filters=mostly(st.integers(1, 4), any_int), kernel=pair(), strides=pair(), dilation=pair(),
              padding=paddings, use_bias=st.booleans(), activation=activations)
        def add_conv2d(self, filters, kernel, strides, dilation, padding, use_bias, activation):
            self.run("add_conv2d", filters, kernel, strides, dilation, padding, use_bias, activation)

        @rule(units=mostly(st.integers(1, 6), any_int), use_bias=st.booleans(),
              activation=mostly(st.sampled_from(["linear", "relu", "softmax", "sigmoid"]), names))
        def add_dense(self, units, use_bias, activation):
            self.run("add_dense", units, use_bias, activation)

        @rule(kind=mostly(st.sampled_from(["max", "average"]), st.just("min")), global_pooling=st.booleans(),
              pool=pair(), strides=pair(), padding=paddings)
        def add_pool2d(self, kind, global_pooling, pool, strides, padding):
            self.run("add_pool2d", kind, global_pooling, pool, strides, padding)

        @rule(which=st.sampled_from(["flatten", "reshape", "zero_padding2d", "relu", "rescaling", "batch_norm",
                                     "dropout", "activation", "random_flip", "random_rotation",
                                     "random_translation", "random_zoom", "random_contrast", "random_brightness",
                                     "resizing", "center_crop", "random_crop"]),
              a=any_int, b=any_int, c=any_int, f=mostly(st.floats(0.0, 0.5), any_float),
              g=mostly(st.floats(0.5, 1.0), any_float), name=fill_modes, interpolation=interpolations,
              flag=mostly(st.just(False), st.just(True)),
              small_int=st.integers(0, 6))
        def add_other(self, which, a, b, c, f, g, name, interpolation, flag, small_int):
            if which == "flatten":
                self.run("add_flatten")
            elif which == "reshape":
                self.run("add_reshape", (a if flag else small_int, b if flag else 1, c if flag else 1))
            elif which == "zero_padding2d":
                self.run("add_zero_padding2d", small_int, a if flag else 1, 0, small_int)
            elif which == "relu":
                self.run("add_relu", "ReLU", f if flag else None, g, 0.0)
            elif which == "rescaling":
                self.run("add_rescaling", f, g)
            elif which == "batch_norm":
                self.run("add_batch_norm", f, g, flag, not flag)
            elif which == "dropout":
                self.run("add_dropout", f, a)
            elif which == "activation":
                self.run("add_activation", name)
            elif which == "random_flip":
                self.run("add_random_flip", flag, small_int % 2 == 0, a)
            elif which == "random_rotation":
                self.run("add_random_rotation", -abs(f), abs(g), name, interpolation, f, a)
            elif which == "random_translation":
                self.run("add_random_translation", (-f, g), (-0.2, 0.2), name, interpolation, 0.0, a)
            elif which == "random_zoom":
                self.run("add_random_zoom", (-f, g), None if not flag else (g, f), name, interpolation, 0.0, a)
            elif which == "random_contrast":
                self.run("add_random_contrast", (f, g), (0.0, 1.0), a)
            elif which == "random_brightness":
                self.run("add_random_brightness", (f, g), 1.0, (0.0, 255.0), a)
            elif which == "resizing":
                self.run("add_resizing", a if flag else small_int + 1, small_int + 1, "bilinear",
                         ["stretch", "crop", "pad", name][small_int % 4], f)
            elif which == "center_crop":
                self.run("add_center_crop", a if flag else small_int + 1, small_int + 1)
            else:
                self.run("add_random_crop", small_int + 1, a if flag else small_int + 1, b)

        @rule(height=mostly(st.integers(1, 8), any_int), width=mostly(st.integers(1, 8), st.integers(-1, 0)),
              channels=mostly(st.integers(1, 4), st.just(0)), other_form=mostly(st.just(False), st.just(True)))
        def build(self, height, width, channels, other_form):
            """build() for a network with declared inputs, build(input_shape) for a chain (at times the other)."""
            if bool(self.inputs) != other_form:
                self.run("build")
                return
            self.run("build", (height, width, channels))
            if self.shape is None and not self.inputs:
                try:  # parameter_views answers only once the network is built
                    self.network.parameter_views()
                    self.shape = (height, width, channels)
                except ALLOWED:
                    pass

        @rule(kind=mostly(st.sampled_from(["sgd", "adam", "rmsprop", "adagrad", "nadam"]), st.just("adamw")),
              momentum=mostly(st.floats(0.0, 1.0), any_float), flag=st.booleans(),
              clip=mostly(st.floats(0.0, 2.0), any_float))
        def configure_optimizer(self, kind, momentum, flag, clip):
            self.run("configure_optimizer", kind, momentum=momentum if flag else 0.0, amsgrad=flag, centered=flag,
                     clipnorm=clip if not flag else 0.0)

        @rule(index=mostly(st.integers(0, 4), any_int), flag=st.booleans(), factor=mostly(st.floats(0.0, 0.1), any_float))
        def set_layer_state(self, index, flag, factor):
            self.run("set_trainable", index, flag)
            self.run("set_regularization", index, kernel_l2=factor if flag else 0.0, activity_l1=0.0 if flag else factor)

        @rule(samples=st.integers(0, 5), batch=st.integers(0, 6), seed=st.integers(0, 2**64 - 1), data=st.data(),
              which=st.sampled_from(["train_step", "test_step", "predict", "forward_training",
                                     "forward_training_layer_outputs", "compute_gradients"]))
        def step(self, samples, batch, seed, data, which):
            shapes = self.inputs or [self.shape if self.shape is not None else (2, 2, 1)]
            xs = [data.draw(arrays(shape=(samples,) + tuple(max(1, s) if abs(s) < 16 else 2 for s in shape)))
                  for shape in shapes]
            # One array per input (a list for several), at times the wrong form or number.
            x = data.draw(mostly(st.just(xs if len(xs) > 1 else xs[0]),
                                 st.sampled_from([xs[0], xs[:1], tuple(xs), xs + xs[:1]])))
            if which == "predict":
                self.run("predict", x)
                return
            if which in ("forward_training", "forward_training_layer_outputs"):
                self.run(which, x, seed)
                return
            valid_indices = st.lists(st.integers(0, max(samples - 1, 0)), min_size=batch if samples else 0,
                                     max_size=batch if samples else 0).map(lambda v: np.array(v, np.int64))
            indices = data.draw(mostly(valid_indices, st.one_of(
                st.lists(any_int, min_size=batch, max_size=batch).map(lambda v: np.array(v, dtype=np.int64)),
                arrays(shape=(batch,)))))
            try:
                classes = [int(np.prod(shape)) for shape in self.network.output_shapes]
            except ALLOWED:
                classes = [3]

            def targets(count):
                """One output's labels and probabilities (mostly exactly one of the two)."""
                use_labels = data.draw(st.booleans())
                labels = data.draw(mostly(
                    st.lists(st.integers(0, max(count - 1, 0)), min_size=samples, max_size=samples).map(
                        lambda v: np.array(v, np.int32)),
                    st.one_of(st.none(), st.lists(st.integers(-1, 9), min_size=samples, max_size=samples).map(np.array),
                              arrays(shape=(samples,))))) if use_labels else None
                probabilities = None if use_labels and data.draw(mostly(st.just(True), st.just(False))) else \
                    data.draw(mostly(arrays(shape=(samples, count)), st.none()))
                return labels, probabilities

            per_output = [targets(count) for count in classes]
            if len(per_output) == 1:
                labels, probabilities = per_output[0]
            else:  # a list per output, at times a bare array or a list of the wrong length
                labels, probabilities = [entry[0] for entry in per_output], [entry[1] for entry in per_output]
                if data.draw(st.integers(0, 5)) == 0:
                    labels = data.draw(st.sampled_from([labels[0], labels[:1], labels + labels[:1]]))
            weights = data.draw(st.one_of(st.none(), st.none(), arrays(shape=(samples,))))
            if which == "train_step":
                learning_rate = data.draw(mostly(st.floats(0.0, 0.1), any_float))
                self.run("train_step", x, labels, probabilities, indices, learning_rate, seed, weights)
            elif which == "compute_gradients":  # the data-parallel step: gradients, then the update
                loss_batch = data.draw(mostly(st.just(batch), any_int))
                first = data.draw(mostly(st.just(0), any_int))
                self.run("compute_gradients", x, labels, probabilities, indices, loss_batch, first, seed, weights)
                self.run("apply_gradients", data.draw(mostly(st.floats(0.0, 0.1), any_float)))
            else:
                self.run("test_step", x, labels, probabilities, indices, weights)

        @rule(slot=st.sampled_from(["first_moment", "second_moment", "third_slot", "velocity"]))
        def views(self, slot):
            self.run("parameter_views")
            self.run("optimizer_slot_views", slot)
            self.run("layer_parameter_ranges")
            self.run("parameter_owner", len(self.layers) - 1)

        @rule(value=any_int, product=any_float)
        def optimizer_counters(self, value, product):
            self.run("__setattr__", "optimizer_iterations", value)
            self.run("__setattr__", "optimizer_nadam_u_product", product)

        @invariant()
        def still_responds(self):
            if time.monotonic() > deadline:
                raise TimeUp()
            # Any state reached must still answer these without crashing.
            _ = self.network.parameter_count

    # Generation only: defects are recorded by `call` rather than raised, so there is nothing to
    # shrink, and TimeUp must end the run at once.
    machine_settings = settings(max_examples=20, stateful_step_count=25, deadline=None, database=None,
                                phases=[Phase.generate], derandomize=False, suppress_health_check=list(HealthCheck))

    round_number = 0
    try:
        while time.monotonic() < deadline:
            round_number += 1
            try:
                if round_number % 2:
                    run_op_cases()
                else:
                    run_state_machine_as_test(NetworkMachine, settings=machine_settings)
            except TimeUp:
                break
            except Exception:  # noqa: BLE001 - an error of the harness itself: report it, go on
                # At the deadline hypothesis replays the example that raised TimeUp, which stops
                # earlier than before and is reported as flaky data generation: not a defect.
                if time.monotonic() > deadline:
                    break
                recorder.defect("harness error", "", traceback.format_exc())
    finally:
        recorder.finish()


# ---------------------------------------------------------------------------------------------
# parent: runs children until the time is up, restarting after a crash or a hang
# ---------------------------------------------------------------------------------------------


def run_parent(arguments):
    total_seconds = arguments.minutes * 60.0 if arguments.seconds is None else arguments.seconds
    deadline = time.monotonic() + total_seconds
    started = time.monotonic()
    cases, defects, children, outcomes = 0, [], 0, {}
    with tempfile.TemporaryDirectory(prefix="fastcnn-fuzz-") as folder:
        while time.monotonic() < deadline - 1.0:
            children += 1
            record = os.path.join(folder, f"child-{children}.json")
            remaining = max(1.0, deadline - time.monotonic())
            command = [sys.executable, os.path.abspath(__file__), "--child", "--seconds", f"{remaining:.1f}",
                       "--record", record, "--memory-gb", str(arguments.memory_gb)] + (["--verbose"] * arguments.verbose)
            if children == 1 and arguments.inject_crash_after:
                command += ["--inject-crash-after", str(arguments.inject_crash_after)]
            # stderr goes to a file: a pipe nobody reads until the end would fill up and block the child.
            error_path = os.path.join(folder, f"child-{children}.stderr")
            error_file = open(error_path, "w")
            child = subprocess.Popen(command, stdout=None if arguments.verbose else subprocess.DEVNULL,
                                     stderr=error_file, text=True)
            last_change, last_size = time.monotonic(), None
            hung = False
            while child.poll() is None:
                time.sleep(0.2)
                try:
                    stamp = os.stat(record).st_mtime_ns
                except FileNotFoundError:
                    stamp = None
                if stamp != last_size:
                    last_size, last_change = stamp, time.monotonic()
                elif time.monotonic() - last_change > arguments.hang_seconds:
                    hung = True
                    child.send_signal(signal.SIGUSR1)  # its stacks to stderr (faulthandler), then kill it
                    time.sleep(1.0)
                    child.send_signal(signal.SIGKILL)
                    child.wait()
            error_file.close()
            with open(error_path, errors="replace") as handle:
                stderr = handle.read()
            state = {"cases": 0, "case": None, "defects": []}
            if os.path.exists(record):
                with open(record) as handle:
                    try:
                        state = json.load(handle)
                    except json.JSONDecodeError:
                        pass
            cases += state.get("cases", 0)
            for name, (returned, refused) in state.get("outcomes", {}).items():
                totals = outcomes.setdefault(name, [0, 0])
                totals[0] += returned
                totals[1] += refused
            defects.extend(state.get("defects", []))
            if hung:
                defects.append({"kind": f"hang (no progress for {arguments.hang_seconds} s)", "case": state.get("case"),
                                "detail": stderr[-3000:]})
            elif child.returncode != 0 and not state.get("done"):
                kind = (f"crash (signal {-child.returncode}: {signal.Signals(-child.returncode).name})"
                        if child.returncode < 0 else f"child exited with status {child.returncode}")
                defects.append({"kind": kind, "case": state.get("case"), "detail": stderr[-2000:]})
            if not arguments.json:
                print(f"child {children}: {state.get('cases', 0)} cases, exit status {child.returncode}"
                      f"{' (hung)' if hung else ''}", flush=True)
    summary = {"seconds": round(time.monotonic() - started, 1), "cases": cases, "children": children,
               "outcomes": outcomes, "defects": defects}
    if arguments.json:
        print(json.dumps(summary))
    else:
        print(f"{cases} cases in {summary['seconds']} s ({children} child processes), {len(defects)} defects")
        print("entry point: returned / refused with ValueError, TypeError, ...")
        for name in sorted(outcomes):
            print(f"  {name}: {outcomes[name][0]} / {outcomes[name][1]}")
        for defect in defects:
            print(f"- {defect['kind']}: {defect['case']}\n{defect['detail']}")
    return 1 if defects else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="how long to fuzz (default 1)")
    parser.add_argument("--seconds", type=float, default=None, help="how long to fuzz, overriding --minutes")
    parser.add_argument("--hang-seconds", type=float, default=60.0, help="a case without progress this long is a hang")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit of the child process")
    parser.add_argument("--json", action="store_true", help="print one JSON summary line")
    parser.add_argument("--verbose", action="store_true", help="print every refused case (for tuning the strategies)")
    parser.add_argument("--inject-crash-after", type=int, default=0,
                        help="self-test: the first child segfaults at this case number")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--record", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        run_child(arguments)
        return 0
    return run_parent(arguments)


if __name__ == "__main__":
    sys.exit(main())
