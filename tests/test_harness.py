"""The comparison harness: budgets, the tuning grid and selection rule, the run cache, statistics."""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from unlearnkit.experiments import harness, tasks
from unlearnkit.metrics import t_interval
from unlearnkit.methods import get_method


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def smoke_problem(seed: int = 0, scenario: str = "full_class") -> harness.Problem:
    task = tasks.cifar10_task("smoke")
    kw = {"forget_class": 0} if scenario == "full_class" else {"forget_fraction": 0.1}
    return tasks.make_problem(task, scenario, seed=seed, device="cpu", **kw)


# --- budgets ---------------------------------------------------------------------------------

def test_budget_keeps_the_reference_ratio_at_every_retrain_length():
    # FT: 10 epochs against SalUn's 160-epoch retrain
    assert harness.budget_settings("finetune", 10) == {"epochs": 10 * 10 / 160}
    assert harness.budget_settings("finetune", 160) == {"epochs": 10}
    for method in ("finetune", "neggrad", "scrub", "unsir", "mumis", "dlfd"):
        spec = get_method(method)
        paper = spec.config.defaults("paper")
        for epochs in (4, 10, 182):
            settings = harness.budget_settings(method, epochs)
            assert set(settings) == set(spec.passes)
            for name, value in settings.items():
                assert value / epochs == pytest.approx(paper[name] / spec.reference_retrain_epochs)
    assert harness.budget_settings("retrain", 10) == {}


def test_budget_fraction_counts_passes_per_retrain_epoch_and_can_be_set():
    assert harness.budget_fraction("finetune", {"epochs": 0.5}, 10) == pytest.approx(0.05)
    # SCRUB's max-steps are passes inside its epochs; UNSIR's two phases add up
    assert harness.budget_fraction("scrub", {"epochs": 2, "max_steps": 2}, 100) == pytest.approx(0.02)
    assert harness.budget_fraction("unsir", {"impair_epochs": 1, "repair_epochs": 2}, 100) == pytest.approx(0.03)
    rescaled = harness.budget_settings("unsir", 10, fraction=0.3)
    assert harness.budget_fraction("unsir", rescaled, 10) == pytest.approx(0.3)
    assert rescaled["repair_epochs"] / rescaled["impair_epochs"] == pytest.approx(2)


@pytest.mark.parametrize("fraction, error, message", [
    (0.0, ValueError, r"budget fraction of 'finetune'=0.0 is out of range; allowed: \(0, 1\]"),
    (1.5, ValueError, r"budget fraction of 'finetune'=1.5 is out of range; allowed: \(0, 1\]"),
    ("half", TypeError, r"budget fraction of 'finetune' must be a number in \(0, 1\]; got 'half'"),
])
def test_bad_budget_fraction_is_refused(fraction, error, message):
    with pytest.raises(error, match=message):
        harness.budget_settings("finetune", 10, fraction=fraction)
    with pytest.raises(error, match=message):
        tasks.Protocol(seeds=3, retain_eval=None, grid=harness.Grid(), budgets={"finetune": fraction})


def test_protocol_refuses_a_seed_count_below_one():
    with pytest.raises(ValueError, match=r"seeds=0 is out of range; allowed: \[1, inf\)"):
        tasks.Protocol(seeds=0, retain_eval=None, grid=harness.Grid())


# --- grid and selection rule ------------------------------------------------------------------

def test_grid_scales_every_rate_and_crosses_the_knob():
    grid = harness.Grid(lr_factors=(0.3, 1.0, 3.0), knobs={"mumis": {"delta": (1.3, 2.0)}})  # a study's grid
    ft = grid.candidates("finetune", "cpu")
    default = get_method("finetune").config.defaults("cpu")["lr"]
    assert [c["lr"] for c in ft] == pytest.approx([0.3 * default, default, 3 * default])
    assert len(grid.candidates("mumis", "cpu")) == 6
    unsir = grid.candidates("unsir", "cpu")
    d = get_method("unsir").config.defaults("cpu")
    assert unsir[0]["impair_lr"] == pytest.approx(0.3 * d["impair_lr"])
    assert unsir[0]["repair_lr"] == pytest.approx(0.3 * d["repair_lr"])
    based = grid.candidates("finetune", "cpu", base={"lr": 1.0, "batch_size": 7})
    assert [c["lr"] for c in based] == pytest.approx([0.3, 1.0, 3.0]) and all(c["batch_size"] == 7 for c in based)
    assert harness.Grid(lr_factors=(0.1,)).candidates("finetune", "cpu")[0]["lr"] == 0.001  # rounded, not 0.0010000000000000002


