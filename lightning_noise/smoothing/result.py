"""The result of certifying a data set: certified accuracy by radius, its summaries, and how it is shown.

Definitions (Cohen et al. 2019; Zhai et al. 2020 for the average radius), over the ``N`` certified points with
labels ``y_i``, certified predictions ``c_i`` (-1 = abstain) and radii ``r_i``:

* certified accuracy at radius ``r``: the fraction of points with ``c_i = y_i`` and ``r_i >= r``;
* clean accuracy of the smoothed classifier: the fraction with ``c_i = y_i`` (certified accuracy at radius 0;
  an abstention counts as an error);
* average certified radius (ACR): the mean of ``r_i * [c_i = y_i]`` (a wrong or abstaining point counts 0);
* abstain rate: the fraction with ``c_i = -1``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightning_noise._console import plain_table, print_table
from lightning_noise._figures import new_figure, save_figure
from lightning_noise.smoothing.smoothed import ABSTAIN

__all__ = ["CertificationResult", "DEFAULT_RADII"]

DEFAULT_RADII = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


@dataclass
class CertificationResult:
    """Certificates of ``N`` points with the settings that produced them (``n``, ``n0``, ``alpha``, ``sigma``).

    ``labels``, ``radii`` and ``targets`` are per point; ``radius_grid`` lists the radii reported in tables,
    logs and ``certify.json``.
    """

    labels: Tensor
    radii: Tensor
    targets: Tensor
    sigma: float
    n0: int
    n: int
    alpha: float
    radius_grid: Sequence[float] = DEFAULT_RADII
    seed: int | None = None
    seconds: float = float("nan")
    model: str = "model"
    dataset: str = "dataset"
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------ numbers
    @property
    def num_points(self) -> int:
        return int(self.labels.numel())

    @property
    def correct(self) -> Tensor:
        return self.labels == self.targets.to(self.labels.dtype)

    def certified_accuracy(self, radius: float) -> float:
        """Fraction of points certified correct at L2 radius ``radius`` or more."""
        if self.num_points == 0:
            return float("nan")
        return float((self.correct & (self.radii >= radius)).double().mean())

    @property
    def certified_accuracies(self) -> list[float]:
        return [self.certified_accuracy(r) for r in self.radius_grid]

    @property
    def clean_accuracy(self) -> float:
        return float(self.correct.double().mean()) if self.num_points else float("nan")

    @property
    def average_certified_radius(self) -> float:
        return float((self.radii * self.correct).double().mean()) if self.num_points else float("nan")

    @property
    def abstain_rate(self) -> float:
        return float((self.labels == ABSTAIN).double().mean()) if self.num_points else float("nan")

    @property
    def points_per_second(self) -> float:
        return self.num_points / self.seconds if self.seconds > 0 else float("nan")

    def settings(self) -> str:
        """One line with everything the confidence depends on."""
        return f"sigma={self.sigma:g}, n0={self.n0}, n={self.n}, alpha={self.alpha:g}, points={self.num_points}" + (
            f", seed={self.seed}" if self.seed is not None else ""
        )

    # ------------------------------------------------------------------------------------------ export
    def summary(self) -> dict[str, Any]:
        """Settings and summaries as plain numbers (what ``certify.json`` holds besides the per-point arrays)."""
        return {
            "sigma": self.sigma,
            "n0": self.n0,
            "n": self.n,
            "alpha": self.alpha,
            "points": self.num_points,
            "seed": self.seed,
            "radius": [float(r) for r in self.radius_grid],
            "certified_accuracy": self.certified_accuracies,
            "clean_accuracy": self.clean_accuracy,
            "average_certified_radius": self.average_certified_radius,
            "abstain_rate": self.abstain_rate,
            "seconds": self.seconds,
            "points_per_second": self.points_per_second,
        }

    def scalars(self, prefix: str = "certify") -> dict[str, float]:
        """Flat numbers for loggers and run records: ``{prefix}/acc_r{radius}``, ``acr``, ``abstain_rate``...

        The settings (``sigma``, ``n``, ``n0``, ``alpha``, ``points``) are included, so they travel with the numbers.
        """
        out = {f"{prefix}/acc_r{r:g}": a for r, a in zip(self.radius_grid, self.certified_accuracies, strict=True)}
        out.update(
            {
                f"{prefix}/clean_acc": self.clean_accuracy,
                f"{prefix}/acr": self.average_certified_radius,
                f"{prefix}/abstain_rate": self.abstain_rate,
                f"{prefix}/sigma": self.sigma,
                f"{prefix}/n": float(self.n),
                f"{prefix}/n0": float(self.n0),
                f"{prefix}/alpha": self.alpha,
                f"{prefix}/points": float(self.num_points),
            }
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            **self.summary(),
            **self.extra,
            "per_point": {
                "target": self.targets.tolist(),
                "label": self.labels.tolist(),
                "radius": self.radii.tolist(),
            },
        }

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    # ------------------------------------------------------------------------------------------ display
    def table_rows(self) -> tuple[list[str], list[list[str]]]:
        """Two columns of text: certified accuracy at each radius, then clean accuracy, ACR and abstain rate."""
        accuracies = zip(self.radius_grid, self.certified_accuracies, strict=True)
        rows = [[f"certified accuracy at r = {r:g}", f"{a:.3f}"] for r, a in accuracies]
        rows += [
            ["clean accuracy (smoothed)", f"{self.clean_accuracy:.3f}"],
            ["average certified radius", f"{self.average_certified_radius:.3f}"],
            ["abstain rate", f"{self.abstain_rate:.3f}"],
        ]
        return ["", "value"], rows

    def title(self) -> str:
        return f"Certified accuracy of smoothed {self.model} on {self.dataset} ({self.settings()})"

    def format_table(self) -> str:
        """The title and the table as plain text (what :meth:`print_table` prints without rich)."""
        return f"{self.title()}\n{plain_table(*self.table_rows())}"

    def print_table(self, console: Any = None) -> None:
        """Print the table with rich when it is installed, else as plain text."""
        columns, rows = self.table_rows()
        print_table(
            self.title(),
            columns,
            rows,
            what="Printing the certification table",
            console=console,
            section_after=len(self.radius_grid) - 1,
        )

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Certified accuracy against radius (step curve over every point's radius, dots at the grid); PNG."""
        fig = new_figure("Plotting certified accuracy", (6.4, 4.4))
        ax = fig.subplots()
        top = max([float(self.radii.max()) if self.num_points else 0.0, *self.radius_grid]) * 1.05 or 1.0
        grid = torch.linspace(0, top, 400)
        curve = [self.certified_accuracy(float(r)) for r in grid]
        ax.plot(grid.tolist(), curve, drawstyle="steps-post", label=f"sigma = {self.sigma:g}")
        ax.plot(list(self.radius_grid), self.certified_accuracies, "o", color="C0")
        ax.set_xlabel("L2 radius")
        ax.set_ylabel("certified accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(title=f"n={self.n}, n0={self.n0}, alpha={self.alpha:g}, {self.num_points} points", fontsize="small")
        ax.set_title(title or f"Randomized smoothing: {self.model} on {self.dataset}", fontsize="medium")
        return save_figure(fig, path)
