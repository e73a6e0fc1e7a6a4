"""Regenerate a method card's measurements (``docs/methods/CARD.md``): run its sweeps, keep their summaries, write
its tables.

    python recipes/cards.py input            # the input-noise card: its studies, then its table
    python recipes/cards.py gradient         # + the Neelakantan et al. (2015) table on Fashion-MNIST
    python recipes/cards.py input --tiny --root /tmp/cards   # the smoke test's budget, everything under /tmp/cards

A *study* is one comparison over seeds (``recipes/compare.py --sweep experiment=... variant=a,b,c 'seed=range(5)'``,
the runs in ``logs/cards/STUDY/runs``); several cards read one study (the Fashion-MNIST MLP study holds an arm of
every noise kind against one shared no-noise baseline). A study whose ``summary.json`` exists is reused unless
``--force`` is given. Its ``summary.json`` and ``report.md`` are copied to ``docs/methods/data/STUDY/`` (committed;
small); the run directories stay in ``logs/`` (not committed). The gradient card's Neelakantan et al. table goes
to ``reports/neelakantan_fashion_mnist/`` (``summary.json``, ``report.md``; one sweep per cell in
``logs/cards/neelakantan/``). The input card's certification studies (one per smoothing sigma, each pairing the
model trained at sigma with the one trained without) get one report over both sigmas in
``reports/fashion_certify/`` (certified accuracy vs radius, the radius ceiling marked), its plot copied to
``docs/methods/data/fashion_certify/certified.png`` for the card. The card's table, built from those
summaries only, replaces the lines between ``<!-- measured:start -->`` and ``<!-- measured:end -->`` in
``docs/methods/CARD.md`` (with ``--tiny``: ``ROOT/CARD.md``).

Every number in a card table: mean and 95% CI over seeds (Student t), the paired difference to the study's
no-noise arm with its 95% CI and two-sided paired t-test p-value (``lightning_noise.report``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[1:1] = [str(ROOT), str(ROOT / "recipes")]  # run from a checkout, like recipes/train.py

import compare  # noqa: E402
from lightning_noise.report import load_runs  # noqa: E402
from lightning_noise.report.stats import mean_std_ci, t_test  # noqa: E402
from lightning_noise.smoothing import max_certified_radius  # noqa: E402

START, END = "<!-- measured:start -->", "<!-- measured:end -->"
TINY_FASHION = ["data.train_size=300", "data.val_size=100", "data.test_size=200", "trainer.max_epochs=1"]


@dataclass(frozen=True)
class Study:
    """One ``compare.py --sweep``: the experiment, its arms, seeds and the metric deciding the report."""

    label: str  # "Fashion-MNIST, MLP 784-256-256-10": the table's first column
    overrides: tuple[str, ...]  # experiment and variants (no seed)
    seeds: int = 5
    metric: str = "test/acc"
    mode: str = "max"
    tiny: tuple[str, ...] = tuple(TINY_FASHION)
    robustness: bool = True  # the experiment evaluates the robustness AUC (eval.robustness=true)

    def sweep(self, tiny: bool) -> list[str]:
        seeds = 2 if tiny else self.seeds
        return [*self.overrides, *(self.tiny if tiny else ()), f"seed=range({seeds})"]


def target_study(label: str, experiment: str) -> Study:
    """A regression study of the target-noise card: no noise against target noise of std 0.1 and 0.3 (test MSE)."""
    arms = ("none", "target_0.1", "target_0.3")
    overrides = (f"experiment={experiment}", f"variant={','.join(arms)}")
    return Study(label, overrides, metric="test/mse", mode="min", tiny=("trainer.max_epochs=2",))


ALL_ARMS = "none,input_0.1,input_0.5,hidden_0.5,weight_0.05,gradient_annealed_eta0.01,smoothing_0.1,flip_0.05"
NOISY_ARMS = "none,smoothing_0.1,input_0.5,smoothing_input_0.5"
UCR_ARMS = "none,input_0.1,hidden_0.5,weight_0.05,gradient_annealed_eta0.01,smoothing_0.1,flip_0.05"
CERTIFY_SIGMAS = ("0.25", "0.5")  # the certification studies' smoothing sigmas (pixels in [0, 1])
CERTIFY_RADII = (0.0, 0.3, 0.6, 0.9, 1.2, 1.5)  # the card's columns (the report has every radius)
STUDIES: dict[str, Study] = {
    "fashion_mlp": Study("Fashion-MNIST, MLP 784-256-256-10", ("experiment=fashion_mlp", f"variant={ALL_ARMS}")),
    "fashion_cnn": Study("Fashion-MNIST, CNN 16-32 conv", ("experiment=fashion_cnn", f"variant={ALL_ARMS}")),
    "noisy_labels_0.2": Study(
        "Fashion-MNIST, 20% training labels flipped, MLP",
        ("experiment=fashion_noisy_labels", "data.label_noise=0.2", f"variant={NOISY_ARMS}"),
        robustness=False,
    ),
    "noisy_labels_0.4": Study(
        "Fashion-MNIST, 40% training labels flipped, MLP",
        ("experiment=fashion_noisy_labels", "data.label_noise=0.4", f"variant={NOISY_ARMS}"),
        robustness=False,
    ),
    "ucr_lstm": Study(
        "ItalyPowerDemand (sktime), LSTM 32",
        ("experiment=ucr_lstm", f"variant={UCR_ARMS}"),
        tiny=("trainer.max_epochs=1",),
    ),
    **{
        f"fashion_certify_{sigma}": Study(
            f"Fashion-MNIST, MLP 784-256-256-10, smoothed at sigma {sigma}",
            ("experiment=fashion_certify", f"eval.certification.sigma={sigma}", "variant=none,input_at_sigma"),
            metric="certify/acr",
            robustness=False,
            tiny=(*TINY_FASHION, "eval.certification.n=200", "eval.certification.max_samples=20"),
        )
        for sigma in CERTIFY_SIGMAS
    },
    "sunspots_lstm": target_study("sunspots (statsmodels), one-step forecast, LSTM 32", "sunspots_lstm"),
    "diabetes_mlp": target_study("diabetes (scikit-learn), MLP 10-32-32-1", "diabetes_mlp"),
}


@dataclass(frozen=True)
class Card:
    """The arms a card shows, study by study, whether it carries the Neelakantan table, and its certification
    studies (their table, and the plot in ``reports/fashion_certify``)."""

    arms: dict[str, tuple[str, ...]]
    neelakantan: bool = False
    certification: tuple[str, ...] = ()  # certification studies (no noise vs trained at sigma), one per sigma


CARDS: dict[str, Card] = {
    "input": Card(
        {
            "fashion_mlp": ("input_0.1", "input_0.5"),
            "fashion_cnn": ("input_0.1", "input_0.5"),
            "ucr_lstm": ("input_0.1",),
            "noisy_labels_0.2": ("input_0.5",),
            "noisy_labels_0.4": ("input_0.5",),
        },
        certification=tuple(f"fashion_certify_{sigma}" for sigma in CERTIFY_SIGMAS),
    ),
    "activation": Card({"fashion_mlp": ("hidden_0.5",), "fashion_cnn": ("hidden_0.5",), "ucr_lstm": ("hidden_0.5",)}),
    "weight": Card({"fashion_mlp": ("weight_0.05",), "fashion_cnn": ("weight_0.05",), "ucr_lstm": ("weight_0.05",)}),
    "gradient": Card(
        {
            "fashion_mlp": ("gradient_annealed_eta0.01",),
            "fashion_cnn": ("gradient_annealed_eta0.01",),
            "ucr_lstm": ("gradient_annealed_eta0.01",),
        },
        neelakantan=True,
    ),
    "label-smoothing": Card(
        {
            "fashion_mlp": ("smoothing_0.1",),
            "fashion_cnn": ("smoothing_0.1",),
            "ucr_lstm": ("smoothing_0.1",),
            "noisy_labels_0.2": ("smoothing_0.1", "input_0.5", "smoothing_input_0.5"),
            "noisy_labels_0.4": ("smoothing_0.1", "input_0.5", "smoothing_input_0.5"),
        }
    ),
    "label-flipping": Card({"fashion_mlp": ("flip_0.05",), "fashion_cnn": ("flip_0.05",), "ucr_lstm": ("flip_0.05",)}),
    "target": Card({"diabetes_mlp": ("target_0.1", "target_0.3"), "sunspots_lstm": ("target_0.1", "target_0.3")}),
}


# ---------------------------------------------------------------------------------------------- studies
def run_study(name: str, logs: Path, data: Path, *, tiny: bool, force: bool) -> dict[str, Any]:
    """Run (or reuse) one study; copy its ``summary.json`` and ``report.md`` to ``data/name``; return the summary."""
    study, out = STUDIES[name], logs / name
    if force or not (out / "summary.json").is_file():
        if force and (out / "runs").exists():
            shutil.rmtree(out / "runs")
        args = ["--out", str(out), "--force", "--no-plots", "--metric", study.metric, "--mode", study.mode]
        compare.main([*args, "--sweep", *study.sweep(tiny)])
    target = data / name
    target.mkdir(parents=True, exist_ok=True)
    for file in ("summary.json", "report.md"):
        shutil.copyfile(out / file, target / file)
    return json.loads((out / "summary.json").read_text())


def _arm(group: str) -> str:
    found = re.search(r"(?:^| )variant=(\S+)", group)
    return found.group(1) if found else group


def _fmt(value: float | None, digits: int = 4, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _p(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def metric_cells(summary: Mapping[str, Any], metric: str, group: str) -> tuple[str, str, str, int]:
    """``(mean [CI], diff [CI], p, n)`` of one group on one metric, from a comparison report's ``summary.json``."""
    rows = {s["group"]: s for s in summary["summaries"].get(metric, [])}
    if group not in rows:
        return "-", "-", "-", 0
    s = rows[group]
    mean = f"{_fmt(s['mean'])} [{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}]"
    if group == summary["baseline"]:
        return mean, "(baseline)", "", s["n"]
    c = {c["group"]: c for c in summary["comparisons"].get(metric, [])}.get(group)
    if c is None:
        return mean, "-", "-", s["n"]
    diff = f"{_fmt(c['diff'], signed=True)} [{_fmt(c['ci_low'], signed=True)}, {_fmt(c['ci_high'], signed=True)}]"
    return mean, diff, _p(c["p_value"]), s["n"]


