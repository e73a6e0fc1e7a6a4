"""The counter-based generator used under torch.compile: moments against analytic values, purity, independence.

n = 2**20 draws per check; the tolerances are 5 standard errors of each statistic, so a correct generator
fails one of them with probability ~1e-6.
"""

import math

import pytest
import torch

from lightning_noise import _counter_rng as rng

N = 1 << 20
SE = 1 / math.sqrt(N)


def key(*values):
    return rng.derive_key(rng.key_tensor(2024), *values)


def test_uniform_moments_and_range():
    u = rng.uniform((N,), key(1)).double()
    assert abs(u.mean().item() - 0.5) < 5 * SE * math.sqrt(1 / 12)
    assert abs(u.var().item() - 1 / 12) < 5 * SE * math.sqrt(1 / 180)  # var of (u - 1/2)**2 is 1/180
    assert 0 < u.min().item() and u.max().item() < 1
    counts = torch.histc(u.float(), bins=64, min=0, max=1)  # chi-square with 63 degrees of freedom
    chi2 = ((counts - N / 64) ** 2 / (N / 64)).sum().item()
    assert chi2 < 63 + 5 * math.sqrt(2 * 63)


def test_normal_moments():
    z = rng.normal((N,), key(2)).double()
    assert abs(z.mean().item()) < 5 * SE
    assert abs(z.var().item() - 1) < 5 * SE * math.sqrt(2)
    assert abs((z**3).mean().item()) < 5 * SE * math.sqrt(15)
    assert abs((z**4).mean().item() - 3) < 5 * SE * math.sqrt(96)
    assert abs((z.abs() < 1).double().mean().item() - 0.6826894921) < 5 * SE * 0.5


@pytest.mark.parametrize("shape", [(7,), (3, 5), (1,)])
def test_a_draw_is_a_pure_function_of_its_key_and_shape(shape):
    assert torch.equal(rng.normal(shape, key(3)), rng.normal(shape, key(3)))
    assert rng.normal(shape, key(3)).shape == shape
    assert not torch.equal(rng.normal((64,), key(3)), rng.normal((64,), key(4)))


def test_neighbouring_elements_and_neighbouring_keys_are_uncorrelated():
    z = rng.normal((N,), key(5)).double()
    for lag in (1, 2, 3):  # Box-Muller pairs are (2p, 2p+1): lag 1 covers the pair
        assert abs((z[lag:] * z[:-lag]).mean().item()) < 5 * SE
    other = rng.normal((N,), key(6)).double()
    assert abs((z * other).mean().item()) < 5 * SE
    batch = rng.normal((N,), rng.derive_key(rng.key_tensor(2025), 5)).double()  # the next batch seed
    assert abs((z * batch).mean().item()) < 5 * SE


def test_keyed_noise_kinds_have_their_analytic_moments():
    x = torch.zeros(N)
    for kind, std in (("gaussian", 0.3), ("uniform", 0.3)):
        noise = rng.keyed_noise(kind, x, torch.tensor(0.3), key(7)).double()
        assert abs(noise.std().item() / std - 1) < 5 * SE * (1 if kind == "gaussian" else 0.6)
    ones = torch.ones(N)
    dropped = rng.keyed_noise("dropout", ones, 0.25, key(8))
    assert abs((dropped == 0).double().mean().item() - 0.25) < 5 * SE * math.sqrt(0.25 * 0.75)
    assert torch.allclose(dropped[dropped != 0], torch.tensor(1 / 0.75))
    half = torch.full((N,), 0.5)
    sp = rng.keyed_noise("salt_and_pepper", half, 0.2, key(9))
    assert abs((sp == 1).double().mean().item() - 0.1) < 5 * SE * 0.3
    assert abs((sp == 0).double().mean().item() - 0.1) < 5 * SE * 0.3


def test_16_bit_tensors_get_float32_noise_rounded_once():
    x = torch.full((N,), 3.0, dtype=torch.bfloat16)
    noisy = rng.keyed_noise("gaussian", x, 0.05, key(10))
    reference = (x.float() + 0.05 * rng.normal((N,), key(10))).to(torch.bfloat16)
    assert noisy.dtype == torch.bfloat16 and torch.equal(noisy, reference)


