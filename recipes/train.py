"""Train a model with noise injection, configured by Hydra (configs in ``conf/``).

    python recipes/train.py                                          # circles + MLP + input noise, W&B offline
    python recipes/train.py data=digits model=cnn noise=activation schedule=annealed
    python recipes/train.py 'noise=[input,gradient]' logger=csv
    python recipes/train.py -m noise.input.std.amount=0,0.1,0.3 seed=0,1,2
    python recipes/train.py experiment=circles_input_noise

``train(cfg) -> (metrics, objects)`` is the testable part: it checks the configuration before training (data and
model fit, each noise fits the task, no ``-m`` with the subprocess ``ddp`` launcher), trains with early stopping
on the clean validation loss, evaluates the best checkpoint on every split with noise off, and returns the
metrics with what it built. ``write_outputs`` then writes ``metrics.json``, the resolved ``config.yaml`` and the
final ``summary.json`` in the run directory and prints a summary; ``main``, the thin Hydra entry point, calls both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# Run from a checkout without installing: make `lightning_noise` (repo root) and `noisy_recipes` (recipes/)
# importable here, like rootutils does, and in the processes this one starts: submitit's jobs (locally and on
# SLURM) unpickle the task in a fresh interpreter that finds the packages only through PYTHONPATH.
_PATHS = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
sys.path[1:1] = [p for p in _PATHS if p not in sys.path]
_INHERITED = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*_PATHS, *_INHERITED]))

import hydra  # noqa: E402
import lightning.pytorch as pl  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from noisy_recipes import certification, hydra_errors, utils  # noqa: E402
from noisy_recipes.search import trial as search_trial  # noqa: E402


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Train and evaluate one configuration.

    Returns:
        ``(metrics, objects)``: the final metrics (``train/acc``, ``test/loss``...), and what was built and run:
        ``cfg``, ``datamodule``, ``spec``, ``model``, ``noise`` (the noise callbacks by name), ``robustness`` and
        ``certifier`` (None unless asked for), ``trainer`` and the ``best_epoch`` its evaluation restored.

    Raises:
        ConfigError: (a ValueError) a configuration that cannot train (incompatible model and data, noise and
            task, a missing CSV column or required value, ``trainer=gpu`` without a GPU, ``-m`` with
            ``trainer=ddp``, an ``optimized_metric`` the run will not report, a callback monitoring ``val/``
            metrics without validation), before any training step.
    """
    utils.check_ddp_multirun(cfg)
    utils.configure_threads(cfg.get("threads"))
    utils.quiet_wandb()
    utils.quiet_console()  # no litlogger tip, one GPU/TPU banner, no torch deprecation from Lightning's code
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)

    utils.check_config(cfg)  # required values left out, a GPU trainer without a GPU
    datamodule, spec = utils.instantiate_data(cfg.data)  # loads and splits the data now, so data errors come first
    evaluation = datamodule.eval_dataloaders()  # the final clean evaluation: every non-empty split, test last
    model = utils.instantiate_model(cfg.model, spec, eval_splits=list(evaluation))
    utils.check_optimized_metric(
        cfg.get("optimized_metric"), splits=datamodule.split_sizes(), metric_name=model.metric_name
    )
    noise = utils.instantiate_noise(cfg.get("noise"), model.task)
    loggers = utils.instantiate_loggers(cfg.get("logger"), run=utils.run_labels(cfg, noise))
    utils.check_monitors(
        cfg.get("callbacks"),
        val_samples=datamodule.split_sizes().get("val", 0),
        limit_val_batches=cfg.trainer.get("limit_val_batches", 1.0),
    )
    callbacks = utils.instantiate_callbacks(cfg.get("callbacks"), cfg.trainer, has_logger=bool(loggers))
    output_dir = Path(cfg.paths.output_dir)
    test_idx = list(evaluation).index("test")  # the corrupted and certified evaluations read the test loader
    robustness = utils.robustness_callback(
        cfg.get("eval"),
        model.task,
        output_dir=output_dir,
        dataset_name=spec.name,
        max_batches=utils.batch_limit(cfg.trainer.get("limit_test_batches"), len(datamodule.test_dataloader())),
        dataloader_idx=test_idx,
    )
    certifier = certification.certification_callback(
        cfg.get("eval"), model.task, noise, output_dir=output_dir, dataset_name=spec.name, dataloader_idx=test_idx
    )
    searching = search_trial.trial_callbacks(cfg, model.task)  # an Optuna trial's pruning and robustness objective
    callbacks += [*noise.values(), *(c for c in (robustness, certifier) if c is not None), *searching]
    trainer = utils.instantiate_trainer(cfg.trainer, callbacks=callbacks, loggers=loggers)
    for logger in loggers:
        logger.log_hyperparams(utils.plain_config(cfg))
    utils.print_config(cfg, output_dir=output_dir)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    best_path = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    results = trainer.test(model, dataloaders=list(evaluation.values()), ckpt_path=best_path, verbose=False)
    metrics = utils.final_metrics(results)  # final/test/acc -> test/acc
    search_trial.finish_trial(metrics, searching)  # adds val/gaussian_auc in a Pareto search
    best = utils.best_epoch(trainer)
    utils.log_final(loggers, metrics, best_epoch=best, step=trainer.global_step)
    utils.finish_loggers(loggers)
    objects = {
        "cfg": cfg,
        "datamodule": datamodule,
        "spec": spec,
        "model": model,
        "noise": noise,
        "robustness": robustness,
        "certifier": certifier,
        "trainer": trainer,
        "best_epoch": best,
    }
    return metrics, objects


