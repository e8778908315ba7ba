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
    (1.0, float("nan"), dict(tol=1), "not measured"),
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
    assert {"id", "claim", "paper", "ours", "verdict", "note", "n", "ci_low", "ci_high", "rule", "basis",
            "seeds_needed", "paired_mean", "paired_low", "paired_high", "band", "partly_band"} <= set(SCORE_FIELDS)
    assert all(r["verdict"] in VERDICTS for r in saved["scorecard"])
    assert saved["models"] == [{"role": "original", "cache_key": "k1", "test_accuracy": 0.8}]
    assert saved["config"] == {"toy": {"epochs": 1, "lr": 0.1, "name": "a"}}
    assert saved["parameters"] == {"a": 1} and saved["chapter"] == "00_x"


# --- the interval verdict rule: an equivalence test ----------------------------------------------

@pytest.mark.parametrize("paper, low, high, kwargs, expected", [
    # the cases: a noisier result must not earn a better verdict
    (0.07, 1.05, 1.55, dict(tol=1 / 3, partly_tol=1.5), "partly"),
    (0.07, -3.2, 9.2, dict(tol=1 / 3, partly_tol=1.5), "inconclusive"),
    (0.784, 0.73, 0.75, dict(tol=0.03, partly_tol=0.08), "partly"),
    (0.784, 0.45, 0.95, dict(tol=0.03, partly_tol=0.08), "inconclusive"),
    # containing p is not enough: the whole interval must lie in the band
    (0.5, 0.40, 0.60, dict(tol=0.05), "inconclusive"),
    (0.5, 0.40, 0.60, {}, "inconclusive"),
    (0.5, 0.46, 0.54, dict(tol=0.05), "reproduced"),
    (0.5, 0.45, 0.55, dict(tol=0.05), "reproduced"),  # closed ends
    (0.5, 0.52, 0.56, dict(tol=0.05, partly_tol=0.1), "partly"),   # sticks out of the band, inside partly
    (0.5, 0.56, 0.70, dict(tol=0.05, partly_tol=0.1), "not reproduced"),  # outside the band, leaves partly
    (0.5, 0.56, 0.60, dict(tol=0.05, partly_tol=0.1), "partly"),
    (0.5, 0.56, 0.70, dict(tol=0.05), "not reproduced"),
    (0.5, 0.52, 0.70, dict(tol=0.05, partly_tol=0.1), "inconclusive"),   # straddles the band's edge
    # relative bands: tol × |p|
    (2.0, 2.05, 2.15, dict(tol=0.1, relative=True), "reproduced"),
    (2.0, 2.25, 2.35, dict(tol=0.1, partly_tol=0.2, relative=True), "partly"),
    # one-sided claims: the band extends to infinity on the side the claim allows
    (0.8, 0.85, 0.95, dict(at_least=True), "reproduced"),
    (0.8, 0.79, 0.95, dict(at_least=True), "inconclusive"),
    (0.8, 0.71, 0.78, dict(tol=0.02, partly_tol=0.1, at_least=True), "partly"),
    (0.8, 0.50, 0.60, dict(tol=0.02, partly_tol=0.1, at_least=True), "not reproduced"),
    (0.8, 0.95, 1.20, dict(tol=0.0, partly_tol=0.1), "not reproduced"),  # two-sided: too high is a miss
    (0.2, 0.05, 0.15, dict(at_most=True), "reproduced"),
    (0.2, 0.25, 0.30, dict(tol=0.02, partly_tol=0.1, at_most=True), "partly"),
    (0.2, 0.35, 0.40, dict(tol=0.02, partly_tol=0.1, at_most=True), "not reproduced"),
])
def test_interval_verdict_truth_table(paper, low, high, kwargs, expected):
    assert interval_verdict(paper, (low + high) / 2, low, high, **kwargs) == expected


def test_interval_verdict_without_a_number_or_an_interval():
    assert interval_verdict(0.5, 0.53, NAN, NAN, tol=0.05) == "single run"
    assert interval_verdict(0.5, 0.53, None, None, tol=0.05) == "single run"
    assert interval_verdict(0.5, NAN, NAN, NAN, tol=0.05) == "not measured"
    assert interval_verdict(0.5, None, NAN, NAN, tol=0.05) == "not measured"
    assert interval_verdict(None, 0.70, 0.40, 1.00) == "no paper value"
    assert interval_verdict(True, True, NAN, NAN) == "reproduced"
    assert interval_verdict(True, False, NAN, NAN) == "not reproduced"


