"""Comparison report: does noise help here? Mean, spread and significance over repeated seeds.

Reads run records (one ``metrics.json`` per run, e.g. every run of a Hydra multirun), groups them by
configuration, and writes a console table, ``report.md``, ``summary.json`` and PNG plots.

Run record (JSON object; only ``metrics`` is required)::

    {"name": "noise=input_0.1,seed=3",   # default: the record's folder name
     "group": "noise=input_0.1",         # configuration label (the overrides minus the seed); default: name
     "seed": 3,
     "overrides": ["noise=input_0.1", "seed=3"],
     "noise": {"kind": "input", "std": 0.1},   # or null / "none" for the baseline
     "metrics": {"test/acc": 0.81, "test/loss": 0.52},
     "best_epoch": 17,
     "dataset": "circles", "model": "MLP 2-500-1",  # optional, used in titles
     "robustness": {"gaussian": {"severity": [0, 1, 2], "metric": [0.81, 0.77, 0.64]}}}   # optional

``robustness`` may also be the whole ``robustness.json`` written by
:class:`~lightning_noise.RobustnessEvaluation` (its ``corruptions`` entry is used).

Statistics (per group and metric, over its runs): mean; standard deviation with ``ddof=1``; a 95% confidence
interval ``mean +- t_{0.975, n-1} * std / sqrt(n)`` (Student t). Each group is compared with the baseline
(``baseline=``, default the one group whose noise is none): the difference of means, its confidence interval
and a two-sided t-test. The test is *paired* (on per-seed differences, ``n - 1`` degrees of freedom) when
both groups ran exactly the same seeds, each once: a seed fixes initialization and data order in both, so
pairing removes that shared variation. Otherwise it is Welch's unequal-variance t-test
(Welch-Satterthwaite degrees of freedom). No correction for multiple comparisons is applied; with many groups,
read p-values accordingly. The best configuration is the group with the highest mean (``mode="max"``) or the
lowest (``mode="min"``, for losses) of the chosen metric.

Noise amount (x axis of the metric-vs-noise plot): a number found in the record's ``noise`` under a key named
``amount``, ``std``, ``p``, ``snr_db``, ``eta``, ``sigma``, ``alpha``, ``smoothing`` or ``rate`` (nested
dictionaries are searched, keys starting with ``_`` skipped); groups whose noise shares the key path and the
``kind``/``name``/``type``/``label`` strings form one line.

Command line::

    python -m lightning_noise.report multirun/2024-05-01/12-00-00 --metric test/acc --out report/
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lightning_noise._optional import require
from lightning_noise.robustness import normalized_auc

__all__ = [
    "Comparison",
    "ComparisonReport",
    "GroupSummary",
    "compare_runs",
    "describe_noise",
    "load_runs",
    "log_report_to_wandb",
    "main",
    "mean_std_ci",
    "t_quantile",
    "t_test",
]

AMOUNT_KEYS = ("amount", "std", "p", "snr_db", "eta", "sigma", "alpha", "smoothing", "rate")
LABEL_KEYS = ("kind", "name", "type", "label")
NONE_LABEL = "none"


# ------------------------------------------------------------------------------------------------- statistics
def _stats() -> Any:
    return require("scipy.stats", "The comparison report's t quantiles and p-values", "scipy")


def t_quantile(q: float, dof: float) -> float:
    """The ``q`` quantile of Student's t distribution with ``dof`` degrees of freedom (scipy)."""
    return float(_stats().t.ppf(q, dof))


