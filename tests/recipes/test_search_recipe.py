"""hparams_search=optuna on recipes/train.py as a user runs it: trials as training runs, pruning, the Pareto
search, and the mistakes refused before any training."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from tests.recipes.conftest import FAST, run_recipe

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("[0-9]*/metrics.json"))]


def test_pruning_marks_trials_pruned_and_stops_training_early(tmp_path):
    """A pruner that prunes any val/loss above 0 after one warm-up epoch: each trial reports epochs 0 and 1 and
    stops there, 2 of its 4 epochs; the study, metrics.json and the summary say pruned."""
    pruner = "{_target_:optuna.pruners.ThresholdPruner,upper:0.0,n_warmup_steps:1}"
    result = run_recipe(
        [
            "hparams_search=optuna",
            *FAST,
            "trainer.max_epochs=4",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.params.noise='choice(none,input)'",
            f"hydra.sweeper.pruner={pruner}",
            f"hydra.sweep.dir={tmp_path}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="noise", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    assert all(sorted(t.intermediate_values) == [0, 1] for t in study.trials)
    records = _records(tmp_path)
    assert [r["search"]["pruned"] for r in records] == [True, True]
    assert [r["search"]["pruned_epoch"] for r in records] == [1, 1]
    assert [r["epochs"] for r in records] == [2, 2]  # stopped after 2 of trainer.max_epochs=4
    assert "pruned at step 1" in (tmp_path / "search.md").read_text()


def test_search_on_the_recipe_writes_each_trial_and_the_summary(tmp_path):
    result = run_recipe(
        [
            "hparams_search=optuna",
            *FAST,
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.params.noise='choice(none,input,activation)'",
            f"hydra.sweep.dir={tmp_path}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(tmp_path)
    assert [r["search"]["trial"] for r in records] == [0, 1]
    assert all(not r["search"]["pruned"] and r["search"]["study"] == "noise" for r in records)
    best = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert set(best.best_params) == {"noise", "noise_scale"} and best.best_value == min(
        r["metrics"]["val/loss"] for r in records
    )
    summary = (tmp_path / "search.md").read_text()
    assert "## Best trials" in summary and "## Parameter importances (fANOVA)" in summary and "## History" in summary


@pytest.mark.parametrize(
    ("search", "start", "fragments"),
    [
        (
            "optuna_pareto",
            "Error: hydra.sweeper.objectives must name a robustness objective",
            ["got val/gaussian_auc", "regression model"],
        ),
        ("optuna", "Error: The search space's noise choices include label_smoothing", ["optuna_regression"]),
    ],
)
def test_a_search_that_does_not_fit_regression_data_is_refused_before_any_trial(search, start, fragments, tmp_path):
    result = run_recipe(
        [f"hparams_search={search}", "data=diabetes", *FAST, f"hydra.sweep.dir={tmp_path / 's'}"], cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr[-3000:]
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith(start), line
    assert all(fragment in line for fragment in fragments)
    assert not (tmp_path / "s").exists()  # no storage, no study, no run directory


@pytest.mark.slow
def test_pareto_search_on_the_recipe(tmp_path):
    """hparams_search=optuna_pareto on circles: every trial reports val/loss and val/gaussian_auc; the front is
    in search.md, pareto.csv and pareto.png."""
    result = run_recipe(
        [
            "hparams_search=optuna_pareto",
            *FAST,
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.params.noise='choice(none,input)'",
            f"hydra.sweep.dir={tmp_path}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(tmp_path)
    assert len(records) == 3 and all(0 <= r["metrics"]["val/gaussian_auc"] <= 1 for r in records)
    front = OmegaConf.load(tmp_path / "optimization_results.yaml").solutions
    assert 1 <= len(front) <= 3
    assert (tmp_path / "pareto.png").is_file() and "## Pareto front" in (tmp_path / "search.md").read_text()


@pytest.mark.slow
def test_submitit_local_two_jobs_pull_from_one_study(tmp_path):
    """hydra/launcher=submitit_local with n_jobs=2: two submitit jobs, each keeping a worker process going."""
    app = Path(__file__).resolve().parent / "search_app" / "app.py"
    result = run_recipe(
        [
            "hydra/launcher=submitit_local",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=6",
            "sleep=1",
            f"hydra.sweep.dir={tmp_path}",
        ],
        cwd=tmp_path,
        script=app,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="synthetic", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert {t.user_attrs["worker"] for t in study.trials} == {"job 0", "job 1"}
    assert len(list(tmp_path.glob(".submitit/*/*_result.pkl"))) == 2  # both workers ran as submitit jobs
