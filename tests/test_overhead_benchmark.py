"""Smoke test of benchmarks/overhead.py: it runs, pairs on and off steps, and writes its results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import overhead  # noqa: E402


@pytest.mark.filterwarnings("ignore")
def test_overhead_runs_and_writes_json(tmp_path):
    out = tmp_path / "overhead.json"
    case = "GradientNoise(eta=0.3, sampler='table')"
    overhead.main(["--models", "cnn", "--cases", case, "--repeats", "1", "--steps", "4", "--warmup", "2",
                   "--out", str(out)])  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [row["case"] for row in rows] == ["baseline", case]
    assert all(row["step_ms"] > 0 and row["ratio"] > 0 for row in rows)


def test_on_even_steps_schedule():
    schedule = overhead.OnEvenSteps(0.1)
    assert [schedule(step) for step in range(4)] == [0.1, 0.0, 0.1, 0.0]
