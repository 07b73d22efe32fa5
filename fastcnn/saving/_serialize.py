"""fastcnn objects -> Keras 3.15's serialized forms, as ``keras.saving.serialize_keras_object``
writes them into a ``.keras`` file's config.json (tuples are kept where Keras's dict has tuples;
json.dumps writes them as lists, as Keras's does)."""

from fastcnn import losses, metrics, optimizers
from fastcnn.layers.base import float32_policy
from fastcnn.layers.input_layer import InputLayer


def serialize_layer(layer):
    """``{"module": "keras.layers", "class_name", "config", "registered_name"[, "build_config"]}``;
    every fastcnn layer class has its Keras counterpart's name."""
    entry = {"module": "keras.layers", "class_name": type(layer).__name__, "config": layer.get_config(),
             "registered_name": None}
    if not isinstance(layer, InputLayer):
        build_config = layer.get_build_config()
        if build_config is not None:
            entry["build_config"] = build_config
    return entry


def sequential_config(model):
    layers = [serialize_layer(layer) for layer in model.layers]
    if model._input_layer is not None:  # Keras lists it first (super().layers)
        layers.insert(0, serialize_layer(model._input_layer))
    config = {"name": model.name, "trainable": model.trainable, "dtype": float32_policy(), "layers": layers}
    if model.built:
        config["build_input_shape"] = model._input_layer.batch_shape
    return config


def _serialize_loss(loss):
    """As Keras records compile(loss=...): a name stays a name, a Loss object becomes its
    serialized config, one of the loss functions is written as Keras writes a function."""
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, losses.Loss):
        return {"module": "keras.losses", "class_name": type(loss).__name__, "config": loss.get_config(),
                "registered_name": None}
    for name in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        if loss is getattr(losses, name):
            # keras.saving.serialize_keras_object(keras.losses.sparse_categorical_crossentropy)
            # gives exactly this (its public-function fallback).
            return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
    raise ValueError(f"Cannot serialize the loss {loss!r}")


def _serialize_metric(metric):
    if isinstance(metric, str):
        return metric
    if type(metric) in (metrics.SparseCategoricalAccuracy, metrics.CategoricalAccuracy):
        return {"module": "keras.metrics", "class_name": type(metric).__name__, "config": metric.get_config(),
                "registered_name": None}
    if type(metric) is metrics.Accuracy:
        # fastcnn's Accuracy is the argmax accuracy Keras picks for the string "accuracy";
        # Keras's Accuracy class compares values exactly, so the string is what means the same.
        return metric.name if metric.name in ("accuracy", "acc") else "accuracy"
    raise ValueError(f"Cannot serialize the metric {metric!r}")


def compile_config(model):
    """Keras's Trainer.get_compile_config: {} before compile, else the compile arguments."""
    if not model.compiled:
        return {}
    arguments = model._compile_arguments
    metric_list = arguments["metrics"]
    return {"optimizer": optimizers.serialize(model.optimizer), "loss": _serialize_loss(arguments["loss"]),
            "loss_weights": None,
            "metrics": None if metric_list is None else [_serialize_metric(m) for m in metric_list],
            "weighted_metrics": None, "run_eagerly": arguments["run_eagerly"],
            "steps_per_execution": arguments["steps_per_execution"], "jit_compile": arguments["jit_compile"]}


def serialize_model(model):
    """``keras.saving.serialize_keras_object(model)`` for a fastcnn Sequential model."""
    from fastcnn.models.sequential import Sequential  # noqa: PLC0415

    if not isinstance(model, Sequential):
        raise TypeError(f"serialize_model takes a fastcnn Sequential model. Received: {model!r}")
    serialized = {"module": "keras", "class_name": "Sequential", "config": model.get_config(),
                  "registered_name": None}
    build_config = model.get_build_config()
    if build_config is not None:
        serialized["build_config"] = build_config
    serialized["compile_config"] = model.get_compile_config()
    return serialized
