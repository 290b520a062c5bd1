"""The audited model: resolving a MODEL argument, loading it, its residual stream, hooks and logits."""

from emoaudit.model.load import load_model
from emoaudit.model.loaded import LoadedModel

__all__ = ["LoadedModel", "load_model"]
