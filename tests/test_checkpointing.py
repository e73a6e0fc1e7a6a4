"""Activation checkpointing: a recomputed forward sees exactly the noise of the original forward.

Each fit records the gradients of every batch; with the same seed, a model whose blocks run under
``torch.utils.checkpoint.checkpoint`` (reentrant and non-reentrant) must get the gradients of the same model run
without checkpointing. Before keyed draws, the recomputation drew fresh noise (max abs difference 0.087 on this
kind of MLP).
"""

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from lightning_noise import ActivationNoise, InputNoise
from tests.helpers import loader, regression_data, trainer


class Blocks(pl.LightningModule):
    """Three Linear+Tanh blocks (each optionally checkpointed) and a head; one shared Tanh is called twice in the
    last block, and ``records`` holds the flattened gradients after each backward."""

    def __init__(self, mode: str | None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(8 if i == 0 else 32, 32), nn.Tanh()) for i in range(3))
        self.shared = nn.Tanh()
        self.head = nn.Linear(32, 1)
        self.mode = mode
        self.records: list[torch.Tensor] = []

    def _block(self, i: int, h: torch.Tensor) -> torch.Tensor:
        h = self.blocks[i](h)
        return self.shared(self.shared(h) * 2.0) if i == 2 else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i in range(3):
            if self.mode is None:
                h = self._block(i, h)
            else:
                h = checkpoint(self._block, i, h, use_reentrant=self.mode == "reentrant")
        return self.head(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self(x.requires_grad_(self.mode == "reentrant")), y)

    def on_after_backward(self) -> None:
        self.records.append(torch.cat([p.grad.flatten() for p in self.parameters()]).clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def gradients(mode, callback_factory):
    data = regression_data(n=64, features=8)
    model = Blocks(mode)
    trainer(callbacks=[callback_factory()], max_epochs=2).fit(model, loader(data))
    return torch.stack(model.records)


CALLBACKS = {
    "activation-exact": lambda: ActivationNoise(std=0.3, modules=["blocks.*.1", "shared"], seed=3),
    "activation-table": lambda: ActivationNoise(
        std=0.3, modules=["blocks.*.1", "shared"], sampler="table", table_size=1 << 12, seed=3
    ),
    "activation-input-side": lambda: ActivationNoise(std=0.3, modules=["blocks.*.0"], where="input", seed=3),
    "activation-dropout": lambda: ActivationNoise(p=0.2, kind="dropout", modules=["blocks.*.1"], seed=3),
    "input-exact": lambda: InputNoise(std=0.3, module="blocks.1", seed=3),
    "input-relative": lambda: InputNoise(std=0.3, module="blocks.1", relative=True, seed=3),
    "input-table": lambda: InputNoise(std=0.3, module="blocks.1", sampler="table", table_size=1 << 12, seed=3),
}


@pytest.mark.parametrize("mode", ["reentrant", "non-reentrant"])
@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_checkpointed_gradients_equal_the_plain_gradients(mode, name):
    plain = gradients(None, CALLBACKS[name])
    recomputed = gradients(mode, CALLBACKS[name])
    assert plain.shape == recomputed.shape
    assert (plain - recomputed).abs().max().item() <= 1e-6
    noiseless = gradients(None, lambda: ActivationNoise(std=0.0, modules=["blocks.*.1"], seed=3))
    assert (plain - noiseless).abs().max().item() > 1e-3  # the noise was on: the comparison is not vacuous


@pytest.mark.parametrize("mode", ["reentrant", "non-reentrant"])
def test_checkpointing_inside_a_compiled_model_is_exact(mode):
    """Under torch.compile a checkpointed segment holding a noise hook runs eagerly (the hook's call counters are
    Python state, which dynamo does not allow inside its checkpoint operator), so its noise is the eager draw and
    the recomputation replays it: the gradients equal those of the eager model without checkpointing."""
    import torch._dynamo

    factory = CALLBACKS["activation-exact"]
    plain = gradients(None, factory)
    torch._dynamo.reset()
    model = Blocks(mode)
    trainer(callbacks=[factory()], max_epochs=2).fit(
        torch.compile(model, backend="aot_eager"), loader(regression_data(n=64, features=8))
    )
    torch._dynamo.reset()
    assert (plain - torch.stack(model.records)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("mode", ["reentrant", "non-reentrant"])
def test_relative_input_noise_counts_each_batch_once_under_checkpointing(mode):
    """The recomputed forward does not update the running statistics: they count every sample once."""
    callback = InputNoise(std=0.3, module="blocks.1", relative=True, seed=3)
    trainer(callbacks=[callback], max_epochs=2).fit(Blocks(mode), loader(regression_data(n=64, features=8)))
    (stats,) = callback._stats.values()
    assert stats.count == 2 * 64


class Layouts(pl.LightningModule):
    """One ``shared`` block called in several places, some of them inside checkpointed segments.

    ``outside-inside``: once outside, then once inside a segment (issue 20: the recomputation took call 0's noise);
    ``two-segments``: once in each of two segments (backward recomputes the second segment first);
    ``inside-outside-inside``: in a segment, outside, then twice in a second segment.
    """

    def __init__(self, layout: str, mode: str | None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(8, 32)
        self.shared = nn.Sequential(nn.Linear(32, 32), nn.Tanh())
        self.head = nn.Linear(32, 1)
        self.layout, self.mode = layout, mode
        self.records: list[torch.Tensor] = []

    def _segment(self, function, h: torch.Tensor) -> torch.Tensor:
        if self.mode is None:
            return function(h)
        return checkpoint(function, h, use_reentrant=self.mode == "reentrant")

    def _twice(self, h: torch.Tensor) -> torch.Tensor:
        return self.shared(self.shared(h) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if self.layout == "outside-inside":
            h = self._segment(self.shared, self.shared(h))
        elif self.layout == "two-segments":
            h = self._segment(self.shared, self._segment(self.shared, h) * 0.5)
        else:
            h = self._segment(self._twice, self.shared(self._segment(self.shared, h)))
        return self.head(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self(x.requires_grad_(self.mode == "reentrant")), y)

    def on_after_backward(self) -> None:
        self.records.append(torch.cat([p.grad.flatten() for p in self.parameters()]).clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


LAYOUT_CALLBACKS = {
    "dropout": lambda: ActivationNoise(p=0.3, kind="dropout", modules=["shared"], seed=3),
    "input-side": lambda: ActivationNoise(std=0.3, modules=["shared"], where="input", seed=3),
    "input-noise": lambda: InputNoise(std=0.3, module="shared", seed=3),
    "input-relative": lambda: InputNoise(std=0.3, module="shared", relative=True, seed=3),
    "multiplicative": lambda: ActivationNoise(std=0.3, kind="multiplicative", modules=["shared"], seed=3),
}


@pytest.mark.parametrize("mode", ["reentrant", "non-reentrant"])
@pytest.mark.parametrize("layout", ["outside-inside", "two-segments", "inside-outside-inside"])
@pytest.mark.parametrize("name", sorted(LAYOUT_CALLBACKS))
def test_a_module_called_outside_and_inside_segments_recomputes_its_own_noise(name, layout, mode):
    """Issue 20: the recomputed call of a module also called outside its segment (or in another segment) must draw
    the noise of its own original call, so the gradients equal those without checkpointing."""
    data = loader(regression_data(n=32, features=8))
    records = {}
    for m in (None, mode):
        model = Layouts(layout, m)
        trainer(callbacks=[LAYOUT_CALLBACKS[name]()], max_epochs=1).fit(model, data)
        records[m] = torch.stack(model.records)
    assert (records[None] - records[mode]).abs().max().item() <= 1e-6
