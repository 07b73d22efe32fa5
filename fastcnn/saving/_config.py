"""Keras-format configs -> fastcnn objects, safely.

A config (from a ``.keras`` file's config.json, ``model.to_json()``, or ``get_config()``) is data
from outside. Keras's own loader resolves ``module`` + ``class_name`` by importing; this one never
imports a module nor looks a callable up by a name from the config: every ``class_name`` maps
through the explicit allow-lists below to a fastcnn class, every key of every config must be one
Keras writes for that class, and every value is type- and range-checked before any constructor
runs. Anything else raises a ValueError naming where it was found (the layer, class or key) and the
value received.

Checks, in order:
1. ``check_tree``: the whole config is plain JSON data (dict with str keys, list/tuple, str, bool,
   int, finite float, None) of bounded depth, size, string length and integer magnitude.
2. The structure: model -> layers -> nested objects (initializers, regularizers, constraints,
   dtype policies, activations; optimizer, schedules, losses, metrics), each through its
   allow-list and its class's key list.
3. Sizes: the input shape (from the InputLayer, ``build_input_shape`` or ``build_config``) is
   checked, every layer's output shape and weight count is computed without allocating, and the
   totals are bounded before the model is built (weights allocated), so a file's weights can then
   be checked against known shapes.
"""

import math
import numbers

from fastcnn import activations, constraints, initializers, layers, regularizers
from fastcnn.layers.input_layer import InputLayer

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


