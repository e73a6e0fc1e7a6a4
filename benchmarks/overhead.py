"""Step-time overhead of each noise callback: a Lightning training step with the callback / the same step without.

Usage::

    python benchmarks/overhead.py                      # all models and cases, eager, a few minutes on one core
    python benchmarks/overhead.py --models mlp --compiled also --repeats 5 --out overhead.md   # + compiled rows

Method. Models: an MLP with about 1M parameters (784-1024-256-10, batch 64), a small CNN on 28x28 inputs
(batch 64) and an LSTM (32 inputs, 256 hidden, 32 time steps, batch 32), on in-memory random data, on the CPU
with ``torch.set_num_threads(1)``. Each (model, case) is one ``Trainer.fit`` of ``warmup + steps`` optimizer
steps; a timing callback, first in the callback list, records the time between consecutive
``on_train_batch_start`` calls: the whole step cycle, data loading, every hook and the optimizer step included.
The first ``warmup`` steps are dropped. ``--compiled also`` repeats every case with ``torch.compile(model)``
(inductor); those ratios are against the compiled baseline.

Clock. Wall time by default: the exact samplers of WeightNoise and GradientNoise draw the next step's numbers
on a side thread (``prefetch=True``), which the training thread's CPU time (``--clock cpu``) would not count.
Wall time needs a quiet machine with a spare core for that thread: run nothing else meanwhile. The
``prefetch=False`` cases show the same sampler without the side thread.

On a shared machine, step times drift by tens of percent over seconds (other processes share the core and
its caches), more than the effects measured. So by default (``--method alternate``) the callback's amount is
a schedule that is on at even steps and 0 at odd ones (a zero amount skips all work; the idle hooks cost
microseconds), and a fit's ratio is the median over adjacent pairs of (on-step time / off-step time): the two
halves of a pair are ~10 ms apart. ``--method separate`` compares whole fits with a baseline fit instead.
Cases run round-robin, ``repeats`` times; the table shows the median ratio over repeats and its range. The
baseline row's ratio (even / odd steps without any callback) is the noise floor of the measurement.

Memory. ``extra MB`` is what the callback holds beyond the model for the whole fit, counted from its tensors'
storages: noise buffers (for WeightNoise they also hold the noisy weights during a batch: two with prefetch,
one without), clean copies (sharded parameters only) and the noise table (``sampler='table'``, shared by all
draws). The summary also gives it per byte of the parameters the callback acts on. Building a table is a
one-off transient of about 24 bytes per entry at the first noisy step.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_noise import ActivationNoise, GradientNoise, InputNoise, WeightNoise  # noqa: E402
from lightning_noise._callback import NoiseCallback  # noqa: E402
from lightning_noise._json import dumps  # noqa: E402
from lightning_noise.schedules import Annealed  # noqa: E402


# --------------------------------------------------------------------------------------------------- models
class Classifier(pl.LightningModule):
    """Cross-entropy classifier around ``net``, trained with SGD."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


class LSTMNet(nn.Module):
    def __init__(self, features: int = 32, hidden: int = 256, classes: int = 10) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(x)
        return self.head(output[:, -1])


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 10))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


# name: (network, input shape per sample, batch size, hidden modules for ActivationNoise)
MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int, list[str]]] = {
    "mlp": (mlp, (784,), 64, ["net.1", "net.3"]),
    "cnn": (cnn, (1, 28, 28), 64, ["net.1", "net.4"]),
    "lstm": (LSTMNet, (32, 32), 32, ["net.lstm"]),
}


class OnEvenSteps:
    """A schedule that is ``schedule(step)`` on even steps and 0 on odd ones: the callback idles every other step."""

    def __init__(self, schedule: Callable[[int], float] | float) -> None:
        self.schedule = schedule if callable(schedule) else (lambda step, value=float(schedule): value)

    def __call__(self, step: int) -> float:
        return float(self.schedule(step)) if step % 2 == 0 else 0.0


