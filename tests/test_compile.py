"""torch.compile: every per-sample callback under Lightning's compiled-module path and on compiled submodules.

Graphs and graph breaks are counted with dynamo's ``CompileCounter`` backend and ``counters["graph_break"]``
(fast, default suite); one fit per callback runs with inductor (marked slow). Before keyed draws, InputNoise
crashed in dynamo (``'method' object has no attribute '__dict__'``) and ActivationNoise with a schedule gave
17 graphs and 11 graph breaks from its generator in a two-epoch fit.
"""

import functools
import math

import lightning.pytorch as pl
import pytest
import torch
import torch._dynamo
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch._dynamo.testing import CompileCounter
from torch._dynamo.utils import counters
from torch.utils.data import TensorDataset

from lightning_noise import ActivationNoise, InputNoise, LabelNoise, TargetNoise, schedules
from tests.helpers import loader, trainer


class Net(pl.LightningModule):
    """x -> probe (Identity) -> Linear; records what the Linear receives per stage (outside the graph)."""

    def __init__(self, features: int = 32, classes: int = 0) -> None:
        super().__init__()
        self.probe = nn.Identity()
        self.out = nn.Linear(features, classes or 1)
        self.loss = nn.CrossEntropyLoss() if classes else nn.MSELoss()
        self.received: dict[str, list[torch.Tensor]] = {"train": [], "validate": []}
        self.targets: dict[str, list[torch.Tensor]] = {"train": [], "validate": []}

    def forward(self, x):
        return self.out(self.probe(x))

    def training_step(self, batch, batch_idx):
        return self.loss(self(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        return self.loss(self(batch[0]), batch[1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def record(model: Net) -> None:
    """Record the Linear's input and the loss's target with eager hooks registered *after* the callbacks'."""

    def stage():
        return "train" if model.trainer.training else "validate"

    model.out.register_forward_pre_hook(lambda m, a: model.received[stage()].append(a[0].detach().clone()))
    model.loss.register_forward_pre_hook(lambda m, a: model.targets[stage()].append(a[1].detach().clone()))


def data(classes: int = 0, n: int = 256, features: int = 32) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.full((n, features), 1.5)
    y = torch.randint(0, classes, (n,), generator=g) if classes else torch.full((n, 1), 0.5)
    return TensorDataset(x, y)


def compiled_fit(callback, backend, *, classes=0, submodule=False, epochs=2, record_io=False):
    torch._dynamo.reset()
    counters.clear()
    model = Net(classes=classes)
    if submodule:
        model.probe = torch.compile(model.probe, backend=backend)
        fitted = model
    else:
        fitted = torch.compile(model, backend=backend)
    if record_io:
        model.probe.register_forward_hook(lambda m, a, o: None)
        record(model)
    callbacks = callback if isinstance(callback, list) else [callback]
    trainer(callbacks=callbacks, max_epochs=epochs, limit_val_batches=2, num_sanity_val_steps=1).fit(
        fitted, loader(data(classes), batch_size=64), loader(data(classes), batch_size=64)
    )
    return model, sum(counters["graph_break"].values())


def schedule():
    return schedules.Linear(0.3, 0.1, steps=8)  # a new value at every step: must not recompile


CASES = {
    "input": lambda: InputNoise(std=schedule(), seed=0),
    "activation": lambda: ActivationNoise(std=schedule(), modules=["probe"], seed=0),
    "activation-table": lambda: ActivationNoise(std=schedule(), modules=["probe"], sampler="table", seed=0),
    "target": lambda: TargetNoise(std=schedule(), seed=0),
    "label": lambda: LabelNoise(smoothing=schedules.Linear(0.2, 0.0, steps=8), flip=0.1, seed=0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_graph_break_and_no_recompile_from_the_schedule(name):
    baseline = CompileCounter()
    compiled_fit(ActivationNoise(std=0.0, modules=["probe"]), baseline, classes=5 if name == "label" else 0)
    counter = CompileCounter()
    _, breaks = compiled_fit(CASES[name](), counter, classes=5 if name == "label" else 0)
    assert breaks == 0
    # the step and the validation step, plus at most one recompile per mode switch (the first call's checks)
    assert counter.frame_count <= baseline.frame_count + 1, (counter.frame_count, baseline.frame_count)
    assert counter.frame_count <= 3


class Losses(Callback):
    """Records the training loss of every batch, outside the compiled code (it adds no graph)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].item())


@functools.cache
def graphs_without_noise(classes: int) -> int:
    """Graphs compiled in a fit without any noise callback."""
    counter = CompileCounter()
    compiled_fit([Losses()], counter, classes=classes)
    return counter.frame_count


def clean_losses(model: Net, classes: int) -> list[float]:
    """The loss of each of the 8 training batches without noise (eager: the submodules are not compiled)."""
    x, y = data(classes).tensors
    with torch.no_grad():
        return [model.loss(model.out(model.probe(x[k : k + 64])), y[k : k + 64]).item() for k in (0, 64, 128, 192)] * 2


def to_zero():
    return schedules.Cosine(0.3, 0.0, steps=4)  # exactly 0 from step 4 of 8: "no noise" must not recompile


ZERO_CASES = {
    "input": lambda: InputNoise(std=to_zero(), seed=0),
    "activation": lambda: ActivationNoise(std=to_zero(), modules=["probe"], seed=0),
    "activation-from-zero": lambda: ActivationNoise(std=schedules.Linear(0.0, 0.3, steps=4), modules=["probe"]),
    "dropout": lambda: ActivationNoise(p=to_zero(), kind="dropout", modules=["probe"], seed=0),
    "target": lambda: TargetNoise(std=to_zero(), seed=0),
    "label": lambda: LabelNoise(smoothing=to_zero(), flip=schedules.Linear(0.2, 0.0, steps=4), seed=0),
}


@pytest.mark.parametrize(
    "name", [n if n in ("input", "activation") else pytest.param(n, marks=pytest.mark.slow) for n in ZERO_CASES]
)
def test_an_amount_reaching_no_noise_compiles_at_most_one_graph_more_than_no_noise(name):
    classes = 5 if name == "label" else 0
    counter, losses = CompileCounter(), Losses()
    model, breaks = compiled_fit([ZERO_CASES[name](), losses], counter, classes=classes)
    assert breaks == 0
    # before: a guard on the amount being "on" recompiled when it reached (or left) "no noise": 4 graphs against 2
    assert counter.frame_count <= graphs_without_noise(classes) + 1, (
        counter.frame_count,
        graphs_without_noise(classes),
    )
    # lr is 0: a batch without noise has the clean loss (to rounding: label smoothing 0 gives one-hot probabilities)
    quiet, noisy = (range(1), range(1, 8)) if name == "activation-from-zero" else (range(4, 8), range(4))
    clean = clean_losses(model, classes)
    assert len(losses.losses) == 8
    assert all(losses.losses[i] == pytest.approx(clean[i], rel=1e-6, abs=0) for i in quiet)
    assert all(losses.losses[i] != pytest.approx(clean[i], rel=1e-4, abs=0) for i in noisy)


def test_compiled_submodule_keeps_its_name_and_has_no_graph_break():
    counter = CompileCounter()
    callback = ActivationNoise(std=schedule(), modules=["probe"], seed=0)
    _, breaks = compiled_fit(callback, counter, submodule=True)
    assert callback.matched_modules == ["probe"]
    assert breaks == 0 and counter.frame_count <= 2


def noise_std(received: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([(r - 1.5).std() for r in received])


@pytest.mark.parametrize("name", ["input", "activation"])
def test_compiled_noise_has_the_scheduled_std_in_training_and_none_at_validation(name):
    model, _ = compiled_fit(CASES[name](), "aot_eager", epochs=1, record_io=True)
    expected = torch.tensor([schedule()(step) for step in range(4)])
    n = model.received["train"][0].numel()
    assert torch.allclose(noise_std(model.received["train"]), expected, rtol=5 / math.sqrt(2 * n))
    assert all(torch.equal(r, torch.full_like(r, 1.5)) for r in model.received["validate"])


def test_compiled_noise_is_a_function_of_the_seed():
    first, _ = compiled_fit(InputNoise(std=0.2, seed=5), "eager", epochs=1, record_io=True)
    again, _ = compiled_fit(InputNoise(std=0.2, seed=5), "eager", epochs=1, record_io=True)
    other, _ = compiled_fit(InputNoise(std=0.2, seed=6), "eager", epochs=1, record_io=True)
    assert all(torch.equal(a, b) for a, b in zip(first.received["train"], again.received["train"], strict=True))
    assert not torch.equal(first.received["train"][0], other.received["train"][0])
    batches = first.received["train"]
    assert not torch.equal(batches[0], batches[1])  # a new key at every batch


def test_compiled_target_and_label_noise_in_training_only():
    model, _ = compiled_fit(TargetNoise(std=0.2, seed=0), "aot_eager", epochs=1, record_io=True)
    targets = torch.cat(model.targets["train"]) - 0.5
    assert abs(targets.std().item() / 0.2 - 1) < 5 / math.sqrt(2 * targets.numel())
    assert all(torch.equal(t, torch.full_like(t, 0.5)) for t in model.targets["validate"])
    model, _ = compiled_fit(LabelNoise(smoothing=0.1, seed=0), "aot_eager", classes=5, epochs=1, record_io=True)
    soft = torch.cat(model.targets["train"])
    assert soft.shape[1] == 5 and torch.allclose(soft.max(dim=1).values, torch.tensor(0.9))
    assert all(t.dtype == torch.int64 for t in model.targets["validate"])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_inductor_fit(name):
    """Inductor, CPU: no graph break, the scheduled std in training (per batch), nothing at validation."""
    model, breaks = compiled_fit(CASES[name](), "inductor", classes=5 if name == "label" else 0, record_io=True)
    assert breaks == 0
    steps = range(8)
    if name == "label":
        smoothing = schedules.Linear(0.2, 0.0, steps=8)
        for step, soft in zip(steps, model.targets["train"], strict=True):
            eps = smoothing(step)
            if eps == 0:
                assert soft.dtype == torch.int64
            else:  # flipped labels are still one-hot-smoothed: each row holds 1 - eps once
                assert torch.allclose(soft.max(dim=1).values, torch.tensor(1 - eps), atol=1e-6)
        assert all(t.dtype == torch.int64 for t in model.targets["validate"])
        return
    expected = torch.tensor([schedule()(step) for step in steps])
    if name == "target":
        noisy = [t - 0.5 for t in model.targets["train"]]
        clean = [t - 0.5 for t in model.targets["validate"]]
    else:
        noisy = [r - 1.5 for r in model.received["train"]]
        clean = [r - 1.5 for r in model.received["validate"]]
    n = noisy[0].numel()
    assert torch.allclose(torch.stack([v.std() for v in noisy]), expected, rtol=5 / math.sqrt(2 * n))
    assert all(torch.equal(v, torch.zeros_like(v)) for v in clean)


@pytest.mark.slow
def test_inductor_activation_noise():
    """The counter-based draw compiles to C++ and keeps its std (about 2 minutes of C++ compilation here)."""
    model, breaks = compiled_fit(
        ActivationNoise(std=0.25, modules=["probe"], seed=1), "inductor", epochs=1, record_io=True
    )
    assert breaks == 0
    noise = torch.cat(model.received["train"]) - 1.5
    assert abs(noise.std().item() / 0.25 - 1) < 5 / math.sqrt(2 * noise.numel())
    assert abs(noise.mean().item()) < 5 * 0.25 / math.sqrt(noise.numel())
    assert all(torch.equal(r, torch.full_like(r, 1.5)) for r in model.received["validate"])


def test_compiled_resume_draws_the_uninterrupted_noise(tmp_path):
    """2 epochs straight vs 1 epoch, checkpoint, 1 more: the second epoch's compiled noise is identical."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    straight, _ = compiled_fit(InputNoise(std=schedule(), seed=4), "eager", epochs=2, record_io=True)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    torch._dynamo.reset()
    first = Net()
    trainer(
        callbacks=[InputNoise(std=schedule(), seed=4), ckpt],
        max_epochs=1,
        enable_checkpointing=True,
        limit_val_batches=0,
    ).fit(torch.compile(first, backend="eager"), loader(data(), batch_size=64))
    torch._dynamo.reset()
    resumed = Net()
    record(resumed)
    trainer(callbacks=[InputNoise(std=schedule(), seed=4)], max_epochs=2, limit_val_batches=0).fit(
        torch.compile(resumed, backend="eager"), loader(data(), batch_size=64), ckpt_path=str(tmp_path / "last.ckpt")
    )
    second_epoch = straight.received["train"][4:]
    assert len(resumed.received["train"]) == len(second_epoch) == 4
    assert all(torch.equal(a, b) for a, b in zip(resumed.received["train"], second_epoch, strict=True))


def test_compiled_draws_differ_per_rank():
    """The rank is part of the batch key, so per-sample noise differs across DDP ranks under compile too."""
    draws = []
    for rank in (0, 1):
        callback = ActivationNoise(std=0.5, modules=["probe"], seed=0)
        callback._rank, callback._base_seed = rank, 0
        callback.reseed(1, 0)
        noise = torch.compile(lambda x, cb=callback: cb._noise(x, 1, 0, 0), backend="eager", fullgraph=True)
        draws.append(noise(torch.zeros(64)))
    assert not torch.equal(draws[0], draws[1])
    again = ActivationNoise(std=0.5, modules=["probe"], seed=0)
    again._rank, again._base_seed = 1, 0
    again.reseed(1, 0)
    assert torch.equal(torch.compile(lambda x: again._noise(x, 1, 0, 0), backend="eager")(torch.zeros(64)), draws[1])


@pytest.mark.slow
def test_inductor_code_draws_what_the_traced_ops_draw():
    """Inductor's C++ kernel computes the counter-based draw exactly like the eager torch ops (no int64 overflow
    anywhere), and a new batch key or a new amount reaches the compiled kernel without recompiling."""
    from lightning_noise import _counter_rng

    torch._dynamo.reset()
    callback = ActivationNoise(std=0.5, modules=["probe"], seed=0)
    callback._base_seed = 0
    callback.reseed(1, 0)
    counter = CompileCounter()

    def draw(x):
        return callback._noise(x, 17, 2, 0)

    def reference(x):
        key = _counter_rng.derive_key(callback._key, 17, 2, 0)
        return _counter_rng.keyed_noise("gaussian", x, callback._amount_tensors["std"], key)

    x = torch.zeros(4096)
    compiled = torch.compile(draw, backend="inductor", fullgraph=True)
    counted = torch.compile(draw, backend=counter, fullgraph=True)
    first = compiled(x)
    assert torch.allclose(first, reference(x), rtol=1e-5, atol=1e-6)
    assert abs(first.std().item() / 0.5 - 1) < 5 / math.sqrt(2 * x.numel())
    callback.reseed(2, 0)
    callback.update_amounts(0)
    callback._amount_tensors["std"].fill_(0.25)
    second = compiled(x)
    assert torch.allclose(second, reference(x), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(second * 2, first)
    counted(x)
    callback.reseed(3, 0)
    counted(x)
    assert counter.frame_count == 1
