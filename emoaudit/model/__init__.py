"""The audited model: resolving a MODEL argument, loading it, its residual stream, hooks and logits.

`load_model`, `LoadedModel` and `ModelIdentity` are imported on first use (PEP 562): the offline registry
(`emoaudit.model.registry`, what `emoaudit models list` reads) must not pull in torch and transformers.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emoaudit.model.load import LoadedModel, ModelIdentity, load_model

__all__ = ["LoadedModel", "ModelIdentity", "load_model"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'emoaudit.model' has no attribute {name!r}")
    return getattr(import_module("emoaudit.model.load"), name)
