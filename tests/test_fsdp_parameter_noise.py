"""FSDP2 (``ModelParallelStrategy`` + ``fully_shard``) on 2 CPU processes: each rank perturbs its shard with its
part of one global draw, so the model sees the same noise as the unsharded model under the same seed.

Lightning's ``FSDPStrategy`` (FSDP1) needs a GPU and is refused by the callbacks (flat parameters); see
``test_fsdp1_is_refused_before_training``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_noise._sharding import check_parameter_strategy
from tests.helpers import trainer
from tests.scripts.fsdp_parameter_noise import Recorder, callbacks, data
from tests.test_ddp_parameter_noise import clean_environment

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "fsdp_parameter_noise.py"

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec")


@pytest.mark.slow
def test_sharded_noise_equals_the_unsharded_noise(tmp_path):
    pytest.importorskip("torch.distributed.fsdp", reason="needs torch.distributed")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], cwd=tmp_path, env=clean_environment(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    sharded = torch.load(tmp_path / "sharded.pt")

    unsharded = Recorder(shard=False)
    trainer(callbacks=callbacks(), max_steps=1, max_epochs=None).fit(unsharded, data())
    clean = Recorder(shard=False)  # the same initial weights, never perturbed
    for name, weight in unsharded.weights.items():
        noise = weight - dict(clean.named_parameters())[name].detach()
        assert noise.abs().max() > 0, name
        torch.testing.assert_close(sharded["weights"][name], weight, rtol=0, atol=1e-7, msg=name)
    for name, noise in unsharded.noise.items():
        assert noise.abs().max() > 0, name
        torch.testing.assert_close(sharded["noise"][name], noise, rtol=0, atol=1e-6, msg=name)
    for name, p in clean.named_parameters():  # two WeightNoise on net.0 restored in place, shard by shard
        assert torch.equal(sharded["restored"][name], p.detach()), f"{name} not restored exactly"
    rank0, rank1 = torch.load(tmp_path / "final0.pt"), torch.load(tmp_path / "final1.pt")
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name


@pytest.mark.parametrize("owner", ["WeightNoise", "GradientNoise"])
def test_fsdp1_and_deepspeed_are_refused_with_a_clear_message(owner):
    """The check runs at ``setup``, before any batch (FSDPStrategy itself also refuses a CPU accelerator)."""
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

    with pytest.raises(ValueError, match=rf"{owner} does not support FSDPStrategy \(FSDP1.*ModelParallelStrategy"):
        check_parameter_strategy(SimpleNamespace(strategy=FSDPStrategy()), owner)
    deepspeed = object.__new__(DeepSpeedStrategy)  # its __init__ needs the deepspeed package
    with pytest.raises(ValueError, match=rf"{owner} does not support the DeepSpeed strategy"):
        check_parameter_strategy(SimpleNamespace(strategy=deepspeed), owner)


def test_strategies_are_told_apart_by_class_not_by_name():
    """A subclass of a refused strategy is refused whatever its name; a name alone refuses nothing."""
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy

    sharded = type("ShardedStrategy", (FSDPStrategy,), {})()
    with pytest.raises(ValueError, match=r"does not support ShardedStrategy \(FSDP1"):
        check_parameter_strategy(SimpleNamespace(strategy=sharded), "WeightNoise")
    zero = object.__new__(type("ZeroStrategy", (DeepSpeedStrategy,), {}))
    with pytest.raises(ValueError, match="does not support the DeepSpeed strategy.*got strategy ZeroStrategy"):
        check_parameter_strategy(SimpleNamespace(strategy=zero), "GradientNoise")
    for name in ("DDPNotFSDPStrategy", "DDPNotDeepSpeedStrategy"):
        check_parameter_strategy(SimpleNamespace(strategy=type(name, (DDPStrategy,), {})()), "WeightNoise")


def test_the_check_runs_at_setup_before_any_batch(monkeypatch):
    """A strategy the callbacks refuse stops ``fit`` at ``setup``: no training step runs."""
    import lightning_noise._parameter_noise
    from lightning_noise import WeightNoise
    from tests.helpers import RecordingMLP, loader, regression_data

    def refuse(trainer, owner):
        raise ValueError(f"{owner} refuses {type(trainer.strategy).__name__}")

    monkeypatch.setattr(lightning_noise._parameter_noise, "check_parameter_strategy", refuse)
    model = RecordingMLP()
    with pytest.raises(ValueError, match="WeightNoise refuses SingleDeviceStrategy"):
        trainer(callbacks=[WeightNoise(std=0.1)]).fit(model, loader(regression_data()))
    assert model.seen == []
