"""The shared image tasks: one training pool per task, one original model for every split, and
the forgetting problems (:func:`make_problem`) cut from them."""

import pickle
from dataclasses import replace

import pytest
import torch

from unlearnkit.data.splits import training_pool
from unlearnkit.experiments import harness, tasks
from unlearnkit.experiments.tasks import cifar10_task, train_original, train_retrained
from unlearnkit.metrics import accuracy

TASK = cifar10_task("smoke")


def _rows(x: torch.Tensor) -> list[bytes]:
    return sorted(row.numpy().tobytes() for row in x)


@pytest.mark.parametrize("scenario, kw", [("full_class", {"forget_class": 2}),
                                          ("random_subset", {"forget_fraction": 0.1})])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_split_is_cut_from_the_same_pool(scenario, kw, seed):
    pool, _ = training_pool(TASK.dataset, pool_seed=TASK.pool_seed, val_fraction=TASK.val_fraction,
                            max_train=TASK.max_train, load_kw=TASK.load_kw)
    split = TASK.split(scenario, seed=seed, **kw)
    assert _rows(split.train.x) == _rows(pool.x)


def test_forget_sets_differ_between_seeds_but_pool_does_not():
    a = TASK.split("random_subset", seed=0, forget_fraction=0.1)
    b = TASK.split("random_subset", seed=1, forget_fraction=0.1)
    assert _rows(a.train.x) == _rows(b.train.x)
    assert _rows(a.forget.x) != _rows(b.forget.x)


def test_original_and_retrained_models_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path))
    task = replace(TASK, train=replace(TASK.train, epochs=1, batch_size=128))
    first, info1 = train_original(task, seed=0, device="cpu", progress=False)
    second, info2 = train_original(task, seed=0, device="cpu", progress=False)
    assert not info1["hit"] and info2["hit"]
    for p, q in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(p, q)
    split = task.split("full_class", seed=0, forget_class=1)
    _, info3 = train_retrained(task, split, seed=0, device="cpu", progress=False)
    _, info4 = train_retrained(task, task.split("full_class", seed=0, forget_class=2), seed=0,
                               device="cpu", progress=False)
    assert not info3["hit"] and not info4["hit"] and info3["path"] != info4["path"]


def test_retrain_time_is_measured_in_this_run_even_on_a_cache_hit(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path))
    task = replace(TASK, train=replace(TASK.train, epochs=3, batch_size=64))
    split = task.split("full_class", seed=0, forget_class=1)
    _, trained_now = train_retrained(task, split, seed=0, device="cpu", progress=False)
    assert not trained_now["hit"] and trained_now["seconds_this_run"] == trained_now["train_seconds"]
    entries = sorted(p.name for p in tmp_path.rglob("*"))

    state = torch.random.get_rng_state()
    _, from_cache = train_retrained(task, split, seed=0, device="cpu", progress=False)
    assert from_cache["hit"] and from_cache["train_seconds"] == trained_now["train_seconds"]
    assert 0 < from_cache["seconds_this_run"] != from_cache["train_seconds"]  # timed now, not read back
    assert torch.equal(torch.random.get_rng_state(), state), "the timing epoch must not move the global RNG"
    assert sorted(p.name for p in tmp_path.rglob("*")) == entries, "the timing epoch is not cached"


def test_tasks_and_protocols_per_profile():
    assert cifar10_task("smoke") is cifar10_task("smoke")  # one task per profile, shared by the chapters
    assert (cifar10_task("cpu").dataset, tasks.face_task("cpu").dataset) == ("cifar10", "ckplus")
    assert cifar10_task("cpu").max_train == 20_000 and cifar10_task("paper").max_train is None
    assert tasks.protocol("cpu").seeds >= 3 and tasks.protocol("smoke").seeds >= 2
    for profile in ("smoke", "cpu", "paper"):
        prot = tasks.protocol(profile)
        assert isinstance(prot.grid, harness.Grid) and prot.retain_eval in (None, 2000)
    with pytest.raises(ValueError, match=r"unknown profile 'bogus'; allowed: 'smoke', 'cpu', 'paper'"):
        tasks.protocol("bogus")
    with pytest.raises(ValueError, match="unknown profile 'bogus'"):
        cifar10_task("bogus")
    with pytest.raises(TypeError, match="seeds must be an int"):
        tasks.Protocol(seeds=2.0, retain_eval=None, grid=harness.Grid())
    with pytest.raises(ValueError, match=r"retain_eval=1 is out of range"):
        tasks.Protocol(seeds=2, retain_eval=1, grid=harness.Grid())


