"""Pure noise functions and the registry of noise kinds.

Every function takes a tensor, an amount and an optional ``torch.Generator`` and returns a new tensor of the
same shape, dtype and device (out of place). A zero amount (``std=0``, ``p=0``, ``snr_db=inf``) returns the
input object itself, untouched. Callbacks never call these with ``generator=None``; users may, in which case
PyTorch's global generator is used.

Kinds are selected by name through :func:`add_noise` and :func:`get_noise`, and users can add their own with
:func:`register_noise`.

Example::

    >>> import torch
    >>> from lightning_noise import functional as F
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.zeros(4, 3)
    >>> F.gaussian(x, 0.1, g).shape
    torch.Size([4, 3])
    >>> F.add_noise(x, "salt_and_pepper", 0.5, g).unique().tolist()
    [0.0, 1.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import Tensor

Amount = float | Tensor

__all__ = [
    "NoiseKind",
    "add_noise",
    "available_noises",
    "dropout",
    "gaussian",
    "get_noise",
    "multiplicative",
    "register_noise",
    "salt_and_pepper",
    "snr",
    "uniform",
]

_SQRT3 = math.sqrt(3.0)


class NoiseFn(Protocol):
    def __call__(self, x: Tensor, amount: Amount, generator: torch.Generator | None = None, **kwargs) -> Tensor: ...


def _require_floating(x: Tensor, kind: str) -> None:
    if not (x.is_floating_point() or x.is_complex()):
        raise TypeError(
            f"{kind} noise needs a floating-point tensor, got dtype {x.dtype} with shape {tuple(x.shape)}. "
            "Integer tensors (token ids, class indices) cannot carry additive noise: noise the output of the "
            "layer that embeds them instead, e.g. ActivationNoise(modules=['Embedding'])."
        )


def _is_zero(amount: Amount) -> bool:
    # A tensor amount (per-feature scale) is never short-circuited: checking it would synchronize with the device.
    return not isinstance(amount, Tensor) and amount == 0


def gaussian(x: Tensor, std: Amount, generator: torch.Generator | None = None) -> Tensor:
    """Additive Gaussian noise: ``x + std * N(0, 1)``, drawn independently per element.

    Args:
        x: floating-point tensor.
        std: standard deviation, a float or a tensor broadcastable to ``x`` (per-feature scales).
        generator: source of randomness.

    Raises:
        TypeError: ``x`` is not floating point.
    """
    if _is_zero(std):
        return x
    _require_floating(x, "gaussian")
    if isinstance(std, Tensor):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return torch.addcmul(x, noise, std.to(x.dtype))
    noise = torch.empty_like(x, memory_format=torch.contiguous_format).normal_(0.0, float(std), generator=generator)
    return x + noise


def uniform(x: Tensor, std: Amount, generator: torch.Generator | None = None) -> Tensor:
    """Additive uniform noise with standard deviation ``std``: ``x + U(-a, a)`` with ``a = sqrt(3) * std``.

    Args:
        x: floating-point tensor.
        std: standard deviation of the noise (not the half-width), a float or a broadcastable tensor.
        generator: source of randomness.
    """
    if _is_zero(std):
        return x
    _require_floating(x, "uniform")
    if isinstance(std, Tensor):
        noise = torch.empty_like(x, memory_format=torch.contiguous_format).uniform_(-1.0, 1.0, generator=generator)
        return torch.addcmul(x, noise, (std * _SQRT3).to(x.dtype))
    half_width = _SQRT3 * float(std)
    return x + torch.empty_like(x, memory_format=torch.contiguous_format).uniform_(
        -half_width, half_width, generator=generator
    )


def multiplicative(x: Tensor, std: Amount, generator: torch.Generator | None = None) -> Tensor:
    """Multiplicative Gaussian noise (Gaussian dropout): ``x * (1 + std * N(0, 1))``.

    Args:
        x: floating-point tensor.
        std: standard deviation of the multiplier around 1, a float or a broadcastable tensor.
        generator: source of randomness.
    """
    if _is_zero(std):
        return x
    _require_floating(x, "multiplicative")
    if isinstance(std, Tensor):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x * torch.addcmul(torch.ones_like(noise), noise, std.to(x.dtype))
    return x * torch.empty_like(x, memory_format=torch.contiguous_format).normal_(1.0, float(std), generator=generator)


def salt_and_pepper(
    x: Tensor, p: float, generator: torch.Generator | None = None, *, low: float = 0.0, high: float = 1.0
) -> Tensor:
    """Impulse noise: a fraction ``p`` of the elements is replaced, half by ``high`` (salt), half by ``low`` (pepper).

    Each element is drawn independently: with probability ``p/2`` it becomes ``high``, with probability ``p/2``
    it becomes ``low``, otherwise it is kept. The defaults suit inputs scaled to [0, 1].

    Args:
        x: floating-point tensor.
        p: fraction of elements replaced, in [0, 1].
        generator: source of randomness.
        low: value of pepper elements.
        high: value of salt elements.
    """
    if _is_zero(p):
        return x
    _require_floating(x, "salt_and_pepper")
    return salt_and_pepper_from_uniform(x, torch.rand(x.shape, generator=generator, device=x.device), p, low, high)


def salt_and_pepper_from_uniform(x: Tensor, u: Tensor, p: Amount, low: float, high: float) -> Tensor:
    """``x`` with ``high`` where ``u < p/2``, ``low`` where ``p/2 <= u < p``: the rule of :func:`salt_and_pepper`,
    given uniform numbers ``u`` (shared with the counter-based sampler used under ``torch.compile``)."""
    out = torch.where(u < p / 2, high, x)
    return torch.where((u >= p / 2) & (u < p), low, out)


def dropout(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Inverted dropout: each element is zeroed with probability ``p`` and the survivors scaled by ``1/(1-p)``.

    The expectation of the output equals ``x``. Unlike ``torch.nn.functional.dropout`` it takes a generator.

    Args:
        x: floating-point tensor.
        p: drop probability, in [0, 1).
        generator: source of randomness.
    """
    if _is_zero(p):
        return x
    _require_floating(x, "dropout")
    keep = 1.0 - float(p)
    mask = torch.empty_like(x, memory_format=torch.contiguous_format).bernoulli_(keep, generator=generator)
    return x * mask.div_(keep)


