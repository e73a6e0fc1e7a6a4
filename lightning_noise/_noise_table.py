"""The noise table: a fixed table of normal numbers from which a draw is two windows at keyed offsets.

Each draw is ``w1 + s * w2`` over two windows of the table at offsets chosen from the step's key, with a random
sign ``s``. The windows are views, so a draw generates nothing and moves nothing: the foreach ops read the
table directly (about 5 times cheaper than the exact draw, ``normal_`` into a buffer, for a whole weight-noise
step on CPU). The price is that draws are not independent of each other: two draws whose windows overlap
reuse the same numbers at shifted positions. See ``docs/weight-and-gradient-noise.md`` for the trade-off.

**Memory.** The table holds exactly ``size`` entries (``table_size``; default 2^22, 16 MB in float32) per
(device, dtype) it is read on, whatever the size of the draws: a draw longer than a window (``size // 4``
numbers) is cut into chunks, each with its own pair of windows, and written into a buffer
(:meth:`NoiseTable.fill_`). Building the table takes one chunk of float64 numbers at a time (8 MB), not a
float64 copy of the whole table.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_noise._flat_buffers import FlatGroup
from lightning_noise._seeding import mix_seed

_BUILD_CHUNK = 1 << 20  # float64 numbers generated at a time while building a table (8 MB)


class NoiseTable:
    """A fixed table of standard normal numbers, read as signed sums of two disjoint windows at keyed offsets.

    A draw of ``n <= window`` numbers under an integer key is ``table[o1:o1+n] + s * table[o2:o2+n]``, with the
    first window in the lower half of the table, the second in the upper half (so the two never share an entry),
    and the offsets and the sign ``s`` derived from the key by hashing: no random number is generated per draw
    and no value goes from the device to the host. :meth:`pair` returns the two windows flat, :meth:`windows` as
    views cut like a :class:`FlatGroup` (callers add them with two foreach ops).

    A window is at most ``window = size // 4`` numbers, so the offsets of every draw range over at least
    ``size // 4 + 1`` positions and consecutive draws move. A longer draw is cut into chunks of ``window``
    numbers, chunk ``c`` with its own offsets and sign (keyed by ``(key, c)``; chunk 0 is the short draw of the
    same key), and is written into a buffer by :meth:`fill_`. The table never grows: memory is ``size`` entries.

    Within one window pair, every element is the sum of two table entries that no other element of the pair
    uses, so the elements are independent and ~N(0, 1) (as far as the table is a sample of N(0, 1)). Across
    draws, and across the chunks of one long draw, they are not: windows overlap and reuse entries at shifted
    positions (two elements that share one entry have correlation +-0.5). A table of ``4 n`` entries keeps a
    draw of ``n`` numbers in one pair.

    The table is a pure function of ``(seed, size)``, standardized to mean 0 and variance 1/2, so a draw depends
    only on (seed, size, n, key), never on which draws came before: resumed runs draw the same numbers.

    Args:
        size: number of entries of the table (>= 2).
        seed: seed of the table.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = int(size)
        self.seed = int(seed)
        self.window = max(self.size // 4, 1)
        self._tables: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def fits(self, n: int) -> bool:
        """Whether a draw of ``n`` numbers is one pair of windows (views of the table, nothing written)."""
        return n <= self.window

    def _table(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        table = self._tables.get((device, dtype))
        if table is None:
            table = self._tables[(device, dtype)] = self._build(device, dtype)
        return table

    def _build(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """``size`` standard normal numbers (float64, from a generator seeded with ``(seed, size)``) standardized to
        mean 0 and variance 1/2, in ``dtype`` on ``device``. Two passes over the same chunks (moments, then values):
        the transient is one float64 chunk, not three float64 copies of the table."""
        generator = torch.Generator()
        seed = mix_seed(self.seed, self.size)
        generator.manual_seed(seed)
        total = torch.zeros((), dtype=torch.float64)
        squares = torch.zeros((), dtype=torch.float64)
        for start in range(0, self.size, _BUILD_CHUNK):
            values = torch.randn(min(_BUILD_CHUNK, self.size - start), generator=generator, dtype=torch.float64)
            total += values.sum()
            squares += values.square().sum()
        mean = total.item() / self.size
        variance = max(squares.item() - self.size * mean * mean, 0.0) / max(self.size - 1, 1)
        scale = math.sqrt(0.5 / variance) if variance > 0 else 1.0
        table = torch.empty(self.size, dtype=dtype, device=device)
        generator.manual_seed(seed)
        for start in range(0, self.size, _BUILD_CHUNK):
            values = torch.randn(min(_BUILD_CHUNK, self.size - start), generator=generator, dtype=torch.float64)
            table[start : start + values.numel()].copy_(values.sub_(mean).mul_(scale))
        return table

    def offsets(self, n: int, key: int) -> tuple[int, int, float]:
        """The two window offsets (lower half, upper half) and the sign of a draw of ``n <= window`` numbers."""
        half = self.size // 2
        span = half - n + 1
        first = mix_seed(key, 1)
        o1 = first % span
        o2 = half + mix_seed(key, 2) % span
        sign = 1.0 if (first >> 61) & 1 else -1.0
        return o1, o2, sign

    def chunks(self, n: int, key: int) -> list[tuple[int, int, int, int, float]]:
        """``(start, length, o1, o2, sign)`` of each chunk of a draw of ``n`` numbers under ``key``."""
        out = []
        for number, start in enumerate(range(0, n, self.window)):
            length = min(self.window, n - start)
            out.append((start, length, *self.offsets(length, key if number == 0 else mix_seed(key, 3, number))))
        return out

    def pair(self, n: int, key: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, float]:
        """The two flat windows (views of the table) of a draw of ``n <= window`` numbers under ``key``, and the
        sign.

        Raises:
            ValueError: ``n`` is more than a window (use :meth:`fill_`).
        """
        if not self.fits(n):
            raise ValueError(f"a draw of {n} numbers is longer than a window of the table ({self.window}); use fill_")
        table = self._table(device, dtype)
        o1, o2, sign = self.offsets(n, key)
        return table[o1 : o1 + n], table[o2 : o2 + n], sign

    def fill_(self, out: Tensor, key: int) -> Tensor:
        """Write the draw of ``out.numel()`` numbers under ``key`` into ``out`` (flat and contiguous), chunk by chunk;
        a draw that fits one window writes ``first + sign * second`` of :meth:`pair`."""
        table = self._table(out.device, out.dtype)
        for start, length, o1, o2, sign in self.chunks(out.numel(), key):
            torch.add(table[o1 : o1 + length], table[o2 : o2 + length], alpha=sign, out=out[start : start + length])
        return out

    def windows(self, group: FlatGroup, key: int) -> tuple[list[Tensor], list[Tensor], float]:
        """The two windows of the draw for ``group`` under ``key``, as views shaped like its tensors, and the sign
        (a group of at most ``window`` numbers)."""
        first, second, sign = self.pair(group.buffer.numel(), key, group.device, group.dtype)
        return _cut(first, group), _cut(second, group), sign


def _cut(window: Tensor, group: FlatGroup) -> list[Tensor]:
    return [chunk.view(view.shape) for chunk, view in zip(torch.split(window, group.sizes), group.views, strict=True)]


def add_table_noise(
    x: Tensor, std: float | Tensor, table: NoiseTable, key: int, *, multiplicative: bool = False
) -> Tensor:
    """``x + std * n`` (or ``x * (1 + std * n)``) with ``n`` ~ N(0, 1) read from ``table`` under ``key``; out of place.

    ``n`` is the signed sum of two windows of the table shaped like ``x``: two elementwise passes, nothing drawn.
    A draw longer than a window is written into a buffer the size of ``x`` first (:meth:`NoiseTable.fill_`).
    """
    if not isinstance(std, Tensor) and std == 0:
        return x
    if table.fits(x.numel()):
        first, second, sign = table.pair(x.numel(), key, x.device, x.dtype)
        first, second = first.view(x.shape), second.view(x.shape)
        if not multiplicative and not isinstance(std, Tensor):
            return torch.add(x, first, alpha=float(std)).add_(second, alpha=float(std) * sign)
        noise = torch.add(first, second, alpha=sign)
    else:  # a long draw: chunks written into a buffer shaped like x
        noise = table.fill_(torch.empty(x.numel(), device=x.device, dtype=x.dtype), key).view(x.shape)
    if multiplicative:
        return x * (noise.mul_(std) if isinstance(std, Tensor) else noise.mul_(float(std))).add_(1.0)
    if isinstance(std, Tensor):
        return torch.addcmul(x, noise, std.to(x.dtype))
    return torch.add(x, noise, alpha=float(std))
