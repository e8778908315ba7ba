"""The shared image tasks: one training pool per task, one original model for every split."""

import pytest
import torch

from unlearnkit.data.splits import training_pool
from unlearnkit.experiments.tasks import cifar10_task, train_original, train_retrained

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
    task = cifar10_task("smoke", train=cifar10_task("smoke").train.__class__(epochs=1, batch_size=128, augment=False))
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
    train = cifar10_task("smoke").train.__class__(epochs=3, batch_size=64, augment=False)
    task = cifar10_task("smoke", train=train)
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
