"""The smoke book in a real browser, offline: math typeset, figures loaded, no console error.

Headless Chromium (Debian's ``chromium``, which ``.ci/run`` installs) driven by Playwright, every
page opened from ``file://`` with the network off; a screenshot of each page is saved under
``<html>/_screenshots/``. Skips, saying why, when Playwright or Chromium is missing.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from unlearnkit import figures
from unlearnkit.bookext import MATHJAX_SCRIPT

pytestmark = pytest.mark.chapters
ROOT = Path(__file__).resolve().parents[1]
PAPER_CHAPTERS = ("01_distributional", "02_dlfd", "03_mumis", "04_head-to-head")
# the flags that keep Chromium from dialling out at start-up (.library/env: machines/python.md)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PAGE_STATE = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const visible = document.querySelector('main') || document.body;
  const clone = visible.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, mjx-assistive-mml').forEach(e => e.remove());
  return {
    mathjax: !!(window.MathJax && MathJax.startup),
    mathNodes: document.querySelectorAll('.math').length,
    untypeset: [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length,
    text: clone.innerText,
    html: document.documentElement.outerHTML,
    images: [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0})),
    scorecard: !!document.querySelector('section#scorecard'),
  };
}"""


LAYOUT_STATE = r"""() => {
  const column = document.querySelector('main article.bd-article') || document.querySelector('main') || document.body;
  const box = column.getBoundingClientRect();
  const beyond = [], scrolls = [];
  for (const el of column.querySelectorAll('table, pre, div.cell_output, div.output, img, div.highlight, figure')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0) continue;  // folded away (a closed dropdown)
    const what = `${el.tagName.toLowerCase()}.${[...el.classList].join('.')} ${Math.round(r.width)} px, content `
                 + `${el.scrollWidth} px: ` + (el.getAttribute('src') || el.innerText || '').trim().slice(0, 50).replace(/\s+/g, ' ');
    if (r.right > box.right + 1 || r.left < box.left - 1) beyond.push(what);
    else if (el.scrollWidth > el.clientWidth + 1) scrolls.push(what);
  }
  return {
    column: box.width,
    beyond,
    scrolls,
    pageScrolls: document.documentElement.scrollWidth > window.innerWidth + 1,
    figures: [...column.querySelectorAll('img')].filter(i => i.naturalWidth > 300)
      .map(i => ({src: i.getAttribute('src'), shown: i.getBoundingClientRect().width, natural: i.naturalWidth})),
    findings: document.querySelectorAll('li.finding').length,
    bookRows: document.querySelectorAll('table.book-findings tbody tr').length,
    height: document.documentElement.scrollHeight,
  };
}"""
# a figure's smallest text (figures.MIN_FONT_PT at figures.DPI) stays at least a footnote's 9 px
MIN_FIGURE_SCALE = 9 / (figures.MIN_FONT_PT * figures.DPI / 72)
PHONE_PAGES = ("intro", "04_head-to-head")


def chromium_path() -> str | None:
    found = os.environ.get("UNLEARNKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return found if found and Path(found).exists() else None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make env installs it)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium on this machine: .ci/run installs Debian's chromium "
                    "(or set UNLEARNKIT_CHROMIUM to a Chromium binary)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def book_pages(html: Path) -> list[Path]:
    return [html / "intro.html", *sorted((html / "chapters").glob("*.html")),
            *sorted((html / "appendix").glob("*.html")), html / "bibliography.html"]


def open_offline(browser, page_path: Path, shots: Path, *, width: int = 1280,
                 script: str = PAGE_STATE) -> tuple[dict, list[str], list[str]]:
    """Open one page with the network off in a ``width``-pixel window: (what ``script``
    returns, console errors, blocked requests); its screenshot goes to ``shots``
    (``<page>.png``, ``<page>-<width>.png`` below 1280 pixels)."""
    context = browser.new_context(offline=True, viewport={"width": width, "height": 900})
    blocked, errors = [], []
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                  else (blocked.append(route.request.url), route.abort()))
    page = context.new_page()
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page_path.as_uri(), wait_until="load")
    state = page.evaluate(script)
    shots.mkdir(exist_ok=True)
    suffix = "" if width == 1280 else f"-{width}"
    page.screenshot(path=str(shots / f"{page_path.stem}{suffix}.png"), full_page=True)
    context.close()
    return state, errors, blocked


def test_mathjax_is_served_from_the_build_folder(smoke_book):
    page = (smoke_book / "chapters" / "01_distributional.html").read_text()
    assert MATHJAX_SCRIPT in page and "cdn.jsdelivr.net/npm/mathjax" not in page
    assert (smoke_book / "_static" / MATHJAX_SCRIPT).is_file()


def test_no_link_to_an_unconfigured_repository(smoke_book):
    for page in book_pages(smoke_book):
        html = page.read_text()
        for marker in ("github.com/unlearnkit", "colab.research.google.com", "mybinder.org"):
            assert marker not in html, f"{page.name} links to {marker}"