def test_every_method_gets_the_same_number_of_grid_points_by_default():
    grid = harness.Grid()
    assert grid.knobs == {} and tasks.protocol("cpu").grid.knobs == {} and tasks.protocol("paper").grid.knobs == {}
    sizes = {m: len(grid.candidates(m, "cpu")) for m in ("finetune", "unsir", "scrub", "dlfd", "mumis")}
    assert set(sizes.values()) == {3}
    assert {p["delta"] for p in grid.candidates("mumis", "cpu", {"delta": 1.3})} == {1.3}


def test_compare_refuses_a_grid_with_uneven_points_and_pass_field_overrides(cache, monkeypatch):
    import unlearnkit.experiments.harness as h

    monkeypatch.setattr(h, "unlearn", lambda *a, **k: pytest.fail("trained before checking its input"))
    problem = smoke_problem(0)
    uneven = harness.Grid(lr_factors=(1.0, 3.0), knobs={"mumis": {"delta": (1.3, 2.0)}})
    with pytest.raises(ValueError, match=r"different numbers of points \{'finetune': 2, 'mumis': 4\}"):
        harness.compare([problem], ["finetune", "mumis"], grid=uneven, profile="smoke", device="cpu")
    even = harness.Grid(lr_factors=(1.0,))
    with pytest.raises(ValueError, match=r"base settings\['finetune'\] sets 'epochs', which counts passes"):
        harness.compare([problem], ["finetune"], grid=even, profile="smoke", device="cpu",
                        base={"finetune": {"epochs": 3}})
    knob = harness.Grid(lr_factors=(1.0,), knobs={"mumis": {"max_epochs": (1.0,)}})
    with pytest.raises(ValueError, match=r"grid knobs\['mumis'\] sets 'max_epochs', which counts passes"):
        harness.compare([problem], ["mumis"], grid=knob, profile="smoke", device="cpu")
    with pytest.raises(ValueError, match=r"sets 'select_checkpoint', which every comparison fixes at False"):
        harness.compare([problem], ["dlfd"], grid=even, profile="smoke", device="cpu",
                        base={"dlfd": {"select_checkpoint": True}})


def test_dlfd_runs_without_its_own_checkpoint_choice_in_a_comparison():
    point, = harness.Grid(lr_factors=(1.0,)).candidates("dlfd", "cpu")
    assert point["select_checkpoint"] is False
    released, = harness.Grid(lr_factors=(1.0,)).candidates("dlfd_released", "cpu")
    assert "select_checkpoint" not in released  # the released notebooks' choice, which its rows reproduce
    assert get_method("dlfd").config.defaults("cpu")["select_checkpoint"] is True


@pytest.mark.parametrize("kwargs, message", [
    ({"lr_factors": ()}, r"Grid.lr_factors is empty"),
    ({"lr_factors": (0.0,)}, r"lr factor=0.0 is out of range"),
    ({"knobs": {"mumiz": {"delta": (2.0,)}}}, r"unknown unlearning method 'mumiz'; known: .*mumis"),
    ({"knobs": {"mumis": {"deltaa": (2.0,)}}}, r"unknown hyperparameter of 'mumis' in the grid 'deltaa'; allowed: .*'delta'"),
    ({"knobs": {"mumis": {"delta": ()}}}, r"the grid's values for mumis.delta are empty"),
    ({"knobs": {"mumis": {"delta": (0.5,)}}}, r"delta=0.5 is out of range; allowed: \(1, inf\)"),
])
def test_bad_grid_is_refused_when_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        harness.Grid(**kwargs)


def grid_rows(fa, target, val, gap, original_val=0.8):
    return pd.DataFrame({"FA": fa, "forget_target": target, "val_accuracy": val, "avg_gap": gap,
                         "original_val_accuracy": original_val})


