"""On a CUDA device: generators live on the device, noise is drawn there, and nothing is left perturbed.

Skipped where no GPU is available (CI has none); run on a GPU machine with `python -m pytest tests/test_gpu.py`.
"""

import pytest
import torch

from lightning_noise import ActivationNoise, GradientNoise, InputNoise, WeightNoise
from tests.helpers import RecordingMLP, loader, regression_data, trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("sampler", ["exact", "table"])
def test_all_parameter_and_hook_noise_on_cuda(sampler):
    model = RecordingMLP(lr=0.0)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    callbacks = [
        InputNoise(std=0.5, sampler=sampler, seed=0),
        ActivationNoise(std=0.5, modules=["encoder.1"], sampler=sampler, seed=0),
        WeightNoise(std=0.1, sampler=sampler, seed=0),
        GradientNoise(std=0.1, sampler=sampler, seed=0),
    ]
    trainer(accelerator="gpu", devices=1, max_epochs=2, callbacks=callbacks, precision="bf16-mixed").fit(
        model, loader(regression_data(n=64))
    )
    assert all(x.is_cuda for _, x in model.seen)
    assert min(h.min().item() for s, h in model.hidden if s == "train") < 0  # noisy ReLU outputs
    for generator in callbacks[0]._generators.values():
        assert generator.device.type == "cuda"
    # lr 0: weight noise restored exactly; gradient noise moved nothing.
    for key, value in model.state_dict().items():
        assert torch.equal(value.cpu(), init[key]), key
