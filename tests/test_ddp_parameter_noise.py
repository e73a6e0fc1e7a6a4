"""Replicas under DDP: gradient noise must be identical on every rank, or the parameters drift apart.

The run happens in a subprocess with a clean environment: Lightning's ``ddp`` launcher re-runs the command line
of its parent process, which must be the script, not pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "ddp_parameter_noise.py"
_LAUNCHER_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK")


def clean_environment() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _LAUNCHER_VARIABLES and not k.startswith(("PL_", "PYTEST_", "TORCHELASTIC_", "SLURM_"))
    }
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", WANDB_MODE="disabled", PYTHONWARNINGS="ignore")
    return env


def test_gradient_noise_keeps_ddp_replicas_bit_identical(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    assert set(rank0) == {"hidden.weight", "hidden.bias", "head.weight", "head.bias"}
    # The library's noise: the same on both ranks, so the parameters stay bit-identical.
    for name in ("hidden.weight", "hidden.bias"):
        assert torch.equal(rank0[name], rank1[name]), f"{name} drifted between ranks"
    # The control (noise keyed by rank) shows that the comparison above can fail.
    for name in ("head.weight", "head.bias"):
        assert not torch.equal(rank0[name], rank1[name]), f"{name}: per-rank noise should make the replicas differ"
