"""The audited model: resolving a MODEL argument, loading it, its residual stream, hooks and logits.

`load_model` and `LoadedModel` are imported on first use (PEP 562): the offline registry
(`emoaudit.model.registry`, what `emoaudit models list` reads) must not pull in torch and transformers.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emoaudit.model.load import load_model
    from emoaudit.model.loaded import LoadedModel

_HOMES = {"LoadedModel": "emoaudit.model.loaded", "load_model": "emoaudit.model.load"}
__all__ = ["LoadedModel", "load_model"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'emoaudit.model' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
