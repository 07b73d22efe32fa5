"""Models: ``Sequential``, ``model_from_json``."""

from fastcnn.models.sequential import Sequential


def model_from_json(json_string, custom_objects=None):
    """The model a Keras-format JSON string describes (``model.to_json()`` of fastcnn or Keras),
    built through fastcnn's allow-lists (``fastcnn.saving.deserialize_model``); nothing named in
    the string is imported or called."""
    from fastcnn.saving import _config  # noqa: PLC0415 (saving imports models)

    if custom_objects is not None:
        raise ValueError("fastcnn builds models from its own allow-listed classes only; `custom_objects` is not "
                         f"supported. Received: custom_objects={custom_objects!r}")
    return _config.model_from_json(json_string)


__all__ = ["Sequential", "model_from_json"]
