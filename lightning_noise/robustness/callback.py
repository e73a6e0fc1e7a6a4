"""RobustnessEvaluation: after testing, the test metric under test-time corruptions of increasing severity."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from lightning_noise._checks import check_int, check_name
from lightning_noise._evaluation import EvaluationCallback, dataset_name_of, log_results, write_outputs
from lightning_noise.robustness.corruptions import Corruption, resolve_corruptions
from lightning_noise.robustness.evaluate import DEFAULT_CORRUPTIONS, BatchSplitter, evaluate_robustness
from lightning_noise.robustness.metrics import MetricLike, check_metric
from lightning_noise.robustness.result import RobustnessResult

__all__ = ["RobustnessEvaluation"]


class RobustnessEvaluation(EvaluationCallback):
    r"""After ``trainer.test``, evaluate the model on the test data under corruptions of increasing severity.

    At ``on_test_end`` (``when="test_end"``, the default) or when you call :meth:`evaluate`
    (``when="manual"``), the model is run on the test dataloader once clean and once per corruption and severity
    (see :func:`evaluate_robustness`; noise is seeded by ``seed``, not by training, so every model of a
    comparison sees the same corrupted inputs). Then, on rank 0:

    * ``robustness.json`` and ``robustness.png`` (metric vs severity, one line per corruption) are written to
      ``output_dir`` (default ``trainer.log_dir``);
    * a rich table is printed (``print_table=True``);
    * every logger receives ``robustness/{corruption}/severity_{k}``, ``robustness/{corruption}/auc`` and
      ``robustness/mean_auc`` as scalars, and a ``WandbLogger`` also a ``robustness/table`` (``wandb.Table``)
      and the plot as ``robustness/plot`` (``wandb.Image``).

    The result is kept in ``self.result`` (a :class:`RobustnessResult`; ``result.to_dict()``). The curves'
    severity-0 value is the clean metric on the same data. Input noise callbacks are off here (they are gated
    on test batches), so the model is evaluated as deployed. Under DDP the metric covers every rank's test
    batches (torchmetrics syncs it) and every rank holds the same result.

    Args:
        corruptions: preset names or :class:`~lightning_noise.robustness.corruptions.Corruption` objects; ``"cifar10c"``
            means its four noise corruptions (for images in [0, 1]). Default: unclipped Gaussian at std 0.1,
            0.2, 0.3, 0.5, 1.0 and salt-and-pepper at fractions 0.02, 0.05, 0.1, 0.2, 0.3.
        metric: ``"accuracy"`` (from logits), a callable ``metric(preds, targets)`` or a torchmetrics metric.
        metric_name: the name shown and logged; default the metric's name.
        batch_to_inputs_targets: ``batch -> (inputs, targets)``; default ``(batch[0], batch[1])``. Predictions
            are ``pl_module(inputs)``.
        seed: seed of the corruption noise.
        when: ``"test_end"`` to run at the end of ``trainer.test``; ``"manual"`` to run only when
            :meth:`evaluate` is called.
        dataloader_idx: which test dataloader, when there are several.
        max_batches: at most this many batches per pass.
        output_dir: where to write the JSON and PNG; default ``trainer.log_dir``. ``None`` and no log dir: the
            trainer's ``default_root_dir``.
        dataset_name: shown in the title; default the datamodule's (else the dataset's) class name.
        plot: write ``robustness.png`` (matplotlib, the ``plot`` extra). Default: when matplotlib is installed;
            ``True`` without it raises.
        print_table: print the table: with rich when it is installed, else as plain text. Default: print;
            ``True`` asks for rich and raises without it.
        log: send the results to the trainer's loggers.

    Raises:
        TypeError: an argument of the wrong type, e.g. ``plot="false"`` (in ``__init__``).
        ValueError: bad arguments (in ``__init__``).
        ImportError: ``plot=True`` without matplotlib, or ``print_table=True`` without rich (in ``__init__``;
            the message names ``pip install 'lightning-noise[plot]'``). The defaults need neither.
        RuntimeError: no test dataloader when evaluating.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_noise import RobustnessEvaluation
        >>> trainer = Trainer(callbacks=[RobustnessEvaluation()])                 # tabular / generic data
        >>> trainer = Trainer(callbacks=[RobustnessEvaluation(corruptions="cifar10c")])   # images in [0, 1]
        >>> # trainer.fit(model, datamodule=dm); trainer.test(model, datamodule=dm) -> table, PNG, logs
    """

    def __init__(
        self,
        corruptions: str | Corruption | Sequence[str | Corruption] = DEFAULT_CORRUPTIONS,
        *,
        metric: MetricLike = "accuracy",
        metric_name: str | None = None,
        batch_to_inputs_targets: BatchSplitter | None = None,
        seed: int = 0,
        when: Literal["test_end", "manual"] = "test_end",
        dataloader_idx: int = 0,
        max_batches: int | None = None,
        output_dir: str | Path | None = None,
        dataset_name: str | None = None,
        plot: bool | None = None,
        print_table: bool | None = None,
        log: bool = True,
    ) -> None:
        self.corruptions = resolve_corruptions(corruptions)
        check_metric(metric)
        self.metric = metric
        self.metric_name = check_name(metric_name, "metric_name", none=True)
        self.max_batches = check_int(max_batches, "max_batches", minimum=1, none=True)
        super().__init__(
            seed=seed,
            when=when,
            dataloader_idx=dataloader_idx,
            batch_to_inputs_targets=batch_to_inputs_targets,
            output_dir=output_dir,
            dataset_name=dataset_name,
            plot=plot,
            print_table=print_table,
            log=log,
        )
        self.result: RobustnessResult | None = None

    def evaluate(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, dataloader: Iterable[Any] | None = None
    ) -> RobustnessResult:
        """Run the evaluation on ``dataloader`` (default the test dataloader) and report it; returns the result."""
        loader = self._loader(trainer, dataloader)
        with trainer.precision_plugin.forward_context():
            self.result = evaluate_robustness(
                pl_module,
                loader,
                corruptions=self.corruptions,
                metric=self.metric,
                metric_name=self.metric_name,
                batch_to_inputs_targets=self.batch_to_inputs_targets,
                seed=self.seed,
                device=pl_module.device,
                max_batches=self.max_batches,
                model_name=type(pl_module).__name__,
                dataset_name=self.dataset_name or dataset_name_of(trainer, loader),
            )
        if trainer.is_global_zero:
            self._report(trainer, self.result)
        return self.result

    def _report(self, trainer: pl.Trainer, result: RobustnessResult) -> None:
        out, self.files = write_outputs(
            trainer, result, "robustness", output_dir=self.output_dir, plot=self.plot, print_table=self.print_table
        )
        rank_zero_info(
            f"Robustness results written to {out} (mean AUC of {result.metric_name}: {result.mean_auc:.4f})."
        )
        if self.log:
            log_results(trainer, "robustness", result.scalars(), result.table_data(), self.files.get("png"))
