"""Strict JSON for every file the library and the recipes write: ``null`` where a number is NaN or infinite.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which strict readers (JavaScript's ``JSON.parse``,
``jq``, most other languages) reject. A mean over one seed has no standard deviation, a test of one run no
p-value: those are written as ``null``.

Example::

    >>> dumps({"mean": 0.8, "std": float("nan"), "t": float("inf"), "clipped": (0.0, 1.0)})
    '{"mean": 0.8, "std": null, "t": null, "clipped": [0.0, 1.0]}'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["dumps", "strict", "write_json"]


def strict(value: Any) -> Any:
    """``value`` with every float that is NaN or infinite replaced by None, recursively (mappings, lists, tuples
    become dicts and lists); a numpy or torch scalar becomes its Python number. Other values are returned as is."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return strict(item())
    return value


def dumps(value: Any, *, indent: int | None = None, default: Any = None, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict` ``(value)`` with ``allow_nan=False``; ``default`` (for objects json does not
    know, e.g. ``str``) sees each such object, and what it returns is made strict too."""
    hook = None if default is None else (lambda obj: strict(default(obj)))
    return json.dumps(strict(value), indent=indent, default=hook, allow_nan=False, **kwargs)


def write_json(path: str | Path, value: Any, *, default: Any = None) -> Path:
    """Write :func:`dumps` ``(value, indent=2)`` and a newline to ``path``, making its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(value, indent=2, default=default) + "\n")
    return path
