"""DLFD (paper intent) and its released variant: what each term does, gate, selection, modes."""

import copy

import pytest
import torch

from unlearnkit.data.core import Split, TensorSet
from unlearnkit.methods import get_method, unlearn
from unlearnkit.methods.base import RunContext
from unlearnkit.methods.dlfd import (DLFDConfig, batch_ot, dlfd_train, lambda_schedule, perturb_batch,
                                     perturbed_input)
from unlearnkit.models import build_model


def _set(n, seed, classes=3):
    gen = torch.Generator().manual_seed(seed)
    return TensorSet(torch.randint(0, 256, (n, 1, 8, 8), generator=gen, dtype=torch.uint8),
                     torch.arange(n) % classes)


def _split(val=True):
    return Split(retain=_set(24, 0), forget=_set(8, 1), test=_set(8, 2), num_classes=3,
                 val=_set(12, 3) if val else None, unseen=_set(8, 4))


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model("face_cnn", 3, in_channels=1, image_size=8).eval()


def _cfg(**kw):
    base = dict(batch_size=8, perturbation_steps=3, step_size=0.05, monitor_samples=8, ot_reg=0.05)
    return DLFDConfig.for_profile("smoke", {**base, **kw})


def _batches(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(8, 1, 8, 8, generator=gen), torch.arange(8) % 3, torch.rand(6, 1, 8, 8, generator=gen)


def test_lambda_schedule_is_linear_between_the_endpoints():
    values = [lambda_schedule(t, 5, 0.5, 1.0) for t in range(5)]
    assert values == pytest.approx([0.5, 0.625, 0.75, 0.875, 1.0])
    assert lambda_schedule(0, 1, 0.2, 1.0) == 0.2


def test_released_ot_term_has_no_effect_on_the_perturbation_but_the_intended_one_does():
    model, (x_r, y_r, x_f) = _model(), _batches()
    released = [perturb_batch(model, x_r, y_r, x_f, _cfg(forget_weight=w), 0.5, released=True) for w in (0.0, 7.0)]
    assert torch.equal(released[0], released[1])
    intended = [perturb_batch(model, x_r, y_r, x_f, _cfg(forget_weight=w), 0.5) for w in (0.0, 7.0)]
    assert not torch.equal(intended[0], intended[1])


def test_pure_ot_ascent_moves_the_retain_outputs_away_from_the_forget_outputs():
    model, (x_r, y_r, x_f) = _model(), _batches()
    for space in ("logits", "features"):
        cfg = _cfg(forget_weight=1.0, perturbation_steps=5, step_size=0.02, ot_space=space)
        x_tilde = perturb_batch(model, x_r, y_r, x_f, cfg, lam=0.0)
        assert batch_ot(model, x_tilde, x_f, cfg) > batch_ot(model, x_r, x_f, cfg)


def test_intended_perturbation_stays_in_pixel_range_and_is_bounded_by_the_steps():
    model, (x_r, y_r, x_f) = _model(), _batches()
    cfg = _cfg(perturbation_steps=4, step_size=0.03)
    x_tilde = perturb_batch(model, x_r, y_r, x_f, cfg, 1.0)
    assert x_tilde.min() >= 0 and x_tilde.max() <= 1
    assert (x_tilde - x_r).abs().max() <= 4 * 0.03 + 1e-6
    assert torch.equal(perturb_batch(model, x_r, y_r, x_f, _cfg(perturbation_steps=0), 1.0), x_r)


def test_released_clamp_after_normalisation_changes_images_even_without_perturbation():
    # mean = std = 0.5: clamp((2x - 1) + 0, 0, 1) in normalised units is clamp(x, 0.5, 1) in pixels.
    model, (x_r, _, _) = _model(), _batches()
    out = perturbed_input(model, x_r, torch.zeros_like(x_r), released=True)
    assert torch.allclose(out, x_r.clamp(0.5, 1.0), atol=1e-6)
    assert torch.equal(perturbed_input(model, x_r, torch.zeros_like(x_r), released=False), x_r)


def _modes_during_run(released, **kw):
    model, calls = _model(), []
    model.head.register_forward_hook(lambda m, i, o: calls.append((torch.is_grad_enabled(), m.training)))
    ctx = RunContext(torch.device("cpu"), seed=0)
    _, trace = dlfd_train(model, _split(), _cfg(**kw), ctx, released=released)
    return calls, trace


def test_training_steps_run_in_train_mode_only_for_the_intended_variant():
    calls, trace = _modes_during_run(False, forget_threshold=0.0)
    assert len(trace.perturbed) == 3 and all(trace.perturbed)
    assert sum(training for _, training in calls) == 3          # one train-mode forward per batch: the step
    calls, _ = _modes_during_run(True, forget_threshold=0.0)
    # released: only batch 0 runs in train mode: forget target + 3 steps x (perturbed, clean) + the step
    assert sum(training for _, training in calls) == 1 + 3 * 2 + 1


def test_gate_perturbs_exactly_when_the_last_score_reached_the_threshold():
    for threshold in (0.0, 0.3, 1.0):
        _, trace = _modes_during_run(False, forget_threshold=threshold)
        expected = [True] + [s >= threshold for s in trace.forgetting_score[:-1]]
        assert trace.perturbed == expected


def test_selection_keeps_the_best_validation_accuracy_under_the_cap():
    _, trace = _modes_during_run(False, selection_cap=1.0)
    best = max(range(len(trace.val_accuracy)), key=lambda t: (trace.val_accuracy[t], -t))
    assert trace.selected_batch == best
    _, trace = _modes_during_run(False, selection_cap=0.0, forget_threshold=0.0)
    eligible = [t for t, s in enumerate(trace.forgetting_score) if s <= 0.0]
    assert trace.selected_batch == (eligible and max(eligible, key=lambda t: (trace.val_accuracy[t], -t)) or None)


def test_without_checkpoint_choice_the_last_state_is_returned():
    runs = {select: dlfd_train(_model(), _split(), _cfg(selection_cap=1.0, select_checkpoint=select),
                               RunContext(torch.device("cpu"), seed=0)) for select in (True, False)}
    assert runs[True][1].selected_batch is not None and runs[False][1].selected_batch is None
    last = runs[False][0].state_dict()                            # same run: the final state, no reload
    if runs[True][1].selected_batch == len(runs[True][1].lam) - 1:
        assert all(torch.equal(v, last[k]) for k, v in runs[True][0].state_dict().items())


def test_registered_variants_are_deterministic_and_leave_the_input_model_alone():
    model, split = _model(), _split()
    before = copy.deepcopy(model.state_dict())
    runs = [unlearn("dlfd", model, split, profile="smoke", seed=1, device="cpu", batch_size=8,
                    monitor_samples=8, perturbation_steps=2) for _ in range(2)]
    for a, b in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values()):
        assert torch.equal(a, b)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert get_method("dlfd_released").needs_retain


def test_bad_input_fails_before_any_work():
    with pytest.raises(ValueError, match="val"):
        unlearn("dlfd", _model(), _split(val=False), profile="smoke", device="cpu")
    with pytest.raises(ValueError, match="ot_space"):
        unlearn("dlfd", _model(), _split(), profile="smoke", device="cpu", ot_space="pixels")
    with pytest.raises(ValueError, match="step_size"):
        DLFDConfig.for_profile("cpu", {"step_size": -0.1})


def test_monitor_every_skips_monitoring_but_always_scores_the_last_batch():
    _, trace = _modes_during_run(False, monitor_every=2)
    assert [s == s for s in trace.forgetting_score] == [False, True, True]   # batches 1 and 2 (the last)
    assert trace.selected_batch in (None, 1, 2)


def test_a_run_that_blows_up_raises_diverged_instead_of_a_monitor_error():
    from unlearnkit.methods import Diverged

    with pytest.raises(Diverged, match="DLFD diverged"):
        dlfd_train(_model(), _split(), _cfg(lr=1e30), RunContext(torch.device("cpu"), seed=0))
