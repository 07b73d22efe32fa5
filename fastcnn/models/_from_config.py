"""Models from Keras-format configs: Sequential and Functional configs, and the serialized model of a
``.keras`` file. Every layer goes through fastcnn/layers/_from_config.py's allow-lists; shapes,
sizes and weight counts are checked before anything is allocated, and a graph is replayed on shapes
alone first (see fastcnn/_config_checks.py for the rules every value goes through)."""

import math

from fastcnn import layers
from fastcnn._config_checks import (MAX_DEPTH, MAX_JSON_CHARACTERS, MAX_LAYERS, MAX_LIST_LENGTH, MAX_PARAMETERS,
                                    MAX_SAMPLE_ELEMENTS, check_batch_shape, check_bool, check_dict, check_dtype_policy,
                                    check_keys, check_name, check_tree, fail, show_value)
from fastcnn.layers import _operations
from fastcnn.layers._from_config import layer_from_entry
from fastcnn.layers.input_layer import InputLayer


# ---- shapes and sizes before anything is allocated ----


def _weight_count(layer, input_shape):
    """Weights `layer` creates for a batch shape (Keras's layouts: conv kernel (kh, kw, in, out),
    dense (in, out), batch norm gamma/beta/moving mean/variance per channel)."""
    channels = input_shape[-1]
    if isinstance(layer, layers.SeparableConv2D):
        middle = channels * layer.depth_multiplier
        return math.prod(layer.kernel_size) * middle + middle * layer.filters + layer.filters * layer.use_bias
    if isinstance(layer, layers.DepthwiseConv2D):
        outputs = channels * layer.depth_multiplier
        return math.prod(layer.kernel_size) * outputs + outputs * layer.use_bias
    if isinstance(layer, layers.Conv2D):
        return (math.prod(layer.kernel_size) * (channels // layer.groups) * layer.filters
                + layer.filters * layer.use_bias)
    if isinstance(layer, layers.Dense):
        return channels * layer.units + layer.units * layer.use_bias
    if isinstance(layer, layers.PReLU):
        return math.prod(layer._alpha_shape(tuple(input_shape)[1:]))
    if isinstance(layer, layers.BatchNormalization):
        return channels * (2 + layer.scale + layer.center)
    if isinstance(layer, layers.LayerNormalization):
        return math.prod(input_shape[p] for p in layer._normalized_axes(input_shape)) * sum(layer._affine_weights())
    if isinstance(layer, layers.GroupNormalization):
        return channels * (layer.scale + layer.center)
    if type(layer).__name__ == "LayerScale":  # keras.applications.convnext's: one gamma per channel
        return channels
    if isinstance(layer, layers.Normalization):
        return 2 * math.prod(input_shape[d] for d in layer._keep_axes(input_shape)) + 1 if layer.input_mean is None else 0
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
                fail(f"{where}: model {layer.name!r}", f"takes inputs of shapes {expected}, not {shape}")
            total += layer.count_params()
            shape = (None,) + tuple(layer._output_sample_shapes[0])
            continue
        if recorded is not None and tuple(recorded[1:]) != shape[1:]:
            fail(f"{where}: layer {layer.name!r}", f"its build_config input_shape {recorded} differs from the "
                                                    f"shape it receives in this model, {shape}")
        try:
            total += _weight_count(layer, shape)
            shape = tuple(layer.compute_output_shape(shape))
        except (TypeError, ValueError, ZeroDivisionError) as error:
            raise ValueError(f"{where}: layer {layer.name!r} cannot take inputs of shape {shape}: {error}") from error
        if any(isinstance(d, int) and d <= 0 for d in shape[1:]):
            fail(f"{where}: layer {layer.name!r}", f"outputs the empty shape {shape}")
        if math.prod(shape[1:]) > MAX_SAMPLE_ELEMENTS:
            fail(f"{where}: layer {layer.name!r}", f"outputs {math.prod(shape[1:])} values per sample, beyond "
                                                    f"fastcnn's bound of {MAX_SAMPLE_ELEMENTS}")
        if total > MAX_PARAMETERS:
            fail(f"{where}: layer {layer.name!r}", f"brings the model to {total} weights, beyond fastcnn's bound "
                                                    f"of {MAX_PARAMETERS}")
    return total


# ---- the model ----

_SEQUENTIAL_KEYS = ("name", "trainable", "dtype", "layers", "build_input_shape")


def sequential_from_config(config, build_input_shape=None):
    """A fastcnn Sequential from a Keras Sequential config (``model.get_config()``), built when the
    config gives an input shape (its InputLayer, build_input_shape, the first layer's build_config,
    or `build_input_shape` from the serialized model's build_config)."""
    from fastcnn.models.sequential import Sequential  # noqa: PLC0415 (sequential imports this module)

    check_tree(config, "Sequential config")
    config = check_dict(config, "Sequential config")
    check_keys(config, _SEQUENTIAL_KEYS, "Sequential config", required=("name", "layers"))
    name = check_name(config["name"], "Sequential config")
    trainable = check_bool(config.get("trainable", True), "Sequential config", "trainable")
    check_dtype_policy(config.get("dtype"), "Sequential config")
    entries = config["layers"]
    if not isinstance(entries, list) or len(entries) > MAX_LAYERS:
        fail("Sequential config", f"`layers` must be a list of at most {MAX_LAYERS} layers. Received: "
                                   f"{show_value(entries)}")
    # A model used as a layer (Keras writes it whole, class Functional or Sequential) or a layer.
    built = [(_serialized_model(entry, f"Sequential config layers[{index}]"), None)
             if isinstance(entry, dict) and entry.get("class_name") in _MODEL_MODULES else layer_from_entry(entry, index)
             for index, entry in enumerate(entries)]
    input_layer = None
    if built and isinstance(built[0][0], InputLayer):
        input_layer = built.pop(0)[0]
    if any(isinstance(layer, InputLayer) for layer, _ in built):
        fail("Sequential config", "an InputLayer may only be the first of `layers`")
    names = [layer.name for layer, _ in built] + ([input_layer.name] if input_layer else [])
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        fail("Sequential config", f"layer names must be unique. Received the name {duplicates[0]!r} twice")
    model_layers = [layer for layer, _ in built]
    shapes = [shape for _, shape in built]

    # The input shape, from every place a config may record it; they must agree.
    candidates = []
    if input_layer is not None:
        candidates.append(("the InputLayer's batch_shape", input_layer.shape))
    if config.get("build_input_shape") is not None:
        candidates.append(("build_input_shape",
                           check_batch_shape(config["build_input_shape"], "Sequential config", "build_input_shape")))
    if build_input_shape is not None:
        candidates.append(("the model's build_config", build_input_shape))
    if shapes and shapes[0] is not None:
        candidates.append(("the first layer's build_config", shapes[0]))
    for label, shape in candidates[1:]:
        if tuple(shape[1:]) != tuple(candidates[0][1][1:]):
            fail("Sequential config", f"{label} {tuple(shape)} contradicts {candidates[0][0]} "
                                       f"{tuple(candidates[0][1])}")
    if candidates and model_layers:
        check_sizes(model_layers, candidates[0][1][1:], shapes, f"Sequential model {name!r}")
    elif any(shape is not None for shape in shapes):
        fail("Sequential config", "layers record build shapes but the model records no input shape")

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
    config = check_dict(config, where)
    check_keys(config, ("module", "class_name", "config", "registered_name", "build_config", "compile_config", "name",
                   "inbound_nodes"), where, required=("class_name", "config"))
    class_name = config["class_name"]
    if class_name not in _MODEL_MODULES:
        fail(where, f"fastcnn builds Sequential and Functional models only. Received: class_name={show_value(class_name)}")
    if config.get("module", "keras") not in _MODEL_MODULES[class_name]:
        fail(where, f"a {class_name} model's module must be one of {_MODEL_MODULES[class_name]}. Received: "
                     f"module={show_value(config.get('module'))}")
    if config.get("registered_name") not in (None, class_name, "Functional"):
        fail(where, f"custom (registered) models are not supported. Received: registered_name="
                     f"{show_value(config['registered_name'])}")
    if config.get("compile_config") is not None:
        check_dict(config["compile_config"], f"{where} compile_config")
    if class_name == "Sequential":
        build_shape = None
        if config.get("build_config") is not None:
            build_config = check_dict(config["build_config"], f"{where} build_config")
            check_keys(build_config, ("input_shape",), f"{where} build_config", required=("input_shape",))
            build_shape = check_batch_shape(build_config["input_shape"], f"{where} build_config", "input_shape")
        return sequential_from_config(config["config"], build_input_shape=build_shape)
    if config.get("build_config") is not None:
        check_keys(check_dict(config["build_config"], f"{where} build_config"), ("input_shape",), f"{where} build_config")
    return functional_from_config(config["config"])


def model_from_config(cls, config):
    """``cls.from_config(config)`` for Model, Sequential and Functional: a bare get_config()."""
    from fastcnn.models.sequential import Sequential  # noqa: PLC0415

    check_tree(config, "model config")
    config = check_dict(config, "model config")
    if issubclass(cls, Sequential) or ("input_layers" not in config and "output_layers" not in config):
        if not issubclass(cls, Sequential) and cls.__name__ not in ("Model", "Functional"):
            fail("model config", f"{cls.__name__} cannot be built from a config")
        return sequential_from_config(config)
    return functional_from_config(config)


_FUNCTIONAL_KEYS = ("name", "trainable", "layers", "input_layers", "output_layers", "dtype")


def _tensor_reference(value, where):
    """[layer name, node index, tensor index] (Keras's keras_history or an input/output entry)."""
    if (not isinstance(value, (list, tuple)) or len(value) != 3 or not isinstance(value[0], str)
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_LAYERS for v in value[1:])):
        fail(where, f"a tensor reference must be [layer name, node index, tensor index]. Received: {show_value(value)}")
    return check_name(value[0], where, "layer name"), value[1], value[2]


