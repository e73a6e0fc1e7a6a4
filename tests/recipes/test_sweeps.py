"""Multiruns, Optuna, DDP on 2 CPU processes and the experiment files, each as a user runs them."""

from __future__ import annotations

import json
import warnings

import pytest

import lightning_noise
from lightning_noise.report import compare_runs, load_runs
from tests.recipes.conftest import FAST, ROOT, options, run_recipe, train_and_write

QUIET = ["logger=none", "trainer.enable_progress_bar=false"]


def _records(root):
    return [json.loads(p.read_text()) for p in sorted(root.rglob("metrics.json"))]


def test_two_job_sweep_over_the_noise_amount(tmp_path):
    result = run_recipe(
        ["-m", "noise.input.std.amount=0,0.3", "noise_scale=0.5", *FAST, f"hydra.sweep.dir={tmp_path}"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(tmp_path)
    assert sorted(r["noise"]["input"]["std"]["amount"] for r in records) == [0, 0.3]
    assert sorted(r["noise_amounts"]["input.std"] for r in records) == [0.0, 0.15]  # amount x noise_scale
    assert len({r["group"] for r in records}) == 2 and all(r["seed"] == 0 for r in records)
    # The report takes the amount-0 run as the baseline and plots the other at its effective amount.
    report = compare_runs(load_runs(tmp_path), metric="test/acc")
    assert report.baseline == " ".join(sorted(["noise.input.std.amount=0", "noise_scale=0.5", *FAST]))
    assert [(s.family, s.amount) for s in report.summaries["test/acc"]] == [
        ("none", 0.0),
        ("gaussian input.std.amount", 0.15),
    ]


def test_submitit_local_sweep_runs_each_job_in_its_own_process(tmp_path):
    """hydra/launcher=submitit_local: each job is pickled and run by a fresh interpreter, as on SLURM. The
    environment has the repository root on PYTHONPATH but not recipes/, like a user's shell in a checkout."""
    sweep = tmp_path / "sweep"
    result = run_recipe(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "seed=0,1",
            "trainer.max_epochs=2",
            "logger=csv",
            "trainer=debug",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(sweep)
    assert sorted(r["seed"] for r in records) == [0, 1]
    assert all("test/acc" in r["metrics"] for r in records)
    assert len(list(sweep.glob(".submitit/*/*_result.pkl"))) == 2  # both ran through submitit


@pytest.mark.parametrize(
    ("search", "data", "noises"),
    [
        ("optuna", "circles", "none,input,activation"),
        pytest.param("optuna_regression", "diabetes", "none,input,target", marks=pytest.mark.slow),
    ],
)
def test_optuna_two_trials(search, data, noises, tmp_path):
    result = run_recipe(
        [
            f"hparams_search={search}",
            f"data={data}",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.sampler.n_startup_trials=2",
            f"hydra.sweeper.params.noise='choice({noises})'",
            *FAST,
            f"hydra.sweep.dir={tmp_path}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(_records(tmp_path)) == 2
    best = (tmp_path / "optimization_results.yaml").read_text()
    assert "best_value" in best and "noise_scale" in best
    assert (tmp_path / "optuna.db").is_file() and (tmp_path / "search.md").is_file()  # the study outlives the process


@pytest.mark.slow
def test_ddp_cpu_two_processes(tmp_path):
    """trainer=ddp_cpu: Lightning re-runs the command for rank 1; one record, written by rank 0."""
    result = run_recipe(
        [*QUIET, "trainer=ddp_cpu", "trainer.max_epochs=3", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(tmp_path)
    assert len(records) == 1
    assert "test/acc" in records[0]["metrics"] and records[0]["splits"]["train"] == 30
    assert result.stdout.count("best epoch (restored for evaluation)") == 1  # the summary from rank 0 only


@pytest.mark.slow
def test_multirun_with_ddp_is_refused_on_the_command_line(tmp_path):
    result = run_recipe(["-m", *FAST, "trainer=ddp_cpu", "seed=0,1", f"hydra.sweep.dir={tmp_path}"], cwd=tmp_path)
    assert result.returncode != 0
    assert "ddp_spawn" in result.stderr and not _records(tmp_path)


def _experiment_cases():
    for name in options("experiment"):
        slow = name in {"lstm_weight_noise", "sunspots_forecast", "gradient_annealed"}
        yield pytest.param(name, marks=pytest.mark.slow) if slow else name


@pytest.mark.parametrize("name", list(_experiment_cases()))
def test_experiment_runs_a_few_steps(name, compose_cfg):
    cfg = compose_cfg([f"experiment={name}", *FAST, "trainer.max_epochs=1"])  # experiments may set their length
    for node in (cfg.noise or {}).values():
        if not hasattr(lightning_noise, node._target_.rsplit(".", 1)[-1]):
            pytest.skip(f"{node._target_} is not in this branch yet")
    metrics = train_and_write(cfg)
    assert cfg.optimized_metric in metrics


@pytest.mark.slow
@pytest.mark.parametrize("name", ["circles_baseline", "circles_input_noise"])
def test_experiment_trains_fully(name, compose_cfg):
    """The full circles experiments (early stopping, a few hundred epochs): the MLP learns the circles."""
    metrics = train_and_write(compose_cfg([f"experiment={name}", *QUIET]))
    assert metrics["test/acc"] >= 0.9


def test_search_warns_when_trials_tie_at_the_best_value():
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from noisy_recipes.search import SearchTieWarning

    config = OmegaConf.create({"optimized_metric": "val/acc", "hydra": {"sweeper": {"direction": "maximize"}}})
    callback = SearchTieWarning()
    for i, value in enumerate([1.0, 0.95, 1.0]):
        job = JobReturn(overrides=[f"noise_scale={i}"], status=JobStatus.COMPLETED, _return_value=value)
        callback.on_job_end(config, job)
    message = callback.message(config)
    assert message.startswith("2 of 3 trials tie at the best val/acc = 1")
    assert "#0: noise_scale=0; #2: noise_scale=2" in message and "optimized_metric=val/loss" in message
    callback.values[2] = 0.99
    assert callback.message(config) == ""


def test_search_on_a_small_validation_split_warns(compose_cfg):
    from noisy_recipes import utils

    compose_cfg(["hparams_search=optuna"])
    with pytest.warns(UserWarning, match=r"optimizes val/loss on 20 validation samples.*data.n_samples=400"):
        utils.check_optimized_metric("val/loss", splits={"train": 30, "val": 20, "test": 50}, metric_name="acc")
    compose_cfg(["hparams_search=optuna", "data.n_samples=400", "data.val_size=200", "data.test_size=170"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        utils.check_optimized_metric("val/loss", splits={"train": 30, "val": 200, "test": 170}, metric_name="acc")
