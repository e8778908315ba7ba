"""Profiles as the paper profile plus a block of changes, each with its reason."""

import pytest

from unlearnkit.bookext import core_functions
from unlearnkit.config import PROFILES, Change, change_rows, with_changes
from unlearnkit.experiments import ch1, ch2, ch3, ch4, options, tasks
from unlearnkit.methods import available_methods, get_method
from unlearnkit.methods.mumis import run_mumis
from unlearnkit.record import Recorder
from unlearnkit.train import TrainConfig

CHAPTERS = (ch1, ch2, ch3, ch4)

def test_changes_apply_together_to_nested_dataclasses():
    base = {"n": 1, "train": TrainConfig(model="small_cnn", epochs=182, schedule="multistep", milestones=(91, 136))}
    block = {"train.epochs": Change(10, "short"), "train.schedule": Change("onecycle", "short"),
             "train.milestones": Change((), "no steps")}
    out = with_changes(base, block)  # epochs=10 with milestones (91, 136) alone would be invalid
    assert (out["train"].epochs, out["train"].schedule, out["train"].milestones, out["n"]) == (10, "onecycle", (), 1)
    assert base["train"].epochs == 182
    rows = change_rows(base, block, "task")
    assert rows[0] == {"part": "task", "setting": "train.epochs", "value": "10", "paper": "182", "why": "short"}

@pytest.mark.parametrize("block, error, match", [
    ({"train.epoch": Change(3, "x")}, ValueError, "epoch.*allowed: 'model', 'epochs'"),
    ({"n": 2}, TypeError, "Change"),
    ({"n": Change(1, "same")}, ValueError, "repeats the paper's value"),
])
def test_bad_profile_lines_raise(block, error, match):
    base = {"n": 1, "train": TrainConfig(model="small_cnn")}
    with pytest.raises(error, match=match):
        with_changes(base, block)

def test_a_change_needs_a_reason():
    with pytest.raises(ValueError, match="needs a reason"):
        Change(3, " ")

@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_chapter_profile_is_the_paper_profile_plus_its_block(chapter):
    assert chapter.CHANGES["paper"] == {} and chapter.profile_changes("paper") == []
    for profile in PROFILES:
        resolved = chapter.profile_config(profile)
        for row in chapter.profile_changes(profile):
            assert row["why"].strip()
            assert row["value"] != row["paper"]
        for name, change in chapter.CHANGES[profile].items():
            assert getattr(resolved, name) == change.value

def test_every_cpu_departure_of_a_method_default_has_a_reason():
    package = [m for m in available_methods() if get_method(m).run.__module__.startswith("unlearnkit.methods")]
    missing = [(name, row["setting"]) for name in package for row in get_method(name).config.changes("cpu")
               if not row["why"]]
    assert missing == []

def test_the_paper_profile_changes_nothing():
    assert options.profile_block("paper", [], available_methods()) == []
    rows = options.profile_block("cpu", ch3.profile_changes("cpu"), ("mumis",), tasks=("cifar10",))
    parts = {row["part"] for row in rows}
    assert parts == {"chapter 3", "task: cifar10", "protocol", "method: mumis"}
    assert {row["setting"] for row in rows if row["part"] == "task: cifar10"} >= {"model", "max_train"}

def test_the_shared_tasks_are_the_paper_task_plus_their_blocks():
    for profile in PROFILES:
        assert tasks.cifar10_task(profile) == with_changes(tasks.CIFAR10_PAPER, tasks.CIFAR10_CHANGES[profile])
    assert tasks.cifar10_task("paper") == tasks.CIFAR10_PAPER
    assert tasks.cifar10_task("cpu").max_train == 20_000 and tasks.protocol("cpu").oracle == "tuning_seed"

def test_the_recorder_keeps_each_line_once():
    rec = Recorder("x", profile="cpu", device="cpu", seed=0, glue=False)
    rows = options.profile_block("cpu", ch4.profile_changes("cpu"), ("finetune",))
    rec.changes(rows)
    rec.changes(rows)
    view = rec.changes_view()
    assert len(view) == len(rows) and list(view.columns) == ["this run", "paper profile", "why"]
    rec.configs(chapter=ch4.profile_config("smoke"), protocol=tasks.protocol("smoke"))
    assert set(rec.results["config"]) == {"chapter", "protocol"}

def test_the_methods_appendix_shows_the_function_that_does_the_work():
    assert run_mumis in core_functions(get_method("mumis").run)