RANK = {"reproduced": 0, "partly": 1}


def test_widening_an_interval_never_improves_its_verdict():
    papers = (0.0, 0.5, 2.0)
    band_kwargs = [dict(tol=0.05), dict(tol=0.05, partly_tol=0.2), dict(tol=0.1, partly_tol=0.3, relative=True),
                   dict(tol=0.02, partly_tol=0.1, at_least=True), dict(tol=0.02, partly_tol=0.1, at_most=True)]
    widths = np.linspace(0.0, 0.6, 25)
    checked = 0
    for paper in papers:
        for kwargs in band_kwargs:
            for centre in np.linspace(paper - 0.5, paper + 0.5, 41):
                verdicts = [interval_verdict(paper, centre, centre - w, centre + w, **kwargs) for w in widths]
                for narrow, wide in zip(verdicts, verdicts[1:]):
                    assert RANK.get(narrow, 2) <= RANK.get(wide, 2), (paper, kwargs, centre, narrow, wide)
                    checked += 1
    assert checked > 10_000


@pytest.mark.parametrize("low, high, n, expected", [
    (0.01, 0.05, 3, "reproduced"), (-0.05, -0.01, 3, "not reproduced"), (-0.01, 0.05, 3, "inconclusive"),
    (0.0, 0.05, 3, "inconclusive"), (NAN, NAN, 1, "single run"), (NAN, NAN, 0, "not measured"),
])
def test_paired_verdict(low, high, n, expected):
    assert record.paired_verdict(low, high, n=n) == expected


def test_seeds_needed_is_the_least_count_whose_half_width_decides():
    from scipy import stats

    mean, sd, edge = 0.30, 0.2, 0.5
    n = record.seeds_needed(mean, sd, [edge, -math.inf])
    half = lambda k: stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k)  # noqa: E731
    assert half(n) < edge - mean <= half(n - 1)
    assert record.seeds_needed(0.5, 0.2, [0.5]) is None  # on the edge: no count decides
    assert record.seeds_needed(0.3, 0.2, [0.3 + 1e-6], most=50) is None


def test_rule_text_names_the_seeds_and_the_bands():
    assert record.rule_text(n=3, tol=0.05, partly_tol=0.1) == "95% t-interval over 3 seeds vs p ± 0.05, partly p ± 0.1"
    assert record.rule_text(n=1, tol=0.02) == "single value (n = 1) vs p ± 0.02"
    assert record.rule_text(n=3, tol=0.1, relative=True) == "95% t-interval over 3 seeds vs p ± 0.1 × |p|"
    assert record.rule_text(n=3, at_least=True) == "95% t-interval over 3 seeds vs at least p − 0"
    assert record.rule_text(n=2, tol=0.01, at_most=True) == "95% t-interval over 2 seeds vs at most p + 0.01"
    assert record.rule_text(n=3, exact=True) == "exact match"
    for words in ("whole interval lies inside the tolerance band", "Inconclusive", "paired difference",
                  "never earns a better verdict", "different setting", "not measured", "single run"):
        assert words in record.VERDICT_RULE


# --- Recorder.score and friends -----------------------------------------------------------------

T_975_2 = 4.302652729911275  # Student t quantile, 0.975, 2 degrees of freedom


def test_score_with_values_stores_the_mean_its_t_interval_and_its_bands():
    rec = _recorder()
    row = rec.score("gap", "a gap", 0.6, values=[0.5, 0.6, 0.7], tol=0.05, fact=FACT)
    half = T_975_2 * 0.1 / math.sqrt(3)
    assert row["n"] == 3 and row["ours"] == pytest.approx(0.6)
    assert row["ci_low"] == pytest.approx(0.6 - half) and row["ci_high"] == pytest.approx(0.6 + half)
    assert row["verdict"] == "inconclusive" and row["arxiv"] == facts.fact(FACT).citation
    assert row["band"] == pytest.approx([0.55, 0.65]) and row["partly_band"] is None
    assert row["seeds_needed"] == record.seeds_needed(0.6, 0.1, [0.55, 0.65]) > 3
    assert row["rule"] == "95% t-interval over 3 seeds vs p ± 0.05" and row["test"] == "equivalence"
    tight = rec.score("tight", "tight", 0.6, values=[0.59, 0.6, 0.61], tol=0.05, fact=FACT)
    assert tight["verdict"] == "reproduced" and tight["seeds_needed"] is None
    far = rec.score("far", "far", 0.95, values=[0.5, 0.6, 0.7], tol=0.05, partly_tol=0.2, fact=FACT)
    assert far["verdict"] == "not reproduced"
    # values may come as numpy scalars or tensors; NaNs (failed seeds) are dropped and counted
    odd = rec.score("odd", "odd", 0.6, values=[np.float64(0.5), torch.tensor(0.7), float("nan")], fact=FACT)
    assert odd["n"] == 2 and odd["ours"] == pytest.approx(0.6) and odd["dropped"] == 1
    gone = rec.score("gone", "gone", 0.6, values=[float("nan"), None], fact=FACT)
    assert gone["verdict"] == "not measured" and gone["n"] == 0 and gone["dropped"] == 2
    assert list(rec.scorecard_frame().columns) == list(SCORE_FIELDS)


