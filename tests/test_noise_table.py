"""The fast sampler (a precomputed noise table): its statistics, measured against N(0, 1), and its limits."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_noise import ActivationNoise, GradientNoise, WeightNoise
from lightning_noise._flat_buffers import flat_groups
from lightning_noise._noise_table import NoiseTable

N = 200_000


def draw(table: NoiseTable, key: int, n: int = N) -> torch.Tensor:
    if table.fits(n):
        first, second, sign = table.pair(n, key, torch.device("cpu"), torch.float32)
        return torch.add(first, second, alpha=sign)
    return table.fill_(torch.empty(n), key)


def test_one_draw_is_standard_normal():
    """Moments and the fraction within 1 and 2 sigma against N(0, 1). Standard errors for n = 200,000:
    mean 0.0022, std 0.0016, kurtosis 0.011, fractions 0.001; tolerances about 5 standard errors."""
    x = draw(NoiseTable(1 << 20, seed=0), key=123).double()
    assert abs(x.mean().item()) < 0.011
    assert x.std().item() == pytest.approx(1.0, abs=0.008)
    assert ((x - x.mean()) ** 4).mean().item() / x.var().item() ** 2 == pytest.approx(3.0, abs=0.06)
    assert (x.abs() < 1).double().mean().item() == pytest.approx(0.6827, abs=0.005)
    assert (x.abs() < 2).double().mean().item() == pytest.approx(0.9545, abs=0.0025)


def test_draws_under_different_keys_are_uncorrelated():
    """Correlation of two draws and of each element with itself across 64 draws; |r| < 5 / sqrt(n)."""
    table = NoiseTable(1 << 20, seed=1)
    draws = torch.stack([draw(table, key) for key in range(64)]).double()
    r = torch.corrcoef(draws[:2])[0, 1].item()
    assert abs(r) < 5 / math.sqrt(N)
    # Each element over draws: mean 0 and variance 1, pooled over the elements.
    per_element_var = draws.var(dim=0)
    assert per_element_var.mean().item() == pytest.approx(1.0, abs=0.01)
    lag_one = (draws[1:] * draws[:-1]).mean().item()
    assert abs(lag_one) < 5 / math.sqrt(N * 63)


def test_same_key_same_draw_and_offsets_differ():
    table = NoiseTable(1 << 16, seed=2)
    assert torch.equal(draw(table, 5, 1000), draw(table, 5, 1000))
    assert not torch.equal(draw(table, 5, 1000), draw(table, 6, 1000))
    for key in range(200):
        o1, o2, sign = table.offsets(1000, key)
        half = table.size // 2
        assert 0 <= o1 and o1 + 1000 <= half <= o2 and o2 + 1000 <= 2 * half and sign in (1.0, -1.0)


def table_entries(table: NoiseTable) -> int:
    return sum(t.numel() for t in table._tables.values())


def test_the_table_never_grows_and_a_long_draw_is_chunks_of_windows():
    """Issue 20 item 7: a draw of more than a window (size / 4) used to grow the table to a power of two >= 2n (2^27
    entries, 512 MB, for a 50M-parameter model). The table now keeps its ``size`` entries; a long draw is chunks,
    each its own pair of windows, still ~N(0, 1). Tolerances: the std within 0.03 (its standard error is 0.0016
    for independent numbers, larger here as chunks share entries); the mean within 0.04, 5 standard deviations of
    the mean of the table's lower half (sqrt(0.5 / 8192) = 0.008), which every chunk reads with a + sign."""
    table = NoiseTable(1 << 14, seed=3)
    x = table.fill_(torch.empty(200_000), key=0).double()
    assert table_entries(table) == 1 << 14 and table.window == 1 << 12
    assert abs(x.mean().item()) < 0.04 and x.std().item() == pytest.approx(1.0, abs=0.03)
    chunks = table.chunks(200_000, key=0)
    assert len(chunks) == math.ceil(200_000 / 4096) and len({(o1, o2) for _, _, o1, o2, _ in chunks}) == len(chunks)
    assert torch.equal(x[:4096].float(), draw(table, 0, 4096)), "chunk 0 is the short draw of the same key"
    assert torch.equal(NoiseTable(1 << 14, seed=3).fill_(torch.empty(200_000), 0).double(), x)
    assert not torch.equal(NoiseTable(1 << 14, seed=4).fill_(torch.empty(200_000), 0).double(), x)
    small = NoiseTable(16, seed=3)  # the smallest tables work too: 4 entries per window
    assert small.fill_(torch.empty(1000), 0).std().item() == pytest.approx(1.0, abs=0.15) and table_entries(small) == 16


def test_building_a_table_holds_one_float64_chunk_at_a_time(monkeypatch):
    """Issue 20 item 7: building the table drew all of it in float64 and standardized it out of place (about 24
    bytes per entry at once: 3 GB for a 2^27 table). Now the largest float64 tensor is one chunk of 2^20."""
    sizes = []
    randn = torch.randn

    def recording_randn(*args, **kwargs):
        out = randn(*args, **kwargs)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(torch, "randn", recording_randn)
    table = NoiseTable(1 << 22, seed=0)
    values = draw(table, key=1, n=1000)
    assert max(sizes) <= 1 << 20 and sum(sizes) >= 1 << 22
    assert table_entries(table) == 1 << 22
    whole = table._tables[(torch.device("cpu"), torch.float32)].double()
    assert abs(whole.mean().item()) < 1e-6 and whole.var().item() == pytest.approx(0.5, rel=1e-6)
    assert values.std().item() == pytest.approx(1.0, abs=0.25)


