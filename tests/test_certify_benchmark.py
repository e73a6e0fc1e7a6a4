"""Smoke test of benchmarks/certify.py: it certifies with the recipes' models, times the reference, writes rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import certify as certify_benchmark  # noqa: E402


def test_benchmark_runs_and_writes_json(tmp_path):
    out = tmp_path / "certify.json"
    certify_benchmark.main(
        [
            *("--models", "mlp", "cnn", "--n", "50", "--points", "3", "--repeats", "1", "--no-reference"),
            *("--bound-points", "--batch-sizes", "4096", "--out", str(out)),
        ]
    )
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["n"], r["points"]) for r in rows] == [("mlp", 50, 3), ("cnn", 50, 3)]
    assert all(r["points_per_second"] > 0 for r in rows)
    assert all(r["samples_per_second"] == pytest.approx(r["points_per_second"] * 150) for r in rows)


def test_benchmark_times_the_reference_and_the_bound(tmp_path):
    pytest.importorskip("statsmodels")
    out = tmp_path / "certify.md"
    result = certify_benchmark.main(
        [
            *("--models", "mlp", "--n", "50", "--points", "2", "--repeats", "1", "--batch-sizes", "16"),
            *("--bound-points", "200", "--out", str(out)),
        ]
    )
    (row,) = result["rows"]
    assert row["reference_points_per_second"] > 0 and row["ratio"] == pytest.approx(
        row["reference_seconds"] / row["seconds"]
    )
    (bound,) = result["bound_rows"]
    assert bound["points"] == 200 and bound["max_abs_difference"] < 1e-10
    assert "reference points/s" in out.read_text() and "| 200 | 100,000 |" in out.read_text()
