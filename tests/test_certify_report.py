"""The comparison report's certification section: curves over seeds, the Markdown table and the plot."""

from __future__ import annotations

import pytest

from lightning_noise.report import certification, compare_runs
from lightning_noise.report.certification import certified_curves, markdown_lines, radius_ceiling
from lightning_noise.smoothing import max_certified_radius


def record(group: str, seed: int, std: float, accuracies: list[float]) -> dict:
    metrics = {
        "test/acc": 0.9,
        "certify/acr": 0.1 * sum(accuracies),
        "certify/sigma": std or 0.25,
        "certify/n": 1000.0,
        "certify/n0": 64.0,
        "certify/alpha": 0.001,
        "certify/points": 100.0,
    }
    metrics.update({f"certify/acc_r{r:g}": a for r, a in zip([0.0, 0.25, 0.5], accuracies, strict=True)})
    return {"group": group, "seed": seed, "noise": {"input": {"std": std}} if std else None, "metrics": metrics}


def test_curves_markdown_and_plot(tmp_path):
    pytest.importorskip("scipy")
    runs = [record("none", s, 0.0, [0.5, 0.1 + 0.02 * s, 0.0]) for s in range(3)]
    runs += [record("input_0.5", s, 0.5, [0.9, 0.8, 0.6 + 0.01 * s]) for s in range(3)]
    report = compare_runs(runs, metric="certify/acr")
    curves = certified_curves(report)
    assert list(curves) == ["none", "input_0.5"]  # baseline first
    assert curves["none"]["radius"] == [0.0, 0.25, 0.5]
    assert curves["none"]["mean"][1] == pytest.approx(0.12) and curves["input_0.5"]["mean"][2] == pytest.approx(0.61)
    assert curves["input_0.5"]["sigma"] == 0.5 and curves["none"]["n"] == 3
    text = "\n".join(markdown_lines(report))
    assert "| input_0.5 | 0.5 | 3 | 0.900 ± 0.000 | 0.800 ± 0.000 | 0.610 ± 0.010 | 0.231 ± 0.001 | 1.232 |" in text
    assert "n=1000, n0=64, alpha=0.001, points=100" in text
    pytest.importorskip("matplotlib")
    files = report.write(tmp_path)
    assert files["certified"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Certified accuracy (randomized smoothing)" in files["markdown"].read_text()


def test_no_section_without_certification():
    runs = [{"group": "a", "seed": s, "noise": None, "metrics": {"test/acc": 0.5 + s / 10}} for s in range(2)]
    report = compare_runs(runs)
    assert certified_curves(report) == {} and markdown_lines(report) == []


def test_the_radius_ceiling_is_in_the_table_and_drawn_at_each_sigma(monkeypatch):
    # issue 18: a certified-accuracy curve drops to 0 at sigma * Phi^-1(alpha ** (1 / n)) whatever the model; the
    # report says where, so that the drop is not read as the model's.
    pytest.importorskip("matplotlib")
    runs = [record("none", s, 0.0, [0.5, 0.1, 0.0]) for s in range(2)]
    runs += [record("input_0.5", s, 0.5, [0.9, 0.8, 0.6]) for s in range(2)]
    report = compare_runs(runs, metric="certify/acr")
    curves = certified_curves(report)
    expected = {"none": max_certified_radius(0.25, 1000, 0.001), "input_0.5": max_certified_radius(0.5, 1000, 0.001)}
    assert {g: radius_ceiling(c) for g, c in curves.items()} == expected
    assert expected["input_0.5"] == pytest.approx(0.5 * 2.4632626, rel=1e-6)  # Phi^-1(0.001 ** (1 / 1000))
    figures = []
    monkeypatch.setattr(certification, "save_figure", lambda fig, path: figures.append(fig) or path)
    certification.plot_certified(report, "unused.png")
    (ax,) = figures[0].axes
    vertical = sorted(line.get_xdata()[0] for line in ax.lines if len(set(line.get_xdata())) == 1)
    assert vertical == pytest.approx(sorted(expected.values()))
    record_without_n = record("x", 0, 0.5, [0.9, 0.8, 0.6])
    del record_without_n["metrics"]["certify/n"]
    bare = certified_curves(compare_runs([record_without_n, {**record_without_n, "seed": 1}], metric="certify/acr"))
    assert radius_ceiling(bare["x"]) is None  # runs that did not record n: no ceiling claimed