def mean_std_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, standard deviation (ddof=1) and the Student-t confidence interval of the mean.

    With one value the standard deviation and the interval are NaN.

    Example::

        >>> [round(v, 4) for v in mean_std_ci([0.80, 0.82, 0.78, 0.81, 0.79])]
        [0.8, 0.0158, 0.7804, 0.8196]
    """
    n = len(values)
    if n == 0:
        raise ValueError("mean_std_ci needs at least one value.")
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


@dataclass
class Comparison:
    """One group against the baseline on one metric: ``diff = mean(group) - mean(baseline)``."""

    group: str
    baseline: str
    diff: float
    ci_low: float
    ci_high: float
    test: Literal["paired t", "Welch t", "n/a"]
    t: float
    dof: float
    p_value: float
    n: int


def t_test(
    values: Mapping[Any, float] | Sequence[float],
    baseline: Mapping[Any, float] | Sequence[float],
    *,
    confidence: float = 0.95,
    group: str = "group",
    baseline_name: str = "baseline",
) -> Comparison:
    """Two-sided t-test of ``values`` against ``baseline``: paired when both are ``{seed: value}`` with the same seeds.

    Paired: ``d_i = values[s] - baseline[s]``, ``t = mean(d) / (std(d) / sqrt(n))``, ``n - 1`` degrees of
    freedom. Welch: ``t = (m1 - m2) / sqrt(v1/n1 + v2/n2)`` with Welch-Satterthwaite degrees of freedom. With
    too few values (fewer than 2 per side) the test is ``"n/a"`` and p is NaN. With zero variance the p-value
    is 1 for equal means and 0 otherwise.
    """
    paired = (
        isinstance(values, Mapping)
        and isinstance(baseline, Mapping)
        and set(values) == set(baseline)
        and len(values) >= 2
    )
    a = list(values.values()) if isinstance(values, Mapping) else list(values)
    b = list(baseline.values()) if isinstance(baseline, Mapping) else list(baseline)
    diff = math.fsum(a) / len(a) - math.fsum(b) / len(b)
    if paired:
        d = [values[s] - baseline[s] for s in values]
        n, dof = len(d), len(d) - 1
        se = mean_std_ci(d)[1] / math.sqrt(n)
        test = "paired t"
    elif len(a) >= 2 and len(b) >= 2:
        va, vb = mean_std_ci(a)[1] ** 2 / len(a), mean_std_ci(b)[1] ** 2 / len(b)
        se = math.sqrt(va + vb)
        n = len(a)
        dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else len(a) + len(b) - 2
        test = "Welch t"
    else:
        return Comparison(group, baseline_name, diff, math.nan, math.nan, "n/a", math.nan, math.nan, math.nan, len(a))
    if se == 0:
        t, p = (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
        return Comparison(group, baseline_name, diff, diff, diff, test, t, dof, p, n)
    t = diff / se
    p = float(2 * _stats().t.sf(abs(t), dof))
    half = t_quantile(0.5 + confidence / 2, dof) * se
    return Comparison(group, baseline_name, diff, diff - half, diff + half, test, t, dof, p, n)


# ------------------------------------------------------------------------------------------------- records
def load_runs(source: str | Path | Iterable[str | Path], *, pattern: str = "**/metrics.json") -> list[dict[str, Any]]:
    """Read run records from directories (searched with ``pattern``), JSON files, or glob patterns.

    Each record gets ``path`` and defaults for ``name`` (its folder's name), ``group`` (the name) and ``seed``
    (None). Records are sorted by group, then seed.

    Raises:
        FileNotFoundError: nothing matched.
        ValueError: a file that is not a JSON object with a ``metrics`` mapping (the message names it).
    """
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    paths: list[Path] = []
    for item in sources:
        item = Path(item)
        if item.is_dir():
            paths.extend(sorted(item.glob(pattern)))
        elif item.is_file():
            paths.append(item)
        else:
            paths.extend(Path(p) for p in sorted(glob.glob(str(item), recursive=True)))
    if not paths:
        raise FileNotFoundError(f"No run records found in {[str(s) for s in sources]} (looked for {pattern!r}).")
    runs = [_read_record(path) for path in dict.fromkeys(p.resolve() for p in paths)]
    return sorted(runs, key=lambda r: (str(r["group"]), _seed_key(r["seed"])))


def _seed_key(seed: Any) -> tuple[int, Any]:
    return (0, seed) if isinstance(seed, (int, float)) else (1, str(seed))


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"Run record {path} is not valid JSON: {error}.") from None
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        raise ValueError(f"Run record {path} must be a JSON object with a 'metrics' mapping, got {str(record)[:200]}.")
    record = dict(record)
    record["path"] = str(path)
    record.setdefault("name", path.parent.name)
    record["group"] = str(record.get("group") or record["name"])
    record.setdefault("seed", None)
    record.setdefault("noise", None)
    return record


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            if str(key).startswith("_"):
                continue
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def _is_none(noise: Any) -> bool:
    if noise is None or noise is False or noise == {} or noise == []:
        return True
    if isinstance(noise, str):
        return noise.strip().lower() in ("", NONE_LABEL, "null")
    if isinstance(noise, (int, float)):
        return noise == 0
    if isinstance(noise, Mapping):
        return all(_is_none(v) for v in _flatten(noise).values())
    return False


def describe_noise(noise: Any) -> tuple[str, float | None]:
    """``(family, amount)`` of a record's ``noise``: ``("none", 0.0)`` for no noise; amount None when not found.

    Example::

        >>> describe_noise({"kind": "input", "std": 0.1})
        ('input std', 0.1)
        >>> describe_noise({"activation": {"_target_": "lightning_noise.ActivationNoise", "std": 1.0}})
        ('activation.std', 1.0)
        >>> describe_noise(None)
        ('none', 0.0)
    """
    if _is_none(noise):
        return NONE_LABEL, 0.0
    if isinstance(noise, (int, float)) and not isinstance(noise, bool):
        return "noise", float(noise)
    if not isinstance(noise, Mapping):
        return str(noise), None
    flat = _flatten(noise)
    amounts = [
        (key, value)
        for key, value in flat.items()
        if key.split(".")[-1] in AMOUNT_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    labels = [str(v) for k, v in flat.items() if k.split(".")[-1] in LABEL_KEYS and isinstance(v, str)]
    if not amounts:
        return " ".join(labels) or json.dumps(noise, sort_keys=True, default=str), None
    key, value = amounts[0]
    return " ".join([*labels, key]), float(value)


# ------------------------------------------------------------------------------------------------- report
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


@dataclass
class ComparisonReport:
    """Everything :func:`compare_runs` computed; render with the methods below.

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
            "confidence": self.confidence,
            "title": self.title,
            "n_runs": self.n_runs,
            "summaries": {m: [asdict(s) for s in items] for m, items in self.summaries.items()},
            "comparisons": {m: [asdict(c) for c in items] for m, items in self.comparisons.items()},
            "robustness": self.robustness,
        }

    def table_rows(self, metric: str | None = None) -> tuple[list[str], list[list[str]]]:
        """Columns and text rows of the main table for ``metric`` (default the report's metric)."""
        metric = metric or self.metric
        level = f"{self.confidence:.0%}"
        columns = ["configuration", "n", "mean", "std", f"{level} CI", "Δ vs baseline", f"{level} CI of Δ"]
        columns += ["test", "p"]
        rows = []
        for s in self.summaries[metric]:
            c = self.comparison(s.group, metric)
            best = " (best)" if s.group == self.best and metric == self.metric else ""
            base = " (baseline)" if s.group == self.baseline else ""
            row = [f"{s.group}{base}{best}", str(s.n), _fmt(s.mean), _fmt(s.std), _interval(s.ci_low, s.ci_high)]
            if c is None:
                row += ["", "", "", ""]
            else:
                row += [_fmt(c.diff, signed=True), _interval(c.ci_low, c.ci_high, signed=True)]
                row += [c.test, _fmt_p(c.p_value)]
            rows.append(row)
        return columns, rows

    def print_table(self, console: Any = None) -> None:
        """Print the main table with rich (the ``recipes`` extra)."""
        rich_table = require("rich.table", "Printing the comparison table", "rich")
        rich_console = require("rich.console", "Printing the comparison table", "rich")
        columns, rows = self.table_rows()
        box = require("rich.box", "Printing the comparison table", "rich")
        table = rich_table.Table(
            title=f"{self.title}: {self.metric} over seeds ({self.mode} is better)", box=box.SIMPLE_HEAD, pad_edge=False
        )
        for i, column in enumerate(columns):
            table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i > 0)
        for row in rows:
            table.add_row(*row)
        console = console or rich_console.Console()
        console.print(table)
        console.print(self._best_line())

    def _best_line(self) -> str:
        s = self.summary(self.best)
        line = f"Best configuration: {self.best} ({self.metric} {_fmt(s.mean)}, "
        line += f"{self.confidence:.0%} CI {_interval(s.ci_low, s.ci_high)})"
        c = self.comparison(self.best)
        if c is not None:
            line += f"; {_fmt(c.diff, signed=True)} vs {self.baseline} ({c.test}, p = {_fmt_p(c.p_value)})"
        elif self.best == self.baseline:
            line += "; no noisy configuration beats the baseline's mean"
        return line + "."

    def to_markdown(self, images: Mapping[str, str | Path] | None = None) -> str:
        """The report as Markdown; ``images`` maps captions to PNG paths (relative to the Markdown file)."""
        level = f"{self.confidence:.0%}"
        groups = len(self.summaries[self.metric])
        lines = [
            f"# Noise comparison: {self.title}",
            "",
            f"Metric `{self.metric}` ({'higher' if self.mode == 'max' else 'lower'} is better), {self.n_runs} runs "
            f"in {groups} configurations; baseline: `{self.baseline or 'none found'}`. Mean and standard deviation "
            f"(ddof=1) over seeds, {level} confidence interval of the mean (Student t); the difference to the "
            "baseline is tested with a paired t-test when both configurations ran the same seeds, else Welch's "
            "t-test (two-sided, no correction for multiple comparisons).",
            "",
            _markdown_table(*self.table_rows()),
            "",
            f"**{self._best_line()}**",
        ]
        others = [m for m in self.summaries if m != self.metric]
        if others:
            lines += ["", "## All metrics (mean ± std over seeds)", ""]
            header = ["configuration", *self.summaries]
            rows = [
                [s.group, *[_mean_std(self.summary(s.group, m)) for m in self.summaries]]
                for s in self.summaries[self.metric]
            ]
            lines.append(_markdown_table(header, rows))
        if self.robustness:
            corruptions = list(dict.fromkeys(c for per in self.robustness.values() for c in per))
            lines += ["", f"## Robustness: area under the {self.robustness_metric}-vs-severity curve (mean ± std)", ""]
            rows = [
                [group, *[_auc_cell(per.get(c)) for c in corruptions]] for group, per in self.robustness.items()
            ]
            lines.append(_markdown_table(["configuration", *corruptions], rows))
        for caption, path in (images or {}).items():
            lines += ["", f"![{caption}]({Path(path).as_posix()})"]
        return "\n".join(lines) + "\n"

    # --------------------------------------------------------------------------------------------- plots
    def plot_metric_vs_noise(self, path: str | Path) -> Path:
        """Metric against noise amount, one line per noise family, error bars = confidence interval; PNG."""
        figure = require("matplotlib.figure", "Plotting the comparison report", "matplotlib")
        fig = figure.Figure(figsize=(6.8, 4.6), layout="constrained")
        ax = fig.subplots()
        summaries = self.summaries[self.metric]
        baseline = next((s for s in summaries if s.group == self.baseline), None)
        families: dict[str, list[GroupSummary]] = {}
        for s in summaries:
            if s is not baseline and s.amount is not None:
                families.setdefault(s.family, []).append(s)
        if baseline is not None:
            label = f"{baseline.group} (baseline, n={baseline.n})"
            ax.axhline(baseline.mean, color="black", linestyle="--", label=label)
            if not math.isnan(baseline.ci_low):
                ax.axhspan(baseline.ci_low, baseline.ci_high, color="black", alpha=0.1)
        if families:
            amounts = [s.amount for items in families.values() for s in items]
            for family, items in families.items():
                items = sorted(items, key=lambda s: s.amount)
                ax.errorbar(
                    [s.amount for s in items],
                    [s.mean for s in items],
                    yerr=_yerr(items),
                    marker="o",
                    capsize=4,
                    label=f"{family} (n={'/'.join(sorted({str(s.n) for s in items}))})",
                )
            positive = [a for a in amounts if a > 0]
            if positive and len(positive) == len(amounts) and max(positive) / min(positive) >= 10:
                ax.set_xscale("log")
            ax.set_xlabel("noise amount")
        else:  # no numeric amounts: one point per configuration
            others = [s for s in summaries if s is not baseline]
            means = [s.mean for s in others]
            ax.errorbar(range(len(others)), means, yerr=_yerr(others), fmt="o", capsize=4, label="configurations")
            ax.set_xticks(range(len(others)), [s.group for s in others], rotation=30, ha="right")
            ax.set_xlabel("configuration")
        ax.set_ylabel(f"{self.metric} (mean, {self.confidence:.0%} CI over seeds)")
        ax.set_title(f"{self.metric} vs noise: {self.title}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        return _save(fig, path)

    def plot_robustness(self, path: str | Path) -> Path:
        """Robustness curves of every configuration (baseline dashed), one panel per corruption; PNG."""
        figure = require("matplotlib.figure", "Plotting the comparison report", "matplotlib")
        if not self.robustness:
            raise ValueError("No run record has robustness results; run the recipes with eval.robustness=true.")
        corruptions = list(dict.fromkeys(c for per in self.robustness.values() for c in per))
        cols = min(len(corruptions), 3)
        rows = math.ceil(len(corruptions) / cols)
        fig = figure.Figure(figsize=(5.0 * cols, 3.8 * rows + 0.6), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, corruption in zip(axes, corruptions):
            for group, per in self.robustness.items():
                curve = per.get(corruption)
                if curve is None:
                    continue
                half = [(h - l) / 2 if not math.isnan(h) else 0.0 for l, h in zip(curve["ci_low"], curve["ci_high"])]
                style = dict(color="black", linestyle="--") if group == self.baseline else {}
                ax.errorbar(curve["severity"], curve["mean"], yerr=half, marker="o", capsize=3, label=group, **style)
            ticks = {s for per in self.robustness.values() for s in per.get(corruption, {}).get("severity", [])}
            ax.set_xticks(sorted(ticks))
            ax.set_title(corruption)
            ax.set_xlabel("severity (0 = clean)")
            ax.set_ylabel(f"{self.robustness_metric} (mean, {self.confidence:.0%} CI)")
            ax.grid(alpha=0.3)
        for ax in axes[len(corruptions):]:
            ax.set_visible(False)
        axes[0].legend(fontsize="small")
        fig.suptitle(f"Robustness to test-time noise: {self.title}")
        return _save(fig, path)

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
        files["markdown"] = out / "report.md"
        files["markdown"].write_text(self.to_markdown(images))
        files["json"] = out / "summary.json"
        files["json"].write_text(json.dumps(self.to_dict(), indent=2, default=_json_default))
        return files


def _json_default(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else str(value)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _yerr(items: Sequence[GroupSummary]) -> list[float]:
    return [0.0 if math.isnan(s.ci_high) else (s.ci_high - s.ci_low) / 2 for s in items]


def _fmt(value: float, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


def _interval(low: float, high: float, signed: bool = False) -> str:
    return "n/a" if math.isnan(low) else f"[{_fmt(low, signed)}, {_fmt(high, signed)}]"


def _mean_std(s: GroupSummary) -> str:
    return f"{_fmt(s.mean)} ± {_fmt(s.std)}"


def _auc_cell(curve: Mapping[str, Any] | None) -> str:
    if curve is None:
        return ""
    return f"{_fmt(curve['auc']['mean'])} ± {_fmt(curve['auc']['std'])}"


def _markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- analysis
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


def _aggregate_robustness(runs: Sequence[Mapping[str, Any]], confidence: float) -> dict[str, dict[str, Any]]:
    per_corruption: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        for name, curve in _curves_of(run).items():
            per_corruption.setdefault(name, []).append(curve)
    out: dict[str, dict[str, Any]] = {}
    for name, curves in per_corruption.items():
        length = min(len(c["metric"]) for c in curves)
        columns = [[float(c["metric"][i]) for c in curves] for i in range(length)]
        stats = [mean_std_ci(col, confidence) for col in columns]
        aucs = [normalized_auc(c["metric"][:length]) for c in curves]
        auc = mean_std_ci(aucs, confidence)
        out[name] = {
            "severity": list(curves[0].get("severity", range(length)))[:length],
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
    candidates = [g for g, runs in groups.items() if describe_noise(runs[0].get("noise"))[0] == NONE_LABEL]
    if len(candidates) > 1:
        raise ValueError(f"Several groups have no noise {candidates}: choose one with `baseline=` (--baseline).")
    return candidates[0] if candidates else None


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
            family, amount = describe_noise(groups[g][0].get("noise"))
            mean, std, low, high = mean_std_ci(list(per_seed.values()), confidence)
            summaries[m].append(GroupSummary(g, family, amount, len(per_seed), list(per_seed), mean, std, low, high))
            if base is not None and g != base:
                reference = _values_by_seed(groups[base], m)
                if reference:
                    a, b = (per_seed, reference) if _seeded(per_seed) and _seeded(reference) else (
                        list(per_seed.values()), list(reference.values()))
                    comparisons[m].append(t_test(a, b, confidence=confidence, group=g, baseline_name=base))
    chooser = max if mode == "max" else min
    best = chooser(summaries[metric], key=lambda s: s.mean).group
    robustness = {g: agg for g in order if (agg := _aggregate_robustness(groups[g], confidence))}
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
    )


def _family_order(runs: Sequence[Mapping[str, Any]]) -> tuple[str, float]:
    family, amount = describe_noise(runs[0].get("noise"))
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


# ------------------------------------------------------------------------------------------------- W&B
def log_report_to_wandb(
    report: ComparisonReport,
    files: Mapping[str, Path] | None = None,
    *,
    project: str = "lightning-noise",
    mode: Literal["online", "offline", "disabled"] | None = None,
    name: str | None = None,
    save_dir: str | Path | None = None,
) -> Any:
    """Log the report to a new W&B run (``job_type="report"``): the main table, the PNGs and the best group.

    ``mode`` defaults to ``$WANDB_MODE``, else ``"offline"``, so nothing is sent unless asked for; sync an
    offline run later with ``wandb sync``. Returns the finished run.
    """
    wandb = require("wandb", "Logging the comparison report to W&B")
    run = wandb.init(
        project=project,
        job_type="report",
        name=name or f"report {report.title}",
        mode=mode or os.environ.get("WANDB_MODE") or "offline",
        dir=str(save_dir) if save_dir is not None else None,
        config={"metric": report.metric, "baseline": report.baseline, "mode": report.mode},
    )
    columns, rows = report.table_rows()
    payload: dict[str, Any] = {"report/summary": wandb.Table(columns=columns, data=rows)}
    for key, path in (files or {}).items():
        if Path(path).suffix == ".png":
            payload[f"report/{key}"] = wandb.Image(str(path))
    run.log(payload)
    run.summary["best"] = report.best
    run.summary[f"best/{report.metric}"] = report.summary(report.best).mean
    run.finish()
    return run


# ------------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> ComparisonReport:
    """``python -m lightning_noise.report DIR [DIR ...] [--metric test/acc] [--baseline GROUP] [--out DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m lightning_noise.report",
        description="Compare configurations over seeds from run records (metrics.json files).",
    )
    parser.add_argument("sources", nargs="+", help="multirun directories, metrics.json files or glob patterns")
    parser.add_argument("--metric", default="test/acc", help="metric deciding the best configuration")
    parser.add_argument("--baseline", default=None, help="group to compare against (default: the group without noise)")
    parser.add_argument("--mode", choices=("max", "min"), default="max", help="max: higher is better; min for losses")
    parser.add_argument("--out", default=None, help="output directory (default: FIRST_SOURCE/report)")
    parser.add_argument("--pattern", default="**/metrics.json", help="file pattern searched in directories")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--title", default=None, help="title of the report and plots")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--wandb", action="store_true", help="also log the report to a W&B run")
    parser.add_argument("--wandb-project", default="lightning-noise")
    parser.add_argument("--wandb-mode", choices=("online", "offline", "disabled"), default=None,
                        help="default $WANDB_MODE, else offline")
    args = parser.parse_args(argv)
    runs = load_runs(args.sources, pattern=args.pattern)
    report = compare_runs(
        runs, metric=args.metric, baseline=args.baseline, mode=args.mode, confidence=args.confidence, title=args.title
    )
    first = Path(args.sources[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent) / "report"
    files = report.write(out, plots=not args.no_plots)
    report.print_table()
    print(f"Report written to {files['markdown']}")
    if args.wandb:
        log_report_to_wandb(report, files, project=args.wandb_project, mode=args.wandb_mode, save_dir=out)
    return report


if __name__ == "__main__":
    main()
