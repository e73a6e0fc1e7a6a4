"""Values of the wrong type on the command line (``noise.input.std.amount=abc``), found before anything is built.

The YAML configs carry no types: a value reaches its ``_target_`` as whatever the command line gave, and a string
where a number belongs fails deep inside the callee (``'<' not supported between instances of 'str' and 'int'``).
:func:`type_problems` checks every plain value of a node with a ``_target_`` against the annotation of the
parameter it is passed to, as far as that annotation says something certain about a plain value: ``float``
(an int is fine), ``int``, ``bool``, ``str``, ``None``, ``Literal[...]``, a list or sequence (a single value is
not one) and unions of these. Other annotations
(classes, containers, callables) are left to the callee's own checks.

Example::

    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({"lr": {"_target_": "noisy_recipes.schedules.scaled", "amount": "abc", "shape": 1}})
    >>> type_problems(cfg)
    ["`lr.amount` must be a float (a number), got 'abc' (a string)"]
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["type_problems"]

UNKNOWN = None  # the annotation says nothing certain about the value

SEQUENCES = (list, tuple, collections.abc.Sequence)
NAMES = {float: "a float (a number)", int: "an integer", bool: "a boolean (true or false)", str: "a string"}
PLAIN = {type(None): "null", bool: "a boolean", int: "an integer", float: "a float", str: "a string"}


def type_problems(cfg: DictConfig, prefix: str = "") -> list[str]:
    """One sentence per plain value of ``cfg`` (recursively, Hydra's ``hydra`` node left out) that the parameter
    it is passed to cannot take: ``"`noise.input.std.amount` must be a float (a number), got 'abc' (a string)"``.

    Values that fail to resolve, targets that cannot be imported and parameters without a usable annotation
    are skipped: instantiation reports those itself.
    """
    problems = []
    for path, node in _target_nodes(cfg, prefix):
        parameters = _parameters(node)
        for key in node:
            key = str(key)
            if key.startswith("_") or key not in parameters or OmegaConf.is_missing(node, key):
                continue
            try:
                value = node[key]
            except Exception:  # an interpolation to nothing: reported when it is read
                continue
            if OmegaConf.is_config(value):
                continue
            annotation = parameters[key]
            if _accepts(value, annotation) is False:
                raw = node._get_node(key)
                source = f", from {raw._value()}" if raw is not None and raw._is_interpolation() else ""
                got = f"{value!r} ({PLAIN[type(value)]}{source})"
                problems.append(f"`{path}{key}` must be {_expected(annotation)}, got {got}")
    return problems


def _target_nodes(cfg: Any, prefix: str) -> Iterator[tuple[str, DictConfig]]:
    if not isinstance(cfg, DictConfig):
        return
    if "_target_" in cfg:
        yield prefix, cfg
    for key in map(str, cfg):
        if (not prefix and key == "hydra") or OmegaConf.is_missing(cfg, key):
            continue
        child = cfg._get_node(key)
        if isinstance(child, DictConfig) and not child._is_interpolation():
            yield from _target_nodes(child, f"{prefix}{key}.")


def _parameters(node: DictConfig) -> dict[str, Any]:
    """``{name: annotation}`` of the node's target's parameters (its ``__init__`` for a class); {} if unknown."""
    try:
        from hydra.utils import get_object

        target = get_object(str(node._target_))
        signature = inspect.signature(target, eval_str=True)
    except Exception:  # not importable, no signature, or annotations that do not evaluate: left to the callee
        return {}
    parameters = dict(signature.parameters)
    build = getattr(target, "build", None)  # the recipes' models pass their other keywords to `build`
    if callable(build) and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        try:
            parameters = {**inspect.signature(build, eval_str=True).parameters, **parameters}
        except Exception:
            pass
    return {
        name: p.annotation
        for name, p in parameters.items()
        if p.annotation is not inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def _members(annotation: Any) -> tuple[Any, ...] | None:
    """The members of a union (``X | Y``, ``Optional[X]``), else None."""
    if typing.get_origin(annotation) is typing.Union or isinstance(annotation, types.UnionType):
        return typing.get_args(annotation)
    return None


def _accepts(value: Any, annotation: Any) -> bool | None:
    """Whether a plain ``value`` fits ``annotation``: True, False, or None (:data:`UNKNOWN`)."""
    members = _members(annotation)
    if members is not None:
        answers = [_accepts(value, member) for member in members]
        if True in answers:
            return True
        return False if all(answer is False for answer in answers) else UNKNOWN
    if typing.get_origin(annotation) is typing.Literal:
        return any(type(value) is type(choice) and value == choice for choice in typing.get_args(annotation))
    if annotation is type(None) or annotation is None:
        return value is None
    if typing.get_origin(annotation) in SEQUENCES:  # a list in the config is a node, skipped: this is a scalar
        items = typing.get_args(annotation)
        return UNKNOWN if isinstance(value, str) and items[:1] in ((), (str,)) else False
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (bool, str):
        return isinstance(value, annotation)
    return UNKNOWN


def _expected(annotation: Any) -> str:
    members = _members(annotation)
    if members is not None:
        choices = [c for m in members if typing.get_origin(m) is typing.Literal for c in typing.get_args(m)]
        others = [_expected(m) for m in members if typing.get_origin(m) is not typing.Literal]
        return " or ".join([*([_expected(typing.Literal[tuple(choices)])] if choices else []), *others])
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(annotation))
    if annotation is type(None) or annotation is None:
        return "null"
    if typing.get_origin(annotation) in SEQUENCES:
        items = typing.get_args(annotation)
        item = NAMES.get(items[0], "values").split(" (")[0].removeprefix("a ").removeprefix("an ") if items else "value"
        return f"a list of {item}s, e.g. [1, 2]" if items and items[0] in (int, float) else f"a list of {item}s"
    return NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))
