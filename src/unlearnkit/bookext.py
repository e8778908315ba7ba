"""Sphinx extension of the book: math typeset by a MathJax copied from an installed package.

Sphinx loads MathJax 3 from a public CDN by default, so an archived book opened without a
network shows raw TeX. This extension points ``mathjax_path`` at ``_static/mathjax`` and copies
MathJax's ``es5`` bundle there from the pinned PyPI package ``django-static-mathjax``
(MathJax 3.2.2, Apache-2.0; despite its name it depends on nothing, Django included).
Listed in ``_config.yml`` under ``sphinx.extra_extensions``.

The directive ``{methods-appendix}`` writes the methods appendix from the registry at build
time: every registered method's idea, reference, data it reads, pass budget, defaults per
profile and source code, so the page cannot disagree with the package.

The directives ``{chapter-findings} STEM`` (at the top of chapters 1–4: "What this chapter
found", one line per scorecard row) and ``{book-findings}`` (the landing page: every scorecard row
of every chapter, the counts per verdict, and the profile, device and date each chapter ran at)
are written at build time from the results files of the run being built: the folder named by the
config value ``unlearnkit_results``, which ``python -m unlearnkit build`` sets
(:func:`unlearnkit.runner.stage_book`). The chapter's scorecard is computed at the end of its own
execution, so no cell at its top could show it. Without that folder or file (a plain
``jupyter-book build .``) they show a note saying so: never invented rows, never a failed build.

Two page fixes keep the browser console clean (``tests/test_browser.py``): sphinx-thebe's
configuration script, added twice in a jupyter-book build, is kept once (a second ``const``
declaration is a script error), and the theme gets its default colour mode (``light``) where it
would otherwise log an invalid empty mode. ``static/unlearnkit.css`` (:data:`PAGE_CSS`) makes the
main column hold what it shows: code wraps at the column, tables are compact.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shutil
from pathlib import Path

from sphinx.util.docutils import SphinxDirective

MATHJAX_SCRIPT = "mathjax/es5/tex-mml-chtml.js"
"""The MathJax entry point, relative to the build's ``_static`` folder (Sphinx's rule for a relative
``mathjax_path``)."""


def mathjax_bundle() -> Path:
    """The installed ``es5`` folder of MathJax (the entry scripts, their components and fonts)."""
    spec = importlib.util.find_spec("mathjax")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        bundle = Path(location) / "static" / "mathjax" / "es5"
        if (bundle / "tex-mml-chtml.js").is_file():
            return bundle
    raise ModuleNotFoundError("the book typesets math with MathJax from the package django-static-mathjax, "
                              "which is not installed: pip install 'django-static-mathjax==3.2.2.1' "
                              "(a pinned dependency of unlearnkit)")


def _use_local_mathjax(app, config) -> None:
    mathjax_bundle()  # fail at the start of the build, not after it
    config.mathjax_path = MATHJAX_SCRIPT


PAGE_CSS = Path(__file__).with_name("static") / "unlearnkit.css"
"""The book's page fixes: code that wraps at the column, compact tables (added to every page)."""


def _add_page_css(app, config) -> None:
    config.html_static_path = [*config.html_static_path, str(PAGE_CSS.parent)]
    app.add_css_file(PAGE_CSS.name)


def copy_mathjax(target: Path) -> Path:
    """Copy the bundle to ``target`` (``…/_static/mathjax/es5``): the entry script and the folders
    of components and fonts it loads on demand, not the other combined entry scripts."""
    bundle = mathjax_bundle()
    entry = Path(MATHJAX_SCRIPT).name

    def other_entries(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if Path(folder) == bundle and n.endswith(".js") and n != entry]

    shutil.copytree(bundle, target, ignore=other_entries, dirs_exist_ok=True)
    return target


