"""lightning-noise: noise-injection regularization as one-line PyTorch Lightning callbacks.

Example::

    >>> from lightning import Trainer
    >>> from lightning_noise import InputNoise, ActivationNoise
    >>> trainer = Trainer(callbacks=[InputNoise(std=0.1), ActivationNoise(std=0.1, modules=["Linear"])])
"""

from lightning_noise import functional, schedules
from lightning_noise.activation_noise import ActivationNoise
from lightning_noise.input_noise import InputNoise
from lightning_noise.robustness import RobustnessEvaluation, evaluate_robustness

__version__ = "0.1.0"

__all__ = ["ActivationNoise", "InputNoise", "functional", "schedules", "__version__"]
