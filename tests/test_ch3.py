"""Chapter 3 experiment code: config validation, the contribution check, the sub-class path,
the ablation runs and the no-stopping-rule curve (tiny inputs)."""

import math
import pickle

import numpy as np
import pytest
import torch

from unlearnkit.experiments import ch3, harness, tasks
from unlearnkit.experiments.tasks import ImageTask
from unlearnkit.metrics import avg_gap
from unlearnkit.models import build_model
from unlearnkit.sensitivity import class_sensitivity_norms
from unlearnkit.train import TrainConfig, train_model

TINY = ch3.TheoryConfig(n_train=5, hidden=6, num_classes=3, steps=4, lr=0.5)


def test_profile_configs_build_and_bad_values_are_refused_before_work():
    for profile in ("smoke", "cpu", "paper"):
        cfg = ch3.profile_config(profile)
        assert cfg.methods == ch3.METHODS and cfg.methods[-1] == "mumis"
        assert "full_class" in cfg.problems
    assert set(ch3.METHODS) == set(ch3.METHOD_LABELS) - {"retrain"}  # Retrain is the reference row
    assert ch3.profile_config("paper").problems[-1] == "sub_class"
    assert "sub_class" not in ch3.profile_config("cpu").problems
    with pytest.raises(ValueError, match="unknown profile 'laptop'"):
        ch3.profile_config("laptop")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['epochs'\] for Ch3Config"):
        ch3.profile_config("smoke", epochs=3)
    with pytest.raises(ValueError, match=r"ablation delta=0.5 is out of range"):
        ch3.profile_config("smoke", ablation_deltas=(0.5,))
    with pytest.raises(ValueError, match="methods must include 'mumis'"):
        ch3.profile_config("smoke", methods=("finetune", "salun"))
    with pytest.raises(ValueError, match="unknown unlearning method 'magic'"):
        ch3.profile_config("smoke", methods=("finetune", "mumis", "magic"))
    with pytest.raises(ValueError, match="problems must include 'full_class'"):
        ch3.profile_config("smoke", problems=("random_subset",))
    with pytest.raises(ValueError, match="unknown problem 'identity'"):
        ch3.profile_config("smoke", problems=("full_class", "identity"))
    with pytest.raises(ValueError, match=r"unbounded_every=0 is out of range"):
        ch3.profile_config("smoke", unbounded_every=0)
    with pytest.raises(ValueError, match=r"lr=0 is out of range"):
        ch3.TheoryConfig(lr=0)


def test_contribution_check_matches_finite_differences_through_training():
    v = ch3.contribution_check(TINY, input_dim=4, seed=3)
    gen = torch.Generator().manual_seed(3)  # rebuild the same problem to perturb one input
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (5,), generator=gen)
    w0 = {"w1": torch.randn(6, 4, generator=gen, dtype=torch.float64) / 2, "b1": torch.zeros(6, dtype=torch.float64),
          "w2": torch.randn(3, 6, generator=gen, dtype=torch.float64) / 6 ** 0.5, "b2": torch.zeros(3, dtype=torch.float64)}

    def fitted_logit(x_train, i):
        params = w0
        for _ in range(TINY.steps):
            params = ch3._gd_step(params, x_train, y, TINY.lr)
        return ch3._mlp(params, x[i:i + 1])[0, y[i]]

    direction = torch.randn(4, generator=gen, dtype=torch.float64)
    eps = 1e-6
    for i in (0, 2):
        bumped = x.clone()
        bumped[i] += eps * direction
        lowered = x.clone()
        lowered[i] -= eps * direction
        numeric = (fitted_logit(bumped, i) - fitted_logit(lowered, i)) / (2 * eps)
        assert float(v["contribution"][i] @ direction) == pytest.approx(float(numeric), rel=1e-5, abs=1e-9)


def test_kernel_term_equals_self_term_for_one_hidden_layer_and_linearisation_is_first_order():
    v = ch3.contribution_check(TINY, input_dim=4, seed=0)
    torch.testing.assert_close(v["kernel"], v["self"])  # Θ(x, x') = Θ(x', x) entrywise here
    torch.testing.assert_close(v["curvature"] + v["kernel"], v["direct"])
    small = ch3.TheoryConfig(n_train=5, hidden=6, num_classes=3, steps=4, lr=1e-3)
    w = ch3.contribution_check(small, input_dim=4, seed=0)
    change = w["sens_trained"] - w["sens_init"]
    assert (w["linear"] - change).norm() / change.norm() < 5e-3  # first order: O(η²) apart
    links = ch3.contribution_links(v)
    assert links.loc["kernel term A vs self term S (symmetry of Θ)", "cosine"] == pytest.approx(1.0)
    assert links["cosine"].between(-1 - 1e-9, 1 + 1e-9).all()


