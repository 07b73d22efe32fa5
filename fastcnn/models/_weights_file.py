"""Keras 3 ``.weights.h5`` files: what ``keras.Model.save_weights`` writes for Sequential and
functional models, so that files move both ways between fastcnn and Keras.

Layout (Keras's saving_lib with its H5IOStore)::

    /vars                         group, attrs name=<model name>, no datasets
    /layers/<kind>/vars           group per layer, attrs name=<layer name>
    /layers/<kind>/vars/0, 1, …   one float32 dataset per variable
    /layers/<kind>/layers/…       a model used as a layer: its own layers, the same way

A functional model's layers include its InputLayers (``input_layer``, with an empty ``vars``);
a model used as a layer is ``functional`` or ``sequential`` by its class.

``<kind>`` is the layer's class name in snake case, numbered by Keras's rule for repeated kinds:
``conv2d``, ``conv2d_1``, …; layers are matched by this path, not by their names. A layer's
variables are numbered trainable-at-creation first, then the others, each in creation order:
Conv2D and Dense kernel, bias; BatchNormalization gamma, beta, moving_mean, moving_variance (those
present). Layers without variables (pooling, Flatten, Dropout, …) get an empty ``vars`` group.
Keras also writes ``/optimizer/vars`` for a compiled model; fastcnn writes no optimizer state
and ignores it when reading (Keras, loading a file without it, warns and keeps its optimizer).

h5py is imported only here, when a file is read or written.
"""

import os
import warnings

import numpy as np

from fastcnn import _naming

_SUFFIX = ".weights.h5"


def _h5py():
    try:
        import h5py
    except ImportError as error:
        raise ImportError("Reading and writing `.weights.h5` files requires the h5py package. "
                          "Install it with `pip install h5py` (or `pip install fastcnn[saving]`).") from error
    return h5py


def _as_path(filepath):
    try:
        return os.fsdecode(os.fspath(filepath))
    except TypeError:
        raise TypeError(f"`filepath` must be a string or a path-like object. Received: filepath={filepath!r}") from None


def layer_paths(model, prefix=""):
    """(group path, layer) for each layer, named as Keras's saving walk names them; a model used as
    a layer is listed too, followed by its own layers under its path."""
    used = {}
    for layer in model.layers:
        kind = _naming.to_snake_case(type(layer).__name__)
        if kind in used:
            used[kind] += 1
            path = f"{prefix}layers/{kind}_{used[kind]}"
        else:
            used[kind] = 0
            path = f"{prefix}layers/{kind}"
        yield path, layer
        if _is_model(layer):
            yield from layer_paths(layer, path + "/")


def _is_model(layer):
    from fastcnn.models.model import Model  # noqa: PLC0415

    return isinstance(layer, Model)


def file_variables(layer):
    """The layer's variables in the file's order: Keras saves `_trainable_variables +
    _non_trainable_variables`, split by each variable's own trainable flag at creation (freezing
    a layer later does not reorder them)."""
    variables = layer.variables
    return [v for v in variables if v.trainable] + [v for v in variables if not v.trainable]


def _ask_to_proceed_with_overwrite(filepath):
    """Keras's prompt for `overwrite=False` on an existing file."""
    answer = input(f"[WARNING] {filepath} already exists - overwrite? [y/n]").strip().lower()
    while answer not in ("y", "n"):
        answer = input('Enter "y" (overwrite) or "n" (cancel).').strip().lower()
    if answer == "n":
        return False
    print("[TIP] Next time specify overwrite=True!", flush=True)
    return True


def _temporary_path(path):
    """A new empty file beside `path` (same directory, so os.replace is an atomic rename). Created
    with os.open's mode 0o666, which the umask reduces as for any new file, so the final file gets
    the permissions a direct write would have given it."""
    directory, name = os.path.split(os.path.abspath(path))
    while True:
        candidate = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(descriptor)
        return candidate


def save_weights(model, filepath, overwrite=True):
    path = _as_path(filepath)
    if not path.endswith(_SUFFIX):
        raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={path}")
    if not model.built:
        raise ValueError("You are saving a model that has not yet been built. Try building the model first by "
                         "calling it on some data or by using `build()`.")
    if overwrite not in (True, False):
        raise ValueError(f"`overwrite` must be True or False. Received: overwrite={overwrite!r}")
    if not overwrite and os.path.exists(path) and not _ask_to_proceed_with_overwrite(path):
        return
    h5py = _h5py()

    def write(stream):
        with h5py.File(stream, "w") as file:
            write_layer_groups(file, model)

    replace_atomically(path, write)


