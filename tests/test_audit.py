"""The audit (unlearnkit.audit, experiments/audit.py): U-LiRA on planted numbers and on tiny shadow
models that memorised a planted set, relearning and probe tests on a planted feature, determinism,
bad input, and the attack comparison on hand-made summaries."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from unlearnkit import audit
from unlearnkit.data import Split, TensorSet, synthetic_images
from unlearnkit.experiments import audit as xa
from unlearnkit.models import build_model
from unlearnkit.train import TrainConfig, train_model


# ---------------------------------------------------------------------------- the statistic on planted φ

def planted(shift: float, n_shadows: int = 16, n_examples: int = 300, seed: int = 0):
    """φ of n_examples under n_shadows unlearned / retrained pairs; the unlearned models' φ of
    the examples they forgot is shifted by ``shift`` (0: identically distributed)."""
    rng = np.random.default_rng(seed)
    forgotten = rng.random((n_shadows, n_examples)) < 0.5
    difficulty = rng.normal(0, 2, n_examples)          # per-example offsets the attack must calibrate
    retrained = difficulty + rng.normal(0, 0.5, (n_shadows, n_examples))
    unlearned = difficulty + rng.normal(0, 0.5, (n_shadows, n_examples)) + shift * forgotten
    return unlearned, retrained, forgotten


@pytest.mark.parametrize("variance", audit.VARIANCES)
def test_shifted_members_are_found_and_identical_ones_are_not(variance):
    found = audit.ulira_attack(*planted(1.0), variance=variance)
    assert found["auc"] > 0.85 and found["tpr_at_1pct"] > 0.1
    chance = audit.ulira_attack(*planted(0.0), variance=variance)
    assert abs(chance["auc"] - 0.5) < 0.04
    assert chance["tpr_at_1pct"] < 0.03 and chance["tpr_at_0_1pct"] < 0.01
    assert found["n_members"] == found["n_nonmembers"] == planted(1.0)[2].sum()  # paired design
    assert found["n_groups"] == 16


def test_per_example_calibration_beats_a_global_threshold():
    # the planted shift (1) is small against the spread of difficulties (2): one threshold on φ
    # for all examples is close to chance, the per-example likelihood ratio is not
    from sklearn.metrics import roc_auc_score

    unlearned, retrained, forgotten = planted(1.0)
    pooled = roc_auc_score(np.r_[np.ones(forgotten.sum()), np.zeros(forgotten.sum())],
                           np.r_[unlearned[forgotten], retrained[forgotten]])
    assert pooled < 0.7 < audit.ulira_attack(unlearned, retrained, forgotten)["auc"]


def test_lira_scores_is_the_gaussian_log_ratio():
    phi = np.array([[0.0, 1.0], [2.0, 3.0], [10.0, 11.0], [12.0, 13.0]])
    member = np.array([[False, False], [False, False], [True, True], [True, True]])
    scores = audit.lira_scores(phi, member, np.array([[11.0, 12.0]]), variance="per_example")
    # in: mean 11 / 12, variance 2; out: mean 1 / 2, variance 2 -> log ratio (x-1)^2/4 - (x-11)^2/4
    assert np.allclose(scores, [[25.0, 25.0]])
    assert np.isnan(audit.lira_scores(phi[:2], member[:2], phi[:1])).all()  # no "in" sample: no score


def test_each_variance_option_is_the_documented_formula():
    # out: example 0 {0, 4}, example 1 {1, 5}; in: {10, 12} and {11, 13}; target φ 11 and 12
    phi = np.array([[0.0, 1.0], [4.0, 5.0], [10.0, 11.0], [12.0, 13.0]])
    member = np.array([[False, False], [False, False], [True, True], [True, True]])
    target = np.array([[11.0, 12.0]])
    # fixed (the reference's fix_variance): the variance of all four "in" values (ddof 0), 1.25,
    # for both sides -> (x - mu_out)^2 / 2.5 = 81 / 2.5
    assert np.allclose(audit.lira_scores(phi, member, target, variance="fixed"), [[32.4, 32.4]])
    # global: the within-example variance pooled per side, in 2 and out 8 -> log 2 + 81 / 16
    assert np.allclose(audit.lira_scores(phi, member, target, variance="global"), [[math.log(2) + 81 / 16] * 2])


@pytest.mark.parametrize("variance, expected", [
    ("global", (0.9137070908680796, 0.3247239518472395, 0.12215525114155251)),
    ("per_example", (0.9009849772912943, 0.3007222914072229, 0.029110419261104192)),
])
def test_finite_input_scores_as_before_the_input_checks(variance, expected):
    # the values the attack gave on planted(1.0) before NaN and inf were refused
    found = audit.ulira_attack(*planted(1.0), variance=variance)
    assert (found["auc"], found["tpr_at_1pct"], found["tpr_at_0_1pct"]) == pytest.approx(expected, rel=1e-12)
    assert found["n_members"] == found["n_nonmembers"] == 2409


def test_roc_metrics_reads_the_curve():
    perfect = audit.roc_metrics(np.r_[np.ones(50), np.zeros(50)], np.r_[np.ones(50), np.zeros(50)].astype(bool))
    assert perfect["auc"] == 1.0 and perfect["tpr_at_1pct"] == 1.0 and perfect["tpr_at_0_1pct"] == 1.0
    assert audit.fpr_label(0.01) == "tpr_at_1pct" and audit.fpr_label(0.001) == "tpr_at_0_1pct"
    with pytest.raises(ValueError, match="needs members and non-members"):
        audit.roc_metrics(np.ones(3), np.ones(3, dtype=bool))


def test_score_against_n_uses_the_first_shadows():
    unlearned, retrained, forgotten = planted(1.0)
    curve = audit.ulira_against_n(unlearned, retrained, forgotten, [4, 16])
    assert list(curve["n_shadows"]) == [4, 16]
    assert curve["auc"].iloc[1] == pytest.approx(audit.ulira_attack(unlearned, retrained, forgotten)["auc"])
    first4 = audit.ulira_attack(unlearned[:4], retrained[:4], forgotten[:4])
    assert curve["auc"].iloc[0] == pytest.approx(first4["auc"])
    with pytest.raises(ValueError, match=r"n in ns=17 is out of range; allowed: an int 2..16"):
        audit.ulira_against_n(unlearned, retrained, forgotten, [17])


# ---------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("fprs, error, message", [
    ((0.0,), ValueError, r"false-positive rate=0.0 is out of range; allowed: \(0, 1\)"),
    ((1.0,), ValueError, r"false-positive rate=1.0 is out of range; allowed: \(0, 1\)"),
    ((0.01, -0.5), ValueError, r"false-positive rate=-0.5 is out of range"),
    (("1%",), TypeError, "false-positive rate must be a number in"),
    ((), ValueError, "fprs is empty"),
])
def test_bad_false_positive_rate_is_refused(fprs, error, message):
    with pytest.raises(error, match=message):
        audit.ulira_attack(*planted(1.0), fprs=fprs)
    with pytest.raises(error, match=message):
        audit.ulira_against_n(*planted(1.0), [4], fprs=fprs)


@pytest.mark.parametrize("n", [1, 0, -3])
def test_fewer_than_two_shadows_are_refused(n, monkeypatch):
    monkeypatch.setattr(audit, "train_model", _no_training)
    with pytest.raises(ValueError, match=rf"n_shadows={n} is out of range; allowed: an int >= 2"):
        audit.shadow_plan(100, 10, n, seed=0)
    with pytest.raises(ValueError, match=rf"n_shadows={n} is out of range"):
        xa.sizes("smoke", n_shadows=n)
    with pytest.raises(TypeError, match="n_shadows must be an int"):
        audit.shadow_plan(100, 10, 2.5, seed=0)
    one = [a[:1] for a in planted(1.0)]
    with pytest.raises(ValueError, match="n_shadows=1 is out of range"):
        audit.ulira_attack(*one)


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_an_infinite_confidence_is_refused_by_name_and_count(value):
    unlearned, retrained, forgotten = planted(1.0)
    bad = unlearned.copy()
    bad[np.argwhere(forgotten)[0][0], np.argwhere(forgotten)[0][1]] = value
    message = r"phi_unlearned has 1 infinite \(±inf\) of 4800 entries"
    with pytest.raises(ValueError, match=message):
        audit.ulira_attack(bad, retrained, forgotten)
    with pytest.raises(ValueError, match=message):
        audit.ulira_against_n(bad, retrained, forgotten, [4])
    bad = retrained.copy()
    bad[:2, 0] = value
    with pytest.raises(ValueError, match=r"phi_retrained has 2 infinite \(±inf\) of 4800 entries"):
        audit.ulira_attack(unlearned, bad, forgotten)
    finite, member = np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[False, False], [True, True]])
    spoilt = finite.copy()
    spoilt[0, 1] = value
    with pytest.raises(ValueError, match=r"phi has 1 infinite"):
        audit.lira_scores(spoilt, member, finite[:1])
    with pytest.raises(ValueError, match=r"phi has 1 infinite"):
        audit.lira_attack(spoilt, member, [0, 1])
    with pytest.raises(ValueError, match=r"phi_target has 1 infinite"):
        audit.lira_scores(finite, member, spoilt[:1])
    with pytest.raises(ValueError, match=r"logits has 1 infinite \(±inf\) of 6 entries"):
        audit.logit_confidence(torch.tensor([[0.0, value, 1.0], [1.0, 2.0, 3.0]]), torch.tensor([0, 1]))


def test_a_nan_confidence_is_refused_by_name_and_count():
    unlearned, retrained, forgotten = planted(1.0)
    bad = unlearned.copy()
    bad[0, :2] = math.nan
    with pytest.raises(ValueError, match=r"phi_unlearned has 2 NaN of 4800 entries; drop those examples"):
        audit.ulira_attack(bad, retrained, forgotten)
    bad = retrained.copy()
    bad[3, 7] = math.nan
    with pytest.raises(ValueError, match=r"phi_retrained has 1 NaN of 4800 entries"):
        audit.ulira_against_n(unlearned, bad, forgotten, [4])
    phi, member = np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[False, False], [True, True]])
    with pytest.raises(ValueError, match=r"phi_target has 1 NaN of 2 entries"):
        audit.lira_scores(phi, member, np.array([[0.0, math.nan]]))
    with pytest.raises(ValueError, match=r"logits has 1 NaN"):
        audit.logit_confidence(torch.tensor([[0.0, math.nan]]), torch.tensor([0]))
    # in lira_attack a NaN means "takes no part", but not in an entry it is told to score
    phi = np.r_[phi, phi + 1, phi - 1]
    phi[0, 0] = math.nan
    with pytest.raises(ValueError, match=r"phi where score is True has 1 NaN of 12 entries"):
        audit.lira_attack(phi, np.tile(member, (3, 1)), [0, 0, 1, 1, 2, 2], score=np.ones((6, 2), dtype=bool))


def test_per_example_variance_needs_three_shadows():
    unlearned, retrained, forgotten = planted(1.0)
    message = r"variance='per_example' needs at least 3 shadows \(leave-one-shadow-out .* 'in' and two 'out'.*\); got 2"
    with pytest.raises(ValueError, match=message):
        audit.ulira_attack(unlearned[:2], retrained[:2], forgotten[:2], variance="per_example")
    with pytest.raises(ValueError, match=message):
        audit.ulira_against_n(unlearned, retrained, forgotten, [2, 4], variance="per_example")
    assert audit.ulira_attack(unlearned[:3], retrained[:3], forgotten[:3], variance="per_example")["n_groups"] == 3
    assert audit.ulira_attack(unlearned[:2], retrained[:2], forgotten[:2])["n_groups"] == 2     # global: 2 suffice


def _no_training(*args, **kwargs):
    raise AssertionError("trained before the bad input was refused")


def toy_problem(seed: int = 0, n: int = 90, full_class: bool = False):
    """Three Gaussian classes in 4-D; class 2 is class 0 plus a shift along the last axis (the
    planted feature). Forget: 40 of class 2's samples (the rest of the class stays in retain),
    or with ``full_class`` every class-2 sample."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.tensor([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [3.0, 0, 0, 3.0]])

    def draw(per_class):
        y = torch.arange(3).repeat_interleave(per_class)
        return TensorSet(means[y] + 0.5 * torch.randn(len(y), 4, generator=gen), y)

    train, val, test = draw(n), draw(30), draw(30)
    forget_idx = torch.nonzero(train.y == 2).squeeze(1)[: None if full_class else 40]
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[forget_idx] = False
    return Split(retain=train.subset(keep), forget=train.subset(forget_idx), test=test, num_classes=3, val=val), train


