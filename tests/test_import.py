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


# ---- dependencies point one way ----

# fastcnn's modules in layers, lowest first: a module imports from its own layer and the layers below
# it, never above (at module level or inside a function). `fastcnn` itself (the package's
# __init__) is the top: it exposes everything.
LAYERS = (
    ("foundation", ("fastcnn._core", "fastcnn._version", "fastcnn.config", "fastcnn._naming", "fastcnn._random",
                    "fastcnn._config_checks", "fastcnn._progbar", "fastcnn._image_resize", "fastcnn._image_dataset",
                    "fastcnn._py_dataset", "fastcnn._plot", "fastcnn._optimizer_state", "fastcnn.data",
                    "fastcnn._image_utils", "fastcnn._get_file", "fastcnn.ops", "fastcnn._openmp_environment")),
    ("components", ("fastcnn.activations", "fastcnn.initializers", "fastcnn.regularizers", "fastcnn.constraints",
                    "fastcnn.schedules", "fastcnn.losses", "fastcnn.metrics", "fastcnn.optimizers", "fastcnn.callbacks",
                    "fastcnn.datasets")),
    ("layers", ("fastcnn.layers",)),
    ("models", ("fastcnn.models",)),
    ("front", ("fastcnn.applications", "fastcnn.saving", "fastcnn.distributed", "fastcnn.utils", "fastcnn.__main__",
               "fastcnn._commands", "fastcnn")),
)


def _layer_of(module):
    """Index in LAYERS of the most specific prefix naming `module`."""
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    assert best is not None, f"{module} is in no layer of LAYERS: add it"
    return best[0]


def _fastcnn_imports(path, module):
    """(line, imported module) for every import of a fastcnn module in the file at `path`."""
    import ast

    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "fastcnn"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "fastcnn":
                continue
            for alias in node.names:  # `from fastcnn import models` imports the module fastcnn.models
                candidate = f"{base}.{alias.name}"
                is_module = (_PACKAGE_ROOT / candidate.replace(".", "/")).with_suffix(".py").exists() \
                    or (_PACKAGE_ROOT / candidate.replace(".", "/")).is_dir() or candidate == "fastcnn._core"
                found.append((node.lineno, candidate if is_module else base))
    return found


def _source_root():
    import pathlib

    import fastcnn

    return pathlib.Path(fastcnn.__file__).parent.parent


_PACKAGE_ROOT = _source_root()


def test_imports_point_one_way():
    """saving -> models -> layers -> components (initializers, optimizers, ...) -> foundation."""
    upward = []
    files = sorted((_PACKAGE_ROOT / "fastcnn").rglob("*.py"))
    assert len(files) > 40
    for path in files:
        module = ".".join(path.relative_to(_PACKAGE_ROOT).with_suffix("").parts).removesuffix(".__init__")
        level = _layer_of(module)
        for line, imported in _fastcnn_imports(path, module):
            if _layer_of(imported) > level:
                upward.append(f"{module}:{line} ({LAYERS[level][0]}) imports {imported} "
                              f"({LAYERS[_layer_of(imported)][0]})")
    assert upward == [], "\n".join(upward)


def test_the_layering_check_sees_an_upward_import(tmp_path):
    """The check above can fail: a components module importing a models module is reported."""
    path = tmp_path / "fastcnn" / "optimizers.py"
    path.parent.mkdir()
    path.write_text("def variables():\n    from fastcnn.models import _weights_file\n    from . import layers\n")
    found = _fastcnn_imports(path, "fastcnn.optimizers")
    assert [(line, _layer_of(name)) for line, name in found] == [(2, 3), (3, 2)]
