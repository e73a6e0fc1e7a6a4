"""Prefetched exact draws: bit-identical to the synchronous path, exact on resume, no thread left behind."""

from __future__ import annotations

import threading
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

import lightning_noise._prefetch
from lightning_noise import GradientNoise, WeightNoise
from lightning_noise._flat_buffers import fill_standard_, flat_groups
from lightning_noise._prefetch import Prefetcher
from tests.helpers import loader, regression_data, trainer

pytestmark = pytest.mark.filterwarnings("ignore:.*`validation_step`", "ignore:.*val_dataloader", "ignore:.*LeafSpec")


@pytest.fixture(autouse=True)
def two_cores(monkeypatch):
    """Prefetch runs only with a spare core: pretend there is one, so the tests exercise it on any machine."""
    monkeypatch.setattr(lightning_noise._prefetch, "_CORES", 2)


class Net(pl.LightningModule):
    """An MLP with a float64 head (two flat groups) that validates every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(6, 32)
        self.head = nn.Linear(32, 1).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.layer(x)).double()).float()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val", nn.functional.mse_loss(self(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def data(batches: int = 6):
    return loader(regression_data(n=8 * batches, features=6), batch_size=8)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(Prefetcher.THREAD_NAME)]


def noises(prefetch: bool) -> list[pl.Callback]:
    every_other = lambda step: 0.05 if step % 3 else 0.0  # noqa: E731 (zero steps: predictions go wrong)
    return [
        WeightNoise(std=0.05, biases=True, seed=1, prefetch=prefetch),
        WeightNoise(std=every_other, kind="uniform", seed=2, prefetch=prefetch, name="uniform"),
        WeightNoise(std=0.1, kind="multiplicative", modules=["head"], seed=3, prefetch=prefetch, name="mult"),
        GradientNoise(std=every_other, seed=4, prefetch=prefetch),
    ]


def fit(prefetch: bool, **kwargs: Any) -> tuple[Net, list[pl.Callback]]:
    torch.manual_seed(0)
    model, callbacks = Net(), noises(prefetch)
    trainer(callbacks=callbacks, **kwargs).fit(model, data(), data(2))
    return model, callbacks


@pytest.mark.parametrize("trainer_kwargs", [{"max_epochs": 2}, {"max_epochs": 2, "accumulate_grad_batches": 2}])
def test_prefetch_on_and_off_give_bit_identical_weights(trainer_kwargs):
    on, callbacks = fit(True, **trainer_kwargs)
    off, _ = fit(False, **trainer_kwargs)
    for (name, a), b in zip(on.state_dict().items(), off.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    hits = [c._prefetcher.hits for c in callbacks]
    assert all(h > 0 for h in hits), f"the prefetched draws were never used: {hits}"
    assert not prefetch_threads()


def test_a_prefetched_draw_equals_the_synchronous_one_and_a_wrong_seed_is_refused():
    groups = flat_groups([torch.empty(3, 4), torch.empty(5), torch.empty(2, dtype=torch.float64)])
    expected = flat_groups([torch.empty(3, 4), torch.empty(5), torch.empty(2, dtype=torch.float64)])
    generators: dict[torch.device, torch.Generator] = {}
    fill_standard_(expected, 7, "normal", lambda d: generators.setdefault(d, torch.Generator(d)))
    prefetcher = Prefetcher()
    try:
        prefetcher.submit("slot", groups, 7, "normal")
        assert prefetcher.take("slot", 7, groups)
        for a, b in zip(groups, expected, strict=True):
            assert torch.equal(a.buffer, b.buffer)
        prefetcher.submit("slot", groups, 8, "normal")
        assert not prefetcher.take("slot", 7, groups)  # the wrong key: the caller draws synchronously
        prefetcher.submit("slot", groups, 7, "normal")
        assert not prefetcher.take("slot", 7, expected)  # drawn into other buffers (a rebuilt layout)
        assert (prefetcher.hits, prefetcher.misses) == (1, 2)
    finally:
        prefetcher.close()
    assert not prefetch_threads()


def test_resume_with_prefetch_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    interrupted = Net()
    first = trainer(callbacks=noises(True), max_epochs=1)
    first.fit(interrupted, data(), data(2))
    first.save_checkpoint(tmp_path / "epoch1.ckpt")
    uninterrupted, _ = fit(True, max_epochs=2)
    resumed = Net()
    trainer(callbacks=noises(True), max_epochs=2).fit(resumed, data(), data(2), ckpt_path=tmp_path / "epoch1.ckpt")
    assert not torch.equal(resumed.layer.weight, interrupted.layer.weight)
    for (name, a), b in zip(resumed.state_dict().items(), uninterrupted.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_no_thread_is_left_after_fit_or_after_an_exception(error):
    fit(True, max_steps=3)
    assert not prefetch_threads()

    class Failing(Net):
        def training_step(self, batch, batch_idx):
            if batch_idx == 2:
                assert prefetch_threads(), "the test needs the side thread to be running here"
                raise error
            return super().training_step(batch, batch_idx)

    model, callbacks = Failing(), noises(True)
    with pytest.raises((type(error), SystemExit)):  # Lightning turns Ctrl-C into a graceful SystemExit
        trainer(callbacks=callbacks).fit(model, data())
    assert not prefetch_threads()
    assert not any(c.perturbed for c in callbacks if isinstance(c, WeightNoise))


class TwoOptimizers(Net):
    """Manual optimization, two optimizers stepped in turn: GradientNoise's first guess of the next key is wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        for opt in self.optimizers():
            opt.zero_grad()
            self.manual_backward(super().training_step(batch, batch_idx))
            opt.step()

    def configure_optimizers(self):
        return [torch.optim.SGD(self.layer.parameters(), lr=0.05), torch.optim.SGD(self.head.parameters(), lr=0.05)]


def test_a_wrong_guess_is_discarded_and_drawn_synchronously():
    results = []
    for prefetch in (True, False):
        torch.manual_seed(0)
        model, noise = TwoOptimizers(), GradientNoise(std=0.05, seed=4, prefetch=prefetch)
        trainer(callbacks=[noise], max_epochs=1).fit(model, data())
        results.append((model.state_dict(), noise._prefetcher))
    (on, prefetcher), (off, _) = results
    assert prefetcher.misses > 0 and prefetcher.hits > 0, (prefetcher.hits, prefetcher.misses)
    for (name, a), b in zip(on.items(), off.values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the prefetch runs on a side stream)")
def test_prefetch_on_a_cuda_stream_is_bit_identical():
    on, callbacks = fit(True, max_epochs=2, accelerator="gpu")
    off, _ = fit(False, max_epochs=2, accelerator="gpu")
    for (name, a), b in zip(on.state_dict().items(), off.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert all(c._prefetcher.hits > 0 for c in callbacks)
