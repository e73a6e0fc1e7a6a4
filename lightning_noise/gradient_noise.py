"""GradientNoise: annealed Gaussian noise on the gradients, once per optimizer step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch.optim import Optimizer

from lightning_noise._checks import as_list, check_number, describe, is_int
from lightning_noise._flat_buffers import FlatGroup, flat_groups
from lightning_noise._parameter_noise import ParameterNoise
from lightning_noise._seeding import mix_seed
from lightning_noise._sharding import is_dtensor, local_part
from lightning_noise._table_sampling import DEFAULT_TABLE_SIZE, Sampler
from lightning_noise.schedules import Annealed, ScheduleLike

try:  # private helper of Lightning 2.x; the check it enables is skipped where it is missing
    from lightning.fabric.plugins.precision.amp import _optimizer_handles_unscaling
except ImportError:  # pragma: no cover
    _optimizer_handles_unscaling = None  # type: ignore[assignment]  # the check is skipped where it is None


@dataclass
class _Plan:
    """What one optimizer's step touches: its selected parameters and their noise buffers."""

    signature: tuple[int, ...]
    params: list[torch.nn.Parameter]  # the dense ones first, in the groups' index order, then the sparse ones
    groups: list[FlatGroup]
    last_step: int = -1


def _sparse_parameters(pl_module: pl.LightningModule | None) -> set[int]:
    """Ids of the weights of embeddings built with ``sparse=True`` (their gradients are sparse tensors)."""
    if pl_module is None:
        return set()
    return {
        id(m.weight)
        for m in pl_module.modules()
        if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag)) and getattr(m, "sparse", False)
    }


