"""CERTIFY and PREDICT of randomized smoothing (Cohen, Rosenfeld and Kolter, ICML 2019), batched, in torch.

The smoothed classifier of a base classifier ``f`` at noise level ``sigma`` is
``g(x) = argmax_c P(f(x + eps) = c)``, ``eps ~ N(0, sigma^2 I)``. If the top class has probability
``p_A > 1/2``, ``g`` is constant within the L2 ball of radius ``sigma * Phi^-1(p_A)`` around ``x``
(their Theorem 1 with ``p_B = 1 - p_A``). Both procedures estimate ``p_A`` by sampling:

* :func:`certify`: ``n0`` noisy samples pick the top class ``c_A``; ``n`` further samples count it (``k``);
  ``p_low`` is the one-sided Clopper-Pearson lower bound of ``k / n`` at level ``1 - alpha``. If
  ``p_low > 1/2`` the answer is ``c_A`` with radius ``sigma * Phi^-1(p_low)``, else abstain (``-1``, radius 0).
  With probability at least ``1 - alpha`` over the noise, a non-abstaining answer is ``g(x)`` and ``g`` is
  constant within the radius.
* :func:`smoothed_predict`: ``n`` noisy samples; the two most frequent classes (counts ``n_A >= n_B``) are
  compared with a two-sided binomial test of ``p = 1/2``; answer ``c_A`` if its p-value is at most ``alpha``,
  else abstain. The probability of answering a class other than ``g(x)`` is at most ``alpha``.

Cost: ``n0 + n`` forward passes per point. Noisy copies of several points share one forward call of
``batch_size`` samples; the noise is drawn on the model's device from an explicit ``torch.Generator``. The base
classifier's prediction on one noisy input is ``argmax`` of its logits, or ``logit > 0`` for a model with one
output (binary classification).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from lightning_noise._checks import check_int, check_open
from lightning_noise.smoothing.bounds import binomial_test_half, check_alpha, clopper_pearson_lower

__all__ = ["ABSTAIN", "DEFAULT_N", "certify", "sample_counts", "smoothed_predict"]

ABSTAIN = -1
DEFAULT_BATCH_SIZE = 4096
DEFAULT_N = 10_000  # certify(), smoothed_predict(), RandomizedSmoothing and the recipes' eval.certification.n


# ---------------------------------------------------------------------------------------------- validation
def check_sigma(sigma: Any) -> float:
    return check_open(sigma, "sigma", 0.0, what=" (the std of the smoothing noise)")


def _check_inputs(model: Any, x: Any) -> None:
    """The model is a module; ``x`` a finite floating-point batch of points ``(points, *input_shape)``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module (the base classifier), got {type(model).__name__}.")
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 1:
        got = f"a {x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"`x` must be a floating-point tensor of shape (points, *input_shape), got {got}.")
    if x.dim() == 1:
        raise ValueError(
            f"`x` must have shape (points, *input_shape), got shape {tuple(x.shape)}: a 1-D tensor is ambiguous. "
            "For one point use x[None] (shape (1, *input_shape)); for scalar points use x[:, None]."
        )
    finite = torch.isfinite(x.flatten(1)).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten().tolist()
        raise ValueError(
            f"`x` must be finite: {len(bad)} point(s) hold NaN or infinite values (indices {bad[:10]}"
            f"{', ...' if len(bad) > 10 else ''}). The smoothed classifier is not defined there; drop or repair "
            "those points before certifying."
        )


def model_device(model: nn.Module, default: torch.device | None = None) -> torch.device:
    """The device of the model's first parameter or buffer (``default``, else CPU, for a stateless model)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return default or torch.device("cpu")


def _generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator:
    if generator is None:
        fresh = torch.Generator(device=device)
        fresh.seed()  # fresh entropy, without touching the global RNG
        return fresh
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None, got {type(generator).__name__}.")
    if torch.device(generator.device).type != device.type:
        raise ValueError(
            f"`generator` must be on the model's device ({device}) so that noise is drawn there, got a generator on "
            f"{generator.device}: use torch.Generator(device='{device}')."
        )
    return generator


# ---------------------------------------------------------------------------------------------- model state
@contextmanager
def evaluating(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Run ``model`` in eval mode without gradients; restore every submodule's mode and the global RNG state."""
    modes = [(module, module.training) for module in model.modules()]
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        model.eval()
        try:
            yield
        finally:
            for module, training in modes:
                module.training = training


