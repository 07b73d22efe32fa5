"""A Keras compile_config -> ``model.compile(...)``, through allow-lists: the optimizer (with a
learning-rate schedule), the loss and the metrics fastcnn implements, every key and value checked
(see fastcnn/_config_checks.py for the rules). Nothing named in the config is imported or called."""

import math

from fastcnn import losses, metrics, optimizers, schedules
from fastcnn._config_checks import (check_bool, check_dict, check_keys, check_name, check_number, check_object, check_string,
                                    construct, fail, show_value)

_OPTIMIZER_BASE = ("name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm", "clipvalue", "use_ema",
                   "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps")
_ADAM = ("beta_1", "beta_2", "epsilon", "amsgrad")
# Keras 3.15's optimizer config keys, per class.
OPTIMIZER_KEYS = {
    "SGD": _OPTIMIZER_BASE + ("momentum", "nesterov"),
    "Adam": _OPTIMIZER_BASE + _ADAM,
    "AdamW": _OPTIMIZER_BASE + _ADAM,
    "RMSprop": _OPTIMIZER_BASE + ("rho", "momentum", "epsilon", "centered"),
    "Adagrad": _OPTIMIZER_BASE + ("initial_accumulator_value", "epsilon"),
    "Nadam": _OPTIMIZER_BASE + ("beta_1", "beta_2", "epsilon"),
}
OPTIMIZER_CLASSES = {name: getattr(optimizers, name) for name in OPTIMIZER_KEYS}

SCHEDULE_KEYS = {
    "ExponentialDecay": ("initial_learning_rate", "decay_steps", "decay_rate", "staircase", "name"),
    "PiecewiseConstantDecay": ("boundaries", "values", "name"),
    "CosineDecay": ("initial_learning_rate", "decay_steps", "alpha", "name", "warmup_target", "warmup_steps"),
}
SCHEDULE_CLASSES = {name: getattr(schedules, name) for name in SCHEDULE_KEYS}

LOSS_KEYS = {
    "SparseCategoricalCrossentropy": ("name", "reduction", "from_logits", "ignore_class"),
    "CategoricalCrossentropy": ("name", "reduction", "from_logits", "label_smoothing", "axis"),
    "BinaryCrossentropy": ("name", "reduction", "from_logits", "label_smoothing", "axis"),
    "MeanSquaredError": ("name", "reduction"), "MeanAbsoluteError": ("name", "reduction"),
    "Huber": ("name", "reduction", "delta"), "KLDivergence": ("name", "reduction"),
    "CategoricalHinge": ("name", "reduction"),
    "BinaryFocalCrossentropy": ("name", "reduction", "from_logits", "label_smoothing", "axis",
                                "apply_class_balancing", "alpha", "gamma"),
    "CategoricalFocalCrossentropy": ("name", "reduction", "from_logits", "label_smoothing", "axis", "alpha", "gamma"),
}
LOSS_CLASSES = {name: getattr(losses, name) for name in LOSS_KEYS}
LOSS_NAMES = tuple(losses._BY_NAME)  # the strings compile takes (and the functions' names)

_CONFUSION = ("name", "dtype", "thresholds", "top_k", "class_id")
METRIC_KEYS = {
    "Accuracy": ("name", "dtype"), "BinaryAccuracy": ("name", "dtype", "threshold"),
    "CategoricalAccuracy": ("name", "dtype"), "SparseCategoricalAccuracy": ("name", "dtype"),
    "TopKCategoricalAccuracy": ("name", "dtype", "k"), "SparseTopKCategoricalAccuracy": ("name", "dtype", "k",
                                                                                        "from_sorted_ids"),
    "Precision": _CONFUSION, "Recall": _CONFUSION,
    "AUC": ("name", "dtype", "num_thresholds", "curve", "summation_method", "multi_label", "num_labels",
            "label_weights", "from_logits", "thresholds"),
    "F1Score": ("name", "dtype", "average", "threshold"), "FBetaScore": ("name", "dtype", "average", "beta", "threshold"),
    "Mean": ("name", "dtype"), "Sum": ("name", "dtype"),
}
METRIC_CLASSES = {name: getattr(metrics, name) for name in METRIC_KEYS}

