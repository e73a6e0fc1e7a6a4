"""Mixed precision: noise on bf16/fp16 activations keeps its standard deviation.

The noise of a 16-bit tensor is computed in float32 and the noisy result rounded once to the tensor's dtype.
The analytic std is the requested std; rounding to bf16 near 1.0 (spacing 2**-7) adds a variance of about
spacing**2 / 12, a relative bias below 0.1% at std 0.1, far inside the tolerance used here.
"""

import math

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lightning_noise import ActivationNoise, TargetNoise
from tests.helpers import loader, trainer


class ConstantLayer(pl.LightningModule):
    """A Linear whose output is exactly 1.0 (zero weight, unit bias), so its bf16 output is exact."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(64, 64)
        with torch.no_grad():
            self.layer.weight.zero_()
            self.layer.bias.fill_(1.0)
        self.head = nn.Linear(64, 1)
        self.loss = nn.MSELoss()
        self.received: list[torch.Tensor] = []
        self.head.register_forward_pre_hook(lambda m, a: self.received.append(a[0].detach().clone()))

    def forward(self, x):
        return self.head(self.layer(x))

    def training_step(self, batch, batch_idx):
        return self.loss(self(batch[0]).float(), batch[1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("kind,sampler", [("gaussian", "exact"), ("uniform", "exact"), ("gaussian", "table")])
def test_bf16_activation_noise_has_the_requested_std(kind, sampler):
    model = ConstantLayer()
    callback = ActivationNoise(std=0.1, kind=kind, modules=["layer"], sampler=sampler, table_size=1 << 16, seed=0)
    data = TensorDataset(torch.randn(1024, 64), torch.zeros(1024, 1))
    trainer(callbacks=[callback], precision="bf16-mixed").fit(model, loader(data, batch_size=256))
    received = torch.cat(model.received)
    assert received.dtype == torch.bfloat16
    noise = received.float() - 1.0
    n = noise.numel()
    assert abs(noise.std().item() / 0.1 - 1) < 5 / math.sqrt(2 * n)
    assert abs(noise.mean().item()) < 5 * 0.1 / math.sqrt(n) + 2**-9  # plus half a bf16 spacing of rounding bias


def test_bf16_noise_is_computed_in_float32():
    """A small std on a large bf16 value: adding bf16 noise to it would round each draw twice."""
    callback = ActivationNoise(std=0.05, modules=["layer"], seed=0)
    callback._batch_seed = 1
    x = torch.full((256, 256), 3.0, dtype=torch.bfloat16)
    noisy = callback._draw(x, 0.05, 1, 0, 0)
    reference = callback._eager_draw(x.float(), 0.05, callback._draw_seed(1, 0, 0)).to(torch.bfloat16)
    assert noisy.dtype == torch.bfloat16 and torch.equal(noisy, reference)


def test_target_noise_on_bf16_targets_keeps_its_std():
    callback = TargetNoise(std=0.2, seed=0)
    callback._batch_seed = 7
    y = torch.zeros(512, 64, dtype=torch.bfloat16)
    noisy = callback._noisy_target(nn.MSELoss(), y, y, 1, 0)
    assert noisy.dtype == torch.bfloat16
    assert abs(noisy.float().std().item() / 0.2 - 1) < 5 / math.sqrt(2 * noisy.numel())
