"""Process memory of the noise callbacks on a large model: steady and peak resident set size (RSS) of a short fit.

Usage::

    nice -n 10 python benchmarks/table_memory.py                       # 50M parameters, every case, ~2 minutes
    nice -n 10 python benchmarks/table_memory.py --width 1024 --layers 4 --cases none weight-table

Method. The model is ``layers`` Linear(width, width) layers (no biases: 12 x 2048^2 = 50.3M parameters,
201 MB of float32 weights), trained with SGD on random data (batch 8) for ``steps`` optimizer steps on the
CPU. Each case runs in its own process, so that the process's peak RSS (``ru_maxrss``) is that fit's peak.
``steady`` is the RSS at the end of the last training batch (``/proc/self/statm``: what the process holds
while training, the callback's buffers and table included); ``peak`` is the largest RSS of the whole process.
Both are given beyond the ``none`` case (the same fit without a noise callback), in MB and as a multiple of the
selected weights' bytes. The allocator may keep freed memory mapped, so ``steady`` can include freed pages; the
``none`` row measures the same allocator on the same model.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = {
    "none": None,
    "weight-exact": "WeightNoise(std=0.01, seed=0, prefetch=False)",
    "weight-table": "WeightNoise(std=0.01, seed=0, sampler='table')",
    "gradient-exact": "GradientNoise(std=0.01, seed=0, prefetch=False)",
    "gradient-table": "GradientNoise(std=0.01, seed=0, sampler='table')",
}


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def run_case(case: str, width: int, layers: int, steps: int) -> dict:
    """One fit in this process: steady and peak RSS in MB."""
    import lightning.pytorch as pl
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_noise import GradientNoise, WeightNoise  # noqa: F401 (used by eval of CASES)

    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    class Model(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(*[nn.Linear(width, width, bias=False) for _ in range(layers)])

        def training_step(self, batch, batch_idx):
            (x,) = batch
            return self.net(x).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1e-6)

    class Steady(pl.Callback):
        rss = 0.0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            Steady.rss = _rss_mb()

    model = Model()
    data = DataLoader(TensorDataset(torch.randn(8 * steps, width)), batch_size=8)
    callbacks = [Steady()] + ([eval(CASES[case])] if CASES[case] else [])
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=callbacks,
    )
    trainer.fit(model, data)
    parameters = sum(p.numel() for p in model.parameters())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "case": case,
        "parameters": parameters,
        "weights_mb": parameters * 4 / 2**20,
        "steady": Steady.rss,
        "peak": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.width, args.layers, args.steps)))
        return
    rows = []
    for case in dict.fromkeys(["none", *args.cases]):
        command = [sys.executable, __file__, "--one", case, "--width", str(args.width), "--layers", str(args.layers)]
        output = subprocess.run([*command, "--steps", str(args.steps)], capture_output=True, text=True, check=True)
        rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
    base = rows[0]
    weights = base["weights_mb"]
    print(
        f"model: {args.layers} x Linear({args.width}, {args.width}), {base['parameters'] / 1e6:.1f}M parameters, "
        f"{weights:.0f} MB of float32 weights; baseline (no callback): steady {base['steady']:.0f} MB, "
        f"peak {base['peak']:.0f} MB"
    )
    print("| case | steady extra MB | x weights | peak extra MB | x weights |")
    print("|---|---|---|---|---|")
    for row in rows[1:]:
        steady, peak = row["steady"] - base["steady"], row["peak"] - base["peak"]
        print(f"| {row['case']} | {steady:.0f} | {steady / weights:.2f} | {peak:.0f} | {peak / weights:.2f} |")


if __name__ == "__main__":
    main()