def write_layer_groups(file, model):
    """The model's `vars` group and one `layers/<kind>/vars` group per layer, into an open h5 file."""
    file.create_group("vars").attrs["name"] = model.name
    for group_path, layer in layer_paths(model):
        group = file.require_group(group_path).create_group("vars")
        group.attrs["name"] = layer.name
        if _is_model(layer):
            continue  # its variables are its layers'
        for index, variable in enumerate(file_variables(layer)):
            group[str(index)] = np.asarray(variable.numpy(), dtype=variable.file_dtype)


def replace_atomically(path, write):
    """Calls write(stream) on a new temporary file beside `path`, flushes and fsyncs it, then
    renames it over `path`: a reader (or a crash mid-write) never sees a half-written file, a failed
    save leaves the previous file in place, and no temporary file remains either way."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        temporary = _temporary_path(path)
    except OSError as error:
        # Keep the exception type (PermissionError, FileNotFoundError, ...), say what was refused.
        raise type(error)(error.errno, f"Cannot save {path}: a file cannot be created in the directory "
                                       f"{directory} ({error.strerror})") from None
    try:
        with open(temporary, "r+b") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise
    # The rename itself reaches the disk once the directory is synced (POSIX; not on Windows).
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _layer_group(file, group_path):
    """The `vars` group for a layer, or None: Keras's H5IOStore.get, including its fallback for
    files from early Keras 3 releases, which named the layers group `_layer_checkpoint_dependencies`."""
    for candidate in (group_path, group_path.replace("layers", "_layer_checkpoint_dependencies", 1)):
        if candidate in file and "vars" in file[candidate]:
            return file[candidate]["vars"]
    return None


def _read_layer(h5py, file, group_path, layer):
    """The layer's arrays from the file, or an error message naming the layer and what differs."""
    variables = file_variables(layer)
    group = _layer_group(file, group_path)
    keys = list(group.keys()) if group is not None else []
    if len(keys) != len(variables):
        return None, (f"Layer '{layer.name}' expected {len(variables)} variables, but received {len(keys)} "
                      f"variables during loading. Expected: {[v.name for v in variables]}")
    arrays = []
    for index, variable in enumerate(variables):
        entry = group.get(str(index))
        where = f"'{group.name}/{index}'"
        if not isinstance(entry, h5py.Dataset):
            return None, (f"Layer '{layer.name}': the weights file has no dataset {where} for variable "
                          f"{index} ({variable.name}); it holds {sorted(keys)}.")
        if entry.dtype not in (np.float32, np.float64, variable.file_dtype):
            return None, (f"Layer '{layer.name}': variable {index} ({variable.name}) must be a float array "
                          f"(float32 or float64{'' if variable.file_dtype == np.float32 else ' or int64'}), but "
                          f"{where} in the weights file has dtype {entry.dtype}.")
        if tuple(entry.shape) != tuple(variable.shape):
            return None, (f"Layer '{layer.name}': variable {index} ({variable.name}) has shape "
                          f"{tuple(variable.shape)} in the model but {tuple(entry.shape)} in the weights file "
                          f"({where}).")
        arrays.append(np.asarray(entry[()], dtype=np.float32))
    return arrays, None


def _loading_failure_message(failures):
    """Keras's summary of the objects that could not be loaded."""
    example_layer, example_error = failures[0]
    return (f"A total of {len(failures)} objects could not be loaded. Example error message for object "
            f"{example_layer}:\n\n{example_error}\n\nList of objects that could not be loaded:\n"
            f"{[layer for layer, _ in failures]}")


def load_weights(model, filepath, skip_mismatch=False):
    path = _as_path(filepath)
    if not path.endswith(_SUFFIX):
        raise ValueError(
            f"File format not supported: filepath={path}. fastcnn loads Keras 3 `.weights.h5` files and legacy "
            "Keras 2 `.h5` / `.hdf5` files (whole-model `.keras` files and sharded `.weights.json` weights are "
            "not supported yet)."
        )
    if skip_mismatch not in (True, False):
        raise ValueError(f"`skip_mismatch` must be True or False. Received: skip_mismatch={skip_mismatch!r}")
    if not model.built:
        raise ValueError("You are loading weights into a model that has not yet been built. Try building the "
                         "model first by calling it on some data or by using `build()`.")
    h5py = _h5py()
    with h5py.File(path, "r") as file:
        read_layer_groups(h5py, file, model, skip_mismatch)


def read_layer_groups(h5py, file, model, skip_mismatch=False):
    """Reads every layer's arrays from an open h5 file and assigns them, all or nothing: any
    mismatch raises (naming the layers) before a weight is written, unless skip_mismatch, which
    loads the layers that match and warns about the others."""
    loaded, failures = [], []
    for group_path, layer in layer_paths(model):
        if _is_model(layer):
            continue
        arrays, error = _read_layer(h5py, file, group_path, layer)
        if error is None:
            loaded.append((layer, arrays))
        else:
            failures.append((layer, error))
    if failures and not skip_mismatch:
        raise ValueError(_loading_failure_message(failures))
    for layer, arrays in loaded:
        for variable, array in zip(file_variables(layer), arrays):
            variable.assign(array)
    if failures:
        warnings.warn(_loading_failure_message(failures), stacklevel=4)


