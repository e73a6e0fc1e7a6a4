"""Smoke test of benchmarks/overhead.py: it runs, pairs on and off steps, and writes its results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

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
    assert all(row["step_ms"] > 0 and row["ratio"] > 0 and row["baseline_ms"] > 0 for row in rows)
    assert [row["mode"] for row in rows] == ["eager", "eager"]


@pytest.mark.filterwarnings("ignore")
def test_memory_of_weight_noise_is_its_buffers_and_table(tmp_path, monkeypatch):
    """WeightNoise on the 1M-parameter MLP holds two noise buffers (exact with prefetch, the default), one
    (``prefetch=False``), or one and a table."""
    import lightning_noise._prefetch

    monkeypatch.setattr(lightning_noise._prefetch, "_CORES", 2)  # prefetch on a side thread, whatever this machine has
    out = tmp_path / "overhead.md"
    cases = ["WeightNoise(std=0.05, prefetch=False)", "WeightNoise(std=0.05, sampler='table')", "WeightNoise(std=0.05)"]
    rows = overhead.main(["--models", "mlp", "--cases", *cases, "--repeats", "1", "--steps", "2", "--warmup", "2",
                          "--out", str(out)])  # fmt: skip
    memory = {row["case"]: row["memory"] for row in rows}
    weights = 4 * (784 * 1024 + 1024 * 256 + 256 * 10)  # float32 weights, biases not selected
    assert memory[cases[0]] == {"noise": weights, "clean": 0, "table": 0, "selected": weights}
    assert memory[cases[1]] == {"noise": weights, "clean": 0, "table": 4 * (1 << 22), "selected": weights}
    assert memory[cases[2]] == {"noise": 2 * weights, "clean": 0, "table": 0, "selected": weights}
    text = out.read_text()
    assert "| mlp | eager | WeightNoise(std=0.05) |" in text and "1.0x + 16 MB table" in text


def test_on_even_steps_schedule():
    schedule = overhead.OnEvenSteps(0.1)
    assert [schedule(step) for step in range(4)] == [0.1, 0.0, 0.1, 0.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.filterwarnings("ignore")
def test_overhead_runs_on_a_gpu(tmp_path):
    out = tmp_path / "overhead.json"
    case = "WeightNoise(std=0.05)"
    overhead.main(["--accelerator", "gpu", "--models", "mlp", "--cases", case, "--repeats", "1", "--steps", "4",
                   "--warmup", "2", "--out", str(out)])  # fmt: skip
    data = json.loads(out.read_text())
    assert torch.cuda.get_device_name(0) in data["title"]
    assert all(row["step_ms"] > 0 for row in data["rows"])
