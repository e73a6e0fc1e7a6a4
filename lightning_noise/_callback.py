"""NoiseCallback, the base of the noise callbacks: amounts and their schedules, stage gating, seeds, state.

Subclasses decide *where* noise goes (``_attach``/``_detach`` install and remove hooks); this module decides
*when* it is on and *which* random numbers it uses (keyed by batch: see :mod:`lightning_noise._seeding`).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from lightning_noise._amounts import RangeCheck, amount_value, check_schedule, describe_schedule
from lightning_noise._checks import as_list, check_bool, check_choice, check_int, check_name
from lightning_noise._compile_cache import compile_cache_hint
from lightning_noise._repr import ArgumentsRepr
from lightning_noise._seeding import mix_seed, resolve_seed
from lightning_noise.schedules import ScheduleLike, as_schedule

Stage = Literal["train", "validate", "test", "predict"]
STAGES: tuple[str, ...] = ("train", "validate", "test", "predict")
_STAGE_CODES = {stage: code for code, stage in enumerate(STAGES, start=1)}


def check_stages(stages: str | Iterable[str]) -> tuple[str, ...]:
    """``stages`` (one stage name or several) as a tuple.

    A single name stands for a list of one, as for the other arguments that list names (``modules``, ``inputs``,
    ``corruptions``): ``stages="test"`` is ``("test",)``. Strings are refused where a list of *numbers* is
    expected (``radii``, ``levels``), never where a list of names is.

    Raises:
        TypeError: not a string or a sequence of strings. ValueError: empty, or a name not in ``STAGES``.

    Example::

        >>> check_stages("train")
        ('train',)
    """
    if isinstance(stages, str):
        stages = (stages,)
    stages = tuple(as_list(stages, "stages", f"a non-empty subset of {list(STAGES)}"))
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ValueError(f"`stages` must be a non-empty subset of {list(STAGES)}, got {list(stages)}.")
    return stages


def _trainer_starts_training(trainer: pl.Trainer) -> bool:
    """Whether ``trainer`` has run no training batch yet: its fit starts a new noise stream. A Trainer fitted
    again continues its own loop (global step, epoch), and the stream continues with it."""
    return trainer.fit_loop.epoch_loop.batch_progress.total.ready == 0


class NoiseCallback(ArgumentsRepr, Callback):
    """Base class of the noise callbacks. Not used directly.

    Arguments are checked in ``__init__`` (:mod:`lightning_noise._checks`): a bool must be a bool (``"false"``
    is refused, not read as True), an integer an integer, an amount a finite number or a schedule whose values
    are finite (``snr_db=inf``, "no noise", is the one infinite amount accepted). Messages name the argument,
    what was expected and what was given (see ``docs/arguments-and-state.md``).

    State. ``state_key`` holds the class and every identifying argument (name, amounts or schedules, what is
    noised and how, stages, unit), so two callbacks of one class keep separate checkpoint state and draw from
    separate random streams; ``setup`` refuses two noise callbacks with one key (or one stream) and suggests
    ``name=``. Checkpoints written with the older, shorter key are read through ``_legacy_state_key``.

    ``repr`` shows the class and the arguments that differ from their defaults (``InputNoise(std=0.1)``).

    Fits. ``Trainer.fit`` on a Trainer that has not trained yet starts the noise stream from its beginning: the
    batch counter goes back to 0 and ``InputNoise(relative=True)`` forgets its feature statistics, so an instance
    reused across fits (a cross-validation loop, an in-process sweep) draws exactly what a fresh instance with the
    same seed draws. A fit with ``ckpt_path`` continues the checkpoint's stream (the restored state replaces the
    reset), and the same Trainer fitted again continues where it stopped, as its step counter does.
    ``validate``, ``test`` and ``predict`` never change the training state: their draws are keyed by the stage
    and the batch index, and ``relative=True`` uses the statistics of the last fit.

    Args:
        name: short name used in logged metric names (``noise/{name}_{amount}``) and in the state key.
        amounts: the amount arguments by name (``{"std": 0.1}``), each a float or a schedule.
        stages: stages in which noise is applied: one name or a list of names.
        seed: base seed; ``None`` takes the global seed or fresh entropy.
        unit: whether schedules count optimizer steps or epochs.
        log_amounts: log the current amounts to the trainer's loggers every ``log_every_n_steps`` steps.
        per_rank: draw different noise on each distributed rank (per-sample noise); ``False`` gives every
            rank the same noise (noise on synchronized quantities).
    """

    def __init__(
        self,
        *,
        name: str,
        amounts: Mapping[str, ScheduleLike],
        stages: Stage | Iterable[Stage] = ("train",),
        seed: int | None = None,
        unit: Literal["step", "epoch"] = "step",
        log_amounts: bool = True,
        per_rank: bool = True,
    ) -> None:
        self.name = check_name(name, "name")
        self.stages = check_stages(stages)
        self.seed = check_int(seed, "seed", minimum=0, none=True)
        self.unit = check_choice(unit, "unit", ("step", "epoch"))
        self.log_amounts = check_bool(log_amounts, "log_amounts")
        self.per_rank = check_bool(per_rank, "per_rank")
        self.schedules = {arg: as_schedule(value, arg) for arg, value in amounts.items()}
        self.amounts: dict[str, float] = {arg: amount_value(s, 0, arg) for arg, s in self.schedules.items()}
        self._runtime_checks: dict[str, RangeCheck] = {}
        self._base_seed: int | None = None
        self._batch_seed = 0
        self._generators: dict[torch.device, torch.Generator] = {}
        self._active_stage: str | None = None
        self._rank = 0
        self._train_batches = 0
        self._calls = 0
        self._verify_pending = False
        self._last_logged_step = -1

    # ----------------------------------------------------------------------------------------------- subclass API
    def _attach(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Install hooks. Called at ``setup``."""

    def _detach(self) -> None:
        """Remove hooks. Called at ``teardown`` and on exceptions."""

    def _no_call_message(self) -> str:
        return f"{type(self).__name__} saw no call during the first training batch, so it added no noise."

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def generator(self, device: torch.device) -> torch.Generator:
        """The callback's generator on ``device``, seeded for the current batch."""
        generator = self._generators.get(device)
        if generator is None:
            generator = torch.Generator(device=device)
            generator.manual_seed(self._batch_seed)
            self._generators[device] = generator
        return generator

    def key_seed(self, *key: int) -> int:
        """The seed :meth:`reseed` gives for ``key``: a hash of (base seed, callback identity, rank if per-rank,
        *key)."""
        rank = self._rank if self.per_rank else 0
        return mix_seed(self._base_seed or 0, self._identity, rank, *key)

    def reseed(self, *key: int) -> None:
        """Seed every generator from (base seed, callback identity, rank if per-rank, *key)."""
        self._batch_seed = self.key_seed(*key)
        for generator in self._generators.values():
            generator.manual_seed(self._batch_seed)

    def schedule_step(self, trainer: pl.Trainer) -> int:
        return trainer.global_step if self.unit == "step" else trainer.current_epoch

    def add_amount_check(self, argument: str, check: RangeCheck, no_noise: float = 0.0) -> None:
        """Check the amount ``argument`` with ``check(value, argument)`` and for finiteness (``no_noise``, the
        kind's "no noise" value, may be infinite): now over the schedule's ``bounds()`` (or its first value), and
        at every step for a plain callable or an unbounded schedule, whose values cannot be known in advance."""
        runtime_check = check_schedule(argument, self.schedules[argument], check, no_noise)
        if runtime_check is not None:
            self._runtime_checks[argument] = runtime_check

    def update_amounts(self, step: int) -> dict[str, float]:
        for argument, schedule in self.schedules.items():
            check = self._runtime_checks.get(argument)
            value = float(schedule(step)) if check is None else amount_value(schedule, step, argument)
            if check is not None:
                check(value, f"{argument} (its schedule at step {step})")
            self.amounts[argument] = value
        return self.amounts

    # ----------------------------------------------------------------------------------------------- state
    @functools.cached_property
    def state_key(self) -> str:
        """The checkpoint key: the class and every identifying argument (name, amounts or schedules, what the
        subclass noises and how, stages, unit). Sampler, table size, seed and logging are not part of it: they
        change how the noise is drawn or reported, not which noise the callback adds.

        Built once: it depends on constructor arguments only, and Lightning reads it at every hook call (as the
        profiler's name), so building it each time cost about 0.2 ms per training step."""
        amounts = {argument: describe_schedule(s) for argument, s in self.schedules.items()}
        return self._generate_state_key(
            name=self.name,
            **amounts,
            **self._state_key_fields(),
            **self._extra_key_fields(),
            stages=self.stages,
            unit=self.unit,
        )

    # the ignore below: Lightning types this key as the class (pre-1.5 checkpoints); its loader takes any key
    @property
    def _legacy_state_key(self) -> str:  # type: ignore[override]
        """The key of checkpoints written before amounts, stages and unit joined the key (read when the current
        key is missing: Lightning's loader falls back to ``callback._legacy_state_key``)."""
        return self._generate_state_key(name=self.name, **self._state_key_fields())

    def _state_key_fields(self) -> dict[str, Any]:
        """Identifying arguments that were already in the key of older checkpoints (keep this list unchanged)."""
        return {}

    def _extra_key_fields(self) -> dict[str, Any]:
        """Identifying arguments added to the key later (not in the legacy key)."""
        return {}

    @functools.cached_property
    def _identity(self) -> int:
        """A hash of the state key that keys the callback's random stream; computed once, like the key."""
        return zlib.crc32(self.state_key.encode())

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self._base_seed, "train_batches": self._train_batches, **self._extra_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        seed = state_dict.get("seed")
        if seed is not None:
            self._base_seed = int(seed)
        self._train_batches = int(state_dict.get("train_batches", self._train_batches))
        self._load_extra_state(state_dict)

    # ----------------------------------------------------------------------------------------------- lifecycle
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._check_unique(trainer)
        if stage == "fit" and _trainer_starts_training(trainer):
            self._start_new_fit()  # before Lightning restores a `ckpt_path` (always after setup): the checkpoint wins
        self._rank = trainer.global_rank
        self._base_seed = resolve_seed(self.seed, trainer)
        self._generators.clear()
        self._active_stage = None
        self._detach()
        self._attach(trainer, pl_module)

    def _start_new_fit(self) -> None:
        """Forget the training state of an earlier fit: a new fit draws what a fresh instance with the same seed
        draws. Subclasses clear their own per-fit state (feature statistics) and call this."""
        self._train_batches = 0
        self._last_logged_step = -1

    def _check_unique(self, trainer: pl.Trainer) -> None:
        """Refuse a second noise callback with this one's state key or random stream.

        Two such callbacks would overwrite each other's state in a checkpoint and draw the same numbers (twice
        the noise of one, not independent noise). Lightning itself refuses equal state keys among the callbacks
        given to ``Trainer(callbacks=...)``; this also covers ``configure_callbacks`` and callbacks appended later.
        """
        callbacks = list(trainer.callbacks)  # type: ignore[attr-defined]  # set by Lightning's callback connector
        clashes = [
            (index, other)
            for index, other in enumerate(callbacks)
            if other is not self
            and isinstance(other, NoiseCallback)
            and (other.state_key == self.state_key or other._identity == self._identity)
        ]
        if clashes:
            mine = next((i for i, c in enumerate(callbacks) if c is self), len(callbacks))
            (i, first), (j, second) = sorted([(mine, self), clashes[0]], key=lambda pair: pair[0])
            raise ValueError(
                f"Two noise callbacks share a checkpoint state key or a random stream: trainer.callbacks[{i}] "
                f"{first.state_key} and trainer.callbacks[{j}] {second.state_key}. They would overwrite each other's "
                f"state and draw the same noise. Give one of them its own `name=`, e.g. "
                f"{type(second).__name__}(..., name='{second.name}_2')."
            )

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._active_stage = None
        self._detach()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Lightning does not call `teardown` when fit/validate/test raise: remove the hooks here, or they would
        # stay on the user's model after the failed run.
        self._active_stage = None
        self._detach()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._calls = 0
        self._verify_pending = "train" in self.stages

    # ----------------------------------------------------------------------------------------------- gating
    @staticmethod
    def _batch_key(stage: str, *key: int) -> tuple[int, ...]:
        """The key of a batch of ``stage`` (``key``: its counters), the one place it is built: :meth:`_begin`
        reseeds from it, and a prefetch of the next batch's draw predicts its seed from it."""
        return (_STAGE_CODES[stage], *key)

    def _train_batch_key(self, batch: int) -> tuple[int, ...]:
        """The key of training batch number ``batch`` (the counter saved in checkpoints), as :meth:`_begin`
        builds it for ``on_train_batch_start``."""
        return self._batch_key("train", batch)

    def _begin(self, trainer: pl.Trainer, stage: str, *key: int) -> None:
        if stage not in self.stages:
            self._active_stage = None  # a batch of a stage without noise: off, whatever an earlier batch left
            return
        self.reseed(*self._batch_key(stage, *key))
        self.update_amounts(self.schedule_step(trainer))
        self._active_stage = stage

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._begin(trainer, "train", self._train_batches)  # reseeds from _batch_key("train", n)
        self._train_batches += 1
        if self.log_amounts and self._active_stage == "train":
            self._log_amounts(trainer)

    def _log_amounts(self, trainer: pl.Trainer) -> None:
        """Send the current amounts to the loggers once per optimizer step, every ``log_every_n_steps`` steps.

        This goes to the loggers directly: ``LightningModule.log`` costs about half a millisecond per call, as
        much as a whole training step of a small MLP on CPU.
        """
        step = trainer.global_step
        every = max(trainer.log_every_n_steps, 1)  # type: ignore[attr-defined]  # set by Lightning's logger connector
        if not trainer.loggers or step == self._last_logged_step or step % every:
            return
        self._last_logged_step = step
        metrics = {f"noise/{self.name}_{argument}": value for argument, value in self.amounts.items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._active_stage = None
        if self._verify_pending:
            self._verify_pending = False
            if self._calls == 0:
                raise RuntimeError(self._no_call_message() + compile_cache_hint(pl_module))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A LightningModule whose `on_train_batch_start` returns -1 ends the epoch without `on_train_batch_end`:
        # switch the noise off here, before the module's own `on_train_epoch_end` (callbacks run first).
        self._active_stage = None

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._begin(trainer, "validate", trainer.current_epoch, dataloader_idx, batch_idx)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._active_stage = None

    def on_test_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._begin(trainer, "test", dataloader_idx, batch_idx)

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._active_stage = None

    def on_predict_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._begin(trainer, "predict", dataloader_idx, batch_idx)

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._active_stage = None
