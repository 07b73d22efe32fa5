"""Layers from Keras-format configs, through allow-lists: ``LAYER_KEYS`` names every layer class a
config may name with the keys Keras 3.15 writes for it; nested objects go through their modules'
checked ``deserialize`` (see fastcnn/_config_checks.py for the rules)."""

from fastcnn import activations, constraints, initializers, layers, regularizers
from fastcnn.layers import rescaling
from fastcnn._config_checks import (MAX_LIST_LENGTH, MAX_NAME_LENGTH, check_batch_shape, check_dict, check_dtype_policy,
                                    check_keys, check_name, check_size_values, check_tree, construct, fail, show_value)


def check_activation(value, where):
    if isinstance(value, str) and value in activations.SUPPORTED:
        return value
    fail(where, f"unknown activation {show_value(value)}; fastcnn accepts {', '.join(activations.SUPPORTED)}")


# Keras writes activity_regularizer for any layer that has one (keras.layers.Layer.get_config).
_BASE = ("name", "trainable", "dtype", "activity_regularizer")
_CONV_AND_DENSE_TAIL = ("kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
                        "activity_regularizer", "kernel_constraint", "bias_constraint")
_AFFINE = ("beta_initializer", "gamma_initializer", "beta_regularizer", "gamma_regularizer", "beta_constraint",
           "gamma_constraint")
_WARP = ("data_format", "height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value")

# Every layer class a config may name, with the keys Keras 3.15's get_config writes for it (the
# tests compare these with Keras's own configs). Keys a class does not list are refused.
LAYER_KEYS = {
    "InputLayer": ("batch_shape", "dtype", "sparse", "ragged", "name", "optional"),
    "Conv2D": _BASE + ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                       "activation", "use_bias") + _CONV_AND_DENSE_TAIL,
    "DepthwiseConv2D": _BASE + ("depth_multiplier", "kernel_size", "strides", "padding", "data_format",
                                "dilation_rate", "activation", "use_bias", "depthwise_initializer",
                                "bias_initializer", "depthwise_regularizer", "bias_regularizer",
                                "activity_regularizer", "depthwise_constraint", "bias_constraint"),
    # lora_rank / lora_alpha appear only when LoRA is on (refused by Dense's constructor).
    "Dense": _BASE + ("units", "activation", "use_bias") + _CONV_AND_DENSE_TAIL
    + ("quantization_config", "lora_rank", "lora_alpha"),
    "BatchNormalization": _BASE + ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
                                   "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
                                   "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint",
                                   "synchronized", "renorm", "renorm_clipping", "renorm_momentum"),
    "LayerNormalization": _BASE + ("axis", "epsilon", "center", "scale", "rms_scaling") + _AFFINE,
    "GroupNormalization": _BASE + ("groups", "axis", "epsilon", "center", "scale") + _AFFINE,
    "Normalization": _BASE + ("axis", "invert", "mean", "variance"),
    "Dropout": _BASE + ("rate", "seed", "noise_shape"),
    "SpatialDropout2D": ("rate", "seed", "name", "dtype", "data_format"),
    "GaussianNoise": _BASE + ("stddev", "seed"),
    "GaussianDropout": _BASE + ("rate", "seed"),
    "ELU": _BASE + ("alpha",),
    "PReLU": _BASE + ("alpha_initializer", "alpha_regularizer", "alpha_constraint", "shared_axes"),
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
    "SeparableConv2D": _BASE + ("depth_multiplier", "filters", "kernel_size", "strides", "padding", "data_format",
                                "dilation_rate", "activation", "use_bias", "depthwise_initializer",
                                "pointwise_initializer", "bias_initializer", "depthwise_regularizer",
                                "pointwise_regularizer", "bias_regularizer", "activity_regularizer",
                                "depthwise_constraint", "pointwise_constraint", "bias_constraint"),
    "Cropping2D": _BASE + ("cropping", "data_format"),
    "UpSampling2D": _BASE + ("size", "data_format", "interpolation"),
    "Identity": _BASE,
    "Softmax": _BASE + ("axis",),
}
# Layers of several inputs: their build_config records a list of shapes.
LIST_INPUT_LAYERS = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")
LAYER_CLASSES = {name: getattr(layers, name) for name in LAYER_KEYS}
# Layers Keras defines inside an application's module rather than keras.layers (serialized with that
# module and their class name as registered_name): (module, class name) -> config keys.
APPLICATION_LAYER_KEYS = {
    ("keras.src.applications.convnext", "LayerScale"): _BASE + ("init_values", "projection_dim"),
    ("keras.src.applications.convnext", "StochasticDepth"): _BASE + ("drop_path_rate",),
}


