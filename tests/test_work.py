"""The chapter plan (experiments.work) and the plan / warm commands, without a cluster: keys come
from the chapters' own builders, planning trains nothing, executing units fills the same cache
entries the chapter reads, two writers of one entry leave one valid entry, bad input fails early."""

import json
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from unlearnkit import runner
from unlearnkit.experiments import harness, tasks, work
from unlearnkit.train import cached_train, keys_only, load_entry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def ch3_work(cache):
    chapter_work, context = runner.chapter_work("03_mumis", profile="smoke", overrides={"methods": ["finetune"]},
                                                root=ROOT)
    return chapter_work, context


def _models(cache: Path) -> set[str]:
    return {p.stem for p in (cache / "models").glob("*.pt")}


def test_plan_lists_every_training_and_run_and_trains_nothing(ch3_work, cache):
    chapter_work, _ = ch3_work
    comparison = chapter_work["cifar"]
    units = work.plan(chapter_work)
    kinds = [u.kind for u in units]
    seeds, scenarios = 2, 2  # smoke protocol: two seeds; chapter 3: full class and random subset
    methods = [m for m in comparison.methods if m != "retrain"]
    grid_points = {m: len(comparison.grid.candidates(m, "smoke", comparison.base.get(m))) for m in methods}
    assert kinds.count("train") == seeds + seeds * scenarios  # an original per seed, a retrain per problem
    assert kinds.count("run") == scenarios * sum(grid_points.values())
    assert kinds.count("picks") == scenarios * seeds * len(methods)
    assert not any(u.cached for u in units) and _models(cache) == set()
    ids = [u.id for u in units]
    assert all(ids.index(d) < ids.index(u.id) for u in units for d in u.deps), "every unit after what it needs"
    assert all(u.deps for u in units if u.kind != "train")


def test_plan_keys_are_the_chapter_s_cache_entries(ch3_work, cache):
    """Building a problem normally writes exactly the model entries the plan names for it."""
    chapter_work, _ = ch3_work
    spec = chapter_work["cifar"].problems[0]
    alone = work.Work("t", (replace(chapter_work["cifar"], problems=(spec,), methods=("retrain",)),))
    planned = {u.key for u in work.plan(alone)}
    tasks.build(spec, device="cpu")
    assert _models(cache) == planned
    assert all(u.cached for u in work.plan(alone))


def test_executed_units_are_what_compare_reads(ch3_work, cache):
    """Every unit done in this process, then the chapter's comparison: every run is a cache hit,
    the picks' keys resolve, and a second pass does nothing."""
    chapter_work, context = ch3_work
    units = work.plan(chapter_work)
    done = work.execute_all(units, context, report=lambda line: None)
    assert sum(d.get("trained", 0) for d in done) == sum(u.kind == "train" for u in units)
    again = work.plan(chapter_work)
    assert all(u.cached for u in again)
    assert all(u.key for u in again if u.kind == "picks"), "the grid decides the picks' keys once it is cached"
    comparison = chapter_work["cifar"]
    rows = comparison.run(comparison.build(device="cpu"), device="cpu")
    assert rows.loc[rows["pick"] != "reference", "cache_hit"].all()
    assert work.execute_all(work.without_cached(again), context) == []


def test_a_process_builds_a_problem_once_for_its_run_units(ch3_work, cache, monkeypatch):
    """Run units on one problem reuse the problem the first built (a Ray worker's memo); a
    problem of another spec pushes the oldest out after work.KEEP_PROBLEMS."""
    chapter_work, context = ch3_work
    units = work.plan(chapter_work)
    work.execute_all([u for u in units if u.kind == "train"], context, report=lambda line: None)
    built = []
    real_build = tasks.ProblemSpec.build
    monkeypatch.setattr(tasks.ProblemSpec, "build", lambda self, **kw: built.append(self.label) or real_build(self, **kw))
    monkeypatch.setattr(work, "_BUILT", type(work._BUILT)())
    runs = [u for u in units if u.kind == "run"]
    problems = {u.job[1].label for u in runs}
    done = work.execute_all(runs, context, report=lambda line: None)
    assert sum(d["runs"] for d in done) == len(runs) > len(problems) >= 2
    assert sorted(built) == sorted(problems), "each problem built once for all its run units"
    assert len(work._BUILT) == min(len(problems), work.KEEP_PROBLEMS)


def test_keys_only_refuses_to_measure_stand_ins(ch3_work):
    chapter_work, _ = ch3_work
    with keys_only():
        problem = chapter_work["cifar"].problems[0].build(device="cpu")
        with pytest.raises(RuntimeError, match="stand-ins"):
            harness.run_method(problem, "finetune", {}, profile="smoke", device="cpu")
        with pytest.raises(RuntimeError, match="stand-ins"):
            harness.reference_metrics(problem, "original", device="cpu", retain_eval=None)


def test_keys_only_trains_only_the_named_entry(cache):
    trained = []

    def fit(model):
        trained.append(1)
        return model

    with keys_only(train="none-of-these", record=(seen := [])):
        _, info = cached_train({"a": 1}, lambda: torch.nn.Linear(2, 2), fit)
    assert info["pending"] and not trained and seen[0]["hit"] is False
    digest = Path(info["path"]).stem
    with keys_only(train=digest):
        cached_train({"a": 1}, lambda: torch.nn.Linear(2, 2), fit)
    assert trained == [1] and _models(cache) == {digest}


