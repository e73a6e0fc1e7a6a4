"""Each corruption against its definition, measured on a fixed tensor with a fixed seed."""

import math

import pytest
import torch

from lightning_noise.robustness.corruptions import (
    CIFAR10C,
    Corruption,
    gaussian_noise,
    get_corruption,
    impulse_noise,
    resolve_corruptions,
    shot_noise,
    speckle_noise,
)

N = 200_000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def const(value: float, n: int = N, dtype=torch.float32) -> torch.Tensor:
    return torch.full((n,), value, dtype=dtype)


def test_cifar10c_levels_are_the_published_ones():
    assert CIFAR10C == ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
    assert get_corruption("gaussian_noise").levels == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert get_corruption("shot_noise").levels == (500, 250, 100, 75, 50)
    assert get_corruption("impulse_noise").levels == (0.01, 0.02, 0.03, 0.05, 0.07)
    assert get_corruption("speckle_noise").levels == (0.06, 0.10, 0.12, 0.16, 0.20)


@pytest.mark.parametrize("name", ["gaussian", "salt_and_pepper", *CIFAR10C])
def test_severity_zero_is_identity_and_output_keeps_shape_dtype(name):
    corruption = get_corruption(name)
    x = torch.rand(4, 3, 8, 8, generator=gen(1), dtype=torch.float64)
    assert corruption(x, 0, gen()) is x
    y = corruption(x, corruption.severities[-1], gen())
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert not torch.equal(y, x)
    if name != "gaussian":  # the CIFAR-10-C corruptions and salt-and-pepper stay in [0, 1]
        assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("name", ["gaussian", *CIFAR10C])
def test_same_generator_seed_same_corruption(name):
    x = torch.rand(1000, generator=gen(1))
    c = get_corruption(name)
    assert torch.equal(c(x, 3, gen(7)), c(x, 3, gen(7)))
    assert not torch.equal(c(x, 3, gen(7)), c(x, 3, gen(8)))


@pytest.mark.parametrize("c", [0.04, 0.10])
def test_gaussian_noise_std_before_clipping(c):
    # x = 0.5 keeps the noise far from the clip bounds (5 sigma at c = 0.10), so mean 0.5 and std c.
    y = gaussian_noise(const(0.5), c, gen())
    assert abs(y.mean().item() - 0.5) < 4 * c / math.sqrt(N)
    assert y.std().item() == pytest.approx(c, rel=0.01)


def test_gaussian_noise_is_clipped_to_unit_interval():
    y = gaussian_noise(const(0.0), 0.1, gen())
    # Half the draws are negative and clip to 0: P(y == 0) = 1/2; the rest is a half-normal with mean c*sqrt(2/pi).
    assert (y == 0).float().mean().item() == pytest.approx(0.5, abs=0.005)
    assert y.mean().item() == pytest.approx(0.1 / math.sqrt(2 * math.pi), rel=0.02)


@pytest.mark.parametrize("x, rate", [(0.3, 500), (0.5, 50)])
def test_shot_noise_mean_and_variance(x, rate):
    # Poisson(x * rate) / rate has mean x and variance x / rate; at these values clipping at 1 is > 10 sigma away.
    y = shot_noise(const(x), rate, gen())
    var = x / rate
    assert abs(y.mean().item() - x) < 4 * math.sqrt(var / N)
    assert y.var().item() == pytest.approx(var, rel=0.02)
    assert torch.allclose(y * rate, (y * rate).round(), atol=1e-3)  # values are counts / rate


def test_shot_noise_of_black_is_black_and_bad_rate_is_refused():
    assert torch.equal(shot_noise(torch.zeros(10), 50, gen()), torch.zeros(10))
    with pytest.raises(ValueError, match="`rate` of shot noise must be > 0, got 0"):
        shot_noise(torch.zeros(3), 0, gen())


@pytest.mark.parametrize("p", [0.01, 0.07])
def test_impulse_noise_fraction_and_balance(p):
    y = impulse_noise(const(0.5), p, gen())
    salt = (y == 1).float().mean().item()
    pepper = (y == 0).float().mean().item()
    tol = 4 * math.sqrt(p / 2 / N)
    assert salt == pytest.approx(p / 2, abs=tol) and pepper == pytest.approx(p / 2, abs=tol)
    assert ((y == 0.5) | (y == 0) | (y == 1)).all()


@pytest.mark.parametrize("c", [0.06, 0.20])
def test_speckle_noise_std_is_c_times_x(c):
    # Per element: x + x * N(0, c^2) has mean x and standard deviation c * x (x chosen so clipping is > 5 sigma away).
    x = torch.cat([const(0.2, N // 2), const(0.6, N // 2)])
    y = speckle_noise(x, c, gen())
    for value, part in ((0.2, y[: N // 2]), (0.6, y[N // 2 :])):
        assert part.std().item() == pytest.approx(c * value, rel=0.015)
        assert abs(part.mean().item() - value) < 4 * c * value / math.sqrt(N // 2)
    assert torch.equal(speckle_noise(torch.zeros(5), c, gen()), torch.zeros(5))


def test_corruption_checks_its_arguments():
    c = get_corruption("gaussian_noise")
    with pytest.raises(ValueError, match=r"`severity` of corruption 'gaussian_noise' must be an integer in \[0, 5\]"):
        c(torch.zeros(2), 6)
    with pytest.raises(ValueError, match=r"`levels` must be a non-empty sequence of finite numbers >= 0, got"):
        Corruption("bad", gaussian_noise, (-0.1,))
    with pytest.raises(ValueError, match="non-empty sequence"):
        c.with_levels([])
    with pytest.raises(ValueError, match="Unknown corruption 'blur'; expected one of"):
        get_corruption("blur")
    with pytest.raises(ValueError, match="fraction must be in"):
        get_corruption("salt_and_pepper", [1.5])(torch.zeros(3), 1)
    with pytest.raises(ValueError, match="distinct corruptions"):
        resolve_corruptions(["gaussian", "gaussian"])
    with pytest.raises(TypeError, match="floating-point tensor"):
        get_corruption("shot_noise")(torch.zeros(3, dtype=torch.long), 1)


def test_resolve_expands_cifar10c_and_custom_levels():
    names = [c.name for c in resolve_corruptions(["cifar10c", get_corruption("gaussian", [1.0, 2.0])])]
    assert names == [*CIFAR10C, "gaussian"]
    assert resolve_corruptions("gaussian")[0].levels == (0.1, 0.2, 0.3, 0.5, 1.0)


def test_half_precision_is_kept():
    x = torch.rand(64, generator=gen(2)).half()
    for name in CIFAR10C:
        assert get_corruption(name)(x, 2, gen()).dtype == torch.float16
