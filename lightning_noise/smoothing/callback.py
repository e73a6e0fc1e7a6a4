"""RandomizedSmoothing: after ``trainer.test``, certify the test set with randomized smoothing and report it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from lightning_noise._checks import check_int, check_non_negative_numbers
from lightning_noise._evaluation import EvaluationCallback, dataset_name_of, log_results, write_outputs
from lightning_noise.smoothing.bounds import check_alpha
from lightning_noise.smoothing.result import DEFAULT_RADII, CertificationResult
from lightning_noise.smoothing.smoothed import DEFAULT_BATCH_SIZE, DEFAULT_N, certify, check_sigma

__all__ = ["RandomizedSmoothing"]

BatchSplitter = Callable[[Any], "tuple[Tensor, Tensor]"]


def _default_split(batch: Any) -> tuple[Tensor, Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise TypeError(
        f"RandomizedSmoothing takes (inputs, targets) = (batch[0], batch[1]) by default, but the batch is a "
        f"{type(batch).__name__}. Pass batch_to_inputs_targets=lambda batch: (inputs, targets)."
    )


class RandomizedSmoothing(EvaluationCallback):
    r"""Certify the test set with randomized smoothing after ``trainer.test`` (Cohen, Rosenfeld and Kolter 2019).

    The model's ``forward`` is the base classifier; its smoothed version at noise ``sigma`` is certified with
    :func:`~lightning_noise.certify` on the first ``max_samples`` points of the test dataloader (``n0`` + ``n``
    forward passes per point, batched). Then, on rank 0:

    * a table of the certified accuracy at each radius of ``radii``, the clean accuracy of the smoothed
      classifier, the average certified radius and the abstain rate, with ``sigma``, ``n0``, ``n``, ``alpha``
      and the number of points (rich if installed, else plain text);
    * ``certify.json`` (settings, summaries and the per-point labels and radii) and ``certify.png`` (certified
      accuracy vs radius) in ``output_dir`` (default ``trainer.log_dir``);
    * every logger receives ``certify/acc_r{radius}``, ``certify/clean_acc``, ``certify/acr``,
      ``certify/abstain_rate`` and the settings as numbers; a ``WandbLogger`` also ``certify/table`` (radius,
      certified accuracy) and the plot as ``certify/plot``.

    Under DDP the points are split across ranks (with Lightning's unshuffled distributed sampler rank ``r``
    certifies points ``r, r + W, ...``; together the first ``max_samples``), each rank draws its own noise
    (seed ``seed + rank``), and the certificates are gathered in the dataset's order. The result is kept in
    ``self.result`` (a :class:`~lightning_noise.smoothing.CertificationResult`).

    Train with Gaussian input noise of the same ``sigma`` (``InputNoise(std=sigma)``) for a base classifier
    that is accurate under that noise; an ordinary model's smoothed version mostly abstains.

    Args:
        sigma: std of the smoothing noise, in the units of the model's inputs (> 0).
        n0: samples per point that pick the top class.
        n: samples per point that bound its probability (cost: ``n0 + n`` forwards per point); default 10,000,
            as :func:`~lightning_noise.certify` and the recipes' ``eval.certification.n``.
        alpha: failure probability of each certificate.
        radii: the L2 radii at which certified accuracy is reported.
        max_samples: certify the first ``max_samples`` test points (``None``: all).
        batch_size: noisy inputs per forward call.
        seed: seed of the smoothing noise.
        when: ``"test_end"`` to run at the end of ``trainer.test``; ``"manual"``: only when :meth:`certify` is
            called.
        dataloader_idx: which test dataloader, when there are several.
        batch_to_inputs_targets: ``batch -> (inputs, targets)``; default ``(batch[0], batch[1])``.
        output_dir: where to write the JSON and PNG; default ``trainer.log_dir`` (else ``default_root_dir``).
        dataset_name: shown in titles; default the datamodule's (else the dataset's) class name.
        plot: write ``certify.png`` (matplotlib, the ``plot`` extra). Default: when matplotlib is installed;
            ``True`` requires it.
        print_table: print the table: with rich when it is installed, else as plain text. Default: print;
            ``True`` requires rich.
        log: send the results to the trainer's loggers.

    Raises:
        TypeError: an argument of the wrong type, e.g. ``plot="false"`` or ``n=1e4`` (in ``__init__``).
        ValueError: an argument out of range, e.g. ``sigma=0`` or ``alpha=1`` (in ``__init__``).
        ImportError: ``plot=True`` without matplotlib, or ``print_table=True`` without rich (in ``__init__``;
            the message names ``pip install 'lightning-noise[plot]'``). The defaults need neither.
        RuntimeError: no test dataloader when certifying.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_noise import InputNoise, RandomizedSmoothing
        >>> trainer = Trainer(callbacks=[InputNoise(std=0.25), RandomizedSmoothing(sigma=0.25, n=10_000)])
        >>> # trainer.fit(model, datamodule=dm); trainer.test(model, datamodule=dm) -> table, certify.json/png
    """

    run = "certify"

    batch_to_inputs_targets: BatchSplitter  # never None: __init__ fills in the default split

    def __init__(
        self,
        sigma: float,
        n0: int = 100,
        n: int = DEFAULT_N,
        alpha: float = 0.001,
        *,
        radii: Sequence[float] = DEFAULT_RADII,
        max_samples: int | None = 500,
        batch_size: int = DEFAULT_BATCH_SIZE,
        seed: int = 0,
        when: Literal["test_end", "manual"] = "test_end",
        dataloader_idx: int = 0,
        batch_to_inputs_targets: BatchSplitter | None = None,
        output_dir: str | Path | None = None,
        dataset_name: str | None = None,
        plot: bool | None = None,
        print_table: bool | None = None,
        log: bool = True,
    ) -> None:
        self.sigma = check_sigma(sigma)
        self.n0, self.n = check_int(n0, "n0", minimum=1), check_int(n, "n", minimum=1)
        self.alpha = check_alpha(alpha)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.radii = sorted(check_non_negative_numbers(radii, "radii", scalar=True))
        self.max_samples = check_int(max_samples, "max_samples", minimum=1, none=True)
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
        self.batch_to_inputs_targets = batch_to_inputs_targets or _default_split  # checked by the base
        self.result: CertificationResult | None = None

    # ------------------------------------------------------------------------------------------ the work
    def certify(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, dataloader: Iterable[Any] | None = None
    ) -> CertificationResult:
        """Certify this rank's share of the points, gather them, and report on rank 0; returns the result."""
        loader = self._loader(trainer, dataloader)
        rank, world = trainer.global_rank, trainer.world_size
        total = self._total_points(loader)
        x, y = self._own_points(loader, total, rank, world)
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed + rank)
        start = time.perf_counter()
        with trainer.precision_plugin.forward_context():
            labels, radii = certify(
                pl_module,
                x,
                self.sigma,
                n0=self.n0,
                n=self.n,
                alpha=self.alpha,
                batch_size=self.batch_size,
                generator=generator,
            )
        if world > 1:
            labels, radii, y, total = self._gather(trainer, labels, radii, y, total)
        self.result = CertificationResult(
            labels=labels,
            radii=radii,
            targets=y.long(),
            sigma=self.sigma,
            n0=self.n0,
            n=self.n,
            alpha=self.alpha,
            radius_grid=self.radii,
            seed=self.seed,
            seconds=time.perf_counter() - start,
            model=type(pl_module).__name__,
            dataset=self.dataset_name or dataset_name_of(trainer, loader),
            extra={"world_size": world},
        )
        if trainer.is_global_zero:
            self._report(trainer, self.result)
        return self.result

    def _total_points(self, loader: Iterable[Any]) -> int | None:
        """The points certified over all ranks: ``max_samples``, at most the dataset's size when it is known."""
        dataset = getattr(loader, "dataset", None)
        size = len(dataset) if dataset is not None and hasattr(dataset, "__len__") else None
        if self.max_samples is None:
            return size
        return self.max_samples if size is None else min(self.max_samples, size)

    def _own_points(self, loader: Iterable[Any], total: int | None, rank: int, world: int) -> tuple[Tensor, Tensor]:
        """This rank's points: the first ``ceil((total - rank) / world)`` of its (distributed) loader."""
        want = None if total is None else max(0, -(-(total - rank) // world))
        xs, ys, have = [], [], 0
        for batch in loader:
            if want is not None and have >= want:
                break
            inputs, targets = self.batch_to_inputs_targets(batch)
            if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor):
                raise TypeError(
                    "RandomizedSmoothing needs (inputs, targets) tensors from batch_to_inputs_targets, got "
                    f"({type(inputs).__name__}, {type(targets).__name__})."
                )
            keep = inputs.shape[0] if want is None else min(inputs.shape[0], want - have)
            xs.append(inputs[:keep].detach().cpu())
            ys.append(targets[:keep].detach().cpu().reshape(keep, -1)[:, 0])
            have += keep
        if not xs and want == 0:  # more ranks than points: this rank certifies none
            return torch.empty(0), torch.empty(0, dtype=torch.long)
        if not xs:
            raise RuntimeError("RandomizedSmoothing found no test points in the dataloader.")
        return torch.cat(xs), torch.cat(ys)

    @staticmethod
    def _gather(
        trainer: pl.Trainer, labels: Tensor, radii: Tensor, targets: Tensor, total: int | None
    ) -> tuple[Tensor, Tensor, Tensor, int]:
        """All ranks' certificates in the dataset's order (rank ``r`` holds points ``r, r + W, ...``)."""
        world = trainer.world_size
        count = torch.tensor([labels.numel()], device=trainer.strategy.root_device)
        counts = trainer.strategy.all_gather(count).reshape(-1).cpu()
        width = int(counts.max())
        total = int(counts.sum()) if total is None else total

        def gather(t: Tensor) -> Tensor:
            padded = torch.zeros(width, dtype=t.dtype)
            padded[: t.numel()] = t
            out = trainer.strategy.all_gather(padded.to(trainer.strategy.root_device)).cpu().reshape(world, width)
            return out.t().reshape(-1)[:total]  # column j holds points j * W + r of every rank r

        return gather(labels), gather(radii), gather(targets.long()), total

    # ------------------------------------------------------------------------------------------ reporting
    def _report(self, trainer: pl.Trainer, result: CertificationResult) -> None:
        out, self.files = write_outputs(
            trainer, result, "certify", output_dir=self.output_dir, plot=self.plot, print_table=self.print_table
        )
        rank_zero_info(
            f"Certification ({result.settings()}) written to {out}: clean accuracy {result.clean_accuracy:.4f}, "
            f"ACR {result.average_certified_radius:.4f}, abstain rate {result.abstain_rate:.4f} "
            f"({result.points_per_second:.2f} points/s)."
        )
        if self.log:
            rows = [[r, a] for r, a in zip(result.radius_grid, result.certified_accuracies, strict=True)]
            log_results(
                trainer, "certify", result.scalars(), (["radius", "certified_accuracy"], rows), self.files.get("png")
            )
