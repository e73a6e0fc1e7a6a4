"""Robustness plots name the noise levels on their x axis (``clean``, then each severity's amount), not the
severity index 0-5: the callback's ``robustness.png`` and the comparison report's."""

from __future__ import annotations

import pytest

from lightning_noise.report import compare_runs
from lightning_noise.robustness.corruptions import get_corruption
from lightning_noise.robustness.result import RobustnessCurve, RobustnessResult

pytest.importorskip("matplotlib")

CORRUPTIONS = {"gaussian": "std", "salt_and_pepper": "p", "shot_noise": "c"}


def _curve(name: str, shift: float = 0.0) -> RobustnessCurve:
    levels = get_corruption(name).levels
    metric = [0.95 - 0.1 * k - shift for k in range(len(levels) + 1)]
    return RobustnessCurve(name, CORRUPTIONS[name], list(range(len(levels) + 1)), [None, *levels], metric)


def _ticks(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def _spy(monkeypatch, module) -> dict:
    captured = {}
    real = module.save_figure

    def spy(fig, path):
        captured["fig"] = fig
        return real(fig, path)

    monkeypatch.setattr(module, "save_figure", spy)
    return captured


def test_callback_plot_has_a_panel_per_corruption_with_its_levels(tmp_path, monkeypatch):
    from lightning_noise.robustness import result as module

    captured = _spy(monkeypatch, module)
    result = RobustnessResult("accuracy", {name: _curve(name) for name in CORRUPTIONS}, seed=0)
    result.plot(tmp_path / "robustness.png")
    axes = [ax for ax in captured["fig"].axes if ax.get_visible()]
    assert [ax.get_title().split(":")[0] for ax in axes] == list(CORRUPTIONS)
    for ax, (name, amount) in zip(axes, CORRUPTIONS.items(), strict=True):
        levels = get_corruption(name).levels
        assert _ticks(ax) == ["clean", *(f"{v:g}" for v in levels)]  # shot noise: 500 ... 50, as the ladder runs
        assert ax.get_xlabel() == f"noise level ({amount})"
    assert (tmp_path / "robustness.png").stat().st_size > 0


def test_report_plot_names_the_levels_of_each_corruption(tmp_path, monkeypatch):
    from lightning_noise.report import plots as module

    runs = []
    for group, noise, shift in (("none", None, 0.1), ("in0.1", {"std": 0.1}, 0.0)):
        for seed in range(2):
            curves = {name: _curve(name, shift + 0.01 * seed).to_dict() for name in ("gaussian", "shot_noise")}
            metrics = {"test/acc": 0.9 - shift + 0.01 * seed}
            runs.append({"group": group, "seed": seed, "noise": noise, "metrics": metrics, "robustness": curves})
    report = compare_runs(runs)
    assert report.robustness["in0.1"]["gaussian"]["amount"] == "std"  # kept in summary.json for re-rendering
    captured = _spy(monkeypatch, module)
    report.plot_robustness(tmp_path / "robustness.png")
    gaussian, shot = [ax for ax in captured["fig"].axes if ax.get_visible()]
    assert (
        _ticks(gaussian) == ["clean", "0.1", "0.2", "0.3", "0.5", "1"] and gaussian.get_xlabel() == "noise level (std)"
    )
    assert _ticks(shot) == ["clean", "500", "250", "100", "75", "50"] and shot.get_xlabel() == "noise level (c)"


def test_curves_without_levels_keep_the_severity_axis(tmp_path, monkeypatch):
    """Run records written before the levels were kept: the axis says severity, as it can say nothing else."""
    from lightning_noise.report import plots as module

    runs = [
        {"group": g, "seed": s, "noise": n, "metrics": {"test/acc": a}, "robustness": {"gaussian": {"metric": c}}}
        for g, n, a, c in (("none", None, 0.8, [0.8, 0.7, 0.5]), ("in", {"std": 0.1}, 0.85, [0.85, 0.8, 0.7]))
        for s in range(2)
    ]
    captured = _spy(monkeypatch, module)
    compare_runs(runs).plot_robustness(tmp_path / "r.png")
    (ax,) = [ax for ax in captured["fig"].axes if ax.get_visible()]
    assert _ticks(ax) == ["0", "1", "2"] and ax.get_xlabel() == "severity (0 = clean)"
