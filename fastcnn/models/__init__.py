"""Models: ``Model`` (``Model(inputs, outputs)`` is a functional model), ``Sequential``,
``load_model`` for Keras 3 ``.keras`` files, ``model_from_json``."""

from fastcnn.models.functional import Functional
from fastcnn.models.model import Model
from fastcnn.models.sequential import Sequential


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a Keras 3 `.keras` file written by fastcnn or by Keras: the architecture (through
    allow-lists; nothing from the file is imported, called or unpickled), the weights (count,
    dtype and shape checked first), and with `compile=True` the compile settings and optimizer
    state, so `fit` continues where the saved model stopped. `custom_objects` must be empty and
    `safe_mode` changes nothing: fastcnn never deserializes code."""
    from fastcnn.models import _keras_file

    return _keras_file.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def model_from_json(json_string, custom_objects=None):
    """The model a Keras-format JSON string describes (``model.to_json()`` of fastcnn or Keras),
    built through fastcnn's allow-lists (``fastcnn.saving.deserialize_model``); nothing named in
    the string is imported or called."""
    from fastcnn.models import _from_config  # noqa: PLC0415

    if custom_objects is not None:
        raise ValueError("fastcnn builds models from its own allow-listed classes only; `custom_objects` is not "
                         f"supported. Received: custom_objects={custom_objects!r}")
    return _from_config.model_from_json(json_string)


__all__ = ["Functional", "Model", "Sequential", "load_model", "model_from_json"]
