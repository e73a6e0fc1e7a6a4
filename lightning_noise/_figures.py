"""The library's PNG figures (matplotlib, the ``plot`` extra): made and saved the same way everywhere.

Figures are ``matplotlib.figure.Figure`` objects, not pyplot's: nothing global to close, no GUI backend needed.

Example::

    >>> import pathlib, tempfile
    >>> fig = new_figure("Plotting an example", (6.4, 4.4))
    >>> _ = fig.subplots().plot([0, 1], [1, 0])
    >>> save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "curve.png").name
    'curve.png'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning_noise._optional import require

__all__ = ["new_figure", "save_figure"]


def new_figure(feature: str, figsize: tuple[float, float]) -> Any:
    """A ``matplotlib.figure.Figure`` of ``figsize`` inches with the constrained layout.

    Raises:
        ImportError: matplotlib is not installed; the message names ``feature`` and the ``plot`` extra.
    """
    return require("matplotlib.figure", feature, "matplotlib").Figure(figsize=figsize, layout="constrained")


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` as a PNG at 120 dpi to ``path``, making its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
