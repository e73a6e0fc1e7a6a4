"""RandomizedSmoothing: end to end after a tiny fit (files, logs, numbers), argument errors, DDP over 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from lightning_noise import InputNoise, RandomizedSmoothing
from tests.helpers import trainer as make_trainer
from tests.test_robustness import Classifier, blobs, wandb_calls  # noqa: F401 (wandb_calls: a fixture)

SCRIPT = Path(__file__).parent / "scripts" / "ddp_certify.py"


@pytest.fixture
def hide(monkeypatch):
    """``hide(package)``: as if ``package`` were not installed for the rest of the test. lightning_utilities
    remembers which packages it found (``_optional.available`` asks it): forget that now and after."""
    from lightning_utilities.core.imports import package_available

    def hide(package: str) -> None:
        monkeypatch.setitem(sys.modules, package, None)
        package_available.cache_clear()

    yield hide
    package_available.cache_clear()


def test_certifies_the_test_set_after_test_and_reports(tmp_path):
    pytest.importorskip("matplotlib")
    torch.manual_seed(0)
    model = Classifier()
    smoothing = RandomizedSmoothing(
        0.5, n0=32, n=500, radii=[0, 0.25, 0.5, 1.0], max_samples=40, output_dir=tmp_path, print_table=False
    )
    logger = CSVLogger(tmp_path, name="logs")
    trainer = make_trainer(max_epochs=30, logger=logger, callbacks=[InputNoise(std=0.5, seed=0), smoothing])
    trainer.fit(model, DataLoader(blobs(300, 0), batch_size=100))
    assert smoothing.result is None  # only after test
    trainer.test(model, DataLoader(blobs(90, 1), batch_size=32), verbose=False)

    record = json.loads((tmp_path / "certify.json").read_text())
    assert (tmp_path / "certify.png").stat().st_size > 1000
    assert (record["sigma"], record["n0"], record["n"], record["alpha"], record["points"]) == (0.5, 32, 500, 0.001, 40)
    assert record["per_point"]["target"] == blobs(90, 1).tensors[1][:40].tolist()  # the first 40 points, in order
    accuracy = record["certified_accuracy"]
    assert accuracy[0] == record["clean_accuracy"] >= 0.9  # blobs 3.2+ apart, std 0.4 (+ 0.5 noise): easy
    assert all(a >= b for a, b in zip(accuracy, accuracy[1:], strict=False))
    radii = torch.tensor(record["per_point"]["radius"])
    labels = torch.tensor(record["per_point"]["label"])
    # n = 500, alpha = 0.001: p_low <= 0.001 ** (1 / 500) (all 500 samples right), so radius <= sigma * Phi^-1(that).
    largest = 0.5 * torch.special.ndtri(torch.tensor(0.001 ** (1 / 500), dtype=torch.float64)).item()
    assert bool((radii <= largest + 1e-12).all()) and bool((radii[labels >= 0] > 0).all())
    assert (radii == radii.max()).sum() >= 10  # many points far from the boundary: all 500 samples right
    assert record["abstain_rate"] == pytest.approx((labels == -1).double().mean().item())
    assert record["average_certified_radius"] == pytest.approx(
        (radii * (labels == torch.tensor(record["per_point"]["target"]))).mean().item()
    )
    logger.save()
    logged = (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("certify/acc_r0.5", "certify/acr", "certify/abstain_rate", "certify/clean_acc", "certify/n"):
        assert key in logged


def test_plain_table_names_the_settings(capsys, hide):
    from lightning_noise.smoothing import CertificationResult

    result = CertificationResult(
        labels=torch.tensor([0, -1, 1]),
        radii=torch.tensor([0.6, 0.0, 0.2], dtype=torch.float64),
        targets=torch.tensor([0, 1, 0]),
        sigma=0.25,
        n0=100,
        n=1000,
        alpha=0.001,
        radius_grid=[0.0, 0.5],
    )
    text = result.format_table()
    assert "n0=100, n=1000, alpha=0.001, points=3" in text
    hide("rich")  # without rich: the same plain text as every other table
    result.print_table()
    assert capsys.readouterr().out == text + "\n"
    assert text.splitlines()[2].split()[-1] == "0.333"  # certified accuracy at radius 0, right of its name
    assert result.certified_accuracies == [pytest.approx(1 / 3), pytest.approx(1 / 3)]
    assert result.abstain_rate == pytest.approx(1 / 3)
    assert result.average_certified_radius == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sigma": -0.1}, ValueError, r"`sigma` must be a finite number > 0"),
        ({"n": 0}, ValueError, r"`n` must be an integer >= 1, got 0"),
        ({"n": 1e4}, TypeError, r"`n` must be an integer >= 1, got 10000.0 \(float\)"),
        ({"alpha": 2}, ValueError, r"`alpha` must be a finite number > 0 and < 1"),
        ({"radii": []}, ValueError, r"`radii` must be a non-empty sequence of finite numbers >= 0, got \[\]"),
        (
            {"radii": [0.5, -1]},
            ValueError,
            r"`radii` must be a non-empty sequence of finite numbers >= 0, got \[0.5, -1\]",
        ),
        (
            {"radii": "0.5"},
            TypeError,
            r"`radii` must be a non-empty sequence of finite numbers >= 0, got '0.5' \(str\)",
        ),
        ({"max_samples": 0}, ValueError, r"`max_samples` must be an integer >= 1 or None"),
        ({"when": "fit_end"}, ValueError, r"`when` must be 'test_end' or 'manual'"),
        ({"seed": "1"}, TypeError, r"`seed` must be an integer >= 0, got '1' \(str\)"),
        ({"plot": "false"}, TypeError, r"`plot` must be a bool \(True or False\), got 'false' \(str\)"),
        ({"print_table": 0}, TypeError, r"`print_table` must be a bool"),
        ({"log": None}, TypeError, r"`log` must be a bool"),
        ({"output_dir": 3}, TypeError, r"`output_dir` must be a path"),
    ],
)
def test_argument_errors(kwargs, error, message):
    args = {"sigma": 0.25, **kwargs}
    with pytest.raises(error, match=message):
        RandomizedSmoothing(**args)


def test_numpy_integers_are_accepted():
    np = pytest.importorskip("numpy")
    callback = RandomizedSmoothing(
        np.float32(0.25),
        n0=np.int64(8),
        n=np.int64(50),
        seed=np.int64(1),
        radii=np.array([0.5, 0.0]),
        plot=np.bool_(False),
    )
    assert (callback.n0, callback.n, callback.seed, callback.radii) == (8, 50, 1, [0.0, 0.5])
    assert callback.plot is False and type(callback.n) is int


def test_plot_follows_matplotlib_as_robustness_evaluation_does(hide):
    """``plot=None`` plots when matplotlib is installed; ``plot=True`` without it names the ``plot`` extra."""
    assert RandomizedSmoothing(0.25).plot is True  # matplotlib is installed here
    hide("matplotlib")  # as if it were not
    assert RandomizedSmoothing(0.25).plot is False
    with pytest.raises(
        ImportError, match=r"RandomizedSmoothing\(plot=True\) needs matplotlib.*lightning-noise\[plot\]"
    ):
        RandomizedSmoothing(0.25, plot=True)
    from lightning_noise import RobustnessEvaluation

    assert RobustnessEvaluation().plot is False
    with pytest.raises(ImportError, match=r"RobustnessEvaluation\(plot=True\) needs matplotlib"):
        RobustnessEvaluation(plot=True)


def test_ddp_splits_points_across_ranks_and_gathers_them_in_order(tmp_path):
    launcher = ("PL_", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(launcher)}
    env["PYTHONPATH"] = str(Path(__file__).parents[1])
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    record = json.loads((tmp_path / "certify.json").read_text())
    # 21 points: rank 0 certified points 0, 2, ..., 20 (11), rank 1 points 1, 3, ..., 19 (10); every rank has all.
    assert [r["own"] for r in ranks] == [11, 10]
    assert record["points"] == 21 and record["world_size"] == 2
    assert record["per_point"]["target"] == list(range(21))
    for r in ranks:
        assert r["targets"] == list(range(21)) and r["labels"] == record["per_point"]["label"]
    # The model predicts the class written in the input (far from any boundary): certified correct everywhere.
    assert record["per_point"]["label"] == list(range(21))


def test_wandb_logger_gets_numbers_table_and_plot(tmp_path, wandb_calls):  # noqa: F811 (the fixture)
    pytest.importorskip("wandb")
    pytest.importorskip("matplotlib")
    from lightning.pytorch.loggers import WandbLogger

    logged = wandb_calls
    callback = RandomizedSmoothing(
        0.5, n0=16, n=100, radii=[0, 0.5], max_samples=6, print_table=False, output_dir=tmp_path
    )
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, mode="disabled")
    torch.manual_seed(0)
    make_trainer(callbacks=[callback], logger=logger).test(Classifier(), DataLoader(blobs(6, 1)), verbose=False)
    columns, rows = logged["certify/table"]
    assert columns == ["radius", "certified_accuracy"] and [r[0] for r in rows] == [0.0, 0.5]
    assert all(isinstance(v, float) for row in rows for v in row)
    assert logged["certify/plot"] == [str(tmp_path / "certify.png")]
    assert isinstance(logged["certify/acr"], float) and logged["certify/n"] == 100 and logged["certify/points"] == 6


def test_manual_mode_runs_only_when_called(tmp_path):
    callback = RandomizedSmoothing(
        0.5, n0=16, n=100, when="manual", max_samples=5, plot=False, print_table=False, output_dir=tmp_path
    )
    trainer = make_trainer(callbacks=[callback])
    model = Classifier()
    trainer.test(model, DataLoader(blobs(6, 1)), verbose=False)
    assert callback.result is None
    result = callback.certify(trainer, model, DataLoader(blobs(9, 2), batch_size=4))
    assert callback.result is result and result.num_points == 5 and (tmp_path / "certify.json").exists()
