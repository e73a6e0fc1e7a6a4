"""A few training steps of every model with every noise option, the run record, and bad overrides."""

from __future__ import annotations

import csv
import json
import re

import pytest
from hydra.errors import MissingConfigException
from hydra.types import RunMode

import lightning_noise
from noisy_recipes import utils
from tests.recipes.conftest import FAST, options, read_wandb_run, run_recipe, train_and_write, write_csv
from train import train, write_outputs

# The data each model trains on in the smoke tests, by task the noise needs.
DATA = {
    ("mlp", "classification"): ["data=circles"],
    ("mlp", "regression"): ["data=diabetes"],
    ("cnn", "classification"): ["data=digits", "data.train_size=64"],
    ("lstm", "classification"): ["data=ucr", "data.dataset=ItalyPowerDemand"],
    ("lstm", "regression"): ["data=forecast", "data.dataset=nile", "data.window=8"],
    ("autoencoder", "reconstruction"): ["data=digits", "data.train_size=64"],
}
NOISE_TASK = {"label_smoothing": "classification", "label_flip": "classification", "target": "regression"}


def _skip_missing(cfg) -> None:
    for node in (cfg.noise or {}).values():
        name = node._target_.rsplit(".", 1)[-1]
        if not hasattr(lightning_noise, name):
            pytest.skip(f"lightning_noise.{name} is not in this branch yet")


def _cases():
    for model in options("model"):
        for noise in options("noise"):
            task = "reconstruction" if model == "autoencoder" else NOISE_TASK.get(noise, "classification")
            if (model, task) in DATA and not (model == "autoencoder" and noise in NOISE_TASK):
                yield model, noise, DATA[(model, task)]


