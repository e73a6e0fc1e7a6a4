"""The binomial bounds at scale and at the ends of alpha's range; inputs CERTIFY refuses; one default n (issue 20).

Exactness is checked against scipy over the whole accepted range of ``alpha`` (``[1e-100, 1)``), against closed
forms (``k = 1`` and ``k = n``, any ``n``) and against mpmath at 50 digits. Memory is checked in a subprocess (peak
resident memory of the bound on 1,000 and 10,000 points at ``n = 100,000``); its time is a benchmark
(benchmarks/certify.py), not a test.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lightning_noise import RandomizedSmoothing, certify, smoothed_predict
from lightning_noise.smoothing import binomial_test_half, clopper_pearson_lower, max_certified_radius
from tests.test_certify import Linear, points_at

ROOT = Path(__file__).resolve().parents[1]
ALPHAS = [1e-100, 1e-50, 1e-12, 1e-3, 0.05, 0.5, 0.9, 1 - 1e-6, 1 - 1e-12, math.nextafter(1.0, 0.0)]


def test_clopper_pearson_is_exact_over_the_whole_alpha_range():
    stats = pytest.importorskip("scipy.stats")
    cases = [(1, 2), (1, 10), (5, 10), (9, 10), (37, 100), (500, 1000), (1, 100_000), (50_001, 100_000)]
    cases += [(99_000, 100_000), (99_999, 100_000), (100_000, 100_000), (3, 10_000_000), (9_999_000, 10_000_000)]
    k = torch.tensor([c[0] for c in cases])
    n = torch.tensor([c[1] for c in cases])
    for alpha in ALPHAS:
        ours = clopper_pearson_lower(k, n, alpha)
        reference = torch.tensor([stats.beta.ppf(alpha, ki, ni - ki + 1) for ki, ni in cases], dtype=torch.float64)
        assert torch.allclose(ours, reference, rtol=0, atol=1e-10), alpha
        for (ki, ni), value in zip(cases, ours.tolist(), strict=True):
            if ki == 1:  # P(X >= 1 | p) = 1 - (1 - p)^n = alpha
                assert value == pytest.approx(-math.expm1(math.log1p(-alpha) / ni), rel=1e-9, abs=1e-300)
            if ki == ni:  # P(X >= n | p) = p^n = alpha
                assert value == pytest.approx(alpha ** (1 / ni), rel=1e-12)
    assert clopper_pearson_lower(torch.tensor([0, 0]), torch.tensor([1, 100_000]), 0.5).tolist() == [0.0, 0.0]


def test_clopper_pearson_equals_mpmath_at_fifty_digits():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    cases = [(3, 10, 1e-100), (12, 40, 1e-3), (60, 100, 0.7), (250, 300, 1 - 1e-12), (3, 10, 0.05), (250, 300, 0.05)]
    for k, n, alpha in cases:
        value = clopper_pearson_lower(k, n, alpha).item()
        # The bound is where the regularized incomplete beta I_p(k, n - k + 1) = P(X >= k | p) reaches alpha.
        tail = functools.partial(mpmath.betainc, k, n - k + 1, 0, regularized=True)
        exact = mpmath.findroot(lambda p, tail=tail, alpha=alpha: tail(p) - alpha, value, verify=False)
        assert abs(tail(exact) / alpha - 1) < 1e-12, (k, n, alpha)  # the root is a root
        assert abs(value - float(exact)) <= 1e-10, (k, n, alpha)


def test_alpha_close_to_one_gives_the_exact_low_bound():
    # issue 20: 1.0 instead of scipy's 2.76e-4 (one success in 100,000 at 1 - 1e-12).
    alpha = 1 - 1e-12
    value = clopper_pearson_lower(1, 100_000, alpha).item()
    assert value == pytest.approx(-math.expm1(math.log1p(-alpha) / 100_000), rel=1e-9)
    assert 2.7e-4 < value < 2.8e-4


def test_alpha_below_the_exact_range_is_refused():
    with pytest.raises(ValueError, match=r"`alpha` must be at least 1e-100 .*got 1e-300"):
        clopper_pearson_lower(5, 10, 1e-300)
    with pytest.raises(ValueError, match=r"`alpha` must be at least 1e-100"):
        certify(nn.Linear(2, 2), torch.zeros(1, 2), 0.5, alpha=1e-120)
    with pytest.raises(ValueError, match=r"`alpha` must be at least 1e-100"):
        RandomizedSmoothing(0.5, alpha=1e-200)


_MEMORY = """
import json, re, resource, sys, time
import torch
from lightning_noise.smoothing import binomial_test_half, clopper_pearson_lower, max_certified_radius

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

