"""WeightNoise and GradientNoise under ``torch.compile`` (inductor, CPU): the whole LightningModule compiled the
way Lightning compiles it, and a compiled submodule. Both callbacks act outside ``forward`` (before the batch,
after backward, before the optimizer step), so the graphs hold no noise code: what must hold is that the
compiled forward sees the noisy weights, that swapping the parameters' storage each batch causes no recompile,
that validation sees the clean weights, and that the noise equals the eager run's noise.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lightning_noise import GradientNoise, WeightNoise
from tests.helpers import loader, regression_data, trainer

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec", "ignore:.*val_dataloader", "ignore:.*compile")


class Net(pl.LightningModule):
    def __init__(self, compile_layer: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(6, 16)
        self.head = nn.Linear(16, 1)
        if compile_layer:
            self.layer = torch.compile(self.layer, backend="inductor")
        self.seen: list[torch.Tensor] = []
        self.val_weights: list[torch.Tensor] = []
        self.grads: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.layer(x)))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.seen.append(self.head.weight.detach().clone())
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.val_weights.append(self.head.weight.detach().clone())
        self.log("val", nn.functional.mse_loss(self(batch[0]), batch[1]))

    def on_before_optimizer_step(self, optimizer) -> None:
        self.grads.append(self.head.weight.grad.detach().clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)  # clean weights fixed: the noise is what changes


def data(batches: int = 6):
    return loader(regression_data(n=8 * batches, features=6), batch_size=8)


def run(mode: str, noise: pl.Callback | None) -> tuple[Net, int]:
    """The trained model and the number of graphs dynamo compiled during the fit."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model = Net(compile_layer=mode == "submodule")
    module = torch.compile(model, backend="inductor") if mode == "model" else model
    trainer(callbacks=[noise] if noise else [], max_epochs=1).fit(module, data(), data(1))
    return model, int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


@pytest.mark.parametrize("mode", [pytest.param("model", marks=pytest.mark.slow), "submodule"])  # model: ~20 s
def test_weight_noise_under_compile_sees_the_eager_noise_without_recompiles(mode):
    eager, _ = run("eager", WeightNoise(std=0.1, biases=True, seed=3))
    _, baseline = run(mode, None)
    compiled, graphs = run(mode, WeightNoise(std=0.1, biases=True, seed=3))
    clean = Net().head.weight.detach()
    assert len(compiled.seen) == 6
    for eager_seen, seen in zip(eager.seen, compiled.seen, strict=True):
        assert torch.equal(seen, eager_seen)  # the noise is drawn outside the graph: identical to eager
        assert not torch.equal(seen, clean)
    assert all(torch.equal(w, clean) for w in compiled.val_weights)  # validation: the clean weights
    # The parameters' storage alternating between noise buffers each batch must not recompile.
    assert graphs == baseline, f"{graphs} graphs with WeightNoise, {baseline} without"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["model", "submodule"])
def test_gradient_noise_under_compile(mode):
    noisy, graphs = run(mode, GradientNoise(std=0.5, seed=3))
    clean, baseline = run(mode, None)
    noise = torch.stack([a - b for a, b in zip(noisy.grads, clean.grads, strict=True)])
    # 6 steps x 16 values ~ N(0, 0.25): the sample std within 25% of 0.5 (n = 96, relative sd of s ~ 7%)
    assert abs(noise.std().item() - 0.5) < 0.125
    assert graphs == baseline, f"{graphs} graphs with GradientNoise, {baseline} without"
