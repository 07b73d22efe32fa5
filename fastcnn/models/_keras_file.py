"""Keras 3 ``.keras`` files: ``model.save('m.keras')`` and ``models.load_model('m.keras')``.

The format is Keras's own (keras/src/saving/saving_lib.py), a zip archive of three members::

    metadata.json       {"keras_version": "3.15.1", "date_saved": "2026-11-26@00:21:45"}
    config.json         the serialized model: architecture, build_config, compile_config
    model.weights.h5    layers/<kind>/vars/<i> (as in .weights.h5 files), optimizer/vars/<i>, vars

Loading is a security boundary: a .keras file may come from anyone. Nothing from the file is ever
unpickled, imported or called: the config is plain JSON whose class names map through allow-lists
(fastcnn.saving), and the weights are HDF5 datasets read as float arrays after their count, dtype
and shape were checked against the model the config describes. Before anything is decompressed,
the archive's members are checked: only the three names above, no more than a few members, and
each member's declared size within a limit (zip bombs); a member that decompresses to more than it
declared is cut off and refused.

Saving is atomic: the archive is written to a temporary file in the target's directory, flushed
and fsynced, then renamed over the target (os.replace), so a crash or an error mid-save leaves the
previous file intact, and no temporary file remains.
"""

import datetime
import io
import json
import os
import warnings
import zipfile

from fastcnn.models import _weights_file

_METADATA = "metadata.json"
_CONFIG = "config.json"
_WEIGHTS = "model.weights.h5"
_MEMBERS = (_METADATA, _CONFIG, _WEIGHTS)

# The Keras release whose format fastcnn writes (and which loads it).
KERAS_VERSION = "3.15.1"

# Limits checked before reading (declared, uncompressed sizes).
_MAX_MEMBERS = 16
_MAX_JSON_BYTES = 64 << 20       # a config of a few thousand layers is well below 1 MiB
_MAX_WEIGHTS_BYTES = 16 << 30    # 16 GiB of weights
# A member may expand at most this much over its stored size (Keras uses the same ratio); large
# stored members (Keras writes weights uncompressed) are not limited by it.
_MAX_EXPANSION = 100
_EXPANSION_FLOOR_BYTES = 1 << 20


class KerasFileError(ValueError):
    """A .keras file that fastcnn refuses to read; the message says what and why."""


def _check_extension(path, action):
    if not path.endswith(".keras"):
        if action == "save":
            raise ValueError("Invalid filepath extension for saving. Please add a `.keras` extension for the "
                             f"native Keras format. Received: filepath={path}")
        raise ValueError(f"File format not supported: filepath={path}. fastcnn loads Keras 3 `.keras` files "
                         "(use `load_weights` for `.weights.h5` files).")


