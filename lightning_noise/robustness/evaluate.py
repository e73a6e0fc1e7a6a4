"""evaluate_robustness: the test metric of a model on corrupted inputs, per corruption and severity.

The metric (``"accuracy"``, a callable or a torchmetrics metric, see :mod:`~lightning_noise.robustness.metrics`)
is accumulated over the whole dataloader (and every rank under DDP); the corruption noise is seeded per (seed,
corruption, batch), never from the global RNG.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import Metric

from lightning_noise._checks import check_int
from lightning_noise._seeding import mix_seed
from lightning_noise._structures import map_floating, tensors_in
from lightning_noise.robustness.corruptions import Corruption, resolve_corruptions
from lightning_noise.robustness.metrics import MetricLike, as_metric, check_metric, display_name
from lightning_noise.robustness.result import RobustnessCurve, RobustnessResult

__all__ = ["DEFAULT_CORRUPTIONS", "BatchSplitter", "default_batch_to_inputs_targets", "evaluate_robustness"]

BatchSplitter = Callable[[Any], tuple[Any, Tensor]]
DEFAULT_CORRUPTIONS: tuple[str, ...] = ("gaussian", "salt_and_pepper")


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
    measure: Metric,
    *,
    split: BatchSplitter,
    device: torch.device,
    seed: int,
    max_batches: int | None,
) -> float:
    key = zlib.crc32(corruption.name.encode()) if corruption is not None else 0
    measure.reset()
    for index, batch in enumerate(batches):
        if max_batches is not None and index >= max_batches:
            break
        inputs, targets = split(move_data_to_device(batch, device))
        if corruption is not None and corruption.unit_range and index == 0 and severity == 1:
            _warn_outside_unit_range(corruption, inputs)
        if corruption is not None:
            inputs = map_floating(inputs, _corrupter(corruption, severity, mix_seed(seed, key, index)))
        measure.update(model(inputs), targets)
    value = float(measure.compute())
    measure.reset()
    return value


def _corrupter(corruption: Corruption, severity: int, batch_seed: int) -> Callable[[Tensor, int], Tensor]:
    """One batch's corruption for :func:`map_floating`: a generator per device, each seeded with ``batch_seed``."""
    generators: dict[torch.device, torch.Generator] = {}

    def _corrupt(x: Tensor, _: int) -> Tensor:
        if x.device not in generators:
            generators[x.device] = torch.Generator(device=x.device).manual_seed(batch_seed)
        return corruption(x, severity, generators[x.device])

    return _corrupt


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
            :class:`~lightning_noise.robustness.corruptions.Corruption` objects. Image corruptions expect inputs in
            [0, 1].
        metric: ``"accuracy"`` (class logits ``[N, C]`` by argmax, or binary logits ``[N]``/``[N, 1]`` by
            ``> 0``, counted over the whole dataset), a callable ``metric(preds, targets) -> float`` called once
            on the concatenated predictions and targets, or a torchmetrics ``Metric`` (reset, updated per batch,
            computed). Under DDP (``torch.distributed`` initialized) each is computed over every rank's
            batches (torchmetrics syncs it), so every rank must call this function and gets the same value.
        metric_name: name shown in tables and plots; default the metric's name.
        batch_to_inputs_targets: ``batch -> (inputs, targets)``; default ``(batch[0], batch[1])``.
        seed: seed of the corruptions (not of training: keep it fixed to compare models on the same noise).
        device: where to run; default the device of the model's parameters.
        max_batches: evaluate on at most this many batches per pass.
        model_name: shown in titles; default the model's class name.
        dataset_name: shown in titles; default the dataloader's dataset class name.

    Returns:
        A :class:`RobustnessResult`.

    Raises:
        ValueError: bad corruptions or metric, a negative seed, ``max_batches < 1``; an empty dataloader;
            predictions whose shape accuracy cannot read.
        TypeError: a seed or ``max_batches`` that is not an integer; a batch the default
            ``batch_to_inputs_targets`` cannot split.

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
    check_int(seed, "seed", minimum=0)
    check_int(max_batches, "max_batches", minimum=1, none=True)
    split = batch_to_inputs_targets or default_batch_to_inputs_targets
    device = torch.device(device) if device is not None else _model_device(model)
    measure = as_metric(metric)
    if isinstance(measure, nn.Module):
        measure.to(device)
    was_training = model.training if isinstance(model, nn.Module) else False
    run: dict[str, Any] = dict(split=split, device=device, seed=seed, max_batches=max_batches)
    try:
        if isinstance(model, nn.Module):
            model.eval()
        with torch.no_grad():
            clean = _pass(model, dataloader, None, 0, measure, **run)
            curves = {}
            for corruption in resolved:
                values = [clean] + [
                    _pass(model, dataloader, corruption, s, measure, **run) for s in corruption.severities[1:]
                ]
                curves[corruption.name] = RobustnessCurve(
                    corruption.name, corruption.amount, list(corruption.severities), [None, *corruption.levels], values
                )
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)
    dataset = getattr(dataloader, "dataset", None)
    return RobustnessResult(
        metric_name=display_name(metric, metric_name),
        curves=curves,
        seed=seed,
        model=model_name or type(model).__name__,
        dataset=dataset_name or (type(dataset).__name__ if dataset is not None else "dataset"),
    )