@pytest.mark.parametrize("model,noise,data", list(_cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_model_trains_with_noise(model, noise, data, compose_cfg, tmp_path):
    cfg = compose_cfg([*FAST, f"model={model}", f"noise={noise}", *data])
    _skip_missing(cfg)
    metrics = train_and_write(cfg)
    metric = "mse" if model == "autoencoder" or NOISE_TASK.get(noise) == "regression" else "acc"
    for split in ("train", "val", "test"):
        assert f"{split}/{metric}" in metrics and f"{split}/loss" in metrics
        assert metrics[f"{split}/loss"] == metrics[f"{split}/loss"]  # not NaN
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["metrics"] == pytest.approx(metrics)


def test_several_noises_at_once(compose_cfg):
    cfg = compose_cfg([*FAST, "noise=[input,activation]", "schedule=linear"])
    assert set(cfg.noise) == {"input", "activation"}
    train_and_write(cfg)


def test_run_record_for_the_comparison_report(compose_cfg, tmp_path):
    overrides = [
        *FAST,
        "seed=3",
        "noise.input.std.amount=0.3",
        "noise_scale=0.5",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=1",
    ]
    cfg = compose_cfg(overrides)
    metrics, objects = train(cfg)
    assert not (tmp_path / "metrics.json").exists()  # train() trains and evaluates; write_outputs writes the record
    assert objects["model"].eval_splits == ["train", "val", "test"] and objects["best_epoch"] < 3
    write_outputs(metrics, objects)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["name"] == "train" and record["seed"] == 3
    assert record["overrides"] == overrides
    assert record["group"] == " ".join(sorted(o for o in overrides if not o.startswith("seed=")))
    assert record["noise"]["input"]["std"]["amount"] == 0.3
    assert record["noise_amounts"] == {"input.std": pytest.approx(0.15)}  # amount x noise_scale, read by the report
    assert set(record["metrics"]) == {f"{s}/{m}" for s in ("train", "val", "test") for m in ("acc", "loss")}
    assert record["metrics"] == pytest.approx(metrics)
    assert 0 <= record["best_epoch"] < 3 and record["splits"] == {"train": 30, "val": 20, "test": 50}


def test_recorded_amounts_are_what_the_built_callbacks_got(compose_cfg, tmp_path):
    """schedule.value=0.5 halves the amount the callback receives (0.2 x 0.5 = 0.1): the record says 0.1."""
    cfg = compose_cfg([*FAST, "schedule.value=0.5", "noise=[input,label_smoothing]"])
    train_and_write(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    built = utils.instantiate_noise(cfg.noise, "classification")
    expected = {f"{name}.{arg}": s(0) for name, cb in built.items() for arg, s in cb.schedules.items()}
    assert record["noise_amounts"] == pytest.approx(expected)
    assert record["noise_amounts"]["input.std"] == pytest.approx(0.1)
    smoothing = cfg.noise.label_smoothing.smoothing.amount
    assert record["noise_amounts"]["label_smoothing.smoothing"] == pytest.approx(0.5 * smoothing)


def test_best_checkpoint_is_restored_for_the_evaluation(compose_cfg, tmp_path):
    cfg = compose_cfg(["logger=none", "trainer.enable_progress_bar=false", "trainer.max_epochs=6", "noise=none"])
    metrics = train_and_write(cfg)
    checkpoints = list((tmp_path / "checkpoints").glob("*.ckpt"))
    assert len(checkpoints) == 1
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert checkpoints[0].name == f"epoch_{record['best_epoch']:03d}.ckpt"
    assert metrics["val/loss"] == pytest.approx(record["metrics"]["val/loss"])


def test_same_seed_same_metrics(compose_cfg, tmp_path):
    runs = [train_and_write(compose_cfg([*FAST, "seed=7"], run_dir=tmp_path / str(i))) for i in range(2)]
    assert runs[0] == runs[1]


def test_csv_logger_writes_the_noise_amount(compose_cfg, tmp_path):
    cfg = compose_cfg(["trainer=debug", "logger=csv"])
    train_and_write(cfg)
    header = next((tmp_path / "csv").rglob("metrics.csv")).read_text().splitlines()[0]
    assert "noise/input_std" in header and "val/loss" in header


def test_wandb_offline_run_with_the_noise_amount(compose_cfg, tmp_path, fresh_wandb):
    cfg = compose_cfg(["trainer=debug", "logger=wandb", "noise.input.std.amount=0.25"])
    train_and_write(cfg)
    fresh_wandb.teardown()  # waits for wandb's service process to flush the offline file
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((tmp_path / "wandb").iterdir())
    data = next(runs[0].glob("*.wandb")).read_bytes()
    assert b"noise/input_std" in data and b"test/acc" in data and b"best_epoch" in data  # logged metrics
    assert b'"amount":0.25' in data and b"InputNoise" in data  # the logged config


# ---------------------------------------------------------------------------------------------- bad overrides
def test_final_evaluation_has_its_own_keys_not_a_last_training_point(compose_cfg, tmp_path):
    """The best checkpoint's evaluation is logged as final/{split}/..., never as another val/loss point."""
    train_and_write(
        compose_cfg(["trainer=debug", "logger=csv", "trainer.max_epochs=2", "trainer.limit_train_batches=1"])
    )
    rows = list(csv.DictReader(next((tmp_path / "csv").rglob("metrics.csv")).open()))
    assert sum(1 for row in rows if row.get("val/loss")) == 2  # one per validation epoch, nothing more
    assert sum(1 for row in rows if row.get("final/test/acc")) == 1
    assert not any(row.get("test/acc") or row.get("train/acc") and row.get("final/train/acc") for row in rows)
    assert sum(1 for row in rows if row.get("final/best_epoch")) == 1


def test_wandb_runs_of_a_sweep_are_named_grouped_and_tagged(compose_cfg, tmp_path, fresh_wandb):
    overrides = ["trainer=debug", "logger=wandb", "noise.input.std.amount=0.25", "seed=3"]
    cfg = compose_cfg([*overrides, "hydra.mode=MULTIRUN", "hydra.sweep.dir=sweeps/sweep_7"])
    metrics = train_and_write(cfg)
    fresh_wandb.teardown()  # waits for wandb's service process to flush the offline file
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    record = read_wandb_run(run)
    assert record["name"] == "train " + " ".join(overrides)  # the run name and the overrides
    assert record["group"] == "train sweep_7"  # one group per multirun
    assert record["tags"] == ["InputNoise", "input.std=0.25"]  # noise kinds and amounts
    assert record["config"]["seed"] == 3
    summary = record["summary"]
    assert summary["final/test/acc"] == pytest.approx(metrics["test/acc"]) and summary["final/best_epoch"] == 0
    assert "test/acc" not in summary and "test/loss" not in summary  # the final evaluation is only under final/


def test_unknown_noise_option_lists_the_options(compose_cfg):
    with pytest.raises(MissingConfigException, match=r"(?s)noise/gaussian.*Available options.*input"):
        compose_cfg(["noise=gaussian"])


def test_model_incompatible_with_data_fails_before_training(compose_cfg):
    cfg = compose_cfg([*FAST, "model=cnn"])
    with pytest.raises(ValueError, match=r"model=cnn takes image data, but data 'circles' is tabular.*data=digits"):
        train_and_write(cfg)


def test_missing_csv_column_names_the_columns(compose_cfg, tmp_path):
    path = write_csv(tmp_path / "d.csv")
    cfg = compose_cfg([*FAST, "data=csv", f"data.path={path}", "data.target=class"])
    with pytest.raises(ValueError, match=r"`data.target`='class' is not a column .*\['a', 'b', 'c', 'label'\]"):
        train_and_write(cfg)


def test_csv_data_trains(compose_cfg, tmp_path):
    path = write_csv(tmp_path / "d.csv")
    cfg = compose_cfg([*FAST, "data=csv", f"data.path={path}", "data.target=label"])
    assert "test/acc" in train_and_write(cfg)


def test_label_noise_on_regression_fails_before_training(compose_cfg):
    cfg = compose_cfg([*FAST, "data=diabetes", "noise=label_smoothing"])
    with pytest.raises(ValueError, match=r"noise=label_smoothing \(LabelNoise\) needs a classification model"):
        train_and_write(cfg)


def test_target_noise_on_the_autoencoder_is_refused(compose_cfg):
    """The library's TargetNoise accepts any MSE loss; the recipe refuses it on a reconstruction, before training."""
    cfg = compose_cfg(["noise=target"])
    with pytest.raises(utils.ConfigError, match=r"noise=target \(TargetNoise\) needs a regression model.*noise=input"):
        utils.instantiate_noise(cfg.noise, "reconstruction")


def test_required_value_left_out(compose_cfg):
    cfg = compose_cfg([*FAST, "data=csv"])
    with pytest.raises(utils.ConfigError, match=r"not set: data.path, data.target.*data.path=my.csv data.target=label"):
        train_and_write(cfg)


def test_gpu_trainer_without_a_gpu_says_use_cpu(compose_cfg, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(utils.ConfigError, match=r"needs a CUDA GPU.*Use trainer=cpu"):
        train_and_write(compose_cfg([*FAST, "trainer=gpu"]))


CLI_MISTAKES = [
    (["model=cnn", "data=circles"], r"model=cnn takes image data.*Use data=digits"),
    (["data=csv"], r"data.path=my.csv data.target=label"),
    (["trainer=gpu"], r"Use trainer=cpu"),
    pytest.param(["data=diabetes", "noise=label_smoothing"], r"needs a classification model", marks=pytest.mark.slow),
    pytest.param(["data=csv", "data.path=d.csv", "data.target=class"], r"not a column", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("overrides", "message"), CLI_MISTAKES)
def test_config_mistake_is_one_line_without_traceback(overrides, message, tmp_path):
    """A known mistake: one line on stderr saying what to change, exit status 2, no run directory left behind."""
    write_csv(tmp_path / "d.csv")
    result = run_recipe([*FAST, *overrides], cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert re.search(message, lines[0]) and "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "logs").exists()  # no empty run directory (nor its parents)


@pytest.mark.slow
def test_config_mistake_shows_the_traceback_with_hydra_full_error(tmp_path):
    result = run_recipe([*FAST, "model=cnn"], cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_ddp_under_multirun_is_refused(compose_cfg):
    cfg = compose_cfg([*FAST, "trainer=ddp_cpu"])
    utils.check_ddp_multirun(cfg)  # a single run is fine
    cfg = compose_cfg([*FAST, "trainer=ddp_cpu", "hydra.mode=MULTIRUN"])
    from hydra.core.hydra_config import HydraConfig

    assert HydraConfig.get().mode == RunMode.MULTIRUN
    with pytest.raises(ValueError, match=r"multirun \(-m\) cannot use trainer.strategy='ddp'.*ddp_spawn"):
        train_and_write(cfg)
    cfg = compose_cfg([*FAST, "trainer=ddp_cpu", "trainer.strategy=ddp_spawn", "hydra.mode=MULTIRUN"])
    utils.check_ddp_multirun(cfg)  # ddp_spawn is allowed


def test_optimized_metric_is_checked_before_training(compose_cfg, tmp_path):
    with pytest.raises(ValueError, match=r"optimized_metric.*\['train/loss', 'train/acc', 'val/loss'.*'val/accc'"):
        train_and_write(compose_cfg([*FAST, "optimized_metric=val/accc"]))
    # Optuna's classification search on regression data: refused before the first trial trains.
    with pytest.raises(ValueError, match=r"include label_smoothing, label_flip.*hparams_search=optuna_regression"):
        train_and_write(compose_cfg([*FAST, "hparams_search=optuna", "data=diabetes", "noise=none"]))
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.json").exists()
    cfg = compose_cfg([*FAST, "hparams_search=optuna_regression", "data=diabetes", "noise=target"])
    assert cfg.hydra.sweeper.direction == "minimize" and "label" not in cfg.hydra.sweeper.params.noise
    assert cfg.optimized_metric in train_and_write(cfg)


def test_no_validation_with_val_monitors_is_refused_before_training(compose_cfg, tmp_path):
    with pytest.raises(ValueError, match=r"data.val_size=0.*callbacks.early_stopping.monitor=val/loss.*callbacks=none"):
        train_and_write(compose_cfg([*FAST, "data.val_size=0"]))
    with pytest.raises(ValueError, match=r"trainer.limit_val_batches=0.*model_checkpoint"):
        train_and_write(compose_cfg([*FAST, "trainer.limit_val_batches=0"]))
    assert not (tmp_path / "metrics.json").exists()
    monitors = ["callbacks.early_stopping.monitor=train/loss", "callbacks.model_checkpoint.monitor=train/loss"]
    for fix in (["callbacks=none"], monitors):
        metrics = train_and_write(compose_cfg([*FAST, "data.val_size=0", "trainer.max_epochs=2", *fix]))
        assert "test/acc" in metrics and "val/acc" not in metrics
