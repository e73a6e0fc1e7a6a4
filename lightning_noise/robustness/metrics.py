"""What robustness evaluation measures: accuracy, a callable or a torchmetrics metric, as a torchmetrics ``Metric``.

Each pass over the data updates one metric per batch and computes it once; under DDP (``torch.distributed``
initialized) torchmetrics syncs its state over the ranks when it is computed, so every rank gets the value of
the whole dataset.

Example::

    >>> import torch
    >>> accuracy = as_metric("accuracy")
    >>> accuracy.update(torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]]), torch.tensor([0, 1, 1]))
    >>> round(float(accuracy.compute()), 4)
    0.6667
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = ["CallableMetric", "LogitAccuracy", "MetricLike", "as_metric", "check_metric", "display_name"]

MetricLike = Any  # "accuracy", a callable ``metric(preds, targets) -> float``, or a torchmetrics-style Metric

_EMPTY = "Robustness evaluation saw no samples: the dataloader is empty."


def _is_torchmetric(metric: Any) -> bool:
    return all(callable(getattr(metric, name, None)) for name in ("update", "compute", "reset"))


def check_metric(metric: MetricLike) -> None:
    """Raise ``ValueError`` unless ``metric`` is ``"accuracy"``, a callable or a torchmetrics-style metric."""
    valid = metric == "accuracy" if isinstance(metric, str) else callable(metric) or _is_torchmetric(metric)
    if not valid:
        raise ValueError(
            f"`metric` must be 'accuracy', a callable(preds, targets) or a torchmetrics metric, got {metric!r}."
        )


def display_name(metric: MetricLike, name: str | None) -> str:
    """``name`` if given, else the metric's: ``"accuracy"``, the metric's class or the callable's ``__name__``."""
    if name:
        return name
    if isinstance(metric, str):
        return metric
    name = type(metric).__name__ if _is_torchmetric(metric) else getattr(metric, "__name__", type(metric).__name__)
    return "metric" if name == "<lambda>" else name


def as_metric(metric: MetricLike) -> Metric:
    """The metric that accumulates one pass: :class:`LogitAccuracy` for ``"accuracy"``, a torchmetrics metric
    itself, a :class:`CallableMetric` around a callable."""
    if isinstance(metric, str):
        return LogitAccuracy()
    return metric if _is_torchmetric(metric) else CallableMetric(metric)


class LogitAccuracy(Metric):
    """The fraction of correct predictions over every sample seen: class logits ``[..., C]`` by argmax (``> 0``
    for ``C = 1``), binary logits of the targets' shape by ``> 0``, integer predictions as they are.

    Counted in float64, so the value is ``correct / total`` exactly as a float64 division.

    Raises:
        ValueError: predictions whose shape does not fit the targets' (in ``update``); no sample (in ``compute``).
    """

    full_state_update = False
    correct: Tensor
    total: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, targets: Tensor) -> None:
        if preds.ndim == targets.ndim + 1 and preds.shape[:-1] == targets.shape:
            labels = preds.argmax(-1) if preds.shape[-1] > 1 else (preds.squeeze(-1) > 0).long()
        elif preds.shape == targets.shape and preds.is_floating_point():
            labels = (preds > 0).long()
        elif preds.shape == targets.shape:
            labels = preds
        else:
            raise ValueError(
                "metric='accuracy' needs class logits of shape [N, C] with targets [N], or binary logits [N] or "
                f"[N, 1] with 0/1 targets of the same shape; got predictions {tuple(preds.shape)} and targets "
                f"{tuple(targets.shape)}. Pass metric=callable(preds, targets) or a torchmetrics metric."
            )
        self.correct += (labels == targets.long()).sum()
        self.total += labels.numel()

    def compute(self) -> Tensor:
        if self.total == 0:
            raise ValueError(_EMPTY)
        return self.correct / self.total


class CallableMetric(Metric):
    """``fn(preds, targets)`` called once on the predictions and targets of every batch, concatenated along
    dim 0 (over every rank under DDP, rank 0's first).

    Raises:
        ValueError: no sample (in ``compute``).
    """

    full_state_update = False
    preds: list[Tensor]  # states added in __init__ (torchmetrics types them as Tensor | Module)
    targets: list[Tensor]

    def __init__(self, fn: Callable[[Tensor, Tensor], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.add_state("preds", [], dist_reduce_fx="cat")
        self.add_state("targets", [], dist_reduce_fx="cat")

    def update(self, preds: Tensor, targets: Tensor) -> None:
        self.preds.append(preds.detach())
        self.targets.append(targets.detach())

    def compute(self) -> Any:
        if len(self.preds) == 0:
            raise ValueError(_EMPTY)
        return self.fn(dim_zero_cat(self.preds), dim_zero_cat(self.targets))