def _tensor_argument(value, where):
    """A call argument that is a symbolic tensor ("__keras_tensor__") -> its reference."""
    value = check_dict(value, where)
    check_keys(value, ("class_name", "config"), where, required=("class_name", "config"))
    if value["class_name"] != "__keras_tensor__":
        fail(where, f"call arguments must be symbolic tensors. Received: class_name={show_value(value['class_name'])}")
    tensor_config = check_dict(value["config"], where)
    check_keys(tensor_config, ("shape", "dtype", "keras_history", "sparse", "ragged", "name"), where,
               required=("keras_history",))
    if tensor_config.get("dtype", "float32") != "float32":
        fail(where, f"fastcnn computes in float32. Received: dtype={show_value(tensor_config['dtype'])}")
    return _tensor_reference(tensor_config["keras_history"], where)


def _operation_entry(body, where):
    """An arithmetic operation's entry (module keras.src.ops.numpy: Add, Subtract, Multiply,
    TrueDivide, Negative) -> a new fastcnn operation of that name."""
    check_keys(body, ("module", "class_name", "config", "registered_name"), where, required=("class_name", "config"))
    class_name = body["class_name"]
    if class_name not in _operations.CLASSES:
        fail(where, f"fastcnn computes the operations {sorted(_operations.CLASSES)} of {_operations.MODULE}. "
                    f"Received: class_name={show_value(class_name)}")
    if body.get("registered_name") not in (None, class_name):
        fail(where, f"registered_name must be {class_name!r}. Received: {show_value(body.get('registered_name'))}")
    config = check_dict(body["config"], where)
    check_keys(config, ("name",), where, required=("name",))
    return _operations.CLASSES[class_name](name=check_name(config["name"], where))


