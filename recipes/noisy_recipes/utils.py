"""Helpers of ``recipes/train.py``: instantiation with early checks, the run record and the summary table."""

from __future__ import annotations

import logging
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from lightning_noise import LabelNoise, TargetNoise
from lightning_noise._json import write_json
from lightning_noise.report.records import adds_no_noise, most_noise
from noisy_recipes.config_types import type_problems

# The model tasks the loss-target noises fit. The callbacks check the loss module itself, but at setup, once the
# trainer and loggers exist, and target noise fits any MSE loss: the autoencoder's reconstruction loss included.
NOISE_TASKS = ((LabelNoise, ("classification",)), (TargetNoise, ("regression",)))


# ---------------------------------------------------------------------------------------------- config errors
class ConfigError(ValueError):
    """A configuration the recipe cannot run, found before training; the message says what to change.

    ``recipes/train.py`` prints it as one line and exits with status 2 (no traceback unless ``HYDRA_FULL_ERROR=1``).
    """


@contextmanager
def short_config_errors() -> Iterator[None]:
    """Report a :class:`ConfigError` (or an interpolation to nothing, ``${missing}``, or a ``???`` value read while
    training) as one line on stderr and exit with status 2, removing the run directory it leaves empty;
    ``HYDRA_FULL_ERROR=1`` lets it through with its traceback. Other errors are bugs: untouched.
    """
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    from noisy_recipes.hydra_errors import describe, exit_with

    try:
        yield
    except (ConfigError, InterpolationResolutionError, MissingMandatoryValue) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        remove_empty_run_dir()
        exit_with(str(error) if isinstance(error, ConfigError) else str(describe(error)))


def remove_empty_run_dir() -> None:
    """Remove what Hydra wrote for a run that never trained (``.hydra/``, the job's log file) and the run
    directory if that leaves it empty; in a multirun also the sweep directory if it then holds only Hydra's
    ``multirun.yaml``. Nothing else is deleted: a directory with other files stays."""
    from hydra.types import RunMode

    hc = hydra_config()
    if hc is None:
        return
    run_dir = Path(hc.runtime.output_dir)
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    (run_dir / f"{hc.job.name}.log").unlink(missing_ok=True)
    _rmdir_if_empty(run_dir)
    sweep_dir = Path(hc.sweep.dir)
    if hc.mode == RunMode.MULTIRUN and not run_dir.exists() and sweep_dir.is_dir():
        if [p.name for p in sweep_dir.iterdir()] == ["multirun.yaml"]:
            (sweep_dir / "multirun.yaml").unlink()
        _rmdir_if_empty(sweep_dir)


def _rmdir_if_empty(directory: Path) -> None:
    """Remove ``directory`` and then its parents while they are empty, stopping at the working directory."""
    cwd = Path.cwd().resolve()
    directory = directory.resolve()
    while directory != cwd and cwd in directory.parents and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def check_config(cfg: DictConfig) -> None:
    """Refuse, before anything is built, required values left out (``???``), values of the wrong type
    (:func:`~noisy_recipes.config_types.type_problems`) and a GPU trainer without a GPU.

    Raises:
        ConfigError: naming the overrides to add (``data.path=my.csv data.target=label``), each key with a value
            of the wrong type and the type it takes, or ``trainer=cpu``.
    """
    from omegaconf import OmegaConf as _OmegaConf

    missing = sorted(_OmegaConf.missing_keys(_OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])))
    if missing:
        example = " ".join(f"{key}={REQUIRED_EXAMPLES.get(key, 'VALUE')}" for key in missing)
        raise ConfigError(
            f"Required value{'s' if len(missing) > 1 else ''} not set: {', '.join(missing)}. Add "
            f"{'them' if len(missing) > 1 else 'it'} to the command line, e.g. python recipes/train.py "
            f"{' '.join(task_overrides())} {example}".replace("  ", " ")
        )
    problems = type_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems) + ". Fix the value on the command line (or in its YAML file).")
    accelerator = str(cfg.trainer.get("accelerator", "cpu")).lower()
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} needs a CUDA GPU, and torch finds none on this machine "
            f"(torch {torch.__version__}, torch.cuda.is_available() is False). Use trainer=cpu "
            "(or trainer=ddp_cpu for two CPU processes)."
        )