def _copy_mathjax(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        copy_mathjax(Path(app.outdir) / "_static" / Path(MATHJAX_SCRIPT).parent)


def _script_key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    return str(getattr(script, "filename", script) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _clean_page(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts is not None:
        seen, unique = set(), []
        for script in scripts:
            if _script_key(script) not in seen:
                seen.add(_script_key(script))
                unique.append(script)
        scripts[:] = unique
    if not context.get("default_mode"):
        context["default_mode"] = "light"


def core_functions(run) -> list:
    """``run`` (a registered method) and the functions of the methods package it calls directly
    (e.g. ``mumis`` → ``run_mumis``), the shared helpers of ``methods.base`` left out."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(run)))
    called = [node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    found = [run]
    for name in dict.fromkeys(called):
        fn = run.__globals__.get(name)
        module = getattr(fn, "__module__", "") or ""
        if inspect.isfunction(fn) and module.startswith("unlearnkit.methods") and module != "unlearnkit.methods.base" \
                and fn not in found:
            found.append(fn)
    return found


def method_markdown(name: str) -> str:
    """The appendix entry of registered method ``name`` (MyST markdown)."""
    import dataclasses
    import inspect

    from .methods import get_method

    spec = get_method(name)
    reads = " and ".join(part for part, used in (("the retain set", spec.needs_retain),
                                                 ("the forget set", spec.needs_forget)) if used) or "no data"
    if spec.passes:
        budget = (f"{', '.join(f'`{p}`' for p in spec.passes)}: the `paper` value × R / "
                  f"{spec.reference_retrain_epochs:g}, R the problem's retrain epochs (the reference code "
                  f"base's ratio to its {spec.reference_retrain_epochs:g}-epoch retrain)")
    else:
        budget = "none (the reference: a full retrain)"
    defaults = {profile: spec.config.defaults(profile) for profile in ("smoke", "cpu", "paper")}
    why = {f.name: f.metadata.get("why") or "" for f in dataclasses.fields(spec.config)}
    rows = "\n".join(f"| `{key}` | " + " | ".join(f"`{defaults[p][key]!r}`" for p in defaults)
                      + f" | {why[key] if defaults['cpu'][key] != defaults['paper'][key] else ''} |"
                      for key in defaults["paper"])
    source = "\n\n\n".join(inspect.getsource(fn).rstrip() for fn in core_functions(spec.run))
    return (f"**{spec.label}** (`{name}`, reference `{spec.reference}`): {spec.idea}. Reads {reads}. "
            f"Budget: {budget}.\n\n| hyperparameter | smoke | cpu | paper | why cpu differs |\n"
            f"|---|---|---|---|---|\n{rows}\n\n```python\n{source}\n```\n")


class MethodsAppendix(SphinxDirective):
    """``{methods-appendix}``: one entry per registered method (:func:`method_markdown`)."""

    def run(self):
        from docutils import nodes
        from docutils.statemachine import StringList

        from .methods import available_methods

        container = nodes.container()
        text = "\n".join(method_markdown(name) for name in available_methods())
        self.state.nested_parse(StringList(text.splitlines(), source="unlearnkit.methods"), self.content_offset,
                                container)
        return container.children


RESULTS_CONFIG = "unlearnkit_results"
"""The Sphinx config value naming the run's results folder (``<run>/results``); empty: none."""

FINDINGS_TITLE = "What this chapter found"

NO_RESULTS = ("The results of the run behind this page are not available to this build (build the book "
              "with python -m unlearnkit build, which executes the chapters and passes their results "
              "files on), so no findings are listed here.")


def load_results(folder: str | Path | None, stem: str) -> dict | None:
    """The results file ``<folder>/<stem>.json`` of a run, or None when the folder is not set, the
    file is missing or unreadable, or it holds no scorecard list."""
    if not folder:
        return None
    path = Path(folder) / f"{stem}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("scorecard"), list) else None


def row_anchor(row_id: str) -> str:
    """The HTML id of a scorecard row's ``<tr>`` (:func:`unlearnkit.record.scorecard_html`)."""
    return f"score-{row_id}"


def ours_text(row: dict) -> str:
    """Our value of a row as the scorecard shows it: mean [95 % interval] (``Δ`` for a paired row)."""
    from .record import format_number

    text = ("Δ " if row.get("test") == "paired" else "") + format_number(row.get("ours"))
    if row.get("ci_low") is not None and row.get("ci_high") is not None:
        text += f" [{format_number(row['ci_low'])}, {format_number(row['ci_high'])}]"
    return text


def verdict_counts(rows: list[dict]) -> list[tuple[str, int]]:
    """``(verdict, rows)`` for every verdict the rows have, in the order of ``record.VERDICTS``
    (a verdict outside that list last)."""
    from .record import VERDICTS

    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row.get("verdict"))] = counts.get(str(row.get("verdict")), 0) + 1
    order = [v for v in VERDICTS if v in counts] + sorted(v for v in counts if v not in VERDICTS)
    return [(v, counts[v]) for v in order]


def badge_html(verdict: str) -> str:
    """The verdict as the scorecard's coloured badge (colours of ``record.VERDICT_COLOURS``)."""
    import html

    from .record import VERDICT_COLOURS

    colour = VERDICT_COLOURS.get(verdict, "#57606a")
    return (f'<span class="verdict-badge" data-verdict="{html.escape(verdict, quote=True)}" '
            f'style="background:{colour};color:#fff;border-radius:0.6em;padding:0.1em 0.55em;'
            f'white-space:nowrap">{html.escape(verdict)}</span>')


def evidence_sections(lines: list[str]) -> list[tuple[str, str]]:
    """``(row id pattern, label)`` pairs from a directive's content, one ``pattern: label`` a line
    (``fnmatch`` patterns on row ids; the first match wins)."""
    pairs = []
    for line in lines:
        if line.strip() and not line.strip().startswith("#"):
            pattern, sep, label = line.partition(":")
            if not sep or not pattern.strip() or not label.strip():
                raise ValueError(f"evidence line {line!r} is not of the form 'row-id-pattern: label'")
            pairs.append((pattern.strip(), label.strip()))
    return pairs


def evidence_label(row_id: str, sections: list[tuple[str, str]], default: str) -> str:
    """The label of the section holding a row's evidence: the first matching pattern's, else ``default``."""
    return next((label for pattern, label in sections if fnmatch.fnmatchcase(row_id, pattern)), default)


def run_line(results: dict) -> str:
    """``profile smoke · device cpu · finished 2026-12-07`` of a results file."""
    finished = str(results.get("finished") or "–")[:10]
    return f"profile {results.get('profile') or '–'} · device {results.get('device') or '–'} · finished {finished}"


def _ref(label: str, text: str, refdoc: str, reftype: str = "ref"):
    from docutils import nodes
    from sphinx import addnodes

    node = addnodes.pending_xref("", refdomain="std", reftype=reftype, reftarget=label, refexplicit=True,
                                 refwarn=True, refdoc=refdoc)
    node += nodes.inline(text, text, classes=["xref", "std", f"std-{reftype}"])
    return node


def _raw(text: str):
    from docutils import nodes

    return nodes.raw("", text, format="html")


def _note(text: str):
    from docutils import nodes

    return nodes.paragraph(text, text, classes=["findings-missing"])


def chapter_findings_nodes(results: dict | None, *, refdoc: str, scorecard_label: str,
                           sections: list[tuple[str, str]] = ()) -> list:
    """The "What this chapter found" box: per scorecard row its badge, its claim linked to its row
    of the scorecard (``#score-<id>``), ours (mean [lo, hi]) and a link to the section with its
    evidence; a note instead when ``results`` is None."""
    from docutils import nodes

    box = nodes.admonition(classes=["findings", "tip"])
    box += nodes.title(FINDINGS_TITLE, FINDINGS_TITLE)
    if results is None:
        box += _note(NO_RESULTS)
        return [box]
    rows = results["scorecard"]
    if not rows:
        box += _note("This run's scorecard has no rows.")
    items = nodes.bullet_list(classes=["findings-list"])
    for row in rows:
        line = nodes.paragraph()
        line += _raw(badge_html(str(row.get("verdict"))))
        line += nodes.Text(" ")
        claim = str(row.get("claim") or row.get("id"))
        line += nodes.reference(claim, claim, refuri="#" + row_anchor(str(row.get("id"))), internal=True)
        line += nodes.Text(f": ours {ours_text(row)} (")
        line += _ref(evidence_label(str(row.get("id")), list(sections), scorecard_label), "evidence", refdoc)
        line += nodes.Text(")")
        items += nodes.list_item("", line, classes=["finding"])
    if rows:
        box += items
    counts = ", ".join(f"{n} {v}" for v, n in verdict_counts(rows))
    footer = f"{len(rows)} claims ({counts}); {run_line(results)}. Rules and tolerances: "
    foot = nodes.paragraph(classes=["findings-run"])
    foot += nodes.Text(footer)
    foot += _ref(scorecard_label, "the scorecard", refdoc)
    foot += nodes.Text(".")
    box += foot
    return [box]


def _table(header: list[str], body: list[list], classes: list[str]):
    """A docutils table; a cell is a string or a list of inline nodes."""
    from docutils import nodes

    table = nodes.table(classes=classes)
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)

    def row_of(cells):
        row = nodes.row()
        for cell in cells:
            para = nodes.paragraph()
            if isinstance(cell, str):
                para += nodes.Text(cell)
            else:
                for part in cell:
                    para += part
            row += nodes.entry("", para)
        return row

    head = nodes.thead()
    head += row_of(header)
    group += head
    tbody = nodes.tbody()
    for cells in body:
        tbody += row_of(cells)
    group += tbody
    return table


