"""Every chapter of _toc.yml runs at the smoke profile through papermill; the book builds.

Each chapter is executed once per session (fixture ``smoke_runs`` in conftest.py); each test then checks
invariants on one chapter's results JSON, and the last ones build the book from those
executed notebooks and read the HTML for signs that something did not render.
"""

import json
import math
import re
from pathlib import Path

import pytest

from unlearnkit import parameters, runner
from unlearnkit import facts
from unlearnkit.experiments import tasks
from unlearnkit.record import SCORE_FIELDS, VERDICTS

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = parameters.toc_chapters(ROOT)
pytestmark = pytest.mark.chapters

# Scorecard ids each chapter must report (from the issues).
REQUIRED_IDS = {
    "00_setup": {"original_test_accuracy", "mia_loss_logreg_original", "mia_efficacy_svc_original",
                 "mia_entropy_logreg_original"},
    "01_distributional": {"frontier_max_abs_error", "gauss_low_random", "gauss_low_selective",
                          "gauss_high_random", "gauss_high_selective", "sms_random", "sms_selective",
                          "toxic_random", "toxic_selective", "cifar_cat_random", "cifar_cat_selective"},
    "02_dlfd": {"nomus_original", "nomus_retrain", "nomus_dlfd", "nomus_dlfd_released",
                "nomus_best_baseline", "dlfd_beats_baselines", "ot_term_effect"},
    "03_mumis": {"full_class_avg_gap_mumis", "full_class_fa_mumis", "random_subset_avg_gap_mumis",
                 "speedup_vs_retrain", "sensitivity_gap_trained_vs_init", "mumis_beats_baselines_full_class"},
    "04_head-to-head": {"dlfd_beats_its_baselines", "mumis_beats_its_baselines", "mumis_speedup_full_class"},
    "05_speed": {"benchmarks_present"},
}


def _finite_numbers(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_numbers(v) for v in value)
    return False


def _band(pair):
    """A row's stored band ``[low, high]``; a null end is unbounded."""
    return (-math.inf if pair[0] is None else pair[0], math.inf if pair[1] is None else pair[1])


def recomputed_verdict(row: dict) -> str:
    """The verdict of a scorecard row from the row's own numbers, by the rule of chapter 0
    (written here again, independently of :mod:`unlearnkit.record`)."""
    test = row["test"]
    if test == "computed":
        return row["verdict"]
    if test == "paired":
        low, high = row["paired_low"], row["paired_high"]
        if row["n"] == 0:
            return "not measured"
        if row["n"] == 1:
            return "single run"
        # an all-must-hold claim: the deciding rival's interval is above zero only if all are
        return "reproduced" if low > 0 else "not reproduced" if high < 0 else "inconclusive"
    if row["paper"] is None:
        return "no paper value"
    if row["ours"] is None:
        return "not measured"
    if test == "setting":
        assert row["setting"] != row["paper_setting"]
        return "different setting"
    if test == "exact":
        return "reproduced" if row["paper"] == row["ours"] else "not reproduced"
    low, high = (row["ours"], row["ours"]) if test == "point" else (row["ci_low"], row["ci_high"])
    if low is None:
        return "single run"
    band = _band(row["band"])
    partly = _band(row["partly_band"]) if row["partly_band"] else None
    inside = lambda b: b[0] <= low and high <= b[1]  # noqa: E731
    if inside(band):
        return "reproduced"
    if partly and inside(partly):
        return "partly"
    if test == "point" or high < band[0] or low > band[1]:
        return "not reproduced"
    return "inconclusive"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapter_smoke_results(smoke_runs, stem):
    _, runs = smoke_runs
    results = json.loads(runs[stem].results.read_text())
    assert results["chapter"] == stem and results["profile"] == "smoke"
    assert {"device", "seed", "data", "parameters", "values", "scorecard", "wall_time_s", "models",
            "config"} <= set(results)
    assert results["data"], "a chapter must say where its data came from"
    assert results["parameters"]["profile"] == "smoke"
    assert results["wall_time_s"] > 0
    ids = [row["id"] for row in results["scorecard"]]
    assert len(ids) == len(set(ids))
    assert REQUIRED_IDS.get(stem, set()) <= set(ids), f"missing scorecard ids: {REQUIRED_IDS[stem] - set(ids)}"
    for row in results["scorecard"]:
        assert set(row) == set(SCORE_FIELDS)
        assert row["verdict"] in VERDICTS
        assert row["ours"] is not None or row["verdict"] == "not measured", f"{row['id']} has no measured value"
        assert (row["n"] >= 1 or row["verdict"] == "not measured") and row["rule"], \
            f"{row['id']} does not say what its verdict rests on"
        assert row["paper"] is None or row["arxiv"], f"{row['id']} quotes a value without its source"
        assert facts.fact(row["fact"]), f"{row['id']} names no fact of unlearnkit.facts"
        if row["ci_low"] is not None and row["test"] != "paired" and not row["clipped"]:
            assert row["ci_low"] <= row["ours"] <= row["ci_high"] and row["n"] >= 2
        if results["dry_run"] is False:
            assert row["verdict"] == recomputed_verdict(row), f"{row['id']}: {row['verdict']} from its own numbers?"
    for model in results["models"]:
        assert {"role", "task", "seed", "cache_key", "cache_hit", "train_seconds", "test_accuracy"} <= set(model)
        assert 0 <= model["test_accuracy"] <= 1
    assert _finite_numbers(results["values"])


