"""A chapter's parameters: where the book and its chapters are, the names and defaults of a
chapter's ``parameters`` cell, and the checks every override passes before anything runs.

The runner (``python -m unlearnkit run``) and :func:`unlearnkit.chapter.settings` make the same
checks through :func:`prepare_chapter`: unknown names, values of another type than the default,
and values outside their range raise, naming the allowed ones.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

from .config import check_choice, check_profile, check_range

def project_root(start: Path | None = None) -> Path:
    """The folder holding ``_toc.yml``, searched upward from ``start`` (default: cwd)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "chapters").is_dir():
            return folder
    raise FileNotFoundError(f"no _toc.yml with a chapters/ folder at or above {here}")


def toc_chapters(root: Path) -> list[str]:
    """Chapter stems (``"00_setup"``, ...) in reading order, from ``_toc.yml``."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("file"), str) and node["file"].startswith("chapters/"):
                files.append(Path(node["file"]).stem)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return files


def resolve_chapter(root: Path, name: str) -> Path:
    """Find a chapter by stem (``00_setup``), short name (``setup``) or path."""
    stems = toc_chapters(root)
    candidates = [s for s in stems if name in (s, s.split("_", 1)[-1], f"chapters/{s}.md", f"{s}.md")]
    if len(candidates) != 1:
        raise ValueError(f"unknown chapter {name!r}; allowed: {', '.join(stems)}")
    return root / "chapters" / f"{candidates[0]}.md"


def read_notebook(path: Path):
    """The chapter as an nbformat notebook (jupytext reads the MyST markdown)."""
    import jupytext

    return jupytext.read(path)


def notebook_parameters(nb) -> dict[str, Any]:
    """Names and literal default values of the single cell tagged ``parameters``."""
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"a chapter needs exactly one cell tagged 'parameters'; found {len(cells)}")
    params: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                params[target.id] = ast.literal_eval(node.value)
    return params


def parse_override(text: str) -> tuple[str, Any]:
    """``"epochs=3"`` → ``("epochs", 3)``; values are Python literals, else strings."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


def check_overrides(defaults: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Reject override names the notebook does not declare and values of another type."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; allowed: {sorted(defaults)}")
    for key, value in overrides.items():
        default = defaults[key]
        if default is None or value is None:
            continue
        ok = isinstance(value, type(default)) and isinstance(value, bool) == isinstance(default, bool)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise TypeError(f"parameter {key}={value!r} has type {type(value).__name__}; "
                            f"expected {type(default).__name__} like the default {default!r}")


RUNNER_SET = ("profile", "results_path")  # chosen by run_chapter's arguments, never by an override


def _check_data_root(name: str, value: str, chapter_dir: Path) -> None:
    if value and not (chapter_dir / Path(value).expanduser()).is_dir():
        raise FileNotFoundError(f"{name}={value!r} is not a folder (relative paths start at {chapter_dir}); "
                                "allowed: '' ($UNLEARNKIT_DATA, else ./data) or an existing folder")


def _check_device(name: str, value: str, chapter_dir: Path) -> None:
    from .runtime import resolve_device  # imports torch; names runtime.DEVICES on a bad value

    resolve_device(value)


def _check_scorer(name: str, value: str, chapter_dir: Path) -> None:
    from .selection import SCORERS

    check_choice(name, value, SCORERS)


def _check_option(function: str):
    """A check from :mod:`unlearnkit.experiments.options` (imported on use: it imports torch)."""
    def check(name: str, value, chapter_dir: Path) -> None:
        from .experiments import options

        getattr(options, function)(value)
    return check


def _check_scenario_knob(name: str, value, chapter_dir: Path) -> None:
    from .experiments import tasks

    tasks.check_knobs(**{name: value})


# Value checks of chapter parameters, by name or by ``*_suffix``; None marks a parameter left free.
# ``plugins`` is checked (imported) first, so that ``methods`` may name the methods it registers.
def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"parameter {name}={value!r} must be True or False")
    return value


PARAMETER_CHECKS = {
    "plugins": _check_option("load_plugins"),
    "methods": _check_option("check_method_list"),
    "method_overrides": _check_option("check_method_overrides"),
    "n_seeds": _check_option("check_n_seeds"),
    "forget_class": _check_scenario_knob,
    "forget_fraction": _check_scenario_knob,
    "forget_subject_fraction": _check_scenario_knob,
    "pool_size": _check_scenario_knob,
    "device": _check_device,
    "dry_run": lambda name, value, _: _check_bool(name, value),
    "deterministic": lambda name, value, _: _check_bool(name, value),
    "seed": lambda name, value, _: check_range(name, value, 0),
    "data_root": _check_data_root,
    "*_budget": lambda name, value, _: check_range(name, value, 0, 1, low_open=True),
    "combo_budget": lambda name, value, _: check_range(name, value, 0, 1, low_open=True, high_open=True),
    "*_scorer": _check_scorer,
    "*_slack": lambda name, value, _: check_range(name, value, 0),
    "profile": None,          # set by the runner, checked by check_profile
    "results_path": None,     # set by the runner
    "benchmarks_path": None,  # an absent file is shown as "never measured"
    "gpu_check_path": None,   # an absent file (or a CPU run of the check) is shown as "no GPU figure"
}


def covering_key(name: str) -> str | None:
    """The key of :data:`PARAMETER_CHECKS` covering ``name`` (itself, else ``*_suffix``), or None.

    Parameters no key covers are free; tests hold the book's chapters to full coverage.
    """
    return next((key for key in (name, "*_" + name.rsplit("_", 1)[-1]) if key in PARAMETER_CHECKS), None)


def check_parameter_values(defaults: dict[str, Any], overrides: dict[str, Any], chapter_dir: Path) -> None:
    """Check the values a chapter will run with, before its kernel starts (names and types are
    :func:`check_overrides`'s job). Errors name the bad value and the allowed ones."""
    fixed = sorted(set(overrides) & set(RUNNER_SET))
    if fixed:
        raise ValueError(f"parameter(s) {fixed} are set by the runner (profile=/--profile, out=/--out); "
                         f"allowed overrides: {sorted(set(defaults) - set(RUNNER_SET))}")
    values = {**defaults, **overrides}
    for name in sorted(values, key=lambda n: n != "plugins"):
        value = values[name]
        if value is None and defaults[name] is not None:
            raise TypeError(f"parameter {name}=None; expected {type(defaults[name]).__name__} "
                            f"like the default {defaults[name]!r}")
        check = PARAMETER_CHECKS.get(covering_key(name))
        if check is not None and value is not None:
            check(name, value, chapter_dir)


def prepare_chapter(name: str, profile: str, overrides: dict[str, Any] | None, root: Path | None = None):
    """``(root, chapter path, notebook, parameter defaults, overrides)`` once the chapter, the
    profile and every override are checked (plugin paths made absolute: the kernel runs in chapters/)."""
    root = project_root(root)
    path = resolve_chapter(root, name)
    check_profile(profile)
    nb = read_notebook(path)
    defaults = notebook_parameters(nb)
    overrides = dict(overrides or {})
    if isinstance(overrides.get("plugins"), list):
        overrides["plugins"] = [str(Path(p).expanduser().resolve()) if isinstance(p, str) else p
                                for p in overrides["plugins"]]
    check_overrides(defaults, overrides)
    check_parameter_values(defaults, overrides, path.parent)
    return root, path, nb, defaults, overrides
