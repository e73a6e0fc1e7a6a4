"""Hydra's own configuration errors as one line and exit status 2, like the recipe's :class:`ConfigError`.

Hydra reports a mistake on the command line (an unknown option of a group, a new key without ``+``, an override
it cannot parse, an interpolation to nothing) in its own words over several lines, then exits with status 1.
:func:`one_line_errors` wraps the ``@hydra.main`` entry point so that these end like the recipe's own checks: one
line on stderr saying what to change, exit status 2, and no empty sweep directory left behind.
``HYDRA_FULL_ERROR=1`` keeps Hydra's behaviour (the full traceback, status 1).

Example::

    >>> from hydra.errors import MissingConfigException
    >>> error = MissingConfigException("...", missing_cfg_file="noise/inptu", options=["input"])
    >>> print(describe(error))
    noise=inptu: no such option in the config group 'noise'. Available: input (one YAML per option in conf/noise/).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
    SearchPathException,
)
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

__all__ = ["RecordSweepDir", "describe", "exit_with", "one_line", "one_line_errors"]

CONF = Path(__file__).resolve().parents[2] / "conf"  # the recipes' configs (a list of a group's options)
GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines and tabs included) as one space."""
    return " ".join(str(text).split())


def exit_with(message: str) -> NoReturn:
    """Print ``Error: <message>`` on one line of stderr and exit with status 2 (a usage error)."""
    print(f"Error: {one_line(message)}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def describe(error: BaseException) -> str | None:
    """What to change, in one line, for a configuration mistake that Hydra or OmegaConf raised while composing
    the config or making the run directory; None for anything else (a bug keeps its traceback)."""
    message = _describe(error)
    return None if message is None else one_line(message)


def _describe(error: BaseException) -> str | None:
    if isinstance(error, MissingConfigException):
        return _missing_config(error)
    if isinstance(error, OverrideParseException):
        skip = ("See https", "Error parsing override")
        reason = [line for line in str(error).splitlines() if line.strip() and not line.startswith(skip)]
        return f"cannot parse the override {error.override!r}: {'; '.join(reason)}. Write key=value ({GRAMMAR})."
    if isinstance(error, ConfigCompositionException):
        return _composition(error)
    if isinstance(error, SearchPathException):
        return str(error)
    if isinstance(error, OmegaConfBaseException):
        return _omegaconf(error)
    return None


def _missing_config(error: MissingConfigException) -> str:
    path = str(error.missing_cfg_file or "")
    parent = re.match(r"In '([^']+)':", str(error))
    asked_by = parent.group(1) if parent else "train"
    where = "" if asked_by == "train" or asked_by.startswith("hydra/") else f" (asked for in conf/{asked_by}.yaml)"
    if "/" not in path:
        first = str(error).split("\n\n", 1)[0].split("\nConfig search path:", 1)[0]
        return f"{first} The configs are in conf/."
    group, option = path.rsplit("/", 1)
    found = error.options if error.options is not None else sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    options = ", ".join(found) or "none"
    return (
        f"{group}={option}: no such option in the config group {group!r}{where}. Available: {options} (one YAML "
        f"per option in conf/{group}/)."
    )


def _composition(error: ConfigCompositionException) -> str:
    text = str(error)
    missing = re.match(r"Could not override '([^']+)'\.\s*To append to your config use \+(\S+)", text)
    if missing:
        key, override = missing.groups()
        return (
            f"{key} is not a key of the config (misspelled?). To add it as a new key, write +{override}; "
            f"`python recipes/train.py --cfg job` prints the keys there are."
        )
    sweep = re.match(r"Ambiguous value for argument '([^=']+)=([^']*)'", text)
    if sweep:
        key, values = sweep.groups()
        return (
            f"{key}={values} is a sweep: add -m (--multirun) to run one job per value, or write {key}=[{values}] "
            f"for a list, {key}='{values}' (quoted) for a string."
        )
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException):
        text += f" ({_omegaconf(cause)})"
    return text


def _omegaconf(error: OmegaConfBaseException) -> str:
    """OmegaConf's message without its ``full_key:``/``object_type=`` lines, naming the key instead."""
    first = str(error).split("\n    full_key:", 1)[0].strip()
    key = getattr(error, "full_key", None)
    return f"{first} (key {key})" if key and key not in first else first


@contextmanager
def one_line_errors(task_function: Callable[..., Any]) -> Iterator[None]:
    """Run a ``@hydra.main`` entry point (``task_function``) with Hydra's configuration errors as one line and exit
    status 2 (:func:`describe`); the sweep directory a refused multirun made (only its ``multirun.yaml``) is
    removed. Errors raised inside the task function itself are left alone: the recipe reports its own.

    Hydra prints its errors in ``hydra._internal.utils.run_and_report``, which every step of ``@hydra.main``
    goes through and which has no public hook: it is wrapped here while the entry point runs.
    """
    from hydra._internal import utils as hydra_utils

    original = hydra_utils.run_and_report
    task_code = getattr(task_function, "__wrapped__", task_function).__code__

    def run_and_report(func: Callable[[], Any]) -> Any:
        def guarded() -> Any:
            try:
                return func()
            except Exception as error:
                if os.environ.get("HYDRA_FULL_ERROR") == "1" or _raised_in(error, task_code):
                    raise
                message = describe(error)
                if message is None:
                    raise
                RecordSweepDir.remove_unused()
                exit_with(message)

        return original(guarded)

    hydra_utils.run_and_report = run_and_report
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


def _raised_in(error: BaseException, code: Any) -> bool:
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


class RecordSweepDir(Callback):
    """A Hydra callback (``hydra.callbacks`` in ``conf/hydra/default.yaml``) that notes the sweep directory of a
    multirun, so that a sweep refused before its first job (an unknown option among its values) leaves nothing."""

    sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        RecordSweepDir.sweep_dir = Path(str(config.hydra.sweep.dir))

    @classmethod
    def remove_unused(cls) -> None:
        """Remove the noted sweep directory if it holds only Hydra's ``multirun.yaml``, then its empty parents."""
        from noisy_recipes.utils import _rmdir_if_empty

        sweep_dir = cls.sweep_dir
        if sweep_dir is None or not sweep_dir.is_dir():
            return
        if [p.name for p in sweep_dir.iterdir()] == ["multirun.yaml"]:
            (sweep_dir / "multirun.yaml").unlink()
        _rmdir_if_empty(sweep_dir)