# Example values of required keys, shown in the message when one is left out.
REQUIRED_EXAMPLES = {"data.path": "my.csv", "data.target": "label"}


def instantiate_data(cfg: DictConfig) -> tuple[pl.LightningDataModule, Any]:
    """Build the data module and load its data (``datamodule.spec``), so data errors come before the model's.

    Raises:
        ConfigError: a bad data setting (a missing file or CSV column, an unknown dataset, sizes that do not fit).
    """
    with as_config_error(ValueError, FileNotFoundError):
        datamodule = hydra.utils.instantiate(cfg)
        return datamodule, datamodule.spec


def instantiate_model(cfg: DictConfig, spec: Any, **kwargs: Any) -> pl.LightningModule:
    """Check that the data fits the model class, then build the model for ``spec`` (and ``kwargs``, arguments
    the recipe knows at run time, such as ``eval_splits``).

    Raises:
        ConfigError: the data does not fit the model (``model=cnn data=circles``), or a bad model setting.
    """
    with as_config_error(ValueError):
        hydra.utils.get_class(cfg._target_).check_data(spec)
        return hydra.utils.instantiate(cfg, _partial_=True, _convert_="all")(spec, **kwargs)


@contextmanager
def as_config_error(*types: type[Exception]) -> Iterator[None]:
    """Raise errors of ``types`` (also when Hydra's instantiate wraps them) as a :class:`ConfigError`."""
    from hydra.errors import InstantiationException

    try:
        yield
    except ConfigError:
        raise
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, types):
            key = re.search(r"full_key: (\S+)", str(error))
            message = _message(cause)
            raise ConfigError(
                f"{key.group(1)}: {message}" if key and key.group(1) not in message else message
            ) from error
        raise
    except types as error:
        raise ConfigError(_message(error)) from error


def _message(error: Exception) -> str:
    """An error's message: a KeyError's without the quotes ``str()`` adds around it."""
    return str(error.args[0]) if isinstance(error, KeyError) and len(error.args) == 1 else str(error)


# ---------------------------------------------------------------------------------------------- hydra state
def hydra_config() -> DictConfig | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def task_overrides() -> list[str]:
    """The command-line overrides of this job (``model=cnn``, ``noise.input.std.amount=0.2``...)."""
    hc = hydra_config()
    return list(hc.overrides.task) if hc is not None else []


def group_label(overrides: list[str]) -> str:
    """A label of the configuration: the overrides minus the seed, sorted, joined by spaces ("default" if none)."""
    kept = sorted(o for o in overrides if o.lstrip("+~").split("=", 1)[0] != "seed")
    return " ".join(kept) or "default"


def check_ddp_multirun(cfg: DictConfig) -> None:
    """Refuse ``-m`` with Lightning's subprocess ``ddp`` launcher under Hydra's local launcher.

    Lightning's ``ddp`` re-runs the command line for ranks > 0, so every job of a local sweep would start the
    whole sweep again. ``ddp_spawn`` starts workers in-process, and a cluster launcher (submitit) runs each job
    under its own scheduler allocation, so both are fine.

    Raises:
        ConfigError: multirun + ``strategy=ddp`` (more than one device or node) + the basic launcher.
    """
    from hydra.types import RunMode

    hc = hydra_config()
    if hc is None or hc.mode != RunMode.MULTIRUN:
        return
    strategy = cfg.trainer.get("strategy", "auto")
    strategy = strategy.get("_target_", "") if isinstance(strategy, Mapping) else str(strategy)
    devices, nodes = cfg.trainer.get("devices", 1), cfg.trainer.get("num_nodes", 1)
    multi = devices not in (1, "1", [0]) or (nodes or 1) > 1
    launcher = str(hc.launcher.get("_target_", ""))
    if "ddp" in strategy.lower() and "spawn" not in strategy.lower() and multi and "BasicLauncher" in launcher:
        raise ConfigError(
            f"A multirun (-m) cannot use trainer.strategy={strategy!r} with {devices} devices: Lightning's ddp "
            "launcher re-runs the command line for each extra process, which would start the whole sweep again. "
            "Use trainer.strategy=ddp_spawn for sweeps, run the configurations one by one without -m, or use a "
            "cluster launcher (hydra/launcher=slurm, submitit)."
        )


