"""What a run leaves for programs to read: strict JSON everywhere (``null``, never ``NaN``), the resolved
``config.yaml`` and the final ``summary.json`` beside ``metrics.json``, the real W&B labels in the logged config,
and the resolved config on the console before training."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from lightning_noise._json import dumps, strict
from lightning_noise.report import compare_runs, load_runs
from tests.recipes.conftest import FAST, read_wandb_run, train_and_write


def strict_load(text: str):
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and ``-Infinity`` (what ``JSON.parse`` does)."""

    def refuse(constant: str):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_strict_json_writes_null_for_nan_and_infinity():
    np = pytest.importorskip("numpy")
    value = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": (np.float32("nan"), np.float64(2.0)), "d": "NaN"}
    assert strict_load(dumps(value)) == {"a": None, "b": [None, None, 1.5], "c": [None, 2.0], "d": "NaN"}
    assert strict({"x": (1, 2)}) == {"x": [1, 2]}
    with pytest.raises(ValueError, match="not strict JSON"):
        strict_load(json.dumps({"std": math.nan}))  # the reader itself refuses what Python writes by default


SMALL_CERTIFY = ["eval.certification.n0=10", "eval.certification.n=50", "eval.certification.max_samples=4"]


def test_every_json_of_a_small_run_and_report_is_strict(compose_cfg, tmp_path):
    """Two runs of one seed each (no spread: std, intervals and p-values are undefined), with the robustness and
    certification evaluations, then their report: every JSON file parses with a strict reader."""
    for amount in (0.0, 0.2):
        run_dir = tmp_path / "runs" / f"amount_{amount}"
        overrides = [*FAST, f"noise.input.std.amount={amount}", "eval.robustness=true", "eval.certify=true"]
        train_and_write(compose_cfg([*overrides, "eval.certification.sigma=0.25", *SMALL_CERTIFY], run_dir=run_dir))
    report = compare_runs(load_runs([tmp_path / "runs"]))
    report.write(tmp_path / "report", plots=False)
    written = sorted(tmp_path.rglob("*.json"))
    names = {p.name for p in written}
    assert {"metrics.json", "summary.json", "robustness.json", "certify.json"} <= names, names
    for path in written:
        strict_load(path.read_text())
    summary = strict_load((tmp_path / "report" / "summary.json").read_text())
    baseline = summary["summaries"]["test/acc"][0]
    assert baseline["n"] == 1 and baseline["std"] is None and baseline["ci_low"] is None  # one seed: null
    assert summary["comparisons"]["test/acc"][0]["p_value"] is None


def test_run_directory_holds_its_resolved_config_and_final_summary(compose_cfg, tmp_path, capsys):
    metrics = train_and_write(compose_cfg([*FAST, "noise.input.std.amount=0.3", "noise_scale=0.5"]))
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert "${" not in (tmp_path / "config.yaml").read_text() and "hydra" not in config  # resolved, no Hydra node
    assert config["noise"]["input"]["std"]["scale"] == 0.5 and config["paths"]["output_dir"] == str(tmp_path)
    summary = strict_load((tmp_path / "summary.json").read_text())
    assert summary == pytest.approx({**{f"final/{k}": v for k, v in metrics.items()}, "final/best_epoch": 0})
    out = " ".join(capsys.readouterr().out.replace("│", " ").split())  # rich wraps the block at spaces
    assert out.index("config (resolved; in full:") < out.index("best epoch")  # the config block comes first
    assert "noise: {input: InputNoise(std: scaled(shape: Constant(value: 1), amount: 0.3, scale: 0.5)" in out


def test_wandb_config_shows_the_run_name_group_and_tags(compose_cfg, tmp_path, fresh_wandb):
    overrides = ["trainer=debug", "logger=wandb", "noise.input.std.amount=0.25"]
    train_and_write(compose_cfg([*overrides, "hydra.mode=MULTIRUN", "hydra.sweep.dir=sweeps/sweep_7"]))
    fresh_wandb.teardown()  # waits for wandb's service process to flush the offline file
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    record = read_wandb_run(run)
    logged = record["config"]["logger"]["wandb"]
    assert (logged["name"], logged["group"], logged["tags"]) == (record["name"], record["group"], record["tags"])
    assert logged["name"] == "train " + " ".join(overrides) and logged["group"] == "train sweep_7"
    assert logged["tags"] == ["InputNoise", "input.std=0.25"]
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())["logger"]["wandb"]
    assert saved["name"] == logged["name"] and saved["tags"] == logged["tags"]