def write_outputs(metrics: dict[str, float], objects: dict[str, Any]) -> None:
    """Write the run record, ``metrics.json`` in the run directory (read by the comparison report), the resolved
    ``config.yaml`` and the final ``summary.json`` beside it, and print the summary table of one :func:`train` run."""
    cfg, datamodule, spec, model = objects["cfg"], objects["datamodule"], objects["spec"], objects["model"]
    noise, robustness, certifier = objects["noise"], objects["robustness"], objects["certifier"]
    trainer, best = objects["trainer"], objects["best_epoch"]
    output_dir = Path(cfg.paths.output_dir)
    overrides = utils.task_overrides()
    record = {
        "name": cfg.name,
        "group": utils.group_label(overrides),
        "seed": cfg.get("seed"),
        "overrides": overrides,
        "noise": OmegaConf.to_container(cfg.noise, resolve=True) if cfg.get("noise") else {},  # labels the run
        "noise_amounts": utils.noise_amounts(noise),  # read from the built callbacks: their most-noise amounts
        "metrics": metrics,
        "best_epoch": best,
        "epochs": trainer.current_epoch,
        "splits": datamodule.split_sizes(),
        "data": spec.describe(),
        "dataset": spec.name,
        "model": utils.model_label(model),
    }
    if robustness is not None and robustness.result is not None:
        record["robustness"] = {"metric": robustness.result.metric_name, "corruptions": robustness.result.to_dict()}
        record["metrics"] = {**metrics, "robustness/mean_auc": robustness.result.mean_auc}  # compared over seeds
    certification.add_to_record(record, certifier)
    search_trial.add_to_record(record)  # the Optuna trial: number, pruned and at which epoch
    utils.write_record(output_dir / "metrics.json", record)
    utils.write_run_files(output_dir, cfg, utils.final_summary(metrics, best_epoch=best))
    utils.print_summary(
        title=f"{cfg.name}: {spec.name} + {type(model).__name__}",
        metrics=metrics,
        noise=utils.noise_settings(noise),
        splits=datamodule.split_sizes(),
        best=best,
        epochs=trainer.current_epoch,
        output_dir=str(output_dir),
    )


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the optimized metric (``cfg.optimized_metric``) for sweepers such as Optuna.

    A configuration mistake (:class:`~noisy_recipes.utils.ConfigError`, and Hydra's own through
    :func:`~noisy_recipes.hydra_errors.one_line_errors`) ends in one line saying what to change and exit status 2,
    with no traceback (``HYDRA_FULL_ERROR=1`` shows it) and no empty run directory left.
    """
    with utils.short_config_errors():
        metrics, objects = train(cfg)
    write_outputs(metrics, objects)
    return metrics.get(cfg.optimized_metric) if cfg.get("optimized_metric") else None


if __name__ == "__main__":
    with hydra_errors.one_line_errors(main):  # Hydra's own config errors too: one line, exit status 2
        main()
