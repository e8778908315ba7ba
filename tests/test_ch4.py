"""Chapter 4 (head to head): configuration, tables, rankings and the guide, on small
hand-made harness rows (no training)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from unlearnkit.experiments import ch4, harness, tasks
from unlearnkit.methods import available_methods, get_method


# ---------------------------------------------------------------------------- configuration

def test_profiles_build_with_the_books_problems():
    for profile in ("smoke", "cpu", "paper"):
        cfg = ch4.profile_config(profile)
        assert cfg.problems == tuple(tasks.SCENARIOS)
        assert "retrain" in cfg.methods
        assert cfg.combo_scorers[0] == "LR-MAHA"
        assert cfg.guide_slack == 0.01  # a fraction: one point of Avg. Gap
        assert set(cfg.combo_methods) <= set(cfg.methods) and set(cfg.variance_methods) <= set(cfg.methods)
    assert ch4.profile_config("smoke").methods == ch4.SMOKE_METHODS
    assert ch4.profile_config("smoke").combo_scorers == ("LR-MAHA",)  # no control methods at smoke


def test_cpu_runs_every_registered_method():
    assert ch4.profile_config("cpu").methods == available_methods()


def test_every_declared_budget_is_a_fraction_of_the_retrain_cost():
    # the harness gives each method its reference code base's ratio of the retrain's passes
    for task in (tasks.cifar10_task("cpu"), tasks.face_task("cpu")):
        for name in ch4.profile_config("cpu").methods:
            if not get_method(name).passes:
                continue
            fraction = harness.budget_fraction(name, harness.budget_settings(name, task.train.epochs),
                                               task.train.epochs)
            assert 0 < fraction <= 1, (task.dataset, name, fraction)


@pytest.mark.parametrize("changes, match", [
    ({"methods": ("retrain", "no_such_method")}, "unknown unlearning method 'no_such_method'"),
    ({"combo_budget": 1.5}, r"combo_budget=1.5 is out of range"),
    ({"combo_budget": 1.0}, r"combo_budget=1.0 is out of range"),
    ({"guide_slack": -0.01}, r"guide_slack=-0.01 is out of range"),
    ({"combo_methods": ("scrub",)}, "unknown combo / variance method 'scrub'"),
    ({"combo_control_methods": ("finetune",)}, "unknown combo control method 'finetune'"),
    ({"problems": ("full_class", "bogus")}, "unknown problem 'bogus'"),
    ({"problems": ("full_class", "identity"), "combo_problems": ("random_subset",)},
     "unknown combo problem 'random_subset'"),
    ({"seeds": 3}, r"unknown parameter\(s\) \['seeds'\]"),  # seeds are the book's protocol now
])
def test_bad_config_raises_before_work(changes, match):
    with pytest.raises(ValueError, match=match):
        ch4.profile_config("smoke", **changes)


def test_bad_scorer_and_profile_raise():
    with pytest.raises(ValueError, match="unknown combo_scorer 'NOPE'"):
        ch4.profile_config("smoke", combo_scorer="NOPE")
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        ch4.profile_config("huge")


def test_random_control_follows_the_chosen_scorer():
    assert ch4.profile_config("cpu", combo_scorer="MAHA-MU2").combo_scorers == ("MAHA-MU2", "RANDOM")
    assert ch4.profile_config("cpu", combo_scorer="RANDOM").combo_scorers == ("RANDOM",)
    cfg = ch4.profile_config("cpu")
    assert ch4.front_end_name(cfg, "LR-MAHA") == "selected" and ch4.front_end_name(cfg, "RANDOM") == "random"


# ---------------------------------------------------------------------------- tables

def _runs() -> pd.DataFrame:
    """Harness rows of two seeds of one problem: Original, Retrain and two methods' rule picks (FT reads the retain set, MU-Mis does not)
    (fractions), Avg. Gap and time fraction by :func:`harness.add_gap`."""
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        common = dict(problem="cifar10/t", scenario="t", seed=seed, retrain_seconds=100.0)
        rows += [
            dict(common, method="original", label="Original", reads_retain=None, pick="reference", RA=1.0, FA=1.0,
                 TA=0.90, seconds=math.nan, nomus=0.5),
            dict(common, method="retrain", label="Retrain", reads_retain=None, pick="reference", RA=0.99, FA=0.0,
                 TA=0.88, seconds=100.0, nomus=0.9),
            dict(common, method="finetune", label="FT", reads_retain=True, pick="rule", RA=0.99, FA=0.06 + shift, TA=0.85,
                 seconds=10.0 + 100 * shift, nomus=0.7),
            dict(common, method="mumis", label="MU-Mis", reads_retain=False, pick="rule", RA=0.90, FA=0.0, TA=0.79,
                 seconds=1.0, nomus=0.8),
        ]
    return harness.add_gap(pd.DataFrame(rows))


def test_gap_and_time_fraction_closed_form():
    first = _runs()[lambda r: r["seed"] == 0].set_index("method")
    assert first.loc["retrain", "avg_gap"] == 0
    assert first.loc["finetune", "avg_gap"] == pytest.approx((0 + 0.06 + 0.03) / 3)
    assert first.loc["mumis", "avg_gap"] == pytest.approx((0.09 + 0 + 0.09) / 3)
    assert first.loc["finetune", "time_fraction"] == pytest.approx(0.1)


def test_aggregate_mean_and_spread():
    summary = ch4.aggregate(_runs())
    assert list(summary["task"].unique()) == ["t"]  # the problem's scenario
    summary = summary.set_index("method")
    assert list(summary.index) == ["original", "retrain", "finetune", "mumis"]
    assert summary.loc["finetune", "FA"] == pytest.approx(0.07)
    assert summary.loc["finetune", "FA_std"] == pytest.approx(np.std([0.06, 0.08], ddof=1))
    assert summary.loc["finetune", "avg_gap"] == pytest.approx(np.mean([0.09 / 3, 0.11 / 3]))
    assert summary.loc["finetune", "seconds"] == pytest.approx(11.0)
    assert summary.loc["retrain", "FA_std"] == 0
    assert (summary["seeds"] == 2).all()
    assert bool(summary.loc["mumis", "reads_retain"]) is False and summary.loc["finetune", "label"] == "FT"
    assert summary.loc["original", "reads_retain"] is None


def test_aggregate_keeps_single_seed_spread_at_zero():
    summary = ch4.aggregate(_runs()[lambda r: r["seed"] == 0]).set_index("method")
    assert (summary["seeds"] == 1).all() and (summary["FA_std"] == 0).all()


def test_combination_table_puts_the_full_forget_set_runs_beside_the_front_end():
    runs = _runs()
    runs = pd.concat([runs, runs[runs["method"] == "mumis"].assign(pick="grid", FA=0.5)], ignore_index=True)
    combos = pd.DataFrame([dict(problem="cifar10/t", task="t", seed=seed, method="mumis", label="MU-Mis",
                                front_end="selected", scorer="LR-MAHA", forget_size=5, FA=0.2, seconds=0.5)
                           for seed in (0, 1)])
    table = ch4.combination_table(runs, combos)
    assert list(table.columns) == list(combos.columns)
    full = table[table["front_end"] == "full"]
    assert len(full) == 2 and (full["method"] == "mumis").all() and (full["FA"] == 0.0).all()  # rule rows only
    assert (full["scorer"] == "none").all() and full["forget_size"].isna().all() and (full["task"] == "t").all()
    summary = ch4.combination_summary(table)
    assert summary.loc[("t", "mumis", "selected"), "FA"] == pytest.approx(0.2)
    assert summary.loc[("t", "mumis", "full"), "seconds"] == pytest.approx(1.0)
    found = ch4.combination_findings(ch4.profile_config("smoke"), summary.assign(FA_rest=0.4, avg_gap=0.05))
    assert found["ch4_combo_t_mumis_selected_FA"] == pytest.approx(20) and found["ch4_combo_t_mumis_full_FA"] == 0
    assert found["ch4_combo_t_mumis_selected_FA_rest"] == pytest.approx(40)
    assert "ch4_combo_t_mumis_full_FA_rest" not in found, "the full forget set has no rest"
    assert found["ch4_combo_scorer"] == ch4.profile_config("smoke").combo_scorers[0]


# ---------------------------------------------------------------------------- MIA rankings

def _mia_summary(values: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    rows = []
    for name, (fs, svc, ent) in values.items():
        rows.append(dict(task="t", method=name, label=name.upper(), forgetting_score=fs,
                         mia_loss_logreg=0.5 + fs / 2, mia_efficacy_svc=svc, mia_entropy_logreg=ent))
    return pd.DataFrame(rows)


def test_mia_rankings_follow_each_papers_reading():
    summary = _mia_summary({"retrain": (0.1, 0.9, 0.1), "x": (0.2, 0.5, 0.5), "y": (0.3, 0.1, 0.9)})
    ranks = ch4.mia_rankings(summary, "t", "paper")
    assert ranks.loc["RETRAIN"].tolist() == [1, 1, 1]  # lowest FS, highest efficacy, lowest membership
    assert ranks.loc["Y"].tolist() == [3, 3, 3]
    rho = ch4.mia_rank_agreement(summary)
    assert np.allclose(rho.loc[rho["convention"] == "paper", "rho"], 1.0)


def test_rank_agreement_detects_reversal():
    summary = _mia_summary({"retrain": (0.1, 0.1, 0.1), "x": (0.2, 0.5, 0.5), "y": (0.3, 0.9, 0.9)})
    rho = ch4.mia_rank_agreement(summary).set_index(["convention", "pair"])["rho"]
    assert rho[("paper", "mia_loss_logreg vs mia_efficacy_svc")] == pytest.approx(-1.0)
    assert rho[("paper", "mia_loss_logreg vs mia_entropy_logreg")] == pytest.approx(1.0)
    # distance to retrain: every attack puts x before y
    assert rho[("retrain", "mia_loss_logreg vs mia_efficacy_svc")] == pytest.approx(1.0)
    top = ch4.top_disagreement(summary, "t")
    assert top["spread"] == 2 and top["model"] in {"RETRAIN", "Y"}


def test_mia_findings_summarise_the_paper_convention_and_name_the_top_disagreement():
    summary = _mia_summary({"retrain": (0.1, 0.1, 0.1), "x": (0.2, 0.5, 0.5), "y": (0.3, 0.9, 0.9)})
    agreement = ch4.mia_rank_agreement(summary)
    found = ch4.mia_findings(summary, agreement)
    assert found["ch4_mia_rho_min"] == pytest.approx(-1.0) and found["ch4_mia_rho_max"] == pytest.approx(1.0)
    assert found["ch4_mia_models"] == 3
    top = ch4.top_disagreement(summary, "t")
    assert found["ch4_t_mia_model"] == top["model"]
    assert found["ch4_t_mia_best"] == f"{top['best_rank']:.0f} by {top['best_variant']}"


def test_constant_ranking_gives_nan_not_an_error():
    summary = _mia_summary({"retrain": (0.1, 0.5, 0.1), "x": (0.2, 0.5, 0.5)})
    rho = ch4.mia_rank_agreement(summary)
    assert rho["rho"].isna().any() and rho["rho"].notna().any()


# ---------------------------------------------------------------------------- guide and scorecard

def test_guide_picks_from_the_numbers():
    summary = ch4.aggregate(_runs())
    guide = ch4.which_method_when(summary, slack=0.01).set_index("question")
    assert guide.loc["closest", "method"] == "finetune"  # gap 3.33 vs 6 points
    assert guide.loc["retain_free", "method"] == "mumis"  # the only one without the retain set
    assert guide.loc["fastest", "method"] == "mumis"
    assert guide.loc["nomus", "method"] == "mumis"
    assert guide.loc["cheapest", "method"] == "finetune"  # MU-Mis is 2.67 points worse than FT
    assert guide.loc["closest", "avg_gap"] == pytest.approx(0.1 / 3)
    wide = ch4.which_method_when(summary, slack=0.05).set_index("question")
    assert wide.loc["cheapest", "method"] == "mumis"
    sentences = ch4.guide_sentences(ch4.which_method_when(summary, 0.01), 0.01)
    assert len(sentences) == 5 and "**FT**" in sentences[0]
    assert "within 1 points" in " ".join(sentences)
    assert "Avg. Gap 3.33 points, 11.0% of retraining time, NoMUS 0.700" in sentences[0]


def test_guide_skips_the_retain_free_question_when_every_method_reads_the_retain_set():
    runs = _runs()
    runs.loc[runs["method"] == "mumis", "reads_retain"] = True
    guide = ch4.which_method_when(ch4.aggregate(runs), 0.01)
    assert "retain_free" not in set(guide["question"]) and len(guide) == 4


def test_remaining_fraction():
    assert ch4.remaining_fraction(20.0, 80.0) == 0.25
    assert ch4.remaining_fraction(0.0, 0.0) == 0.0
    assert ch4.remaining_fraction(5.0, 0.0) == 1.0
    assert math.isnan(ch4.remaining_fraction(5.0, math.nan)) and math.isnan(ch4.remaining_fraction(math.nan, 80.0))


def test_selected_part_picks_the_unwanted_like_samples():
    gen = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.tensor([4.0, 0.0]), torch.tensor([0.0, 0.0])
    typical = mu1 + 0.3 * torch.randn(20, 2, generator=gen)            # deep in p1
    borderline = mu2 + 1.0 + 0.3 * torch.randn(20, 2, generator=gen)    # close to the retained data
    forget = torch.cat([typical, borderline]).double()
    retain = (mu2 + 0.5 * torch.randn(200, 2, generator=gen)).double()
    chosen = ch4.selected_part({"forget": forget, "retain": retain}, "LR-MAHA", 0.5, seed=0)
    assert chosen.dtype == torch.bool and int(chosen.sum()) == 20
    assert chosen[:20].all() and not chosen[20:].any()


def test_consistent_picks_say_when_tasks_differ():
    guide = pd.DataFrame([
        dict(task="t1", question="closest", label="A"), dict(task="t2", question="closest", label="A"),
        dict(task="t1", question="nomus", label="A"), dict(task="t2", question="nomus", label="B"),
    ])
    first, second = ch4.consistent_picks(guide, 0.01)
    assert first.startswith("To come closest") and "every task picks **A**" in first
    assert "differ (A, B)" in second


def test_summary_findings_name_the_best_method_and_the_retrained_model():
    import pandas as pd

    rows = [{"task": "full_class", "method": m, "avg_gap": g, "nomus": n, "forgetting_score": 0.4, "FA": fa, "TA": 0.8,
             "seconds": 12.0} for m, g, n, fa in (("original", 0.3, 0.5, 0.99), ("retrain", 0.0, 0.6, 0.0),
                                                  ("finetune", 0.05, 0.7, 0.2), ("mumis", 0.02, 0.65, 0.1))]
    found = ch4.summary_findings(pd.DataFrame(rows))
    assert found["ch4_full_class_best_gap_method"] == "MU-Mis" and found["ch4_full_class_best_gap"] == pytest.approx(2.0)
    assert found["ch4_full_class_best_nomus_method"] == ch4.label("finetune")  # Original and Retrain never "best"
    assert found["ch4_full_class_retrain_FA"] == 0.0 and found["ch4_full_class_ft_FA"] == pytest.approx(20.0)
