"""Config validation, device resolution, seeding, atomic writes, the recorder."""

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearnkit import config, facts, runtime
from unlearnkit.data.core import RetainAccessError, Split, TensorSet
from unlearnkit import record
from unlearnkit.record import SCORE_FIELDS, VERDICTS, Recorder, interval_verdict, verdict


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


FACT = "project.reference_point"  # a fact without a value: the rows give their own paper value
NAN = math.nan


def _recorder(path=""):
    return Recorder("00_x", profile="smoke", device="cpu", seed=1, results_path=path, parameters={"a": 1},
                    glue=False)


def test_recorder_writes_schema(tmp_path):
    path = tmp_path / "r" / "results.json"
    rec = _recorder(path)
    rec.data_source("toy", "generated")
    rec.value("acc", torch.tensor(0.5))
    rec.score("row", "a claim", 1.0, 1.05, tol=0.1, fact=FACT)
    with pytest.raises(ValueError, match="glue name 'acc' is already used"):
        rec.value("acc", 1.0)
    with pytest.raises(ValueError, match="scorecard id 'row' recorded twice"):
        rec.score("row", "again", 1, 1, fact=FACT)
    rec.models([{"role": "original", "cache_key": "k1", "test_accuracy": 0.8}])
    rec.config("toy", Toy())
    assert rec.save()["wall_time_s"] >= 0
    saved = json.loads(path.read_text())
    assert saved["values"]["acc"] == 0.5 and saved["data"] == {"toy": "generated"}
    assert saved["scorecard"][0]["verdict"] == "reproduced" and saved["wall_time_s"] >= 0
    assert set(saved["scorecard"][0]) == set(SCORE_FIELDS)
    assert set(SCORE_FIELDS) == {"id", "claim", "paper", "ours", "verdict", "note", "n", "ci_low", "ci_high",
                                 "rule", "fact", "arxiv"}
    assert all(r["verdict"] in VERDICTS for r in saved["scorecard"])
    assert saved["models"] == [{"role": "original", "cache_key": "k1", "test_accuracy": 0.8}]
    assert saved["config"] == {"toy": {"epochs": 1, "lr": 0.1, "name": "a"}}
    assert saved["parameters"] == {"a": 1} and saved["chapter"] == "00_x"


# --- the interval verdict rule ----------------------------------------------------------------

@pytest.mark.parametrize("paper, low, high, kwargs, expected", [
    # the paper's value inside the interval: reproduced even with no tolerance
    (0.5, 0.40, 0.60, {}, "reproduced"),
    (0.5, 0.50, 0.60, {}, "reproduced"),  # closed ends
    # the whole interval inside the tolerance band p ± tol
    (0.5, 0.52, 0.54, dict(tol=0.05), "reproduced"),
    (0.5, 0.52, 0.56, dict(tol=0.05, partly_tol=0.1), "partly"),   # sticks out of the band
    # the interval meets only the wider partly band
    (0.5, 0.56, 0.70, dict(tol=0.05, partly_tol=0.1), "partly"),
    (0.5, 0.30, 0.41, dict(tol=0.05, partly_tol=0.1), "partly"),
    (0.5, 0.56, 0.70, dict(tol=0.05), "not reproduced"),           # no partly band given
    (0.5, 0.61, 0.70, dict(tol=0.05, partly_tol=0.1), "not reproduced"),
    # relative bands: tol × |p|
    (2.0, 2.05, 2.15, dict(tol=0.1, relative=True), "reproduced"),
    (2.0, 2.25, 2.35, dict(tol=0.1, partly_tol=0.2, relative=True), "partly"),
    # one-sided claims: the band extends to infinity on the side the claim allows
    (0.8, 0.85, 0.95, dict(at_least=True), "reproduced"),
    (0.8, 0.70, 0.78, dict(tol=0.02, partly_tol=0.1, at_least=True), "partly"),
    (0.8, 0.50, 0.60, dict(tol=0.02, partly_tol=0.1, at_least=True), "not reproduced"),
    (0.8, 0.95, 1.20, dict(tol=0.0, partly_tol=0.1), "not reproduced"),  # two-sided: too high is a miss
    (0.2, 0.05, 0.15, dict(at_most=True), "reproduced"),
    (0.2, 0.25, 0.30, dict(tol=0.02, partly_tol=0.1, at_most=True), "partly"),
    (0.2, 0.35, 0.40, dict(tol=0.02, partly_tol=0.1, at_most=True), "not reproduced"),
])
def test_interval_verdict(paper, low, high, kwargs, expected):
    assert interval_verdict(paper, (low + high) / 2, low, high, **kwargs) == expected


