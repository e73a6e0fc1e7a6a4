"""Run by tests/test_ddp_input_noise.py in a clean subprocess: 2-process DDP on CPU (gloo).

Each rank saves the noise its forward saw in the first training batches and its callback's base seed.
Usage: python ddp_input_noise.py OUT_DIR
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

from lightning_noise import InputNoise


class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.noise = []

    def forward(self, x):
        self._seen = x.detach()
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, idx = batch
        assert torch.equal(x, torch.zeros_like(x)), "training_step must receive the clean batch"
        loss = self(x).pow(2).mean()
        # The dataset is x = 0, so what forward received is the noise itself (added once, not twice).
        self.noise.append(self._seen.clone())
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    model = Model()
    callback = InputNoise(std=1.0)  # no seed: rank 0's fresh entropy must be broadcast
    data = torch.utils.data.TensorDataset(torch.zeros(256, 4), torch.arange(256))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=1,
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=32))
    torch.save({"seed": callback._base_seed, "noise": torch.stack(model.noise)}, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
