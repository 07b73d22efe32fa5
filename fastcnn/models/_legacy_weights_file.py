"""Legacy HDF5 weights files: the Keras 2 / tf.keras format, read as Keras 3's
``keras/src/legacy/saving/legacy_h5_format.py`` reads it (``load_weights_from_hdf5_group`` and
``load_weights_from_hdf5_group_by_name``). The ImageNet files of ``keras.applications``
(``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``, ...) are in this format, as are
``model.save_weights("x.h5")`` in tf.keras 2 and ``model.save("x.h5")`` (whose weights sit in a
``model_weights`` group).

Layout::

    /                       attrs layer_names = [b"conv1", ...] (every layer of the model, in order;
                            long lists are split into layer_names0, layer_names1, ...),
                            keras_version, backend
    /<layer name>           group per layer, attrs weight_names = [b"conv1/kernel:0", ...]
    /<layer name>/<weight>  one dataset per weight name (the names hold slashes: nested groups)

A layer's weights are listed trainable first, then non-trainable (Keras's `_legacy_weights`):
kernel, bias; gamma, beta, moving_mean, moving_variance. A model used as a layer is one entry
with all its weights in that order.

By default the file's layers that hold weights are matched, in order, with the model's layers
that hold weights (names are not compared); with ``by_name=True`` each file layer goes to the
model layers of the same name and the others are skipped. Every array is read and checked
before any weight is assigned, so a mismatch leaves the model as it was.
"""

import warnings

import numpy as np

from fastcnn.models import _weights_file

MODEL_WEIGHTS_GROUP = "model_weights"


def is_legacy_path(path):
    """`.h5` / `.hdf5` files other than Keras 3's `.weights.h5`."""
    return path.endswith((".h5", ".hdf5")) and not path.endswith(_weights_file._SUFFIX)


