"""The book's Sphinx extension (MathJax from a package) and the execution-statistics reader."""

import json

from unlearnkit import bookext
from unlearnkit.record import Recorder, execution_stats
from unlearnkit.runtime import source_commit


def test_mathjax_copy_holds_the_entry_script_and_its_components_only(tmp_path):
    target = bookext.copy_mathjax(tmp_path / "mathjax" / "es5")
    assert (tmp_path / bookext.MATHJAX_SCRIPT).is_file()
    assert (target / "output" / "chtml").is_dir() and (target / "input" / "tex").is_dir()
    assert not (target / "tex-svg.js").exists(), "other combined entry scripts are not copied"
    assert sorted(p.name for p in target.glob("*.js")) == ["tex-mml-chtml.js"]


class _Config:
    mathjax_path = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"


def test_the_build_points_mathjax_at_the_static_folder():
    config = _Config()
    bookext._use_local_mathjax(None, config)
    assert config.mathjax_path == bookext.MATHJAX_SCRIPT and not config.mathjax_path.startswith("http")


def test_duplicate_scripts_are_kept_once_and_the_theme_gets_a_mode():
    from sphinx.builders.html._assets import _JavaScript

    scripts = [_JavaScript(None, body="const A = 1"), _JavaScript("", body="const A = 1"), _JavaScript("x.js")]
    context = {"script_files": scripts, "default_mode": ""}
    bookext._clean_page(None, "page", "page.html", context, None)
    assert [s.filename for s in context["script_files"]] == [None, "x.js"]
    assert context["default_mode"] == "light"


def test_results_carry_commit_and_finish_time_and_feed_the_execution_table(tmp_path):
    rec = Recorder("03_mumis", profile="smoke", device="cpu", seed=0, results_path=tmp_path / "03_mumis.json",
                   glue=False)
    rec.models([{"cache_key": "a", "cache_hit": False}, {"cache_key": "b", "cache_hit": True},
                {"cache_key": "c", "cache_hit": True}])
    saved = rec.save()
    assert saved["commit"] == source_commit() and saved["commit"] != ""
    assert saved["finished"].endswith("+00:00")
    (tmp_path / "notes.txt").write_text("not a results file")
    table = execution_stats(tmp_path)
    assert table.to_dict("records") == [{"chapter": "03_mumis", "profile": "smoke", "device": "cpu",
                                         "wall_time_s": saved["wall_time_s"], "finished": saved["finished"],
                                         "commit": saved["commit"], "models_trained": 1, "models_cached": 2}]
    assert execution_stats(None).empty and list(execution_stats(None).columns) == list(table.columns)
    assert json.loads((tmp_path / "03_mumis.json").read_text())["commit"] == saved["commit"]


def test_scorecard_html_shows_the_full_claim_interval_and_a_badge():
    from unlearnkit.record import VERDICT_COLOURS, format_number, scorecard_html

    claim = "MU-Mis's gap to Retrain is < 1 point on every one of the paper's three forgetting scenarios"
    rows = [{"claim": claim, "paper": 0.01, "ours": 0.0667, "n": 3, "ci_low": -0.013, "ci_high": 0.147,
             "verdict": "partly", "arxiv": "arXiv:2402.00000v2", "note": "interval rule"},
            {"claim": "no paper value", "paper": None, "ours": True, "n": 1, "ci_low": None, "ci_high": None,
             "verdict": "no paper value", "arxiv": None, "note": "", "fact": "mumis.table1.cifar100.mumis_gap"}]
    page = scorecard_html(rows)
    assert "MU-Mis&#x27;s gap to Retrain is &lt; 1 point on every one of the paper&#x27;s three" in page
    assert "0.0667 [-0.013, 0.147] <small>n = 3</small>" in page
    assert VERDICT_COLOURS["partly"] in page and page.count("<tr>") == 3  # header + two rows
    assert "<td>–</td><td>yes <small>n = 1</small></td><td><small>points (Avg. Gap)</small></td>" in page
    assert [format_number(v) for v in (12345, 0.5, 2e-5, 1e6, float("nan"))] == ["12,345", "0.5", "2.00e-05",
                                                                               "1.00e+06", "–"]