COMPILE_KEYS = ("optimizer", "loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly",
                "steps_per_execution", "jit_compile")


def _schedule(value, where):
    cls, config = check_object(value, where, "learning-rate schedule", "keras.optimizers.schedules", SCHEDULE_CLASSES,
                          SCHEDULE_KEYS)
    where = f"{where} ({cls.__name__})"
    if "name" in config:
        check_string(config["name"], where, "name", 256)
    if "staircase" in config:
        check_bool(config["staircase"], where, "staircase")
    for key in ("boundaries", "values"):
        if key in config:
            if not isinstance(config[key], list) or len(config[key]) > 10_000:
                fail(where, f"`{key}` must be a list of at most 10000 numbers. Received: {key}={show_value(config[key])}")
            for item in config[key]:
                check_number(item, where, key)
    for key in ("initial_learning_rate", "decay_steps", "decay_rate", "alpha", "warmup_steps"):
        if key in config:
            check_number(config[key], where, key)
    if config.get("warmup_target") is not None:
        check_number(config["warmup_target"], where, "warmup_target")
    return construct(cls, config, where)


def deserialize_optimizer(value, where="compile_config `optimizer`"):
    if isinstance(value, str):
        if value.lower() in optimizers._BY_NAME:
            return optimizers.get(value)
        fail(where, f"unknown optimizer {show_value(value)}; fastcnn accepts {', '.join(optimizers._BY_NAME)}")
    cls, config = check_object(check_dict(value, where), where, "optimizer", "keras.optimizers", OPTIMIZER_CLASSES,
                          OPTIMIZER_KEYS)
    where = f"{where} ({cls.__name__})"
    config = dict(config)
    if "name" in config:
        check_name(config["name"], where)
    learning_rate = config.get("learning_rate")
    if isinstance(learning_rate, dict):
        config["learning_rate"] = _schedule(learning_rate, f"{where} `learning_rate`")
    elif learning_rate is not None:
        check_number(learning_rate, where, "learning_rate")
    for key in ("nesterov", "amsgrad", "centered", "use_ema"):
        if key in config:
            check_bool(config[key], where, key)
    return construct(cls, config, where)


def deserialize_loss(value, where="compile_config `loss`"):
    if isinstance(value, str):
        if value in LOSS_NAMES:
            return value
        fail(where, f"unknown loss {show_value(value)}; fastcnn accepts {', '.join(LOSS_NAMES)}")
    value = check_dict(value, where)
    if value.get("class_name") == "function":
        # How Keras serializes a loss function (keras.losses.sparse_categorical_crossentropy):
        # the function's name as the config; it is looked up in fastcnn's list, never imported.
        check_keys(value, ("module", "class_name", "config", "registered_name"), where, required=("config",))
        if value.get("module") not in ("builtins", "keras.losses") or value["config"] not in losses._FUNCTIONS \
                or value.get("registered_name") not in (None, "function", value["config"]):
            fail(where, f"unknown loss function {show_value(value)}; fastcnn accepts {', '.join(losses._FUNCTIONS)}")
        return losses._FUNCTIONS[value["config"]]
    cls, config = check_object(value, where, "loss", "keras.losses", LOSS_CLASSES, LOSS_KEYS)
    return construct(cls, config, f"{where} ({cls.__name__})")


def deserialize_metric(value, where):
    """A compile metric: a Keras metric name, one of keras.metrics' functions by name, or an
    allow-listed Metric class with its config keys checked (the constructor checks the values)."""
    if isinstance(value, str):
        if value in ("accuracy", "acc") or value in metrics._BY_NAME:
            return value
        fail(where, f"unknown metric {show_value(value)}; fastcnn accepts "
                    f"{', '.join(sorted(set(metrics._BY_NAME) | {'acc'}))}")
    value = check_dict(value, where)
    if value.get("class_name") == "function":
        if value.get("module") != "builtins" or value.get("config") not in metrics._FUNCTIONS \
                or value.get("registered_name") not in (None, "function"):
            fail(where, f"unknown metric function {show_value(value)}; fastcnn accepts "
                        f"{', '.join(metrics._FUNCTIONS)}")
        return metrics._FUNCTIONS[value["config"]]
    cls, config = check_object(value, where, "metric", "keras.metrics", METRIC_CLASSES, METRIC_KEYS)
    if config.get("dtype", "float32") != "float32":
        fail(where, f"metrics compute in float32. Received: dtype={show_value(config['dtype'])}")
    if config.get("label_weights") is not None:
        fail(where, f"fastcnn's AUC takes no label_weights. Received: label_weights={show_value(config['label_weights'])}")
    arguments = {key: item for key, item in config.items() if key not in ("dtype", "label_weights")}
    if arguments.get("from_sorted_ids") is False:
        del arguments["from_sorted_ids"]
    return construct(cls, arguments, f"{where} ({cls.__name__})")


