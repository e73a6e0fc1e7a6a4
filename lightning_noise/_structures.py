"""Walking the nested inputs and outputs of ``forward`` (tensors, tuples, lists, dicts, dataclasses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor


def tensors_in(data: Any) -> list[Tensor]:
    """All tensors in a nested structure, in traversal order."""
    found: list[Tensor] = []
    apply_to_collection(data, Tensor, found.append)
    return found


def map_floating(data: Any, fn: Callable[[Tensor, int], Tensor]) -> Any:
    """Apply ``fn(tensor, index)`` to each floating-point tensor in ``data``; ``index`` counts them in order."""
    counter = [0]

    def _apply(t: Tensor) -> Tensor:
        if not t.is_floating_point():
            return t
        index = counter[0]
        counter[0] += 1
        return fn(t, index)

    return apply_to_collection(data, Tensor, _apply)


def describe_dtypes(data: Any) -> str:
    return ", ".join(f"{t.dtype} {tuple(t.shape)}" for t in tensors_in(data)) or "no tensors"
