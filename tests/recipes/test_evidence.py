"""The evidence features in the recipes: robustness evaluation from the config, the comparison entry point
(``recipes/compare.py``) on a real sweep, and the comparison experiments (``experiment=`` + ``variant=``)."""

from __future__ import annotations

import json

import pytest

from tests.recipes.conftest import FAST
from train import train


def test_robustness_from_the_config_writes_the_record(compose_cfg, tmp_path):
    cfg = compose_cfg([*FAST, "eval.robustness=true", "noise=none"])
    metrics = train(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    robustness = record["robustness"]
    assert robustness["metric"] == "accuracy"
    assert set(robustness["corruptions"]) == {"gaussian", "salt_and_pepper"}
    for curve in robustness["corruptions"].values():
        assert curve["severity"] == [0, 1, 2, 3, 4, 5]
        assert curve["metric"][0] == pytest.approx(metrics["test/acc"])  # severity 0 = the clean test accuracy
    assert (tmp_path / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "robustness.json").read_text())


def test_robustness_is_off_by_default(compose_cfg, tmp_path):
    train(compose_cfg(FAST))
    assert "robustness" not in json.loads((tmp_path / "metrics.json").read_text())
    assert not (tmp_path / "robustness.json").exists()


def test_robustness_corruption_set_and_regression_metric(compose_cfg, tmp_path):
    cfg = compose_cfg(
        [*FAST, "data=diabetes", "trainer.limit_test_batches=1.0", "noise=none", "eval.robustness=true",
         "eval.corruptions=[gaussian]"]
    )
    metrics = train(cfg)
    robustness = json.loads((tmp_path / "metrics.json").read_text())["robustness"]
    assert robustness["metric"] == "mse" and list(robustness["corruptions"]) == ["gaussian"]
    assert robustness["corruptions"]["gaussian"]["metric"][0] == pytest.approx(metrics["test/mse"], rel=1e-4)


def test_robustness_cifar10c_on_images(compose_cfg, tmp_path):
    cfg = compose_cfg(
        [*FAST, "data=digits", "data.train_size=64", "data.standardize=false", "model=cnn", "noise=none",
         "eval.robustness=true", "eval.corruptions=cifar10c"]
    )
    train(cfg)
    robustness = json.loads((tmp_path / "metrics.json").read_text())["robustness"]
    assert set(robustness["corruptions"]) == {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"}


def test_unknown_corruption_fails_before_training(compose_cfg, tmp_path):
    with pytest.raises(ValueError, match="nonsense"):
        train(compose_cfg([*FAST, "eval.robustness=true", "eval.corruptions=[nonsense]"]))
    assert not (tmp_path / "metrics.json").exists()


def test_robustness_logged_to_wandb_offline(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    train(compose_cfg(["trainer=debug", "logger=wandb", "noise=none", "eval.robustness=true"]))
    run = next((tmp_path / "wandb").glob("offline-run-*"))
    data = next(run.glob("*.wandb")).read_bytes()
    assert b"robustness/gaussian/auc" in data and b"robustness/table" in data and b"robustness/plot" in data
