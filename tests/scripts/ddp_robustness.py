"""Run by tests/test_robustness.py in a clean subprocess: RobustnessEvaluation under 2-process DDP (gloo).

90 points of three overlapping blobs (std 1.2), 45 per rank in batches of 16 (the last one partial), and a
nearest-centre classifier.
Three evaluations run at the end of ``trainer.test``: accuracy, a callable metric and a torchmetrics metric;
each rank saves its three results. Usage: python ddp_robustness.py OUT_DIR
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
import torchmetrics
from torch import nn

from lightning_noise import RobustnessEvaluation

CENTERS = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])


def blobs(n: int, seed: int) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    return torch.utils.data.TensorDataset(CENTERS[y] + 1.2 * torch.randn(n, 2, generator=g), y)


class Nearest(pl.LightningModule):
    """Logits ``x . c - |c|^2 / 2`` of the three centres ``c``: the nearest centre wins."""

    def __init__(self):
        super().__init__()
        self.centers = nn.Parameter(CENTERS.clone())

    def forward(self, x):
        return x @ self.centers.T - (self.centers**2).sum(1) / 2

    def test_step(self, batch, batch_idx):
        pass


def accuracy(preds, targets):
    return (preds.argmax(-1) == targets).double().mean()


def main(out: Path) -> None:
    torch.set_num_threads(1)
    common = dict(corruptions=["gaussian", "salt_and_pepper"], plot=False, print_table=False, log=False)
    callbacks = {
        "accuracy": RobustnessEvaluation(output_dir=out / "accuracy", **common),
        "callable": RobustnessEvaluation(metric=accuracy, output_dir=out / "callable", **common),
        "torchmetrics": RobustnessEvaluation(
            metric=torchmetrics.classification.MulticlassAccuracy(num_classes=3, average="micro"),
            output_dir=out / "torchmetrics",
            **common,
        ),
    }
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        logger=False,
        callbacks=list(callbacks.values()),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(Nearest(), torch.utils.data.DataLoader(blobs(90, 1), batch_size=16), verbose=False)
    torch.save({name: c.result.to_dict() for name, c in callbacks.items()}, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
