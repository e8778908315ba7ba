"""A training run killed mid-way leaves no cache entry, and its rerun equals an uninterrupted run.

The run under test is this file executed as a script (``python test_interrupted_runs.py PHASE``):
a tiny CNN trained through :func:`unlearnkit.train.cached_train` on synthetic images, with the
cache at ``$UNLEARNKIT_CACHE``. It prints a marker when it reaches the point to be interrupted:

- ``train``: every forward pass prints ``step``; the third then waits, so the signal lands mid-training;
- ``save``: training is done and ``torch.save`` has written half of the entry's bytes to the
  temporary file, then waits, so a signal lands in the middle of writing the cache entry.
"""

import dataclasses
import functools
import io
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from unlearnkit.data.core import TensorSet
from unlearnkit.models import build_model
from unlearnkit.train import TrainConfig, cached_train, train_model

TRAIN = TrainConfig(model="small_cnn", epochs=2, batch_size=8, lr=0.05, augment=True, seed=5)
KEY = {"test": "interrupted-runs", "train": dataclasses.asdict(TRAIN)}
STEPS_BEFORE_SIGNAL = 3  # of 2 epochs x 4 batches


def synthetic_images(n=32) -> TensorSet:
    """Two classes told apart by brightness, uint8 ``[n, 3, 8, 8]``."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    noise = torch.randint(0, 100, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    return TensorSet(noise + (y * 150).to(torch.uint8)[:, None, None, None], y)


def build():
    torch.manual_seed(1)
    return build_model("small_cnn", num_classes=2, image_size=8)


def fit(model):
    return train_model(model, synthetic_images(), TRAIN, device="cpu", progress=False)


def slow_build():
    """``build()`` whose every forward pass prints ``step`` and sleeps (weights unchanged)."""
    model = build()
    model.register_forward_pre_hook(_slow_forward)
    return model


FORWARD_PASSES = itertools.count(1)  # in the script's process


def _slow_forward(module, inputs):
    """Print ``step`` per forward pass; from the signal's step on, wait (so it lands mid-training
    however late the parent reads the pipe)."""
    print("step", flush=True)
    time.sleep(60 if next(FORWARD_PASSES) >= STEPS_BEFORE_SIGNAL else 0.05)


def train_and_cache(cache_dir=None, make=build):
    """The run under test: ``(state_dict, info)`` of ``cached_train(KEY, make, fit)``."""
    model, info = cached_train(KEY, make, fit, cache_dir=cache_dir)
    return model.state_dict(), info


def _half_save_then_wait(real_save, obj, path):
    buffer = io.BytesIO()
    real_save(obj, buffer)
    Path(path).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    print("saving", flush=True)
    time.sleep(60)


def interrupted(phase: str, sig: int, cache: Path) -> int:
    """Run the script until it reaches ``phase``, send ``sig``; returns its exit status."""
    env = {**os.environ, "UNLEARNKIT_CACHE": str(cache)}
    proc = subprocess.Popen([sys.executable, __file__, phase], stdout=subprocess.PIPE, text=True, env=env)
    marker, seen = ("step", STEPS_BEFORE_SIGNAL) if phase == "train" else ("saving", 1)
    for line in proc.stdout:
        seen -= line.strip() == marker
        if seen == 0:
            break
    assert seen == 0, f"the run ended (status {proc.wait()}) before reaching {phase!r}"
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=60)
    finally:
        proc.stdout.close()


def visible_files(cache: Path) -> list[str]:
    """Files a loader could pick up: everything but the hidden ``.<name>.*.tmp`` of atomic writes."""
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    state, info = train_and_cache(tmp_path_factory.mktemp("uninterrupted"))
    assert not info["hit"]
    return state


@pytest.mark.parametrize("phase, sig", [("train", signal.SIGKILL), ("train", signal.SIGINT),
                                        ("save", signal.SIGKILL)])
def test_killed_run_leaves_no_entry_and_rerun_matches_uninterrupted(tmp_path, monkeypatch, uninterrupted,
                                                                      phase, sig):
    cache = tmp_path / "cache"
    status = interrupted(phase, sig, cache)
    assert status != 0, "the signal did not stop the run"
    assert visible_files(cache) == [], "an interrupted run left a cache entry"
    leftovers = [p.name for p in cache.rglob("*.tmp")]
    if phase == "save":  # SIGKILL mid-write leaves the hidden temporary file only
        assert len(leftovers) == 1 and leftovers[0].startswith(".")
    else:
        assert leftovers == []

    monkeypatch.setenv("UNLEARNKIT_CACHE", str(cache))
    state, info = train_and_cache()
    assert not info["hit"], "the rerun must retrain, not read what the interrupted run left"
    assert state.keys() == uninterrupted.keys()
    for name, tensor in state.items():
        assert torch.equal(tensor, uninterrupted[name]), f"{name} differs from the uninterrupted run"
    entry = Path(info["path"])
    assert visible_files(cache) == sorted([entry.name, entry.with_suffix(".json").name])
    reloaded, info = train_and_cache()
    assert info["hit"] and all(torch.equal(reloaded[k], state[k]) for k in state)


def test_a_kill_between_entry_and_sidecar_is_repaired_on_the_next_hit(tmp_path):
    _, info = train_and_cache(tmp_path)
    sidecar = Path(info["path"]).with_suffix(".json")
    sidecar.unlink()  # what a kill right after the entry's rename leaves
    _, info = train_and_cache(tmp_path)
    assert info["hit"] and sidecar.is_file()


if __name__ == "__main__":
    # Ctrl-C raises KeyboardInterrupt even when started from a background job, which ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if sys.argv[1] == "train":
        train_and_cache(make=slow_build)
    else:
        torch.save = functools.partial(_half_save_then_wait, torch.save)  # in this child process only
        train_and_cache()