# Every built-in kind, drawn by the counter-based generator (run eagerly here) and by the functional kinds' seeded
# generator, against the analytic statistics: the two implementations cannot drift apart. Each tolerance is 5
# standard errors of the statistic at N draws (the per-case standard deviation of one draw is given).
_X_SNR = torch.randn(N // 1024, 1024, generator=torch.Generator().manual_seed(0)) * 2.0


def _analytic_checks(kind):
    """(x, amount, kwargs, [(statistic of (x, out), expected value, standard deviation of one term)])."""
    if kind == "gaussian":
        return (
            torch.full((N,), 1.5),
            0.3,
            {},
            [(lambda x, y: (y - x).mean(), 0.0, 0.3), (lambda x, y: (y - x).pow(2).mean(), 0.09, 0.09 * math.sqrt(2))],
        )
    if kind == "uniform":  # U(-a, a), a = sqrt(3) * std: var std**2, var of the squared noise 4/45 a**4
        a = math.sqrt(3) * 0.3
        return (
            torch.full((N,), 1.5),
            0.3,
            {},
            [
                (lambda x, y: (y - x).mean(), 0.0, 0.3),
                (lambda x, y: (y - x).pow(2).mean(), 0.09, a**2 * math.sqrt(4 / 45)),
                (lambda x, y: ((y - x).abs() <= a * (1 + 1e-5)).double().mean(), 1.0, 0.0),
            ],
        )
    if kind == "multiplicative":  # x * (1 + std z): mean x, std |x| std
        return (
            torch.full((N,), 2.0),
            0.3,
            {},
            [(lambda x, y: y.mean(), 2.0, 0.6), (lambda x, y: (y - x).pow(2).mean(), 0.36, 0.36 * math.sqrt(2))],
        )
    if kind == "dropout":  # zero with p, else x / (1 - p)
        return (
            torch.ones(N),
            0.25,
            {},
            [
                (lambda x, y: (y == 0).double().mean(), 0.25, math.sqrt(0.25 * 0.75)),
                (lambda x, y: y.mean(), 1.0, math.sqrt(0.25 / 0.75)),
                (lambda x, y: ((y == 0) | ((y - 1 / 0.75).abs() < 1e-6)).double().mean(), 1.0, 0.0),
            ],
        )
    if kind == "salt_and_pepper":  # high with p/2, low with p/2, else kept
        return (
            torch.full((N,), 0.5),
            0.2,
            {"low": -1.0, "high": 2.0},
            [
                (lambda x, y: (y == 2.0).double().mean(), 0.1, 0.3),
                (lambda x, y: (y == -1.0).double().mean(), 0.1, 0.3),
                (lambda x, y: (y == 0.5).double().mean(), 0.8, 0.4),
            ],
        )
    if kind == "snr":  # noise / per-sample std is N(0, 1), per-sample std = sqrt(mean(x**2) / 10**(snr/10))
        std = (_X_SNR.pow(2).mean(dim=1, keepdim=True) / 10 ** (6.0 / 10)).sqrt()
        return (
            _X_SNR,
            6.0,
            {},
            [
                (lambda x, y: ((y - x) / std).mean(), 0.0, 1.0),
                (lambda x, y: ((y - x) / std).pow(2).mean(), 1.0, math.sqrt(2)),
            ],
        )
    raise AssertionError(f"no analytic statistics for the built-in kind {kind!r}: add them here")


def test_the_counter_based_kinds_are_the_built_in_kinds():
    from lightning_noise.functional import available_noises

    assert (
        set(rng.KEYED_KINDS)
        == set(available_noises()) & set(rng.KEYED_KINDS)
        == {"gaussian", "uniform", "multiplicative", "dropout", "salt_and_pepper", "snr"}
    )


@pytest.mark.parametrize("kind", rng.KEYED_KINDS)
def test_counter_draws_and_functional_draws_have_the_analytic_statistics(kind):
    from lightning_noise.functional import get_noise

    x, amount, kwargs, checks = _analytic_checks(kind)
    counter = rng.keyed_noise(kind, x, torch.tensor(amount), key(11), **kwargs).double()
    seeded = get_noise(kind).fn(x, amount, torch.Generator().manual_seed(11), **kwargs).double()
    for out in (counter, seeded):
        for statistic, expected, sd in checks:
            value = statistic(x.double(), out).item()
            assert abs(value - expected) <= 5 * sd / math.sqrt(x.numel()) + 1e-12, (kind, value, expected)
