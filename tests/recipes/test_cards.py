"""The method cards (docs/methods/): each card's command runs end to end on a tiny budget (slow), the committed
summaries hold the fields the tables are built from, and each card's table is the one its summaries give."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.recipes.conftest import ROOT

sys.path.insert(0, str(ROOT / "recipes"))
import cards  # noqa: E402

METHODS = ROOT / "docs" / "methods"
SUMMARY_FIELDS = {"metric", "mode", "baseline", "summaries", "comparisons"}
GROUP_FIELDS = {"group", "n", "mean", "ci_low", "ci_high"}
COMPARISON_FIELDS = {"group", "diff", "ci_low", "ci_high", "p_value", "test"}


def check_summary(summary: dict, *, robustness: bool = True) -> None:
    """The fields ``cards.card_table`` reads, for the decisive metric and the robustness AUC."""
    assert SUMMARY_FIELDS <= set(summary)
    metrics = [summary["metric"], *(["robustness/mean_auc"] if robustness else [])]
    for metric in metrics:
        groups = summary["summaries"][metric]
        assert any(g["group"] == summary["baseline"] for g in groups)
        assert all(GROUP_FIELDS <= set(g) for g in groups)
        assert all(g["n"] >= 2 for g in groups)
        comparisons = summary["comparisons"][metric]
        assert len(comparisons) == len(groups) - 1
        assert all(COMPARISON_FIELDS <= set(c) and c["test"] == "paired t" for c in comparisons)


def check_certification(summary: dict) -> None:
    """A certification study: both arms at one sigma, each run's settings, and a curve over radii from 0."""
    assert summary["metric"] == "certify/acr"
    assert {cards._arm(g["group"]) for g in summary["summaries"]["certify/acr"]} == {"none", "input_at_sigma"}
    for key in ("sigma", "n", "n0", "alpha", "points"):
        assert len({g["mean"] for g in summary["summaries"][f"certify/{key}"]}) == 1, key  # one setting per study
    radii = [cards._radius_key(summary, r) for r in cards.CERTIFY_RADII]
    assert radii[0] == "certify/acc_r0" and all(radii)
    for group in summary["summaries"]["certify/acr"]:
        assert group["n"] >= 2


def check_neelakantan(summary: dict) -> None:
    assert {cell["init"] for cell in summary["cells"]} == {"normal", "he_normal"}
    for cell in summary["cells"]:
        for arm in ("none", "gradient"):
            assert cell[arm]["n"] >= 2 and 0 <= cell[arm]["mean"] <= cell[arm]["best"] <= 1
        for row in cell["by_lr"]:
            assert row["lr"] in (0.1, 0.01) and {"diff", "ci_low", "ci_high", "p"} <= set(row["diff"])


# ---------------------------------------------------------------------------------------------- fast
def _record(group: str, seed: int, acc: float, overrides: list[str]) -> dict:
    return {"group": group, "seed": seed, "overrides": [*overrides, f"seed={seed}"], "metrics": {"test/acc": acc}}


def test_neelakantan_summary_pools_learning_rates_and_pairs_seeds():
    runs = []
    for init, clip in (("normal", "null"), ("he_normal", "10")):
        for lr, base in (("0.1", 0.5), ("0.01", 0.7)):
            for variant, gain in (("none", 0.0), ("gradient_eta0.01", 0.1)):
                for seed in range(3):
                    o = [f"variant={variant}", f"model.init={init}", f"model.optimizer.lr={lr}"]
                    o.append(f"trainer.gradient_clip_val={clip}")
                    runs.append(_record(" ".join(o), seed, base + gain + 0.01 * seed, o))
    summary = cards.neelakantan_summary(runs)
    check_neelakantan(summary)
    simple = summary["cells"][0]
    assert (simple["init"], simple["clip"]) == ("normal", "null")  # the paper's order: simple init first
    assert simple["none"]["n"] == 6 and simple["none"]["best"] == pytest.approx(0.72)
    assert simple["gradient"]["mean"] == pytest.approx((0.61 + 0.81) / 2)
    for row in simple["by_lr"]:
        assert row["diff"]["diff"] == pytest.approx(0.1) and row["diff"]["test"] == "paired t"
    assert simple["paper_mnist"] == ("89.9 / 43.1", "96.7 / 52.7")
    table = cards.neelakantan_markdown(summary)
    assert "| simple, N(0, 0.1²) | none | 72.0 / 61.0 (6) | 82.0 / 71.0 (6) | 89.9 / 43.1 | 96.7 / 52.7 |" in table


def test_write_card_replaces_only_the_measured_block(tmp_path):
    card = tmp_path / "c.md"
    card.write_text(f"# title\n\ntext\n{cards.START}\nold\n{cards.END}\n\nafter\n")
    cards.write_card(card, "| new |")
    assert card.read_text() == f"# title\n\ntext\n{cards.START}\n| new |\n{cards.END}\n\nafter\n"
    (tmp_path / "bare.md").write_text("no markers\n")
    with pytest.raises(SystemExit, match="no <!-- measured:start -->"):
        cards.write_card(tmp_path / "bare.md", "| new |")


