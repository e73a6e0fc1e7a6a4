"""Test-time corruptions: pure functions and the named severity ladders used by robustness evaluation.

Also importable as ``lightning_noise.corruptions`` (the public names in ``__all__``).

Two layers, like :mod:`lightning_noise.functional`:

* value-level functions ``gaussian_noise(x, std, generator)``, ``shot_noise(x, rate, generator)``,
  ``impulse_noise(x, p, generator)``, ``speckle_noise(x, std, generator)``: out of place, same shape, dtype and
  device as ``x``, clipped to ``clip`` (default ``(0, 1)``, images scaled to [0, 1]);
* :class:`Corruption`: a named ladder of levels, called as ``corruption(x, severity, generator)``, where
  severity ``0`` returns ``x`` itself and severity ``k`` applies level ``levels[k - 1]``.

Presets (:func:`get_corruption`):

=================== ============================================== ===========================================
name                definition                                     levels (severity 1..5)
=================== ============================================== ===========================================
``gaussian``        ``x + N(0, std^2)``, not clipped (any data)    std 0.1, 0.2, 0.3, 0.5, 1.0
``salt_and_pepper`` fraction ``p`` set to 0 or 1 (half each),       p 0.02, 0.05, 0.1, 0.2, 0.3
                    not clipped
``gaussian_noise``  CIFAR-10-C: ``clip(x + N(0, c^2))``            c 0.04, 0.06, 0.08, 0.09, 0.10
``shot_noise``      CIFAR-10-C: ``clip(Poisson(x * c) / c)``       c 500, 250, 100, 75, 50
``impulse_noise``   CIFAR-10-C: salt-and-pepper, fraction c        c 0.01, 0.02, 0.03, 0.05, 0.07
``speckle_noise``   CIFAR-10-C: ``clip(x + x * N(0, c^2))``        c 0.06, 0.10, 0.12, 0.16, 0.20
=================== ============================================== ===========================================

The CIFAR-10-C levels are those of Hendrycks & Dietterich's ``make_cifar_c.py``. Differences from that
script: it works on one uint8 HxWx3 image at a time and stores the result as uint8 (``np.uint8`` truncates,
lowering each value by up to 1/255); here tensors of any shape stay floating point. Its ``impulse_noise`` is
``skimage.util.random_noise(mode="s&p", amount=c)``: current scikit-image flips each element with probability
``c`` and makes it salt or pepper with probability 1/2 each, then clips, which is exactly
:func:`lightning_noise.functional.salt_and_pepper` with ``p=c``; scikit-image before 0.19 (the version the
dataset was made with) instead set ``ceil(c * size / 2)`` positions drawn with replacement to each value, so
slightly fewer than a fraction ``c`` changed. NumPy's generator is replaced by an explicit ``torch.Generator``.

Example::

    >>> import torch
    >>> from lightning_noise.robustness.corruptions import get_corruption
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.full((2, 3, 8, 8), 0.5)
    >>> shot = get_corruption("shot_noise")
    >>> shot(x, 0, g) is x, shot(x, 5, g).shape, shot.levels[-1]
    (True, torch.Size([2, 3, 8, 8]), 50.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from lightning_noise import functional as F
from lightning_noise._checks import as_list, check_bool, check_callable, check_name, check_non_negative_numbers
from lightning_noise.functional.additive import require_floating

__all__ = [
    "CIFAR10C",
    "Corruption",
    "available_corruptions",
    "gaussian_noise",
    "get_corruption",
    "impulse_noise",
    "shot_noise",
    "speckle_noise",
]

Clip = tuple[float, float] | None

#: The four CIFAR-10-C noise corruptions, in the paper's order.
CIFAR10C: tuple[str, ...] = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")


def _clip(x: Tensor, clip: Clip) -> Tensor:
    return x if clip is None else x.clamp(clip[0], clip[1])


def gaussian_noise(
    x: Tensor, std: float, generator: torch.Generator | None = None, *, clip: Clip = (0.0, 1.0)
) -> Tensor:
    """Additive Gaussian noise ``x + N(0, std^2)`` per element, then clipped to ``clip``.

    Args:
        x: floating-point tensor.
        std: standard deviation, >= 0.
        generator: source of randomness.
        clip: ``(low, high)`` range of the output, or ``None`` for no clipping.
    """
    return _clip(F.gaussian(x, std, generator), clip) if std else x


def shot_noise(x: Tensor, rate: float, generator: torch.Generator | None = None, *, clip: Clip = (0.0, 1.0)) -> Tensor:
    """Shot (Poisson) noise: ``Poisson(x * rate) / rate`` per element, then clipped to ``clip``.

    The mean is ``x`` and the variance ``x / rate``: a larger rate (more photons) means less noise. Negative
    inputs are treated as 0 (a Poisson rate cannot be negative). Drawn in float32 (float64 for float64 input)
    and cast back to ``x.dtype``.

    Args:
        x: floating-point tensor with values in [0, 1].
        rate: photons per unit intensity, > 0; ``inf`` returns ``x``.
        generator: source of randomness.
        clip: ``(low, high)`` range of the output, or ``None``.

    Raises:
        ValueError: ``rate`` is not positive.
    """
    if not rate > 0:
        raise ValueError(f"`rate` of shot noise must be > 0, got {rate}.")
    if math.isinf(rate):
        return x
    require_floating(x, "shot")
    work = x.detach().to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    counts = torch.poisson(work.clamp_min(0.0) * rate, generator=generator)
    return _clip((counts / rate).to(x.dtype), clip)


def impulse_noise(x: Tensor, p: float, generator: torch.Generator | None = None, *, clip: Clip = (0.0, 1.0)) -> Tensor:
    """Impulse (salt-and-pepper) noise: a fraction ``p`` of the elements set to ``clip[1]`` or ``clip[0]``.

    Each element independently becomes the high value with probability ``p/2``, the low value with probability
    ``p/2``, and is kept otherwise (:func:`lightning_noise.functional.salt_and_pepper`); the output is then
    clipped.

    Args:
        x: floating-point tensor.
        p: fraction of elements replaced, in [0, 1].
        generator: source of randomness.
        clip: ``(low, high)``: the pepper and salt values and the output range. ``None`` means (0, 1) without
            clipping.
    """
    low, high = clip if clip is not None else (0.0, 1.0)
    return _clip(F.salt_and_pepper(x, p, generator, low=low, high=high), clip) if p else x


def speckle_noise(
    x: Tensor, std: float, generator: torch.Generator | None = None, *, clip: Clip = (0.0, 1.0)
) -> Tensor:
    """Speckle (multiplicative) noise ``x + x * N(0, std^2)`` per element, then clipped to ``clip``.

    Before clipping, each element has mean ``x`` and standard deviation ``std * |x|``
    (:func:`lightning_noise.functional.multiplicative`).

    Args:
        x: floating-point tensor.
        std: standard deviation of the relative perturbation, >= 0.
        generator: source of randomness.
        clip: ``(low, high)`` range of the output, or ``None``.
    """
    return _clip(F.multiplicative(x, std, generator), clip) if std else x


@dataclass(frozen=True)
class Corruption:
    """A named corruption with a ladder of severities.

    Calling ``corruption(x, severity, generator)`` returns ``x`` itself for severity 0 and
    ``fn(x, levels[severity - 1], generator)`` otherwise.

    Args:
        name: the name shown in tables, plots and logged metric names.
        fn: ``fn(x, level, generator) -> Tensor``, out of place, same shape, dtype and device.
        levels: the amount at severities 1, 2, ...; a non-empty sequence of non-negative numbers.
        amount: what a level measures, for display (``"std"``, ``"p"``, ``"rate"``).
        unit_range: the corruption expects inputs in [0, 1] (images) and clips to it; robustness evaluation
            warns when the inputs fall outside.

    Raises:
        TypeError: ``levels`` that are not numbers (strings included), a ``name`` that is not a string, an ``fn``
            that is not callable, or a ``unit_range`` that is not a bool.
        ValueError: empty, negative, NaN or infinite ``levels``, or an empty ``name``.

    Example::

        >>> import torch
        >>> from lightning_noise.robustness.corruptions import Corruption, gaussian_noise, get_corruption
        >>> blur_free = Corruption("gaussian_0.3", lambda x, s, g: gaussian_noise(x, s, g, clip=None), (0.3,))
        >>> wider = get_corruption("gaussian").with_levels([0.5, 1.0, 2.0])
        >>> wider.severities
        (0, 1, 2, 3)
    """

    name: str
    fn: Callable[[Tensor, float, torch.Generator | None], Tensor]
    levels: tuple[float, ...]
    amount: str = "std"
    unit_range: bool = False

    def __post_init__(self) -> None:
        check_name(self.name, "name", owner="Corruption")
        check_callable(self.fn, "fn", owner=f"Corruption {self.name!r}")
        levels = check_non_negative_numbers(self.levels, "levels", owner=f"Corruption {self.name!r}")
        check_name(self.amount, "amount", owner=f"Corruption {self.name!r}")
        check_bool(self.unit_range, "unit_range", owner=f"Corruption {self.name!r}")
        object.__setattr__(self, "levels", levels)

    @property
    def severities(self) -> tuple[int, ...]:
        """``(0, 1, ..., len(levels))``; 0 is the clean input."""
        return tuple(range(len(self.levels) + 1))

    def with_levels(self, levels: Sequence[float]) -> Corruption:
        """A copy with other levels (same function and name)."""
        return replace(self, levels=tuple(levels))

    def __call__(self, x: Tensor, severity: int, generator: torch.Generator | None = None) -> Tensor:
        if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= len(self.levels):
            raise ValueError(
                f"`severity` of corruption {self.name!r} must be an integer in [0, {len(self.levels)}], "
                f"got {severity!r}."
            )
        if severity == 0:
            return x
        return self.fn(x, self.levels[severity - 1], generator)


def _unclipped_gaussian(x: Tensor, std: float, generator: torch.Generator | None) -> Tensor:
    return gaussian_noise(x, std, generator, clip=None)


def _check_fraction(p: float) -> None:
    if p > 1:
        raise ValueError(f"A salt-and-pepper fraction must be in [0, 1], got {p}.")


def _unclipped_salt_and_pepper(x: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    _check_fraction(p)
    return F.salt_and_pepper(x, p, generator)


def _clipped_impulse(x: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    _check_fraction(p)
    return impulse_noise(x, p, generator)


def _presets() -> dict[str, Corruption]:
    return {
        "gaussian": Corruption("gaussian", _unclipped_gaussian, (0.1, 0.2, 0.3, 0.5, 1.0), "std"),
        "salt_and_pepper": Corruption("salt_and_pepper", _unclipped_salt_and_pepper, (0.02, 0.05, 0.1, 0.2, 0.3), "p"),
        "gaussian_noise": Corruption("gaussian_noise", gaussian_noise, (0.04, 0.06, 0.08, 0.09, 0.10), "std", True),
        "shot_noise": Corruption("shot_noise", shot_noise, (500, 250, 100, 75, 50), "rate", True),
        "impulse_noise": Corruption("impulse_noise", _clipped_impulse, (0.01, 0.02, 0.03, 0.05, 0.07), "p", True),
        "speckle_noise": Corruption("speckle_noise", speckle_noise, (0.06, 0.10, 0.12, 0.16, 0.20), "std", True),
    }


_PRESETS = _presets()


def available_corruptions() -> list[str]:
    """Names accepted by :func:`get_corruption` (plus ``"cifar10c"``, the four CIFAR-10-C noises)."""
    return list(_PRESETS)


def get_corruption(corruption: str | Corruption, levels: Sequence[float] | None = None) -> Corruption:
    """Look up a preset by name (optionally with other ``levels``), or pass a :class:`Corruption` through.

    Raises:
        ValueError: unknown name (the message lists the presets) or bad levels.
    """
    if isinstance(corruption, Corruption):
        found = corruption
    elif isinstance(corruption, str) and corruption in _PRESETS:
        found = _PRESETS[corruption]
    else:
        raise ValueError(
            f"Unknown corruption {corruption!r}; expected one of {available_corruptions()}, 'cifar10c', "
            "or a lightning_noise.corruptions.Corruption."
        )
    return found.with_levels(levels) if levels is not None else found


def resolve_corruptions(corruptions: str | Corruption | Sequence[str | Corruption]) -> list[Corruption]:
    """Expand a name, a :class:`Corruption` or a sequence of them (``"cifar10c"`` means the four CIFAR-10-C noises).

    Raises:
        ValueError: an unknown name, an empty list, or two corruptions with one name.
    """
    expected = "a corruption name, a Corruption, or a list of them"
    if isinstance(corruptions, (str, Corruption)):
        items = [corruptions]
    else:
        items = as_list(corruptions, "corruptions", expected)
    expanded: list[Corruption] = []
    for item in items:
        if not isinstance(item, Corruption) and item not in (*_PRESETS, "cifar10c"):
            raise (ValueError if isinstance(item, str) else TypeError)(
                f"Unknown corruption {item!r} in `corruptions`; expected one of {available_corruptions()}, "
                "'cifar10c', or a lightning_noise.corruptions.Corruption."
            )
        expanded.extend(get_corruption(name) for name in (CIFAR10C if item == "cifar10c" else (item,)))
    names = [c.name for c in expanded]
    if not expanded or len(set(names)) != len(names):
        raise ValueError(f"`corruptions` must be a non-empty list of distinct corruptions, got {names}.")
    return expanded
