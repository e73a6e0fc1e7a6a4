"""Shared machinery of the callbacks that act on the target argument of the model's loss module.

:class:`LossTargetCallback` finds the loss module held by the LightningModule (an instance of
``torch.nn.modules.loss._Loss`` such as ``nn.CrossEntropyLoss``, or a module named by ``loss=``), installs a
forward pre-hook on it, and lets subclasses replace the target argument (the second positional argument, or
the keyword of the second parameter of ``forward``) with a noisy copy. The batch the user's code holds and the
dataset are never written to: the hook hands the loss a new tensor.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import lightning.pytorch as pl
from torch import nn
from torch.nn.modules.loss import _Loss

from lightning_noise._callback import NoiseCallback, Stage
from lightning_noise._checks import check_name
from lightning_noise._hooks import KeyedDraws, NoiseHook
from lightning_noise._modules import describe_submodules, get_submodule, named_modules
from lightning_noise.schedules import ScheduleLike

# Losses whose targets are class indices or binary/probability labels, and losses whose targets are continuous.
CLASSIFICATION_LOSSES: tuple[type[nn.Module], ...] = (
    nn.CrossEntropyLoss,
    nn.NLLLoss,
    nn.BCELoss,
    nn.BCEWithLogitsLoss,
    nn.MultiLabelSoftMarginLoss,
    nn.MultiMarginLoss,
    nn.MultiLabelMarginLoss,
    nn.SoftMarginLoss,
    nn.LinearCrossEntropyLoss,
)
REGRESSION_LOSSES: tuple[type[nn.Module], ...] = (
    nn.MSELoss,
    nn.L1Loss,
    nn.HuberLoss,
    nn.SmoothL1Loss,
    nn.GaussianNLLLoss,
    nn.PoissonNLLLoss,
)


def is_builtin_loss(module: nn.Module) -> bool:
    """Whether ``module``'s class is one of PyTorch's own losses (not a user subclass)."""
    return type(module).__module__.startswith("torch.nn")


def find_loss_module(root: nn.Module, loss: str | None, owner: str) -> tuple[str, nn.Module]:
    """The loss module whose targets get noise: ``root.<loss>`` when named, else the only ``_Loss`` submodule.

    Raises:
        ValueError: ``loss`` names no submodule, or ``loss`` is None and ``root`` holds no loss module or several;
            the message lists the candidates.
    """
    if loss is not None:
        return loss, get_submodule(root, loss, "loss")
    found = [(name, module) for name, module in named_modules(root) if isinstance(module, _Loss)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(
            f"{owner} found no loss module in {type(root).__name__}: it hooks a torch.nn loss held as an attribute "
            "(an instance of torch.nn.modules.loss._Loss, e.g. `self.loss = nn.CrossEntropyLoss()` called in "
            "training_step), and a functional loss such as F.cross_entropy cannot be hooked. Hold the loss as a "
            "module, or pass loss='<attribute path>' to name a custom loss module. Submodules: "
            f"{describe_submodules(root)}."
        )
    names = ", ".join(f"{name!r} ({type(module).__name__})" for name, module in found)
    raise ValueError(
        f"{owner} found several loss modules in {type(root).__name__}: {names}. Pass loss='<name>' to choose the "
        "one whose targets get noise."
    )


def forward_argument_names(module: nn.Module) -> tuple[str, str]:
    """Names of the first two parameters of ``module.forward`` (input and target)."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    try:
        parameters = [p.name for p in inspect.signature(module.forward).parameters.values() if p.kind in kinds]
    except (TypeError, ValueError):  # no introspectable signature: assume PyTorch's names
        parameters = ["input", "target"]
    if len(parameters) < 2:
        raise ValueError(
            f"The loss module {type(module).__name__} must take (input, target) as its first two arguments; its "
            f"forward takes {parameters}."
        )
    return parameters[0], parameters[1]


class LossTargetCallback(KeyedDraws, NoiseCallback):
    """Base of :class:`~lightning_noise.LabelNoise` and :class:`~lightning_noise.TargetNoise`. Not used directly.

    Subclasses implement ``_check_loss`` (compatibility, at ``setup``) and ``_noisy_target`` (at each call with
    noise on); both see the loss module.
    """

    def __init__(
        self,
        *,
        loss: str | None,
        name: str,
        amounts: Mapping[str, ScheduleLike],
        stages: Stage | Iterable[Stage],
        seed: int | None,
        unit: Literal["step", "epoch"],
        log_amounts: bool,
    ) -> None:
        check_name(loss, "loss", none=True, what=" (the attribute path of the loss module, e.g. 'loss')")
        super().__init__(name=name, amounts=amounts, stages=stages, seed=seed, unit=unit, log_amounts=log_amounts)
        self.loss = loss
        self._loss_name = ""
        self._argument_names = ("input", "target")

    def _state_key_fields(self) -> dict[str, Any]:
        return {"loss": self.loss}

    # ---------------------------------------------------------------------------------------------- subclass API
    def _check_loss(self, name: str, module: nn.Module) -> None:
        """Raise when the loss module cannot take this callback's targets."""

    def _check_call(self, module: nn.Module, input: Any, target: Any) -> None:
        """Raise when a call's target cannot take this callback's noise; run at every call, in every stage, so a
        mismatch surfaces at the first call (usually the sanity check) rather than at the first noisy batch."""

    def _noisy_target(self, module: nn.Module, input: Any, target: Any, site: int, call: int) -> Any:
        """Return the target the loss should see (``target`` itself for no change). Never modify it in place.
        Draws are keyed by ``(site, call)`` (see :class:`~lightning_noise._hooks.KeyedDraws`)."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------- hooks
    def _attach(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        name, module = find_loss_module(pl_module, self.loss, type(self).__name__)
        self._check_loss(name, module)
        self._argument_names = forward_argument_names(module)
        self._loss_name = name
        self._hook(module, "_pre_hook", name, pre=True, with_kwargs=True)

    def _detach(self) -> None:
        self._remove_hooks()

    def _pre_hook(self, hook: NoiseHook, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        self._calls = 1
        input_name, target_name = self._argument_names
        input = args[0] if args else kwargs.get(input_name)
        if len(args) > 1:
            target = args[1]
        elif target_name in kwargs:
            target = kwargs[target_name]
        else:
            raise TypeError(
                f"{type(self).__name__} could not find the target in the call of the loss module {self._loss_name!r} "
                f"({type(module).__name__}): pass it as the second positional argument or as `{target_name}=`."
            )
        self._check_call(module, input, target)
        if not self._noise_on(hook, module):
            return None
        new_target = self._noisy_target(module, input, target, hook.site, self._call_index(hook.site))
        if new_target is target:
            return None
        if len(args) > 1:
            return (args[0], new_target, *args[2:]), kwargs
        return args, {**kwargs, target_name: new_target}

    def _no_call_message(self) -> str:
        return (
            f"{type(self).__name__} hooks the loss module {self._loss_name!r}, but it was not called during the first "
            "training batch, so no noise would be added. Call it in training_step (self.loss(logits, y)) instead of "
            "a functional loss, or pass loss='<name>' for the loss module that training_step uses."
        )
