"""Additive, multiplicative and impulse noise on tensors: the built-in noise kinds.

Every function takes a tensor, an amount and an optional ``torch.Generator`` and returns a new tensor of the
same shape, dtype and device (out of place). A zero amount (``std=0``, ``p=0``, ``snr_db=inf``) returns the
input object itself, untouched. Callbacks never call these with ``generator=None``; users may, in which case
PyTorch's global generator is used. The rules shared with the counter-based sampler used under
``torch.compile`` (:func:`salt_and_pepper_from_uniform`, :func:`snr_noise_std`, :data:`UNIFORM_HALF_WIDTH`)
are public here so that both draw the same noise from their own random numbers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_noise.functional.kinds import Amount, register_noise

UNIFORM_HALF_WIDTH = math.sqrt(3.0)
"""Half-width of the zero-mean, unit-variance uniform distribution: U(-sqrt 3, sqrt 3) has variance 1."""


def require_floating(x: Tensor, kind: str) -> None:
    """Refuse a tensor that cannot carry additive noise.

    Args:
        x: the tensor about to get noise.
        kind: the name of the noise, for the message.

    Raises:
        TypeError: ``x`` is neither floating point nor complex (token ids, class indices).

    Example::

        >>> require_floating(torch.zeros(2), "gaussian")
    """
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
    require_floating(x, "gaussian")
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
    require_floating(x, "uniform")
    if isinstance(std, Tensor):
        noise = torch.empty_like(x, memory_format=torch.contiguous_format).uniform_(-1.0, 1.0, generator=generator)
        return torch.addcmul(x, noise, (std * UNIFORM_HALF_WIDTH).to(x.dtype))
    half_width = UNIFORM_HALF_WIDTH * float(std)
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
    require_floating(x, "multiplicative")
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
    require_floating(x, "salt_and_pepper")
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
    require_floating(x, "dropout")
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
    require_floating(x, "snr")
    std = snr_noise_std(x, snr_db)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return torch.addcmul(x, noise, std)


def snr_noise_std(x: Tensor, snr_db: Amount) -> Tensor:
    """The noise std of :func:`snr` for each sample of ``x``: ``sqrt(mean(x**2) / 10**(snr_db / 10))`` over the
    sample's elements, kept broadcastable to ``x`` (shared with the counter-based sampler)."""
    dims = tuple(range(1, x.ndim)) if x.ndim >= 2 else tuple(range(x.ndim))
    power = x.detach().pow(2).mean(dim=dims, keepdim=True) if dims else x.detach().pow(2)
    return (power / (10.0 ** (snr_db / 10.0))).sqrt()


register_noise("gaussian", gaussian, amount="std", elementwise_scale=True)
register_noise("uniform", uniform, amount="std", elementwise_scale=True)
register_noise("multiplicative", multiplicative, amount="std", elementwise_scale=True)
register_noise("salt_and_pepper", salt_and_pepper, amount="p", high=1.0)
register_noise("dropout", dropout, amount="p", high=1.0, high_inclusive=False)
register_noise("snr", snr, amount="snr_db", low=-math.inf, zero=math.inf)
