"""Smoke suite for an installed fastcnn wheel, run by tests/test_wheel.py with a fresh virtual
environment's python, no compiler on PATH and the working directory outside any checkout.

    python smoke.py SITE_PACKAGES EXPECTED_KERNEL_SET SEED_EXAMPLES_DIR
"""

import contextlib
import importlib.metadata
import io
import pathlib
import runpy
import shutil
import sys

import numpy as np

site_packages, expected_kernels, examples = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])

for compiler in ("cc", "c++", "gcc", "g++", "clang", "clang++"):
    assert shutil.which(compiler) is None, f"a compiler is on PATH: {shutil.which(compiler)}"

import fastcnn  # noqa: E402
from fastcnn import layers, models  # noqa: E402

# The fastcnn imported is the wheel's, in the fresh environment, and runs on its bundled libgomp.
package = pathlib.Path(fastcnn.__file__).resolve().parent
assert package == (site_packages / "fastcnn").resolve(), f"fastcnn imported from {package}, not {site_packages}"
assert pathlib.Path(fastcnn._core.__file__).resolve().parent == package, fastcnn._core.__file__
files = [str(f) for f in importlib.metadata.distribution("fastcnn").files]
assert any(f.startswith("fastcnn.libs/libgomp") for f in files), files
with open("/proc/self/maps") as maps:
    gomp = {line.split()[-1] for line in maps if "libgomp" in line}
assert gomp and all("/fastcnn.libs/" in path for path in gomp), f"libgomp loaded from {gomp}"

assert fastcnn.config.kernel_set() == expected_kernels, (fastcnn.config.kernel_set(), expected_kernels)

# The three seed examples build, compile and print Keras's totals.
totals = {"example1.py": " Total params: 34,826 (136.04 KB)", "example2.py": " Total params: 34,826 (136.04 KB)",
          "example3.py": " Total params: 230,186 (899.16 KB)"}
for name, total in totals.items():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(examples / name), run_name="__main__")
    assert total in out.getvalue().splitlines(), (name, out.getvalue())

# A conv forward against a float64 numpy reference (valid padding, stride 1, bias, no activation).
rng = np.random.default_rng(0)
x = rng.standard_normal((3, 9, 8, 5)).astype(np.float32)
conv = models.Sequential([layers.Input((9, 8, 5)), layers.Conv2D(7, (3, 2))])
kernel = rng.standard_normal((3, 2, 5, 7)).astype(np.float32)
bias = rng.standard_normal(7).astype(np.float32)
conv.set_weights([kernel, bias])
got = conv.predict(x, verbose=0)
want = np.zeros((3, 7, 7, 7))
for i in range(3):
    for j in range(2):
        want += np.einsum("nhwc,cf->nhwf", x[:, i:i + 7, j:j + 7, :].astype(np.float64), kernel[i, j].astype(np.float64))
want += bias
error = np.max(np.abs(got - want)) / np.max(np.abs(want))
assert got.shape == want.shape and error <= 1e-5, (got.shape, error)

# A short fit on the embedded MNIST learns.
(x_train, y_train), (x_test, y_test) = fastcnn.datasets.mnist.load_data()
x_train, x_test = x_train[:2000, ..., None] / 255.0, x_test[:500, ..., None] / 255.0
model = models.Sequential([layers.Input((28, 28, 1)), layers.Conv2D(8, (3, 3), activation="relu"),
                           layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train[:2000], epochs=2, batch_size=32, verbose=0)
loss, accuracy = model.evaluate(x_test, y_test[:500], verbose=0)
assert accuracy >= 0.8, accuracy

out = io.StringIO()
with contextlib.redirect_stdout(out):
    fastcnn.show_config()
assert f"fastcnn {fastcnn.__version__}" in out.getvalue() and expected_kernels in out.getvalue(), out.getvalue()
assert "openmp: libgomp" in out.getvalue() and "bundled with the wheel" in out.getvalue(), out.getvalue()
print(f"wheel smoke passed: kernels {expected_kernels}, conv error {error:.1e}, MNIST accuracy {accuracy:.3f}")
