"""The trial a worker process is running, for the training run to read (pruning, objectives). No torch here:
the worker imports it before knowing whether its task trains anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrialContext:
    """The trial a worker is running: ``trial`` (an ``optuna.Trial``), whether a pruner watches it, the metric
    names the search reads (``objectives``; None: the run's return value). Filled by the run: ``metrics``,
    ``pruned_epoch`` (None if not pruned), ``reported`` (validation values reported to the pruner)."""

    trial: Any
    pruning: bool
    objectives: list[str] | None
    metrics: dict[str, float] = field(default_factory=dict)
    pruned_epoch: int | None = None
    reported: int = 0

    @property
    def pruned(self) -> bool:
        return self.pruned_epoch is not None


_CURRENT: list[TrialContext] = []


def set_current(context: TrialContext | None) -> None:
    """Make ``context`` the trial of the runs in this process (None: no trial)."""
    _CURRENT[:] = [context] if context is not None else []


def current() -> TrialContext | None:
    """The trial this process is running, or None outside an Optuna search."""
    return _CURRENT[0] if _CURRENT else None
