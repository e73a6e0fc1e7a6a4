"""A callback instance reused across fits draws what a fresh instance with the same seed draws.

Each ``Trainer.fit`` on a new Trainer starts the noise stream from its beginning (batch counter 0, no feature
statistics); a fit with ``ckpt_path`` continues the checkpoint's stream, and validate/test/predict leave the
training state alone. Before this rule, the second fit of a reused instance kept the first fit's batch counter
(and ``relative=True``'s statistics): a cross-validation loop silently broke "same seed, same noise".
"""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import TensorDataset

from lightning_noise import ActivationNoise, GradientNoise, InputNoise, LabelNoise, TargetNoise, WeightNoise
from tests.helpers import loader, trainer


class Net(pl.LightningModule):
    """A small MLP with a loss module: a classifier (``classes > 0``) or a regressor."""

    def __init__(self, classes: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)  # every model starts from the same weights
        self.encoder = nn.Sequential(nn.Linear(4, 16), nn.ReLU())
        self.head = nn.Linear(16, classes or 1)
        self.loss = nn.CrossEntropyLoss() if classes else nn.MSELoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    def training_step(self, batch, batch_idx):
        return self.loss(self(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(self(batch[0]), batch[1]))

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self.loss(self(batch[0]), batch[1]))

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.02)


def data(classes: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g) * 2 + 1
    y = torch.randint(0, classes, (64,), generator=g) if classes else x.mean(dim=1, keepdim=True)
    return TensorDataset(x, y)


CASES = {
    "input": (lambda: InputNoise(std=0.5, seed=1), 0),
    "input-relative": (lambda: InputNoise(std=0.5, relative=True, seed=1), 0),
    "activation": (lambda: ActivationNoise(std=0.5, modules=["encoder"], seed=1), 0),
    "activation-dropout": (lambda: ActivationNoise(p=0.3, kind="dropout", modules=["encoder"], seed=1), 0),
    "weight": (lambda: WeightNoise(std=0.2, seed=1), 0),
    "weight-table": (lambda: WeightNoise(std=0.2, sampler="table", table_size=1024, seed=1), 0),
    "gradient": (lambda: GradientNoise(std=0.2, seed=1), 0),
    "label": (lambda: LabelNoise(smoothing=0.1, flip=0.3, seed=1), 3),
    "target": (lambda: TargetNoise(std=0.5, seed=1), 0),
}


def fit(callback, classes: int, callbacks: list | None = None, **kwargs) -> Net:
    model = Net(classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(callbacks=[callback] if callbacks is None else callbacks, **kwargs).fit(model, loader(data(classes)))
    return model


def weights(model: Net) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def assert_same(a: Net, b: Net) -> None:
    assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b), strict=True))


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_fit_of_a_reused_instance_draws_what_a_fresh_instance_draws(name):
    make, classes = CASES[name]
    reused = make()
    first = fit(reused, classes)
    second = fit(reused, classes)
    fresh = fit(make(), classes)
    assert_same(first, fresh)
    assert_same(second, fresh)  # before: the batch counter (and statistics) of the first fit carried over
    assert reused.state_dict()["train_batches"] == 4  # one fit's batches, not two fits'
    assert not torch.equal(weights(fresh)[0], weights(fit(None, classes, callbacks=[]))[0])  # the noise counts


@pytest.mark.parametrize("name", ["input-relative", "weight", "activation"])
def test_reused_instance_resumed_with_ckpt_path_continues_the_stream(tmp_path, name):
    make, classes = CASES[name]
    uninterrupted = fit(make(), classes, max_epochs=2)
    reused = make()
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    fit(reused, classes, max_epochs=1, enable_checkpointing=True, callbacks=[reused, checkpoint])
    fit(reused, classes, max_epochs=0)  # an unrelated fit in between: its state must not leak into the resume
    resumed = Net(classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(callbacks=[reused], max_epochs=2).fit(resumed, loader(data(classes)), ckpt_path=tmp_path / "last.ckpt")
    assert_same(resumed, uninterrupted)
    assert reused.state_dict()["train_batches"] == 8


def test_validate_test_predict_keep_the_training_state_and_a_same_trainer_refit_continues():
    callback = InputNoise(std=0.5, relative=True, seed=1)
    model = Net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = trainer(callbacks=[callback], max_epochs=1)
        t.fit(model, loader(data()))
        stats = {k: s.state_dict() for k, s in callback._stats.items()}
        t.validate(model, loader(data()))
        t.test(model, loader(data()))
        t.predict(model, loader(data()))
        trainer(callbacks=[callback]).validate(model, loader(data()))
        assert callback.state_dict()["train_batches"] == 4
        assert {k: s.state_dict() for k, s in callback._stats.items()} == stats
        # the same Trainer fitted again continues its own loop (global step 4 -> 8), and the noise stream with it
        t.fit_loop.max_epochs = 2
        t.fit(model, loader(data()))
    assert callback.state_dict()["train_batches"] == 8
    assert_same(model, fit(InputNoise(std=0.5, relative=True, seed=1), 0, max_epochs=2))
