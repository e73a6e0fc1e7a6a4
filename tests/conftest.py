import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models run fastest on one thread; it also keeps parallel test processes from fighting for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_wandb(monkeypatch):
    """A W&B test of its own: offline mode and a fresh wandb singleton before and after.

    wandb keeps process-wide settings from its first ``init`` (taken while this suite's default
    ``WANDB_MODE=disabled`` is set), which would silently disable a later offline run in the same process.
    """
    wandb = pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    _end_wandb(wandb)
    yield wandb
    _end_wandb(wandb)


def _end_wandb(wandb) -> None:
    """Finish a run an earlier test left open (a disabled-mode ``WandbLogger`` keeps its run, and a later
    ``WandbLogger`` would reuse it instead of starting an offline run), then reset the singleton."""
    if wandb.run is not None:
        wandb.finish()
    wandb.teardown()