def _base_predictions(logits: Tensor, batch: int) -> tuple[Tensor, int]:
    """Class predictions of the base classifier and the number of classes (2 for one logit).

    A noisy input whose logits hold a NaN votes for no class (-1): it counts towards ``n`` but towards no class's
    count, so it can only lower ``p_low`` (``argmax`` would have counted it for class 0).
    """
    if not isinstance(logits, Tensor) or logits.shape[:1] != (batch,):
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"The model must return logits of shape (batch,), (batch, 1) or (batch, classes), got {shape}."
        )
    if logits.dim() == 1 or (logits.dim() == 2 and logits.shape[1] == 1):
        logits = logits.reshape(batch)
        return (logits > 0).long().masked_fill_(logits.isnan(), -1), 2
    if logits.dim() != 2:
        raise ValueError(f"The model must return logits of shape (batch, classes), got {tuple(logits.shape)}.")
    top, predictions = logits.max(dim=1)  # a NaN in a row propagates to its maximum
    return predictions.masked_fill_(top.isnan(), -1), logits.shape[1]


# ---------------------------------------------------------------------------------------------- sampling
def sample_counts(
    model: nn.Module,
    x: Tensor,
    sigma: float,
    num: int,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    generator: torch.Generator,
    num_classes: int | None = None,
) -> Tensor:
    """How often the base classifier predicts each class on ``num`` noisy copies of each point: ``(points, C)``.

    Samples ``i * num .. (i + 1) * num - 1`` of a flat sequence belong to point ``i``; the sequence is cut into
    forward calls of ``batch_size`` samples, so one call holds the copies of several points when ``num`` is
    small. The model must already be in eval mode on ``generator``'s device (see :func:`certify`).
    """
    device = torch.device(generator.device)
    x = x.to(device)
    points = x.shape[0]
    # Column 0 counts the votes for no class (NaN logits, prediction -1), column c + 1 class c.
    counts = None if num_classes is None else torch.zeros(points, num_classes + 1, dtype=torch.long, device=device)
    ones = torch.ones(min(batch_size, points * num), dtype=torch.long, device=device)
    total = points * num
    # One-channel images (B, 1, H, W) on the CPU: the noise is drawn and added in the (B, H, W, 1) view and the
    # model gets it permuted back, with channels-last strides. The same draws, the same numbers in the same memory
    # order (contiguous either way, so `view` works in the model), but those strides make PyTorch's CPU
    # convolutions produce channels-last outputs, on which the pooling that follows is vectorized over channels:
    # the recipes' CNN certifies 1.6x the points per second at batch 4096 on one thread. Other devices and shapes
    # keep the layout of `x`.
    channels_last = device.type == "cpu" and x.dim() == 4 and x.shape[1] == 1
    if channels_last:
        x = x.reshape(points, x.shape[2], x.shape[3], 1)  # not permute: its last stride would be H * W, not 1
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        first = start // num
        one_point = (stop - 1) // num == first  # every copy in this call is of point `first`: no index needed
        index = None if one_point else torch.arange(start, stop, device=device) // num
        clean = x[first].expand(stop - start, *x.shape[1:]) if index is None else x[index]
        noise = torch.randn(clean.shape, generator=generator, device=device, dtype=x.dtype)
        noisy = torch.add(clean, noise, alpha=sigma)
        predictions, classes = _base_predictions(
            model(noisy.permute(0, 3, 1, 2) if channels_last else noisy), stop - start
        )
        if counts is None:
            counts = torch.zeros(points, classes + 1, dtype=torch.long, device=device)
        elif classes + 1 != counts.shape[1]:
            raise ValueError(f"The model returned {classes} classes in one batch and {counts.shape[1] - 1} in another.")
        if index is None:
            counts[first].index_add_(0, predictions + 1, ones[: stop - start])
        else:
            counts.view(-1).index_add_(0, index * (classes + 1) + predictions + 1, ones[: stop - start])
    assert counts is not None  # points >= 1 and num >= 1
    return counts[:, 1:].cpu()


