"""CERTIFY's and PREDICT's guarantees, measured: false certificates at most alpha on points of known p_A and radius.

For a linear base classifier ``f(x) = [w.x + b > 0]`` (``|w| = 1``) and Gaussian noise of std ``sigma``, a point at
signed distance ``d`` from the boundary has ``p_A = Phi(|d| / sigma)`` for the class of its side, the smoothed
classifier is ``f`` itself, and the exact certified radius is ``|d|``. A certificate is *false* when it names the
other class, or a radius larger than ``|d|``; on the boundary (``d = 0``: the two classes tie, ``p_A = 1/2``)
every certificate is false. CERTIFY promises a false certificate with probability at most ``alpha`` per point,
PREDICT a wrong non-abstaining answer with probability at most ``alpha``. Each test counts them over ``N``
independent points and allows ``alpha + 3 * sqrt(alpha (1 - alpha) / N)`` (three binomial standard errors, fixed
seeds): a procedure at the limit fails with probability ~0.1%, while Clopper-Pearson and the binomial test sit
below it. Small ``n`` and a large ``alpha`` make the tests fast (well under a second each) and sharp: choosing the
class from the estimation draws certifies ~97% of tied points at ``alpha = 0.5`` (issue 21).
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_noise import RandomizedSmoothing, certify, smoothed_predict
from tests.test_certify import Linear, points_at

W, B, SIGMA = torch.tensor([0.6, -0.8]), 0.1, 0.5


def tolerance(alpha: float, points: int) -> float:
    """The stated binomial tolerance: three standard errors of a rate ``alpha`` over ``points`` points."""
    return 3 * math.sqrt(alpha * (1 - alpha) / points)


def false_certificates(labels: torch.Tensor, radii: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """Per point: a certificate (not an abstention) that names the wrong class or a radius above ``|d|``.

    On the boundary (``d = 0``) the classes tie, the true radius is 0, and every certificate is false.
    """
    certified = labels != -1
    truth = (distances > 0).long()
    wrong = (labels != truth) | (distances == 0)
    return certified & (wrong | (radii > distances.abs().double()))


def near_boundary(points: int, seed: int) -> torch.Tensor:
    """Signed distances within 0.3 sigma of the boundary (p_A between 1/2 and 0.62), both sides, no zero."""
    g = torch.Generator().manual_seed(seed)
    magnitude = SIGMA * (0.01 + 0.29 * torch.rand(points, generator=g))
    return magnitude * torch.where(torch.rand(points, generator=g) < 0.5, -1.0, 1.0)


# ------------------------------------------------------------------------------------------------- certify
@pytest.mark.parametrize(("alpha", "n0", "n", "points"), [(0.5, 10, 1000, 400), (0.1, 10, 400, 1000)])
def test_certify_at_tied_points_certifies_at_most_alpha(alpha, n0, n, points):
    # p_A = 1/2 exactly: the count k of the selected class is Binomial(n, 1/2) *whatever n0 selected*, so
    # P(p_low > 1/2) <= alpha. A class chosen from the n estimation draws takes max(k, n - k) instead (~2 alpha
    # at alpha = 0.1, ~0.97 at alpha = 0.5).
    distances = torch.zeros(points)
    x = points_at(distances, W, B, seed=11)
    labels, radii = certify(Linear(W, B), x, SIGMA, n0=n0, n=n, alpha=alpha, generator=torch.Generator().manual_seed(1))
    rate = false_certificates(labels, radii, distances).double().mean().item()
    assert rate <= alpha + tolerance(alpha, points), rate


@pytest.mark.parametrize("two_logits", [False, True], ids=["one_logit", "two_logits"])
def test_certify_near_the_boundary_names_a_radius_above_the_true_one_at_most_alpha(two_logits):
    # 1,200 points with p_A in (1/2, 0.62): the radius bound is what is tested (a certificate is false when its
    # radius exceeds |d|, or its class is the other side's).
    alpha, points = 0.2, 1200
    distances = near_boundary(points, seed=12)
    x = points_at(distances, W, B, seed=13)
    model = Linear(W, B, two_logits)
    labels, radii = certify(model, x, SIGMA, n0=10, n=500, alpha=alpha, generator=torch.Generator().manual_seed(2))
    rate = false_certificates(labels, radii, distances).double().mean().item()
    assert rate <= alpha + tolerance(alpha, points), rate
    # ... and it is not vacuous: most points certify, and the radii track the distance.
    certified = labels != -1
    assert certified.double().mean().item() > 0.3
    assert (radii[certified] / distances.abs()[certified].double()).median().item() > 0.5


def test_certify_far_from_the_boundary_has_a_tight_radius_and_the_right_class():
    # p_A = Phi(1.6) = 0.945 and Phi(2.4) = 0.992: a false certificate would need p_low above p_A.
    alpha, points = 0.05, 600
    distances = torch.tensor([0.8, -0.8, 1.2, -1.2]).repeat(points // 4)
    x = points_at(distances, W, B, seed=14)
    labels, radii = certify(
        Linear(W, B), x, SIGMA, n0=10, n=1000, alpha=alpha, generator=torch.Generator().manual_seed(3)
    )
    assert false_certificates(labels, radii, distances).double().mean().item() <= alpha + tolerance(alpha, points)
    assert bool((labels == (distances > 0).long()).all())
    assert (radii / distances.abs().double()).mean().item() > 0.85


# ------------------------------------------------------------------------------------------------- predict
@pytest.mark.parametrize("two_logits", [False, True], ids=["one_logit", "two_logits"])
def test_smoothed_predict_at_tied_points_answers_at_most_alpha(two_logits):
    # Under p = 1/2 the two-sided binomial test rejects with probability <= alpha: any answer at a tie is wrong.
    # A one-sided p-value (not doubled) would answer ~2 alpha of the time.
    alpha, points = 0.1, 1000
    distances = torch.zeros(points)
    x = points_at(distances, W, B, seed=15)
    model = Linear(W, B, two_logits)
    answers = smoothed_predict(model, x, SIGMA, n=300, alpha=alpha, generator=torch.Generator().manual_seed(4))
    rate = (answers != -1).double().mean().item()
    assert rate <= alpha + tolerance(alpha, points), rate


def test_smoothed_predict_near_the_boundary_is_wrong_at_most_alpha():
    alpha, points = 0.2, 1200
    distances = near_boundary(points, seed=16) / 6  # p_A within 0.02 of 1/2: many abstentions, some answers
    x = points_at(distances, W, B, seed=17)
    answers = smoothed_predict(Linear(W, B), x, SIGMA, n=300, alpha=alpha, generator=torch.Generator().manual_seed(5))
    wrong = (answers != -1) & (answers != (distances > 0).long())
    assert wrong.double().mean().item() <= alpha + tolerance(alpha, points)
    assert (answers != -1).double().mean().item() > 0.1  # not vacuous


class Bands(nn.Module):
    """Three classes by the first coordinate: 0 below ``a``, 1 in ``[a, b)``, 2 from ``b`` (three logits)."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x[:, 0]
        return nn.functional.one_hot((z >= self.a).long() + (z >= self.b).long(), 3).float()


