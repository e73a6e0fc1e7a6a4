"""WeightNoise: errors, noise level, clean weights after every way a step can end, validation, checkpoints, resume."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from lightning_noise import GradientNoise, WeightNoise, schedules
from tests.helpers import loader, regression_data, trainer

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*defined a `validation_step` but have no `val_dataloader`", "ignore:.*`training_step` returned `None`"
)


class Net(pl.LightningModule):
    """A 100-100-1 MLP that records the weights ``training_step`` computes with and its validation outputs.

    Args:
        lr: SGD learning rate (0 keeps the clean weights fixed).
        none_every: ``training_step`` returns ``None`` on batches whose index is odd (skips backward).
        fail_at: ``training_step`` raises at this batch index, after the forward.
        save_at: ``training_step`` saves checkpoints (full and weights-only) at this batch index.
        manual: manual optimization through Lightning's optimizer wrapper.
    """

    def __init__(self, lr=0.0, none_every=False, fail_at=None, save_at=None, save_dir=None, manual=False):
        super().__init__()
        self.layer = nn.Linear(100, 100)
        self.head = nn.Linear(100, 1)
        self.lr, self.none_every, self.fail_at = lr, none_every, fail_at
        self.save_at, self.save_dir = save_at, save_dir
        self.automatic_optimization = not manual
        self.seen: list[dict[str, torch.Tensor]] = []
        self.val_outputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.layer(x)))

    def training_step(self, batch: Any, batch_idx: int):
        self.seen.append({k: v.detach().clone() for k, v in self.named_parameters()})
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        if batch_idx == self.fail_at:
            raise RuntimeError("boom in training_step")
        if batch_idx == self.save_at:
            self.trainer.save_checkpoint(f"{self.save_dir}/full.ckpt")
            self.trainer.save_checkpoint(f"{self.save_dir}/weights.ckpt", weights_only=True)
        if self.none_every and batch_idx % 2 == 1:
            return None
        if not self.automatic_optimization:
            opt = self.optimizers()
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
            return None
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.val_outputs.append(self(batch[0]).detach().clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def data(batches: int = 4):
    return loader(regression_data(n=8 * batches, features=100), batch_size=8)


def initial_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert state.keys() == expected.keys()
    for key in expected:
        assert torch.equal(state[key], expected[key]), f"{key} differs"


# ------------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"std": -0.1}, r"`std` must be >= 0, got -0.1"),
        ({"std": schedules.Constant(-1.0)}, r"`std` must be >= 0, got -1.0"),
        (
            {"std": 0.1, "kind": "dropout"},
            r"`kind` must be one of \['gaussian', 'uniform', 'multiplicative'\], got 'drop",
        ),
        ({"std": 0.1, "kind": "uniform", "sampler": "table"}, r"use it with kind 'gaussian' or 'multiplicative'"),
        ({"std": 0.1, "sampler": "randn"}, r"`sampler` must be 'exact' or 'table', got 'randn'"),
        ({"std": 0.1, "table_size": 1}, r"`table_size` must be an integer >= 2, got 1"),
        ({"std": 0.1, "modules": []}, r"`modules` must be a non-empty list"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WeightNoise(**kwargs)


def test_pattern_matching_nothing_lists_the_submodules():
    with pytest.raises(ValueError, match=r"\['lstm'\] match no submodule of Net.*layer \(Linear\), head \(Linear\)"):
        trainer(callbacks=[WeightNoise(std=0.1, modules=["lstm"], seed=0)]).fit(Net(), data(1))


def test_selection_without_parameters():
    class WithActivation(Net):
        def __init__(self):
            super().__init__()
            self.act = nn.Tanh()

    with pytest.raises(ValueError, match=r"selects no floating-point parameter of WithActivation"):
        trainer(callbacks=[WeightNoise(std=0.1, modules=["Tanh"], seed=0)]).fit(WithActivation(), data(1))


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({}, ["layer.weight", "head.weight"]),
        ({"modules": ["head"]}, ["head.weight"]),
        ({"modules": ["Linear"], "biases": True}, ["layer.weight", "layer.bias", "head.weight", "head.bias"]),
    ],
)
def test_selection(kwargs, names):
    noise = WeightNoise(std=0.1, seed=0, **kwargs)
    model = Net()
    init = initial_state(model)
    trainer(callbacks=[noise], max_steps=1).fit(model, data(1))
    assert noise.parameter_names == names
    seen = model.seen[0]
    for key in init:
        assert torch.equal(seen[key], init[key]) != (key in names), key


# ------------------------------------------------------------------------------------------------------- level
@pytest.mark.parametrize(
    ("kind", "sampler"),
    [
        ("gaussian", "exact"),
        ("gaussian", "table"),
        ("multiplicative", "exact"),
        ("multiplicative", "table"),
        ("uniform", "exact"),
    ],
)
def test_noise_level(kind, sampler):
    """The weights seen by training_step differ from the clean ones by noise of the given std (relative for
    multiplicative); 10,000 weights, relative standard error of the std <= 0.7%, tolerance 4%. Fresh noise
    at every batch."""
    model = Net()
    init = initial_state(model)
    trainer(callbacks=[WeightNoise(std=0.05, kind=kind, sampler=sampler, seed=1)], max_steps=2).fit(model, data(2))
    deltas = []
    for seen in model.seen:
        delta = seen["layer.weight"] - init["layer.weight"]
        if kind == "multiplicative":
            delta = delta / init["layer.weight"]
        assert delta.std().item() == pytest.approx(0.05, rel=0.04)
        assert abs(delta.mean().item()) < 5 * 0.05 / math.sqrt(delta.numel())
        deltas.append(delta)
    assert torch.corrcoef(torch.stack([d.flatten() for d in deltas]))[0, 1].abs() < 0.05


def test_schedule_reaching_zero_adds_nothing():
    model = Net()
    init = initial_state(model)
    trainer(callbacks=[WeightNoise(std=schedules.Linear(0.1, 0.0, steps=2), seed=0)], max_steps=3).fit(model, data(3))
    assert not torch.equal(model.seen[0]["layer.weight"], init["layer.weight"])
    assert torch.equal(model.seen[2]["layer.weight"], init["layer.weight"])


# ------------------------------------------------------------------------------------------------------- clean weights
@pytest.mark.parametrize(
    ("model_kwargs", "noise_kwargs", "trainer_kwargs"),
    [
        ({}, {}, {}),
        ({}, {"kind": "multiplicative", "sampler": "table", "biases": True}, {"accumulate_grad_batches": 2}),
        ({"none_every": True}, {}, {}),
        ({"none_every": True}, {}, {"accumulate_grad_batches": 2}),
        ({"manual": True}, {}, {}),
    ],
    ids=["plain", "accumulate-multiplicative-table", "returns-none", "returns-none-accumulate", "manual"],
)
def test_lr_zero_leaves_weights_bit_identical(model_kwargs, noise_kwargs, trainer_kwargs):
    model = Net(lr=0.0, **model_kwargs)
    init = initial_state(model)
    noise = WeightNoise(std=0.1, seed=2, **noise_kwargs)
    trainer(callbacks=[noise], max_epochs=2, **trainer_kwargs).fit(model, data(4))
    assert len(model.seen) == 8
    assert all(not torch.equal(seen["layer.weight"], init["layer.weight"]) for seen in model.seen), "no noise seen"
    assert not noise.perturbed
    assert_same(model.state_dict(), init)


def test_validation_sees_the_clean_model():
    model = Net(lr=0.0)
    val = data(2)
    with torch.no_grad():
        clean = [model(x) for x, _ in val]
    trainer(
        callbacks=[WeightNoise(std=0.1, biases=True, seed=3)],
        max_epochs=1,
        val_check_interval=2,
        num_sanity_val_steps=0,
    ).fit(model, data(4), val)
    assert len(model.val_outputs) == 4  # twice per epoch, two batches each
    for i, output in enumerate(model.val_outputs):
        assert torch.equal(output, clean[i % 2])


def test_checkpoints_hold_clean_weights(tmp_path):
    """Saved from inside training_step, while the weights are perturbed, and by ModelCheckpoint every step."""
    model = Net(lr=0.0, save_at=1, save_dir=tmp_path)
    init = initial_state(model)
    every_step = ModelCheckpoint(dirpath=tmp_path / "every", every_n_train_steps=1, save_top_k=-1)
    trainer(
        callbacks=[WeightNoise(std=0.1, biases=True, seed=4), every_step], max_steps=3, enable_checkpointing=True
    ).fit(model, data(3))
    assert not torch.equal(model.seen[1]["layer.weight"], init["layer.weight"]), "weights were not perturbed at save"
    files = [tmp_path / "full.ckpt", tmp_path / "weights.ckpt", *sorted((tmp_path / "every").glob("*.ckpt"))]
    assert len(files) == 5
    for file in files:
        assert_same(torch.load(file, weights_only=False)["state_dict"], init)


def test_exception_in_training_step_leaves_clean_weights():
    model = Net(lr=0.0, fail_at=2)
    init = initial_state(model)
    noise = WeightNoise(std=0.1, seed=5)
    with pytest.raises(RuntimeError, match="boom in training_step"):
        trainer(callbacks=[noise], max_epochs=1).fit(model, data(4))
    assert not torch.equal(model.seen[2]["layer.weight"], init["layer.weight"])
    assert not noise.perturbed
    assert_same(model.state_dict(), init)


# ------------------------------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("sampler", ["exact", "table"])
def test_resumed_run_ends_with_the_uninterrupted_weights(tmp_path, sampler):
    def callbacks():
        return [WeightNoise(std=0.05, sampler=sampler, seed=6), GradientNoise(eta=0.01, sampler=sampler, seed=7)]

    torch.manual_seed(0)
    uninterrupted = Net(lr=0.1)
    torch.manual_seed(0)
    interrupted = Net(lr=0.1)
    assert_same(interrupted.state_dict(), uninterrupted.state_dict())

    trainer(callbacks=callbacks(), max_epochs=2).fit(uninterrupted, data(3))
    first = trainer(callbacks=callbacks(), max_epochs=1)
    first.fit(interrupted, data(3))
    first.save_checkpoint(tmp_path / "epoch1.ckpt")
    resumed = Net(lr=0.1)
    trainer(callbacks=callbacks(), max_epochs=2).fit(resumed, data(3), ckpt_path=tmp_path / "epoch1.ckpt")

    assert not torch.equal(resumed.layer.weight, interrupted.layer.weight), "the second epoch did not train"
    assert_same(resumed.state_dict(), uninterrupted.state_dict())


def test_optimizer_updates_the_clean_weights_with_the_gradient_at_the_noisy_ones():
    """One SGD step: w1 == w0 - lr * grad(w0 + noise), bit for bit; the gradient differs from grad(w0)."""

    class Recording(Net):
        def on_before_optimizer_step(self, optimizer) -> None:
            self.weight_at_step = self.layer.weight.detach().clone()
            self.grad_at_step = self.layer.weight.grad.detach().clone()

    model = Recording(lr=0.1)
    init = initial_state(model)
    x, y = next(iter(data(1)))
    nn.functional.mse_loss(model(x), y).backward()
    clean_grad = model.layer.weight.grad.clone()
    model.zero_grad()
    trainer(callbacks=[WeightNoise(std=0.1, seed=8)], max_steps=1).fit(model, data(1))
    assert torch.equal(model.weight_at_step, init["layer.weight"]), "weights not restored before the step"
    assert not torch.allclose(model.grad_at_step, clean_grad), "gradient was not taken at the noisy weights"
    assert torch.equal(model.layer.weight.detach(), init["layer.weight"].add(model.grad_at_step, alpha=-0.1))


def test_manual_optimization_warns_that_only_the_first_backward_is_noisy():
    with pytest.warns(UserWarning, match=r"restores them after the first `manual_backward`"):
        trainer(callbacks=[WeightNoise(std=0.1, seed=2)], max_epochs=1).fit(Net(lr=0.0, manual=True), data(2))


@pytest.mark.parametrize("sampler", ["exact", "table"])
def test_noise_that_makes_the_weights_non_finite_stops_training_naming_the_callback(sampler):
    """Issue 20 item 6: WeightNoise(std=1e30) left non-finite weights after 2 steps without a word. The noisy weights
    are checked at noisy steps 1, 2, 4, ..., 64, then every 100th; here the check at batch 2 stops the fit, the
    message names the callback and its std, and the clean weights are restored (NaN from the diverged update)."""
    from tests.helpers import RecordingMLP

    callback = WeightNoise(std=1e30, sampler=sampler, seed=0)
    with pytest.raises(FloatingPointError, match=r"WeightNoise\(std=1e\+30\): the noisy weights hold NaN or infinite "):
        trainer(callbacks=[callback], max_epochs=3).fit(RecordingMLP(), loader(regression_data()))
    assert not callback.perturbed
    assert callback._noisy_steps == 2


def test_the_finite_check_reads_the_weights_only_at_sparse_steps(monkeypatch):
    """The check costs one read and one sync at noisy steps 1, 2, 4, ..., 64 and every 100th, nothing in between."""
    from tests.helpers import RecordingMLP

    reads = []
    aminmax = torch.aminmax
    monkeypatch.setattr(torch, "aminmax", lambda *a, **k: reads.append(1) or aminmax(*a, **k))
    callback = WeightNoise(std=0.01, seed=0)  # RecordingMLP: two weight matrices selected
    trainer(callbacks=[callback], max_steps=200).fit(RecordingMLP(), loader(regression_data(n=16 * 200)))
    assert callback._noisy_steps == 200 and len(reads) == 2 * (7 + 2)  # at 1, 2, 4, ..., 64 and 100, 200


def test_a_new_fit_checks_its_first_noisy_steps_again():
    """A callback reused in a second fit starts its finiteness schedule afresh (steps 1, 2, 4, ... of that fit)."""
    from tests.helpers import RecordingMLP

    callback = WeightNoise(std=0.01, seed=0)
    for _ in range(2):
        trainer(callbacks=[callback], max_steps=3).fit(RecordingMLP(), loader(regression_data(n=16 * 3)))
        assert callback._noisy_steps == 3


def test_check_finite_false_leaves_a_diverged_run_to_the_trainer():
    """``check_finite=False``: the overflow does not raise; the fit ends with the clean weights restored after each
    step (here non-finite, from the diverged updates), as it would end without noise."""
    from tests.helpers import RecordingMLP

    model = RecordingMLP()
    callback = WeightNoise(std=1e30, seed=0, check_finite=False)
    trainer(callbacks=[callback], max_epochs=2).fit(model, loader(regression_data()))
    assert not callback.perturbed and callback._noisy_steps == 0
    assert not all(bool(p.isfinite().all()) for p in model.parameters())
    with pytest.raises(TypeError, match=r"WeightNoise: `check_finite` must be"):
        WeightNoise(std=0.1, check_finite=1)