def test_every_page_renders_offline(browser, smoke_book, smoke_runs):
    run_folder = str(smoke_runs[0])
    machine_paths = [p for p in (str(ROOT), run_folder, str(Path.home())) if len(p) > 1]
    math_nodes = 0
    for page_path in book_pages(smoke_book):
        name = page_path.stem
        state, errors, blocked = open_offline(browser, page_path, smoke_book / "_screenshots")
        math_nodes += state["mathNodes"]
        assert not blocked, f"{name} requested the network: {blocked[:3]}"
        assert not errors, f"{name} logged console errors: {errors[:3]}"
        assert state["mathjax"] or not state["mathNodes"], f"{name} has math but MathJax did not load"
        assert state["untypeset"] == 0, f"{name}: {state['untypeset']} of {state['mathNodes']} math nodes not typeset"
        for raw in ("\\(", "\\[", "$$"):
            assert raw not in state["text"], f"{name} shows raw TeX {raw!r}"
        broken = [img["src"] for img in state["images"] if not img["ok"]]
        assert not broken, f"{name}: images failed to load: {broken}"
        assert "{glue" not in state["text"], f"{name} has an unrendered glue reference"
        for path in machine_paths:
            assert path not in state["text"], f"{name} shows the machine path {path}"
        if name in PAPER_CHAPTERS:
            assert state["scorecard"], f"{name} has no scorecard section"
    assert math_nodes > 0, "no page has math: the typesetting check proves nothing"
    assert (smoke_book / "_screenshots" / "03_mumis.png").is_file()


def test_the_check_fails_when_mathjax_comes_from_the_cdn(browser, smoke_book):
    """The offline check is not vacuous: the same page with MathJax from its CDN typesets nothing."""
    page = smoke_book / "chapters" / "03_mumis.html"
    probe = page.with_name("_cdn_probe.html")
    probe.write_text(page.read_text().replace(f"../_static/{MATHJAX_SCRIPT}",
                                              "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"))
    try:
        state, _, blocked = open_offline(browser, probe, smoke_book / "_screenshots")
    finally:
        probe.unlink()
        (smoke_book / "_screenshots" / "_cdn_probe.png").unlink(missing_ok=True)
    assert any("cdn.jsdelivr.net" in url for url in blocked)
    assert not state["mathjax"] and state["untypeset"] == state["mathNodes"] > 0


def _scorecard_rows(smoke_runs) -> dict[str, int]:
    out, _ = smoke_runs
    return {path.stem: len(json.loads(path.read_text())["scorecard"]) for path in (out / "results").glob("*.json")}


def test_main_column_holds_what_it_shows(browser, smoke_book, smoke_runs):
    """At a 1280-pixel window, on every page: no table, code block, output or figure is wider
    than the main column; every figure is shown at most a little smaller than it was drawn
    (so its smallest text stays a footnote's size); each paper chapter's findings box has a
    line per scorecard row, and the landing page a table row per row of every results file."""
    rows = _scorecard_rows(smoke_runs)
    heights = {}
    for page_path in book_pages(smoke_book):
        name = page_path.stem
        state, _, _ = open_offline(browser, page_path, smoke_book / "_screenshots", script=LAYOUT_STATE)
        heights[name] = state["height"]
        assert not state["beyond"], f"{name}: wider than its {state['column']:.0f}-pixel column: {state['beyond'][:3]}"
        assert not state["scrolls"], f"{name}: scrolls sideways in its {state['column']:.0f}-pixel column: {state['scrolls'][:3]}"
        for fig in state["figures"]:
            assert fig["shown"] <= state["column"] + 1, f"{name}: {fig['src']} is wider than the column"
            assert fig["shown"] >= MIN_FIGURE_SCALE * fig["natural"] - 1, \
                f"{name}: {fig['src']} drawn {fig['natural']} px wide is shown at {fig['shown']:.0f} px: its labels shrink below 9 px"
        if name in PAPER_CHAPTERS:
            assert state["findings"] == rows[name] > 0, f"{name}: {state['findings']} findings for {rows[name]} rows"
    assert heights["intro"] and sum(rows.values()) == open_offline(
        browser, smoke_book / "intro.html", smoke_book / "_screenshots", script=LAYOUT_STATE)[0]["bookRows"]
    (smoke_book / "_screenshots" / "heights.json").write_text(json.dumps(heights, indent=1))


@pytest.mark.parametrize("stem", PHONE_PAGES)
def test_nothing_overflows_on_a_phone(browser, smoke_book, stem):
    """At a phone's 390 pixels nothing leaves the column and the page never scrolls sideways;
    a table too wide for a phone scrolls inside its own box."""
    page_path = smoke_book / ("intro.html" if stem == "intro" else f"chapters/{stem}.html")
    state, errors, _ = open_offline(browser, page_path, smoke_book / "_screenshots", width=390, script=LAYOUT_STATE)
    assert not errors, f"{stem} at 390 px logged console errors: {errors[:3]}"
    assert not state["pageScrolls"], f"{stem} at 390 px: the page scrolls sideways"
    assert not state["beyond"], f"{stem} at 390 px: wider than its {state['column']:.0f}-pixel column: {state['beyond'][:3]}"
    assert (smoke_book / "_screenshots" / f"{page_path.stem}-390.png").is_file()