def check_optimized_metric(metric: str | None, *, splits: Mapping[str, int], metric_name: str) -> None:
    """Refuse an ``optimized_metric`` the run will not report, before training (a sweeper would get None).

    The run reports ``{split}/loss`` and ``{split}/{metric_name}`` (``acc`` or ``mse``) for every non-empty split.

    Raises:
        ConfigError: a metric not in that list (the message lists it, and names the regression search).
    """
    _check_search_space(metric_name)
    if not metric:
        return
    valid = [f"{split}/{name}" for split, size in splits.items() if size for name in ("loss", metric_name)]
    if metric in valid:
        _warn_small_validation(metric, splits.get(metric.split("/", 1)[0], 0))
        return
    hint = ""
    if metric_name != "acc" and str(metric).endswith("/acc"):
        hint = (
            " This model has no accuracy (its task is not classification): set optimized_metric=val/mse, and for "
            "an Optuna search use hparams_search=optuna_regression (minimizes val/mse, no label noise)."
        )
    raise ConfigError(f"`optimized_metric` must be a metric this run reports, one of {valid}; got {metric!r}.{hint}")


# Fewer validation samples than this, and a search ranks its trials mostly by the luck of the split.
MIN_SEARCH_SAMPLES = 100


def _warn_small_validation(metric: str, samples: int) -> None:
    """Warn when a sweeper (Optuna) optimizes a ``val/`` metric measured on few samples."""
    hc = hydra_config()
    sweeper = str(hc.sweeper.get("_target_", "")) if hc is not None and "sweeper" in hc else ""
    if metric.startswith("val/") and "Optuna" in sweeper and 0 < samples < MIN_SEARCH_SAMPLES:
        warnings.warn(
            f"The search optimizes {metric} on {samples} validation samples: trials differ by less than the "
            f"split's noise. Give validation more data (data.val_size; for circles also data.n_samples, e.g. "
            f"data.n_samples=400 data.val_size=200 data.test_size=170).",
            UserWarning,
            stacklevel=2,
        )


def _check_search_space(metric_name: str) -> None:
    """Refuse a sweeper whose ``noise`` choices include label noise for a model without classes (the
    classification Optuna search on regression data), before its first trial trains.

    Raises:
        ConfigError: naming the label noises in the space and ``hparams_search=optuna_regression``.
    """
    hc = hydra_config()
    params = hc.sweeper.get("params") if hc is not None and "sweeper" in hc else None
    space = str(params.get("noise", "")) if params else ""
    labels = [name for name in ("label_smoothing", "label_flip") if name in space]
    if metric_name != "acc" and labels:
        raise ConfigError(
            f"The search space's noise choices include {', '.join(labels)}, which need a classification model, "
            f"but this model has no classes (its metric is {metric_name}). For regression data use "
            "hparams_search=optuna_regression (minimizes val/mse, no label noise)."
        )


# ---------------------------------------------------------------------------------------------- environment
def configure_threads(threads: int | None) -> None:
    """Set torch's CPU threads per process (small models run fastest on one thread per process)."""
    if threads:
        torch.set_num_threads(int(threads))


def quiet_wandb() -> None:
    """Keep W&B from printing to the console (its mode comes from the logger config: offline by default)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")


# Messages a user of the recipes cannot act on. Warnings are kept otherwise: only these exact texts go.
UNACTIONABLE_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # torch's pytree deprecation, from Lightning's own code
)


class ConsoleFilter(logging.Filter):
    """Drops Lightning's info lines a user cannot act on: the ``litlogger`` tips (an advertisement), and the
    GPU/TPU/HPU availability banners after their first appearance in the process (one per Trainer otherwise).
    Everything else, warnings included, passes."""

    BANNERS = ("GPU available:", "TPU available:", "HPU available:")

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "litlogger" in message.lower() or "litmodels" in message.lower():
            return False
        if message.startswith(self.BANNERS):
            if message in self.seen:
                return False
            self.seen.add(message)
        return True


def quiet_console() -> None:
    """Keep the console to what matters (the config, progress, the results): :class:`ConsoleFilter` on
    Lightning's info logger, and :data:`UNACTIONABLE_WARNINGS` ignored. Idempotent."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, ConsoleFilter) for f in logger.filters):
        logger.addFilter(ConsoleFilter())
    for message in UNACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


