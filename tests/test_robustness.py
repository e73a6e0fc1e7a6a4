"""Robustness evaluation: clean metric at severity 0, degradation with severity, seeding, reporting."""

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_noise import RobustnessEvaluation, evaluate_robustness
from lightning_noise.corruptions import get_corruption
from lightning_noise.robustness import normalized_auc
from tests.helpers import trainer as make_trainer

DDP_SCRIPT = Path(__file__).parent / "scripts" / "ddp_robustness.py"
CENTERS = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])


def blobs(n: int, seed: int) -> TensorDataset:
    """Three well-separated Gaussian blobs (std 0.4, centres >= 3.2 apart): a tiny net reaches ~100% accuracy."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    return TensorDataset(CENTERS[y] + 0.4 * torch.randn(n, 2, generator=g), y)


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_acc", (self(x).argmax(-1) == y).float().mean(), reduce_fx="mean")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


@pytest.fixture
def wandb_calls(monkeypatch) -> dict:
    """What a ``WandbLogger`` is sent (``log_metrics``, ``log_table``, ``log_image``), by key; W&B is not called."""
    pytest.importorskip("wandb")
    from lightning.pytorch.loggers import WandbLogger

    logged: dict = {}

    def log_table(self, key, columns=None, data=None, **kw):
        logged[key] = (columns, data)

    monkeypatch.setattr(WandbLogger, "log_table", log_table)
    monkeypatch.setattr(WandbLogger, "log_image", lambda self, key, images, **kw: logged.update({key: images}))
    monkeypatch.setattr(WandbLogger, "log_metrics", lambda self, metrics, step=None: logged.update(metrics))
    return logged


@pytest.fixture(scope="module")
def trained() -> Classifier:
    torch.manual_seed(0)
    model = Classifier()
    make_trainer(max_epochs=40).fit(model, DataLoader(blobs(300, 0), batch_size=300))
    return model


def eval_loader(n: int = 1500) -> DataLoader:
    return DataLoader(blobs(n, 1), batch_size=n)  # one batch: test_step's mean accuracy is the dataset accuracy


def test_clean_metric_at_severity_zero_and_no_improvement_with_severity(trained, tmp_path):
    callback = RobustnessEvaluation(["gaussian", "salt_and_pepper"], output_dir=tmp_path, print_table=False, plot=False)
    (logged,) = make_trainer(callbacks=[callback]).test(trained, eval_loader(), verbose=False)
    result = callback.result
    assert logged["test_acc"] > 0.98
    for name, curve in result.curves.items():
        assert curve.metric[0] == pytest.approx(logged["test_acc"], abs=1e-6), name
        assert all(b <= a for a, b in pairwise(curve.metric)), (name, curve.metric)
    # The largest Gaussian (std 1.0 against blobs 3.2 apart) and 30% salt-and-pepper must cost accuracy.
    assert result.curves["gaussian"].metric[-1] < logged["test_acc"] - 0.05
    assert result.curves["salt_and_pepper"].metric[-1] < logged["test_acc"] - 0.05
    stored = json.loads((tmp_path / "robustness.json").read_text())
    assert stored["corruptions"]["gaussian"]["metric"] == result.curves["gaussian"].metric
    assert stored["corruptions"]["gaussian"]["level"] == [None, 0.1, 0.2, 0.3, 0.5, 1.0]
    assert stored["model"] == "Classifier" and stored["dataset"] == "TensorDataset" and stored["metric"] == "accuracy"


def test_auc_is_normalized_trapezoid():
    assert normalized_auc([0.9, 0.9, 0.9]) == pytest.approx(0.9)
    assert normalized_auc([1.0, 0.8, 0.4]) == pytest.approx((0.5 + 0.8 + 0.2) / 2)
    with pytest.raises(ValueError, match="at least two severities"):
        normalized_auc([1.0])


def test_seeded_order_independent_and_leaves_global_rng_and_mode(trained):
    # The loader gets its own generator: a DataLoader iterator otherwise draws its base seed from the global RNG.
    data = DataLoader(blobs(600, 1), batch_size=200, generator=torch.Generator().manual_seed(0))
    trained.train()
    state = torch.get_rng_state()
    a = evaluate_robustness(trained, data, corruptions=["gaussian", "salt_and_pepper"], seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert trained.training
    b = evaluate_robustness(trained, data, corruptions=["salt_and_pepper", "gaussian"], seed=3)
    c = evaluate_robustness(trained, data, corruptions=["gaussian"], seed=4)
    assert a.to_dict() == {k: b.to_dict()[k] for k in a.to_dict()}
    assert a.curves["gaussian"].metric[1:] != c.curves["gaussian"].metric[1:]
    assert a.curves["gaussian"].metric[0] == c.curves["gaussian"].metric[0]


def test_callable_and_torchmetrics_metrics_agree_with_accuracy(trained):
    torchmetrics = pytest.importorskip("torchmetrics")
    data = DataLoader(blobs(500, 2), batch_size=64)  # several batches, last one partial
    kwargs = dict(corruptions=[get_corruption("gaussian", [0.5, 1.0])], seed=0)
    reference = evaluate_robustness(trained, data, **kwargs).curves["gaussian"].metric

    def acc(preds, targets):
        return (preds.argmax(-1) == targets).float().mean()

    by_callable = evaluate_robustness(trained, data, metric=acc, **kwargs)
    metric = torchmetrics.classification.MulticlassAccuracy(num_classes=3, average="micro")
    by_torchmetrics = evaluate_robustness(trained, data, metric=metric, **kwargs)
    assert by_callable.curves["gaussian"].metric == pytest.approx(reference, abs=1e-6)
    assert by_torchmetrics.curves["gaussian"].metric == pytest.approx(reference, abs=1e-6)
    assert by_callable.metric_name == "acc" and by_torchmetrics.metric_name == "MulticlassAccuracy"


def test_binary_logits_and_custom_batch_split():
    x = torch.linspace(-1, 1, 200)[:, None]
    data = DataLoader([{"x": xi, "y": float(xi > 0)} for xi in x], batch_size=50)
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(10.0), model.bias.zero_()
    result = evaluate_robustness(
        model, data, corruptions="gaussian", batch_to_inputs_targets=lambda b: (b["x"], b["y"][:, None])
    )
    assert result.clean == 1.0
    with pytest.raises(TypeError, match=r"batch is a dict with keys \['x', 'y'\]. Pass batch_to_inputs_targets"):
        evaluate_robustness(model, data, corruptions="gaussian")


def test_reports_png_table_and_logger_scalars(trained, tmp_path, capsys):
    logger = CSVLogger(tmp_path, name="run")
    callback = RobustnessEvaluation("gaussian", max_batches=1)
    make_trainer(callbacks=[callback], logger=logger).test(trained, eval_loader(300), verbose=False)
    png = callback.files["png"]
    assert png.parent == tmp_path / "run" / "version_0"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(png).ndim == 3
    out = capsys.readouterr().out
    assert "Robustness of Classifier on TensorDataset" in out and "AUC" in out
    logger.save()
    header = (tmp_path / "run" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "robustness/gaussian/severity_5" in header and "robustness/gaussian/auc" in header


def test_wandb_logger_gets_table_and_image(trained, tmp_path, wandb_calls):
    pytest.importorskip("wandb")
    from lightning.pytorch.loggers import WandbLogger

    logged = wandb_calls
    callback = RobustnessEvaluation("salt_and_pepper", print_table=False, output_dir=tmp_path)
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, mode="disabled")
    make_trainer(callbacks=[callback], logger=logger).test(trained, eval_loader(300), verbose=False)
    columns, rows = logged["robustness/table"]
    assert columns[:3] == ["corruption", "amount", "level_1"] and columns[-1] == "auc"
    assert rows[0][:2] == ["salt_and_pepper", "p"]
    assert all(isinstance(value, float) for value in rows[0][2:])  # numbers, not "0.960": W&B plots and sorts them
    assert rows[0][columns.index("0")] == pytest.approx(callback.result.clean)
    assert logged["robustness/plot"] == [str(tmp_path / "robustness.png")]
    assert "robustness/salt_and_pepper/auc" in logged


def test_manual_mode_runs_only_when_called(trained, tmp_path):
    callback = RobustnessEvaluation("gaussian", when="manual", plot=False, print_table=False, output_dir=tmp_path)
    trainer = make_trainer(callbacks=[callback])
    trainer.test(trained, eval_loader(300), verbose=False)
    assert callback.result is None
    result = callback.evaluate(trainer, trained, DataLoader(blobs(90, 5), batch_size=30))
    assert callback.result is result and (tmp_path / "robustness.json").exists()


def test_bad_arguments_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="`metric` must be 'accuracy', a callable"):
        RobustnessEvaluation(metric="f1")
    with pytest.raises(ValueError, match="`seed` must be an integer >= 0, got -1"):
        RobustnessEvaluation(seed=-1)
    with pytest.raises(ValueError, match="`when` must be 'test_end' or 'manual', got 'fit_end'"):
        RobustnessEvaluation(when="fit_end")
    with pytest.raises(ValueError, match="Unknown corruption 'fog'"):
        RobustnessEvaluation(["fog"])
    import lightning_noise._optional as optional

    monkeypatch.setattr(optional, "available", lambda module: module != "matplotlib")
    with pytest.raises(ImportError, match=r"RobustnessEvaluation\(plot=True\) needs matplotlib.*noise\[plot\]"):
        RobustnessEvaluation(plot=True)
    with pytest.raises(ValueError, match=r"needs class logits of shape \[N, C\]"):
        evaluate_robustness(nn.Linear(2, 3), [(torch.zeros(4, 2), torch.zeros(4, 2))], corruptions="gaussian")


def test_ddp_metrics_cover_both_ranks_and_agree(tmp_path):
    """Under 2-process DDP each metric is computed over both ranks' points: every rank holds the same result,
    accuracy equals the callable and torchmetrics metrics, and the clean value is the one of a single process."""
    launcher = ("PL_", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(launcher)}
    env["PYTHONPATH"] = str(Path(__file__).parents[1])
    result = subprocess.run(
        [sys.executable, str(DDP_SCRIPT), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank0 == rank1
    accuracy = rank0["accuracy"]
    for other in ("callable", "torchmetrics"):
        for name, curve in accuracy.items():
            assert rank0[other][name]["metric"] == pytest.approx(curve["metric"], abs=1e-6), (other, name)
    from tests.scripts.ddp_robustness import Nearest
    from tests.scripts.ddp_robustness import blobs as overlapping_blobs

    single = evaluate_robustness(Nearest(), DataLoader(overlapping_blobs(90, 1), batch_size=16), corruptions="gaussian")
    assert accuracy["gaussian"]["metric"][0] == single.clean < 1.0
    assert json.loads((tmp_path / "accuracy" / "robustness.json").read_text())["corruptions"] == accuracy


def test_image_corruption_on_data_outside_unit_range_warns(trained):
    with pytest.warns(UserWarning, match=r"'shot_noise' expects inputs in \[0, 1\].*first batch has values in \[-"):
        evaluate_robustness(trained, eval_loader(60), corruptions="shot_noise", max_batches=1)


# As if matplotlib and rich were not installed: the path finder sees neither their modules nor their metadata.
BLOCK_PLOTTING = """
import sys
from importlib.machinery import PathFinder
class Hidden(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in ("matplotlib", "rich"):
            return None
        return PathFinder.find_spec(name, path, target)
    @classmethod
    def find_distributions(cls, *args, **kwargs):
        for dist in PathFinder.find_distributions(*args, **kwargs):
            if (dist.metadata["Name"] or "").lower() not in ("matplotlib", "rich"):
                yield dist
sys.meta_path[:] = [Hidden if finder is PathFinder else finder for finder in sys.meta_path]
"""

CORE_INSTALL_RUN = """
import sys, torch, lightning.pytorch as pl
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from lightning_noise import RobustnessEvaluation

class M(pl.LightningModule):
    def __init__(self):
        super().__init__(); self.net = nn.Linear(2, 2)
    def forward(self, x): return self.net(x)
    def test_step(self, batch, i): pass

x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)); y = (x[:, 0] > 0).long()
callback = RobustnessEvaluation(output_dir=sys.argv[1])
trainer = pl.Trainer(callbacks=[callback], logger=False, enable_progress_bar=False, enable_model_summary=False)
trainer.test(M(), DataLoader(TensorDataset(x, y), batch_size=32), verbose=False)
assert "matplotlib" not in sys.modules and "rich" not in sys.modules
print("plot:", callback.plot, sorted(callback.files))
try:
    RobustnessEvaluation(plot=True)
