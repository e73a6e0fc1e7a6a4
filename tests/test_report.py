"""The comparison report against hand computations on fixed run records; plots are valid PNGs; the CLI runs."""

import json
import math

import pytest

from lightning_noise.report import compare_runs, describe_noise, describe_run, load_runs, main, mean_std_ci, t_test

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T_975_DOF4 = 2.776  # Student t quantile 0.975 with n - 1 = 4 degrees of freedom, from a table

BASELINE = [0.80, 0.82, 0.78, 0.81, 0.79]  # mean 0.80, squared deviations sum to 0.0010
INPUT_01 = [0.83, 0.85, 0.80, 0.84, 0.83]  # per-seed differences 0.03 0.03 0.02 0.03 0.04
INPUT_001 = [0.80, 0.83, 0.79, 0.80, 0.80]
HIDDEN = [0.84, 0.79, 0.83]  # seeds 0, 1, 2 only: not paired with the baseline


def records() -> list[dict]:
    rows = []
    for group, noise, values in [
        ("noise=none", None, BASELINE),
        ("noise=input_0.1", {"kind": "input", "std": 0.1}, INPUT_01),
        ("noise=input_0.01", {"kind": "input", "std": 0.01}, INPUT_001),
        ("noise=hidden_1.0", {"activation": {"_target_": "lightning_noise.ActivationNoise", "std": 1.0}}, HIDDEN),
    ]:
        for seed, value in enumerate(values):
            curve = [value, value - 0.05 - 0.1 * (noise is None), value - 0.2 - 0.1 * (noise is None)]
            rows.append(
                {
                    "name": f"{group},seed={seed}",
                    "group": group,
                    "seed": seed,
                    "overrides": [group, f"seed={seed}"],
                    "noise": noise,
                    "metrics": {"test/acc": value, "test/loss": 1 - value},
                    "best_epoch": 10 + seed,
                    "model": "MLP",
                    "dataset": "circles",
                    "robustness": {"gaussian": {"severity": [0, 1, 2], "metric": curve}},
                }
            )
    return rows


@pytest.fixture
def multirun(tmp_path):
    for i, record in enumerate(records()):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "metrics.json").write_text(json.dumps(record))
    return tmp_path


def test_mean_std_ci_match_hand_computation():
    mean, std, low, high = mean_std_ci(BASELINE)
    hand_std = math.sqrt(0.0010 / 4)
    assert mean == pytest.approx(0.80, abs=1e-12)
    assert std == pytest.approx(hand_std, rel=1e-9)
    half = T_975_DOF4 * hand_std / math.sqrt(5)  # = 0.019630
    assert (low, high) == (pytest.approx(0.80 - half, abs=2e-5), pytest.approx(0.80 + half, abs=2e-5))
    assert math.isnan(mean_std_ci([0.5])[1])


def test_paired_test_when_seeds_match_welch_otherwise():
    stats = pytest.importorskip("scipy.stats")
    base = dict(enumerate(BASELINE))
    paired = t_test(dict(enumerate(INPUT_01)), base)
    # Differences 0.03 0.03 0.02 0.03 0.04: mean 0.03, sd sqrt(0.0002/4), t = 0.03 / (sd / sqrt(5)) = 9.4868.
    assert paired.test == "paired t" and paired.dof == 4
    assert paired.diff == pytest.approx(0.03, abs=1e-12)
    assert paired.t == pytest.approx(0.03 / (math.sqrt(0.0002 / 4) / math.sqrt(5)), rel=1e-6)
    assert paired.p_value == pytest.approx(stats.ttest_rel(INPUT_01, BASELINE).pvalue, rel=1e-6)
    half = T_975_DOF4 * math.sqrt(0.0002 / 4) / math.sqrt(5)
    assert paired.ci_low == pytest.approx(0.03 - half, abs=2e-5)
    welch = t_test(dict(enumerate(HIDDEN)), base)
    reference = stats.ttest_ind(HIDDEN, BASELINE, equal_var=False)
    assert welch.test == "Welch t"
    assert welch.t == pytest.approx(reference.statistic, rel=1e-6)
    assert welch.p_value == pytest.approx(reference.pvalue, rel=1e-6)
    va, vb = mean_std_ci(HIDDEN)[1] ** 2 / 3, mean_std_ci(BASELINE)[1] ** 2 / 5
    assert welch.dof == pytest.approx((va + vb) ** 2 / (va**2 / 2 + vb**2 / 4), rel=1e-9)
    same = t_test({0: 0.5, 1: 0.5}, {0: 0.5, 1: 0.5})
    assert same.p_value == 1.0 and same.t == 0.0


