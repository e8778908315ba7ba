"""Fractional passes: every pass-counting hyperparameter may be a float, and a fraction runs that
share of a pass (the first ``max(1, ⌈fraction · batches⌉)`` batches of its shuffled order).

Problem: a random, untrained 3-class CNN on 8×8 grey noise (retain 32, forget 16, val 12) with
batches of 8, so a retain pass is 4 batches and a forget pass 2; every run takes a fraction of
a second.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_post_hook

from unlearnkit.data.core import Split, TensorSet
from unlearnkit.methods import METHODS, MethodConfig, get_method, param, register, unlearn
from unlearnkit.methods.base import RunContext, as_input, epoch_batches, pass_batches, passes, sgd, step
from unlearnkit.methods.dlfd import DLFDConfig, dlfd_train
from unlearnkit.methods.finetune import FinetuneConfig, finetune_loop
from unlearnkit.methods.mumis import MuMisConfig, run_mumis
from unlearnkit.models import build_model

CPU = torch.device("cpu")
EXPECTED_PASSES = {
    "retrain": (), "finetune": ("epochs",), "neggrad": ("epochs",), "neggrad_plus": ("epochs",),
    "random_labels": ("epochs",), "salun": ("epochs",), "l1_sparse": ("epochs",),
    "scrub": ("epochs", "max_steps"), "bad_teacher": ("epochs",), "unsir": ("impair_epochs", "repair_epochs"),
    "cf_k": ("epochs",), "eu_k": ("epochs",), "dlfd": ("epochs",), "dlfd_released": ("epochs",),
    "mumis": ("max_epochs",),
}
PASS_FIELDS = [(name, f) for name in EXPECTED_PASSES for f in EXPECTED_PASSES[name]]
CLOSED_AT_ZERO = {("scrub", "max_steps"), ("unsir", "repair_epochs")}
"""Pass fields where 0 is meaningful (no max-steps, no repair): their range is ``[0, inf)``."""
FAST = {"batch_size": 8}
EXTRA = {"mumis": {"delta": None}, "unsir": {"noise_steps": 1, "noise_per_class": 4},
         "dlfd": {"perturbation_steps": 1, "monitor_samples": 8, "monitor_every": 100, "ot_reg": 0.05},
         "dlfd_released": {"perturbation_steps": 1, "monitor_samples": 8, "monitor_every": 100, "ot_reg": 0.05}}


pytestmark = pytest.mark.usefixtures("one_thread")


def _set(n: int, seed: int) -> TensorSet:
    gen = torch.Generator().manual_seed(seed)
    return TensorSet(torch.randint(0, 256, (n, 1, 8, 8), generator=gen, dtype=torch.uint8), torch.arange(n) % 3)


@pytest.fixture(scope="module")
def split() -> Split:
    return Split(retain=_set(32, 0), forget=_set(16, 1), test=_set(8, 2), num_classes=3, val=_set(12, 3))


@pytest.fixture(scope="module")
def model():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_model("face_cnn", 3, in_channels=1, image_size=8).eval()


def _state(m) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _run(name, model, split, **hyper):
    """``(result, optimizer steps taken)`` of ``name`` with its pass fields at 1 unless given."""
    ones = dict.fromkeys(get_method(name).passes, 1)
    steps = []
    handle = register_optimizer_step_post_hook(lambda opt, args, kwargs: steps.append(opt.param_groups[0]["lr"]))
    try:
        result = unlearn(name, model, split, profile="smoke", device="cpu", seed=0,
                         **{**FAST, **EXTRA.get(name, {}), **ones, **hyper})
    finally:
        handle.remove()
    return result, steps


# --- passes, pass_batches, epoch_batches ---------------------------------------------------

@pytest.mark.parametrize("epochs, expected", [(2.5, [1, 1, 0.5]), (0.75, [0.75]), (3, [1, 1, 1]), (1, [1]),
                                              (0, []), (0.5, [0.5])])
def test_passes_closed_forms(epochs, expected):
    assert passes(epochs) == expected
    assert all(isinstance(p, float) for p in passes(epochs))


def test_passes_add_up_to_the_run():
    for epochs in (0.1, 1.1, 2.3, 7.0, 10 * 12 / 160):
        assert sum(passes(epochs)) == pytest.approx(epochs) and len(passes(epochs)) == math.ceil(epochs)


def test_pass_batches_rounds_up_and_keeps_at_least_one():
    assert pass_batches(10, 3) == 4 and pass_batches(10, 3, 0.5) == 2 and pass_batches(10, 3, 0.6) == 3
    assert pass_batches(10, 3, 0.01) == 1 and pass_batches(1, 3, 0.5) == 1
    assert pass_batches(100, 10, passes(1.1)[-1]) == 1  # 0.10000000000000009 of 10 batches: not 2


def test_epoch_batches_with_a_fraction_is_a_prefix_of_the_same_shuffle():
    data = TensorSet(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10))
    gens = [torch.Generator().manual_seed(5) for _ in range(4)]
    full = [y.tolist() for _, y in epoch_batches(data, 3, gens[0], CPU)]
    half = [y.tolist() for _, y in epoch_batches(data, 3, gens[1], CPU, fraction=0.5)]
    tiny = [y.tolist() for _, y in epoch_batches(data, 3, gens[2], CPU, fraction=0.01)]
    whole = [y.tolist() for _, y in epoch_batches(data, 3, gens[3], CPU, fraction=1.0)]
    assert len(full) == 4 and half == full[:2] and tiny == full[:1] and whole == full
    states = [g.get_state() for g in gens]
    assert all(torch.equal(states[0], s) for s in states[1:]), "a fraction changed the random stream"


# --- the registry declares the pass fields ---------------------------------------------------

def test_every_method_declares_its_pass_fields():
    assert {name: spec.passes for name, spec in METHODS.items() if name in EXPECTED_PASSES} == EXPECTED_PASSES


@pytest.mark.parametrize("name, field", PASS_FIELDS)
def test_pass_fields_are_floats_with_a_positive_range(name, field):
    config = get_method(name).config
    assert config.__dataclass_fields__[field].type in (float, "float")
    config.for_profile("smoke", {field: 0.25})
    if (name, field) in CLOSED_AT_ZERO:
        config.for_profile("smoke", {field: 0})
        with pytest.raises(ValueError, match=rf"{field}=-0.5 is out of range; allowed: \[0, inf\)"):
            config.for_profile("smoke", {field: -0.5})
        return
    for bad in (0, 0.0, -0.5):
        with pytest.raises(ValueError, match=rf"{field}={bad!r} is out of range; allowed: \(0, inf\)"):
            config.for_profile("smoke", {field: bad})


def test_register_rejects_a_pass_name_that_is_not_a_field():
    @dataclasses.dataclass(frozen=True)
    class Toy(MethodConfig):
        epochs: float = param(1, low=0, low_open=True)

    registry = {}
    with pytest.raises(ValueError, match=r"passes \['epoch'\] of method 'toy' are not fields of Toy; "
                                         r"fields: \['epochs'\]"):
        register("toy", config=Toy, needs_retain=False, reference="", idea="", passes=("epoch",), registry=registry)
    with pytest.raises(ValueError, match=r"counts passes \['epochs'\], so it needs reference_retrain_epochs > 0"):
        register("toy", config=Toy, needs_retain=False, reference="", idea="", passes=("epochs",), registry=registry)
    register("toy", config=Toy, needs_retain=False, reference="", idea="", passes=("epochs",),
             reference_retrain_epochs=160, registry=registry)(lambda *a: None)
    assert registry["toy"].passes == ("epochs",)
    assert registry["toy"].reference_retrain_epochs == 160 and registry["toy"].label == "toy"


# --- half a pass does less work, and still works --------------------------------------------

@pytest.mark.parametrize("name, field", [p for p in PASS_FIELDS if p[0] != "retrain"])
def test_half_a_pass_takes_fewer_steps_and_moves_the_weights(name, field, model, split):
    half, half_steps = _run(name, model, split, **{field: 0.5})
    _, one_steps = _run(name, model, split, **{field: 1})
    assert 0 < len(half_steps) < len(one_steps), f"{name}.{field}: {len(half_steps)} vs {len(one_steps)} steps"
    assert not _same(_state(half.model), _state(model)), f"{name}.{field}=0.5 left the weights as they were"


def test_fine_tuning_steps_follow_the_batch_counts(model, split):
    for epochs, expected in ((0.5, 2), (0.25, 1), (0.01, 1), (1, 4), (1.5, 6), (2.75, 11)):
        assert len(_run("finetune", model, split, epochs=epochs)[1]) == expected, epochs


def test_scrub_max_steps_count_max_step_passes(model, split):
    # per epoch: 4 min-step batches; max-step passes of 2 forget batches: 1.5 → 2 + 1 batches
    counts = {m: len(_run("scrub", model, split, epochs=2, max_steps=m)[1]) for m in (0, 0.5, 1, 1.5, 2, 3)}
    assert counts == {0: 8, 0.5: 9, 1: 10, 1.5: 11, 2: 12, 3: 12}


def test_unsir_repair_epochs_zero_means_no_repair(model, split):
    # the smoke retain subset is the whole retain set: half a repair pass is 2 of its 4 batches
    with_repair = len(_run("unsir", model, split, repair_epochs=0.5)[1])
    assert with_repair - len(_run("unsir", model, split, repair_epochs=0)[1]) == 2


def test_fine_tuning_penalty_sees_the_progress_at_each_pass_start(model, split):
    seen = []
    cfg = FinetuneConfig.for_profile("smoke", {"epochs": 2.5, "batch_size": 8})
    finetune_loop(copy.deepcopy(model), split.retain, cfg, RunContext(CPU, 0),
                  penalty=lambda t: seen.append(t) or torch.zeros(()))
    assert seen == pytest.approx([0.0] * 4 + [0.4] * 4 + [0.8] * 2)


def test_cosine_schedule_counts_the_started_passes(model, split):
    lr = get_method("cf_k").config.defaults("smoke")["lr"]
    for epochs, t_max, counts in ((2.5, 3, (4, 4, 2)), (2, 2, (4, 4))):
        lrs = _run("cf_k", model, split, epochs=epochs)[1]
        expected = [lr * (1 + math.cos(math.pi * i / t_max)) / 2 for i, n in enumerate(counts) for _ in range(n)]
        assert lrs == pytest.approx(expected), epochs


def test_dlfd_schedule_and_monitor_count_the_truncated_batches(model, split):
    cfg = DLFDConfig.for_profile("smoke", {**FAST, **EXTRA["dlfd"], "epochs": 1.5})
    _, trace = dlfd_train(copy.deepcopy(model), split, cfg, RunContext(CPU, 0))
    assert len(trace.lam) == 4 + 2 and trace.lam[0] == cfg.lambda_start and trace.lam[-1] == cfg.lambda_end
    assert [math.isnan(a) for a in trace.val_accuracy] == [True] * 5 + [False]  # monitored at the last batch


def test_mumis_truncates_the_last_pass(model, split):
    for epochs, steps in ((1.5, 3), (0.5, 1), (2, 4)):
        cfg = MuMisConfig.for_profile("smoke", {**FAST, "delta": None, "max_epochs": epochs})
        assert run_mumis(copy.deepcopy(model), split.forget, 3, cfg, RunContext(CPU, 0)).steps == steps


# --- integer passes run exactly as before ------------------------------------------------------

@pytest.mark.parametrize("name, field", [p for p in PASS_FIELDS if p[0] != "retrain"])
def test_an_integer_as_float_runs_the_same_as_the_integer(name, field, model, split):
    as_int, as_float = (_run(name, model, split, **{field: v})[0] for v in (1, 1.0))
    assert _same(_state(as_int.model), _state(as_float.model))


def _reference_loop(model, data, cfg, seed, l1=None):
    """Fine-tuning / ℓ1-sparse as written before fractional passes (integer epochs only)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # dropout, as unlearn seeds it
        optimizer = sgd(model.parameters(), cfg)
        gen = RunContext(CPU, seed).generator()
        for epoch in range(cfg.epochs):
            model.train()
            for x, y in data.batches(cfg.batch_size, shuffle=True, generator=gen):
                loss = F.cross_entropy(model(as_input(x, CPU)), y)
                if l1 is not None:
                    loss = loss + l1 * (1 - epoch / cfg.epochs) * sum(p.abs().sum() for p in model.parameters())
                step(optimizer, loss)
    return model


@pytest.mark.parametrize("name, epochs", [("finetune", 2), ("l1_sparse", 3)])
def test_integer_epochs_match_the_loop_before_fractional_passes(name, epochs, model, split):
    result = _run(name, model, split, epochs=epochs)[0]
    l1 = result.config.l1 if name == "l1_sparse" else None
    expected = _reference_loop(copy.deepcopy(model), split.retain, result.config, 0, l1=l1)
    assert _same(_state(result.model), _state(expected.eval()))