class Toy(nn.Module):
    """``head(relu(body(x · mask)))``: a zero in the mask removes an input from the features for good."""

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.float32))
        self.body, self.head = nn.Linear(4, 16), nn.Linear(16, 3)

    def features(self, x):
        return torch.relu(self.body(x * self.mask))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def toys(one_thread):
    """``(split, planted, absent)``: a model whose features carry class 2 but whose head hides
    it (its class-2 row zeroed, bias −5), and one whose features cannot carry it (the planted
    axis masked)."""
    split, train = toy_problem()
    cfg = TrainConfig(epochs=40, batch_size=32, lr=0.05, augment=False, seed=0)
    models = {}
    for name, mask in (("planted", [1, 1, 1, 1]), ("absent", [1, 1, 1, 0])):
        torch.manual_seed(0)
        models[name] = train_model(Toy(mask), train, cfg, device="cpu", progress=False)
    with torch.no_grad():
        models["planted"].head.weight[2] = 0.0
        models["planted"].head.bias[2] = -5.0
    return split, models["planted"], models["absent"]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"steps": 0}, ValueError, r"relearning steps=0 is out of range; allowed: an int >= 1"),
    ({"steps": -5}, ValueError, r"relearning steps=-5 is out of range"),
    ({"steps": 2.5}, TypeError, "relearning steps must be an int"),
    ({"lr": 0.0}, ValueError, r"relearning lr=0.0 is out of range"),
    ({"k": 0}, ValueError, r"k \(forget samples relearnt\)=0 is out of range; allowed: an int 1..39"),
    ({"k": 40}, ValueError, r"=40 is out of range; allowed: an int 1..39 \(the forget set has 40"),
])
def test_bad_relearning_budget_is_refused_before_training(kwargs, error, message, monkeypatch):
    split, _ = toy_problem()
    monkeypatch.setattr(audit, "predict", _no_training)
    monkeypatch.setattr(audit.copy, "deepcopy", _no_training)
    args = {"steps": 10, "lr": 0.1, "batch_size": 16, "k": 5, **kwargs}
    with pytest.raises(error, match=message):
        audit.relearn_test(Toy([1, 1, 1, 1]), split, seed=0, device="cpu", **args)
    if "k" not in kwargs:
        with pytest.raises(error, match=message):
            xa.sizes("smoke", **{f"relearn_{k}": v for k, v in kwargs.items()})


