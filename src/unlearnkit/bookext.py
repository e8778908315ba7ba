"""Sphinx extension of the book: math typeset by a MathJax copied from an installed package.

Sphinx loads MathJax 3 from a public CDN by default, so an archived book opened without a
network shows raw TeX. This extension points ``mathjax_path`` at ``_static/mathjax`` and copies
MathJax's ``es5`` bundle there from the pinned PyPI package ``django-static-mathjax``
(MathJax 3.2.2, Apache-2.0; despite its name it depends on nothing, Django included).
Listed in ``_config.yml`` under ``sphinx.extra_extensions``.

The directive ``{methods-appendix}`` writes the methods appendix from the registry at build
time: every registered method's idea, reference, data it reads, pass budget, defaults per
profile and source code, so the page cannot disagree with the package.

Two page fixes keep the browser console clean (``tests/test_browser.py``): sphinx-thebe's
configuration script, added twice in a jupyter-book build, is kept once (a second ``const``
declaration is a script error), and the theme gets its default colour mode (``light``) where it
would otherwise log an invalid empty mode.
"""

from __future__ import annotations

import importlib.util
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


def setup(app) -> dict:
    app.add_directive("methods-appendix", MethodsAppendix)
    app.connect("config-inited", _use_local_mathjax, priority=900)
    app.connect("html-page-context", _clean_page, priority=900)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
