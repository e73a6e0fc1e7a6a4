"""Amount x shape: how a noise config combines its amount with the schedule chosen in the ``schedule`` group.

Schedule configs describe a *shape* whose peak is 1 (``Linear(1.0, 0.0, steps)``, ``Annealed(eta=1.0)``...);
each noise config gives its *amount*; the callback receives ``amount * scale * shape(step)``. One schedule
choice therefore fits every noise, whatever its units, and ``noise_scale`` scales all selected amounts at once
(one knob for sweeps over the noise type).
"""

from __future__ import annotations

from lightning_noise.schedules import Constant, Schedule


class Scaled(Schedule):
    """``factor * shape(step)``; bounds scale with it.

    Args:
        shape: a schedule (peak 1 by convention).
        factor: the multiplier, >= 0.
    """

    def __init__(self, shape: Schedule, factor: float) -> None:
        if not isinstance(shape, Schedule):
            raise TypeError(f"Scaled: `shape` must be a lightning_noise schedule, got {type(shape).__name__}.")
        if factor < 0:
            raise ValueError(f"Scaled: `factor` must be >= 0, got {factor!r}.")
        self.shape = shape
        self.factor = float(factor)

    def __call__(self, step: int) -> float:
        return self.factor * self.shape(step)

    def bounds(self) -> tuple[float, float]:
        low, high = self.shape.bounds()
        return (self.factor * low, self.factor * high)

    def __repr__(self) -> str:
        return f"{self.factor:g} x {self.shape!r}"


def scaled(amount: float, shape: Schedule, scale: float = 1.0) -> float | Schedule:
    """The amount a noise callback receives: a float for a constant shape, else a :class:`Scaled` schedule.

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
