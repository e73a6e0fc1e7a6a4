"""The fast sampler (a precomputed noise table): its statistics, measured against N(0, 1), and its limits."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_noise._flat_buffers import flat_groups
from lightning_noise._noise_table import NoiseTable

N = 200_000


def draw(table: NoiseTable, key: int, n: int = N) -> torch.Tensor:
    first, second, sign = table.pair(n, key, torch.device("cpu"), torch.float32)
    return torch.add(first, second, alpha=sign)


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
        half = table.table_size(1000) // 2
        assert 0 <= o1 and o1 + 1000 <= half <= o2 and o2 + 1000 <= 2 * half and sign in (1.0, -1.0)


def test_table_grows_for_large_buffers_and_is_seeded():
    table = NoiseTable(16, seed=3)
    x = draw(table, 0, 1000)
    assert table.table_size(1000) == 2048 and table.table_size(8) == 16
    assert x.std().item() == pytest.approx(1.0, abs=0.15)
    assert torch.equal(draw(NoiseTable(16, seed=3), 0, 1000), x)
    assert not torch.equal(draw(NoiseTable(16, seed=4), 0, 1000), x)


def test_the_trade_off_draws_share_table_entries():
    """The documented limit: every value is a signed sum of one entry of the table's lower half and one of its
    upper half, so at most 2 (T/2)^2 distinct values ever appear (here T = 256), where exact draws never repeat."""
    table = NoiseTable(16, seed=5)
    n = 100
    draws = [draw(table, key, n) for key in range(2000)]
    values = torch.cat(draws)
    size = table.table_size(n)
    # 200,000 numbers, at most 2 * 128 * 128 = 32,768 distinct signed sums.
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
    table = NoiseTable(4096, seed=6)
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
    # The largest draw the table serves, n = size / 2: windows are exactly the two halves.
    x = draw(table, 3, 1 << 15)
    for lag in (1, 7, 1000, 1 << 14):
        corr = torch.corrcoef(torch.stack([x[:-lag], x[lag:]]))[0, 1].item()
        assert abs(corr) < 5 / math.sqrt(x.numel() - lag)


def test_a_draw_does_not_depend_on_earlier_draws():
    """A larger draw must not grow or re-standardize the table that smaller draws read (resume would differ)."""
    fresh = draw(NoiseTable(1 << 10, seed=9), 4, 100)
    table = NoiseTable(1 << 10, seed=9)
    draw(table, 1, 5000)  # needs a larger table
    assert torch.equal(draw(table, 4, 100), fresh)
