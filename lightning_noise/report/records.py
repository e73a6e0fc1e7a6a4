"""Run records: reading ``metrics.json`` files, and what noise (family, amount) a record describes.

A record may carry ``noise_amounts``, the effective amount of each noise it trained with
(``{"input.std": 0.1}``: what each built noise callback received, at the end of its schedule that means the most
noise (the largest std, the lowest ``snr_db``); ``recipes/train.py`` writes it from the callbacks). When present it
gives the amount, and a record whose effective amounts are all 0 is a no-noise (baseline-eligible) run; records
without it are read from their ``noise`` config alone.
"""

from __future__ import annotations

import glob
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "AMOUNT_KEYS",
    "LABEL_KEYS",
    "NONE_LABEL",
    "adds_no_noise",
    "describe_noise",
    "describe_run",
    "load_runs",
    "most_noise",
    "plot_axis",
]

# How the report's plots name a noise, by its key in the record's ``noise`` (the README's names).
NOISE_NAMES = {
    "input": "input noise",
    "activation": "hidden noise",
    "weight": "weight noise",
    "gradient": "gradient noise",
    "label_smoothing": "label smoothing",
    "label_flip": "label flips",
    "label": "label noise",
    "target": "target noise",
}

AMOUNT_KEYS = ("amount", "std", "p", "snr_db", "eta", "sigma", "alpha", "smoothing", "rate")
LABEL_KEYS = ("kind", "name", "type", "label")
NONE_LABEL = "none"


def load_runs(source: str | Path | Iterable[str | Path], *, pattern: str = "**/metrics.json") -> list[dict[str, Any]]:
    """Read run records from directories (searched with ``pattern``), JSON files, or glob patterns.

    Each record gets ``path`` and defaults for ``name`` (its folder's name), ``group`` (the name) and ``seed``
    (None). Records are sorted by group, then seed.

    Raises:
        FileNotFoundError: nothing matched.
        ValueError: a file that is not a JSON object with a ``metrics`` mapping (the message names it).
    """
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    paths: list[Path] = []
    for item in sources:
        item = Path(item)
        if item.is_dir():
            paths.extend(sorted(item.glob(pattern)))
        elif item.is_file():
            paths.append(item)
        else:
            paths.extend(Path(p) for p in sorted(glob.glob(str(item), recursive=True)))
    if not paths:
        raise FileNotFoundError(f"No run records found in {[str(s) for s in sources]} (looked for {pattern!r}).")
    runs = [_read_record(path) for path in dict.fromkeys(p.resolve() for p in paths)]
    return sorted(runs, key=lambda r: (str(r["group"]), _seed_key(r["seed"])))


def _seed_key(seed: Any) -> tuple[int, Any]:
    return (0, seed) if isinstance(seed, (int, float)) else (1, str(seed))


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"Run record {path} is not valid JSON: {error}.") from None
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        raise ValueError(f"Run record {path} must be a JSON object with a 'metrics' mapping, got {str(record)[:200]}.")
    record = dict(record)
    record["path"] = str(path)
    record.setdefault("name", path.parent.name)
    record["group"] = str(record.get("group") or record["name"])
    record.setdefault("seed", None)
    record.setdefault("noise", None)
    return record


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            if str(key).startswith("_"):
                continue
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def _is_none(noise: Any) -> bool:
    if noise is None or noise is False or noise == {} or noise == []:
        return True
    if isinstance(noise, str):
        return noise.strip().lower() in ("", NONE_LABEL, "null")
    if isinstance(noise, (int, float)):
        return noise == 0
    if isinstance(noise, Mapping):
        return all(adds_no_noise(k, v) for k, v in _flatten(noise).items())
    return False


