"""RobustnessEvaluation: after testing, the test metric under test-time corruptions of increasing severity.

:func:`evaluate_robustness` does the work on any model and dataloader; :class:`RobustnessEvaluation` runs it
at the end of ``trainer.test`` and reports it (console table, PNG plot, JSON, logger).

Area under the curve. For a corruption with severities ``0..S`` (0 = clean) and metric values ``m_0..m_S``,
``auc = trapz(m, dx=1) / S = (m_0/2 + m_1 + ... + m_{S-1} + m_S/2) / S``: the trapezoid rule over the severity
index, divided by its width so that it is in the metric's unit. A model the corruption does not affect has
``auc == m_0``; with accuracy, 1.0 is a perfect model at every severity.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from lightning_noise._base import mix_seed
from lightning_noise._optional import check_available, require
from lightning_noise._structures import map_floating, tensors_in
from lightning_noise.corruptions import Corruption, resolve_corruptions

__all__ = ["RobustnessCurve", "RobustnessEvaluation", "RobustnessResult", "evaluate_robustness", "normalized_auc"]

MetricLike = Any  # "accuracy", a callable ``metric(preds, targets) -> float``, or a torchmetrics-style Metric
BatchSplitter = Callable[[Any], tuple[Any, Tensor]]
DEFAULT_CORRUPTIONS: tuple[str, ...] = ("gaussian", "salt_and_pepper")


def normalized_auc(values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` over severity indices ``0..S``, divided by ``S`` (the metric's unit).

    Example::

        >>> normalized_auc([1.0, 0.5, 0.0])
        0.5
    """
    values = [float(v) for v in values]
    if len(values) < 2:
        raise ValueError(f"An area under the curve needs at least two severities, got {len(values)}.")
    return (sum(values) - (values[0] + values[-1]) / 2) / (len(values) - 1)


@dataclass
class RobustnessCurve:
    """The metric of one corruption at severities 0 (clean), 1, ..., S.

    ``level[0]`` is ``None`` (clean); ``level[k]`` is the corruption's amount at severity ``k``.
    """

    corruption: str
    amount: str
    severity: list[int]
    level: list[float | None]
    metric: list[float]

    @property
    def auc(self) -> float:
        """See :func:`normalized_auc`."""
        return normalized_auc(self.metric)

    def to_dict(self) -> dict[str, Any]:
        return {
            "amount": self.amount,
            "severity": list(self.severity),
            "level": list(self.level),
            "metric": list(self.metric),
            "auc": self.auc,
        }