torch.set_num_threads(1)
clopper_pearson_lower(torch.tensor([5, 10]), 10, 0.001), binomial_test_half(5, 10)  # imports scipy
# An implementation that needs gigabytes fails here at once instead of taking the (shared) machine's memory.
size = int(re.search(r"VmSize:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + (512 << 20), resource.RLIM_INFINITY))
out = {}
for points in (1_000, 10_000):
    n = 100_000
    k = 99_000 - torch.arange(points) % 5_000   # counts spread over 94,001..99,000
    k[points // 2] = 1                          # and one low count: n - k = 99,999 for that point
    before = peak_mib()
    start = time.perf_counter()
    bound = clopper_pearson_lower(k, n, 0.001)
    p = binomial_test_half(k, n)
    out[points] = {"mib": peak_mib() - before, "seconds": time.perf_counter() - start, "low": bound[points // 2].item(),
                   "first": bound[0].item(), "p_first": p[0].item()}
print(json.dumps(out))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_bound_memory_does_not_grow_with_points_or_n_minus_k():
    # issue 20: 1,000 points at n = 100,000 with one low count held 3.2 GiB (points x (n - k_min) terms at once).
    # Here 10,000 such points: a few float64 arrays of 10,000 numbers (the rest is the allocator's noise).
    stats = pytest.importorskip("scipy.stats")
    result = subprocess.run([sys.executable, "-c", _MEMORY], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]  # e.g. "can't allocate memory" past the 512 MiB limit
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for points in ("1000", "10000"):
        assert out[points]["mib"] < 64, out
        assert out[points]["low"] == pytest.approx(stats.beta.ppf(0.001, 1, 100_000), rel=1e-10)
        assert out[points]["first"] == pytest.approx(stats.beta.ppf(0.001, 99_000, 1_001), rel=1e-12)
        assert out[points]["p_first"] == pytest.approx(stats.binomtest(99_000, 100_000).pvalue, abs=1e-300)


def test_a_one_dimensional_input_is_refused_with_what_to_do():
    # issue 20: shape (64,) was taken as 64 scalar points and failed inside the model.
    with pytest.raises(
        ValueError, match=r"`x` must have shape \(points, \*input_shape\), got shape \(64,\).*x\[None\]"
    ):
        certify(nn.Linear(64, 3), torch.randn(64), 0.25, n=10)
    with pytest.raises(ValueError, match=r"got shape \(64,\).*x\[:, None\]"):
        smoothed_predict(nn.Linear(64, 3), torch.randn(64), 0.25, n=10)
    labels, _ = certify(nn.Linear(64, 3), torch.randn(64)[None], 0.25, n=10, generator=torch.Generator().manual_seed(0))
    assert labels.shape == (1,)


def test_non_finite_inputs_are_refused():
    # issue 20: NaN in an input was certified as class 0 at the largest radius.
    x = torch.randn(5, 2)
    x[1, 0], x[3, 1] = float("nan"), float("inf")
    with pytest.raises(
        ValueError, match=r"`x` must be finite: 2 point\(s\) hold NaN or infinite values \(indices \[1, 3\]"
    ):
        certify(nn.Linear(2, 2), x, 0.25, n=10)
    with pytest.raises(ValueError, match=r"`x` must be finite"):
        smoothed_predict(nn.Linear(2, 2), x, 0.25, n=10)


class NaNOnSome(nn.Module):
    """Class 0 by a wide margin, but NaN logits on noisy inputs whose first coordinate is positive."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([torch.full_like(x[:, 0], 5.0), torch.zeros_like(x[:, 0])], dim=1)
        return torch.where((x[:, :1] > 0), float("nan"), logits)


def test_nan_logits_vote_for_no_class():
    # A noisy input with NaN logits counts towards n but for no class: at a point where half the draws give NaN,
    # class 0 has p_A = 1/2 among n and is not certified (argmax would have counted every NaN for class 0).
    x = torch.zeros(4, 2)
    g = torch.Generator().manual_seed(0)
    labels, radii = certify(NaNOnSome(), x, 1.0, n0=20, n=2000, alpha=0.01, generator=g)
    assert labels.tolist() == [-1] * 4 and radii.tolist() == [0.0] * 4
    far = torch.tensor([[-10.0, 0.0]])  # no noisy input crosses 0: no NaN, class 0 certified
    assert certify(NaNOnSome(), far, 1.0, n=2000, alpha=0.01, generator=g)[0].tolist() == [0]


def test_one_default_n_everywhere():
    # issue 20: certify() defaulted to n = 100,000, the callback and the recipes to 10,000.
    omegaconf = pytest.importorskip("omegaconf")
    defaults = {
        "certify": inspect.signature(certify).parameters["n"].default,
        "smoothed_predict": inspect.signature(smoothed_predict).parameters["n"].default,
        "RandomizedSmoothing": inspect.signature(RandomizedSmoothing).parameters["n"].default,
        "RandomizedSmoothing().n": RandomizedSmoothing(0.25).n,
        "conf/train.yaml": omegaconf.OmegaConf.load(ROOT / "conf" / "train.yaml").eval.certification.n,
    }
    assert set(defaults.values()) == {10_000}, defaults


def test_certificates_use_the_exact_bound_at_scale():
    # Points far from the boundary of a linear classifier: the radius is sigma * Phi^-1(p_low) with scipy's p_low.
    stats = pytest.importorskip("scipy.stats")
    w = torch.tensor([1.0, 0.0])
    x = points_at(torch.tensor([2.0, -2.0]), w, 0.0, seed=0)
    labels, radii = certify(
        Linear(w, 0.0), x, 0.5, n0=10, n=1000, alpha=0.001, generator=torch.Generator().manual_seed(0)
    )
    assert labels.tolist() == [1, 0]  # Phi(4) = 0.99997: every draw on its side
    expected = 0.5 * stats.norm.ppf(0.001 ** (1 / 1000))
    assert radii.tolist() == pytest.approx([expected, expected], rel=1e-10)
    assert binomial_test_half(torch.tensor([1000]), 1000).item() == pytest.approx(2 * 0.5**1000, rel=1e-10)


@pytest.mark.parametrize("n", [1000, 10_000, 100_000])
def test_the_radius_ceiling_is_the_radius_of_a_unanimous_vote(n):
    # issue 18: the largest certifiable radius, marked on the certification plots, is what CERTIFY returns when every
    # noisy sample votes for the top class: sigma * Phi^-1(alpha ** (1 / n)).
    stats = pytest.importorskip("scipy.stats")
    w = torch.tensor([1.0, 0.0])
    x = points_at(torch.tensor([40.0]), w, 0.0, seed=0)  # 80 sigma from the boundary: no draw crosses it
    _, radii = certify(Linear(w, 0.0), x, 0.5, n0=10, n=n, alpha=0.001, generator=torch.Generator().manual_seed(0))
    assert max_certified_radius(0.5, n, 0.001) == pytest.approx(radii.item(), rel=1e-12)
    assert max_certified_radius(0.5, n, 0.001) == pytest.approx(0.5 * stats.norm.ppf(0.001 ** (1 / n)), rel=1e-10)


def test_the_radius_ceiling_values_and_refusals():
    assert max_certified_radius(1.0, 10_000, 0.001) == pytest.approx(3.1986, abs=1e-4)  # the "3.20 sigma" of the docs
    assert max_certified_radius(1.0, 100_000, 0.001) == pytest.approx(3.8115, abs=1e-4)
    assert max_certified_radius(0.25, 10_000, 0.001) == pytest.approx(0.25 * 3.1986, abs=1e-4)
    with pytest.raises(ValueError, match="`sigma` must be"):
        max_certified_radius(-1.0, 10, 0.1)
    with pytest.raises(ValueError, match="`n` must be an integer >= 1"):
        max_certified_radius(1.0, 0, 0.1)
    with pytest.raises(ValueError, match="`alpha` must be"):
        max_certified_radius(1.0, 10, 1.5)
