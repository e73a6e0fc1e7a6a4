"""Every configuration mistake of ``recipes/train.py``, Hydra's own included: one line on stderr, exit status 2, no
run directory left behind; and the sentences that line says (the key, the options, the type it takes)."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException

from noisy_recipes import utils
from noisy_recipes.config_types import type_problems
from noisy_recipes.hydra_errors import describe
from tests.recipes.conftest import CONF, FAST, options, run_recipe

NOISES = "activation, gradient, input, label_flip, label_smoothing, none, target, weight"


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("train", overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


HYDRA_MISTAKES = [
    (["noise=inptu"], rf"^noise=inptu: no such option in the config group 'noise'\. Available: {NOISES} "),
    (["noise=[input,inptu]"], rf"^noise=inptu: no such option .* Available: {NOISES} "),
    (["experiment=nope"], r"^experiment=nope: .*Available: .*circles_classic"),
    (["trainer.strategy=ddp"], r"^trainer\.strategy is not a key of the config .*write \+trainer\.strategy=ddp"),
    (["foo"], r"^cannot parse the override 'foo': missing EQUAL .*Write key=value"),
    (["seed=[1"], r"^cannot parse the override 'seed=\[1'"),
    (["seed=0,1"], r"^seed=0,1 is a sweep: add -m .*seed=\[0,1\] for a list"),
    (["+seed=1"], r"An item is already at 'seed'.*'\+\+seed=1'"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), HYDRA_MISTAKES, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_hydra_composition_errors_say_what_to_change(overrides, message):
    with pytest.raises(Exception) as info:
        _compose(overrides)
    line = describe(info.value)
    assert line is not None and "\n" not in line and re.search(message, line), line


def test_missing_config_without_hydras_options_lists_the_group():
    error = MissingConfigException("In 'train': Could not load 'noise/inptu'.", missing_cfg_file="noise/inptu")
    assert describe(error).endswith(f"Available: {NOISES} (one YAML per option in conf/noise/).")


def test_a_bug_is_not_a_config_mistake():
    assert describe(RuntimeError("boom")) is None and describe(KeyError("x")) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["noise.input.std.amount=abc"],
            r"`noise.input.std.amount` must be a float \(a number\), got 'abc' \(a string\)",
        ),
        (["trainer.max_epochs=abc"], r"`trainer.max_epochs` must be an integer or null, got 'abc'"),
        (["callbacks.early_stopping.patience=2.5"], r"`callbacks.early_stopping.patience` must be an integer, got 2.5"),
        (["noise.input.kind=3"], r"`noise.input.kind` must be a string, got 3 \(an integer\)"),
        (["model.hidden=abc"], r"`model.hidden` must be a list of integers, e.g. \[1, 2\], got 'abc'"),
        (
            ["experiment=circles_classic", "variant=input_at_sigma"],
            r"`noise.input.std.amount` must be a float .*got None \(null, from \$\{eval.certification.sigma\}\)",
        ),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key_and_the_type(overrides, message):
    (problem,) = type_problems(_compose(overrides))
    assert re.search(message, problem), problem


@pytest.mark.slow
def test_every_config_option_has_values_of_the_right_types():
    """No false alarm: every option of every group, and every experiment, passes the type check as written."""
    cases = [
        [f"{group}={name}"]
        for group in ("model", "noise", "schedule", "trainer", "callbacks")
        for name in options(group)
    ]
    cases += [[f"experiment={name}"] for name in options("experiment")]
    cases += [["data=csv", "data.path=d.csv", "data.target=y"], ["data=ucr"], ["data=forecast"], ["logger=csv"]]
    for overrides in cases:
        assert type_problems(_compose(overrides)) == [], overrides


def test_a_wrapped_error_keeps_its_quotes_and_gains_its_key():
    """The message is the callee's own (no quotes stripped), with the key Hydra names when it does not say it."""
    cfg = _compose(["+noise.input.foo=1"])
    with pytest.raises(utils.ConfigError, match=r"^noise\.input: .*unexpected keyword argument 'foo'$"):
        utils.instantiate_noise(cfg.noise, "classification")
    with pytest.raises(utils.ConfigError, match=r"^'quoted' name$"):
        with utils.as_config_error(KeyError):
            raise KeyError("'quoted' name")


# The command-line table: (arguments, what the one line says). Each runs `python recipes/train.py` (a few seconds).
CLI_MISTAKES = [
    (["noise=inptu"], rf"noise=inptu: no such option in the config group 'noise'\. Available: {NOISES}"),
    (["trainer.strategy=ddp"], r"trainer\.strategy is not a key .*write \+trainer\.strategy=ddp"),
    (["noise.input.std.amount=abc"], r"`noise\.input\.std\.amount` must be a float \(a number\), got 'abc'"),
    (["-m", "noise=inptu,input"], r"noise=inptu: no such option in the config group 'noise'"),
    pytest.param(["-m", "seed=0,1", "trainer.max_epochs=abc"], r"`trainer.max_epochs`", marks=pytest.mark.slow),
    pytest.param(["-m", "seed=0,1", "trainer.strategy=ddp"], r"\+trainer\.strategy=ddp", marks=pytest.mark.slow),
    pytest.param(["seed=0,1"], r"seed=0,1 is a sweep: add -m", marks=pytest.mark.slow),
    pytest.param(["foo"], r"cannot parse the override 'foo'", marks=pytest.mark.slow),
    pytest.param(["trainer.accelerator=foo"], r"^Error: trainer: .*invalid accelerator", marks=pytest.mark.slow),
    pytest.param(["trainer.devices=abc"], r"^Error: trainer: `devices`", marks=pytest.mark.slow),
    pytest.param(["name=${oops}"], r"Interpolation key 'oops' not found", marks=pytest.mark.slow),
    pytest.param(
        ["eval.seed=${oops}"], r"Interpolation key 'oops' not found \(key eval.seed\)", marks=pytest.mark.slow
    ),
]


@pytest.mark.parametrize(
    ("arguments", "message"), CLI_MISTAKES, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_cli_mistake_is_one_line_exit_2_and_no_run_directory(arguments, message, tmp_path):
    result = run_recipe([*arguments, *FAST], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "logs").exists(), sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))


@pytest.mark.slow
def test_hydra_full_error_keeps_hydras_own_report(tmp_path):
    result = run_recipe(["noise=inptu", *FAST], cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr and "MissingConfigException" in result.stderr