def card_table(card: Card, summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """The card's Markdown table: for each study, its no-noise arm then the card's arms."""
    lines = [
        "| data, model | arm | n | test metric, mean [95% CI] | Δ vs none [95% CI] | p | robustness AUC [95% CI] "
        "| Δ AUC [95% CI] | p (AUC) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, arms in card.arms.items():
        summary = summaries[name]
        groups = {_arm(s["group"]): s["group"] for s in summary["summaries"][summary["metric"]]}
        label = f"{STUDIES[name].label} ([{name}](data/{name}/report.md))"
        for arm in ("none", *arms):
            if arm not in groups:
                continue
            mean, diff, p, n = metric_cells(summary, summary["metric"], groups[arm])
            auc, dauc, pauc, _ = metric_cells(summary, "robustness/mean_auc", groups[arm])
            metric = summary["metric"].split("/")[-1]
            lines.append(f"| {label} | {arm} | {n} | {metric} {mean} | {diff} | {p} | {auc} | {dauc} | {pauc} |")
            label = "〃"
    return "\n".join(lines)


def _radius_key(summary: Mapping[str, Any], radius: float) -> str | None:
    for key in summary["summaries"]:
        if key.startswith("certify/acc_r") and float(key.removeprefix("certify/acc_r")) == radius:
            return key
    return None


def _ci(summary: Mapping[str, Any], metric: str, group: str, digits: int = 3) -> str:
    rows = {s["group"]: s for s in summary["summaries"].get(metric, [])}
    if group not in rows:
        return "-"
    s = rows[group]
    return f"{_fmt(s['mean'], digits)} [{_fmt(s['ci_low'], digits)}, {_fmt(s['ci_high'], digits)}]"


def certification_table(card: Card, summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """Certified accuracy at a few radii and the average certified radius (ACR), per sigma and arm, each mean
    [95% CI] over seeds, with the paired difference in ACR (trained at sigma minus no noise) and its p-value."""
    radii = [f"cert. acc r={r:g}" for r in CERTIFY_RADII]
    lines = [
        f"| sigma (ceiling) | arm | n | clean test acc | {' | '.join(radii)} | ACR [95% CI] | Δ ACR [95% CI] | p |",
        "|---|" + "---|" * (len(radii) + 6),
    ]
    for name in card.certification:
        summary = summaries[name]
        groups = {_arm(s["group"]): s["group"] for s in summary["summaries"][summary["metric"]]}
        sigma = summary["summaries"]["certify/sigma"][0]["mean"]
        n = round(summary["summaries"]["certify/n"][0]["mean"])
        alpha = summary["summaries"]["certify/alpha"][0]["mean"]
        label = f"{sigma:g} ({max_certified_radius(sigma, n, alpha):.2f}) ([{name}](data/{name}/report.md))"
        for arm in ("none", "input_at_sigma"):
            if arm not in groups:
                continue
            group = groups[arm]
            acr, diff, p, runs = metric_cells(summary, "certify/acr", group)
            accs = []
            for radius in CERTIFY_RADII:
                key = _radius_key(summary, radius)
                accs.append(_ci(summary, key, group) if key else "-")
            shown = "none" if arm == "none" else f"trained at sigma {sigma:g}"
            lines.append(
                f"| {label} | {shown} | {runs} | {_ci(summary, 'test/acc', group)} | {' | '.join(accs)} "
                f"| {acr} | {diff} | {p} |"
            )
            label = "〃"
    return "\n".join(lines)


def card_markdown(
    card: Card, summaries: Mapping[str, Mapping[str, Any]], neelakantan: Mapping[str, Any] | None = None
) -> str:
    """Everything between the card's markers: the arms' table, then the certification and Neelakantan tables."""
    table = card_table(card, summaries)
    if card.certification:
        first = summaries[card.certification[0]]["summaries"]
        n, n0, alpha, points = (round(first[f"certify/{k}"][0]["mean"], 6) for k in ("n", "n0", "alpha", "points"))
        table += (
            f"\n\nCertified robustness (randomized smoothing, Cohen et al. 2019; n = {n:,.0f}, n0 = {n0:,.0f}, "
            f"alpha = {alpha:g}, the first {points:,.0f} test images; sigma and radii in [0, 1] pixel units; "
            "the ceiling is the largest radius n samples can certify):\n\n" + certification_table(card, summaries)
        )
    if card.neelakantan and neelakantan is not None:
        table += "\n\nNeelakantan et al. (2015), Table 1, on Fashion-MNIST:\n\n" + neelakantan_markdown(neelakantan)
    return table


def certification_report(card: Card, logs: Path, out: Path, summaries: Mapping[str, Mapping[str, Any]]) -> Path:
    """One report over the card's certification studies' runs (every sigma, both arms): ``report.md``,
    ``summary.json`` and ``certified.png`` (certified accuracy vs radius, the ceilings marked) in ``out``."""
    first = summaries[card.certification[0]]
    runs = [str(logs / name / "runs") for name in card.certification]
    args = ["--out", str(out), "--force", "--metric", "certify/acr", "--baseline", first["baseline"]]
    compare.main([*runs, *args, "--title", "certified robustness on Fashion-MNIST"])
    return out


# ---------------------------------------------------------------------------------------------- Neelakantan
PAPER_MNIST = {  # Neelakantan et al. (2015), Table 1 (MNIST, 20 x 50 ReLU): best / average test accuracy, percent
    ("normal", "null"): ("89.9 / 43.1", "96.7 / 52.7"),
    ("he_normal", "10"): ("97.4 / 91.7", "97.2 / 91.7"),
}
CELLS = (("normal", "null"), ("normal", "100"), ("normal", "10"), ("he_normal", "10"))


NEELAKANTAN_HEADER = """# Neelakantan et al. (2015), Table 1, replicated on Fashion-MNIST (reduced)

The paper's setting: a 20-hidden-layer MLP of 50 ReLU units, plain SGD without momentum at learning rates 0.1
and 0.01, without and with annealed Gaussian gradient noise of variance 0.01 / (1 + t) ** 0.55, simple init
(weights N(0, 0.1²)) without clipping, with gradient-norm clipping at 100 and at 10, and He init with clipping 10;
best and average test accuracy over the runs of both learning rates (`experiment=fashion_gradient`
`variant=none` or `variant=gradient_neelakantan`, biases initialized to zero, noise added before Lightning clips).

**Not the paper's budget.** MNIST, the paper's data, is not installable on this machine (Debian ships
Fashion-MNIST, not MNIST), so the data is Fashion-MNIST, a harder task: accuracies are not comparable across the
two columns, only the pattern (does noise rescue the poor initialization; does it matter with a good one).
Training uses the 55,000 training images left after a 5,000-image validation split, for 15 epochs at batch 128
(6,450 SGD steps; the paper trains longer), and the epoch with the best clean validation loss is evaluated on the
10,000 test images; {runs_per_lr} runs (seeds) per learning rate and cell, so {runs_per_cell} per cell and arm. A run
that diverges (a NaN loss, which lr 0.1 without clipping can reach) is stopped by early stopping and its best epoch
is evaluated, in either arm (the noise's `check_finite=False`): divergence is an outcome, not a missing run.
Why this budget: with simple init the signal through 20 layers starts about 0.5 ** 20 ≈ 1e-6 times the input's
scale, and a run sits at chance (10%) until it escapes that plateau. In a pilot (seeds 0 and 1, lr 0.1, no
clipping), 10,000 images for 30 epochs (2,340 steps) left both arms at chance; on 55,000 images a noisy run
escaped between steps 2,600 and 3,000 (validation accuracy 10% -> 29% -> 42%), its no-noise twin did not. An
earlier round at 10,000 images and 5 epochs (400 steps) had every simple-init run, with and without noise, at
exactly 10.0%. Regenerate with `python recipes/cards.py gradient` (the four cells are four sweeps in
`logs/cards/neelakantan/`, which can run side by side with the commands it prints).

"""


def run_neelakantan(logs: Path, out_dir: Path, *, tiny: bool, force: bool, seeds: int = 10) -> dict[str, Any]:
    """Train the Table 1 cells (unless their runs exist), then write ``out_dir/summary.json`` and ``report.md``:
    best and average test accuracy per cell, with and without noise, and the paired difference per learning rate."""
    out = logs / "neelakantan"
    if force and out.exists():
        shutil.rmtree(out)
    tiny_args = [*TINY_FASHION, "trainer.max_epochs=1"] if tiny else []
    runs = 2 if tiny else seeds
    for init, clip in CELLS:  # one sweep per cell: the cells can run in parallel, by hand, with the same commands
        sweep = out / f"runs_{init}_clip{clip}"
        if sweep.is_dir() and len(list(sweep.rglob("metrics.json"))) == 2 * 2 * runs:  # 2 arms x 2 learning rates
            continue
        if sweep.exists():  # an interrupted sweep: run the cell again, whole
            shutil.rmtree(sweep)
        command = [
            sys.executable,
            str(ROOT / "recipes" / "train.py"),
            "-m",
            "experiment=fashion_gradient",
            "variant=none,gradient_neelakantan",
            f"model.init={init}",
            "model.optimizer.lr=0.1,0.01",
            f"trainer.gradient_clip_val={clip}",
            f"seed=range({runs})",
            *tiny_args,
            f"hydra.sweep.dir={sweep}",
        ]
        print("Running:", " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)
    summary = neelakantan_summary(load_runs(sorted(out.glob("runs_*"))))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    per_lr = min((row["none"]["n"] for cell in summary["cells"] for row in cell["by_lr"]), default=0)
    header = NEELAKANTAN_HEADER.format(runs_per_lr=per_lr, runs_per_cell=2 * per_lr)
    (out_dir / "report.md").write_text(header + neelakantan_markdown(summary))
    return summary


def _setting(record: Mapping[str, Any]) -> dict[str, str]:
    pairs = dict(o.split("=", 1) for o in record["overrides"] if "=" in o)
    return {
        "init": pairs.get("model.init", "normal"),
        "clip": pairs.get("trainer.gradient_clip_val", "null"),
        "lr": pairs.get("model.optimizer.lr", "0.01"),
        "noise": "gradient" if pairs.get("variant", "none") != "none" else "none",
    }


def neelakantan_summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per cell (init, clip): best and mean test accuracy over all runs of both learning rates, per arm; per cell
    and learning rate: mean [95% CI] per arm and the paired (same seeds) difference noise - none with its p-value."""
    acc: dict[tuple[str, str, str, str], dict[Any, float]] = {}
    for run in runs:
        s = _setting(run)
        acc.setdefault((s["init"], s["clip"], s["lr"], s["noise"]), {})[run["seed"]] = run["metrics"]["test/acc"]
    cells = []
    for init, clip in sorted({(k[0], k[1]) for k in acc}, key=lambda c: CELLS.index(c) if c in CELLS else 99):
        cell: dict[str, Any] = {"init": init, "clip": clip, "paper_mnist": PAPER_MNIST.get((init, clip))}
        for arm in ("none", "gradient"):
            values = [v for (i, c, _, a), per in acc.items() if (i, c, a) == (init, clip, arm) for v in per.values()]
            cell[arm] = {"n": len(values), "best": max(values, default=math.nan), "mean": _mean(values)}
        cell["by_lr"] = []
        for lr in sorted({k[2] for k in acc if k[:2] == (init, clip)}, key=float, reverse=True):
            none, noisy = acc.get((init, clip, lr, "none"), {}), acc.get((init, clip, lr, "gradient"), {})
            row: dict[str, Any] = {"lr": float(lr)}
            for arm, values in (("none", none), ("gradient", noisy)):
                mean, std, low, high = mean_std_ci(list(values.values())) if values else (math.nan,) * 4
                row[arm] = {"n": len(values), "mean": mean, "std": std, "ci_low": low, "ci_high": high}
            if len(none) >= 2 and len(noisy) >= 2:
                c = t_test(noisy, none)
                row["diff"] = {"diff": c.diff, "ci_low": c.ci_low, "ci_high": c.ci_high, "test": c.test, "p": c.p_value}
            cell["by_lr"].append(row)
        cells.append(cell)
    return {"metric": "test/acc", "dataset": "fashion_mnist", "n_runs": len(runs), "cells": cells}


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def neelakantan_markdown(summary: Mapping[str, Any]) -> str:
    """The table side by side with the paper's MNIST numbers, then the per-learning-rate detail."""
    lines = [
        "| init | clipping | Fashion-MNIST, no noise: best / avg (runs) | with noise: best / avg (runs) "
        "| paper (MNIST), no noise | paper, with noise |",
        "|---|---|---|---|---|---|",
    ]
    for cell in summary["cells"]:
        a, b = cell["none"], cell["gradient"]
        paper = cell["paper_mnist"] or ("not quoted here", "not quoted here")
        init = "simple, N(0, 0.1²)" if cell["init"] == "normal" else "He, N(0, 2/fan_in)"
        clip = "none" if cell["clip"] == "null" else cell["clip"]
        lines.append(
            f"| {init} | {clip} | {_pct(a['best'])} / {_pct(a['mean'])} ({a['n']}) "
            f"| {_pct(b['best'])} / {_pct(b['mean'])} ({b['n']}) | {paper[0]} | {paper[1]} |"
        )
    lines += [
        "",
        "| init | clipping | lr | no noise: mean [95% CI] | with noise: mean [95% CI] | Δ [95% CI] | p (paired t) |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in summary["cells"]:
        for row in cell["by_lr"]:
            a, b, d = row["none"], row["gradient"], row.get("diff")
            diff = f"{_pct(d['diff'])} [{_pct(d['ci_low'])}, {_pct(d['ci_high'])}] | {_p(d['p'])}" if d else "n/a | n/a"
            lines.append(
                f"| {cell['init']} | {cell['clip']} | {row['lr']} | {_pct(a['mean'])} [{_pct(a['ci_low'])}, "
                f"{_pct(a['ci_high'])}] | {_pct(b['mean'])} [{_pct(b['ci_low'])}, {_pct(b['ci_high'])}] | {diff} |"
            )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- the card
def write_card(card_path: Path, table: str) -> Path:
    """Put ``table`` between the card's markers (a new file holding only the table if the card does not exist)."""
    block = f"{START}\n{table}\n{END}"
    if not card_path.is_file():
        card_path.parent.mkdir(parents=True, exist_ok=True)
        card_path.write_text(block + "\n")
        return card_path
    text = card_path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"cards.py: error: {card_path} has no {START} ... {END} block to fill.")
    head, rest = text.split(START, 1)
    card_path.write_text(head + block + rest.split(END, 1)[1])
    return card_path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run a card's studies (reusing finished ones), write their summaries and the card's tables.

    Returns:
        ``{study: summary}`` (and ``"neelakantan"`` for the gradient card).
    """
    parser = argparse.ArgumentParser(prog="python recipes/cards.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("card", choices=sorted(CARDS), help="the card (docs/methods/CARD.md)")
    parser.add_argument("--tiny", action="store_true", help="smoke-test budget: 2 seeds, 300 images, 1 epoch")
    parser.add_argument("--root", default=None, help="write logs, data and the card under ROOT (default: the repo)")
    parser.add_argument("--force", action="store_true", help="rerun studies whose summary.json exists")
    args = parser.parse_args(argv)
    if args.tiny and args.root is None:
        parser.error("--tiny needs --root (a tiny run must not overwrite the committed measurements)")
    base = Path(args.root) if args.root else None
    logs = base / "logs" if base else ROOT / "logs" / "cards"
    data = base / "data" if base else ROOT / "docs" / "methods" / "data"
    card = CARDS[args.card]
    studies = [*card.arms, *card.certification]
    summaries = {name: run_study(name, logs, data, tiny=args.tiny, force=args.force) for name in studies}
    sources = [data / name for name in studies]
    if card.certification:
        report_dir = data / "fashion_certify_report" if base else ROOT / "reports" / "fashion_certify"
        certification_report(card, logs, report_dir, summaries)
        plot = data / "fashion_certify" / "certified.png"  # the card shows it (the site serves docs/ only)
        plot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(report_dir / "certified.png", plot)
        sources += [report_dir, plot]
    neelakantan = None
    if card.neelakantan:
        neelakantan_dir = data / "neelakantan" if base else ROOT / "reports" / "neelakantan_fashion_mnist"
        neelakantan = summaries["neelakantan"] = run_neelakantan(
            logs, neelakantan_dir, tiny=args.tiny, force=args.force
        )
        sources.append(neelakantan_dir)
    table = card_markdown(card, summaries, neelakantan)
    path = write_card((base if base else ROOT / "docs" / "methods") / f"{args.card}.md", table)
    print(f"{path}: measured table written from {', '.join(map(str, sources))}")
    return summaries


if __name__ == "__main__":
    main()
