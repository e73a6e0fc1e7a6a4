"""Compare configurations over seeds: read the runs of Hydra multiruns (or run a sweep first), write the report.

    python recipes/compare.py logs/train/multiruns/2024-05-01_12-00-00           # report in that dir's report/
    python recipes/compare.py logs/a/multiruns/X logs/b/multiruns/Y --out report/ --metric test/acc
    python recipes/compare.py --out reports/circles --force --sweep experiment=circles_classic \\
        variant=none,input_0.01,input_0.1,hidden_0.1,hidden_1.0 'seed=range(10)'

Reading: every ``metrics.json`` under the given directories is a run (``recipes/train.py`` writes one per run,
with its group = its overrides minus the seed); see ``lightning_noise.report`` for the statistics.

``--sweep ARGS...`` (last on the line): runs ``recipes/train.py -m ARGS hydra.sweep.dir=OUT/runs`` first, in a
subprocess with the same Python, then reports on ``OUT/runs``. ``--out`` is required with ``--sweep``, and
``OUT/runs`` must not exist or be empty: the report reads every run under it, so an earlier sweep's runs would
mix into this one's (choose a new ``--out``, remove ``OUT/runs``, or report on the old runs without ``--sweep``).

``--out`` must be empty (or not exist) unless ``--force`` is given: a report overwrites ``report.md``,
``summary.json`` and the PNGs there (``reports/circles`` holds the committed case study; to re-run it, give
``--force`` or another ``--out``). With ``--sweep`` this is checked before the sweep runs.

Mistakes (no runs, an unknown metric, several no-noise groups without ``--baseline``, a non-empty ``--out``)
end in one ``error:`` line and exit status 2, without a traceback.

Every other option (``--metric``, ``--baseline``, ``--mode``, ``--title``, ``--confidence``, ``--no-plots``,
``--wandb``, ``--wandb-mode``...) is passed to ``python -m lightning_noise.report``; the report (console table,
``report.md``, ``summary.json``, ``metric_vs_noise.png``, ``robustness.png`` when the runs evaluated
robustness) goes to ``--out`` (default ``FIRST_DIR/report``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # run from a checkout without installing, like recipes/train.py

from lightning_noise import report  # noqa: E402
from lightning_noise.report.cli import check_out_dir  # noqa: E402

USAGE = "python recipes/compare.py [DIR ...] [--out DIR] [--force] [report options] [--sweep TRAIN_OVERRIDES ...]"


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """``(report arguments, sweep overrides or None)``: everything after ``--sweep`` is for ``train.py -m``."""
    argv = list(argv)
    if "--sweep" not in argv:
        return argv, None
    at = argv.index("--sweep")
    return argv[:at], argv[at + 1 :]


def out_dir(report_args: Sequence[str]) -> Path | None:
    for i, arg in enumerate(report_args):
        if arg == "--out" and i + 1 < len(report_args):
            return Path(report_args[i + 1])
        if arg.startswith("--out="):
            return Path(arg.split("=", 1)[1])
    return None


def check_fresh(sweep_dir: Path) -> None:
    """Refuse a sweep into a non-empty ``OUT/runs``: the report would mix the earlier runs with the new ones.

    Raises:
        SystemExit: ``sweep_dir`` exists and holds anything (the message says how many runs and what to do).
    """
    if sweep_dir.is_dir() and any(sweep_dir.iterdir()):
        runs = len(list(sweep_dir.rglob("metrics.json")))
        raise SystemExit(
            f"--sweep writes its runs to {sweep_dir}, which is not empty ({runs} earlier runs): the report would mix "
            f"them with the new ones. Choose another --out, remove {sweep_dir}, or report on the earlier runs "
            f"without --sweep: python recipes/compare.py {sweep_dir} --out {sweep_dir.parent}"
        )


def run_sweep(overrides: Sequence[str], sweep_dir: Path) -> None:
    """Run ``recipes/train.py -m OVERRIDES hydra.sweep.dir=sweep_dir``; raise if it fails.

    Raises:
        SystemExit: status 2, a configuration mistake (``train.py`` has printed it, on one line).
        RuntimeError: the sweep exited with another error (its output has already been shown).
    """
    command = [sys.executable, str(ROOT / "recipes" / "train.py"), "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
    print("Running:", " ".join(command[1:]), flush=True)
    result = subprocess.run(command, check=False)
    if result.returncode == 2:  # a config mistake: train.py has printed the one line that says what to change
        raise SystemExit(2)
    if result.returncode != 0:
        raise RuntimeError(f"The sweep failed with exit status {result.returncode}: {' '.join(command[1:])}")


def main(argv: Sequence[str] | None = None) -> report.ComparisonReport:
    """Run the sweep if asked, then write the report; returns it.

    Raises:
        SystemExit: (one line, status 2) ``--sweep`` without overrides or without ``--out``, a non-empty
            ``OUT/runs`` or ``OUT`` (without ``--force``), a failed sweep, no ``metrics.json`` in the directories,
            an unknown metric or baseline, several no-noise groups.
    """
    report_args, sweep = split_argv(sys.argv[1:] if argv is None else argv)
    if sweep is not None:
        out = out_dir(report_args)
        if not sweep or out is None:
            raise SystemExit(f"--sweep needs train.py overrides after it and --out DIR before it.\nusage: {USAGE}")
        sweep_dir = out / "runs"
        check_fresh(sweep_dir)
        if "--force" not in report_args:  # before the sweep, not after it has run for an hour
            try:
                check_out_dir(out, [sweep_dir])
            except ValueError as error:
                raise SystemExit(f"compare.py: error: {error}") from None
        try:
            run_sweep(sweep, sweep_dir)
        except RuntimeError as error:
            raise SystemExit(f"compare.py: error: {error}") from None
        report_args = [str(sweep_dir), *report_args]
    return report.main(report_args)


if __name__ == "__main__":
    main()
