"""Two-process CPU DDP run (gloo) with GradientNoise and WeightNoise; launched by tests/test_ddp_parameter_noise.py.

Usage: ``python tests/scripts/ddp_parameter_noise.py OUT_DIR``. Lightning's ``ddp`` launcher re-runs this command
line for rank 1, so it must be a script, not code inside pytest's process.

The optimizer has two parameter groups. Group 0 (``hidden``) gets GradientNoise as the library draws it, the
same on every rank; group 1 (``head``) gets a control copy whose noise is keyed by rank, which makes the
replicas drift apart. WeightNoise perturbs both layers. Every rank saves its final parameters to
``OUT_DIR/rank{r}.pt``.
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_noise import GradientNoise, WeightNoise
from tests.helpers import trainer as quiet_trainer


class TwoLayers(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(8, 32)
        self.head = nn.Linear(32, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.head(torch.tanh(self.hidden(x))), y)

    def configure_optimizers(self):
        return torch.optim.SGD(
            [{"params": self.hidden.parameters()}, {"params": self.head.parameters()}], lr=0.1, momentum=0.9
        )


def main(out: Path) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    data = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)
    per_rank = GradientNoise(std=0.05, param_groups=[1], name="per_rank_control")
    per_rank.per_rank = True  # the control: independent noise on each rank, what the library must not do
    callbacks = [GradientNoise(eta=0.01, param_groups=[0]), per_rank, WeightNoise(std=0.05, biases=True)]
    trainer = quiet_trainer(
        devices=2, strategy="ddp", max_steps=6, max_epochs=None, accumulate_grad_batches=2, callbacks=callbacks
    )
    model = TwoLayers()
    trainer.fit(model, data)
    state = {name: p.detach().clone() for name, p in model.named_parameters()}
    torch.save(state, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
