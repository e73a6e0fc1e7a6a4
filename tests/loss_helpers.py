"""Models whose loss module records what it receives, for the LabelNoise and TargetNoise tests."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tests.helpers import RecordingMLP


class Recorder:
    """Mixin for a torch loss class: records ``(stage, input, target, output)`` of every call it computes."""

    stage = "none"

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output = super().forward(input, target)
        self.seen.append((self.stage, input.detach().clone(), target.detach().clone(), output.detach().clone()))
        return output

    def calls(self, stage: str) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return [(i, t, o) for s, i, t, o in self.seen if s == stage]


def recording(loss_class: type[nn.Module], **kwargs: Any) -> nn.Module:
    """An instance of ``loss_class`` (e.g. ``nn.CrossEntropyLoss``) that records its calls."""
    cls = type(f"Recording{loss_class.__name__}", (Recorder, loss_class), {})
    loss = cls(**kwargs)
    loss.seen = []
    return loss


def classification_data(n: int = 64, features: int = 4, classes: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, classes, generator=g)
    return TensorDataset(x, (x @ w).argmax(dim=1))


class Classifier(pl.LightningModule):
    """A linear classifier calling ``self.loss(logits, y)`` in every stage; records the clean labels it held.

    ``self.clean`` holds ``(stage, y)`` as the step received it; ``self.intact`` whether ``y`` was unchanged after
    the loss call (the batch the user's code holds must never be modified).
    """

    def __init__(self, features: int = 4, classes: int = 3, loss: nn.Module | None = None, lr: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Linear(features, classes)
        self.loss = loss if loss is not None else recording(nn.CrossEntropyLoss)
        self.lr = lr
        self.clean: list[tuple[str, torch.Tensor]] = []
        self.intact: list[bool] = []

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch
        before = y.clone()
        self.clean.append((stage, before))
        self.loss.stage = stage
        loss = self.loss(self.net(x), y)
        self.intact.append(torch.equal(y, before))
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self._step(batch, "validate"))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test_loss", self._step(batch, "test"))

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        self._step(batch, "predict")
        return self.net(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class LossMLP(RecordingMLP):
    """The shared regression MLP, with its MSE held as a recording loss module (``self.loss``)."""

    def __init__(self, loss: nn.Module | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loss = loss if loss is not None else recording(nn.MSELoss)
        self.clean: list[tuple[str, torch.Tensor]] = []

    def _loss(self, batch: Any) -> torch.Tensor:
        x, y = batch
        stage = self._stage()
        self.clean.append((stage, y.clone()))
        self.loss.stage = stage
        return self.loss(self(x), y)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        self._loss(batch)
        return self(batch[0])