def _show(value):
    """repr of a received value, cut short so a hostile config cannot flood the message."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + f"... ({len(text)} characters)"


def _fail(where, message):
    raise ValueError(f"{where}: {message}")


# ---- 1. plain, bounded JSON data ----


def check_tree(value, where="config"):
    """Raises unless `value` is plain JSON data within the limits above."""
    count = [0]

    def visit(item, path, depth):
        count[0] += 1
        if count[0] > MAX_NODES:
            _fail(where, f"the config has more than {MAX_NODES} entries")
        if depth > MAX_DEPTH:
            _fail(where, f"the config is nested more than {MAX_DEPTH} levels deep (at {path})")
        if item is None or isinstance(item, bool):
            return
        if isinstance(item, int):
            if abs(item) > MAX_INTEGER:
                _fail(where, f"{path} is an integer beyond 64 bits. Received: {_show(item)}")
            return
        if isinstance(item, float):
            if not math.isfinite(item):
                _fail(where, f"{path} must be a finite number. Received: {item!r}")
            return
        if isinstance(item, str):
            if len(item) > MAX_STRING_LENGTH:
                _fail(where, f"{path} is a string of {len(item)} characters (at most {MAX_STRING_LENGTH}). "
                             f"Received: {_show(item)}")
            return
        if isinstance(item, (list, tuple)):
            if len(item) > MAX_LIST_LENGTH:
                _fail(where, f"{path} is a list of {len(item)} items (at most {MAX_LIST_LENGTH})")
            for index, element in enumerate(item):
                visit(element, f"{path}[{index}]", depth + 1)
            return
        if isinstance(item, dict):
            for key, element in item.items():
                if not isinstance(key, str):
                    _fail(where, f"{path} has a non-string key. Received: {_show(key)}")
                visit(element, f"{path}[{key!r}]", depth + 1)
            return
        _fail(where, f"{path} must be plain JSON data (dict, list, str, number, bool or None). "
                     f"Received: {_show(item)} of type {type(item).__name__}")

    visit(value, where, 0)


def _dict(value, where):
    if not isinstance(value, dict):
        _fail(where, f"expected a dict. Received: {_show(value)}")
    return value


def _keys(config, allowed, where, required=()):
    unknown = [key for key in config if key not in allowed]
    if unknown:
        _fail(where, f"unknown config key {unknown[0]!r} (value {_show(config[unknown[0]])}). "
                     f"Allowed keys: {', '.join(allowed)}")
    missing = [key for key in required if key not in config]
    if missing:
        _fail(where, f"the config lacks the required key {missing[0]!r}")


def _string(value, where, key, maximum=MAX_STRING_LENGTH):
    if not isinstance(value, str) or not value or len(value) > maximum:
        _fail(where, f"`{key}` must be a non-empty string of at most {maximum} characters. Received: "
                     f"{key}={_show(value)}")
    return value


def check_name(value, where, key="name"):
    """Keras names: non-empty strings without '/' (Keras refuses it); bounded and printable here."""
    _string(value, where, key, MAX_NAME_LENGTH)
    if "/" in value or not value.isprintable():
        _fail(where, f"`{key}` must be printable and cannot contain '/'. Received: {key}={_show(value)}")
    return value


def _bool(value, where, key):
    if not isinstance(value, bool):
        _fail(where, f"`{key}` must be a bool. Received: {key}={_show(value)}")
    return value


def _check_shared_object_id(value, where):
    """Keras marks an object serialized in several places (the float32 dtype policy the model and
    its layers share) with `shared_object_id`, an integer, repeating the full config each time;
    fastcnn rebuilds each occurrence from its config, so the id only needs to be an integer."""
    if "shared_object_id" in value:
        identifier = value["shared_object_id"]
        if isinstance(identifier, bool) or not isinstance(identifier, int):
            _fail(where, f"`shared_object_id` must be an integer. Received: shared_object_id={_show(identifier)}")


def _construct(cls, kwargs, where):
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
        _keys(value, ("module", "class_name", "config", "registered_name", "shared_object_id"),
              f"{where} dtype policy", required=("class_name", "config"))
        _check_shared_object_id(value, f"{where} dtype policy")
        config = value["config"]
        if (value.get("module", "keras") in ("keras", "keras.dtype_policies")
                and value["class_name"] in _DTYPE_POLICY_CLASSES and value.get("registered_name") is None
                and isinstance(config, dict) and set(config) == {"name"} and config["name"] == "float32"):
            return
    _fail(where, f"fastcnn computes in float32; the dtype policy must be float32. Received: dtype={_show(value)}")


def _object(value, where, kind, module, classes, keys_by_class):
    """A serialized object ``{"module", "class_name", "config", "registered_name"}`` (module may
    be absent: Keras 2's form) of an allow-listed class, its config keys checked; returns the
    class and its config."""
    _keys(value, ("module", "class_name", "config", "registered_name", "shared_object_id"), where,
          required=("class_name",))
    _check_shared_object_id(value, where)
    class_name = value["class_name"]
    if not isinstance(class_name, str) or class_name not in classes:
        _fail(where, f"unknown {kind} class_name {_show(class_name)}; fastcnn accepts {', '.join(classes)}")
    if value.get("module", module) != module:
        _fail(where, f"{kind} {class_name!r} must come from module {module!r}. Received: module="
                     f"{_show(value.get('module'))}")
    if value.get("registered_name") is not None:
        _fail(where, f"{kind} {class_name!r}: custom (registered) objects are not supported. Received: "
                     f"registered_name={_show(value['registered_name'])}")
    config = _dict(value.get("config", {}), f"{where} ({class_name} config)")
    _keys(config, keys_by_class[class_name], f"{where} ({class_name})")
    return classes[class_name], config


_INITIALIZER_CLASSES = {cls.__name__: cls for cls in initializers._BY_NAME.values()}
_SEED_ONLY = ("seed", "input_axes", "output_axes")
_INITIALIZER_KEYS = {
    "Zeros": (), "Ones": (), "Constant": ("value",),
    "RandomUniform": ("seed", "minval", "maxval"), "RandomNormal": ("seed", "mean", "stddev"),
    "TruncatedNormal": ("seed", "mean", "stddev"),
    "VarianceScaling": ("seed", "scale", "mode", "distribution", "input_axes", "output_axes"),
    "GlorotUniform": _SEED_ONLY, "GlorotNormal": _SEED_ONLY, "HeUniform": _SEED_ONLY, "HeNormal": _SEED_ONLY,
    "LecunUniform": _SEED_ONLY, "LecunNormal": _SEED_ONLY,
}


def _number(value, where, key):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(where, f"`{key}` must be a number. Received: {key}={_show(value)}")
    return value


def deserialize_initializer(value, where):
    if isinstance(value, str):
        if value in initializers._BY_NAME or value in _INITIALIZER_CLASSES:
            return initializers.get(value)
        _fail(where, f"unknown initializer {_show(value)}; fastcnn accepts {', '.join(initializers._BY_NAME)}")
    cls, config = _object(_dict(value, where), where, "initializer", "keras.initializers", _INITIALIZER_CLASSES,
                          _INITIALIZER_KEYS)
    for key in ("value", "minval", "maxval", "mean", "stddev", "scale"):
        if key in config:
            _number(config[key], where, key)
    for key in ("mode", "distribution"):
        if key in config:
            _string(config[key], where, key)
    return _construct(cls, config, f"{where} ({cls.__name__})")


_REGULARIZER_CLASSES = {"L1": regularizers.L1, "L2": regularizers.L2, "L1L2": regularizers.L1L2}
_REGULARIZER_KEYS = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}


def deserialize_regularizer(value, where):
    if value is None:
        return None
    if isinstance(value, str):
        if value in regularizers._BY_NAME:
            return regularizers.get(value)
        _fail(where, f"unknown regularizer {_show(value)}; fastcnn accepts 'l1', 'l2', 'l1l2'")
    cls, config = _object(_dict(value, where), where, "regularizer", "keras.regularizers", _REGULARIZER_CLASSES,
                          _REGULARIZER_KEYS)
    return _construct(cls, config, f"{where} ({cls.__name__})")


_CONSTRAINT_CLASSES = {"MaxNorm": constraints.MaxNorm, "NonNeg": constraints.NonNeg,
                       "UnitNorm": constraints.UnitNorm, "MinMaxNorm": constraints.MinMaxNorm}
_CONSTRAINT_KEYS = {"MaxNorm": ("max_value", "axis"), "NonNeg": (), "UnitNorm": ("axis",),
                    "MinMaxNorm": ("min_value", "max_value", "rate", "axis")}


def deserialize_constraint(value, where):
    if value is None:
        return None
    if isinstance(value, str):
        if value in constraints._BY_NAME:
            return constraints.get(value)
        _fail(where, f"unknown constraint {_show(value)}; fastcnn accepts {', '.join(constraints._BY_NAME)}")
    cls, config = _object(_dict(value, where), where, "constraint", "keras.constraints", _CONSTRAINT_CLASSES,
                          _CONSTRAINT_KEYS)
    axis = config.get("axis", 0)
    if isinstance(axis, (list, tuple)) and len(axis) > 8:
        _fail(where, f"`axis` lists at most 8 axes. Received: axis={_show(axis)}")
    return _construct(cls, config, f"{where} ({cls.__name__})")


def _activation(value, where):
    if isinstance(value, str) and value in activations.SUPPORTED:
        return value
    _fail(where, f"unknown activation {_show(value)}; fastcnn accepts {', '.join(activations.SUPPORTED)}")


# ---- layers ----

_BASE = ("name", "trainable", "dtype")
_CONV_AND_DENSE_TAIL = ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
                        "activity_regularizer", "kernel_constraint", "bias_constraint")
_WARP = ("data_format", "height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value")

# Every layer class a config may name, with the keys Keras 3.15's get_config writes for it (the
# tests compare these with Keras's own configs). Keys a class does not list are refused.
LAYER_KEYS = {
    "InputLayer": ("batch_shape", "dtype", "sparse", "ragged", "name", "optional"),
    "Conv2D": _BASE + ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                       "activation", "use_bias") + _CONV_AND_DENSE_TAIL,
    # lora_rank / lora_alpha appear only when LoRA is on (refused by Dense's constructor).
    "Dense": _BASE + ("units", "activation", "use_bias") + _CONV_AND_DENSE_TAIL
    + ("quantization_config", "lora_rank", "lora_alpha"),
    "BatchNormalization": _BASE + ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
                                   "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
                                   "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
                                   "synchronized", "renorm", "renorm_clipping", "renorm_momentum"),
    "Dropout": _BASE + ("rate", "seed", "noise_shape"),
    "MaxPooling2D": _BASE + ("pool_size", "padding", "strides", "data_format"),
    "AveragePooling2D": _BASE + ("pool_size", "padding", "strides", "data_format"),
    "GlobalAveragePooling2D": _BASE + ("data_format", "keepdims"),
    "GlobalMaxPooling2D": _BASE + ("data_format", "keepdims"),
    "Flatten": _BASE + ("data_format",),
    "Reshape": _BASE + ("target_shape",),
    "ZeroPadding2D": _BASE + ("padding", "data_format"),
    "Rescaling": _BASE + ("scale", "offset"),
    "Activation": _BASE + ("activation",),
    "ReLU": _BASE + ("max_value", "negative_slope", "threshold"),
    "LeakyReLU": _BASE + ("negative_slope",),
    "RandomFlip": _BASE + ("data_format", "seed", "mode"),
    "RandomRotation": _BASE + ("data_format", "factor", "fill_mode", "fill_value", "interpolation", "seed"),
    "RandomTranslation": _BASE + _WARP,
    "RandomZoom": _BASE + _WARP,
    "RandomContrast": _BASE + ("data_format", "factor", "value_range", "seed"),
    "RandomBrightness": _BASE + ("data_format", "factor", "value_range", "seed"),
    "RandomCrop": _BASE + ("data_format", "height", "width", "seed"),
    "Resizing": _BASE + ("data_format", "height", "width", "interpolation", "crop_to_aspect_ratio",
                         "pad_to_aspect_ratio", "fill_mode", "fill_value", "antialias"),
    "CenterCrop": _BASE + ("data_format", "height", "width"),
    "Add": _BASE,
    "Subtract": _BASE,
    "Multiply": _BASE,
    "Average": _BASE,
    "Maximum": _BASE,
    "Minimum": _BASE,
    "Concatenate": _BASE + ("axis",),
}
# Layers of several inputs: their build_config records a list of shapes.
_LIST_INPUT_LAYERS = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")
LAYER_CLASSES = {name: getattr(layers, name) for name in LAYER_KEYS}

# Keys holding integers that are not sizes (and may be large or negative).
_NOT_SIZES = ("seed", "axis")


def _check_sizes(value, where, key):
    """Every integer in a size-like value lies within MAX_DIMENSION."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_DIMENSION:
            _fail(where, f"`{key}` is beyond fastcnn's bound of {MAX_DIMENSION} for a size. Received: "
                         f"{key}={_show(value)}")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_sizes(item, where, key)


def _layer_where(class_name, config):
    name = config.get("name") if isinstance(config, dict) else None
    return f"layer {name!r} ({class_name})" if isinstance(name, str) and len(name) <= MAX_NAME_LENGTH \
        else f"layer of class {class_name}"


def layer_from_config(cls, config, where=None):
    """An allow-listed fastcnn layer of class `cls` (or InputLayer) from its Keras config."""
    class_name = cls.__name__
    if LAYER_CLASSES.get(class_name) is not cls:
        raise ValueError(f"{class_name} is not a layer class fastcnn can build from a config; it accepts "
                         f"{', '.join(LAYER_CLASSES)}")
    where = where or _layer_where(class_name, config)
    check_tree(config, where)
    config = _dict(config, where)
    _keys(config, LAYER_KEYS[class_name], where)
    kwargs = {}
    for key, value in config.items():
        if key == "name":
            value = check_name(value, where)
        elif key == "dtype":
            check_dtype_policy(value, where)
            value = None  # float32, the only one
        elif key == "batch_shape":
            value = _batch_shape(value, where, "batch_shape")
        elif key.endswith("_initializer"):
            value = deserialize_initializer(value, f"{where} `{key}`")
        elif key.endswith("_regularizer"):
            value = deserialize_regularizer(value, f"{where} `{key}`")
        elif key.endswith("_constraint"):
            value = deserialize_constraint(value, f"{where} `{key}`")
        elif key == "activation":
            value = _activation(value, f"{where} `activation`")
        elif key not in _NOT_SIZES:
            _check_sizes(value, where, key)
        kwargs[key] = value
    return _construct(cls, kwargs, where)


def _batch_shape(value, where, key):
    """A Keras batch shape [batch or None, d1, ...]: positive, bounded dimensions."""
    if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= 4:
        _fail(where, f"`{key}` must be a list [batch, d1, ...] of 1 to 3 sample dimensions. Received: "
                     f"{key}={_show(value)}")
    batch, *dims = value
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or not 0 < batch <= 2**31):
        _fail(where, f"`{key}` must start with None or a positive batch size. Received: {key}={_show(value)}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= MAX_DIMENSION for d in dims):
        _fail(where, f"`{key}` dimensions must be integers in [1, {MAX_DIMENSION}] (fastcnn needs every "
                     f"dimension known). Received: {key}={_show(value)}")
    if math.prod(dims) > MAX_SAMPLE_ELEMENTS:
        _fail(where, f"`{key}` describes {math.prod(dims)} values per sample, beyond fastcnn's bound of "
                     f"{MAX_SAMPLE_ELEMENTS}. Received: {key}={_show(value)}")
    return (batch,) + tuple(dims)


def _layer_entry(entry, index):
    """One element of a Sequential config's "layers": the serialized layer (and its build_config)."""
    where = f"layers[{index}]"
    entry = _dict(entry, where)
    _keys(entry, ("module", "class_name", "config", "registered_name", "build_config"), where,
          required=("class_name", "config"))
    class_name = entry["class_name"]
    if not isinstance(class_name, str) or class_name not in LAYER_CLASSES:
        _fail(where, f"unknown layer class_name {_show(class_name)}; fastcnn builds only {', '.join(LAYER_CLASSES)}"
                     " (custom layers, Lambda and other Keras layers cannot be loaded)")
    where = f"{where}: {_layer_where(class_name, entry['config'])}"
    if entry.get("module", "keras.layers") != "keras.layers":
        _fail(where, f"a layer's module must be 'keras.layers'. Received: module={_show(entry.get('module'))}")
    if entry.get("registered_name") is not None:
        _fail(where, f"custom (registered) layers are not supported. Received: "
                     f"registered_name={_show(entry['registered_name'])}")
    build_shape = None
    if entry.get("build_config") is not None:
        build_config = _dict(entry["build_config"], f"{where} build_config")
        _keys(build_config, ("input_shape",), f"{where} build_config", required=("input_shape",))
        if class_name in _LIST_INPUT_LAYERS:
            shapes = build_config["input_shape"]
            if not isinstance(shapes, (list, tuple)) or not 1 <= len(shapes) <= MAX_LIST_LENGTH:
                _fail(f"{where} build_config", f"`input_shape` must be a list of shapes. Received: {_show(shapes)}")
            build_shape = [_batch_shape(shape, f"{where} build_config", "input_shape") for shape in shapes]
        else:
            build_shape = _batch_shape(build_config["input_shape"], f"{where} build_config", "input_shape")
    layer = layer_from_config(LAYER_CLASSES[class_name], entry["config"], where)
    return layer, build_shape


# ---- 3. shapes and sizes before anything is allocated ----


def _weight_count(layer, input_shape):
    """Weights `layer` creates for a batch shape (Keras's layouts: conv kernel (kh, kw, in, out),
    dense (in, out), batch norm gamma/beta/moving mean/variance per channel)."""
    channels = input_shape[-1]
    if isinstance(layer, layers.Conv2D):
        return math.prod(layer.kernel_size) * channels * layer.filters + layer.filters * layer.use_bias
    if isinstance(layer, layers.Dense):
        return channels * layer.units + layer.units * layer.use_bias
    if isinstance(layer, layers.BatchNormalization):
        return channels * (2 + layer.scale + layer.center)
    return 0


def check_sizes(layer_list, sample_shape, build_shapes, where="model"):
    """Walks the layers' output shapes from `sample_shape` (no weights allocated): each layer's
    recorded build_config shape must be the shape it receives, each shape within
    MAX_SAMPLE_ELEMENTS, the total weight count within MAX_PARAMETERS."""
    shape = (None,) + tuple(sample_shape)
    total = 0
    from fastcnn.models.model import Model  # noqa: PLC0415

    for layer, recorded in zip(layer_list, build_shapes):
        if isinstance(layer, Model):  # built by its own config: its shapes are known
            expected = [tuple(s) for s in layer._input_sample_shapes or []]
            if expected != [tuple(shape[1:])] or len(layer._output_sample_shapes) != 1:
                _fail(f"{where}: model {layer.name!r}", f"takes inputs of shapes {expected}, not {shape}")
            total += layer.count_params()
            shape = (None,) + tuple(layer._output_sample_shapes[0])
            continue
        if recorded is not None and tuple(recorded[1:]) != shape[1:]:
            _fail(f"{where}: layer {layer.name!r}", f"its build_config input_shape {recorded} differs from the "
                                                    f"shape it receives in this model, {shape}")
        try:
            total += _weight_count(layer, shape)
            shape = tuple(layer.compute_output_shape(shape))
        except (TypeError, ValueError, ZeroDivisionError) as error:
            raise ValueError(f"{where}: layer {layer.name!r} cannot take inputs of shape {shape}: {error}") from error
        if any(isinstance(d, int) and d <= 0 for d in shape[1:]):
            _fail(f"{where}: layer {layer.name!r}", f"outputs the empty shape {shape}")
        if math.prod(shape[1:]) > MAX_SAMPLE_ELEMENTS:
            _fail(f"{where}: layer {layer.name!r}", f"outputs {math.prod(shape[1:])} values per sample, beyond "
                                                    f"fastcnn's bound of {MAX_SAMPLE_ELEMENTS}")
        if total > MAX_PARAMETERS:
            _fail(f"{where}: layer {layer.name!r}", f"brings the model to {total} weights, beyond fastcnn's bound "
                                                    f"of {MAX_PARAMETERS}")
    return total


# ---- the model ----

_SEQUENTIAL_KEYS = ("name", "trainable", "dtype", "layers", "build_input_shape")


def sequential_from_config(config, build_input_shape=None):
    """A fastcnn Sequential from a Keras Sequential config (``model.get_config()``), built when the
    config gives an input shape (its InputLayer, build_input_shape, the first layer's build_config,
    or `build_input_shape` from the serialized model's build_config)."""
    from fastcnn.models.sequential import Sequential  # noqa: PLC0415 (models imports saving lazily)

    check_tree(config, "Sequential config")
    config = _dict(config, "Sequential config")
    _keys(config, _SEQUENTIAL_KEYS, "Sequential config", required=("name", "layers"))
    name = check_name(config["name"], "Sequential config")
    trainable = _bool(config.get("trainable", True), "Sequential config", "trainable")
    check_dtype_policy(config.get("dtype"), "Sequential config")
    entries = config["layers"]
    if not isinstance(entries, list) or len(entries) > MAX_LAYERS:
        _fail("Sequential config", f"`layers` must be a list of at most {MAX_LAYERS} layers. Received: "
                                   f"{_show(entries)}")
    # A model used as a layer (Keras writes it whole, class Functional or Sequential) or a layer.
    built = [(_serialized_model(entry, f"Sequential config layers[{index}]"), None)
             if isinstance(entry, dict) and entry.get("class_name") in _MODEL_MODULES else _layer_entry(entry, index)
             for index, entry in enumerate(entries)]
    input_layer = None
    if built and isinstance(built[0][0], InputLayer):
        input_layer = built.pop(0)[0]
    if any(isinstance(layer, InputLayer) for layer, _ in built):
        _fail("Sequential config", "an InputLayer may only be the first of `layers`")
    names = [layer.name for layer, _ in built] + ([input_layer.name] if input_layer else [])
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        _fail("Sequential config", f"layer names must be unique. Received the name {duplicates[0]!r} twice")
    model_layers = [layer for layer, _ in built]
    shapes = [shape for _, shape in built]

    # The input shape, from every place a config may record it; they must agree.
    candidates = []
    if input_layer is not None:
        candidates.append(("the InputLayer's batch_shape", input_layer.shape))
    if config.get("build_input_shape") is not None:
        candidates.append(("build_input_shape",
                           _batch_shape(config["build_input_shape"], "Sequential config", "build_input_shape")))
    if build_input_shape is not None:
        candidates.append(("the model's build_config", build_input_shape))
    if shapes and shapes[0] is not None:
        candidates.append(("the first layer's build_config", shapes[0]))
    for label, shape in candidates[1:]:
        if tuple(shape[1:]) != tuple(candidates[0][1][1:]):
            _fail("Sequential config", f"{label} {tuple(shape)} contradicts {candidates[0][0]} "
                                       f"{tuple(candidates[0][1])}")
    if candidates and model_layers:
        check_sizes(model_layers, candidates[0][1][1:], shapes, f"Sequential model {name!r}")
    elif any(shape is not None for shape in shapes):
        _fail("Sequential config", "layers record build shapes but the model records no input shape")

    model = Sequential(name=name, trainable=trainable)
    if input_layer is None and candidates:
        input_layer = InputLayer(batch_shape=candidates[0][1])
    if input_layer is not None:
        model.add(input_layer, rebuild=False)
    for layer in model_layers:
        model.add(layer, rebuild=False)
    model._maybe_build()
    return model


_MODEL_MODULES = {"Sequential": ("keras", "keras.models", "keras.src.models.sequential"),
                  "Functional": ("keras", "keras.models", "keras.src.models.functional"),
                  "Model": ("keras", "keras.models", "keras.src.models.model")}


def _serialized_model(config, where):
    """A model from its serialized entry (Keras's serialize_keras_object form): Sequential, or
    Functional (also written as class Model), checked like every other object."""
    config = _dict(config, where)
    _keys(config, ("module", "class_name", "config", "registered_name", "build_config", "compile_config", "name",
                   "inbound_nodes"), where, required=("class_name", "config"))
    class_name = config["class_name"]
    if class_name not in _MODEL_MODULES:
        _fail(where, f"fastcnn builds Sequential and Functional models only. Received: class_name={_show(class_name)}")
    if config.get("module", "keras") not in _MODEL_MODULES[class_name]:
        _fail(where, f"a {class_name} model's module must be one of {_MODEL_MODULES[class_name]}. Received: "
                     f"module={_show(config.get('module'))}")
    if config.get("registered_name") not in (None, class_name, "Functional"):
        _fail(where, f"custom (registered) models are not supported. Received: registered_name="
                     f"{_show(config['registered_name'])}")
    if config.get("compile_config") is not None:
        _dict(config["compile_config"], f"{where} compile_config")
    if class_name == "Sequential":
        build_shape = None
        if config.get("build_config") is not None:
            build_config = _dict(config["build_config"], f"{where} build_config")
            _keys(build_config, ("input_shape",), f"{where} build_config", required=("input_shape",))
            build_shape = _batch_shape(build_config["input_shape"], f"{where} build_config", "input_shape")
        return sequential_from_config(config["config"], build_input_shape=build_shape)
    if config.get("build_config") is not None:
        _keys(_dict(config["build_config"], f"{where} build_config"), ("input_shape",), f"{where} build_config")
    return functional_from_config(config["config"])


def model_from_config(cls, config):
    """``cls.from_config(config)`` for Model, Sequential and Functional: a bare get_config()."""
    from fastcnn.models.sequential import Sequential  # noqa: PLC0415

    check_tree(config, "model config")
    config = _dict(config, "model config")
    if issubclass(cls, Sequential) or ("input_layers" not in config and "output_layers" not in config):
        if not issubclass(cls, Sequential) and cls.__name__ not in ("Model", "Functional"):
            _fail("model config", f"{cls.__name__} cannot be built from a config")
        return sequential_from_config(config)
    return functional_from_config(config)


_FUNCTIONAL_KEYS = ("name", "trainable", "layers", "input_layers", "output_layers", "dtype")


def _tensor_reference(value, where):
    """[layer name, node index, tensor index] (Keras's keras_history or an input/output entry)."""
    if (not isinstance(value, (list, tuple)) or len(value) != 3 or not isinstance(value[0], str)
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_LAYERS for v in value[1:])):
        _fail(where, f"a tensor reference must be [layer name, node index, tensor index]. Received: {_show(value)}")
    return check_name(value[0], where, "layer name"), value[1], value[2]


