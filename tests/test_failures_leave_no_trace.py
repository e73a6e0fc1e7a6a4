"""After a run that fails, every callback's hooks are gone and the weights are clean.

Lightning does not call `teardown` when `fit` raises, so this is the callbacks' own `on_exception` at work.
"""

import pytest
import torch
from torch import nn

from lightning_noise import ActivationNoise, InputNoise, LabelNoise, WeightNoise, schedules
from tests.helpers import RecordingMLP, loader, regression_data, trainer


class Crashes(RecordingMLP):
    def __init__(self):
        super().__init__()
        self.loss = nn.MSELoss()

    def training_step(self, batch, batch_idx):
        if batch_idx == 1:
            raise RuntimeError("boom")
        x, y = batch
        return self.loss(self(x), y)


def _hook_counts(model):
    return {
        name: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._state_dict_hooks))
        for name, m in model.named_modules()
    }


def test_hooks_and_weights_are_clean_after_a_failed_fit():
    model = Crashes()
    model.lr = 0.0  # the one step before the crash changes nothing, so the weights must equal the initial ones
    before, weights = _hook_counts(model), {k: v.clone() for k, v in model.state_dict().items()}
    callbacks = [InputNoise(std=0.5), ActivationNoise(std=0.5, modules=["encoder.1"]), WeightNoise(std=0.5)]
    with pytest.raises(RuntimeError, match="boom"):
        trainer(callbacks=callbacks).fit(model, loader(regression_data(n=64)))
    assert _hook_counts(model) == before
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())  # WeightNoise restored them
    x = regression_data(n=8).tensors[0]
    with torch.no_grad():  # no leftover noise outside the trainer, even in train mode
        assert torch.equal(model(x), model.head(model.encoder(x)))


def test_callable_schedules_are_checked_at_every_step():
    """A plain callable has no bounds to check in __init__; its values are checked when they are used."""
    noise = ActivationNoise(p=lambda step: 0.5 * step, kind="dropout", modules=["encoder.1"])
    with pytest.raises(
        ValueError, match=r"`p \(its schedule at step 2\)` for 'dropout' noise must be in \[0.0, 1.0\), got 1.0"
    ):
        trainer(max_epochs=3, callbacks=[noise]).fit(RecordingMLP(), loader(regression_data(n=32)))


def test_schedule_objects_are_checked_in_init():
    with pytest.raises(ValueError, match=r"`flip` must be in \[0, 1\), got 1.5|`flip`.*1.5"):
        LabelNoise(flip=schedules.Linear(0.0, 1.5, steps=10))


@pytest.mark.parametrize("cls,kwargs", [(InputNoise, {}), (ActivationNoise, {"modules": ["Linear"]})])
def test_kind_kwargs_must_fit_the_noise_function(cls, kwargs):
    with pytest.raises(
        ValueError,
        match=r"`kind_kwargs` \{'low': -1\} do not fit 'gaussian' noise \(got an unexpected keyword argument 'low'\); "
        r"its function takes \(x, std, generator\)",
    ):
        cls(std=0.1, kind_kwargs={"low": -1}, **kwargs)
    cls(p=0.1, kind="salt_and_pepper", kind_kwargs={"low": -1.0, "high": 1.0}, **kwargs)
