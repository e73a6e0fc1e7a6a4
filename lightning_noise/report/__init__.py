"""Comparison report: does noise help here? Mean, spread and significance over repeated seeds.

Reads run records (one ``metrics.json`` per run, e.g. every run of a Hydra multirun), groups them by
configuration, and writes a console table, ``report.md``, ``summary.json`` and PNG plots.

Run record (JSON object; only ``metrics`` is required)::

    {"name": "noise=input_0.1,seed=3",   # default: the record's folder name
     "group": "noise=input_0.1",         # configuration label (the overrides minus the seed); default: name
     "seed": 3,
     "overrides": ["noise=input_0.1", "seed=3"],
     "noise": {"kind": "input", "std": 0.1},   # or null / "none" for the baseline
     "noise_amounts": {"input.std": 0.1},      # optional: what each noise callback got (recipes write it)
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

Noise amount (x axis of the metric-vs-noise plot): the record's ``noise_amounts`` when it has them (a run whose
amounts all add no noise is a baseline); else a number found in the record's ``noise`` under a key named
``amount``, ``std``, ``p``, ``snr_db``, ``eta``, ``sigma``, ``alpha``, ``smoothing`` or ``rate`` (nested
dictionaries are searched, keys starting with ``_`` skipped); groups whose noise shares the key path and the
``kind``/``name``/``type``/``label`` strings form one line.

Command line::

    python -m lightning_noise.report logs/train/multiruns/2024-05-01_12-00-00 --metric test/acc --out report/
"""

from __future__ import annotations

from lightning_noise.report.cli import main
from lightning_noise.report.comparison import ComparisonReport, compare_runs
from lightning_noise.report.records import describe_noise, describe_run, load_runs
from lightning_noise.report.result import ComparisonResult, GroupSummary
from lightning_noise.report.stats import Comparison, mean_std_ci, t_quantile, t_test
from lightning_noise.report.wandb_log import log_report_to_wandb

__all__ = [
    "Comparison",
    "ComparisonReport",
    "ComparisonResult",
    "GroupSummary",
    "compare_runs",
    "describe_noise",
    "describe_run",
    "load_runs",
    "log_report_to_wandb",
    "main",
    "mean_std_ci",
    "t_quantile",
    "t_test",
]
