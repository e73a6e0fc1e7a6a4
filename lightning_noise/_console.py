"""Tables for people: printed with rich when it is installed (the ``plot`` extra), else as plain text, and as
Markdown for reports. The robustness, certification and comparison tables all print through here.

Example::

    >>> print(plain_table(["name", "auc"], [["gaussian", "0.812"]]))
    name      auc
    gaussian  0.812
    >>> print(markdown_table(["name", "auc"], [["a|b", mean_std(0.8125, 0.01, digits=3)]]))
    | name | auc |
    |---|---|
    | a\\|b | 0.812 ± 0.010 |
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from lightning_noise._optional import available, require

__all__ = ["markdown_table", "mean_std", "plain_table", "print_table"]


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns and rows as aligned plain text (the console table when rich is not installed)."""
    cells = [[str(c) for c in columns], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(columns))]
    # strict=False: a row may be shorter than the header (its trailing cells left blank)
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip() for row in cells)


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    what: str,
    console: Any = None,
    left: int = 1,
    section_after: int | None = None,
) -> None:
    """Print a table with rich (to ``console``, default a new one) when rich is installed, else as plain text.

    Args:
        title: printed above the table.
        columns: the header.
        rows: the cells (strings).
        what: what is printed, for the error when ``console`` is given without rich ("Printing the X table").
        console: a ``rich.console.Console``; None: a new one, or plain text without rich.
        left: how many leading columns are left-aligned (the rest are right-aligned numbers, never wrapped).
        section_after: a rule below this row (rich only).
    """
    if console is None and not available("rich"):
        print(title)
        print(plain_table(columns, rows))
        return
    rich_table = require("rich.table", what, "rich")
    box = require("rich.box", what, "rich")
    table = rich_table.Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < left else "right", no_wrap=i >= left)
    for i, row in enumerate(rows):
        table.add_row(*row, end_section=i == section_after)
    (console or require("rich.console", what, "rich").Console()).print(table)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; a ``|`` inside a cell is escaped."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(mean: float | None, std: float | None, *, digits: int = 4) -> str:
    """``"mean ± std"`` with ``digits`` decimals; ``n/a`` for a missing mean, the mean alone without a std
    (one seed)."""
    if mean is None or math.isnan(mean):
        return "n/a"
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
