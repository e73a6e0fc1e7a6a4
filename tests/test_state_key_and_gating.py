"""State keys (two callbacks of one class, old checkpoints, random streams) and stage gating after a skipped batch."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from lightning_noise import ActivationNoise, InputNoise, LabelNoise, TargetNoise, WeightNoise, schedules
from tests.helpers import RecordingMLP, loader, regression_data, trainer
from tests.loss_helpers import Classifier, classification_data

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")


# ------------------------------------------------------------------------------------------------- issue 10.3
class SkipsSecondBatch(RecordingMLP):
    """Returns -1 from ``on_train_batch_start`` at batch 1: Lightning ends the epoch without ``on_train_batch_end``.

    At batch 0 it records whether two forwards of one input differ (noise on); in ``on_train_epoch_end`` it
    records the same, plus the parameters, next to a copy of them taken at the end of batch 0 (clean).
    """

    def __init__(self) -> None:
        super().__init__()
        self.probe = torch.linspace(-1.0, 1.0, 8).reshape(2, 4)
        self.noisy_in_training: list[bool] = []
        self.noisy_at_epoch_end: list[bool] = []
        self.clean_after_batch_0: dict[str, torch.Tensor] = {}
        self.weights_at_epoch_end: dict[str, torch.Tensor] = {}

    def _differs(self) -> bool:
        with torch.no_grad():
            return not torch.equal(self(self.probe), self(self.probe))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.noisy_in_training.append(self._differs())
        return super().training_step(batch, batch_idx)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        return -1 if batch_idx == 1 else None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.clean_after_batch_0 = {n: p.detach().clone() for n, p in self.named_parameters()}

    def on_train_epoch_end(self) -> None:
        assert self.training
        self.noisy_at_epoch_end.append(self._differs())
        self.weights_at_epoch_end = {n: p.detach().clone() for n, p in self.named_parameters()}


@pytest.mark.parametrize(
    "make",
    [lambda: InputNoise(std=1.0), lambda: ActivationNoise(std=1.0, modules=["encoder.0"])],
    ids=["InputNoise", "ActivationNoise"],
)
def test_noise_is_off_in_on_train_epoch_end_after_a_skipped_batch(make):
    model = SkipsSecondBatch()
    trainer(callbacks=[make()]).fit(model, loader(regression_data(n=64)))
    assert model.noisy_in_training == [True]  # batch 0 ran with noise; batch 1 was skipped
    assert model.noisy_at_epoch_end == [False]


def test_weight_noise_weights_are_clean_in_on_train_epoch_end_after_a_skipped_batch():
    model = SkipsSecondBatch()
    callback = WeightNoise(std=1.0, biases=True)
    trainer(callbacks=[callback]).fit(model, loader(regression_data(n=64)))
    assert model.weights_at_epoch_end.keys() == model.clean_after_batch_0.keys()
    for name, clean in model.clean_after_batch_0.items():
        assert torch.equal(model.weights_at_epoch_end[name], clean), name
    assert not callback.perturbed


def test_a_stage_without_noise_switches_a_leftover_state_off():
    """A batch of a stage the callback is off in leaves it off, whatever an earlier batch left."""
    callback = InputNoise(std=1.0)
    callback._active_stage = "train"  # as a skipped batch left it
    callback.on_validation_batch_start(trainer(), None, None, 0)
    assert callback._active_stage is None


# ------------------------------------------------------------------------------------------------- issue 10.8
def test_the_readme_robustness_pattern_trains_and_checkpoints_both_states(tmp_path):
    """InputNoise(std=0.1) with InputNoise(std=0.3, stages=["test"]): Lightning used to refuse the pair."""
    train, test = InputNoise(std=0.1, seed=1), InputNoise(std=0.3, stages=["test"], seed=1)
    assert train.state_key != test.state_key and train._identity != test._identity
    t = trainer(callbacks=[train, test])
    t.fit(RecordingMLP(), loader(regression_data(n=32)))
    t.save_checkpoint(tmp_path / "both.ckpt")
    states = torch.load(tmp_path / "both.ckpt", weights_only=False)["callbacks"]
    assert states[train.state_key]["train_batches"] == 2
    assert states[test.state_key]["train_batches"] == 2  # counted, though off in training


def test_label_smoothing_and_flipping_callbacks_have_their_own_keys_and_streams():
    smooth, flip = LabelNoise(smoothing=0.1, seed=0), LabelNoise(flip=0.05, seed=0)
    assert smooth.state_key != flip.state_key
    smooth._base_seed = flip._base_seed = 0
    smooth.reseed(1, 0)
    flip.reseed(1, 0)
    assert smooth._batch_seed != flip._batch_seed
    data = classification_data()
    trainer(callbacks=[smooth, flip]).fit(Classifier(), DataLoader(data, batch_size=16))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (InputNoise(std=0.1), InputNoise(std=0.2)),
        (InputNoise(std=0.1), InputNoise(std=0.1, stages=["test"])),
        (InputNoise(std=0.1), InputNoise(std=0.1, unit="epoch")),
        (InputNoise(std=0.1), InputNoise(std=schedules.Linear(0.1, 0.0, steps=10))),
        (InputNoise(std=0.1), InputNoise(std=0.1, relative=True)),
        (
            InputNoise(p=0.1, kind="salt_and_pepper"),
            InputNoise(p=0.1, kind="salt_and_pepper", kind_kwargs={"low": -1.0}),
        ),
        (ActivationNoise(std=0.1, modules="a"), ActivationNoise(std=0.1, modules="b")),
        (ActivationNoise(std=0.1, modules="a"), ActivationNoise(std=0.1, modules="a", where="input")),
        (WeightNoise(std=0.1), WeightNoise(std=0.1, biases=True)),
        (LabelNoise(smoothing=0.1), LabelNoise(smoothing=0.1, style="uniform")),
        (LabelNoise(transition=[[0.9, 0.1], [0.2, 0.8]]), LabelNoise(transition=[[0.9, 0.1], [0.3, 0.7]])),
        (TargetNoise(std=0.1), TargetNoise(std=0.1, kind="multiplicative")),
    ],
)
def test_every_identifying_argument_is_in_the_key(a, b):
    assert a.state_key != b.state_key and a._identity != b._identity


def test_drawing_and_logging_arguments_are_not_in_the_key():
    """Seed, sampler, table size and logging change how noise is drawn or reported: a resumed run may change them."""
    base = InputNoise(std=0.1)
    others = (InputNoise(std=0.1, seed=3), InputNoise(std=0.1, sampler="table"), InputNoise(std=0.1, log_amounts=False))
    for other in others:
        assert other.state_key == base.state_key


def test_a_plain_callable_amount_gives_a_key_without_memory_addresses():
    def decay(step: int) -> float:
        return 0.1 / (1 + step)

    key = InputNoise(std=decay).state_key
    assert "test_a_plain_callable_amount_gives_a_key_without_memory_addresses.<locals>.decay" in key
    assert "0x" not in key


class ReturnsTwoCallbacks(RecordingMLP):
    def __init__(self, *callbacks: Any) -> None:
        super().__init__()
        self._callbacks = list(callbacks)

    def configure_callbacks(self):
        return self._callbacks


def test_two_identical_callbacks_fail_at_setup_naming_both_and_suggesting_name():
    model = ReturnsTwoCallbacks(InputNoise(std=0.1), InputNoise(std=0.1))
    with pytest.raises(
        ValueError,
        match=r"trainer.callbacks\[\d\] InputNoise\{'name': 'input', 'std': 0.1.*and trainer.callbacks\[\d\] "
        r"InputNoise\{'name': 'input', 'std': 0.1.*Give one of them its own `name=`, e.g. "
        r"InputNoise\(\.\.\., name='input_2'\)",
    ):
        trainer().fit(model, loader(regression_data(n=32)))
    assert not model.seen or all(stage != "train" for stage, _ in model.seen)  # failed before training


def test_colliding_random_streams_fail_at_setup():
    """Different keys whose hashes collide would draw the same numbers: refused as well."""
    a, b = InputNoise(std=0.1), InputNoise(std=0.2)
    b.__dict__["_identity"] = a._identity  # the cached hash
    with pytest.raises(ValueError, match=r"share a checkpoint state key or a random stream.*`name=`"):
        trainer(callbacks=[a, b]).fit(RecordingMLP(), loader(regression_data(n=32)))


def test_name_separates_two_otherwise_identical_callbacks():
    a, b = InputNoise(std=0.1), InputNoise(std=0.1, name="input_2")
    trainer(callbacks=[a, b]).fit(RecordingMLP(), loader(regression_data(n=32)))
    assert a._identity != b._identity


def test_a_checkpoint_with_the_old_key_format_still_loads(tmp_path):
    """Checkpoints written before amounts, stages and unit joined the key are read through the legacy key."""
    callback = InputNoise(std=0.1, relative=True)
    t = trainer(callbacks=[callback])
    t.fit(RecordingMLP(), loader(regression_data(n=32)))
    t.save_checkpoint(tmp_path / "new.ckpt")
    checkpoint = torch.load(tmp_path / "new.ckpt", weights_only=False)
    old_key = "InputNoise{'name': 'input', 'kind': 'gaussian', 'module': None, 'inputs': None}"
    assert callback._legacy_state_key == old_key
    checkpoint["callbacks"] = {old_key: checkpoint["callbacks"].pop(callback.state_key)}
    torch.save(checkpoint, tmp_path / "old.ckpt")

    resumed = InputNoise(std=0.1, relative=True)
    t = trainer(callbacks=[resumed], max_epochs=2)
    with pytest.warns(UserWarning, match="Please add the following callbacks"):  # Lightning compares new keys only
        t.fit(RecordingMLP(), loader(regression_data(n=32)), ckpt_path=tmp_path / "old.ckpt")
    assert resumed._base_seed == callback._base_seed
    assert resumed._train_batches == 4  # 2 restored + 2 of the second epoch
    assert resumed._stats["0.0"].count == 64


def test_state_key_is_built_once():
    """Lightning reads ``state_key`` at every hook call (as the profiler's name): it must not be rebuilt each time."""
    noise = InputNoise(std=0.1)
    first = noise.state_key
    noise._state_key_fields = lambda: pytest.fail("state_key rebuilt")  # type: ignore[method-assign]
    assert noise.state_key is first
