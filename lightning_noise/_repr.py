"""A readable ``repr`` for the callbacks: the class and the constructor arguments that differ from their defaults.

``InputNoise(std=0.1, stages=["train", "test"])`` prints as itself, and ``eval(repr(callback))`` builds an equal
callback (a plain function prints as its qualified name, so that one does not evaluate back). Arguments equal to
their default are left out, so a callback built by a config system that passes every argument (LightningCLI,
Hydra) prints as short as one written by hand.
"""

from __future__ import annotations

import inspect
import re
import types
from typing import Any

_EMPTY = inspect.Parameter.empty


class ArgumentsRepr:
    """Mixin: records the arguments a constructor was called with (in ``__new__``, before any ``__init__`` runs,
    so it holds for subclasses with their own ``__init__``) and prints them in signature order."""

    _init_arguments: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        instance = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(instance, *args, **kwargs)
        except TypeError:  # ``__init__`` raises the same error next
            arguments: dict[str, Any] = {}
        else:
            arguments = dict(list(bound.arguments.items())[1:])
        instance._init_arguments = arguments
        return instance

    def __repr__(self) -> str:
        parameters = inspect.signature(type(self).__init__).parameters
        shown: list[str] = []
        for name, value in getattr(self, "_init_arguments", {}).items():
            kind = parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                shown.extend(format_value(v) for v in value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                shown.extend(f"{k}={format_value(v)}" for k, v in value.items())
            elif not is_default(value, parameters[name].default):
                shown.append(f"{name}={format_value(value)}")
        return f"{type(self).__name__}({', '.join(shown)})"


def is_default(value: Any, default: Any) -> bool:
    """Whether ``value`` equals the parameter default ``default`` (a list equals a tuple with the same items).

    Example::

        >>> is_default(["train"], ("train",)), is_default(0.1, 0.0), is_default(1, inspect.Parameter.empty)
        (True, False, False)
    """
    if default is _EMPTY:
        return False
    if value is default:
        return True
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        value, default = tuple(value), tuple(default)
    try:
        return (value == default) is True  # a tensor or an array compares elementwise: never "equal" here
    except Exception:  # a comparison that raises (some array types against None)
        return False


def format_value(value: Any) -> str:
    """``repr(value)`` on one line; a function or a class as its qualified name.

    Example::

        >>> format_value(print), format_value([0.1, 0.2])
        ('print', '[0.1, 0.2]')
    """
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)):
        return value.__qualname__
    return re.sub(r"\s*\n\s*", " ", repr(value))
