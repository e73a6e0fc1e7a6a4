"""Tied best values: warn when the optimized metric cannot tell the best trials apart.

With 20 validation points, every trial of a search on ``val/acc`` can score 1.0: the search then reports the
first trial as "best" although nothing chose it. The searches optimize ``val/loss`` (continuous) by default;
:func:`tie_message` still says when several trials share the best value, whatever the metric. The Optuna sweeper
prints it at the end of a search (read from the study); :class:`SearchTieWarning` does the same for any other
Hydra sweeper, as a Hydra callback.
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
        self.names.append(f"#{len(self.names)}: " + " ".join(getattr(job_return, "overrides", None) or []))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        message = self.message(config)
        if message:
            log.warning(message)

    def message(self, config: DictConfig) -> str:
        """The warning text, or "" when the best value is unique (or fewer than two trials ran)."""
        direction = str(config.hydra.sweeper.get("direction", "maximize"))
        return tie_message(self.values, self.names, metric=config.get("optimized_metric"), direction=direction)


def tie_message(values: list[float | None], names: list[str], *, metric: str | None, direction: str) -> str:
    """The warning naming the trials tied at the best value (``names[i]`` labels trial ``i``), or "" when the
    best value is unique (or fewer than two trials have a value).

    Example::

        >>> tie_message([1.0, 1.0], ["#0 a", "#1 b"], metric="val/acc", direction="maximize")[:45]
        '2 of 2 trials tie at the best val/acc = 1, so'
    """
    tied = tied_best(values, direction)
    if len(tied) < 2:
        return ""
    shown = "; ".join(names[i] for i in tied[:5]) + ("; ..." if len(tied) > 5 else "")
    return (
        f"{len(tied)} of {len(values)} trials tie at the best {metric} = {values[tied[0]]:.6g}, so the "
        f"search could not choose among them (the reported best is just the first): {shown}. Optimize a "
        "continuous metric (optimized_metric=val/loss) and give validation more data (data.val_size)."
    )