def _application_layer(module, class_name, config, where):
    """A ConvNeXt LayerScale or StochasticDepth from its config: every key allow-listed, numbers
    checked (their constructors check ranges)."""
    from fastcnn.layers import _convnext  # noqa: PLC0415 (it imports the layers this module lists)

    check_tree(config, where)
    config = check_dict(config, where)
    check_keys(config, APPLICATION_LAYER_KEYS[(module, class_name)], where)
    kwargs = {}
    for key, value in config.items():
        if key == "name":
            value = check_name(value, where)
        elif key == "dtype":
            check_dtype_policy(value, where)
            continue
        elif key == "trainable":
            if not isinstance(value, bool):
                fail(where, f"`trainable` must be a bool. Received: {show_value(value)}")
        else:
            check_size_values(value, where, key)
        kwargs[key] = value
    return construct(getattr(_convnext, class_name), kwargs, where)

# Keys holding integers that are not sizes (and may be large or negative).
_NOT_SIZES = ("seed", "axis", "mean", "variance")


def layer_where(class_name, config):
    name = config.get("name") if isinstance(config, dict) else None
    return f"layer {name!r} ({class_name})" if isinstance(name, str) and len(name) <= MAX_NAME_LENGTH \
        else f"layer of class {class_name}"


def layer_from_config(cls, config, where=None):
    """An allow-listed fastcnn layer of class `cls` (or InputLayer) from its Keras config."""
    class_name = cls.__name__
    if LAYER_CLASSES.get(class_name) is not cls:
        raise ValueError(f"{class_name} is not a layer class fastcnn can build from a config; it accepts "
                         f"{', '.join(LAYER_CLASSES)}")
    where = where or layer_where(class_name, config)
    check_tree(config, where)
    config = check_dict(config, where)
    check_keys(config, LAYER_KEYS[class_name], where)
    kwargs = {}
    for key, value in config.items():
        if key == "name":
            value = check_name(value, where)
        elif key == "dtype":
            check_dtype_policy(value, where)
            value = None  # float32, the only one
        elif key == "batch_shape":
            value = check_batch_shape(value, where, "batch_shape")
        elif key.endswith("_initializer"):
            value = initializers.deserialize(value, f"{where} `{key}`")
        elif key.endswith("_regularizer"):
            value = regularizers.deserialize(value, f"{where} `{key}`")
        elif key.endswith("_constraint"):
            value = constraints.deserialize(value, f"{where} `{key}`")
        elif key == "activation":
            value = check_activation(value, f"{where} `activation`")
        elif class_name == "Rescaling" and key in ("scale", "offset"):
            value = rescaling.deserialize_value(value)
        elif key not in _NOT_SIZES:
            check_size_values(value, where, key)
        kwargs[key] = value
    return construct(cls, kwargs, where)



def layer_from_entry(entry, index):
    """One element of a Sequential config's "layers": the serialized layer (and its build_config)."""
    where = f"layers[{index}]"
    entry = check_dict(entry, where)
    check_keys(entry, ("module", "class_name", "config", "registered_name", "build_config"), where,
          required=("class_name", "config"))
    class_name = entry["class_name"]
    application_layer = (entry.get("module"), class_name) in APPLICATION_LAYER_KEYS
    if not application_layer and (not isinstance(class_name, str) or class_name not in LAYER_CLASSES):
        fail(where, f"unknown layer class_name {show_value(class_name)}; fastcnn builds only {', '.join(LAYER_CLASSES)}"
                     " (custom layers, Lambda and other Keras layers cannot be loaded)")
    where = f"{where}: {layer_where(class_name, entry['config'])}"
    if application_layer:
        if entry.get("registered_name") not in (None, class_name):
            fail(where, f"registered_name must be {class_name!r}. Received: "
                        f"registered_name={show_value(entry['registered_name'])}")
    elif entry.get("module", "keras.layers") != "keras.layers":
        fail(where, f"a layer's module must be 'keras.layers'. Received: module={show_value(entry.get('module'))}")
    elif entry.get("registered_name") is not None:
        fail(where, f"custom (registered) layers are not supported. Received: "
                     f"registered_name={show_value(entry['registered_name'])}")
    build_shape = None
    if entry.get("build_config") is not None:
        build_config = check_dict(entry["build_config"], f"{where} build_config")
        check_keys(build_config, ("input_shape",), f"{where} build_config", required=("input_shape",))
        if class_name in LIST_INPUT_LAYERS:
            shapes = build_config["input_shape"]
            if not isinstance(shapes, (list, tuple)) or not 1 <= len(shapes) <= MAX_LIST_LENGTH:
                fail(f"{where} build_config", f"`input_shape` must be a list of shapes. Received: {show_value(shapes)}")
            build_shape = [check_batch_shape(shape, f"{where} build_config", "input_shape") for shape in shapes]
        else:
            build_shape = check_batch_shape(build_config["input_shape"], f"{where} build_config", "input_shape")
    if application_layer:
        layer = _application_layer(entry["module"], class_name, entry["config"], where)
    else:
        layer = layer_from_config(LAYER_CLASSES[class_name], entry["config"], where)
    return layer, build_shape

