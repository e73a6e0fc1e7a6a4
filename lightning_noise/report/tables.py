"""The report as text: the main table's rows, the rich console table, the best-configuration line, Markdown."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning_noise._console import markdown_table, mean_std
from lightning_noise._console import print_table as _print_table
from lightning_noise._optional import available, require
from lightning_noise.report import certification as report_section
from lightning_noise.report.result import ComparisonResult, GroupSummary

__all__ = ["best_line", "print_table", "significant", "table_data", "table_rows", "to_markdown"]


def table_rows(report: ComparisonResult, metric: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Columns and text rows of the main table for ``metric`` (default the report's metric)."""
    metric = metric or report.metric
    level = f"{report.confidence:.0%}"
    columns = ["configuration", "n", "mean", "std", f"{level} CI", "Δ vs baseline", f"{level} CI of Δ"]
    columns += ["test", "p"]
    rows = []
    for s in report.summaries[metric]:
        c = report.comparison(s.group, metric)
        best = ""
        if metric == report.metric and (s.group == report.best or s.group in report.tied):
            best = " (tied best)" if report.tied else " (best)"
        base = " (baseline)" if s.group == report.baseline else ""
        row = [f"{s.group}{base}{best}", str(s.n), _fmt(s.mean), _fmt(s.std), _interval(s.ci_low, s.ci_high)]
        if c is None:
            row += ["", "", "", ""]
        else:
            row += [_fmt(c.diff, signed=True), _interval(c.ci_low, c.ci_high, signed=True)]
            row += [c.test, _fmt_p(c.p_value)]
        rows.append(row)
    return columns, rows


def table_data(report: ComparisonResult, metric: str | None = None) -> tuple[list[str], list[list[Any]]]:
    """The main table with numbers as numbers (``wandb.Table`` plots and sorts them; NaN and missing: None)."""
    metric = metric or report.metric
    columns = ["configuration", "baseline", "best", "n", "mean", "std", "ci_low", "ci_high"]
    columns += ["diff", "diff_ci_low", "diff_ci_high", "test", "p"]
    rows = []
    for s in report.summaries[metric]:
        c = report.comparison(s.group, metric)
        best = metric == report.metric and (s.group == report.best or s.group in report.tied)
        row = [s.group, s.group == report.baseline, best, s.n, *map(_number, (s.mean, s.std, s.ci_low, s.ci_high))]
        if c is None:
            row += [None, None, None, None, None]
        else:
            row += [*map(_number, (c.diff, c.ci_low, c.ci_high)), c.test, _number(c.p_value)]
        rows.append(row)
    return columns, rows


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def print_table(report: ComparisonResult, console: Any = None) -> None:
    """Print the main table with rich when it is installed (the ``plot`` extra), else as plain text."""
    title = f"{report.title}: {report.metric} over seeds ({report.mode} is better)"
    columns, rows = table_rows(report)
    what = "Printing the comparison table"
    if console is None and not available("rich"):
        _print_table(title, columns, rows, what=what)
        print(best_line(report))
        return
    console = console or require("rich.console", what, "rich").Console()
    widths = [max(len(str(cell)) for cell in (column, *(row[i] for row in rows))) for i, column in enumerate(columns)]
    if sum(widths) + 2 * len(widths) > console.width:
        _print_blocks(report, columns, rows, console)
    else:
        _print_table(title, columns, rows, what=what, console=console)
    console.print(best_line(report), style="bold" if significant(report) else None, highlight=False)


def _print_blocks(report: ComparisonResult, columns: list[str], rows: list[list[str]], console: Any) -> None:
    """The table one configuration per block, for consoles too narrow for all columns (80 columns, pipes)."""
    console.print(f"[bold]{report.title}: {report.metric} over seeds ({report.mode} is better)[/bold]")
    for row in rows:
        console.print(f"[bold]{row[0]}[/bold]", soft_wrap=True)
        cells = [f"{column} {cell}" for column, cell in zip(columns[1:], row[1:], strict=True) if cell != ""]
        for start in range(0, len(cells), 4):  # n, mean, std, CI / difference, its CI, test, p
            console.print("    " + "   ".join(cells[start : start + 4]), soft_wrap=True)


def significant(report: ComparisonResult) -> bool:
    """Whether the best configuration beats the baseline significantly: its difference is in the better direction
    and its test's p-value is below ``alpha = 1 - confidence`` (0.05 for the default 95% intervals)."""
    c = report.comparison(report.best)
    if report.tied or c is None or math.isnan(c.p_value):
        return False
    better = c.diff > 0 if report.mode == "max" else c.diff < 0
    return better and c.p_value < 1 - report.confidence


