"""The answer-first boxes of the smoke book match its results files.

Each paper chapter (1–4) opens, right after its rerun box, with "What this chapter found" (the
``{chapter-findings}`` directive of :mod:`unlearnkit.bookext`): one line per row of that chapter's
results-file scorecard, in its order, with its verdict, linked to the row's ``<tr id>`` on the page.
The landing page lists every scorecard row of every results file, and how each chapter was run.
Uses the session's one smoke build (``smoke_book`` / ``smoke_runs`` in conftest.py).
"""

import html
import json
import re

import pytest

from test_bookext import book_findings_rows, findings_lines
from unlearnkit import bookext, parameters

from conftest import ROOT

pytestmark = pytest.mark.chapters
PAPER_CHAPTERS = ("01_distributional", "02_dlfd", "03_mumis", "04_head-to-head")


def _results(smoke_runs, stem) -> dict:
    _, runs = smoke_runs
    return json.loads(runs[stem].results.read_text())


@pytest.mark.parametrize("stem", PAPER_CHAPTERS)
def test_book_chapter_opens_with_the_findings_of_its_own_scorecard(smoke_book, smoke_runs, stem):
    results = _results(smoke_runs, stem)
    page = (smoke_book / "chapters" / f"{stem}.html").read_text()
    lines = findings_lines(page)
    assert lines, f"{stem}: the findings box lists nothing"
    assert [(row_id, verdict) for row_id, verdict, _ in lines] == \
        [(row["id"], row["verdict"]) for row in results["scorecard"]], f"{stem}: box and results file disagree"
    for (row_id, _, text), row in zip(lines, results["scorecard"]):
        assert f"ours {bookext.ours_text(row)}" in html.unescape(text), f"{stem}: {row_id} shows another value"
        assert f'<tr id="{bookext.row_anchor(row_id)}">' in page, f"{stem}: the line of {row_id} links to no row"
    box = page.index('class="findings')
    assert page.index("Rerun this chapter") < box < page.index("tag_parameters"), \
        f"{stem}: the box is not right after the rerun box"
    assert box < page.index('id="scorecard"')


def test_book_landing_page_lists_every_row_of_every_results_file(smoke_book, smoke_runs):
    out, runs = smoke_runs
    stems = [stem for stem in parameters.toc_chapters(ROOT) if (out / "results" / f"{stem}.json").is_file()]
    assert set(PAPER_CHAPTERS) <= set(stems)
    files = {stem: json.loads((out / "results" / f"{stem}.json").read_text()) for stem in stems}
    page = (smoke_book / "intro.html").read_text()
    expected = [(stem, row["id"], row["verdict"]) for stem in stems for row in files[stem]["scorecard"]]
    assert book_findings_rows(page) == expected
    text = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(page)).split())
    counts = bookext.verdict_counts([row for data in files.values() for row in data["scorecard"]])
    summary = f"{len(expected)} claims in {len(stems)} chapters: " + " ; ".join(f"{n} {v}" for v, n in counts) + " ."
    assert summary in text, "the verdict counts disagree with the results files"
    for stem, data in files.items():
        assert f"{stem} {data['profile']} {data['device']} {data['finished']} {data['commit']} " \
               f"{len(data['scorecard'])}" in text, f"{stem}: its run line is missing"
    # each claim's link lands on its row of the chapter page
    for stem, row_id, _ in expected:
        assert f'<tr id="{bookext.row_anchor(row_id)}">' in (smoke_book / "chapters" / f"{stem}.html").read_text()