def legacy_weights(layer):
    """Keras's `_legacy_weights`: trainable weights first, then the others (a frozen layer lists
    all its weights as non-trainable, in their own order)."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _attribute_list(group, name):
    """Keras's `load_attributes_from_hdf5_group`: the attribute as a list of str, or the chunks
    name0, name1, ... that Keras writes for long lists; [] when absent."""
    def decoded(values):
        values = np.atleast_1d(np.asarray(values))
        if values.size == 0:
            return []  # Keras writes a layer without weights as an empty float array
        if values.dtype.kind not in "SUO":
            raise ValueError(f"The attribute {name!r} of the h5 group {group.name!r} must hold strings. Received "
                             f"dtype {values.dtype}")
        return [value.decode("utf8") if isinstance(value, bytes) else str(value) for value in values]

    if name in group.attrs:
        return decoded(group.attrs[name])
    data, chunk = [], 0
    while f"{name}{chunk}" in group.attrs:
        data.extend(decoded(group.attrs[f"{name}{chunk}"]))
        chunk += 1
    return data


def _group(h5py, parent, name):
    entry = parent.get(name)
    if not isinstance(entry, h5py.Group):
        raise ValueError(f"The weights file has no group {name!r} under {parent.name!r}, which its "
                         f"`layer_names` attribute lists.")
    return entry


def _layer_arrays(h5py, group):
    """The arrays of one layer group, in its `weight_names` order."""
    arrays = []
    for weight_name in _attribute_list(group, "weight_names"):
        entry = group.get(weight_name)
        if not isinstance(entry, h5py.Dataset):
            raise ValueError(f"The weights file has no dataset {weight_name!r} in the layer group {group.name!r}, "
                             "which its `weight_names` attribute lists.")
        if entry.dtype.kind not in "iuf":
            raise ValueError(f"The dataset '{group.name}/{weight_name}' must hold numbers. Received dtype "
                             f"{entry.dtype}")
        arrays.append(np.asarray(entry[()]))
    return arrays


def _shape_error(where, variable, array):
    return (f"Shape mismatch in {where} for weight {variable.path}. Weight expects shape {tuple(variable.shape)}. "
            f"Received saved weight with shape {tuple(array.shape)}")


def _pairs_by_order(h5py, root, model):
    """(layer, variables, arrays, description) for each model layer with weights, matched in order
    with the file's layers that have weights (Keras's topological loading)."""
    layers = [layer for layer in model.layers if legacy_weights(layer)]
    names = [name for name in _attribute_list(root, "layer_names")
             if _attribute_list(_group(h5py, root, name), "weight_names")]
    if len(names) != len(layers):
        raise ValueError("Layer count mismatch when loading weights from file. "
                         f"Model expected {len(layers)} layers, found {len(names)} saved layers.")
    pairs = []
    for k, (name, layer) in enumerate(zip(names, layers)):
        variables = legacy_weights(layer)
        arrays = _layer_arrays(h5py, _group(h5py, root, name))
        if len(arrays) != len(variables):
            raise ValueError(f"Weight count mismatch for layer #{k} (named {layer.name} in the current model, "
                             f"{name} in the save file). Layer expects {len(variables)} weight(s). Received "
                             f"{len(arrays)} saved weight(s)")
        pairs.append((variables, arrays, f"layer #{k} (named {layer.name})"))
    return pairs


def _pairs_by_name(h5py, root, model, skip_mismatch):
    index = {}
    for layer in model.layers:
        index.setdefault(layer.name, []).append(layer)
    pairs = []
    for k, name in enumerate(_attribute_list(root, "layer_names")):
        targets = index.get(name, [])
        if not targets:
            continue
        arrays = _layer_arrays(h5py, _group(h5py, root, name))
        for layer in targets:
            variables = legacy_weights(layer)
            if len(arrays) != len(variables):
                counts = f"Layer expects {len(variables)} weight(s). Received {len(arrays)} saved weight(s)"
                if skip_mismatch:
                    warnings.warn(f"Skipping loading of weights for layer #{k} (named {layer.name}) due to mismatch "
                                  f"in number of weights. {counts}", stacklevel=4)
                    continue
                raise ValueError(f"Weight count mismatch for layer #{k} (named {layer.name}). {counts}")
            pairs.append((variables, arrays, f"layer #{k} (named {layer.name})"))
    return pairs


def load_weights(model, filepath, skip_mismatch=False, by_name=False):
    path = _weights_file._as_path(filepath)
    if skip_mismatch not in (True, False):
        raise ValueError(f"`skip_mismatch` must be True or False. Received: skip_mismatch={skip_mismatch!r}")
    if by_name not in (True, False):
        raise ValueError(f"`by_name` must be True or False. Received: by_name={by_name!r}")
    if not model.built:
        raise ValueError("You are loading weights into a model that has not yet been built. Try building the "
                         "model first by calling it on some data or by using `build()`.")
    h5py = _weights_file._h5py()
    try:
        with h5py.File(path, "r") as file:
            root = file
            if MODEL_WEIGHTS_GROUP in file and "layer_names" not in file.attrs:
                root = _group(h5py, file, MODEL_WEIGHTS_GROUP)
            if by_name:
                pairs = _pairs_by_name(h5py, root, model, skip_mismatch)
            else:
                pairs = _pairs_by_order(h5py, root, model)
    except FileNotFoundError:
        raise
    except ValueError as error:
        raise ValueError(f"Cannot load the legacy HDF5 weights file {path}: {error}") from None
    except (OSError, KeyError, RuntimeError, TypeError) as error:
        # h5py raises these for a truncated, corrupt or non-HDF5 file.
        raise ValueError(f"Cannot read {path} as a legacy HDF5 weights file (Keras 2 `.h5`): "
                         f"{type(error).__name__}: {error}") from None
    assignments, skipped = [], []
    for variables, arrays, where in pairs:
        for variable, array in zip(variables, arrays):
            if tuple(variable.shape) != tuple(array.shape):
                if not skip_mismatch:
                    raise ValueError(f"Cannot load the legacy HDF5 weights file {path}: "
                                     f"{_shape_error(where, variable, array)}")
                skipped.append(f"Skipping loading weights for {where} due to mismatch in shape for weight "
                               f"{variable.path}. Weight expects shape {tuple(variable.shape)}. Received saved "
                               f"weight with shape {tuple(array.shape)}")
                continue
            assignments.append((variable, array))
    for variable, array in assignments:
        variable.assign(array.astype(np.float32))
    for message in skipped:
        warnings.warn(message, stacklevel=3)