def test_rule_picks_the_best_validation_among_admissible_runs_and_never_reads_the_gap():
    rows = grid_rows(fa=[0.05, 0.5, 0.08], target=[0.1, 0.1, 0.1], val=[0.77, 0.9, 0.8], gap=[0.3, 0.0, 0.2])
    assert harness.select(rows, "forget_then_val") == 2       # 1 has the best val but forgets too little
    assert harness.select(rows.assign(avg_gap=[0.0, 0.5, 0.9]), "forget_then_val") == 2
    assert harness.select(rows, "oracle") == 1                 # the oracle reads the retrained model
    with pytest.raises(ValueError, match=r"unknown selection rule 'best'; allowed: 'forget_then_val', 'oracle'"):
        harness.select(rows, "best")


def test_a_ruined_model_meets_the_old_rule_but_not_the_new_one():
    """Chapter 3's cpu MU-Mis grid on random-subset forgetting (seed 13): the old rule compared FA
    with the run's own held-out accuracy, which a ruined run meets best."""
    original = {"heldout_accuracy": 0.75, "val_accuracy": 0.76}
    own_heldout = [0.74, 0.44]                                   # lr 0.0009 (mild), lr 0.009 (ruined)
    planted = pd.DataFrame({"scenario": "random_subset", "FA": [0.80, 0.43], "val_accuracy": [0.745, 0.44],
                            "avg_gap": [0.016, 0.333]})
    old_target = [harness.forget_target("random_subset", 10, h) for h in own_heldout]
    old_admissible = planted["FA"] <= old_target
    assert list(old_admissible) == [False, True]               # the old rule's only admissible run: the ruined one
    problem = type("P", (), {"scenario": "random_subset", "split": type("S", (), {"num_classes": 10})()})()
    rows = harness.with_original(planted, problem, original)
    assert rows["forget_target"].tolist() == [0.75, 0.75]      # fixed before unlearning, the original's
    assert harness.select(rows, "forget_then_val") == 0        # no run admissible; the ruined one is out of margin


def test_fallback_is_least_excess_within_the_margin_then_best_validation():
    # full class, chance 0.1: the run at FA 0.004 lost 33 points of validation accuracy
    rows = grid_rows(fa=[0.004, 0.12, 0.3], target=0.1, val=[0.43, 0.748, 0.77], gap=0.0, original_val=0.78)
    assert harness.select(rows, "forget_then_val") == 1        # within 5 points: least excess over chance
    admissible = rows.assign(FA=[0.004, 0.09, 0.3])
    assert harness.select(admissible, "forget_then_val") == 1
    ruined = grid_rows(fa=[0.0, 0.05, 0.5], target=0.1, val=[0.2, 0.5, 0.6], gap=0.0, original_val=0.8)
    assert harness.select(ruined, "forget_then_val") == 2      # none within the margin: the best validation
    edge = grid_rows(fa=[0.0, 0.0], target=0.1, val=[0.8 - harness.UTILITY_MARGIN, 0.74], gap=0.0, original_val=0.8)
    assert harness.select(edge, "forget_then_val") == 0        # exactly at the margin is admissible


def test_forget_target_is_chance_for_a_class_and_the_originals_heldout_accuracy_otherwise():
    assert harness.forget_target("full_class", 10, 0.8) == pytest.approx(0.1)
    assert harness.forget_target("random_subset", 10, 0.8) == 0.8
    assert harness.forget_target("identity", 7, 0.6) == 0.6


def test_no_selection_input_comes_from_the_test_set(cache):
    problem = smoke_problem(0, "random_subset")
    split = problem.split
    released = replace(split, unseen=split.test)                 # DLFD's MUFAC / RAF-DB: unseen is the test set
    assert harness.heldout_set(released) is split.val and harness.heldout_set(split) is split.val
    shuffled = replace(split.test, y=split.test.y[torch.randperm(len(split.test), generator=torch.Generator().manual_seed(0))])

    def inputs(s):
        out = harness.measure(problem.original, replace(problem, split=s), seed=0, device="cpu", retain_eval=None)
        return out["val_accuracy"], out["heldout_accuracy"], out["TA"]

    val, held, ta = inputs(released)
    val_s, held_s, ta_s = inputs(replace(released, test=shuffled, unseen=shuffled))
    assert (val_s, held_s) == (val, held) and held == val and ta_s != ta  # the test set moved, the inputs did not
    faces = tasks.build(tasks.spec("identity", "smoke", seed=0), device="cpu").split
    assert faces.unseen is not None and harness.heldout_set(faces) is faces.unseen  # own held-out subjects


