"""Robustness to test-time corruptions: the test metric under noise of increasing severity.

* :mod:`~lightning_noise.robustness.corruptions`: the corruptions, pure functions and named severity ladders
  (also importable as :mod:`lightning_noise.corruptions`);
* :func:`evaluate_robustness`: the metric of any model on a dataloader, per corruption and severity
  (:mod:`~lightning_noise.robustness.metrics`: accuracy, a callable or a torchmetrics metric);
* :class:`RobustnessEvaluation`: runs it at the end of ``trainer.test`` and reports it (console table, PNG
  plot, JSON, logger);
* :class:`RobustnessResult`, :class:`RobustnessCurve`: the curves, with their areas (:func:`normalized_auc`).

Area under the curve. For a corruption with severities ``0..S`` (0 = clean) and metric values ``m_0..m_S``,
``auc = trapz(m, dx=1) / S = (m_0/2 + m_1 + ... + m_{S-1} + m_S/2) / S``: the trapezoid rule over the severity
index, divided by its width so that it is in the metric's unit. A model the corruption does not affect has
``auc == m_0``; with accuracy, 1.0 is a perfect model at every severity.
"""

from lightning_noise.robustness.callback import RobustnessEvaluation
from lightning_noise.robustness.evaluate import DEFAULT_CORRUPTIONS, evaluate_robustness
from lightning_noise.robustness.result import RobustnessCurve, RobustnessResult, normalized_auc

__all__ = [
    "DEFAULT_CORRUPTIONS",
    "RobustnessCurve",
    "RobustnessEvaluation",
    "RobustnessResult",
    "evaluate_robustness",
    "normalized_auc",
]
