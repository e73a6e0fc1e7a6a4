"""Small models and data shared by the tests (in the spirit of Lightning's BoringModel)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def regression_data(n: int = 64, features: int = 4, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


def loader(dataset: TensorDataset, batch_size: int = 16) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False)


class RecordingMLP(pl.LightningModule):
    """A 2-layer MLP regressor that records what its ``forward`` receives and which stage it ran in.

    ``self.seen`` holds ``(stage, input)`` for every call of ``forward``; ``self.hidden`` the hidden activations
    seen by the output layer.
    """

    def __init__(self, features: int = 4, hidden: int = 16, lr: float = 0.05) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 1)
        self.lr = lr
        self.seen: list[tuple[str, torch.Tensor]] = []
        self.hidden: list[tuple[str, torch.Tensor]] = []
        self.head.register_forward_pre_hook(self._record_hidden)

    def _stage(self) -> str:
        trainer = self._trainer
        return str(trainer.state.stage.value) if trainer is not None and trainer.state.stage else "none"

    def _record_hidden(self, module: nn.Module, args: tuple) -> None:
        self.hidden.append((self._stage(), args[0].detach().clone()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self._stage(), x.detach().clone()))
        return self.head(self.encoder(x))

    def _loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._loss(batch)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test_loss", self._loss(batch))

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def trainer(**kwargs: Any) -> pl.Trainer:
    """A quiet CPU trainer: no logger, no progress bar, no checkpoints, unless overridden."""
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    defaults.update(kwargs)
    return pl.Trainer(**defaults)
