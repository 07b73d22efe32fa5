"""Keras-format model configs: ``serialize_model`` writes what ``keras.saving.serialize_keras_object``
writes for the equivalent Keras model (a ``.keras`` file's config.json); ``deserialize_model``
builds a fastcnn model from such a config — written by Keras or by fastcnn — through explicit
allow-lists, never importing or calling anything the config names."""

from fastcnn.models import load_model as _load_model
from fastcnn.models._from_config import deserialize_model
from fastcnn.models._to_config import serialize_model

__all__ = ["serialize_model", "deserialize_model", "save_model", "load_model"]


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """``keras.saving.save_model``: the same as ``model.save(filepath)``."""
    return model.save(filepath, overwrite=overwrite, zipped=zipped, **kwargs)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """``keras.saving.load_model``: the same as ``fastcnn.models.load_model``."""
    return _load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)