def book_findings_nodes(folder: str | Path | None, stems: list[str], *, refdoc: str, uri_of) -> list:
    """The landing page's findings: counts per verdict, one table row per scorecard row of every
    chapter in ``stems`` with a results file (chapter, claim linked to its row, paper, ours with its
    interval, verdict) and per chapter the profile, device and date it ran at. ``uri_of(stem)``: the
    chapter page's URI from ``refdoc``. A note instead when no chapter has a results file."""
    from docutils import nodes

    from .record import format_number

    runs = {stem: results for stem in stems if (results := load_results(folder, stem)) is not None}
    if not runs:
        return [_note(NO_RESULTS)]
    rows = [(stem, row) for stem, results in runs.items() for row in results["scorecard"]]
    counts = verdict_counts([row for _, row in rows])
    summary = nodes.paragraph(classes=["findings-counts"])
    summary += nodes.Text(f"{len(rows)} claims in {len(runs)} chapters: ")
    for i, (verdict, n) in enumerate(counts):
        summary += nodes.Text(("; " if i else "") + f"{n} ")
        summary += _raw(badge_html(verdict))
    summary += nodes.Text(".")
    out = [summary]
    missing = [stem for stem in stems if stem not in runs]
    if missing:
        out.append(_note(f"No results file for {', '.join(missing)}: not listed."))
    body = []
    for stem, row in rows:
        claim = str(row.get("claim") or row.get("id"))
        body.append([[_ref("/chapters/" + stem, stem, refdoc, "doc")],
                     [nodes.reference(claim, claim, refuri=f"{uri_of(stem)}#{row_anchor(str(row.get('id')))}", internal=True)],
                     format_number(row.get("paper")), ours_text(row),
                     [_raw(badge_html(str(row.get("verdict"))))]])
    out.append(_table(["Chapter", "Claim", "Paper", "Ours: mean [95 % CI]", "Verdict"], body,
                      ["book-findings", "table"]))
    ran = [[[_ref("/chapters/" + stem, stem, refdoc, "doc")], str(results.get("profile") or "–"),
            str(results.get("device") or "–"), str(results.get("finished") or "–"),
            str(results.get("commit") or "–"), str(len(results["scorecard"]))] for stem, results in runs.items()]
    out.append(_table(["Chapter", "Profile", "Device", "Finished", "Commit", "Claims"], ran,
                      ["book-findings-runs", "table"]))
    return out


