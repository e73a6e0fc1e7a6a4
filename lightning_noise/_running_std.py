"""Running per-feature statistics for noise relative to each feature's spread."""

from __future__ import annotations

from typing import Any

from torch import Tensor


class RunningStd:
    """Per-feature standard deviation over all batches seen, combined with Chan et al.'s parallel update.

    Features are all dimensions but the first (the batch). No host-device synchronization: the count is a
    Python integer and the moments stay on the tensor's device.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def update(self, x: Tensor) -> None:
        x = x.detach().float()
        n = x.shape[0] if x.ndim else 1
        x = x.reshape(n, *x.shape[1:]) if x.ndim else x.reshape(1)
        batch_mean = x.mean(dim=0)
        batch_m2 = ((x - batch_mean) ** 2).sum(dim=0)
        if (
            self.mean is None
            or self.m2 is None
            or self.mean.shape != batch_mean.shape
            or self.mean.device != batch_mean.device
        ):
            self.count, self.mean, self.m2 = n, batch_mean, batch_m2
            return
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + batch_m2 + delta.pow(2) * (self.count * n / total)
        self.count = total

    def std(self) -> Tensor:
        if self.m2 is None or self.count < 2:
            raise RuntimeError("RunningStd needs at least two samples before it has a standard deviation.")
        return (self.m2 / (self.count - 1)).sqrt()

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state.get("count", 0))
        self.mean, self.m2 = state.get("mean"), state.get("m2")
