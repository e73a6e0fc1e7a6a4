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


class LargeActivations(ConstantLayer):
    """ConstantLayer with outputs ``level`` (exact in bf16)."""

    def __init__(self, level: float) -> None:
        super().__init__()
        with torch.no_grad():
            self.layer.bias.fill_(level)


@pytest.mark.parametrize(("level", "std", "warns"), [(30.0, 0.01, True), (1.0, 0.1, False), (30.0, 0.5, False)])
def test_bf16_noise_below_the_dtype_spacing_warns_once(level, std, warns):
    """Issue 20 item 6: under bf16, std=0.01 on activations near 30 (spacing 0.125) was rounded away (86% of the
    elements unchanged) without a word. The first 16-bit draw at each site checks it; one warning per callback.
    std=0.1 at 1.0 (spacing 2**-7) and std=0.5 at 30 change nearly every element and do not warn."""
    import warnings

    model = LargeActivations(level)
    callback = ActivationNoise(std=std, modules=["layer", "head"], seed=0)
    data = TensorDataset(torch.randn(512, 64), torch.zeros(512, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(callbacks=[callback], precision="bf16-mixed").fit(model, loader(data, batch_size=256))
    messages = [str(w.message) for w in caught if "rounded away" in str(w.message)]
    assert len(messages) == (1 if warns else 0), messages
    if warns:
        assert "std=0.01" in messages[0] and "bfloat16" in messages[0] and "median |x| = 30" in messages[0]
    changed = (torch.cat(model.received).float() != level).float().mean().item()
    assert (changed < 0.5) == warns  # the warning says what happened