@dataclass
class RobustnessResult:
    """The curves of every corruption, with what produced them.

    ``to_dict()`` gives ``{corruption: {"amount", "severity", "level", "metric", "auc"}}`` (the ``robustness``
    entry of a run record read by :mod:`lightning_noise.report`); ``save_json`` writes that under
    ``"corruptions"`` together with the metric name, seed, model and dataset.
    """

    metric_name: str
    curves: dict[str, RobustnessCurve]
    seed: int
    model: str = "model"
    dataset: str = "dataset"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> float:
        """The metric on clean inputs (severity 0)."""
        return next(iter(self.curves.values())).metric[0]

    @property
    def auc(self) -> dict[str, float]:
        return {name: curve.auc for name, curve in self.curves.items()}

    @property
    def mean_auc(self) -> float:
        """The mean of the per-corruption AUCs."""
        return sum(self.auc.values()) / len(self.curves)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: curve.to_dict() for name, curve in self.curves.items()}

    def scalars(self, prefix: str = "robustness") -> dict[str, float]:
        """Flat ``{prefix}/{corruption}/severity_{k}`` and ``{prefix}/{corruption}/auc`` values for loggers."""
        out: dict[str, float] = {}
        for name, curve in self.curves.items():
            out.update({f"{prefix}/{name}/severity_{s}": m for s, m in zip(curve.severity, curve.metric)})
            out[f"{prefix}/{name}/auc"] = curve.auc
        out[f"{prefix}/mean_auc"] = self.mean_auc
        return out

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "metric": self.metric_name,
            "seed": self.seed,
            "model": self.model,
            "dataset": self.dataset,
            "mean_auc": self.mean_auc,
            "corruptions": self.to_dict(),
            **self.extra,
        }
        path.write_text(json.dumps(record, indent=2))
        return path

    def table_rows(self) -> tuple[list[str], list[list[str]]]:
        """Column names and rows of text: one row per corruption, one column per severity (0 = clean), the AUC."""
        width = max(len(c.severity) for c in self.curves.values())
        columns = ["corruption", "levels", *[str(s) for s in range(width)], "AUC"]
        rows = []
        for name, curve in self.curves.items():
            levels = f"{curve.amount} {curve.level[1]:g}" + (f"..{curve.level[-1]:g}" if len(curve.level) > 2 else "")
            values = [f"{m:.3f}" for m in curve.metric] + [""] * (width - len(curve.metric))
            rows.append([name, levels, *values, f"{curve.auc:.3f}"])
        return columns, rows

    def print_table(self, console: Any = None) -> None:
        """Print the table with rich (the ``recipes`` extra)."""
        rich_table = require("rich.table", "Printing the robustness table", "rich")
        rich_console = require("rich.console", "Printing the robustness table", "rich")
        columns, rows = self.table_rows()
        box = require("rich.box", "Printing the robustness table", "rich")
        table = rich_table.Table(
            title=f"Robustness of {self.model} on {self.dataset}: {self.metric_name} by severity "
            f"(0 = clean), seed {self.seed}",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        for i, column in enumerate(columns):
            table.add_column(column, justify="left" if i < 2 else "right", no_wrap=i >= 2)
        for row in rows:
            table.add_row(*row)
        (console or rich_console.Console()).print(table)

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Save the metric against severity, one line per corruption, as a PNG (matplotlib, the ``recipes`` extra)."""
        figure_module = require("matplotlib.figure", "Plotting robustness curves", "matplotlib")
        fig = figure_module.Figure(figsize=(6.4, 4.4), layout="constrained")
        ax = fig.subplots()
        for name, curve in self.curves.items():
            levels = ", ".join(f"{v:g}" for v in curve.level[1:])
            label = f"{name} ({curve.amount} {levels}); AUC {curve.auc:.3f}"
            ax.plot(curve.severity, curve.metric, marker="o", label=label)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel(f"test {self.metric_name}")
        ax.set_xticks(range(max(len(c.severity) for c in self.curves.values())))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(title or f"Robustness of {self.model} on {self.dataset}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        return path


# ------------------------------------------------------------------------------------------------- metrics
def default_batch_to_inputs_targets(batch: Any) -> tuple[Any, Tensor]:
    """``(batch[0], batch[1])`` for a tuple or list batch.

    Raises:
        TypeError: the batch is not a tuple or list of at least two items.
    """
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    keys = f" with keys {sorted(batch)}" if isinstance(batch, dict) else ""
    raise TypeError(
        f"Robustness evaluation takes (inputs, targets) = (batch[0], batch[1]) by default, but the batch is a "
        f"{type(batch).__name__}{keys}. Pass batch_to_inputs_targets=lambda batch: (inputs, targets)."
    )


def _accuracy_counts(preds: Tensor, targets: Tensor) -> Tensor:
    """``[correct, total]`` for class logits ``[..., C]`` (argmax) or binary logits ``[...]``/``[..., 1]`` (> 0)."""
    if preds.ndim == targets.ndim + 1 and preds.shape[:-1] == targets.shape:
        labels = preds.argmax(-1) if preds.shape[-1] > 1 else (preds.squeeze(-1) > 0).long()
    elif preds.shape == targets.shape and preds.is_floating_point():
        labels = (preds > 0).long()
    elif preds.shape == targets.shape:
        labels = preds
    else:
        raise ValueError(
            "metric='accuracy' needs class logits of shape [N, C] with targets [N], or binary logits [N] or [N, 1] "
            f"with 0/1 targets of the same shape; got predictions {tuple(preds.shape)} and targets "
            f"{tuple(targets.shape)}. Pass metric=callable(preds, targets) or a torchmetrics metric."
        )
    correct = (labels == targets.long()).sum()
    total = torch.tensor(float(labels.numel()), dtype=torch.float64, device=correct.device)
    return torch.stack([correct.to(torch.float64), total])


def _is_torchmetric(metric: Any) -> bool:
    return all(callable(getattr(metric, name, None)) for name in ("update", "compute", "reset"))


def _metric_name(metric: MetricLike, metric_name: str | None) -> str:
    if metric_name:
        return metric_name
    if isinstance(metric, str):
        return metric
    name = type(metric).__name__ if _is_torchmetric(metric) else getattr(metric, "__name__", type(metric).__name__)
    return "metric" if name == "<lambda>" else name


def check_metric(metric: MetricLike) -> None:
    """Raise ``ValueError`` unless ``metric`` is ``"accuracy"``, a callable or a torchmetrics-style metric."""
    valid = metric == "accuracy" if isinstance(metric, str) else callable(metric) or _is_torchmetric(metric)
    if not valid:
        raise ValueError(
            f"`metric` must be 'accuracy', a callable(preds, targets) or a torchmetrics metric, got {metric!r}."
        )


class _Accumulator:
    """Accumulates one pass over the data and returns the metric for the whole dataset."""

    def __init__(self, metric: MetricLike, gather: Callable[[Tensor], Tensor] | None) -> None:
        self.metric, self.gather = metric, gather
        self.counts: Tensor | None = None
        self.preds: list[Tensor] = []
        self.targets: list[Tensor] = []
        if _is_torchmetric(metric) and not isinstance(metric, str):
            metric.reset()

    def update(self, preds: Tensor, targets: Tensor) -> None:
        if isinstance(self.metric, str):
            counts = _accuracy_counts(preds, targets)
            self.counts = counts if self.counts is None else self.counts + counts
        elif _is_torchmetric(self.metric):
            self.metric.update(preds, targets)
        else:
            self.preds.append(preds.detach())
            self.targets.append(targets.detach())

    def compute(self) -> float:
        if isinstance(self.metric, str):
            counts = self.counts[None] if self.counts is not None else torch.zeros(1, 2, dtype=torch.float64)
            counts = (self.gather(counts) if self.gather else counts).sum(0)
            if counts[1] == 0:
                raise ValueError("Robustness evaluation saw no samples: the dataloader is empty.")
            return float(counts[0] / counts[1])
        if _is_torchmetric(self.metric):
            value = self.metric.compute()
            self.metric.reset()
            return float(value)
        if not self.preds:
            raise ValueError("Robustness evaluation saw no samples: the dataloader is empty.")
        preds, targets = torch.cat(self.preds), torch.cat(self.targets)
        if self.gather:
            preds, targets = self.gather(preds), self.gather(targets)
        return float(self.metric(preds, targets))


# ------------------------------------------------------------------------------------------------- evaluation
def _model_device(model: Any) -> torch.device:
    if isinstance(model, nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return torch.device("cpu")


def _pass(
    model: Callable[[Any], Tensor],
    batches: list[Any] | Iterable[Any],
    corruption: Corruption | None,
    severity: int,
    accumulator: _Accumulator,
    *,
    split: BatchSplitter,
    device: torch.device,
    seed: int,
    max_batches: int | None,
) -> float:
    key = zlib.crc32(corruption.name.encode()) if corruption is not None else 0
    for index, batch in enumerate(batches):
        if max_batches is not None and index >= max_batches:
            break
        inputs, targets = split(move_data_to_device(batch, device))
        if corruption is not None and corruption.unit_range and index == 0 and severity == 1:
            _warn_outside_unit_range(corruption, inputs)
        if corruption is not None:
            batch_seed = mix_seed(seed, key, index)
            generators: dict[torch.device, torch.Generator] = {}

            def _corrupt(x: Tensor, _: int) -> Tensor:
                if x.device not in generators:
                    generators[x.device] = torch.Generator(device=x.device).manual_seed(batch_seed)
                return corruption(x, severity, generators[x.device])

            inputs = map_floating(inputs, _corrupt)
        accumulator.update(model(inputs), targets)
    return accumulator.compute()


def _warn_outside_unit_range(corruption: Corruption, inputs: Any) -> None:
    tensors = [t for t in tensors_in(inputs) if t.is_floating_point()]
    if not tensors:
        return
    low, high = min(float(t.min()) for t in tensors), max(float(t.max()) for t in tensors)
    if low < 0 or high > 1:
        rank_zero_warn(
            f"Corruption {corruption.name!r} expects inputs in [0, 1] (images before normalization) and clips to "
            f"it, but the first batch has values in [{low:.3g}, {high:.3g}]: its curve mostly measures the clipping. "
            "Corrupt before normalizing (move normalization into the model) or use 'gaussian' / 'salt_and_pepper'."
        )


def evaluate_robustness(
    model: Callable[[Any], Tensor],
    dataloader: Iterable[Any],
    *,
    corruptions: str | Corruption | Sequence[str | Corruption] = DEFAULT_CORRUPTIONS,
    metric: MetricLike = "accuracy",
    metric_name: str | None = None,
    batch_to_inputs_targets: BatchSplitter | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
    gather: Callable[[Tensor], Tensor] | None = None,
    model_name: str | None = None,
    dataset_name: str | None = None,
) -> RobustnessResult:
    """Evaluate ``model`` on ``dataloader`` under each corruption at every severity (0 = clean).

    For every batch, ``inputs, targets = batch_to_inputs_targets(batch)``; every floating-point tensor in
    ``inputs`` is corrupted, and ``model(inputs)`` gives the predictions. Noise is drawn from a generator seeded
    per (seed, corruption name, batch index): two models evaluated with the same seed see the same corrupted
    inputs, and the result does not depend on the order of ``corruptions``. Every severity reuses the same
    draws (common random numbers): a higher Gaussian severity scales the same normal draws, a higher
    salt-and-pepper fraction flips a superset of the elements, so a curve's steps reflect the severity and
    not fresh sampling noise. The global RNG is not used.
    A module is put in eval mode (and restored after) and run without gradients. The clean pass is run once and
    shared by all curves. Cost: ``1 + sum(len(c.levels))`` passes over the data.

    Args:
        model: an ``nn.Module`` (a LightningModule) or any callable ``inputs -> predictions``.
        dataloader: an iterable of batches (re-iterated once per corruption and severity).
        corruptions: preset names (``"gaussian"``, ``"salt_and_pepper"``, ``"gaussian_noise"``, ``"shot_noise"``,
            ``"impulse_noise"``, ``"speckle_noise"``, ``"cifar10c"`` for the last four) or
            :class:`~lightning_noise.corruptions.Corruption` objects. Image corruptions expect inputs in [0, 1].
        metric: ``"accuracy"`` (class logits ``[N, C]`` by argmax, or binary logits ``[N]``/``[N, 1]`` by
            ``> 0``, counted over the whole dataset), a callable ``metric(preds, targets) -> float`` called once
            on the concatenated predictions and targets, or a torchmetrics ``Metric`` (reset, updated per batch,
            computed).
        metric_name: name shown in tables and plots; default the metric's name.
        batch_to_inputs_targets: ``batch -> (inputs, targets)``; default ``(batch[0], batch[1])``.
        seed: seed of the corruptions (not of training: keep it fixed to compare models on the same noise).
        device: where to run; default the device of the model's parameters.
        max_batches: evaluate on at most this many batches per pass.
        gather: under DDP, ``tensor -> tensor gathered over ranks`` (stacked or concatenated along dim 0); the
            callback passes the strategy's ``all_gather``. Not used for torchmetrics metrics (they sync themselves).
        model_name: shown in titles; default the model's class name.
        dataset_name: shown in titles; default the dataloader's dataset class name.

    Returns:
        A :class:`RobustnessResult`.

    Raises:
        ValueError: bad corruptions, metric, seed or max_batches; an empty dataloader; predictions whose shape
            accuracy cannot read.
        TypeError: a batch the default ``batch_to_inputs_targets`` cannot split.

    Example::

        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from lightning_noise import evaluate_robustness
        >>> data = DataLoader(TensorDataset(torch.rand(64, 2), torch.randint(0, 3, (64,))), batch_size=32)
        >>> result = evaluate_robustness(torch.nn.Linear(2, 3), data, corruptions=["gaussian"], seed=0)
        >>> list(result.to_dict()["gaussian"]["severity"])
        [0, 1, 2, 3, 4, 5]
    """
    resolved = resolve_corruptions(corruptions)
    check_metric(metric)
    _check_int("seed", seed, minimum=0)
    if max_batches is not None:
        _check_int("max_batches", max_batches, minimum=1)
    split = batch_to_inputs_targets or default_batch_to_inputs_targets
    device = torch.device(device) if device is not None else _model_device(model)
    if isinstance(metric, nn.Module):
        metric.to(device)
    is_module = isinstance(model, nn.Module)
    was_training = model.training if is_module else False
    run = dict(split=split, device=device, seed=seed, max_batches=max_batches)
    try:
        if is_module:
            model.eval()
        with torch.no_grad():
            clean = _pass(model, dataloader, None, 0, _Accumulator(metric, gather), **run)
            curves = {}
            for corruption in resolved:
                values = [clean] + [
                    _pass(model, dataloader, corruption, s, _Accumulator(metric, gather), **run)
                    for s in corruption.severities[1:]
                ]
                curves[corruption.name] = RobustnessCurve(
                    corruption.name, corruption.amount, list(corruption.severities), [None, *corruption.levels], values
                )
    finally:
        if is_module:
            model.train(was_training)
    dataset = getattr(dataloader, "dataset", None)
    return RobustnessResult(
        metric_name=_metric_name(metric, metric_name),
        curves=curves,
        seed=seed,
        model=model_name or type(model).__name__,
        dataset=dataset_name or (type(dataset).__name__ if dataset is not None else "dataset"),
    )


def _check_int(argument: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{argument}` must be an integer >= {minimum}, got {value!r}.")


# ------------------------------------------------------------------------------------------------- callback
class RobustnessEvaluation(Callback):
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
    on test batches), so the model is evaluated as deployed. Under DDP the accuracy (or a callable metric) is
    gathered over ranks; a torchmetrics metric syncs itself.

    Args:
        corruptions: preset names or :class:`~lightning_noise.corruptions.Corruption` objects; ``"cifar10c"``
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
        plot: write ``robustness.png`` (needs matplotlib).
        print_table: print the table (needs rich).
        log: send the results to the trainer's loggers.

    Raises:
        ValueError: bad arguments (in ``__init__``).
        ImportError: ``plot=True`` without matplotlib, or ``print_table=True`` without rich (in ``__init__``).
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
        plot: bool = True,
        print_table: bool = True,
        log: bool = True,
    ) -> None:
        self.corruptions = resolve_corruptions(corruptions)
        check_metric(metric)
        _check_int("seed", seed, minimum=0)
        _check_int("dataloader_idx", dataloader_idx, minimum=0)
        if max_batches is not None:
            _check_int("max_batches", max_batches, minimum=1)
        if when not in ("test_end", "manual"):
            raise ValueError(f"`when` must be 'test_end' or 'manual', got {when!r}.")
        if plot:
            check_available("matplotlib", "RobustnessEvaluation(plot=True)")
        if print_table:
            check_available("rich", "RobustnessEvaluation(print_table=True)")
        self.metric = metric
        self.metric_name = metric_name
        self.batch_to_inputs_targets = batch_to_inputs_targets
        self.seed = seed
        self.when = when
        self.dataloader_idx = dataloader_idx
        self.max_batches = max_batches
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.dataset_name = dataset_name
        self.plot = bool(plot)
        self.print_table = bool(print_table)
        self.log = bool(log)
        self.result: RobustnessResult | None = None
        self.files: dict[str, Path] = {}

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.when == "test_end":
            self.evaluate(trainer, pl_module)

    def evaluate(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, dataloader: Iterable[Any] | None = None
    ) -> RobustnessResult:
        """Run the evaluation on ``dataloader`` (default the test dataloader) and report it; returns the result."""
        loader = dataloader if dataloader is not None else self._test_dataloader(trainer)
        gather = None
        if trainer.world_size > 1:
            def gather(t: Tensor) -> Tensor:
                return trainer.strategy.all_gather(t).reshape(-1, *t.shape[1:])

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
                gather=gather,
                model_name=type(pl_module).__name__,
                dataset_name=self.dataset_name or self._dataset_name(trainer, loader),
            )
        if trainer.is_global_zero:
            self._report(trainer, self.result)
        return self.result

    def _test_dataloader(self, trainer: pl.Trainer) -> Iterable[Any]:
        loaders = trainer.test_dataloaders
        if isinstance(loaders, dict):
            loaders = list(loaders.values())
        if isinstance(loaders, (list, tuple)):
            if self.dataloader_idx >= len(loaders):
                raise ValueError(
                    f"RobustnessEvaluation `dataloader_idx`={self.dataloader_idx}, but there are {len(loaders)} test "
                    "dataloaders."
                )
            loaders = loaders[self.dataloader_idx]
        if loaders is None:
            raise RuntimeError(
                "RobustnessEvaluation found no test dataloader: call trainer.test(...) with one, or call "
                "evaluate(trainer, model, dataloader) yourself."
            )
        return loaders

    @staticmethod
    def _dataset_name(trainer: pl.Trainer, loader: Iterable[Any]) -> str:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None:
            return type(datamodule).__name__
        dataset = getattr(loader, "dataset", None)
        return type(dataset).__name__ if dataset is not None else "dataset"

    def _report(self, trainer: pl.Trainer, result: RobustnessResult) -> None:
        out = self.output_dir or Path(trainer.log_dir or trainer.default_root_dir)
        self.files = {"json": result.save_json(out / "robustness.json")}
        if self.plot:
            self.files["png"] = result.plot(out / "robustness.png")
        if self.print_table:
            result.print_table()
        rank_zero_info(
            f"Robustness results written to {out} (mean AUC of {result.metric_name}: {result.mean_auc:.4f})."
        )
        if not self.log:
            return
        wandb_logger = _wandb_logger_type()
        for logger in trainer.loggers:
            logger.log_metrics(result.scalars(), step=trainer.global_step)
            if wandb_logger is not None and isinstance(logger, wandb_logger):
                columns, rows = result.table_rows()
                logger.log_table("robustness/table", columns=columns, data=rows)
                if "png" in self.files:
                    logger.log_image("robustness/plot", images=[str(self.files["png"])])


def _wandb_logger_type() -> type | None:
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:  # pragma: no cover - lightning always ships it; wandb itself is imported only when used
        return None
    return WandbLogger
