"""Smoke test of benchmarks/certify.py: it certifies with the recipes' models, times the reference, writes rows."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

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


FAKE_CORE = """
import torch
from scipy.stats import norm, binom_test

class Smooth:
    def __init__(self, base_classifier, num_classes, sigma):
        self.base_classifier, self.num_classes, self.sigma = base_classifier, num_classes, sigma

    def certify(self, x, n0, n, alpha, batch_size):
        batch = x.repeat((batch_size, 1, 1, 1))
        noise = torch.randn_like(batch, device='cuda') * self.sigma
        return int(self.base_classifier(batch + noise).argmax(1)[0]), 0.0
"""


def test_the_reference_is_read_from_a_checkout_and_patched_for_the_cpu(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "core.py").write_text(FAKE_CORE)
    smooth = certify_benchmark.load_reference(tmp_path)(lambda x: x.flatten(1)[:, :3], 3, 0.25)
    assert smooth.certify(torch.zeros(1, 2, 2), 1, 1, 0.001, 4)[1] == 0.0  # ran on the CPU, binom_test not needed
    (tmp_path / "code" / "core.py").write_text(FAKE_CORE.replace("device='cuda'", "device='cuda:0'"))
    with pytest.raises(ValueError, match="expected the line"):
        certify_benchmark.load_reference(tmp_path)
    with pytest.raises(FileNotFoundError, match="--reference-dir must hold"):
        certify_benchmark.load_reference(tmp_path / "nowhere")


def test_benchmark_times_the_reference_and_the_bound(tmp_path):
    pytest.importorskip("statsmodels")
    reference = os.environ.get("SMOOTHING_REFERENCE_DIR")
    if not reference:
        pytest.skip(
            "the reference (locuslab/smoothing) is not redistributed: set SMOOTHING_REFERENCE_DIR to a checkout"
        )
    out = tmp_path / "certify.md"
    result = certify_benchmark.main(
        [
            *("--models", "mlp", "--n", "50", "--points", "2", "--repeats", "1", "--batch-sizes", "16"),
            *("--reference-dir", reference),
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
