"""Every option of every config group composes and instantiates."""

from __future__ import annotations

import hydra
import lightning.pytorch as pl
import pytest
import torch
from omegaconf import OmegaConf

import lightning_noise
from lightning_noise import schedules
from noisy_recipes import data as data_lib
from noisy_recipes.data import DataSpec
from noisy_recipes.models import NoisyModule
from tests.recipes.conftest import CONF, options, write_csv, write_fashion_mnist

TABULAR = DataSpec("t", "tabular", "classification", (4,), 3)
IMAGE = DataSpec("i", "image", "classification", (1, 8, 8), 10)
SEQUENCE = DataSpec("s", "sequence", "classification", (24, 1), 2)


def test_groups_have_their_options():
    assert set(options("noise")) == {
        "none",
        "input",
        "activation",
        "weight",
        "gradient",
        "label_smoothing",
        "label_flip",
        "target",
    }
    assert set(options("schedule")) == {"constant", "linear", "cosine", "step", "exponential", "annealed"}
    assert {"mlp", "cnn", "lstm", "autoencoder"} <= set(options("model"))
    assert {"cpu", "gpu", "ddp", "ddp_cpu", "debug"} <= set(options("trainer"))
    assert set(options("logger")) == {"wandb", "csv", "none"}


def test_every_key_has_a_comment():
    """House style: a comment on every key of every config file (hydra/ settings included)."""
    missing = []
    for path in CONF.rglob("*.yaml"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#") or stripped.startswith("- "):
                continue
            if ":" in stripped and "#" not in stripped and not stripped.endswith(":"):
                missing.append(f"{path.relative_to(CONF)}:{number}: {stripped}")
    assert not missing, "keys without a comment:\n" + "\n".join(missing)


@pytest.mark.parametrize("option", options("data"))
def test_data_option_instantiates(option, compose_cfg, tmp_path):
    overrides = [f"data={option}"]
    if option == "csv":
        overrides += [f"data.path={write_csv(tmp_path / 'd.csv')}", "data.target=label"]
    if option == "fashion_mnist":
        overrides += [f"data.root={write_fashion_mnist(tmp_path / 'fm')}", "data.val_size=8"]
    cfg = compose_cfg(overrides)
    datamodule = hydra.utils.instantiate(cfg.data)
    assert isinstance(datamodule, data_lib.ArrayDataModule)
    spec = datamodule.spec
    sizes = datamodule.split_sizes()
    assert min(sizes.values()) > 0, sizes
    x, y = next(iter(datamodule.train_dataloader()))
    assert tuple(x.shape[1:]) == spec.input_shape
    assert x.dtype == torch.float32
    assert (y.dtype == torch.long) == (spec.task == "classification")


@pytest.mark.parametrize("option", options("model"))
@pytest.mark.parametrize("spec", [TABULAR, IMAGE, SEQUENCE], ids=["tabular", "image", "sequence"])
def test_model_option_instantiates_or_refuses(option, spec, compose_cfg):
    cfg = compose_cfg([f"model={option}"])
    cls = hydra.utils.get_class(cfg.model._target_)
    if spec.kind not in cls.accepts:
        with pytest.raises(ValueError, match=f"model={option} takes .* Use "):
            hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(spec)
        return
    model = hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(spec)
    assert isinstance(model, NoisyModule)
    out = model(torch.zeros(3, *spec.input_shape))
    expected = (3, *spec.input_shape) if option == "autoencoder" else (3, spec.out_features)
    assert tuple(out.shape) == expected
    assert isinstance(model.configure_optimizers(), torch.optim.Adam)


@pytest.mark.parametrize("option", options("noise"))
def test_noise_option_instantiates(option, compose_cfg):
    cfg = compose_cfg([f"noise={option}"])
    if option == "none":
        assert not cfg.noise
        return
    node = cfg.noise[option]
    name = node._target_.rsplit(".", 1)[-1]
    if not hasattr(lightning_noise, name):
        pytest.skip(f"lightning_noise.{name} is not in this branch yet")
    callback = hydra.utils.instantiate(node)
    assert isinstance(callback, pl.Callback)


@pytest.mark.parametrize(
    ("overrides", "activation", "weight"),
    [
        (["model=mlp"], ["ReLU"], ["Linear"]),
        (["model=cnn"], ["ReLU"], ["Conv2d", "Linear"]),
        (["model=lstm"], ["LSTM"], ["LSTM"]),
        (["model=cnn", "noise_modules.weight=[Linear]"], ["ReLU"], ["Linear"]),
    ],
)
def test_each_model_names_the_modules_its_activation_and_weight_noise_target(
    overrides, activation, weight, compose_cfg
):
    cfg = compose_cfg([*overrides, "noise=[activation,weight]"])
    assert "noise_modules" not in cfg.model  # not a model argument: the noise configs read the root node
    assert list(cfg.noise.activation.modules) == activation and list(cfg.noise.weight.modules) == weight


@pytest.mark.parametrize("option", options("schedule"))
def test_schedule_applies_to_every_selected_noise(option, compose_cfg):
    cfg = compose_cfg(["noise=[input,activation]", f"schedule={option}", "noise.input.std.amount=0.3"])
    for name in ("input", "activation"):
        assert cfg.noise[name].std.shape == cfg.schedule
    amount = hydra.utils.instantiate(cfg.noise.input.std)
    shape = hydra.utils.instantiate(cfg.schedule)
    assert shape(0) == pytest.approx(1.0)  # every shape peaks at 1: the noise amount sets the scale
    if option == "constant":
        assert amount == pytest.approx(0.3)
    else:
        assert isinstance(amount, schedules.Scaled)
        for step in (0, 10, 1000):
            assert amount(step) == pytest.approx(0.3 * shape(step))
    callback = hydra.utils.instantiate(cfg.noise.input)
    assert callback.amounts["std"] == pytest.approx(0.3)


def test_schedule_can_differ_per_noise(compose_cfg):
    cfg = compose_cfg(["noise=[input,activation]", "schedule=cosine", "schedule@noise.activation.std.shape=annealed"])
    assert cfg.noise.input.std.shape._target_.endswith("Cosine")
    assert cfg.noise.activation.std.shape._target_.endswith("Annealed")
    amount = hydra.utils.instantiate(cfg.noise.activation.std)
    assert amount(99) == pytest.approx(0.1 * schedules.Annealed(eta=1.0, gamma=0.55)(99))


@pytest.mark.parametrize(("option", "key", "value"), [("linear", "steps", 2000), ("step", "gamma", 30.0)])
def test_schedule_key_override_reaches_every_noise(option, key, value, compose_cfg):
    cfg = compose_cfg(["noise=[input,gradient]", f"schedule={option}", f"schedule.{key}={value}"])
    for name in ("input", "gradient"):
        assert cfg.noise[name].std.shape[key] == value
        assert getattr(hydra.utils.instantiate(cfg.noise[name].std).shape, key) == value


def test_per_noise_schedule_wins_over_root_overrides(compose_cfg):
    cfg = compose_cfg(
        ["noise=[input,gradient]", "schedule=cosine", "schedule.steps=7", "schedule@noise.gradient.std.shape=annealed"]
    )
    assert cfg.noise.input.std.shape.steps == 7
    assert cfg.noise.gradient.std.shape._target_.endswith("Annealed") and "steps" not in cfg.noise.gradient.std.shape


def test_logged_config_leaves_out_the_root_schedule(compose_cfg):
    from noisy_recipes.utils import plain_config

    logged = plain_config(compose_cfg(["noise=none", "schedule=linear"]))
    assert "schedule" not in logged and "hydra" not in logged and logged["noise_scale"] == 1.0
    assert "noise_modules" not in logged  # what each noise targets is logged under noise.<name>.modules
    logged = plain_config(compose_cfg(["noise=input", "schedule=linear", "schedule.steps=9"]))
    assert logged["noise"]["input"]["std"]["shape"]["steps"] == 9


def test_noise_scale_multiplies_every_amount(compose_cfg):
    cfg = compose_cfg(["noise=[input,activation]", "noise_scale=2.5"])
    assert hydra.utils.instantiate(cfg.noise.input.std) == pytest.approx(0.5)
    assert hydra.utils.instantiate(cfg.noise.activation.std) == pytest.approx(0.25)


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_option_instantiates(option, compose_cfg):
    cfg = compose_cfg([f"trainer={option}"])
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        assert cfg.trainer.devices >= 1  # composes; instantiating needs a GPU
        return
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert isinstance(trainer, pl.Trainer)
    if option == "ddp_cpu":
        assert trainer.num_devices == 2 and type(trainer.strategy).__name__ == "DDPStrategy"


@pytest.mark.parametrize("option", options("logger"))
def test_logger_option_instantiates(option, compose_cfg):
    cfg = compose_cfg([f"logger={option}"])
    loggers = [hydra.utils.instantiate(node) for node in (cfg.logger or {}).values()]
    assert len(loggers) == (0 if option == "none" else 1)
    if option == "wandb":
        assert cfg.logger.wandb.offline is True


@pytest.mark.parametrize("option", options("callbacks"))
def test_callbacks_option_instantiates(option, compose_cfg):
    cfg = compose_cfg([f"callbacks={option}"])
    callbacks = [hydra.utils.instantiate(node) for node in (cfg.callbacks or {}).values()]
    assert all(isinstance(c, pl.Callback) for c in callbacks)
    if option == "default":
        names = {type(c).__name__ for c in callbacks}
        assert names == {"EarlyStopping", "ModelCheckpoint", "LearningRateMonitor", "RichProgressBar"}
        assert cfg.callbacks.early_stopping.monitor == "val/loss"


@pytest.mark.parametrize("option", options("experiment"))
def test_experiment_composes(option, compose_cfg):
    header, command = (CONF / "experiment" / f"{option}.yaml").read_text().splitlines()[:2]
    assert header == "# @package _global_"  # Hydra reads the package header only before any other line
    assert command.startswith("# python recipes/") and f"experiment={option}" in command.split(), (
        "the file starts with its command"
    )
    cfg = compose_cfg([f"experiment={option}"])
    assert cfg.name != "train"


def test_optuna_search_composes(compose_cfg):
    cfg = compose_cfg(["hparams_search=optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "minimize" and sweeper.storage is None
    assert cfg.optimized_metric == "val/loss"  # continuous: 20 validation points rank trials by loss, not by a tied acc
    assert sweeper.pruner == "none" and sweeper.n_jobs == 1 and sweeper.study_name == "noise"  # search.md warns of ties
    assert "noise" in sweeper.params


def test_submitit_launcher_composes(compose_cfg):
    cfg = compose_cfg(["hydra/launcher=slurm"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.timeout_min > 0 and launcher.gpus_per_node >= 0
    resolved = OmegaConf.to_container(launcher, resolve=True)
    assert resolved["tasks_per_node"] == cfg.trainer.devices
    assert type(hydra.utils.instantiate(launcher)).__name__ == "SlurmLauncher"  # builds; submits nothing


@pytest.mark.parametrize(
    ("overrides", "nodes", "tasks", "gpus"),
    [
        (["trainer=cpu"], 1, 1, 0),
        (["trainer=gpu"], 1, 1, 1),
        (["trainer=ddp", "trainer.devices=4", "+trainer.num_nodes=2"], 2, 4, 4),
        (["trainer=ddp", "trainer.devices=[0,1]"], 1, 2, 2),
        (["trainer=ddp_cpu"], 1, 2, 0),
    ],
)
def test_slurm_asks_for_the_trainers_nodes_and_gpus(overrides, nodes, tasks, gpus, compose_cfg):
    launcher = compose_cfg(["hydra/launcher=slurm", *overrides]).hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (nodes, tasks, gpus)


def test_slurm_refuses_devices_auto(compose_cfg):
    launcher = compose_cfg(["hydra/launcher=slurm", "trainer=gpu", "trainer.devices=auto"]).hydra.launcher
    with pytest.raises(Exception, match="trainer.devices=4"):
        OmegaConf.to_container(launcher, resolve=True)
