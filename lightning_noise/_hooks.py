"""Keyed draws and module hooks shared by the per-sample callbacks (inputs, activations, labels, targets).

**Keys, not streams.** The noise of one hook call is a pure function of (base seed, callback identity, rank,
stage, batch counter) -- the batch seed set by :class:`~lightning_noise._callback.NoiseCallback` -- and of the *site*
(which module or input), the *call index* of that site within the batch and the index of the tensor within the
call. It never depends on how many other draws came before, so:

- a module recomputed by activation checkpointing draws exactly the noise of its original call: each call made
  inside a checkpointed segment (``torch.utils.checkpoint``, reentrant or not, and what builds on it:
  ``checkpoint_sequential``, ``checkpoint_wrapper``, FSDP activation checkpointing) is recorded with its
  segment, and the recomputation of that segment replays the call indices recorded there, in order: exact for
  a module called outside and inside a segment, in several segments (recomputed in reverse order), or several
  times in one. A recomputation whose segment cannot be identified (another recomputing mechanism) falls back
  to replaying the site's calls in order (``j``-th recomputed call -> call ``j mod calls``);
- a run resumed from a checkpoint, and every DDP rank, draw as before (the batch seed carries rank and batch).

**Two samplers of the same key.** In eager mode a draw seeds the callback's ``torch.Generator`` with the key
and calls the kind's function (or reads the noise table): the fastest path on CPU and GPU. Under
``torch.compile`` (``torch.compiler.is_compiling()``), a draw uses the counter-based generator of
:mod:`lightning_noise._counter_rng` instead: the batch key and the amounts live in small tensors updated in
place at each batch, so dynamo traces the draw into the graph, a new batch or a new scheduled amount does not
recompile, and there is no graph break. The two paths draw different numbers from the same key (eager and
compiled runs are each reproducible, with the same statistics), and the table sampler is not used under compile
(the counter draw is fused into the graph and is exact).

**Hooks as objects.** Hooks are instances of module-level classes, so a callback pickles during fit (its
hooks and handles are left out), and a deep copy or pickle of the model mid-fit carries inert hooks that never
add noise.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from lightning_noise import _counter_rng
from lightning_noise._checkpoint_segments import SegmentCalls, SegmentRecords, checkpoint_segment
from lightning_noise._compile_cache import forget_compiled_code
from lightning_noise._seeding import mix_seed
from lightning_noise.schedules import Schedule


@torch.compiler.assume_constant_result
def site_id(name: str) -> int:
    """A stable integer for a hook site (a module's qualified name, an input's key); a constant under compile."""
    return zlib.crc32(name.encode())


def in_backward() -> bool:
    """Whether autograd's engine is running a backward pass on this thread (activation recomputation)."""
    return torch._C._current_graph_task_id() != -1


def _stays_at(schedule: Any, value: float) -> bool:
    """Whether an amount schedule is known to take ``value`` at every step (a plain callable is not)."""
    return isinstance(schedule, Schedule) and schedule.bounds() == (value, value)


class InertHook:
    """What a deep copy or a pickle of a model keeps of a noise hook: a hook that does nothing."""

    def __init__(self, description: str = "") -> None:
        self.description = description

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"InertHook({self.description!r})"


class NoiseHook:
    """A forward (pre-)hook of a per-sample callback on one site.

    Calls ``callback.<method>(self, module, *hook_args)``. It records whether it ran during a training batch in
    train mode (``train_calls``) or only in eval mode (``eval_calls``), for the warning about modules kept in
    eval mode. Copies and pickles are :class:`InertHook` s: a copied model never adds noise, and the callback
    stays out of the copy.
    """

    def __init__(self, callback: Any, method: str, name: str) -> None:
        self.callback = callback
        self.method = method
        self.name = name
        self.site = site_id(name)
        self.validated = False
        self.train_calls = False
        self.eval_calls = False

    def __call__(self, module: nn.Module, *args: Any) -> Any:
        callback = self.callback
        if callback is None:  # removed at teardown; a stray reference does nothing
            return None
        return getattr(callback, self.method)(self, module, *args)

    def __deepcopy__(self, memo: dict) -> InertHook:
        return InertHook(self.name)

    def __reduce__(self) -> tuple:
        return (InertHook, (self.name,))

    def __repr__(self) -> str:
        return f"NoiseHook({type(self.callback).__name__}, {self.name!r})"


