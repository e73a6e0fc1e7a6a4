"""Logging a comparison report to a new W&B run (wandb is imported on use, the ``recipes`` extra)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from lightning_noise._optional import require
from lightning_noise.report import tables
from lightning_noise.report.comparison import ComparisonReport

__all__ = ["log_report_to_wandb"]


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
    columns, rows = tables.table_data(report)  # numbers, so W&B can plot and sort them
    payload: dict[str, Any] = {"report/summary": wandb.Table(columns=columns, data=rows)}
    for key, path in (files or {}).items():
        if Path(path).suffix == ".png":
            payload[f"report/{key}"] = wandb.Image(str(path))
    run.log(payload)
    run.summary["best"] = report.best
    run.summary[f"best/{report.metric}"] = report.summary(report.best).mean
    run.finish()
    return run
