"""Command line: ``python -m lightning_noise.report DIR [DIR ...] --metric test/acc --out report/``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from lightning_noise.report.comparison import ComparisonReport, compare_runs
from lightning_noise.report.records import load_runs
from lightning_noise.report.wandb_log import log_report_to_wandb

__all__ = ["main"]


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