# name: factory(hidden modules, amount wrapper). The wrapper is OnEvenSteps under --method alternate.
Amount = Callable[[Any], Any]
CASES: dict[str, Callable[[list[str], Amount], pl.Callback | None]] = {
    "baseline": lambda hidden, a: None,
    "InputNoise(std=0.1)": lambda hidden, a: InputNoise(std=a(0.1), seed=0),
    "ActivationNoise(std=0.1, hidden)": lambda hidden, a: ActivationNoise(std=a(0.1), modules=hidden, seed=0),
    "ActivationNoise(std=0.1, hidden, sampler='table')": lambda hidden, a: ActivationNoise(
        std=a(0.1), modules=hidden, sampler="table", seed=0
    ),
    "WeightNoise(std=0.05)": lambda hidden, a: WeightNoise(std=a(0.05), seed=0),
    "WeightNoise(std=0.05, prefetch=False)": lambda hidden, a: WeightNoise(std=a(0.05), seed=0, prefetch=False),
    "WeightNoise(std=0.05, sampler='table')": lambda hidden, a: WeightNoise(std=a(0.05), sampler="table", seed=0),
    "GradientNoise(eta=0.3)": lambda hidden, a: GradientNoise(std=a(Annealed(0.3)), seed=0),
    "GradientNoise(eta=0.3, prefetch=False)": lambda hidden, a: GradientNoise(
        std=a(Annealed(0.3)), seed=0, prefetch=False
    ),
    "GradientNoise(eta=0.3, sampler='table')": lambda hidden, a: GradientNoise(
        std=a(Annealed(0.3)), sampler="table", seed=0
    ),
}


# --------------------------------------------------------------------------------------------------- timing
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}


class StepTimer(pl.Callback):
    """Times between consecutive ``on_train_batch_start`` calls (a full step cycle), on ``clock``."""

    def __init__(self, clock: Callable[[], float] = time.thread_time) -> None:
        self.clock = clock
        self.starts: list[float] = []
        self.memory: dict[str, int] = {}

    def _now(self, pl_module: pl.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # time the work, not the kernel launches
        return self.clock()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(self._now(pl_module))

    def on_train_end(self, trainer, pl_module) -> None:
        self.starts.append(self._now(pl_module))
        noise = next((c for c in trainer.callbacks if isinstance(c, NoiseCallback)), None)
        self.memory = held_memory(noise, pl_module)  # before teardown releases the buffers

    def intervals(self) -> list[float]:
        return [b - a for a, b in pairwise(self.starts)]


def step_times(
    model_name: str,
    case: str,
    *,
    steps: int,
    warmup: int,
    clock: str,
    alternate: bool,
    compiled: bool = False,
    accelerator: str = "cpu",
) -> tuple[list[float], dict[str, int]]:
    """Step times (seconds) of one fit of ``warmup + steps`` steps, warm-up dropped (step k is interval k), and
    the extra memory the callback holds at the end (see :func:`held_memory`)."""
    make_net, shape, batch_size, hidden = MODELS[model_name]
    torch.manual_seed(0)
    model = Classifier(make_net())
    n = batch_size * (steps + warmup)
    x = torch.randn(n, *shape)
    y = torch.randint(0, 10, (n,))
    data = DataLoader(TensorDataset(x, y), batch_size=batch_size)
    timer = StepTimer(CLOCKS[clock])
    noise = CASES[case](hidden, OnEvenSteps if alternate else (lambda amount: amount))
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        max_steps=steps + warmup,
        callbacks=[timer] + ([noise] if noise is not None else []),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    if compiled:
        torch._dynamo.reset()
    trainer.fit(torch.compile(model) if compiled else model, data)
    return timer.intervals()[warmup:], timer.memory


# --------------------------------------------------------------------------------------------------- memory
def _tensors(value: Any, seen: set[int]) -> list[Tensor]:
    """Every tensor reachable from ``value`` through lists, tuples, dicts, dataclasses and objects' __dict__."""
    if id(value) in seen:
        return []
    seen.add(id(value))
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (nn.Module, pl.Trainer, torch.Generator)):
        return []
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, (list, tuple, set)):
        items = list(value)
    elif hasattr(value, "__dict__") and type(value).__module__.startswith("lightning_noise"):
        items = list(vars(value).values())
    else:
        return []
    return [t for item in items for t in _tensors(item, seen)]


MEMORY_PARTS = {"_buffers": "noise", "_plans": "noise", "_clean_groups": "clean", "_table": "table"}


def held_memory(noise: pl.Callback | None, model: nn.Module) -> dict[str, int]:
    """Bytes of the storages the callback keeps beyond the model, by part: noise buffers (the noisy weights of
    WeightNoise live there too), clean copies and noise tables; ``selected``: bytes of the parameters it acts on.

    This is what the callback adds to the baseline's memory for the whole fit. A transient comes on top once:
    building a noise table draws it one float64 chunk (8 MB) at a time, at the first noisy step.
    """
    if noise is None:
        return {}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen_storages: set[int] = set(params)
    parts = dict.fromkeys(("noise", "clean", "table"), 0)
    for attribute, part in MEMORY_PARTS.items():
        for tensor in _tensors(getattr(noise, attribute, None), set()):
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in seen_storages and storage.nbytes():
                seen_storages.add(storage.data_ptr())
                parts[part] += storage.nbytes()
    selected = getattr(noise, "_params", None)
    if selected is None and getattr(noise, "_plans", None):
        selected = [p for plan in noise._plans.values() for p in plan.params]
    parts["selected"] = sum(p.numel() * p.element_size() for p in selected or [])
    return parts