class GradientNoise(ParameterNoise):
    r"""Add Gaussian noise to the gradients before every optimizer step (Neelakantan et al., 2015).

    At each optimizer step ``t`` (the number of optimizer steps taken so far, ``trainer.global_step``), every
    parameter gradient ``g`` becomes ``g + std_t * N(0, I)``, with ``std_t = sqrt(eta / (1 + t) ** gamma)``
    (``eta`` is the *variance* at step 0) or the ``std=`` given (a float or any schedule).

    When it runs. The noise is added in ``on_before_optimizer_step``. In Lightning 2.6 that hook runs after the
    whole closure (``training_step`` and ``backward`` of the last micro-batch), so the gradients are already
    accumulated over ``accumulate_grad_batches``, already unscaled under 16-bit AMP, already averaged across
    DDP ranks; gradient clipping runs right after the hook, so the noise counts toward the clipped norm; then
    the optimizer steps. Noise is therefore added once per optimizer step, never per micro-batch.

    Which gradients. The parameters of the stepped optimizer (of the ``param_groups`` chosen, default all)
    whose ``.grad`` is not ``None``; frozen parameters and parameters that got no gradient are untouched.

    A reused instance draws what a fresh instance with the same seed draws: the draws are keyed by the
    Trainer's optimizer step, which starts at 0 in a new fit and continues in a fit with ``ckpt_path`` (the
    rule: :class:`~lightning_noise._callback.NoiseCallback`, docs/arguments-and-state.md).

    Distributed. Gradients are identical on every rank at that point, so the noise is too: it is drawn from a
    generator seeded with (seed, step, optimizer), never the rank, and the replicas stay bit-identical. Sharded
    gradients (DTensors: ``ModelParallelStrategy`` with ``fully_shard``) take, on each rank, their part of one
    global draw: the same noise as the unsharded model under the same seed. ``FSDPStrategy`` (FSDP1 flat
    parameters) and DeepSpeed are refused at ``setup``.

    Sparse gradients (``nn.Embedding(sparse=True)``) stay sparse: the noise goes on their values, the rows
    present in the batch, from a draw keyed by (step, parameter).

    Manual optimization works when the optimizer is stepped through Lightning's wrapper
    (``opt = self.optimizers(); opt.step()``); stepping the raw ``torch.optim`` optimizer bypasses the hook
    and raises an error at the end of the batch.

    Speed. One flat draw per step into a preallocated buffer, then one ``torch._foreach_add_``. With the exact
    sampler the draw of the next step is made ahead (``prefetch=True``) on a side thread (CPU, when a second
    core is available) or a side CUDA stream while the current step computes; a draw made for the wrong key is
    dropped and drawn again, so the noise is the same as without prefetch. With ``sampler="table"`` the numbers
    are two windows of a precomputed table at keyed offsets, added as views: nothing is generated per step, at
    the cost of statistical independence between steps (see ``docs/weight-and-gradient-noise.md``).

    Args:
        std: standard deviation of the noise, a float or a schedule; give this or ``eta``.
        eta: variance at step 0 of the annealed schedule, >= 0 (the paper uses 0.01, 0.3 or 1.0).
        gamma: decay exponent of the annealed schedule, >= 0 (default 0.55, as in the paper).
        param_groups: indices of the optimizer's parameter groups that get noise; default all.
        sampler: ``"exact"`` (fresh draws, default) or ``"table"`` (fast, correlated across steps).
        table_size: number of entries of the noise table (``sampler="table"``), its whole memory (never grown);
            parameters of one device and dtype numbering more than ``table_size / 4`` take their noise through a
            buffer of their size (allocated once).
        seed: base seed; default the seed given to ``seed_everything``, else fresh entropy (shared by ranks).
        unit: schedules count optimizer steps (``"step"``) or epochs (``"epoch"``).
        log_amounts: log the current std as ``noise/{name}_std`` every ``log_every_n_steps`` steps.
        name: name used in logged metrics and in the checkpoint state key.
        prefetch: draw the exact sampler's next numbers ahead on a side thread or CUDA stream (default True);
            the noise is the same either way. ``False`` keeps every draw on the training thread.
        check_finite: raise ``FloatingPointError`` when the noisy gradients hold a NaN or an infinity (checked at
            noisy steps 1, 2, 4, ..., 64, then every 100th; default True). ``False`` leaves a diverged run to the
            Trainer, as it would be without noise (``EarlyStopping(check_finite=True)`` stops it, the best
            checkpoint stays): for studies that count divergence as an outcome of both arms.

    Raises:
        ValueError: in ``__init__``, bad arguments, or a NaN or infinite amount or schedule value; at ``setup``,
            FSDPStrategy or DeepSpeed, or another noise callback with the same state key; at ``on_fit_start``, a
            ``param_groups`` index the optimizer lacks, or fp16 AMP with an optimizer that unscales inside
            ``step`` (fused); at the step a plain callable returns a NaN or infinite amount.
        TypeError: an argument of the wrong type, e.g. ``param_groups=1.0``; strings are never read as bools or
            numbers (in ``__init__``).
        RuntimeError: an optimizer stepped without calling ``on_before_optimizer_step`` (manual optimization
            through the raw optimizer).

    Example::

        >>> from lightning import Trainer
        >>> from lightning_noise import GradientNoise, schedules
        >>> trainer = Trainer(callbacks=[GradientNoise(eta=0.3, gamma=0.55)])
        >>> trainer = Trainer(callbacks=[GradientNoise(std=0.01, sampler="table")])
        >>> trainer = Trainer(callbacks=[GradientNoise(std=schedules.Cosine(0.05, 0.0, steps=10_000))])
    """

    def __init__(
        self,
        std: ScheduleLike | None = None,
        *,
        eta: float | None = None,
        gamma: float | None = None,
        param_groups: int | Sequence[int] | None = None,
        sampler: Sampler = "exact",
        table_size: int = DEFAULT_TABLE_SIZE,
        seed: int | None = None,
        unit: Literal["step", "epoch"] = "step",
        log_amounts: bool = True,
        name: str = "gradient",
        prefetch: bool = True,
        check_finite: bool = True,
    ) -> None:
        if (std is None) == (eta is None):
            raise ValueError(
                f"GradientNoise: give exactly one of `std` (a float or schedule) and `eta` (annealed variance), "
                f"got std={std!r}, eta={eta!r}."
            )
        if eta is None and gamma is not None:
            raise ValueError(f"GradientNoise: `gamma` goes with `eta`, got gamma={gamma!r} with std={std!r}.")
        if eta is not None:
            eta = check_number(eta, "eta", minimum=0, owner="GradientNoise")
            gamma = check_number(0.55 if gamma is None else gamma, "gamma", minimum=0, owner="GradientNoise")
            std = Annealed(eta, gamma)
        if param_groups is not None:
            expected = "None or non-negative group indices (an int or a list of ints)"
            if isinstance(param_groups, int) and not isinstance(param_groups, bool):
                param_groups = [param_groups]
            param_groups = as_list(param_groups, "param_groups", expected, owner="GradientNoise")
            if not all(is_int(i) for i in param_groups):
                raise TypeError(f"GradientNoise: `param_groups` must be {expected}, got {describe(param_groups)}.")
            if not param_groups or any(i < 0 for i in param_groups):
                raise ValueError(
                    f"GradientNoise: `param_groups` must be None or non-negative group indices, got {param_groups!r}."
                )
        assert std is not None  # exactly one of std and eta, checked above
        super().__init__(
            std=std,
            sampler=sampler,
            table_size=table_size,
            seed=seed,
            unit=unit,
            log_amounts=log_amounts,
            name=name,
            prefetch=prefetch,
            check_finite=check_finite,
        )
        self.param_groups = tuple(sorted(set(param_groups))) if param_groups is not None else None
        self._plans: dict[int, _Plan] = {}
        self._step_handles: list[Any] = []
        self._optimizer_steps = 0
        self._noised_steps = 0

    def _state_key_fields(self) -> dict[str, Any]:
        return {"param_groups": self.param_groups}

    # ---------------------------------------------------------------------------------------------- lifecycle
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        for index, optimizer in enumerate(trainer.optimizers):
            fused = _optimizer_handles_unscaling is not None and _optimizer_handles_unscaling(optimizer)
            if scaler is not None and fused:
                raise ValueError(
                    f"GradientNoise needs unscaled gradients, but optimizer {index} ({type(optimizer).__name__}) "
                    "unscales inside its step (fused) under 16-bit AMP. Use a non-fused optimizer or bf16."
                )
            groups = len(optimizer.param_groups)
            missing = [i for i in self.param_groups or () if i >= groups]
            if missing:
                raise ValueError(
                    f"GradientNoise: `param_groups` {list(self.param_groups or ())} asks for group(s) {missing}, but "
                    f"optimizer {index} ({type(optimizer).__name__}) has {groups} parameter group(s)."
                )
        self._detach()
        self._plans.clear()
        self._step_handles = [opt.register_step_post_hook(self._count_step) for opt in trainer.optimizers]

    def _detach(self) -> None:
        for handle in self._step_handles:
            handle.remove()
        self._step_handles = []

    def _count_step(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        self._optimizer_steps += 1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._verify_pending = False  # checked per batch below: an optimizer step must go through the hook
        self._optimizer_steps = self._noised_steps = 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._optimizer_steps > self._noised_steps:
            raise RuntimeError(
                "GradientNoise: an optimizer stepped without Lightning's `on_before_optimizer_step` hook, so its "
                "gradients got no noise. In manual optimization, step the wrapper returned by `self.optimizers()` "
                "(not `.optimizer`), and do not override `optimizer_step` to call the raw optimizer."
            )

    # ---------------------------------------------------------------------------------------------- noise
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        self._noised_steps += 1
        self._calls += 1
        step = trainer.global_step
        std = self.update_amounts(self.schedule_step(trainer))["std"]
        index = next((i for i, opt in enumerate(trainer.optimizers) if opt is optimizer), 0)
        plan = self._plan(optimizer, pl_module)
        if std != 0:
            self.reseed(*self._step_key(step, index))
            self.add_noise_(plan, std, slot=index)
            grads = [p.grad for p in plan.params if p.grad is not None]
            grads = [g.to_local() if is_dtensor(g) else (g._values() if g.is_sparse else g) for g in grads]
            self._check_finite(grads, "noisy gradients", f"at optimizer step {step}")
        if self._prefetches(plan.groups):
            ahead = step + max(step - plan.last_step, 1) if plan.last_step >= 0 else step + 1
            plan.last_step = step
            if self.unit == "epoch" or float(self.schedules["std"](ahead)) != 0:
                self._prefetch(index, plan.groups, self.key_seed(*self._step_key(ahead, index)), "normal")

    @staticmethod
    def _step_key(step: int, index: int) -> tuple[int, int]:
        """The key of the noise of optimizer ``index`` at global step ``step``: the one place it is built, for the
        draw of this step and for the prefetch of the next one."""
        return (step, index)

    def add_noise_(self, plan: _Plan, std: float, slot: int = 0) -> None:
        """Add ``std * N(0, 1)`` to the gradients of ``plan``'s parameters, drawn under the current key.

        Dense gradients take one flat draw per (device, dtype) group, in the layout of the whole parameters
        (a DTensor gradient takes the part of the draw that lies on this rank's shard). Sparse gradients
        (``nn.Embedding(sparse=True)``) take noise on their values, the rows present, from their own keyed draw.
        """
        for group, terms in zip(plan.groups, self._noise_terms(slot, plan.groups, std, "normal"), strict=True):
            params = [plan.params[i] for i in group.indices]
            grads, keep = [], []
            for k, p in enumerate(params):
                g = p.grad
                if g is not None and not g.is_sparse:
                    grads.append(g.to_local() if is_dtensor(g) else g)
                    keep.append(k)
            if not grads:
                continue
            for views, alpha in terms:
                torch._foreach_add_(grads, [local_part(views[k], params[k]) for k in keep], alpha=alpha)
        for number, p in enumerate(plan.params):
            if p.grad is not None and p.grad.is_sparse:
                self._add_sparse_noise_(p, std, mix_seed(self._batch_seed, len(plan.groups) + number))

    def _add_sparse_noise_(self, param: torch.nn.Parameter, std: float, key: int) -> None:
        assert param.grad is not None  # called for parameters with a sparse gradient only
        grad = param.grad.coalesce()
        values = grad._values()
        generator = self.generator(values.device)
        generator.manual_seed(key)
        values.add_(torch.randn(values.shape, generator=generator, device=values.device, dtype=values.dtype), alpha=std)
        param.grad = grad

    def _plan(self, optimizer: Optimizer, pl_module: pl.LightningModule | None = None) -> _Plan:
        """The parameters of ``optimizer``'s selected groups and their buffers; rebuilt when the groups change.

        Parameters of embeddings with ``sparse=True`` get no flat buffer (their gradients are sparse)."""
        chosen: Sequence[int] = (
            self.param_groups if self.param_groups is not None else range(len(optimizer.param_groups))
        )
        chosen = [i for i in chosen if i < len(optimizer.param_groups)]
        signature = (*(len(optimizer.param_groups[i]["params"]) for i in chosen), len(optimizer.param_groups))
        plan = self._plans.get(id(optimizer))
        if plan is None or plan.signature != signature:
            sparse = _sparse_parameters(pl_module)
            seen: set[int] = set()
            params = []
            for i in chosen:
                for p in optimizer.param_groups[i]["params"]:
                    if id(p) not in seen and p.is_floating_point():
                        seen.add(id(p))
                        params.append(p)
            dense = [p for p in params if id(p) not in sparse]
            layout = flat_groups([p.detach() for p in dense], allocate=self.sampler == "exact")
            plan = _Plan(signature, dense, layout)
            plan.params += [p for p in params if id(p) in sparse]
            self._plans[id(optimizer)] = plan
        return plan

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        self._plans.clear()