# --- runs and their cache -----------------------------------------------------------------------

def test_run_is_cached_and_misses_on_changed_setting_split_or_code(cache, monkeypatch):
    problem = smoke_problem(0)
    first = harness.run_method(problem, "finetune", {"lr": 0.1}, profile="smoke", device="cpu")
    again = harness.run_method(problem, "finetune", {"lr": 0.1}, profile="smoke", device="cpu")
    assert not first["cache_hit"] and again["cache_hit"]
    assert {k: v for k, v in again.items() if k != "cache_hit"} == {k: v for k, v in first.items() if k != "cache_hit"}
    assert first["timed_here"] and again["timed_here"]  # the same process timed it
    here = harness.timed_by
    monkeypatch.setattr(harness, "timed_by", lambda: "another-host:1")
    elsewhere = harness.run_method(problem, "finetune", {"lr": 0.1}, profile="smoke", device="cpu")
    assert elsewhere["cache_hit"] and not elsewhere["timed_here"] and elsewhere["seconds"] == first["seconds"]
    monkeypatch.setattr(harness, "timed_by", here)
    assert not list((cache / "runs").glob("*.tmp*")), "no temporary file is left behind"
    other_lr = harness.run_method(problem, "finetune", {"lr": 0.2}, profile="smoke", device="cpu")
    assert not other_lr["cache_hit"] and other_lr["run_path"] != first["run_path"]
    other_split = harness.run_method(smoke_problem(0, "random_subset"), "finetune", {"lr": 0.1}, profile="smoke",
                                     device="cpu")
    assert not other_split["cache_hit"]
    other_seed = harness.run_method(problem, "finetune", {"lr": 0.1}, profile="smoke", device="cpu", seed=5)
    assert not other_seed["cache_hit"]
    monkeypatch.setattr(harness, "code_version", lambda: "edited-code")
    edited = harness.run_method(problem, "finetune", {"lr": 0.1}, profile="smoke", device="cpu")
    assert not edited["cache_hit"]


def test_code_version_covers_the_method_sources():
    assert len(harness.code_version()) == 16
    key = harness.run_key(smoke_problem(0), "finetune", {"lr": 0.1}, seed=0, retain_eval=None)
    assert key["code"] == harness.code_version()


def test_cached_model_is_the_model_that_was_measured(cache):
    problem = smoke_problem(0)
    row = harness.run_method(problem, "neggrad", {"lr": 0.01}, profile="smoke", device="cpu")
    model = harness.load_unlearned(problem, row)
    again = harness.measure(model, problem, seed=problem.seed, device="cpu", retain_eval=None)
    assert again["FA"] == pytest.approx(row["FA"]) and again["TA"] == pytest.approx(row["TA"])


def test_run_rows_state_budget_and_time_fraction(cache):
    problem = smoke_problem(0)
    rows = harness.run_methods(problem, {"finetune": {}, "mumis": {}}, profile="smoke", device="cpu")
    assert list(rows["method"]) == ["original", "retrain", "finetune", "mumis"]
    ft = rows.set_index("method").loc["finetune"]
    assert ft["budget_fraction"] == pytest.approx(10 / 160)
    assert ft["time_fraction"] == pytest.approx(ft["seconds"] / problem.retrain_seconds)
    assert rows.set_index("method").loc["retrain", "avg_gap"] == 0
    for col in ("RA", "FA", "TA", "avg_gap", "mia_loss_logreg", "nomus"):
        assert rows[col].between(0, 1).all(), col