# ---------------------------------------------------------------------------------------------- instantiation
def _nodes(cfg: DictConfig | None, group: str) -> dict[str, DictConfig]:
    if not cfg:
        return {}
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"The {group} config must be a mapping of name to node, got {type(cfg).__name__}.")
    nodes = {}
    for name, node in cfg.items():
        if node is None:
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ValueError(f"{group}.{name} must be a node with a `_target_`, got {node!r}.")
        nodes[str(name)] = node
    return nodes


def instantiate_noise(cfg: DictConfig | None, task: str) -> dict[str, Callback]:
    """Build the selected noise callbacks, refusing those the model's task cannot take.

    Raises:
        ConfigError: a noise that does not fit the task (label noise on regression, target noise on
            classification, either on the autoencoder), or a bad noise setting.
    """
    callbacks = {}
    for name, node in _nodes(cfg, "noise").items():
        with as_config_error(ValueError, TypeError):
            callbacks[name] = hydra.utils.instantiate(node)
        for cls, tasks in NOISE_TASKS:
            if isinstance(callbacks[name], cls) and task not in tasks:
                raise ConfigError(
                    f"noise={name} ({cls.__name__}) needs a {' or '.join(tasks)} model, but this model's task is "
                    f"{task}. "
                    + (
                        "For a denoising autoencoder use noise=input."
                        if task == "reconstruction"
                        else "Choose noise=target for regression data, noise=label_smoothing or label_flip for classes."
                    )
                )
    return callbacks


def check_monitors(cfg: DictConfig | None, *, val_samples: int, limit_val_batches: Any) -> None:
    """Refuse callbacks that monitor a ``val/`` metric when the run never validates (``data.val_size=0`` or
    ``trainer.limit_val_batches=0``): early stopping and checkpointing would fail after the first epoch.

    Raises:
        ConfigError: naming each such callback and the overrides that fix it.
    """
    if val_samples and limit_val_batches != 0:
        return
    watching = [
        f"callbacks.{name}.monitor={node.monitor}"
        for name, node in _nodes(cfg, "callbacks").items()
        if str(node.get("monitor") or "").startswith("val/")
    ]
    if watching:
        reason = "data.val_size=0" if not val_samples else "trainer.limit_val_batches=0"
        raise ConfigError(
            f"This run never validates ({reason}), so no val/ metric is logged, but {', '.join(watching)} "
            "monitors one. Use callbacks=none (no early stopping or checkpointing: the last weights are "
            "evaluated), or monitor a training metric, e.g. callbacks.early_stopping.monitor=train/loss "
            "callbacks.model_checkpoint.monitor=train/loss, or keep a validation split (data.val_size > 0)."
        )


def instantiate_callbacks(cfg: DictConfig | None, trainer_cfg: DictConfig, *, has_logger: bool) -> list[Callback]:
    """Build the callbacks group, dropping those the run cannot use: a progress bar when the trainer config
    turns progress bars off (debug, tests), the LR monitor when there is no logger (``logger=none``)."""
    callbacks = []
    for node in _nodes(cfg, "callbacks").values():
        callback = hydra.utils.instantiate(node)
        if isinstance(callback, ProgressBar) and not trainer_cfg.get("enable_progress_bar", True):
            continue
        if isinstance(callback, LearningRateMonitor) and not has_logger:
            continue
        callbacks.append(callback)
    return callbacks


def instantiate_trainer(cfg: DictConfig, *, callbacks: list[Callback], loggers: list[Logger]) -> pl.Trainer:
    """Build the Trainer with ``callbacks`` and ``loggers`` (none: ``logger=False``).

    Raises:
        ConfigError: a setting Lightning refuses (``trainer.accelerator=foo``: the message lists the accelerators;
            ``trainer.accelerator=tpu`` without ``torch_xla``: the message names the package).
    """
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    with as_config_error(ValueError, TypeError, MisconfigurationException, ImportError):  # ImportError: tpu
        return hydra.utils.instantiate(cfg, callbacks=callbacks, logger=loggers or False)


