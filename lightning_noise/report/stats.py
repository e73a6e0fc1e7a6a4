"""Statistics over seeds (scipy's): Student-t quantiles, mean/std/confidence interval, paired and Welch t-tests."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lightning_noise._optional import require

__all__ = ["Comparison", "clip_interval", "mean_std_ci", "metric_range", "t_quantile", "t_test"]

# Metrics with a bounded range, by the last part of their name (``test/acc`` -> ``acc``).
BOUNDED = {"acc": (0.0, 1.0), "accuracy": (0.0, 1.0), "loss": (0.0, math.inf), "mse": (0.0, math.inf)}


def metric_range(metric: str) -> tuple[float, float] | None:
    """The range of a metric from its name (``test/acc``: [0, 1]; ``val/loss``, ``test/mse``: [0, inf)), or None.

    Example::

        >>> metric_range("test/acc"), metric_range("robustness/auc")
        ((0.0, 1.0), None)
    """
    return BOUNDED.get(str(metric).rsplit("/", 1)[-1].lower())


def clip_interval(low: float, high: float, bounds: tuple[float, float] | None) -> tuple[float, float, bool]:
    """``(low, high, clipped)``: the interval cut to ``bounds``. A Student t interval of a mean near a bound (an
    accuracy near 1 over few seeds) runs past what the metric can take; the report says when it cut one.

    Example::

        >>> clip_interval(0.7259, 1.2341, (0.0, 1.0))
        (0.7259, 1.0, True)
    """
    if bounds is None or math.isnan(low):
        return low, high, False
    new_low, new_high = max(low, bounds[0]), min(high, bounds[1])
    return new_low, new_high, (new_low, new_high) != (low, high)


def _stats() -> Any:
    return require("scipy.stats", "The comparison report's t quantiles and p-values", "scipy")


def t_quantile(q: float, dof: float) -> float:
    """The ``q`` quantile of Student's t distribution with ``dof`` degrees of freedom (scipy)."""
    return float(_stats().t.ppf(q, dof))


def mean_std_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, standard deviation (ddof=1) and the Student-t confidence interval of the mean (``scipy.stats.t``).

    With one value the standard deviation and the interval are NaN; with no spread the interval is the mean.

    Example::

        >>> [round(v, 4) for v in mean_std_ci([0.80, 0.82, 0.78, 0.81, 0.79])]
        [0.8, 0.0158, 0.7804, 0.8196]
    """
    n = len(values)
    if n == 0:
        raise ValueError("mean_std_ci needs at least one value.")
    mean = math.fsum(values) / n
    if n < 2 or not math.isfinite(mean):  # one seed, or a diverged run (inf) or a missing value (nan)
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    if std == 0:
        return mean, std, mean, mean
    low, high = _stats().t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return mean, std, float(low), float(high)


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

    Paired: ``scipy.stats.ttest_rel`` on the per-seed values (``n - 1`` degrees of freedom). Otherwise Welch's
    ``scipy.stats.ttest_ind(equal_var=False)`` (Welch-Satterthwaite degrees of freedom). The interval is the
    test's confidence interval of the difference. With too few values (fewer than 2 per side) the test is
    ``"n/a"`` and p is NaN. With zero variance the p-value is 1 for equal means and 0 otherwise.
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
    test: Literal["paired t", "Welch t"] = "paired t" if paired else "Welch t"
    if not paired and (len(a) < 2 or len(b) < 2):
        return Comparison(group, baseline_name, diff, math.nan, math.nan, "n/a", math.nan, math.nan, math.nan, len(a))
    if not all(map(math.isfinite, a + b)):  # a diverged run (inf) or a missing value (nan): no test, not "certain"
        dof = len(a) - 1 if paired else len(a) + len(b) - 2
        return Comparison(group, baseline_name, diff, math.nan, math.nan, test, math.nan, dof, math.nan, len(a))
    with warnings.catch_warnings():  # data with (almost) no spread: scipy warns, the zero-variance case is below
        warnings.simplefilter("ignore", RuntimeWarning)
        if paired:
            result = _stats().ttest_rel(a, [baseline[s] for s in values])  # type: ignore[index]  # paired: a mapping
        else:
            result = _stats().ttest_ind(a, b, equal_var=False)
    if not math.isfinite(result.statistic):  # zero variance (the values are finite)
        t, p = (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
        dof = len(a) - 1 if paired else len(a) + len(b) - 2
        return Comparison(group, baseline_name, diff, diff, diff, test, t, dof, p, len(a))
    ci = result.confidence_interval(confidence)
    return Comparison(
        group,
        baseline_name,
        diff,
        float(ci.low),
        float(ci.high),
        test,
        float(result.statistic),
        int(result.df) if paired else float(result.df),
        float(result.pvalue),
        len(a),
    )