def _node_arguments(node, where):
    """One call of a layer in a Functional config: ("single" or "list", [references], training)."""
    node = _dict(node, where)
    _keys(node, ("args", "kwargs"), where, required=("args",))
    kwargs = _dict(node.get("kwargs", {}), f"{where} kwargs")
    _keys(kwargs, ("mask", "training"), f"{where} kwargs")
    if kwargs.get("mask") is not None:
        _fail(where, f"masks are not supported. Received: mask={_show(kwargs['mask'])}")
    training = kwargs.get("training")
    if training is not None and not isinstance(training, bool):
        _fail(where, f"`training` must be a bool or None. Received: training={_show(training)}")
    args = node["args"]
    if not isinstance(args, list) or len(args) != 1:
        _fail(where, f"a layer call takes one argument (a tensor or a list of tensors). Received: args={_show(args)}")

    def tensor(value):
        value = _dict(value, where)
        _keys(value, ("class_name", "config"), where, required=("class_name", "config"))
        if value["class_name"] != "__keras_tensor__":
            _fail(where, f"call arguments must be symbolic tensors. Received: class_name={_show(value['class_name'])}")
        tensor_config = _dict(value["config"], where)
        _keys(tensor_config, ("shape", "dtype", "keras_history", "sparse", "ragged", "name"), where,
              required=("keras_history",))
        if tensor_config.get("dtype", "float32") != "float32":
            _fail(where, f"fastcnn computes in float32. Received: dtype={_show(tensor_config['dtype'])}")
        return _tensor_reference(tensor_config["keras_history"], where)

    argument = args[0]
    if isinstance(argument, list):
        if not argument or len(argument) > MAX_LIST_LENGTH:
            _fail(where, f"a layer call on a list needs 1 to {MAX_LIST_LENGTH} tensors. Received: {_show(argument)}")
        return "list", [tensor(v) for v in argument], training
    return "single", [tensor(argument)], training


