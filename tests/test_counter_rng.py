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

