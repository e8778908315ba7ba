"""Chapter 2's experiment module: config, measurements, summaries (tiny inputs, no training)."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from unlearnkit.data.core import Split, TensorSet
from unlearnkit.data.faces import MUFAC_FOLDER, RAF_FOLDER
from unlearnkit.experiments import ch2, harness
from unlearnkit.methods.dlfd import PAPER_SETTINGS
from unlearnkit.models import build_model


def test_profiles_build_and_bad_values_fail_early(tmp_path):
    for profile in ("smoke", "cpu"):
        cfg = ch2.profile_config(profile)
        assert cfg.methods == ch2.METHODS and {"dlfd", "dlfd_released"} <= set(cfg.methods)
    assert ch2.profile_config("smoke").face_source == "synthetic-faces"
    assert ch2.profile_config("cpu").face_source == "ckplus"
    assert ch2.profile_config("paper", root=tmp_path).face_source == "ckplus"  # nothing released present
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['epochs'\] for Ch2Config"):
        ch2.profile_config("cpu", epochs=3)
    with pytest.raises(ValueError, match=r"unknown face_source 'celeba'"):
        ch2.profile_config("cpu", face_source="celeba")
    with pytest.raises(ValueError, match="methods must include 'dlfd_released'"):
        ch2.profile_config("cpu", methods=("finetune", "dlfd"))
    with pytest.raises(ValueError, match="unknown unlearning method 'magic'"):
        ch2.profile_config("cpu", methods=("finetune", "dlfd", "dlfd_released", "magic"))
    with pytest.raises(ValueError, match=r"probe_samples=0 is out of range"):
        ch2.profile_config("cpu", probe_samples=0)
    with pytest.raises(ValueError, match="unknown profile 'laptop'"):
        ch2.profile_config("laptop")


def test_paper_profile_picks_the_face_data_that_is_present(tmp_path):
    assert ch2.dlfd_settings(ch2.profile_config("paper", root=tmp_path)) == {}  # CK+48: registry settings
    (tmp_path / RAF_FOLDER).mkdir()
    cfg = ch2.profile_config("paper", root=tmp_path)
    assert cfg.face_source == "rafdb" and ch2.dlfd_settings(cfg) == PAPER_SETTINGS["rafdb"]
    assert ch2.dlfd_settings(cfg)["forget_weight"] == 7.0
    (tmp_path / MUFAC_FOLDER).mkdir()
    cfg = ch2.profile_config("paper", root=tmp_path)
    assert cfg.face_source == "mufac" and ch2.dlfd_settings(cfg)["batch_size"] == 32
    settings = ch2.dlfd_settings(cfg)
    settings["batch_size"] = 1  # a copy: the released settings stay as they are
    assert PAPER_SETTINGS["mufac"]["batch_size"] == 32
    # an explicit source is not resolved against the folder
    assert ch2.profile_config("paper", root=tmp_path, face_source="ckplus").face_source == "ckplus"


def test_labels_name_the_ablation_and_the_original():
    assert ch2.label("original") == "Original"
    assert ch2.label("dlfd_no_ot") == "DLFD, w_f = 0"
    assert ch2.label("dlfd") == "DLFD"
    assert ch2.ABLATIONS["dlfd_no_ot"][:2] == ("dlfd", {"forget_weight": 0.0})


def test_class_separation_matches_the_fisher_ratio_by_hand():
    # 1-D, classes {0, 1} and {3, 4}: S_B = 2·1.5² + 2·1.5² = 9, S_W = 4·0.25 = 1.
    features = torch.tensor([[0.0], [1.0], [3.0], [4.0]])
    assert ch2.class_separation(features, torch.tensor([0, 0, 1, 1])) == pytest.approx(9.0)
    # classes {0, 3} and {1, 4}: means 1.5 and 2.5, S_B = 4·0.5² = 1, S_W = 4·1.5² = 9
    assert ch2.class_separation(features, torch.tensor([0, 1, 0, 1])) == pytest.approx(1 / 9)
    assert ch2.class_separation(features * 10, torch.tensor([0, 0, 1, 1])) == pytest.approx(9.0)


def test_probe_and_separation_drop_when_the_features_carry_no_label_information():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(120) % 2
    x = (torch.rand(120, 1, 8, 8, generator=gen) * 80 + 60 * y.view(-1, 1, 1, 1) + 40).to(torch.uint8)
    data = TensorSet(x, y)
    split = Split(retain=data.subset(torch.arange(80)), forget=data.subset(torch.arange(80, 90)),
                  test=data.subset(torch.arange(90, 120)), num_classes=2)
    torch.manual_seed(0)
    model = build_model("face_cnn", 2, in_channels=1, image_size=8)
    informative = ch2.feature_label_correlation(model, split, device="cpu", max_samples=200, seed=0)
    shuffled = Split(retain=TensorSet(split.retain.x, split.retain.y[torch.randperm(80, generator=gen)]),
                     forget=split.forget, test=split.test, num_classes=2)
    noise = ch2.feature_label_correlation(model, shuffled, device="cpu", max_samples=200, seed=0)
    assert informative["probe_accuracy"] > 0.9 > noise["probe_accuracy"]
    assert informative["separation_retain"] > noise["separation_retain"]


NOMUS = {"original": 0.60, "retrain": 0.80, "finetune": 0.62, "unsir": 0.70, "dlfd": 0.75,
         "dlfd_released": 0.72, "dlfd_no_ot": 0.65}


def _frame():
    """The chapter's frame (:func:`ch2.chapter_frame`'s columns) for two seeds."""
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for method, nomus in NOMUS.items():
            seconds = 100.0 if method == "retrain" else 4.0
            rows.append({"dataset": "faces", "problem": "faces/identity", "seed": seed, "method": method,
                         "label": ch2.label(method), "TA": 0.7, "FA": 0.5, "MIA": 0.6, "FS": 0.2,
                         "NoMUS": nomus + shift, "seconds": seconds, "time_fraction": seconds / 100.0})
    return pd.DataFrame(rows)


def test_summary_and_scorecard_inputs_are_computed_from_the_rows():
    summary = ch2.summarise(_frame())
    assert list(summary["method"]) == list(NOMUS)
    row = summary.set_index("method").loc["dlfd"]
    assert row["NoMUS"] == pytest.approx(0.76) and row["NoMUS_std"] == pytest.approx(0.02 / 2 ** 0.5)
    assert row["n"] == 2 and row["label"] == "DLFD"
    assert "probe_accuracy" not in summary  # absent columns are left out, not invented
    inputs = ch2.scorecard_inputs(summary)
    assert inputs["best_baseline"] == "UNSIR" and inputs["nomus_best_baseline"] == pytest.approx(0.71)
    assert inputs["dlfd_beats_baselines"] is True
    assert inputs["ot_term_effect"] == pytest.approx(0.03)       # DLFD − DLFD-released
    assert inputs["ot_term_effect_clean"] == pytest.approx(0.10)  # DLFD − DLFD with w_f = 0
    assert inputs["dlfd_time_ratio"] == pytest.approx(0.04)
    assert inputs["dlfd_minus_retrain_nomus"] == pytest.approx(-0.05)


def test_verdict_findings_read_the_inputs_and_the_speed_goal():
    inputs = ch2.scorecard_inputs(ch2.summarise(_frame()))
    found = ch2.verdict_findings(inputs)
    assert found["ch2-nomus_dlfd"] == inputs["nomus_dlfd"] and found["ch2-best-baseline"] == "UNSIR"
    assert found["ch2-beats"] == "beats" and found["ch2-ot_term_effect_clean_neg"] == pytest.approx(-0.10)
    assert found["ch2-speed-goal"] == "misses", "fast enough (0.04 < 1/20), but 0.05 below Retrain's NoMUS"
    assert ch2.verdict_findings({**inputs, "dlfd_minus_retrain_nomus": -0.01})["ch2-speed-goal"] == "meets"
    assert ch2.verdict_findings({**inputs, "dlfd_time_ratio": 0.06, "dlfd_minus_retrain_nomus": 0})[
        "ch2-speed-goal"] == "misses"


def test_problem_and_cifar_findings_count_what_the_prose_quotes():
    def problem(seed, hits):
        data = TensorSet(torch.zeros(10, 1, 4, 4), torch.zeros(10, dtype=torch.long))
        split = Split(retain=data.subset(torch.arange(6)), forget=data.subset(torch.arange(6, 8)),
                      test=data.subset(torch.arange(8, 10)), num_classes=2, info={"forget_subjects": [3, 7]})
        return SimpleNamespace(split=split, task="faces", models=[{"cache_hit": h} for h in hits])

    problems = [problem(0, (True, False)), problem(1, (True, True))]
    found = ch2.problem_findings(problems)
    assert (found["ch2-n-retain"], found["ch2-n-forget"], found["ch2-n-test"], found["ch2-n-unseen"]) == (6, 2, 2, 2)
    assert found["ch2-forget-share"] == pytest.approx(0.2) and found["ch2-forget-subjects"] == 2
    assert (found["ch2-face-hits"], found["ch2-face-models"]) == (3, 4)
    summary = ch2.summarise(_frame())
    cifar = ch2.cifar_findings(problems, summary)
    assert cifar["ch2-cifar-seeds"] == 2 and cifar["ch2-cifar-dlfd"] == pytest.approx(0.76)
    assert cifar["ch2-cifar-best-name"] == "UNSIR" and cifar["ch2-cifar-fs-original"] == pytest.approx(0.2)


def test_ot_findings_average_per_variant():
    traces = pd.DataFrame({"variant": ["DLFD", "DLFD", "DLFD-released", "DLFD-released"],
                           "OT before": [1.0, 1.0, 1.0, float("nan")], "OT after": [1.5, 1.1, 1.0, float("nan")],
                           "perturbed": [1.0, 0.0, 1.0, 1.0]})
    found = ch2.ot_findings(traces, {"ot_share": 0.3, "step_seconds_with_ot": 2.0, "step_seconds_without_ot": 1.4})
    assert found["ch2-ot-rise-dlfd"] == pytest.approx(0.3) and found["ch2-ot-rise-released"] == 0
    assert found["ch2-gate-dlfd"] == 0.5 and found["ch2-gate-released"] == 1.0 and found["ch2-ot-time-share"] == 0.3


def test_collapse_findings_name_the_methods_whose_probe_dropped():
    probe = {"original": 0.9, "neggrad": 0.5, "random_labels": 0.89, "finetune": 0.88, "dlfd": 0.9}
    faces = pd.DataFrame([{"method": m, "seed": s, "probe_accuracy": p + 0.01 * s, "separation_test": 2 * p}
                          for m, p in probe.items() for s in (0, 1)])
    found = ch2.collapse_findings(faces)
    assert found["ch2-probe-neggrad"] == pytest.approx(0.505) and found["ch2-sep-dlfd"] == pytest.approx(1.8)
    assert found["ch2-collapse-text"] == ch2.label("neggrad"), "RL is within COLLAPSE_DROP of the original"
    faces.loc[faces["method"] == "neggrad", "probe_accuracy"] = 0.9
    assert ch2.collapse_findings(faces)["ch2-collapse-text"] == "neither NegGrad nor RL"


def test_sinkhorn_findings_read_dlfd_s_setting_and_the_converged_plan():
    sink = ch2.sinkhorn_vs_emd(n=6, m=5, dim=3, regs=(0.1, 0.01), iterations=(50, 5000), seed=0)
    found = ch2.sinkhorn_findings(sink)
    row = sink.set_index(["reg", "iterations"])
    assert found["ch2-sink-gap"] == row.loc[(0.01, 50), "gap"] and found["ch2-sink-emd"] == row.loc[(0.01, 50), "emd_cost"]
    assert found["ch2-sink-marginal-conv"] == row.loc[(0.01, 5000), "marginal_error"] < found["ch2-sink-marginal"]


def test_scorecard_inputs_without_the_ablation_and_when_a_baseline_wins():
    frame = _frame()
    frame = frame[frame["method"] != "dlfd_no_ot"]
    frame.loc[frame["method"] == "unsir", "NoMUS"] = 0.9
    inputs = ch2.scorecard_inputs(ch2.summarise(frame))
    assert math.isnan(inputs["ot_term_effect_clean"])
    assert inputs["dlfd_beats_baselines"] is False and inputs["nomus_best_baseline"] == pytest.approx(0.9)


def test_single_seed_tables_show_no_spread():
    one = _frame()[lambda f: f["seed"] == 0]
    summary = ch2.summarise(one)
    assert set(summary["n"]) == {1} and (summary["NoMUS_std"] == 0).all()
    table = harness.display(harness.summarise(one, metrics=("NoMUS",), by=("dataset", "method")),
                            scale=1, digits=3)
    assert table.loc["DLFD", "NoMUS"] == "0.750"  # one seed: no interval shown
    two = harness.display(harness.summarise(_frame(), metrics=("NoMUS",), by=("dataset", "method")),
                          scale=1, digits=3)
    assert two.loc["DLFD", "NoMUS"].startswith("0.760 ± ")


def _harness_rows():
    """Harness rows of one problem and seed: the references, a rule pick, its grid run, an oracle pick."""
    base = {"problem": "faces/identity", "task": "faces", "scenario": "identity", "seed": 0, "TA": 0.7, "FA": 0.4,
            "mia_loss_logreg": 0.6, "forgetting_score": 0.2, "nomus": 0.7, "seconds": 1.0, "time_fraction": 0.01}
    rows = [{**base, "method": m, "label": ch2.label(m), "pick": pick}
            for m, pick in (("original", "reference"), ("retrain", "reference"), ("dlfd", "grid"),
                            ("dlfd", "rule"), ("dlfd", "oracle"))]
    return pd.DataFrame(rows)


def test_chapter_frame_keeps_the_rule_picks_and_renames_the_metrics():
    extra = [{"problem": "faces/identity", "task": "faces", "seed": 0, "method": "dlfd_no_ot",
              "label": ch2.label("dlfd_no_ot"), "TA": 0.5, "FA": 0.3, "mia_loss_logreg": 0.55,
              "forgetting_score": 0.1, "nomus": 0.66, "seconds": 2.0, "time_fraction": 0.02}]
    collapse = pd.DataFrame([{"problem": "faces/identity", "seed": 0, "method": "dlfd", "probe_accuracy": 0.4,
                              "separation_test": 1.5, "separation_retain": 2.0}])
    frame = ch2.chapter_frame(_harness_rows(), extra, collapse)
    assert list(frame["method"]) == ["original", "retrain", "dlfd", "dlfd_no_ot"]  # no grid / oracle rows
    assert (frame["dataset"] == "faces").all()
    last = frame.set_index("method").loc["dlfd_no_ot"]
    assert (last["MIA"], last["FS"], last["NoMUS"]) == (0.55, 0.1, 0.66)
    assert frame.set_index("method").loc["dlfd", "probe_accuracy"] == 0.4
    assert frame.set_index("method")["probe_accuracy"].isna().sum() == 3  # merged by seed and method only


def test_sinkhorn_check_converges_to_the_exact_cost():
    table = ch2.sinkhorn_vs_emd(n=8, m=6, dim=4, regs=(1.0, 0.1, 0.01), iterations=(50, 3000))
    converged = table[table["iterations"] == 3000].set_index("reg")
    assert converged.loc[1.0, "gap"] > converged.loc[0.1, "gap"] > converged.loc[0.01, "gap"] > -1e-9
    assert converged.loc[0.01, "marginal_error"] < 1e-4
    capped = table[table["iterations"] == 50].set_index("reg")
    assert capped.loc[0.01, "marginal_error"] > converged.loc[0.01, "marginal_error"]


def _tiny_face_problem() -> harness.Problem:
    data = TensorSet(torch.randint(0, 256, (24, 1, 8, 8), generator=torch.Generator().manual_seed(0),
                                   dtype=torch.uint8), torch.arange(24) % 3)
    split = Split(retain=data.subset(torch.arange(16)), forget=data.subset(torch.arange(16, 24)),
                  test=data.subset(torch.arange(8)), num_classes=3)
    torch.manual_seed(0)
    model = build_model("face_cnn", 3, in_channels=1, image_size=8).eval()
    return harness.Problem(task="faces", scenario="identity", seed=0, split=split, original=model,
                           retrained=model, retrain_seconds=1.0, retrain_epochs=6, models=[], key={})


def test_dlfd_config_is_the_budget_under_the_pick():
    problem = _tiny_face_problem()
    cfg = ch2.profile_config("smoke")
    dlfd = ch2.dlfd_config(cfg, problem, {"batch_size": 8})
    assert dlfd.batch_size == 8
    assert dlfd.epochs == pytest.approx(harness.budget_settings("dlfd", 6)["epochs"])  # 1 × 6 / 100
    assert ch2.dlfd_config(cfg, problem, {"epochs": 0.5}).epochs == 0.5  # the pick wins


def test_ot_share_of_a_dlfd_step_is_a_fraction():
    problem = _tiny_face_problem()
    before = {k: v.clone() for k, v in problem.original.state_dict().items()}
    cfg = ch2.profile_config("smoke")
    timing = ch2.ot_step_share(problem, cfg, {"batch_size": 8, "perturbation_steps": 2}, device="cpu")
    assert 0 <= timing["ot_share"] < 1
    assert timing["step_seconds_with_ot"] > 0 and timing["step_seconds_without_ot"] > 0
    assert timing["ot_share"] == pytest.approx(
        max(0.0, 1 - timing["step_seconds_without_ot"] / timing["step_seconds_with_ot"]))
    for k, v in problem.original.state_dict().items():  # timed on copies
        assert torch.equal(v, before[k])
