"""The audit: options, the run that resumes, its stages and the results document.

This package is also the Python API's entry point: calling it, `emoaudit.audit(model, ...)`, runs
`emoaudit.api.audit`. A module is made callable by giving it a `ModuleType` subclass as its class (the
data model's "Customizing module attribute access"); `emoaudit.audit` cannot be a function, because
importing this package rebinds that name to it.
"""

import inspect
import sys
from types import ModuleType
from typing import Any

from emoaudit import api


class _CallableModule(ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return api.audit(*args, **kwargs)


__signature__ = inspect.signature(api.audit)  # what help() and notebooks show for emoaudit.audit(...)
sys.modules[__name__].__class__ = _CallableModule
