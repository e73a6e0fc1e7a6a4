"""``eval.certify=true``: randomized-smoothing certification of the recipe's classifier after training.

The settings are the ``eval.certification`` node of ``conf/train.yaml``. The smoothing noise ``sigma`` defaults
to the std of the run's Gaussian input noise (the ``InputNoise`` callback the run trains with), so a model is
certified at the noise it learned; ``eval.certification.sigma`` sets it explicitly (needed without such noise).
The results go to the
console, ``certify.json`` / ``certify.png`` in the run directory, the loggers, and the run record
(``metrics.json``: ``certify/acc_r{radius}``, ``certify/acr``... under ``metrics``, for the comparison report).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from lightning_noise import InputNoise, RandomizedSmoothing
from noisy_recipes.utils import ConfigError, as_config_error

__all__ = ["add_to_record", "certification_callback", "input_noise_sigma"]


def input_noise_sigma(noise: Mapping[str, Callback]) -> float | None:
    """The std of the run's constant Gaussian input noise (on the whole model's inputs), None if it has none.

    Raises:
        ConfigError: Gaussian input noise whose std changes over training, is relative to the features' scale,
            or is on a submodule (no single sigma in the model's input space).
    """
    sigmas = []
    for name, callback in noise.items():
        if not isinstance(callback, InputNoise) or callback.kind.name != "gaussian":
            continue
        low, high = callback.schedules["std"].bounds()
        if low != high or callback.relative or callback.module is not None:
            raise ConfigError(
                f"eval.certify: noise.{name} is not a constant Gaussian noise on the model's inputs "
                f"(std {low:g}..{high:g}, relative={callback.relative}, module={callback.module!r}), so it gives "
                "no smoothing sigma; set eval.certification.sigma=..."
            )
        if high > 0:
            sigmas.append(high)
    if len(set(sigmas)) > 1:
        raise ConfigError(f"eval.certify: several Gaussian input noises {sigmas}; set eval.certification.sigma=...")
    return sigmas[0] if sigmas else None


def certification_callback(
    cfg: DictConfig | None,
    task: str,
    noise: Mapping[str, Callback],
    *,
    output_dir: Path,
    dataset_name: str,
    dataloader_idx: int = 0,
) -> RandomizedSmoothing | None:
    """The ``RandomizedSmoothing`` callback asked for by ``eval.certify=true``, else None (checked before training).

    Raises:
        ConfigError: a model that is not a classifier; no sigma (no Gaussian input noise and no
            ``eval.certification.sigma``); bad settings (from the callback).
    """
    if not cfg or not cfg.get("certify"):
        return None
    if task != "classification":
        raise ConfigError(f"eval.certify=true certifies classifiers, but this model's task is {task}.")
    settings: dict[str, Any] = OmegaConf.to_container(cfg.get("certification") or OmegaConf.create(), resolve=True)
    sigma = settings.pop("sigma", None)
    if sigma is None:
        sigma = input_noise_sigma(noise)
    if sigma is None:
        raise ConfigError(
            "eval.certify=true needs a smoothing sigma: train with Gaussian input noise (noise=input) to certify at "
            "its std, or set eval.certification.sigma=0.25."
        )
    with as_config_error(ValueError, TypeError):  # a bad setting: one line naming it, not a traceback
        return RandomizedSmoothing(
            sigma, output_dir=output_dir, dataset_name=dataset_name, dataloader_idx=dataloader_idx, **settings
        )


def add_to_record(record: dict[str, Any], callback: RandomizedSmoothing | None) -> None:
    """Put the certification into the run record: its numbers under ``metrics`` and its summary under ``certify``."""
    if callback is None or callback.result is None:
        return
    record["metrics"] = {**record["metrics"], **callback.result.scalars()}
    record["certify"] = callback.result.summary()
