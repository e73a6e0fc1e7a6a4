"""Seeding, reproducibility, resume from a checkpoint, checkpoint state, and the global RNG."""

import pytest
import torch
from lightning.pytorch import seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_noise import ActivationNoise, InputNoise, schedules
from lightning_noise._seeding import mix_seed
from tests.helpers import RecordingMLP, loader, regression_data, trainer


@pytest.fixture(autouse=True)
def _no_global_seed(monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


def _callbacks(seed=None):
    return [
        InputNoise(std=0.3, seed=seed),
        ActivationNoise(std=schedules.Linear(0.5, 0.1, steps=10), modules=["encoder.1"], seed=seed),
    ]


def _fit(callbacks, max_epochs=2, **kwargs):
    torch.manual_seed(0)
    model = RecordingMLP()
    trainer(max_epochs=max_epochs, callbacks=callbacks, **kwargs).fit(model, loader(regression_data()))
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_seed_same_noise_other_seed_other_noise():
    assert torch.equal(_fit(_callbacks(seed=1)), _fit(_callbacks(seed=1)))
    assert not torch.equal(_fit(_callbacks(seed=1)), _fit(_callbacks(seed=2)))


def test_seed_everything_seeds_the_noise():
    seed_everything(3)
    a = _fit(_callbacks())
    seed_everything(3)
    b = _fit(_callbacks())
    seed_everything(4)
    c = _fit(_callbacks())
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_no_seed_gives_fresh_noise():
    assert not torch.equal(_fit(_callbacks()), _fit(_callbacks()))


def test_two_callbacks_with_one_seed_draw_different_noise():
    a, b = InputNoise(std=0.1, seed=0), InputNoise(std=0.1, seed=0, name="input2")
    assert a.state_key != b.state_key and a._identity != b._identity


def test_ranks_draw_different_noise():
    assert mix_seed(5, 1, 0, 1, 0) != mix_seed(5, 1, 1, 1, 0)


def test_global_rng_is_not_consumed():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    cb = InputNoise(std=0.3, seed=0)
    cb._base_seed = 0
    cb.reseed(1, 0)
    cb.generator(torch.device("cpu"))
    from lightning_noise import functional as F

    F.gaussian(torch.zeros(10), 0.3, cb.generator(torch.device("cpu")))
    assert torch.equal(torch.rand(3), expected)


def test_resume_gives_the_uninterrupted_result(tmp_path):
    """4 epochs straight vs 2 epochs, checkpoint, and 2 more from the checkpoint: bit-identical weights."""
    straight = _fit(_callbacks(), max_epochs=4, enable_checkpointing=True, default_root_dir=tmp_path / "a")
    # No seed anywhere: the resumed run must take its base seed from the checkpoint, not fresh entropy.
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first_half_callbacks = _callbacks()
    torch.manual_seed(0)
    model = RecordingMLP()
    trainer(max_epochs=2, callbacks=[*first_half_callbacks, ckpt], enable_checkpointing=True).fit(
        model, loader(regression_data())
    )
    torch.manual_seed(0)
    resumed_model = RecordingMLP()
    trainer(max_epochs=4, callbacks=_callbacks(), enable_checkpointing=True, default_root_dir=tmp_path / "b").fit(
        resumed_model, loader(regression_data()), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt")
    )
    resumed = torch.cat([p.detach().flatten() for p in resumed_model.parameters()])
    # The uninterrupted run drew a different fresh seed, so compare against a straight run with the same seed.
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["callbacks"]
    seeds = {key.split("{")[0]: s["seed"] for key, s in state.items() if "Noise" in key}
    assert sorted(seeds) == ["ActivationNoise", "InputNoise"] and all(isinstance(s, int) for s in seeds.values())
    reference = _fit(
        [
            InputNoise(std=0.3, seed=seeds["InputNoise"]),
            ActivationNoise(
                std=schedules.Linear(0.5, 0.1, steps=10), modules=["encoder.1"], seed=seeds["ActivationNoise"]
            ),
        ],
        max_epochs=4,
    )
    assert torch.equal(resumed, reference)
    assert not torch.equal(straight, reference)  # fresh entropy: the straight run drew other noise


def test_checkpoint_holds_each_callbacks_state(tmp_path):
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    cbs = [InputNoise(std=0.1, seed=1), InputNoise(std=0.2, seed=2, name="input_b"), ckpt]
    trainer(callbacks=cbs, enable_checkpointing=True).fit(RecordingMLP(), loader(regression_data()))
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)["callbacks"]
    ours = {k: v for k, v in state.items() if k.startswith("InputNoise")}
    assert len(ours) == 2
    assert sorted(v["seed"] for v in ours.values()) == [1, 2]
    assert all(v["train_batches"] == 4 for v in ours.values())


def test_old_checkpoint_without_state_loads():
    cb = InputNoise(std=0.1, seed=1)
    cb._base_seed = 1
    cb.load_state_dict({})
    assert cb._base_seed == 1 and cb._train_batches == 0
