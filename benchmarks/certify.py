"""Points certified per second by ``lightning_noise.certify`` and by the reference implementation, side by side.

Usage::

    python benchmarks/certify.py --reference-dir ../smoothing   # mlp and cnn, n = 1e3..1e5, batch 100..4096: ~15 min
    python benchmarks/certify.py --models cnn --n 1000 --batch-sizes 256 4096 --out certify.md   # or .json
    python benchmarks/certify.py --no-reference --bound-points 1000 10000   # the library alone, and the bound

Method. The models are the recipes' ``MLP`` (64-32-32-10, ``conf/model/mlp.yaml``) and ``CNN`` (16 and 32
channels, ``conf/model/cnn.yaml``) built for ``data=digits`` (inputs ``(1, 8, 8)``), untrained: the cost is
the ``n0 + n`` forward passes per point, which do not depend on the weights, plus the Clopper-Pearson bound.
Inputs are the first test points of the standardized digits. Each case certifies ``points`` points
(``n0 = 100``, ``alpha = 0.001``, ``sigma = 0.25``) with one torch thread, alternately with
``lightning_noise.certify`` and, in the same process on the same points and batch size, with the reference
CERTIFY of Cohen et al. (``Smooth.certify`` of locuslab/smoothing ``code/core.py``: one point per call,
statsmodels' Clopper-Pearson bound). That code is not redistributed here (its repository carries no licence): give
a checkout with ``--reference-dir PATH`` (or ``SMOOTHING_REFERENCE_DIR``; PATH holds ``code/core.py``), and
:func:`load_reference` reads it, changing two lines so it runs on a CPU with today's scipy (the noise is drawn on
the input's device instead of ``device='cuda'``, and ``binom_test``, removed from scipy and used only by
``predict``, is not imported). Without it, the reference columns are left out. The clock is the thread's CPU
time (``time.thread_time``; ``--clock wall`` for wall time), so other processes on a shared machine count less;
the table shows the median over ``repeats`` runs, the forward samples per second (``points * (n0 + n) / time``)
and the ratio library / reference of points per second (> 1: the library is faster).

The bound alone (``--bound-points``): ``clopper_pearson_lower`` on that many counts at ``n = 100,000`` spread over
94,001..99,000 with one count of 1, its time (median of ``repeats``) and the growth of the process's peak resident
memory, next to statsmodels' ``proportion_confint`` on the same counts.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "recipes"), str(Path(__file__).resolve().parent)]

from lightning_noise import certify  # noqa: E402
from lightning_noise._json import dumps  # noqa: E402
from lightning_noise.smoothing import clopper_pearson_lower  # noqa: E402

DEFAULT_POINTS = {1_000: 200, 10_000: 40, 100_000: 4}
N0, ALPHA, SIGMA = 100, 0.001, 0.25
COLUMNS = (
    "| model | params | n | batch | points | seconds | points/s | samples/s | reference s | reference points/s "
    "| ratio |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def build(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """The recipe model ``name`` for digits, and 200 standardized test inputs."""
    from noisy_recipes.data import DigitsDataModule
    from noisy_recipes.models import CNN, MLP

    data = DigitsDataModule()
    spec = data.spec
    cls, net = {"mlp": (MLP, {"hidden": [32, 32]}), "cnn": (CNN, {"channels": [16, 32]})}[name]
    model = cls(spec, optimizer=torch.optim.Adam, **net)
    x = data.datasets["test"].tensors[0][:200]
    return model, x


def _timer(clock: str) -> Any:
    return time.thread_time if clock == "cpu" else time.perf_counter


def measure(model: torch.nn.Module, x: torch.Tensor, *, n: int, batch_size: int, clock: str) -> float:
    """Seconds for ``lightning_noise.certify`` on ``x``."""
    timer = _timer(clock)
    start = timer()
    certify(model, x, SIGMA, n0=N0, n=n, alpha=ALPHA, batch_size=batch_size, generator=torch.Generator().manual_seed(0))
    return timer() - start


REFERENCE_PATCHES = (
    ("from scipy.stats import norm, binom_test", "from scipy.stats import norm"),  # binom_test left scipy in 1.12
    ("torch.randn_like(batch, device='cuda')", "torch.randn_like(batch)"),  # the noise on the input's device
)


def load_reference(reference_dir: Path) -> Any:
    """The ``Smooth`` class of a locuslab/smoothing checkout's ``code/core.py``, with :data:`REFERENCE_PATCHES`.

    Raises:
        FileNotFoundError: ``reference_dir`` holds no ``code/core.py``.
        ValueError: a line to patch is not in that file (another version of the reference).
    """
    core = Path(reference_dir) / "code" / "core.py"
    if not core.is_file():
        raise FileNotFoundError(f"--reference-dir must hold locuslab/smoothing's code/core.py, got {reference_dir}")
    source = core.read_text()
    for old, new in REFERENCE_PATCHES:
        if old not in source:
            raise ValueError(f"{core}: expected the line {old!r} of the reference (commit 78a4d94); not found")
        source = source.replace(old, new)
    module = types.ModuleType("smoothing_reference_core")
    module.__file__ = str(core)
    exec(compile(source, str(core), "exec"), module.__dict__)
    return module.Smooth


def measure_reference(
    smooth_class: Any, model: torch.nn.Module, x: torch.Tensor, classes: int, *, n: int, batch_size: int, clock: str
) -> float:
    """Seconds for the reference ``Smooth.certify``, one point at a time as in its ``certify.py``."""
    smooth = smooth_class(model, classes, SIGMA)
    timer = _timer(clock)
    start = timer()
    for point in x:
        smooth.certify(point, N0, n, ALPHA, batch_size)
    return timer() - start


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.set_num_threads(args.threads)
    reference_class = load_reference(args.reference_dir) if args.reference_dir is not None else None
    rows = []
    for name in args.models:
        model, inputs = build(name)
        classes = int(model(inputs[:1]).shape[1])
        for n in args.n:
            points = args.points or DEFAULT_POINTS.get(n, max(1, 200_000 // n))
            x = inputs[:points]
            for batch_size in args.batch_sizes:
                measure(model, x[:1], n=min(n, 1000), batch_size=batch_size, clock=args.clock)  # warm up
                times, reference_times = [], []
                for _ in range(args.repeats):  # alternated, so that a busy spell of the machine hits both
                    times.append(measure(model, x, n=n, batch_size=batch_size, clock=args.clock))
                    if reference_class is not None:
                        reference_times.append(
                            measure_reference(
                                reference_class, model, x, classes, n=n, batch_size=batch_size, clock=args.clock
                            )
                        )
                seconds = statistics.median(times)
                row = {
                    "model": name,
                    "params": sum(p.numel() for p in model.parameters()),
                    "n": n,
                    "n0": N0,
                    "batch_size": batch_size,
                    "points": len(x),
                    "seconds": seconds,
                    "points_per_second": len(x) / seconds,
                    "samples_per_second": len(x) * (n + N0) / seconds,
                }
                if reference_class is not None:
                    reference = statistics.median(reference_times)
                    row.update(
                        reference_seconds=reference,
                        reference_points_per_second=len(x) / reference,
                        ratio=reference / seconds,
                    )
                rows.append(row)
                print(_row(row), flush=True)
    return rows


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bound_rows(points_list: list[int], repeats: int) -> list[dict[str, Any]]:
    """Time and peak-memory growth of the Clopper-Pearson bound on many counts at n = 100,000 (one count of 1)."""
    from statsmodels.stats.proportion import proportion_confint

    rows = []
    n = 100_000
    clopper_pearson_lower(torch.tensor([1, 5]), 10, ALPHA)  # imports scipy
    for points in points_list:
        k = 99_000 - torch.arange(points) % 5_000
        k[points // 2] = 1
        before = _peak_mib()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            ours = clopper_pearson_lower(k, n, ALPHA)
            times.append(time.perf_counter() - start)
        grown = _peak_mib() - before
        start = time.perf_counter()
        reference = proportion_confint(k.numpy(), n, alpha=2 * ALPHA, method="beta")[0]
        reference_seconds = time.perf_counter() - start
        rows.append(
            {
                "points": points,
                "n": n,
                "seconds": statistics.median(times),
                "peak_growth_mib": grown,
                "statsmodels_seconds": reference_seconds,
                "max_abs_difference": float((ours - torch.from_numpy(reference)).abs().max()),
            }
        )
        r = rows[-1]
        print(
            f"| {points:,} | {n:,} | {r['seconds'] * 1e3:.1f} | {grown:.1f} | {reference_seconds * 1e3:.1f} | "
            f"{r['max_abs_difference']:.1e} |",
            flush=True,
        )
    return rows


def _row(r: dict[str, Any]) -> str:
    line = (
        f"| {r['model']} | {r['params']:,} | {r['n']:,} | {r['batch_size']} | {r['points']} | {r['seconds']:.2f} | "
        f"{r['points_per_second']:.2f} | {r['samples_per_second'] / 1e6:.2f}M |"
    )
    if "ratio" in r:
        line += f" {r['reference_seconds']:.2f} | {r['reference_points_per_second']:.2f} | {r['ratio']:.2f}x |"
    else:
        line += " | | |"
    return line


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--n", nargs="+", type=int, default=[1_000, 10_000, 100_000], help="samples per point")
    parser.add_argument(
        "--batch-sizes", nargs="+", type=int, default=[100, 400, 1000, 4096], help="noisy inputs per forward"
    )
    parser.add_argument("--points", type=int, default=None, help="points per case (default 200, 40, 4 at n=1e3..1e5)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument(
        "--reference-dir",
        type=Path,
        default=os.environ.get("SMOOTHING_REFERENCE_DIR") or None,
        help="a checkout of locuslab/smoothing to time beside the library (default: $SMOOTHING_REFERENCE_DIR)",
    )
    parser.add_argument("--no-reference", dest="reference_dir", action="store_const", const=None)
    parser.add_argument("--bound-points", nargs="*", type=int, default=[1_000, 10_000], help="bound alone (n=1e5)")
    parser.add_argument("--out", type=Path, default=None, help="write the tables (.md) or the rows (.json)")
    args = parser.parse_args(argv)
    header = (
        f"Points certified per second (CPU, {args.threads} thread(s), {args.clock} clock, median of "
        f"{args.repeats}, n0 = {N0}, alpha = {ALPHA}, torch {torch.__version__}); reference: locuslab/smoothing "
        "Smooth.certify, same process, same points"
    )
    print(header)
    print(COLUMNS)
    rows = run(args)
    bound_header = (
        f"Clopper-Pearson bound alone (median of {args.repeats}, wall clock): ms, peak resident memory growth (MiB), "
        "statsmodels proportion_confint ms, max |difference|"
    )
    bound_columns = "| points | n | ms | peak growth MiB | statsmodels ms | max abs diff |\n|---|---|---|---|---|---|"
    bounds: list[dict[str, Any]] = []
    if args.bound_points:
        print(f"\n{bound_header}\n{bound_columns}")
        bounds = bound_rows(args.bound_points, args.repeats)
    result = {"header": header, "rows": rows, "bound_header": bound_header, "bound_rows": bounds}
    if args.out is not None:
        if args.out.suffix == ".json":
            args.out.write_text(dumps(result, indent=2) + "\n")
        else:
            table = "\n".join(_row(r) for r in rows)
            text = f"{header}\n\n{COLUMNS}\n{table}\n"
            if bounds:
                lines = "\n".join(
                    f"| {b['points']:,} | {b['n']:,} | {b['seconds'] * 1e3:.1f} | {b['peak_growth_mib']:.1f} | "
                    f"{b['statsmodels_seconds'] * 1e3:.1f} | {b['max_abs_difference']:.1e} |"
                    for b in bounds
                )
                text += f"\n{bound_header}\n\n{bound_columns}\n{lines}\n"
            args.out.write_text(text)
    return result


if __name__ == "__main__":
    main()
