"""The comparison report against hand computations on fixed run records; plots are valid PNGs; the CLI runs."""

import json
import math
import re
import warnings

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


def test_non_finite_values_give_no_interval_and_no_test():
    # A diverged run (test/loss = inf) or a missing value (nan): no spread, no interval, and not a "certain" test.
    inf, nan = math.inf, math.nan
    assert mean_std_ci([0.5, inf])[0] == inf and all(math.isnan(v) for v in mean_std_ci([0.5, inf])[1:])
    assert all(math.isnan(v) for v in mean_std_ci([nan, 0.5]))
    welch = t_test([inf, 0.5, 0.6], [0.4, 0.5, 0.6])
    paired = t_test({0: nan, 1: 0.5}, {0: 0.4, 1: 0.5})
    for comparison in (welch, paired):
        assert all(math.isnan(v) for v in (comparison.t, comparison.p_value, comparison.ci_low, comparison.ci_high))
    assert (welch.dof, paired.dof) == (4, 1) and isinstance(paired.dof, int)


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


def test_no_spread_gives_exact_intervals_and_no_warning():
    """Seeds that all score the same (a small test set): scipy would warn and return NaN; the report does not."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mean_std_ci([0.5, 0.5, 0.5]) == (0.5, 0.0, 0.5, 0.5)
        tied = t_test([1.0, 1.0], [0.9, 0.9])
        assert (tied.test, tied.t, tied.p_value, tied.dof, tied.ci_low) == ("Welch t", math.inf, 0.0, 2, tied.diff)
        same = t_test([0.9, 0.9, 0.9], [0.9, 0.9])
        assert (same.t, same.p_value) == (0.0, 1.0)


def test_report_groups_compares_and_picks_best(multirun):
    report = compare_runs(load_runs(multirun), metric="test/acc")
    assert report.baseline == "noise=none" and report.n_runs == 18
    assert [s.group for s in report.summaries["test/acc"]] == [
        "noise=none",
        "noise=hidden_1.0",
        "noise=input_0.01",
        "noise=input_0.1",
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
            noise = {
                "input": {
                    "_target_": "lightning_noise.InputNoise",
                    "kind": "gaussian",
                    "std": {"_target_": "noisy_recipes.schedules.scaled", "amount": amount, "scale": scale},
                }
            }
            rows.append(
                {
                    "group": f"noise_scale={scale}",
                    "seed": seed,
                    "noise": noise,
                    "noise_amounts": {"input.std": amount * scale},
                    "metrics": {"test/acc": 0.8 + 0.01 * seed + 0.05 * (scale == 0.5)},
                }
            )
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
        "gradient std.eta",
        0.3,
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
        compare_runs([*runs, {**next(r for r in runs if r["noise"] is None), "group": "other"}])
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


# ---------------------------------------------------------------------------------------------- honest numbers
def _runs(groups: dict) -> list[dict]:
    return [
        {"group": g, "seed": s, "noise": noise, "metrics": {"test/acc": v, "test/loss": 1 - v}}
        for g, (noise, values) in groups.items()
        for s, v in enumerate(values)
    ]


def test_a_float_tie_is_a_tie_not_a_best():
    """0.1 + 0.7 + 0.2 and 0.7 + 0.2 + 0.1 differ in the last bit: neither is better, the baseline stays best."""
    base, noisy = [0.1, 0.7, 0.2], [0.7, 0.2, 0.1]
    assert sum(base) != sum(noisy)  # the float tie this test is about
    report = compare_runs(_runs({"none": (None, base), "in0.1": ({"std": 0.1}, noisy)}))
    assert report.best == "none" and report.tied == ["none", "in0.1"]
    (line,) = [line for line in report.to_markdown().splitlines() if "best configuration" in line]
    assert line.startswith("No single best configuration: none, in0.1 tie") and "+0.0000" not in line  # not bold
    rows = report.table_rows()[1]
    assert rows[0][0] == "none (baseline) (tied best)" and rows[1][0] == "in0.1 (tied best)"
    clear = compare_runs(_runs({"none": (None, base), "in0.1": ({"std": 0.1}, [0.8, 0.3, 0.2])}))
    assert clear.best == "in0.1" and clear.tied == []


@pytest.mark.parametrize(
    ("noisy", "mode", "bold", "start"),
    [
        ([0.80, 0.82, 0.78, 0.81, 0.79], "max", False, "No configuration beat the baseline significantly (p < 0.05): "),
        ([0.90, 0.92, 0.88, 0.91, 0.89], "max", True, "Best configuration: in0.1 "),
        ([0.70, 0.72, 0.68, 0.71, 0.69], "max", False, "No configuration beat the baseline: none has the best mean"),
        ([0.70, 0.72, 0.68, 0.71, 0.69], "min", True, "Best configuration: in0.1 "),
    ],
)
def test_best_line_is_bold_only_when_it_beats_the_baseline_significantly(noisy, mode, bold, start, capsys):
    """p = 0.8 is no best configuration: the line says none beat the baseline, in plain text."""
    base = [0.79, 0.82, 0.775, 0.805, 0.795]
    report = compare_runs(_runs({"none": (None, base), "in0.1": ({"std": 0.1}, noisy)}), mode=mode)
    (line,) = [line for line in report.to_markdown().splitlines() if line.startswith(("**", "No ", "Best "))]
    assert line.startswith(f"**{start}" if bold else start) and line.endswith("**" if bold else ".")
    p = report.comparison("in0.1").p_value
    assert (p < 0.05) == bold or mode == "max" and report.best == "none"
    rich_console = pytest.importorskip("rich.console")
    import io

    console = rich_console.Console(file=io.StringIO(), width=200, force_terminal=True, color_system="standard")
    report.print_table(console)
    last = console.file.getvalue().splitlines()[-1]
    assert ("\x1b[1m" in last) == bold  # rich's bold escape


def test_accuracy_intervals_stay_inside_zero_one():
    """Two seeds at 0.96 and 1.0: the t interval is [0.726, 1.234]; the report clips it to [0.726, 1] and says so."""
    report = compare_runs(_runs({"none": (None, [0.96, 1.0]), "in0.1": ({"std": 0.1}, [0.5, 0.52])}))
    s = report.summary("none")
    # t(0.975, 1) = 12.706; std = 0.02 sqrt(2), so the half width is 12.706 * 0.02
    assert s.clipped and s.ci_high == 1.0 and s.ci_low == pytest.approx(0.98 - 12.706 * 0.02, abs=1e-3)
    assert all(0 <= x.ci_low <= x.ci_high <= 1 for x in report.summaries["test/acc"])
    assert report.clipped == (0.0, 1.0) and "clipped" in report.to_markdown()
    loss = report.summary("none", "test/loss")
    assert loss.ci_low >= 0 and report.summary("in0.1").clipped is False


def test_robustness_bands_of_accuracy_stay_inside_zero_one():
    runs = [
        {
            "group": "none",
            "seed": s,
            "noise": None,
            "metrics": {"test/acc": v},
            "robustness": {"metric": "accuracy", "corruptions": {"gaussian": {"severity": [0, 1], "metric": [v, v]}}},
        }
        for s, v in enumerate([0.96, 1.0])
    ]
    curve = compare_runs(runs).robustness["none"]["gaussian"]
    assert max(curve["ci_high"]) == 1.0 and curve["auc"]["ci_high"] == 1.0


def test_plot_names_noises_as_the_readme_and_keeps_the_legend_off_the_axes(multirun, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from lightning_noise.report import plots

    captured = {}
    real_save = plots.save_figure

    def spy(fig, path):
        captured["fig"] = fig
        return real_save(fig, path)

    report = compare_runs(load_runs(multirun))
    monkeypatch.setattr(plots, "save_figure", spy)
    report.plot_metric_vs_noise(tmp_path / "m.png")
    fig = captured["fig"]
    (ax,) = fig.axes
    assert ax.get_legend() is None and len(fig.legends) == 1  # the figure's legend, below the axes
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(label.startswith("hidden noise (std)") for label in labels), labels
    fig.canvas.draw()
    legend_box = fig.legends[0].get_window_extent()
    assert legend_box.y1 <= ax.get_window_extent().y0  # entirely under the axes: never over an error bar
    assert ax.get_ylim()[1] <= 1.0 + 0.05  # the clipped-or-not intervals of accuracy do not push the axis far past 1


def test_single_amount_axis_starts_at_zero_and_annealed_amount_is_eta(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from lightning_noise.report import plots

    annealed = {"gradient": {"std": {"amount": 0.548, "shape": {"_target_": "lightning_noise.schedules.Annealed"}}}}
    runs = _runs({"none": (None, [0.90, 0.92]), "eta": (annealed, [0.91, 0.93])})
    report = compare_runs(runs)
    s = report.summary("eta")
    assert (s.label, s.x_name) == ("gradient noise (eta)", "eta") and s.x == pytest.approx(0.3003, abs=1e-4)
    captured = {}
    real_save = plots.save_figure
    spy = lambda fig, path: captured.setdefault("fig", fig) and real_save(fig, path)  # noqa: E731
    monkeypatch.setattr(plots, "save_figure", spy)
    report.plot_metric_vs_noise(tmp_path / "m.png")
    (ax,) = captured["fig"].axes
    low, high = ax.get_xlim()
    assert low == 0 and high >= 0.3 and ax.get_xlabel() == "noise eta"


def test_cli_mistakes_are_one_line_without_traceback(multirun, tmp_path):
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "lightning_noise.report", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    both = tmp_path / "two"
    for i, record in enumerate(records()):
        for copy in ("a", "b"):
            (both / copy / str(i)).mkdir(parents=True)
            (both / copy / str(i) / "metrics.json").write_text(
                json.dumps({**record, "group": f"{copy} {record['group']}"})
            )
    cases = [
        ((tmp_path / "nothing",), "No run records found"),
        ((multirun, "--metric", "val/acc", "--out", tmp_path / "o1"), "`metric` 'val/acc' is in no run record"),
        (
            (both / "a", both / "b", "--out", tmp_path / "o2"),
            r"Several groups have no noise.*'a noise=none' \(5 runs\), 'b noise=none' \(5 runs\).*"
            r"--baseline 'a noise=none'",
        ),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and re.search(message, result.stderr), result.stderr


def test_report_refuses_a_non_empty_output_without_force(multirun, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("the committed case study")
    with pytest.raises(SystemExit) as exit_info:
        main([str(multirun), "--out", str(out), "--no-plots"])
    assert exit_info.value.code == 2 and (out / "report.md").read_text() == "the committed case study"
    main([str(multirun), "--out", str(out), "--no-plots", "--force"])
    assert (out / "report.md").read_text().startswith("# Noise comparison")


def test_report_round_trips_through_its_summary(multirun):
    report = compare_runs(load_runs(multirun))
    again = type(report).from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.table_rows() == report.table_rows() and again.to_markdown() == report.to_markdown()
