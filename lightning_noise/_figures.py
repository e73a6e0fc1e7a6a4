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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_noise._optional import require

__all__ = ["level_axis", "new_figure", "save_figure"]


def new_figure(feature: str, figsize: tuple[float, float]) -> Any:
    """A ``matplotlib.figure.Figure`` of ``figsize`` inches with the constrained layout.

    Raises:
        ImportError: matplotlib is not installed; the message names ``feature`` and the ``plot`` extra.
    """
    return require("matplotlib.figure", feature, "matplotlib").Figure(figsize=figsize, layout="constrained")


def level_axis(ax: Any, severity: Sequence[int], level: Sequence[float | None] | None, amount: str | None) -> None:
    """Label a robustness plot's x axis with the noise levels: a tick per severity, named ``clean`` at 0 and by
    the corruption's amount at the others (``std 0.1``, ``0.2``...); the severity index when levels are unknown.

    The ticks stay evenly spaced (one per severity): some ladders run backwards (shot noise's photon count ``c``
    goes 500 to 50 as the noise grows), so the amounts themselves cannot be the axis.
    """
    severity = list(severity)
    ax.set_xticks(severity)
    levels = list(level) if level is not None else []
    amounts = [levels[s] if s < len(levels) else None for s in severity]
    if any(a is None for s, a in zip(severity, amounts, strict=True) if s != 0):
        ax.set_xlabel("severity (0 = clean)")
        return
    labels = ["clean" if s == 0 or a is None else f"{float(a):g}" for s, a in zip(severity, amounts, strict=True)]
    ax.set_xticks(severity, labels)
    ax.set_xlabel(f"noise level ({amount})" if amount else "noise level")


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` as a PNG at 120 dpi to ``path``, making its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
