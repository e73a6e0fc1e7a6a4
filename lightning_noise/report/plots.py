"""The report's PNG plots (matplotlib, the ``recipes`` extra): metric vs noise amount, robustness curves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from lightning_noise._figures import level_axis, new_figure, save_figure
from lightning_noise.report.result import ComparisonResult, GroupSummary

__all__ = ["plot_metric_vs_noise", "plot_robustness"]


def plot_metric_vs_noise(report: ComparisonResult, path: str | Path) -> Path:
    """Metric against noise amount, one line per noise family, error bars = confidence interval; PNG.

    Lines are named as in the README (``hidden noise`` for activation noise); the x axis is the amount the
    configs name (``eta`` for annealed gradient noise, not its square root), from 0 on a linear scale (so one
    amount is not a tiny window around itself), log when the amounts span 10x or more; the legend sits below
    the axes, never over the error bars.
    """
    fig = new_figure("Plotting the comparison report", (6.8, 5.0))
    ax = fig.subplots()
    summaries = report.summaries[report.metric]
    baseline = next((s for s in summaries if s.group == report.baseline), None)
    families: dict[str, list[GroupSummary]] = {}
    for s in summaries:
        if s is not baseline and s.x is not None:
            families.setdefault(s.label or s.family, []).append(s)
    if baseline is not None:
        label = f"{baseline.group} (baseline, n={baseline.n})"
        ax.axhline(baseline.mean, color="black", linestyle="--", label=label)
        if not math.isnan(baseline.ci_low):
            ax.axhspan(baseline.ci_low, baseline.ci_high, color="black", alpha=0.1)
    if families:
        amounts = [s.x for items in families.values() for s in items if s.x is not None]  # all, see above
        for family, items in families.items():
            items = sorted(items, key=lambda s: cast(float, s.x))  # families hold the summaries with an x
            ax.errorbar(
                [s.x for s in items],
                [s.mean for s in items],
                yerr=_yerr(items),
                marker="o",
                capsize=4,
                label=f"{family} (n={'/'.join(sorted({str(s.n) for s in items}))})",
            )
        positive = [a for a in amounts if a > 0]
        if positive and len(positive) == len(amounts) and max(positive) / min(positive) >= 10:
            ax.set_xscale("log")
        elif min(amounts) >= 0:
            ax.set_xlim(0, max(amounts) * 1.1 or 1.0)
        names = {s.x_name for items in families.values() for s in items if s.x_name}
        ax.set_xlabel(f"noise {names.pop()}" if len(names) == 1 else "noise amount")
    else:  # no numeric amounts: one point per configuration
        others = [s for s in summaries if s is not baseline]
        means = [s.mean for s in others]
        ax.errorbar(range(len(others)), means, yerr=_yerr(others), fmt="o", capsize=4, label="configurations")
        ax.set_xticks(range(len(others)), [s.group for s in others], rotation=30, ha="right")
        ax.set_xlabel("configuration")
    clipped = " (clipped to the metric's range)" if report.clipped else ""
    ax.set_ylabel(f"{report.metric} (mean, {report.confidence:.0%} CI over seeds){clipped}")
    ax.set_title(f"{report.metric} vs noise: {report.title}")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2, fontsize="small")  # below the axes: never over the error bars
    return save_figure(fig, path)


def plot_robustness(report: ComparisonResult, path: str | Path) -> Path:
    """Robustness curves of every configuration (baseline dashed), one panel per corruption; PNG."""
    if not report.robustness:
        raise ValueError("No run record has robustness results; run the recipes with eval.robustness=true.")
    corruptions = list(dict.fromkeys(c for per in report.robustness.values() for c in per))
    cols = min(len(corruptions), 3)
    rows = math.ceil(len(corruptions) / cols)
    fig = new_figure("Plotting the comparison report", (5.0 * cols, 3.8 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, corruption in zip(axes, corruptions, strict=False):  # spare panels of the grid: hidden below
        for group, per in report.robustness.items():
            curve = per.get(corruption)
            if curve is None:
                continue
            below = [0.0 if math.isnan(lo) else m - lo for m, lo in zip(curve["mean"], curve["ci_low"], strict=True)]
            above = [0.0 if math.isnan(hi) else hi - m for m, hi in zip(curve["mean"], curve["ci_high"], strict=True)]
            style = dict(color="black", linestyle="--") if group == report.baseline else {}
            ax.errorbar(
                curve["severity"], curve["mean"], yerr=[below, above], marker="o", capsize=3, label=group, **style
            )
        longest = max((per[corruption] for per in report.robustness.values() if corruption in per), key=_length)
        level_axis(ax, longest["severity"], longest.get("level"), longest.get("amount"))
        ax.set_title(corruption)
        ax.set_ylabel(f"{report.robustness_metric} (mean, {report.confidence:.0%} CI)")
        ax.grid(alpha=0.3)
    for ax in axes[len(corruptions) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 2), fontsize="small")
    fig.suptitle(f"Robustness to test-time noise: {report.title}")
    return save_figure(fig, path)


def _length(curve: dict) -> int:
    return len(curve["severity"])


def _yerr(items: Sequence[GroupSummary]) -> list[list[float]]:
    """Error bars from the (possibly clipped, so asymmetric) confidence interval: ``[below, above]``."""
    below = [0.0 if math.isnan(s.ci_low) else s.mean - s.ci_low for s in items]
    above = [0.0 if math.isnan(s.ci_high) else s.ci_high - s.mean for s in items]
    return [below, above]