except ImportError as error:
    print("plot=True:", error)
"""


def test_core_install_without_matplotlib_or_rich(tmp_path):
    """`pip install lightning-noise` without extras: RobustnessEvaluation() runs, prints a plain-text table and
    writes the JSON, no PNG; asking for the plot names the `plot` extra."""
    import subprocess
    import sys

    code = BLOCK_PLOTTING + CORE_INSTALL_RUN
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "plot: False ['json']" in result.stdout
    assert "corruption" in result.stdout and "gaussian" in result.stdout and "salt_and_pepper" in result.stdout
    assert (tmp_path / "robustness.json").exists() and not (tmp_path / "robustness.png").exists()
    assert "plot=True: RobustnessEvaluation(plot=True) needs matplotlib" in result.stdout
    assert "pip install 'lightning-noise[plot]'" in result.stdout


def test_optional_packages_are_found_without_importing_them(monkeypatch):
    """``available`` answers from the installed packages: a real one is found, a missing one is not, and a
    stand-in module placed in ``sys.modules`` without an import spec counts as not installed (no error)."""
    import sys
    import types

    from lightning_utilities.core.imports import package_available

    import lightning_noise._optional as optional

    assert optional.available("torch.nn") and not optional.available("surely_not_a_package_xyz")
    monkeypatch.setitem(sys.modules, "stand_in_xyz", types.ModuleType("stand_in_xyz"))
    package_available.cache_clear()
    try:
        assert not optional.available("stand_in_xyz")
    finally:
        package_available.cache_clear()


def test_a_missing_core_package_is_named_as_a_dependency_not_an_extra(monkeypatch):
    """scipy is a core dependency (the certification bound): if the environment lost it, the message says so
    instead of sending the user to the `recipes` extra."""
    import lightning_noise._optional as optional

    monkeypatch.setattr(optional, "available", lambda module: False)
    with pytest.raises(ImportError, match=r"needs scipy, a dependency of lightning-noise: `pip install scipy`"):
        optional.check_available("scipy.stats", "The bound")
    with pytest.raises(ImportError, match=r"lightning-noise\[plot\]"):
        optional.check_available("matplotlib", "The plot")
