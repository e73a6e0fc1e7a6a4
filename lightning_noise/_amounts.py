"""Amounts as schedules: checking the values an amount can take, reading it at a step, describing it.

Every amount argument (``std=``, ``p=``, ``snr_db=``, ``smoothing=``, ...) is a float or a schedule
(:mod:`lightning_noise.schedules`) or a plain callable ``step -> float``. A schedule's values are known in
advance through its ``bounds()`` and are checked in ``__init__``; a plain callable's, and an unbounded
schedule's, are checked at every step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from lightning_noise._checks import check_finite_amount, describe, is_bool
from lightning_noise.schedules import Constant, Schedule

RangeCheck = Callable[[float, str], None]


def check_schedule(
    argument: str, schedule: Schedule | Callable[[int], float], check: RangeCheck, no_noise: float = 0.0
) -> RangeCheck | None:
    """Check every value ``schedule`` can take (its ``bounds()``), or its first value for a plain callable.

    ``check`` (the kind's range) sees both bounds. Every value must also be finite, except ``no_noise`` when it is
    infinite (``snr_db=inf``). A schedule whose range is unbounded (``Step`` with ``gamma > 1`` grows without
    limit, yet every value it takes is finite) has its first value checked now.

    Args:
        argument: the amount's argument name, for messages.
        schedule: the amount as a schedule (or a plain callable).
        check: the range check, ``check(value, argument)``, raising ``ValueError``.
        no_noise: the amount meaning "no noise" (``inf`` for ``snr_db``).

    Returns:
        The check to run on the value at every step (``check`` and finiteness), for a plain callable or an
        unbounded schedule, whose values cannot be known in advance; else ``None``.

    Raises:
        ValueError: a value out of range, NaN or infinite.

    Example::

        >>> from lightning_noise.schedules import Linear
        >>> check_schedule("std", Linear(0.2, 0.0, steps=10), lambda value, argument: None) is None
        True
    """
    if not isinstance(schedule, Schedule):
        value = amount_value(schedule, 0, argument)
        check_finite_amount(value, argument, no_noise)
        check(value, argument)
        # A partial of module-level functions, not a closure: the callback holding it stays picklable.
        return functools.partial(_finite_then, check, no_noise)
    bounds = schedule.bounds()
    for value in bounds:
        check(value, argument)
    unbounded = not isinstance(schedule, Constant) and any(math.isinf(v) and v != no_noise for v in bounds)
    for value in (float(schedule(0)),) if unbounded else bounds:
        check_finite_amount(value, argument, no_noise)
    return functools.partial(_finite_then, check, no_noise) if unbounded else None


def _finite_then(check: RangeCheck, no_noise: float, value: float, argument: str) -> None:
    check_finite_amount(value, argument, no_noise)
    check(value, argument)


def amount_value(schedule: Schedule | Callable[[int], float], step: int, argument: str) -> float:
    """``float(schedule(step))``; a plain callable that returns anything but a real number (a string, None, a
    list) raises, naming the argument, instead of being parsed or failing inside ``float``.

    Raises:
        TypeError: the value is not a real number (a one-element tensor or NumPy scalar counts as one).

    Example::

        >>> amount_value(lambda step: 0.1 * step, 3, "std")
        0.30000000000000004
    """
    value = schedule(step)
    if isinstance(value, (str, bytes)) or is_bool(value):
        raise TypeError(f"`{argument}` (its schedule at step {step}) must return a number, got {describe(value)}.")
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"`{argument}` (its schedule at step {step}) must return a number, got {describe(value)}."
        ) from None


def describe_schedule(schedule: Schedule | Callable[[int], float]) -> Any:
    """A description of an amount that is the same in every process: the value of a constant, the ``repr`` of a
    schedule, the qualified name of a plain callable (its ``repr`` would hold a memory address).

    Example::

        >>> from lightning_noise.schedules import Constant
        >>> describe_schedule(Constant(0.1))
        0.1
    """
    if isinstance(schedule, Constant):
        return schedule.value
    if isinstance(schedule, Schedule):
        return repr(schedule)
    named = schedule if hasattr(schedule, "__qualname__") else type(schedule)
    return f"{getattr(named, '__module__', '?')}.{named.__qualname__}"


def may_exceed_zero(schedule: Schedule | Any) -> bool:
    """Whether an amount schedule can take a value above zero (a plain callable is assumed to).

    Example::

        >>> from lightning_noise.schedules import Constant
        >>> may_exceed_zero(Constant(0.0))
        False
    """
    return max(schedule.bounds()) > 0 if isinstance(schedule, Schedule) else True
