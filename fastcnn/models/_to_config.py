"""fastcnn objects -> Keras 3.15's serialized forms, as ``keras.saving.serialize_keras_object``
writes them into a ``.keras`` file's config.json (tuples are kept where Keras's dict has tuples;
json.dumps writes them as lists, as Keras's does)."""

from fastcnn import losses, metrics, optimizers
from fastcnn.layers._operations import MODULE
from fastcnn.layers.base import float32_policy
from fastcnn.layers.input_layer import InputLayer


def serialize_layer(layer):
    """``{"module": "keras.layers", "class_name", "config", "registered_name"[, "build_config"]}``;
    every fastcnn layer class has its Keras counterpart's name (and, for a layer Keras defines in
    an application's module, that module and its class name as registered_name)."""
    entry = {"module": getattr(layer, "_keras_module", "keras.layers"), "class_name": type(layer).__name__,
             "config": layer.get_config(), "registered_name": getattr(layer, "_keras_registered_name", None)}
    if not isinstance(layer, InputLayer):
        build_config = layer.get_build_config()
        if build_config is not None:
            entry["build_config"] = build_config
    return entry


def sequential_config(model):
    from fastcnn.models.model import Model  # noqa: PLC0415

    # A model used as a layer is written whole, as Keras's serialize_keras_object writes it.
    layers = [serialize_model(layer) if isinstance(layer, Model) else serialize_layer(layer) for layer in model.layers]
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
    for name in losses._FUNCTIONS:
        if loss is losses._FUNCTIONS[name]:
            # keras.saving.serialize_keras_object(keras.losses.sparse_categorical_crossentropy)
            # gives exactly this (its public-function fallback).
            return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
    raise ValueError(f"Cannot serialize the loss {loss!r}")


def _serialize_metric(metric):
    """A compile metric as Keras's serialize_keras_object writes it: a string as it is, a Metric as
    its class and config, one of keras.metrics' functions by name."""
    if isinstance(metric, str):
        return metric
    if isinstance(metric, metrics.Metric) and type(metric).__name__ in metrics._CLASSES:
        return metrics.serialize(metric)
    name = getattr(metric, "__name__", None)
    if metrics._FUNCTIONS.get(name) is metric:
        return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
    raise ValueError(f"Cannot serialize the metric {metric!r}")


def _map_structure(function, value):
    """function applied to every leaf of a list / tuple / dict structure (compile's per-output forms)."""
    if isinstance(value, dict):
        return {key: _map_structure(function, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_map_structure(function, item) for item in value]
    return function(value)


def compile_config(model):
    """Keras's Trainer.get_compile_config: {} before compile, else the compile arguments (a model
    with several outputs keeps their list or dict forms)."""
    if not model.compiled:
        return {}
    arguments = model._compile_arguments
    metric_list = arguments["metrics"]
    weighted = arguments.get("weighted_metrics")
    loss_weights = arguments.get("loss_weights")
    return {"optimizer": optimizers.serialize(model.optimizer), "loss": _map_structure(_serialize_loss, arguments["loss"]),
            "loss_weights": None if loss_weights is None else _map_structure(float, loss_weights),
            "metrics": None if metric_list is None else _map_structure(_serialize_metric, metric_list),
            "weighted_metrics": None if weighted is None else _map_structure(_serialize_metric, weighted),
            "run_eagerly": arguments["run_eagerly"],
            "steps_per_execution": arguments["steps_per_execution"], "jit_compile": arguments["jit_compile"]}


def model_config(model):
    """Keras's get_config of a Sequential or functional model."""
    from fastcnn.models.sequential import Sequential  # noqa: PLC0415

    return sequential_config(model) if isinstance(model, Sequential) else functional_config(model)


def _tensor_config(tensor, own_nodes):
    """A symbolic tensor as Keras's serialize_node writes it: the node index counts only the
    producing operation's calls that belong to this model."""
    operation, node_index, tensor_index = tensor._keras_history
    index = sum(1 for node in operation._inbound_nodes[:node_index] if id(node) in own_nodes)
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(tensor.shape), "dtype": "float32",
                       "keras_history": [operation.name, index, tensor_index]}}