def test_a_problem_spec_is_checked_data_and_refuses_an_unknown_problem_before_work():
    with pytest.raises(ValueError, match=r"unknown problem 'sub-class'; allowed: 'full_class', 'random_subset'"):
        tasks.spec("sub-class", "smoke", seed=0)
    with pytest.raises(ValueError, match=r"unknown profile 'laptop'"):
        tasks.spec("full_class", "laptop", seed=0)
    made = tasks.spec("random_subset", "cpu", seed=2, pool_size=500, forget_fraction=0.2)
    assert made == tasks.spec("random_subset", "cpu", seed=2, forget_fraction=0.2, pool_size=500), "knob order is not data"
    assert made.knobs == (("forget_fraction", 0.2), ("pool_size", 500))
    assert made.label == "random_subset(seed=2, forget_fraction=0.2, pool_size=500)"
    assert pickle.loads(pickle.dumps(made)) == made, "a spec travels to a Ray worker"


# --- make_problem ----------------------------------------------------------------------------

MODEL_KEYS = {"role", "task", "model", "seed", "cache_key", "cache_hit", "train_seconds", "test_accuracy"}
SHORT = replace(TASK, train=replace(TASK.train, epochs=1))


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    """Random-subset problems of the smoke task at seeds 0 and 1 and the pairing of seed 1's
    original with seed 0's split, in one fresh model cache (built in that order)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("UNLEARNKIT_CACHE", str(tmp_path_factory.mktemp("problems-cache")))
        built = {}
        for name, seed, original_seed in (("s0", 0, None), ("s1", 1, None), ("pair", 0, 1), ("s0 again", 0, None)):
            built[name] = tasks.make_problem(SHORT, "random_subset", seed=seed, original_seed=original_seed,
                                             device="cpu", forget_fraction=0.1)
        yield built


def test_make_problem_records_the_provenance_of_its_models(problems):
    problem = problems["s0"]
    assert isinstance(problem, harness.Problem)
    assert (problem.task, problem.scenario, problem.name) == ("synthetic-images", "random_subset",
                                                              "synthetic-images/random_subset")
    assert problem.seed == 0 and problem.original_seed == 0
    assert problem.retrain_epochs == SHORT.train.epochs and problem.retrain_seconds > 0
    assert [m["role"] for m in problem.models] == ["original", "retrained"]
    for row, model in zip(problem.models, (problem.original, problem.retrained)):
        assert set(row) == MODEL_KEYS
        assert (row["task"], row["model"], row["seed"]) == ("synthetic-images", "small_cnn", 0)
        assert row["cache_hit"] is False and row["train_seconds"] > 0
        assert 0 <= row["test_accuracy"] <= 1  # a fraction, not a percentage
        assert row["test_accuracy"] == pytest.approx(accuracy(model, problem.split.test, device="cpu"))
        assert not model.training
    assert problem.key["original"] == problem.models[0]["cache_key"]
    assert problem.key["retrained"] == problem.models[1]["cache_key"]
    again = problems["s0 again"]
    assert [m["cache_hit"] for m in again.models] == [True, True] and again.key == problem.key


def test_seeds_train_their_own_original_and_draw_their_own_forget_set(problems):
    a, b = problems["s0"], problems["s1"]
    assert a.models[0]["cache_key"] != b.models[0]["cache_key"]
    assert any(not torch.equal(p, q) for p, q in zip(a.original.state_dict().values(),
                                                    b.original.state_dict().values()))
    assert _rows(a.split.forget.x) != _rows(b.split.forget.x)
    assert _rows(a.split.train.x) == _rows(b.split.train.x)  # one pool
    assert a.models[1]["cache_key"] != b.models[1]["cache_key"] and a.key != b.key


def test_original_seed_pairs_another_seeds_original_with_this_split(problems):
    s0, s1, pair = problems["s0"], problems["s1"], problems["pair"]
    assert pair.seed == 0 and pair.original_seed == 1
    assert pair.models[0]["cache_key"] == s1.models[0]["cache_key"] and pair.models[0]["seed"] == 1
    assert pair.models[0]["cache_hit"] is True  # seed 1's original, read back
    for p, q in zip(pair.original.state_dict().values(), s1.original.state_dict().values()):
        assert torch.equal(p, q)
    assert _rows(pair.split.forget.x) == _rows(s0.split.forget.x)  # seed 0's forget draw
    assert pair.models[1]["cache_key"] == s0.models[1]["cache_key"] and pair.models[1]["seed"] == 0
    assert pair.key != s0.key  # another original: another problem in the run cache
    assert pair.key["split"] == s0.key["split"]
    rows = harness.reference_rows(pair, device="cpu", retain_eval=None)
    assert [(r["seed"], r["original_seed"]) for r in rows] == [(0, 1), (0, 1)]


def test_timing_a_cached_retrain_works_with_a_step_schedule():
    """The paper recipe steps its rate at epochs 91 and 136: one timed epoch must not inherit them."""
    task = replace(tasks.cifar10_task("smoke"), train=replace(tasks.cifar10_task("smoke").train, epochs=4,
                                                               schedule="multistep", milestones=(2, 3)))
    split = task.split("full_class", seed=0, forget_class=0)
    seconds = tasks.retrain_seconds_this_run(task, split, 0, {"hit": True, "train_seconds": 0.0}, device="cpu")
    assert seconds > 0