def measure(
    models: list[str],
    cases: list[str],
    *,
    repeats: int,
    steps: int,
    warmup: int,
    clock: str,
    method: str,
    modes: tuple[str, ...] = ("eager",),
    accelerator: str = "cpu",
) -> list[dict]:
    """Per model and mode: ``repeats`` rounds over the cases; per case, the median ratio over rounds and its range.

    ``alternate``: in each fit the callback is on at even steps and idle (amount 0) at odd ones; a fit's ratio
    is the median over pairs of (on-step time / the next off-step time), so each pair is ~10 ms apart.
    ``separate``: a fit's ratio is its median step time over the baseline fit's of the same round.
    ``modes``: ``eager`` and/or ``compiled`` (``torch.compile(model)``, inductor; its ratios are against the
    compiled baseline).
    """
    rows = []
    alternate = method == "alternate"
    for model_name in models:
        for mode in modes:
            on: dict[str, list[float]] = {case: [] for case in cases}
            ratios: dict[str, list[float]] = {case: [] for case in cases}
            memory: dict[str, dict[str, int]] = {}
            for _ in range(repeats):
                medians = {}
                for case in cases:
                    times, memory[case] = step_times(
                        model_name, case, steps=steps, warmup=warmup, clock=clock, alternate=alternate,
                        compiled=mode == "compiled", accelerator=accelerator,
                    )  # fmt: skip
                    if alternate:
                        # strict=False: with an odd count, the last on-step has no off-step to pair with
                        pairs = list(zip(times[0::2], times[1::2], strict=False))
                        ratios[case].append(statistics.median(a / b for a, b in pairs))
                        medians[case] = statistics.median(times[0::2])
                    else:
                        medians[case] = statistics.median(times)
                    on[case].append(medians[case])
                if not alternate:
                    for case in cases:
                        ratios[case].append(medians[case] / medians["baseline"])
            params = sum(p.numel() for p in MODELS[model_name][0]().parameters())
            baseline_ms = 1e3 * statistics.median(on["baseline"])
            for case in cases:
                rows.append(
                    {
                        "model": model_name,
                        "mode": mode,
                        "params": params,
                        "case": case,
                        "step_ms": 1e3 * statistics.median(on[case]),
                        "baseline_ms": baseline_ms,
                        "ratio": statistics.median(ratios[case]),
                        "ratio_min": min(ratios[case]),
                        "ratio_max": max(ratios[case]),
                        "memory": memory[case],
                    }
                )
    return rows


# --------------------------------------------------------------------------------------------------- output
HEADERS = ["model", "mode", "params", "case", "step (ms)", "baseline (ms)", "ratio", "ratio min-max", "extra MB"]


def _mb(row: dict) -> str:
    held = sum(v for k, v in row["memory"].items() if k != "selected")
    return f"{held / 2**20:.1f}" if row["memory"] else "-"


def cells(row: dict) -> list[str]:
    return [
        row["model"],
        row["mode"],
        f"{row['params'] / 1e6:.2f}M",
        row["case"],
        f"{row['step_ms']:.2f}",
        f"{row['baseline_ms']:.2f}",
        f"{row['ratio']:.3f}x",
        f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}",
        _mb(row),
    ]


def family(case: str) -> tuple[str, str]:
    """(callback without the sampler/prefetch arguments, sampler label) of a case name."""
    label = "table" if "sampler='table'" in case else ("exact, no prefetch" if "prefetch=False" in case else "exact")
    name = case.replace(", sampler='table'", "").replace(", prefetch=False", "")
    return name, label


SUMMARY_HEADERS = [
    "model", "mode", "callback", "baseline (ms)", "exact", "exact, no prefetch", "table",
    "extra memory (exact / table)", "per selected param (noise + clean / table)",
]  # fmt: skip


