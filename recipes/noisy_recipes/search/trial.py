"""What a training run does when it is a trial of the Optuna search: report the clean validation metric to the
pruner at each validation (and stop when it says so), measure the robustness objective of a Pareto search, and
record both in ``metrics.json`` and the logs.

``recipes/train.py`` calls :func:`trial_callbacks` before training, :func:`finish_trial` after the final
evaluation and :func:`add_to_record` when writing ``metrics.json``; outside a search (no current trial) they do
nothing. The worker process sets the current trial (:func:`set_current`) around each run.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from noisy_recipes.search.context import TrialContext, current, set_current
from noisy_recipes.utils import ConfigError

__all__ = ["OptunaPruning", "TrialContext", "ValidationRobustness", "current", "set_current"]

# The robustness objective of hparams_search=optuna_pareto: the normalized area under the validation accuracy of
# the best checkpoint under test-time Gaussian noise (std 0 to 1, lightning_noise's "gaussian" ladder), in [0, 1].
ROBUSTNESS_OBJECTIVE = "val/gaussian_auc"


class OptunaPruning(Callback):
    """Report ``monitor`` (the clean validation metric) to an Optuna trial at the end of each validation, and stop
    training (``trainer.should_stop``) when the study's pruner prunes the trial; a W&B run gets the tag
    ``pruned``. The run then ends as usual (best checkpoint evaluated, ``metrics.json`` written) and the worker
    records the trial as PRUNED.

    Args:
        context: the current trial (:class:`TrialContext`); its ``pruned_epoch`` and ``reported`` are updated.
        monitor: the logged metric to report (``val/loss``); steps are epochs.

    Example::

        >>> import optuna
        >>> study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1.0))
        >>> callback = OptunaPruning(TrialContext(study.ask(), pruning=True, objectives=None), monitor="val/loss")
        >>> callback.monitor
        'val/loss'
    """

    def __init__(self, context: TrialContext, *, monitor: str) -> None:
        if not isinstance(monitor, str) or not monitor.startswith("val/"):
            raise ValueError(f"`monitor` must be a validation metric ('val/...'), got {monitor!r}.")
        self.context, self.monitor = context, monitor

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or self.context.pruned:
            return
        epoch = trainer.current_epoch
        self.context.trial.report(float(value), step=epoch)
        self.context.reported += 1
        if self.context.trial.should_prune():
            self.context.pruned_epoch = epoch
            trainer.should_stop = True
            for logger in trainer.loggers:
                if type(logger).__name__ == "WandbLogger" and trainer.is_global_zero:
                    logger.experiment.tags = (*(logger.experiment.tags or ()), "pruned")


class ValidationRobustness(Callback):
    """At the end of the final evaluation (best weights restored, noise off): the normalized AUC of the
    validation accuracy under test-time Gaussian noise (:func:`lightning_noise.evaluate_robustness`, the
    ``gaussian`` ladder, corruption seed 0, so every trial sees the same noisy inputs); in ``value``."""

    def __init__(self) -> None:
        self.value: float | None = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from lightning_noise import evaluate_robustness

        loader = trainer.datamodule.val_dataloader()
        self.value = evaluate_robustness(pl_module, loader, corruptions=["gaussian"], seed=0).mean_auc


def trial_callbacks(cfg: Any, task: str) -> list[Callback]:
    """The callbacks of the current trial: the pruning callback when a pruner is set, the robustness objective
    when the search optimizes it; [] outside a search.

    Raises:
        ConfigError: a pruner on a run whose optimized metric is not a validation metric; the robustness
            objective on a model that is not a classifier.
    """
    context = current()
    if context is None:
        return []
    callbacks: list[Callback] = []
    metric = str(cfg.get("optimized_metric") or "")
    if context.pruning:
        if not metric.startswith("val/"):
            raise ConfigError(
                f"hydra.sweeper.pruner must be none when the search optimizes a metric measured after training; "
                f"got a pruner with optimized_metric={metric or None} (prune on val/loss or val/mse)."
            )
        callbacks.append(OptunaPruning(context, monitor=metric))
    if ROBUSTNESS_OBJECTIVE in (context.objectives or []):
        if task != "classification":
            raise ConfigError(robustness_error(task))
        callbacks.append(ValidationRobustness())
    return callbacks


def robustness_error(task: str) -> str:
    return (
        f"hydra.sweeper.objectives must name a robustness objective this model reports; got {ROBUSTNESS_OBJECTIVE} "
        f"(the validation accuracy under Gaussian noise) on a {task} model, which has no accuracy. Use "
        "hparams_search=optuna_regression (one objective) for regression data."
    )


def finish_trial(metrics: dict[str, float], callbacks: list[Callback]) -> None:
    """After the final evaluation: add the robustness objective to ``metrics`` and keep them for the worker."""
    context = current()
    if context is None:
        return
    for callback in callbacks:
        if isinstance(callback, ValidationRobustness) and callback.value is not None:
            metrics[ROBUSTNESS_OBJECTIVE] = callback.value
    context.metrics = dict(metrics)


def add_to_record(record: dict[str, Any]) -> None:
    """Put the trial in the run record (``metrics.json`` key ``search``): its number, whether it was pruned and
    at which epoch, the validation values reported to the pruner."""
    context = current()
    if context is None:
        return
    record["search"] = {
        "trial": context.trial.number,
        "study": context.trial.study.study_name,
        "pruned": context.pruned,
        "pruned_epoch": context.pruned_epoch,
        "reported": context.reported,
    }
