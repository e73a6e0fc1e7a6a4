"""Fixtures of the recipe tests: compose the Hydra configs in ``conf/`` (once per test, with Hydra's
``initialize_config_dir``/``compose``) with the run directory pointed at ``tmp_path``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict, read_write

from train import train, write_outputs

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
TRAIN = ROOT / "recipes" / "train.py"

# The fast, quiet settings of every training test: one epoch of at most 2 batches, no logger.
FAST = ["trainer=debug", "logger=none"]


def options(group: str) -> list[str]:
    """The options of a config group (file names), without the shared `default` base of a group."""
    names = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    if group in ("data", "model"):
        names.remove("default")
    return names


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``compose_cfg(overrides)`` -> the root config as ``recipes/train.py`` would see it, run dir = tmp_path."""

    def _compose(overrides: list[str] = (), *, run_dir: Path | None = None) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
        with read_write(cfg), open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir or tmp_path)
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


def train_and_write(cfg: DictConfig) -> dict[str, float]:
    """What ``recipes/train.py`` does without Hydra's wrapper: ``train(cfg)``, then ``write_outputs`` (the run
    record ``metrics.json`` and the summary); returns the metrics."""
    metrics, objects = train(cfg)
    write_outputs(metrics, objects)
    return metrics


def write_csv(path: Path, n: int = 60, seed: int = 0) -> Path:
    """A small 2-class CSV: features a, b, c and a string label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    label = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    lines = ["a,b,c,label"] + [f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{lab}" for r, lab in zip(x, label, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte idx file (the MNIST format)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> Path:
    """Tiny Fashion-MNIST-shaped idx files (28x28 uint8 images, labels 0-9)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, size=(n, 28, 28)))
        write_idx(root / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return root


def run_recipe(
    args: list[str], *, cwd: Path, timeout: int = 300, env: dict[str, str] | None = None, script: Path = TRAIN
) -> subprocess.CompletedProcess:
    """Run ``recipes/train.py`` (or ``script``) in a subprocess with a clean environment (one thread, W&B off);
    ``env`` adds or replaces variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PL_", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE"))}
    base.update(WANDB_MODE="disabled", WANDB_SILENT="true", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    env = {**base, **(env or {})}
    return subprocess.run(
        [sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def read_wandb_run(run_dir: Path) -> dict:
    """The run record of an offline W&B run, read back from its ``.wandb`` file: ``name``, ``group``, ``tags``,
    ``config`` (``{key: value}``) and ``summary`` (the last value of each key).

    The file is a LevelDB-style log (a 7-byte ``:W&B`` header, 32 KiB blocks of records with a 7-byte header:
    CRC, length, type; FULL=1, FIRST=2, MIDDLE=3, LAST=4) of wandb ``Record`` protobufs.
    """
    import json
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    raw = next(Path(run_dir).glob("*.wandb")).read_bytes()
    block, pos, chunk = 32768, 7, b""
    out: dict = {"config": {}, "summary": {}}
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        chunk += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind not in (1, 4):
            continue
        record = pb.Record()
        record.ParseFromString(chunk)
        chunk = b""
        field = record.WhichOneof("record_type")
        if field == "run":
            out.update(name=record.run.display_name, group=record.run.run_group, tags=list(record.run.tags))
            items = record.run.config.update
        elif field in ("config", "summary"):
            items = getattr(record, field).update
        else:
            continue
        target = out["summary"] if field == "summary" else out["config"]
        target.update({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return out
