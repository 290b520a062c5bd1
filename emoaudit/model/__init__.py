"""The audited model: resolving a MODEL argument, loading it, its residual stream, hooks and logits."""

from emoaudit.model.load import LoadedModel, ModelIdentity, load_model

__all__ = ["LoadedModel", "ModelIdentity", "load_model"]