def snr(x: Tensor, snr_db: float, generator: torch.Generator | None = None) -> Tensor:
    """Gaussian noise at a signal-to-noise ratio relative to each sample's own power.

    For each sample (index along dim 0; a 0-d or 1-d tensor is one sample) the signal power is
    ``P = mean(x**2)`` over its elements, and the added noise has variance ``P / 10**(snr_db / 10)``, so that
    ``10 * log10(P / noise_power) = snr_db``. ``snr_db = inf`` adds nothing.

    Args:
        x: floating-point tensor, samples along dim 0.
        snr_db: signal-to-noise ratio in decibels (higher means less noise).
        generator: source of randomness.
    """
    if not isinstance(snr_db, Tensor) and math.isinf(snr_db) and snr_db > 0:
        return x
    _require_floating(x, "snr")
    std = snr_noise_std(x, snr_db)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return torch.addcmul(x, noise, std)


def snr_noise_std(x: Tensor, snr_db: Amount) -> Tensor:
    """The noise std of :func:`snr` for each sample of ``x``: ``sqrt(mean(x**2) / 10**(snr_db / 10))`` over the
    sample's elements, kept broadcastable to ``x`` (shared with the counter-based sampler)."""
    dims = tuple(range(1, x.ndim)) if x.ndim >= 2 else tuple(range(x.ndim))
    power = x.detach().pow(2).mean(dim=dims, keepdim=True) if dims else x.detach().pow(2)
    return (power / (10.0 ** (snr_db / 10.0))).sqrt()


@dataclass(frozen=True)
class NoiseKind:
    """A registered kind of noise: its function, the name of its amount argument and the valid range.

    Args:
        name: the name users select it by (``kind="gaussian"``).
        fn: ``fn(x, amount, generator, **kwargs) -> Tensor``.
        amount: name of the amount argument (``"std"``, ``"p"``, ``"snr_db"``).
        low: smallest valid amount (inclusive).
        high: largest valid amount.
        high_inclusive: whether ``high`` itself is valid.
        zero: the amount that means "no noise" (0, or ``inf`` for a signal-to-noise ratio).
        elementwise_scale: whether the amount may be a per-feature tensor (relative scaling).
    """

    name: str
    fn: Callable[..., Tensor]
    amount: str = "std"
    low: float = 0.0
    high: float = math.inf
    high_inclusive: bool = True
    zero: float = 0.0
    elementwise_scale: bool = False

    def check_amount(self, value: float, argument: str | None = None) -> None:
        """Raise ``ValueError`` naming ``argument`` when ``value`` is outside this kind's range."""
        argument = argument or self.amount
        too_high = value > self.high or (value == self.high and not self.high_inclusive and not math.isinf(value))
        if math.isnan(value) or value < self.low or too_high:
            closing = "]" if self.high_inclusive else ")"
            raise ValueError(
                f"`{argument}` for {self.name!r} noise must be in [{self.low}, {self.high}{closing}, got {value}."
            )


