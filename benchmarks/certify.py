"""Points certified per second by ``lightning_noise.certify`` for the recipes' models on the 8x8 digits.

Usage::

    python benchmarks/certify.py                          # mlp and cnn, n = 1e3, 1e4 and 1e5: about 1 minute of CPU
    python benchmarks/certify.py --models cnn --n 1000 --batch-sizes 256 4096 --out certify.md   # or .json

Method. The models are the recipes' ``MLP`` (64-32-32-10, ``conf/model/mlp.yaml``) and ``CNN`` (16 and 32
channels, ``conf/model/cnn.yaml``) built for ``data=digits`` (inputs ``(1, 8, 8)``), untrained: the cost is
the ``n0 + n`` forward passes per point, which do not depend on the weights, plus the Clopper-Pearson bound
(tens of milliseconds at most per call). Inputs are the first test points of the standardized digits. Each
case certifies ``points`` points (``n0 = 100``, ``alpha = 0.001``) with one torch thread; the clock is the
thread's CPU time (``time.thread_time``; ``--clock wall`` for wall time), so other processes on a shared
machine do not count. The table shows the median over ``repeats`` runs and the forward samples per second
(``points * (n0 + n) / time``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "recipes")]

from lightning_noise import certify  # noqa: E402
from lightning_noise._json import dumps  # noqa: E402

DEFAULT_POINTS = {1_000: 200, 10_000: 40, 100_000: 4}


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


def measure(model: torch.nn.Module, x: torch.Tensor, *, n: int, batch_size: int, clock: str) -> float:
    """Seconds to certify ``x`` (n0 = 100, alpha = 0.001, sigma = 0.25)."""
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    start = timer()
    certify(model, x, 0.25, n0=100, n=n, batch_size=batch_size, generator=torch.Generator().manual_seed(0))
    return timer() - start


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        model, inputs = build(name)
        for n in args.n:
            points = args.points or DEFAULT_POINTS.get(n, max(1, 200_000 // n))
            x = inputs[:points]
            for batch_size in args.batch_sizes:
                measure(model, x[:1], n=min(n, 1000), batch_size=batch_size, clock=args.clock)  # warm up
                times = [measure(model, x, n=n, batch_size=batch_size, clock=args.clock) for _ in range(args.repeats)]
                seconds = statistics.median(times)
                rows.append(
                    {
                        "model": name,
                        "params": sum(p.numel() for p in model.parameters()),
                        "n": n,
                        "n0": 100,
                        "batch_size": batch_size,
                        "points": len(x),
                        "seconds": seconds,
                        "points_per_second": len(x) / seconds,
                        "samples_per_second": len(x) * (n + 100) / seconds,
                    }
                )
                print(_row(rows[-1]), flush=True)
    return rows


def _row(r: dict[str, Any]) -> str:
    return (
        f"| {r['model']} | {r['params']:,} | {r['n']:,} | {r['batch_size']} | {r['points']} | {r['seconds']:.2f} | "
        f"{r['points_per_second']:.2f} | {r['samples_per_second'] / 1e6:.2f}M |"
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--n", nargs="+", type=int, default=[1_000, 10_000, 100_000], help="samples per point")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[4096], help="noisy inputs per forward")
    parser.add_argument("--points", type=int, default=None, help="points per case (default 200, 40, 4 at n=1e3..1e5)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="write the table (.md) or the rows (.json)")
    args = parser.parse_args(argv)
    header = (
        f"Points certified per second (CPU, {args.threads} thread(s), {args.clock} clock, median of "
        f"{args.repeats}, n0 = 100, torch {torch.__version__})"
    )
    print(header)
    print("| model | params | n | batch | points | seconds | points/s | samples/s |\n|---|---|---|---|---|---|---|---|")
    rows = run(args)
    if args.out is not None:
        if args.out.suffix == ".json":
            args.out.write_text(dumps({"header": header, "rows": rows}, indent=2) + "\n")
        else:
            table = "\n".join(_row(r) for r in rows)
            columns = "| model | params | n | batch | points | seconds | points/s | samples/s |"
            args.out.write_text(f"{header}\n\n{columns}\n|---|---|---|---|---|---|---|---|\n{table}\n")
    return rows


if __name__ == "__main__":
    main()
