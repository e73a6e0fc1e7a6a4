"""Randomized smoothing: exact radii of linear classifiers, the binomial bounds, abstention, seeding, state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_noise import certify, smoothed_predict
from lightning_noise.smoothing import binomial_test_half, clopper_pearson_lower
from lightning_noise.smoothing.smoothed import certificates, predictions, sample_counts


class Linear(nn.Module):
    """``w.x + b`` with a unit-norm ``w``: the signed distance to the boundary. One logit, or two (``[0, d]``)."""

    def __init__(self, w: torch.Tensor, b: float, two_logits: bool = False) -> None:
        super().__init__()
        self.register_buffer("w", w / w.norm())
        self.b = b
        self.two_logits = two_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(d), d], dim=1) if self.two_logits else d


def points_at(distances: torch.Tensor, w: torch.Tensor, b: float, seed: int) -> torch.Tensor:
    """Points whose signed distance to ``{w.x + b = 0}`` is ``distances`` (random positions along the boundary)."""
    g = torch.Generator().manual_seed(seed)
    u = w / w.norm()
    along = torch.randn(len(distances), len(w), generator=g)
    along -= (along @ u)[:, None] * u  # orthogonal to w: does not change the distance
    return along + (distances - b)[:, None] * u


@pytest.mark.parametrize("two_logits", [False, True], ids=["one_logit", "two_logits"])
def test_linear_radius_is_sound_and_tight(two_logits):
    # For a linear base classifier, P(f(x + eps) = class of x) = Phi(d / sigma), so the smoothed classifier's exact
    # certified radius sigma * Phi^-1(p_A) is the distance d to the boundary. n = 10,000, sigma = 0.5, alpha = 0.001:
    # the Clopper-Pearson bound costs ~8% of d at d = 0.25 (about 2.6% per standard error of the count).
    w, b = torch.tensor([1.0, -2.0, 0.5, 0.0, 1.0]), 0.3
    distances = torch.tensor([0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0] * 2) * torch.tensor([1.0, -1.0]).repeat_interleave(7)
    x = points_at(distances, w, b, seed=1)
    model = Linear(w, b, two_logits)
    labels, radii = certify(model, x, 0.5, n=10_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(labels, (distances > 0).long())
    truth = distances.abs().double()
    assert bool((radii <= truth).all()), (radii / truth).tolist()
    assert bool((radii >= 0.85 * truth).all()), (radii / truth).tolist()


def test_soundness_holds_at_the_stated_confidence():
    # 2,000 points at distance 0.5, a loose certificate (n = 100, alpha = 0.1): a radius above the true distance
    # happens with probability <= alpha per point (Clopper-Pearson is conservative). A point estimate instead of
    # the lower bound would exceed it about half the time.
    w, b = torch.tensor([0.6, 0.8]), 0.0
    x = points_at(torch.full((2000,), 0.5), w, b, seed=2)
    labels, radii = certify(Linear(w, b), x, 0.5, n0=20, n=100, alpha=0.1, generator=torch.Generator().manual_seed(3))
    too_large = ((radii > 0.5) | (labels != 1)).double().mean().item()
    assert too_large <= 0.1 + 3 * math.sqrt(0.1 * 0.9 / 2000), too_large


def test_clopper_pearson_and_binomial_test_equal_scipy():
    stats = pytest.importorskip("scipy.stats")
    cases = [
        (0, 10),
        (1, 10),
        (5, 10),
        (9, 10),
        (10, 10),
        (37, 100),
        (99, 100),
        (500, 1000),
        (9_990, 10_000),
        (99_000, 100_000),
        (100_000, 100_000),
        (50_001, 100_000),
    ]
    k = torch.tensor([c[0] for c in cases])
    n = torch.tensor([c[1] for c in cases])
    for alpha in (0.001, 0.05, 0.3):
        ours = clopper_pearson_lower(k, n, alpha).tolist()
        for (ki, ni), value in zip(cases, ours, strict=True):
            reference = stats.beta.ppf(alpha, ki, ni - ki + 1) if ki > 0 else 0.0
            interval = stats.binomtest(ki, ni).proportion_ci(confidence_level=1 - 2 * alpha, method="exact")
            assert value == pytest.approx(reference, abs=1e-11), (ki, ni, alpha)
            assert value == pytest.approx(interval.low, abs=1e-9), (ki, ni, alpha)
    for ki, ni in [(9, 10), (5, 10), (0, 7), (60, 100), (5_200, 10_000), (51, 51)]:
        reference = stats.binomtest(ki, ni, 0.5).pvalue
        assert binomial_test_half(ki, ni).item() == pytest.approx(reference, rel=1e-9, abs=1e-15)


def test_bounds_reject_bad_counts():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        clopper_pearson_lower(11, 10, 0.05)
    with pytest.raises(ValueError, match="integers"):
        clopper_pearson_lower(torch.tensor(2.5), 10, 0.05)
    with pytest.raises(ValueError, match=r"`alpha` must be a finite number > 0 and < 1"):
        clopper_pearson_lower(1, 10, 1.0)


def test_abstains_when_the_top_classes_are_tied():
    # Exact ties in the counts.
    labels, radii = certificates(torch.tensor([50, 5_000]), 10_000, torch.tensor([2, 1]), sigma=0.5, alpha=0.001)
    assert labels.tolist() == [-1, -1] and radii.tolist() == [0.0, 0.0]
    assert predictions(torch.tensor([[50, 50, 0], [0, 3, 3], [90, 10, 0]]), 0.001).tolist() == [-1, -1, 0]
    # Points on the boundary of a linear classifier: both classes have probability 1/2 under the noise.
    w = torch.tensor([1.0, 1.0])
    x = points_at(torch.zeros(20), w, 0.0, seed=4)
    labels, radii = certify(Linear(w, 0.0), x, 0.25, n=2000, generator=torch.Generator().manual_seed(0))
    assert labels.tolist() == [-1] * 20 and radii.tolist() == [0.0] * 20
    predicted = smoothed_predict(Linear(w, 0.0), x, 0.25, n=2000, generator=torch.Generator().manual_seed(0))
    assert predicted.tolist() == [-1] * 20


def test_smoothed_predict_answers_the_top_class_away_from_the_boundary():
    w = torch.tensor([1.0, 0.0, 0.0])
    distances = torch.tensor([-1.0, -0.5, 0.5, 1.0])
    x = points_at(distances, w, 0.0, seed=5)
    out = smoothed_predict(Linear(w, 0.0, two_logits=True), x, 0.5, n=2000, generator=torch.Generator().manual_seed(1))
    assert out.tolist() == [0, 0, 1, 1]


class Recorder(nn.Module):
    """A CNN-ish model on (1, 4, 4) images that records each call: batch size, its mode, and grad mode."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(32, 3)
        )
        self.calls: list[tuple[int, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.shape[0], self.training, torch.is_grad_enabled()))
        torch.rand(3)  # a model that consumes the global RNG: certify must restore it
        return self.net(x)