# ---- the optimizer group ----
#
# Keras's saving walk writes a compiled model's optimizer after its layers, as
#
#     /optimizer/vars               group, attrs name=<optimizer name>
#     /optimizer/vars/0, 1, …       one dataset per variable of `optimizer.variables`:
#                                   0 `iteration` (int64 scalar), 1 `learning_rate` (float32 scalar,
#                                   absent with a schedule), then the slots (float32, shaped like
#                                   their weights), Nadam's u_product last
#
# (Keras's `Optimizer.save_own_variables`: `store[str(i)] = variable.numpy()`). The order, names and
# mapping onto the C++ state are in fastcnn/_optimizer_state.py. These functions take an
# open h5py File or Group, the root of a `.weights.h5` file or of the `model.weights.h5` inside a
# `.keras` archive, so that the whole-model format can call them on its own file object.

OPTIMIZER_GROUP = "optimizer"


def save_optimizer_variables(file, model):
    """Writes the compiled model's optimizer state as Keras's `optimizer/vars` group under `file`
    (an h5py File or Group opened for writing, without an `optimizer` entry yet)."""
    from fastcnn import _optimizer_state

    arrays = _optimizer_state.optimizer_state_arrays(model)  # raises if the model is not compiled
    if OPTIMIZER_GROUP in file:
        raise ValueError(f"The h5 group {file.name!r} already has an '{OPTIMIZER_GROUP}' entry; the optimizer "
                         "state is written once, into a new group.")
    group = file.create_group(OPTIMIZER_GROUP).create_group("vars")
    group.attrs["name"] = model.optimizer.name
    for index, array in enumerate(arrays):
        group[str(index)] = array  # int64 iteration, float32 the rest, as Keras writes them


def read_optimizer_variables(file):
    """The arrays of `file`'s `optimizer/vars` group in index order (None when the file has no
    optimizer group: a model saved uncompiled, or a fastcnn `save_weights` file). Datasets must be
    named 0 … n-1, as Keras writes them; anything else raises a ValueError naming the entry."""
    h5py = _h5py()
    group = _layer_group(file, OPTIMIZER_GROUP)
    if group is None:
        return None
    keys = list(group.keys())
    expected = {str(index) for index in range(len(keys))}
    if set(keys) != expected:
        raise ValueError(f"The optimizer group {group.name!r} must hold datasets named 0 to {len(keys) - 1}, as Keras "
                         f"writes them. Received: {sorted(keys, key=lambda k: (len(k), k))}")
    arrays = []
    for index in range(len(keys)):
        entry = group[str(index)]
        if not isinstance(entry, h5py.Dataset):
            raise ValueError(f"The optimizer entry '{group.name}/{index}' must be a dataset. Received: {entry!r}")
        if entry.dtype.kind not in "iuf":
            raise ValueError(f"The optimizer dataset '{group.name}/{index}' must hold numbers. Received dtype "
                             f"{entry.dtype}")
        arrays.append(np.asarray(entry[()]))
    return arrays


def load_optimizer_variables(file, model, skip_mismatch=False):
    """Sets the compiled model's optimizer state from `file`'s `optimizer/vars` group; returns True
    when loaded. Every array is checked first (see `set_optimizer_state_arrays`): on a mismatch
    (or no optimizer group) this raises a ValueError naming the variable and leaves the optimizer
    as it was, or, with `skip_mismatch=True`, warns as Keras does ("Skipping variable loading for
    optimizer ...") and returns False."""
    from fastcnn import _optimizer_state

    if skip_mismatch not in (True, False):
        raise ValueError(f"`skip_mismatch` must be True or False. Received: skip_mismatch={skip_mismatch!r}")
    arrays = read_optimizer_variables(file)
    try:
        if arrays is None:
            expected = len(_optimizer_state.optimizer_state_names(model))
            raise ValueError(f"Skipping variable loading for optimizer '{model.optimizer.name}', because it has "
                             f"{expected} variables whereas the saved optimizer has 0 variables (the file has no "
                             f"'{OPTIMIZER_GROUP}/vars' group).")
        _optimizer_state.set_optimizer_state_arrays(model, arrays)
    except ValueError as error:
        if not skip_mismatch or not model.compiled:
            raise
        warnings.warn(str(error), stacklevel=2)
        return False
    return True
