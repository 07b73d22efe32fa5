"""The checks every Keras-format config goes through, whatever object it describes.

A config (from a ``.keras`` file's config.json, ``model.to_json()``, or ``get_config()``) is data
from outside. fastcnn never imports a module nor looks a callable up by a name from a config: each
module that builds objects from configs (initializers, regularizers, constraints, layers, models)
maps every ``class_name`` through its own explicit allow-list, and checks every key and value with
the functions here before any constructor runs. Anything else raises a ValueError naming where it
was found (the layer, class or key) and the value received.

This module imports nothing of fastcnn's, so every other module may use it.
"""

import math
import numbers

# ---- limits ----

MAX_DEPTH = 20  # Keras model configs nest 8 levels deep (model/config/layers/i/config/...)
MAX_NODES = 1_000_000  # dict entries + list items in one config
MAX_LIST_LENGTH = 100_000
MAX_STRING_LENGTH = 4096
MAX_NAME_LENGTH = 256
MAX_LAYERS = 10_000
MAX_INTEGER = 2**63 - 1  # seeds are 64-bit
MAX_DIMENSION = 2**20  # any size-like integer of a layer (filters, units, kernel, padding, height, ...)
MAX_SAMPLE_ELEMENTS = 2**28  # values per sample in any layer's input or output (1 GiB of float32)
MAX_PARAMETERS = 2**29  # weights of the whole model (2 GiB of float32)
MAX_JSON_CHARACTERS = 64 * 2**20


def show_value(value):
    """repr of a received value, cut short so a hostile config cannot flood the message."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + f"... ({len(text)} characters)"


def fail(where, message):
    raise ValueError(f"{where}: {message}")


# ---- 1. plain, bounded JSON data ----


def check_tree(value, where="config"):
    """Raises unless `value` is plain JSON data within the limits above."""
    count = [0]

    def visit(item, path, depth):
        count[0] += 1
        if count[0] > MAX_NODES:
            fail(where, f"the config has more than {MAX_NODES} entries")
        if depth > MAX_DEPTH:
            fail(where, f"the config is nested more than {MAX_DEPTH} levels deep (at {path})")
        if item is None or isinstance(item, bool):
            return
        if isinstance(item, int):
            if abs(item) > MAX_INTEGER:
                fail(where, f"{path} is an integer beyond 64 bits. Received: {show_value(item)}")
            return
        if isinstance(item, float):
            if not math.isfinite(item):
                fail(where, f"{path} must be a finite number. Received: {item!r}")
            return
        if isinstance(item, str):
            if len(item) > MAX_STRING_LENGTH:
                fail(where, f"{path} is a string of {len(item)} characters (at most {MAX_STRING_LENGTH}). "
                             f"Received: {show_value(item)}")
            return
        if isinstance(item, (list, tuple)):
            if len(item) > MAX_LIST_LENGTH:
                fail(where, f"{path} is a list of {len(item)} items (at most {MAX_LIST_LENGTH})")
            for index, element in enumerate(item):
                visit(element, f"{path}[{index}]", depth + 1)
            return
        if isinstance(item, dict):
            for key, element in item.items():
                if not isinstance(key, str):
                    fail(where, f"{path} has a non-string key. Received: {show_value(key)}")
                visit(element, f"{path}[{key!r}]", depth + 1)
            return
        fail(where, f"{path} must be plain JSON data (dict, list, str, number, bool or None). "
                     f"Received: {show_value(item)} of type {type(item).__name__}")

    visit(value, where, 0)


def check_dict(value, where):
    if not isinstance(value, dict):
        fail(where, f"expected a dict. Received: {show_value(value)}")
    return value


def check_keys(config, allowed, where, required=()):
    unknown = [key for key in config if key not in allowed]
    if unknown:
        fail(where, f"unknown config key {unknown[0]!r} (value {show_value(config[unknown[0]])}). "
                     f"Allowed keys: {', '.join(allowed)}")
    missing = [key for key in required if key not in config]
    if missing:
        fail(where, f"the config lacks the required key {missing[0]!r}")


def check_string(value, where, key, maximum=MAX_STRING_LENGTH):
    if not isinstance(value, str) or not value or len(value) > maximum:
        fail(where, f"`{key}` must be a non-empty string of at most {maximum} characters. Received: "
                     f"{key}={show_value(value)}")
    return value


def check_name(value, where, key="name"):
    """Keras names: non-empty strings without '/' (Keras refuses it); bounded and printable here."""
    check_string(value, where, key, MAX_NAME_LENGTH)
    if "/" in value or not value.isprintable():
        fail(where, f"`{key}` must be printable and cannot contain '/'. Received: {key}={show_value(value)}")
    return value


def check_bool(value, where, key):
    if not isinstance(value, bool):
        fail(where, f"`{key}` must be a bool. Received: {key}={show_value(value)}")
    return value


def check_shared_object_id(value, where):
    """Keras marks an object serialized in several places (the float32 dtype policy the model and
    its layers share) with `shared_object_id`, an integer, repeating the full config each time;
    fastcnn rebuilds each occurrence from its config, so the id only needs to be an integer."""
    if "shared_object_id" in value:
        identifier = value["shared_object_id"]
        if isinstance(identifier, bool) or not isinstance(identifier, int):
            fail(where, f"`shared_object_id` must be an integer. Received: shared_object_id={show_value(identifier)}")


def construct(cls, kwargs, where):
    """cls(**kwargs) with the constructor's own checks reported as ValueErrors naming `where`."""
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{where}: {error}") from error