def test_config_rows_flatten_every_leaf():
    from unlearnkit.record import config_rows

    rows = config_rows({"protocol": {"seeds": 3, "grid": {"lr_factors": [0.3, 1.0], "knobs": {}}},
                        "plugin_methods": []})
    assert rows == [{"part": "protocol", "setting": "seeds", "value": "3"},
                    {"part": "protocol", "setting": "grid.lr_factors", "value": "[0.3, 1.0]"},
                    {"part": "protocol", "setting": "grid.knobs", "value": "{}"},
                    {"part": "plugin_methods", "setting": "–", "value": "[]"}]


def test_the_methods_appendix_is_written_from_the_registry():
    from unlearnkit.methods import available_methods, get_method

    for name in available_methods():
        entry = bookext.method_markdown(name)
        spec = get_method(name)
        assert f"**{spec.label}** (`{name}`" in entry and spec.idea in entry
        for key, value in spec.config.defaults("paper").items():
            assert f"| `{key}` |" in entry and f"`{value!r}` |" in entry
        assert f"def {spec.run.__name__}(" in entry
        assert ("× R / " in entry) == bool(spec.passes)


# --- the findings boxes ({chapter-findings}, {book-findings}) -------------------------------------------

import io
import re

import pytest


def _row(row_id, verdict, *, claim=None, paper=0.5, ours=0.42, low=0.4, high=0.44, test="equivalence"):
    return {"id": row_id, "claim": claim or f"claim of {row_id}", "paper": paper, "ours": ours, "n": 3,
            "ci_low": low, "ci_high": high, "verdict": verdict, "test": test, "note": "", "arxiv": "arXiv:0000.0000v1"}


FAKE_RUNS = {
    "01_alpha": {"profile": "smoke", "device": "cpu", "finished": "2026-12-07T02:28:37+00:00", "commit": "abc1234",
                 "scorecard": [_row("a_one", "reproduced", claim="A's gap is < 1 point | *not* markdown"),
                               _row("a_two", "not reproduced", ours=0.9, low=0.85, high=0.95),
                               _row("a_three", "inconclusive", test="paired", ours=0.01, low=-0.2, high=0.3)]},
    "02_beta": {"profile": "smoke", "device": "cuda", "finished": "2026-12-08T10:00:00+00:00", "commit": "def5678",
                "scorecard": [_row("b_one", "reproduced"), _row("b_two", "partly", low=None, high=None)]},
}


