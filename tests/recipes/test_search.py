"""The Optuna sweeper (recipes/hydra_plugins/noisy_optuna_sweeper) on a synthetic app without training
(tests/recipes/search_app): workers sharing a study, a search killed and resumed, reproducibility, the Pareto
front, and each mistake refused in one line with exit status 2 before anything is created."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.recipes.conftest import run_recipe

APP = Path(__file__).resolve().parent / "search_app" / "app.py"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_app(args: list[str], tmp_path: Path, **kwargs) -> subprocess.CompletedProcess:
    return run_recipe(args, cwd=tmp_path, script=APP, **kwargs)


def load(storage: str, name: str = "synthetic") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in sorted(study.trials, key=lambda t: t.number)]


def test_two_workers_share_one_sqlite_study(tmp_path):
    result = run_app(
        [f"hydra.sweep.dir={tmp_path / 's'}", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=6", "sleep=0.5"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(f"sqlite:///{tmp_path / 's' / 'optuna.db'}")
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(6))  # distinct, exactly n_trials
    assert states(study) == ["COMPLETE"] * 6
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both workers ran trials
    for t in study.trials:  # one run directory per trial, named by its number, with the trial's overrides
        overrides = (tmp_path / "s" / str(t.number) / ".hydra" / "overrides.yaml").read_text()
        assert f"x={t.params['x']}" in overrides
    assert "Best trials" in (tmp_path / "s" / "search.md").read_text()


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_killed_search_resumes_with_the_killed_trial_failed(tmp_path):
    """SIGKILL of the search (its worker and the command) while a trial runs; the same command run again
    completes exactly n_trials, the killed trial FAIL; asked to retry, it runs that trial's parameters again."""
    db = tmp_path / "study.db"
    args = [f"hydra.sweeper.storage=sqlite:///{db}", f"hydra.sweep.dir={tmp_path / 's'}", "hydra.sweeper.n_trials=4"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, str(APP), *args, "sleep=3"], cwd=tmp_path, env=env, start_new_session=True
    )

    def one_done_one_running() -> bool:
        assert process.poll() is None, "the search ended before it was killed"
        if not db.exists():
            return False
        try:
            found = states(load(f"sqlite:///{db}"))
        except Exception:  # noqa: BLE001 - the search is creating the study (tables, rows) at this moment
            return False
        return found.count("COMPLETE") == 1 and found.count("RUNNING") == 1

    _wait_for(one_done_one_running)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert states(load(f"sqlite:///{db}")) == ["COMPLETE", "RUNNING", "WAITING", "WAITING"]

    result = run_app([*args, "sleep=3"], tmp_path)  # the same command: sleep is fixed, not the search space
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(f"sqlite:///{db}")
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]  # exactly n_trials, none twice
    killed = study.trials[1]
    assert "died" in killed.user_attrs["error"]

    result = run_app([*args, "hydra.sweeper.retry_failed=true", "sleep=0"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(f"sqlite:///{db}")
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    retried = study.trials[4]
    assert retried.user_attrs["retry_of"] == 1 and retried.params == killed.params


@pytest.mark.slow
def test_a_killed_worker_process_is_replaced_and_its_trial_failed(tmp_path):
    """SIGKILL of the worker process alone: the command marks its trial FAIL at once, starts another worker
    process and still ends with exactly n_trials."""
    db = tmp_path / "s" / "optuna.db"
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    args = [f"hydra.sweep.dir={tmp_path / 's'}", "hydra.sweeper.n_trials=3", "sleep=3"]
    process = subprocess.Popen([sys.executable, str(APP), *args], cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    running: list[int] = []

    def a_trial_running() -> bool:
        if not db.exists():
            return False
        try:
            study = load(f"sqlite:///{db}")
        except Exception:  # noqa: BLE001 - the search is creating the study (tables, rows) at this moment
            return False
        # a trial turns RUNNING (the atomic take) a moment before its worker records its pid: wait for the pid
        pids = [t.system_attrs.get("noisy_recipes:pid") for t in study.trials if t.state == TrialState.RUNNING]
        running[:] = [pid for pid in pids if pid is not None]
        return bool(running) and running[0] != process.pid

    _wait_for(a_trial_running)
    os.kill(running[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    study = load(f"sqlite:///{db}")
    assert sorted(states(study)) == ["COMPLETE", "COMPLETE", "FAIL"]
    assert len({t.system_attrs["noisy_recipes:pid"] for t in study.trials}) == 2  # a second worker process


@pytest.mark.slow
def test_one_worker_and_a_fixed_seed_propose_the_same_trials(tmp_path):
    sampler = ["hydra.sweeper.sampler._target_=optuna.samplers.TPESampler", "+hydra.sweeper.sampler.n_startup_trials=2"]
    proposed = []
    for run in ("a", "b"):
        result = run_app([f"hydra.sweep.dir={tmp_path / run}", "hydra.sweeper.n_trials=5", *sampler], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        proposed.append([t.params for t in load(f"sqlite:///{tmp_path / run / 'optuna.db'}").trials])
    assert proposed[0] == proposed[1]
    assert len({tuple(p.values()) for p in proposed[0]}) > 1  # not one draw repeated


def test_pareto_search_returns_the_known_front(tmp_path):
    """Objectives x and (3 - x)^2 + y, both minimized, over x in 0..3, y in 0..1 (every point, brute force):
    the front is y = 0 for every x."""
    result = run_app(
        [
            f"hydra.sweep.dir={tmp_path}",
            "pareto=true",
            "hydra.sweeper.direction=[minimize,minimize]",
            "hydra.sweeper.objectives=null",
            "hydra.sweeper.n_trials=8",
            "hydra.sweeper.sampler._target_=optuna.samplers.BruteForceSampler",
        ],
        tmp_path,
    )
    assert result.returncode == 2 and "hydra.sweeper.objectives must be a list of 2 metrics" in result.stderr
    result = run_app(
        [
            f"hydra.sweep.dir={tmp_path}",
            "pareto=true",
            "hydra.sweeper.direction=[minimize,minimize]",
            "hydra.sweeper.objectives=[f1,f2]",
            "hydra.sweeper.n_trials=8",
            "hydra.sweeper.sampler._target_=optuna.samplers.BruteForceSampler",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from omegaconf import OmegaConf

    front = OmegaConf.load(tmp_path / "optimization_results.yaml").solutions
    assert sorted((s.params.x, s.params.y) for s in front) == [(0, 0), (1, 0), (2, 0), (3, 0)]
    assert [list(s["values"]) for s in front] == [[0, 9], [1, 4], [2, 1], [3, 0]]
    rows = (tmp_path / "pareto.csv").read_text().splitlines()
    assert rows[0] == "trial,f1,f2,x,y,pareto" and len(rows) == 9
    assert (tmp_path / "pareto.png").stat().st_size > 10_000
    assert "## Pareto front" in (tmp_path / "search.md").read_text()


@pytest.mark.slow
def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path):
    result = run_app([f"hydra.sweep.dir={tmp_path}", "hydra.sweeper.n_trials=2", "fail=true"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(f"sqlite:///{tmp_path / 'optuna.db'}")
    assert states(study) == ["FAIL", "FAIL"]
    assert study.trials[0].user_attrs["error"] == "RuntimeError: this trial fails on purpose"


# ---------------------------------------------------------------------------------------------- bad input
def _refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("Error: hydra.sweeper."), line
    for fragment in fragments:
        assert fragment in line


def test_a_bad_setting_is_refused_in_one_line_before_anything_is_created(tmp_path):
    result = run_app([f"hydra.sweep.dir={tmp_path / 's'}", "hydra.sweeper.n_jobs=0"], tmp_path)
    _refused(result, "n_jobs must be an integer >= 1; got 0")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("notadatabase", ["storage must be a reachable database URL", "'notadatabase'"]),
        ("sqlite:////no/such/dir/x.db", ["does not exist"]),
        ("sqlite:///:memory:", ["in-memory database cannot be shared"]),
        ("postgresql://nobody@127.0.0.1:9/db", ["got 'postgresql://nobody@127.0.0.1:9/db' ("]),
        ("journal:/no/such/dir/x.log", ["journal file does not exist"]),
    ],
)
def test_a_bad_storage_is_refused_in_one_line(url, fragments):
    from noisy_recipes.search.storage import open_storage

    with pytest.raises(ValueError) as caught:
        open_storage(url)
    message = str(caught.value)
    assert message.startswith("hydra.sweeper.storage must be") and "\n" not in message
    assert all(fragment in message for fragment in fragments), message


def test_a_study_of_another_search_is_refused_in_process(tmp_path):
    from noisy_recipes.search.settings import parse_space, read_settings
    from noisy_recipes.search.storage import open_storage
    from noisy_recipes.search.study import prepare_study

    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    settings = read_settings({"study_name": "s", "n_trials": 3, "direction": "minimize"})
    prepare_study(storage, settings, parse_space({"x": "range(0, 4)"}, []), objective_names=["value"])
    with pytest.raises(ValueError, match=r"params must be the search space of the existing study 's'.*got \{x: Int"):
        prepare_study(storage, settings, parse_space({"x": "range(0, 3)"}, []), objective_names=["value"])
    maximize = read_settings({"study_name": "s", "n_trials": 3, "direction": "maximize"})
    with pytest.raises(ValueError, match=r"direction must be 'minimize'.*got 'maximize'"):
        prepare_study(storage, maximize, parse_space({"x": "range(0, 4)"}, []), objective_names=["value"])
    study = optuna.load_study(study_name="s", storage=storage)
    assert states(study) == ["WAITING"] * 3  # left as it was: three queued trials, nothing added or removed
    more = read_settings({"study_name": "s", "n_trials": 5, "direction": "minimize"})  # a resume asking for more
    prepare_study(storage, more, parse_space({"x": "range(0, 4)"}, ["seed=3"]), objective_names=["value"])
    assert states(study) == ["WAITING"] * 5  # fixed values may change; the missing trials are queued


@pytest.mark.slow
def test_a_study_of_another_search_is_refused_and_left_as_it_is(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    base = [f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={tmp_path / 's'}", "hydra.sweeper.n_trials=1"]
    assert run_app(base, tmp_path).returncode == 0
    before = load(storage).trials
    result = run_app([*base, "hydra.sweeper.params.x='range(0,3)'"], tmp_path)
    _refused(result, "params must be the search space of the existing study 'synthetic'", "got {x: Int{'high': 2")
    result = run_app([*base, "hydra.sweeper.direction=maximize"], tmp_path)
    _refused(result, "direction must be 'minimize', the direction of the existing study", "got 'maximize'")
    after = load(storage).trials
    assert [(t.number, t.state, t.params, t.values) for t in after] == [
        (t.number, t.state, t.params, t.values) for t in before
    ]


def test_settings_messages_name_the_key_expected_and_given():
    from noisy_recipes.search.settings import PRUNERS, build_pruner, parse_space, read_settings

    base = {"study_name": "s", "n_trials": 2, "direction": "minimize"}
    with pytest.raises(ValueError, match=r"hydra.sweeper.n_trials must be an integer >= 1; got 0\."):
        read_settings({**base, "n_trials": 0})
    with pytest.raises(ValueError, match=r"direction must be minimize, maximize or a list.*got 'up'"):
        read_settings({**base, "direction": "up"})
    with pytest.raises(ValueError, match=r"pruner must be none for a multi-objective .*got 'median'"):
        read_settings({**base, "direction": ["minimize", "maximize"], "objectives": ["a", "b"], "pruner": "median"})
    with pytest.raises(ValueError, match=r"objectives must be one metric per direction"):
        read_settings({**base, "objectives": ["a", "b"]})
    with pytest.raises(ValueError, match=r"retry_failed must be an integer >= 0; got -1"):
        read_settings({**base, "retry_failed": -1})
    assert read_settings({**base, "retry_failed": True}).retry_failed == 1
    assert [type(build_pruner(name)).__name__ for name in PRUNERS] == [
        "NopPruner",
        "MedianPruner",
        "SuccessiveHalvingPruner",
        "HyperbandPruner",
    ]
    space = parse_space({"a": "choice(x, y)", "b": "interval(0.1, 3.0)", "c": "tag(log, interval(1e-3, 1))"}, ["d=4"])
    assert {k: type(v).__name__ for k, v in space.distributions.items()} == {
        "a": "CategoricalDistribution",
        "b": "FloatDistribution",
        "c": "FloatDistribution",
    }
    assert space.distributions["c"].log and space.fixed == {"d": "4"}
    with pytest.raises(ValueError, match=r"params.b must be interval\(low, high\) with low < high"):
        parse_space({"b": "interval(3, 1)"}, [])
