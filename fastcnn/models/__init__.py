"""Models: ``Sequential``."""

from fastcnn.models.sequential import Sequential

__all__ = ["Sequential"]
