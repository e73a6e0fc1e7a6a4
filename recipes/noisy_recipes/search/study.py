"""A search's study in its storage: created or resumed, and its trials handed out exactly once.

Exactly ``n_trials``, whatever the number of workers: the command that starts (or resumes) a search puts the
missing trials in the study as *waiting* trials (Optuna's trial queue, ``enqueue_trial``), and a worker takes one
by moving it from WAITING to RUNNING, which the storage does atomically (``set_trial_state_values`` answers
False to the second of two workers): no trial is evaluated twice, and no worker creates a trial of its own.

A trial counts towards ``n_trials`` when it is COMPLETE, PRUNED, RUNNING, WAITING, or FAIL and not retried. A
RUNNING trial whose worker process died (killed, out of memory, a lost node) is marked FAIL: at once when the
process was on this machine (its pid is gone), after two missed heartbeats otherwise (database storages). With
``retry_failed=N`` a failed trial is queued again with its parameters (at most N times); the retry then counts
instead of the failure.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from noisy_recipes.search.errors import config_error
from noisy_recipes.search.settings import SearchSpace, Settings
from noisy_recipes.search.storage import heartbeat_interval

log = logging.getLogger(__name__)

SPACE_ATTR = "noisy_recipes:search_space"  # study user attribute: the search space's fingerprint
OBJECTIVES_ATTR = "noisy_recipes:objectives"  # study user attribute: the objectives' metric names
READY_ATTR = "noisy_recipes:ready"  # study user attribute: the creator has queued the first trials
WORKER_MODULE = "noisy_recipes.search.worker"  # what a worker process's command line runs


def prepare_study(storage: Any, settings: Settings, space: SearchSpace, *, objective_names: list[str]) -> Any:
    """Create the study, or load it and check that it is the same search; then fail the trials of dead
    workers, queue the retries asked for and the missing trials.

    Raises:
        ConfigError: the study exists with other directions or another search space (nothing in it is changed).
    """
    import optuna

    name = settings.study_name
    try:
        storage.get_study_id_from_name(name)
        exists = True
    except KeyError:
        exists = False
    if not exists:
        try:
            study = optuna.create_study(storage=storage, study_name=name, directions=settings.directions)
        except optuna.exceptions.DuplicatedStudyError:
            exists = True  # another command created it a moment ago: join it
        else:
            study.set_user_attr(SPACE_ATTR, space.fingerprint())
            study.set_user_attr(OBJECTIVES_ATTR, objective_names)
    if exists:
        study = optuna.load_study(study_name=name, storage=storage)
        check_same_search(study, settings, space)
        _wait_ready(study)
    fail_dead_trials(study)
    queue_trials(study, settings)
    if not exists:
        study.set_user_attr(READY_ATTR, True)
    return study


def check_same_search(study: Any, settings: Settings, space: SearchSpace) -> None:
    """Refuse to resume a study of another search (directions or space): its trials would not compare."""
    directions = [d.name.lower() for d in study.directions]
    where = f"the existing study {study.study_name!r}"
    if directions != settings.directions:
        given = settings.directions[0] if len(settings.directions) == 1 else settings.directions
        expected = directions[0] if len(directions) == 1 else directions
        raise config_error(
            f"hydra.sweeper.direction must be {expected!r}, the direction of {where} (or use another "
            f"hydra.sweeper.study_name; the study is left as it is); got {given!r}."
        )
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is not None and stored != space.fingerprint():
        raise config_error(
            f"hydra.sweeper.params must be the search space of {where}, {_describe(stored)} (or use another "
            f"hydra.sweeper.study_name; the study is left as it is); got {_describe(space.fingerprint())}."
        )


def _describe(fingerprint: str) -> str:
    space = json.loads(fingerprint)
    parts = [f"{k}: {v['name'].replace('Distribution', '')}{v['attributes']}" for k, v in space["params"].items()]
    return "{" + ", ".join(parts) + "}"


def _wait_ready(study: Any, timeout: float = 60.0) -> None:
    """Wait (at most ``timeout`` seconds) until the command that created the study has queued its trials."""
    deadline = time.monotonic() + timeout
    while not _user_attrs(study).get(READY_ATTR) and time.monotonic() < deadline:
        time.sleep(0.5)


def _user_attrs(study: Any) -> dict[str, Any]:
    return study._storage.get_study_user_attrs(study._study_id)


def counted(trials: list[Any]) -> list[Any]:
    """The trials that count towards ``n_trials`` (see the module docstring)."""
    from optuna.trial import TrialState

    retried = {t.user_attrs.get("retry_of") for t in trials}
    return [t for t in trials if t.state != TrialState.FAIL or t.number not in retried]


def queue_trials(study: Any, settings: Settings) -> int:
    """Queue a retry of each failed trial that may be retried, then waiting trials up to ``n_trials``
    counted ones; returns how many trials were queued."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    queued = 0
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for trial in trials:
        if trial.state == TrialState.FAIL and trial.number not in retried:
            queued += retry(study, trial, settings.retry_failed)
    missing = settings.n_trials - len(counted(study.get_trials(deepcopy=False)))
    for _ in range(max(missing, 0)):
        study.enqueue_trial({})
    return queued + max(missing, 0)


def retry(study: Any, trial: Any, retry_failed: int) -> int:
    """Queue ``trial`` (failed) again with its parameters if it has retries left; returns 1 if queued, else 0."""
    attempt = int(trial.user_attrs.get("attempt", 0))
    if attempt >= retry_failed:
        return 0
    study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number, "attempt": attempt + 1})
    log.info(f"Trial {trial.number} failed; queued again with the same parameters (retry {attempt + 1}).")
    return 1


def claim_trial(study: Any, label: str) -> int | None:
    """Take the first waiting trial for this process (WAITING -> RUNNING, atomic in the storage) and record
    which worker runs it; returns its id, or None when none is left."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:
            continue
        storage.set_trial_system_attr(trial._trial_id, "noisy_recipes:host", socket.gethostname())
        storage.set_trial_system_attr(trial._trial_id, "noisy_recipes:pid", os.getpid())
        storage.set_trial_user_attr(trial._trial_id, "worker", label)
        return trial._trial_id
    return None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` on this machine is still a search worker."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return WORKER_MODULE in cmdline.read_bytes().decode(errors="replace")
        except OSError:
            return False
    return True


def fail_dead_trials(study: Any, settings: Settings | None = None) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is gone: on this machine, a worker process that no longer
    exists; elsewhere, a trial whose heartbeats stopped (database storages with a heartbeat). Queues their
    retries if ``settings.retry_failed`` allows. Returns the numbers of the trials failed here."""
    import optuna
    from optuna.trial import TrialState

    storage, host, failed = study._storage, socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.system_attrs.get("noisy_recipes:pid")
        if trial.system_attrs.get("noisy_recipes:host") != host or pid is None or _alive(int(pid)):
            continue
        storage.set_trial_user_attr(trial._trial_id, "error", f"worker process {pid} on {host} died")
        if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            failed.append(trial.number)
            log.warning(f"Trial {trial.number} was running in process {pid}, which died: marked failed.")
    if heartbeat_interval(storage):
        with warnings.catch_warnings():  # "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    if settings is not None:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if trial.number in failed:
                retry(study, trial, settings.retry_failed)
    return failed


def waiting(study: Any) -> int:
    """How many trials are still waiting for a worker."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
