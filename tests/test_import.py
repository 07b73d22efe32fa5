"""`import fastcnn` stays light: no optional dependency, TensorFlow or archive/JSON/CSV/threading
machinery is imported until a feature that needs it is used."""

import os
import subprocess
import sys

HEAVY = ("h5py", "PIL", "matplotlib", "tensorflow", "keras", "zipfile", "json", "csv", "concurrent.futures",
         "importlib.resources", "numpy.random", "logging", "secrets", "shutil", "tempfile",
         # imported on first use through fastcnn.__getattr__:
         "fastcnn.saving", "fastcnn.utils", "fastcnn.datasets", "fastcnn.callbacks", "fastcnn.layers.augmentation")


def test_import_fastcnn_imports_nothing_heavy():
    code = f"import sys, fastcnn; print([m for m in {HEAVY!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=os.path.expanduser("~") if os.path.isdir(os.path.expanduser("~")) else "/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_lazily_imported_features_still_work():
    code = """
import fastcnn
from fastcnn import layers, models
(x, y), _ = fastcnn.datasets.mnist.load_data()
assert x.shape[1:] == (28, 28)
model = models.Sequential([layers.Input((4,)), layers.Dense(2)])
again = fastcnn.models.model_from_json(model.to_json())
assert again.count_params() == model.count_params()
fastcnn.utils.set_random_seed(1); a = fastcnn.initializers.GlorotUniform()((3, 3))
fastcnn.utils.set_random_seed(1); b = fastcnn.initializers.GlorotUniform()((3, 3))
assert (a == b).all()
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=os.path.expanduser("~") if os.path.isdir(os.path.expanduser("~")) else "/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_lazy_submodules_resolve_every_way():
    code = """
import sys, fastcnn
assert "utils" in dir(fastcnn) and "fastcnn.utils" not in sys.modules
from fastcnn import saving, callbacks
from fastcnn.layers import RandomFlip
import fastcnn.datasets
assert fastcnn.layers.RandomZoom and "RandomCrop" in dir(fastcnn.layers) and callbacks.EarlyStopping
assert fastcnn.utils.set_random_seed and saving.serialize_model and fastcnn.datasets.mnist
try:
    fastcnn.no_such_module
except AttributeError as error:
    assert "no_such_module" in str(error)
else:
    raise AssertionError("no AttributeError")
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=os.path.expanduser("~") if os.path.isdir(os.path.expanduser("~")) else "/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