def test_the_trade_off_draws_share_table_entries():
    """The documented limit: every value is a signed sum of one entry of the table's lower half and one of its
    upper half, so at most 2 (T/2)^2 distinct values ever appear (here T = 16), where exact draws never repeat."""
    table = NoiseTable(16, seed=5)
    n = 100
    draws = [draw(table, key, n) for key in range(2000)]
    values = torch.cat(draws)
    size = table.size
    # 200,000 numbers, at most 2 * 8 * 8 = 128 distinct signed sums.
    assert torch.unique(values).numel() <= 2 * (size // 2) ** 2 < values.numel()
    exact = torch.randn(2000 * n, generator=torch.Generator().manual_seed(0))
    assert torch.unique(exact).numel() > 0.99 * exact.numel()


def test_flat_groups_views_share_one_buffer():
    tensors = [torch.zeros(3, 4), torch.zeros(5), torch.zeros(2, dtype=torch.float64)]
    groups = flat_groups(tensors)
    assert [g.indices for g in groups] == [[0, 1], [2]]
    groups[0].buffer.copy_(torch.arange(17.0))
    assert groups[0].views[0].shape == (3, 4) and groups[0].views[1].tolist() == [12.0, 13.0, 14.0, 15.0, 16.0]


def test_windows_are_the_draw_cut_like_the_group():
    """What the callbacks add (two foreach terms over views of the table) equals the flat draw of ``pair``."""
    tensors = [torch.zeros(30, 40), torch.zeros(7)]
    group = flat_groups(tensors)[0]
    table = NoiseTable(8192, seed=6)
    first, second, sign = table.windows(group, 11)
    assert [tuple(v.shape) for v in first + second] == [(30, 40), (7,)] * 2
    total = torch.cat([(a + sign * b).flatten() for a, b in zip(first, second, strict=True)])
    assert torch.allclose(total, draw(table, 11, 1207), atol=1e-6)
    assert all(view.data_ptr() != group.buffer.data_ptr() for view in first + second), "views of the table"


def test_windows_of_one_draw_never_overlap_so_elements_are_uncorrelated_at_every_lag():
    """Overlapping windows would make x[i] and x[i + d] share a table entry (correlation +-0.5 at lag d)."""
    n = 1 << 14
    table = NoiseTable(1 << 16, seed=7)
    for key in range(20):
        o1, o2, _ = table.offsets(n, key)
        lag = o2 - o1
        assert lag >= n  # disjoint: no lag inside the draw pairs two copies of one entry
    # The largest draw one pair of windows serves, n = size / 4.
    x = draw(table, 3, table.window)
    for lag in (1, 7, 1000, 1 << 13):
        corr = torch.corrcoef(torch.stack([x[:-lag], x[lag:]]))[0, 1].item()
        assert abs(corr) < 5 / math.sqrt(x.numel() - lag)


def test_a_draw_does_not_depend_on_earlier_draws():
    """A larger draw must not grow or re-standardize the table that smaller draws read (resume would differ)."""
    fresh = draw(NoiseTable(1 << 10, seed=9), 4, 100)
    table = NoiseTable(1 << 10, seed=9)
    draw(table, 1, 5000)  # needs a larger table
    assert torch.equal(draw(table, 4, 100), fresh)


class Recorder(pl.LightningModule):
    """Linear(64, 64) without bias, lr 0: records the weights and the output in training_step, the gradient
    after backward and at the optimizer step (after GradientNoise)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Linear(64, 64, bias=False)
        self.clean = self.net.weight.detach().clone()
        self.seen: dict[str, list[torch.Tensor]] = {"weight": [], "out": [], "grad": [], "noisy_grad": []}

    def training_step(self, batch, batch_idx):
        (x,) = batch
        self.seen["weight"].append(self.net.weight.detach().clone())
        out = self.net(x)
        self.seen["out"].append(out.detach().clone())
        return out.pow(2).mean()

    def on_after_backward(self) -> None:
        self.seen["grad"].append(self.net.weight.grad.clone())

    def on_before_optimizer_step(self, optimizer) -> None:
        self.seen["noisy_grad"].append(self.net.weight.grad.clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("which", ["weight", "gradient", "activation"])
def test_callbacks_draw_longer_than_a_window_from_the_capped_table(which):
    """Issue 20 item 7, end to end: 4,096 weights (and 16 x 64 outputs) with ``table_size=1024`` (windows of 256):
    the noise is std * N(0, 1) (std of the noise / std within 0.1: 4,096 numbers from a small table), differs
    between batches, and the table holds 1,024 entries (it used to grow to 8,192)."""
    from tests.helpers import trainer

    callback = {
        "weight": lambda: WeightNoise(std=0.1, sampler="table", table_size=1024, seed=0),
        "gradient": lambda: GradientNoise(std=0.1, sampler="table", table_size=1024, seed=0),
        "activation": lambda: ActivationNoise(std=0.1, modules=["net"], sampler="table", table_size=1024, seed=0),
    }[which]()
    model = Recorder()
    data = DataLoader(TensorDataset(torch.randn(64, 64, generator=torch.Generator().manual_seed(1))), batch_size=16)
    trainer(callbacks=[callback], max_steps=4).fit(model, data)
    if which == "weight":
        noise = [w - model.clean for w in model.seen["weight"]]
    elif which == "gradient":
        noise = [n - g for n, g in zip(model.seen["noisy_grad"], model.seen["grad"], strict=True)]
    else:
        x = next(iter(data))[0]
        noise = [model.seen["out"][0] - x @ model.clean.T]
        model.seen["out"] = model.seen["out"][:1]
    for n in noise:
        assert n.std().item() / 0.1 == pytest.approx(1.0, abs=0.1) and abs(n.mean().item()) < 0.02
    assert len(noise) == 1 or not torch.equal(noise[0], noise[1])
    assert table_entries(callback._table) == 1024
