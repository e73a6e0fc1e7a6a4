"""Command line: ``python -m lightning_noise.report DIR [DIR ...] --metric test/acc --out report/``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from lightning_noise.report.comparison import ComparisonReport, compare_runs
from lightning_noise.report.records import load_runs
from lightning_noise.report.wandb_log import log_report_to_wandb

__all__ = ["check_out_dir", "main"]


def check_out_dir(out: Path, sources: Sequence[str | Path] = ()) -> None:
    """Refuse to write a report into a non-empty directory (it would overwrite an earlier report, perhaps a
    committed one). Entries that are among ``sources`` (``OUT/runs`` of ``compare.py --sweep``) do not count.

    Raises:
        ValueError: ``out`` holds other files (the message names a few and says to add ``--force``).
    """
    if not out.is_dir():
        return
    inputs = {Path(source).resolve() for source in sources}
    entries = sorted(p.name for p in out.iterdir() if p.resolve() not in inputs)
    if entries:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise ValueError(
            f"--out {out} is not empty ({shown}): the report would overwrite what is there. Add --force to "
            "overwrite it, or choose another --out."
        )


def main(argv: Sequence[str] | None = None) -> ComparisonReport:
    """``python -m lightning_noise.report DIR [DIR ...] [--metric test/acc] [--baseline GROUP] [--out DIR] [--force]``.

    A mistake in the arguments (no run records, an unknown metric or baseline, several possible baselines, a
    non-empty ``--out`` without ``--force``) ends in one line on stderr and exit status 2, without a traceback
    (``LIGHTNING_NOISE_FULL_ERROR=1`` raises it instead).
    """
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
    parser.add_argument(
        "--wandb-mode",
        choices=("online", "offline", "disabled"),
        default=None,
        help="default $WANDB_MODE, else offline",
    )
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out (overwrites its report)")
    args = parser.parse_args(argv)
    first = Path(args.sources[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent) / "report"
    try:
        if not args.force:
            check_out_dir(out, args.sources)
        runs = load_runs(args.sources, pattern=args.pattern)
        report = compare_runs(
            runs,
            metric=args.metric,
            baseline=args.baseline,
            mode=args.mode,
            confidence=args.confidence,
            title=args.title,
        )
    except (ValueError, FileNotFoundError) as error:  # what the user asked for cannot be done: say what to change
        if os.environ.get("LIGHTNING_NOISE_FULL_ERROR") == "1":
            raise
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    files = report.write(out, plots=not args.no_plots)
    report.print_table()
    print(f"Report written to {files['markdown']}")
    if args.wandb:
        log_report_to_wandb(report, files, project=args.wandb_project, mode=args.wandb_mode, save_dir=out)
    return report
