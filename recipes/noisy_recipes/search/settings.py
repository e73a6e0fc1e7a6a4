"""The Optuna sweeper's settings (``hydra.sweeper.*``) and search space, checked before anything is created.

Every check raises :class:`~noisy_recipes.utils.ConfigError` with one line naming the key, what was expected and
what was given; the sweeper prints it and exits with status 2, before a storage, a study or a run directory
exists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from noisy_recipes.search.errors import config_error

# hydra.sweeper.pruner names: (class, keyword arguments). Steps are validation epochs.
PRUNERS: dict[str, tuple[str, dict[str, Any]] | None] = {
    "none": None,
    "median": ("optuna.pruners.MedianPruner", {"n_startup_trials": 4, "n_warmup_steps": 1}),
    "successive_halving": ("optuna.pruners.SuccessiveHalvingPruner", {"min_resource": 1, "reduction_factor": 3}),
    "hyperband": ("optuna.pruners.HyperbandPruner", {"min_resource": 1, "reduction_factor": 3}),
}
DIRECTIONS = ("minimize", "maximize")


@dataclass
class Settings:
    """The checked ``hydra.sweeper`` settings (see ``conf/hydra/sweeper/noisy_optuna.yaml`` for each key)."""

    storage: str | None
    study_name: str
    n_trials: int
    n_jobs: int
    directions: list[str]
    objectives: list[str] | None
    sampler: dict[str, Any] | None
    pruner: str | dict[str, Any]
    retry_failed: int
    trials_per_process: int | None
    heartbeat_interval: int | None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def pruning(self) -> bool:
        return self.pruner != "none"


def _fail(key: str, expected: str, given: Any) -> ValueError:
    return config_error(f"hydra.sweeper.{key} must be {expected}; got {given!r}.")


def _int(value: Any, key: str, minimum: int, *, none: bool = False) -> int | None:
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(key, f"an integer >= {minimum}" + (" or null" if none else ""), value)
    return value


def read_settings(values: Mapping[str, Any]) -> Settings:
    """Check the sweeper's keys (plain containers, as Hydra passes them to the sweeper).

    Raises:
        ConfigError: n_trials or n_jobs < 1, an unknown direction or pruner, objectives that do not match the
            directions, a pruner on a multi-objective search, a negative retry_failed.
    """
    direction = values.get("direction", "minimize")
    directions = [direction] if isinstance(direction, str) else list(direction or [])
    if not directions or any(d not in DIRECTIONS for d in directions):
        raise _fail("direction", "minimize, maximize or a list of them (one per objective)", direction)
    objectives = values.get("objectives")
    if objectives is not None:
        objectives = [objectives] if isinstance(objectives, str) else [str(o) for o in objectives]
        if len(objectives) != len(directions):
            raise _fail("objectives", f"one metric per direction ({len(directions)}: {directions})", objectives)
    elif len(directions) > 1:
        raise _fail("objectives", f"a list of {len(directions)} metrics for directions {directions}", objectives)
    pruner = values.get("pruner") or "none"
    if isinstance(pruner, str):
        if pruner not in PRUNERS:
            raise _fail("pruner", f"one of {', '.join(PRUNERS)} (or a node with a _target_)", pruner)
    elif not isinstance(pruner, Mapping) or "_target_" not in pruner:
        raise _fail("pruner", f"one of {', '.join(PRUNERS)} or a node with a _target_", pruner)
    if pruner != "none" and len(directions) > 1:
        raise _fail("pruner", "none for a multi-objective (Pareto) search: Optuna prunes single objectives", pruner)
    retry = values.get("retry_failed", False)
    retry = int(retry) if isinstance(retry, bool) else retry
    study_name = values.get("study_name")
    if not isinstance(study_name, str) or not study_name:
        raise _fail("study_name", "a non-empty name", study_name)
    storage = values.get("storage")
    if storage is not None and (not isinstance(storage, str) or not storage.strip()):
        raise _fail("storage", "a database URL (sqlite:///..., postgresql://...), journal:PATH or null", storage)
    sampler = values.get("sampler")
    if sampler is not None and (not isinstance(sampler, Mapping) or "_target_" not in sampler):
        raise _fail("sampler", "a node with a _target_ (optuna.samplers.TPESampler) or null", sampler)
    params = values.get("params") or {}
    return Settings(
        storage=storage,
        study_name=study_name,
        n_trials=_int(values.get("n_trials"), "n_trials", 1),
        n_jobs=_int(values.get("n_jobs", 1), "n_jobs", 1),
        directions=directions,
        objectives=objectives,
        sampler=dict(sampler) if sampler is not None else None,
        pruner=pruner if isinstance(pruner, str) else dict(pruner),
        retry_failed=_int(retry, "retry_failed", 0),
        trials_per_process=_int(values.get("trials_per_process"), "trials_per_process", 1, none=True),
        heartbeat_interval=_int(values.get("heartbeat_interval"), "heartbeat_interval", 1, none=True),
        params={str(k): str(v) for k, v in params.items()},
    )


def build_pruner(pruner: str | Mapping[str, Any]) -> Any:
    """The Optuna pruner of ``hydra.sweeper.pruner`` (a name of :data:`PRUNERS` or a ``_target_`` node)."""
    import optuna
    from hydra.utils import get_class, instantiate

    if isinstance(pruner, Mapping):
        return instantiate(dict(pruner))
    spec = PRUNERS[pruner]
    if spec is None:
        return optuna.pruners.NopPruner()
    target, kwargs = spec
    return get_class(target)(**kwargs)


def build_sampler(sampler: Mapping[str, Any] | None, trial_number: int) -> Any:
    """The sampler of ``hydra.sweeper.sampler``, its ``seed`` (if set) shifted by ``trial_number``.

    Each trial samples in a new sampler (workers are processes, a trial may run in a fresh one), so a fixed seed
    alone would give every trial the same random draws; ``seed + trial_number`` gives each trial its own, and
    the same ones again when the same command runs with one worker.
    """
    from hydra.utils import instantiate

    if sampler is None:
        return None
    node = dict(sampler)
    if node.get("seed") is not None:
        node["seed"] = int(node["seed"]) + trial_number
    return instantiate(node)


# ---------------------------------------------------------------------------------------------- search space
@dataclass
class SearchSpace:
    """``distributions`` (Optuna's, by override key) and ``fixed`` (overrides given one value), in order."""

    distributions: dict[str, Any]
    fixed: dict[str, str]

    def fingerprint(self) -> str:
        """A JSON text that identifies the space (the distributions; fixed values may change between runs of a
        study): stored with the study, compared when a study is resumed."""
        from optuna.distributions import distribution_to_json

        space = {name: json.loads(distribution_to_json(d)) for name, d in self.distributions.items()}
        return json.dumps({"params": space}, sort_keys=True)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask ``trial`` for every parameter (Optuna's public ``suggest_*``); returns ``{key: value}``."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        values = {}
        for name, d in self.distributions.items():
            if isinstance(d, CategoricalDistribution):
                values[name] = trial.suggest_categorical(name, d.choices)
            elif isinstance(d, FloatDistribution):
                values[name] = trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)
            elif isinstance(d, IntDistribution):
                values[name] = trial.suggest_int(name, d.low, d.high, log=d.log, step=d.step)
        return values

    def overrides(self, values: Mapping[str, Any]) -> list[str]:
        """The Hydra overrides of one trial: its sampled values, then the fixed ones."""
        return [f"{name}={value}" for name, value in values.items()] + [f"{k}={v}" for k, v in self.fixed.items()]


def parse_space(params: Mapping[str, str], arguments: Sequence[str]) -> SearchSpace:
    """The search space of ``hydra.sweeper.params`` and the command line: ``choice(a, b)`` is categorical,
    ``interval(lo, hi)`` a float (integers if both ends are), ``tag(log, interval(...))`` on a log scale,
    ``range(a, b, step)`` integers (floats if any is), ``a,b,c`` (a command-line sweep) categorical; any other
    value is fixed in every trial.

    Raises:
        ConfigError: an override that does not parse, or an empty choice or interval.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep, Transformer
    from hydra.errors import HydraException
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    texts = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    try:
        parsed = OverridesParser.create().parse_overrides(texts)
    except HydraException as error:
        raise config_error(
            f"hydra.sweeper.params must be Hydra sweep overrides; {str(error).splitlines()[0]}"
        ) from None
    distributions: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed[key] = override.get_value_element_as_str()
            distributions.pop(key, None)
            continue
        fixed.pop(key, None)
        value = override.value()
        if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
            choices = list(override.sweep_iterator(transformer=Transformer.encode))
            if not choices:
                raise _fail(f"params.{key}", "a non-empty choice", override.input_line)
            distributions[key] = CategoricalDistribution(choices)
        elif isinstance(value, RangeSweep):
            start, stop, step = value.start, value.stop, value.step
            if any(isinstance(v, float) for v in (start, stop, step)):
                distributions[key] = FloatDistribution(start, stop - step, step=step)
            else:
                distributions[key] = IntDistribution(int(start), int(stop) - int(step), step=int(step))
        elif isinstance(value, IntervalSweep):
            start, end, log = value.start, value.end, "log" in value.tags
            if not (isinstance(start, (int, float)) and isinstance(end, (int, float)) and start < end):
                raise _fail(f"params.{key}", "interval(low, high) with low < high", override.input_line)
            if log and start <= 0:
                raise _fail(f"params.{key}", "a log interval with low > 0", override.input_line)
            both_int = isinstance(start, int) and isinstance(end, int)
            distributions[key] = (IntDistribution if both_int else FloatDistribution)(start, end, log=log)
        else:
            raise _fail(f"params.{key}", "choice(...), interval(...) or range(...)", override.input_line)
    return SearchSpace(distributions, fixed)


def finite(values: Sequence[Any]) -> list[float] | None:
    """``values`` as floats if they are all finite numbers, else None."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None
