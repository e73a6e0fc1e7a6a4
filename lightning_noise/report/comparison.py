"""Grouping run records into configurations, comparing each with the baseline, and the report that holds it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from lightning_noise._json import dumps
from lightning_noise.report import certification as report_section
from lightning_noise.report import plots, tables
from lightning_noise.report.records import NONE_LABEL, describe_run, plot_axis
from lightning_noise.report.result import ComparisonResult, GroupSummary
from lightning_noise.report.stats import Comparison, clip_interval, mean_std_ci, metric_range, t_test
from lightning_noise.robustness import normalized_auc

__all__ = ["ComparisonReport", "compare_runs"]


class ComparisonReport(ComparisonResult):
    """What :func:`compare_runs` computed (a :class:`~lightning_noise.report.result.ComparisonResult`), with its
    renderings: the console table, Markdown, the PNG plots, and :meth:`write` for all of them."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], noise: Mapping[str, Any] | None = None) -> ComparisonReport:
        """The report back from ``to_dict()`` (a ``summary.json``), to re-render its tables and plots without
        the runs. ``noise`` maps groups to a record's ``noise`` config, for the plot's amounts (``eta`` under an
        annealed schedule) when the summary predates them."""
        summaries: dict[str, list[GroupSummary]] = {}
        for metric, items in data["summaries"].items():
            summaries[metric] = []
            for item in items:
                s = GroupSummary(**item)
                if not s.label:
                    record = {"noise": (noise or {}).get(s.group)}
                    s.label, s.x_name, s.x = plot_axis(record, s.family, s.amount)
                summaries[metric].append(s)
        comparisons = {m: [Comparison(**c) for c in items] for m, items in data["comparisons"].items()}
        clipped = data.get("clipped")
        return cls(
            metric=data["metric"],
            mode=data["mode"],
            baseline=data["baseline"],
            best=data["best"],
            confidence=data["confidence"],
            title=data["title"],
            summaries=summaries,
            comparisons=comparisons,
            robustness=data.get("robustness") or {},
            robustness_metric=data.get("robustness_metric", "test metric"),
            n_runs=data.get("n_runs", 0),
            tied=list(data.get("tied") or []),
            clipped=tuple(clipped) if clipped else None,
        )

    # --------------------------------------------------------------------------------------------- text
    def table_rows(self, metric: str | None = None) -> tuple[list[str], list[list[str]]]:
        """Columns and text rows of the main table for ``metric`` (default the report's metric)."""
        return tables.table_rows(self, metric)

    def print_table(self, console: Any = None) -> None:
        """Print the main table: with rich when it is installed (the ``plot`` extra), else as plain text."""
        tables.print_table(self, console)

    def to_markdown(self, images: Mapping[str, str | Path] | None = None) -> str:
        """The report as Markdown; ``images`` maps captions to PNG paths (relative to the Markdown file)."""
        return tables.to_markdown(self, images)

    # --------------------------------------------------------------------------------------------- plots
    def plot_metric_vs_noise(self, path: str | Path) -> Path:
        """Metric against noise amount, one line per noise family, error bars = confidence interval; PNG."""
        return plots.plot_metric_vs_noise(self, path)

    def plot_robustness(self, path: str | Path) -> Path:
        """Robustness curves of every configuration (baseline dashed), one panel per corruption; PNG."""
        return plots.plot_robustness(self, path)

    # --------------------------------------------------------------------------------------------- output
    def write(self, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
        """Write ``report.md``, ``summary.json`` and (``plots=True``) the PNGs to ``out_dir``; returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        images: dict[str, str] = {}
        if plots:
            files["metric_vs_noise"] = self.plot_metric_vs_noise(out / "metric_vs_noise.png")
            images[f"{self.metric} vs noise amount"] = "metric_vs_noise.png"
            if self.robustness:
                files["robustness"] = self.plot_robustness(out / "robustness.png")
                images["robustness curves"] = "robustness.png"
            if report_section.has_certification(self):
                files["certified"] = report_section.plot_certified(self, out / "certified.png")
                images["certified accuracy vs radius"] = "certified.png"
        files["markdown"] = out / "report.md"
        files["markdown"].write_text(self.to_markdown(images))
        files["json"] = out / "summary.json"
        files["json"].write_text(dumps(self.to_dict(), indent=2, default=str) + "\n")  # strict: null, never NaN
        return files


def compare_runs(
    runs: Sequence[Mapping[str, Any]],
    *,
    metric: str = "test/acc",
    baseline: str | None = None,
    mode: Literal["max", "min"] = "max",
    confidence: float = 0.95,
    title: str | None = None,
) -> ComparisonReport:
    """Group run records by ``group`` and compute the statistics of every metric, the comparisons and the best.

    Args:
        runs: records as returned by :func:`load_runs` (dicts with ``group``, ``seed``, ``noise``, ``metrics``).
        metric: the metric that decides the best configuration and the plots.
        baseline: the group to compare against; default the one group whose noise is none (no comparison if
            there is none).
        mode: ``"max"`` if higher is better, ``"min"`` for losses and errors.
        confidence: level of the confidence intervals.
        title: plot and report title; default ``"{model} on {dataset}"`` from the records, else ``"runs"``.

    Raises:
        ValueError: no runs, a metric no run has, a bad mode or confidence, an unknown or ambiguous baseline.

    Example::

        >>> runs = [{"group": g, "seed": s, "noise": n, "metrics": {"test/acc": a}}
        ...         for g, n, accs in [("none", None, [0.80, 0.82, 0.78]), ("in0.1", {"std": 0.1}, [0.83, 0.85, 0.80])]
        ...         for s, a in enumerate(accs)]
        >>> report = compare_runs(runs)
        >>> report.best, report.comparison("in0.1").test, round(report.comparison("in0.1").diff, 3)
        ('in0.1', 'paired t', 0.027)
    """
    if not runs:
        raise ValueError("compare_runs needs at least one run record.")
    if mode not in ("max", "min"):
        raise ValueError(f"`mode` must be 'max' or 'min', got {mode!r}.")
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence}.")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        groups.setdefault(str(run.get("group") or run.get("name")), []).append(run)
    metrics = list(dict.fromkeys(m for run in runs for m in run["metrics"]))
    if metric not in metrics:
        raise ValueError(f"`metric` {metric!r} is in no run record; the records have {metrics}.")
    base = _pick_baseline(groups, baseline)
    order = sorted(groups, key=lambda g: (g != base, *_family_order(groups[g]), g))
    summaries: dict[str, list[GroupSummary]] = {}
    comparisons: dict[str, list[Comparison]] = {}
    for m in metrics:
        summaries[m], comparisons[m] = [], []
        for g in order:
            per_seed = _values_by_seed(groups[g], m)
            if not per_seed:
                continue
            family, amount = describe_run(groups[g][0])
            mean, std, ci_low, ci_high = mean_std_ci(list(per_seed.values()), confidence)
            low, high, clipped = clip_interval(ci_low, ci_high, metric_range(m))
            label, x_name, x = plot_axis(groups[g][0], family, amount)
            summaries[m].append(
                GroupSummary(
                    g, family, amount, len(per_seed), list(per_seed), mean, std, low, high, clipped, label, x_name, x
                )
            )
            if base is not None and g != base:
                reference = _values_by_seed(groups[base], m)
                if reference:
                    a, b = (
                        (per_seed, reference)
                        if _seeded(per_seed) and _seeded(reference)
                        else (list(per_seed.values()), list(reference.values()))
                    )
                    comparisons[m].append(t_test(a, b, confidence=confidence, group=g, baseline_name=base))
    best, tied = _best(summaries[metric], mode, base)
    bounds = metric_range(_robustness_metric_name(runs))
    robustness = {g: agg for g in order if (agg := _aggregate_robustness(groups[g], confidence, bounds))}
    return ComparisonReport(
        metric=metric,
        mode=mode,
        baseline=base,
        best=best,
        confidence=confidence,
        title=title or _default_title(runs),
        summaries=summaries,
        comparisons=comparisons,
        robustness=robustness,
        robustness_metric=_robustness_metric_name(runs),
        n_runs=len(runs),
        tied=tied,
        clipped=metric_range(metric) if any(s.clipped for s in summaries[metric]) else None,
    )


def _best(summaries: Sequence[GroupSummary], mode: str, baseline: str | None) -> tuple[str, list[str]]:
    """The best group and every group tied with it (means equal up to float rounding, ``math.isclose`` with
    ``rel_tol=1e-9``): among tied groups the baseline wins, else the first in the table's order."""
    chooser = max if mode == "max" else min
    top = chooser(s.mean for s in summaries)
    tied = [s.group for s in summaries if math.isclose(s.mean, top, rel_tol=1e-9, abs_tol=1e-12)]
    best = baseline if baseline in tied else tied[0]
    return best, tied if len(tied) > 1 else []


def _family_order(runs: Sequence[Mapping[str, Any]]) -> tuple[str, float]:
    family, amount = describe_run(runs[0])
    return family, amount if amount is not None else math.inf


def _values_by_seed(runs: Sequence[Mapping[str, Any]], metric: str) -> dict[Any, float]:
    """``{seed: value}``; runs without a seed, or repeating one, are keyed by their position instead."""
    values: dict[Any, float] = {}
    for index, run in enumerate(runs):
        value = run["metrics"].get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        seed = run.get("seed")
        key = seed if seed is not None and seed not in values else ("run", index)
        values[key] = float(value)
    return values


def _seeded(values: Mapping[Any, float]) -> bool:
    """Whether every value is keyed by a real seed (not by position), so runs can be paired by seed."""
    return not any(isinstance(key, tuple) and key[:1] == ("run",) for key in values)


def _default_title(runs: Sequence[Mapping[str, Any]]) -> str:
    model = next((str(r["model"]) for r in runs if r.get("model")), None)
    dataset = next((str(r["dataset"]) for r in runs if r.get("dataset")), None)
    if model and dataset:
        return f"{model} on {dataset}"
    return model or dataset or "runs"


def _curves_of(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    robustness = record.get("robustness") or {}
    if isinstance(robustness, Mapping) and isinstance(robustness.get("corruptions"), Mapping):
        robustness = robustness["corruptions"]
    return {k: v for k, v in robustness.items() if isinstance(v, Mapping) and "metric" in v}


def _robustness_metric_name(runs: Sequence[Mapping[str, Any]]) -> str:
    for run in runs:
        robustness = run.get("robustness")
        if isinstance(robustness, Mapping) and isinstance(robustness.get("metric"), str):
            return robustness["metric"]
    return "test metric"


def _aggregate_robustness(
    runs: Sequence[Mapping[str, Any]], confidence: float, bounds: tuple[float, float] | None = None
) -> dict[str, dict[str, Any]]:
    per_corruption: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        for name, curve in _curves_of(run).items():
            per_corruption.setdefault(name, []).append(curve)
    out: dict[str, dict[str, Any]] = {}
    for name, curves in per_corruption.items():
        length = min(len(c["metric"]) for c in curves)
        columns = [[float(c["metric"][i]) for c in curves] for i in range(length)]
        stats = [mean_std_ci(col, confidence) for col in columns]
        stats = [(m, sd, *clip_interval(low, high, bounds)[:2]) for m, sd, low, high in stats]
        aucs = [normalized_auc(c["metric"][:length]) for c in curves]
        auc_mean, auc_std, auc_low, auc_high = mean_std_ci(aucs, confidence)
        auc = (auc_mean, auc_std, *clip_interval(auc_low, auc_high, bounds)[:2])
        levels = curves[0].get("level")
        out[name] = {
            "severity": list(curves[0].get("severity", range(length)))[:length],
            "amount": curves[0].get("amount"),  # the corruption's amount (std, p, c): the plot's x axis names it
            "level": list(levels)[:length] if levels is not None else None,  # its value per severity (None: clean)
            "n": len(curves),
            "mean": [s[0] for s in stats],
            "std": [s[1] for s in stats],
            "ci_low": [s[2] for s in stats],
            "ci_high": [s[3] for s in stats],
            "auc": {"mean": auc[0], "std": auc[1], "ci_low": auc[2], "ci_high": auc[3]},
        }
    return out


def _pick_baseline(groups: Mapping[str, list[Mapping[str, Any]]], baseline: str | None) -> str | None:
    if baseline is not None:
        if baseline not in groups:
            raise ValueError(f"`baseline` {baseline!r} is not one of the groups {sorted(groups)}.")
        return baseline
    candidates = [g for g, runs in groups.items() if describe_run(runs[0])[0] == NONE_LABEL]
    if len(candidates) > 1:
        found = ", ".join(f"{g!r} ({len(groups[g])} runs)" for g in sorted(candidates))
        first = sorted(candidates)[0]
        raise ValueError(
            f"Several groups have no noise, so there is no single baseline: {found}. Choose one with "
            f"--baseline {_quote(first)} (compare_runs(..., baseline={first!r}))."
        )
    return candidates[0] if candidates else None


def _quote(text: str) -> str:
    return f"'{text}'" if any(c in text for c in " =[]'\"*") else text