def describe_noise(noise: Any) -> tuple[str, float | None]:
    """``(family, amount)`` of a record's ``noise``: ``("none", 0.0)`` for no noise; amount None when not found.

    Example::

        >>> describe_noise({"kind": "input", "std": 0.1})
        ('input std', 0.1)
        >>> describe_noise({"activation": {"_target_": "lightning_noise.ActivationNoise", "std": 1.0}})
        ('activation.std', 1.0)
        >>> describe_noise(None)
        ('none', 0.0)
    """
    if _is_none(noise):
        return NONE_LABEL, 0.0
    if isinstance(noise, (int, float)) and not isinstance(noise, bool):
        return "noise", float(noise)
    if not isinstance(noise, Mapping):
        return str(noise), None
    flat = _flatten(noise)
    amounts = [
        (key, value)
        for key, value in flat.items()
        if key.split(".")[-1] in AMOUNT_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    labels = [str(v) for k, v in flat.items() if k.split(".")[-1] in LABEL_KEYS and isinstance(v, str)]
    if not amounts:
        return " ".join(labels) or json.dumps(noise, sort_keys=True, default=str), None
    key, value = amounts[0]
    return " ".join([*labels, key]), float(value)


def _is_snr(key: str) -> bool:
    return "snr_db" in str(key).split(".")


def adds_no_noise(key: str, value: Any) -> bool:
    """Whether the amount ``value`` of the argument ``key`` means no noise: 0 (or empty) for a std or a fraction,
    +inf for a signal-to-noise ratio (``snr_db``, where 0 dB is heavy noise).

    Example::

        >>> adds_no_noise("input.std", 0.0), adds_no_noise("input.snr_db", 0.0), adds_no_noise("snr_db", math.inf)
        (True, False, True)
    """
    if _is_snr(key):
        return isinstance(value, (int, float)) and value == math.inf
    return _is_none(value)


def most_noise(key: str, low: float, high: float) -> float:
    """Of the amounts ``low <= high`` an argument ``key`` takes over training, the one that means the most noise:
    the lowest signal-to-noise ratio (``snr_db``), else the largest amount.

    Example::

        >>> most_noise("input.std", 0.0, 0.1), most_noise("input.snr_db", 10.0, math.inf)
        (0.1, 10.0)
    """
    return low if _is_snr(key) else high


def describe_run(record: Mapping[str, Any]) -> tuple[str, float | None]:
    """``(family, amount)`` of a run record: :func:`describe_noise` of its ``noise``, with the amount taken from
    its effective ``noise_amounts`` when the record has them (and ``("none", 0.0)`` when they are all 0).

    Example::

        >>> noise = {"input": {"std": {"amount": 0.2, "scale": 0.5}}}
        >>> describe_run({"noise": noise, "noise_amounts": {"input.std": 0.1}})
        ('input.std.amount', 0.1)
        >>> describe_run({"noise": noise, "noise_amounts": {"input.std": 0.0}})
        ('none', 0.0)
    """
    family, amount = describe_noise(record.get("noise"))
    effective = record.get("noise_amounts")
    if not isinstance(effective, Mapping):
        return family, amount
    values = {str(k): float(v) for k, v in effective.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if all(adds_no_noise(k, v) for k, v in values.items()):
        return NONE_LABEL, 0.0
    if family == NONE_LABEL:
        return family, amount
    # the effective amount of the noise the family names (its key starts the family's amount key), else the first
    named = [v for k, v in values.items() if family.split(" ")[-1].startswith(f"{k}.")]
    return family, named[0] if named else next(iter(values.values()))


def plot_axis(record: Mapping[str, Any], family: str, amount: float | None) -> tuple[str, str, float | None]:
    """``(line label, amount name, x)`` of a run in the metric-vs-noise plot.

    The label names the noise as the README does (``hidden noise`` for ``ActivationNoise``); the amount is the
    one the configs and the README use: for an amount under an annealed schedule (``Annealed(eta, gamma)``,
    whose value is ``sqrt(eta / (1 + t) ** gamma)``) that is ``eta = amount ** 2``, else the amount itself.

    Example::

        >>> annealed = {"gradient": {"std": {"amount": 0.548, "shape": {"_target_": "x.Annealed", "eta": 1.0}}}}
        >>> label, name, x = plot_axis({"noise": annealed}, "gradient.std.amount", 0.548)
        >>> label, name, round(x, 3)
        ('gradient noise (eta)', 'eta', 0.3)
        >>> plot_axis({"noise": None}, "gaussian activation.std.amount", 0.1)
        ('hidden noise (gaussian std)', 'std', 0.1)
    """
    if family == NONE_LABEL:
        return NONE_LABEL, "", amount
    *kinds, path = family.split(" ")
    parts = path.split(".")
    if parts and parts[-1] == "amount":
        parts = parts[:-1]
    name = NOISE_NAMES.get(parts[0], parts[0]) if len(parts) > 1 else ""
    arg = parts[-1] if parts else "amount"
    node: Any = record.get("noise")
    for part in parts:
        node = node.get(part) if isinstance(node, Mapping) else None
    shape = node.get("shape") if isinstance(node, Mapping) else None
    if isinstance(shape, Mapping) and str(shape.get("_target_", "")).endswith("Annealed") and amount is not None:
        arg, amount = "eta", amount**2
    detail = " ".join([*kinds, arg])
    return (f"{name} ({detail})" if name else family), arg, amount