def test_score_clips_the_interval_to_the_metric_range():
    rec = _recorder()
    row = rec.score("acc", "an accuracy", 99.0, values=[99.8, 97.0, 100.0], tol=5, fact=FACT, bounds=(0, 100))
    assert row["ci_high"] == 100 and row["clipped"] is True and row["ci_low"] < 97.0
    inside = rec.score("acc2", "an accuracy", 50.0, values=[49.0, 50.0, 51.0], tol=5, fact=FACT, bounds=(0, 100))
    assert inside["clipped"] is False


def test_score_with_one_seed_or_a_deterministic_value():
    rec = _recorder()
    row = rec.score("one", "one seed", 0.5, values=[0.58], tol=0.05, partly_tol=0.1, fact=FACT)
    assert row["n"] == 1 and row["ours"] == pytest.approx(0.58)
    assert row["ci_low"] is None and row["ci_high"] is None  # NaN stored as JSON null
    assert row["verdict"] == "single run" and row["rule"].endswith("(the mean alone: partly)")
    single = rec.score("single", "one run", 0.5, 0.52, n=1, tol=0.05, fact=FACT)
    assert single["verdict"] == "single run"
    exact = rec.score("exact", "a closed form", 0.0, 1e-6, tol=1e-4, fact=FACT)
    assert exact["verdict"] == "reproduced" and exact["test"] == "point"
    flag = rec.score("flag", "a yes/no claim", True, True, n=3, fact=FACT)
    assert flag["verdict"] == "reproduced" and flag["rule"] == "exact match" and flag["n"] == 3
    with pytest.raises(ValueError, match="needs its per-seed values="):
        rec.score("mean_only", "a mean over seeds without its values", 0.5, 0.52, n=3, tol=0.05, fact=FACT)
    computed = rec.score("ratio", "a ratio", 10.0, 3.0, fact=FACT, verdict_override="partly", note="ratio ≥ 2")
    assert computed["verdict"] == "partly" and computed["rule"] == "computed: ratio ≥ 2"
    with pytest.raises(ValueError, match="verdict 'maybe' not one of"):
        rec.score("bad", "bad", 1.0, 1.0, fact=FACT, verdict_override="maybe")


def test_a_number_from_another_setting_is_context_not_a_match():
    rec = _recorder()
    fact_id = "mumis.table1.cifar100.mumis_gap"
    with pytest.raises(ValueError, match="was measured at 'cifar100 · resnet18'; pass setting="):
        rec.score("gap", "gap", values=[0.07, 0.07, 0.07], fact=fact_id, tol=1.0)
    other = rec.score("gap", "gap", values=[0.07, 0.07, 0.07], fact=fact_id, tol=1.0, setting="cifar10 · small_cnn")
    assert other["verdict"] == "different setting" and other["paper_setting"] == "cifar100 · resnet18"
    assert other["ci_low"] == pytest.approx(0.07) and other["basis"] == "paper"
    same = rec.score("gap2", "gap", values=[0.06, 0.07, 0.08], fact=fact_id, tol=1.0, setting="cifar100 · resnet18")
    assert same["verdict"] == "reproduced"
    assert "disputed" in facts.fact("dlfd.claim.beats_baselines").basis


