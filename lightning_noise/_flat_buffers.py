"""Flat noise buffers: one preallocated buffer per (device, dtype), with a view shaped like each tensor.

Weight and gradient noise draw one random number per parameter at every step, so the cost of generating them
is what these callbacks cost. A :class:`FlatGroup` is built once and reused: a step is one draw into the
buffer followed by ``torch._foreach_*`` ops over the views, with no per-tensor kernel launched from Python and
no host-device synchronization.

The exact draw under a key is :func:`fill_standard_`, ``buffer.normal_(generator=g)`` (fresh independent
draws; on CPU about 200 million a second per core, the dominant cost of the step for a large model), a pure
function of (key, layout).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from lightning_noise.functional.additive import UNIFORM_HALF_WIDTH


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
    sizes: list[int] = field(default_factory=list)


def flat_groups(tensors: Sequence[Tensor], *, allocate: bool = True) -> list[FlatGroup]:
    """Group ``tensors`` by (device, dtype) and preallocate a flat buffer with views for each group.

    ``allocate=False`` gives the layout only (the buffer on the meta device, holding no memory): enough to cut
    the windows of a :class:`~lightning_noise._noise_table.NoiseTable` draw.
    """
    by_key: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for index, tensor in enumerate(tensors):
        by_key.setdefault((tensor.device, tensor.dtype), []).append(index)
    groups = []
    for (device, dtype), indices in by_key.items():
        sizes = [tensors[i].numel() for i in indices]
        buffer = torch.empty(sum(sizes), device=device if allocate else "meta", dtype=dtype)
        chunks = torch.split(buffer, sizes)
        views = [chunk.view(tensors[i].shape) for chunk, i in zip(chunks, indices, strict=True)]
        groups.append(FlatGroup(device, dtype, indices, buffer, views, sizes))
    return groups


def allocate_(group: FlatGroup) -> FlatGroup:
    """Give a layout-only group (``flat_groups(..., allocate=False)``) a real buffer and views, in place; a group
    that has one is left as it is. For a noise-table draw too long to be read as views of the table."""
    if group.buffer.device.type == "meta":
        group.buffer = torch.empty(group.buffer.numel(), device=group.device, dtype=group.dtype)
        chunks = torch.split(group.buffer, group.sizes)
        group.views = [chunk.view(view.shape) for chunk, view in zip(chunks, group.views, strict=True)]
    return group


def fill_standard_(
    groups: Sequence[FlatGroup],
    seed: int,
    distribution: Literal["normal", "uniform"],
    generator: Callable[[torch.device], torch.Generator],
) -> None:
    """Fill the buffers of ``groups`` with the exact draw under ``seed``: zero-mean, unit-variance numbers.

    The generator of each device (``generator(device)``) is seeded with ``seed``, then the groups are drawn in
    order, ``normal`` N(0, 1) or ``uniform`` U(-sqrt 3, sqrt 3). The numbers are a pure function of (seed,
    distribution, the groups' sizes and devices): whichever generator object or thread computes them, the
    values are the same. The prefetch relies on this.
    """
    seeded: set[torch.device] = set()
    for group in groups:
        g = generator(group.device)
        if group.device not in seeded:
            g.manual_seed(seed)
            seeded.add(group.device)
        if distribution == "uniform":
            group.buffer.uniform_(-UNIFORM_HALF_WIDTH, UNIFORM_HALF_WIDTH, generator=g)
        else:
            group.buffer.normal_(generator=g)