def test_compare_tunes_on_the_first_seed_and_runs_the_picks_on_every_seed(cache):
    problems = [smoke_problem(0), smoke_problem(1)]
    grid = harness.Grid(lr_factors=(1.0, 3.0), knobs={})
    rows = harness.compare(problems, ["retrain", "finetune", "neggrad"], grid=grid, profile="smoke", device="cpu")
    for method in ("finetune", "neggrad"):
        mine = rows[rows["method"] == method]
        assert (mine["pick"] == "grid").sum() == 2 and set(mine.loc[mine["pick"] == "grid", "seed"]) == {0}
        for pick in ("rule", "oracle"):
            chosen = mine[mine["pick"] == pick]
            assert sorted(chosen["seed"]) == [0, 1] and chosen["settings"].nunique() == 1
            assert chosen.loc[chosen["seed"] == 0, "cache_hit"].all()  # the tuning seed's run is the grid's
        grid_part = mine[mine["pick"] == "grid"].reset_index(drop=True)
        rule = mine[(mine["pick"] == "rule") & (mine["seed"] == 0)].iloc[0]
        assert rule["settings"] == grid_part.loc[harness.select(grid_part, "forget_then_val"), "settings"]
    assert set(rows.loc[rows["pick"] == "reference", "method"]) == {"original", "retrain"}
    picks = harness.picks_table(rows).set_index("method")
    assert picks["grid points"].tolist() == [2, 2]
    assert picks.loc["finetune", harness.BUDGET_COLUMN] == pytest.approx(10 / 160)
    rule = rows[(rows["method"] == "finetune") & (rows["pick"] == "rule")]
    assert picks.loc["finetune", harness.TIME_COLUMN] == pytest.approx(rule["time_fraction"].mean())


@pytest.mark.parametrize("methods, kwargs, message", [
    (["finetune", "bogus"], {}, r"unknown unlearning method 'bogus'"),
    ([], {}, r"no methods to compare"),
    (["finetune"], {"budgets": {"finetune": 2.0}}, r"budget fraction of 'finetune'=2.0 is out of range"),
    (["finetune"], {"budgets": {"neggrad": 0.5}}, r"budgets for \['neggrad'\], which are not compared"),
    (["finetune"], {"base": {"finetune": {"lrr": 0.1}}}, r"unknown parameter\(s\) \['lrr'\] for FinetuneConfig"),
])
def test_bad_comparison_fails_before_any_training(cache, monkeypatch, methods, kwargs, message):
    import unlearnkit.experiments.harness as h

    def no_training(*a, **k):
        raise AssertionError("trained before checking its input")

    monkeypatch.setattr(h, "unlearn", no_training)
    problem = smoke_problem(0)
    with pytest.raises(ValueError, match=message):
        harness.compare([problem], methods, grid=harness.Grid(knobs={}), profile="smoke", device="cpu", **kwargs)


# --- statistics ---------------------------------------------------------------------------------

def test_t_interval_closed_form():
    n, mean, low, high = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} · sd / √n, sd = 1
    assert (n, mean) == (3, 2.0) and low == pytest.approx(2 - half) and high == pytest.approx(2 + half)
    assert t_interval([5.0])[0] == 1 and math.isnan(t_interval([5.0])[2])
    assert t_interval([1.0, float("nan"), 3.0])[:2] == (2, 2.0)


def test_summarise_and_display():
    rows = pd.DataFrame({"problem": "p", "method": "m", "pick": "rule", "label": "M", "seed": [0, 1, 2],
                         "FA": [0.4, 0.5, 0.6]})
    s = harness.summarise(rows, metrics=("FA",))
    assert s.iloc[0][["n", "mean"]].tolist() == [3, pytest.approx(0.5)]
    assert s.iloc[0]["ci_low"] < 0.5 < s.iloc[0]["ci_high"] and not s.iloc[0]["clipped"]
    half = 100 * (s.iloc[0]["ci_high"] - 0.5)
    assert harness.display(s).loc["M", "forget acc. (%)"] == f"50.0 ± {half:.1f}"
    # an accuracy's interval never leaves [0, 1]: clipped, and shown with its ends
    low = harness.summarise(rows.assign(FA=[0.1, 0.2, 0.3]), metrics=("FA",))
    assert low.iloc[0]["ci_low"] == 0.0 and low.iloc[0]["clipped"] and low.iloc[0]["ci_high"] > 0.3
    assert harness.display(low).loc["M", "forget acc. (%)"].startswith("20.0 [0.0, ")


def test_variance_components_find_the_factor_that_moves_the_value():
    levels = [(o, d, m) for o in (0, 1) for d in (0, 1) for m in (0, 1)]
    rows = pd.DataFrame(levels, columns=["original_seed", "forget_seed", "method_seed"])
    rows["value"] = 3.0 * rows["forget_seed"]
    shares = harness.variance_components(rows, "value").set_index("factor")["share"]
    assert shares["forget_seed"] == pytest.approx(1.0)
    assert shares["original_seed"] == pytest.approx(0.0) and shares["interactions and noise"] == pytest.approx(0.0)
    rows["value"] = rows["original_seed"] + rows["method_seed"]
    shares = harness.variance_components(rows, "value").set_index("factor")["share"]
    assert shares["original_seed"] == pytest.approx(0.5) and shares["method_seed"] == pytest.approx(0.5)