def test_report_groups_compares_and_picks_best(multirun):
    report = compare_runs(load_runs(multirun), metric="test/acc")
    assert report.baseline == "noise=none" and report.n_runs == 18
    assert [s.group for s in report.summaries["test/acc"]] == [
        "noise=none", "noise=hidden_1.0", "noise=input_0.01", "noise=input_0.1",
    ]
    base = report.summary("noise=none")
    assert (base.n, base.mean, base.seeds) == (5, pytest.approx(0.80), [0, 1, 2, 3, 4])
    assert report.best == "noise=input_0.1"
    assert report.comparison("noise=input_0.1").test == "paired t"
    assert report.comparison("noise=hidden_1.0").test == "Welch t"
    assert report.comparison("noise=none") is None
    assert report.summary("noise=input_0.1").family == "input std" and report.summary("noise=input_0.1").amount == 0.1
    loss = compare_runs(load_runs(multirun), metric="test/loss", mode="min")
    assert loss.best == "noise=input_0.1"
    # Robustness: per-severity mean over seeds and the normalized trapezoid AUC, averaged over runs.
    curve = report.robustness["noise=none"]["gaussian"]
    assert curve["mean"] == pytest.approx([0.80, 0.65, 0.50])
    assert curve["auc"]["mean"] == pytest.approx((0.80 / 2 + 0.65 + 0.50 / 2) / 2)


def _scale_records(scales, *, amount=0.2) -> list[dict]:
    """Records of a recipe sweep over noise_scale: the config's amount is the same, the effective one differs."""
    rows = []
    for scale in scales:
        for seed in range(3):
            noise = {"input": {"_target_": "lightning_noise.InputNoise", "kind": "gaussian",
                               "std": {"_target_": "noisy_recipes.schedules.scaled", "amount": amount, "scale": scale}}}
            rows.append({"group": f"noise_scale={scale}", "seed": seed, "noise": noise,
                         "noise_amounts": {"input.std": amount * scale},
                         "metrics": {"test/acc": 0.8 + 0.01 * seed + 0.05 * (scale == 0.5)}})
    return rows


def test_effective_amounts_give_the_amount_and_the_baseline():
    report = compare_runs(_scale_records([0, 0.5, 2]), metric="test/acc")
    assert report.baseline == "noise_scale=0"
    assert [(s.group, s.family, s.amount) for s in report.summaries["test/acc"]] == [
        ("noise_scale=0", "none", 0.0),
        ("noise_scale=0.5", "gaussian input.std.amount", pytest.approx(0.1)),
        ("noise_scale=2", "gaussian input.std.amount", pytest.approx(0.4)),
    ]
    assert report.comparison("noise_scale=0.5").diff == pytest.approx(0.05)
    # A config amount of 0 (noise.input.std.amount=0) is a baseline too; records without noise_amounts keep the
    # config's amount and are never taken for no noise.
    assert describe_run(_scale_records([1], amount=0.0)[0]) == ("none", 0.0)
    old = _scale_records([0])[0]
    del old["noise_amounts"]
    assert describe_run(old) == ("gaussian input.std.amount", 0.2)
    without = [dict(r, noise_amounts=None) for r in _scale_records([0, 2])]
    assert compare_runs(without, metric="test/acc").baseline is None
    multi = {"input.std": 0.0, "gradient.std": 0.3}
    assert describe_run({"noise": {"input": {"std": {"amount": 0.0}}}, "noise_amounts": multi})[1] == 0.0