@pytest.mark.parametrize("paper, mean, kwargs", [
    (0.5, 0.53, dict(tol=0.05)),
    (0.5, 0.58, dict(tol=0.05, partly_tol=0.1)),
    (0.5, 0.70, dict(tol=0.05, partly_tol=0.1)),
    (0.8, 0.90, dict(at_least=True)),
    (2.0, 2.1, dict(tol=0.1, relative=True)),
    (True, True, {}),
    (True, False, {}),
    (None, 0.4, {}),
])
def test_interval_verdict_without_an_interval_is_the_point_verdict(paper, mean, kwargs):
    assert interval_verdict(paper, mean, NAN, NAN, **kwargs) == verdict(paper, mean, **kwargs)


def test_interval_verdict_nan_ends_compare_the_mean_with_the_bands():
    assert interval_verdict(0.5, 0.53, NAN, NAN, tol=0.05) == "reproduced"
    assert interval_verdict(0.5, 0.58, NAN, NAN, tol=0.05, partly_tol=0.1) == "partly"
    assert interval_verdict(0.5, 0.70, NAN, NAN, tol=0.05, partly_tol=0.1) == "not reproduced"
    # an interval that contains p rescues a mean outside the band; a single value cannot
    assert interval_verdict(0.5, 0.70, 0.40, 1.00, tol=0.05) == "reproduced"
    assert interval_verdict(None, 0.70, 0.40, 1.00) == "no paper value"


def test_rule_text_names_the_seeds_and_the_bands():
    assert record.rule_text(n=3, tol=0.05, partly_tol=0.1) == "95% t-interval over 3 seeds vs p ± 0.05, partly p ± 0.1"
    assert record.rule_text(n=1, tol=0.02) == "single value (n = 1) vs p ± 0.02"
    assert record.rule_text(n=3, tol=0.1, relative=True) == "95% t-interval over 3 seeds vs p ± 0.1 × |p|"
    assert record.rule_text(n=3, at_least=True) == "95% t-interval over 3 seeds vs at least p − 0"
    assert record.rule_text(n=2, tol=0.01, at_most=True) == "95% t-interval over 2 seeds vs at most p + 0.01"
    assert record.rule_text(n=3, exact=True) == "exact match"
    assert "95% Student-t interval" in record.VERDICT_RULE


# --- Recorder.score and friends -----------------------------------------------------------------

T_975_2 = 4.302652729911275  # Student t quantile, 0.975, 2 degrees of freedom


def test_score_with_values_stores_the_mean_and_its_t_interval():
    rec = _recorder()
    row = rec.score("gap", "a gap", 0.6, values=[0.5, 0.6, 0.7], tol=0.05, fact=FACT)
    half = T_975_2 * 0.1 / math.sqrt(3)
    assert row["n"] == 3 and row["ours"] == pytest.approx(0.6)
    assert row["ci_low"] == pytest.approx(0.6 - half) and row["ci_high"] == pytest.approx(0.6 + half)
    assert row["verdict"] == "reproduced" and row["arxiv"] == facts.fact(FACT).citation
    assert row["rule"] == "95% t-interval over 3 seeds vs p ± 0.05"
    # the interval [0.35, 0.85] is too wide to lie in the band and misses p = 0.95
    far = rec.score("far", "far", 0.95, values=[0.5, 0.6, 0.7], tol=0.05, partly_tol=0.2, fact=FACT)
    assert far["verdict"] == "partly"
    # values may come as numpy scalars or tensors; NaNs (failed seeds) are dropped
    odd = rec.score("odd", "odd", 0.6, values=[np.float64(0.5), torch.tensor(0.7), float("nan")], fact=FACT)
    assert odd["n"] == 2 and odd["ours"] == pytest.approx(0.6) and odd["verdict"] == "reproduced"
    assert list(rec.scorecard_frame().columns) == list(SCORE_FIELDS)


def test_score_with_one_seed_falls_back_to_the_point_verdict():
    rec = _recorder()
    row = rec.score("one", "one seed", 0.5, values=[0.58], tol=0.05, partly_tol=0.1, fact=FACT)
    assert row["n"] == 1 and row["ours"] == pytest.approx(0.58)
    assert row["ci_low"] is None and row["ci_high"] is None  # NaN stored as JSON null
    assert row["verdict"] == "partly" and row["rule"] == "single value (n = 1) vs p ± 0.05, partly p ± 0.1"
    plain = rec.score("plain", "a derived number", 0.5, 0.52, n=3, tol=0.05, fact=FACT)
    assert plain["n"] == 3 and plain["verdict"] == "reproduced" and plain["ci_low"] is None
    flag = rec.score("flag", "a yes/no claim", True, True, n=3, fact=FACT)
    assert flag["verdict"] == "reproduced" and flag["rule"] == "exact match"
    computed = rec.score("ratio", "a ratio", 10.0, 3.0, fact=FACT, verdict_override="partly", note="ratio ≥ 2")
    assert computed["verdict"] == "partly" and computed["rule"] == "computed: ratio ≥ 2"
    with pytest.raises(ValueError, match="verdict 'maybe' not one of"):
        rec.score("bad", "bad", 1.0, 1.0, fact=FACT, verdict_override="maybe")