def _operation_call(operation, node, where):
    """One call of an arithmetic operation: ("operation", [references], arguments with None for
    each tensor and the numbers in place)."""
    node = check_dict(node, where)
    check_keys(node, ("args", "kwargs"), where, required=("args",))
    if check_dict(node.get("kwargs", {}), f"{where} kwargs"):
        fail(where, f"{type(operation).__name__} takes no keyword arguments. Received: {show_value(node['kwargs'])}")
    args = node["args"]
    if not isinstance(args, list) or len(args) != operation._arity:
        fail(where, f"{type(operation).__name__} takes {operation._arity} argument(s). Received: args={show_value(args)}")
    references, arguments = [], []
    for value in args:
        if _operations._is_number(value):
            if not math.isfinite(value):
                fail(where, f"numbers in a call must be finite. Received: {show_value(value)}")
            arguments.append(float(value))
        else:
            references.append(_tensor_argument(value, where))
            arguments.append(None)
    if not references:
        fail(where, f"{type(operation).__name__} needs a symbolic tensor among its arguments. Received: "
                    f"args={show_value(args)}")
    return "operation", references, arguments


def _node_arguments(node, where):
    """One call of a layer in a Functional config: ("single" or "list", [references], training)."""
    node = check_dict(node, where)
    check_keys(node, ("args", "kwargs"), where, required=("args",))
    kwargs = check_dict(node.get("kwargs", {}), f"{where} kwargs")
    check_keys(kwargs, ("mask", "training"), f"{where} kwargs")
    if kwargs.get("mask") is not None:
        fail(where, f"masks are not supported. Received: mask={show_value(kwargs['mask'])}")
    training = kwargs.get("training")
    if training is not None and not isinstance(training, bool):
        fail(where, f"`training` must be a bool or None. Received: training={show_value(training)}")
    args = node["args"]
    if not isinstance(args, list) or len(args) != 1:
        fail(where, f"a layer call takes one argument (a tensor or a list of tensors). Received: args={show_value(args)}")

    def tensor(value):
        return _tensor_argument(value, where)

    argument = args[0]
    if isinstance(argument, list):
        if not argument or len(argument) > MAX_LIST_LENGTH:
            fail(where, f"a layer call on a list needs 1 to {MAX_LIST_LENGTH} tensors. Received: {show_value(argument)}")
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
    config = check_dict(config, where)
    check_keys(config, _FUNCTIONAL_KEYS, where, required=("name", "layers", "input_layers", "output_layers"))
    name = check_name(config["name"], where)
    where = f"Functional model {name!r}"
    trainable = check_bool(config.get("trainable", True), where, "trainable")
    if config.get("dtype") is not None:
        check_dtype_policy(config["dtype"], where)
    entries = config["layers"]
    if not isinstance(entries, list) or not entries or len(entries) > MAX_LAYERS:
        fail(where, f"`layers` must be a list of 1 to {MAX_LAYERS} layers. Received: {show_value(entries)}")
    created, order, calls = {}, [], {}
    for index, entry in enumerate(entries):
        entry_where = f"{where} layers[{index}]"
        entry = check_dict(entry, entry_where)
        layer_name = check_name(entry.get("name"), entry_where)
        inbound = entry.get("inbound_nodes", [])
        if not isinstance(inbound, list) or len(inbound) > MAX_LAYERS:
            fail(entry_where, f"`inbound_nodes` must be a list. Received: {show_value(inbound)}")
        body = {k: v for k, v in entry.items() if k not in ("name", "inbound_nodes")}
        is_operation = body.get("module") == _operations.MODULE
        if is_operation:
            operation = _operation_entry(body, entry_where)
        elif body.get("class_name") in _MODEL_MODULES:
            operation = _serialized_model(body, entry_where)
        else:
            operation, _ = layer_from_entry(body, index)
        if operation.name != layer_name:
            fail(entry_where, f"the entry's name {layer_name!r} differs from its config's {operation.name!r}")
        if layer_name in created:
            fail(where, f"layer names must be unique. Received the name {layer_name!r} twice")
        if isinstance(operation, InputLayer) and inbound:
            fail(entry_where, "an InputLayer has no inbound nodes")
        created[layer_name] = operation
        order.append(layer_name)
        read_call = (lambda node, at, op=operation: _operation_call(op, node, at)) if is_operation else _node_arguments
        calls[layer_name] = [read_call(node, f"{entry_where} inbound_nodes[{i}]") for i, node in enumerate(inbound)]

    def resolve(outputs_of, run):
        """Replays every call in Keras's order; outputs_of[name] lists each call's outputs."""
        pending = {n: list(c) for n, c in calls.items() if c}
        while pending:
            progressed = False
            for layer_name in order:
                while pending.get(layer_name):
                    # An operation's call carries its arguments where a layer's carries `training`.
                    structure, references, training = pending[layer_name][0]
                    if not all(ref in created and k < len(outputs_of[ref]) for ref, k, _ in references):
                        if any(ref not in created for ref, _, _ in references):
                            missing = next(ref for ref, _, _ in references if ref not in created)
                            fail(where, f"layer {layer_name!r} reads the layer {missing!r}, which the config does "
                                         "not define")
                        break
                    inputs = []
                    for ref, k, t in references:
                        call_outputs = outputs_of[ref][k]
                        if t >= len(call_outputs):
                            fail(where, f"layer {layer_name!r} reads output {t} of {ref!r}, which has "
                                         f"{len(call_outputs)}")
                        inputs.append(call_outputs[t])
                    outputs_of[layer_name].append(run(created[layer_name], inputs if structure != "single"
                                                      else inputs[0], training))
                    pending[layer_name].pop(0)
                    progressed = True
                if layer_name in pending and not pending[layer_name]:
                    del pending[layer_name]
            if not progressed:
                fail(where, "the graph has loops or calls that read missing nodes; unresolved calls of "
                             f"{sorted(pending)[:10]}")

    # Shapes first: nothing is allocated until every size is known and bounded.
    shapes_of = {n: [[op.shape]] if isinstance(op, InputLayer) else [] for n, op in created.items()}
    counted, total = set(), [0]

    def shape_call(operation, inputs, training):
        layer_where = f"{where}: layer {operation.name!r}"
        if getattr(operation, "_is_operation", False):
            try:
                return [operation.compute_output_shape(list(inputs))]
            except ValueError as error:
                raise ValueError(f"{layer_where} cannot take inputs of shape {inputs}: {error}") from error
        if isinstance(operation, Model):
            given = [tuple(s[1:]) for s in (inputs if isinstance(inputs, list) else [inputs])]
            if given != [tuple(s) for s in operation._input_sample_shapes]:
                fail(layer_where, f"it takes inputs of shapes {operation.input_shape}. Received: {inputs}")
            return [(None,) + tuple(s) for s in operation._output_sample_shapes]
        try:
            if id(operation) not in counted:
                counted.add(id(operation))
                total[0] += _weight_count(operation, inputs if not isinstance(inputs, list) else inputs[0])
            output = tuple(operation.compute_output_shape(inputs))
        except (TypeError, ValueError, ZeroDivisionError, IndexError) as error:
            raise ValueError(f"{layer_where} cannot take inputs of shape {inputs}: {error}") from error
        if any(isinstance(d, int) and d <= 0 for d in output[1:]) or len(output) > 4:
            fail(layer_where, f"outputs the shape {output}, which fastcnn cannot compute")
        if math.prod(output[1:]) > MAX_SAMPLE_ELEMENTS:
            fail(layer_where, f"outputs {math.prod(output[1:])} values per sample, beyond fastcnn's bound of "
                               f"{MAX_SAMPLE_ELEMENTS}")
        if total[0] > MAX_PARAMETERS:
            fail(layer_where, f"brings the model to {total[0]} weights, beyond fastcnn's bound of {MAX_PARAMETERS}")
        return [output]

    resolve(shapes_of, shape_call)
    tensors_of = {n: [[op.output]] if isinstance(op, InputLayer) else [] for n, op in created.items()}

    def real_call(operation, inputs, training):
        if getattr(operation, "_is_operation", False):
            arguments = iter(inputs)
            return [operation(*[next(arguments) if value is None else value for value in training])]
        outputs = operation(inputs, training=training)
        return outputs if isinstance(outputs, list) else [outputs]

    resolve(tensors_of, real_call)

    def tensors(value, key):
        def one(reference):
            layer_name, k, t = _tensor_reference(reference, f"{where} `{key}`")
            if layer_name not in created:
                fail(where, f"`{key}` names the layer {layer_name!r}, which the config does not define")
            if isinstance(created[layer_name], Functional):
                k -= 1  # Keras counts a functional model's own input-to-output node first
            if not 0 <= k < len(tensors_of[layer_name]) or t >= len(tensors_of[layer_name][k]):
                fail(where, f"`{key}` refers to node {k} output {t} of {layer_name!r}, which does not exist")
            return tensors_of[layer_name][k][t]

        if isinstance(value, dict):
            return {check_name(k, where, key): one(v) for k, v in value.items()}
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            return one(value)
        if not isinstance(value, list) or not value:
            fail(where, f"`{key}` must be a tensor reference or a list of them. Received: {show_value(value)}")
        return [one(v) for v in value]

    return Functional(tensors(config["input_layers"], "input_layers"),
                      tensors(config["output_layers"], "output_layers"), name=name, trainable=trainable)


def deserialize_model(config, compile=True):
    """A fastcnn model from Keras's serialized form (``serialize_keras_object(model)``, a ``.keras``
    file's config.json) or from a bare Sequential or Functional config (``model.get_config()``)."""
    check_tree(config, "model config")
    config = check_dict(config, "model config")
    if "class_name" not in config:
        return functional_from_config(config) if "input_layers" in config else sequential_from_config(config)
    if not isinstance(compile, bool):
        raise TypeError(f"`compile` must be a bool. Received: compile={compile!r}")
    model = _serialized_model(config, "model config")
    compile_config = config.get("compile_config")
    if compile and compile_config:
        from fastcnn.models import _compile_config  # noqa: PLC0415

        _compile_config.compile_from_config(model, compile_config)
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
        raise TypeError(f"model_from_json takes a JSON string. Received: {show_value(json_string)}")
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