def test_the_oracle_pick_runs_where_the_protocol_says(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path))
    problems = [tasks.build(tasks.spec("random_subset", "smoke", seed=s), device="cpu") for s in (0, 1)]
    grid = harness.Grid(lr_factors=(1.0, 3.0), knobs={})
    counts = {}
    for mode in harness.ORACLE_SEEDS:
        runs = harness.compare(problems, ["finetune"], grid=grid, profile="smoke", device="cpu", oracle=mode)
        counts[mode] = sorted(runs.loc[runs["pick"] == "oracle", "seed"])
        assert sorted(runs.loc[runs["pick"] == "rule", "seed"]) == [0, 1]
    assert counts == {"every_seed": [0, 1], "tuning_seed": [0], "none": []}
    with pytest.raises(ValueError, match="unknown oracle 'some'; allowed: 'every_seed'"):
        harness.compare(problems, ["finetune"], grid=grid, profile="smoke", device="cpu", oracle="some")
    assert tasks.protocol("cpu").oracle == "tuning_seed" and tasks.protocol("paper").oracle == "every_seed"


def test_picks_are_shown_as_settings_not_json():
    assert harness.settings_text('{"lr": 0.30000000000000004, "delta": 1.3}') == "lr = 0.3, delta = 1.3"
    assert harness.settings_text("{}") == "defaults" and harness.settings_text({"k": 1}) == "k = 1"
    picks = pd.DataFrame({"problem": ["p"], "method": ["m"], "label": ["M"], "rule pick": ['{"lr": 0.1}'],
                          "oracle pick": [float("nan")]})
    view = harness.picks_view(picks)
    assert view.loc[("p", "M"), "rule pick"] == "lr = 0.1" and pd.isna(view.loc[("p", "M"), "oracle pick"])


def _poisoned(spec):
    """``spec`` whose run finishes normally but leaves a NaN in the model's first weight."""
    def run(model, split, cfg, ctx):
        model = spec.run(model, split, cfg, ctx)
        model = model[0] if isinstance(model, tuple) else model
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = math.nan
        return model
    return replace(spec, run=run)


def test_a_diverged_run_is_recorded_as_not_measured_and_never_picked(cache, monkeypatch):
    from unlearnkit.methods import METHODS, Diverged, unlearn

    problem = smoke_problem(0)
    monkeypatch.setitem(METHODS, "neggrad", _poisoned(METHODS["neggrad"]))
    with pytest.raises(Diverged, match="neggrad .*diverged.*NaN or infinite"):
        unlearn("neggrad", problem.original, problem.split, profile="smoke", device="cpu")
    row = harness.run_method(problem, "neggrad", {"lr": 0.01}, profile="smoke", device="cpu")
    assert harness.diverged(row) and "NaN or infinite" in row["diverged"]
    assert all(math.isnan(row[name]) for name in harness.MEASURED) and math.isnan(row["seconds"])
    again = harness.run_method(problem, "neggrad", {"lr": 0.01}, profile="smoke", device="cpu")
    assert again["cache_hit"] and harness.diverged(again), "the divergence is cached, not rerun"
    with pytest.raises(Diverged):
        harness.load_unlearned(problem, row)
    finished = harness.run_method(problem, "finetune", {"lr": 0.1}, profile="smoke", device="cpu")
    assert not harness.diverged(finished) and finished["diverged"] == ""
    assert harness.diverged_note(pd.DataFrame([finished])) == "No run diverged."
    note = harness.diverged_note(pd.DataFrame([row, finished]))
    assert note.startswith("1 run(s) diverged") and "NegGrad on " in note and "lr = 0.01" in note
    grid = pd.DataFrame([{**row, "avg_gap": math.nan}, {**finished, "avg_gap": 0.3}])
    grid = grid.assign(original_val_accuracy=0.0, forget_target=1.0)
    for rule in harness.RULES:
        assert harness.select(grid, rule) == 1, f"{rule} picked the diverged run"
    assert harness.select(grid.iloc[:1], "forget_then_val") == 0  # nothing else: the pick is NaN
