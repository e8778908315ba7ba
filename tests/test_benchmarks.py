"""The CPU benchmarks run at small sizes and write what the speed appendix reads."""

import json
import subprocess
import sys

import pytest

from unlearnkit import runtime

from conftest import ROOT, load_script


def _bench():
    return load_script("benchmarks/run.py")


def test_training_throughput_is_a_fraction_of_the_measured_gemm_rate(one_thread):
    bench = _bench()
    step, flops = bench.train_step("small_cnn", 8)
    # 15 M multiply-adds an image forward (models.py), about 3x that for forward + backward
    assert 2.5 <= flops / (8 * 2 * 15e6) <= 3.5
    rows = bench.bench_train({"small_cnn": 8})
    levers = bench.TRAIN_LEVERS["small_cnn"]
    assert {"current", "contiguous layout", "batch x2"} <= set(levers)
    assert ("bf16 autocast" in levers) == bench.bf16_supported()
    assert bench.TRAIN_VS_GEMM["small_cnn"] == levers["current"] and 0 < levers["current"] < 10
    assert [r["ratio"] for r in rows] == pytest.approx(list(levers.values()))


def test_rows_record_the_commit_and_train_vs_gemm(tmp_path, monkeypatch, one_thread):
    out = tmp_path / "latest.json"
    out.write_text(json.dumps({"meta": {}, "rows": [{"name": "old row", "ratio": 1.0}], "train_vs_gemm": {"x": 0.5}}))
    bench = _bench()
    monkeypatch.setattr(bench, "TRAIN_STEPS", {"small_cnn": 4})
    monkeypatch.setattr(sys, "argv", ["run.py", "--only", "train", "--out", str(out)])
    bench.main()
    saved = json.loads(out.read_text())
    new = [r for r in saved["rows"] if r["name"] != "old row"]
    assert new and all(r["commit"] == runtime.source_commit() for r in new)
    assert saved["meta"]["commit"] == runtime.source_commit()
    assert set(saved["train_vs_gemm"]) == {"x", "small_cnn"}, "earlier models are kept, this run's added"
    assert [r["name"] for r in saved["rows"]][0] == "old row"


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_same_code_tells_a_measurement_on_other_code():
    if _git("rev-parse", "--is-shallow-repository") == "true":
        pytest.skip("a shallow clone lacks the first commit")
    first = _git("rev-list", "--max-parents=0", "HEAD").splitlines()[0]
    assert runtime.same_code(first) is False, "the first commit's package is not this one"
    head = _git("rev-parse", "--short", "HEAD")
    edited = bool(_git("status", "--porcelain", "--untracked-files=no", "--", *runtime.CODE_PATHS))
    assert runtime.same_code(head) is (not edited)
    for unknown in (None, "", "unknown", head + "+dirty", "0000000"):
        assert runtime.same_code(unknown) is None