def _is_object(value):
    return isinstance(value, dict) and "class_name" in value


def _per_output_structure(value, where, deserialize):
    """A compile argument given once, per output as a list, or per output name as a dict."""
    if value is None:
        return None
    if isinstance(value, list):
        if not value or len(value) > 10_000:
            fail(where, f"a per-output list needs 1 to 10000 entries. Received: {show_value(value)}")
        return [deserialize(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict) and not _is_object(value):
        return {_output_name(key, where): deserialize(item, f"{where}[{key!r}]") for key, item in value.items()}
    return deserialize(value, where)


def _output_name(key, where):
    if not isinstance(key, str) or not 0 < len(key) <= 256:
        fail(where, f"output names must be non-empty strings. Received: {show_value(key)}")
    return key


def _loss_weight(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        fail(where, f"a loss weight must be a finite non-negative number. Received: {show_value(value)}")
    return float(value)


def _metrics_structure(value, where):
    """None, a list of metrics (one output), or per output: a list of lists, or a dict by name."""
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) > 10_000:
            fail(where, f"at most 10000 metrics. Received: {len(value)}")
        return [_metrics_structure(item, f"{where}[{index}]") if isinstance(item, list)
                else (None if item is None else deserialize_metric(item, f"{where}[{index}]"))
                for index, item in enumerate(value)]
    if isinstance(value, dict) and not _is_object(value):
        return {_output_name(key, where): _metrics_structure(item, f"{where}[{key!r}]") if isinstance(item, list)
                else deserialize_metric(item, f"{where}[{key!r}]") for key, item in value.items()}
    fail(where, f"`metrics` must be a list, a list per output or a dict by output name. Received: {show_value(value)}")


def compile_arguments(config):
    """The keyword arguments of ``model.compile`` a Keras compile_config describes."""
    where = "compile_config"
    config = check_dict(config, where)
    check_keys(config, COMPILE_KEYS, where, required=("optimizer", "loss"))
    arguments = {
        "optimizer": deserialize_optimizer(config["optimizer"]),
        "loss": _per_output_structure(config["loss"], f"{where} `loss`", deserialize_loss),
        "loss_weights": _per_output_structure(config.get("loss_weights"), f"{where} `loss_weights`", _loss_weight),
        "metrics": _metrics_structure(config.get("metrics"), f"{where} `metrics`"),
        "weighted_metrics": _metrics_structure(config.get("weighted_metrics"), f"{where} `weighted_metrics`"),
        "run_eagerly": check_bool(config.get("run_eagerly", False), where, "run_eagerly"),
    }
    steps = config.get("steps_per_execution", 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 < steps <= 2**31:
        fail(where, f"`steps_per_execution` must be a positive integer. Received: steps_per_execution={show_value(steps)}")
    arguments["steps_per_execution"] = steps
    jit_compile = config.get("jit_compile", "auto")
    if jit_compile not in ("auto", True, False) or jit_compile in (0, 1) and not isinstance(jit_compile, bool):
        fail(where, f"`jit_compile` must be a bool or 'auto'. Received: jit_compile={show_value(jit_compile)}")
    arguments["jit_compile"] = jit_compile
    return arguments


def compile_from_config(model, config):
    """Compiles `model` as the Keras compile_config describes (checked in full first)."""
    arguments = compile_arguments(config)
    try:
        model.compile(**arguments)
    except (TypeError, ValueError) as error:
        raise ValueError(f"compile_config: {error}") from error
