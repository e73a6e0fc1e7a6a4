"""LightningCLI with noise callbacks and schedules from a YAML config (or the command line).

Run: ``python examples/lightning_cli.py fit --config examples/lightning_cli.yaml`` (needs the ``cli`` extra:
``pip install -e ".[cli]"``, which installs ``jsonargparse[signatures]``). The model and the data are two rings
in the plane and a small MLP, so a fit takes seconds on a CPU. The page docs/lightning-cli.md shows the config.
"""

from __future__ import annotations

import torch
from lightning import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Classifier(LightningModule):
    """An MLP ``encoder`` (Linear, ReLU) and a linear ``head``; the loss is a module, so LabelNoise finds it.

    Args:
        hidden: width of the hidden layer.
        lr: Adam's learning rate.
    """

    def __init__(self, hidden: int = 32, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(2, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 2)
        self.loss = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/acc", (self(x).argmax(dim=1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class Rings(LightningDataModule):
    """Points of the plane labelled by whether they lie outside the circle of radius 1.2.

    Args:
        n: number of training points (validation gets a quarter as many).
        batch_size: batch size of both loaders.
        seed: seed of the points.
    """

    def __init__(self, n: int = 256, batch_size: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.n, self.batch_size, self.seed = n, batch_size, seed

    def setup(self, stage: str) -> None:
        g = torch.Generator().manual_seed(self.seed)
        x = torch.randn(self.n + self.n // 4, 2, generator=g)
        data = TensorDataset(x, (x.norm(dim=1) > 1.2).long())
        self.train_set = torch.utils.data.Subset(data, range(self.n))
        self.val_set = torch.utils.data.Subset(data, range(self.n, len(data)))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)


def main(args: list[str] | None = None) -> LightningCLI:
    """The CLI; ``args`` replaces the command line (as the tests call it).

    Runs write under ``logs/lightning_cli/`` (the resolved ``config.yaml`` among them, replaced by the next run)
    unless ``--trainer.default_root_dir`` says otherwise.
    """
    return LightningCLI(
        Classifier,
        Rings,
        args=args,
        trainer_defaults={"default_root_dir": "logs/lightning_cli"},
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