def test_sensitivity_observations_columns_are_consistent():
    torch.manual_seed(0)
    model = build_model("small_cnn", 3, image_size=8).eval()
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    from unlearnkit.data import TensorSet

    frame = ch3.sensitivity_observations({"m": model}, {"s": TensorSet(x, y)}, n=6, seed=0, device="cpu")
    norms = class_sensitivity_norms(model, x.float() / 255)
    target = norms[torch.arange(6), y]
    np.testing.assert_allclose(frame["target"], target.numpy(), rtol=1e-5)
    np.testing.assert_allclose(frame["irrelevant"], ((norms.sum(1) - target) / 2).numpy(), rtol=1e-5)
    np.testing.assert_allclose(frame["gap"], frame["target"] - frame["irrelevant"])


def test_ratio_verdict():
    assert ch3.ratio_verdict(20, reproduced_at=10, partly_at=2) == "reproduced"
    assert ch3.ratio_verdict(3, reproduced_at=10, partly_at=2) == "partly"
    assert ch3.ratio_verdict(1, reproduced_at=10, partly_at=2) == "not reproduced"
    with pytest.raises(ValueError):
        ch3.ratio_verdict(1, reproduced_at=2, partly_at=10)


def write_cifar100(root, per_class=(12, 4)):
    """Generated CIFAR-100 pickles (4 fine classes in 2 superclasses, 'rocket' among them)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine_names, coarse_names, fine_to_coarse = ["apple", "bus", "rocket", "tulip"], ["fruit", "vehicles 2"], [0, 1, 1, 0]
    rng = np.random.default_rng(0)
    for part, count in zip(("train", "test"), per_class):
        fine = [c for c in range(4) for _ in range(count)]
        entry = {"data": rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8), "fine_labels": fine,
                 "coarse_labels": [fine_to_coarse[c] for c in fine]}
        (folder / part).write_bytes(pickle.dumps(entry))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": fine_names, "coarse_label_names": coarse_names}))


def test_sub_class_path_runs_on_generated_cifar100(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    write_cifar100(tmp_path)
    task = ImageTask("cifar100", "small_cnn", TrainConfig(epochs=1, batch_size=16, lr=0.05, augment=False),
                     val_fraction=0.0)
    monkeypatch.setattr(tasks, "cifar20_task", lambda: task)  # the paper's ResNet-18 recipe, shrunk
    problem = tasks.build(tasks.spec("sub_class", "paper", seed=0, root=tmp_path), device="cpu")
    assert (problem.task, problem.scenario, problem.name) == ("cifar20", "sub_class", "cifar20/sub_class")
    split = problem.split
    assert split.num_classes == 2 and split.info["superclass"] == "vehicles 2"
    # the forgotten sub-class leaves the training data; its superclass stays a label
    assert len(split.forget) == 12 and (split.forget.y == split.forget.y[0]).all()
    with torch.no_grad():
        logits = problem.original(split.forget.x[:2].float() / 255)
    assert logits.shape == (2, 2), "the original is trained on the superclass labels"
    assert [m["role"] for m in problem.models] == ["original", "retrained"]
    assert all(not m["cache_hit"] and 0 <= m["test_accuracy"] <= 1 and m["task"] == "cifar20"
               for m in problem.models)
    assert problem.retrain_epochs == 1 and problem.retrain_seconds > 0
    again = tasks.build(tasks.spec("sub_class", "paper", seed=0, root=tmp_path), device="cpu")
    assert [m["cache_hit"] for m in again.models] == [True, True]  # cached by the first call
    assert again.key == problem.key
    rows = harness.run_methods(problem, {"mumis": {"max_epochs": 1}}, profile="smoke", device="cpu")
    assert list(rows["method"]) == ["original", "retrain", "mumis"]
    assert rows[["RA", "FA", "TA"]].apply(lambda c: c.between(0, 1)).all().all()
    assert rows.set_index("method").loc["retrain", "avg_gap"] == 0


@pytest.fixture(scope="module")
def small_problem():
    from unlearnkit.data import make_split

    split = make_split("synthetic-images", "full_class", forget_class=0, seed=0, val_fraction=0.0,
                       load_kw={"num_classes": 3, "n_per_class": 16, "n_test_per_class": 6, "size": 8})
    torch.manual_seed(0)
    model = train_model(build_model("small_cnn", 3, image_size=8), split.train,
                        TrainConfig(epochs=3, batch_size=16, lr=0.05, augment=False), device="cpu", progress=False)
    torch.manual_seed(1)
    retrained = train_model(build_model("small_cnn", 3, image_size=8), split.retain,
                            TrainConfig(epochs=3, batch_size=16, lr=0.05, augment=False), device="cpu", progress=False)
    return harness.Problem(task="synthetic-images", scenario="full_class", seed=0, split=split,
                           original=model.eval(), retrained=retrained.eval(), retrain_seconds=1.0,
                           retrain_epochs=3, models=[], key={"test": "ch3-small-problem"})


def test_mumis_config_is_budget_then_pick_then_changes(small_problem):
    budget = harness.budget_settings("mumis", 3)
    assert ch3.mumis_config("smoke", small_problem, {}).max_epochs == pytest.approx(budget["max_epochs"])
    cfg = ch3.mumis_config("smoke", small_problem, {"lr": 0.1, "max_epochs": 2}, lr=0.2)
    assert (cfg.lr, cfg.max_epochs) == (0.2, 2)
    with pytest.raises(ValueError, match="delta"):
        ch3.mumis_config("smoke", small_problem, {"delta": 0.5})


def test_ablation_changes_one_knob_at_a_time(small_problem, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path))
    cfg = ch3.profile_config("smoke", ablation_deltas=(1.3, 2.0), ablation_lr_factors=(1.0, 3.0))
    pick = {"lr": 0.01, "batch_size": 8, "max_epochs": 1, "delta": 1.3}
    table = ch3.mumis_ablation(cfg, small_problem, pick, device="cpu")
    # δ = 1.3 and lr × 1 repeat the default, so they are not run again
    assert list(zip(table["knob"], table["value"])) == [("default", ""), ("terms", "target"),
                                                        ("terms", "irrelevant"), ("delta", "2.0"),
                                                        ("lr", "3× = 0.03")]
    reference = harness.measure(small_problem.retrained, small_problem, seed=0, device="cpu", retain_eval=None)
    for _, row in table.iterrows():
        assert row["avg_gap"] == pytest.approx(avg_gap(row, reference))
        assert 0 <= row["FA"] <= 1 and row["steps"] >= 0 and row["seconds"] > 0
    # the original is never modified by the runs
    first = ch3.mumis_ablation(cfg, small_problem, pick, device="cpu")
    assert first["FA"].tolist() == table["FA"].tolist()


def test_unbounded_curve_steps_and_decreasing_loss(small_problem):
    cfg = ch3.profile_config("smoke", unbounded_steps=4, unbounded_every=2)
    curve = ch3.unbounded_curve(cfg, small_problem, {"lr": 50.0, "batch_size": 8}, device="cpu")
    assert list(curve["step"]) == [0, 2, 4]
    assert curve["loss"].iloc[-1] < curve["loss"].iloc[0]
    assert curve["ratio"].iloc[0] == 1.0 and curve["ratio"].iloc[-1] > 1.0
    assert curve[["TA", "FA"]].apply(lambda c: c.between(0, 1)).all().all()


def test_unbounded_curve_stops_at_the_first_non_finite_loss(small_problem, monkeypatch):
    real = ch3.mumis_loss
    calls = []

    def overflowing(*args, **kwargs):  # the recorded loss overflows from its second reading on
        out = real(*args, **kwargs)
        calls.append(1)
        return out._replace(loss=out.loss * float("nan")) if len(calls) > 1 else out

    monkeypatch.setattr(ch3, "mumis_loss", overflowing)
    cfg = ch3.profile_config("smoke", unbounded_steps=8, unbounded_every=2)
    curve = ch3.unbounded_curve(cfg, small_problem, {"lr": 0.01, "batch_size": 8}, device="cpu")
    assert list(curve["step"]) == [0, 2], "the run must stop once the loss is not finite"
    assert math.isfinite(curve["loss"].iloc[0]) and math.isnan(curve["loss"].iloc[-1])


def test_step_time_ratio_reports_both_timings(small_problem):
    model, split = small_problem.original, small_problem.split
    bench = ch3.step_time_ratio(model, split.forget, 3, batch=4, repeats=1, device="cpu")
    assert bench["plain_s"] > 0 and bench["mumis_s"] > 0
    assert bench["ratio"] == pytest.approx(bench["mumis_s"] / bench["plain_s"])


def test_comparison_findings_are_the_means_over_seeds_of_the_main_rows():
    import pandas as pd

    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for method, gap, fraction in (("original", 0.30, float("nan")), ("retrain", 0.0, 1.0),
                                      ("mumis", 0.05 + shift, 0.01), ("finetune", 0.08, 0.1), ("neggrad", 0.04, 0.05)):
            rows.append({"scenario": "full_class", "problem": "cifar10 full", "seed": seed, "method": method,
                         "RA": 0.9, "FA": 0.1 + shift, "TA": 0.8, "avg_gap": gap, "seconds": 10.0 * (1 + seed),
                         "time_fraction": fraction})
    found = ch3.comparison_findings(pd.DataFrame(rows))
    assert found["full_class_mumis_avg_gap"] == pytest.approx(6.0)      # mean of 5 and 7 points
    assert found["full_class_mumis_FA"] == pytest.approx(11.0)
    assert found["full_class_mumis_seconds"] == pytest.approx(15.0)     # seconds are not scaled
    assert found["full_class_speedup"] == pytest.approx(100.0)
    assert found["full_class_best_baseline"] == "NegGrad"
    assert found["full_class_best_baseline_gap"] == pytest.approx(4.0)
    assert found["full_class_mumis_beats_baselines"] is False           # NegGrad's 4 points < MU-Mis's 6


def test_theory_findings_read_the_smallest_and_largest_width():
    import pandas as pd

    cfg = ch3.profile_config("paper")
    first, last = cfg.theory_dims[0], cfg.theory_dims[-1]
    assert first < last
    rows = [{"link": link, "d": d, "cosine": 0.5 + 0.1 * (d == last), "norm ratio": 2.0 + (d == last),
             "train_acc": 0.9 if d == first else 1.0}
            for link in dict.fromkeys(ch3.THEORY_LINKS.values()) for d in cfg.theory_dims]
    found = ch3.theory_findings(pd.DataFrame(rows), cfg)
    assert (found["theory_first_d"], found["theory_last_d"]) == (first, last)
    assert found["theory_cg_cos_first"] == pytest.approx(0.5) and found["theory_cg_cos_last"] == pytest.approx(0.6)
    assert found["theory_init_ratio_last"] == pytest.approx(3.0) and found["theory_train_acc_min"] == pytest.approx(90)
    assert found["theory_n"] == cfg.theory.n_train and found["theory_steps"] == cfg.theory.steps


def test_observation_findings_are_medians_and_shares_per_model_and_set():
    import pandas as pd

    rows = [{"model": model, "set": part, "target": target + k, "irrelevant": 1.0 + k, "gap": target - 1.0}
            for model, target in (("initialisation", 0.5), ("original", 4.0), ("retrained", 2.0))
            for part in ("retain", "forget", "test") for k in (0.0, 1.0, 2.0)]
    obs = pd.DataFrame(rows)
    full = pd.DataFrame({"model": ["original", "original", "retrained"], "gap": [1.0, 3.0, 0.5]})
    found = ch3.observation_findings(obs, full)
    assert found["sens_init_median"] == pytest.approx(1.5) and found["sens_trained_median"] == pytest.approx(5.0)
    assert found["sens_trained_vs_init"] == pytest.approx(5.0 / 1.5)
    assert found["above_train_pct"] == 100 and found["above_init_pct"] == 0
    assert found["gap_forget_retrained"] == pytest.approx(1.0) and found["gap_full_original"] == pytest.approx(2.0)


def test_ablation_and_unbounded_findings():
    import pandas as pd

    ablation = pd.DataFrame([{"knob": "default", "value": "", "FA": 0.1, "TA": 0.8, "avg_gap": 0.02},
                             {"knob": "terms", "value": "target", "FA": 0.3, "TA": 0.7, "avg_gap": 0.05},
                             {"knob": "terms", "value": "irrelevant", "FA": 0.9, "TA": 0.85, "avg_gap": 0.2},
                             {"knob": "delta", "value": 2.0, "FA": 0.0, "TA": 0.1, "avg_gap": 0.5}])
    found = ch3.ablation_findings(ablation)
    assert found == pytest.approx({"ablate_both_FA": 10, "ablate_both_TA": 80, "ablate_both_gap": 2,
                                   "ablate_target_FA": 30, "ablate_target_TA": 70, "ablate_target_gap": 5,
                                   "ablate_irrelevant_FA": 90, "ablate_irrelevant_TA": 85, "ablate_irrelevant_gap": 20})
    curve = pd.DataFrame({"step": [0, 10, 20], "loss": [1.0, -5.0, float("-inf")], "TA": [0.8, 0.6, 0.1],
                          "ratio": [1.0, 3.0, float("nan")]})
    found = ch3.unbounded_findings(curve)
    assert found["unbounded_steps"] == 10 and found["unbounded_loss_end"] == -5.0
    assert found["unbounded_ta_end"] == pytest.approx(60) and found["unbounded_fate"].startswith("by step 20 it overflowed")
    assert ch3.unbounded_findings(curve.iloc[:2])["unbounded_fate"] == "it keeps falling"
