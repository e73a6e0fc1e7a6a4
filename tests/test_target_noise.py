"""TargetNoise: jitter statistics on regression targets, stage gating, data integrity, errors, seeds.

Statistical tolerances are 5 standard deviations of the estimator under the analytic law, with fixed seeds:
the mean of n jitters has sd std / sqrt(n); the sample standard deviation has sd ~ std / sqrt(2 n) for Gaussian
noise (smaller for uniform noise, whose kurtosis is lower), so the Gaussian value bounds both.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_noise import TargetNoise, schedules
from tests.helpers import RecordingMLP, regression_data, trainer
from tests.loss_helpers import Classifier, LossMLP, classification_data, recording

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")


def fit(callback, model=None, data=None, *, epochs=1, batch_size=16, val=False):
    model = model if model is not None else LossMLP()
    data = data if data is not None else regression_data()
    t = trainer(max_epochs=epochs, callbacks=[callback])
    t.fit(model, DataLoader(data, batch_size=batch_size), DataLoader(data, batch_size=batch_size) if val else None)
    return model, t


def jitter(model) -> torch.Tensor:
    clean = torch.cat([y for s, y in model.clean if s == "train"])
    seen = torch.cat([t for _, t, _ in model.loss.calls("train")])
    return (seen - clean).flatten()


@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
def test_jitter_has_zero_mean_and_the_given_std(kind):
    std = 0.5
    model, _ = fit(TargetNoise(std=std, kind=kind, seed=0), data=regression_data(n=2048), epochs=2, batch_size=256)
    noise = jitter(model)
    n = noise.numel()
    assert n == 4096
    assert abs(noise.mean().item()) < 5 * std / math.sqrt(n)
    assert abs(noise.std().item() - std) < 5 * std / math.sqrt(2 * n)
    if kind == "uniform":
        assert noise.abs().max() <= math.sqrt(3) * std + 1e-6


def test_no_target_noise_at_validation_test_and_predict():
    data = regression_data(n=32)
    model, t = fit(TargetNoise(std=1.0, seed=0), data=data, val=True)
    loader = DataLoader(data, batch_size=16)
    t.test(model, loader, verbose=False)
    t.predict(model, loader)
    for stage in ("sanity_check", "validate", "test", "predict"):
        clean = [y for s, y in model.clean if s == stage]
        seen = [t for _, t, _ in model.loss.calls(stage)]
        assert seen and len(seen) == len(clean)
        assert all(torch.equal(a, b) for a, b in zip(seen, clean, strict=True)), stage
    assert (jitter(model) != 0).all()  # noise was on in training


def test_multi_epoch_training_leaves_dataset_unchanged():
    data = regression_data(n=32)
    targets = data.tensors[1].clone()
    model, _ = fit(TargetNoise(std=1.0, seed=0), data=data, epochs=3)
    assert torch.equal(data.tensors[1], targets)
    assert len(model.loss.calls("train")) == 6


def test_schedule_and_zero_amount_pass_the_target_through():
    schedule = schedules.Linear(0.0, 1.0, steps=3)
    model, _ = fit(TargetNoise(std=schedule, seed=0), data=regression_data(n=64))
    calls = model.loss.calls("train")
    clean = [y for s, y in model.clean if s == "train"]
    assert torch.equal(calls[0][1], clean[0])
    assert all(not torch.equal(calls[step][1], clean[step]) for step in (1, 2, 3))


def test_same_seed_same_targets():
    def targets(seed):
        return jitter(fit(TargetNoise(std=0.3, seed=seed))[0])

    assert torch.equal(targets(5), targets(5))
    assert not torch.equal(targets(5), targets(6))


def test_extra_loss_arguments_are_kept():
    class Gaussian(nn.GaussianNLLLoss):
        def forward(self, input, target, var):
            self.seen = (target.clone(), var)
            return super().forward(input, target, var)

    class Model(LossMLP):
        def _loss(self, batch):
            x, y = batch
            self.clean.append((self._stage(), y.clone()))
            return self.loss(self(x), y, torch.ones_like(y))

    model = Model(loss=Gaussian())
    fit(TargetNoise(std=0.2, seed=0), model, regression_data(n=16))
    target, var = model.loss.seen
    assert torch.equal(var, torch.ones_like(var)) and not torch.equal(target, model.clean[-1][1])


# ------------------------------------------------------------------------------------------------ errors
def test_integer_targets_are_a_type_error_pointing_to_label_noise():
    x, y = regression_data(n=16).tensors
    model = LossMLP(loss=recording(nn.L1Loss))
    with pytest.raises(TypeError, match=r"floating-point targets.*'loss' \(RecordingL1Loss\).*int64.*LabelNoise"):
        fit(TargetNoise(std=0.1), model, TensorDataset(x, y.round().long()))


def test_classification_loss_is_a_type_error_at_setup():
    with pytest.raises(TypeError, match=r"'loss' is RecordingCrossEntropyLoss.*Use LabelNoise"):
        fit(TargetNoise(std=0.1), Classifier(), classification_data())


def test_no_loss_module_and_several_loss_modules():
    with pytest.raises(ValueError, match=r"TargetNoise found no loss module in RecordingMLP.*F.cross_entropy"):
        fit(TargetNoise(std=0.1), RecordingMLP())
    model = LossMLP()
    model.other = nn.L1Loss()
    with pytest.raises(ValueError, match=r"several loss modules.*'loss' \(RecordingMSELoss\), 'other' \(L1Loss\)"):
        fit(TargetNoise(std=0.1), model)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"std": -0.1}, r"`std` for 'gaussian' noise must be in \[0.0, inf\], got -0.1"),
        ({"std": 0.1, "kind": "laplace"}, r"Unknown noise `kind` 'laplace'"),
        ({"p": 0.1}, r"takes its amount as `std=`"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TargetNoise(**kwargs)
