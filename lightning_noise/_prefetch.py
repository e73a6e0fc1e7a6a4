"""Prefetch: the exact draw of the next step, made ahead on a side thread (CPU) or a side CUDA stream.

:class:`Prefetcher` computes the next step's draw with the same function as the synchronous path
(:func:`~lightning_noise._flat_buffers.fill_standard_`, a pure function of key and layout); a callback uses it
only when the key it derives at the step is the key the draw was made for.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import torch

from lightning_noise._flat_buffers import FlatGroup, fill_standard_


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return os.cpu_count() or 1


_CORES = _usable_cores()


def can_prefetch(groups: Sequence[FlatGroup]) -> bool:
    """Whether a draw into ``groups`` can run beside the step: a CUDA buffer (side stream) or more than one
    usable CPU core (side thread)."""
    return bool(groups) and (any(group.device.type == "cuda" for group in groups) or _CORES > 1)


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
        Prefetcher.__init__(self)

    def close(self) -> None:
        """Wait for every draw in flight, drop them, and join the side thread."""
        for slot in list(self._pending):
            self.discard(slot)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