def best_line(report: ComparisonResult) -> str:
    """The best configuration, its interval and its difference to the baseline, as one sentence.

    It reads "Best configuration: ..." only when that configuration beats the baseline significantly
    (:func:`significant`); otherwise it says that none did, with the highest mean and its p-value.
    """
    s = report.summary(report.best)
    if report.tied:
        line = f"No single best configuration: {', '.join(report.tied)} tie at {report.metric} {_fmt(s.mean)}"
        if report.baseline in report.tied:
            line += "; no noisy configuration beats the baseline's mean"
        return line + "."
    stats = f"{report.metric} {_fmt(s.mean)}, {report.confidence:.0%} CI {_interval(s.ci_low, s.ci_high)}"
    c = report.comparison(report.best)
    alpha = f"p < {1 - report.confidence:.2g}"
    if report.best == report.baseline:
        return f"No configuration beat the baseline: {report.best} has the best mean ({stats})."
    if c is None:
        return f"Highest mean: {report.best} ({stats}); no baseline run to test it against."
    versus = f"{_fmt(c.diff, signed=True)} vs {report.baseline} ({c.test}, p = {_fmt_p(c.p_value)})"
    if significant(report):
        return f"Best configuration: {report.best} ({stats}); {versus}."
    return (
        f"No configuration beat the baseline significantly ({alpha}): the highest mean, {report.best} ({stats}), "
        f"is {versus}."
    )


def to_markdown(report: ComparisonResult, images: Mapping[str, str | Path] | None = None) -> str:
    """The report as Markdown; ``images`` maps captions to PNG paths (relative to the Markdown file)."""
    level = f"{report.confidence:.0%}"
    groups = len(report.summaries[report.metric])
    lines = [
        f"# Noise comparison: {report.title}",
        "",
        f"Metric `{report.metric}` ({'higher' if report.mode == 'max' else 'lower'} is better), {report.n_runs} runs "
        f"in {groups} configurations; baseline: `{report.baseline or 'none found'}`. Mean and standard deviation "
        f"(ddof=1) over seeds, {level} confidence interval of the mean (Student t); the difference to the "
        "baseline is tested with a paired t-test when both configurations ran the same seeds, else Welch's "
        "t-test (two-sided, no correction for multiple comparisons)." + _clip_note(report),
        "",
        markdown_table(*table_rows(report)),
        "",
        f"**{best_line(report)}**" if significant(report) else best_line(report),
    ]
    others = [m for m in report.summaries if m != report.metric]
    if others:
        lines += ["", "## All metrics (mean ± std over seeds)", ""]
        header = ["configuration", *report.summaries]
        rows = [
            [s.group, *[_summary_cell(report.summary(s.group, m)) for m in report.summaries]]
            for s in report.summaries[report.metric]
        ]
        lines.append(markdown_table(header, rows))
    if report.robustness:
        corruptions = list(dict.fromkeys(c for per in report.robustness.values() for c in per))
        lines += ["", f"## Robustness: area under the {report.robustness_metric}-vs-severity curve (mean ± std)", ""]
        rows = [[group, *[_auc_cell(per.get(c)) for c in corruptions]] for group, per in report.robustness.items()]
        lines.append(markdown_table(["configuration", *corruptions], rows))
    lines += report_section.markdown_lines(report)
    for caption, path in (images or {}).items():
        lines += ["", f"![{caption}]({Path(path).as_posix()})"]
    return "\n".join(lines) + "\n"


def _clip_note(report: ComparisonResult) -> str:
    if report.clipped is None:
        return ""
    low, high = report.clipped
    return (
        f" Intervals that ran past the range of `{report.metric}` ([{low:g}, {high:g}]) are clipped to it (the "
        "t interval is symmetric; a mean near a bound over few seeds would otherwise reach past it)."
    )


def _fmt(value: float, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


def _interval(low: float, high: float, signed: bool = False) -> str:
    return "n/a" if math.isnan(low) else f"[{_fmt(low, signed)}, {_fmt(high, signed)}]"


def _auc_cell(curve: Mapping[str, Any] | None) -> str:
    if curve is None:
        return ""
    return mean_std(curve["auc"]["mean"], curve["auc"]["std"])


def _summary_cell(s: GroupSummary) -> str:
    return mean_std(s.mean, s.std)