def _chapter_stems(env) -> list[str]:
    """The chapters of the book being built, in reading order (documents ``chapters/<stem>``)."""
    from .parameters import toc_chapters

    try:
        stems = toc_chapters(Path(env.srcdir))
    except (OSError, ValueError):
        stems = []
    found = {doc[len("chapters/"):] for doc in env.found_docs if doc.startswith("chapters/")}
    return [s for s in stems if s in found] or sorted(found)


class ChapterFindings(SphinxDirective):
    """``{chapter-findings} STEM``: the chapter's answer box (:func:`chapter_findings_nodes`).

    Option ``:scorecard: LABEL`` (default ``ch<N>-scorecard``, N the stem's number); content lines
    ``row-id-pattern: label`` name the section with a row's evidence (default: the scorecard)."""

    required_arguments = 1
    has_content = True
    option_spec = {"scorecard": str}

    def run(self):
        stem = self.arguments[0].strip()
        number = stem.split("_", 1)[0]
        label = self.options.get("scorecard") or f"ch{int(number) if number.isdigit() else number}-scorecard"
        folder = getattr(self.config, RESULTS_CONFIG, "") or ""
        if folder and (Path(folder) / f"{stem}.json").is_file():
            self.env.note_dependency(str(Path(folder) / f"{stem}.json"))
        try:
            sections = evidence_sections(list(self.content))
        except ValueError as err:
            raise self.error(str(err)) from None
        return chapter_findings_nodes(load_results(folder, stem), refdoc=self.env.docname, scorecard_label=label,
                                      sections=sections)


