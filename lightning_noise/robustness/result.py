"""The result of a robustness evaluation: one curve per corruption, its area, and how it is saved and shown.

Area under the curve: see :func:`normalized_auc` (the trapezoid rule over the severity index, divided by its
width, so that it is in the metric's unit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning_noise._console import print_table
from lightning_noise._figures import level_axis, new_figure, save_figure
from lightning_noise._json import dumps

__all__ = ["RobustnessCurve", "RobustnessResult", "normalized_auc"]


def normalized_auc(values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` over severity indices ``0..S``, divided by ``S`` (the metric's unit).

    Example::

        >>> normalized_auc([1.0, 0.5, 0.0])
        0.5
    """
    values = [float(v) for v in values]
    if len(values) < 2:
        raise ValueError(f"An area under the curve needs at least two severities, got {len(values)}.")
    return (sum(values) - (values[0] + values[-1]) / 2) / (len(values) - 1)


@dataclass
class RobustnessCurve:
    """The metric of one corruption at severities 0 (clean), 1, ..., S.

    ``level[0]`` is ``None`` (clean); ``level[k]`` is the corruption's amount at severity ``k``.
    """

    corruption: str
    amount: str
    severity: list[int]
    level: list[float | None]
    metric: list[float]

    @property
    def auc(self) -> float:
        """See :func:`normalized_auc`."""
        return normalized_auc(self.metric)

    def to_dict(self) -> dict[str, Any]:
        return {
            "amount": self.amount,
            "severity": list(self.severity),
            "level": list(self.level),
            "metric": list(self.metric),
            "auc": self.auc,
        }


@dataclass
class RobustnessResult:
    """The curves of every corruption, with what produced them.

    ``to_dict()`` gives ``{corruption: {"amount", "severity", "level", "metric", "auc"}}`` (the ``robustness``
    entry of a run record read by :mod:`lightning_noise.report`); ``save_json`` writes that under
    ``"corruptions"`` together with the metric name, seed, model and dataset.
    """

    metric_name: str
    curves: dict[str, RobustnessCurve]
    seed: int
    model: str = "model"
    dataset: str = "dataset"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> float:
        """The metric on clean inputs (severity 0)."""
        return next(iter(self.curves.values())).metric[0]

    @property
    def auc(self) -> dict[str, float]:
        return {name: curve.auc for name, curve in self.curves.items()}

    @property
    def mean_auc(self) -> float:
        """The mean of the per-corruption AUCs."""
        return sum(self.auc.values()) / len(self.curves)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: curve.to_dict() for name, curve in self.curves.items()}

    def scalars(self, prefix: str = "robustness") -> dict[str, float]:
        """Flat ``{prefix}/{corruption}/severity_{k}`` and ``{prefix}/{corruption}/auc`` values for loggers."""
        out: dict[str, float] = {}
        for name, curve in self.curves.items():
            out.update({f"{prefix}/{name}/severity_{s}": m for s, m in zip(curve.severity, curve.metric, strict=True)})
            out[f"{prefix}/{name}/auc"] = curve.auc
        out[f"{prefix}/mean_auc"] = self.mean_auc
        return out

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "metric": self.metric_name,
            "seed": self.seed,
            "model": self.model,
            "dataset": self.dataset,
            "mean_auc": self.mean_auc,
            "corruptions": self.to_dict(),
            **self.extra,
        }
        path.write_text(dumps(record, indent=2) + "\n")  # strict JSON: null, never NaN
        return path

    def table_rows(self) -> tuple[list[str], list[list[str]]]:
        """Column names and rows of text: one row per corruption, one column per severity (0 = clean), the AUC."""
        width = max(len(c.severity) for c in self.curves.values())
        columns = ["corruption", "levels", *[str(s) for s in range(width)], "AUC"]
        rows = []
        for name, curve in self.curves.items():
            levels = f"{curve.amount} {curve.level[1]:g}" + (f"..{curve.level[-1]:g}" if len(curve.level) > 2 else "")
            values = [f"{m:.3f}" for m in curve.metric] + [""] * (width - len(curve.metric))
            rows.append([name, levels, *values, f"{curve.auc:.3f}"])
        return columns, rows

    def table_data(self) -> tuple[list[str], list[list[Any]]]:
        """The table's columns and rows with numbers as numbers (for ``wandb.Table``, which plots and sorts them):
        ``corruption``, ``amount`` (its name), ``level_1``.. (the amount at each severity), ``0``.. (the metric at
        each severity, 0 = clean; None past a shorter curve) and ``auc``.

        Example::

            >>> result = RobustnessResult("accuracy", {"gaussian": RobustnessCurve("gaussian", "std", [0, 1],
            ...     [None, 0.5], [0.9, 0.7])}, seed=0)
            >>> result.table_data()
            (['corruption', 'amount', 'level_1', '0', '1', 'auc'], [['gaussian', 'std', 0.5, 0.9, 0.7, 0.8]])
        """
        width = max(len(c.severity) for c in self.curves.values())
        columns = ["corruption", "amount", *[f"level_{s}" for s in range(1, width)], *map(str, range(width)), "auc"]
        rows = []
        for name, curve in self.curves.items():
            pad = [None] * (width - len(curve.metric))
            levels = [None if v is None else float(v) for v in curve.level[1:]] + pad
            rows.append([name, curve.amount, *levels, *map(float, curve.metric), *pad, float(curve.auc)])
        return columns, rows

    def print_table(self, console: Any = None) -> None:
        """Print the table with rich when it is installed (the ``plot`` extra), else as plain text."""
        columns, rows = self.table_rows()
        print_table(self._title(), columns, rows, what="Printing the robustness table", console=console, left=2)

    def _title(self) -> str:
        return (
            f"Robustness of {self.model} on {self.dataset}: {self.metric_name} by severity (0 = clean), "
            f"seed {self.seed}"
        )

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Save the metric against the noise level, one panel per corruption (its x axis names the levels:
        ``clean``, then the corruption's amount at each severity), as a PNG (matplotlib, the ``plot`` extra)."""
        cols = min(len(self.curves), 3)
        rows = math.ceil(len(self.curves) / cols)
        fig = new_figure("Plotting robustness curves", (4.2 * cols, 3.4 * rows + 0.5))
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, (name, curve) in zip(axes, self.curves.items(), strict=False):
            ax.plot(curve.severity, curve.metric, marker="o")
            level_axis(ax, curve.severity, curve.level, curve.amount)
            ax.set_title(f"{name}: AUC {curve.auc:.3f}", fontsize="medium")
            ax.set_ylabel(f"test {self.metric_name}")
            ax.grid(alpha=0.3)
        for ax in axes[len(self.curves) :]:
            ax.set_visible(False)
        fig.suptitle(title or f"Robustness of {self.model} on {self.dataset}")
        return save_figure(fig, path)
