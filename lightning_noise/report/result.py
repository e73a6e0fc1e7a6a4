"""What :func:`~lightning_noise.report.compare_runs` found, as data: a :class:`GroupSummary` per configuration
and metric, and the :class:`ComparisonResult` that holds them with the comparisons (``summary.json``).

The tables and plots read it; :class:`~lightning_noise.report.ComparisonReport` adds those renderings to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lightning_noise.report.stats import Comparison

__all__ = ["ComparisonResult", "GroupSummary"]


@dataclass
class GroupSummary:
    """One configuration's runs on one metric."""

    group: str
    family: str
    amount: float | None
    n: int
    seeds: list[Any]
    mean: float
    std: float
    ci_low: float
    ci_high: float
    clipped: bool = False  # the Student t interval ran past the metric's range and was cut at its bound
    label: str = ""  # the noise as the plots name it (``hidden noise (gaussian std)``); see ``plot_axis``
    x_name: str = ""  # the amount's name on the plot's x axis (``std``, ``p``, ``eta``)
    x: float | None = None  # the amount on the plot's x axis (eta = std ** 2 under an annealed schedule)


@dataclass
class ComparisonResult:
    """Everything :func:`~lightning_noise.report.compare_runs` computed (rendered by
    :class:`~lightning_noise.report.ComparisonReport`).

    ``summaries[metric]`` lists a :class:`GroupSummary` per group (baseline first); ``comparisons[metric]`` a
    :class:`Comparison` per non-baseline group; ``robustness[group][corruption]`` holds ``severity``, ``mean``,
    ``std``, ``ci_low``, ``ci_high`` (per severity) and ``auc`` (mean, std, ci_low, ci_high over runs).
    """

    metric: str
    mode: Literal["max", "min"]
    baseline: str | None
    best: str
    confidence: float
    title: str
    summaries: dict[str, list[GroupSummary]]
    comparisons: dict[str, list[Comparison]]
    robustness: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    robustness_metric: str = "test metric"
    n_runs: int = 0
    tied: list[str] = field(default_factory=list)
    clipped: tuple[float, float] | None = None

    # --------------------------------------------------------------------------------------------- access
    def summary(self, group: str, metric: str | None = None) -> GroupSummary:
        for item in self.summaries[metric or self.metric]:
            if item.group == group:
                return item
        raise KeyError(f"No group {group!r} for metric {metric or self.metric!r}.")

    def comparison(self, group: str, metric: str | None = None) -> Comparison | None:
        return next((c for c in self.comparisons.get(metric or self.metric, []) if c.group == group), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "mode": self.mode,
            "baseline": self.baseline,
            "best": self.best,
            "tied": self.tied,
            "clipped": self.clipped,
            "confidence": self.confidence,
            "title": self.title,
            "n_runs": self.n_runs,
            "summaries": {m: [asdict(s) for s in items] for m, items in self.summaries.items()},
            "comparisons": {m: [asdict(c) for c in items] for m, items in self.comparisons.items()},
            "robustness": self.robustness,
            "robustness_metric": self.robustness_metric,
        }