@pytest.mark.parametrize("card", sorted(cards.CARDS))
def test_committed_card_table_is_the_one_its_summaries_give(card):
    """Every number in a card comes from a committed summary.json: rebuilding the table reproduces the card's."""
    spec = cards.CARDS[card]
    data = METHODS / "data"
    studies = [*spec.arms, *spec.certification]
    summaries = {name: json.loads((data / name / "summary.json").read_text()) for name in studies}
    for name, summary in summaries.items():
        check_summary(summary, robustness=cards.STUDIES[name].robustness)
    for name in spec.certification:
        check_certification(summaries[name])
    neelakantan = None
    if spec.neelakantan:
        neelakantan = json.loads((ROOT / "reports" / "neelakantan_fashion_mnist" / "summary.json").read_text())
        check_neelakantan(neelakantan)
    table = cards.card_markdown(spec, summaries, neelakantan)
    text = (METHODS / f"{card}.md").read_text()
    assert f"{cards.START}\n{table}\n{cards.END}" in text
    assert f"python recipes/cards.py {card}" in text  # the command that produced it is on the card
    for path in data.rglob("*"):
        assert path.is_dir() or path.stat().st_size < 200_000, f"{path} is too large to commit"


# ---------------------------------------------------------------------------------------------- slow
@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cards")  # shared: a study run for one card is reused by the next


@pytest.mark.slow
@pytest.mark.parametrize("card", sorted(cards.CARDS))
def test_card_command_runs_on_a_tiny_budget(card, tiny_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    summaries = cards.main([card, "--tiny", "--root", str(tiny_root)])
    for name in cards.CARDS[card].arms:
        summary = json.loads((tiny_root / "data" / name / "summary.json").read_text())
        assert summary == json.loads(json.dumps(summaries[name]))
        check_summary(summary, robustness=cards.STUDIES[name].robustness)
        assert {cards._arm(g["group"]) for g in summary["summaries"][summary["metric"]]} >= {
            "none",
            *cards.CARDS[card].arms[name],
        }
    for name in cards.CARDS[card].certification:
        summary = json.loads((tiny_root / "data" / name / "summary.json").read_text())
        check_summary(summary, robustness=False)
        check_certification(summary)
    if cards.CARDS[card].certification:  # one report over every sigma, its plot on the card
        report = (tiny_root / "data" / "fashion_certify_report" / "report.md").read_text()
        assert "radius ceiling" in report and "certified.png" in report
        assert (tiny_root / "data" / "fashion_certify" / "certified.png").read_bytes()[:4] == b"\x89PNG"
    if cards.CARDS[card].neelakantan:
        check_neelakantan(json.loads((tiny_root / "data" / "neelakantan" / "summary.json").read_text()))
    text = (tiny_root / f"{card}.md").read_text()
    assert text.startswith(cards.START) and "| none |" in text


def test_certification_table_pairs_each_sigma_with_its_own_no_noise_arm():
    def summary(sigma: float, none: float, noisy: float) -> dict:
        groups = {"none": f"sigma={sigma} variant=none", "input_at_sigma": f"sigma={sigma} variant=input_at_sigma"}

        def rows(value_none: float, value_noisy: float) -> list[dict]:
            return [
                {"group": groups[arm], "n": 5, "mean": v, "ci_low": v - 0.01, "ci_high": v + 0.01}
                for arm, v in (("none", value_none), ("input_at_sigma", value_noisy))
            ]

        settings = {f"certify/{k}": rows(v, v) for k, v in (("sigma", sigma), ("n", 10_000), ("alpha", 0.001))}
        radii = {f"certify/acc_r{r:g}": rows(0.8 - r / 4, 0.8 - r / 8) for r in cards.CERTIFY_RADII}
        diff = {"group": groups["input_at_sigma"], "diff": noisy - none, "ci_low": 0.01, "ci_high": 0.2}
        return {
            "metric": "certify/acr",
            "baseline": groups["none"],
            "summaries": {"certify/acr": rows(none, noisy), "test/acc": rows(0.84, 0.83), **settings, **radii},
            "comparisons": {"certify/acr": [{**diff, "p_value": 0.004, "test": "paired t"}]},
        }

    card = cards.Card({}, certification=("a", "b"))
    table = cards.certification_table(card, {"a": summary(0.25, 0.3, 0.35), "b": summary(0.5, 0.4, 0.6)})
    lines = table.splitlines()
    assert len(lines) == 6 and all(line.count("|") == lines[0].count("|") for line in lines)
    assert lines[2].startswith("| 0.25 (0.80) ([a](data/a/report.md)) | none | 5 | 0.840 [0.830, 0.850] |")
    assert "| trained at sigma 0.5 | 5 |" in lines[5] and "| +0.2000 [+0.0100, +0.2000] | 0.004 |" in lines[5]
    assert lines[4].startswith("| 0.5 (1.60) ([b](data/b/report.md)) | none |")