def _fake_results(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in FAKE_RUNS.items():
        (folder / f"{stem}.json").write_text(json.dumps({"chapter": stem, **data}))
    return folder


def test_findings_helpers_count_verdicts_in_the_rule_order_and_show_our_interval():
    rows = [row for data in FAKE_RUNS.values() for row in data["scorecard"]]
    assert bookext.verdict_counts(rows) == [("reproduced", 2), ("partly", 1), ("inconclusive", 1),
                                            ("not reproduced", 1)]
    assert bookext.ours_text(FAKE_RUNS["01_alpha"]["scorecard"][1]) == "0.9 [0.85, 0.95]"
    assert bookext.ours_text(FAKE_RUNS["01_alpha"]["scorecard"][2]) == "Δ 0.01 [-0.2, 0.3]"
    assert bookext.ours_text(FAKE_RUNS["02_beta"]["scorecard"][1]) == "0.42"
    sections = bookext.evidence_sections(["gauss_*: ch1-gaussians", "", "# a comment", "*: ch1-text"])
    assert bookext.evidence_label("gauss_low_random", sections, "ch1-scorecard") == "ch1-gaussians"
    assert bookext.evidence_label("sms_random", sections, "ch1-scorecard") == "ch1-text"
    assert bookext.evidence_label("x", [], "ch1-scorecard") == "ch1-scorecard"
    with pytest.raises(ValueError, match="row-id-pattern: label"):
        bookext.evidence_sections(["no label here"])


def test_load_results_gives_none_for_a_missing_folder_file_or_unreadable_file(tmp_path):
    folder = _fake_results(tmp_path / "results")
    (folder / "03_broken.json").write_text("{not json")
    (folder / "04_noscore.json").write_text(json.dumps({"profile": "smoke"}))
    assert bookext.load_results(folder, "01_alpha")["device"] == "cpu"
    for folder_, stem in ((folder, "09_absent"), (folder, "03_broken"), (folder, "04_noscore"), ("", "01_alpha"),
                          (None, "01_alpha"), (tmp_path / "nowhere", "01_alpha")):
        assert bookext.load_results(folder_, stem) is None


def test_the_scorecard_rows_carry_their_ids_for_the_findings_links():
    from unlearnkit.record import scorecard_html

    page = scorecard_html([_row("a_one", "reproduced"), {**_row("x", "partly"), "id": None}])
    assert f'<tr id="{bookext.row_anchor("a_one")}">' in page and 'id="score-a_one"' in page
    assert page.count("<tr") == 3 and page.count(" id=") == 1  # header, a row with an id, one without


BOOK_CONF = """extensions = ["myst_parser", "unlearnkit.bookext"]
myst_enable_extensions = ["colon_fence"]
exclude_patterns = ["_build"]
"""


def _mini_book(tmp_path, results):
    """A tiny Sphinx project: a landing page with {book-findings}, two chapters with
    {chapter-findings} and a scorecard table as scorecard_html writes it; built to HTML with
    warnings as errors and references checked."""
    from sphinx.testing.util import SphinxTestApp

    from unlearnkit.record import scorecard_html

    src = tmp_path / "src"
    (src / "chapters").mkdir(parents=True)
    (src / "conf.py").write_text(BOOK_CONF)
    (src / "_toc.yml").write_text("root: index\nchapters:\n  - file: chapters/01_alpha\n  - file: chapters/02_beta\n")
    (src / "index.md").write_text("# Landing\n\n```{toctree}\nchapters/01_alpha\nchapters/02_beta\n```\n\n"
                                  "```{book-findings}\n```\n")
    for number, stem in ((1, "01_alpha"), (2, "02_beta")):
        evidence = "a_th*: ch1-theory\n" if number == 1 else ""
        table = scorecard_html(FAKE_RUNS[stem]["scorecard"])
        (src / "chapters" / f"{stem}.md").write_text(
            f"# Chapter {number}\n\n```{{chapter-findings}} {stem}\n{evidence}```\n\n(ch{number}-theory)=\n"
            f"## Theory\n\ntext\n\n(ch{number}-scorecard)=\n## Scorecard\n\n{table}\n")
    overrides = {"unlearnkit_results": str(results) if results else "", "nitpicky": True}
    warnings = io.StringIO()
    app = SphinxTestApp("html", srcdir=src, builddir=tmp_path / "build", freshenv=True, confoverrides=overrides,
                        status=io.StringIO(), warning=warnings)
    try:
        app.build()
    finally:
        app.cleanup()  # docutils' global registries, for the next build in this process
    assert not warnings.getvalue(), warnings.getvalue()
    return tmp_path / "build" / "html"


def findings_lines(page: str) -> list[tuple[str, str, str]]:
    """``(row id, verdict, text)`` of each line of a page's "What this chapter found" box."""
    box = re.search(r'<div class="[^"]*\bfindings\b[^"]*">(.*?)</div>', page, re.S)
    assert box, "the page has no findings box"
    lines = []
    for item in re.findall(r'<li class="finding">(.*?)</li>', box.group(1), re.S):
        row_id = re.search(r'href="#score-([^"]+)"', item).group(1)
        verdict = re.search(r'data-verdict="([^"]+)"', item).group(1)
        lines.append((row_id, verdict, re.sub(r"<[^>]+>", "", item)))
    return lines


def book_findings_rows(page: str) -> list[tuple[str, str, str]]:
    """``(chapter stem, row id, verdict)`` of each body row of the landing page's findings table."""
    table = re.search(r'<table class="[^"]*\bbook-findings\b[^"]*"[^>]*>(.*?)</table>', page, re.S)
    assert table, "the page has no book findings table"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(1), re.S).group(1)
    rows = []
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        stem, row_id = re.search(r'href="[^"]*?([^/"]+)\.html#score-([^"]+)"', tr).groups()
        rows.append((stem, row_id, re.search(r'data-verdict="([^"]+)"', tr).group(1)))
    return rows


