"""ActivationNoise: noise on the outputs (or inputs) of selected submodules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
from torch import Tensor, nn

from lightning_noise._callback import NoiseCallback, Stage
from lightning_noise._checks import check_choice
from lightning_noise._hooks import NoiseHook
from lightning_noise._kind_noise import KindNoise
from lightning_noise._modules import check_patterns, select_modules
from lightning_noise._structures import describe_dtypes, map_floating, tensors_in
from lightning_noise._table_sampling import DEFAULT_TABLE_SIZE, Sampler
from lightning_noise.schedules import ScheduleLike


class ActivationNoise(KindNoise, NoiseCallback):
    r"""Add noise to the outputs (or inputs) of every submodule matched by name glob or class name.

    Forward hooks on the matched submodules replace the floating-point tensors of their output (all of them,
    for modules returning tuples such as ``nn.LSTM``) with noisy copies; gradients flow through the noise as
    through an identity. With ``where="input"``, forward pre-hooks noise the floating-point tensors among the
    positional *and keyword* arguments (``m(x)`` and ``m(input=x)`` alike). Noise is drawn per element at every
    call (an ``LSTMCell`` called once per time step gets fresh noise at each step); each draw is a pure function
    of (seed, rank, batch counter, module, call index), so a forward recomputed by activation checkpointing sees
    exactly the noise of the original forward, and ``torch.compile`` traces the draw into its graph (see
    docs/compile-and-scale.md). It is on only in training batches with the module in train mode, unless
    ``stages`` says otherwise; a matched module that stays in eval mode through the first training epoch gets a
    warning. Under mixed precision the noise is computed in float32 and the noisy activation keeps its dtype.

    A reused instance: a new fit (on a Trainer that has not trained yet) starts again from batch 0, so it draws
    what a fresh instance with the same seed draws; a fit with ``ckpt_path`` continues the checkpoint's stream
    (the rule: :class:`~lightning_noise._callback.NoiseCallback`, docs/arguments-and-state.md).

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
        ValueError: in ``__init__``, bad arguments, or a NaN or infinite amount or schedule value; at ``setup``, a
            pattern that matches no submodule (the message lists the submodules) or another noise callback with
            the same state key; at the step a plain callable returns a NaN or infinite amount.
        TypeError: in ``__init__``, an argument of the wrong type, e.g. ``where=1`` (strings are never read as
            bools or numbers); at its first call, a matched module's output (or input) that holds no
            floating-point tensor, e.g. the input of an ``nn.Embedding``.
        RuntimeError: none of the matched modules ran during the first training batch.

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
        stages: Stage | Iterable[Stage] = ("train",),
        seed: int | None = None,
        unit: Literal["step", "epoch"] = "step",
        sampler: Sampler = "exact",
        table_size: int = DEFAULT_TABLE_SIZE,
        log_amounts: bool = True,
        name: str = "activation",
    ) -> None:
        self.modules = check_patterns(modules, "modules")
        self.where = check_choice(where, "where", ("output", "input"))
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
        self._matched: list[str] = []

    def _state_key_fields(self) -> dict[str, Any]:
        return {"kind": self.kind.name, "modules": self.modules, "where": self.where}

    @property
    def matched_modules(self) -> list[str]:
        """Qualified names of the modules that carry a hook (filled at ``setup``)."""
        return list(self._matched)

    # ---------------------------------------------------------------------------------------------- hooks
    def _attach(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        selected = select_modules(pl_module, self.modules, "modules")
        self._matched = [name for name, _ in selected]
        for name, module in selected:
            if self.where == "output":
                self._hook(module, "_output_hook", name, pre=False, with_kwargs=False)
            else:
                self._hook(module, "_input_hook", name, pre=True, with_kwargs=True)

    def _detach(self) -> None:
        self._remove_hooks()

    def _output_hook(self, hook: NoiseHook, module: nn.Module, args: tuple, output: Any) -> Any:
        self._calls = 1
        self._validate(hook, module, output)
        if not self._noise_on(hook, module):
            return None
        call = self._call_index(hook.site)
        if isinstance(output, Tensor):
            return self._noise(output, hook.site, call, 0)
        return map_floating(output, lambda t, i: self._noise(t, hook.site, call, i))

    def _input_hook(self, hook: NoiseHook, module: nn.Module, args: tuple, kwargs: dict) -> Any:
        self._calls = 1
        self._validate(hook, module, (args, kwargs))
        if not self._noise_on(hook, module):
            return None
        call = self._call_index(hook.site)
        return map_floating((args, kwargs), lambda t, i: self._noise(t, hook.site, call, i))

    def _noise(self, x: Tensor, site: int, call: int, index: int) -> Tensor:
        if not self._amount_active(self.amount_name):
            return x
        return self._draw(x, self._amount_value(self.amount_name), site, call, index)

    def _validate(self, hook: NoiseHook, module: nn.Module, data: Any) -> None:
        """At the first call of each hook (in any stage): the data holds a floating-point tensor to noise."""
        if hook.validated:
            return
        tensors = tensors_in(data)
        if not any(t.is_floating_point() for t in tensors):
            side = "output" if self.where == "output" else "input (positional and keyword arguments)"
            if not tensors:
                cause = f"the call passed no tensor at all (got {data!r:.200})"
            else:
                cause = f"it holds no floating-point tensor (got {describe_dtypes(data)})"
            hint = (
                "Integer tensors such as token ids cannot take noise: noise the embedding's output instead "
                "(where='output')."
                if tensors and self.where == "input"
                else "Choose a module whose " + ("output" if self.where == "output" else "input") + " is a "
                "floating-point tensor."
            )
            raise TypeError(
                f"ActivationNoise matched {hook.name!r} ({type(module).__name__}), but {self.kind.name} noise cannot "
                f"be added to its {side}: {cause}. {hint}"
            )
        hook.validated = True

    def _no_call_message(self) -> str:
        return (
            f"ActivationNoise hooks {self._matched}, but none of them ran during the first training batch, so no "
            "noise would be added. Check that `modules` names layers that training_step actually uses."
        )
