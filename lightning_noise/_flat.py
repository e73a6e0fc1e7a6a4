"""Parameter-sized noise at low cost: one flat buffer per (device, dtype), foreach ops, an optional noise table.

Weight and gradient noise draw one random number per parameter at every step, so the cost of generating them
is what these callbacks cost. Everything here is built once and reused: a :class:`FlatGroup` holds one
preallocated flat buffer with a view shaped like each tensor of its group, so a step is one draw into the
buffer followed by ``torch._foreach_*`` ops over the views, with no per-tensor kernel launched from Python and
no host-device synchronization.

Two ways to fill the buffer with standard normal numbers:

- ``"exact"``: ``buffer.normal_(generator=g)``, fresh independent draws (on CPU about 200 million a second
  per core, the dominant cost of the step for a large model).
- ``"table"``: :class:`NoiseTable`, a fixed table of standard normal numbers drawn once from the seed; each
  draw is ``(w1 + s * w2)`` over two windows of the table at offsets chosen from the step's key, with a random
  sign ``s``. It costs one pass over memory (about 40 times faster than ``normal_`` on CPU); the price is that
  draws are not independent of each other: two draws whose windows overlap reuse the same numbers at shifted
  positions. See ``docs/weight-and-gradient-noise.md`` for the trade-off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from lightning_noise._base import mix_seed

Sampler = Literal["exact", "table"]
SAMPLERS: tuple[str, ...] = ("exact", "table")
DEFAULT_TABLE_SIZE = 1 << 22
_SQRT3 = math.sqrt(3.0)


def check_sampler(sampler: str, table_size: int, owner: str) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"{owner}: `sampler` must be one of {list(SAMPLERS)}, got {sampler!r}.")
    if isinstance(table_size, bool) or not isinstance(table_size, int) or table_size < 2:
        raise ValueError(f"{owner}: `table_size` must be an integer >= 2, got {table_size!r}.")


@dataclass
class FlatGroup:
    """Tensors of one device and dtype, with a flat buffer and a view of it shaped like each tensor.

    Attributes:
        indices: positions of the group's tensors in the list the group was built from.
        buffer: the flat buffer (``numel`` = total size of the group).
        views: ``buffer`` cut into views shaped like the group's tensors, in ``indices`` order.
    """

    device: torch.device
    dtype: torch.dtype
    indices: list[int]
    buffer: Tensor
    views: list[Tensor] = field(default_factory=list)


def flat_groups(tensors: Sequence[Tensor]) -> list[FlatGroup]:
    """Group ``tensors`` by (device, dtype) and preallocate a flat buffer with views for each group."""
    by_key: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for index, tensor in enumerate(tensors):
        by_key.setdefault((tensor.device, tensor.dtype), []).append(index)
    groups = []
    for (device, dtype), indices in by_key.items():
        sizes = [tensors[i].numel() for i in indices]
        buffer = torch.empty(sum(sizes), device=device, dtype=dtype)
        chunks = torch.split(buffer, sizes)
        views = [chunk.view(tensors[i].shape) for chunk, i in zip(chunks, indices)]
        groups.append(FlatGroup(device, dtype, indices, buffer, views))
    return groups


class NoiseTable:
    """A fixed table of standard normal numbers, read as the signed sum of two windows at keyed offsets.

    The table holds ``size`` numbers drawn once from ``seed`` (on the CPU, so every device sees the same
    table), standardized to mean 0 and variance 1/2 over the table. :meth:`fill_` writes
    ``table[o1:o1+n] + s * table[o2:o2+n]`` into a flat buffer of ``n`` elements, with ``o1 != o2`` and the sign
    ``s`` derived from an integer key by hashing: no random number is generated per draw and no value goes
    from the device to the host. Each element of a draw is a sum of two distinct table entries, so within a
    draw the elements are independent and ~N(0, 1) (as far as the table is a sample of N(0, 1)); across draws
    they are not independent, since windows overlap.

    Args:
        size: number of entries; grown to ``2 * n`` (plus one) when a buffer of ``n`` elements is filled.
        seed: seed of the table.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = int(size)
        self.seed = int(seed)
        self._tables: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def _table(self, n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        table = self._tables.get((device, dtype))
        if table is not None and table.numel() > n:
            return table
        size = max(self.size, 2 * n + 1)
        if size != self.size:
            self.size = size
            self._tables.clear()
        generator = torch.Generator().manual_seed(self.seed)
        values = torch.randn(size, generator=generator, dtype=torch.float64)
        values = (values - values.mean()) / values.std() * math.sqrt(0.5)
        table = values.to(device=device, dtype=dtype)
        self._tables[(device, dtype)] = table
        return table

    def offsets(self, n: int, key: int) -> tuple[int, int, float]:
        """The two window offsets and the sign used for a draw of ``n`` numbers under ``key``."""
        span = max(self.size, 2 * n + 1) - n + 1
        first = mix_seed(key, 1)
        o1 = first % span
        o2 = (o1 + 1 + mix_seed(key, 2) % (span - 1)) % span
        sign = 1.0 if (first >> 61) & 1 else -1.0
        return o1, o2, sign

    def fill_(self, out: Tensor, key: int) -> Tensor:
        """Write ``n = out.numel()`` standard normal numbers into the contiguous 1-d tensor ``out``."""
        n = out.numel()
        table = self._table(n, out.device, out.dtype)
        o1, o2, sign = self.offsets(n, key)
        return torch.add(table[o1 : o1 + n], table[o2 : o2 + n], alpha=sign, out=out)


def fill_standard_(
    out: Tensor,
    *,
    distribution: Literal["normal", "uniform"],
    generator: torch.Generator,
    table: NoiseTable | None,
    key: int,
) -> Tensor:
    """Fill the flat buffer ``out`` with zero-mean, unit-variance noise.

    ``normal``: from ``table`` when given, else ``normal_`` with ``generator``. ``uniform``: U(-sqrt 3, sqrt 3)
    from ``generator`` (the table holds normal numbers only).
    """
    if distribution == "uniform":
        return out.uniform_(-_SQRT3, _SQRT3, generator=generator)
    if table is not None:
        return table.fill_(out, key)
    return out.normal_(generator=generator)
