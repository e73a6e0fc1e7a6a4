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
import shutil
from collections.abc import Sequence
from typing import Any

from lightning_noise._optional import available, require

__all__ = ["markdown_table", "mean_std", "plain_table", "print_table", "row_blocks"]


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

    The table fits the console's width: the text columns wrap (a long name folds onto a second line), the
    number columns keep their full width; when even that does not fit, each row is printed as a block of
    ``column=value`` pairs (:func:`row_blocks`), so a number is never cut.

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
        text = plain_table(columns, rows)
        width = shutil.get_terminal_size().columns
        print(title)
        print(text if max(map(len, text.splitlines())) <= width else "\n".join(row_blocks(columns, rows, left=left)))
        return
    rich_table = require("rich.table", what, "rich")
    box = require("rich.box", what, "rich")
    console = console or require("rich.console", what, "rich").Console()
    table = rich_table.Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    widths = _widths(columns, rows)
    if sum(_words(columns, rows, left)) + sum(widths[left:]) + 2 * (len(columns) - 1) <= console.width:
        for i, column in enumerate(columns):
            if i < left:
                table.add_column(column, justify="left", overflow="fold")
            else:
                table.add_column(column, justify="right", no_wrap=True, width=widths[i])
        for i, row in enumerate(rows):
            table.add_row(*row, end_section=i == section_after)
        console.print(table)
        return
    text = require("rich.text", what, "rich").Text
    padding = require("rich.padding", what, "rich").Padding
    console.print(text(title, style="bold"))
    for i, line in enumerate(row_blocks(columns, rows, left=left)):
        console.print(padding(text(line.strip()), (0, 0, 0, 4 * (i % 2))))  # wrapped pairs stay indented


def _widths(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
    """The widest cell of each column, its header included."""
    return [
        max(len(str(c)) for c in (column, *(row[i] for row in rows if i < len(row))))
        for i, column in enumerate(columns)
    ]


def _words(columns: Sequence[str], rows: Sequence[Sequence[Any]], left: int) -> list[int]:
    """The longest word of each text column (the narrowest it wraps to without breaking a word)."""
    cells = [[str(column), *(str(row[i]) for row in rows if i < len(row))] for i, column in enumerate(columns[:left])]
    return [max(len(word) for cell in column for word in cell.split() or [""]) for column in cells]


def row_blocks(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 1) -> list[str]:
    """A table for a console too narrow for its columns: per row, its text cells on one line, then its numbers
    as ``column=value`` pairs, indented (the console wraps between pairs, never inside a number).

    Example::

        >>> for line in row_blocks(["corruption", "0", "AUC"], [["gaussian", "0.950", "0.700"]]):
        ...     print(line)
        gaussian
            0=0.950  AUC=0.700
    """
    lines = []
    for row in rows:
        cells = [str(cell) for cell in row]
        lines.append("  ".join(cell for cell in cells[:left] if cell))
        pairs = [f"{column}={cell}" for column, cell in zip(columns[left:], cells[left:], strict=False) if cell]
        lines.append("    " + "  ".join(pairs))
    return lines


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