def test_book_builds_warning_clean(smoke_book):
    assert (smoke_book / "index.html").is_file()
    for stem in CHAPTERS:
        assert (smoke_book / "chapters" / f"{stem}.html").is_file()


@pytest.mark.parametrize("stem", CHAPTERS)
def test_book_page_has_no_errors_or_unrendered_glue(smoke_book, stem):
    page = (smoke_book / "chapters" / f"{stem}.html").read_text()
    for marker in ("Traceback (most recent call last)", "output traceback", "output error"):
        assert marker not in page, f"{stem} shows an error output ({marker!r})"
    assert not re.search(r"\{glue(:\w+)?\}`", page), "a glue reference was not rendered"
    assert "scorecard" in page.lower(), "every chapter ends with its scorecard"


@pytest.mark.chapters
def test_head_to_head_runs_a_plugin_method_with_the_researchers_parameters(tmp_path, monkeypatch):
    """Bring your own method: a plugin file, a method list, one seed and a learning rate of FT."""
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    overrides = {"plugins": [str(ROOT / "examples" / "max_entropy.py")], "methods": ["max_entropy", "finetune"],
                 "n_seeds": 1, "method_overrides": {"finetune": {"lr": 0.02}}}
    result = runner.run_chapter("04_head-to-head", profile="smoke", out=tmp_path / "out", overrides=overrides)
    results = json.loads(result.results.read_text())
    runs = results["tables"]["ch4-runs"]
    assert {r["method"] for r in runs} == {"original", "retrain", "max_entropy", "finetune", "mumis", "dlfd"}
    assert {r["seed"] for r in runs} == {0} and results["config"]["protocol"]["seeds"] == 1
    ft_rates = sorted({json.loads(r["settings"])["lr"] for r in runs if r["method"] == "finetune" and r["pick"] == "grid"})
    factors = tasks.protocol("smoke").grid.lr_factors
    assert ft_rates == sorted(float(f"{0.02 * f:.6g}") for f in factors), "the grid scales the given learning rate"
    assert results["config"]["method_overrides"] == {"finetune": {"lr": 0.02}}
    assert results["config"]["plugin_methods"] == ["max_entropy"]
    assert "max_entropy" in {r["method"] for r in results["tables"]["ch4-picks"]}, "the plugin was tuned like the rest"


@pytest.mark.parametrize("stem", ["01_distributional", "02_dlfd", "03_mumis", "04_head-to-head"])
def test_the_experiment_is_shown(stem):
    """No cell hides its code from the page for good; each paper chapter shows at least two
    cells that compose the package's API (bookkeeping lives in ``remove-cell`` cells)."""
    nb = parameters.read_notebook(ROOT / "chapters" / f"{stem}.md")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [c for c in code if "remove-input" in c.metadata.get("tags", [])]
    visible = [c for c in code if not c.metadata.get("tags")]
    composing = [c for c in visible
                 if any(f"{module}." in c.source for module in ("ch1", "ch2", "ch3", "ch4", "harness", "tasks"))]
    assert len(composing) >= 2, f"{stem} shows {len(composing)} experiment cells"
    assert not [c for c in visible if "rec." in c.source], "bookkeeping belongs in a remove-cell cell"


def test_api_appendix_documents_the_functions_the_chapters_call(smoke_book):
    page = (smoke_book / "appendix" / "api.html").read_text()
    for name in ("unlearnkit.chapter.settings", "unlearnkit.experiments.work.Comparison",
                 "unlearnkit.experiments.harness.compare", "unlearnkit.experiments.tasks.make_problem",
                 "unlearnkit.methods.base.unlearn", "unlearnkit.methods.base.register", "unlearnkit.record.paired_tests",
                 "unlearnkit.metrics.evaluate_split", "unlearnkit.transport.ot_distance"):
        assert f'id="{name}"' in page, f"{name} has no entry in the API appendix"
    assert "Feature: the true-label probability" in page  # docstrings rendered, not only signatures