def save_model(model, filepath, overwrite=True):
    from fastcnn.models import _to_config  # noqa: PLC0415 (the configs: every layer module)

    path = _weights_file._as_path(filepath)
    _check_extension(path, "save")
    if overwrite not in (True, False):
        raise ValueError(f"`overwrite` must be True or False. Received: overwrite={overwrite!r}")
    if not model.built:
        raise ValueError("You are saving a model that has not yet been built. Try building the model first by "
                         "calling it on some data or by using `build()`.")
    if not overwrite and os.path.exists(path) and not _weights_file._ask_to_proceed_with_overwrite(path):
        return
    config_json = json.dumps(_to_config.serialize_model(model))
    metadata_json = json.dumps({"keras_version": KERAS_VERSION,
                                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")})
    weights = io.BytesIO()
    h5py = _weights_file._h5py()
    with h5py.File(weights, "w") as file:
        _weights_file.write_layer_groups(file, model)
        if model.compiled:
            # Keras writes a compiled model's optimizer state after its layers; training resumes from it.
            _weights_file.save_optimizer_variables(file, model)
    _weights_file.replace_atomically(path, lambda stream: _write_archive(stream, metadata_json, config_json,
                                                                         weights.getvalue()))


def _write_archive(stream, metadata_json, config_json, weights_bytes):
    # Stored, not deflated, as Keras writes them: weights barely compress and stay memory-mappable.
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(_METADATA, metadata_json)
        archive.writestr(_CONFIG, config_json)
        archive.writestr(_WEIGHTS, weights_bytes)


def _checked_members(archive, path):
    """The archive's members by name, after the structural checks (nothing decompressed yet)."""
    members = archive.infolist()
    if len(members) > _MAX_MEMBERS:
        raise KerasFileError(f"{path}: the archive has {len(members)} members; a .keras file has 3 "
                             f"({', '.join(_MEMBERS)}). Refusing to read it.")
    by_name = {}
    for member in members:
        name = member.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise KerasFileError(f"{path}: the archive member name {name!r} is an absolute path or climbs out "
                                 "of the archive ('..'). Refusing to read it.")
        if parts[0] == "assets" and len(parts) > 1:
            continue  # Keras's layer assets (and `python -m fastcnn train`'s class names): never read here
        if name not in _MEMBERS:
            raise KerasFileError(f"{path}: unexpected archive member {name!r}; a .keras file holds "
                                 f"{', '.join(_MEMBERS)} (fastcnn reads no assets).")
        if name in by_name:
            raise KerasFileError(f"{path}: the archive member {name!r} appears twice.")
        limit = _MAX_WEIGHTS_BYTES if name == _WEIGHTS else _MAX_JSON_BYTES
        if member.file_size > limit:
            raise KerasFileError(f"{path}: {name} declares {member.file_size} bytes uncompressed, over the "
                                 f"limit of {limit} bytes. Refusing to read it.")
        if member.file_size > _EXPANSION_FLOOR_BYTES and member.file_size > _MAX_EXPANSION * member.compress_size:
            raise KerasFileError(f"{path}: {name} would expand from {member.compress_size} to {member.file_size} "
                                 "bytes, a likely decompression bomb. Refusing to read it.")
        by_name[name] = member
    for name in (_CONFIG, _WEIGHTS):
        if name not in by_name:
            raise KerasFileError(f"{path}: the archive has no {name}; it is not a Keras 3 .keras file.")
    return by_name


def _read_member(archive, member, path):
    """The member's bytes, never more than it declared (a lying header is cut off and refused)."""
    with archive.open(member) as stream:
        data = stream.read(member.file_size + 1)
    if len(data) != member.file_size:
        raise KerasFileError(f"{path}: {member.filename} holds {'more' if len(data) > member.file_size else 'fewer'} "
                             f"bytes than the {member.file_size} its header declares. Refusing to read it.")
    return data


def _parse_json(data, name, path):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise KerasFileError(f"{path}: {name} is not valid JSON ({error}).") from None
    except RecursionError:
        raise KerasFileError(f"{path}: {name} is nested too deeply to be a model config.") from None


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    from fastcnn.models import _from_config  # noqa: PLC0415 (the configs: every layer module)

    path = _weights_file._as_path(filepath)
    _check_extension(path, "load")
    if custom_objects:
        raise ValueError("fastcnn never turns names from a file into Python objects, so it takes no "
                         f"`custom_objects`; models of fastcnn's layers need none. Received: {custom_objects!r}")
    for name, value in (("compile", compile), ("safe_mode", safe_mode)):
        if value not in (True, False):
            raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    if not os.path.isfile(path):
        raise ValueError(f"File not found: filepath={path}. Please ensure the file is an accessible `.keras` zip file.")
    try:
        archive = zipfile.ZipFile(path, "r")
    except (zipfile.BadZipFile, OSError) as error:
        raise KerasFileError(f"{path} is not a valid .keras file: it is not a readable zip archive ({error}).") from None
    try:
        with archive:
            members = _checked_members(archive, path)
            config = _parse_json(_read_member(archive, members[_CONFIG], path), _CONFIG, path)
            if _METADATA in members:
                _parse_json(_read_member(archive, members[_METADATA], path), _METADATA, path)
            weights = _read_member(archive, members[_WEIGHTS], path)
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as error:
        # A truncated or corrupted archive (bad CRC, cut-off data, unknown compression).
        raise KerasFileError(f"{path} is not a valid .keras file: {error}") from None
    model = _from_config.deserialize_model(config, compile=compile)
    h5py = _weights_file._h5py()
    try:
        file = h5py.File(io.BytesIO(weights), "r")
    except OSError as error:
        raise KerasFileError(f"{path}: {_WEIGHTS} is not a valid HDF5 file ({error}).") from None
    # The model is new: a mismatch raises and the half-loaded model is never returned.
    with file:
        _weights_file.read_layer_groups(h5py, file, model)
        if compile and model.compiled:
            if _weights_file.read_optimizer_variables(file) is None:
                warnings.warn(f"{path} holds no optimizer state; the loaded model's {model.optimizer.name} "
                              "optimizer starts afresh.", stacklevel=2)
            else:
                _weights_file.load_optimizer_variables(file, model)
    return model