# ---------------------------------------------------------------------------- relearning and probe on a planted feature

def test_relearning_brings_back_a_hidden_feature_and_not_an_absent_one(toys):
    split, planted_model, absent_model = toys
    kw = dict(steps=30, lr=0.1, batch_size=32, k=8, seed=0, device="cpu")
    # retain data only: the rest of class 2 is in retain (a random-subset forget set)
    hidden = audit.relearn_test(planted_model, split, **kw)
    absent = audit.relearn_test(absent_model, split, **kw)
    assert hidden["fa_before"] < 0.1                      # the head hides the class
    assert hidden["relearn_fa"] > 0.9 and absent["relearn_fa"] < 0.6
    # k forget samples: the whole class was forgotten, retain has none of it
    full, _ = toy_problem(full_class=True)
    hidden, absent = (audit.relearn_test(m, full, **kw) for m in (planted_model, absent_model))
    assert hidden["fa_before"] < 0.1 and hidden["relearn_fa"] < 0.1    # nothing in retain brings it back
    assert hidden["relearn_fa_k"] > 0.9 and absent["relearn_fa_k"] < 0.6
    assert planted_model.head.bias[2] == -5.0              # the model tested is untouched


def test_the_probe_reads_a_hidden_feature_and_not_an_absent_one(toys):
    split, planted_model, absent_model = toys
    assert audit.probe_fa(planted_model, split, device="cpu", seed=0) > 0.9
    assert audit.probe_fa(absent_model, split, device="cpu", seed=0) < 0.75


