"""Exact binomial confidence bounds and tests in torch (float64): no scipy needed by the core library.

Both are built on the binomial tail ``P(X >= k)`` for ``X ~ Binomial(n, p)``, summed exactly in log space with
``torch.lgamma`` and ``logsumexp`` (float64: relative error ~1e-12 for ``n`` up to 10^7).

* :func:`clopper_pearson_lower`: the one-sided Clopper-Pearson lower bound ``p_low`` at level ``1 - alpha``,
  the ``p`` with ``P(X >= k | p) = alpha`` (equivalently the ``alpha`` quantile of ``Beta(k, n - k + 1)``),
  found by bisection on ``p``; the tail is increasing in ``p``, so bisection is exact to its tolerance.
* :func:`binomial_test_half`: the two-sided p-value of ``H0: p = 1/2`` (scipy's ``binomtest(k, n, 0.5)``); the
  null distribution is symmetric, so it is ``min(1, 2 P(X <= min(k, n - k)))``.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import Tensor

from lightning_noise._checks import check_open

__all__ = ["binomial_test_half", "clopper_pearson_lower", "log_binomial_tail"]

_MAX_TERMS = 1 << 22  # terms summed at once (32 MiB of float64)
_BISECTION_STEPS = 60  # interval width 2^-60: below float64 resolution near every p in (0, 1]


def check_alpha(alpha: Any) -> float:
    return check_open(alpha, "alpha", 0.0, 1.0, what=" (the allowed failure probability)")


def _check_counts(k: Tensor | int, n: Tensor | int) -> tuple[Tensor, Tensor]:
    k = torch.as_tensor(k, dtype=torch.float64)
    n = torch.as_tensor(n, dtype=torch.float64)
    k, n = cast("tuple[Tensor, Tensor]", torch.broadcast_tensors(k, n))  # untyped in torch (Any)
    if bool((k != k.round()).any() | (n != n.round()).any()):
        raise ValueError(f"Binomial counts `k` and `n` must be integers, got k={k.tolist()}, n={n.tolist()}.")
    if bool((n < 1).any() | (k < 0).any() | (k > n).any()):
        raise ValueError(f"Binomial counts must satisfy 0 <= k <= n and n >= 1, got k={k.tolist()}, n={n.tolist()}.")
    return k, n


class _Tail:
    """``p -> log P(X >= k)`` for fixed counts: the ``log C(n, j)``, ``j = k..n``, are computed once.

    Terms are held in chunks of at most ``_MAX_TERMS`` (rows of points x terms), each padded with ``-inf``.
    """

    def __init__(self, k: Tensor, n: Tensor) -> None:
        self.shape = k.shape
        k, n = k.reshape(-1), n.reshape(-1)
        width = int((n - k).max().item()) + 1 if k.numel() else 1
        rows = max(1, _MAX_TERMS // width)
        self.chunks = []
        for i in range(0, len(k), rows):
            ki, ni = k[i : i + rows, None], n[i : i + rows, None]
            j = ki + torch.arange(width, dtype=torch.float64)[None, :]  # j = k, k+1, ..., padded past n
            valid = j <= ni
            j = torch.where(valid, j, ni)
            log_c = torch.lgamma(ni + 1) - torch.lgamma(j + 1) - torch.lgamma(ni - j + 1)
            self.chunks.append((torch.where(valid, log_c, torch.full_like(log_c, -math.inf)), j, ni - j))

    def __call__(self, p: Tensor) -> Tensor:
        p = p.reshape(-1)
        out, start = [], 0
        for log_c, j, rest in self.chunks:
            pi = p[start : start + len(j), None]
            out.append(torch.logsumexp(log_c + j * torch.log(pi) + rest * torch.log1p(-pi), dim=1))
            start += len(j)
        return torch.cat(out).reshape(self.shape) if out else p.reshape(self.shape)


def log_binomial_tail(k: Tensor | int, n: Tensor | int, p: Tensor | float) -> Tensor:
    """``log P(X >= k)`` for ``X ~ Binomial(n, p)``, elementwise over broadcast tensors (``0 < p < 1``).

    Example::

        >>> round(log_binomial_tail(1, 2, 0.5).exp().item(), 6)
        0.75
    """
    k, n = _check_counts(k, n)
    k, n, p = cast(
        "tuple[Tensor, Tensor, Tensor]", torch.broadcast_tensors(k, n, torch.as_tensor(p, dtype=torch.float64))
    )
    return _Tail(k.contiguous(), n.contiguous())(p.contiguous())


def clopper_pearson_lower(k: Tensor | int, n: Tensor | int, alpha: float) -> Tensor:
    """One-sided Clopper-Pearson lower confidence bound of a binomial proportion at level ``1 - alpha``.

    ``P(p_low <= p) >= 1 - alpha`` for every true ``p``. Equal to ``scipy.stats.beta.ppf(alpha, k, n - k + 1)``
    (0 when ``k = 0``), and to the lower end of ``binomtest(k, n).proportion_ci(1 - 2 * alpha)``.

    Args:
        k: successes (int or integer-valued tensor).
        n: trials (``n >= 1``, ``0 <= k <= n``; broadcast with ``k``).
        alpha: the probability that the bound exceeds the true proportion, in (0, 1).

    Returns:
        float64 tensor of the broadcast shape of ``k`` and ``n``.

    Raises:
        ValueError: non-integer or out-of-range counts, ``alpha`` outside (0, 1).

    Example::

        >>> round(clopper_pearson_lower(10, 10, 0.05).item(), 6)   # 0.05 ** (1 / 10)
        0.741134
    """
    alpha = check_alpha(alpha)
    k, n = _check_counts(k, n)
    tail = _Tail(k.contiguous(), n.contiguous())
    low = torch.zeros_like(k)
    high = torch.ones_like(k)
    # The tail P(X >= k | p) increases with p; find where it crosses alpha.
    log_alpha = math.log(alpha)
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2
        above = tail(mid) > log_alpha
        high = torch.where(above, mid, high)
        low = torch.where(above, low, mid)
    bound = (low + high) / 2
    bound = torch.where(k == n, torch.as_tensor(alpha, dtype=torch.float64) ** (1.0 / n), bound)  # closed form
    return torch.where(k == 0, torch.zeros_like(bound), bound)


def binomial_test_half(k: Tensor | int, n: Tensor | int) -> Tensor:
    """Two-sided p-value of the exact binomial test of ``p = 1/2`` (``k`` successes in ``n`` trials).

    Equal to ``scipy.stats.binomtest(k, n, 0.5).pvalue``: ``min(1, 2 P(X <= min(k, n - k)))``.

    Example::

        >>> round(binomial_test_half(9, 10).item(), 6)     # 2 * (1 + 10) / 2**10
        0.021484
    """
    k, n = _check_counts(k, n)
    smaller = torch.minimum(k, n - k)
    # P(X <= m) = P(X >= n - m) under p = 1/2 (symmetric).
    log_cdf = _Tail((n - smaller).contiguous(), n.contiguous())(torch.full_like(n, 0.5))
    return torch.clamp(2 * log_cdf.exp(), max=1.0)
