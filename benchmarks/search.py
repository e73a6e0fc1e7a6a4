"""Benchmark of the Optuna search (docs/search.md): wall time with 1 and 2 workers, and the epochs pruning saves.

    nice -n 10 python benchmarks/search.py              # writes benchmarks/search-results.md and .json

Each row is one ``python recipes/train.py hparams_search=optuna ...`` command (logger off, at most 20 epochs per
trial, the default search space: 7 noise types x noise_scale in [0.1, 3]), timed from start to exit, run one after
the other. Epochs are read from every trial's ``metrics.json`` (``epochs``, the epochs trained); the best trial from
``optimization_results.yaml``. The machine is shared: the 2-worker ratio is measured within this one run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["hparams_search=optuna", "logger=none", "trainer.enable_progress_bar=false", "trainer.max_epochs=20"]
# (data, trials, workers, pruner, sampler seed)
RUNS = [
    ("digits", 24, 1, "none", 1234),
    ("digits", 24, 2, "none", 1234),
    ("digits", 24, 1, "median", 1234),
    ("digits", 24, 1, "none", 1),
    ("digits", 24, 1, "median", 1),
    ("breast_cancer", 12, 1, "none", 1234),
    ("breast_cancer", 12, 1, "median", 1234),
    ("breast_cancer", 12, 1, "none", 1),
    ("breast_cancer", 12, 1, "median", 1),
]


def run(data: str, trials: int, workers: int, pruner: str, seed: int, root: Path) -> dict:
    sweep = root / f"{data}-{trials}-{workers}-{pruner}-{seed}"
    args = [
        *COMMON,
        f"data={data}",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.n_jobs={workers}",
        f"hydra.sweeper.pruner={pruner}",
        f"hydra.sweeper.sampler.seed={seed}",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "train.py"), *args],
        check=True,
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - start
    records = [json.loads(p.read_text()) for p in sweep.glob("[0-9]*/metrics.json")]
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    return {
        "data": data,
        "trials": trials,
        "workers": workers,
        "pruner": pruner,
        "seed": seed,
        "seconds": round(seconds, 1),
        "epochs": sum(r["epochs"] for r in records),
        "pruned": sum(bool(r.get("search", {}).get("pruned")) for r in records),
        "best": f"{best.best_params.noise} x{best.best_params.noise_scale:.2f}",
        "best_value": round(float(best.best_value), 4),
        "command": "python recipes/train.py " + " ".join(a for a in args if not a.startswith("hydra.sweep.dir")),
    }


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in RUNS:
            try:
                rows.append(run(*spec, Path(tmp)))
            except subprocess.CalledProcessError as error:  # keep the other rows; say which one failed
                print(f"FAILED {spec}: {error}", flush=True)
                continue
            print(json.dumps(rows[-1]), flush=True)
    out = ROOT / "benchmarks" / "search-results"
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"Optuna search benchmark ({os.cpu_count()} CPU cores shared with other jobs; `{' '.join(COMMON)}`)",
        "",
        "| data | trials | workers | pruner | seed | wall s | epochs | pruned | best (noise x scale) | best val/loss |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['trials']} | {r['workers']} | {r['pruner']} | {r['seed']} | {r['seconds']} | "
            f"{r['epochs']} | {r['pruned']} | {r['best']} | {r['best_value']} |"
        )
    one, two = rows[0]["seconds"], rows[1]["seconds"]
    lines += ["", f"2 workers / 1 worker wall time (digits, 24 trials): {two / one:.2f} ({two} s / {one} s)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
