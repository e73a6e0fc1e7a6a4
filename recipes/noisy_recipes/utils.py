"""Helpers of ``recipes/train.py``: instantiation with early checks, the run record and the summary table."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

# Which model tasks each noise callback can serve (the class name of its `_target_`).
NOISE_TASKS = {
    "LabelNoise": ("classification",),
    "TargetNoise": ("regression",),
}


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
        ValueError: multirun + ``strategy=ddp`` (more than one device or node) + the basic launcher.
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
        raise ValueError(
            f"A multirun (-m) cannot use trainer.strategy={strategy!r} with {devices} devices: Lightning's ddp "
            "launcher re-runs the command line for each extra process, which would start the whole sweep again. "
            "Use trainer.strategy=ddp_spawn for sweeps, run the configurations one by one without -m, or use a "
            "cluster launcher (hydra/launcher=slurm, submitit)."
        )


def check_optimized_metric(metric: str | None, *, splits: Mapping[str, int], metric_name: str) -> None:
    """Refuse an ``optimized_metric`` the run will not report, before training (a sweeper would get None).

    The run reports ``{split}/loss`` and ``{split}/{metric_name}`` (``acc`` or ``mse``) for every non-empty split.

    Raises:
        ValueError: a metric not in that list (the message lists it, and names the regression search).
    """
    if not metric:
        return
    valid = [f"{split}/{name}" for split, size in splits.items() if size for name in ("loss", metric_name)]
    if metric in valid:
        return
    hint = ""
    if metric_name != "acc" and str(metric).endswith("/acc"):
        hint = (
            " This model has no accuracy (its task is not classification): set optimized_metric=val/mse, and for "
            "an Optuna search use hparams_search=optuna_regression (minimizes val/mse, no label noise)."
        )
    raise ValueError(f"`optimized_metric` must be a metric this run reports, one of {valid}; got {metric!r}.{hint}")


# ---------------------------------------------------------------------------------------------- environment
def configure_threads(threads: int | None) -> None:
    """Set torch's CPU threads per process (small models run fastest on one thread per process)."""
    if threads:
        torch.set_num_threads(int(threads))


def quiet_wandb() -> None:
    """Keep W&B from printing to the console (its mode comes from the logger config: offline by default)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")


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
        ValueError: a noise that does not fit the task (label noise on regression, target noise on
            classification, either on the autoencoder).
    """
    callbacks = {}
    for name, node in _nodes(cfg, "noise").items():
        cls_name = str(node._target_).rsplit(".", 1)[-1]
        tasks = NOISE_TASKS.get(cls_name)
        if tasks is not None and task not in tasks:
            raise ValueError(
                f"noise={name} ({cls_name}) needs a {' or '.join(tasks)} model, but this model's task is {task}. "
                + (
                    "For a denoising autoencoder use noise=input."
                    if task == "reconstruction"
                    else "Choose noise=target for regression data, noise=label_smoothing or label_flip for classes."
                )
            )
        callbacks[name] = hydra.utils.instantiate(node)
    return callbacks


def check_monitors(cfg: DictConfig | None, *, val_samples: int, limit_val_batches: Any) -> None:
    """Refuse callbacks that monitor a ``val/`` metric when the run never validates (``data.val_size=0`` or
    ``trainer.limit_val_batches=0``): early stopping and checkpointing would fail after the first epoch.

    Raises:
        ValueError: naming each such callback and the overrides that fix it.
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
        raise ValueError(
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
    cfg: DictConfig | None, task: str, *, output_dir: Path, dataset_name: str, max_batches: int | None = None
) -> Callback | None:
    """The ``RobustnessEvaluation`` asked for by ``eval.robustness=true``, else None.

    The metric follows the model's task: accuracy for classification, MSE for regression, and for the
    denoising autoencoder the MSE between its output on the corrupted input and the clean input.
    ``eval.corruptions``: ``default`` (Gaussian + salt-and-pepper), ``cifar10c``, or a list of corruption names.
    ``max_batches``: the test batches it evaluates (the trainer's ``limit_test_batches``, so that its clean point
    is the run's ``test/`` metric).

    Raises:
        ValueError: an unknown corruption name (the message lists the known ones).
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
    return RobustnessEvaluation(
        corruptions,
        seed=int(cfg.get("seed", 0)),
        output_dir=output_dir,
        dataset_name=dataset_name,
        max_batches=max_batches,
        **kwargs,
    )


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    return [hydra.utils.instantiate(node) for node in _nodes(cfg, "logger").values()]


def finish_loggers(loggers: list[Logger]) -> None:
    """Close W&B runs, so the offline files are complete and the next job of a sweep starts a new run."""
    for logger in loggers:
        logger.finalize("success")
        if type(logger).__name__ == "WandbLogger" and rank_zero_only.rank == 0:
            logger.experiment.finish()


# Root nodes that are not logged as hyperparameters: Hydra's own, and `schedule`, which acts only through the
# noise nodes (each `noise.<name>.<amount>.shape` is its resolved copy, or a per-noise choice).
UNLOGGED_KEYS = ("hydra", "schedule")


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


def noise_amounts(cfg: DictConfig | None) -> dict[str, float]:
    """The effective amount of each selected noise, ``{"input.std": 0.1, ...}``: the config's amount x
    ``noise_scale`` (at the schedule's peak) for the recipe's ``scaled`` amounts, the value for a plain number.

    The report reads it (``metrics.json`` key ``noise_amounts``): a run whose amounts are all 0 is a no-noise run.
    """
    from lightning_noise.report.records import AMOUNT_KEYS

    amounts = {}
    for name, node in _nodes(cfg, "noise").items():
        for key, value in node.items():
            if isinstance(value, DictConfig) and str(value.get("_target_", "")).endswith("schedules.scaled"):
                amounts[f"{name}.{key}"] = float(value.amount) * float(value.get("scale", 1.0))
            elif key in AMOUNT_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
                amounts[f"{name}.{key}"] = float(value)
    return amounts


@rank_zero_only
def write_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=False, default=str) + "\n")


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