def summary(rows: list[dict]) -> list[list[str]]:
    """One line per (model, mode, callback): the samplers' ratios side by side and the memory each holds."""
    lines: dict[tuple[str, str, str], dict[str, dict]] = {}
    for row in rows:
        if row["case"] == "baseline":
            continue
        name, label = family(row["case"])
        lines.setdefault((row["model"], row["mode"], name), {})[label] = row
    table = []
    for (model, mode, name), by_label in lines.items():
        any_row = next(iter(by_label.values()))
        ratios = [_ratio(by_label, label) for label in ("exact", "exact, no prefetch", "table")]
        memory = " / ".join(_mb(by_label[label]) + " MB" if label in by_label else "-" for label in ("exact", "table"))
        per_param = " / ".join(_per_param(by_label, label) for label in ("exact", "table"))
        table.append([model, mode, name, f"{any_row['baseline_ms']:.2f}", *ratios, memory, per_param])
    return table


def _ratio(by_label: dict[str, dict], label: str) -> str:
    return f"{by_label[label]['ratio']:.2f}x" if label in by_label else "-"


def _per_param(by_label: dict[str, dict], label: str) -> str:
    memory = by_label[label]["memory"] if label in by_label else {}
    if not memory.get("selected"):
        return "-"
    buffers = (memory["noise"] + memory["clean"]) / memory["selected"]
    table_mb = memory["table"] / 2**20
    return f"{buffers:.1f}x" + (f" + {table_mb:.0f} MB table" if table_mb else "")


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(SUMMARY_HEADERS) + " |", "|" + "---|" * len(SUMMARY_HEADERS)]
    lines += ["| " + " | ".join(line) + " |" for line in summary(rows)]
    lines += ["", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def show(rows: list[dict], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(markdown(rows))
        return
    console = Console(width=200)
    for headers, lines, name in ((SUMMARY_HEADERS, summary(rows), "summary"), (HEADERS, map(cells, rows), "all")):
        table = Table(title=f"{title} [{name}]")
        for header in headers:
            table.add_column(header, justify="left" if header in ("model", "mode", "case", "callback") else "right")
        for line in lines:
            table.add_row(*line)
        console.print(table)


def device_name(accelerator: str) -> str:
    """What the benchmark ran on, for the title: ``CPU`` or the CUDA card's name."""
    return torch.cuda.get_device_name(0) if accelerator == "gpu" else "CPU"


MODES = {"no": ("eager",), "also": ("eager", "compiled"), "only": ("compiled",)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--cases", nargs="+", default=None, help="case names (default all); baseline is always run")
    parser.add_argument(
        "--method",
        choices=["alternate", "separate"],
        default="alternate",
        help="alternate: callback on at even steps, idle at odd ones; separate: vs a baseline fit",
    )
    parser.add_argument("--repeats", type=int, default=5, help="fits per (model, case), round-robin")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per fit (even)")
    parser.add_argument("--warmup", type=int, default=6, help="untimed steps at the start of each fit (even)")
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="wall (default): elapsed time; cpu: the training thread's CPU time, which does not count "
        "the prefetch thread's work (use it only to compare runs without prefetch)",
    )
    parser.add_argument(
        "--compiled",
        choices=["no", "also", "only"],
        default="no",
        help="also: add rows with torch.compile(model) (inductor), ratios against the compiled "
        "baseline; only: just those",
    )
    parser.add_argument(
        "--accelerator",
        choices=["cpu", "gpu"],
        default="cpu",
        help="gpu: one CUDA device (steps are timed after torch.cuda.synchronize)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=None, help="write the results to a .json or .md file")
    args = parser.parse_args(argv)
    cases = ["baseline"] + [c for c in (args.cases or CASES) if c != "baseline"]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")

    torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    if args.steps % 2 or args.warmup % 2:
        parser.error(f"--steps and --warmup must be even, got {args.steps} and {args.warmup}")
    rows = measure(
        args.models,
        cases,
        repeats=args.repeats,
        steps=args.steps,
        warmup=args.warmup,
        clock=args.clock,
        method=args.method,
        modes=MODES[args.compiled],
        accelerator=args.accelerator,
    )
    title = (
        f"Step time with / without each callback ({args.method}, {device_name(args.accelerator)}, "
        f"{args.threads} thread(s), {args.clock} clock, "
        f"median of {args.repeats} fits of {args.steps} steps, torch {torch.__version__}, lightning {pl.__version__}; "
        f"{time.perf_counter() - start:.0f} s)"
    )
    show(rows, title)
    if args.out is not None:
        if args.out.suffix == ".json":
            args.out.write_text(dumps({"title": title, "rows": rows}, indent=2) + "\n")
        else:
            args.out.write_text(f"{title}\n\n{markdown(rows)}")
    return rows


if __name__ == "__main__":
    main()
