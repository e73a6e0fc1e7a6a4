"""Label noise maths: smoothing, flipping and class-dependent transitions of class indices and binary targets.

Pure functions: each takes the targets (and a ``torch.Generator`` where it draws) and returns a new tensor. The
``..._from_uniform`` rules take the uniform numbers instead of drawing them, so the counter-based sampler used
under ``torch.compile`` applies the same rule to its own random numbers.

Example::

    >>> import torch
    >>> from lightning_noise.functional import flip_labels
    >>> flip_labels(torch.tensor([0, 1, 2]), 3, 0.0).tolist()
    [0, 1, 2]
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

SmoothingStyle = Literal["book", "uniform"]


def smooth_labels(
    target: Tensor,
    num_classes: int,
    smoothing: float | Tensor,
    *,
    style: SmoothingStyle = "book",
    class_dim: int = 1,
    ignore_index: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Class indices to smoothed probability targets, with the class dimension inserted at ``class_dim``.

    ``style="book"``: ``1 - eps`` for the true class and ``eps / (k - 1)`` for each other class.
    ``style="uniform"`` (PyTorch's ``label_smoothing``, Szegedy et al.): ``(1 - eps) * onehot + eps / k``.
    Positions equal to ``ignore_index`` get an all-zero row, so they contribute nothing to a cross-entropy.

    Example::

        >>> import torch
        >>> smooth_labels(torch.tensor([0, 2]), 3, 0.1)
        tensor([[0.9000, 0.0500, 0.0500],
                [0.0500, 0.0500, 0.9000]])
    """
    if style == "book":
        on, off = 1.0 - smoothing, smoothing / (num_classes - 1)
    else:
        on, off = (1.0 - smoothing) + smoothing / num_classes, smoothing / num_classes
    valid = None if ignore_index is None else target != ignore_index
    index = target if valid is None else target.masked_fill(~valid, 0)
    shape = list(target.shape)
    shape.insert(class_dim, num_classes)
    if isinstance(smoothing, Tensor):  # a scheduled amount under torch.compile: no graph constant
        hot = torch.zeros(shape, dtype=torch.bool, device=target.device)
        hot.scatter_(class_dim, index.unsqueeze(class_dim).long(), True)
        on_t = torch.as_tensor(on, device=target.device, dtype=dtype)  # on and off are tensors here: .to()
        out = torch.where(hot, on_t, torch.as_tensor(off, device=target.device, dtype=dtype))
    else:
        out = torch.full(shape, float(off), dtype=dtype, device=target.device)
        out.scatter_(class_dim, index.unsqueeze(class_dim).long(), on)
    return out if valid is None else out * valid.unsqueeze(class_dim)


def smooth_probabilities(
    target: Tensor, num_classes: int, smoothing: float | Tensor, *, style: SmoothingStyle = "book"
) -> Tensor:
    """Smooth probability (or binary) targets: the same formulas as :func:`smooth_labels`, applied elementwise.

    ``book``: ``y * (1 - eps) + (1 - y) * eps / (k - 1)``; ``uniform``: ``y * (1 - eps) + eps / k``. For binary
    targets (``k = 2``, e.g. ``BCEWithLogitsLoss``) the book form is ``y * (1 - eps) + (1 - y) * eps``.
    """
    if style == "book":
        return target * (1.0 - smoothing) + (1.0 - target) * (smoothing / (num_classes - 1))
    return target * (1.0 - smoothing) + smoothing / num_classes


def flip_labels(
    target: Tensor,
    num_classes: int,
    p: float,
    generator: torch.Generator | None = None,
    *,
    ignore_index: int | None = None,
) -> Tensor:
    """Replace each class index, with probability ``p``, by a class drawn uniformly among the ``k - 1`` others.

    Vectorized: a flipped label becomes ``(y + o) mod k`` with ``o`` uniform in ``1..k-1``, so it never equals
    the original. Positions equal to ``ignore_index`` are kept. Returns ``target`` itself when ``p == 0``.
    """
    if p == 0:
        return target
    u = torch.rand(target.shape, generator=generator, device=target.device)
    v = torch.rand(target.shape, generator=generator, device=target.device)
    return flip_labels_from_uniform(target, num_classes, p, u, v, ignore_index)


def flip_labels_from_uniform(
    target: Tensor, num_classes: int, p: float | Tensor, u: Tensor, v: Tensor, ignore_index: int | None
) -> Tensor:
    """:func:`flip_labels` from two given uniform tensors: ``u`` decides the flip, ``v`` the new class."""
    flip = u < p
    if ignore_index is not None:
        flip &= target != ignore_index
    offset = 1 + (v * (num_classes - 1)).long().clamp_(max=num_classes - 2).to(target.dtype)
    return torch.where(flip, torch.remainder(target + offset, num_classes), target)


def transition_labels(
    target: Tensor,
    transition: Tensor,
    generator: torch.Generator | None = None,
    *,
    ignore_index: int | None = None,
) -> Tensor:
    """Draw each noisy label from row ``y`` of the row-stochastic ``transition`` matrix: P(new = j | y = i) = T[i, j].

    The diagonal is the probability of keeping the label. Positions equal to ``ignore_index`` are kept.
    """
    u = torch.rand(target.shape, generator=generator, device=target.device, dtype=transition_dtype(target.device))
    return transition_labels_from_uniform(target, transition, u, ignore_index)


def transition_dtype(device: torch.device) -> torch.dtype:
    """The dtype of a transition draw's uniform numbers and cumulative rows: float64, or float32 on MPS (which
    has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


def transition_labels_from_uniform(target: Tensor, transition: Tensor, u: Tensor, ignore_index: int | None) -> Tensor:
    """:func:`transition_labels` from a given uniform tensor ``u``."""
    dtype = u.dtype
    cdf = transition.to(device=target.device, dtype=dtype).cumsum(dim=1)
    valid = None if ignore_index is None else target != ignore_index
    index = (target if valid is None else target.masked_fill(~valid, 0)).long()
    new = (cdf[index] <= u.unsqueeze(-1)).sum(dim=-1).clamp_(max=transition.shape[0] - 1).to(target.dtype)
    return new if valid is None else torch.where(valid, new, target)


def flip_binary(target: Tensor, p: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Replace each binary target ``y`` by ``1 - y`` with probability ``p`` (a float or a broadcastable tensor)."""
    return flip_binary_from_uniform(target, p, torch.rand(target.shape, generator=generator, device=target.device))


def flip_binary_from_uniform(target: Tensor, p: float | Tensor, u: Tensor) -> Tensor:
    """:func:`flip_binary` from a given uniform tensor ``u``: ``1 - y`` where ``u < p``."""
    return torch.where(u < p, 1 - target, target)
