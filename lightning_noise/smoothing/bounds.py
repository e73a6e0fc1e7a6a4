"""Exact binomial confidence bounds and tests, from scipy (a core dependency; imported at the first call).

* :func:`clopper_pearson_lower`: the one-sided Clopper-Pearson lower bound ``p_low`` at level ``1 - alpha``: the
  ``alpha`` quantile of ``Beta(k, n - k + 1)`` (``scipy.stats.beta.ppf``, Boost's inverse incomplete beta),
  equivalently the ``p`` with ``P(X >= k | p) = alpha``; 0 when ``k = 0``.
* :func:`binomial_test_half`: the two-sided p-value of ``H0: p = 1/2`` (scipy's ``binomtest(k, n, 0.5)``); the
  null distribution is symmetric, so it is ``min(1, 2 P(X <= min(k, n - k)))`` (``scipy.stats.binom.cdf``).
* :func:`log_binomial_tail`: ``log P(X >= k)`` (``scipy.stats.binom.logsf``).

Each costs a constant number of special-function evaluations per point, whatever ``n`` and ``k``, and memory
proportional to the number of points (float64 arrays): 10,000 points at ``n = 100,000`` take milliseconds and
well under a megabyte.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightning_noise._checks import check_open

__all__ = ["MIN_ALPHA", "binomial_test_half", "clopper_pearson_lower", "log_binomial_tail"]


MIN_ALPHA = 1e-100  # below ~1e-280 the float64 inverse incomplete beta loses accuracy near underflow


def check_alpha(alpha: Any) -> float:
    """``alpha`` as a float in ``[MIN_ALPHA, 1)``: every bound in that range is exact to 1e-10 (tested)."""
    alpha = check_open(alpha, "alpha", 0.0, 1.0, what=" (the allowed failure probability)")
    if alpha < MIN_ALPHA:
        raise ValueError(
            f"`alpha` must be at least {MIN_ALPHA:g} (the allowed failure probability): below that the float64 "
            f"binomial bounds are no longer exact, and no certificate needs such a confidence; got {alpha!r}."
        )
    return alpha


def _check_counts(k: Tensor | int, n: Tensor | int) -> tuple[np.ndarray, np.ndarray]:
    k_t = torch.as_tensor(k, dtype=torch.float64).detach().cpu()
    n_t = torch.as_tensor(n, dtype=torch.float64).detach().cpu()
    k_t, n_t = torch.broadcast_tensors(k_t, n_t)
    if bool((k_t != k_t.round()).any() | (n_t != n_t.round()).any()):
        raise ValueError(f"Binomial counts `k` and `n` must be integers, got k={k_t.tolist()}, n={n_t.tolist()}.")
    if bool((n_t < 1).any() | (k_t < 0).any() | (k_t > n_t).any()):
        raise ValueError(
            f"Binomial counts must satisfy 0 <= k <= n and n >= 1, got k={k_t.tolist()}, n={n_t.tolist()}."
        )
    return k_t.numpy(), n_t.numpy()


def _stats() -> Any:
    # a core dependency, imported on first use so that `import lightning_noise` stays light (by name: scipy ships
    # no type stubs, and the module is used as Any)
    return importlib.import_module("scipy.stats")


def log_binomial_tail(k: Tensor | int, n: Tensor | int, p: Tensor | float) -> Tensor:
    """``log P(X >= k)`` for ``X ~ Binomial(n, p)``, elementwise over broadcast tensors (``0 < p < 1``).

    Example::

        >>> round(log_binomial_tail(1, 2, 0.5).exp().item(), 6)
        0.75
    """
    k_np, n_np = _check_counts(k, n)
    p_np = torch.as_tensor(p, dtype=torch.float64).detach().cpu().numpy()
    return torch.from_numpy(np.asarray(_stats().binom.logsf(k_np - 1, n_np, p_np), dtype=np.float64))


def clopper_pearson_lower(k: Tensor | int, n: Tensor | int, alpha: float) -> Tensor:
    """One-sided Clopper-Pearson lower confidence bound of a binomial proportion at level ``1 - alpha``.

    ``P(p_low <= p) >= 1 - alpha`` for every true ``p``. Equal to ``scipy.stats.beta.ppf(alpha, k, n - k + 1)``
    (0 when ``k = 0``), and to the lower end of ``binomtest(k, n).proportion_ci(1 - 2 * alpha)`` for
    ``alpha < 1/2``. Computed by scipy, one inverse incomplete beta per count: the cost does not grow with ``n``.

    Args:
        k: successes (int or integer-valued tensor).
        n: trials (``n >= 1``, ``0 <= k <= n``; broadcast with ``k``).
        alpha: the probability that the bound exceeds the true proportion, in ``[1e-100, 1)``.

    Returns:
        float64 CPU tensor of the broadcast shape of ``k`` and ``n``.

    Raises:
        ValueError: non-integer or out-of-range counts, ``alpha`` outside ``[1e-100, 1)``.

    Example::

        >>> round(clopper_pearson_lower(10, 10, 0.05).item(), 6)   # 0.05 ** (1 / 10)
        0.741134
    """
    alpha = check_alpha(alpha)
    k_np, n_np = _check_counts(k, n)
    seen = k_np > 0
    bound = _stats().beta.ppf(alpha, np.where(seen, k_np, 1.0), n_np - k_np + 1)
    return torch.from_numpy(np.asarray(np.where(seen, bound, 0.0), dtype=np.float64))


def binomial_test_half(k: Tensor | int, n: Tensor | int) -> Tensor:
    """Two-sided p-value of the exact binomial test of ``p = 1/2`` (``k`` successes in ``n`` trials).

    Equal to ``scipy.stats.binomtest(k, n, 0.5).pvalue``: ``min(1, 2 P(X <= min(k, n - k)))``.

    Example::

        >>> round(binomial_test_half(9, 10).item(), 6)     # 2 * (1 + 10) / 2**10
        0.021484
    """
    k_np, n_np = _check_counts(k, n)
    cdf = _stats().binom.cdf(np.minimum(k_np, n_np - k_np), n_np, 0.5)
    return torch.from_numpy(np.asarray(np.minimum(2 * cdf, 1.0), dtype=np.float64))
