"""Noise functions: statistics against analytic values, purity, dtypes, registry and errors.

Statistical tolerances: with n samples the standard error of a sample std is about sigma/sqrt(2n) and that of a
proportion p is sqrt(p(1-p)/n); each check below allows at least 5 standard errors, with fixed seeds.
"""

import math

import pytest
import torch

from lightning_noise import functional as F
from lightning_noise.functional import kinds

N = 400_000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("std", [0.01, 0.3, 2.0])
def test_gaussian_std_and_mean(std):
    x = torch.full((N,), 3.0)
    noise = F.gaussian(x, std, gen()) - x
    assert abs(noise.std().item() / std - 1) < 5 / math.sqrt(2 * N)
    assert abs(noise.mean().item()) < 5 * std / math.sqrt(N)


def test_uniform_has_the_same_std_and_bounded_support():
    std = 0.5
    noise = F.uniform(torch.zeros(N), std, gen())
    assert abs(noise.std().item() / std - 1) < 0.01
    half_width = math.sqrt(3) * std
    assert noise.abs().max().item() <= half_width
    assert noise.abs().max().item() > 0.999 * half_width


def test_multiplicative_scales_with_the_signal():
    x = torch.full((N,), 2.0)
    out = F.multiplicative(x, 0.25, gen())
    assert abs(out.mean().item() - 2.0) < 5 * 0.5 / math.sqrt(N)
    assert abs((out / x).std().item() / 0.25 - 1) < 0.01
    assert torch.equal(F.multiplicative(torch.zeros(10), 0.25, gen()), torch.zeros(10))


@pytest.mark.parametrize("p", [0.05, 0.3, 1.0])
def test_salt_and_pepper_fraction_and_split(p):
    x = torch.full((N,), 0.5)
    out = F.salt_and_pepper(x, p, gen())
    salt, pepper = (out == 1.0).float().mean().item(), (out == 0.0).float().mean().item()
    tol = 5 * math.sqrt(p / 2 * (1 - p / 2) / N) + 1e-9
    assert abs(salt - p / 2) < tol and abs(pepper - p / 2) < tol
    assert set(out.unique().tolist()) <= {0.0, 0.5, 1.0}


def test_salt_and_pepper_custom_levels():
    out = F.salt_and_pepper(torch.zeros(1000), 1.0, gen(), low=-3.0, high=3.0)
    assert set(out.unique().tolist()) == {-3.0, 3.0}


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_is_inverted_and_unbiased(p):
    x = torch.full((N,), 2.0)
    out = F.dropout(x, p, gen())
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / N)
    assert torch.allclose(out[out != 0], torch.tensor(2.0 / (1 - p)))
    assert abs(out.mean().item() - 2.0) < 5 * 2.0 * math.sqrt(p / (1 - p) / N)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 30.0])
def test_snr_matches_per_sample(snr_db):
    # Samples with very different powers: the noise follows each sample's own power.
    x = torch.randn(8, 50_000, generator=gen(1)) * torch.logspace(-2, 2, 8).unsqueeze(1)
    noise = F.snr(x, snr_db, gen()) - x
    measured = 10 * torch.log10(x.pow(2).mean(1) / noise.pow(2).mean(1))
    # The noise power estimate over 50k elements has relative SE sqrt(2/50k) = 0.63%, i.e. 0.027 dB.
    assert torch.allclose(measured, torch.full_like(measured, snr_db), atol=0.15)


def test_snr_one_dimensional_tensor_is_one_sample():
    x = torch.randn(100_000, generator=gen(2)) * 3
    noise = F.snr(x, 20.0, gen()) - x
    assert abs(10 * math.log10(x.pow(2).mean() / noise.pow(2).mean()) - 20.0) < 0.1


@pytest.mark.parametrize(
    "kind,zero",
    [
        ("gaussian", 0.0),
        ("uniform", 0.0),
        ("multiplicative", 0.0),
        ("salt_and_pepper", 0.0),
        ("dropout", 0.0),
        ("snr", math.inf),
    ],
)
def test_zero_amount_returns_input_untouched(kind, zero):
    x = torch.randn(5, 3)
    assert F.add_noise(x, kind, zero, gen()) is x
    assert F.get_noise(kind).fn(x, zero, gen()) is x


