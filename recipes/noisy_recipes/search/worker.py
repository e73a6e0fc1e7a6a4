"""Workers of the Optuna search: processes that take waiting trials from the study until none is left.

A worker process (``python -m noisy_recipes.search.worker PAYLOAD LABEL``) loads the search (the Hydra context,
the task function and the sweep's config, pickled by the sweeper with cloudpickle as submitit does), then, for
each trial it claims (:func:`~noisy_recipes.search.study.claim_trial`): samples the trial's parameters, runs the
task as a Hydra job in ``<multirun dir>/<trial number>``, and tells the study the result (COMPLETE, PRUNED or
FAIL). With ``hydra.sweeper.trials_per_process=1`` each trial gets a fresh process (nothing cached by
``torch.compile`` or a CUDA context outlives a trial); by default a process runs trials until none is left.

:func:`run_worker` keeps one such process going (starting another after each exit while trials wait); the
sweeper runs ``n_jobs`` of them in threads on this machine, or one per submitit job (:class:`WorkerTask`).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisy_recipes.search.settings import SearchSpace, Settings, build_pruner, build_sampler, finite
from noisy_recipes.search.storage import heartbeat_interval, open_storage
from noisy_recipes.search.study import WORKER_MODULE, claim_trial, fail_dead_trials, retry, waiting

log = logging.getLogger("noisy_recipes.search.worker")  # also when run as __main__ (python -m)

CONFIG_ERROR = 2  # exit status of a configuration mistake (as recipes/train.py): the search stops


@dataclass
class Payload:
    """What a worker process needs to run trials as Hydra jobs (pickled by the sweeper)."""

    hydra_context: Any
    task_function: Any
    config: Any
    settings: Settings
    space: SearchSpace
    storage_url: str
    singleton_state: Any

    def save(self, path: Path) -> Path:
        import cloudpickle

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cloudpickle.dumps(self))
        return path

    @staticmethod
    def load(path: str | Path) -> Payload:
        import cloudpickle

        return cloudpickle.loads(Path(path).read_bytes())

    def study(self) -> Any:
        import optuna

        storage = open_storage(self.storage_url, heartbeat_interval=self.settings.heartbeat_interval)
        return optuna.load_study(
            study_name=self.settings.study_name, storage=storage, pruner=build_pruner(self.settings.pruner)
        )


class _Heartbeat:
    """Record the trial's heartbeat every interval in a database storage with heartbeats (else nothing)."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self.storage, self.trial_id, self.stop = storage, trial_id, threading.Event()
        self.interval = heartbeat_interval(storage)
        self.thread = threading.Thread(target=self._beat, daemon=True) if self.interval else None

    def _beat(self) -> None:
        while not self.stop.is_set():
            self.storage.record_heartbeat(self.trial_id)
            self.stop.wait(self.interval)

    def __enter__(self) -> _Heartbeat:
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def run_trial(study: Any, trial_id: int, payload: Payload) -> int:
    """Run one claimed trial as a Hydra job and tell the study its result; returns 0, or
    :data:`CONFIG_ERROR` when the job refused its configuration (the trial is then marked failed)."""
    import optuna
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobStatus, run_job
    from omegaconf import open_dict

    from noisy_recipes.search.context import TrialContext, set_current

    settings, storage = payload.settings, study._storage
    number = storage.get_trial_number_from_id(trial_id)
    sampler = build_sampler(settings.sampler, number)
    if sampler is not None:
        study.sampler = sampler
    trial = optuna.Trial(study, trial_id)
    overrides = payload.space.overrides(payload.space.suggest(trial))
    log.info(f"Trial {number}: {' '.join(overrides)}")
    config = payload.hydra_context.config_loader.load_sweep_config(payload.config, overrides)
    with open_dict(config):
        config.hydra.job.id = f"{settings.study_name}_{number}"
        config.hydra.job.num = number
    HydraConfig.instance().set_config(config)
    storage.set_trial_user_attr(trial_id, "dir", str(Path(config.hydra.sweep.dir) / str(config.hydra.sweep.subdir)))
    context = TrialContext(trial, pruning=settings.pruning, objectives=settings.objectives)
    set_current(context)
    try:
        with _Heartbeat(storage, trial_id):
            result = run_job(
                hydra_context=payload.hydra_context,
                task_function=payload.task_function,
                config=config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
    except SystemExit as stop:
        _fail(study, trial, settings, f"the run exited with status {stop.code} (a configuration error)")
        return CONFIG_ERROR if stop.code == CONFIG_ERROR else int(stop.code or 1)
    finally:
        set_current(None)
    if result.status == JobStatus.FAILED:
        error = result._return_value
        _fail(study, trial, settings, f"{type(error).__name__}: {error}")
        return 0
    if context.pruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        log.info(f"Trial {number} pruned at epoch {context.pruned_epoch}.")
        return 0
    if settings.objectives and context.metrics:  # metrics of a training run (recipes/train.py registers them)
        raw = [context.metrics.get(name) for name in settings.objectives]
    else:  # the task's return value: a number, or one per objective
        value = result.return_value
        raw = list(value) if isinstance(value, (list, tuple)) else [value]
    values = finite(raw)
    if values is None or len(values) != len(settings.directions):
        names = settings.objectives or ["the returned value"]
        _fail(study, trial, settings, f"the objectives {names} are not {len(names)} finite numbers: {raw}")
        return 0
    study.tell(trial, values)
    return 0


def _fail(study: Any, trial: Any, settings: Settings, reason: str) -> None:
    from optuna.trial import TrialState

    study._storage.set_trial_user_attr(trial._trial_id, "error", reason[:500])
    frozen = study.tell(trial, state=TrialState.FAIL)
    log.warning(f"Trial {trial.number} failed: {reason[:500]}")
    retry(study, frozen, settings.retry_failed)


def work(payload_path: str | Path, label: str) -> int:
    """The worker process: claim and run trials until none is left (or ``trials_per_process`` ran)."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import configure_log, setup_globals

    payload = Payload.load(payload_path)
    Singleton.set_state(payload.singleton_state)
    setup_globals()
    configure_log(payload.config.hydra.hydra_logging, payload.config.hydra.verbose)
    study = payload.study()
    done = 0
    while payload.settings.trials_per_process is None or done < payload.settings.trials_per_process:
        trial_id = claim_trial(study, label)
        if trial_id is None:
            break
        status = run_trial(study, trial_id, payload)
        if status:
            return status
        done += 1
    return 0


def _finished(study: Any) -> int:
    return len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])


def run_worker(payload_path: str | Path, label: str, study: Any, settings: Settings) -> int:
    """Keep a worker process going while trials wait: start one, and another after it exits (a fresh process
    per ``trials_per_process`` trials, or after a crash, whose running trial is marked failed). Returns 0, or the
    exit status that stopped it (:data:`CONFIG_ERROR` for a configuration mistake, or a crash without progress)."""
    while waiting(study):
        before = _finished(study)
        code = subprocess.call([sys.executable, "-m", WORKER_MODULE, str(payload_path), label])
        if code == CONFIG_ERROR:
            return code
        if code != 0:
            failed = fail_dead_trials(study, settings)
            log.warning(f"Worker {label} exited with status {code}; trials marked failed: {failed or 'none'}.")
            if _finished(study) == before:
                return code
    return 0


class WorkerTask:
    """The task function of a worker job started by a Hydra launcher (submitit locally or on SLURM): runs
    :func:`run_worker` for the search in ``payload_path``; returns its exit status."""

    def __init__(self, payload_path: str | Path) -> None:
        self.payload_path = str(payload_path)

    def __call__(self, cfg: Any) -> int:
        from hydra.core.hydra_config import HydraConfig

        payload = Payload.load(self.payload_path)
        label = f"job {HydraConfig.get().job.num}"
        return run_worker(self.payload_path, label, payload.study(), payload.settings)


if __name__ == "__main__":
    sys.exit(work(sys.argv[1], sys.argv[2]))
