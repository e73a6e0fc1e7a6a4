"""OmegaConf resolvers of the recipe configs (registered when ``noisy_recipes`` is imported).

``${recipes.devices:${trainer.devices}}``: the number of devices per node that ``trainer.devices`` names.
``${recipes.gpus:${trainer.accelerator},${trainer.devices}}``: that number on a GPU accelerator, else 0. The SLURM
launcher (``conf/hydra/launcher/slurm.yaml``) asks for its tasks and GPUs with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import ListConfig, OmegaConf

GPU_ACCELERATORS = ("gpu", "cuda")


def device_count(devices: Any) -> int:
    """The devices per node of a Lightning ``devices`` value: a count, a list of ids or a string of ids.

    Example::

        >>> device_count(4), device_count([0, 1]), device_count("0,1,2")
        (4, 2, 3)

    Raises:
        ValueError: ``"auto"``, ``-1`` or anything that does not name a fixed number of devices (a cluster
            allocation needs one).
    """
    if isinstance(devices, (ListConfig, Sequence)) and not isinstance(devices, str):
        if len(devices):
            return len(devices)
    elif isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
        return devices
    elif isinstance(devices, str) and devices.strip():
        text = devices.strip().rstrip(",")
        if text.isdigit() and "," not in devices:
            return int(text) if int(text) > 0 else 0
        ids = [part for part in text.split(",") if part.strip().isdigit()]
        if ids and len(ids) == len(text.split(",")):
            return len(ids)
    raise ValueError(
        f"A cluster launcher needs trainer.devices as a number of devices per node (or a list of ids), got "
        f"{devices!r}: set it, e.g. trainer.devices=4."
    )


def gpus_per_node(accelerator: Any, devices: Any) -> int:
    """``device_count(devices)`` when ``accelerator`` is ``gpu`` or ``cuda``, else 0 (a CPU job asks for no GPU)."""
    return device_count(devices) if str(accelerator).lower() in GPU_ACCELERATORS else 0


def register() -> None:
    """Register the resolvers (idempotent)."""
    for name, function in (("recipes.devices", device_count), ("recipes.gpus", gpus_per_node)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