def test_score_quotes_its_fact_and_refuses_an_unknown_one():
    rec = _recorder()
    quoted = rec.score("gap", "MU-Mis's Avg. Gap on CIFAR-10 random 10%", values=[1.0, 2.0],
                       fact="mumis.random_subset.cifar10.mumis_gap", tol=1.0)
    assert quoted["paper"] == facts.value("mumis.random_subset.cifar10.mumis_gap") == 1.64
    assert quoted["fact"] == "mumis.random_subset.cifar10.mumis_gap"
    assert quoted["arxiv"] == "arXiv:2402.15109v3, random-subset results (CIFAR-10, 10%, ResNet-18)"
    computed = rec.score("ratio", "a quantity computed from facts", 2.0, 2.0, fact="mumis.table1.cifar100.speedup")
    assert computed["paper"] == 2.0 and computed["arxiv"].startswith("arXiv:2402.15109v3")
    with pytest.raises(KeyError, match=r"unknown fact id 'mumis.tabel1'; known ids starting with 'mumis'"):
        rec.score("typo", "a claim", 0.5, 0.5, fact="mumis.tabel1")
    with pytest.raises(TypeError, match="fact"):
        rec.score("missing", "a claim", 0.5, 0.5)  # fact= must be given
    ours = rec.score("ours", "our own number", None, 0.5, fact="mumis.abstract.beats_sota")
    assert ours["verdict"] == "no paper value" and ours["arxiv"] is None
    assert [r["id"] for r in rec.results["scorecard"]] == ["gap", "ratio", "ours"]  # refused rows left nothing


def test_facts_file_is_well_formed():
    table = facts.all_facts()
    assert len(table) > 50 and all(f.id == key for key, f in table.items())
    bib = set(re.findall(r"@\w+\{([^,]+),", (Path(__file__).resolve().parents[1] / "references.bib").read_text()))
    papers = {f.paper for f in table.values()}
    assert {"allouah2025distributional", "choi2025dlfd", "cheng2024mumis"} <= papers <= bib | {"project"}
    speedup = facts.value("mumis.table1.cifar100.retrain_seconds") / facts.value("mumis.table1.cifar100.mumis_seconds")
    assert facts.value("mumis.table1.cifar100.speedup") == pytest.approx(speedup, abs=0.01)
    assert facts.value("dlfd.claim.ot_term") is None and facts.value("dlfd.claim.beats_baselines") is True
    assert not facts.fact("dlfd.seed.nomus_097").verified and facts.fact("allouah.table2.sms.random").verified
    assert isinstance(facts.value("allouah.table2.sms.random"), int)


def test_models_are_listed_once_per_cache_key():
    rec = _recorder()
    a = {"role": "original", "task": "cifar10", "model": "small_cnn", "seed": 0, "cache_key": "aaa",
         "cache_hit": False, "train_seconds": 2.0, "test_accuracy": np.float64(0.81)}
    b = {**a, "role": "retrained", "cache_key": "bbb", "test_accuracy": 0.79}
    rec.models([a, b])
    rec.models([{**a, "seed": 5}, {**b, "cache_key": "ccc"}])  # the same original again
    assert [m["cache_key"] for m in rec.results["models"]] == ["aaa", "bbb", "ccc"]
    assert rec.results["models"][0]["seed"] == 0  # the first listing is kept
    assert type(rec.results["models"][0]["test_accuracy"]) is float
    json.dumps(rec.results["models"])


@dataclass(frozen=True)
class Nested:
    name: str = "task"
    sizes: tuple = (1, 2)
    root: Path = Path("/data")
    inner: Toy = field(default_factory=Toy)
    ratio: float = float("inf")


def test_config_stores_a_dataclass_as_plain_data():
    rec = _recorder()
    rec.config("task", Nested())
    rec.config("plain", {"lr": np.float64(0.5), "milestones": (1, 2)})
    assert rec.results["config"]["task"] == {"name": "task", "sizes": [1, 2], "root": "/data",
                                             "inner": {"epochs": 1, "lr": 0.1, "name": "a"}, "ratio": None}
    assert rec.results["config"]["plain"] == {"lr": 0.5, "milestones": [1, 2]}
    json.dumps(rec.results["config"], allow_nan=False)
    rec.config("task", {"replaced": True})
    assert rec.results["config"]["task"] == {"replaced": True}


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
