"""Metrics: attacks on planted signals, closed-form scores, validation errors.

An ``nn.Identity`` "model" on float rows lets each test plant the logits it needs.
"""

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.data.core import Split, TensorSet
from unlearnkit.metrics import (Timer, accuracy, avg_gap, balance, evaluate_split, forgetting_score,
                                mia_efficacy_svc, mia_entropy_logreg, mia_loss_logreg, nomus, per_sample_loss,
                                softmax_outputs)

IDENTITY = nn.Identity()  # logits = the stored rows


def logit_set(n, confidence, seed, num_classes=4, noise=1.0) -> TensorSet:
    """Rows of logits: ``confidence`` on the true class plus Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, num_classes, (n,), generator=g)
    logits = noise * torch.randn(n, num_classes, generator=g) + confidence * F.one_hot(y, num_classes)
    return TensorSet(logits, y)


def test_outputs_of_a_planted_model():
    data = TensorSet(torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]), torch.tensor([0, 0, 0]))
    assert accuracy(IDENTITY, data, device="cpu") == pytest.approx(2 / 3)
    probs = softmax_outputs(IDENTITY, data, device="cpu")
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    torch.testing.assert_close(per_sample_loss(IDENTITY, data, device="cpu"), -probs[:, 0].log())


def test_loss_mia_separable_losses_give_accuracy_one():
    rng = np.random.default_rng(0)
    assert mia_loss_logreg(rng.uniform(0, 0.1, 500), rng.uniform(1, 2, 500)) > 0.99


def test_loss_mia_identical_distributions_give_chance_even_when_unbalanced():
    rng = np.random.default_rng(1)
    # 100 vs 2000: an unbalanced attack would score ~0.95 by always answering "non-member"
    score = mia_loss_logreg(rng.exponential(1.0, 100), rng.exponential(1.0, 2000), seed=3)
    assert abs(score - 0.5) < 0.12


def test_loss_mia_is_seeded():
    rng = np.random.default_rng(2)
    a, b = rng.exponential(1.0, 300), rng.exponential(1.3, 900)
    assert mia_loss_logreg(a, b, seed=5) == mia_loss_logreg(a, b, seed=5)


@pytest.mark.parametrize("members,nonmembers,match", [
    (np.ones(3), np.ones(3), "too few samples"),
    (np.array([0.1, np.nan] * 20), np.ones(40), "NaN"),
    (np.ones((20, 2)), np.ones(40), "1-D"),
])
def test_loss_mia_rejects_bad_input(members, nonmembers, match):
    with pytest.raises(ValueError, match=match):
        mia_loss_logreg(members, nonmembers)


def test_balance_subsamples_the_larger_side_without_replacement():
    a, b = balance(np.arange(10.0), np.arange(100.0, 200.0), seed=0)
    assert len(a) == len(b) == 10 and len(set(b)) == 10 and set(b) <= set(np.arange(100.0, 200.0))


def test_svc_efficacy_and_entropy_attack_on_planted_confidence():
    retain = logit_set(600, confidence=8.0, seed=0)   # members: confident, low entropy
    test = logit_set(300, confidence=0.5, seed=1)     # non-members: unsure, high entropy
    looks_member = logit_set(200, confidence=8.0, seed=2)
    looks_unseen = logit_set(200, confidence=0.5, seed=3)
    args = dict(device="cpu", seed=0)
    assert mia_efficacy_svc(IDENTITY, retain, test, looks_member, **args) < 0.1
    assert mia_efficacy_svc(IDENTITY, retain, test, looks_unseen, **args) > 0.9
    assert mia_entropy_logreg(IDENTITY, retain, test, looks_member, **args) > 0.9
    assert mia_entropy_logreg(IDENTITY, retain, test, looks_unseen, **args) < 0.1


@pytest.mark.parametrize("mia,expected", [(0.5, 0.0), (1.0, 1.0), (0.0, 1.0), (0.75, 0.5), (0.4, 0.2)])
def test_forgetting_score(mia, expected):
    assert forgetting_score(mia) == pytest.approx(expected)


@pytest.mark.parametrize("test_acc,mia,expected", [
    (0.633, 0.692, 0.6245),   # DLFD age, original: 0.5 * (0.633 + 1 - 0.384)
    (0.608, 0.555, 0.749),    # DLFD age, retrained: 0.5 * (0.608 + 1 - 0.110)
    (1.0, 0.5, 1.0),
    (0.0, 1.0, 0.0),
])
def test_nomus_hand_computed(test_acc, mia, expected):
    assert nomus(test_acc, mia) == pytest.approx(expected)


@pytest.mark.parametrize("call,match", [
    (lambda: nomus(63.3, 0.6), "test_acc=63.3"),
    (lambda: nomus(0.6, 1.2), "mia=1.2"),
    (lambda: forgetting_score(-0.1), "mia=-0.1"),
])
def test_scores_reject_values_outside_unit_interval(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call,match", [
    (lambda: forgetting_score(float("nan")), "mia is NaN"),
    (lambda: forgetting_score(np.float64("nan")), "mia is NaN"),
    (lambda: nomus(float("nan"), 0.6), "test_acc is NaN"),
    (lambda: nomus(0.6, float("nan")), "mia is NaN"),
])
def test_scores_reject_nan_by_name(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_avg_gap_mu_mis_table_1():
    mu_mis = {"RA": 76.42, "FA": 0.0, "TA": 75.64}
    retrain = {"RA": 76.52, "FA": 0.0, "TA": 75.76}
    assert avg_gap(mu_mis, retrain) == pytest.approx((0.10 + 0.0 + 0.12) / 3)
    assert avg_gap(mu_mis, retrain, keys=("FA",)) == 0.0
    with pytest.raises(KeyError, match="missing"):
        avg_gap({"RA": 1.0}, retrain)


def test_evaluate_split_uses_unseen_as_non_members_and_reports_fractions():
    forget = logit_set(200, confidence=8.0, seed=2)
    split = Split(retain=logit_set(400, 8.0, 0), forget=forget, test=logit_set(300, 0.5, 1), num_classes=4,
                  unseen=logit_set(200, 8.0, 4), forget_test=logit_set(50, 0.5, 5))
    out = evaluate_split(IDENTITY, split, device="cpu")
    assert {"RA", "FA", "TA", "FTA", "mia_loss_logreg", "mia_efficacy_svc", "mia_entropy_logreg",
            "forgetting_score", "nomus"} <= set(out)
    assert all(0.0 <= out[k] <= 1.0 for k in out if k != "n_retain_eval")
    assert out["FA"] == pytest.approx(accuracy(IDENTITY, forget, device="cpu"))
    assert abs(out["mia_loss_logreg"] - 0.5) < 0.15  # unseen looks like forget: chance
    no_unseen = evaluate_split(IDENTITY, Split(split.retain, forget, split.test, 4), device="cpu")
    assert no_unseen["mia_loss_logreg"] > 0.9 and "FTA" not in no_unseen  # test looks different
    assert no_unseen["nomus"] == pytest.approx(nomus(no_unseen["TA"], no_unseen["mia_loss_logreg"]))


def test_evaluate_split_retain_sample():
    split = Split(logit_set(400, 8.0, 0), logit_set(100, 8.0, 2), logit_set(100, 0.5, 1), 4)
    assert evaluate_split(IDENTITY, split, device="cpu", retain_sample=50)["n_retain_eval"] == 50


def test_timer_measures_wall_seconds():
    with Timer() as t:
        time.sleep(0.05)
    assert 0.05 <= t.seconds < 1.0


def test_cached_accuracy_scores_a_cached_model_once_per_data(tmp_path, monkeypatch):
    from unlearnkit import metrics
    from unlearnkit.data.core import TensorSet

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    data = TensorSet(torch.rand(20, 3, 2, 2), torch.randint(0, 3, (20,)))
    other = TensorSet(data.x.flip(0), data.y.flip(0))
    path = tmp_path / "abc.pt"
    path.write_bytes(b"model")
    first = metrics.cached_accuracy(model, data, model_path=path, device="cpu")
    assert first == metrics.accuracy(model, data, device="cpu")
    calls = []
    monkeypatch.setattr(metrics, "predict", lambda *a, **k: calls.append(1) or torch.zeros(20, 3))
    assert metrics.cached_accuracy(model, data, model_path=path, device="cpu") == first and calls == []
    metrics.cached_accuracy(model, other, model_path=path, device="cpu")  # other data: scored again
    assert calls == [1] and len(list(tmp_path.glob("abc.eval-*.json"))) == 2
