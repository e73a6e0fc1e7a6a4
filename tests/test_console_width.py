"""Console tables fit the terminal: text columns wrap, and when the numbers alone do not fit each row becomes a
block of ``column=value`` pairs; a number is never cut (no ``…``, every value printed in full)."""

from __future__ import annotations

import io

import pytest

from lightning_noise._console import print_table, row_blocks
from lightning_noise.robustness.corruptions import get_corruption
from lightning_noise.robustness.result import RobustnessCurve, RobustnessResult

rich_console = pytest.importorskip("rich.console")


def _result() -> RobustnessResult:
    curves = {}
    for name, amount in (("gaussian", "std"), ("salt_and_pepper", "p"), ("shot_noise", "c")):
        levels = get_corruption(name).levels
        metric = [0.95 - 0.1 * k - 0.001 * len(name) for k in range(len(levels) + 1)]
        curves[name] = RobustnessCurve(name, amount, list(range(len(levels) + 1)), [None, *levels], metric)
    return RobustnessResult("accuracy", curves, seed=0, model="MLP 2-32-32-2", dataset="circles")


@pytest.mark.parametrize("width", [120, 80, 74, 60, 40])
def test_robustness_table_fits_the_width_and_never_cuts_a_number(width):
    result = _result()
    console = rich_console.Console(width=width, file=io.StringIO(), color_system=None)
    result.print_table(console)
    text = console.file.getvalue()
    assert "…" not in text and max(len(line.rstrip()) for line in text.splitlines()) <= width, text
    _, rows = result.table_rows()
    for row in rows:
        for cell in row[2:]:
            assert cell in text, (cell, text)  # every value in full
    if width >= 80:  # the table itself: each corruption on one line with its numbers
        for name, curve in result.curves.items():
            line = next(line for line in text.splitlines() if line.startswith(name))
            assert all(f"{m:.3f}" in line for m in curve.metric), line


def test_plain_text_without_rich_turns_into_blocks_when_too_wide(monkeypatch, capsys):
    import lightning_noise._console as console

    monkeypatch.setattr(console, "available", lambda name: False)
    monkeypatch.setattr(console.shutil, "get_terminal_size", lambda: __import__("os").terminal_size((30, 24)))
    print_table("title", ["name", "a", "b"], [["gaussian", "0.950000000000", "0.850000000000"]], what="x")
    out = capsys.readouterr().out
    assert out.splitlines()[1:] == row_blocks(["name", "a", "b"], [["gaussian", "0.950000000000", "0.850000000000"]])
