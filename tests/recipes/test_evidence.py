"""The evidence features in the recipes: robustness evaluation from the config, the comparison entry point
(``recipes/compare.py``) on a real sweep, and the comparison experiments (``experiment=`` + ``variant=``)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.recipes.conftest import FAST, train_and_write


# Circles' 50 test points in batches of 8 are 7 batches: the debug trainer's limit (2) or a fraction must hold for
# the robustness pass too, so that its clean point is test/acc.
@pytest.mark.parametrize(
    "batches", [[], ["data.batch_size=8"], ["data.batch_size=8", "trainer.limit_test_batches=0.5"]]
)
def test_robustness_from_the_config_writes_the_record(batches, compose_cfg, tmp_path):
    cfg = compose_cfg([*FAST, "eval.robustness=true", "noise=none", *batches])
    metrics = train_and_write(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    robustness = record["robustness"]
    assert robustness["metric"] == "accuracy"
    assert set(robustness["corruptions"]) == {"gaussian", "salt_and_pepper"}
    for curve in robustness["corruptions"].values():
        assert curve["severity"] == [0, 1, 2, 3, 4, 5]
        assert curve["metric"][0] == pytest.approx(metrics["test/acc"])  # severity 0 = the clean test accuracy
    assert (tmp_path / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "robustness.json").read_text())


def test_robustness_is_off_by_default(compose_cfg, tmp_path):
    train_and_write(compose_cfg(FAST))
    assert "robustness" not in json.loads((tmp_path / "metrics.json").read_text())
    assert not (tmp_path / "robustness.json").exists()


def test_robustness_corruption_set_and_regression_metric(compose_cfg, tmp_path):
    cfg = compose_cfg(
        [
            *FAST,
            "data=diabetes",
            "trainer.limit_test_batches=1.0",
            "noise=none",
            "eval.robustness=true",
            "eval.corruptions=[gaussian]",
        ]
    )
    metrics = train_and_write(cfg)
    robustness = json.loads((tmp_path / "metrics.json").read_text())["robustness"]
    assert robustness["metric"] == "mse" and list(robustness["corruptions"]) == ["gaussian"]
    assert robustness["corruptions"]["gaussian"]["metric"][0] == pytest.approx(metrics["test/mse"], rel=1e-4)


def test_robustness_cifar10c_on_images(compose_cfg, tmp_path):
    """The corruption set is chosen from the config (raw digits are 0..16, so a warning about [0, 1] is expected)."""
    cfg = compose_cfg(
        [
            *FAST,
            "data=digits",
            "data.train_size=64",
            "data.standardize=false",
            "model=cnn",
            "noise=none",
            "eval.robustness=true",
            "eval.corruptions=cifar10c",
        ]
    )
    train_and_write(cfg)
    robustness = json.loads((tmp_path / "metrics.json").read_text())["robustness"]
    assert set(robustness["corruptions"]) == {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"}


def test_unknown_corruption_fails_before_training(compose_cfg, tmp_path):
    with pytest.raises(ValueError, match="nonsense"):
        train_and_write(compose_cfg([*FAST, "eval.robustness=true", "eval.corruptions=[nonsense]"]))
    assert not (tmp_path / "metrics.json").exists()


def test_robustness_logged_to_wandb_offline(compose_cfg, tmp_path, fresh_wandb):
    train_and_write(compose_cfg(["trainer=debug", "logger=wandb", "noise=none", "eval.robustness=true"]))
    fresh_wandb.teardown()  # waits for wandb's service process to flush the offline file
    run = next((tmp_path / "wandb").glob("offline-run-*"))
    data = next(run.glob("*.wandb")).read_bytes()
    assert b"robustness/gaussian/auc" in data and b"robustness/table" in data and b"robustness/plot" in data


# ---------------------------------------------------------------------------------------------- compare.py
def test_compare_runs_a_sweep_and_writes_the_report(tmp_path, capsys):
    """A real 2-configuration x 2-seed sweep through ``recipes/train.py -m``, then the report on its runs."""
    import compare

    out = tmp_path / "report"
    report = compare.main(
        [
            "--out",
            str(out),
            "--title",
            "tiny sweep",
            "--sweep",
            "trainer=debug",
            "logger=none",
            "noise=none,input",
            "eval.robustness=true",
            "seed=0,1",
        ]
    )
    records = sorted((out / "runs").rglob("metrics.json"))
    assert len(records) == 4
    runs = [json.loads(p.read_text()) for p in records]
    baseline = "eval.robustness=True logger=none noise=none trainer=debug"  # as Hydra records the override
    assert {r["group"] for r in runs} == {baseline, "eval.robustness=True logger=none noise=input trainer=debug"}
    assert report.baseline == baseline and report.n_runs == 4
    assert all(r["robustness"]["corruptions"]["gaussian"]["severity"] == [0, 1, 2, 3, 4, 5] for r in runs)
    for path in ("report.md", "summary.json", "metric_vs_noise.png", "robustness.png"):
        assert (out / path).is_file(), path
    assert (out / "metric_vs_noise.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (out / "report.md").read_text()
    assert "tiny sweep" in markdown and "paired t" in markdown
    assert "Report written to" in capsys.readouterr().out


def test_compare_reads_several_directories(tmp_path):
    import compare

    for group, noise, values in (
        ("base", {}, [0.70, 0.72, 0.71]),
        ("noisy", {"input": {"std": 0.1}}, [0.75, 0.74, 0.78]),
    ):
        for seed, value in enumerate(values):
            run = tmp_path / group / str(seed)
            run.mkdir(parents=True)
            record = {"group": group, "seed": seed, "noise": noise, "metrics": {"test/acc": value}}
            (run / "metrics.json").write_text(json.dumps(record))
    report = compare.main([str(tmp_path / "base"), str(tmp_path / "noisy"), "--out", str(tmp_path / "r"), "--no-plots"])
    comparison = report.comparison("noisy")
    assert report.baseline == "base" and report.best == "noisy"
    assert comparison.diff == pytest.approx((0.75 + 0.74 + 0.78 - 0.70 - 0.72 - 0.71) / 3)
    assert comparison.test == "paired t"


def test_compare_sweep_needs_an_output_directory(tmp_path):
    import compare

    with pytest.raises(SystemExit, match="--out"):
        compare.main(["--sweep", "seed=0,1"])


def test_compare_refuses_a_non_empty_output_before_running_the_sweep(tmp_path):
    """The README's `compare.py --out reports/circles --sweep ...` must not silently overwrite a committed report."""
    import compare

    (tmp_path / "report.md").write_text("committed")
    with pytest.raises(SystemExit, match=r"--out .* is not empty \(report.md\).*--force"):
        compare.main(["--out", str(tmp_path), "--sweep", "trainer=debug", "logger=none", "seed=0,1"])
    assert not (tmp_path / "runs").exists() and (tmp_path / "report.md").read_text() == "committed"


