"""InputNoise: noise on the inputs of the model's ``forward`` (input jitter)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from lightning_noise._callback import NoiseCallback, Stage
from lightning_noise._checks import as_list, check_bool, check_name
from lightning_noise._hooks import NoiseHook, in_backward, site_id
from lightning_noise._kind_noise import KindNoise
from lightning_noise._modules import get_submodule
from lightning_noise._running_std import RunningStd
from lightning_noise._structures import describe_dtypes, map_floating, tensors_in
from lightning_noise._table_sampling import DEFAULT_TABLE_SIZE, Sampler
from lightning_noise.schedules import ScheduleLike


@torch.compiler.disable
def _is_step_redirection(module: nn.Module) -> bool:
    """Whether this call of a LightningModule is Lightning's forward redirection, not a real ``forward``.

    Under DDP, FSDP and DeepSpeed, Lightning runs ``training_step`` through the wrapper's ``forward``: it patches
    the module's ``forward`` with a function that calls ``training_step`` and calls the module with the step's
    arguments (the batch). A pre-hook must let that call through untouched, or it would noise the batch that
    ``training_step`` receives, and again the inputs of the real ``self(x)``.

    Never traced by dynamo: the redirection itself always runs eagerly (Lightning compiles the step and the
    ``forward`` it redirects to), and dynamo fails on ``__dict__`` of a method. The hook skips the check while
    compiling, and ``torch.compiler.disable`` keeps dynamo out when an eager frame calls it inside a compiled
    region.
    """
    patched = module.__dict__.get("forward")
    return patched is not None and "_ForwardRedirection" in getattr(patched, "__qualname__", "")


class InputNoise(KindNoise, NoiseCallback):
    r"""Add noise to the inputs of ``pl_module.forward`` (or of a named submodule) while training.

    A forward pre-hook replaces the floating-point tensors among the arguments of ``forward`` with noisy copies.
    Only what ``forward`` sees changes: the batch held by ``training_step`` stays clean, so a loss computed
    against the batch (a denoising autoencoder's reconstruction target) sees clean data. The dataset is never
    modified.

    Noise is drawn independently per element (per sample and per feature) at every call; each draw is a pure
    function of (seed, rank, batch counter, call index, input): different on each DDP rank, identical on a
    resumed run and in a forward recomputed by activation checkpointing. Under ``torch.compile`` the draw is
    traced into the graph (see docs/compile-and-scale.md). By default it is on only in training batches while
    the module is in train mode: never in the sanity check, validation, test or predict, unless ``stages`` says
    otherwise; a module that stays in eval mode through the first training epoch gets a warning.

    A reused instance: a new fit (on a Trainer that has not trained yet) starts again from batch 0 and
    ``relative=True`` estimates its statistics afresh, so it draws what a fresh instance with the same seed
    draws; a fit with ``ckpt_path`` continues the checkpoint's stream and statistics (the rule:
    :class:`~lightning_noise._callback.NoiseCallback`, docs/arguments-and-state.md).

    Args:
        std: standard deviation, a float or a schedule (for ``gaussian``, ``uniform``, ``multiplicative``).
        kind: a registered noise kind: ``gaussian`` (default), ``uniform``, ``multiplicative``,
            ``salt_and_pepper``, ``dropout``, ``snr`` or one added with ``functional.register_noise``.
        p: fraction of elements, for ``salt_and_pepper`` and ``dropout``.
        snr_db: signal-to-noise ratio in dB, for ``snr``.
        amount: the amount under its generic name, for kinds registered by users.
        kind_kwargs: extra keyword arguments of the noise function (``{"low": -1.0, "high": 1.0}``).
        module: qualified name of the submodule whose inputs get noise; default the LightningModule itself.
        inputs: which arguments get noise: positional indices, keyword names, or keys of a dict argument.
            Default: every floating-point tensor among the arguments.
        relative: scale the noise by each feature's standard deviation, estimated from the clean training
            inputs seen so far (for inputs that are not standardized). Additive and multiplicative kinds only.
            Under DDP each rank keeps its own estimate from the batches it sees, and a checkpoint (written by
            rank 0) restores rank 0's estimate on every rank.
        stages: where noise is on: one stage or a list of them, among ``"train"``, ``"validate"``, ``"test"``,
            ``"predict"`` (a single name is a list of one, as for ``modules``: ``stages="test"``).
        seed: base seed; default the seed given to ``seed_everything``, else fresh entropy.
        unit: schedules count optimizer steps (``"step"``) or epochs (``"epoch"``).
        sampler: ``"exact"`` (fresh draws from the generator, default) or ``"table"``: Gaussian numbers read from
            two windows of a precomputed table at keyed offsets (``gaussian`` and ``multiplicative`` kinds only),
            several times cheaper on CPU; within a draw the values are independent, across draws they reuse the
            table (see docs/weight-and-gradient-noise.md).
        table_size: entries of the noise table, its whole memory (never grown); a tensor of more than
            ``table_size / 4`` elements takes chunks of windows (see ``lightning_noise/_noise_table.py``).
        log_amounts: log the current amount as ``noise/{name}_{std|p|snr_db}`` every ``log_every_n_steps``.
        name: name used in logged metrics and in the checkpoint state key.

    Raises:
        ValueError: in ``__init__``, a bad amount, kind, stage or seed, or a NaN or infinite amount or schedule
            value; at ``setup``, a ``module`` that does not exist or another noise callback with the same state
            key; at the step a plain callable returns a NaN or infinite amount.
        TypeError: in ``__init__``, an argument of the wrong type, e.g. ``relative="false"`` (strings are never
            read as bools or numbers); at the first forward call (which the sanity check usually makes before
            training), selected inputs that hold no floating-point tensor.
        RuntimeError: no forward call reached the hook during the first training batch.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_noise import InputNoise, schedules
        >>> trainer = Trainer(callbacks=[InputNoise(std=0.1)])                                # input jitter
        >>> trainer = Trainer(callbacks=[InputNoise(std=schedules.Linear(0.2, 0.0, steps=1000))])
        >>> trainer = Trainer(callbacks=[InputNoise(p=0.05, kind="salt_and_pepper")])
        >>> trainer = Trainer(callbacks=[InputNoise(std=0.1, stages=["test"])])  # test-time robustness
    """

    def __init__(
        self,
        std: ScheduleLike | None = None,
        *,
        kind: str = "gaussian",
        p: ScheduleLike | None = None,
        snr_db: ScheduleLike | None = None,
        amount: ScheduleLike | None = None,
        kind_kwargs: Mapping[str, Any] | None = None,
        module: str | None = None,
        inputs: Sequence[int | str] | None = None,
        relative: bool = False,
        stages: Stage | Iterable[Stage] = ("train",),
        seed: int | None = None,
        unit: Literal["step", "epoch"] = "step",
        sampler: Sampler = "exact",
        table_size: int = DEFAULT_TABLE_SIZE,
        log_amounts: bool = True,
        name: str = "input",
    ) -> None:
        super().__init__(
            kind=kind,
            std=std,
            p=p,
            snr_db=snr_db,
            amount=amount,
            kind_kwargs=kind_kwargs,
            sampler=sampler,
            table_size=table_size,
            name=name,
            stages=stages,
            seed=seed,
            unit=unit,
            log_amounts=log_amounts,
        )
        if check_bool(relative, "relative") and not self.kind.elementwise_scale:
            raise ValueError(
                f"`relative=True` needs a kind whose amount scales per feature "
                f"(gaussian, uniform, multiplicative), got kind={self.kind.name!r}."
            )
        if inputs is not None:
            expected = "None or a non-empty list of positional indices and argument or key names"
            inputs = [inputs] if isinstance(inputs, (str, int)) else as_list(inputs, "inputs", expected)
            if not inputs or not all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in inputs):
                raise ValueError(
                    f"`inputs` must be None or a non-empty list of positional indices and argument or key names, "
                    f"got {inputs!r}."
                )
        check_name(module, "module", none=True, what=" (a submodule's qualified name)")
        self.module = module
        self.inputs = tuple(inputs) if inputs is not None else None
        self.relative = bool(relative)
        self._stats: dict[str, RunningStd] = {}
        self._std_cache: dict[tuple[str, int], Tensor] = {}  # this batch's std per (input, call), for recomputation
        self._target_name = ""

    def _state_key_fields(self) -> dict[str, Any]:
        return {"kind": self.kind.name, "module": self.module, "inputs": self.inputs}

    def _extra_key_fields(self) -> dict[str, Any]:
        return {**super()._extra_key_fields(), "relative": self.relative}

    # ---------------------------------------------------------------------------------------------- hooks
    def _attach(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        target = pl_module if self.module is None else get_submodule(pl_module, self.module, "module")
        self._target_name = type(pl_module).__name__ + ("" if self.module is None else f".{self.module}")
        self._hook(target, "_pre_hook", self._target_name, pre=True, with_kwargs=True)

    def _detach(self) -> None:
        self._remove_hooks()

    def _pre_hook(self, hook: NoiseHook, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if not torch.compiler.is_compiling() and _is_step_redirection(module):
            return None
        self._calls = 1
        if not hook.validated:
            self._validate(args, kwargs)
            hook.validated = True
        if not self._noise_on(hook, module):
            return None
        call = self._call_index(hook.site)
        new_args = []
        for index, arg in enumerate(args):
            if self._selected(index):
                arg = self._noise_item(index, arg, call)
            elif isinstance(arg, Mapping):
                arg = self._select_from_mapping(index, arg, call)
            new_args.append(arg)
        new_kwargs = {k: self._noise_item(k, v, call) if self._selected(k) else v for k, v in kwargs.items()}
        return tuple(new_args), new_kwargs

    def _selected(self, key: int | str) -> bool:
        return self.inputs is None or key in self.inputs

    def _noise_item(self, key: int | str, item: Any, call: int) -> Any:
        if isinstance(item, Tensor):
            return self._noise_tensor(key, 0, item, call) if item.is_floating_point() else item
        return map_floating(item, lambda t, i: self._noise_tensor(key, i, t, call))

    def _select_from_mapping(self, key: int, item: Mapping, call: int) -> Any:
        """Noise the selected keys of a dict passed as a positional argument."""
        wanted = [k for k in self.inputs or () if isinstance(k, str) and k in item]
        if not wanted:
            return item
        out = dict(item)
        for k in wanted:
            out[k] = self._noise_item(f"{key}.{k}", item[k], call)
        # the ignore: Mapping() takes no argument, but a concrete mapping class (OrderedDict...) takes a dict
        return type(item)(out) if not isinstance(item, dict) else out  # type: ignore[call-arg]

    def _noise_tensor(self, key: int | str, index: int, x: Tensor, call: int) -> Tensor:
        argument = self.amount_name
        if not self._amount_active(argument):
            return x
        value = self._amount_value(argument)
        if self.relative:
            value = value * _feature_std(self, f"{key}.{index}", x, call)
        return self._draw(x, value, site_id(f"input.{key}"), call, index)

    # ---------------------------------------------------------------------------------------------- checks
    def _validate(self, args: tuple, kwargs: dict) -> None:
        """Check once, at the first call in any stage, that the selected inputs hold floating-point tensors."""
        if self.inputs is not None:
            known = set(range(len(args))) | set(kwargs) | {k for a in args if isinstance(a, Mapping) for k in a}
            missing = [k for k in self.inputs if k not in known]
            if missing:
                raise ValueError(
                    f"InputNoise `inputs` {missing} are not among the arguments of {self._target_name}.forward: "
                    f"{len(args)} positional, keywords {sorted(kwargs)}, dict keys "
                    f"{sorted(k for a in args if isinstance(a, Mapping) for k in a)}."
                )
        chosen = self._chosen(args, kwargs)
        if not any(t.is_floating_point() for t in tensors_in(chosen)):
            raise TypeError(
                f"InputNoise found no floating-point tensor to noise among the inputs of {self._target_name}.forward "
                f"(got {describe_dtypes(chosen)}). Integer inputs such as token ids cannot take "
                f"{self.kind.name} noise: noise the embedding output instead, e.g. "
                "ActivationNoise(std=..., modules=['Embedding'])."
            )

    def _chosen(self, args: tuple, kwargs: dict) -> list[Any]:
        if self.inputs is None:
            return [list(args), kwargs]
        chosen: list[Any] = []
        for key in self.inputs:
            if isinstance(key, int) and key < len(args):
                chosen.append(args[key])
            elif key in kwargs:
                chosen.append(kwargs[key])
            chosen.extend(a[key] for a in args if isinstance(a, Mapping) and key in a)
        return chosen

    def _no_call_message(self) -> str:
        return (
            f"InputNoise hooks {self._target_name}.forward, but nothing called it during the first training batch, "
            "so no noise would be added. If training_step calls a submodule directly (e.g. self.model(x)), either "
            "call self(x) instead or pass module='model' so the hook sits on the module that runs."
        )

    _TRANSIENT_EXTRA = {"_std_cache": dict}

    def _start_new_fit(self) -> None:
        super()._start_new_fit()
        self._stats.clear()
        self._std_cache.clear()

    def reseed(self, *key: int) -> None:
        super().reseed(*key)
        self._std_cache.clear()

    # ---------------------------------------------------------------------------------------------- state
    def _extra_state(self) -> dict[str, Any]:
        return {"feature_stats": {k: s.state_dict() for k, s in self._stats.items()}} if self.relative else {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        for key, stats in state.get("feature_stats", {}).items():
            self._stats.setdefault(key, RunningStd()).load_state_dict(stats)


@torch.compiler.disable
def _feature_std(callback: InputNoise, path: str, x: Tensor, call: int) -> Tensor:
    """Per-feature std (float32) of the clean inputs at ``path``, updated in training: Python state, kept out of
    graphs.

    A recomputation by activation checkpointing (a call while autograd runs the backward) neither updates the
    statistics (the batch counts once) nor computes a new std: it gets the std of the original call, so the
    recomputed noise is the noise of the forward. The std stays float32 until the noise is added.
    """
    cached = callback._std_cache.get((path, call))
    recomputing = in_backward()
    if recomputing and cached is not None:
        return cached
    stats = callback._stats.setdefault(path, RunningStd())
    if callback._active_stage == "train" and not recomputing:
        stats.update(x)
    if stats.count < 2:
        fresh = RunningStd()
        fresh.update(x)
        stats = fresh if fresh.count >= 2 else stats
    if stats.count < 2:
        raise RuntimeError(
            "InputNoise(relative=True) needs at least two samples to estimate each feature's standard deviation; "
            "the first batch had one. Use a batch size of 2 or more."
        )
    std = callback._std_cache[(path, call)] = stats.std()
    return std
