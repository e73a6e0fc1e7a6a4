"""Every callback and schedule prints as something a person can read and, mostly, paste back into Python."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import lightning_noise
from lightning_noise import (
    ActivationNoise,
    GradientNoise,
    InputNoise,
    LabelNoise,
    RandomizedSmoothing,
    RobustnessEvaluation,
    TargetNoise,
    WeightNoise,
    schedules,
)
from lightning_noise.schedules import Annealed, Constant, Cosine, Exponential, Linear, Scaled, Step

CALLBACKS = [
    (lambda: InputNoise(std=0.1), "InputNoise(std=0.1)"),
    (
        lambda: InputNoise(0.2, kind="uniform", stages=["train", "test"]),
        "InputNoise(std=0.2, kind='uniform', stages=['train', 'test'])",
    ),
    (lambda: InputNoise(kind="salt_and_pepper", p=0.05, seed=3), "InputNoise(kind='salt_and_pepper', p=0.05, seed=3)"),
    (
        lambda: ActivationNoise(std=Linear(0.0, 0.2, steps=100), modules=["encoder.*", "Linear"]),
        "ActivationNoise(std=Linear(start=0.0, end=0.2, steps=100), modules=['encoder.*', 'Linear'])",
    ),
    (lambda: WeightNoise(std=0.075, modules=["lstm"]), "WeightNoise(std=0.075, modules=['lstm'])"),
    (
        lambda: WeightNoise(0.05, kind="multiplicative", sampler="table"),
        "WeightNoise(std=0.05, kind='multiplicative', sampler='table')",
    ),
    (lambda: GradientNoise(eta=0.3, gamma=0.55), "GradientNoise(eta=0.3, gamma=0.55)"),
    (lambda: GradientNoise(std=0.01, param_groups=[1]), "GradientNoise(std=0.01, param_groups=[1])"),
    (lambda: LabelNoise(smoothing=0.1, style="uniform"), "LabelNoise(smoothing=0.1, style='uniform')"),
    (lambda: LabelNoise(flip=0.05, name="flip"), "LabelNoise(flip=0.05, name='flip')"),
    (lambda: TargetNoise(std=0.05, loss="criterion"), "TargetNoise(std=0.05, loss='criterion')"),
    (lambda: RobustnessEvaluation(), "RobustnessEvaluation()"),
    (
        lambda: RobustnessEvaluation("cifar10c", max_batches=2, plot=False),
        "RobustnessEvaluation(corruptions='cifar10c', max_batches=2, plot=False)",
    ),
    (lambda: RandomizedSmoothing(sigma=0.25, n=1000), "RandomizedSmoothing(sigma=0.25, n=1000)"),
]


@pytest.mark.parametrize(("build", "expected"), CALLBACKS, ids=[expected for _, expected in CALLBACKS])
def test_callback_repr(build, expected):
    callback = build()
    assert repr(callback) == expected
    assert str(callback) == expected


@pytest.mark.parametrize(("build", "expected"), CALLBACKS, ids=[expected for _, expected in CALLBACKS])
def test_repr_evaluates_to_an_equal_callback(build, expected):
    callback = build()
    rebuilt = eval(repr(callback), {**vars(lightning_noise), **vars(schedules)})
    assert type(rebuilt) is type(callback) and repr(rebuilt) == repr(callback)
    if hasattr(callback, "state_key"):
        assert rebuilt.state_key == callback.state_key


def test_every_public_callback_is_covered():
    covered = {expected.split("(")[0] for _, expected in CALLBACKS}
    public = {
        name
        for name in lightning_noise.__all__
        if isinstance(getattr(lightning_noise, name), type) and name.endswith(("Noise", "Evaluation", "Smoothing"))
    }
    assert public == covered


def test_arguments_equal_to_their_defaults_are_left_out():
    # A config system (LightningCLI, Hydra's instantiate) passes every argument, defaults included.
    callback = InputNoise(std=0.1, kind="gaussian", stages=("train",), seed=None, unit="step", relative=False)
    assert repr(callback) == "InputNoise(std=0.1)"
    assert repr(LabelNoise(smoothing=None, flip=0.1, transition=None)) == "LabelNoise(flip=0.1)"
    # an explicit 0.0 differs from the default None (no amount given), so it is shown
    assert repr(LabelNoise(smoothing=0.0, flip=0.1)) == "LabelNoise(smoothing=0.0, flip=0.1)"


def test_tensor_and_function_arguments_print_on_one_line():
    labels = LabelNoise(transition=torch.tensor([[0.9, 0.1], [0.3, 0.7]]))
    assert repr(labels) == "LabelNoise(transition=tensor([[0.9000, 0.1000], [0.3000, 0.7000]]))"

    def first_two(batch):
        return batch[0], batch[1]

    robustness = RobustnessEvaluation(batch_to_inputs_targets=first_two)
    expected = f"RobustnessEvaluation(batch_to_inputs_targets={first_two.__qualname__})"
    assert repr(robustness) == expected and expected.endswith("<locals>.first_two)")


def test_subclass_with_its_own_arguments():
    class MyNoise(InputNoise):
        def __init__(self, level: float = 0.1, *, extra: int = 0) -> None:
            super().__init__(std=level)
            self.extra = extra

    assert repr(MyNoise(0.3)) == "MyNoise(level=0.3)"
    assert repr(MyNoise(extra=2)) == "MyNoise(extra=2)"


def test_repr_survives_copy_and_pickle():
    callback = InputNoise(std=0.1, stages=["train", "test"])
    assert repr(copy.deepcopy(callback)) == repr(callback)
    assert repr(pickle.loads(pickle.dumps(callback))) == repr(callback)


def test_a_failed_construction_still_raises_its_own_error():
    with pytest.raises(TypeError, match="unexpected keyword"):
        InputNoise(stdd=0.1)
    with pytest.raises(ValueError, match="std"):
        InputNoise(std=-1.0)


SCHEDULES = [
    (Constant(0.1), "Constant(value=0.1)"),
    (Linear(0.0, 0.2, steps=100), "Linear(start=0.0, end=0.2, steps=100)"),
    (Cosine(0.2, 0.0, steps=50), "Cosine(start=0.2, end=0.0, steps=50)"),
    (Step(1.0, gamma=0.5, step_size=3), "Step(value=1.0, gamma=0.5, step_size=3, milestones=None)"),
    (Step(1.0, milestones=[2, 4]), "Step(value=1.0, gamma=0.1, step_size=None, milestones=[2, 4])"),
    (Exponential(1.0, 0.9), "Exponential(start=1.0, decay=0.9, end=0.0)"),
    (Annealed(0.3), "Annealed(eta=0.3, gamma=0.55)"),
]


@pytest.mark.parametrize(("schedule", "expected"), SCHEDULES, ids=[expected for _, expected in SCHEDULES])
def test_schedule_repr_evaluates_back(schedule, expected):
    assert repr(schedule) == expected
    assert eval(expected, vars(schedules)) == schedule


def test_scaled_schedule_repr_reads_as_a_product():
    # "factor x shape": kept as it is because the repr of a schedule is part of a callback's checkpoint state
    # key, and the recipes give every amount as a Scaled schedule (changing it would orphan their checkpoints).
    scaled = Scaled(Linear(1.0, 0.0, steps=10), factor=0.2)
    assert repr(scaled) == "0.2 x Linear(start=1.0, end=0.0, steps=10)"
    assert "0.2 x Linear(start=1.0, end=0.0, steps=10)" in InputNoise(std=scaled).state_key


def test_every_public_schedule_is_covered():
    names = {expected.split("(")[0] for _, expected in SCHEDULES} | {"Scaled"}
    assert names == {n for n in schedules.__all__ if n not in ("Schedule", "as_schedule")}