def test_probe_trains_on_held_out_data_of_every_class():
    split, _ = toy_problem()
    extra = TensorSet(torch.zeros(5, 4), torch.full((5,), 2))
    with_ft = Split(retain=split.retain, forget=split.forget, test=split.test, num_classes=3, val=split.val,
                    forget_test=extra)
    assert len(audit.probe_data(split)) == len(split.val)
    assert len(audit.probe_data(with_ft)) == len(split.val) + 5


def test_relearning_and_probe_are_deterministic(toys):
    split, planted_model, _ = toys
    kw = dict(steps=10, lr=0.1, batch_size=16, k=4, seed=3, device="cpu")
    assert audit.relearn_test(planted_model, split, **kw) == audit.relearn_test(planted_model, split, **kw)
    a = audit.relearn(planted_model, split.retain, steps=5, lr=0.1, batch_size=16, seed=1, device="cpu")
    b = audit.relearn(planted_model, split.retain, steps=5, lr=0.1, batch_size=16, seed=1, device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert audit.probe_fa(planted_model, split, device="cpu", seed=2) == audit.probe_fa(planted_model, split,
                                                                                        device="cpu", seed=2)


# ---------------------------------------------------------------------------- U-LiRA end to end on tiny shadows

def memorising_pool(n_targets: int = 24):
    """Synthetic 16x16 images whose target examples carry a random wrong label: a model that
    trained on them memorised them, a model that did not calls them by their class."""
    data = synthetic_images(num_classes=4, n_per_class=24, n_test_per_class=6, size=16, seed=0)
    pool = data.train
    targets_seed = 5
    plan = audit.shadow_plan(len(pool), n_targets, 8, seed=targets_seed)
    y = pool.y.clone()
    gen = torch.Generator().manual_seed(1)
    y[plan.targets] = (y[plan.targets] + torch.randint(1, 4, (n_targets,), generator=gen)) % 4
    return TensorSet(pool.x, y), data.test, plan


@pytest.fixture(scope="module")
def tiny_shadows(one_thread):
    pool, test, plan = memorising_pool()
    recipe = TrainConfig(epochs=30, batch_size=16, lr=0.05, augment=False, seed=0)

    def build():
        return build_model("small_cnn", 4, in_channels=3, image_size=16)

    shadows = audit.train_shadows(pool, plan, build, recipe, test=test, num_classes=4, device="cpu")
    return shadows, build, recipe


def test_ulira_flags_a_model_that_memorised_and_not_two_trained_without(tiny_shadows):
    shadows, build, recipe = tiny_shadows
    phi_r = audit.retrained_phi(shadows, device="cpu")
    forgotten = shadows.plan.forgotten.numpy()
    kept, _ = audit.unlearned_phi(shadows, "original", device="cpu")       # "unlearning" that did nothing
    assert audit.ulira_attack(kept, phi_r, forgotten)["auc"] > 0.85

    def retrain_again(original, split, seed):                             # a second model trained without them
        torch.manual_seed(seed + 17)
        from dataclasses import replace
        return train_model(build(), split.retain, replace(recipe, seed=seed + 17), device="cpu", progress=False)

    again, _ = audit.unlearned_phi(shadows, retrain_again, device="cpu", seed=1)
    assert abs(audit.ulira_attack(again, phi_r, forgotten)["auc"] - 0.5) < 0.15


def test_shadow_plan_is_seeded_and_extends():
    a, b = audit.shadow_plan(100, 10, 4, seed=2), audit.shadow_plan(100, 10, 4, seed=2)
    assert torch.equal(a.halves, b.halves) and torch.equal(a.targets, b.targets)
    assert (a.halves.sum(1) == 50).all() and a.forgotten.shape == (4, 10)
    more = audit.shadow_plan(100, 10, 6, seed=2)
    assert torch.equal(more.halves[:4], a.halves)                           # more shadows keep the first
    assert not torch.equal(audit.shadow_plan(100, 10, 4, seed=3).halves, a.halves)


def test_shadows_are_deterministic(tiny_shadows):
    shadows, build, recipe = tiny_shadows
    pool, test, plan = memorising_pool()
    first = audit.ShadowPlan(plan.halves[:1], plan.targets, plan.seed)
    again = audit.train_shadows(pool, first, build, recipe, test=test, num_classes=4, device="cpu")
    for trained, retrained in ((shadows.originals[0], again.originals[0]), (shadows.retrained[0], again.retrained[0])):
        for p, q in zip(trained.state_dict().values(), retrained.state_dict().values()):
            assert torch.equal(p, q)


# ---------------------------------------------------------------------------- the attack comparison

def summary_rows() -> pd.DataFrame:
    """A chapter-4-like summary of one task: Original, Retrain and three methods."""
    methods = ["original", "retrain", "a", "b", "c"]
    frame = pd.DataFrame({
        "task": "random_subset", "method": methods, "label": ["Original", "Retrain", "A", "B", "C"],
        "forgetting_score": [0.4, 0.0, 0.04, 0.2, 0.3], "mia_loss_logreg": [0.7, 0.5, 0.52, 0.6, 0.65],
        "mia_efficacy_svc": [0.1, 0.5, 0.48, 0.3, 0.2], "mia_entropy_logreg": [0.9, 0.5, 0.52, 0.7, 0.8],
        "ulira_auc": [0.9, math.nan, 0.52, 0.8, 0.7], "ulira_tpr_at_1pct": [0.3, math.nan, 0.012, 0.2, 0.1],
        "ulira_tpr_at_0_1pct": [0.1, math.nan, 0.001, 0.05, 0.02],
        "relearn_fa": [0.9, 0.8, 0.82, 0.95, 0.6], "relearn_fa_k": [0.9, 0.8, 0.8, 0.9, 0.7],
        "probe_fa": [0.9, 0.8, 0.81, 0.9, 0.79]})
    return frame


def test_rankings_read_each_attack_its_way():
    ranks = xa.attack_rankings(summary_rows(), "random_subset", "paper")
    assert ranks.loc["A", "mia_loss_logreg"] == 2 and ranks.loc["Retrain", "mia_loss_logreg"] == 1
    assert ranks.loc["Retrain", "mia_efficacy_svc"] == 1                     # higher efficacy = more forgetting
    assert math.isnan(ranks.loc["Retrain", "ulira_auc"]) and ranks.loc["A", "ulira_auc"] == 1
    closeness = xa.attack_rankings(summary_rows(), "random_subset", "retrain")
    # Retrain has no U-LiRA value: its target is chance (AUC 0.5), so A (0.52) is closest, Original (0.9) last
    assert list(closeness["ulira_auc"].drop("Retrain")) == [4, 1, 3, 2]
    assert closeness.loc["Retrain", "relearn_fa"] == 1


def test_agreement_covers_every_pair_and_flips_name_the_attacks():
    agreement = xa.attack_rank_agreement(summary_rows())
    n = len(xa.ATTACKS)
    assert len(agreement) == 2 * n * (n - 1) // 2
    row = agreement[(agreement["pair"] == "mia_loss_logreg vs mia_entropy_logreg") & (agreement["convention"] == "paper")]
    assert row["rho"].iloc[0] == pytest.approx(1.0)
    flips = xa.verdict_flips(summary_rows(), tol=0.05).set_index("method")
    assert list(flips.index) == ["a", "b", "c"]
    assert flips.loc["a", "ulira_auc"] and flips.loc["a", "relearn_fa"] and not flips.loc["a", "flips"]
    assert flips.loc["c", "probe_fa"] and not flips.loc["c", "relearn_fa"] and flips.loc["c", "flips"]
    assert not flips.loc["c", "ulira_tpr_at_0_1pct"]        # 2 % at 0.1 % FPR is far from chance
    assert "probe_fa" in flips.loc["c", "like_retrain"]


def test_with_audit_joins_the_seed_means():
    summary = summary_rows().drop(columns=list(xa.COLUMNS))
    table = pd.DataFrame({"problem": "p", "task": "cifar10", "scenario": "random_subset", "seed": [0, 1],
                          "method": "a", "label": "A", "ulira_auc": [0.6, 0.8], "ulira_tpr_at_1pct": 0.1,
                          "ulira_tpr_at_0_1pct": 0.01, "relearn_fa": 0.5, "relearn_fa_k": 0.6, "probe_fa": 0.7})
    joined = xa.with_audit(summary, table).set_index("method")
    assert joined.loc["a", "ulira_auc"] == pytest.approx(0.7) and math.isnan(joined.loc["b", "probe_fa"])


def test_every_profile_has_valid_sizes_with_a_reason_per_line():
    from unlearnkit.config import with_changes

    for profile in ("smoke", "cpu", "paper"):
        cfg = xa.sizes(profile)
        assert cfg.n_shadows >= 16 and max(cfg.curve) == cfg.n_shadows
        assert all(row["why"] for row in xa.profile_changes(profile))
        small = with_changes(cfg, {k: v for k, v in xa.DRY_RUN.items() if getattr(cfg, k) != v.value})
        assert small.n_shadows == 2 and small.relearn_steps == 2
    assert xa.sizes("cpu", n_shadows=32, curve=(16, 32)).n_shadows == 32


def test_relearn_probe_rows_cover_the_picked_models_and_are_cached(toys, tmp_path, monkeypatch):
    from unlearnkit.experiments.harness import Problem

    split, planted_model, absent_model = toys
    problem = Problem(task="toy", scenario="random_subset", seed=0, split=split, original=planted_model,
                      retrained=absent_model, retrain_seconds=1.0, retrain_epochs=1, models=[], key={"toy": 1})
    rows = pd.DataFrame([{"problem": problem.name, "task": "toy", "scenario": "random_subset", "seed": 0,
                          "method": m, "label": m.title(), "pick": "reference", "run_path": ""}
                         for m in ("original", "retrain")])
    cfg = xa.sizes("smoke", relearn_steps=20, relearn_lr=0.1, relearn_k=8)
    table = xa.relearn_probe_rows([problem], rows, profile="smoke", device="cpu", cfg=cfg, cache_dir=tmp_path)
    assert list(table["method"]) == ["original", "retrain"]
    assert set(xa.KEYS) | {"relearn_fa", "relearn_fa_k", "probe_fa", "fa_before"} <= set(table)
    kept, retrained = table.set_index("method").loc[["original", "retrain"], "probe_fa"]
    assert kept > 0.9 > 0.75 > retrained                                   # the planted and the absent feature
    monkeypatch.setattr(audit, "relearn_test", _no_training)               # a rebuild reads the cache
    pd.testing.assert_frame_equal(table, xa.relearn_probe_rows([problem], rows, profile="smoke", device="cpu",
                                                               cfg=cfg, cache_dir=tmp_path))


def test_shadow_runs_take_the_rule_pick_on_the_random_subset_and_the_shadow_budget():
    rows = pd.DataFrame([
        {"method": "finetune", "pick": "rule", "scenario": "full_class", "settings": '{"lr": 0.03}'},
        {"method": "finetune", "pick": "rule", "scenario": "random_subset", "settings": '{"lr": 0.003}'},
        {"method": "finetune", "pick": "grid", "scenario": "random_subset", "settings": '{"lr": 0.3}'}])
    settings = xa._method_settings(rows, "finetune", retrain_epochs=8)
    assert settings == {"epochs": 0.5, "lr": 0.003}                         # FT: 10 of 160 epochs, scaled to 8


def test_the_guide_picks_the_method_closest_to_retraining():
    guide = xa.guide_rows(summary_rows()).set_index("question")
    assert guide.loc["ulira", "method"] == "a" and guide.loc["ulira", "target"] == 0.5
    assert guide.loc["relearn", "method"] == "a" and guide.loc["probe", "method"] == "a"
    assert "**A**" in guide.loc["probe", "sentence"]
