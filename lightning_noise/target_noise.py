"""TargetNoise: jitter on the continuous targets a regression loss sees."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from torch import Tensor, nn

from lightning_noise._callback import Stage
from lightning_noise._kind_noise import KindNoise
from lightning_noise._loss_hook import CLASSIFICATION_LOSSES, LossTargetCallback
from lightning_noise.schedules import ScheduleLike


class TargetNoise(KindNoise, LossTargetCallback):
    r"""Add noise to the floating-point targets of a regression loss (MSE, L1, Huber, SmoothL1, ...) while training.

    A forward pre-hook on the LightningModule's loss module (``self.loss = nn.MSELoss()``; found automatically
    when it holds exactly one ``torch.nn`` loss, else named with ``loss=``) replaces the target argument (the
    second argument of the loss) with a noisy copy: ``y + std * N(0, 1)`` by default. The dataset and the batch
    held by ``training_step`` are never modified. Class labels are not targets for this callback: use
    :class:`~lightning_noise.LabelNoise` to smooth or flip them.

    Noise is drawn independently per target element at every call of the loss; each draw is a pure function of
    (seed, rank, batch counter, call index): different on each DDP rank, identical on a resumed run. Under
    ``torch.compile`` the draw is traced into the graph (see docs/compile-and-scale.md).
    It is on only in training batches, unless ``stages`` says otherwise.

    A reused instance: a new fit (on a Trainer that has not trained yet) starts again from batch 0, so it draws
    what a fresh instance with the same seed draws; a fit with ``ckpt_path`` continues the checkpoint's stream
    (the rule: :class:`~lightning_noise._callback.NoiseCallback`, docs/arguments-and-state.md).

    Args:
        std: standard deviation, a float or a schedule (for ``gaussian``, ``uniform``, ``multiplicative``).
        kind: a registered noise kind (``gaussian`` default, ``uniform``, ``multiplicative``, ``snr``, ... see
            :mod:`lightning_noise.functional`).
        p: fraction of elements, for ``salt_and_pepper`` and ``dropout``.
        snr_db: signal-to-noise ratio in dB, for ``snr``.
        amount: the amount under its generic name, for kinds registered by users.
        kind_kwargs: extra keyword arguments of the noise function.
        loss: attribute path of the loss module; default: the only ``torch.nn.modules.loss._Loss`` submodule.
        stages: where noise is on: one stage or a list of them, among ``"train"``, ``"validate"``, ``"test"``,
            ``"predict"`` (a single name is a list of one, as for ``modules``: ``stages="test"``).
        seed: base seed; default the seed given to ``seed_everything``, else fresh entropy.
        unit: schedules count optimizer steps (``"step"``) or epochs (``"epoch"``).
        log_amounts: log the current amount as ``noise/{name}_{std|p|snr_db}`` every ``log_every_n_steps`` steps.
        name: name used in logged metrics and in the checkpoint state key.

    Raises:
        ValueError: in ``__init__``, a bad amount or kind, or a NaN or infinite amount or schedule value; at
            ``setup``, no loss module or several, or another noise callback with the same state key; at the step
            a plain callable returns a NaN or infinite amount.
        TypeError: in ``__init__``, an argument of the wrong type, e.g. ``std="0.1"`` (strings are never read as
            bools or numbers); at ``setup``, a classification loss such as ``CrossEntropyLoss``, or at the first
            call of the loss, integer targets (both point to ``LabelNoise``).
        RuntimeError: the loss module was not called during the first training batch.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_noise import TargetNoise, schedules
        >>> trainer = Trainer(callbacks=[TargetNoise(std=0.05)])
        >>> trainer = Trainer(callbacks=[TargetNoise(std=schedules.Linear(0.1, 0.0, steps=500), loss="criterion")])
        >>> trainer = Trainer(callbacks=[TargetNoise(std=0.05, kind="multiplicative")])  # 5% relative jitter
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
        loss: str | None = None,
        stages: Stage | Iterable[Stage] = ("train",),
        seed: int | None = None,
        unit: Literal["step", "epoch"] = "step",
        log_amounts: bool = True,
        name: str = "target",
    ) -> None:
        super().__init__(
            kind=kind,
            std=std,
            p=p,
            snr_db=snr_db,
            amount=amount,
            kind_kwargs=kind_kwargs,
            loss=loss,
            name=name,
            stages=stages,
            seed=seed,
            unit=unit,
            log_amounts=log_amounts,
        )

    def _state_key_fields(self) -> dict[str, Any]:
        return {"loss": self.loss, "kind": self.kind.name}

    def _check_loss(self, name: str, module: nn.Module) -> None:
        if isinstance(module, CLASSIFICATION_LOSSES):
            raise TypeError(
                f"TargetNoise jitters continuous regression targets, but the loss module {name!r} is "
                f"{type(module).__name__}, whose targets are class labels. Use LabelNoise(smoothing=..., flip=...) "
                "for labels."
            )

    def _check_call(self, module: nn.Module, input: Any, target: Any) -> None:
        if not isinstance(target, Tensor) or not target.is_floating_point():
            got = f"dtype {target.dtype}" if isinstance(target, Tensor) else type(target).__name__
            raise TypeError(
                f"TargetNoise needs floating-point targets, but the loss module {self._loss_name!r} "
                f"({type(module).__name__}) received {got}. Integer targets are class labels: use "
                "LabelNoise(smoothing=..., flip=...) for them."
            )

    def _noisy_target(self, module: nn.Module, input: Any, target: Tensor, site: int, call: int) -> Tensor:
        if not self._amount_active(self.amount_name):
            return target
        return self._draw(target, self._amount_value(self.amount_name), site, call, 0)