def test_chapter_without_plan_cell_has_no_units(cache):
    chapter_work, _ = runner.chapter_work("01_distributional", profile="smoke", root=ROOT)
    assert work.plan(chapter_work) == []


WRITER = textwrap.dedent("""
    import pathlib, sys, time, torch
    from unlearnkit.train import cached_train
    folder, seed = pathlib.Path(sys.argv[1]), sys.argv[2]
    (folder / f"ready{seed}").touch()  # imported: wait for the other writer, however slow its start
    while len(list(folder.glob("ready*"))) < 2:
        time.sleep(0.01)
    start = time.time() + 1.0  # both have looked the key up (a miss) before either writes
    def fit(model):
        torch.manual_seed(int(seed))
        for p in model.parameters():
            p.data.normal_()
        torch.save(model.state_dict(), sys.argv[3])  # what this writer would store
        while time.time() < start:  # both writers finish together
            time.sleep(0.01)
        return model
    cached_train({"shared": "key"}, lambda: torch.nn.Linear(64, 64), fit)
""")


def test_two_processes_writing_one_key_leave_one_valid_entry(cache, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    mine = [tmp_path / f"writer{seed}.pt" for seed in (1, 2)]
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), str(seed), str(out)])
             for seed, out in zip((1, 2), mine)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    entries = list((cache / "models").iterdir())
    assert [p.suffix for p in sorted(entries)] == [".json", ".pt"], entries  # no temporary file left
    pt = next(p for p in entries if p.suffix == ".pt")
    entry = load_entry(pt, {"shared": "key"})
    assert entry is not None and entry["state_dict"]["weight"].shape == (64, 64)
    written = [torch.load(m)["weight"] for m in mine]
    assert not torch.equal(*written)
    assert any(torch.equal(entry["state_dict"]["weight"], w) for w in written), "one writer's whole entry"


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "unlearnkit", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_plan_cli_prints_units_as_json(cache):
    out = _cli("plan", "03_mumis", "--profile", "smoke", "-p", 'methods=["finetune"]', "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert {r["kind"] for r in rows} == set(work.KINDS) and not any(r["cached"] for r in rows)


@pytest.mark.parametrize("args, message", [
    (("plan", "no_such_chapter", "--profile", "smoke"), "unknown chapter 'no_such_chapter'; allowed: 00_setup"),
    (("warm", "03_mumis", "--profile", "smoke", "-p", "dry_run=True"), "nothing to warm"),
    (("warm", "03_mumis", "--profile", "smoke", "--address", "localhost"), "is not HOST:PORT"),
    (("plan", "03_mumis", "--profile", "smoke", "-p", "n_seedz=2"), "unknown parameter(s) ['n_seedz']"),
])
def test_bad_input_is_named_before_any_work(args, message, cache):
    out = _cli(*args)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_unreachable_address_fails_within_seconds(cache):
    import socket

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    out = _cli("warm", "03_mumis", "--profile", "smoke", "--address", f"127.0.0.1:{port}")
    assert out.returncode == 2 and f"no Ray cluster answers at '127.0.0.1:{port}'" in out.stderr, out.stderr
    assert time.perf_counter() - start < 30  # the interpreter's start included; the check itself waits ≤ 3 s
    assert not (cache / "models").exists(), "nothing ran"


def test_importing_the_package_does_not_import_ray():
    code = ("import sys, unlearnkit, unlearnkit.runner, unlearnkit.experiments.work, unlearnkit.cluster; "
            "print('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.chapters
@pytest.mark.parametrize("stem", ["00_setup", "02_dlfd", "03_mumis", "04_head-to-head"])
def test_after_the_chapter_ran_its_plan_is_all_cached(smoke_runs, stem, monkeypatch):
    """The plan names exactly the entries the chapter's run made (plan and chapter cannot drift)."""
    _, runs = smoke_runs
    runs[stem]  # noqa: B018 - runs the chapter at smoke (once per session)
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(runs.cache))
    chapter_work, _ = runner.chapter_work(stem, profile="smoke", root=ROOT)
    units = work.plan(chapter_work)
    assert units and {u.kind for u in units} == ({"train"} if stem == "00_setup" else set(work.KINDS))
    assert [u.label for u in units if not u.cached] == []


PINNED_KEYS = json.loads((ROOT / "tests" / "helpers" / "model_keys.json").read_text())
"""The model cache keys of the chapters' plans, recorded from the code before the chapters' plans
came from :func:`unlearnkit.chapter.work` (the exec of the chapters' first cells): a warm cache
stays warm across that redesign and any later one."""


@pytest.mark.parametrize("plan", sorted(PINNED_KEYS))
def test_model_cache_keys_are_pinned(plan, cache):
    stem, profile = plan.split("@")
    if profile != "smoke":
        from unlearnkit.runtime import data_root

        if not (data_root() / "cifar10-jpeg").is_dir() or not (data_root() / "CK+48").is_dir():
            pytest.skip("the offline CIFAR-10 and CK+ copies are absent")
    chapter_work, _ = runner.chapter_work(stem, profile=profile, root=ROOT)
    assert sorted(u.key for u in work.plan(chapter_work) if u.kind == "train") == PINNED_KEYS[plan]
