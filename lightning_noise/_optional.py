"""Optional dependencies: imported lazily, with an error that names the extra that installs them.

matplotlib and rich (plots and console tables) come with the small ``plot`` extra; the rest (scipy, wandb,
hydra...) with the ``recipes`` extra. Without them the core install still works: ``RobustnessEvaluation()``
plots only when matplotlib is present and prints a plain-text table when rich is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

_EXTRA_HINT = "install it with `pip install 'lightning-noise[{extra}]'` (or `pip install {package}`)"
PLOT_PACKAGES = ("matplotlib", "rich")  # the `plot` extra


def _hint(package: str) -> str:
    extra = "plot" if package in PLOT_PACKAGES else "recipes"
    return _EXTRA_HINT.format(extra=extra, package=package)


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules (blocked), or a broken install
        return False


def check_available(module: str, feature: str, package: str | None = None) -> None:
    """Raise ``ImportError`` naming ``feature`` and the extra that installs ``module`` if it cannot be imported."""
    if not available(module):
        package = package or module.split(".")[0]
        raise ImportError(f"{feature} needs {package}: {_hint(package)}.")


def require(module: str, feature: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise ``ImportError`` naming ``feature`` and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = package or module.split(".")[0]
        raise ImportError(f"{feature} needs {package}: {_hint(package)}.") from error
