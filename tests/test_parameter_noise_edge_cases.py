"""WeightNoise and GradientNoise on awkward but legal setups (issue 10, items 4 to 6).

Each test fails on the code before the fix: the raw optimizer's update was lost, an interrupted perturbation left
noisy weights, sparse gradients and lazy parameters raised raw errors.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lightning_noise import GradientNoise, WeightNoise
from lightning_noise._noise_table import NoiseTable
from tests.helpers import loader, regression_data, trainer

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec", "ignore:.*val_dataloader")


def data(batches: int = 3, features: int = 4):
    return loader(regression_data(n=8 * batches, features=features), batch_size=8)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------- 4: raw optimizer step
class Manual(pl.LightningModule):
    def __init__(self, raw: bool) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.layer = nn.Linear(4, 1)
        self.raw = raw

    def training_step(self, batch: Any, batch_idx: int) -> None:
        opt = self.optimizers()
        opt.zero_grad()
        x, y = batch
        loss = nn.functional.mse_loss(self.layer(x), y)
        if self.raw:
            loss.backward()  # plain backward: Lightning's on_after_backward does not run
            opt.optimizer.step()  # the raw torch optimizer
        else:
            self.manual_backward(loss)
            opt.step()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.filterwarnings("ignore:.*manual optimization")
def test_raw_optimizer_step_keeps_its_update():
    results = []
    for raw in (True, False):
        torch.manual_seed(0)
        model = Manual(raw)
        before = state(model)
        trainer(callbacks=[WeightNoise(std=0.1, seed=0)], max_steps=3).fit(model, data())
        results.append(state(model))
        assert not torch.equal(results[-1]["layer.weight"], before["layer.weight"]), f"raw={raw}: update lost"
    # The raw step applies the gradient taken at the noisy weights to the clean ones, as `opt.step()` does.
    for key in results[0]:
        assert torch.equal(results[0][key], results[1][key]), key


# ---------------------------------------------------------------------------- 5: interrupted perturbation
class TwoDtypes(pl.LightningModule):
    """Two flat groups (float32 and float64), perturbed one after the other."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 8)
        self.second = nn.Linear(8, 1).double()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.second(torch.tanh(self.first(x)).double()).float(), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("error", [RuntimeError("out of memory (simulated)"), KeyboardInterrupt()])
def test_exception_while_perturbing_the_second_group_leaves_clean_weights(monkeypatch, error):
    windows = NoiseTable.windows
    calls = []

    def failing_windows(self, group, key):
        calls.append(group)
        if len(calls) == 2:
            raise error
        return windows(self, group, key)

    monkeypatch.setattr(NoiseTable, "windows", failing_windows)
    torch.manual_seed(0)
    model = TwoDtypes()
    before = state(model)
    noise = WeightNoise(std=0.5, biases=True, sampler="table", seed=0)
    with pytest.raises((type(error), SystemExit)):
        trainer(callbacks=[noise], max_steps=2).fit(model, data())
    assert len(calls) == 2, "the failure must happen while the second group is perturbed"
    assert not noise.perturbed
    after = state(model)
    for key in before:
        assert torch.equal(after[key], before[key]), f"{key} kept noise after the interrupted perturbation"


# --------------------------------------------------------------------------------- 6: sparse and lazy
class SparseEmbedding(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(1000, 16, sparse=True)
        self.head = nn.Linear(16, 1)
        self.grads: list[torch.Tensor] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        ids, y = batch
        return nn.functional.mse_loss(self.head(self.embedding(ids)).squeeze(-1), y)

    def on_before_optimizer_step(self, optimizer) -> None:  # runs after the callbacks' hook
        self.grads.append(self.embedding.weight.grad.coalesce())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def ids_data():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 1000, (64,), generator=g)
    return loader(torch.utils.data.TensorDataset(ids, torch.randn(64, generator=g)), batch_size=64)


def test_gradient_noise_on_sparse_embedding_gradients_goes_on_their_values():
    grads = []
    for std in (0.0, 0.1):
        torch.manual_seed(0)
        model = SparseEmbedding()
        trainer(callbacks=[GradientNoise(std=std, seed=0)], max_steps=1).fit(model, ids_data())
        grads.append(model.grads[0])
    clean, noisy = grads
    assert noisy.is_sparse and torch.equal(noisy.indices(), clean.indices())  # the same rows, still sparse
    noise = noisy.values() - clean.values()
    # ~60 distinct rows x 16 values: the std of the noise within 20% of 0.1 (N > 900, relative sd of s ~ 2.4%)
    assert noise.numel() > 900
    assert abs(noise.std().item() - 0.1) < 0.02


class Lazy(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.LazyLinear(1)
        self.seen: list[torch.Tensor | None] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        weight = self.layer.weight
        self.seen.append(None if isinstance(weight, nn.parameter.UninitializedParameter) else weight.detach().clone())
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_weight_noise_selects_lazy_parameters_once_they_are_initialized():
    model = Lazy()
    with pytest.warns(UserWarning, match=r"not initialized yet \(\['layer.weight'\]\)"):
        trainer(callbacks=[WeightNoise(std=0.1, seed=0)], max_steps=4).fit(model, data(4))
    clean = model.layer.weight.detach()
    assert model.seen[0] is None  # the first forward initializes the layer: no noise on that batch
    noises = [seen - clean for seen in model.seen[1:]]
    assert all(n.abs().max() > 0 for n in noises), "lazy weights got no noise after initialization"
    assert not torch.equal(noises[0], noises[1]), "the noise must be fresh at every batch"