def test_compare_sweep_refuses_earlier_runs_in_its_output(tmp_path):
    import compare

    old_run = tmp_path / "runs" / "0"
    old_run.mkdir(parents=True)
    (old_run / "metrics.json").write_text(json.dumps({"group": "old", "metrics": {"test/acc": 0.5}}))
    with pytest.raises(SystemExit, match=r"not empty \(1 earlier runs\).*Choose another --out"):
        compare.main(["--out", str(tmp_path), "--sweep", "trainer=debug", "logger=none", "seed=0,1"])
    assert not (tmp_path / "report.md").exists()


# ---------------------------------------------------------------------------------------------- classic setup
def test_ordered_split_reproduces_the_published_circles():
    from sklearn.datasets import make_circles

    from noisy_recipes.data import CirclesDataModule

    dm = CirclesDataModule(
        factor=0.8, seed=1, split="ordered", train_size=30, val_size=0, test_size=70, standardize=False
    )
    x, y = make_circles(n_samples=100, noise=0.1, random_state=1)
    train, test = dm.eval_dataloaders()["train"].dataset, dm.eval_dataloaders()["test"].dataset
    assert dm.split_sizes() == {"train": 30, "val": 0, "test": 70} and "val" not in dm.eval_dataloaders()
    assert torch.equal(train.tensors[0], torch.as_tensor(x[:30], dtype=torch.float32))
    assert torch.equal(test.tensors[1], torch.as_tensor(y[30:]))