def test_the_findings_boxes_are_written_from_the_results_files(tmp_path):
    html = _mini_book(tmp_path, _fake_results(tmp_path / "results"))
    alpha = (html / "chapters" / "01_alpha.html").read_text()
    lines = findings_lines(alpha)
    assert [(i, v) for i, v, _ in lines] == [(r["id"], r["verdict"]) for r in FAKE_RUNS["01_alpha"]["scorecard"]]
    assert "A’s gap is &lt; 1 point | *not* markdown" in alpha or "A's gap is &lt; 1 point | *not* markdown" in alpha
    assert "ours 0.9 [0.85, 0.95]" in lines[1][2] and "ours Δ 0.01 [-0.2, 0.3]" in lines[2][2]
    for row_id, _, _ in lines:  # each line's row exists on the page
        assert f'<tr id="score-{row_id}">' in alpha
    box = re.search(r'<div class="[^"]*\bfindings\b[^"]*">(.*?)</div>', alpha, re.S).group(1)
    assert box.count('href="#ch1-theory"') == 1, "a_three's evidence pattern names the theory section"
    assert box.count('href="#ch1-scorecard"') == 3, "the other rows and the footer link to the scorecard"
    assert "3 claims (1 reproduced, 1 inconclusive, 1 not reproduced); profile smoke · device cpu · " \
           "finished 2026-12-07" in re.sub(r"<[^>]+>", "", box)
    beta = (html / "chapters" / "02_beta.html").read_text()
    assert [(i, v) for i, v, _ in findings_lines(beta)] == [("b_one", "reproduced"), ("b_two", "partly")]

    landing = (html / "index.html").read_text()
    expected = [(stem, r["id"], r["verdict"]) for stem, data in FAKE_RUNS.items() for r in data["scorecard"]]
    assert book_findings_rows(landing) == expected
    text = re.sub(r"<[^>]+>", "", landing)
    assert "5 claims in 2 chapters: 2 reproduced; 1 partly; 1 inconclusive; 1 not reproduced." in text
    runs = re.search(r'<table class="[^"]*\bbook-findings-runs\b.*?</table>', landing, re.S).group(0)
    runs_text = " ".join(re.sub(r"<[^>]+>", " ", runs).split())
    assert "01_alpha smoke cpu 2026-12-07T02:28:37+00:00 abc1234 3" in runs_text
    assert "02_beta smoke cuda 2026-12-08T10:00:00+00:00 def5678 2" in runs_text


def test_without_results_the_boxes_say_so_and_list_nothing(tmp_path):
    for results in (None, tmp_path / "no-such-folder"):
        html = _mini_book(tmp_path / ("none" if results is None else "missing"), results)
        for page in (html / "chapters" / "01_alpha.html", html / "index.html"):
            text = page.read_text()
            assert "are not available to this build" in text, page.name
            assert "data-verdict" not in text.split("Scorecard")[0], "no invented rows"
        assert 'class="finding"' not in (html / "chapters" / "01_alpha.html").read_text()
        assert "book-findings" not in (html / "index.html").read_text()


def test_docstring_fields_become_one_paragraph_each_and_prose_is_kept():
    from unlearnkit.bookext import docstring_fields

    lines = ["A split.", "", "retain / forget: the training set", "                 cut in two.",
             "test:   held-out data", "        of the task.", "Returns the split.", "    Code::", ""]
    assert docstring_fields(lines) == ["A split.", "", "retain / forget: the training set cut in two.", "",
                                       "test:   held-out data of the task.", "Returns the split.", "    Code::", ""]
    prose = ["Feature: the true-label probability ``softmax(f(x))_y``. Attack: ``SVC(C=3,", 'gamma="auto")``.']
    assert docstring_fields(prose) == prose  # an entry's unindented next line continues its paragraph
