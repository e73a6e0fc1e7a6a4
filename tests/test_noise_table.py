"""The fast sampler (a precomputed noise table): its statistics, measured against N(0, 1), and its limits."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_noise._flat import NoiseTable, flat_groups, standard_noise

N = 200_000


def draw(table: NoiseTable, key: int, n: int = N) -> torch.Tensor:
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
        assert o1 != o2 and 0 <= min(o1, o2) and max(o1, o2) + 1000 <= table.size and sign in (1.0, -1.0)


def test_table_grows_for_large_buffers_and_is_seeded():
    table = NoiseTable(16, seed=3)
    x = draw(table, 0, 1000)
    assert table.size == 2001 and x.std().item() == pytest.approx(1.0, abs=0.15)
    assert torch.equal(draw(NoiseTable(16, seed=3), 0, 1000), x)
    assert not torch.equal(draw(NoiseTable(16, seed=4), 0, 1000), x)


def test_the_trade_off_draws_share_table_entries():
    """The documented limit: every draw is made of signed pairwise sums of the same T table entries, so at
    most 2T(T - 1) distinct values ever appear (here T = 2n + 1 = 201), where exact draws essentially never repeat."""
    table = NoiseTable(16, seed=5)
    n = 100
    draws = [draw(table, key, n) for key in range(2000)]
    values = torch.cat(draws)
    # 200,000 numbers, at most 2 * 201 * 200 = 80,400 distinct signed sums of two of the 201 table entries.
    assert torch.unique(values).numel() <= 2 * table.size * (table.size - 1) < values.numel()
    exact = torch.randn(2000 * n, generator=torch.Generator().manual_seed(0))
    assert torch.unique(exact).numel() > 0.99 * exact.numel()


def test_flat_groups_views_share_one_buffer():
    tensors = [torch.zeros(3, 4), torch.zeros(5), torch.zeros(2, dtype=torch.float64)]
    groups = flat_groups(tensors)
    assert [g.indices for g in groups] == [[0, 1], [2]]
    groups[0].buffer.copy_(torch.arange(17.0))
    assert groups[0].views[0].shape == (3, 4) and groups[0].views[1].tolist() == [12.0, 13.0, 14.0, 15.0, 16.0]


def test_windows_are_the_draw_cut_like_the_group():
    """What the callbacks add (two foreach terms over views of the table) equals the draw ``fill_`` writes."""
    tensors = [torch.zeros(30, 40), torch.zeros(7)]
    group = flat_groups(tensors)[0]
    table = NoiseTable(4096, seed=6)
    terms = standard_noise(group, distribution="normal", generator=torch.Generator(), table=table, key=11)
    total = [sum(sign * views[i] for views, sign in terms) for i in range(2)]
    expected = draw(table, 11, 1207)
    assert torch.allclose(torch.cat([t.flatten() for t in total]), expected, atol=1e-6)
    assert all(views[0].data_ptr() != group.buffer.data_ptr() for views, _ in terms), "views of the table"
