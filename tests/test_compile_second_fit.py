"""torch.compile, several fits in one process (notebooks, in-process searches, benchmark scripts).

Dynamo caches compiled code per code object, shared by all instances of a class, and does not guard on module
hooks added later. Before the callbacks dropped that cache when attaching their hooks, ``torch.compile(Net())``
fitted without noise and then a new ``torch.compile(Net())`` fitted with InputNoise or ActivationNoise ran the
code traced without hooks and failed with "none of them ran during the first training batch". Every test here
starts from ``torch._dynamo.reset()`` and uses the ``eager`` backend (dynamo traces, nothing is generated).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch._dynamo

from lightning_noise import ActivationNoise, GradientNoise, InputNoise, LabelNoise, TargetNoise, WeightNoise
from tests.helpers import loader, trainer
from tests.test_compile import Net, data, record

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec", "ignore:.*val_dataloader", "ignore:.*compile")

CASES = {
    "input": (lambda: InputNoise(std=0.3, seed=0), 0),
    "activation": (lambda: ActivationNoise(std=0.3, modules=["probe"], seed=0), 0),
    "target": (lambda: TargetNoise(std=0.3, seed=0), 0),
    "label": (lambda: LabelNoise(smoothing=0.1, seed=0), 5),
}
# ~8 s each on a shared CPU (tracing the keyed draws); the loss hooks of TargetNoise and LabelNoise were not
# affected before the fix
PARAMS = [
    "input",
    "activation",
    pytest.param("target", marks=pytest.mark.slow),
    pytest.param("label", marks=pytest.mark.slow),
]


def compiled_fit(callback, classes: int = 0, *, compiled: bool = True, lr: float = 0.0) -> Net:
    torch.manual_seed(0)
    model = Net(classes=classes)
    model.configure_optimizers = lambda: torch.optim.SGD(model.parameters(), lr=lr)
    record(model)
    trainer(callbacks=[callback] if callback is not None else [], max_epochs=1, limit_val_batches=0).fit(
        torch.compile(model, backend="eager") if compiled else model, loader(data(classes, n=128), batch_size=64)
    )
    return model


def noise_in(model: Net, classes: int) -> list[torch.Tensor]:
    """What the noise changed in each training batch: the Linear's input or the loss's target, minus the clean."""
    if classes:  # class indices when clean, probabilities when smoothed
        targets = model.targets["train"]
        return [
            torch.zeros(1) if t.dim() == 1 else t - torch.nn.functional.one_hot(t.argmax(1), classes) for t in targets
        ]
    received = [r - 1.5 for r in model.received["train"]]
    return received if any(r.abs().sum() > 0 for r in received) else [t - 0.5 for t in model.targets["train"]]


@pytest.mark.parametrize("name", PARAMS)
def test_noise_is_applied_after_a_clean_compiled_fit_of_the_same_class_and_never_leaks(name):
    make, classes = CASES[name]
    torch._dynamo.reset()
    first = compiled_fit(make(), classes)  # a fresh compile cache, as in a new process
    clean = compiled_fit(None, classes)  # code traced with hooks guards on them: no noise leaks into this fit
    noisy = compiled_fit(make(), classes)  # before: "none of them ran during the first training batch"
    assert all(n.abs().sum() == 0 for n in noise_in(clean, classes))
    drawn = torch.cat([n.flatten() for n in noise_in(noisy, classes)])
    if classes:  # book smoothing 0.1: 1 - eps on the true class, eps / (k - 1) elsewhere
        assert torch.allclose(drawn.abs().max(), torch.tensor(0.1))
    else:  # 2 batches x 64 values: the sample std within 5 sd of 0.3
        assert abs(drawn.std().item() / 0.3 - 1) < 5 / math.sqrt(2 * drawn.numel())
    assert all(torch.equal(a, b) for a, b in zip(noise_in(first, classes), noise_in(noisy, classes), strict=True))


@pytest.mark.parametrize("make", [lambda: WeightNoise(std=0.2, seed=0), lambda: GradientNoise(std=0.2, seed=0)])
def test_weight_and_gradient_noise_after_a_clean_compiled_fit_match_eager(make):
    torch._dynamo.reset()
    compiled_fit(None, lr=0.1)
    compiled = compiled_fit(make(), lr=0.1)
    clean_again = compiled_fit(None, lr=0.1)
    eager = compiled_fit(make(), compiled=False, lr=0.1)
    eager_clean = compiled_fit(None, compiled=False, lr=0.1)
    for a, b, c, d in zip(
        compiled.parameters(), eager.parameters(), clean_again.parameters(), eager_clean.parameters(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6)
        assert torch.allclose(c, d, atol=1e-6)
    assert not torch.allclose(compiled.out.weight, clean_again.out.weight, atol=1e-3)


def test_the_error_names_the_compile_cache_when_the_hooks_cannot_reach_compiled_code(monkeypatch):
    monkeypatch.setattr("lightning_noise._hooks.forget_compiled_code", lambda: False)  # as if the reset missed it
    torch._dynamo.reset()
    compiled_fit(None)
    with pytest.raises(RuntimeError, match=r"compiled before the hooks existed.*torch\.compiler\.reset\(\)"):
        compiled_fit(InputNoise(std=0.3, seed=0))
    torch._dynamo.reset()
