"""Two-process CPU run (gloo) of ``ModelParallelStrategy`` + ``fully_shard`` (FSDP2), WeightNoise and GradientNoise.

Usage: ``python tests/scripts/fsdp_parameter_noise.py OUT_DIR``; launched by tests/test_fsdp_parameter_noise.py,
which runs the same model unsharded in its own process and compares. Rank 0 saves to ``OUT_DIR/sharded.pt``
the whole (gathered) weights the first forward saw, the noise GradientNoise added at the first step, and the
weights after WeightNoise restored them at that step; every rank saves its gathered final weights to
``OUT_DIR/final{rank}.pt``.
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_noise import GradientNoise, WeightNoise
from tests.helpers import trainer as quiet_trainer

SEED = 123


def full(tensor: torch.Tensor) -> torch.Tensor:
    return (tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor).detach().clone()


class Recorder(pl.LightningModule):
    """A 3-layer MLP (uneven shard sizes) that records what the noise callbacks did at the first step."""

    def __init__(self, shard: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(5, 33), nn.Tanh(), nn.Linear(33, 17), nn.Tanh(), nn.Linear(17, 1))
        self.shard = shard
        self.weights: dict[str, torch.Tensor] = {}
        self.noise: dict[str, torch.Tensor] = {}
        self.restored: dict[str, torch.Tensor] = {}
        self._clean_grads: dict[str, torch.Tensor] = {}

    def configure_model(self) -> None:
        if self.shard:
            from torch.distributed.fsdp import fully_shard

            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    fully_shard(layer, mesh=self.device_mesh["data_parallel"])
            fully_shard(self, mesh=self.device_mesh["data_parallel"])

    def training_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.weights = {name: full(p) for name, p in self.named_parameters()}
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def on_before_optimizer_step(self, optimizer) -> None:  # after the callbacks' hooks: the noisy gradients
        if self.trainer.global_step == 0:
            self.noise = {name: full(p.grad) - self._clean_grads[name] for name, p in self.named_parameters()}
            self.restored = {name: full(p) for name, p in self.named_parameters()}  # WeightNoise restored them

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class CleanGradients(pl.Callback):
    """Placed before GradientNoise: records the gradients before the noise."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step == 0:
            pl_module._clean_grads = {name: full(p.grad) for name, p in pl_module.named_parameters()}


def callbacks() -> list[pl.Callback]:
    return [
        CleanGradients(),
        WeightNoise(std=0.1, biases=True, seed=SEED),
        # stacked on the first layer, from the table: both samplers, and two instances on one parameter
        WeightNoise(std=0.2, kind="multiplicative", modules=["net.0"], sampler="table", seed=SEED, name="table"),
        GradientNoise(std=0.05, seed=SEED),
        # a table of 64 entries: the draw is longer than a window (16), so it is chunks written into a buffer
        GradientNoise(std=0.05, sampler="table", table_size=64, seed=SEED, name="gradient_table"),
    ]


def data() -> DataLoader:
    x = torch.randn(32, 5, generator=torch.Generator().manual_seed(1))
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=4)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    model = Recorder(shard=True)
    strategy = ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1)
    trainer = quiet_trainer(devices=2, strategy=strategy, max_steps=3, max_epochs=None, callbacks=callbacks())
    trainer.fit(model, data())
    final = {name: full(p) for name, p in model.named_parameters()}
    if trainer.global_rank == 0:
        torch.save({"weights": model.weights, "noise": model.noise, "restored": model.restored}, out / "sharded.pt")
    torch.save(final, out / f"final{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
