"""MU-Mis as a registered, retain-free method: stopping rule, determinism, eval mode, no retain reads."""

import pytest
import torch

from unlearnkit import sensitivity
from unlearnkit.data import RetainAccessError, make_split
from unlearnkit.methods import get_method, unlearn
from unlearnkit.methods.base import RunContext
from unlearnkit.methods.mumis import MuMisConfig, run_mumis
from unlearnkit.models import build_model
from unlearnkit.train import TrainConfig, train_model


@pytest.fixture(scope="module")
def trained():
    split = make_split("synthetic-images", "full_class", forget_class=1, seed=0, val_fraction=0.0,
                       load_kw={"num_classes": 4, "n_per_class": 24, "n_test_per_class": 6, "size": 8})
    torch.manual_seed(0)
    model = build_model("small_cnn", 4, image_size=8)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, augment=False)
    return train_model(model, split.train, cfg, device="cpu", progress=False), split


def cfg(**changes):
    # the loss of this tiny model is ~1e-5 (small input gradients), hence the large step
    return MuMisConfig.for_profile("smoke", {"lr": 50.0, **changes})


def ctx(seed=0):
    return RunContext(torch.device("cpu"), seed)


def copy_of(model):
    import copy
    return copy.deepcopy(model)


def test_registered_as_retain_free_and_runs_on_a_retain_free_split(trained):
    model, split = trained
    spec = get_method("mumis")
    assert spec.needs_retain is False and spec.needs_forget is True
    free = split.without_retain()
    with pytest.raises(RetainAccessError):  # the view has teeth
        free.retain
    out = spec.run(copy_of(model), free, cfg(max_epochs=1), ctx())  # would raise on any retain read
    assert out is not None
    result = unlearn("mumis", model, split, profile="smoke", device="cpu", seed=0, max_epochs=1)
    assert result.seconds > 0


def test_a_method_that_reads_retain_fails_on_the_split_mumis_receives(trained):
    _, split = trained
    with pytest.raises(RetainAccessError):
        len(split.without_retain().train)


def test_stopping_rule_stops_early_and_keeps_w_t(trained):
    model, split = trained
    work = copy_of(model)
    before = {k: v.clone() for k, v in work.state_dict().items()}
    trace = run_mumis(work, split.forget, 4, cfg(delta=1.0 + 1e-9), ctx())
    # the first step leaves the ratio at 1 (w_0); the rule fires as soon as it exceeds δ
    assert trace.stopped_by_rule
    assert trace.ratios[0] == pytest.approx(1.0, abs=1e-5)
    assert trace.steps == len(trace.ratios) - 1 and trace.ratios[-1] > 1.0 + 1e-9
    assert all(r <= 1.0 + 1e-9 for r in trace.ratios[:-1])
    if trace.steps == 0:
        for k, v in work.state_dict().items():
            torch.testing.assert_close(v, before[k])


def test_without_the_rule_the_loss_keeps_decreasing(trained):
    model, split = trained
    trace = run_mumis(copy_of(model), split.forget, 4, cfg(delta=None, max_epochs=3), ctx())
    assert not trace.stopped_by_rule
    batches = -(-len(split.forget) // cfg().batch_size)
    assert trace.steps == 3 * batches
    assert trace.losses[-1] < trace.losses[0]
    assert trace.ratios[-1] > trace.ratios[0]  # irrelevant-class sensitivity grows


def test_deterministic_under_seed_and_different_across_seeds(trained):
    model, split = trained
    runs = [copy_of(model) for _ in range(3)]
    for work, seed in zip(runs, (0, 0, 1)):
        run_mumis(work, split.forget, 4, cfg(delta=None, max_epochs=1), ctx(seed))
    a, b, c = (dict(m.named_parameters()) for m in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_one_fresh_irrelevant_class_per_sample_per_step(trained, monkeypatch):
    model, split = trained
    draws = []
    real = sensitivity.draw_irrelevant_classes

    def spy(labels, num_classes, generator):
        out = real(labels, num_classes, generator)
        draws.append((labels.clone(), out.clone()))
        return out

    monkeypatch.setattr("unlearnkit.methods.mumis.draw_irrelevant_classes", spy)
    trace = run_mumis(copy_of(model), split.forget, 4, cfg(delta=None, max_epochs=2, batch_size=len(split.forget)), ctx())
    assert len(draws) == trace.steps == 2
    for labels, classes in draws:
        assert classes.shape == labels.shape and not torch.any(classes == labels)
    assert not torch.equal(draws[0][1], draws[1][1])


def test_model_stays_in_eval_mode_and_batchnorm_statistics_do_not_move(trained):
    model, split = trained
    work = copy_of(model)
    stats = {k: v.clone() for k, v in work.state_dict().items() if "running" in k}
    run_mumis(work, split.forget, 4, cfg(delta=None, max_epochs=1), ctx())
    assert not any(m.training for m in work.modules())
    for k, v in stats.items():
        torch.testing.assert_close(work.state_dict()[k], v)


def test_bad_hyperparameters_are_refused_before_any_work():
    with pytest.raises(ValueError, match="delta"):
        MuMisConfig.for_profile("cpu", {"delta": 0.9})
    with pytest.raises(ValueError, match="terms"):
        MuMisConfig.for_profile("cpu", {"terms": "max"})
    assert MuMisConfig.for_profile("cpu", {"delta": None}).delta is None


def test_the_papers_rule_runs_over_the_whole_forget_set(trained):
    model, split = trained
    trace = run_mumis(copy_of(model), split.forget, 4, cfg(delta=1.0 + 1e-9, stop_on="forget_set", stop_every=2),
                      ctx())
    steps = [step for step, _ in trace.set_ratios]
    assert steps == list(range(0, 2 * len(steps), 2))  # every stop_every steps, from w_0
    assert trace.set_ratios[0][1] == pytest.approx(1.0, abs=1e-5)
    assert trace.stopped_by_rule and trace.set_ratios[-1][1] > 1.0 + 1e-9
    assert all(r <= 1.0 + 1e-9 for _, r in trace.set_ratios[:-1])
    assert len(trace.ratios) == len(trace.losses)  # the batch ratio is still recorded at every step
    assert MuMisConfig.defaults("paper")["stop_on"] == "forget_set"
