"""The W&B tags and the recorded amounts follow one "no noise" rule: 0 for a std, +inf for an snr_db."""

from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from lightning_noise import InputNoise
from lightning_noise.schedules import Linear
from noisy_recipes import utils

CFG = OmegaConf.create({"name": "train"})


@pytest.mark.parametrize(
    ("noise", "amounts", "no_noise"),
    [
        (InputNoise(kind="snr", snr_db=0.0), {"input.snr_db": 0.0}, False),  # 0 dB: as much noise as signal
        (InputNoise(kind="snr", snr_db=math.inf), {"input.snr_db": math.inf}, True),
        (InputNoise(std=0.0), {"input.std": 0.0}, True),
        (InputNoise(std=0.1), {"input.std": 0.1}, False),
        # a schedule records the end that means the most noise: the largest std, the lowest snr_db
        (InputNoise(std=Linear(0.0, 0.2, steps=10)), {"input.std": 0.2}, False),
        (InputNoise(kind="snr", snr_db=Linear(40.0, 5.0, steps=10)), {"input.snr_db": 5.0}, False),
    ],
)
def test_no_noise_tag_and_recorded_amount(noise, amounts, no_noise):
    assert utils.noise_amounts({"input": noise}) == amounts
    tags = utils.run_labels(CFG, {"input": noise})["tags"]
    assert ("no noise" in tags) is no_noise, tags
    key, value = next(iter(amounts.items()))
    assert (f"{key}={value:g}" in tags) is not no_noise, tags
