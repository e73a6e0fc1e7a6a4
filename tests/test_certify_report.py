"""The comparison report's certification section: curves over seeds, the Markdown table and the plot."""

from __future__ import annotations

import pytest

from lightning_noise.report import compare_runs
from lightning_noise.report.certification import certified_curves, markdown_lines


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
    assert "| input_0.5 | 0.5 | 3 | 0.900 ± 0.000 | 0.800 ± 0.000 | 0.610 ± 0.010 |" in text
    assert "n=1000, n0=64, alpha=0.001, points=100" in text
    pytest.importorskip("matplotlib")
    files = report.write(tmp_path)
    assert files["certified"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Certified accuracy (randomized smoothing)" in files["markdown"].read_text()


def test_no_section_without_certification():
    runs = [{"group": "a", "seed": s, "noise": None, "metrics": {"test/acc": 0.5 + s / 10}} for s in range(2)]
    report = compare_runs(runs)
    assert certified_curves(report) == {} and markdown_lines(report) == []
