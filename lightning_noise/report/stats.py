"""Statistics over seeds: Student-t quantiles, mean/std/confidence interval, paired and Welch t-tests."""

from __future__ import annotations

import math
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
