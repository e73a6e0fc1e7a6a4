"""WeightNoise: perturb the weights for the forward and backward of each training batch, then restore them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.nn.parameter import is_lazy
from torch.utils.hooks import RemovableHandle
from torch.utils.weak import WeakIdKeyDictionary

from lightning_noise._checks import check_bool, check_choice
from lightning_noise._flat_buffers import FlatGroup, flat_groups
from lightning_noise._hooks import InertHook
from lightning_noise._modules import check_patterns, select_modules
from lightning_noise._parameter_noise import ParameterNoise
from lightning_noise._sharding import is_dtensor, local_part, local_tensor
from lightning_noise._table_sampling import DEFAULT_TABLE_SIZE, Sampler
from lightning_noise.schedules import ScheduleLike

# Swap mode: the clean tensor of every parameter that holds noise, shared by all WeightNoise instances, so that
# several of them on one parameter stack their noise and the first restore gives the clean tensor back.
_CLEAN: WeakIdKeyDictionary = WeakIdKeyDictionary()
# In-place mode (sharded parameters): the WeightNoise whose clean copy of a parameter is the clean value.
_OWNER: WeakIdKeyDictionary = WeakIdKeyDictionary()

Kind = Literal["gaussian", "uniform", "multiplicative"]


class CleanStateHook:
    """A ``state_dict`` post-hook on a module that owns selected parameters: while they hold noise, it writes
    their clean values into the state dict.

    A module-level class, not a closure, so the callback and the model pickle during fit. Copies and pickles are
    :class:`~lightning_noise._hooks.InertHook` s (a copied model's parameters are not the ones the callback
    restores), and the hook is cut from its callback at teardown.
    """

    def __init__(self, callback: WeightNoise, owned: list[tuple[str, nn.Parameter]]) -> None:
        self.callback: WeightNoise | None = callback
        self.owned = owned

    def __call__(self, module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
        callback = self.callback
        if callback is None or not callback.perturbed:
            return
        for name, param in self.owned:
            clean = callback._clean_value(param)
            if clean is not None and prefix + name in state_dict:
                state_dict[prefix + name] = clean

    def __deepcopy__(self, memo: dict) -> InertHook:
        return InertHook(f"WeightNoise state hook {[name for name, _ in self.owned]}")

    def __reduce__(self) -> tuple:
        return (InertHook, (f"WeightNoise state hook {[name for name, _ in self.owned]}",))


KINDS: tuple[str, ...] = ("gaussian", "uniform", "multiplicative")


class WeightNoise(ParameterNoise):
    r"""Train on noisy weights: the loss and its gradients are computed at ``w + noise``, the update applies to ``w``.

    At the start of every training batch (``on_train_batch_start``) the selected parameters are copied into a
    preallocated buffer and perturbed in place; right after ``backward`` (``on_after_backward``, every
    micro-batch under gradient accumulation) the exact clean values are copied back from that buffer, so the
    optimizer updates the clean weights with gradients taken at the noisy ones (Graves, 2011: one noise sample
    per batch). One noise value is drawn per weight per batch; every sample of the batch sees the same weights.

    The clean weights are also restored when backward does not run (``training_step`` returned ``None``: at
    ``on_before_optimizer_step`` or ``on_train_batch_end``), when an exception interrupts training
    (``on_exception``), at the end of the epoch, before validation and at teardown. A ``state_dict()`` taken
    while the weights are perturbed (a checkpoint saved from inside ``training_step``, weights-only or not)
    holds the clean values. Perturbed weights never reach validation, test, predict or a checkpoint file.

    A reused instance: a new fit (on a Trainer that has not trained yet) starts again from batch 0, so it draws
    what a fresh instance with the same seed draws; a fit with ``ckpt_path`` continues the checkpoint's stream
    (the rule: :class:`~lightning_noise._callback.NoiseCallback`, docs/arguments-and-state.md).

    Kinds: ``gaussian`` ``w + std * N(0, 1)``; ``uniform`` ``w + U(-a, a)`` with standard deviation ``std``;
    ``multiplicative`` ``w * (1 + std * N(0, 1))`` (relative to each weight's size), the same maths as
    :mod:`lightning_noise.functional` applied to all selected weights at once.

    Manual optimization. The weights are restored after the first ``manual_backward`` of a batch, so only the
    first forward/backward pass of each ``training_step`` sees noisy weights (a warning says so at fit start).
    An optimizer step while the weights are still noisy (the raw ``opt.optimizer.step()`` after a plain
    ``loss.backward()``) restores them first, so the update applies to the clean weights and is kept.

    How. The noisy weights are written into a preallocated buffer (``w + std * n`` in one pass) and each
    selected parameter's storage is swapped to its view of that buffer (``param.data``); restoring swaps the
    untouched clean tensors back: exact, without copying. A parameter counts as perturbed from the moment its
    storage is swapped, so an exception or Ctrl-C in the middle of a perturbation leaves nothing noisy behind.
    Parameters of lazy modules join the selection at the first batch after their initialization (with a
    warning until then).

    Distributed. The noise is the same on every rank (keyed by seed and batch counter, not rank), as if the
    global batch ran on one device; the clean weights stay identical across replicas in any case. Sharded
    parameters (DTensors: ``ModelParallelStrategy`` with ``fully_shard``) are perturbed in place, each rank
    adding its part of one global draw: the model sees the noise the unsharded model sees under the same seed.
    ``FSDPStrategy`` (FSDP1 flat parameters) and DeepSpeed are refused at ``setup``.

    Speed. With the exact sampler, the next batch's standard normals are drawn ahead (``prefetch=True``), on a
    side thread (CPU, when a second core is available) or a side CUDA stream, while the current batch
    computes, into a second buffer; the draw under a batch's key is the same numbers whether prefetched or not,
    and a prefetch made for the wrong key (a resume, a changed schedule) is dropped and drawn again. What stays
    on the critical path is one pass over the weights. ``sampler="table"`` (``gaussian`` and
    ``multiplicative``) adds two windows of a precomputed table at keyed offsets instead, generating nothing,
    at the cost of independence between batches (see ``docs/weight-and-gradient-noise.md``). Memory: one
    buffer the size of the selected parameters, two with prefetch, plus the table for ``sampler="table"``.

    Args:
        std: standard deviation of the noise (relative, for ``multiplicative``), a float or a schedule.
        modules: globs over qualified module names (``"lstm"``, ``"encoder.*"``) or class names (``"Linear"``);
            all parameters of every matched module (recursively) get noise. Default: the whole model.
        kind: ``"gaussian"`` (default), ``"uniform"`` or ``"multiplicative"``.
        biases: also perturb biases (parameters whose name starts with ``bias``); default only weights.
        sampler: ``"exact"`` (fresh draws, default) or ``"table"`` (fast, correlated across batches).
        table_size: number of entries of the noise table, its whole memory (never grown); more than
            ``table_size / 4`` weights of one device and dtype take chunks of windows written into the buffer.
        seed: base seed; default the seed given to ``seed_everything``, else fresh entropy.
        unit: schedules count optimizer steps (``"step"``) or epochs (``"epoch"``).
        log_amounts: log the current std as ``noise/{name}_std`` every ``log_every_n_steps`` steps.
        name: name used in logged metrics and in the checkpoint state key.
        prefetch: draw the exact sampler's next numbers ahead on a side thread or CUDA stream (default True);
            the noise is the same either way. ``False`` keeps every draw on the training thread.
        check_finite: raise ``FloatingPointError`` when the noisy weights hold a NaN or an infinity (checked at
            noisy steps 1, 2, 4, ..., 64, then every 100th; default True). ``False`` leaves a diverged run to the
            Trainer, as it would be without noise (``EarlyStopping(check_finite=True)`` stops it, the best
            checkpoint stays): for studies that count divergence as an outcome of both arms.

    Raises:
        ValueError: in ``__init__``, bad arguments, or a NaN or infinite amount or schedule value; at ``setup``,
            FSDPStrategy or DeepSpeed, or another noise callback with the same state key; at ``on_fit_start``, a
            pattern that matches no submodule or a selection without any parameter (the message lists the
            submodules); at the step a plain callable returns a NaN or infinite amount.
        TypeError: an argument of the wrong type, e.g. ``biases="false"``; strings are never read as bools or
            numbers (in ``__init__``).

    Example::

        >>> from lightning import Trainer
        >>> from lightning_noise import WeightNoise
        >>> trainer = Trainer(callbacks=[WeightNoise(std=0.075, modules=["lstm"])])   # Graves-style
        >>> trainer = Trainer(callbacks=[WeightNoise(std=0.05, kind="multiplicative")])
        >>> trainer = Trainer(callbacks=[WeightNoise(std=0.01, sampler="table")])     # fast on CPU
    """

    def __init__(
        self,
        std: ScheduleLike,
        *,
        modules: str | Sequence[str] | None = None,
        kind: Kind = "gaussian",
        biases: bool = False,
        sampler: Sampler = "exact",
        table_size: int = DEFAULT_TABLE_SIZE,
        seed: int | None = None,
        unit: Literal["step", "epoch"] = "step",
        log_amounts: bool = True,
        name: str = "weight",
        prefetch: bool = True,
        check_finite: bool = True,
    ) -> None:
        check_choice(kind, "kind", KINDS, owner="WeightNoise")
        self.modules = check_patterns(modules, "modules") if modules is not None else None
        super().__init__(
            std=std,
            sampler=sampler,
            table_size=table_size,
            seed=seed,
            unit=unit,
            log_amounts=log_amounts,
            name=name,
            prefetch=prefetch,
            kind=kind,
            check_finite=check_finite,
        )
        self.kind = kind
        self.biases = check_bool(biases, "biases", owner="WeightNoise")
        self._params: list[nn.Parameter] = []
        self._names: list[str] = []
        self._chosen: list[tuple[str, nn.Parameter]] = []
        self._lazy: list[str] = []
        self._buffers: list[list[FlatGroup]] = []  # noise (then noisy weights), one or two copies
        self._clean_groups: list[FlatGroup] = []  # in-place mode: clean copies of the local shards
        self._group_params: list[list[nn.Parameter]] = []
        self._handles: list[RemovableHandle] = []
        self._step_handles: list[RemovableHandle] = []
        self._state_hooks: list[CleanStateHook] = []
        self._swapped: list[nn.Parameter] = []  # swap mode: parameters holding noisy tensors (clean ones in _CLEAN)
        self._dirty: list[int] = []  # in-place mode: groups whose parameters hold noise
        self._swap = True
        self._parity = 0

    def _state_key_fields(self) -> dict[str, Any]:
        return {"kind": self.kind, "modules": self.modules, "biases": self.biases}

    @property
    def parameter_names(self) -> list[str]:
        """Qualified names of the perturbed parameters (filled at ``on_fit_start``)."""
        return list(self._names)

    @property
    def perturbed(self) -> bool:
        """Whether the selected weights currently hold noise."""
        return bool(self._swapped or self._dirty)

    # ---------------------------------------------------------------------------------------------- selection
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._detach()
        if not pl_module.automatic_optimization:
            rank_zero_warn(
                "WeightNoise with manual optimization perturbs the weights at the start of each batch and restores "
                "them after the first `manual_backward`: later forward/backward passes in the same training_step "
                "(a second optimizer, say) run on the clean weights."
            )
        if self.modules is None:
            roots: list[tuple[str, nn.Module]] = [("", pl_module)]
        else:
            roots = select_modules(pl_module, self.modules, "modules")
        chosen: dict[int, tuple[str, nn.Parameter]] = {}
        for prefix, module in roots:
            for name, param in module.named_parameters(prefix=prefix):
                leaf = name.rsplit(".", 1)[-1]
                if (is_lazy(param) or param.is_floating_point()) and (self.biases or not leaf.startswith("bias")):
                    chosen.setdefault(id(param), (name, param))
        if not chosen:
            raise ValueError(
                f"WeightNoise: `modules`={list(self.modules or ['<whole model>'])} with biases={self.biases} selects "
                f"no floating-point parameter of {type(pl_module).__name__}. Parameters: "
                f"{[n for n, _ in pl_module.named_parameters()][:40]}."
            )
        self._chosen = list(chosen.values())
        # Sharded (DTensor) parameters are perturbed in place, shard by shard; plain ones swap their storage.
        self._swap = not any(is_dtensor(param) for _, param in self._chosen)
        self._swapped, self._dirty = [], []
        self._build()
        if not pl_module.automatic_optimization:  # automatic: training_step runs inside the step's closure
            self._step_handles = [opt.register_step_pre_hook(self._before_raw_step) for opt in trainer.optimizers]
        self._register_state_dict_hooks(pl_module)

    def _build(self) -> None:
        """Buffers for the selected parameters that are initialized (lazy ones join once they are)."""
        lazy = [name for name, param in self._chosen if is_lazy(param)]
        if lazy and not self._lazy:
            rank_zero_warn(
                f"WeightNoise: {len(lazy)} selected parameter(s) of lazy modules are not initialized yet ({lazy[:5]}); "
                "they get noise from the first batch after the forward that initializes them."
            )
        self._lazy = lazy
        ready = [(name, param) for name, param in self._chosen if not is_lazy(param)]
        self._names = [name for name, _ in ready]
        self._params = [param for _, param in ready]
        detached = [p.detach() for p in self._params]
        self._group_params = []
        self._clean_groups = []
        self._buffers = []
        self._parity = 0
        self._prefetcher.close()
        if not detached:
            return
        # Noise buffers in the layout of the whole (unsharded) parameters: the numbers are the same whatever
        # the sharding. Two with prefetch: one holds this batch's noisy weights while the next draw fills the other.
        layout = flat_groups(detached, allocate=self._swap or self.sampler == "exact")
        self._group_params = [[self._params[i] for i in group.indices] for group in layout]
        copies = 2 if self._prefetches(layout) and self._swap else 1
        self._buffers = [layout] + [flat_groups(detached) for _ in range(copies - 1)]
        if not self._swap:  # sharded parameters are perturbed in place: a clean copy of the local shards
            self._clean_groups = flat_groups([local_tensor(p) for p in self._params])

    def _register_state_dict_hooks(self, pl_module: pl.LightningModule) -> None:
        """On every module that owns a selected parameter: a ``state_dict`` post-hook that writes clean values."""
        index = {id(p): name for name, p in self._chosen}
        for module in pl_module.modules():
            owned = [(name, p) for name, p in module.named_parameters(recurse=False) if id(p) in index]
            if owned:
                hook = CleanStateHook(self, owned)
                self._state_hooks.append(hook)
                self._handles.append(module.register_state_dict_post_hook(hook))

    def _clean_value(self, param: nn.Parameter) -> Tensor | None:
        """A copy of the clean value of ``param`` while it is perturbed, else ``None``."""
        if self._swapped:
            clean = _CLEAN.get(param)
            if clean is not None:
                return clean.clone()
        owner = _OWNER.get(param)
        if owner is not None and owner is not self:
            return owner._clean_value(param)
        if self._dirty:
            i = next((k for k, p in enumerate(self._params) if p is param), None)
            for number in self._dirty:
                group = self._clean_groups[number]
                if i is not None and i in group.indices:
                    return group.views[group.indices.index(i)].clone()
        return None

    def _detach(self) -> None:
        for handle in self._handles + self._step_handles:
            handle.remove()
        for hook in self._state_hooks:
            hook.callback = None  # a stray reference (a copy made before teardown) can no longer reach us
        self._handles.clear()
        self._state_hooks.clear()
        self._step_handles = []

    def _before_raw_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        """An optimizer step while the weights hold noise (the raw optimizer under manual optimization, before
        any ``on_before_optimizer_step``): restore first, so the update applies to the clean weights and is kept."""
        self.restore()

    # ---------------------------------------------------------------------------------------------- perturb
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.restore()
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        self._calls += 1
        if self._lazy and not all(is_lazy(p) for name, p in self._chosen if name in self._lazy):
            self._build()
        std = self.amounts["std"]
        if self._active_stage != "train" or not self._params:
            return
        if std != 0:
            self.perturb(std)
        if self._prefetches(self._buffers[0]):
            self._prefetch_next(trainer, pl_module, batch_idx, std)

    def _prefetch_next(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch_idx: int, std: float) -> None:
        """Start drawing the next batch's noise, unless its std will be 0. The key is certain (the batch counter);
        the std is a guess (the next schedule step): a wrong guess costs a wasted or a synchronous draw."""
        step = self.schedule_step(trainer)
        if self.unit == "step" and (batch_idx + 1) % max(trainer.accumulate_grad_batches, 1) == 0:
            step += 1
        needed = float(self.schedules["std"](step)) != 0
        if not pl_module.automatic_optimization:  # any number of optimizer steps per batch
            needed = needed or std != 0
        if needed:
            buffers = self._buffers[(self._parity + 1) % len(self._buffers)]
            self._prefetch(0, buffers, self.key_seed(*self._train_batch_key(self._train_batches)), self._dist)

    @property
    def _dist(self) -> Literal["normal", "uniform"]:
        return "uniform" if self.kind == "uniform" else "normal"

    def perturb(self, std: float) -> None:
        """Put ``std`` noise drawn under the current batch's key on the selected weights (clean values kept)."""
        if len(self._buffers) > 1:
            self._parity = (self._parity + 1) % len(self._buffers)
        buffers = self._buffers[self._parity]
        noise = self._noise_terms(0, buffers, std, self._dist)
        with torch.no_grad():
            for number, (group, params, terms) in enumerate(zip(buffers, self._group_params, noise, strict=True)):
                if self._swap:
                    self._perturb_swap(params, group.views, terms)
                else:
                    self._perturb_in_place(number, params, terms)
        self._check_finite(
            [local_tensor(p) for p in self._params], "noisy weights", f"at training batch {self._train_batches}"
        )

    def _perturb_swap(
        self, params: list[nn.Parameter], out: list[Tensor], terms: list[tuple[list[Tensor], float]]
    ) -> None:
        """Write the noisy weights into ``out`` (views of a buffer) and make each parameter hold them: the clean
        tensors are kept aside untouched, so restoring swaps them back without a copy. A parameter counts as
        perturbed from the moment it is swapped, so an interruption leaves nothing noisy behind."""
        multiplicative = self.kind == "multiplicative"
        for k, (param, noisy) in enumerate(zip(params, out, strict=True)):
            current = param.data  # clean, or already noisy from another WeightNoise on the same parameter
            for term, (views, alpha) in enumerate(terms):
                source = current if term == 0 else noisy
                if multiplicative:
                    torch.addcmul(source, current, views[k], value=alpha, out=noisy)
                else:
                    torch.add(source, views[k], alpha=alpha, out=noisy)
            _CLEAN.setdefault(param, current)
            param.data = noisy
            self._swapped.append(param)

    def _perturb_in_place(
        self, number: int, params: list[nn.Parameter], terms: list[tuple[list[Tensor], float]]
    ) -> None:
        """Sharded parameters: save the local shards, mark the group perturbed, add each shard's part of the draw."""
        targets = [local_tensor(p) for p in params]
        clean = self._clean_groups[number]
        torch._foreach_copy_(clean.views, targets)
        for param in params:  # the first WeightNoise to perturb a parameter restores it
            _OWNER.setdefault(param, self)
        self._dirty.append(number)
        for views, alpha in terms:
            parts = [local_part(view, p) for view, p in zip(views, params, strict=True)]
            if self.kind == "multiplicative":
                torch._foreach_addcmul_(targets, clean.views, parts, value=alpha)
            else:
                torch._foreach_add_(targets, parts, alpha=alpha)

    def restore(self) -> None:
        """Give the selected parameters their exact clean values back if they hold noise."""
        if self._swapped:
            for param in self._swapped:
                clean = _CLEAN.pop(param, None)
                if clean is not None:  # else another WeightNoise on this parameter restored it already
                    param.data = clean
            self._swapped.clear()
        if self._dirty:
            with torch.no_grad():
                for number in self._dirty:
                    pairs = [
                        (local_tensor(p), clean)
                        for p, clean in zip(self._group_params[number], self._clean_groups[number].views, strict=True)
                        if _OWNER.get(p) is self
                    ]
                    if pairs:
                        torch._foreach_copy_([t for t, _ in pairs], [c for _, c in pairs])
                    for p in self._group_params[number]:
                        if _OWNER.get(p) is self:
                            del _OWNER[p]
            self._dirty.clear()

    # ---------------------------------------------------------------------------------------------- restore
    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.restore()

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self.restore()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.restore()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.restore()
        super().on_train_epoch_end(trainer, pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.restore()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.restore()
        super().on_train_end(trainer, pl_module)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.restore()
        super().on_exception(trainer, pl_module, exception)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.restore()
        super().teardown(trainer, pl_module, stage)