@pytest.mark.parametrize(
    "kind,amount",
    [
        ("gaussian", 0.1),
        ("uniform", 0.1),
        ("multiplicative", 0.1),
        ("salt_and_pepper", 0.2),
        ("dropout", 0.2),
        ("snr", 10.0),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_out_of_place_same_dtype_and_shape(kind, amount, dtype):
    x = torch.rand(4, 6).to(dtype)
    before = x.clone()
    out = F.add_noise(x, kind, amount, gen())
    assert out is not x and out.dtype == dtype and out.shape == x.shape and out.device == x.device
    assert torch.equal(x, before)
    assert not torch.equal(out, x)


def test_gradients_flow_through_additive_noise():
    x = torch.randn(3, 4, requires_grad=True)
    F.gaussian(x, 0.5, gen()).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_same_generator_seed_same_noise_and_global_rng_untouched():
    x = torch.zeros(100)
    state = torch.get_rng_state()
    a, b, c = F.gaussian(x, 1.0, gen(7)), F.gaussian(x, 1.0, gen(7)), F.gaussian(x, 1.0, gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(state, torch.get_rng_state())


def test_per_feature_std_tensor():
    std = torch.tensor([0.1, 1.0, 10.0])
    noise = F.gaussian(torch.zeros(N // 4, 3), std, gen())
    assert torch.allclose(noise.std(0) / std, torch.ones(3), atol=0.02)
    noise = F.uniform(torch.zeros(N // 4, 3), std, gen())
    assert torch.allclose(noise.std(0) / std, torch.ones(3), atol=0.02)


@pytest.mark.parametrize("kind", ["gaussian", "uniform", "multiplicative", "salt_and_pepper", "dropout", "snr"])
def test_integer_tensor_is_rejected(kind):
    amount = {"snr": 10.0}.get(kind, 0.1)
    with pytest.raises(TypeError, match=r"floating-point tensor, got dtype torch.int64.*Embedding"):
        F.add_noise(torch.arange(6), kind, amount, gen())


def test_unknown_kind_lists_available():
    with pytest.raises(ValueError, match=r"Unknown noise `kind` 'gausian'.*'gaussian'"):
        F.get_noise("gausian")


def test_register_custom_kind_and_duplicates():
    def laplace(x, std, generator=None):
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype) - 0.5
        return x - std / math.sqrt(2) * u.sign() * torch.log1p(-2 * u.abs())

    F.register_noise("test_laplace", laplace, overwrite=True)
    try:
        assert "test_laplace" in F.available_noises()
        noise = F.add_noise(torch.zeros(N), "test_laplace", 0.5, gen())
        assert abs(noise.std().item() / 0.5 - 1) < 0.02
        with pytest.raises(ValueError, match="already registered"):
            F.register_noise("test_laplace", laplace)
        with pytest.raises(ValueError, match="`amount` must be one of"):
            F.register_noise("bad", laplace, amount="sigma")
    finally:
        kinds._REGISTRY.pop("test_laplace", None)


@pytest.mark.parametrize(
    "kind,value,match",
    [
        ("gaussian", -0.1, r"`std` for 'gaussian' noise must be in \[0.0, inf\], got -0.1"),
        ("salt_and_pepper", 1.5, r"`p` for 'salt_and_pepper' noise must be in \[0.0, 1.0\], got 1.5"),
        ("dropout", 1.0, r"`p` for 'dropout' noise must be in \[0.0, 1.0\), got 1.0"),
        ("gaussian", float("nan"), "got nan"),
    ],
)
def test_check_amount_messages(kind, value, match):
    with pytest.raises(ValueError, match=match):
        F.get_noise(kind).check_amount(value)
    F.get_noise("snr").check_amount(-10.0)  # any real SNR is valid