def test_smoothed_predict_with_three_classes_tests_the_top_two_only():
    # At the origin with sigma = 1: P(class 0, 1, 2) = Phi(a), Phi(b) - Phi(a), 1 - Phi(b).
    ndtri = lambda p: torch.special.ndtri(torch.tensor(p)).item()  # noqa: E731
    g = torch.Generator().manual_seed(8)
    # (0.4, 0.4, 0.2): classes 0 and 1 tie, and an answer is wrong; at most alpha of 600 points answer.
    alpha, points = 0.1, 600
    answers = smoothed_predict(
        Bands(ndtri(0.4), ndtri(0.8)), torch.zeros(points, 2), 1.0, n=300, alpha=alpha, generator=g
    )
    assert (answers != -1).double().mean().item() <= alpha + tolerance(alpha, points)
    # (0.3, 0.5, 0.2): class 1 against class 0 is 500 to 300 of 1,000, significant at alpha = 0.001 (not 500 of all
    # 1,000 against 1/2): every point answers 1.
    answers = smoothed_predict(Bands(ndtri(0.3), ndtri(0.8)), torch.zeros(20, 2), 1.0, n=1000, alpha=0.001, generator=g)
    assert answers.tolist() == [1] * 20


# ------------------------------------------------------------------------------------------ the two sets of draws
class PhaseModel(nn.Module):
    """Class 0 for the first ``switch`` noisy inputs it is given, class 1 after; records every input it sees."""

    def __init__(self, switch: int) -> None:
        super().__init__()
        self.switch = switch
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = sum(len(s) for s in self.seen)
        self.seen.append(x.clone())
        index = torch.arange(start, start + len(x))
        return torch.where(index < self.switch, -1.0, 1.0)  # one logit: class 1 where > 0


