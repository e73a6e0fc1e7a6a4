"""ParameterNoise: the base of the callbacks that perturb parameters or their gradients, the same on every rank."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import lightning.pytorch as pl
import torch
from torch import Tensor

from lightning_noise._callback import NoiseCallback
from lightning_noise._checks import check_bool, check_non_negative
from lightning_noise._flat_buffers import FlatGroup, allocate_, fill_standard_
from lightning_noise._prefetch import Prefetcher, can_prefetch
from lightning_noise._sharding import check_parameter_strategy
from lightning_noise._table_sampling import Sampler, TableSampling
from lightning_noise.schedules import ScheduleLike


class ParameterNoise(TableSampling, NoiseCallback):
    """Shared base of WeightNoise and GradientNoise: one ``std`` amount, training only, the same noise on every
    rank, and the choice of sampler with its table (rebuilt when the seed changes, e.g. on loading a checkpoint);
    ``kind``, when given, is refused with ``sampler="table"`` unless the table's normal numbers can serve it.
    """

    def __init__(
        self,
        *,
        std: ScheduleLike,
        sampler: Sampler,
        table_size: int,
        seed: int | None,
        unit: Literal["step", "epoch"],
        log_amounts: bool,
        name: str,
        prefetch: bool = True,
        kind: str | None = None,
        check_finite: bool = True,
    ) -> None:
        super().__init__(
            name=name,
            amounts={"std": std},
            stages=("train",),
            seed=seed,
            unit=unit,
            log_amounts=log_amounts,
            per_rank=False,
        )
        self.add_amount_check("std", check_non_negative)
        self._init_sampler(sampler, table_size, kind)
        self.prefetch = check_bool(prefetch, "prefetch", owner=type(self).__name__)
        self.check_finite = check_bool(check_finite, "check_finite", owner=type(self).__name__)
        self._prefetcher = Prefetcher()
        self._noisy_steps = 0

    def _start_new_fit(self) -> None:
        super()._start_new_fit()
        self._noisy_steps = 0  # a new fit checks its first noisy steps again

    # ---------------------------------------------------------------------------------------------- finiteness
    def _check_finite(self, tensors: Sequence[Tensor], what: str, when: str) -> None:
        """Raise when ``tensors`` (what the noise was just added to) hold a NaN or an infinity.

        Checked at the 1st, 2nd, 4th, ..., 64th noisy step, then every 100th: early enough to stop a run that
        noise sends to overflow (``std=1e30`` does in two steps), cheap the rest of the time. A check is one
        read of the tensors (``aminmax``: NaN or infinite if any element is) and one host sync per device: 0.15 ms
        for the 1M-parameter MLP on one CPU core (``_foreach_norm`` of order inf took 15 ms); the steps in
        between cost nothing.

        ``check_finite=False`` turns the check off: a diverged run is then left to the Trainer, as without noise.

        Raises:
            FloatingPointError: a value is NaN or infinite.
        """
        if not self.check_finite:
            return
        self._noisy_steps += 1
        steps = self._noisy_steps
        if not tensors or not ((steps <= 64 and steps & (steps - 1) == 0) or steps % 100 == 0):
            return
        by_device: dict[torch.device, list[Tensor]] = {}
        for tensor in tensors:
            if tensor.numel():
                by_device.setdefault(tensor.device, []).extend(torch.aminmax(tensor))
        if all(bool(torch.stack(ends).isfinite().all()) for ends in by_device.values()):
            return
        raise FloatingPointError(
            f"{type(self).__name__}(std={self.amounts['std']:g}): the {what} hold NaN or infinite values {when}: "
            "training has diverged. Noise of this std against the values it is added to (or a learning rate too "
            "high) overflows their dtype; lower `std` (or its schedule). Checked at noisy steps 1, 2, 4, ..., 64, "
            "then every 100th (`check_finite=False` leaves divergence to the Trainer)."
        )

    # ---------------------------------------------------------------------------------------------- prefetch
    def _prefetches(self, groups: Sequence[FlatGroup]) -> bool:
        """Whether the exact draws of ``groups`` are made ahead: ``prefetch=True``, the exact sampler, and
        :func:`~lightning_noise._prefetch.can_prefetch`."""
        return self.prefetch and self.sampler == "exact" and can_prefetch(groups)

    def _noise_terms(
        self, slot: Hashable, groups: Sequence[FlatGroup], std: float, distribution: Literal["normal", "uniform"]
    ) -> list[list[tuple[list[Tensor], float]]]:
        """For each of ``groups``, the noise ``std * n`` under the current key as terms ``(views, alpha)`` whose sum
        of ``alpha * views`` is the noise: two windows of the table, or the group's buffer holding the exact draw
        (the one prefetched on ``slot`` when it was made for this key) or a table draw longer than a window (the
        buffer is then allocated, once, if the group had none)."""
        table = self._noise_table()
        if table is None:
            if not self._prefetcher.take(slot, self._batch_seed, groups):
                fill_standard_(groups, self._batch_seed, distribution, self.generator)
            return [[(group.views, std)] for group in groups]
        terms = []
        for number, group in enumerate(groups):
            key = self._batch_seed + number
            if table.fits(group.buffer.numel()):
                first, second, sign = table.windows(group, key)
                terms.append([(first, std), (second, sign * std)])
            else:  # longer than a window of the table: the chunks of the draw written into the group's buffer
                table.fill_(allocate_(group).buffer, key)
                terms.append([(group.views, std)])
        return terms

    def _prefetch(
        self, slot: Hashable, groups: Sequence[FlatGroup], seed: int, distribution: Literal["normal", "uniform"]
    ) -> None:
        """Start the draw of ``seed`` into ``groups`` unless it is already in flight."""
        if self._prefetcher.pending_seed(slot) != seed:
            self._prefetcher.submit(slot, groups, seed, distribution)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            check_parameter_strategy(trainer, type(self).__name__)
        super().setup(trainer, pl_module, stage)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._prefetcher.close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._prefetcher.close()
        super().on_exception(trainer, pl_module, exception)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._prefetcher.close()
        super().teardown(trainer, pl_module, stage)
