"""Keras-format model configs: ``serialize_model`` writes what ``keras.saving.serialize_keras_object``
writes for the equivalent Keras model (a ``.keras`` file's config.json); ``deserialize_model``
builds a fastcnn model from such a config — written by Keras or by fastcnn — through explicit
allow-lists, never importing or calling anything the config names."""

from fastcnn.saving._config import deserialize_model
from fastcnn.saving._serialize import serialize_model

__all__ = ["serialize_model", "deserialize_model"]