def test_batches_copies_of_many_points_in_one_forward_and_restores_mode_and_rng():
    torch.manual_seed(0)
    model = Recorder()
    model.train()
    model.net[1].eval()  # a mixed state: restored module by module
    x = torch.randn(10, 1, 4, 4)
    before = torch.get_rng_state()
    labels, radii = certify(model, x, 0.25, n0=10, n=100, batch_size=1000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), before)
    assert model.calls == [(100, False, False), (1000, False, False)]  # 10 points x 10, then 10 points x 100
    assert model.training and not model.net[1].training and model.net[3].training
    assert labels.shape == radii.shape == (10,)
    smoothed_predict(model, x, 0.25, n=30, batch_size=64, generator=torch.Generator().manual_seed(0))
    assert [c[0] for c in model.calls[2:]] == [64, 64, 64, 64, 44]
    assert torch.equal(torch.get_rng_state(), before) and model.training


class Inputs(nn.Module):
    """Records every noisy batch it is given; two logits from the mean pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone(memory_format=torch.preserve_format))
        m = x.flatten(1).mean(dim=1)
        return torch.stack([-m, m], dim=1)


@pytest.mark.parametrize("channels", [1, 3])
def test_one_channel_images_are_noised_channels_last_with_the_same_draws(channels):
    # (B, 1, H, W) batches reach the model with channels-last strides (faster CPU convolutions) but hold exactly
    # the numbers of torch.randn(B, 1, H, W) from the same generator, and stay contiguous (view() works).
    x = torch.randn(2, channels, 3, 5, generator=torch.Generator().manual_seed(1))
    for batch_size in (8, 4, 3):  # both points in one call; one point per call; points split across calls
        model = Inputs()
        sample_counts(model, x, 0.5, 4, batch_size=batch_size, generator=torch.Generator().manual_seed(2))
        g = torch.Generator().manual_seed(2)
        noise = torch.cat([torch.randn(len(batch), channels, 3, 5, generator=g) for batch in model.seen])
        assert torch.equal(torch.cat(model.seen), torch.add(x.repeat_interleave(4, dim=0), noise, alpha=0.5))
        assert all(batch.is_contiguous() and batch.stride(1) == (1 if channels == 1 else 15) for batch in model.seen)


def test_same_seed_same_certificates_and_a_new_seed_new_ones():
    model = Linear(torch.tensor([1.0, 2.0]), 0.1, two_logits=True)
    x = points_at(torch.linspace(-1, 1, 15), torch.tensor([1.0, 2.0]), 0.1, seed=6)
    run = lambda seed: certify(model, x, 0.5, n0=50, n=500, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    (l1, r1), (l2, r2), (_, r3) = run(7), run(7), run(8)
    assert torch.equal(l1, l2) and torch.equal(r1, r2)
    assert not torch.equal(r1, r3)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sigma": 0.0}, ValueError, r"`sigma` must be a finite number > 0 .* got 0.0"),
        ({"sigma": float("inf")}, ValueError, r"`sigma` must be a finite number > 0"),
        ({"sigma": True}, TypeError, r"`sigma` must be a finite number > 0 .*got True \(bool\)"),
        ({"sigma": "0.5"}, TypeError, r"`sigma` must be a finite number > 0 .*got '0.5' \(str\)"),
        ({"n0": 0}, ValueError, r"`n0` must be an integer >= 1, got 0"),
        ({"n": 10.0}, TypeError, r"`n` must be an integer >= 1, got 10.0 \(float\)"),
        ({"alpha": 0.0}, ValueError, r"`alpha` must be a finite number > 0 and < 1"),
        ({"alpha": 1.5}, ValueError, r"`alpha` must be a finite number > 0 and < 1"),
        ({"alpha": "0.01"}, TypeError, r"`alpha` must be a finite number > 0 and < 1.*\(str\)"),
        ({"batch_size": -1}, ValueError, r"`batch_size` must be an integer >= 1"),
    ],
)
def test_argument_errors(kwargs, error, message):
    args = {"sigma": 0.5, **kwargs}
    with pytest.raises(error, match=message):
        certify(nn.Linear(2, 2), torch.zeros(1, 2), args.pop("sigma"), **args)
    if "sigma" not in kwargs and "n0" not in kwargs:
        with pytest.raises(error, match=message):
            smoothed_predict(nn.Linear(2, 2), torch.zeros(1, 2), 0.5, **args)


def test_numpy_numbers_are_accepted():
    np = pytest.importorskip("numpy")
    labels, radii = certify(
        nn.Linear(2, 2),
        torch.zeros(1, 2),
        np.float64(0.5),
        n0=np.int64(4),
        n=np.int32(20),
        alpha=np.float32(0.01),
        generator=torch.Generator().manual_seed(0),
    )
    assert labels.shape == radii.shape == (1,)


def test_input_and_output_errors():
    with pytest.raises(TypeError, match="`x` must be a floating-point tensor"):
        certify(nn.Linear(2, 2), torch.zeros(1, 2, dtype=torch.long), 0.5)
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module"):
        certify(lambda x: x, torch.zeros(1, 2), 0.5)
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator"):
        certify(nn.Linear(2, 2), torch.zeros(1, 2), 0.5, generator=0)
    with pytest.raises(ValueError, match=r"logits of shape \(batch, classes\)"):
        certify(nn.Identity(), torch.zeros(1, 2, 2), 0.5, n=10)
    labels, radii = certify(nn.Linear(2, 2), torch.zeros(0, 2), 0.5)
    assert labels.shape == radii.shape == (0,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_certify_on_cuda_draws_noise_there_and_restores_its_rng():
    model = Linear(torch.tensor([1.0, 0.0]), 0.0).cuda()
    x = torch.tensor([[0.5, 0.0], [-1.0, 2.0]])
    before = torch.cuda.get_rng_state()
    first = certify(model, x, 0.5, n=2000, generator=torch.Generator(device="cuda").manual_seed(0))
    second = certify(model, x, 0.5, n=2000, generator=torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(first[1], second[1]) and first[0].tolist() == [1, 0] and first[1].device.type == "cpu"
    assert torch.equal(torch.cuda.get_rng_state(), before)
    with pytest.raises(ValueError, match="`generator` must be on the model's device"):
        certify(model, x, 0.5, generator=torch.Generator())