def _mse(preds: torch.Tensor, targets: torch.Tensor) -> float:
    return float(torch.mean((preds.float() - targets.float().reshape(preds.shape)) ** 2))


def _input_as_target(batch: Any) -> tuple[Any, torch.Tensor]:
    return batch[0], batch[0]


def batch_limit(limit: Any, n_batches: int) -> int | None:
    """The batches Lightning evaluates under ``limit_test_batches`` (a count, or a fraction of ``n_batches``),
    None for all of them."""
    if limit is None or (isinstance(limit, float) and limit >= 1.0):
        return None
    count = int(limit) if isinstance(limit, int) or float(limit).is_integer() else int(n_batches * float(limit))
    return max(1, min(count, n_batches)) if count < n_batches else None


def robustness_callback(
    cfg: DictConfig | None,
    task: str,
    *,
    output_dir: Path,
    dataset_name: str,
    max_batches: int | None = None,
    dataloader_idx: int = 0,
) -> Callback | None:
    """The ``RobustnessEvaluation`` asked for by ``eval.robustness=true``, else None.

    The metric follows the model's task: accuracy for classification, MSE for regression, and for the
    denoising autoencoder the MSE between its output on the corrupted input and the clean input.
    ``eval.corruptions``: ``default`` (Gaussian + salt-and-pepper), ``cifar10c``, or a list of corruption names.
    ``max_batches``: the test batches it evaluates (the trainer's ``limit_test_batches``, so that its clean point
    is the run's ``test/`` metric).

    Raises:
        ConfigError: an unknown corruption name (the message lists the known ones).
    """
    if not cfg or not cfg.get("robustness"):
        return None
    from lightning_noise import RobustnessEvaluation
    from lightning_noise.robustness import DEFAULT_CORRUPTIONS

    corruptions = cfg.get("corruptions", "default")
    if OmegaConf.is_config(corruptions):
        corruptions = list(OmegaConf.to_container(corruptions, resolve=True))
    if corruptions == "default":
        corruptions = DEFAULT_CORRUPTIONS
    kwargs: dict[str, Any] = {}
    if task == "regression":
        kwargs = {"metric": _mse, "metric_name": "mse"}
    elif task == "reconstruction":
        kwargs = {"metric": _mse, "metric_name": "mse", "batch_to_inputs_targets": _input_as_target}
    with as_config_error(ValueError):
        return RobustnessEvaluation(
            corruptions,
            seed=int(cfg.get("seed", 0)),
            output_dir=output_dir,
            dataset_name=dataset_name,
            max_batches=max_batches,
            dataloader_idx=dataloader_idx,
            **kwargs,
        )


def run_labels(cfg: DictConfig, noise: Mapping[str, Callback]) -> dict[str, Any]:
    """How a logger tells this run apart from the others: ``name`` (the run name and its overrides, minus the
    ``experiment=`` that the name already says), ``group`` (one per multirun: the name and the sweep
    directory's name; None for a single run) and ``tags`` (each noise callback's class and amounts, or
    ``no noise``).

    Example: ``{"name": "circles_classic variant=hidden_0.1 seed=3", "group": "circles_classic
    2024-05-01_12-00-00", "tags": ["ActivationNoise", "activation.std=0.1"]}``.
    """
    from hydra.types import RunMode

    overrides = [o for o in task_overrides() if not o.lstrip("+~").startswith("experiment=")]
    hc = hydra_config()
    group = None
    if hc is not None and hc.mode == RunMode.MULTIRUN:
        group = f"{cfg.name} {Path(hc.sweep.dir).name}"
    amounts = noise_amounts(noise)
    tags = [type(callback).__name__ for callback in noise.values()]
    tags += [f"{key}={value:g}" for key, value in amounts.items() if not adds_no_noise(key, value)]
    if all(adds_no_noise(key, value) for key, value in amounts.items()):
        tags.append("no noise")
    return {"name": " ".join([str(cfg.name), *overrides]), "group": group, "tags": [t[:64] for t in tags]}