def test_ordered_split_takes_train_then_validation_then_test():
    from noisy_recipes.data import SklearnDataModule

    dm = SklearnDataModule(dataset="iris", split="ordered", train_size=50, val_size=20, test_size=30, standardize=False)
    from sklearn.datasets import load_iris

    x = torch.as_tensor(load_iris().data, dtype=torch.float32)
    loaders = dm.eval_dataloaders()
    for split, (a, b) in {"train": (0, 50), "val": (50, 70), "test": (70, 100)}.items():
        assert torch.equal(loaders[split].dataset.tensors[0], x[a:b]), split


def test_bad_split_mode():
    from noisy_recipes.data import CirclesDataModule

    with pytest.raises(ValueError, match="`data.split` must be 'random' or 'ordered', got 'shuffled'"):
        CirclesDataModule(split="shuffled")


def test_glorot_init():
    from noisy_recipes.data import DataSpec
    from noisy_recipes.models import MLP

    spec = DataSpec("c", "tabular", "classification", (2,), 2)
    torch.manual_seed(0)
    net = MLP(spec, optimizer=torch.optim.Adam, hidden=[500], init="glorot").net
    first, last = net[1][0], net[1][2]
    for layer in (first, last):
        bound = math.sqrt(6 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.95 * bound
        assert torch.count_nonzero(layer.bias) == 0
    he = MLP(spec, optimizer=torch.optim.Adam, hidden=[500], init="he").net[1][2]
    assert he.weight.abs().max() <= math.sqrt(6 / 500) and he.weight.abs().max() > 0.95 * math.sqrt(6 / 500)
    with pytest.raises(
        ValueError, match="`model.init` must be one of 'default', 'glorot', 'he', 'he_normal', 'normal', got 'lecun'"
    ):
        MLP(spec, optimizer=torch.optim.Adam, init="lecun")


# ---------------------------------------------------------------------------------------------- experiments
CIRCLES_ARMS = {
    "none": {},
    "input_0.01": {"input": 0.01},
    "input_0.1": {"input": 0.1},
    "hidden_0.1": {"activation": 0.1},
    "hidden_1.0": {"activation": 1.0},
}


@pytest.mark.parametrize("variant", list(CIRCLES_ARMS))
def test_circles_classic_arm_composes_and_runs(variant, compose_cfg, tmp_path):
    cfg = compose_cfg(["experiment=circles_classic", f"variant={variant}", "trainer.max_epochs=2"])
    assert cfg.trainer.max_epochs == 2 and cfg.data.split == "ordered" and cfg.model.hidden == [500]
    assert {name: node.std.amount for name, node in (cfg.noise or {}).items()} == CIRCLES_ARMS[variant]
    train_and_write(cfg)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["splits"] == {"train": 30, "val": 0, "test": 70} and record["epochs"] == 2
    assert set(record["metrics"]) == {"train/acc", "train/loss", "test/acc", "test/loss", "robustness/mean_auc"}
    assert record["model"] == "MLP 2-500-2" and "robustness" in record


GRADIENT_ARMS = {"none": None, "gradient_eta0.01": 0.01, "gradient_eta0.3": 0.3, "gradient_eta1.0": 1.0}


@pytest.mark.parametrize("variant", list(GRADIENT_ARMS))
def test_digits_gradient_arm_composes_and_runs(variant, compose_cfg, tmp_path):
    import lightning_noise

    cfg = compose_cfg(
        [
            "experiment=digits_gradient",
            f"variant={variant}",
            "trainer=debug",
            "trainer.max_epochs=1",
            "trainer.detect_anomaly=false",
        ]
    )
    assert len(cfg.model.hidden) == 20 and cfg.model.optimizer._target_ == "torch.optim.SGD"
    eta = GRADIENT_ARMS[variant]
    if eta is None:
        assert not cfg.noise
    else:
        std = cfg.noise.gradient.std
        assert std.amount == pytest.approx(math.sqrt(eta), abs=5e-4)  # the paper's variance eta is amount ** 2
        assert std.shape._target_ == "lightning_noise.schedules.Annealed" and std.shape.gamma == 0.55
        if not hasattr(lightning_noise, "GradientNoise"):
            pytest.skip("lightning_noise.GradientNoise is not in this branch yet")
    metrics = train_and_write(cfg)
    assert "test/acc" in metrics
