"""Argument checks shared by every public constructor: one function per rule, one message format.

A message names the argument, what was expected and what was given (``got 'false' (str)``). A value of the
wrong type raises ``TypeError``; a value of the right type that is out of range, NaN or infinite raises
``ValueError``. Strings are never converted: ``"false"`` is not a bool and ``"0.1"`` is not a number, because a
config file or a command line that passes them has a typo that should surface, not a value to guess.

This module imports nothing from the package, so :mod:`lightning_noise.schedules` can use it as well.

Example::

    >>> check_bool(True, "biases")
    True
    >>> check_bool("false", "biases")
    Traceback (most recent call last):
    ...
    TypeError: `biases` must be a bool (True or False), got 'false' (str).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, overload


def describe(value: Any) -> str:
    """``repr(value)`` followed by its type name: ``'false' (str)``."""
    return f"{value!r} ({type(value).__name__})"


def _prefix(owner: str | None) -> str:
    return f"{owner}: " if owner else ""


def is_bool(value: Any) -> bool:
    """Whether ``value`` is a Python bool or a NumPy bool scalar (what an array comparison gives)."""
    kind = type(value)
    return isinstance(value, bool) or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"))


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not is_bool(value)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (int or float, Python or NumPy), not a bool and not a string."""
    return isinstance(value, numbers.Real) and not is_bool(value)


def check_bool(value: Any, argument: str, owner: str | None = None) -> bool:
    """``value`` as a bool; NumPy bools are accepted, strings and numbers are not.

    Raises:
        TypeError: ``value`` is not a bool.
    """
    if not is_bool(value):
        raise TypeError(f"{_prefix(owner)}`{argument}` must be a bool (True or False), got {describe(value)}.")
    return bool(value)


@overload
def check_int(
    value: Any, argument: str, *, minimum: int | None = None, owner: str | None = None, none: Literal[False] = False
) -> int: ...
@overload
def check_int(
    value: Any, argument: str, *, minimum: int | None = None, owner: str | None = None, none: bool
) -> int | None: ...
def check_int(
    value: Any, argument: str, *, minimum: int | None = None, owner: str | None = None, none: bool = False
) -> int | None:
    """``value`` as an ``int`` >= ``minimum`` (``None`` passes through when ``none``).

    Raises:
        TypeError: not an integer (a float such as ``2.0``, a bool or a string included).
        ValueError: below ``minimum``.
    """
    if value is None and none:
        return None
    bound = f" >= {minimum}" if minimum is not None else ""
    expected = f"an integer{bound}" + (" or None" if none else "")
    if not is_int(value):
        raise TypeError(f"{_prefix(owner)}`{argument}` must be {expected}, got {describe(value)}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{_prefix(owner)}`{argument}` must be {expected}, got {value!r}.")
    return int(value)


def check_number(
    value: Any,
    argument: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    owner: str | None = None,
) -> float:
    """``value`` as a finite ``float`` in ``[minimum, maximum]``.

    Raises:
        TypeError: not a real number (strings and bools included).
        ValueError: NaN, infinite, or out of range.
    """
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    expected = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
    if not is_number(value):
        raise TypeError(f"{_prefix(owner)}`{argument}` must be {expected}, got {describe(value)}.")
    number = float(value)
    if (
        not math.isfinite(number)
        or (minimum is not None and number < minimum)
        or (maximum is not None and number > maximum)
    ):
        raise ValueError(f"{_prefix(owner)}`{argument}` must be {expected}, got {value!r}.")
    return number


def check_open(value: Any, argument: str, low: float, high: float | None = None, what: str = "") -> float:
    """``value`` as a ``float`` strictly between ``low`` and ``high`` (no upper end when None); ``what`` says
    what it is.

    Raises:
        TypeError: not a real number (strings and bools included).
        ValueError: NaN, infinite, or not strictly inside the interval.
    """
    expected = f"a finite number > {low:g}" + (f" and < {high:g}" if high is not None else "") + what
    if not is_number(value):
        raise TypeError(f"`{argument}` must be {expected}, got {describe(value)}.")
    number = float(value)
    if not (math.isfinite(number) and number > low and (high is None or number < high)):
        raise ValueError(f"`{argument}` must be {expected}, got {value!r}.")
    return number


def check_finite_amount(value: float, argument: str, no_noise: float = 0.0) -> None:
    """An amount (or a value its schedule takes) must be finite; an infinite amount is allowed only where it is
    the noise kind's "no noise" value (``snr_db=inf``).

    Raises:
        ValueError: NaN, or infinite and not ``no_noise``.
    """
    if math.isnan(value) or (math.isinf(value) and value != no_noise):
        allowed = f" (or {no_noise}, meaning no noise)" if math.isinf(no_noise) else ""
        raise ValueError(
            f"`{argument}` must be a finite number{allowed}, got {value}: an infinite amount would make the "
            "noisy values (and the weights trained on them) non-finite."
        )


