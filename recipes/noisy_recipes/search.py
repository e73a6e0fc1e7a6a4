"""A Hydra callback of the Optuna searches: warn when the optimized metric cannot tell the best trials apart.

With 20 validation points, every trial of a search on ``val/acc`` can score 1.0: the sweeper then reports the
first trial as "best" although nothing chose it. The searches optimize ``val/loss`` (continuous) by default;
this callback still says when several trials share the best value, whatever the metric.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def tied_best(values: list[float], direction: str) -> list[int]:
    """The indices of the trials whose value equals the best one (up to float rounding), in trial order.

    Example::

        >>> tied_best([1.0, 0.9, 1.0], "maximize"), tied_best([0.3, 0.2, 0.4], "minimize")
        ([0, 2], [1])
    """
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return []
    best = max(finite) if direction == "maximize" else min(finite)
    return [i for i, v in enumerate(values) if v is not None and math.isclose(v, best, rel_tol=1e-9, abs_tol=1e-12)]


class SearchTieWarning(Callback):
    """Collects each trial's returned value (``on_job_end``) and, at the end of the multirun, logs a warning
    naming the trials tied at the best value and what to change (``optimized_metric=val/loss``, more
    validation data), when more than one trial has it."""

    def __init__(self) -> None:
        self.values: list[float | None] = []
        self.names: list[str] = []

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        value = getattr(job_return, "_return_value", None)
        self.values.append(float(value) if isinstance(value, (int, float)) else None)
        self.names.append(" ".join(getattr(job_return, "overrides", None) or []))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        message = self.message(config)
        if message:
            log.warning(message)

    def message(self, config: DictConfig) -> str:
        """The warning text, or "" when the best value is unique (or fewer than two trials ran)."""
        direction = str(config.hydra.sweeper.get("direction", "maximize"))
        tied = tied_best(self.values, direction)
        if len(tied) < 2:
            return ""
        metric = config.get("optimized_metric")
        shown = "; ".join(f"#{i}: {self.names[i]}" for i in tied[:5]) + ("; ..." if len(tied) > 5 else "")
        return (
            f"{len(tied)} of {len(self.values)} trials tie at the best {metric} = {self.values[tied[0]]:.6g}, so the "
            f"search could not choose among them (the reported best is just the first): {shown}. Optimize a "
            "continuous metric (optimized_metric=val/loss) and give validation more data (data.val_size)."
        )