def functional_from_config(config):
    """A fastcnn functional model from a Keras Functional config. Every layer goes through the
    allow-lists; the calls are replayed in Keras's order (a call waits until the tensors it reads
    exist; no progress means loops or missing layers: refused), first on shapes alone (sizes and
    weight counts bounded, nothing allocated), then for real."""
    from fastcnn.models.functional import Functional  # noqa: PLC0415
    from fastcnn.models.model import Model  # noqa: PLC0415

    where = "Functional config"
    check_tree(config, where)
    config = _dict(config, where)
    _keys(config, _FUNCTIONAL_KEYS, where, required=("name", "layers", "input_layers", "output_layers"))
    name = check_name(config["name"], where)
    where = f"Functional model {name!r}"
    trainable = _bool(config.get("trainable", True), where, "trainable")
    if config.get("dtype") is not None:
        check_dtype_policy(config["dtype"], where)
    entries = config["layers"]
    if not isinstance(entries, list) or not entries or len(entries) > MAX_LAYERS:
        _fail(where, f"`layers` must be a list of 1 to {MAX_LAYERS} layers. Received: {_show(entries)}")
    created, order, calls = {}, [], {}
    for index, entry in enumerate(entries):
        entry_where = f"{where} layers[{index}]"
        entry = _dict(entry, entry_where)
        layer_name = check_name(entry.get("name"), entry_where)
        inbound = entry.get("inbound_nodes", [])
        if not isinstance(inbound, list) or len(inbound) > MAX_LAYERS:
            _fail(entry_where, f"`inbound_nodes` must be a list. Received: {_show(inbound)}")
        body = {k: v for k, v in entry.items() if k not in ("name", "inbound_nodes")}
        if body.get("class_name") in _MODEL_MODULES:
            operation = _serialized_model(body, entry_where)
        else:
            operation, _ = _layer_entry(body, index)
        if operation.name != layer_name:
            _fail(entry_where, f"the entry's name {layer_name!r} differs from its config's {operation.name!r}")
        if layer_name in created:
            _fail(where, f"layer names must be unique. Received the name {layer_name!r} twice")
        if isinstance(operation, InputLayer) and inbound:
            _fail(entry_where, "an InputLayer has no inbound nodes")
        created[layer_name] = operation
        order.append(layer_name)
        calls[layer_name] = [_node_arguments(node, f"{entry_where} inbound_nodes[{i}]")
                             for i, node in enumerate(inbound)]

    def resolve(outputs_of, run):
        """Replays every call in Keras's order; outputs_of[name] lists each call's outputs."""
        pending = {n: list(c) for n, c in calls.items() if c}
        while pending:
            progressed = False
            for layer_name in order:
                while pending.get(layer_name):
                    structure, references, training = pending[layer_name][0]
                    if not all(ref in created and k < len(outputs_of[ref]) for ref, k, _ in references):
                        if any(ref not in created for ref, _, _ in references):
                            missing = next(ref for ref, _, _ in references if ref not in created)
                            _fail(where, f"layer {layer_name!r} reads the layer {missing!r}, which the config does "
                                         "not define")
                        break
                    inputs = []
                    for ref, k, t in references:
                        call_outputs = outputs_of[ref][k]
                        if t >= len(call_outputs):
                            _fail(where, f"layer {layer_name!r} reads output {t} of {ref!r}, which has "
                                         f"{len(call_outputs)}")
                        inputs.append(call_outputs[t])
                    outputs_of[layer_name].append(run(created[layer_name], inputs if structure == "list"
                                                      else inputs[0], training))
                    pending[layer_name].pop(0)
                    progressed = True
                if layer_name in pending and not pending[layer_name]:
                    del pending[layer_name]
            if not progressed:
                _fail(where, "the graph has loops or calls that read missing nodes; unresolved calls of "
                             f"{sorted(pending)[:10]}")

    # Shapes first: nothing is allocated until every size is known and bounded.
    shapes_of = {n: [[op.shape]] if isinstance(op, InputLayer) else [] for n, op in created.items()}
    counted, total = set(), [0]

    def shape_call(operation, inputs, training):
        layer_where = f"{where}: layer {operation.name!r}"
        if isinstance(operation, Model):
            given = [tuple(s[1:]) for s in (inputs if isinstance(inputs, list) else [inputs])]
            if given != [tuple(s) for s in operation._input_sample_shapes]:
                _fail(layer_where, f"it takes inputs of shapes {operation.input_shape}. Received: {inputs}")
            return [(None,) + tuple(s) for s in operation._output_sample_shapes]
        try:
            if id(operation) not in counted:
                counted.add(id(operation))
                total[0] += _weight_count(operation, inputs if not isinstance(inputs, list) else inputs[0])
            output = tuple(operation.compute_output_shape(inputs))
        except (TypeError, ValueError, ZeroDivisionError, IndexError) as error:
            raise ValueError(f"{layer_where} cannot take inputs of shape {inputs}: {error}") from error
        if any(isinstance(d, int) and d <= 0 for d in output[1:]) or len(output) > 4:
            _fail(layer_where, f"outputs the shape {output}, which fastcnn cannot compute")
        if math.prod(output[1:]) > MAX_SAMPLE_ELEMENTS:
            _fail(layer_where, f"outputs {math.prod(output[1:])} values per sample, beyond fastcnn's bound of "
                               f"{MAX_SAMPLE_ELEMENTS}")
        if total[0] > MAX_PARAMETERS:
            _fail(layer_where, f"brings the model to {total[0]} weights, beyond fastcnn's bound of {MAX_PARAMETERS}")
        return [output]

    resolve(shapes_of, shape_call)
    tensors_of = {n: [[op.output]] if isinstance(op, InputLayer) else [] for n, op in created.items()}

    def real_call(operation, inputs, training):
        outputs = operation(inputs, training=training)
        return outputs if isinstance(outputs, list) else [outputs]

    resolve(tensors_of, real_call)

    def tensors(value, key):
        def one(reference):
            layer_name, k, t = _tensor_reference(reference, f"{where} `{key}`")
            if layer_name not in created:
                _fail(where, f"`{key}` names the layer {layer_name!r}, which the config does not define")
            if isinstance(created[layer_name], Functional):
                k -= 1  # Keras counts a functional model's own input-to-output node first
            if not 0 <= k < len(tensors_of[layer_name]) or t >= len(tensors_of[layer_name][k]):
                _fail(where, f"`{key}` refers to node {k} output {t} of {layer_name!r}, which does not exist")
            return tensors_of[layer_name][k][t]

        if isinstance(value, dict):
            return {check_name(k, where, key): one(v) for k, v in value.items()}
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            return one(value)
        if not isinstance(value, list) or not value:
            _fail(where, f"`{key}` must be a tensor reference or a list of them. Received: {_show(value)}")
        return [one(v) for v in value]

    return Functional(tensors(config["input_layers"], "input_layers"),
                      tensors(config["output_layers"], "output_layers"), name=name, trainable=trainable)


