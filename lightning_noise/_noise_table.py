"""The noise table: a fixed table of normal numbers from which a draw is two windows at keyed offsets.

Each draw is ``w1 + s * w2`` over two windows of the table at offsets chosen from the step's key, with a random
sign ``s``. The windows are views, so a draw generates nothing and moves nothing: the foreach ops read the
table directly (about 5 times cheaper than the exact draw, ``normal_`` into a buffer, for a whole weight-noise
step on CPU). The price is that draws are not independent of each other: two draws whose windows overlap
reuse the same numbers at shifted positions. See ``docs/weight-and-gradient-noise.md`` for the trade-off.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_noise._flat_buffers import FlatGroup
from lightning_noise._seeding import mix_seed


class NoiseTable:
    """A fixed table of standard normal numbers, read as the signed sum of two disjoint windows at keyed offsets.

    A draw of ``n`` numbers under an integer key is ``table[o1:o1+n] + s * table[o2:o2+n]``, with the first
    window in the lower half of the table, the second in the upper half (so the two never share an entry), and
    the offsets and the sign ``s`` derived from the key by hashing: no random number is generated per draw and
    no value goes from the device to the host. :meth:`pair` returns the two windows flat, :meth:`windows` as
    views cut like a :class:`FlatGroup` (callers add them with two foreach ops).

    Within a draw, every element is the sum of two table entries that no other element of the draw uses, so the
    elements are independent and ~N(0, 1) (as far as the table is a sample of N(0, 1)). Across draws they are
    not independent: windows of different draws overlap and reuse entries at shifted positions.

    The table a draw reads is a pure function of ``(seed, size)``: ``size`` entries, or the smallest power of
    two >= ``2 * n`` for a larger draw, each standardized to mean 0 and variance 1/2. So a draw depends only on
    (seed, n, key), never on which draws came before: resumed runs draw the same numbers.

    Args:
        size: number of entries of the table for draws of up to ``size // 2`` numbers.
        seed: seed of the table.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = int(size)
        self.seed = int(seed)
        self._tables: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}

    def table_size(self, n: int) -> int:
        """Entries of the table that a draw of ``n`` numbers reads."""
        return self.size if 2 * n <= self.size else 1 << (2 * n - 1).bit_length()

    def _table(self, n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        size = self.table_size(n)
        table = self._tables.get((size, device, dtype))
        if table is None:
            generator = torch.Generator().manual_seed(mix_seed(self.seed, size))
            values = torch.randn(size, generator=generator, dtype=torch.float64)
            values = (values - values.mean()) / values.std() * math.sqrt(0.5)
            table = values.to(device=device, dtype=dtype)
            self._tables[(size, device, dtype)] = table
        return table

    def offsets(self, n: int, key: int) -> tuple[int, int, float]:
        """The two window offsets (lower half, upper half) and the sign of a draw of ``n`` numbers under ``key``."""
        half = self.table_size(n) // 2
        span = half - n + 1
        first = mix_seed(key, 1)
        o1 = first % span
        o2 = half + mix_seed(key, 2) % span
        sign = 1.0 if (first >> 61) & 1 else -1.0
        return o1, o2, sign

    def pair(self, n: int, key: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, float]:
        """The two flat windows (views of the table) of a draw of ``n`` numbers under ``key``, and the sign."""
        table = self._table(n, device, dtype)
        o1, o2, sign = self.offsets(n, key)
        return table[o1 : o1 + n], table[o2 : o2 + n], sign

    def windows(self, group: FlatGroup, key: int) -> tuple[list[Tensor], list[Tensor], float]:
        """The two windows of the draw for ``group`` under ``key``, as views shaped like its tensors, and the sign."""
        first, second, sign = self.pair(group.buffer.numel(), key, group.device, group.dtype)
        return _cut(first, group), _cut(second, group), sign


def _cut(window: Tensor, group: FlatGroup) -> list[Tensor]:
    return [chunk.view(view.shape) for chunk, view in zip(torch.split(window, group.sizes), group.views, strict=True)]


def add_table_noise(
    x: Tensor, std: float | Tensor, table: NoiseTable, key: int, *, multiplicative: bool = False
) -> Tensor:
    """``x + std * n`` (or ``x * (1 + std * n)``) with ``n`` ~ N(0, 1) read from ``table`` under ``key``; out of place.

    ``n`` is the signed sum of two windows of the table shaped like ``x``: two elementwise passes, nothing drawn.
    """
    if not isinstance(std, Tensor) and std == 0:
        return x
    first, second, sign = table.pair(x.numel(), key, x.device, x.dtype)
    first, second = first.view(x.shape), second.view(x.shape)
    if multiplicative:
        noise = torch.add(first, second, alpha=sign)
        return x * (noise.mul_(std) if isinstance(std, Tensor) else noise.mul_(float(std))).add_(1.0)
    if isinstance(std, Tensor):
        return torch.addcmul(x, torch.add(first, second, alpha=sign), std.to(x.dtype))
    return torch.add(x, first, alpha=float(std)).add_(second, alpha=float(std) * sign)
