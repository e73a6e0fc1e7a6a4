"""The end of a search: best trials, history, fANOVA importances, tied best values, and for two objectives the
Pareto front (table and plot), on the console, in ``search.md`` and ``optimization_results.yaml`` in the
multirun directory, and in a W&B run when the recipe logs to W&B.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from noisy_recipes.search.ties import tie_message

log = logging.getLogger(__name__)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _label(trial: Any) -> str:
    """A trial's parameters as text: ``noise=input noise_scale=1.3``."""
    return " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """The indices of the points no other point dominates (at least as good in every objective, better in one).

    Example::

        >>> pareto_front([(1, 5), (2, 2), (3, 3), (5, 1)], ["minimize", "minimize"])
        [0, 1, 3]
    """
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    keyed = [[s * float(v) for s, v in zip(signs, p, strict=True)] for p in points]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))

    return [i for i, p in enumerate(keyed) if not any(dominates(q, p) for j, q in enumerate(keyed) if j != i)]


def importances(study: Any) -> dict[str, dict[str, float]] | str:
    """fANOVA importances of the parameters (Optuna's ``FanovaImportanceEvaluator``, seed 0) per objective, or
    the reason they cannot be computed (fewer than two complete trials, a single parameter value...)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    names = _objective_names(study)
    out = {}
    try:
        for index, name in enumerate(names):
            target = (lambda t, i=index: t.values[i]) if len(names) > 1 else None
            found = optuna.importance.get_param_importances(
                study, evaluator=FanovaImportanceEvaluator(seed=0), target=target
            )
            out[name] = {k: float(v) for k, v in found.items()}
    except (ValueError, RuntimeError) as error:
        return f"not available: {' '.join(str(error).split())[:200]}"
    return out


def _objective_names(study: Any) -> list[str]:
    names = study.user_attrs.get("noisy_recipes:objectives")
    return list(names) if names else [f"value {i}" for i in range(len(study.directions))]


def summarize(
    study: Any, *, sweep_dir: Path, metric_names: list[str], logger_cfg: Any = None, group: str | None = None
) -> str:
    """Write ``search.md``, ``optimization_results.yaml`` (and for two objectives ``pareto.csv`` and
    ``pareto.png``) in ``sweep_dir``, print the summary and the tie warning; returns the Markdown."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    directions = [d.name.lower() for d in study.directions]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    states = {s.name: len([t for t in trials if t.state == s]) for s in TrialState}
    lines = [f"# Search `{study.study_name}`", ""]
    lines += [
        f"Objectives: {', '.join(f'{n} ({d})' for n, d in zip(metric_names, directions, strict=True))}. Trials: "
        + ", ".join(f"{v} {k.lower()}" for k, v in states.items() if v)
        + ".",
        "",
    ]
    results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name}
    tie = ""
    if len(directions) == 1 and complete:
        ranked = sorted(complete, key=lambda t: t.value, reverse=directions[0] == "maximize")
        best = ranked[0]
        lines += ["## Best trials", "", f"| rank | trial | {metric_names[0]} | parameters |", "|---|---|---|---|"]
        lines += [f"| {i + 1} | {t.number} | {t.value:.6g} | {_label(t)} |" for i, t in enumerate(ranked[:5])]
        results.update(best_params=dict(best.params), best_value=float(best.value), best_trial=best.number)
        tie = tie_message(
            [t.value for t in complete],
            [f"#{t.number}: {_label(t)}" for t in complete],
            metric=metric_names[0],
            direction=directions[0],
        )
    elif complete:
        front = [complete[i] for i in pareto_front([t.values for t in complete], directions)]
        front.sort(key=lambda t: t.values[0])
        header = " | ".join(metric_names)
        lines += ["## Pareto front", "", f"| trial | {header} | parameters |", "|---|" + "---|" * len(metric_names)]
        lines[-1] += "---|"
        lines += [f"| {t.number} | {' | '.join(f'{v:.6g}' for v in t.values)} | {_label(t)} |" for t in front]
        lines += ["", "![Pareto front](pareto.png)"]
        results["solutions"] = [{"trial": t.number, "params": dict(t.params), "values": list(t.values)} for t in front]
        write_pareto(complete, front, sweep_dir=sweep_dir, metric_names=metric_names, directions=directions)
    found = importances(study)
    lines += ["", "## Parameter importances (fANOVA)", ""]
    if isinstance(found, str):
        lines.append(found)
    else:
        for name, values in found.items():
            lines.append(f"- {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
        results["importances"] = found
    lines += ["", "## History", "", "| trial | state | " + " | ".join(metric_names) + " | parameters | worker |"]
    lines.append("|---|---|" + "---|" * len(metric_names) + "---|---|")
    for t in trials:
        values = [f"{v:.6g}" for v in t.values] if t.values else [""] * len(metric_names)
        state = t.state.name.lower() + (f" at step {t.last_step}" if t.state == TrialState.PRUNED else "")
        worker = t.user_attrs.get("worker", "")
        lines.append(f"| {t.number} | {state} | {' | '.join(values)} | {_label(t)} | {worker} |")
    if tie:
        lines += ["", f"**Warning**: {tie}"]
        log.warning(tie)
    text = "\n".join(lines) + "\n"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "search.md").write_text(text)
    _save_yaml(results, sweep_dir / "optimization_results.yaml")
    _print(text)
    if logger_cfg is not None:
        log_to_wandb(study, logger_cfg, sweep_dir=sweep_dir, metric_names=metric_names, group=group)
    return text


def _save_yaml(results: dict[str, Any], path: Path) -> None:
    from omegaconf import OmegaConf

    OmegaConf.save(OmegaConf.create(json.loads(json.dumps(results))), path)


def _print(markdown: str) -> None:
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(markdown))


def write_pareto(
    trials: list[Any], front: list[Any], *, sweep_dir: Path, metric_names: list[str], directions: list[str]
) -> None:
    """``pareto.csv`` (every complete trial, whether it is on the front) and ``pareto.png`` (each trial a point
    labelled by its parameters, the front joined)."""
    import csv

    from lightning_noise._figures import new_figure, save_figure

    on_front = {t.number for t in front}
    keys = sorted({k for t in trials for k in t.params})
    with (sweep_dir / "pareto.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["trial", *metric_names, *keys, "pareto"])
        for t in trials:
            writer.writerow([t.number, *t.values, *(t.params.get(k, "") for k in keys), t.number in on_front])
    fig = new_figure("The Pareto front of a search", (7, 5))
    ax = fig.subplots()
    ax.scatter([t.values[0] for t in trials], [t.values[1] for t in trials], c="0.6", label="trial")
    ax.plot([t.values[0] for t in front], [t.values[1] for t in front], "o-", c="C3", label="Pareto front")
    for t in trials:
        ax.annotate(_label(t), (t.values[0], t.values[1]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{metric_names[0]} ({directions[0]})")
    ax.set_ylabel(f"{metric_names[1]} ({directions[1]})")
    ax.legend()
    save_figure(fig, sweep_dir / "pareto.png")


def log_to_wandb(
    study: Any, logger_cfg: Any, *, sweep_dir: Path, metric_names: list[str], group: str | None = None
) -> None:
    """A W&B run ``<study> search`` in the group of the trials' runs (the recipe's W&B project, offline unless the
    logger says otherwise) holding the history table, the best value and, for two objectives, the Pareto table
    and plot."""
    nodes = [n for n in (logger_cfg or {}).values() if n and str(n.get("_target_", "")).endswith("WandbLogger")]
    if not nodes:
        return
    import wandb
    from optuna.trial import TrialState

    node = nodes[0]
    run = wandb.init(
        project=node.get("project"),
        mode="offline" if node.get("offline", True) else "online",
        dir=str(sweep_dir),
        name=f"{study.study_name} search",
        group=group,
        tags=["optuna search"],
        reinit="create_new",
    )
    keys = sorted({k for t in study.trials for k in t.params})
    rows = [
        [t.number, t.state.name, *(t.values or [None] * len(metric_names)), *(str(t.params.get(k)) for k in keys)]
        for t in study.trials
    ]
    run.log({"search/history": wandb.Table(columns=["trial", "state", *metric_names, *keys], data=rows)})
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if len(metric_names) == 2 and (sweep_dir / "pareto.png").is_file():
        run.log({"search/pareto": wandb.Image(str(sweep_dir / "pareto.png"))})
        import csv

        with (sweep_dir / "pareto.csv").open() as handle:
            table = list(csv.reader(handle))
        run.log({"search/pareto_table": wandb.Table(columns=table[0], data=table[1:])})
    elif complete:
        run.summary.update({"search/best_value": study.best_value, "search/best_trial": study.best_trial.number})
    run.finish()
