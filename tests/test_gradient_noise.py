"""GradientNoise: errors, noise level against the schedule, once per optimizer step, order with AMP and clipping."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.plugins import MixedPrecision
from torch import nn

from lightning_noise import GradientNoise, schedules
from tests.helpers import loader, regression_data, trainer


class KnownGradient(pl.LightningModule):
    """Two parameter blocks whose loss is ``sum(grad * w)``: the gradient is exactly ``grad``, whatever the batch.

    With SGD at lr 1, the change of the parameters in one step is ``-(grad + noise)``.
    """

    def __init__(self, n: int = 20_000, grad: float = 0.5, lr: float = 1.0, manual: bool = False, raw: bool = False):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(n // 2))
        self.b = nn.Parameter(torch.zeros(n - n // 2))
        self.frozen = nn.Parameter(torch.zeros(10), requires_grad=False)
        self.unused = nn.Parameter(torch.zeros(10))
        self.grad, self.lr = grad, lr
        self.automatic_optimization = not manual
        self.raw = raw

    def _loss(self, batch: Any) -> torch.Tensor:
        return self.grad * (self.a.sum() + self.b.sum()) + 0.0 * batch[0].sum() + 0.0 * self.frozen.sum()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.automatic_optimization:
            return self._loss(batch)
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(self._loss(batch))
        (opt.optimizer if self.raw else opt).step()
        return None

    def configure_optimizers(self):
        return torch.optim.SGD([{"params": [self.a, self.frozen, self.unused]}, {"params": [self.b]}], lr=self.lr)


class Snapshots(pl.Callback):
    """Flat copy of the trainable parameters at train start and after every training batch."""

    def __init__(self) -> None:
        self.flat: list[torch.Tensor] = []

    def _take(self, module: KnownGradient) -> None:
        self.flat.append(torch.cat([module.a.detach(), module.b.detach()]).clone())

    def on_train_start(self, trainer, module) -> None:
        self._take(module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._take(module)

    def changes(self) -> list[torch.Tensor]:
        return [after - before for before, after in pairwise(self.flat)]


def run(noise: GradientNoise, *, batches: int = 5, model: KnownGradient | None = None, **trainer_kwargs):
    model = model or KnownGradient()
    snapshots = Snapshots()
    trainer(callbacks=[noise, snapshots], max_epochs=1, **trainer_kwargs).fit(
        model, loader(regression_data(n=batches * 2), batch_size=2)
    )
    return model, snapshots


# ------------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"std": -0.1}, r"`std` must be >= 0, got -0.1"),
        ({"eta": -1.0}, r"`eta` must be a finite number >= 0, got -1.0"),
        ({"eta": 0.3, "gamma": -0.5}, r"`gamma` must be a finite number >= 0, got -0.5"),
        ({"eta": float("nan")}, r"`eta` must be a finite number >= 0, got nan"),
        ({}, r"give exactly one of `std`.*and `eta`"),
        ({"std": 0.1, "eta": 0.3}, r"give exactly one of `std`"),
        ({"std": 0.1, "gamma": 0.5}, r"`gamma` goes with `eta`"),
        ({"std": 0.1, "sampler": "fast"}, r"`sampler` must be 'exact' or 'table', got 'fast'"),
        ({"std": 0.1, "table_size": 0}, r"`table_size` must be an integer >= 2, got 0"),
        ({"std": 0.1, "param_groups": [-1]}, r"`param_groups` must be None or non-negative group indices"),
        ({"std": schedules.Linear(0.1, 0.0, steps=5), "unit": "batch"}, r"`unit` must be 'step' or 'epoch'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradientNoise(**kwargs)


def test_param_group_the_optimizer_lacks():
    with pytest.raises(ValueError, match=r"asks for group\(s\) \[5\], but optimizer 0 \(SGD\) has 2 parameter group"):
        run(GradientNoise(std=0.1, param_groups=[0, 5], seed=0))


def test_raw_optimizer_step_in_manual_optimization_is_an_error():
    with pytest.raises(RuntimeError, match=r"stepped without Lightning's `on_before_optimizer_step`.*self.optimizers"):
        run(GradientNoise(std=0.1, seed=0), model=KnownGradient(manual=True, raw=True))


# ------------------------------------------------------------------------------------------------------- levels
SCHEDULES = {
    "annealed": dict(eta=0.3, gamma=0.55),
    "constant": dict(std=0.1),
    "cosine": dict(std=schedules.Cosine(0.2, 0.0, steps=4)),
}


def expected_std(kwargs: dict, step: int) -> float:
    if "eta" in kwargs:
        return math.sqrt(kwargs["eta"] / (1 + step) ** kwargs["gamma"])
    std = kwargs["std"]
    return std(step) if callable(std) else std


@pytest.mark.parametrize("sampler", ["exact", "table"])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_noise_std_per_step_follows_the_schedule(name, sampler):
    """SGD at lr 1 with a known gradient g: each step changes the parameters by -(g + noise_t), noise_t ~ N(0, std_t^2).

    20,000 parameters: the sample std has a relative standard error of 1/sqrt(2n) = 0.5%; tolerance 3% (6 sigma).
    """
    kwargs = SCHEDULES[name]
    _, snapshots = run(GradientNoise(**kwargs, seed=1, sampler=sampler), batches=5)
    changes = snapshots.changes()
    assert len(changes) == 5
    for step, change in enumerate(changes):
        std = expected_std(kwargs, step)
        noise = -change - 0.5
        if std == 0:
            before, after = snapshots.flat[step], snapshots.flat[step + 1]
            assert torch.equal(after, before - 0.5), "zero std must add exactly nothing"
            continue
        assert noise.std().item() == pytest.approx(std, rel=0.03), f"step {step}"
        assert abs(noise.mean().item()) < 5 * std / math.sqrt(noise.numel()), f"step {step}"


def test_eta_gamma_equal_the_annealed_schedule():
    _, by_eta = run(GradientNoise(eta=0.3, gamma=0.55, seed=4), batches=3)
    _, by_schedule = run(GradientNoise(std=schedules.Annealed(0.3, 0.55), seed=4), batches=3)
    assert all(torch.equal(a, b) for a, b in zip(by_eta.flat, by_schedule.flat, strict=True))


def test_same_seed_same_noise_other_seed_other_noise():
    _, first = run(GradientNoise(std=0.1, seed=7), batches=2)
    _, again = run(GradientNoise(std=0.1, seed=7), batches=2)
    _, other = run(GradientNoise(std=0.1, seed=8), batches=2)
    assert torch.equal(first.flat[-1], again.flat[-1])
    assert not torch.equal(first.flat[-1], other.flat[-1])


# ------------------------------------------------------------------------------------------------------- when
def test_noise_is_added_once_per_optimizer_step_under_accumulation():
    """8 micro-batches, accumulate 4: exactly two optimizer steps, each adding one draw of std 0.1."""
    noise = GradientNoise(std=0.1, seed=2)
    _, snapshots = run(noise, batches=8, accumulate_grad_batches=4)
    changes = snapshots.changes()
    moved = [i for i, change in enumerate(changes) if change.abs().max() > 0]
    assert moved == [3, 7]
    assert noise._noised_steps == 2
    for i in moved:  # accumulated gradient: 4 micro-batches of 0.5 / 4 each (Lightning divides the loss) = 0.5
        assert (-changes[i] - 0.5).std().item() == pytest.approx(0.1, rel=0.03)


def test_noise_counts_toward_the_clipped_norm():
    """Clipping runs after the hook: with a zero gradient, the update is the noise clipped to the norm 1e-3."""
    _, snapshots = run(GradientNoise(std=1.0, seed=3), batches=1, model=KnownGradient(grad=0.0), gradient_clip_val=1e-3)
    assert snapshots.changes()[0].norm().item() == pytest.approx(1e-3, rel=1e-3)


def test_gradients_are_unscaled_under_fp16_amp():
    """Under a GradScaler with scale 2**14 the noise must still have std 0.1 relative to the true gradient."""
    precision = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**14))
    _, snapshots = run(GradientNoise(std=0.1, seed=5), batches=2, plugins=[precision])
    for change in snapshots.changes():
        assert (-change - 0.5).std().item() == pytest.approx(0.1, rel=0.03)


def test_frozen_unused_and_unselected_parameters_are_untouched():
    model, snapshots = run(GradientNoise(std=0.1, param_groups=[1], seed=6), batches=2)
    assert torch.equal(model.frozen, torch.zeros(10))
    assert torch.equal(model.unused, torch.zeros(10))
    change = snapshots.changes()[0]
    half = model.a.numel()
    assert torch.equal(change[:half], torch.full((half,), -0.5)), "group 0 was not selected"
    assert (-change[half:] - 0.5).std().item() == pytest.approx(0.1, rel=0.03)


def test_manual_optimization_through_the_lightning_wrapper():
    _, snapshots = run(GradientNoise(std=0.1, seed=9), model=KnownGradient(manual=True), batches=2)
    for change in snapshots.changes():
        assert (-change - 0.5).std().item() == pytest.approx(0.1, rel=0.03)


@pytest.mark.parametrize("sampler", ["exact", "table"])
def test_noise_that_makes_the_gradients_non_finite_stops_training_naming_the_callback(sampler):
    """Issue 20 item 6: GradientNoise(std=1e30) left non-finite weights after 2 steps without a word. The noisy
    gradients are checked at noisy steps 1, 2, 4, ..., 64, then every 100th; the check at step 1 (the second
    optimizer step, whose gradients come from the overflowed weights) stops the fit naming the callback and std."""
    from tests.helpers import RecordingMLP

    with pytest.raises(FloatingPointError, match=r"GradientNoise\(std=1e\+30\): the noisy gradients hold NaN or inf"):
        trainer(callbacks=[GradientNoise(std=1e30, sampler=sampler, seed=0)], max_epochs=3).fit(
            RecordingMLP(), loader(regression_data())
        )


def test_check_finite_false_leaves_a_diverged_run_to_the_trainer():
    """``check_finite=False`` (issue 18: the Neelakantan study counts divergence as an outcome of both arms): the same
    overflow does not raise, the fit ends as it would without noise, with the non-finite weights the Trainer's own
    checks (``EarlyStopping(check_finite=True)``) are there to catch."""
    from tests.helpers import RecordingMLP

    model = RecordingMLP()
    callback = GradientNoise(std=1e30, seed=0, check_finite=False)
    trainer(callbacks=[callback], max_epochs=2).fit(model, loader(regression_data()))
    assert not all(bool(p.isfinite().all()) for p in model.parameters())
    assert "check_finite=False" in repr(callback)
    with pytest.raises(TypeError, match=r"GradientNoise: `check_finite` must be"):
        GradientNoise(std=0.1, check_finite="no")