_REGISTRY: dict[str, NoiseKind] = {}


def register_noise(
    name: str,
    fn: Callable[..., Tensor] | None = None,
    *,
    amount: str = "std",
    low: float = 0.0,
    high: float = math.inf,
    high_inclusive: bool = True,
    zero: float = 0.0,
    elementwise_scale: bool = False,
    overwrite: bool = False,
):
    """Register a noise kind so callbacks can select it by name. Usable as a decorator.

    Args:
        name: the name to register.
        fn: ``fn(x, amount, generator=None, **kwargs) -> Tensor``; out of place, same dtype and device.
        amount: the name of the amount argument users pass to callbacks (``std``, ``p``, ``snr_db`` or
            ``amount``).
        low: smallest valid amount. high: largest valid amount. high_inclusive: whether ``high`` is valid.
        zero: the amount meaning "no noise".
        elementwise_scale: whether the amount may be a per-feature tensor.
        overwrite: replace an existing kind of the same name instead of raising.

    Raises:
        ValueError: the name is taken and ``overwrite`` is False, or ``amount`` is not a known argument name.

    Example::

        >>> import torch
        >>> from lightning_noise.functional import register_noise, add_noise
        >>> @register_noise("laplace", amount="std", overwrite=True)
        ... def laplace(x, std, generator=None):
        ...     u = torch.rand(x.shape, generator=generator, dtype=x.dtype) - 0.5
        ...     return x - std / 2**0.5 * u.sign() * torch.log1p(-2 * u.abs())
        >>> add_noise(torch.zeros(2), "laplace", 0.0).tolist()
        [0.0, 0.0]
    """
    if amount not in ("std", "p", "snr_db", "amount"):
        raise ValueError(f"`amount` must be one of 'std', 'p', 'snr_db', 'amount', got {amount!r}.")

    def _register(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if name in _REGISTRY and not overwrite:
            raise ValueError(f"A noise kind named {name!r} is already registered; pass overwrite=True to replace it.")
        _REGISTRY[name] = NoiseKind(name, fn, amount, low, high, high_inclusive, zero, elementwise_scale)
        return fn

    return _register(fn) if fn is not None else _register


def get_noise(kind: str | NoiseKind) -> NoiseKind:
    """Look up a registered noise kind by name.

    Raises:
        ValueError: the name is unknown; the message lists the registered kinds.
    """
    if isinstance(kind, NoiseKind):
        return kind
    try:
        return _REGISTRY[kind]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown noise `kind` {kind!r}; expected one of {available_noises()} or a kind added with "
            "lightning_noise.functional.register_noise."
        ) from None


def available_noises() -> list[str]:
    """The names of all registered noise kinds, sorted."""
    return sorted(_REGISTRY)


def add_noise(x: Tensor, kind: str | NoiseKind, amount: Amount, generator: torch.Generator | None = None, **kwargs) -> Tensor:
    """Apply the noise kind named ``kind`` with ``amount`` to ``x``; returns ``x`` itself for a zero amount.

    Example::

        >>> import torch
        >>> from lightning_noise.functional import add_noise
        >>> x = torch.ones(3)
        >>> add_noise(x, "gaussian", 0.0) is x
        True
    """
    noise_kind = get_noise(kind)
    if not isinstance(amount, Tensor) and amount == noise_kind.zero:
        return x
    return noise_kind.fn(x, amount, generator, **kwargs)


register_noise("gaussian", gaussian, amount="std", elementwise_scale=True)
register_noise("uniform", uniform, amount="std", elementwise_scale=True)
register_noise("multiplicative", multiplicative, amount="std", elementwise_scale=True)
register_noise("salt_and_pepper", salt_and_pepper, amount="p", high=1.0)
register_noise("dropout", dropout, amount="p", high=1.0, high_inclusive=False)
register_noise("snr", snr, amount="snr_db", low=-math.inf, zero=math.inf)
