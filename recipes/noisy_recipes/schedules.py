"""Amount x shape: how a noise config combines its amount with the schedule chosen in the ``schedule`` group.

Schedule configs describe a *shape* whose peak is 1 (``Linear(1.0, 0.0, steps)``, ``Annealed(eta=1.0)``...);
each noise config gives its *amount*; the callback receives ``amount * scale * shape(step)``
(:class:`~lightning_noise.schedules.Scaled`). One schedule choice therefore fits every noise, whatever its
units, and ``noise_scale`` scales all selected amounts at once (one knob for sweeps over the noise type).
"""

from __future__ import annotations

from lightning_noise.schedules import Constant, Scaled, Schedule


def scaled(amount: float, shape: Schedule, scale: float = 1.0) -> float | Schedule:
    """The amount a noise callback receives: a float for a constant shape, else a :class:`Scaled` schedule.

    A constant stays a float so that the callback describes it (and keys its checkpoint state) by its value.

    Args:
        amount: the noise amount at the shape's peak (a standard deviation, a probability...).
        shape: the schedule shape from the ``schedule`` group.
        scale: a multiplier of ``amount`` (the root ``noise_scale`` key).

    Raises:
        ValueError: a negative amount or scale.
    """
    if amount < 0 or scale < 0:
        raise ValueError(f"a noise amount and noise_scale must be >= 0, got amount={amount!r}, scale={scale!r}.")
    if isinstance(shape, Constant):
        return float(amount) * float(scale) * shape.value
    return Scaled(shape, float(amount) * float(scale))
