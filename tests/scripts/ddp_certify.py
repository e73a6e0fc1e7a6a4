"""Run by tests/test_certify_callback.py in a clean subprocess: RandomizedSmoothing under 2-process DDP (gloo).

The test set has 25 points; point i has target i and input i * e (so that the model, which rounds the input to
the nearest class, is right far from any boundary). The callback certifies the first 21; each rank saves what it
certified itself and the gathered result. Usage: python ddp_certify.py OUT_DIR
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

from lightning_noise import RandomizedSmoothing


class Rounder(pl.LightningModule):
    """Logits of 25 classes peaked at round(x[0]): a base classifier that is correct under small noise."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        classes = torch.arange(25, dtype=x.dtype, device=x.device)
        return -self.scale * (x[:, :1] - classes) ** 2

    def test_step(self, batch, batch_idx):
        pass


class Spy(RandomizedSmoothing):
    def _own_points(self, loader, total, rank, world):
        x, y = super()._own_points(loader, total, rank, world)
        self.own = len(y)
        return x, y


def main(out: Path) -> None:
    torch.set_num_threads(1)
    x = torch.zeros(25, 3)
    x[:, 0] = torch.arange(25.0)
    data = torch.utils.data.TensorDataset(x, torch.arange(25))
    callback = Spy(0.1, n0=16, n=200, max_samples=21, output_dir=out, print_table=False, plot=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(Rounder(), torch.utils.data.DataLoader(data, batch_size=4), verbose=False)
    result = callback.result
    torch.save(
        {"own": callback.own, "targets": result.targets.tolist(), "labels": result.labels.tolist()},
        out / f"rank{trainer.global_rank}.pt",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
