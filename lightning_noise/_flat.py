"""Parameter-sized noise at low cost: one flat buffer per (device, dtype), foreach ops, an optional noise table.

Weight and gradient noise draw one random number per parameter at every step, so the cost of generating them
is what these callbacks cost. Everything here is built once and reused: a :class:`FlatGroup` holds one
preallocated flat buffer with a view shaped like each tensor of its group, so a step is one draw into the
buffer followed by ``torch._foreach_*`` ops over the views, with no per-tensor kernel launched from Python and
no host-device synchronization.

Two sources of standard normal numbers:

- ``"exact"``: ``buffer.normal_(generator=g)``, fresh independent draws (on CPU about 200 million a second
  per core, the dominant cost of the step for a large model).
- ``"table"``: :class:`NoiseTable`, a fixed table of normal numbers drawn once from the seed; each draw is
  ``w1 + s * w2`` over two windows of the table at offsets chosen from the step's key, with a random sign
  ``s``. The windows are views, so a draw generates nothing and moves nothing: the foreach ops read the table
  directly (about 5 times cheaper than ``"exact"`` for a whole weight-noise step on CPU). The price is that
  draws are not independent of each other: two draws whose windows overlap reuse the same numbers at shifted
  positions. See ``docs/weight-and-gradient-noise.md`` for the trade-off.

The exact draw under a key is :func:`fill_standard_`, a pure function of (key, layout). :class:`Prefetcher`
computes the next step's draw ahead, on a side thread (CPU) or a side CUDA stream, with the same function;
a callback uses it only when the key it derives at the step is the key the draw was made for. Sharded
(DTensor) parameters keep the layout of the whole parameters, and each rank reads its part of the draw
(:func:`local_part`), so the noise does not depend on the sharding.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning.pytorch as pl

import torch
from torch import Tensor

from lightning_noise._base import NoiseCallback, mix_seed, non_negative
from lightning_noise._checks import check_bool, check_choice, check_int
from lightning_noise.schedules import ScheduleLike

Sampler = Literal["exact", "table"]
SAMPLERS: tuple[str, ...] = ("exact", "table")
DEFAULT_TABLE_SIZE = 1 << 22
_SQRT3 = math.sqrt(3.0)


def check_sampler(sampler: str, table_size: int, owner: str) -> None:
    check_choice(sampler, "sampler", SAMPLERS, owner=owner)
    check_int(table_size, "table_size", minimum=2, owner=owner)


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
    the windows of a :class:`NoiseTable` draw.
    """
    by_key: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for index, tensor in enumerate(tensors):
        by_key.setdefault((tensor.device, tensor.dtype), []).append(index)
    groups = []
    for (device, dtype), indices in by_key.items():
        sizes = [tensors[i].numel() for i in indices]
        buffer = torch.empty(sum(sizes), device=device if allocate else "meta", dtype=dtype)
        chunks = torch.split(buffer, sizes)
        views = [chunk.view(tensors[i].shape) for chunk, i in zip(chunks, indices)]
        groups.append(FlatGroup(device, dtype, indices, buffer, views, sizes))
    return groups


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
    return [chunk.view(view.shape) for chunk, view in zip(torch.split(window, group.sizes), group.views)]


def fill_standard_(
    groups: Sequence[FlatGroup],
    seed: int,
    distribution: Literal["normal", "uniform"],
    generator: Callable[[torch.device], torch.Generator],
) -> None:
    """Fill the buffers of ``groups`` with the exact draw under ``seed``: zero-mean, unit-variance numbers.

    The generator of each device (``generator(device)``) is seeded with ``seed``, then the groups are drawn in
    order. The numbers are a pure function of (seed, distribution, the groups' sizes and devices): whichever
    generator object or thread computes them, the values are the same. The prefetch relies on this.
    """
    seeded: set[torch.device] = set()
    for group in groups:
        g = generator(group.device)
        if group.device not in seeded:
            g.manual_seed(seed)
            seeded.add(group.device)
        if distribution == "uniform":
            group.buffer.uniform_(-_SQRT3, _SQRT3, generator=g)
        else:
            group.buffer.normal_(generator=g)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return os.cpu_count() or 1


_CORES = _usable_cores()


@dataclass
class _Pending:
    seed: int
    groups: Sequence[FlatGroup]
    future: Future | None
    events: list[Any]