def instantiate_loggers(cfg: DictConfig | None, run: Mapping[str, Any] | None = None) -> list[Logger]:
    """Build the logger group; a W&B logger's ``name``, ``group`` and ``tags`` left null take ``run``'s
    (:func:`run_labels`), so that the runs of a sweep can be told apart after ``wandb sync``.

    The labels are written into ``cfg`` itself, so that the config the run logs and saves (``config.yaml``) shows
    the name, group and tags the run got, not the nulls that asked for them.
    """
    loggers = []
    for node in _nodes(cfg, "logger").values():
        if str(node._target_).rsplit(".", 1)[-1] == "WandbLogger" and run:
            for key, value in run.items():
                if key in node and node.get(key) is None:
                    node[key] = value
        logger = hydra.utils.instantiate(node)
        if isinstance(getattr(logger, "_wandb_init", None), dict) and logger._wandb_init.get("anonymous") is None:
            # Lightning passes anonymous=None, which wandb >= 0.19 answers with a warning that the setting has
            # no effect; leaving it out changes nothing else.
            logger._wandb_init.pop("anonymous")
        loggers.append(logger)
    return loggers


def final_metrics(results: list[Mapping[str, Any]]) -> dict[str, float]:
    """The final evaluation's metrics (``trainer.test`` results, logged as ``final/test/acc``) as ``test/acc``."""
    return {key.removeprefix("final/"): float(value) for result in results for key, value in result.items()}


def final_summary(metrics: Mapping[str, float], *, best_epoch: int) -> dict[str, float]:
    """The run's results apart from its training curves: the final evaluation (``final/test/acc``...) and the best
    epoch (``final/best_epoch``). A W&B run's summary holds them, and so does the run directory's ``summary.json``.
    """
    return {**{f"final/{key}": value for key, value in metrics.items()}, "final/best_epoch": best_epoch}


def log_final(loggers: list[Logger], metrics: Mapping[str, float], *, best_epoch: int, step: int) -> None:
    """Log the best epoch under ``final/best_epoch``, and put :func:`final_summary` in a W&B run's summary."""
    for logger in loggers:
        logger.log_metrics({"final/best_epoch": best_epoch}, step=step)
        if type(logger).__name__ == "WandbLogger" and rank_zero_only.rank == 0:
            logger.experiment.summary.update(final_summary(metrics, best_epoch=best_epoch))


def finish_loggers(loggers: list[Logger]) -> None:
    """Close W&B runs, so the offline files are complete and the next job of a sweep starts a new run."""
    for logger in loggers:
        logger.finalize("success")
        if type(logger).__name__ == "WandbLogger" and rank_zero_only.rank == 0:
            logger.experiment.finish()


# Root nodes that are not logged as hyperparameters: Hydra's own, and `schedule` and `noise_modules`, which act
# only through the noise nodes (each `noise.<name>.<amount>.shape` and `noise.<name>.modules` is the resolved copy).
UNLOGGED_KEYS = ("hydra", "schedule", "noise_modules")


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without Hydra's own node and the root ``schedule`` node, as plain containers."""
    return {
        str(key): OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in cfg.items_ex(resolve=True)
        if key not in UNLOGGED_KEYS
    }


# ---------------------------------------------------------------------------------------------- results
def best_epoch(trainer: pl.Trainer) -> int:
    """The epoch of the best checkpoint (lowest validation loss), else the last epoch trained."""
    checkpoint = trainer.checkpoint_callback
    path = getattr(checkpoint, "best_model_path", "")
    if path and Path(path).is_file():
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    return max(trainer.current_epoch - 1, 0)


def model_label(model: torch.nn.Module) -> str:
    """A short name for titles: ``MLP 2-500-2`` (layer widths) for the MLP, else the class name."""
    name = type(model).__name__
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if name == "MLP" and layers:
        return f"{name} " + "-".join(str(w) for w in [layers[0].in_features, *(m.out_features for m in layers)])
    return name


def noise_settings(callbacks: Mapping[str, Callback]) -> dict[str, str]:
    """A readable description of each noise callback's amounts (``std=0.1``, ``std=0.3 x Linear(...)``)."""
    settings = {}
    for name, callback in callbacks.items():
        schedules = getattr(callback, "schedules", {}) or {}
        amounts = ", ".join(f"{arg}={schedule!r}" for arg, schedule in schedules.items())
        settings[name] = f"{type(callback).__name__}({amounts})"
    return settings


