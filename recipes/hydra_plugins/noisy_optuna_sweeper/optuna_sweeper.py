"""A Hydra sweeper on Optuna's ask/tell API with a persistent storage, several worker processes and pruning.

Hydra finds it because ``hydra_plugins`` is a namespace package: this folder (``recipes/hydra_plugins``, on the
path of ``recipes/train.py`` and in the editable install) adds to it. Importing this module is cheap (Hydra
scans every plugin at start): the work is in :mod:`noisy_recipes.search`, imported when a search starts.
"""

# No `from __future__ import annotations`: Hydra executes plugin modules without registering them in sys.modules,
# and dataclasses cannot resolve string annotations then.
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


@dataclass
class NoisyOptunaSweeperConf:
    """``hydra/sweeper=noisy_optuna``: each key is described in ``conf/hparams_search/optuna.yaml``. The values
    are checked by the sweeper (one line and exit status 2 for a mistake), so they are typed ``Any`` here."""

    _target_: str = "hydra_plugins.noisy_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False  # the sampler and pruner nodes are built per trial, in the worker processes
    storage: Any = None
    study_name: Any = "search"
    n_trials: Any = 20
    n_jobs: Any = 1
    direction: Any = "minimize"
    objectives: Any = None
    sampler: Any = None
    pruner: Any = "none"
    retry_failed: Any = False
    trials_per_process: Any = None
    heartbeat_interval: Any = 60
    params: Any = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="noisy_optuna", node=NoisyOptunaSweeperConf, provider="noisy_optuna_sweeper"
)


class OptunaSweeper(Sweeper):
    """Hands Hydra's sweep to :func:`noisy_recipes.search.sweep.run_search`."""

    def __init__(self, **values: Any) -> None:
        self.values = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in values.items()}
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def sweep(self, arguments: list[str]) -> Any:
        from noisy_recipes.search.sweep import run_search

        return run_search(
            self.values,
            arguments,
            config=self.config,
            hydra_context=self.hydra_context,
            task_function=self.task_function,
        )