class KeyedDraws:
    """Mixin for the per-sample callbacks (before :class:`~lightning_noise._callback.NoiseCallback` in the bases):
    keyed draws, amount tensors for compiled graphs, hook bookkeeping, the eval-mode warning and pickling without
    hooks.

    ``__init__`` passes its arguments on to the next base (:class:`~lightning_noise._callback.NoiseCallback`), then
    sets up its own state from the amounts (and from ``kind``, when a subclass has set it before: its "no noise"
    amount)."""

    # attributes filled by NoiseCallback
    amounts: dict[str, float]
    _batch_seed: int
    _active_stage: str | None
    _generators: dict[torch.device, torch.Generator]
    stages: tuple[str, ...]
    generator: Callable[[torch.device], torch.Generator]

    def __init__(self, **callback_arguments: Any) -> None:
        super().__init__(**callback_arguments)
        self._key = _counter_rng.key_tensor(0)
        self._amount_tensors = {arg: torch.tensor(float(v), dtype=torch.float32) for arg, v in self.amounts.items()}
        self._amount_on = {arg: v != self._zero_amount(arg) for arg, v in self.amounts.items()}
        schedules = self.schedules  # type: ignore[attr-defined]
        self._amount_may_act = {arg: not _stays_at(s, self._zero_amount(arg)) for arg, s in schedules.items()}
        self._site_calls: dict[int, int] = {}
        self._replays: dict[int, int] = {}
        self._segments = SegmentRecords()
        self._hooks: list[NoiseHook] = []
        self._hook_handles: list[RemovableHandle] = []

    def _zero_amount(self, argument: str) -> float:
        kind = getattr(self, "kind", None)
        return kind.zero if kind is not None else 0.0

    # ----------------------------------------------------------------------------------------- batch state
    def reseed(self, *key: int) -> None:
        super().reseed(*key)  # type: ignore[misc]  # NoiseCallback's, next in the MRO
        _counter_rng.set_key_(self._key, self._batch_seed)
        self._site_calls.clear()
        self._replays.clear()
        self._segments.clear()

    def update_amounts(self, step: int) -> dict[str, float]:
        amounts = super().update_amounts(step)  # type: ignore[misc]  # NoiseCallback's, next in the MRO
        for argument, value in amounts.items():
            self._amount_tensors[argument].fill_(value)
            self._amount_on[argument] = value != self._zero_amount(argument)
        return amounts

    def _amount_active(self, argument: str) -> bool:
        """Whether the noise of amount ``argument`` is drawn now.

        Eager: whether its current value differs from the kind's "no noise" value (a zero amount returns the input
        untouched). Under compile: whether it can differ at any step, a constant of the run. The current value is
        a tensor in the graph, so a schedule that reaches "no noise" (``Cosine(0.05, 0.0, ...)``) or starts there
        does not recompile; the traced draw at that value adds exactly nothing (``x + 0 * n``, a dropout or
        salt-and-pepper rate of 0, one-hot label probabilities for a smoothing of 0).
        """
        if torch.compiler.is_compiling():
            return self._amount_may_act[argument]
        return self._amount_on[argument]

    def _call_index(self, site: int) -> int:
        """The index of this call of ``site`` in the batch; a recomputation replays the indices recorded in its
        checkpointed segment during the forward."""
        calls = self._site_calls.get(site, 0)
        if not torch.compiler.is_compiling():
            recomputing = in_backward()
            segment = checkpoint_segment()
            if segment is not None and segment[1] is not None:  # the recomputation of a segment
                recorded = self._segments.get(segment[0])
                replayed = recorded.replay(site, segment[1]) if recorded is not None else None
                if replayed is not None:
                    return replayed
                recomputing = True
            elif segment is not None and not recomputing:  # the forward of a segment
                self._segments.setdefault(segment[0], SegmentCalls()).calls.setdefault(site, []).append(calls)
            if calls and recomputing:  # a recomputation we cannot place: replay the site's calls in order
                replay = self._replays.get(site, 0)
                self._replays[site] = replay + 1
                return replay % calls
        self._site_calls[site] = calls + 1
        return calls

    def _draw_seed(self, site: int, call: int, index: int) -> int:
        return mix_seed(self._batch_seed, site, call, index)

    # ----------------------------------------------------------------------------------------- drawing
    def _seeded_generator(self, device: torch.device, seed: int) -> torch.Generator:
        generator = self.generator(device)
        generator.manual_seed(seed)
        return generator

    def _amount_value(self, argument: str) -> float | Tensor:
        """The current amount: a tensor under compile (updated in place, never a graph constant), else a float."""
        if torch.compiler.is_compiling():
            return self._amount_tensors[argument]
        return self.amounts[argument]

    # ----------------------------------------------------------------------------------------- hooks
    def _hook(self, module: nn.Module, method: str, name: str, *, pre: bool, with_kwargs: bool) -> NoiseHook:
        hook = NoiseHook(self, method, name)
        if pre:
            handle = module.register_forward_pre_hook(hook, with_kwargs=with_kwargs, prepend=True)
        else:
            handle = module.register_forward_hook(hook, with_kwargs=with_kwargs, prepend=True)
        self._hooks.append(hook)
        self._hook_handles.append(handle)
        return hook

    def _remove_hooks(self) -> None:
        for handle in self._hook_handles:
            handle.remove()
        for hook in self._hooks:
            hook.callback = None  # a hook left in a copy or a stray reference can no longer reach the callback
        self._hook_handles.clear()
        self._hooks.clear()

    def _noise_on(self, hook: NoiseHook, module: nn.Module) -> bool:
        """Whether noise goes on now; records train-mode and eval-mode calls during training batches."""
        stage = self._active_stage
        if stage is None:
            return False
        if stage == "train":
            if not module.training:
                hook.eval_calls = True
                return False
            hook.train_calls = True
        return True

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)  # type: ignore[misc]
        if self._hooks:
            forget_compiled_code()  # code dynamo traced before the hooks existed would run without them

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)  # type: ignore[misc]  # NoiseCallback's, next in the MRO
        for hook in self._hooks:
            hook.train_calls = hook.eval_calls = False
        self._eval_check_pending = "train" in self.stages

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # type: ignore[misc]  # NoiseCallback's, next in the MRO
        if not getattr(self, "_eval_check_pending", False):
            return
        self._eval_check_pending = False
        eval_only = [hook.name for hook in self._hooks if hook.eval_calls and not hook.train_calls]
        if eval_only:
            rank_zero_warn(
                f"{type(self).__name__} added no noise at {eval_only} during the first training epoch: "
                "every call there came while the module was in eval mode (e.g. a frozen submodule kept in "
                "eval()). Noise is added in training only while the module is in train mode; call .train() on it "
                "or remove it from the callback's selection.",
                category=UserWarning,
            )

    # ----------------------------------------------------------------------------------------- pickling
    _TRANSIENT: tuple[str, ...] = ("_hooks", "_hook_handles", "_generators", "_table")

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the hooks, their handles and caches: a callback pickles (or deep-copies) during fit, and
        the copy is detached from the model; it attaches its own hooks at its next ``setup``."""
        state = self.__dict__.copy()
        empty: dict[str, Any] = {"_hooks": [], "_hook_handles": [], "_generators": {}, "_table": None}
        for name in self._TRANSIENT:
            if name in state:
                state[name] = empty.get(name)
        for name, value in getattr(self, "_TRANSIENT_EXTRA", {}).items():
            if name in state:
                state[name] = value() if callable(value) else value
        return state
