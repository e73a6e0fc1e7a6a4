"""lightning-noise: noise-injection regularization as one-line PyTorch Lightning callbacks.

Example::

    >>> from lightning import Trainer
    >>> from lightning_noise import InputNoise, ActivationNoise
    >>> trainer = Trainer(callbacks=[InputNoise(std=0.1), ActivationNoise(std=0.1, modules=["Linear"])])
"""

from __future__ import annotations

import importlib
from typing import Any

from lightning_noise import corruptions, functional, schedules
from lightning_noise.activation_noise import ActivationNoise
from lightning_noise.gradient_noise import GradientNoise
from lightning_noise.input_noise import InputNoise
from lightning_noise.label_noise import LabelNoise
from lightning_noise.robustness import RobustnessEvaluation, evaluate_robustness
from lightning_noise.smoothing import RandomizedSmoothing, certify, smoothed_predict
from lightning_noise.target_noise import TargetNoise
from lightning_noise.weight_noise import WeightNoise

__version__ = "0.1.0"

# The comparison report (statistics, plots, CLI) is imported on first use: ``lightning_noise.compare_runs``.
_LAZY = {"report": None, "compare_runs": "report", "load_runs": "report", "ComparisonReport": "report"}

__all__ = [
    "ActivationNoise",
    "ComparisonReport",
    "GradientNoise",
    "InputNoise",
    "LabelNoise",
    "RandomizedSmoothing",
    "RobustnessEvaluation",
    "compare_runs",
    "certify",
    "corruptions",
    "evaluate_robustness",
    "functional",
    "load_runs",
    "report",
    "schedules",
    "smoothed_predict",
    "TargetNoise",
    "WeightNoise",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"lightning_noise.{_LAZY[name] or name}")
        value = module if _LAZY[name] is None else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lightning_noise' has no attribute {name!r}")
