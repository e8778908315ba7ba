"""Config validation, device resolution, seeding, atomic writes, the recorder."""

import json
from dataclasses import dataclass

import pytest
import torch

from unlearnkit import config, runtime
from unlearnkit.data.core import RetainAccessError, Split, TensorSet
from unlearnkit.record import VERDICTS, Recorder, verdict


@dataclass(frozen=True)
class Toy:
    epochs: int = 1
    lr: float = 0.1
    name: str = "a"

    def __post_init__(self):
        config.check_range("epochs", self.epochs, 1)


def test_build_config_rejects_unknown_names_and_lists_allowed():
    with pytest.raises(ValueError, match=r"unknown parameter.*'epoch'.*allowed.*'epochs'"):
        config.build_config(Toy, {"epoch": 2})


@pytest.mark.parametrize("key, value", [("epochs", 1.5), ("epochs", True), ("lr", "fast"), ("name", 3)])
def test_build_config_rejects_wrong_types(key, value):
    with pytest.raises(TypeError, match=key):
        config.build_config(Toy, {key: value})


def test_build_config_accepts_int_for_float_and_checks_range():
    assert config.build_config(Toy, lr=1).lr == 1
    with pytest.raises(ValueError, match=r"epochs=0 is out of range"):
        config.build_config(Toy, epochs=0)


def test_check_choice_and_profile_errors_name_the_allowed_values():
    with pytest.raises(ValueError, match=r"unknown profile 'fast'.*'smoke', 'cpu', 'paper'"):
        config.check_profile("fast")


def test_config_hash_is_stable_and_sensitive():
    assert config.config_hash(Toy()) == config.config_hash(Toy())
    assert config.config_hash(Toy()) != config.config_hash(Toy(epochs=2))


def test_resolve_device():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match=r"unknown device 'tpu'.*allowed"):
        runtime.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            runtime.resolve_device("cuda")


def test_seeding_is_reproducible_and_rejects_bad_seeds():
    runtime.seed_everything(3)
    a = torch.rand(4)
    runtime.seed_everything(3)
    assert torch.equal(a, torch.rand(4))
    assert torch.equal(torch.rand(3, generator=runtime.generator(5)),
                       torch.rand(3, generator=runtime.generator(5)))
    with pytest.raises(ValueError, match="seed"):
        runtime.seed_everything(-1)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with runtime.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    runtime.atomic_write_text(target, "ok")
    assert target.read_text() == "ok"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.parametrize("paper, ours, kwargs, expected", [
    (50, 55, dict(tol=10), "reproduced"),
    (50, 65, dict(tol=10, partly_tol=20), "partly"),
    (50, 80, dict(tol=10, partly_tol=20), "not reproduced"),
    (2.0, 2.1, dict(tol=0.1, relative=True), "reproduced"),
    (True, False, {}, "not reproduced"),
    (None, 3, {}, "no paper value"),
    (1.0, float("nan"), dict(tol=1), "not reproduced"),
    (0.8, 0.9, dict(at_least=True), "reproduced"),
    (0.8, 0.75, dict(tol=0.02, partly_tol=0.1, at_least=True), "partly"),
    (0.8, 0.5, dict(at_most=True), "reproduced"),
])
def test_verdicts(paper, ours, kwargs, expected):
    assert verdict(paper, ours, **kwargs) == expected


def test_recorder_writes_schema(tmp_path):
    path = tmp_path / "r" / "results.json"
    rec = Recorder("00_x", profile="smoke", device="cpu", seed=1, results_path=path,
                   parameters={"a": 1}, glue=False)
    rec.data_source("toy", "generated")
    rec.value("acc", torch.tensor(0.5))
    rec.score("row", "a claim", 1.0, 1.05, tol=0.1)
    with pytest.raises(ValueError, match="glue name 'acc' is already used"):
        rec.value("acc", 1.0)
    with pytest.raises(ValueError, match="twice"):
        rec.score("row", "again", 1, 1)
    saved = json.loads(path.read_text()) if rec.save() else None
    assert saved["values"]["acc"] == 0.5 and saved["data"] == {"toy": "generated"}
    assert saved["scorecard"][0]["verdict"] == "reproduced" and saved["wall_time_s"] >= 0
    assert set(saved["scorecard"][0]) == {"id", "claim", "paper", "ours", "verdict", "note"}
    assert all(r["verdict"] in VERDICTS for r in saved["scorecard"])


def _tiny_split():
    x = torch.zeros(6, 1, 2, 2, dtype=torch.uint8)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    full = TensorSet(x, y)
    return Split(retain=full.subset(torch.arange(4)), forget=full.subset(torch.arange(4, 6)),
                 test=full, num_classes=2)


def test_split_train_and_retain_free_view():
    split = _tiny_split()
    assert len(split.train) == 6 and split.counts()["forget"] == 2
    free = split.without_retain()
    assert len(free.forget) == 2 and len(free.test) == 6
    with pytest.raises(RetainAccessError):
        free.retain
    with pytest.raises(RetainAccessError):
        free.train


def test_split_rejects_empty_forget_set():
    split = _tiny_split()
    with pytest.raises(ValueError, match="forget set is empty"):
        Split(retain=split.retain, forget=split.retain.subset(torch.tensor([], dtype=torch.long)),
              test=split.test, num_classes=2)


def test_single_threaded_limits_the_pools_only_inside_the_call():
    import numpy as np
    from threadpoolctl import threadpool_info

    from unlearnkit.runtime import single_threaded

    np.ones((64, 64)) @ np.ones((64, 64))  # make sure numpy's BLAS is loaded
    before = {(p["user_api"], p["filepath"]): p["num_threads"] for p in threadpool_info()}

    @single_threaded
    def inside():
        return {p["num_threads"] for p in threadpool_info()}

    assert inside() == {1}
    assert {(p["user_api"], p["filepath"]): p["num_threads"] for p in threadpool_info()} == before
