"""Schedules: how a noise amount changes over training.

A schedule is a small, stateless, serializable object called as ``schedule(step) -> float``. The step is the
optimizer step (``trainer.global_step``) unless a callback is told to count epochs (``unit="epoch"``). Every
amount argument of every callback accepts a float or a schedule; a float means :class:`Constant`.

Each schedule also reports ``bounds()``, the smallest and largest value it can take, so a callback can reject
an impossible amount (a dropout probability that would reach 1.5, say) before training starts.

Example::

    >>> from lightning_noise import schedules
    >>> s = schedules.Annealed(eta=0.3, gamma=0.55)     # std of Neelakantan et al. gradient noise
    >>> round(s(0), 4), round(s(100), 4)
    (0.5477, 0.1539)
    >>> schedules.Linear(0.0, 0.2, steps=100)(50)
    0.1
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise

from lightning_noise._checks import check_int, check_number, describe, is_int, is_number

__all__ = [
    "Annealed",
    "Constant",
    "Cosine",
    "Exponential",
    "Linear",
    "Scaled",
    "Schedule",
    "Step",
    "as_schedule",
]


class Schedule:
    """Base class: subclasses implement ``__call__(step) -> float`` and ``bounds()``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value the schedule takes over all steps >= 0."""
        raise NotImplementedError

    def _args(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._args() == other._args()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(map(repr, self._args().items())))))


class Constant(Schedule):
    """The same value at every step.

    The value is range-checked by the callback that uses it, against its noise kind (a signal-to-noise ratio
    in dB may be negative, a standard deviation may not). It must be a number and not NaN; an infinite value
    is accepted here only because ``snr_db=inf`` means "no noise": every callback rejects any other infinite
    amount.

    Args:
        value: the amount.

    Raises:
        TypeError: ``value`` is not a number (a string or a bool included).
        ValueError: ``value`` is NaN.
    """

    def __init__(self, value: float) -> None:
        if not is_number(value):
            raise TypeError(f"Constant: `value` must be a number, got {describe(value)}.")
        if math.isnan(value):
            raise ValueError(f"Constant: `value` must be a number, got {value!r}.")
        self.value = float(value)

    def __call__(self, step: int) -> float:
        return self.value

    def bounds(self) -> tuple[float, float]:
        return (self.value, self.value)


class Linear(Schedule):
    """Linear ramp from ``start`` to ``end`` over ``steps`` steps, then ``end``.

    Args:
        start: value at step 0, >= 0.
        end: value from step ``steps`` on, >= 0.
        steps: length of the ramp, >= 1.

    Example::

        >>> Linear(1.0, 0.0, steps=4)(1)
        0.75
    """

    def __init__(self, start: float, end: float, steps: int) -> None:
        self.start = check_number(start, "start", minimum=0, owner="Linear")
        self.end = check_number(end, "end", minimum=0, owner="Linear")
        self.steps = check_int(steps, "steps", minimum=1, owner="Linear")

    def __call__(self, step: int) -> float:
        frac = min(max(step, 0), self.steps) / self.steps
        return self.start + (self.end - self.start) * frac

    def bounds(self) -> tuple[float, float]:
        return (min(self.start, self.end), max(self.start, self.end))


class Cosine(Schedule):
    """Half-cosine from ``start`` to ``end`` over ``steps`` steps, then ``end``.

    ``value(t) = end + (start - end) * (1 + cos(pi * t / steps)) / 2``.

    Args:
        start: value at step 0, >= 0.
        end: value from step ``steps`` on, >= 0.
        steps: length of the decay, >= 1.
    """

    def __init__(self, start: float, end: float, steps: int) -> None:
        self.start = check_number(start, "start", minimum=0, owner="Cosine")
        self.end = check_number(end, "end", minimum=0, owner="Cosine")
        self.steps = check_int(steps, "steps", minimum=1, owner="Cosine")

    def __call__(self, step: int) -> float:
        frac = min(max(step, 0), self.steps) / self.steps
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def bounds(self) -> tuple[float, float]:
        return (min(self.start, self.end), max(self.start, self.end))


class Step(Schedule):
    """Piecewise constant: ``value * gamma ** k`` after the k-th boundary.

    Boundaries are every ``step_size`` steps, or the given ``milestones``; give exactly one of the two.

    Args:
        value: value before the first boundary, >= 0.
        gamma: factor applied at each boundary, >= 0.
        step_size: distance between boundaries, >= 1.
        milestones: increasing steps at which the factor is applied.

    Example::

        >>> Step(1.0, gamma=0.5, step_size=10)(25)
        0.25
        >>> Step(1.0, gamma=0.1, milestones=[5, 50])(10)
        0.1
    """

    def __init__(
        self,
        value: float,
        *,
        gamma: float = 0.1,
        step_size: int | None = None,
        milestones: Sequence[int] | None = None,
    ) -> None:
        self.value = check_number(value, "value", minimum=0, owner="Step")
        self.gamma = check_number(gamma, "gamma", minimum=0, owner="Step")
        if (step_size is None) == (milestones is None):
            raise ValueError(
                f"Step: give exactly one of `step_size` and `milestones`, got step_size={step_size!r}, "
                f"milestones={milestones!r}."
            )
        if step_size is not None:
            check_int(step_size, "step_size", minimum=1, owner="Step")
        if milestones is not None:
            expected = "a list of non-negative, increasing integers"
            if (
                isinstance(milestones, (str, bytes))
                or not isinstance(milestones, Sequence)
                or not all(is_int(m) for m in milestones)
            ):
                raise TypeError(f"Step: `milestones` must be {expected}, got {describe(milestones)}.")
            milestones = [int(m) for m in milestones]
            if any(b <= a for a, b in pairwise(milestones)) or any(m < 0 for m in milestones):
                raise ValueError(f"Step: `milestones` must be {expected}, got {milestones!r}.")
        self.step_size = step_size
        self.milestones = milestones

    def __call__(self, step: int) -> float:
        if self.step_size is not None:
            k = max(step, 0) // self.step_size
        else:
            k = sum(step >= m for m in self.milestones)  # type: ignore[union-attr]  # milestones when no step_size
        try:
            return self.value * self.gamma**k
        except OverflowError:  # a growing schedule past the largest float: inf, which the callbacks refuse
            return math.inf

    def bounds(self) -> tuple[float, float]:
        # the ignores below: milestones is set when step_size is not (exactly one of them, checked in __init__)
        if self.gamma <= 1.0:
            low = 0.0 if self.step_size is not None else self.value * self.gamma ** len(self.milestones)  # type: ignore[arg-type]
            return (low, self.value)
        if self.step_size is not None:
            return (self.value, math.inf if self.value > 0 else 0.0)
        return (self.value, self.value * self.gamma ** len(self.milestones))  # type: ignore[arg-type]  # as above


class Exponential(Schedule):
    """Exponential decay (or growth): ``start * decay ** step``, never below ``end``.

    Args:
        start: value at step 0, >= 0.
        decay: factor per step, in [0, 1] for decay.
        end: floor of the decay, >= 0.
    """

    def __init__(self, start: float, decay: float, end: float = 0.0) -> None:
        self.start = check_number(start, "start", minimum=0, owner="Exponential")
        self.decay = check_number(decay, "decay", minimum=0, owner="Exponential")
        self.end = check_number(end, "end", minimum=0, owner="Exponential")
        if self.decay > 1.0:
            raise ValueError(f"Exponential: `decay` must be in [0, 1], got {decay!r}.")
        if self.end > self.start:
            raise ValueError(f"Exponential: `end` must be <= `start` ({start!r}), got {end!r}.")

    def __call__(self, step: int) -> float:
        return max(self.start * self.decay ** max(step, 0), self.end)

    def bounds(self) -> tuple[float, float]:
        return (self.end if self.decay < 1.0 else self.start, self.start)


class Annealed(Schedule):
    """Annealed standard deviation of Neelakantan et al. (2015): ``sqrt(eta / (1 + t) ** gamma)``.

    ``eta / (1 + t) ** gamma`` is the *variance* of the noise at step ``t``; this schedule returns its square
    root, the standard deviation, which is what a noise function takes.

    Args:
        eta: variance at step 0, >= 0 (the paper uses 0.01, 0.3 or 1.0).
        gamma: decay exponent, >= 0 (the paper uses 0.55).

    Example::

        >>> Annealed(eta=1.0, gamma=0.55)(0)
        1.0
    """

    def __init__(self, eta: float, gamma: float = 0.55) -> None:
        self.eta = check_number(eta, "eta", minimum=0, owner="Annealed")
        self.gamma = check_number(gamma, "gamma", minimum=0, owner="Annealed")

    def __call__(self, step: int) -> float:
        return math.sqrt(self.eta / (1.0 + max(step, 0)) ** self.gamma)

    def bounds(self) -> tuple[float, float]:
        return (0.0 if self.gamma > 0 else math.sqrt(self.eta), math.sqrt(self.eta))


class Scaled(Schedule):
    """Another schedule multiplied by a constant: ``factor * shape(step)``; its bounds scale with it.

    Lets one *shape* (a schedule whose peak is 1 by convention, such as ``Linear(1.0, 0.0, steps)``) serve every
    noise whatever its units: each noise multiplies it by its own amount.

    Args:
        shape: the schedule to scale.
        factor: the multiplier, a finite number >= 0 (the amount at the shape's peak of 1).

    Raises:
        TypeError: ``shape`` is not a :class:`Schedule`, or ``factor`` is not a number.
        ValueError: ``factor`` is negative, NaN or infinite.

    Example::

        >>> s = Scaled(Linear(1.0, 0.0, steps=10), factor=0.2)
        >>> s(0), s(5), s.bounds()
        (0.2, 0.1, (0.0, 0.2))
    """

    def __init__(self, shape: Schedule, factor: float) -> None:
        if not isinstance(shape, Schedule):
            raise TypeError(f"Scaled: `shape` must be a lightning_noise schedule, got {describe(shape)}.")
        self.shape = shape
        self.factor = check_number(factor, "factor", minimum=0, owner="Scaled")

    def __call__(self, step: int) -> float:
        return self.factor * self.shape(step)

    def bounds(self) -> tuple[float, float]:
        low, high = self.shape.bounds()
        return (self.factor * low, self.factor * high)

    def __repr__(self) -> str:
        return f"{self.factor:g} x {self.shape!r}"


ScheduleLike = float | int | Schedule | Callable[[int], float]


def as_schedule(value: ScheduleLike, argument: str = "amount") -> Schedule | Callable[[int], float]:
    """Turn a float into :class:`Constant`; pass schedules and other callables through.

    Args:
        value: a number, a :class:`Schedule`, or any callable ``step -> float``.
        argument: the argument's name, for error messages.

    Raises:
        TypeError: ``value`` is neither a number nor callable.
        ValueError: ``value`` is NaN.
    """
    if isinstance(value, Schedule) or (callable(value) and not isinstance(value, (int, float))):
        return value
    if not is_number(value):
        raise TypeError(f"`{argument}` must be a float or a schedule, got {type(value).__name__} {value!r}.")
    if math.isnan(value):
        raise ValueError(f"`{argument}` must be a number, got nan.")
    return Constant(float(value))
