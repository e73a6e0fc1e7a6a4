"""The registry of noise kinds: what ``kind="gaussian"`` means, and how a callback resolves its kind and amount.

A :class:`NoiseKind` records a noise function with the name of its amount argument and the amount's valid range.
Kinds are selected by name through :func:`add_noise` and :func:`get_noise`, and users can add their own with
:func:`register_noise`. :func:`resolve_kind_amount` and :func:`check_kind_kwargs` check a callback's ``kind=``,
its one amount argument and ``kind_kwargs=`` in ``__init__``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import torch
from torch import Tensor

from lightning_noise._checks import describe, is_bool, is_number

Amount = float | Tensor


@dataclass(frozen=True)
class NoiseKind:
    """A registered kind of noise: its function, the name of its amount argument and the valid range.

    Args:
        name: the name users select it by (``kind="gaussian"``).
        fn: ``fn(x, amount, generator, **kwargs) -> Tensor``.
        amount: name of the amount argument (``"std"``, ``"p"``, ``"snr_db"``).
        low: smallest valid amount (inclusive).
        high: largest valid amount.
        high_inclusive: whether ``high`` itself is valid.
        zero: the amount that means "no noise" (0, or ``inf`` for a signal-to-noise ratio).
        elementwise_scale: whether the amount may be a per-feature tensor (relative scaling).
    """

    name: str
    fn: Callable[..., Tensor]
    amount: str = "std"
    low: float = 0.0
    high: float = math.inf
    high_inclusive: bool = True
    zero: float = 0.0
    elementwise_scale: bool = False

    def check_amount(self, value: float, argument: str | None = None) -> None:
        """Raise ``ValueError`` naming ``argument`` when ``value`` is outside this kind's range."""
        argument = argument or self.amount
        too_high = value > self.high or (value == self.high and not self.high_inclusive and not math.isinf(value))
        if math.isnan(value) or value < self.low or too_high:
            closing = "]" if self.high_inclusive else ")"
            raise ValueError(
                f"`{argument}` for {self.name!r} noise must be in [{self.low}, {self.high}{closing}, got {value}."
            )


_REGISTRY: dict[str, NoiseKind] = {}
_NoiseFn = TypeVar("_NoiseFn", bound=Callable[..., Tensor])


@overload
def register_noise(
    name: str,
    fn: _NoiseFn,
    *,
    amount: str = "std",
    low: float = 0.0,
    high: float = math.inf,
    high_inclusive: bool = True,
    zero: float = 0.0,
    elementwise_scale: bool = False,
    overwrite: bool = False,
) -> _NoiseFn: ...
@overload
def register_noise(
    name: str,
    fn: None = None,
    *,
    amount: str = "std",
    low: float = 0.0,
    high: float = math.inf,
    high_inclusive: bool = True,
    zero: float = 0.0,
    elementwise_scale: bool = False,
    overwrite: bool = False,
) -> Callable[[_NoiseFn], _NoiseFn]: ...
def register_noise(
    name: str,
    fn: Callable[..., Tensor] | None = None,
    *,
    amount: str = "std",
    low: float = 0.0,
    high: float = math.inf,
    high_inclusive: bool = True,
    zero: float = 0.0,
    elementwise_scale: bool = False,
    overwrite: bool = False,
) -> Callable[..., Any]:
    """Register a noise kind so callbacks can select it by name. Usable as a decorator.

    Args:
        name: the name to register.
        fn: ``fn(x, amount, generator=None, **kwargs) -> Tensor``; out of place, same dtype and device.
        amount: the name of the amount argument users pass to callbacks (``std``, ``p``, ``snr_db`` or
            ``amount``).
        low: smallest valid amount. high: largest valid amount. high_inclusive: whether ``high`` is valid.
        zero: the amount meaning "no noise".
        elementwise_scale: whether the amount may be a per-feature tensor.
        overwrite: replace an existing kind of the same name instead of raising.

    Raises:
        ValueError: the name is taken and ``overwrite`` is False, or ``amount`` is not a known argument name.

    Example::

        >>> import torch
        >>> from lightning_noise.functional import register_noise, add_noise
        >>> @register_noise("laplace", amount="std", overwrite=True)
        ... def laplace(x, std, generator=None):
        ...     u = torch.rand(x.shape, generator=generator, dtype=x.dtype) - 0.5
        ...     return x - std / 2**0.5 * u.sign() * torch.log1p(-2 * u.abs())
        >>> add_noise(torch.zeros(2), "laplace", 0.0).tolist()
        [0.0, 0.0]
    """
    if amount not in ("std", "p", "snr_db", "amount"):
        raise ValueError(f"`amount` must be one of 'std', 'p', 'snr_db', 'amount', got {amount!r}.")

    def _register(fn: _NoiseFn) -> _NoiseFn:
        if name in _REGISTRY and not overwrite:
            raise ValueError(f"A noise kind named {name!r} is already registered; pass overwrite=True to replace it.")
        _REGISTRY[name] = NoiseKind(name, fn, amount, low, high, high_inclusive, zero, elementwise_scale)
        return fn

    return _register(fn) if fn is not None else _register


