"""``eval.certify=true`` in the recipes: the sigma it certifies at, the files and the run record, early errors."""

from __future__ import annotations

import json
import re

import pytest

from noisy_recipes.utils import ConfigError
from tests.recipes.conftest import FAST, run_recipe, train_and_write

SMALL = [
    "eval.certify=true",
    "eval.certification.n=200",
    "eval.certification.n0=16",
    "eval.certification.max_samples=20",
]


def test_certify_from_the_config_at_the_input_noise_std(compose_cfg, tmp_path):
    cfg = compose_cfg([*FAST, "data=digits", "model=mlp", "noise=input", "noise.input.std.amount=0.3", *SMALL])
    train_and_write(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["certify"]["sigma"] == pytest.approx(0.3)  # the run's Gaussian input-noise std
    assert (record["certify"]["n"], record["certify"]["n0"], record["certify"]["points"]) == (200, 16, 20)
    for key in ("certify/acc_r0", "certify/acc_r0.5", "certify/acr", "certify/abstain_rate", "certify/clean_acc"):
        assert key in record["metrics"]
    certificate = json.loads((tmp_path / "certify.json").read_text())
    assert certificate["dataset"] == "digits" and len(certificate["per_point"]["radius"]) == 20
    assert (tmp_path / "certify.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_certify_without_input_noise_needs_a_sigma(compose_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"needs a smoothing sigma.*eval.certification.sigma"):
        train_and_write(compose_cfg([*FAST, "noise=none", *SMALL]))
    assert not (tmp_path / "checkpoints").exists()  # refused before training
    train_and_write(compose_cfg([*FAST, "noise=none", *SMALL, "eval.certification.sigma=0.4"]))
    assert json.loads((tmp_path / "metrics.json").read_text())["certify"]["sigma"] == pytest.approx(0.4)


def test_certify_refuses_regression_and_scheduled_noise(compose_cfg):
    with pytest.raises(ConfigError, match="certifies classifiers, but this model's task is regression"):
        train_and_write(compose_cfg([*FAST, "data=diabetes", "noise=none", *SMALL, "eval.certification.sigma=0.1"]))
    with pytest.raises(ConfigError, match="not a constant Gaussian noise on the model's inputs"):
        train_and_write(compose_cfg([*FAST, "noise=input", "schedule=linear", *SMALL]))


def test_digits_certify_arm_trains_at_the_certification_sigma(compose_cfg, tmp_path):
    cfg = compose_cfg(
        ["experiment=digits_certify", "variant=input_at_sigma", "eval.certification.sigma=0.5", *FAST, *SMALL]
    )
    assert cfg.noise.input.std.amount == 0.5
    train_and_write(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["noise_amounts"] == {"input.std": 0.5} and record["certify"]["sigma"] == 0.5


def test_bad_certification_setting_is_a_config_error(compose_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"`n0` must be an integer >= 1, got 0"):
        train_and_write(
            compose_cfg([*FAST, "noise=none", *SMALL, "eval.certification.sigma=0.4", "eval.certification.n0=0"])
        )
    with pytest.raises(ConfigError, match=r"`alpha` must be .*got 'x' \(str\)"):
        train_and_write(
            compose_cfg([*FAST, "noise=none", *SMALL, "eval.certification.sigma=0.4", "eval.certification.alpha=x"])
        )
    assert not (tmp_path / "checkpoints").exists()  # refused before training


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["noise=none"], r"eval.certify=true needs a smoothing sigma"),
        (["noise=none", "eval.certification.sigma=0.4", "eval.certification.n=-1"], r"`n` must be an integer"),
    ],
)
def test_certify_mistake_on_the_command_line_is_one_line_without_traceback(overrides, message, tmp_path):
    result = run_recipe([*FAST, *SMALL, *overrides], cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert re.search(message, lines[0]) and "Traceback" not in result.stderr + result.stdout
