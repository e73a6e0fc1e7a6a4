"""Selecting submodules by qualified-name glob or class name."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from torch import nn

from lightning_noise._checks import as_list

_COMPILED = "_orig_mod"


def unwrap_compiled(module: nn.Module) -> nn.Module:
    """The module inside ``torch.compile``'s wrapper (``OptimizedModule._orig_mod``), or ``module`` itself."""
    while isinstance(getattr(module, _COMPILED, None), nn.Module) and type(module).__name__ == "OptimizedModule":
        module = getattr(module, _COMPILED)
    return module


def named_modules(root: nn.Module) -> list[tuple[str, nn.Module]]:
    """``root.named_modules()`` without the root and as if no submodule were compiled: a submodule replaced by
    ``torch.compile(submodule)`` keeps its name (``encoder.0``, not ``encoder._orig_mod.0``), so patterns and
    hooks address the module that runs inside the compiled graph."""
    named = []
    for name, module in root.named_modules():
        if not name or unwrap_compiled(module) is not module:
            continue
        clean = ".".join(part for part in name.split(".") if part != _COMPILED)
        if clean:
            named.append((clean, module))
    return named


def check_patterns(patterns: str | Sequence[str], argument: str = "modules") -> tuple[str, ...]:
    """Validate a pattern list at ``__init__`` time: a non-empty list of non-empty strings."""
    expected = "a non-empty list of qualified-name globs or class names"
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = tuple(as_list(patterns, argument, expected))
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ValueError(
            f"`{argument}` must be a non-empty list of qualified-name globs or class names, got {list(patterns)!r}."
        )
    return patterns


def describe_submodules(root: nn.Module, limit: int = 40) -> str:
    """The qualified names and classes of ``root``'s submodules (the first ``limit``), for error messages."""
    rows = [f"{name} ({type(m).__name__})" for name, m in named_modules(root)]
    more = f", ... ({len(rows) - limit} more)" if len(rows) > limit else ""
    return ", ".join(rows[:limit]) + more if rows else "(the model has no submodules)"


def select_modules(root: nn.Module, patterns: Sequence[str], argument: str = "modules") -> list[tuple[str, nn.Module]]:
    """Submodules of ``root`` whose qualified name matches a glob or whose class name equals a pattern.

    The root itself is never selected. Every pattern must match at least one submodule.

    Args:
        root: the module to search (usually the LightningModule).
        patterns: globs over qualified names (``"encoder.*"``, ``"lstm"``) or class names (``"Linear"``).
        argument: the argument's name, for error messages.

    Raises:
        ValueError: a pattern matches no submodule; the message lists the submodules that exist.
    """
    named = named_modules(root)
    selected: dict[str, nn.Module] = {}
    unmatched = []
    for pattern in patterns:
        hits = [
            (name, module)
            for name, module in named
            if fnmatch.fnmatchcase(name, pattern) or type(module).__name__ == pattern
        ]
        if not hits:
            unmatched.append(pattern)
        selected.update(hits)
    if unmatched:
        raise ValueError(
            f"`{argument}` pattern(s) {unmatched} match no submodule of {type(root).__name__}. Patterns are globs "
            f"over qualified names or class names. Submodules: {describe_submodules(root)}."
        )
    return [(name, module) for name, module in named if name in selected]


def get_submodule(root: nn.Module, name: str, argument: str = "module") -> nn.Module:
    """``root.get_submodule(name)`` (looking through compiled submodules) with an error that lists the names."""
    module = unwrap_compiled(root)
    try:
        for part in name.split("."):
            module = unwrap_compiled(module.get_submodule(part))
        return module
    except AttributeError:
        raise ValueError(
            f"`{argument}`={name!r} is not a submodule of {type(root).__name__}. "
            f"Submodules: {describe_submodules(root)}."
        ) from None