# ---- 2. nested objects through allow-lists ----

_DTYPE_POLICY_CLASSES = ("DTypePolicy", "FloatDTypePolicy")  # the latter: Keras 3.0-3.3


def check_dtype_policy(value, where):
    """A serialized Keras dtype policy, accepted only for float32 (fastcnn computes in it)."""
    if value is None or value == "float32":
        return
    if isinstance(value, dict):
        check_keys(value, ("module", "class_name", "config", "registered_name", "shared_object_id"),
              f"{where} dtype policy", required=("class_name", "config"))
        check_shared_object_id(value, f"{where} dtype policy")
        config = value["config"]
        if (value.get("module", "keras") in ("keras", "keras.dtype_policies")
                and value["class_name"] in _DTYPE_POLICY_CLASSES and value.get("registered_name") is None
                and isinstance(config, dict) and set(config) == {"name"} and config["name"] == "float32"):
            return
    fail(where, f"fastcnn computes in float32; the dtype policy must be float32. Received: dtype={show_value(value)}")


def check_object(value, where, kind, module, classes, keys_by_class):
    """A serialized object ``{"module", "class_name", "config", "registered_name"}`` (module may
    be absent: Keras 2's form) of an allow-listed class, its config keys checked; returns the
    class and its config."""
    check_keys(value, ("module", "class_name", "config", "registered_name", "shared_object_id"), where,
          required=("class_name",))
    check_shared_object_id(value, where)
    class_name = value["class_name"]
    if not isinstance(class_name, str) or class_name not in classes:
        fail(where, f"unknown {kind} class_name {show_value(class_name)}; fastcnn accepts {', '.join(classes)}")
    if value.get("module", module) != module:
        fail(where, f"{kind} {class_name!r} must come from module {module!r}. Received: module="
                     f"{show_value(value.get('module'))}")
    if value.get("registered_name") is not None:
        fail(where, f"{kind} {class_name!r}: custom (registered) objects are not supported. Received: "
                     f"registered_name={show_value(value['registered_name'])}")
    config = check_dict(value.get("config", {}), f"{where} ({class_name} config)")
    check_keys(config, keys_by_class[class_name], f"{where} ({class_name})")
    return classes[class_name], config



def check_number(value, where, key):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(where, f"`{key}` must be a number. Received: {key}={show_value(value)}")
    return value



_NOT_SIZES = ("seed", "axis")


def check_size_values(value, where, key):
    """Every integer in a size-like value lies within MAX_DIMENSION."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_DIMENSION:
            fail(where, f"`{key}` is beyond fastcnn's bound of {MAX_DIMENSION} for a size. Received: "
                         f"{key}={show_value(value)}")
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_size_values(item, where, key)



def check_batch_shape(value, where, key):
    """A Keras batch shape [batch or None, d1, ...]: positive, bounded dimensions."""
    if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= 4:
        fail(where, f"`{key}` must be a list [batch, d1, ...] of 1 to 3 sample dimensions. Received: "
                     f"{key}={show_value(value)}")
    batch, *dims = value
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or not 0 < batch <= 2**31):
        fail(where, f"`{key}` must start with None or a positive batch size. Received: {key}={show_value(value)}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= MAX_DIMENSION for d in dims):
        fail(where, f"`{key}` dimensions must be integers in [1, {MAX_DIMENSION}] (fastcnn needs every "
                     f"dimension known). Received: {key}={show_value(value)}")
    if math.prod(dims) > MAX_SAMPLE_ELEMENTS:
        fail(where, f"`{key}` describes {math.prod(dims)} values per sample, beyond fastcnn's bound of "
                     f"{MAX_SAMPLE_ELEMENTS}. Received: {key}={show_value(value)}")
    return (batch,) + tuple(dims)

