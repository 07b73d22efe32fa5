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
  invalid, arguments; build; set_trainable / set_regularization with any index; configure_optimizer;
  train_step / test_step / predict / forward_training with random arrays, labels and indices;
  parameter and optimizer-slot views; all in random order.

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
        self.defects.append({"kind": kind, "case": description, "detail": detail[-2000:]})

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
                actual_parts = result if isinstance(result, tuple) else (result,)
                expected_parts = expected if isinstance(expected, tuple) else (expected,)
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
    def arrays(draw, rank=None, shape=None):
        """An array-like argument: mostly a well-formed float array, sometimes anything else."""
        if shape is None:
            rank = draw(st.integers(0, 5)) if rank is None else rank
            shape = tuple(draw(small) for _ in range(rank))
        elif shape and draw(st.integers(0, 5)) == 0:  # one axis in six arrays off by one
            axis = draw(st.integers(0, len(shape) - 1))
            shape = tuple(max(0, s + draw(st.sampled_from([1, -1]))) if i == axis else s for i, s in enumerate(shape))
        seed = draw(st.integers(0, 2**32 - 1))
        scale = draw(st.sampled_from([1.0, 1.0, 1.0, 1e-3, 1e30]))
        values = np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale)  # 0-d stays an array
        kind = draw(st.sampled_from(["float32"] * 24 + ["float64", "int64", "int8", "uint64", "bool", "complex",
                                                        "str", "none", "list", "fortran", "strided", "readonly",
                                                        "nan", "scalar"]))
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
    @st.composite
    def op_case(draw):
        op = draw(st.sampled_from(["conv2d_forward", "conv2d_backward_input", "conv2d_backward_kernel",
                                   "dense_forward", "dense_backward_input", "dense_backward_kernel",
                                   "max_pool2d_forward", "max_pool2d_backward", "activation_forward",
                                   "activation_backward", "dropout_forward", "dropout_backward",
                                   "batch_norm_statistics", "batch_norm_forward", "batch_norm_backward",
                                   "cross_entropy", "projective_transform", "projective_transform_backward",
                                   "resize", "resize_backward", "flip", "contrast", "contrast_backward",
                                   "brightness", "brightness_backward", "set_num_threads", "select_kernels"]))
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
        any_x = draw(arrays())
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
        if op == "cross_entropy":
            predictions = draw(arrays(shape=(batch, filters)))
            targets = draw(st.one_of(arrays(shape=(batch,)), arrays(shape=(batch, filters)),
                                     st.lists(st.integers(-2, 7), min_size=batch, max_size=batch).map(np.array)))
            return op, ops.cross_entropy, (predictions, targets), dict(from_logits=draw(st.booleans())), False
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

        @settings(max_examples=200, deadline=None, database=None, phases=[Phase.generate],
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
        @initialize(template=st.sampled_from(["empty", "mlp", "cnn", "cnn-bn-dropout", "augment"]),
                    side=st.integers(4, 8), channels=st.integers(1, 3), classes=st.integers(1, 4),
                    optimizer=st.sampled_from(["sgd", "adam", "rmsprop", "adagrad", "nadam", None]))
        def create(self, template, side, channels, classes, optimizer):
            """An empty network (every layer then comes from the rules) or a valid one, built and
            configured, so that the step rules run on real models too."""
            self.network = _core.Network()
            self.shape = None
            if template == "empty":
                return
            if template in ("cnn", "cnn-bn-dropout", "augment"):
                if template == "augment":
                    self.network.add_random_flip(True, False, 7)
                    self.network.add_random_rotation(-0.1, 0.1, "reflect", "bilinear", 0.0)
                self.network.add_conv2d(2, (3, 3), (1, 1), (1, 1), "same", True, "relu")
                if template == "cnn-bn-dropout":
                    self.network.add_batch_norm(0.99, 1e-3, True, True)
                    self.network.add_dropout(0.3)
                self.network.add_pool2d("max", False, (2, 2), (2, 2))
            self.network.add_flatten()
            self.network.add_dense(classes, True, "softmax")
            self.network.build((side, side, channels))
            self.shape = (side, side, channels)
            if optimizer is not None:
                self.network.configure_optimizer(optimizer)

        def run(self, name, *positional, **keywords):
            return call(f"Network.{name}", getattr(self.network, name), positional, keywords)

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
              channels=mostly(st.integers(1, 4), st.just(0)))
        def build(self, height, width, channels):
            self.run("build", (height, width, channels))
            if self.shape is None:
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
            shape = self.shape if self.shape is not None else (2, 2, 1)
            x = data.draw(arrays(shape=(samples,) + tuple(max(1, s) if abs(s) < 16 else 2 for s in shape)))
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
                classes = int(np.prod(self.network.output_shape))
            except ALLOWED:
                classes = 3
            use_labels = data.draw(st.booleans())
            labels = data.draw(mostly(
                st.lists(st.integers(0, max(classes - 1, 0)), min_size=samples, max_size=samples).map(
                    lambda v: np.array(v, np.int32)),
                st.one_of(st.none(), st.lists(st.integers(-1, 9), min_size=samples, max_size=samples).map(np.array),
                          arrays(shape=(samples,))))) if use_labels else None
            probabilities = None if use_labels and data.draw(mostly(st.just(True), st.just(False))) else data.draw(
                mostly(arrays(shape=(samples, classes)), st.none()))
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
                                phases=[Phase.generate], suppress_health_check=list(HealthCheck))

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
