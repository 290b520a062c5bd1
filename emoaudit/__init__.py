"""emoaudit: audit the emotion representations of open-weight causal language models.

The Python API (see the README): `emoaudit.audit(model, profile=..., out=...)` runs an audit and returns
its results and findings; `emoaudit.EmotionVectors.load(out)` gives its vectors, whose `steer` context
steers any supported transformers model; `emoaudit.load_pretrained(out)` gives the model and tokenizer
the audit read, offline; `emoaudit.Judge` is the shape of a steering judge, and
`emoaudit.FixedJudge` one without a model. Each is imported on first use (PEP 562), so that
`import emoaudit` loads neither torch nor transformers.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("emoaudit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

# name -> (module, attribute).
_LAZY = {
    "audit": ("emoaudit.api", "audit"),
    "load_pretrained": ("emoaudit.api", "load_pretrained"),
    "EmotionVectors": ("emoaudit.vectors", "EmotionVectors"),
    "Judge": ("emoaudit.steering.judge", "Judge"),
    "FixedJudge": ("emoaudit.steering.judge", "FixedJudge"),
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'emoaudit' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    return getattr(import_module(module_name), attribute)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