def certify(
    model: nn.Module,
    x: Tensor,
    sigma: float,
    *,
    n0: int = 100,
    n: int = DEFAULT_N,
    alpha: float = 0.001,
    batch_size: int = DEFAULT_BATCH_SIZE,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Certify the smoothed classifier at each point: its class (or -1 = abstain) and a certified L2 radius.

    CERTIFY of Cohen et al. (2019), for every row of ``x``: ``n0`` noisy copies ``x + sigma * eps`` pick the top
    class; ``n`` fresh copies count it; ``p_low`` = one-sided Clopper-Pearson lower bound at level
    ``1 - alpha``; abstain when ``p_low <= 1/2``, else radius ``sigma * Phi^-1(p_low)``. With probability at
    least ``1 - alpha`` (per point, over the noise), a returned class is the smoothed classifier's prediction
    and no input within that L2 distance of ``x`` changes it.

    The model is called in eval mode without gradients (every submodule's train/eval mode is restored after),
    on batches of ``batch_size`` noisy inputs drawn on its device from ``generator`` (one ``N(0, 1)`` number
    per element of every copy). The global RNG state is restored after, even if the model consumes it.

    Args:
        model: the base classifier: ``model(batch)`` returns logits ``(batch, classes)``, or ``(batch,)`` /
            ``(batch, 1)`` for binary classification (class 1 when the logit is > 0).
        x: ``(points, *input_shape)`` finite floating-point inputs, in the space the noise is added in (at least
            2-D: one point is ``x[None]``).
        sigma: the std of the smoothing noise (> 0): the noise the model was trained with, typically.
        n0: samples that select the top class.
        n: samples that estimate its probability (the radius grows with ``n`` towards the exact one). The
            default, 10,000, is the library's one default (the callback's and the recipes' too): minutes on a
            CPU, and radii up to ``3.20 sigma`` at ``alpha = 0.001``; Cohen et al. report ``n = 100,000``
            (radii up to ``3.81 sigma``, ten times the cost).
        alpha: failure probability of each certificate.
        batch_size: noisy inputs per forward call.
        generator: a ``torch.Generator`` on the model's device; ``None``: fresh entropy.

    Returns:
        ``(labels, radii)``: int64 labels (``-1`` = abstain) and float64 radii (0 when abstaining), on CPU.

    Raises:
        ValueError: bad ``sigma``, ``n0``, ``n``, ``alpha`` or ``batch_size``; a generator on another device;
            model outputs that are not logits; a 1-D ``x`` (ambiguous: one point or scalar points?); an ``x`` with
            NaN or infinite values (refused rather than certified: the smoothed classifier is not defined there).
            A noisy input on which the model returns NaN logits votes for no class.
        TypeError: ``model`` not a module, ``x`` not a floating-point tensor, ``generator`` not a generator.

    Example::

        >>> model = torch.nn.Linear(2, 1)                 # binary: class 1 where w.x + b > 0
        >>> labels, radii = certify(model, torch.randn(5, 2), sigma=0.25, n=1000,
        ...                         generator=torch.Generator().manual_seed(0))
        >>> labels.shape, radii.dtype
        (torch.Size([5]), torch.float64)
    """
    sigma, alpha = check_sigma(sigma), check_alpha(alpha)
    n0, n = check_int(n0, "n0", minimum=1), check_int(n, "n", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    _check_inputs(model, x)
    if x.shape[0] == 0:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.float64)
    device = model_device(model, x.device)
    generator = _generator(generator, device)
    with evaluating(model, device):
        selection = sample_counts(model, x, sigma, n0, batch_size=batch_size, generator=generator)
        top = selection.argmax(dim=1)
        counts = sample_counts(
            model, x, sigma, n, batch_size=batch_size, generator=generator, num_classes=selection.shape[1]
        )
    return certificates(counts.gather(1, top[:, None]).squeeze(1), n, top, sigma=sigma, alpha=alpha)


def certificates(k: Tensor, n: int, top: Tensor, *, sigma: float, alpha: float) -> tuple[Tensor, Tensor]:
    """Labels and radii from the top class's count ``k`` among ``n`` samples (the last step of CERTIFY)."""
    p_low = clopper_pearson_lower(k, n, alpha)
    certified = p_low > 0.5
    radii = torch.where(certified, sigma * torch.special.ndtri(p_low), torch.zeros_like(p_low))
    labels = torch.where(certified, top.long(), torch.full_like(top.long(), ABSTAIN))
    return labels, radii


def max_certified_radius(sigma: float, n: int, alpha: float) -> float:
    """The largest radius CERTIFY can return with ``n`` samples: ``sigma * ndtri(alpha ** (1 / n))``.

    Reached when all ``n`` noisy samples vote for the top class (the Clopper-Pearson lower bound of ``n`` out of
    ``n`` is ``alpha ** (1 / n)``); no point is certified beyond it, whatever the model, so a certified-accuracy
    curve is 0 past it. It grows only like ``sigma * sqrt(2 ln(n / ln(1 / alpha)))``: 3.20 sigma at ``n = 10,000``
    and 3.81 sigma at ``n = 100,000`` (``alpha = 0.001``).

    Args:
        sigma: the std of the smoothing noise (> 0).
        n: samples that bound the top class's probability (>= 1).
        alpha: the failure probability of each certificate, in ``[1e-100, 1)``.

    Raises:
        ValueError: ``sigma``, ``n`` or ``alpha`` out of range (naming the argument).

    Example::

        >>> round(max_certified_radius(1.0, 10_000, 0.001), 2)
        3.2
    """
    sigma = check_sigma(sigma)
    n = check_int(n, "n", minimum=1)
    _, radius = certificates(torch.tensor([n]), n, torch.zeros(1, dtype=torch.long), sigma=sigma, alpha=alpha)
    return float(radius[0])


def smoothed_predict(
    model: nn.Module,
    x: Tensor,
    sigma: float,
    *,
    n: int = DEFAULT_N,
    alpha: float = 0.001,
    batch_size: int = DEFAULT_BATCH_SIZE,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The smoothed classifier's prediction at each point, or -1 (abstain): PREDICT of Cohen et al. (2019).

    ``n`` noisy copies per point; with ``n_A >= n_B`` the counts of the two most frequent classes, the answer
    is the first class if the two-sided binomial test of ``n_A`` out of ``n_A + n_B`` at ``p = 1/2`` has a
    p-value at most ``alpha``, else -1. It returns a class other than the smoothed classifier's with
    probability at most ``alpha``. Model mode, batching, noise and RNG as in :func:`certify`.

    Args:
        model: the base classifier (logits, or one logit for binary classification).
        x: ``(points, *input_shape)`` finite floating-point inputs (at least 2-D).
        sigma: the std of the smoothing noise (> 0).
        n: noisy samples per point (default 10,000, as :func:`certify`).
        alpha: the probability of a wrong (non-abstaining) answer.
        batch_size: noisy inputs per forward call.
        generator: a ``torch.Generator`` on the model's device; ``None``: fresh entropy.

    Returns:
        int64 labels on CPU, ``-1`` where the test does not separate the top two classes.

    Raises:
        ValueError, TypeError: as :func:`certify`.

    Example::

        >>> model = torch.nn.Linear(2, 3)
        >>> smoothed_predict(model, torch.randn(4, 2), 0.5, n=1000, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([4])
    """
    sigma, alpha = check_sigma(sigma), check_alpha(alpha)
    n, batch_size = check_int(n, "n", minimum=1), check_int(batch_size, "batch_size", minimum=1)
    _check_inputs(model, x)
    if x.shape[0] == 0:
        return torch.empty(0, dtype=torch.long)
    device = model_device(model, x.device)
    generator = _generator(generator, device)
    with evaluating(model, device):
        counts = sample_counts(model, x, sigma, n, batch_size=batch_size, generator=generator)
    return predictions(counts, alpha)


def predictions(counts: Tensor, alpha: float) -> Tensor:
    """PREDICT's decision from class counts ``(points, classes)``: the top class, or -1 when not significant."""
    top2 = counts.topk(2, dim=1)
    n_a, n_b = top2.values[:, 0], top2.values[:, 1]
    significant = binomial_test_half(n_a, n_a + n_b) <= alpha  # n_a + n_b >= n_a >= 1: the top class was seen
    return torch.where(significant, top2.indices[:, 0], torch.full_like(top2.indices[:, 0], ABSTAIN))
