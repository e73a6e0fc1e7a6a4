"""The comparison report's certification section: certified accuracy vs radius over seeds, with error bars.

Run records written with ``eval.certify=true`` carry ``certify/acc_r{radius}`` (and ``certify/acr``,
``certify/sigma``, ``certify/n``...) among their metrics
(:meth:`~lightning_noise.smoothing.CertificationResult.scalars`), so :func:`~lightning_noise.report.compare_runs`
already summarizes each one per configuration (mean, std, confidence interval over seeds). This module reads
those summaries back as curves: :func:`certified_curves`, the plot :func:`plot_certified` and the Markdown
table :func:`markdown_lines`, which :meth:`~lightning_noise.report.ComparisonReport.write` adds when the records
have them. It lives with the report that renders it: ``lightning_noise.smoothing`` does not import
``lightning_noise.report`` (this module was ``lightning_noise.smoothing.report_section``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from lightning_noise._console import markdown_table, mean_std
from lightning_noise._figures import new_figure, save_figure
from lightning_noise.report.records import NONE_LABEL
from lightning_noise.report.result import ComparisonResult
from lightning_noise.smoothing.smoothed import max_certified_radius

__all__ = ["certified_curves", "has_certification", "markdown_lines", "plot_certified", "radius_ceiling"]

_RADIUS = re.compile(r"^certify/acc_r(?P<radius>[0-9.e+-]+)$")
_SETTINGS = ("sigma", "n", "n0", "alpha", "points")


def _radius_metrics(report: ComparisonResult) -> list[tuple[float, str]]:
    found = [(float(m["radius"]), key) for key in report.summaries if (m := _RADIUS.match(key))]
    return sorted(found)


def has_certification(report: ComparisonResult) -> bool:
    return bool(_radius_metrics(report))


def certified_curves(report: ComparisonResult) -> dict[str, dict[str, Any]]:
    """``{group: {"radius", "mean", "std", "ci_low", "ci_high", "n", "acr", "sigma", "settings"}}`` per configuration.

    ``settings`` holds the mean over runs of ``sigma``, ``n``, ``n0``, ``alpha`` and ``points`` (equal across seeds).
    """
    curves: dict[str, dict[str, Any]] = {}
    radius_metrics = _radius_metrics(report)
    for summary in report.summaries[radius_metrics[0][1]] if radius_metrics else []:
        group = summary.group
        items = [(r, report.summary(group, key)) for r, key in radius_metrics if _has(report, group, key)]
        settings = {
            k: report.summary(group, f"certify/{k}").mean for k in _SETTINGS if _has(report, group, f"certify/{k}")
        }
        acr = report.summary(group, "certify/acr") if _has(report, group, "certify/acr") else None
        curves[group] = {
            "radius": [r for r, _ in items],
            "mean": [s.mean for _, s in items],
            "std": [s.std for _, s in items],
            "ci_low": [s.ci_low for _, s in items],
            "ci_high": [s.ci_high for _, s in items],
            "n": summary.n,
            "acr": None if acr is None else {k: getattr(acr, k) for k in ("mean", "std", "ci_low", "ci_high")},
            "sigma": settings.get("sigma"),
            "settings": settings,
        }
    return curves


def _has(report: ComparisonResult, group: str, metric: str) -> bool:
    return any(s.group == group for s in report.summaries.get(metric, []))


def _settings_line(curves: dict[str, dict[str, Any]]) -> str:
    keys = ("n", "n0", "alpha", "points")
    values = {k: sorted({c["settings"][k] for c in curves.values() if c["settings"].get(k) is not None}) for k in keys}
    return ", ".join(f"{k}={'/'.join(f'{v:g}' for v in vs)}" for k, vs in values.items() if vs)


def radius_ceiling(curve: dict[str, Any]) -> float | None:
    """The largest radius the curve's certification could reach (:func:`max_certified_radius` of its sigma, n and
    alpha); ``None`` when the runs did not record them."""
    settings = curve["settings"]
    if any(settings.get(k) is None for k in ("sigma", "n", "alpha")):
        return None
    return max_certified_radius(settings["sigma"], round(settings["n"]), settings["alpha"])


def plot_certified(report: ComparisonResult, path: str | Path) -> Path:
    """Certified accuracy against L2 radius, one line per configuration, CI error bars; PNG.

    One colour per smoothing sigma; configurations trained without noise are dashed, so that at each sigma the
    model trained with noise and the one trained without are side by side. A dotted vertical line in the sigma's
    colour marks the radius ceiling (:func:`radius_ceiling`): no point can be certified beyond it with the runs'
    ``n`` and ``alpha``, so the curves' drop to 0 there measures ``n``, not the model. Labels drop the overrides
    that every configuration shares.
    """
    curves = certified_curves(report)
    sigmas = sorted({c["sigma"] for c in curves.values() if c["sigma"] is not None})
    families = {s.group: s.family for s in report.summaries[report.metric]}
    labels = _short_labels(list(curves))
    fig = new_figure("Plotting the certification report", (7.2, 5.2 + 0.22 * len(curves)))
    ax = fig.subplots()
    order = sorted(
        curves,
        key=lambda g: (
            curves[g]["sigma"] if curves[g]["sigma"] is not None else math.inf,
            families.get(g) != NONE_LABEL,
        ),
    )
    for index, group in enumerate(order):
        curve = curves[group]
        half = [0.0 if math.isnan(h) else (h - lo) / 2 for lo, h in zip(curve["ci_low"], curve["ci_high"], strict=True)]
        color = f"C{sigmas.index(curve['sigma']) % 10}" if curve["sigma"] in sigmas else f"C{index % 10}"
        dashed = families.get(group) == NONE_LABEL
        sigma = f"sigma {curve['sigma']:g}: " if curve["sigma"] is not None else ""
        ax.errorbar(
            curve["radius"],
            curve["mean"],
            yerr=half,
            marker="o",
            markersize=4,
            capsize=3,
            color=color,
            linestyle="--" if dashed else "-",
            label=f"{sigma}{labels[group]} (n={curve['n']})",
        )
    ceilings = {
        radius_ceiling(curves[g]): f"C{sigmas.index(curves[g]['sigma']) % 10}"
        for g in order
        if curves[g]["sigma"] in sigmas
    }
    for ceiling, color in ceilings.items():
        if ceiling is not None:
            ax.axvline(ceiling, color=color, linestyle=":", linewidth=1.2)
            ax.annotate(
                f"ceiling {ceiling:.2f}",
                (ceiling, 1.0),
                rotation=90,
                ha="right",
                va="top",
                fontsize="x-small",
                color=color,
            )
    ax.set_xlabel("L2 radius")
    ax.set_ylabel(f"certified accuracy (mean, {report.confidence:.0%} CI over seeds)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=1, fontsize="small")
    ax.set_title(
        f"Randomized smoothing: {report.title}\n{_settings_line(curves)}; dashed: trained without noise",
        fontsize="medium",
    )
    return save_figure(fig, path)


def _short_labels(groups: list[str]) -> dict[str, str]:
    """Group labels without the space-separated tokens that every group shares."""
    tokens = [group.split(" ") for group in groups]
    shared = set.intersection(*(set(t) for t in tokens)) if len(tokens) > 1 else set()
    return {g: " ".join(x for x in t if x not in shared) or g for g, t in zip(groups, tokens, strict=True)}


def markdown_lines(report: ComparisonResult) -> list[str]:
    """A Markdown section: certified accuracy at each radius and the ACR, mean ± std over seeds, per configuration."""
    curves = certified_curves(report)
    if not curves:
        return []
    radii = sorted({r for c in curves.values() for r in c["radius"]})
    header = ["configuration", "sigma", "seeds", *[f"r={r:g}" for r in radii], "ACR", "radius ceiling"]
    rows = []
    for group, curve in curves.items():
        by_radius = dict(zip(curve["radius"], zip(curve["mean"], curve["std"], strict=True), strict=True))
        cells = [mean_std(*by_radius[r], digits=3) if r in by_radius else "" for r in radii]
        acr = curve["acr"]
        sigma = "" if curve["sigma"] is None else f"{curve['sigma']:g}"
        ceiling = radius_ceiling(curve)
        rows.append(
            [
                group,
                sigma,
                str(curve["n"]),
                *cells,
                "" if acr is None else mean_std(acr["mean"], acr["std"], digits=3),
                "" if ceiling is None else f"{ceiling:.3f}",
            ]
        )
    lines = [
        "",
        "## Certified accuracy (randomized smoothing)",
        "",
        "Fraction of test points whose smoothed prediction is correct and certified within L2 radius r "
        f"(Cohen et al. 2019, CERTIFY; {_settings_line(curves)}), and the average certified radius (ACR); mean ± "
        "std over seeds. Each certificate holds with probability at least 1 - alpha. The radius ceiling, "
        "sigma * Phi^-1(alpha^(1/n)), is the largest radius n samples can certify: accuracy beyond it is 0 "
        "whatever the model.",
        "",
        markdown_table(header, rows),
    ]
    return lines
