"""LabelNoise: label smoothing and label flipping on the targets the loss module sees."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_noise import _counter_rng
from lightning_noise._amounts import may_exceed_zero
from lightning_noise._callback import Stage
from lightning_noise._checks import check_choice, check_unit_interval
from lightning_noise._loss_hook import REGRESSION_LOSSES, LossTargetCallback, is_builtin_loss
from lightning_noise.functional.labels import (
    SmoothingStyle,
    flip_binary_from_uniform,
    flip_labels_from_uniform,
    smooth_labels,
    smooth_probabilities,
    transition_dtype,
    transition_labels_from_uniform,
)
from lightning_noise.schedules import ScheduleLike

_BINARY_LOSSES = (nn.BCEWithLogitsLoss, nn.BCELoss, nn.MultiLabelSoftMarginLoss)
_INDEX_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)


def _check_transition(transition: Any) -> Tensor:
    given = repr(transition.tolist() if isinstance(transition, Tensor) else transition)
    given = given if len(given) <= 200 else given[:200] + "..."
    try:
        matrix = torch.as_tensor(transition, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"`transition` must be a k x k row-stochastic matrix, got {given}.") from None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(
            f"`transition` must be a square k x k matrix with k >= 2, got {given} (shape {tuple(matrix.shape)})."
        )
    if not torch.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError(f"`transition` entries must be finite probabilities >= 0, got {given}.")
    sums = matrix.sum(dim=1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-6, rtol=0):
        raise ValueError(
            f"`transition` must be row-stochastic (each row P(noisy = j | true = i) sums to 1), got {given} with row "
            f"sums {[round(s, 6) for s in sums.tolist()]}."
        )
    return matrix


# --------------------------------------------------------------------------------------------------- callback
class LabelNoise(LossTargetCallback):
    r"""Label smoothing and label flipping, applied to the targets the loss module sees while training.

    A forward pre-hook on the LightningModule's loss module (``self.loss = nn.CrossEntropyLoss()``; found
    automatically when it holds exactly one ``torch.nn`` loss, else named with ``loss=``) replaces the target
    argument with a new tensor. The dataset and the batch held by ``training_step`` are never modified. The
    number of classes ``k`` is read from the logits (class dimension 1, or 0 for an unbatched input).

    Smoothing turns class indices into probability targets (cross-entropy accepts them):

    - ``style="book"`` (default, Goodfellow et al., *Deep Learning*, 7.5.1): ``1 - eps`` for the true class,
      ``eps / (k - 1)`` for every other class.
    - ``style="uniform"`` (Szegedy et al.; PyTorch's ``CrossEntropyLoss(label_smoothing=a)``):
      ``(1 - a) * onehot + a / k``.

    The two agree when ``eps_book = eps_torch * (k - 1) / k``; with that conversion the loss equals
    ``nn.CrossEntropyLoss(label_smoothing=eps_torch)`` to float precision, class weights and ``ignore_index``
    included (for ``reduction="mean"`` the soft targets are rescaled so that the mean is taken over the
    non-ignored, class-weighted positions exactly as PyTorch does for index targets; ignored positions get an
    all-zero row). Binary targets of ``BCEWithLogitsLoss``/``BCELoss`` are smoothed as ``y (1 - eps) + (1 - y) eps``
    (book) or ``y (1 - eps) + eps / 2`` (uniform). Probability targets given to ``CrossEntropyLoss`` are
    smoothed with the same formulas elementwise.

    Flipping replaces each label, with probability ``flip``, by a class drawn uniformly among the ``k - 1``
    *other* classes (binary targets: ``y -> 1 - y``). ``transition`` gives class-dependent noise instead: the
    full channel ``T[i, j] = P(noisy = j | true = i)``, row-stochastic, its diagonal the probability of keeping a
    label (for binary targets a 2 x 2 matrix over {0, 1}). Positions equal to the loss's ``ignore_index`` are
    never flipped. When both are on, labels are flipped first and the flipped labels are smoothed.

    Draws are per label and per call, each a pure function of (seed, rank, batch counter, call index):
    different on each DDP rank, identical on a resumed run; under ``torch.compile`` they are traced into the
    graph and a scheduled amount is read from a tensor, so it does not recompile (docs/compile-and-scale.md).
    Noise is on only in training batches, unless ``stages`` says otherwise; zero amounts pass the target
    through unchanged (class indices stay indices), except under ``torch.compile`` when a smoothing schedule
    reaches 0 during the run: there it gives one-hot probabilities (the same loss), so the graph does not change.

    A reused instance: a new fit (on a Trainer that has not trained yet) starts again from batch 0, so it draws
    what a fresh instance with the same seed draws; a fit with ``ckpt_path`` continues the checkpoint's stream
    (the rule: :class:`~lightning_noise._callback.NoiseCallback`, docs/arguments-and-state.md).

    Args:
        smoothing: ``eps`` in [0, 1), a float or a schedule.
        flip: probability of flipping each label, in [0, 1), a float or a schedule. Not with ``transition``.
            At least one of ``smoothing``, ``flip`` and ``transition`` must be given (an amount left out is 0).
        style: ``"book"`` or ``"uniform"`` smoothing (see above).
        transition: a k x k row-stochastic matrix (tensor or nested lists) for class-dependent label noise.
        loss: attribute path of the loss module (``"loss"``, ``"criteria.ce"``); default: the only
            ``torch.nn.modules.loss._Loss`` submodule. A custom loss module named here is treated like
            ``CrossEntropyLoss`` when its target is integer (it must then accept probability targets if
            ``smoothing`` is used) and like ``BCEWithLogitsLoss`` when its target is floating.
        stages: where noise is on: one stage or a list of them, among ``"train"``, ``"validate"``, ``"test"``,
            ``"predict"`` (a single name is a list of one, as for ``modules``: ``stages="test"``).
        seed: base seed; default the seed given to ``seed_everything``, else fresh entropy.
        unit: schedules count optimizer steps (``"step"``) or epochs (``"epoch"``).
        log_amounts: log ``noise/{name}_smoothing`` and ``noise/{name}_flip`` every ``log_every_n_steps`` steps.
        name: name used in logged metrics and in the checkpoint state key.

    Raises:
        ValueError: in ``__init__``, no amount at all, an amount outside [0, 1) or a NaN or infinite schedule
            value, an unknown ``style``, a ``transition`` that is not a row-stochastic k x k matrix or given
            together with ``flip``; at ``setup``, no loss module or several, a regression or unsupported loss,
            ``smoothing`` with ``NLLLoss`` (it takes class indices only, not probabilities) or with a
            ``CrossEntropyLoss`` that already has ``label_smoothing``, or another noise callback with the same state
            key; at the first call of the loss, fewer than 2 classes, targets whose shape does not fit the logits, or a
            ``transition`` whose size is not the number of classes; at the step a plain callable returns a bad amount.
        TypeError: in ``__init__``, an argument of the wrong type, e.g. ``log_amounts="false"`` (strings are never
            read as bools or numbers); at the first call, flipping probability targets, or non-floating targets
            for a binary loss.
        RuntimeError: the loss module was not called during the first training batch.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_noise import LabelNoise, schedules
        >>> trainer = Trainer(callbacks=[LabelNoise(smoothing=0.1)])                  # 0.9 / 0.1/(k-1)
        >>> trainer = Trainer(callbacks=[LabelNoise(smoothing=0.1, style="uniform")])  # as label_smoothing=0.1
        >>> trainer = Trainer(callbacks=[LabelNoise(flip=0.05)])
        >>> trainer = Trainer(callbacks=[LabelNoise(smoothing=schedules.Linear(0.2, 0.0, steps=1000))])
        >>> trainer = Trainer(callbacks=[LabelNoise(transition=[[0.9, 0.1], [0.3, 0.7]])])
    """

    def __init__(
        self,
        smoothing: ScheduleLike | None = None,
        *,
        flip: ScheduleLike | None = None,
        style: SmoothingStyle = "book",
        transition: Tensor | Sequence[Sequence[float]] | None = None,
        loss: str | None = None,
        stages: Stage | Iterable[Stage] = ("train",),
        seed: int | None = None,
        unit: Literal["step", "epoch"] = "step",
        log_amounts: bool = True,
        name: str = "label",
    ) -> None:
        check_choice(style, "style", ("book", "uniform"))
        amounts: dict[str, ScheduleLike] = {"smoothing": 0.0 if smoothing is None else smoothing}
        if transition is None:
            amounts["flip"] = 0.0 if flip is None else flip
        elif flip is not None and not (isinstance(flip, (int, float)) and flip == 0):
            raise ValueError(
                f"`flip` and `transition` are exclusive: the transition matrix already sets each class's flip rate "
                f"(1 - T[i, i]); got flip={flip!r}."
            )
        super().__init__(
            loss=loss, name=name, amounts=amounts, stages=stages, seed=seed, unit=unit, log_amounts=log_amounts
        )
        for argument in amounts:
            self.add_amount_check(argument, check_unit_interval)
        self.style: SmoothingStyle = style
        self.transition = None if transition is None else _check_transition(transition)
        self._transition_cache: dict[torch.device, Tensor] = {}
        self._format = "index"
        if smoothing is None and flip is None and transition is None:  # last: other argument errors come first
            raise ValueError(
                "LabelNoise needs an amount: `smoothing=` (e.g. 0.1), `flip=` (e.g. 0.05) or `transition=` (a k x k "
                "matrix); got none, which would train without label noise. Pass smoothing=0.0 to mean no noise."
            )

    _TRANSIENT_EXTRA = {"_transition_cache": dict}

    def _extra_key_fields(self) -> dict[str, Any]:
        # The matrix enters as its size and a checksum of its float64 bytes: stable, and short for any k.
        matrix = self.transition
        transition = None
        if matrix is not None:
            transition = f"{len(matrix)}x{len(matrix)}:{zlib.crc32(matrix.numpy().tobytes()):08x}"
        return {"style": self.style, "transition": transition}

    # ---------------------------------------------------------------------------------------------- checks
    @property
    def _may_smooth(self) -> bool:
        return may_exceed_zero(self.schedules["smoothing"])

    @property
    def _may_flip(self) -> bool:
        return self.transition is not None or may_exceed_zero(self.schedules["flip"])

    def _check_loss(self, name: str, module: nn.Module) -> None:
        kind = type(module).__name__
        if isinstance(module, REGRESSION_LOSSES):
            raise ValueError(
                f"LabelNoise needs a classification loss, but the loss module {name!r} is {kind}, whose targets are "
                "continuous. Use TargetNoise(std=...) for regression targets."
            )
        if isinstance(module, _INDEX_LOSSES):
            self._format = "index"
        elif isinstance(module, _BINARY_LOSSES):
            self._format = "binary"
            if self.transition is not None and self.transition.shape[0] != 2:
                raise ValueError(
                    f"`transition` for the binary loss {kind} must be 2 x 2 (over targets 0 and 1), got "
                    f"{tuple(self.transition.shape)}."
                )
        elif is_builtin_loss(module):
            raise ValueError(
                f"LabelNoise does not support the loss module {name!r} ({kind}). Supported: CrossEntropyLoss, "
                "NLLLoss (flipping only), BCEWithLogitsLoss, BCELoss, MultiLabelSoftMarginLoss, or a custom loss "
                "module named with loss=..."
            )
        else:
            self._format = "auto"
        if self._may_smooth and isinstance(module, nn.NLLLoss):
            raise ValueError(
                f"LabelNoise smoothing needs probability targets, which NLLLoss ({name!r}) cannot take: it reads one "
                "class index per sample. Use nn.CrossEntropyLoss on logits (instead of NLLLoss on log-probabilities), "
                "or use flip= only."
            )
        if self._may_smooth and getattr(module, "label_smoothing", 0.0) > 0:
            raise ValueError(
                f"The loss module {name!r} already smooths labels (label_smoothing={module.label_smoothing}); "
                "LabelNoise smoothing would smooth them twice. Set one of the two to 0."
            )

    def _target_format(self, target: Tensor) -> str:
        if self._format == "auto":
            return "index" if not target.is_floating_point() else "binary"
        if self._format == "index" and target.is_floating_point():
            return "probabilities"
        return self._format

    def _check_call(self, module: nn.Module, input: Any, target: Any) -> None:
        if not isinstance(input, Tensor) or not isinstance(target, Tensor):
            raise TypeError(
                f"LabelNoise expects tensor input and target for the loss module {self._loss_name!r}, got "
                f"{type(input).__name__} and {type(target).__name__}."
            )
        form = self._target_format(target)
        if form == "binary":
            if not target.is_floating_point():
                raise TypeError(
                    f"LabelNoise: the loss module {self._loss_name!r} ({type(module).__name__}) takes floating "
                    f"binary targets, got dtype {target.dtype}."
                )
            return
        class_dim = 1 if input.ndim > 1 else 0
        k = input.shape[class_dim] if input.ndim else 0
        expected = tuple(input.shape)
        if form != "probabilities":
            expected = expected[:class_dim] + expected[class_dim + 1 :]
        if tuple(target.shape) != expected:
            raise ValueError(
                f"LabelNoise: targets of shape {tuple(target.shape)} do not fit logits of shape {tuple(input.shape)} "
                f"(classes along dim {class_dim}); expected targets of shape {expected}."
            )
        if k < 2:
            raise ValueError(f"LabelNoise needs at least 2 classes, got logits of shape {tuple(input.shape)}.")
        if form == "probabilities" and self._may_flip:
            raise TypeError(
                "LabelNoise can flip class indices only, but the loss received probability targets "
                f"(dtype {target.dtype}). Pass class indices, or use smoothing alone."
            )
        if self.transition is not None and self.transition.shape[0] != k:
            raise ValueError(
                f"`transition` is {self.transition.shape[0]} x {self.transition.shape[0]}, but the logits have k = {k} "
                "classes."
            )

    # ---------------------------------------------------------------------------------------------- noise
    def _uniform(self, target: Tensor, site: int, call: int, slot: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """Uniform numbers shaped like ``target``, keyed by (batch, site, call, slot): from the seeded generator in
        eager mode, from the counter-based generator under ``torch.compile``."""
        if torch.compiler.is_compiling():
            key = _counter_rng.derive_key(self._key, site, call, slot)
            return _counter_rng.uniform(target.shape, key, target.device).to(dtype)
        generator = self._seeded_generator(target.device, self._draw_seed(site, call, slot))
        return torch.rand(target.shape, generator=generator, device=target.device, dtype=dtype)

    def _noisy_target(self, module: nn.Module, input: Tensor, target: Tensor, site: int, call: int) -> Tensor:
        smooth = self._amount_active("smoothing")
        eps = self._amount_value("smoothing")
        form = self._target_format(target)
        if form == "binary":
            return self._binary(target, smooth, eps, site, call)
        class_dim = 1 if input.ndim > 1 else 0
        k = input.shape[class_dim]
        if form == "probabilities":
            return target if not smooth else smooth_probabilities(target, k, eps, style=self.style)
        ignore_index = getattr(module, "ignore_index", None)
        if self.transition is not None:
            u = self._uniform(target, site, call, 0, transition_dtype(target.device))
            target = transition_labels_from_uniform(target, self._transition_on(target), u, ignore_index)
        elif self._amount_active("flip"):
            u, v = self._uniform(target, site, call, 0), self._uniform(target, site, call, 1)
            target = flip_labels_from_uniform(target, k, self._amount_value("flip"), u, v, ignore_index)
        if not smooth:
            return target
        # At least float32, so 1 - eps is not rounded to bfloat16; cross-entropy promotes bf16/fp16 logits to match.
        dtype = torch.promote_types(input.dtype, torch.float32) if input.is_floating_point() else torch.float32
        soft = smooth_labels(
            target, k, eps, style=self.style, class_dim=class_dim, ignore_index=ignore_index, dtype=dtype
        )
        if isinstance(module, nn.CrossEntropyLoss) and module.reduction == "mean":
            soft = soft * _index_mean_correction(target, module.weight, ignore_index, dtype)
        return soft

    def _transition_on(self, target: Tensor) -> Tensor:
        """The transition matrix on ``target``'s device, copied there once rather than at every call."""
        cached = self._transition_cache.get(target.device)
        if cached is None:  # the ignore: called only when self.transition is set
            cached = self._transition_cache[target.device] = self.transition.to(target.device)  # type: ignore[union-attr]
        return cached

    def _binary(self, target: Tensor, smooth: bool, eps: float | Tensor, site: int, call: int) -> Tensor:
        if self.transition is not None:
            t = self._transition_on(target).to(target.dtype)
            u = self._uniform(target, site, call, 0)
            target = flip_binary_from_uniform(target, torch.where(target >= 0.5, t[1, 0], t[0, 1]), u)
        elif self._amount_active("flip"):
            target = flip_binary_from_uniform(target, self._amount_value("flip"), self._uniform(target, site, call, 0))
        return target if not smooth else smooth_probabilities(target, 2, eps, style=self.style)


def _index_mean_correction(
    target: Tensor, weight: Tensor | None, ignore_index: int | None, dtype: torch.dtype
) -> Tensor:
    """Factor that turns the probability-target mean (over all N positions) into the index-target mean.

    ``CrossEntropyLoss`` divides by ``N`` for probability targets but by ``sum(weight[y])`` over non-ignored
    positions for index targets; multiplying the soft targets by ``N / sum(weight[y])`` restores the latter. It
    is exactly 1 without class weights and ignored positions. All tensor operations: no host synchronization.
    """
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    if weight is None:
        total = valid.sum().to(dtype)
    else:
        total = (weight.to(dtype)[target.masked_fill(~valid, 0).long()] * valid).sum()
    return torch.where(total > 0, target.numel() / total, torch.zeros_like(total))
