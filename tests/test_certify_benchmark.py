"""Smoke test of benchmarks/certify.py: it certifies with the recipes' models and writes its rows."""

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
        ["--models", "mlp", "cnn", "--n", "50", "--points", "3", "--repeats", "1", "--out", str(out)]
    )
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["n"], r["points"]) for r in rows] == [("mlp", 50, 3), ("cnn", 50, 3)]
    assert all(r["points_per_second"] > 0 for r in rows)
    assert all(r["samples_per_second"] == pytest.approx(r["points_per_second"] * 150) for r in rows)
