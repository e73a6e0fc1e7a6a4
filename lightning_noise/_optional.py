"""Optional dependencies: imported lazily, with an error that names the extra that installs them.

matplotlib and rich (plots and console tables) come with the small ``plot`` extra; the rest (wandb, hydra...) with
the ``recipes`` extra; scipy is a core dependency (a broken environment still gets the plain ``pip install``).
Without them the core install still works: ``RobustnessEvaluation()`` plots only when matplotlib is present and
prints a plain-text table when rich is missing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from lightning_utilities.core.imports import package_available

PLOT_PACKAGES = ("matplotlib", "rich")  # the `plot` extra
CORE_PACKAGES = ("scipy",)  # imported lazily, but installed with the library


def available(module: str) -> bool:
    """Whether ``module``'s top-level package can be imported, without importing it (``lightning_utilities``'
    ``package_available``: found once per process and remembered)."""
    try:
        return package_available(module.split(".")[0])
    except ValueError:  # a module in sys.modules without a spec (a stand-in): not an installed package
        return False


def _missing(module: str, feature: str, package: str | None) -> ImportError:
    package = package or module.split(".")[0]
    if package in CORE_PACKAGES:  # a dependency of the library itself: the environment lost it
        return ImportError(f"{feature} needs {package}, a dependency of lightning-noise: `pip install {package}`.")
    extra = "plot" if package in PLOT_PACKAGES else "recipes"
    return ImportError(
        f"{feature} needs {package}: install it with `pip install 'lightning-noise[{extra}]'` (or `pip install "
        f"{package}`)."
    )


def check_available(module: str, feature: str, package: str | None = None) -> None:
    """Raise ``ImportError`` naming ``feature`` and the extra that installs ``module`` if it cannot be imported."""
    if not available(module):
        raise _missing(module, feature, package)


def require(module: str, feature: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise ``ImportError`` naming ``feature`` and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise _missing(module, feature, package) from error