def test_selection_draws_and_estimation_draws_are_disjoint():
    # CERTIFY's guarantee needs the n estimation draws to be independent of the choice of the class: the class
    # comes from the first points * n0 noisy inputs only, it is counted on the next points * n only, and no noisy
    # input is used twice. The model answers 0 during selection and 1 after: the selected class (0) is then
    # never seen among the estimation draws, and every point abstains. A class chosen from the estimation draws
    # (class 1, 20 of 20) or a count that includes the selection draws (class 0, 50 of 70) would certify; noise
    # reused between the two phases shows in what the model was given.
    points, n0, n = 7, 50, 20
    x = torch.randn(points, 2, generator=torch.Generator().manual_seed(0))
    model = PhaseModel(switch=points * n0)
    labels, radii = certify(
        model, x, SIGMA, n0=n0, n=n, alpha=0.5, batch_size=64, generator=torch.Generator().manual_seed(6)
    )
    assert labels.tolist() == [-1] * points and radii.tolist() == [0.0] * points
    seen = torch.cat(model.seen)
    assert len(seen) == points * (n0 + n)  # each draw evaluated once: n0 + n per point
    selection, estimation = seen[: points * n0], seen[points * n0 :]
    noise_sel = (selection - x.repeat_interleave(n0, 0)) / SIGMA
    noise_est = (estimation - x.repeat_interleave(n, 0)) / SIGMA
    assert torch.cdist(noise_sel, noise_est).min().item() > 1e-6  # no noise vector shared between the phases
    assert torch.cdist(noise_est, noise_est).fill_diagonal_(1.0).min().item() > 1e-6  # nor within one
    # PREDICT uses one set of n draws: the model answered 0 for the first points * n0 of them.
    model = PhaseModel(switch=points * n)
    assert smoothed_predict(model, x, SIGMA, n=n, alpha=0.5, generator=torch.Generator().manual_seed(6)).tolist() == (
        [0] * points
    )


# ------------------------------------------------------------------------------------------------- the callback
class LinearModule(pl.LightningModule):
    """The linear base classifier as a LightningModule (nothing to train; ``test_step`` only)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = Linear(W, B, two_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def test_step(self, batch, batch_idx):
        return None


def test_randomized_smoothing_callback_keeps_the_guarantee(tmp_path):
    # Through trainer.test: ties and near-boundary points in one test set, certified by the callback in the
    # dataset's order (several test batches). Its false-certificate rate is CERTIFY's.
    alpha = 0.3
    distances = torch.cat([torch.zeros(300), near_boundary(500, seed=18)])
    x = points_at(distances, W, B, seed=19)
    targets = (distances > 0).long()
    smoothing = RandomizedSmoothing(
        SIGMA, n0=10, n=400, alpha=alpha, max_samples=None, seed=7, output_dir=tmp_path, plot=False, print_table=False,
        log=False,
    )  # fmt: skip
    trainer = pl.Trainer(
        callbacks=[smoothing], logger=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu", default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.test(LinearModule(), DataLoader(TensorDataset(x, targets), batch_size=128), verbose=False)
    result = smoothing.result
    assert result is not None and torch.equal(result.targets, targets)
    ties, rest = slice(0, 300), slice(300, None)
    for part in (ties, rest):
        false = false_certificates(result.labels[part], result.radii[part], distances[part])
        assert false.double().mean().item() <= alpha + tolerance(alpha, len(false)), part
    assert (result.labels[rest] != -1).double().mean().item() > 0.3  # not vacuous
    assert (result.sigma, result.n0, result.n, result.alpha) == (SIGMA, 10, 400, alpha)