def deserialize_model(config, compile=True):
    """A fastcnn model from Keras's serialized form (``serialize_keras_object(model)``, a ``.keras``
    file's config.json) or from a bare Sequential or Functional config (``model.get_config()``)."""
    check_tree(config, "model config")
    config = _dict(config, "model config")
    if "class_name" not in config:
        return functional_from_config(config) if "input_layers" in config else sequential_from_config(config)
    if not isinstance(compile, bool):
        raise TypeError(f"`compile` must be a bool. Received: compile={compile!r}")
    model = _serialized_model(config, "model config")
    compile_config = config.get("compile_config")
    if compile and compile_config:
        from fastcnn.saving import _compile  # noqa: PLC0415

        _compile.compile_from_config(model, compile_config)
    return model


def model_from_json(json_string):
    """deserialize_model(json.loads(json_string)); NaN/Infinity literals and over-deep or oversized
    documents raise a ValueError."""
    if isinstance(json_string, (bytes, bytearray)):
        try:
            json_string = json_string.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"The model JSON is not UTF-8: {error}") from None
    if not isinstance(json_string, str):
        raise TypeError(f"model_from_json takes a JSON string. Received: {_show(json_string)}")
    if len(json_string) > MAX_JSON_CHARACTERS:
        raise ValueError(f"The model JSON has {len(json_string)} characters, beyond fastcnn's bound of "
                         f"{MAX_JSON_CHARACTERS}")

    import json  # here, not at import

    def refuse_constant(name):
        raise ValueError(f"The model JSON contains {name}; configs hold finite numbers only")

    try:
        config = json.loads(json_string, parse_constant=refuse_constant)
    except RecursionError:
        raise ValueError(f"The model JSON is nested too deeply (fastcnn reads up to {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"The model JSON is not valid JSON: {error}") from None
    return deserialize_model(config)