def noise_amounts(callbacks: Mapping[str, Callback]) -> dict[str, float]:
    """The amount each built noise callback received, ``{"input.std": 0.1, ...}``: for every amount argument
    of the callback (its ``schedules``), the end of the schedule's ``bounds()`` that means the most noise
    (:func:`~lightning_noise.report.records.most_noise`: the largest std or fraction, the lowest ``snr_db``; a
    constant's value). So a warm-up ramp from 0 records the amount it reaches, and an ``snr_db`` schedule the
    heaviest noise it applies, not its ``inf`` (no noise) end.

    Read from the callbacks themselves, so it is what trained (``schedule.value``, ``noise_scale`` and every
    other override included). The report reads it (``metrics.json`` key ``noise_amounts``): a run whose amounts
    all add no noise (:func:`~lightning_noise.report.records.adds_no_noise`) is a no-noise run.
    """
    amounts = {}
    for name, callback in callbacks.items():
        for argument, schedule in (getattr(callback, "schedules", None) or {}).items():
            key = f"{name}.{argument}"
            bounds = getattr(schedule, "bounds", None)
            amounts[key] = most_noise(key, *map(float, bounds())) if callable(bounds) else float(schedule(0))
    return amounts


@rank_zero_only
def write_record(path: Path, record: dict[str, Any]) -> None:
    write_json(path, record, default=str)  # strict JSON: null, never NaN


@rank_zero_only
def write_run_files(output_dir: Path, cfg: DictConfig, summary: Mapping[str, Any]) -> None:
    """Write the run's resolved config (``config.yaml``, :func:`plain_config`: no Hydra node, every
    interpolation resolved) and its :func:`final_summary` (``summary.json``, strict JSON) to ``output_dir``, plain
    files beside ``metrics.json`` (Hydra's ``.hydra/config.yaml`` keeps the interpolations)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(plain_config(cfg)))
    write_json(output_dir / "summary.json", dict(summary))


@rank_zero_only
def print_config(cfg: DictConfig, *, output_dir: Path | str | None = None) -> None:
    """Print the resolved config as one block before training: a line per root key, each node in flow style
    with its ``_target_`` shortened to the name it builds (``data: CirclesDataModule(train_size: 30, ...)``)."""
    from rich.console import Console
    from rich.text import Text
    from rich.tree import Tree

    where = f"; in full: {Path(output_dir) / 'config.yaml'}" if output_dir else ""
    tree = Tree(Text.assemble(("config", "bold"), f" (resolved{where})"))
    for key, value in plain_config(cfg).items():
        tree.add(Text.assemble((str(key), "bold"), ": ", _flow(value)))
    Console().print(tree)


def _flow(value: Any) -> str:
    """``value`` in YAML-like flow style; a mapping with a ``_target_`` as ``Name(key: value, ...)``."""
    if isinstance(value, Mapping):
        target = str(value.get("_target_", "")).rsplit(".", 1)[-1]
        inner = ", ".join(f"{k}: {_flow(v)}" for k, v in value.items() if not str(k).startswith("_"))
        return f"{target}({inner})" if target else f"{{{inner}}}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return f"{value:g}" if isinstance(value, float) else str(value)


@rank_zero_only
def print_summary(
    *,
    title: str,
    metrics: Mapping[str, float],
    noise: Mapping[str, str],
    splits: Mapping[str, int],
    best: int,
    epochs: int,
    output_dir: str,
) -> None:
    from rich.console import Console
    from rich.table import Table

    names = sorted({key.split("/", 1)[1] for key in metrics if "/" in key})
    table = Table(title=title, show_lines=False)
    table.add_column("split")
    table.add_column("samples", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for split in ("train", "val", "test"):
        row = [split, str(splits.get(split, ""))]
        row += [f"{metrics[f'{split}/{n}']:.4f}" if f"{split}/{n}" in metrics else "" for n in names]
        table.add_row(*row)
    console = Console()
    console.print(table)
    for name, setting in (noise or {"noise": "none"}).items():
        console.print(f"  noise {name}: {setting}")
    console.print(f"  best epoch (restored for evaluation): {best} of {epochs} trained; noise off at evaluation")
    console.print(f"  outputs: {output_dir}")