class BookFindings(SphinxDirective):
    """``{book-findings}``: every chapter's scorecard rows on one page (:func:`book_findings_nodes`)."""

    def run(self):
        folder = getattr(self.config, RESULTS_CONFIG, "") or ""
        stems = _chapter_stems(self.env)
        for stem in stems:
            if folder and (Path(folder) / f"{stem}.json").is_file():
                self.env.note_dependency(str(Path(folder) / f"{stem}.json"))
        builder = self.env.app.builder
        docname = self.env.docname
        return book_findings_nodes(folder, stems, refdoc=docname,
                                   uri_of=lambda stem: builder.get_relative_uri(docname, f"chapters/{stem}"))


FIELD_START = re.compile(r"^[A-Za-z_][\w.]*(?:\s*[/,]\s*[A-Za-z_][\w.]*)*:\s")
"""A docstring line that opens a ``name: description`` entry (``x:``, ``retain / forget:``)."""


def docstring_fields(lines: list[str]) -> list[str]:
    """The package's docstrings list arguments and fields as aligned ``name: description``
    entries whose wrapped lines are indented under the description; reStructuredText reads
    those as broken definition lists. Each entry becomes one paragraph (its wrapped lines
    joined), so the API pages render them as written, warning-free. Other lines are kept."""
    out: list[str] = []
    entry = False
    for line in lines:
        if entry and line.startswith(" ") and line.strip():
            out[-1] += " " + line.strip()
            continue
        entry = bool(FIELD_START.match(line))
        if entry and out and out[-1].strip():
            out.append("")
        out.append(line)
    return out


def _docstring_fields(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = docstring_fields(lines)


def setup(app) -> dict:
    app.add_config_value(RESULTS_CONFIG, "", "env", types=[str])
    app.add_directive("methods-appendix", MethodsAppendix)
    app.add_directive("chapter-findings", ChapterFindings)
    app.add_directive("book-findings", BookFindings)
    app.connect("config-inited", _use_local_mathjax, priority=900)
    app.connect("config-inited", _add_page_css, priority=900)
    app.connect("html-page-context", _clean_page, priority=900)
    app.connect("build-finished", _copy_mathjax)
    app.setup_extension("sphinx.ext.autodoc")  # the API appendix; its event below needs it loaded
    app.connect("autodoc-process-docstring", _docstring_fields, priority=600)  # after napoleon
    return {"parallel_read_safe": True, "parallel_write_safe": True}
