"""Optional dependencies (the ``recipes`` extra): imported lazily, with an error that says how to install them."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

_EXTRA_HINT = "install it with `pip install 'lightning-noise[recipes]'` (or `pip install {package}`)"


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    return importlib.util.find_spec(module.split(".")[0]) is not None


def check_available(module: str, feature: str, package: str | None = None) -> None:
    """Raise ``ImportError`` naming ``feature`` and the ``recipes`` extra if ``module`` cannot be imported."""
    if not available(module):
        package = package or module.split(".")[0]
        raise ImportError(f"{feature} needs {package}: {_EXTRA_HINT.format(package=package)}.")


def require(module: str, feature: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise ``ImportError`` naming ``feature`` and the ``recipes`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = package or module.split(".")[0]
        raise ImportError(f"{feature} needs {package}: {_EXTRA_HINT.format(package=package)}.") from error
