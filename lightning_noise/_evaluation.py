"""What the evaluation callbacks (:class:`~lightning_noise.RobustnessEvaluation` and
:class:`~lightning_noise.RandomizedSmoothing`) share: the arguments they both take and their checks, their
output switches, the test dataloader they read, the dataset name in their titles, and how they write, print
and log their results.

Example::

    >>> plot, print_table, log = output_switches("RandomizedSmoothing", plot=False, print_table=None, log=True)
    >>> plot, print_table, log
    (False, True, True)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from lightning_noise._checks import check_bool, check_callable, check_choice, check_int, check_name, describe
from lightning_noise._optional import available, check_available
from lightning_noise._repr import ArgumentsRepr


class EvaluationCallback(ArgumentsRepr, Callback):
    """Runs ``self.<run>(trainer, pl_module)`` at the end of ``trainer.test`` when ``self.when == "test_end"``;
    :meth:`_loader` gives the dataloader it reads (the one passed, else the test dataloader ``dataloader_idx``).

    ``__init__`` checks and keeps the arguments every evaluation callback takes (see the subclasses' docstrings);
    each subclass checks its own. ``repr`` shows the class and the arguments that differ from their defaults.

    Raises:
        TypeError: an argument of the wrong type, e.g. ``plot="false"`` or ``output_dir=1``.
        ValueError: ``seed < 0``, ``dataloader_idx < 0``, a ``when`` other than ``"test_end"`` or ``"manual"``,
            an empty ``dataset_name``.
        ImportError: ``plot=True`` without matplotlib, or ``print_table=True`` without rich.
    """

    run = "evaluate"  # the name of the public method that does the work

    def __init__(
        self,
        *,
        seed: int,
        when: str,
        dataloader_idx: int,
        batch_to_inputs_targets: Any,
        output_dir: Any,
        dataset_name: str | None,
        plot: bool | None,
        print_table: bool | None,
        log: bool,
    ) -> None:
        self.seed = check_int(seed, "seed", minimum=0)
        self.when = check_choice(when, "when", ("test_end", "manual"))
        self.dataloader_idx = check_int(dataloader_idx, "dataloader_idx", minimum=0)
        self.batch_to_inputs_targets = check_callable(batch_to_inputs_targets, "batch_to_inputs_targets", none=True)
        if output_dir is not None and not isinstance(output_dir, (str, os.PathLike)):
            raise TypeError(f"`output_dir` must be a path (str or pathlib.Path) or None, got {describe(output_dir)}.")
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.dataset_name = check_name(dataset_name, "dataset_name", none=True)
        self.plot, self.print_table, self.log = output_switches(
            type(self).__name__, plot=plot, print_table=print_table, log=log
        )
        self.files: dict[str, Path] = {}

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.when == "test_end":
            getattr(self, self.run)(trainer, pl_module)

    def _loader(self, trainer: pl.Trainer, dataloader: Iterable[Any] | None) -> Iterable[Any]:
        if dataloader is not None:
            return dataloader
        return pick_test_dataloader(trainer, self.dataloader_idx, type(self).__name__, self.run)


def output_switches(owner: str, *, plot: Any, print_table: Any, log: Any) -> tuple[bool, bool, bool]:
    """``(plot, print_table, log)`` as bools. ``plot=None``: plot when matplotlib is installed;
    ``print_table=None``: print (with rich when it is installed, else as plain text).

    Raises:
        TypeError: a switch that is not a bool (``"false"`` included) or None (``log``: not a bool).
        ImportError: ``plot=True`` without matplotlib, or ``print_table=True`` without rich; the message names
            ``pip install 'lightning-noise[plot]'``.
    """
    plot = None if plot is None else check_bool(plot, "plot")
    print_table = None if print_table is None else check_bool(print_table, "print_table")
    log = check_bool(log, "log")
    if plot:
        check_available("matplotlib", f"{owner}(plot=True)")
    if print_table:
        check_available("rich", f"{owner}(print_table=True)")
    plot = available("matplotlib") if plot is None else plot
    return plot, True if print_table is None else print_table, log


def pick_test_dataloader(trainer: pl.Trainer, dataloader_idx: int, owner: str, method: str) -> Iterable[Any]:
    """The trainer's test dataloader number ``dataloader_idx`` (the only one when there is one).

    Raises:
        ValueError: fewer test dataloaders than ``dataloader_idx + 1``.
        RuntimeError: no test dataloader (the message says to call ``method(trainer, model, dataloader)``).
    """
    loaders = trainer.test_dataloaders
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    if isinstance(loaders, (list, tuple)):
        if dataloader_idx >= len(loaders):
            raise ValueError(
                f"{owner} `dataloader_idx`={dataloader_idx}, but there are {len(loaders)} test dataloaders."
            )
        loaders = loaders[dataloader_idx]
    if loaders is None:
        raise RuntimeError(
            f"{owner} found no test dataloader: call trainer.test(...) with one, or call "
            f"{method}(trainer, model, dataloader) yourself."
        )
    return loaders


def dataset_name_of(trainer: pl.Trainer, loader: Iterable[Any]) -> str:
    """The datamodule's ``name`` (else its class name), else the dataset's class name."""
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None:
        return str(getattr(datamodule, "name", None) or type(datamodule).__name__)
    dataset = getattr(loader, "dataset", None)
    return type(dataset).__name__ if dataset is not None else "dataset"


def write_outputs(
    trainer: pl.Trainer, result: Any, stem: str, *, output_dir: Path | None, plot: bool, print_table: bool
) -> tuple[Path, dict[str, Path]]:
    """Write ``{stem}.json`` (and ``{stem}.png`` when ``plot``) to ``output_dir`` (default ``trainer.log_dir``,
    else ``default_root_dir``) and print the result's table when ``print_table``; returns the folder and files."""
    out = output_dir or Path(trainer.log_dir or trainer.default_root_dir)
    files = {"json": result.save_json(out / f"{stem}.json")}
    if plot:
        files["png"] = result.plot(out / f"{stem}.png")
    if print_table:
        result.print_table()
    return out, files


def log_results(
    trainer: pl.Trainer,
    prefix: str,
    scalars: dict[str, float],
    table: tuple[list[str], list[list[Any]]],
    png: Path | None,
) -> None:
    """Send ``scalars`` to every logger; a ``WandbLogger`` also gets ``{prefix}/table`` (numbers, so that W&B can
    plot and sort them) and the plot as ``{prefix}/plot``. W&B itself is imported only when one is used."""
    for logger in trainer.loggers:
        logger.log_metrics(scalars, step=trainer.global_step)
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:  # pragma: no cover - lightning always ships it
        return
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table(f"{prefix}/table", columns=table[0], data=table[1])
            if png is not None:
                logger.log_image(f"{prefix}/plot", images=[str(png)])
