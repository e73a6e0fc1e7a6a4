"""LightningCLI builds the noise callbacks and their schedules from the config on docs/lightning-cli.md, and fits."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from lightning_noise import ActivationNoise, GradientNoise, InputNoise, LabelNoise, schedules

pytest.importorskip("jsonargparse", reason="LightningCLI needs the `cli` extra (jsonargparse[signatures])")
pytest.importorskip("sybil", reason="the page's config is read with Sybil (the `test` extra)")

from sybil import Sybil  # noqa: E402
from sybil.parsers.markdown import CodeBlockParser  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "lightning_cli.yaml"
PAGE = ROOT / "docs" / "lightning-cli.md"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    """A fresh working directory, and a command line of the script's own (LightningCLI reads sys.argv)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["lightning_cli.py"])


def _example_cli():
    spec = importlib.util.spec_from_file_location("lightning_cli_example", ROOT / "examples" / "lightning_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_shows_the_config_the_tests_run():
    sybil = Sybil(parsers=[CodeBlockParser(language="yaml", evaluator=lambda example: None)])
    blocks = [str(example.parsed) for example in sybil.parse(PAGE).examples()]
    assert blocks == [CONFIG.read_text()]


def test_fit_from_the_yaml_config():
    cli = _example_cli().main(
        ["fit", "--config", str(CONFIG), "--trainer.max_epochs=1", "--trainer.max_steps=2", *QUIET]
    )
    noise = [c for c in cli.trainer.callbacks if type(c).__module__.startswith("lightning_noise")]
    assert [type(c) for c in noise] == [InputNoise, ActivationNoise, LabelNoise, GradientNoise]
    inputs, activations, labels, gradients = noise
    assert activations.schedules["std"] == schedules.Linear(0.0, 0.2, steps=100)
    assert cli.trainer.global_step == 2
    # jsonargparse passes every argument, defaults included; the repr keeps to the ones the config set.
    assert [repr(c) for c in noise] == [
        "InputNoise(std=0.1)",
        "ActivationNoise(std=Linear(start=0.0, end=0.2, steps=100), modules=['encoder.*'])",
        "LabelNoise(smoothing=0.1)",
        "GradientNoise(eta=0.01, gamma=0.55)",
    ]
    assert inputs.state_key == InputNoise(std=0.1).state_key and labels.amounts == {"smoothing": 0.1, "flip": 0.0}
    assert gradients.schedules["std"] == schedules.Annealed(0.01, 0.55)


def test_fit_with_callbacks_from_the_command_line():
    arguments = ["fit", "--trainer.max_steps=1", "--trainer.logger=false", "--trainer.enable_checkpointing=false"]
    arguments += ["--trainer.callbacks+=lightning_noise.InputNoise", "--trainer.callbacks.std=0.1"]
    arguments += ["--trainer.callbacks+=lightning_noise.GradientNoise", "--trainer.callbacks.std=0.01"]
    cli = _example_cli().main([*arguments, *QUIET])
    noise = [repr(c) for c in cli.trainer.callbacks if type(c).__module__.startswith("lightning_noise")]
    assert noise == ["InputNoise(std=0.1)", "GradientNoise(std=0.01)"]
    assert cli.trainer.global_step == 1


def test_a_value_the_callback_refuses_fails_before_training():
    arguments = ["fit", "--trainer.max_steps=1", "--trainer.logger=false"]
    arguments += ["--trainer.callbacks+=lightning_noise.InputNoise", "--trainer.callbacks.kind=gausian"]
    with pytest.raises((SystemExit, ValueError)):
        _example_cli().main([*arguments, *QUIET])