class Prefetcher:
    """Draws the exact noise of the next step ahead of time: on a side thread for CPU buffers, on a side CUDA
    stream for CUDA buffers, while the current step computes.

    A *slot* is a set of buffers (a list of :class:`FlatGroup`) with at most one draw in flight. :meth:`submit`
    starts the draw for a seed; :meth:`take` waits for it and says whether it was made for the seed now needed.
    Both call :func:`fill_standard_`, so a taken draw holds exactly the numbers a synchronous draw under that
    seed would; when the prediction was wrong the caller draws synchronously. The worker owns a generator per
    device of its own; while a draw is in flight its buffers belong to the worker, and every path that reuses
    them (:meth:`take`, :meth:`discard`, :meth:`close`) waits for it first.

    The side thread is created on the first CPU draw and joined by :meth:`close` (at the end of fit, on an
    exception, at teardown); no thread outlives the fit.
    """

    THREAD_NAME = "lightning-noise-prefetch"

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._pending: dict[Hashable, _Pending] = {}
        self._generators: dict[torch.device, torch.Generator] = {}
        self._streams: dict[torch.device, Any] = {}
        self.hits = 0
        self.misses = 0

    def _generator(self, device: torch.device) -> torch.Generator:
        generator = self._generators.get(device)
        if generator is None:
            generator = self._generators[device] = torch.Generator(device=device)
        return generator

    def submit(
        self, slot: Hashable, groups: Sequence[FlatGroup], seed: int, distribution: Literal["normal", "uniform"]
    ) -> None:
        """Start drawing the numbers of ``seed`` into ``groups``' buffers (after any draw in flight on the slot)."""
        self.discard(slot)
        cpu = [group for group in groups if group.device.type != "cuda"]
        events = []
        for device in {group.device for group in groups if group.device.type == "cuda"}:
            on_device = [group for group in groups if group.device == device]
            stream = self._streams.get(device)
            if stream is None:
                stream = self._streams[device] = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))  # the buffers' last readers run first
            with torch.cuda.stream(stream):
                fill_standard_(on_device, seed, distribution, self._generator)
            event = torch.cuda.Event()
            event.record(stream)
            events.append((device, event))
        future = None
        if cpu:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.THREAD_NAME)
            future = self._executor.submit(self._fill, cpu, seed, distribution)
        self._pending[slot] = _Pending(seed, groups, future, events)

    def _fill(self, groups: list[FlatGroup], seed: int, distribution: Literal["normal", "uniform"]) -> None:
        with torch.no_grad():
            fill_standard_(groups, seed, distribution, self._generator)

    def pending_seed(self, slot: Hashable) -> int | None:
        pending = self._pending.get(slot)
        return None if pending is None else pending.seed

    def _wait(self, pending: _Pending) -> bool:
        ok = True
        if pending.future is not None:
            ok = pending.future.exception() is None  # waits; an error means: draw again synchronously
        for device, event in pending.events:
            torch.cuda.current_stream(device).wait_event(event)
        return ok

    def take(self, slot: Hashable, seed: int, groups: Sequence[FlatGroup]) -> bool:
        """Wait for the slot's draw; ``True`` when it was drawn for ``seed`` into ``groups`` (which hold it now)."""
        pending = self._pending.pop(slot, None)
        if pending is None:
            return False
        hit = self._wait(pending) and pending.seed == seed and pending.groups is groups
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        return hit

    def discard(self, slot: Hashable) -> None:
        """Wait for the slot's draw, if any, and drop it."""
        pending = self._pending.pop(slot, None)
        if pending is not None:
            self._wait(pending)

    def __getstate__(self) -> dict[str, Any]:
        return {}  # a copy or a pickle starts with no draw in flight and no thread

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()

    def close(self) -> None:
        """Wait for every draw in flight, drop them, and join the side thread."""
        for slot in list(self._pending):
            self.discard(slot)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def is_dtensor(tensor: Any) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor`` (parameters sharded by ``fully_shard``)."""
    return type(tensor).__name__ == "DTensor" and hasattr(tensor, "placements")


def local_tensor(param: Tensor) -> Tensor:
    """The tensor this rank holds for ``param``: its local shard for a DTensor, else the data itself."""
    return param.to_local() if is_dtensor(param) else param.detach()


def local_part(view: Tensor, param: Tensor) -> Tensor:
    """The part of ``view`` (shaped like the whole ``param``) that this rank holds, for a DTensor ``param``.

    Noise buffers have the layout of the unsharded parameters, so that one global draw under a key holds the
    same numbers whatever the sharding; each rank adds the slice that lies on its shard.
    """
    if not is_dtensor(param):
        return view
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    shape, offset = compute_local_shape_and_global_offset(param.shape, param.device_mesh, param.placements)
    return view[tuple(slice(start, start + size) for start, size in zip(offset, shape))]


def check_parameter_strategy(trainer: pl.Trainer, owner: str) -> None:
    """Refuse, before training, a strategy whose parameters a parameter-noise callback cannot reach.

    DDP and single devices hold whole parameters; ``ModelParallelStrategy`` (``fully_shard``, tensor
    parallelism) holds DTensors, which are perturbed shard by shard. ``FSDPStrategy`` flattens the parameters of
    each wrapped module into shards of one flat buffer, whose mapping to the original parameters is private to
    FSDP; DeepSpeed keeps parameters and gradients inside its engine.

    Raises:
        ValueError: FSDPStrategy or a DeepSpeed strategy.
    """
    strategy = type(trainer.strategy).__name__
    if "DeepSpeed" in strategy:
        raise ValueError(
            f"{owner} does not support the DeepSpeed strategy, which keeps parameters and gradients inside its "
            f"engine; got strategy {strategy}. Use ddp, or ModelParallelStrategy with `fully_shard`."
        )
    if "FSDP" in strategy:
        raise ValueError(
            f"{owner} does not support {strategy} (FSDP1 flat parameters); got strategy {strategy}. For sharded "
            "training use `ModelParallelStrategy` and call `torch.distributed.fsdp.fully_shard` in "
            "`configure_model`: its DTensor parameters get, on each rank, the rank's part of one global draw."
        )


def add_table_noise(x: Tensor, std: float | Tensor, table: NoiseTable, key: int, *, multiplicative: bool = False) -> Tensor:
    """``x + std * n`` (or ``x * (1 + std * n)``) with ``n`` ~ N(0, 1) read from ``table`` under ``key``; out of place.

    ``n`` is the signed sum of two windows of the table shaped like ``x``: two elementwise passes, nothing drawn.
    """
    if not isinstance(std, Tensor) and std == 0:
        return x
    first, second, sign = table.pair(x.numel(), key, x.device, x.dtype)
    first, second = first.view(x.shape), second.view(x.shape)
    if multiplicative or isinstance(std, Tensor):
        noise = torch.add(first, second, alpha=sign)
        if multiplicative:
            return x * (noise.mul_(std) if isinstance(std, Tensor) else noise.mul_(float(std))).add_(1.0)
        return torch.addcmul(x, noise, std.to(x.dtype))
    return torch.add(x, first, alpha=float(std)).add_(second, alpha=float(std) * sign)


class TableSampling:
    """Mixin for noise callbacks: the ``sampler`` choice and the noise table drawn from the base seed.

    The table is rebuilt when the base seed changes (a new ``setup``, or loading a checkpoint).
    """

    sampler: Sampler
    table_size: int
    _table: NoiseTable | None

    def _init_sampler(self, sampler: Sampler, table_size: int, kind: str | None = None) -> None:
        owner = type(self).__name__
        check_sampler(sampler, table_size, owner)
        if sampler == "table" and kind is not None and kind not in ("gaussian", "multiplicative"):
            raise ValueError(
                f"{owner}: `sampler='table'` holds normal numbers; use it with kind 'gaussian' or 'multiplicative', "
                f"got kind={kind!r}."
            )
        self.sampler = sampler
        self.table_size = table_size
        self._table = None

    def _noise_table(self) -> NoiseTable | None:
        """The table drawn from the current base seed, or ``None`` for the exact sampler."""
        if self.sampler != "table":
            return None
        seed = self._base_seed or 0  # type: ignore[attr-defined]
        if self._table is None or self._table.seed != seed:
            self._table = NoiseTable(self.table_size, seed)
        return self._table


class ParameterNoise(TableSampling, NoiseCallback):
    """Shared base of WeightNoise and GradientNoise: one ``std`` amount, training only, the same noise on every
    rank, and the choice of sampler with its table (rebuilt when the seed changes, e.g. on loading a checkpoint).
    """

    def __init__(
        self,
        *,
        std: ScheduleLike,
        sampler: Sampler,
        table_size: int,
        seed: int | None,
        unit: Literal["step", "epoch"],
        log_amounts: bool,
        name: str,
        prefetch: bool = True,
    ) -> None:
        super().__init__(
            name=name,
            amounts={"std": std},
            stages=("train",),
            seed=seed,
            unit=unit,
            log_amounts=log_amounts,
            per_rank=False,
        )
        self.check_amount("std", non_negative)
        self._init_sampler(sampler, table_size)
        self.prefetch = check_bool(prefetch, "prefetch", owner=type(self).__name__)
        self._prefetcher = Prefetcher()

    # ---------------------------------------------------------------------------------------------- prefetch
    def _prefetches(self, groups: Sequence[FlatGroup]) -> bool:
        """Whether the exact draws of ``groups`` are made ahead: ``prefetch=True``, the exact sampler, and a CUDA
        buffer (side stream) or more than one usable CPU core (side thread)."""
        if not self.prefetch or self.sampler != "exact" or not groups:
            return False
        return any(group.device.type == "cuda" for group in groups) or _CORES > 1

    def _draw_exact(
        self, slot: Hashable, groups: Sequence[FlatGroup], seed: int, distribution: Literal["normal", "uniform"]
    ) -> None:
        """Fill ``groups`` with the exact draw under ``seed``: the prefetched one when it was made for ``seed``."""
        if not self._prefetcher.take(slot, seed, groups):
            fill_standard_(groups, seed, distribution, self.generator)

    def _prefetch(
        self, slot: Hashable, groups: Sequence[FlatGroup], seed: int, distribution: Literal["normal", "uniform"]
    ) -> None:
        """Start the draw of ``seed`` into ``groups`` unless it is already in flight."""
        if self._prefetcher.pending_seed(slot) != seed:
            self._prefetcher.submit(slot, groups, seed, distribution)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            check_parameter_strategy(trainer, type(self).__name__)
        super().setup(trainer, pl_module, stage)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._prefetcher.close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._prefetcher.close()
        super().on_exception(trainer, pl_module, exception)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._prefetcher.close()
        super().teardown(trainer, pl_module, stage)
