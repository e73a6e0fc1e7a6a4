"""ActivationNoise: noise on the outputs (or inputs) of selected submodules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from lightning_noise._base import NoiseCallback, Stage, check_kind_kwargs, resolve_kind_amount
from lightning_noise._checks import check_choice
from lightning_noise._flat import DEFAULT_TABLE_SIZE, Sampler, TableSampling, add_table_noise
from lightning_noise._modules import check_patterns, select_modules
from lightning_noise._structures import describe_dtypes, map_floating, tensors_in
from lightning_noise.functional import NoiseKind
from lightning_noise.schedules import ScheduleLike


class ActivationNoise(TableSampling, NoiseCallback):
    r"""Add noise to the outputs (or inputs) of every submodule matched by name glob or class name.

    Forward hooks on the matched submodules replace the floating-point tensors of their output (all of them,
    for modules returning tuples such as ``nn.LSTM``) with noisy copies; gradients flow through the noise as
    through an identity. Noise is drawn per element at every call (an ``LSTMCell`` called once per time step
    gets fresh noise at each step), from the callback's generator re-seeded per batch from (seed, rank, batch
    counter). It is on only in training batches with the module in train mode, unless ``stages`` says
    otherwise. Under mixed precision the noise has the activation's dtype.

    Args:
        std: standard deviation, a float or a schedule (for ``gaussian``, ``uniform``, ``multiplicative``).
        modules: globs over qualified module names (``"encoder.*"``, ``"lstm"``) or class names (``"ReLU"``).
            Each pattern must match at least one submodule; every matched submodule gets a hook.
        kind: a registered noise kind (see :class:`~lightning_noise.InputNoise`).
        p: fraction of elements, for ``salt_and_pepper`` and ``dropout``.
        snr_db: signal-to-noise ratio in dB, for ``snr``.
        amount: the amount under its generic name, for kinds registered by users.
        kind_kwargs: extra keyword arguments of the noise function.
        where: ``"output"`` (default) or ``"input"`` of each matched module.
        stages: where noise is on: any of ``"train"``, ``"validate"``, ``"test"``, ``"predict"``.
        seed: base seed; default the seed given to ``seed_everything``, else fresh entropy.
        unit: schedules count optimizer steps (``"step"``) or epochs (``"epoch"``).
        sampler: ``"exact"`` (fresh draws from the generator, default) or ``"table"``: Gaussian numbers read from
            two windows of a precomputed table at keyed offsets (``gaussian`` and ``multiplicative`` kinds only),
            several times cheaper on CPU; within a draw the values are independent, across draws they reuse the
            table (see docs/weight-and-gradient-noise.md).
        table_size: entries of the noise table (grown to twice the largest tensor when smaller).
        log_amounts: log the current amount as ``noise/{name}_{std|p|snr_db}`` every ``log_every_n_steps``.
        name: name used in logged metrics and in the checkpoint state key.

    Raises:
        ValueError: bad arguments (in ``__init__``); a pattern that matches no submodule (at ``setup``; the
            message lists the submodules).
        TypeError: a matched module's output (or input) holds no floating-point tensor, e.g. the input of an
            ``nn.Embedding`` (at its first call).
        RuntimeError: none of the matched modules ran during the first training batch.
        TypeError: an argument of the wrong type, e.g. ``where=1``; strings are never read as bools or numbers
            (in ``__init__``).
        ValueError: also a NaN or infinite amount or schedule value (in ``__init__``, or at the step a plain
            callable returns one), and another noise callback with the same state key (at ``setup``).

    Example::

        >>> from lightning import Trainer
        >>> from lightning_noise import ActivationNoise
        >>> trainer = Trainer(callbacks=[ActivationNoise(std=0.1, modules=["encoder.*", "ReLU"])])
        >>> trainer = Trainer(callbacks=[ActivationNoise(std=0.5, modules=["Linear"], kind="multiplicative")])
        >>> trainer = Trainer(callbacks=[ActivationNoise(std=0.1, modules=["embedding"])])  # noisy embeddings
    """

    def __init__(
        self,
        std: ScheduleLike | None = None,
        *,
        modules: str | Sequence[str],
        kind: str = "gaussian",
        p: ScheduleLike | None = None,
        snr_db: ScheduleLike | None = None,
        amount: ScheduleLike | None = None,
        kind_kwargs: Mapping[str, Any] | None = None,
        where: Literal["output", "input"] = "output",
        stages: Iterable[Stage] = ("train",),
        seed: int | None = None,
        unit: Literal["step", "epoch"] = "step",
        sampler: Sampler = "exact",
        table_size: int = DEFAULT_TABLE_SIZE,
        log_amounts: bool = True,
        name: str = "activation",
    ) -> None:
        noise_kind, argument, value = resolve_kind_amount(
            type(self).__name__, kind, std=std, p=p, snr_db=snr_db, amount=amount
        )
        self.modules = check_patterns(modules, "modules")
        self.where = check_choice(where, "where", ("output", "input"))
        super().__init__(
            name=name, amounts={argument: value}, stages=stages, seed=seed, unit=unit, log_amounts=log_amounts
        )
        self.check_amount(argument, noise_kind.check_amount, noise_kind.zero)
        self._init_sampler(sampler, table_size, noise_kind.name)
        self.kind: NoiseKind = noise_kind
        self.amount_name = argument
        self.kind_kwargs = check_kind_kwargs(type(self).__name__, noise_kind, kind_kwargs)
        self._handles: list[RemovableHandle] = []
        self._matched: list[str] = []
        self._validated: set[str] = set()

    def _state_key_fields(self) -> dict[str, Any]:
        return {"kind": self.kind.name, "modules": self.modules, "where": self.where}

    def _extra_key_fields(self) -> dict[str, Any]:
        return {"kind_kwargs": tuple(sorted(self.kind_kwargs.items()))}

    @property
    def matched_modules(self) -> list[str]:
        """Qualified names of the modules that carry a hook (filled at ``setup``)."""
        return list(self._matched)

    # ---------------------------------------------------------------------------------------------- hooks
    def _attach(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        selected = select_modules(pl_module, self.modules, "modules")
        self._matched = [name for name, _ in selected]
        self._validated = set()
        for name, module in selected:
            if self.where == "output":
                handle = module.register_forward_hook(self._make_output_hook(name), prepend=True)
            else:
                handle = module.register_forward_pre_hook(self._make_input_hook(name), prepend=True)
            self._handles.append(handle)

    def _detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_output_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> Any:
            self._calls += 1
            if name not in self._validated:
                self._validate(name, module, output)
            if not self._is_on(module):
                return None
            if isinstance(output, Tensor):
                return self._noise(output, 0)
            return map_floating(output, self._noise)

        return hook

    def _make_input_hook(self, name: str):
        def hook(module: nn.Module, args: tuple) -> Any:
            self._calls += 1
            if name not in self._validated:
                self._validate(name, module, args)
            if not self._is_on(module):
                return None
            return map_floating(args, self._noise)

        return hook

    def _noise(self, x: Tensor, index: int) -> Tensor:
        amount = self.amounts[self.amount_name]
        table = self._noise_table()
        if table is not None:
            return add_table_noise(x, amount, table, self.draw_key(), multiplicative=self.kind.name == "multiplicative")
        return self.kind.fn(x, amount, self.generator(x.device), **self.kind_kwargs)

    def _validate(self, name: str, module: nn.Module, data: Any) -> None:
        if not any(t.is_floating_point() for t in tensors_in(data)):
            raise TypeError(
                f"ActivationNoise matched {name!r} ({type(module).__name__}), whose {self.where} holds no "
                f"floating-point tensor (got {describe_dtypes(data)}), so {self.kind.name} noise cannot be added. "
                + (
                    "For token ids, noise the embedding's output instead (where='output')."
                    if self.where == "input"
                    else "Choose a module with floating-point outputs."
                )
            )
        self._validated.add(name)

    def _no_call_message(self) -> str:
        return (
            f"ActivationNoise hooks {self._matched}, but none of them ran during the first training batch, so no "
            "noise would be added. Check that `modules` names layers that training_step actually uses."
        )