def test_describe_noise_forms():
    assert describe_noise("none") == ("none", 0.0)
    assert describe_noise({"input": None}) == ("none", 0.0)
    assert describe_noise({"kind": "gradient", "std": {"_target_": "Annealed", "eta": 0.3, "gamma": 0.55}}) == (
        "gradient std.eta", 0.3,
    )
    assert describe_noise({"kind": "label"}) == ("label", None)


def test_written_report_and_valid_pngs(multirun, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    report = compare_runs(load_runs(multirun))
    files = report.write(tmp_path / "out")
    for key in ("metric_vs_noise", "robustness"):
        assert files[key].read_bytes()[:8] == PNG_SIGNATURE
        assert image.imread(files[key]).shape[2] in (3, 4)
    markdown = files["markdown"].read_text()
    assert "# Noise comparison: MLP on circles" in markdown
    assert "| noise=none (baseline) | 5 | 0.8000 | 0.0158 | [0.7804, 0.8196] |" in markdown
    assert "![robustness curves](robustness.png)" in markdown and "paired t" in markdown
    summary = json.loads(files["json"].read_text())
    assert summary["best"] == "noise=input_0.1"
    assert summary["summaries"]["test/acc"][0]["std"] == pytest.approx(math.sqrt(0.0010 / 4))


def test_cli_writes_report(multirun, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [str(multirun), "--metric", "test/acc", "--baseline", "noise=input_0.01", "--out", str(out), "--no-plots"]
    report = main(argv)
    assert report.baseline == "noise=input_0.01"
    assert (out / "report.md").exists() and not (out / "metric_vs_noise.png").exists()
    assert "Best configuration: noise=input_0.1" in capsys.readouterr().out


def test_wandb_logging_is_offline_safe(multirun, tmp_path, fresh_wandb):
    from lightning_noise.report import log_report_to_wandb

    report = compare_runs(load_runs(multirun))
    files = report.write(tmp_path / "out")
    log_report_to_wandb(report, files, mode="offline", save_dir=tmp_path)
    fresh_wandb.teardown()  # waits for wandb's service process to flush the offline file
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    assert any(run_dir.glob("*.wandb"))


def test_bad_input_is_refused(multirun, tmp_path):
    runs = load_runs(multirun)
    with pytest.raises(ValueError, match=r"`metric` 'val/acc' is in no run record; the records have \['test/acc', "):
        compare_runs(runs, metric="val/acc")
    with pytest.raises(ValueError, match="`baseline` 'nope' is not one of the groups"):
        compare_runs(runs, baseline="nope")
    with pytest.raises(ValueError, match="Several groups have no noise"):
        compare_runs(runs + [{**next(r for r in runs if r["noise"] is None), "group": "other"}])
    with pytest.raises(FileNotFoundError, match="No run records found"):
        load_runs(tmp_path / "empty")
    (tmp_path / "bad.json").write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="must be a JSON object with a 'metrics' mapping"):
        load_runs(tmp_path / "bad.json")


@pytest.mark.parametrize("width", [80, 200])
def test_console_table_keeps_every_configuration_and_p_value_readable(multirun, width):
    """An 80-column console (or a pipe) gets one block per configuration instead of a table cut to pieces."""
    rich_console = pytest.importorskip("rich.console")
    import io

    report = compare_runs(load_runs(multirun))
    out = io.StringIO()
    report.print_table(rich_console.Console(file=out, width=width))
    text = out.getvalue()
    groups = [s.group for s in report.summaries[report.metric]]
    assert len(groups) >= 2
    columns, rows = report.table_rows()
    for row in rows:
        assert row[0] in text  # the configuration, whole
        assert all(cell in text for cell in row[1:])  # every number, uncut
    assert "…" not in text


def test_a_signal_to_noise_ratio_of_zero_db_is_noise_not_its_absence():
    from lightning_noise.report import describe_run

    noise = {"input": {"snr_db": {"amount": 0.0}}}
    assert describe_run({"noise": noise, "noise_amounts": {"input.snr_db": 0.0}})[0] != "none"
    assert describe_run({"noise": noise, "noise_amounts": {"input.snr_db": float("inf")}})[0] == "none"
    assert describe_run({"noise": {"input": {"std": 0.0}}, "noise_amounts": {"input.std": 0.0}})[0] == "none"