def test_paired_rows_need_every_rival_beaten_on_the_same_seeds():
    rec = _recorder()
    ours = {0: 0.80, 1: 0.82, 2: 0.81}
    clear = {0: 0.70, 1: 0.71, 2: 0.72}
    close = {0: 0.79, 1: 0.83, 2: 0.80, 3: 0.99}   # seed 3 has no partner: left out of the pairs
    both = rec.paired("beats", "ours beats both", ours, {"Clear": clear, "Close": close}, higher_is_better=True,
                      fact="mumis.abstract.beats_sota")
    assert both["verdict"] == "inconclusive" and both["rival"] == "Close" and both["n"] == 3
    assert both["paired_mean"] == pytest.approx(0.0033333, abs=1e-6) and both["paired_low"] < 0 < both["paired_high"]
    assert both["test"] == "paired" and "vs Clear" in both["note"]
    won = rec.paired("won", "ours beats one", ours, {"Clear": clear}, higher_is_better=True, fact="mumis.abstract.beats_sota")
    assert won["verdict"] == "reproduced" and won["paired_low"] > 0
    lost = rec.paired("lost", "lower is better", ours, {"Clear": clear, "Close": close}, higher_is_better=False,
                      fact="mumis.abstract.beats_sota")
    assert lost["verdict"] == "not reproduced" and lost["rival"] == "Clear" and lost["paired_high"] < 0
    one = rec.paired("one", "one seed", {0: 1.0}, {"X": {0: 0.0}}, higher_is_better=True, fact="mumis.abstract.beats_sota")
    assert one["verdict"] == "single run"
    with pytest.raises(ValueError, match="at least one rival"):
        rec.paired("none", "no rival", ours, {}, higher_is_better=True, fact="mumis.abstract.beats_sota")


def test_score_quotes_its_fact_and_refuses_an_unknown_one():
    rec = _recorder()
    quoted = rec.score("gap", "MU-Mis's Avg. Gap on CIFAR-10 random 10%", values=[1.0, 2.0],
                       fact="mumis.random_subset.cifar10.mumis_gap", tol=1.0, setting="cifar10 · resnet18")
    assert quoted["paper"] == facts.value("mumis.random_subset.cifar10.mumis_gap") == 1.64
    assert quoted["fact"] == "mumis.random_subset.cifar10.mumis_gap"
    assert quoted["arxiv"] == "arXiv:2402.15109v3, random-subset results (CIFAR-10, 10%, ResNet-18)"
    computed = rec.score("ratio", "a quantity computed from facts", 2.0, 2.0, fact="mumis.table1.cifar100.speedup",
                         setting="cifar100 · resnet18 · 182-epoch retrain on a GPU")
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


def test_a_row_records_whether_its_verdict_hangs_on_tuning():
    rec = _recorder()
    rule = {0: 1.6, 1: 1.7, 2: 1.65}
    same = rec.score("same", "gap", 1.64, values=rule, oracle_values={0: 1.62}, fact=FACT, tol=0.5, partly_tol=2)
    assert same["verdict"] == "reproduced" and same["pick_sensitive"] is False and same["oracle_seeds"] == 1
    ruined = rec.score("ruined", "gap", 1.64, values=rule, oracle_values={0: 5.0}, fact=FACT, tol=0.5, partly_tol=2)
    assert ruined["pick_sensitive"] is True and ruined["oracle_verdict"] == "not reproduced"
    assert ruined["rule_verdict_same_seeds"] == "reproduced"  # the rule's pick judged on the oracle's seed
    both = rec.score("both", "gap", 1.64, values=rule, oracle_values={0: 1.6, 1: 1.7, 2: 1.64}, fact=FACT, tol=0.5)
    assert both["oracle_seeds"] == 3 and both["oracle_verdict"] == "reproduced"
    with pytest.raises(TypeError, match="needs values= as"):
        rec.score("list", "gap", 1.64, values=[1.6, 1.7], oracle_values={0: 1.6}, fact=FACT, tol=0.5)
    flipped = rec.paired("flip", "a beats b", {0: 1.0, 1: 2.0, 2: 3.0}, {"B": {0: 0.5, 1: 1.5, 2: 2.5}},
                         oracle=({0: 0.4}, {"B": {0: 0.5}}), higher_is_better=True, fact="mumis.abstract.beats_sota")
    assert flipped["verdict"] == "reproduced" and flipped["oracle_verdict"] == "not reproduced"
    assert flipped["pick_sensitive"] is True and "hangs on tuning" in record.scorecard_html([flipped])