def get_noise(kind: str | NoiseKind) -> NoiseKind:
    """Look up a registered noise kind by name.

    Raises:
        ValueError: the name is unknown; the message lists the registered kinds.
    """
    if isinstance(kind, NoiseKind):
        return kind
    try:
        return _REGISTRY[kind]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown noise `kind` {kind!r}; expected one of {available_noises()} or a kind added with "
            "lightning_noise.functional.register_noise."
        ) from None


def available_noises() -> list[str]:
    """The names of all registered noise kinds, sorted."""
    return sorted(_REGISTRY)


def add_noise(
    x: Tensor, kind: str | NoiseKind, amount: Amount, generator: torch.Generator | None = None, **kwargs: Any
) -> Tensor:
    """Apply the noise kind named ``kind`` with ``amount`` to ``x``; returns ``x`` itself for a zero amount.

    Example::

        >>> import torch
        >>> from lightning_noise.functional import add_noise
        >>> x = torch.ones(3)
        >>> add_noise(x, "gaussian", 0.0) is x
        True
    """
    noise_kind = get_noise(kind)
    if not isinstance(amount, Tensor) and amount == noise_kind.zero:
        return x
    return noise_kind.fn(x, amount, generator, **kwargs)


def resolve_kind_amount(owner: str, kind: str | NoiseKind, **given: Any) -> tuple[NoiseKind, str, Any]:
    """Pick the noise kind and its one amount argument among ``std=``, ``p=``, ``snr_db=`` and ``amount=``.

    Args:
        owner: the callback's class name, for messages.
        kind: a registered kind's name, or a :class:`NoiseKind`.
        given: the amount arguments as passed (``None`` for those not given).

    Returns:
        The registered kind, the name of its amount (``std``, ``p`` or ``snr_db``) and the amount given.

    Raises:
        ValueError: unknown kind, no amount, several amounts, or an amount the kind does not take.

    Example::

        >>> resolve_kind_amount("InputNoise", "dropout", std=None, p=0.1)[1:]
        ('p', 0.1)
    """
    noise_kind = get_noise(kind)
    provided = {argument: value for argument, value in given.items() if value is not None}
    if len(provided) != 1 or next(iter(provided)) not in (noise_kind.amount, "amount"):
        got = ", ".join(f"{k}={v!r}" for k, v in provided.items()) or "no amount"
        raise ValueError(
            f"{owner}: {noise_kind.name!r} noise takes its amount as `{noise_kind.amount}=` (or `amount=`), got {got}."
        )
    return noise_kind, noise_kind.amount, next(iter(provided.values()))


def check_kind_kwargs(owner: str, noise_kind: NoiseKind, kind_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check that ``kind_kwargs`` fit the signature of the kind's noise function, before training.

    Args:
        owner: the callback's class name, for messages.
        noise_kind: the kind whose function receives the arguments.
        kind_kwargs: extra keyword arguments of the noise function, or ``None``.

    Returns:
        The arguments as a new dict (empty for ``None``).

    Each value is also checked against the parameter's default, when it has one that is a bool, a number or a
    string: a bool must be a bool, a number a finite real number (``{"high": "1"}`` is refused here, not at the
    first forward inside ``torch.where``), a string a string.

    Raises:
        TypeError: ``kind_kwargs`` is not a mapping, or a value is not of its default's type.
        ValueError: an argument the function does not take (the message shows its signature), or a number that
            is NaN or infinite.

    Example::

        >>> check_kind_kwargs("InputNoise", get_noise("salt_and_pepper"), {"high": 2.0})
        {'high': 2.0}
    """
    if kind_kwargs is not None and not isinstance(kind_kwargs, Mapping):
        raise TypeError(
            f"{owner}: `kind_kwargs` must be a dict of keyword arguments or None, got {describe(kind_kwargs)}."
        )
    kwargs = dict(kind_kwargs or {})
    signature = inspect.signature(noise_kind.fn)
    try:
        signature.bind(None, None, None, **kwargs)
    except TypeError as error:
        raise ValueError(
            f"{owner}: `kind_kwargs` {kwargs} do not fit {noise_kind.name!r} noise ({error}); its function takes "
            f"({', '.join(signature.parameters)})."
        ) from None
    for name, value in kwargs.items():
        parameter = signature.parameters.get(name)
        if parameter is not None:
            _check_like_default(owner, noise_kind.name, name, value, parameter.default)
    return kwargs


def _check_like_default(owner: str, kind: str, name: str, value: Any, default: Any) -> None:
    """``value`` must have the type of ``default`` (a bool, a real number or a string; other defaults: no check)."""
    argument = f"{owner}: `kind_kwargs[{name!r}]` of {kind!r} noise"
    if is_bool(default):
        if not is_bool(value):
            raise TypeError(f"{argument} must be a bool like its default {default!r}, got {describe(value)}.")
    elif is_number(default):
        if not is_number(value):
            raise TypeError(f"{argument} must be a number like its default {default!r}, got {describe(value)}.")
        if not math.isfinite(float(value)):
            raise ValueError(f"{argument} must be a finite number, got {value!r}.")
    elif isinstance(default, str) and not isinstance(value, str):
        raise TypeError(f"{argument} must be a string like its default {default!r}, got {describe(value)}.")