def _serialize_node(node, own_nodes):
    tensors = [_tensor_config(t, own_nodes) for t in node.input_tensors]
    # As Keras records a call: training when it was given, else mask=None for the operations whose
    # call takes a mask (models, BatchNormalization).
    if node.training is not None:
        kwargs = {"training": node.training}
    elif getattr(node.operation, "_call_takes_mask", False):
        kwargs = {"mask": None}
    else:
        kwargs = {}
    return {"args": [tensors if node.call_structure == "list" else tensors[0]], "kwargs": kwargs}


def functional_config(model):
    """Keras 3's Functional.get_config: the operations in order, each with the calls ("inbound_nodes")
    that belong to this model, and the input and output tensors as [name, node, tensor]."""
    from fastcnn.models.functional import Functional  # noqa: PLC0415
    from fastcnn.models.model import Model  # noqa: PLC0415

    own_nodes = {id(node) for node in model._nodes} | {id(t.node) for t in model._inputs}
    layer_configs = []
    for operation in model._operations:
        if getattr(operation, "_is_operation", False):
            # Keras's serialized operation: {"name"} as its config, numbers among the call's args.
            entry = {"module": MODULE, "class_name": type(operation).__name__, "config": operation.get_config(),
                     "registered_name": type(operation).__name__, "name": operation.name,
                     "inbound_nodes": [operation.serialize_call(node, lambda t: _tensor_config(t, own_nodes))
                                       for node in operation._inbound_nodes if id(node) in own_nodes]}
            layer_configs.append(entry)
            continue
        entry = serialize_model(operation) if isinstance(operation, Model) else serialize_layer(operation)
        entry["name"] = operation.name
        entry["inbound_nodes"] = [_serialize_node(node, own_nodes) for node in operation._inbound_nodes
                                  if id(node) in own_nodes and node.input_tensors]
        layer_configs.append(entry)

    def tensor_reference(tensor):
        operation, node_index, tensor_index = tensor._keras_history
        kept = sum(1 for node in operation._inbound_nodes[:node_index] if id(node) in own_nodes)
        # Keras counts a functional model's own input-to-output node first.
        return [operation.name, kept + (1 if isinstance(operation, Functional) else 0), tensor_index]

    def structure(tensors, kind_and_keys):
        kind, keys = kind_and_keys
        references = [tensor_reference(t) for t in tensors]
        if kind == "single":
            return references[0]
        if kind == "dict":
            return dict(zip(keys, references))
        return references

    return {"name": model.name, "trainable": model.trainable, "layers": layer_configs,
            "input_layers": structure(model._inputs, model._inputs_structure),
            "output_layers": structure(model._outputs, model._outputs_structure)}


def serialize_model(model):
    """``keras.saving.serialize_keras_object(model)`` for a fastcnn Sequential or functional model."""
    from fastcnn.models.functional import Functional  # noqa: PLC0415
    from fastcnn.models.sequential import Sequential  # noqa: PLC0415

    if isinstance(model, Sequential):
        serialized = {"module": "keras", "class_name": "Sequential", "config": model.get_config(),
                      "registered_name": None}
        build_config = model.get_build_config()
        if build_config is not None:
            serialized["build_config"] = build_config
    elif isinstance(model, Functional):
        serialized = {"module": "keras.src.models.functional", "class_name": "Functional",
                      "config": model.get_config(), "registered_name": "Functional",
                      "build_config": {"input_shape": None}}
    else:
        raise TypeError(f"serialize_model takes a fastcnn model. Received: {model!r}")
    serialized["compile_config"] = model.get_compile_config()
    return serialized