def check_non_negative(value: float, argument: str) -> None:
    """An amount that must be >= 0 (a std): the range check of WeightNoise and GradientNoise.

    Raises:
        ValueError: negative or NaN.

    Example::

        >>> check_non_negative(-0.1, "std")
        Traceback (most recent call last):
        ...
        ValueError: `std` must be >= 0, got -0.1.
    """
    if math.isnan(value) or value < 0:
        raise ValueError(f"`{argument}` must be >= 0, got {value}.")


def check_unit_interval(value: float, argument: str) -> None:
    """An amount that must be in [0, 1) (a smoothing or flip probability): the range check of LabelNoise.

    Raises:
        ValueError: outside [0, 1), or NaN.

    Example::

        >>> check_unit_interval(1.0, "flip")
        Traceback (most recent call last):
        ...
        ValueError: `flip` must be in [0, 1), got 1.0.
    """
    if not 0 <= value < 1:
        raise ValueError(f"`{argument}` must be in [0, 1), got {value}.")


def check_choice(value: Any, argument: str, choices: Sequence[str], owner: str | None = None) -> str:
    """``value`` if it is one of the strings ``choices``.

    Raises:
        TypeError: not a string. ValueError: not one of ``choices``.
    """
    expected = " or ".join(repr(c) for c in choices) if len(choices) <= 2 else f"one of {list(choices)}"
    if not isinstance(value, str):
        raise TypeError(f"{_prefix(owner)}`{argument}` must be {expected}, got {describe(value)}.")
    if value not in choices:
        raise ValueError(f"{_prefix(owner)}`{argument}` must be {expected}, got {value!r}.")
    return value


@overload
def check_name(
    value: Any, argument: str, *, none: Literal[False] = False, owner: str | None = None, what: str = ""
) -> str: ...
@overload
def check_name(value: Any, argument: str, *, none: bool, owner: str | None = None, what: str = "") -> str | None: ...
def check_name(
    value: Any, argument: str, *, none: bool = False, owner: str | None = None, what: str = ""
) -> str | None:
    """``value`` if it is a non-empty string (or ``None`` when ``none``); ``what`` says what the string names.

    Raises:
        TypeError: not a string. ValueError: empty.
    """
    if value is None and none:
        return None
    expected = f"a non-empty string{what}" + (" or None" if none else "")
    if not isinstance(value, str):
        raise TypeError(f"{_prefix(owner)}`{argument}` must be {expected}, got {describe(value)}.")
    if not value:
        raise ValueError(f"{_prefix(owner)}`{argument}` must be {expected}, got ''.")
    return value


@overload
def check_callable(
    value: Any, argument: str, *, none: Literal[False] = False, owner: str | None = None
) -> Callable: ...
@overload
def check_callable(value: Any, argument: str, *, none: bool, owner: str | None = None) -> Callable | None: ...
def check_callable(value: Any, argument: str, *, none: bool = False, owner: str | None = None) -> Callable | None:
    """``value`` if it is callable (or ``None`` when ``none``).

    Raises:
        TypeError: not callable.
    """
    if (value is None and none) or callable(value):
        return value
    expected = "a callable" + (" or None" if none else "")
    raise TypeError(f"{_prefix(owner)}`{argument}` must be {expected}, got {describe(value)}.")


def as_list(value: Any, argument: str, expected: str, owner: str | None = None) -> list[Any]:
    """A list of the items of ``value``, a list, tuple or other non-string iterable.

    Raises:
        TypeError: ``value`` is not iterable, or is a string, bytes or a mapping.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) or hasattr(value, "keys"):
        raise TypeError(f"{_prefix(owner)}`{argument}` must be {expected}, got {describe(value)}.")
    return list(value)


def check_non_negative_numbers(
    value: Any, argument: str, *, scalar: bool = False, owner: str | None = None
) -> tuple[float, ...]:
    """A non-empty sequence of finite numbers >= 0 (``scalar=True``: one number is taken as a sequence of one).

    Raises:
        TypeError: not a sequence (a string included), or an item that is not a number.
        ValueError: empty, or an item that is negative, NaN or infinite.
    """
    expected = "a non-empty sequence of finite numbers >= 0"
    items = [value] if scalar and is_number(value) else as_list(value, argument, expected, owner=owner)
    if not all(is_number(item) for item in items):
        raise TypeError(f"{_prefix(owner)}`{argument}` must be {expected}, got {describe(value)}.")
    if not items or any(not math.isfinite(item) or item < 0 for item in items):
        raise ValueError(f"{_prefix(owner)}`{argument}` must be {expected}, got {items!r}.")
    return tuple(float(item) for item in items)
