"""chapter.settings: a chapter's parameters checked and resolved once, the object its cells, the plan
and the results file all read."""

import re
from pathlib import Path

import pytest

from unlearnkit import chapter
from unlearnkit.experiments import ch3, tasks

ROOT = Path(__file__).resolve().parents[1]


def test_parameters_resolve_to_the_profile_s_protocol_seeds_and_config():
    s = chapter.settings("03_mumis", profile="smoke", seed=5, n_seeds=3, forget_fraction=0.2, book=ROOT)
    assert s.chapter == "03_mumis" and s.profile == "smoke" and s.seeds == (5, 6, 7)
    assert s.protocol.seeds == 3 and s.protocol.grid == tasks.protocol("smoke").grid
    assert s.knobs == {"forget_fraction": 0.2}
    assert s.config == ch3.chapter_config(s.values) and "mumis" in s.config.methods
    assert s.values["method_overrides"] == {} and s.values["results_path"] == ""


def test_a_chapter_s_problems_are_specs_carrying_only_the_knobs_they_take():
    s = chapter.settings("03_mumis", profile="smoke", n_seeds=2, forget_fraction=0.2, book=ROOT)
    problems = chapter.work(s)["cifar"].problems
    assert problems == (tasks.spec("full_class", "smoke", seed=0), tasks.spec("full_class", "smoke", seed=1),
                        tasks.spec("random_subset", "smoke", seed=0, forget_fraction=0.2),
                        tasks.spec("random_subset", "smoke", seed=1, forget_fraction=0.2))
    assert s.spec("full_class", 3, forget_class=2) == tasks.spec("full_class", "smoke", seed=3, forget_class=2)


def test_a_namespace_gives_the_chapter_s_names_and_keywords_win():
    namespace = {"profile": "smoke", "seed": 2, "n_seeds": 1, "unrelated": object()}
    s = chapter.settings("mumis", namespace, seed=4, book=ROOT)
    assert s.seeds == (4,) and "unrelated" not in s.values


def test_method_overrides_remove_the_knob_they_fix_from_the_grid():
    s = chapter.settings("04_head-to-head", profile="smoke", method_overrides={"finetune": {"lr": 0.02}}, book=ROOT)
    assert s.method_overrides == {"finetune": {"lr": 0.02}}
    comparison = chapter.work(s)["head_to_head"]
    assert comparison.base == {"finetune": {"lr": 0.02}} and comparison.options["grid"] == s.protocol.grid


@pytest.mark.parametrize("parameters, error, message", [
    ({"n_seed": 2}, ValueError, "unknown parameter(s) ['n_seed']; allowed:"),
    ({"n_seeds": "2"}, TypeError, "n_seeds must be an int >= 1 or None (the profile's); got '2'"),
    ({"forget_fraction": 1.5}, ValueError, "forget_fraction"),
    ({"methods": ["no_such_method"]}, ValueError, "no_such_method"),
    ({"profile": "laptop"}, ValueError, "laptop"),
])
def test_bad_parameters_raise_naming_the_value(parameters, error, message):
    with pytest.raises(error, match=re.escape(message)):
        chapter.settings("03_mumis", **{"profile": "smoke", **parameters}, book=ROOT)


def test_the_recorder_holds_the_parameters_and_what_they_resolved_to():
    s = chapter.settings("03_mumis", profile="smoke", n_seeds=1, book=ROOT)
    results = s.recorder().results
    assert results["parameters"]["n_seeds"] == 1 and "results_path" not in results["parameters"]
    assert results["config"]["protocol"]["seeds"] == 1
    assert results["config"]["chapter"]["methods"] == list(s.config.methods)
    assert s.changes() == [] or all({"part", "setting", "value", "paper", "why"} <= set(r) for r in s.changes())


def test_a_chapter_without_a_module_has_no_config_and_no_plan():
    s = chapter.settings("05_speed", profile="smoke", book=ROOT)
    assert s.config is None and chapter.work(s).comparisons == () and chapter.work(s).trainings == ()
