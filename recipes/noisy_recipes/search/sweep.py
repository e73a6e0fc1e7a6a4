"""The sweeper's work, in order: check the settings and the search space, open the storage, create or resume
the study, run the workers, summarize. A configuration mistake ends in one line and exit status 2 before any
storage, study or run directory is created (``HYDRA_FULL_ERROR=1`` shows the traceback)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from noisy_recipes.search.errors import config_error, is_config_error
from noisy_recipes.search.settings import SearchSpace, Settings, parse_space, read_settings
from noisy_recipes.search.storage import default_url, open_storage
from noisy_recipes.search.study import fail_dead_trials, prepare_study
from noisy_recipes.search.summary import summarize
from noisy_recipes.search.worker import CONFIG_ERROR, Payload, WorkerTask, run_worker

log = logging.getLogger(__name__)


def run_search(
    values: Mapping[str, Any], arguments: Sequence[str], *, config: Any, hydra_context: Any, task_function: Any
) -> Any:
    """Run (or resume) the search configured by ``hydra.sweeper`` (``values``) and the command line
    (``arguments``); returns the study. Exits with status 2 on a configuration mistake."""
    try:
        settings = read_settings(values)
        space = parse_space(settings.params, arguments)
        _preflight(config, hydra_context, space, settings.objectives)
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        url = settings.storage
        if url is None:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            url = default_url(sweep_dir)
        storage = open_storage(url, heartbeat_interval=settings.heartbeat_interval)
        names = settings.objectives or [str(config.get("optimized_metric") or "value")]
        study = prepare_study(storage, settings, space, objective_names=names)
    except ValueError as error:
        if not is_config_error(error) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"Error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(CONFIG_ERROR) from None
    log.info(f"Study {settings.study_name!r} in {url}: {settings.n_trials} trials, {settings.n_jobs} worker(s).")
    from hydra.core.singleton import Singleton
    from omegaconf import OmegaConf

    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")  # as Hydra's launchers do: the sweep's composed config
    payload = Payload(hydra_context, task_function, config, settings, space, url, Singleton.get_state())
    path = payload.save(sweep_dir / ".optuna" / f"payload-{socket.gethostname()}-{os.getpid()}.pkl")
    codes = _run_workers(path, study, settings, config=config, hydra_context=hydra_context)
    fail_dead_trials(study, settings)
    group = f"{config.get('name', 'search')} {sweep_dir.name}"
    summarize(study, sweep_dir=sweep_dir, metric_names=names, logger_cfg=config.get("logger"), group=group)
    if CONFIG_ERROR in codes:
        raise SystemExit(CONFIG_ERROR)
    return study


def _run_workers(path: Path, study: Any, settings: Settings, *, config: Any, hydra_context: Any) -> list[int]:
    """``n_jobs`` workers: threads that keep worker processes going on this machine (Hydra's basic launcher),
    or one job each through the configured launcher (submitit locally or on SLURM)."""
    launcher = str(config.hydra.launcher.get("_target_", ""))
    if launcher.endswith("BasicLauncher"):
        host = socket.gethostname()
        with ThreadPoolExecutor(settings.n_jobs) as pool:
            jobs = [pool.submit(run_worker, path, f"{host} {k}", study, settings) for k in range(settings.n_jobs)]
            return [job.result() for job in jobs]
    from hydra.core.plugins import Plugins

    workers = Plugins.instance().instantiate_launcher(
        config=config, hydra_context=hydra_context, task_function=WorkerTask(path)
    )
    overrides = [[f"hydra.sweep.subdir=workers/{k}"] for k in range(settings.n_jobs)]
    returns = workers.launch(overrides, initial_job_idx=0)
    return [int(r.return_value or 0) for r in returns]


def _preflight(config: Any, hydra_context: Any, space: SearchSpace, objectives: list[str] | None) -> None:
    """Before any storage or trial: compose the first trial's config and load its data (seconds), then refuse
    what every trial would refuse (data that does not load, an ``optimized_metric`` the run does not report,
    label noise in the space of a model without classes) and the robustness objective (an accuracy) on data
    that is not a classification task. Skipped for a task without ``data`` and ``model`` (not the recipe)."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    first = {name: d.choices[0] if hasattr(d, "choices") else d.low for name, d in space.distributions.items()}
    cfg = hydra_context.config_loader.load_sweep_config(config, space.overrides(first))
    if "data" not in cfg or "model" not in cfg or "_target_" not in (cfg.model or {}):
        return
    from noisy_recipes import utils
    from noisy_recipes.search.trial import ROBUSTNESS_OBJECTIVE, robustness_error

    HydraConfig.instance().set_config(cfg)  # the checks read the sweeper's search space from it
    try:
        datamodule, spec = utils.instantiate_data(cfg.data)
        task = hydra.utils.get_class(cfg.model._target_).task_of(spec)
        if ROBUSTNESS_OBJECTIVE in (objectives or []) and task != "classification":
            raise config_error(robustness_error(task))
        metric_name = "acc" if task == "classification" else "mse"
        utils.check_optimized_metric(
            cfg.get("optimized_metric"), splits=datamodule.split_sizes(), metric_name=metric_name
        )
    finally:
        HydraConfig.instance().set_config(config)
